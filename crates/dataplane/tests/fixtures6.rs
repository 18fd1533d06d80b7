//! Golden fixtures for every IPv6 path of the data plane: responder (SYN cookie, request,
//! redirect with FIN), DIP NAT both ways, hop limit, neighbour discovery, echo, ICMPv6 errors
//! translated for forwarded flows (packet too big), fragments and martian sources dropped and
//! counted, and what stays the kernel's (router advertisements, solicitations for others).
//!
//! Expected frames are built independently of the data plane: etherparse's `PacketBuilder`
//! computes their checksums; neighbour discovery and the quoted packets of ICMPv6 errors are
//! written by hand and summed with the plain RFC 1071 sum of `frames`. Where an output carries
//! a SYN cookie, the cookie is read from the output and the expected frame built with it.

mod frames;

use detour_dataplane::{Reason, Verdict, Worker, CLIENT, SERVER};
use etherparse::{IcmpEchoHeader, Icmpv6Type, PacketBuilder, TcpHeader, TcpOptionElement};
use frames::*;

/// 2001:db8::100.
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const VIP6: [u8; 16] = v6(0, 1);
const DIP6: [u8; 16] = v6(0, 2);
const REAL6: [u8; 16] = v6(1, 2);
const ROUTER6: [u8; 16] = v6(1, 0xfe);

/// `2001:db8:<net>::<host>`.
const fn v6(net: u8, host: u8) -> [u8; 16] {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
    ]
}

const CONF6: &str = "\
virtual [2001:db8::1]:80
dip [2001:db8::2]:80 real [2001:db8:1::2]:8080
url u http://%h/%d
bind [2001:db8::1]:80 u
";

const REQ: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nUser-Agent: fixture\r\n\r\n";

/// A TCP segment in an Ethernet/IPv6 frame.
#[derive(Clone)]
struct Seg6 {
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 16],
    dst: [u8; 16],
    hop: u8,
    ports: (u16, u16),
    seq: u32,
    ack: Option<u32>,
    flags: &'static str,
    mss: Option<u16>,
    payload: Vec<u8>,
}

impl Seg6 {
    fn from_client(dst: [u8; 16]) -> Seg6 {
        Seg6 {
            macs: (GW, US[0]),
            src: CLIENT6,
            dst,
            hop: 64,
            ports: (40000, 80),
            seq: 1000,
            ack: None,
            flags: "",
            mss: None,
            payload: Vec::new(),
        }
    }

    /// The frame; checksums by etherparse. `flags` letters: S, F, R, P.
    fn frame(&self) -> Vec<u8> {
        let mut t = TcpHeader::new(self.ports.0, self.ports.1, self.seq, 65535);
        t.window_size = if self.flags.contains('R') {
            0
        } else {
            t.window_size
        };
        t.syn = self.flags.contains('S');
        t.fin = self.flags.contains('F');
        t.rst = self.flags.contains('R');
        t.psh = self.flags.contains('P');
        if let Some(a) = self.ack {
            t.ack = true;
            t.acknowledgment_number = a;
        }
        if let Some(m) = self.mss {
            t.set_options(&[TcpOptionElement::MaximumSegmentSize(m)])
                .unwrap();
        }
        let mut out = Vec::new();
        PacketBuilder::ethernet2(self.macs.0, self.macs.1)
            .ipv6(self.src, self.dst, self.hop)
            .tcp_header(t)
            .write(&mut out, &self.payload)
            .unwrap();
        out
    }

    /// What the responder sends back: our MAC on the client port, hop limit 64.
    fn answer(&self, seq: u32, ack: u32, flags: &'static str) -> Seg6 {
        Seg6 {
            macs: (US[0], self.macs.0),
            src: self.dst,
            dst: self.src,
            hop: 64,
            ports: (self.ports.1, self.ports.0),
            seq,
            ack: Some(ack),
            flags,
            mss: None,
            payload: Vec::new(),
        }
    }
}

fn tx(w: &mut Worker, frame: &[u8], port: detour_dataplane::Port) -> Vec<u8> {
    let (v, out) = run(w, frame, port);
    assert!(
        matches!(v, Verdict::Tx { .. }),
        "{v:?}\n{}",
        hex_dump(frame)
    );
    out
}

/// The TCP sequence number of an Ethernet/IPv6 frame without extension headers.
fn seq_of(f: &[u8]) -> u32 {
    be32(f, 14 + 40 + 4)
}

