//! ns per frame on one core for the data path's main paths, measured in process (no I/O):
//! `cargo bench -p detour-dataplane --bench frames` (`BENCH_FRAMES=<n>` frames per path,
//! `BENCH_ONLY=<part of a name>` to time only some paths, for profilers).
//!
//! Each iteration copies the input template into the frame buffer first (as a NIC would
//! write it), so the figures include one ~64-1500 byte copy.

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Port, Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use etherparse::{PacketBuilder, TcpOptionElement};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const CONF: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3 real 198.18.1.3:8080
url a http://a.lab/%d
url b http://b.lab/%d
link a 198.18.0.2
link b 198.18.0.3
bind 198.18.0.1 a b
dip [2001:db8::2]:80 real [2001:db8:1::2]:8080
";
const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
const NOW: u64 = 1_700_000_000_000;

fn worker() -> Worker {
    let m = load(CONF, "bench").unwrap();
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = CMAC;
    for r in &mut s.reals {
        r.mac = [2, 0, 0, 0, 0, 0x20];
    }
    let cfg = WorkerConfig {
        macs: US,
        cookie_secret: [3; 32],
        table_key: [4; 16],
        one_armed: false,
        kernel_addrs: vec![],
    };
    Worker::new(cfg, Arc::new(s))
}

#[allow(clippy::too_many_arguments)]
fn frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CMAC, US[0])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = if syn {
        b.options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap()
    } else {
        b
    };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn bench(name: &str, w: &mut Worker, input: &[u8], port: Port, n: u64) {
    let mut buf = [0u8; 2048];
    // Warm up and check the path does what it says.
    buf[..input.len()].copy_from_slice(input);
    let v = w.process(&mut buf, input.len(), port, NOW);
    assert!(
        matches!(v, Verdict::Tx { .. }),
        "{name}: {v:?} {:?}",
        w.counters()
    );
    // `BENCH_ONLY=<part of a name>` times only the matching paths (for profilers).
    if std::env::var("BENCH_ONLY").is_ok_and(|o| !name.contains(o.as_str())) {
        return;
    }
    let t = Instant::now();
    for _ in 0..n {
        buf[..input.len()].copy_from_slice(input);
        black_box(w.process(black_box(&mut buf), input.len(), port, NOW));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{name:<44} {ns:>8.1} ns/frame  ({:.2} Mpps on one core)",
        1e3 / ns
    );
}

fn main() {
    let n: u64 = std::env::var("BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let mut w = worker();
    let fwd = frame(
        [198, 18, 0, 100],
        [198, 18, 0, 2],
        40000,
        80,
        1,
        Some(1),
        false,
        &[0; 6],
    );
    bench("forward client->DIP (64-byte TCP)", &mut w, &fwd, CLIENT, n);
    let rev = {
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x20], US[1])
            .ipv4([198, 18, 1, 2], [198, 18, 0, 100], 64)
            .tcp(8080, 40000, 1, 64240)
            .ack(1);
        b = b.psh();
        let mut out = Vec::new();
        b.write(&mut out, &[0; 6]).unwrap();
        out
    };
    bench("reply real->client (64-byte TCP)", &mut w, &rev, SERVER, n);
    let c6: [u8; 16] = "2001:db8:0:5::100"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let dip6: [u8; 16] = "2001:db8::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let real6: [u8; 16] = "2001:db8:1::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let fwd6 = {
        let b = PacketBuilder::ethernet2(CMAC, US[0])
            .ipv6(c6, dip6, 64)
            .tcp(40000, 80, 1, 64240)
            .ack(1)
            .psh();
        let mut out = Vec::new();
        b.write(&mut out, &[0; 6]).unwrap();
        out
    };
    bench("forward client->DIP (IPv6 TCP)", &mut w, &fwd6, CLIENT, n);
    let rev6 = {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x20], US[1])
            .ipv6(real6, c6, 64)
            .tcp(8080, 40000, 1, 64240)
            .ack(1)
            .psh();
        let mut out = Vec::new();
        b.write(&mut out, &[0; 6]).unwrap();
        out
    };
    bench("reply real->client (IPv6 TCP)", &mut w, &rev6, SERVER, n);
    let syn = frame(
        [198, 18, 0, 100],
        [198, 18, 0, 1],
        40001,
        80,
        1000,
        None,
        true,
        b"",
    );
    bench("SYN to VIP -> SYN-ACK with cookie", &mut w, &syn, CLIENT, n);
    // Learn the cookie for this tuple, then time the request -> redirect path.
    let mut buf = [0u8; 2048];
    buf[..syn.len()].copy_from_slice(&syn);
    w.process(&mut buf, syn.len(), CLIENT, NOW);
    let cookie = u32::from_be_bytes([buf[38], buf[39], buf[40], buf[41]]);
    let req = frame(
        [198, 18, 0, 100],
        [198, 18, 0, 1],
        40001,
        80,
        1001,
        Some(cookie.wrapping_add(1)),
        false,
        b"GET /index.html HTTP/1.1\r\nHost: www.acme.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    );
    bench("request to VIP -> 302 + FIN", &mut w, &req, CLIENT, n / 4);
    println!("redirects counted: {}", w.counters().redirects);
}
