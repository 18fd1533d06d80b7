//! The worker's timers and handshake budget over a real TLS 1.3 handshake (a rustls client
//! on the other side of the frames): ClientHellos past a batch's budget wait for its second
//! pass, which has a budget of its own unless the batch came in full; a server flight lost on the way is sent again by [`Worker::tick`] alone,
//! byte for byte, with a doubling timeout, in frames of its own (addressed and checksummed
//! like any reply), and a client that never answers has its entry reset, freed and counted;
//! a flight that is acknowledged is never sent again.

mod frames;

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Originate, Verdict, Worker, WorkerConfig, CLIENT};
use detour_tls::{CertSource, TlsConfig};
use frames::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::sync::Arc;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tls/tests/data");

fn tls_worker() -> Worker {
    let conf = format!("{BASE}virtual 198.18.0.1:443 tls\nbind 198.18.0.1:443 nat\n");
    let m = load(&conf, "test.conf").unwrap();
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        if let std::net::IpAddr::V4(a) = r.addr.ip() {
            r.mac = real_mac(a.octets());
        }
    }
    let read = |f: &str| std::fs::read(format!("{DATA}/{f}")).unwrap();
    let src = CertSource {
        name: "www.example".into(),
        cert_pem: read("www.example.pem"),
        key_pem: read("www.example.key"),
    };
    s.tls = Some(Arc::new(
        TlsConfig::build(&[src], b"ticket secret").unwrap(),
    ));
    Worker::new(
        WorkerConfig {
            macs: US,
            cookie_secret: SECRET,
            table_key: TABLE_KEY,
            one_armed: false,
            kernel_addrs: vec![],
        },
        Arc::new(s),
    )
}

fn client() -> ClientConnection {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&std::fs::read(format!("{DATA}/ca.pem")).unwrap()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    ClientConnection::new(Arc::new(cfg), ServerName::try_from("www.example").unwrap()).unwrap()
}

/// The runtime's side of [`Worker::tick`]: every frame the timers originate, with its port.
#[derive(Default)]
struct Wire(Vec<(Verdict, Vec<u8>)>);

impl Originate for Wire {
    fn originate(&mut self, write: impl FnOnce(&mut [u8]) -> Verdict) -> bool {
        let mut buf = vec![0u8; BUF];
        let v = write(&mut buf);
        if let Verdict::Tx { len, .. } = v {
            self.0.push((v, buf[..len].to_vec()));
            return true;
        }
        false
    }
}

/// A TCP handshake with the VIP's TLS port; the segment that carries the client's
/// ClientHello next (not yet sent to the worker).
fn hello_segment(w: &mut Worker, c: &mut ClientConnection, sport: u16) -> Seg {
    let mut syn = Seg::from_client(VIP, 443).syn();
    syn.sport = sport;
    let (v, out) = run(w, &syn.tcp(), CLIENT);
    assert!(matches!(v, Verdict::Tx { .. }), "{v:?}");
    let synack = tcp_view(&out).unwrap();
    let mut ch = Vec::new();
    c.write_tls(&mut ch).unwrap();
    let mut seg = Seg::from_client(VIP, 443)
        .with_seq(syn.seq + 1)
        .with_ack(synack.seq.wrapping_add(1))
        .with_payload(&ch);
    seg.sport = sport;
    seg.psh = true;
    seg
}

/// A TCP handshake with the VIP's TLS port, then the client's ClientHello. Returns the
/// ClientHello segment and the worker's answer (the first segment of its flight).
fn hello(w: &mut Worker, c: &mut ClientConnection, sport: u16) -> (Seg, TcpView) {
    let seg = hello_segment(w, c, sport);
    let (v, out) = run(w, &seg.tcp(), CLIENT);
    assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{v:?}");
    let first = tcp_view(&out).unwrap();
    assert!(!first.payload.is_empty(), "the flight's first segment");
    (seg, first)
}

