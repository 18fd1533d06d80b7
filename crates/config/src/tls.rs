//! The TLS verbs of the language (`certificate`, `no certificate`, `tls-connections`,
//! `tls-handshakes-per-batch`): their
//! parsers, how they change the model and how they are written back. The `tls` word of
//! `virtual` is read by `virtual`'s own parser. Certificate files are named here, never read:
//! the control side loads them (this crate does no I/O).

use crate::error::{quoted, LineError};
use crate::lang::{Command, Cursor};
use crate::model::{Certificate, Model};
use crate::parse::number;
use std::fmt::Write as _;

/// Most `certificate` entries (SNI names) a director holds.
pub const MAX_CERTIFICATES: usize = 256;
/// Largest per-worker TLS connection table (`tls-connections`).
pub const MAX_TLS_CONNECTIONS: u64 = 1 << 20;
/// Per-worker TLS connections when `tls-connections` is not given.
pub const DEFAULT_TLS_CONNECTIONS: u32 = 1024;
/// Most new server flights per worker and batch (`tls-handshakes-per-batch`): a batch is at
/// most 64 frames, so more could never be used.
pub const MAX_TLS_HANDSHAKES_PER_BATCH: u64 = 64;
/// New server flights per worker and batch when `tls-handshakes-per-batch` is not given: one
/// signature (0.1-0.3 ms with ECDSA P-256 on the lab machine) is the most a batch of DIP
/// frames waits behind.
pub const DEFAULT_TLS_HANDSHAKES_PER_BATCH: u32 = 1;

/// A certificate name: `*`, `*.suffix` or a DNS name (letters, digits, `-`, `.`), at most
/// 253 bytes; kept lower-case.
fn cert_name(text: &str, col: usize) -> Result<String, LineError> {
    let expected = "a DNS name, `*.suffix` or `*`";
    let body = text.strip_prefix("*.").unwrap_or(text);
    let ok = text == "*"
        || (!body.is_empty()
            && text.len() <= 253
            && body.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if !ok {
        return Err(LineError::new(col, expected, quoted(text)));
    }
    Ok(text.to_ascii_lowercase())
}

/// A file path as written (no spaces; at most 4096 bytes).
fn path(c: &mut Cursor, expected: &str) -> Result<String, LineError> {
    let t = c.next(expected)?;
    if t.text.len() > 4096 {
        return Err(LineError::new(
            t.col,
            expected,
            "a path over 4096 bytes".to_string(),
        ));
    }
    Ok(t.text.to_string())
}

/// `certificate <name|*.suffix|*> <cert.pem> <key.pem>`.
pub(crate) fn certificate(c: &mut Cursor) -> Result<Command, LineError> {
    let mut name = c.reference("a DNS name, `*.suffix` or `*`")?;
    name.text = cert_name(&name.text, name.col)?;
    let cert = path(c, "the certificate chain's PEM file")?;
    let key = path(c, "the private key's PEM file")?;
    Ok(Command::Certificate { name, cert, key })
}

/// `no certificate <name>`.
pub(crate) fn no_certificate(c: &mut Cursor) -> Result<Command, LineError> {
    let mut name = c.reference("a certificate's name")?;
    name.text = cert_name(&name.text, name.col)?;
    Ok(Command::NoCertificate { name })
}

/// `tls-connections <n>`.
pub(crate) fn tls_connections(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("a number of connections")?;
    let entries = number(
        &t,
        1,
        MAX_TLS_CONNECTIONS,
        "a number of connections (1 to 1048576)",
    )?;
    Ok(Command::TlsConnections {
        entries: entries as u32,
    })
}

/// `tls-handshakes-per-batch <n>`.
pub(crate) fn tls_handshakes_per_batch(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("a number of handshakes")?;
    let n = number(
        &t,
        1,
        MAX_TLS_HANDSHAKES_PER_BATCH,
        "a number of handshakes (1 to 64)",
    )?;
    Ok(Command::TlsHandshakesPerBatch {
        handshakes: n as u32,
    })
}

impl Model {
    /// `certificate` (replacing an entry of the same name), `no certificate`,
    /// `tls-connections`.
    pub(crate) fn apply_tls(&mut self, cmd: &Command) -> Result<(), LineError> {
        let certs = &mut self.settings.certificates;
        match cmd {
            Command::Certificate { name, cert, key } => {
                let entry = Certificate {
                    name: name.text.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                };
                match certs.iter().position(|c| c.name == name.text) {
                    Some(i) => certs[i] = entry,
                    None if certs.len() >= MAX_CERTIFICATES => {
                        return Err(LineError::new(
                            name.col,
                            "at most 256 certificates",
                            "one more".to_string(),
                        ))
                    }
                    None => certs.push(entry),
                }
            }
            Command::NoCertificate { name } => {
                let Some(i) = certs.iter().position(|c| c.name == name.text) else {
                    return Err(LineError::new(
                        name.col,
                        "a configured certificate",
                        quoted(&name.text),
                    ));
                };
                certs.remove(i);
            }
            Command::TlsConnections { entries } => self.settings.tls_connections = Some(*entries),
            Command::TlsHandshakesPerBatch { handshakes } => {
                self.settings.tls_handshakes_per_batch = Some(*handshakes)
            }
            _ => unreachable!("the table hands each apply its own command"),
        }
        Ok(())
    }
}

pub(crate) fn write_certificates(m: &Model, s: &mut String) {
    for c in &m.settings.certificates {
        let _ = writeln!(s, "certificate {} {} {}", c.name, c.cert, c.key);
    }
}

pub(crate) fn write_tls_connections(m: &Model, s: &mut String) {
    if let Some(n) = m.settings.tls_connections {
        let _ = writeln!(s, "tls-connections {n}");
    }
}

pub(crate) fn write_tls_handshakes_per_batch(m: &Model, s: &mut String) {
    if let Some(n) = m.settings.tls_handshakes_per_batch {
        let _ = writeln!(s, "tls-handshakes-per-batch {n}");
    }
}
