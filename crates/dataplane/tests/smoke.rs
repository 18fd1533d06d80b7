//! A first conversation with the responder and the NAT, frame by frame.

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::sync::Arc;

const CONF: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
";
const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const RMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x20];
const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];

fn worker() -> Worker {
    let m = load(CONF, "t").unwrap();
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = CMAC;
    for r in &mut s.reals {
        r.mac = RMAC;
    }
    Worker::new(
        WorkerConfig {
            macs: US,
            cookie_secret: [9; 32],
            table_key: [5; 16],
            one_armed: false,
            kernel_addrs: vec![],
        },
        Arc::new(s),
    )
}

fn tcp(
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    dst: [u8; 4],
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CMAC, US[0])
        .ipv4([198, 18, 0, 100], dst, 64)
        .tcp(40000, dport, seq, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if fin {
        b = b.fin();
    }
    let b = if syn {
        b.options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap()
    } else {
        b
    };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn run(w: &mut Worker, frame: &[u8], port: detour_dataplane::Port) -> (Verdict, Vec<u8>) {
    let mut buf = [0u8; 2048];
    buf[..frame.len()].copy_from_slice(frame);
    let v = w.process(&mut buf, frame.len(), port, 1_000_000);
    let len = match v {
        Verdict::Tx { len, .. } => len,
        _ => 0,
    };
    (v, buf[..len].to_vec())
}

#[test]
fn syn_then_request_gets_a_302_and_fin() {
    let mut w = worker();
    let (v, out) = run(
        &mut w,
        &tcp(1000, None, true, false, [198, 18, 0, 1], 80, b""),
        CLIENT,
    );
    assert_eq!(
        v,
        Verdict::Tx {
            port: CLIENT,
            len: out.len()
        }
    );
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert!(t.syn() && t.ack());
    assert_eq!(t.acknowledgment_number(), 1001);
    let cookie = t.sequence_number();
    let req = b"GET /a/b?x=1 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";
    let (v, out) = run(
        &mut w,
        &tcp(
            1001,
            Some(cookie.wrapping_add(1)),
            false,
            false,
            [198, 18, 0, 1],
            80,
            req,
        ),
        CLIENT,
    );
    assert!(
        matches!(v, Verdict::Tx { port: CLIENT, .. }),
        "{v:?} {:?}",
        w.counters()
    );
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport.clone() else {
        panic!()
    };
    assert!(t.fin() && t.ack());
    assert_eq!(t.sequence_number(), cookie.wrapping_add(1));
    assert_eq!(t.acknowledgment_number(), 1001 + req.len() as u32);
    let text = std::str::from_utf8(t.payload()).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 302 Found\r\nLocation: http://nat.lab/a/b?x=1\r\n"),
        "{text}"
    );
    // A wrong cookie of the current slot is dropped (it may be a later segment) ...
    let (v, _) = run(
        &mut w,
        &tcp(
            1001,
            Some(cookie.wrapping_add(2)),
            false,
            false,
            [198, 18, 0, 1],
            80,
            req,
        ),
        CLIENT,
    );
    assert_eq!(v, Verdict::Drop(detour_dataplane::Reason::Unchecked));
    // ... and a stale one gets a RST, never a response.
    let (v, out) = run(
        &mut w,
        &tcp(
            1001,
            Some(cookie.wrapping_add(1).wrapping_add(8 << 27)),
            false,
            false,
            [198, 18, 0, 1],
            80,
            req,
        ),
        CLIENT,
    );
    assert!(matches!(v, Verdict::Tx { .. }));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert!(t.rst() && t.payload().is_empty());
}

#[test]
fn dip_traffic_is_forwarded_and_comes_back() {
    let mut w = worker();
    let f = tcp(5, None, true, false, [198, 18, 0, 2], 80, b"");
    let (v, out) = run(&mut w, &f, CLIENT);
    assert_eq!(
        v,
        Verdict::Tx {
            port: SERVER,
            len: f.len()
        }
    );
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(ip.header().destination(), [198, 18, 1, 2]);
    assert_eq!(ip.header().ttl(), 63);
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    assert_eq!(t.destination_port(), 8080);
}

#[test]
fn per_real_counters_count_both_directions_and_follow_the_real_across_snapshots() {
    let mut w = worker();
    let (v, _) = run(
        &mut w,
        &tcp(5, None, true, false, [198, 18, 0, 2], 80, b""),
        CLIENT,
    );
    assert!(matches!(v, Verdict::Tx { port: SERVER, .. }));
    let (_, _) = run(
        &mut w,
        &tcp(6, Some(1), false, true, [198, 18, 0, 2], 80, b""),
        CLIENT,
    );
    let rc = w.real_counters()[0];
    assert_eq!((rc.to_real, rc.opened, rc.closed), (2, 1, 1));
    // A new snapshot with another real first: the counts stay with 198.18.1.2:8080.
    let m = load(&format!("dip 198.18.0.9 real 198.18.1.9:80\n{CONF}"), "t").unwrap();
    let mut s = Snapshot::compile(&m, 2);
    s.gateway_mac = CMAC;
    for r in &mut s.reals {
        r.mac = RMAC;
    }
    w.install(Arc::new(s));
    assert_eq!(w.real_counters()[0], Default::default());
    assert_eq!(w.real_counters()[1].to_real, 2);
}

#[test]
fn a_worker_moves_its_counters_by_the_control_planes_carry_without_searching() {
    let mut w = worker();
    run(
        &mut w,
        &tcp(5, None, true, false, [198, 18, 0, 2], 80, b""),
        CLIENT,
    );
    assert_eq!(w.real_counters()[0].to_real, 1);
    let m = load(&format!("dip 198.18.0.9 real 198.18.1.9:80\n{CONF}"), "t").unwrap();
    let mut s = Snapshot::compile(&m, 2);
    s.gateway_mac = CMAC;
    for r in &mut s.reals {
        r.mac = RMAC;
    }
    // The control plane's carry says where each object was; the worker follows it as given
    // (here deliberately not the by-address answer, to see that nothing is searched).
    let mut carry = detour_config::Carry::between(w.snapshot(), &s);
    assert_eq!(carry.reals, vec![None, Some(0)], "by address");
    carry.reals = vec![Some(0), None];
    s.carry = carry;
    w.install(Arc::new(s));
    assert_eq!(w.real_counters()[0].to_real, 1, "followed the carry");
    assert_eq!(w.real_counters()[1], Default::default());
}
