//! TLS 1.3 for detour's redirect responder: certificates by SNI, stateless session tickets
//! from a shared secret, and a bounded per-worker table of connections driven segment by
//! segment over rustls's caller-owned-buffer (unbuffered) API, with the ring provider.
//!
//! Contract: no root, no frames, no clock, no `unsafe`. The worker parses frames, checks the
//! SYN cookie, and hands this crate the TCP fields and payload of each segment of a TLS
//! virtual's connection; it gets back the segments to send (TLS records as payload, FIN, RST)
//! and, once, the decrypted request head to answer with the same redirect as over HTTP.
//! Only TLS 1.3 is spoken (older clients get rustls's protocol_version alert), ALPN
//! `http/1.1`, no early data. Connections allocate (rustls state, buffers) at handshake time.
#![forbid(unsafe_code)]

mod certs;
mod conn;
mod table;
mod ticket;

pub use certs::{CertSource, ConfigError, TlsConfig};
pub use conn::{Failure, Phase, MAX_HEAD, MAX_TLS_IN};
pub use table::{Incoming, Limits, Outcome, Segment, Stats, Table};
pub use ticket::{Ticketer, TICKET_LIFETIME_SECS};