/// Tick every 10 ms over `[from, to)`; the frames sent, with the time each was sent at.
fn ticks(w: &mut Worker, from: u64, to: u64) -> Vec<(u64, Verdict, Vec<u8>)> {
    let mut sent = Vec::new();
    for t in (from..to).step_by(10) {
        let mut wire = Wire::default();
        w.tick(t, &mut wire);
        sent.extend(wire.0.into_iter().map(|(v, f)| (t, v, f)));
    }
    sent
}

#[test]
fn a_lost_server_flight_is_sent_again_by_the_timer_then_the_entry_is_freed_and_counted() {
    let mut w = tls_worker();
    let mut c = client();
    let (seg, first) = hello(&mut w, &mut c, 40001);
    // The first segment is lost on the way; the client hears nothing more.
    let sent = ticks(&mut w, NOW_MS, NOW_MS + 12_000);
    let at = |t: u64| sent.iter().filter(|s| s.0 == t).collect::<Vec<_>>();
    // Nothing before the first timeout (400 ms); then go-back-N from the first byte, the
    // timeout doubling: 400, 800, 1600 ms; after 3 retries, the next timeout resets.
    let times: Vec<u64> = sent.iter().map(|s| s.0 - NOW_MS).collect();
    let mut distinct = times.clone();
    distinct.dedup();
    assert_eq!(distinct, [400, 1200, 2800, 6000], "{times:?}");
    let flight = |t: u64| -> (Vec<TcpView>, Vec<u8>) {
        let segs: Vec<TcpView> = at(t)
            .iter()
            .map(|(_, v, f)| {
                assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{v:?}");
                // Addressed as a reply: our MAC on the client port to the gateway, checksums good.
                assert_eq!((&f[0..6], &f[6..12]), (&GW[..], &US[0][..]));
                assert!(ip_header_valid(f));
                assert_eq!(recomputed_l4_checksum(f), l4_checksum_field(f));
                tcp_view(f).unwrap()
            })
            .collect();
        let bytes = segs.iter().flat_map(|s| s.payload.clone()).collect();
        (segs, bytes)
    };
    let (segs, bytes) = flight(NOW_MS + 400);
    assert_eq!(
        segs[0].seq, first.seq,
        "from the oldest unacknowledged byte"
    );
    assert!(
        bytes.starts_with(&first.payload),
        "the lost segment, byte for byte"
    );
    for s in &segs {
        assert_eq!(
            (s.src, s.dst, s.sport, s.dport, s.ack),
            (VIP, CLIENT_IP, 443, 40001, seg.next_seq())
        );
        assert_eq!(s.flags & (ACK | RST | FIN), ACK);
    }
    // Each retransmission is the same flight.
    for t in [1200, 2800] {
        assert_eq!(flight(NOW_MS + t).1, bytes, "retransmission at {t} ms");
    }
    // The flight is the server's whole first flight: the client completes its handshake on it.
    c.read_tls(&mut &bytes[..]).unwrap();
    c.process_new_packets().unwrap();
    assert!(!c.is_handshaking(), "the client finished its handshake");
    // Retries run out: a RST, the entry freed and counted.
    let end = at(NOW_MS + 6_000);
    assert_eq!(end.len(), 1);
    let rst = tcp_view(&end[0].2).unwrap();
    assert_eq!(rst.flags & RST, RST);
    let cn = w.counters();
    assert_eq!((cn.tls_retransmits, cn.tls_timed_out), (3, 1));
    assert!(ticks(&mut w, NOW_MS + 12_000, NOW_MS + 20_000).is_empty());
}

