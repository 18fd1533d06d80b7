//! A lab for end-to-end tests of the dataplane against the real Linux TCP stack.
//!
//! Per lab: two network namespaces (a client and a server side), each holding one TAP device
//! whose other end is this test process. Two reader threads block on the taps and hand frames
//! to a director thread that owns a [`Worker`] and sends each `Tx` verdict out of the tap of the
//! returned port. Real HTTP servers (`python3 -m http.server`) run in the server namespace;
//! clients (`curl`, small Python scripts) run in the client namespace.
//!
//! Rules kept here: only addresses from 198.18.0.0/15, only inside namespaces the lab
//! creates; every wait bounded in count and time; everything the lab made (namespaces, taps,
//! processes, threads, files) is torn down by [`Lab`]'s `Drop`, on success, failure or panic.
//!
//! The reader threads block in `recv` (no busy polling, which matters on a 2-core CI box and
//! needs neither `unsafe` nor tun-tap's `libc` feature for `set_non_blocking`): teardown wakes
//! them by deleting the taps (a read on a detached tap fails), and they also stop on the stop
//! flag and at a hard time limit.
//!
//! This façade holds the lab's addresses and base configuration and re-exports the rest:
//! `lab` (building, reconfiguring, diagnosing and tearing down a [`Lab`]), `run` (bounded
//! commands in its namespaces), `director` (the reader and director threads), `host` (set-up
//! and teardown commands, the root check) and `trace` (frame summaries and checksum checks).

mod director;
mod host;
mod lab;
mod run;
mod trace;

pub use host::{pseudo_random, require_root};
pub use lab::Lab;
#[allow(unused_imports)] // the façade names all a test may use, used by today's tests or not
pub use run::{Out, Spawned};
pub use trace::{checksum_problem, summary};

/// The director's own MACs: index 0 on the client port, 1 on the server port.
pub const DIRECTOR_MACS: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]];
/// The kernel side of the client tap (the director's `gateway_mac`).
pub const CLIENT_TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x00];
/// The kernel side of the server tap (every real's `mac`).
pub const SERVER_TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x00];

pub const VIP: &str = "198.18.0.1";
pub const DIP_NAT: &str = "198.18.0.2";
pub const DIP_SAME: &str = "198.18.0.3";
pub const REAL_NAT: &str = "198.18.1.2";
pub const REAL_NAT_PORT: u16 = 8080;

/// The lab's base configuration: a VIP with round robin over a NAT-mode DIP (real at
/// 198.18.1.2:8080) and a same-address DIP (real at 198.18.0.3:80).
pub const BASE_CONFIG: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
url nat http://nat.lab/%d
url same http://same.lab/%d
link nat 198.18.0.2
link same 198.18.0.3
bind 198.18.0.1 nat same
predictor 198.18.0.1 roundrobin
";

/// Size of the file each real serves as `big.bin`.
pub const BIG_LEN: usize = 20 << 20;
