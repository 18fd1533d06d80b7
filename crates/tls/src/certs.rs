//! Certificates chosen by SNI, and the rustls server configuration every TLS connection of a
//! snapshot shares.
//!
//! Contract: [`TlsConfig::build`] takes PEM bytes (the control side reads the files) and a
//! ticket secret, checks that every key matches its certificate, and returns one immutable
//! configuration: TLS 1.3 only, ALPN `http/1.1`, no early data, stateless tickets from
//! [`crate::ticket::Ticketer`], no server-side session cache (nothing shared between workers
//! but this read-only value). SNI selection: the exact name (ASCII case-insensitive), then a
//! `*.suffix` entry for the name's first label stripped, then the `*` entry, then the first
//! certificate given. A reload builds a new value; connections in progress keep their `Arc`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ticket::Ticketer;

/// One `certificate <name-or-*> <cert.pem> <key.pem>` entry, as bytes.
#[derive(Clone)]
pub struct CertSource {
    /// `www.example`, `*.example` or `*` (the default).
    pub name: String,
    /// PEM: the leaf first, then its chain.
    pub cert_pem: Vec<u8>,
    /// PEM: PKCS#8, SEC1 (EC) or PKCS#1 (RSA) private key.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("CertSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// No `certificate` entry at all.
    NoCertificate,
    /// The certificate PEM of `name` holds no certificate or is malformed.
    BadCertificate(String),
    /// The key PEM of `name` holds no usable key (ECDSA P-256/P-384, RSA, Ed25519).
    BadKey(String),
    /// The key of `name` does not belong to its certificate.
    KeyMismatch(String),
    /// Two entries for the same name.
    Duplicate(String),
    /// rustls refused the settings (should not happen with this crate's fixed choices).
    Rustls(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificate => write!(f, "a tls virtual needs at least one certificate"),
            Self::BadCertificate(n) => write!(f, "certificate {n}: no PEM certificate found"),
            Self::BadKey(n) => write!(f, "certificate {n}: no usable PEM private key"),
            Self::KeyMismatch(n) => write!(f, "certificate {n}: the key does not match"),
            Self::Duplicate(n) => write!(f, "certificate {n}: given twice"),
            Self::Rustls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Certificates by lower-case name; `*` and the first entry serve as defaults.
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    fallback: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.by_name.len())
            .finish()
    }
}

impl SniResolver {
    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.by_name.get(&name) {
                return k.clone();
            }
            if let Some((_, rest)) = name.split_once('.') {
                if let Some(k) = self.by_name.get(&format!("*.{rest}")) {
                    return k.clone();
                }
            }
        }
        self.by_name.get("*").unwrap_or(&self.fallback).clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// Parse and check one entry.
fn certified_key(src: &CertSource) -> Result<CertifiedKey, ConfigError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&src.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| ConfigError::BadCertificate(src.name.clone()))?;
    if chain.is_empty() {
        return Err(ConfigError::BadCertificate(src.name.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(&src.key_pem)
        .map_err(|_| ConfigError::BadKey(src.name.clone()))?;
    let signer = provider::sign::any_supported_type(&key)
        .map_err(|_| ConfigError::BadKey(src.name.clone()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|_| ConfigError::KeyMismatch(src.name.clone()))?;
    Ok(ck)
}

/// The immutable TLS settings of one snapshot, shared by `Arc` with every worker.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
    ticket_key_id: [u8; 4],
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("certificates", &self.resolver.by_name.len())
            .finish()
    }
}

impl TlsConfig {
    /// Build from the `certificate` entries and the ticket secret (shared by every worker and
    /// every director that should resume each other's sessions).
    pub fn build(certs: &[CertSource], ticket_secret: &[u8]) -> Result<Self, ConfigError> {
        let mut by_name = HashMap::new();
        let mut fallback = None;
        for src in certs {
            let ck = Arc::new(certified_key(src)?);
            fallback.get_or_insert_with(|| ck.clone());
            if by_name.insert(src.name.to_ascii_lowercase(), ck).is_some() {
                return Err(ConfigError::Duplicate(src.name.clone()));
            }
        }
        let fallback = fallback.ok_or(ConfigError::NoCertificate)?;
        let resolver = Arc::new(SniResolver { by_name, fallback });
        let mut server =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| ConfigError::Rustls(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        server.session_storage = Arc::new(NoServerSessionStorage {});
        let ticketer = Ticketer::new(ticket_secret);
        let ticket_key_id = ticketer.key_id();
        server.ticketer = Arc::new(ticketer);
        server.send_tls13_tickets = 1;
        server.max_early_data_size = 0;
        Ok(Self {
            server: Arc::new(server),
            resolver,
            ticket_key_id,
        })
    }

    /// Names the ticket key (a tag derived from the secret, sent in every ticket): equal on
    /// directors that resume each other's sessions.
    pub fn ticket_key_id(&self) -> [u8; 4] {
        self.ticket_key_id
    }

    /// The DER of the leaf certificate served for `sni` (for tests and `detour ctl show`).
    pub fn leaf_for(&self, sni: Option<&str>) -> Vec<u8> {
        self.resolver.pick(sni).cert[0].as_ref().to_vec()
    }
}
