//! Property tests of the data path: checksums after the incremental NAT rewrite equal a full
//! recompute, forward-then-reply restores the client's view, and the responder's cookies
//! accept exactly the handshakes they answered.
//!
//! Checksums are verified with the plain RFC 1071 sum in `frames` (never the dataplane's own
//! `csum`), and expected frames are built with etherparse.
//!
//! This file holds what both parts use (client addresses, the checksum checks); the NAT
//! properties live in `nat`, the responder's in `responder`.

#[path = "../frames/mod.rs"]
mod frames;
mod nat;
mod responder;

use detour_dataplane::{Port, Verdict, Worker, CLIENT, SERVER};
use frames::*;
use proptest::prelude::*;

/// A client address outside everything the director owns (198.19.0.0/16).
fn client_ip() -> impl Strategy<Value = [u8; 4]> {
    (any::<u8>(), 1u8..=254).prop_map(|(c, d)| [198, 19, c, d])
}

/// The one's-complement sum of pseudo-header + segment with the checksum field zeroed.
fn l4_sum_without_checksum(f: &[u8]) -> u32 {
    let (ihl, total) = ipv4_bounds(f).unwrap();
    let proto = f[23];
    let mut seg = f[14 + ihl..14 + total].to_vec();
    let at = if proto == 6 { 16 } else { 6 };
    seg[at] = 0;
    seg[at + 1] = 0;
    let mut pseudo = f[26..34].to_vec();
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    ones_sum(ones_sum(0, &pseudo), &seg)
}

/// Every checksum of an output frame equals a full recompute (UDP 0 = none stays 0 when
/// `udp_none`).
fn assert_checksums_recomputed(out: &[u8], udp_none: bool) -> Result<(), TestCaseError> {
    prop_assert!(ipv4_bounds(out).is_some(), "not IPv4");
    prop_assert_eq!(
        be16(out, 24),
        recomputed_ip_checksum(out),
        "IPv4 header checksum"
    );
    if udp_none {
        prop_assert_eq!(l4_checksum_field(out), 0, "UDP checksum 0 must stay 0");
    } else {
        prop_assert_eq!(
            l4_checksum_field(out),
            recomputed_l4_checksum(out),
            "L4 checksum"
        );
    }
    Ok(())
}
