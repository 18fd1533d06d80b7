//! The command language: one command per line, the seed's syntax plus documented extensions.
//!
//! This module is syntax only: it turns a line into a [`Command`], checking the shape of
//! every token (addresses, ports, codes, URL templates, numbers). Whether the ids a command
//! names exist is the model's business ([`crate::model`]).
//!
//! Lexing: tokens are separated by spaces or tabs; a token starting with `#` or `!` begins
//! a comment that runs to the end of the line; command words are case-insensitive (the seed
//! writes both `url` and `URL`); only printable ASCII is allowed outside comments.

use crate::commands::{Verb, VERBS};
use crate::error::{quoted, LineError};
use crate::predictor::Predictor;
use crate::url::UrlTemplate;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use crate::parse::{looks_like_addr, maybe_addr, sock_addr};

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 8192;
/// Longest URL id (the seed's `uchar name[40]`).
pub const MAX_ID: usize = 40;
pub use crate::predictor::MAX_WEIGHT;
/// Port assumed when an address is written without one.
pub const DEFAULT_PORT: u16 = 80;

/// A token of a line, with its 1-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a str,
    pub col: usize,
}

/// A reference to an object by id, as written, with its column for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub text: String,
    pub col: usize,
}

/// Service states of the seed; DESIGN.md section 1 is the contract for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    InService,
    /// Draining: no new redirects; traffic to its DIP still forwarded.
    Sticky,
    /// Out of service (the default of `out-of-service`).
    Oos,
    Maintenance,
    /// Set by health checks (or by hand).
    Failed,
}

impl State {
    pub fn keyword(self) -> &'static str {
        match self {
            State::InService => "in-service",
            State::Sticky => "sticky",
            State::Oos => "oos",
            State::Maintenance => "maintenance",
            State::Failed => "failed",
        }
    }
    /// Takes new redirects (and new flows sent to it as someone's backup).
    pub fn takes_new(self) -> bool {
        self == State::InService
    }
    /// Traffic to its DIP is forwarded to it.
    pub fn forwards(self) -> bool {
        matches!(self, State::InService | State::Sticky)
    }
    /// The more restrictive of two states (a linked URL is as down as either of its parts).
    pub fn worst(self, other: State) -> State {
        self.max(other)
    }
}

/// Kind of object named by `in-service` / `out-of-service`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Virtual,
    Real,
    Url,
}

impl Kind {
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Virtual => "virtual",
            Kind::Real => "real",
            Kind::Url => "url",
        }
    }
}

/// Health check of a real, run by the control thread through the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a failed real back.
    pub rise: u32,
    /// Consecutive failures that mark a real failed.
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthKind {
    None,
    Tcp,
    Http { path: String, expect: u16 },
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// Which side of the director an interface faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `virtual <ip>[:port] [tls]`: a primary virtual server (`tls`: it answers over TLS 1.3,
    /// port 443 unless given).
    Virtual {
        addr: SocketAddr,
        col: usize,
        tls: bool,
    },
    /// `real <ip>[:port]`: a real server.
    Real { addr: SocketAddr, col: usize },
    /// `dip <ip>[:port] [real <ip>[:port]]` (also `direct-ip`, `direct - ip`): a secondary
    /// virtual paired 1-to-1 with a real at the same address, or at `real` (NAT case).
    Dip {
        addr: SocketAddr,
        real: Option<SocketAddr>,
        /// Column of the address, for errors found by the model.
        col: usize,
    },
    /// `url <id> <url_string> [code]`.
    Url {
        id: Ref,
        template: UrlTemplate,
        code: u16,
    },
    /// `[no] bind <virtual_id> <real_id|url_id> ...`.
    Bind {
        no: bool,
        virt: Ref,
        members: Vec<Ref>,
    },
    /// `link <url_id> <virtual_id|real_id>`.
    Link { url: Ref, target: Ref },
    /// `[no] backup <real_id|virtual_id> <backup_id>` (`no backup <id>` alone also clears).
    Backup {
        no: bool,
        of: Ref,
        backup: Option<Ref>,
    },
    /// `in-service virtual|real|url <id> [all]`.
    InService { kind: Kind, id: Ref, all: bool },
    /// `out-of-service virtual|real|url <id> [oos|maintenance|sticky|failed] [all]`.
    OutOfService {
        kind: Kind,
        id: Ref,
        state: State,
        all: bool,
    },
    /// `weight <real_id|url_id> <0..=1000>`.
    Weight { id: Ref, weight: u32 },
    /// `predictor <virtual_id> roundrobin|weighted|leastconns|hash`.
    Predictor { virt: Ref, predictor: Predictor },
    /// `health-check <real_id|all> none|tcp|http [path P] [expect N] [interval D] [timeout D] [rise N] [fall N]`.
    HealthCheck { target: Ref, check: HealthCheck },
    /// `certificate <name|*.suffix|*> <cert.pem> <key.pem>`: served to TLS clients naming it.
    Certificate {
        name: Ref,
        cert: String,
        key: String,
    },
    /// `no certificate <name>`.
    NoCertificate { name: Ref },
    /// `tls-connections <n>`: each worker's table of TLS connections.
    TlsConnections { entries: u32 },
    /// `tls-handshakes-per-batch <n>`: each worker's budget of new server flights per batch.
    TlsHandshakesPerBatch { handshakes: u32 },
    /// `cookie-secret <64 hex digits>`.
    CookieSecret { secret: [u8; 32] },
    /// `interface client|server <name> [queues N]`.
    Interface {
        role: Role,
        name: String,
        queues: u16,
    },
    /// `cores <n>[,<n>...]`.
    Cores { cores: Vec<usize> },
    /// `metrics <loopback ip>:<port>`.
    Metrics { addr: SocketAddr },
    /// `gateway <ip>`: the client-side next hop, whose MAC replies to clients are sent to.
    Gateway { addr: Ipv4Addr },
    /// `no url|real|dip|virtual <id>`: remove an object nothing else refers to.
    Remove { kind: Removable, id: Ref },
}