/// A handshake, a one-segment request, the redirect with FIN; then a FIN gets its ACK.
#[test]
fn responder_over_ipv6_handshake_request_redirect_fin() {
    let mut w = worker(CONF6);
    let mut syn = Seg6::from_client(VIP6);
    syn.flags = "S";
    syn.mss = Some(1440);
    let out = tx(&mut w, &syn.frame(), CLIENT);
    let cookie = seq_of(&out);
    let mut want = syn.answer(cookie, 1001, "S");
    want.mss = Some(1440);
    assert_frame("SYN-ACK", &want.frame(), &out);

    let mut req = Seg6::from_client(VIP6);
    req.seq = 1001;
    req.ack = Some(cookie.wrapping_add(1));
    req.flags = "P";
    req.payload = REQ.to_vec();
    let out = tx(&mut w, &req.frame(), CLIENT);
    let body = b"HTTP/1.1 302 Found\r\nLocation: http://[2001:db8::1]/a/b?x=1\r\n";
    let payload = &out[14 + 40 + 20..];
    assert!(
        payload.starts_with(body),
        "{}",
        String::from_utf8_lossy(payload)
    );
    let mut want = req.answer(cookie.wrapping_add(1), 1001 + REQ.len() as u32, "FP");
    want.payload = payload.to_vec();
    assert_frame("redirect", &want.frame(), &out);

    let mut fin = Seg6::from_client(VIP6);
    fin.seq = 1001 + REQ.len() as u32;
    fin.ack = Some(cookie.wrapping_add(2 + payload.len() as u32));
    fin.flags = "F";
    let out = tx(&mut w, &fin.frame(), CLIENT);
    let want = fin.answer(
        cookie.wrapping_add(2 + payload.len() as u32),
        fin.seq + 1,
        "",
    );
    assert_frame("ACK of FIN", &want.frame(), &out);
    let c = w.counters();
    assert_eq!((c.syn_acks, c.redirects, c.fin_acks, c.ipv6), (1, 1, 1, 3));
}

/// A bad cookie gets a RST; a SYN to a port with no service gets RST+ACK.
#[test]
fn responder_over_ipv6_refuses_as_a_host() {
    let mut w = worker(CONF6);
    let mut req = Seg6::from_client(VIP6);
    req.seq = 1001;
    req.ack = Some(0x0bad_0bad);
    req.flags = "P";
    req.payload = REQ.to_vec();
    let out = tx(&mut w, &req.frame(), CLIENT);
    // A RST to an ACK carries no ACK (RFC 9293 3.10.7.1): seq = the segment's ack.
    let mut rst = req.answer(0x0bad_0bad, 0, "R");
    rst.ack = None;
    let want = rst.frame();
    assert_frame("RST", &want, &out);
    let mut syn = Seg6::from_client(VIP6);
    syn.ports.1 = 81;
    syn.flags = "S";
    let out = tx(&mut w, &syn.frame(), CLIENT);
    assert_frame("RST+ACK", &syn.answer(0, 1001, "R").frame(), &out);
    assert_eq!(w.counters().dropped(Reason::BadCookie), 1);
}

/// Client -> [DIP]:80 leaves toward [real]:8080, hop limit - 1; the real's reply leaves as
/// [DIP]:80 toward the gateway. Checksums updated incrementally, compared with etherparse's.
#[test]
fn dip_nat_over_ipv6_both_ways() {
    let mut w = worker(CONF6);
    let mut c = Seg6::from_client(DIP6);
    c.seq = 77;
    c.ack = Some(5);
    c.flags = "P";
    c.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let out = tx(&mut w, &c.frame(), CLIENT);
    let mut want = c.clone();
    want.macs = (US[1], real_mac6(REAL6));
    want.dst = REAL6;
    want.ports.1 = 8080;
    want.hop = 63;
    assert_frame("to the real", &want.frame(), &out);

    let mut r = Seg6::from_client(CLIENT6);
    r.macs = (real_mac6(REAL6), US[1]);
    r.src = REAL6;
    r.ports = (8080, 40000);
    r.flags = "P";
    r.ack = Some(78);
    r.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    let out = tx(&mut w, &r.frame(), SERVER);
    let mut want = r.clone();
    want.macs = (US[0], GW);
    want.src = DIP6;
    want.ports.0 = 80;
    want.hop = 63;
    assert_frame("to the client", &want.frame(), &out);

    // Hop limit 1 is not forwarded; a real's reply on the client side is never translated.
    let mut last = c.clone();
    last.hop = 1;
    assert_eq!(
        run(&mut w, &last.frame(), CLIENT).0,
        Verdict::Drop(Reason::TtlExceeded)
    );
    assert_eq!(
        run(&mut w, &r.frame(), CLIENT).0,
        Verdict::Drop(Reason::WrongSide)
    );
    let k = w.counters();
    assert_eq!((k.to_real, k.to_client), (1, 1));
    assert_eq!(w.real_counters()[0].to_real, 1);
}

