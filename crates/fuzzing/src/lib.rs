//! The bodies of detour's fuzz targets, as plain functions of a byte string, so that the
//! libFuzzer targets in `fuzz/` (nightly, `cargo fuzz run <target>`) and the stable replay of
//! their corpus (`tests/replay.rs`, part of `cargo test --workspace`) run the same code.
//!
//! Contract of every body: any input gives `Ok(())` or `Err(reason)` where `Err` means an
//! invariant of detour was broken (a finding); a panic is a finding too. Bodies allocate and
//! build frames freely: they are test code, never linked into the director.
//!
//! The targets ([`TARGETS`]):
//! - `worker4`, `worker6`: a sequence of frames (handshakes, forged requests, traffic to DIPs,
//!   replies of reals, ICMP, mangled and raw frames, configuration changes, clock jumps)
//!   through one `Worker`, every output checked ([`worker`]);
//! - `http_head`: a request head sent after a valid cookie handshake, its answer checked
//!   ([`http`]);
//! - `tls`: segments of TLS bytes fed to the server side of `detour_tls::Table` ([`tls`]);
//! - `config`: the command language and its URL templates and macros ([`config`]).
#![forbid(unsafe_code)]

/// `Err(format!(...))` out of the enclosing function unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

pub mod config;
pub mod http;
mod input;
pub mod net;
pub mod tls;
pub mod worker;

pub use input::Input;

/// A fuzz target's body: `Err` names the invariant broken.
pub type Body = fn(&[u8]) -> Result<(), String>;

/// Every target: its name (the directory of its corpus under `fuzz/corpus/`, and the name of
/// its libFuzzer binary) and its body.
pub const TARGETS: [(&str, Body); 5] = [
    ("worker4", worker::worker4),
    ("worker6", worker::worker6),
    ("http_head", http::http_head),
    ("tls", tls::tls),
    ("config", config::config),
];

/// The body of target `name`.
pub fn body(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
