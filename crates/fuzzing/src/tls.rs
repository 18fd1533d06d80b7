//! Target `tls`: segments of bytes (ClientHellos, records, anything) fed to the server side of
//! `detour_tls::Table` on a few connections, with the clock, the handshake budget, the timers
//! and removals interleaved. Invariants: no panic; the table never holds more than its
//! capacity; a segment it sends carries at most the MSS; a head reported complete can be read
//! and answered; the head it hands out is at most `MAX_HEAD` bytes.
//!
//! Input: operations, the first byte of each modulo 6: 0 a segment (key, flags: bit 0 open,
//! bit 1 FIN, bit 2 RST, bit 3 a sequence number of its own, bit 4 an ACK of its own; then a
//! 16-bit length and the payload), 1 a batch with a budget of handshakes, 2 the clock moves
//! on, 3 the timers, 4 expiry, 5 a removal.

use crate::input::Input;
use detour_tls::{CertSource, Incoming, Limits, Outcome, Segment, Table, TlsConfig, MAX_HEAD};
use std::sync::OnceLock;

/// Operations per input at most.
const MAX_OPS: usize = 32;
const MSS: usize = 1460;
const KEYS: usize = 3;
const LIMITS: Limits = Limits {
    capacity: 2,
    lifetime_ms: 10_000,
    rto_ms: 400,
    max_retries: 4,
};
const REDIRECT: &[u8] =
    b"HTTP/1.1 302 Found\r\nLocation: http://198.18.1.10/x\r\nContent-Length: 0\r\n\r\n";

/// The test CA's certificates of `crates/tls/tests/data`, built once.
pub fn tls_config() -> &'static TlsConfig {
    static CFG: OnceLock<TlsConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let src = |name: &str, cert: &[u8], key: &[u8]| CertSource {
            name: name.into(),
            cert_pem: cert.to_vec(),
            key_pem: key.to_vec(),
        };
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../tls/tests/data/");
        let read = |f: &str| std::fs::read(format!("{data}{f}")).expect("test certificate");
        let certs = [
            src(
                "www.example",
                &read("www.example.pem"),
                &read("www.example.key"),
            ),
            src(
                "*",
                &read("default.example.pem"),
                &read("default.example.key"),
            ),
        ];
        TlsConfig::build(&certs, b"fuzz ticket secret").expect("the test certificates")
    })
}

/// Both sides' next sequence numbers on one connection.
#[derive(Clone, Copy)]
struct Link {
    cseq: u32,
    sseq: u32,
}

pub fn tls(data: &[u8]) -> Result<(), String> {
    let cfg = tls_config();
    let mut t: Table<u32> = Table::new(LIMITS);
    t.begin_batch(4);
    let mut links = [Link {
        cseq: 0xffff_fff0,
        sseq: 0x7fff_fffa,
    }; KEYS];
    let mut now = 1_000u64;
    let mut input = Input::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 6 {
            0 => {
                let key = input.below(KEYS);
                let bits = input.u8();
                let own_seq = if bits & 8 != 0 {
                    Some(input.u32())
                } else {
                    None
                };
                let own_ack = if bits & 16 != 0 {
                    Some(input.u32())
                } else {
                    None
                };
                let len = usize::from(input.u16()) % (MSS + 1);
                let payload = input.bytes(len);
                let l = &mut links[key];
                let seg = Incoming {
                    seq: own_seq.unwrap_or(l.cseq),
                    ack: Some(own_ack.unwrap_or(l.sseq)),
                    payload,
                    fin: bits & 2 != 0,
                    rst: bits & 4 != 0,
                    mss: MSS as u16,
                };
                if own_seq.is_none() {
                    l.cseq = l
                        .cseq
                        .wrapping_add(payload.len() as u32 + u32::from(seg.fin));
                }
                let open = (bits & 1 != 0).then_some(cfg);
                let o = t.on_segment(key as u32, seg, now, open);
                let mut out = Vec::new();
                if let Outcome::Handled { request, ack } = o {
                    if request {
                        let head = t
                            .request_head(&(key as u32))
                            .ok_or("a complete head that cannot be read")?;
                        ensure!(head.len() <= MAX_HEAD, "a head of {} bytes", head.len());
                        t.answer(&(key as u32), REDIRECT);
                    }
                    t.emit(&(key as u32), MSS, 4, ack, now, |s| out.push(own(s)));
                }
                absorb(&mut links[key], &out)?;
            }
            1 => t.begin_batch(u32::from(input.u8() % 4)),
            2 => now += u64::from(input.u16()),
            3 => {
                let mut out = Vec::new();
                t.poll_timers(now, MSS, |k, s| out.push((*k, own(s))));
                for (k, s) in out {
                    absorb(&mut links[k as usize % KEYS], &[s])?;
                }
            }
            4 => t.expire(now),
            _ => {
                t.remove(&(input.below(KEYS) as u32));
            }
        }
        ensure!(t.len() <= LIMITS.capacity, "{} entries", t.len());
    }
    Ok(())
}

/// A segment the table sent, owned: (seq, payload length, FIN).
type Out = (u32, usize, bool);

fn own(s: Segment<'_>) -> Out {
    (s.seq, s.payload.len(), s.fin)
}

/// The client takes the in-order bytes; no segment is over the MSS.
fn absorb(l: &mut Link, out: &[Out]) -> Result<(), String> {
    for &(seq, len, fin) in out {
        ensure!(len <= MSS, "a segment of {len} bytes");
        if seq == l.sseq {
            l.sseq = l.sseq.wrapping_add(len as u32 + u32::from(fin));
        }
    }
    Ok(())
}