/// ICMPv6 with etherparse: echo request -> echo reply from the VIP.
#[test]
fn echo_over_ipv6() {
    let mut w = worker(CONF6);
    let ping = |src: [u8; 16], dst: [u8; 16], macs: ([u8; 6], [u8; 6]), t: Icmpv6Type| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(macs.0, macs.1)
            .ipv6(src, dst, 64)
            .icmpv6(t)
            .write(&mut out, b"ping data")
            .unwrap();
        out
    };
    let e = IcmpEchoHeader { id: 7, seq: 9 };
    let out = tx(
        &mut w,
        &ping(CLIENT6, VIP6, (GW, US[0]), Icmpv6Type::EchoRequest(e)),
        CLIENT,
    );
    let want = ping(VIP6, CLIENT6, (US[0], GW), Icmpv6Type::EchoReply(e));
    assert_frame("echo reply", &want, &out);
    // A corrupt checksum gets no answer.
    let mut bad = ping(CLIENT6, VIP6, (GW, US[0]), Icmpv6Type::EchoRequest(e));
    bad[14 + 40 + 2] ^= 1;
    assert_eq!(run(&mut w, &bad, CLIENT).0, Verdict::Drop(Reason::BadIcmp));
    assert_eq!(w.counters().echo_replies, 1);
}

/// An ICMPv6 message by hand: Ethernet, IPv6 (hop limit `hop`), type/code, checksum summed
/// here, then `body` (everything after the checksum).
fn icmp6(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 16],
    dst: [u8; 16],
    hop: u8,
    tc: (u8, u8),
    body: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&macs.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    let len = 4 + body.len();
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(len as u16).to_be_bytes());
    f.extend_from_slice(&[58, hop]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let mut m = vec![tc.0, tc.1, 0, 0];
    m.extend_from_slice(body);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let s = ones_sum(ones_sum(0, &pseudo), &m);
    let c = !fold(s);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&m);
    f
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Solicited-node multicast of `a` and its MAC.
fn sn(a: [u8; 16]) -> ([u8; 16], [u8; 6]) {
    let ip = [
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a[13], a[14], a[15],
    ];
    (ip, [0x33, 0x33, 0xff, a[13], a[14], a[15]])
}

