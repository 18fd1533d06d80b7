//! Everything a worker does to a frame, as safe Rust over byte slices, with no I/O of its own.
//!
//! The runtime hands a [`Worker`] frames received on a port (a buffer with room to grow for
//! replies, and the frame's length); the worker classifies each one, rewrites it in place or
//! writes a reply into it, and returns a [`Verdict`]: transmit on a port, drop with a
//! [`Reason`], or pass to the kernel. No allocation, lock, syscall or log line per frame:
//! every outcome is a counter.
//!
//! Paths (DESIGN.md section 2):
//! - DIP forwarding (the seed's claim 13): client -> DIP:port rewritten to real:port, and
//!   real -> client back to DIP:port; checksums updated incrementally (RFC 1624).
//! - The stateless redirect responder for each primary VIP:port (SYN cookies, RFC 4987),
//!   and over TLS 1.3 for a `tls` virtual (a bounded table per worker from the first data
//!   segment on; TLS connections allocate when they open, nothing else does).
//! - ARP and ICMP echo replies for the addresses the director owns.
#![forbid(unsafe_code)]

pub mod cookie;
pub mod csum;
pub mod wire;

/// A port (interface) of the director. In a one-armed setup both are the same interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Port(pub u8);

/// The client-facing port.
pub const CLIENT: Port = Port(0);
/// The server-facing port.
pub const SERVER: Port = Port(1);

pub mod counters;
mod egress;
mod frame;
mod frame6;
mod local;
mod local6;
mod nat;
mod responder;
mod table;
mod worker;

pub use counters::{Counters, RealCounters, Reason};
pub use egress::{Originate, Verdict};
pub use nat::{BACKUP_FLOW_PER_PEER, BACKUP_FLOW_SLOTS};
pub use responder::{HEAD_PER_PEER, HEAD_SLOTS, MAX_HEAD};
pub use worker::{Worker, WorkerConfig, SYN_ACKS_PER_FULL_BATCH, TICK_MS};
