//! Fuzz targets for `Worker::process`, run on stable as proptest properties, and the replay of
//! the corpus in `crates/dataplane/fuzz/corpus/`.
//!
//! The invariants every output must keep, whatever the input:
//! - no panic;
//! - `Tx { len }` within the buffer, out of one of the two ports;
//! - a transmitted IPv4 frame is well formed (lengths) with a valid header checksum;
//! - a TCP segment the responder originates (any TCP sent for a frame to the VIP, which is
//!   never forwarded) has a valid TCP checksum.
//!
//! Corpus files are named `NN-<port>-<what>.<outcome>.bin`: replayed in name order through one
//! worker (so a split request's second part finds its first), each must give `<outcome>`
//! (`tx`, `pass`, or `drop_<reason>`) on `<port>` (`client` or `server`). New files (crashes
//! found elsewhere, say) may be added with any outcome that holds. Regenerate the generated ones
//! with `cargo test -p detour-dataplane --test fuzz -- --ignored write_corpus`.
//!
//! This file holds the invariant checks every target applies; the corpus and its replay live
//! in `corpus`, the proptest targets in `targets`.

mod corpus;
#[path = "../frames/mod.rs"]
mod frames;
mod targets;

use detour_dataplane::{Port, Reason, Verdict, Worker, CLIENT, SERVER};
use frames::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// Check the invariants on one processed frame; `cap` is the buffer size handed to the worker.
fn check_output(v: Verdict, cap: usize, input: &[u8], out: &[u8]) -> Result<(), String> {
    let Verdict::Tx { port, len } = v else {
        return Ok(());
    };
    if len > cap {
        return Err(format!("Tx len {len} beyond the {cap}-byte buffer"));
    }
    if port != CLIENT && port != SERVER {
        return Err(format!("Tx out of port {port:?}"));
    }
    if len < 14 {
        return Err(format!("Tx of a {len}-byte frame"));
    }
    if be16(out, 12) == 0x0800 {
        if ipv4_bounds(out).is_none() {
            return Err("Tx of a malformed IPv4 frame".into());
        }
        if !ip_header_valid(out) {
            return Err("Tx with a bad IPv4 header checksum".into());
        }
        let (ihl, total) = ipv4_bounds(out).unwrap();
        let to_vip = input.len() >= 34 && be16(input, 12) == 0x0800 && input[30..34] == VIP;
        if to_vip && out[23] == 6 && total >= ihl + 20 && !l4_valid(out) {
            return Err("the responder sent a bad TCP checksum".into());
        }
    }
    Ok(())
}

fn l4_valid(f: &[u8]) -> bool {
    l4_checksum_field(f) == recomputed_l4_checksum(f)
}

/// Process `frame` in a buffer of `cap` bytes (at least the frame) and check the invariants.
fn process_checked(
    w: &mut Worker,
    frame: &[u8],
    port: Port,
    cap: usize,
    now: u64,
) -> Result<(Verdict, Vec<u8>), String> {
    let cap = cap.max(frame.len());
    let mut buf = vec![0u8; cap];
    buf[..frame.len()].copy_from_slice(frame);
    let v = w.process(&mut buf, frame.len(), port, now);
    let out = match v {
        Verdict::Tx { len, .. } if len <= cap => buf[..len].to_vec(),
        _ => Vec::new(),
    };
    check_output(v, cap, frame, &out)?;
    Ok((v, out))
}

fn port_of(b: bool) -> Port {
    if b {
        SERVER
    } else {
        CLIENT
    }
}