/// A solicitation for an owned address gets an advertisement (solicited, override, our MAC);
/// duplicate address detection (from ::) is answered to all nodes; a solicitation for
/// another address, a router advertisement and a solicitation off the link (hop limit not
/// 255) are not answered.
#[test]
fn neighbour_discovery_over_ipv6() {
    let mut w = worker(CONF6);
    let client_mac = [2, 0, 0, 0, 0, 0x77];
    let ns = |src: [u8; 16], target: [u8; 16], hop: u8, opt: bool| {
        let (dst, mac) = sn(target);
        let mut body = vec![0; 4];
        body.extend_from_slice(&target);
        if opt {
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&client_mac);
        }
        icmp6((client_mac, mac), src, dst, hop, (135, 0), &body)
    };
    let na = |dst: [u8; 16], dst_mac: [u8; 6], flags: u8| {
        let mut body = vec![flags, 0, 0, 0];
        body.extend_from_slice(&VIP6);
        body.extend_from_slice(&[2, 1]);
        body.extend_from_slice(&US[0]);
        icmp6((US[0], dst_mac), VIP6, dst, 255, (136, 0), &body)
    };
    let out = tx(&mut w, &ns(CLIENT6, VIP6, 255, true), CLIENT);
    assert_frame("advertisement", &na(CLIENT6, client_mac, 0x60), &out);
    let all = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let out = tx(&mut w, &ns([0; 16], VIP6, 255, false), CLIENT);
    assert_frame("DAD answer", &na(all, [0x33, 0x33, 0, 0, 0, 1], 0x20), &out);
    assert_eq!(
        run(&mut w, &ns(CLIENT6, v6(0, 9), 255, true), CLIENT).0,
        Verdict::Pass
    );
    assert_eq!(
        run(&mut w, &ns(CLIENT6, VIP6, 64, true), CLIENT).0,
        Verdict::Drop(Reason::BadIcmp)
    );
    let ra = icmp6(
        (ROUTER6_MAC, [0x33, 0x33, 0, 0, 0, 1]),
        LINK_LOCAL,
        all,
        255,
        (134, 0),
        &[64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(run(&mut w, &ra, CLIENT).0, Verdict::Pass);
    assert_eq!(w.counters().nd_adverts, 2);
}

const ROUTER6_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const LINK_LOCAL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Packet too big from a router on the server side, about a client's packet to the real
/// (quoted: client -> [real]:8080): to the client, quoting [DIP]:80, the MTU kept; from the
/// real itself the outer source becomes the DIP too. One from the client side about a packet
/// the real sent through its DIP (quoted: [DIP]:80 -> client) goes to the real, quoting the
/// real's own address.
#[test]
fn packet_too_big_translated_both_ways() {
    let mut w = worker(CONF6);
    // The quoted packet: IPv6 header and the first 8 bytes of TCP.
    let quoted = |src: [u8; 16], dst: [u8; 16], ports: (u16, u16)| {
        let mut q = vec![0x60, 0, 0, 0, 0, 20, 6, 63];
        q.extend_from_slice(&src);
        q.extend_from_slice(&dst);
        q.extend_from_slice(&ports.0.to_be_bytes());
        q.extend_from_slice(&ports.1.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 1]);
        q
    };
    let ptb = |q: Vec<u8>| {
        let mut b = 1280u32.to_be_bytes().to_vec();
        b.extend_from_slice(&q);
        b
    };
    let from_router = icmp6(
        ([2, 0, 0, 0, 0, 0xfe], US[1]),
        ROUTER6,
        CLIENT6,
        64,
        (2, 0),
        &ptb(quoted(CLIENT6, REAL6, (40000, 8080))),
    );
    let out = tx(&mut w, &from_router, SERVER);
    let want = icmp6(
        (US[0], GW),
        ROUTER6,
        CLIENT6,
        63,
        (2, 0),
        &ptb(quoted(CLIENT6, DIP6, (40000, 80))),
    );
    assert_frame("router's error to the client", &want, &out);

    let from_real = icmp6(
        (real_mac6(REAL6), US[1]),
        REAL6,
        CLIENT6,
        64,
        (2, 0),
        &ptb(quoted(CLIENT6, REAL6, (40000, 8080))),
    );
    let out = tx(&mut w, &from_real, SERVER);
    let want = icmp6(
        (US[0], GW),
        DIP6,
        CLIENT6,
        63,
        (2, 0),
        &ptb(quoted(CLIENT6, DIP6, (40000, 80))),
    );
    assert_frame("real's error to the client", &want, &out);

    let to_dip = icmp6(
        (GW, US[0]),
        v6(0, 0xfe),
        DIP6,
        64,
        (2, 0),
        &ptb(quoted(DIP6, CLIENT6, (80, 40000))),
    );
    let out = tx(&mut w, &to_dip, CLIENT);
    let want = icmp6(
        (US[1], real_mac6(REAL6)),
        v6(0, 0xfe),
        REAL6,
        63,
        (2, 0),
        &ptb(quoted(REAL6, CLIENT6, (8080, 40000))),
    );
    assert_frame("error to the real", &want, &out);
    assert_eq!(w.counters().icmp_translated, 3);
}

/// Fragments to owned addresses and martian sources are dropped and counted; other IPv6
/// traffic is the kernel's.
#[test]
fn fragments_and_martians_over_ipv6() {
    let mut w = worker(CONF6);
    let mut syn = Seg6::from_client(VIP6);
    syn.flags = "S";
    // A fragment header (next: TCP, offset 0, more fragments) in front of the segment.
    let mut frag = syn.frame();
    frag[14 + 6] = 44;
    let mut fh = vec![6, 0, 0, 1, 0, 0, 0x12, 0x34];
    let plen = be16(&frag, 14 + 4) + 8;
    frag[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
    let tail = frag.split_off(14 + 40);
    frag.append(&mut fh);
    frag.extend_from_slice(&tail);
    assert_eq!(
        run(&mut w, &frag, CLIENT).0,
        Verdict::Drop(Reason::Fragment)
    );
    let loopback = {
        let mut l = [0; 16];
        l[15] = 1;
        l
    };
    for src in [[0; 16], loopback, sn(VIP6).0, VIP6, DIP6] {
        let mut s = syn.clone();
        s.src = src;
        assert_eq!(
            run(&mut w, &s.frame(), CLIENT).0,
            Verdict::Drop(Reason::Martian)
        );
    }
    let mut other = syn.clone();
    other.dst = v6(0, 0x42);
    assert_eq!(run(&mut w, &other.frame(), CLIENT).0, Verdict::Pass);
    let c = w.counters();
    assert_eq!(
        (c.dropped(Reason::Fragment), c.dropped(Reason::Martian)),
        (1, 5)
    );
    assert_eq!(c.syn_acks, 0);
}