#[test]
fn an_acknowledged_flight_is_never_sent_again() {
    let mut w = tls_worker();
    let mut c = client();
    let (seg, first) = hello(&mut w, &mut c, 40002);
    // The client acknowledges the first segment; the worker sends the next one (if any).
    let mut ack = seg.clone().with_seq(seg.next_seq()).with_payload(&[]);
    ack.ack = Some(first.seq.wrapping_add(first.payload.len() as u32));
    ack.psh = false;
    let mut flight = first.payload.clone();
    let mut next = run(&mut w, &ack.tcp(), CLIENT);
    while let (Verdict::Tx { .. }, f) = &next {
        let s = tcp_view(f).unwrap();
        if s.payload.is_empty() {
            break;
        }
        flight.extend_from_slice(&s.payload);
        ack.ack = Some(s.seq.wrapping_add(s.payload.len() as u32));
        next = run(&mut w, &ack.tcp(), CLIENT);
    }
    c.read_tls(&mut &flight[..]).unwrap();
    c.process_new_packets().unwrap();
    assert!(!c.is_handshaking());
    // Everything acknowledged: no timer sends anything until the lifetime's RST.
    let sent = ticks(&mut w, NOW_MS, NOW_MS + 5_000);
    assert!(sent.is_empty(), "{} frames", sent.len());
    assert_eq!(w.counters().tls_retransmits, 0);
    // The client's Finished and request: answered (and counted) over TLS.
    use std::io::Write as _;
    c.writer()
        .write_all(b"GET /x HTTP/1.1\r\nHost: www.example\r\n\r\n")
        .unwrap();
    let mut bytes = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut bytes).unwrap();
    }
    let req = ack.clone().with_payload(&bytes);
    let (v, out) = run_cap(&mut w, &req.tcp(), CLIENT, BUF, NOW_MS + 5_000);
    assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{v:?}");
    assert!(!tcp_view(&out).unwrap().payload.is_empty());
    let cn = w.counters();
    assert_eq!(
        (cn.tls_handshakes, cn.tls_answered, cn.redirects),
        (1, 1, 1)
    );
}

#[test]
fn hellos_past_the_budget_get_a_second_budget_in_the_second_pass_unless_the_batch_is_full() {
    for full in [false, true] {
        let mut w = tls_worker(); // tls-handshakes-per-batch: the default, 1
        let segs: Vec<Vec<u8>> = (0..3)
            .map(|i| hello_segment(&mut w, &mut client(), 40100 + i).tcp())
            .collect();
        w.begin_batch();
        let mut bufs: Vec<Vec<u8>> = segs
            .iter()
            .map(|f| {
                let mut b = vec![0u8; BUF];
                b[..f.len()].copy_from_slice(f);
                b
            })
            .collect();
        // The first pass makes one handshake and leaves the other two, counting nothing.
        let first: Vec<Option<Verdict>> = bufs
            .iter_mut()
            .zip(&segs)
            .map(|(b, f)| w.process_first(b, f.len(), CLIENT, NOW_MS))
            .collect();
        assert!(
            matches!(first[0], Some(Verdict::Tx { port: CLIENT, .. })),
            "{first:?}"
        );
        assert!(first[1].is_none() && first[2].is_none(), "{first:?}");
        assert_eq!(
            w.counters().dropped(detour_dataplane::Reason::TlsDeferred),
            0
        );
        // The second pass: a batch that is not full makes one more (its second budget) and
        // defers the third; a full batch (behind) makes none.
        let second: Vec<Verdict> = bufs
            .iter_mut()
            .zip(&segs)
            .skip(1)
            .map(|(b, f)| w.process_deferred(b, f.len(), CLIENT, NOW_MS, full))
            .collect();
        let deferred = Verdict::Drop(detour_dataplane::Reason::TlsDeferred);
        if full {
            assert_eq!(second, [deferred, deferred]);
        } else {
            let Verdict::Tx { port: CLIENT, len } = second[0] else {
                panic!("{second:?}")
            };
            assert!(
                !tcp_view(&bufs[1][..len]).unwrap().payload.is_empty(),
                "a flight"
            );
            assert_eq!(second[1], deferred);
        }
        let deferred = w.counters().dropped(detour_dataplane::Reason::TlsDeferred);
        assert_eq!(deferred, if full { 2 } else { 1 }, "full {full}");
    }
}