/// What `no <kind> <id>` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removable {
    Url,
    Real,
    Dip,
    Virtual,
}

/// Split a line into tokens, dropping a trailing comment.
pub fn tokenize(line: &str) -> Result<Vec<Token<'_>>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::new(
            1,
            format!("a line of at most {MAX_LINE} bytes"),
            format!("{} bytes", line.len()),
        ));
    }
    let mut out = Vec::new();
    let mut start = None;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        let sep = matches!(b, None | Some(b' ') | Some(b'\t') | Some(b'\r'));
        match (start, sep) {
            (None, false) => {
                if b == Some(b'#') || b == Some(b'!') {
                    break;
                }
                start = Some(i);
            }
            (Some(s), true) => {
                out.push(token(line, s, i)?);
                start = None;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(out)
}

fn token(line: &str, s: usize, e: usize) -> Result<Token<'_>, LineError> {
    let col = line[..s].chars().count() + 1;
    // Byte positions s and e are at ASCII separators or the ends, so slicing is safe.
    let text = &line[s..e];
    if let Some((off, ch)) = text.char_indices().find(|&(_, c)| !c.is_ascii_graphic()) {
        return Err(LineError::new(
            col + text[..off].chars().count(),
            "printable ASCII",
            quoted(&ch.to_string()),
        ));
    }
    Ok(Token { text, col })
}

/// The tokens of a line, read left to right by the verbs' parsers.
pub struct Cursor<'a, 't> {
    pub(crate) toks: &'t [Token<'a>],
    pub(crate) pos: usize,
    /// Column just past the last token, for "found end of line".
    pub(crate) end_col: usize,
}

impl<'a> Cursor<'a, '_> {
    pub(crate) fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.pos)
    }
    pub(crate) fn next(&mut self, expected: &str) -> Result<Token<'a>, LineError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(LineError::new(self.end_col, expected, "end of line")),
        }
    }
    pub(crate) fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(t) if t.text.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
    pub(crate) fn finish(&self) -> Result<(), LineError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(LineError::new(t.col, "end of line", quoted(t.text))),
        }
    }
    pub(crate) fn reference(&mut self, expected: &str) -> Result<Ref, LineError> {
        let t = self.next(expected)?;
        Ok(Ref {
            text: t.text.to_string(),
            col: t.col,
        })
    }
}

/// Parse one line. `Ok(None)` for a blank or comment line. The verb is looked up in
/// [`VERBS`]; its parser reads the rest.
pub fn parse_line(line: &str) -> Result<Option<Command>, LineError> {
    let toks = tokenize(line)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let mut c = Cursor {
        toks: &toks,
        pos: 0,
        end_col: line.trim_end().chars().count() + 1,
    };
    let verb = find_verb(&mut c)?;
    let cmd = (verb.parse)(&mut c)?;
    c.finish()?;
    Ok(Some(cmd))
}

/// Words of `spelling` the tokens from `pos` on match.
fn matched(spelling: &[&str], toks: &[Token]) -> usize {
    spelling
        .iter()
        .zip(toks)
        .take_while(|(w, t)| t.text.eq_ignore_ascii_case(w))
        .count()
}

/// The verb the line starts with (its words consumed), or what was expected instead.
fn find_verb(c: &mut Cursor) -> Result<&'static Verb, LineError> {
    let toks = &c.toks[c.pos..];
    let mut best: Option<(&'static Verb, usize)> = None;
    let mut partial = 0;
    for v in VERBS {
        for sp in v.spellings {
            let n = matched(sp, toks);
            if n == sp.len() && best.is_none_or(|(_, k)| n > k) {
                best = Some((v, n));
            } else if n < sp.len() {
                partial = partial.max(n);
            }
        }
    }
    match best {
        Some((v, n)) if n >= partial => {
            c.pos += n;
            Ok(v)
        }
        _ if partial == 0 => {
            let mut firsts: Vec<&str> = Vec::new();
            for v in VERBS {
                if !firsts.contains(&v.spellings[0][0]) {
                    firsts.push(v.spellings[0][0]);
                }
            }
            let head = &toks[0];
            let expected = format!("a command ({})", firsts.join(", "));
            Err(LineError::new(head.col, expected, quoted(head.text)))
        }
        _ => Err(rest_expected(c, partial)),
    }
}

/// A line whose first words begin a verb's spelling but do not finish it: what may follow
/// the first word, at the first token that does not fit.
fn rest_expected(c: &Cursor, partial: usize) -> LineError {
    let toks = &c.toks[c.pos..];
    let mut rests: Vec<String> = Vec::new();
    for sp in VERBS.iter().flat_map(|v| v.spellings.iter()) {
        if matched(sp, toks) == partial {
            let r = format!("`{}`", sp[1..].join(" "));
            if !rests.contains(&r) {
                rests.push(r);
            }
        }
    }
    let expected = match rests.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, others)) => format!("{} or {last}", others.join(", ")),
        None => String::new(),
    };
    let expected = format!("{expected} after `{}`", toks[0].text.to_ascii_lowercase());
    match toks.get(partial) {
        Some(t) => LineError::new(t.col, expected, quoted(t.text)),
        None => LineError::new(c.end_col, expected, "end of line"),
    }
}
