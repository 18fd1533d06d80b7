//! What the regression tests of issue 10's probe findings share: [`Probe`], which runs frames
//! through one worker and checks its counters against what the verdicts imply, and frame
//! builders written independently of the data path.
#![allow(dead_code)]

use crate::frames::*;
use detour_config::{model::load, Snapshot};
use detour_dataplane::{Port, Reason, Verdict, Worker, WorkerConfig, CLIENT};
use std::sync::Arc;

/// Runs frames through one worker and counts what their verdicts imply.
pub struct Probe {
    pub w: Worker,
    implied: Vec<(String, u64)>,
}

impl Probe {
    pub fn new(w: Worker) -> Probe {
        Probe {
            w,
            implied: Vec::new(),
        }
    }

    fn bump(&mut self, name: &str) {
        match self.implied.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 += 1,
            None => self.implied.push((name.to_string(), 1)),
        }
    }

    pub fn send_at(&mut self, f: &[u8], port: Port, at: u64) -> (Verdict, Vec<u8>) {
        let (v, out) = run_cap(&mut self.w, f, port, BUF, at);
        self.bump("rx");
        match v {
            Verdict::Tx { .. } => self.bump("tx"),
            Verdict::Pass => self.bump("pass"),
            Verdict::Drop(r) => self.bump(&format!("drop:{}", r.name())),
        }
        (v, out)
    }

    /// `f` arrives on `port`; `expected` must leave out of `out_port`, byte for byte.
    pub fn tx(&mut self, what: &str, f: &[u8], port: Port, out_port: Port, expected: &[u8]) {
        self.tx_at(what, f, port, out_port, expected, NOW_MS)
    }

    pub fn tx_at(&mut self, what: &str, f: &[u8], port: Port, out: Port, expected: &[u8], at: u64) {
        let (v, got) = self.send_at(f, port, at);
        assert!(
            matches!(v, Verdict::Tx { port: p, .. } if p == out),
            "{what}: expected Tx out of {out:?}, got {v:?}; counters {:?}",
            self.w.counters()
        );
        assert_frame(what, expected, &got);
    }

    /// `f` arrives on `port` and must be dropped for `r`.
    pub fn drop(&mut self, what: &str, f: &[u8], port: Port, r: Reason) {
        self.drop_at(what, f, port, r, NOW_MS)
    }

    pub fn drop_at(&mut self, what: &str, f: &[u8], port: Port, r: Reason, at: u64) {
        let (v, _) = self.send_at(f, port, at);
        assert_eq!(v, Verdict::Drop(r), "{what}");
    }

    /// The cookie of the SYN-ACK answering `syn` (checked to be one).
    pub fn handshake(&mut self, syn: &Seg) -> u32 {
        let (v, out) = self.send_at(&syn.tcp(), CLIENT, NOW_MS);
        assert!(
            matches!(v, Verdict::Tx { port: CLIENT, .. }),
            "SYN got {v:?}"
        );
        let t = tcp_view(&out).expect("a SYN-ACK");
        assert_eq!(t.flags, SYN | ACK);
        t.seq
    }

    /// The counters named have these values; every other one is zero or what the verdicts
    /// imply.
    pub fn counters(&self, named: &[(&str, u64)]) {
        let c = self.w.counters();
        let mut wrong = Vec::new();
        let names = c
            .fields()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .chain(
                Reason::ALL
                    .iter()
                    .map(|r| (format!("drop:{}", r.name()), c.dropped(*r))),
            );
        for (n, got) in names {
            let want = named
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, v)| *v)
                .or_else(|| self.implied.iter().find(|(m, _)| *m == n).map(|e| e.1))
                .unwrap_or(0);
            if got != want {
                wrong.push(format!("{n}: expected {want}, got {got}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "counters differ:\n  {}",
            wrong.join("\n  ")
        );
    }
}

pub fn snapshot(conf: &str) -> Arc<Snapshot> {
    let m = load(conf, "test.conf").unwrap_or_else(|e| panic!("config refused: {e:?}"));
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        if let std::net::IpAddr::V4(a) = r.addr.ip() {
            r.mac = real_mac(a.octets());
        }
    }
    Arc::new(s)
}

pub fn config(one_armed: bool, kernel: &[[u8; 4]]) -> WorkerConfig {
    WorkerConfig {
        macs: US,
        cookie_secret: SECRET,
        table_key: TABLE_KEY,
        kernel_addrs: kernel.iter().map(|&a| a.into()).collect(),
        one_armed,
    }
}

pub const REQ: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";
pub const LOCATION: &str = "http://nat.lab/a/b?x=1";
/// A request head in two segments.
pub const PART1: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHo";
pub const PART2: &[u8] = b"st: www.acme.com\r\n\r\n";
/// A client of the attacker's (not the victim, `CLIENT_IP`).
pub const ATTACKER: [u8; 4] = [198, 19, 7, 7];

/// The data segment after the handshake of `syn`, `off` bytes into the stream.
pub fn data(syn: &Seg, cookie: u32, off: u32, payload: &[u8]) -> Seg {
    let mut s = syn.clone();
    s.syn = false;
    s.mss = None;
    s.psh = true;
    s.seq = syn.seq.wrapping_add(1).wrapping_add(off);
    s.ack = Some(cookie.wrapping_add(1));
    s.payload = payload.to_vec();
    s
}

/// The responder's answer to `seg`: seq cookie+1, acking all of it, with `body` and FIN if
/// any body, else a pure ACK.
pub fn answer(seg: &Seg, cookie: u32, body: &[u8]) -> Vec<u8> {
    let mut a = seg.answer(CLIENT);
    a.seq = cookie.wrapping_add(1);
    a.ack = Some(seg.next_seq());
    if !body.is_empty() {
        a.fin = true;
        a.psh = true;
        a.payload = body.to_vec();
    }
    a.tcp()
}

pub fn redirect() -> Vec<u8> {
    redirect_response(302, "Found", LOCATION, false)
}

/// `f` with its TCP flags byte set to `flags` and its TCP checksum recomputed by hand.
pub fn with_flags(mut f: Vec<u8>, flags: u8) -> Vec<u8> {
    f[14 + 20 + 13] = flags;
    let c = recomputed_l4_checksum(&f);
    f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// `f` with its TCP checksum off by one bit.
pub fn bad_tcp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    f[14 + 20 + 17] ^= 1;
    f
}

/// The set the tables used before the fix (an unkeyed multiply-xorshift of the 4-tuple),
/// to aim frames at the set of a victim's entry as the probes did.
pub fn old_set(a: [u8; 4], a_port: u16, b: [u8; 4], b_port: u16, sets: u64) -> u64 {
    let (a, b) = (
        u64::from(u32::from_be_bytes(a)),
        u64::from(u32::from_be_bytes(b)),
    );
    let x = (a << 32 | b)
        ^ (u64::from(a_port) << 16 | u64::from(b_port)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 29)) & (sets - 1)
}
