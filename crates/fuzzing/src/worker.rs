//! Targets `worker4` and `worker6`: a byte string decoded into a sequence of operations on one
//! `Worker` (the stable property tests' `sequences.rs` / `sequences6.rs`, driven by a fuzzer).
//! After every frame (see [`Run::check`]):
//! - a transmitted frame carries valid checksums (a forwarded TCP/UDP segment whose own
//!   checksum was already wrong may stay wrong: the real's stack drops it);
//! - a frame to a DIP only ever leaves toward that DIP's real or its backup;
//! - nothing leaves toward an address the config does not name: out of the server port only
//!   to a real (its address and MAC), out of the client port only back to the sender (or to
//!   all nodes, for IPv6 neighbour discovery) or, for a real's reply, to its client through
//!   the gateway;
//! - no HTTP payload without a completed cookie handshake: a segment the responder sends with
//!   data continues a SYN-ACK it sent that client;
//! - `Location` holds only URI characters;
//!
//! and after the sequence the tables stay within their bounds.

use crate::input::Input;
use crate::net::*;
use detour_config::{model::load, Snapshot};
use detour_dataplane::{
    Port, Verdict, Worker, WorkerConfig, BACKUP_FLOW_PER_PEER, BACKUP_FLOW_SLOTS, CLIENT,
    HEAD_PER_PEER, HEAD_SLOTS, SERVER,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Operations per input at most (a longer input's tail is ignored).
pub const MAX_OPS: usize = 64;
/// Payload bytes per TCP segment the targets build (frames stay within [`BUF`]).
pub const SEGMENT: usize = 1400;

/// The IPv4 sequence target.
pub fn worker4(data: &[u8]) -> Result<(), String> {
    sequence(false, data)
}

/// The IPv6 sequence target.
pub fn worker6(data: &[u8]) -> Result<(), String> {
    sequence(true, data)
}

fn sequence(v6: bool, data: &[u8]) -> Result<(), String> {
    let mut r = Run::with_secret(v6, secret_of(data));
    let mut input = Input::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        r.op(&mut input)?;
    }
    r.check_tables()
}

/// One worker, the clock, the config in force, and what its responder sent each client.
pub struct Run {
    pub net: Net,
    w: Worker,
    now: u64,
    up: bool,
    /// The cookies (our ISNs) of the SYN-ACKs sent to each client tuple.
    cookies: HashMap<(Vec<u8>, u16), Vec<u32>>,
    /// The payloads of the responder's data segments, in order.
    pub answers: Vec<Vec<u8>>,
}

impl Run {
    /// A worker with the fixed cookie secret [`SECRET`].
    pub fn new(v6: bool) -> Run {
        Run::with_secret(v6, SECRET)
    }

    pub fn with_secret(v6: bool, secret: [u8; 32]) -> Run {
        let net = Net::new(v6);
        let cfg = WorkerConfig {
            macs: US,
            cookie_secret: secret,
            table_key: TABLE_KEY,
            kernel_addrs: Vec::new(),
            one_armed: false,
        };
        let w = Worker::new(cfg, snapshot(&net.up));
        Run {
            net,
            w,
            now: NOW_MS,
            up: true,
            cookies: HashMap::new(),
            answers: Vec::new(),
        }
    }

    /// One frame in (cut to the buffer); every invariant checked on what comes out.
    pub fn send(&mut self, f: &[u8], port: Port) -> Result<Option<Vec<u8>>, String> {
        let f = &f[..f.len().min(BUF)];
        let mut buf = vec![0u8; BUF];
        buf[..f.len()].copy_from_slice(f);
        let Verdict::Tx {
            port: out_port,
            len,
        } = self.w.process(&mut buf, f.len(), port, self.now)
        else {
            return Ok(None);
        };
        ensure!(len <= BUF, "Tx of {len} bytes from a {BUF}-byte buffer");
        ensure!(
            out_port == CLIENT || out_port == SERVER,
            "Tx out of {out_port:?}"
        );
        let out = buf[..len].to_vec();
        self.check(f, port, out_port, &out)?;
        Ok(Some(out))
    }

    /// The invariants on one output frame `out` (sent out of `out_port`) for `input`.
    pub fn check(
        &mut self,
        input: &[u8],
        in_port: Port,
        out_port: Port,
        out: &[u8],
    ) -> Result<(), String> {
        ensure!(out.len() >= 14, "a {}-byte frame sent", out.len());
        ensure!(
            out[6..12] == US[usize::from(out_port.0)],
            "not our source MAC"
        );
        let dst_mac: [u8; 6] = out[0..6].try_into().unwrap();
        let in_src_mac = input.get(6..12).unwrap_or(&[]);
        if be16(out, 12) == 0x0806 {
            ensure!(out_port == in_port, "an ARP reply out of the other port");
            ensure!(
                input.get(22..28) == Some(&dst_mac[..]),
                "an ARP reply not to the request's sender"
            );
            return Ok(());
        }
        let o = ip(out).ok_or("a transmitted frame that is neither IP nor ARP")?;
        ensure!(o.header_ok, "IPv4 header checksum");
        ensure!(
            matches!(o.proto, 1 | 6 | 17 | 58),
            "protocol {} sent",
            o.proto
        );
        let i = ip(input).ok_or("an IP frame out of a frame that is not IP")?;
        let input_bad = matches!(o.proto, 6 | 17) && i.proto == o.proto && !l4_ok(input, &i);
        ensure!(
            l4_ok(out, &o) || input_bad,
            "checksum of protocol {} from {:?} to {:?}",
            o.proto,
            o.src,
            o.dst
        );
        self.check_route(&i, &o, (in_port, out_port), in_src_mac, out)
    }

    /// Where an IP frame `o` (made of `out`) went for the input `i`: back to its sender, to a
    /// real, or on to a client.
    fn check_route(
        &mut self,
        i: &Ip,
        o: &Ip,
        (in_port, out_port): (Port, Port),
        in_src_mac: &[u8],
        out: &[u8],
    ) -> Result<(), String> {
        let dst_mac: [u8; 6] = out[0..6].try_into().unwrap();
        let owned = self.net.owned.contains(&o.src);
        let all_nodes = o.dst.len() == 16 && o.dst[..2] == [0xff, 2] && o.dst[15] == 1;
        if out_port == in_port && owned && (o.dst == i.src || all_nodes) {
            // An answer (responder, echo, ARP/NDP) from an owned address, back to the sender.
            if o.proto == 6 || !self.net.v6 {
                ensure!(dst_mac == in_src_mac, "an answer not to the sender's MAC");
            }
            if o.proto == 6 {
                self.check_responder(out, o)?;
            }
            return Ok(());
        }
        if out_port == SERVER {
            let Some((real, _)) = self.net.reals.iter().find(|(a, _)| *a == o.dst) else {
                return Err(format!("sent to {:?}, not a real", o.dst));
            };
            ensure!(
                dst_mac == real_mac(real),
                "to a real's address, not its MAC"
            );
            if let Some((_, own, backup)) = self.net.dips.iter().find(|(d, _, _)| *d == i.dst) {
                if matches!(o.proto, 6 | 17) {
                    let to = (o.dst.clone(), be16(out, o.l4.start + 2));
                    ensure!(
                        to == *own || Some(&to) == backup.as_ref(),
                        "a frame to DIP {:?} sent to {to:?}",
                        i.dst
                    );
                }
            }
            return Ok(());
        }
        // Out of the client port and not an answer: a real's reply (from the server port) on
        // to its client through the gateway, from a DIP (an ICMP error keeps its source).
        ensure!(
            in_port == SERVER,
            "forwarded from the client port back to it"
        );
        ensure!(dst_mac == GW, "to a client not through the gateway");
        ensure!(o.dst == i.dst, "forwarded to another address");
        ensure!(
            owned || (matches!(o.proto, 1 | 58) && o.src == i.src),
            "a reply to a client from {:?}",
            o.src
        );
        Ok(())
    }

    /// A TCP segment the responder sent a client.
    fn check_responder(&mut self, out: &[u8], o: &Ip) -> Result<(), String> {
        let t = &out[o.l4.clone()];
        ensure!(t.len() >= 20, "a TCP segment of {} bytes", t.len());
        let (dport, seq, flags) = (be16(t, 2), be32(t, 4), t[13]);
        let off = usize::from(t[12] >> 4) * 4;
        ensure!((20..=t.len()).contains(&off), "TCP data offset {off}");
        if flags == SYN | ACK {
            self.cookies
                .entry((o.dst.clone(), dport))
                .or_default()
                .push(seq);
            return Ok(());
        }
        let payload = &t[off..];
        if payload.is_empty() {
            return Ok(());
        }
        let ours = self.cookies.get(&(o.dst.clone(), dport));
        ensure!(
            ours.is_some_and(|cs| cs.contains(&seq.wrapping_sub(1))),
            "{} bytes of payload to {:?}:{dport} without a handshake",
            payload.len(),
            o.dst
        );
        if let Some(at) = find(payload, b"\r\nLocation: ") {
            let rest = &payload[at + 12..];
            let end = find(rest, b"\r\n").unwrap_or(rest.len());
            if let Some(b) = rest[..end].iter().find(|&&b| !is_uri_char(b)) {
                return Err(format!(
                    "byte {b:#04x} in Location {:?}",
                    String::from_utf8_lossy(&rest[..end])
                ));
            }
        }
        self.answers.push(payload.to_vec());
        Ok(())
    }

    /// The tables within their bounds, in all and per client.
    pub fn check_tables(&self) -> Result<(), String> {
        let [(heads, head_cap), (flows, flow_cap)] = self.w.occupancy(self.now);
        ensure!(head_cap == HEAD_SLOTS, "head table of {head_cap} slots");
        ensure!(flow_cap == BACKUP_FLOW_SLOTS, "flow table of {flow_cap}");
        ensure!(heads <= head_cap && flows <= flow_cap, "tables overfull");
        let [h, f] = self.w.most_per_client(self.now);
        ensure!(
            h <= HEAD_PER_PEER && f <= BACKUP_FLOW_PER_PEER,
            "{h} / {f} ways per client"
        );
        Ok(())
    }
}

/// The cookie secret of a sequence: a function of the whole input, so that a valid cookie
/// can only come from a SYN-ACK of this very run. A fixed secret let the fuzzer keep cookies
/// it learnt elsewhere (from a seed made with the same secret, or from the comparison in the
/// cookie check) in raw frames whose SYN was never sent, and the checker then saw payload
/// without a handshake: a stateless cookie replayed, not a responder fault. A change of any
/// byte changes the secret, so a cookie survives no mutation.
pub fn secret_of(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        // FNV-1a, 64 bits, a different offset basis per chunk.
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        chunk.copy_from_slice(&h.to_be_bytes());
    }
    out
}

/// RFC 3986's characters (unreserved, reserved, and `%` of an escape).
pub fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn snapshot(conf: &str) -> Arc<Snapshot> {
    let m = load(conf, "fuzz.conf").unwrap_or_else(|e| panic!("config refused: {e:?}"));
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        r.mac = match r.addr.ip() {
            std::net::IpAddr::V4(a) => real_mac(&a.octets()),
            std::net::IpAddr::V6(a) => real_mac(&a.octets()),
        };
    }
    Arc::new(s)
}

mod ops;
