//! Shared frame builders and checkers for the dataplane's fixture, property and fuzz tests.
//!
//! Everything here is independent of the dataplane's own code: frames are built with
//! etherparse's `PacketBuilder` (which computes every checksum itself) or by hand, and
//! checksums are verified with the plain RFC 1071 sum below, never with `detour_dataplane::csum`.
#![allow(dead_code)]

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Port, Verdict, Worker, WorkerConfig, CLIENT};
use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv4Options, PacketBuilder, TcpHeader, TcpOptionElement,
};
use std::fmt::Write as _;
use std::sync::Arc;

/// The director's MACs: index 0 on the client port, 1 on the server port.
pub const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
/// The client-side gateway (`snap.gateway_mac`); client frames arrive from it.
pub const GW: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub const CLIENT_IP: [u8; 4] = [198, 18, 0, 100];
pub const VIP: [u8; 4] = [198, 18, 0, 1];
/// NAT-mode DIP: forwards to `REAL_NAT:8080`.
pub const DIP_NAT: [u8; 4] = [198, 18, 0, 2];
pub const REAL_NAT: [u8; 4] = [198, 18, 1, 2];
pub const REAL_NAT_PORT: u16 = 8080;
/// Same-address DIP: the real lives at the DIP's own address and port.
pub const DIP_SAME: [u8; 4] = [198, 18, 0, 3];
/// A second NAT-mode pair, used as a backup real.
pub const DIP_B: [u8; 4] = [198, 18, 0, 4];
pub const REAL_B: [u8; 4] = [198, 18, 1, 4];
pub const REAL_B_PORT: u16 = 8080;

pub const SECRET: [u8; 32] = [9; 32];
/// The key of the worker tables' hash.
pub const TABLE_KEY: [u8; 16] = [0x5a; 16];
/// A realistic wall clock (ms); tables treat a stamp of 0 as empty, so never use 0.
pub const NOW_MS: u64 = 1_700_000_000_000;
/// Frame buffer size handed to the worker (as the runtime's UMEM frames).
pub const BUF: usize = 2048;

/// The base configuration: a VIP redirecting to a NAT-mode DIP, plus a same-address DIP.
pub const BASE: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
";

/// The MAC of a real: derived from its address so that every real has its own.
pub fn real_mac(ip: [u8; 4]) -> [u8; 6] {
    [2, 0, 0, 1, ip[2], ip[3]]
}

/// The MAC the tests give an IPv6 real: its address's last two bytes.
pub fn real_mac6(ip: [u8; 16]) -> [u8; 6] {
    [2, 0, 0, 6, ip[14], ip[15]]
}

/// A worker on `conf`, with the gateway's and every real's MAC known.
pub fn worker(conf: &str) -> Worker {
    worker_with(conf, true, true)
}

/// A worker on `conf`; `real_macs` / `gateway`: whether those neighbours are known yet.
pub fn worker_with(conf: &str, real_macs: bool, gateway: bool) -> Worker {
    let m = load(conf, "test.conf").unwrap_or_else(|e| panic!("config refused: {e:?}\n{conf}"));
    let mut s = Snapshot::compile(&m, 1);
    if gateway {
        s.gateway_mac = GW;
    }
    if real_macs {
        for r in &mut s.reals {
            r.mac = match r.addr.ip() {
                std::net::IpAddr::V4(a) => real_mac(a.octets()),
                std::net::IpAddr::V6(a) => real_mac6(a.octets()),
            };
        }
    }
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

/// Run one frame through the worker in a `BUF`-byte buffer at `NOW_MS`; the output frame is
/// `buf[..len]` for `Tx`, empty otherwise.
pub fn run(w: &mut Worker, frame: &[u8], port: Port) -> (Verdict, Vec<u8>) {
    run_cap(w, frame, port, BUF.max(frame.len()), NOW_MS)
}

/// As [`run`], with a buffer of `cap` bytes and the clock at `now_ms`.
pub fn run_cap(
    w: &mut Worker,
    frame: &[u8],
    port: Port,
    cap: usize,
    now_ms: u64,
) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; cap.max(frame.len())];
    buf[..frame.len()].copy_from_slice(frame);
    let v = w.process(&mut buf, frame.len(), port, now_ms);
    let out = match v {
        Verdict::Tx { len, .. } => {
            assert!(
                len <= buf.len(),
                "Tx len {len} beyond the {}-byte buffer",
                buf.len()
            );
            buf[..len].to_vec()
        }
        _ => Vec::new(),
    };
    (v, out)
}

/// A TCP or UDP segment in an Ethernet/IPv4 frame, every field spelled out.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    pub dscp_ecn: u8,
    /// IPv4 options (a multiple of 4 bytes, at most 40).
    pub ip_options: Vec<u8>,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub window: u16,
    pub mss: Option<u16>,
    pub payload: Vec<u8>,
}

impl Seg {
    /// Client (`CLIENT_IP:40000`, via the gateway) to `dst:dport`, TTL 64.
    pub fn from_client(dst: [u8; 4], dport: u16) -> Seg {
        Seg {
            src_mac: GW,
            dst_mac: US[0],
            src: CLIENT_IP,
            dst,
            ttl: 64,
            ident: 0x1234,
            df: true,
            dscp_ecn: 0,
            ip_options: Vec::new(),
            sport: 40000,
            dport,
            seq: 1000,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 64240,
            mss: None,
            payload: Vec::new(),
        }
    }

    /// A SYN with MSS 1460, as Linux sends.
    pub fn syn(mut self) -> Seg {
        self.syn = true;
        self.mss = Some(1460);
        self
    }

    pub fn with_ack(mut self, ack: u32) -> Seg {
        self.ack = Some(ack);
        self
    }

    pub fn with_seq(mut self, seq: u32) -> Seg {
        self.seq = seq;
        self
    }

    pub fn with_payload(mut self, p: &[u8]) -> Seg {
        self.payload = p.to_vec();
        self
    }

    fn ip_header(&self, proto: IpNumber) -> Ipv4Header {
        let mut h = Ipv4Header::new(0, self.ttl, proto, self.src, self.dst).unwrap();
        h.identification = self.ident;
        h.dont_fragment = self.df;
        h.dscp = etherparse::IpDscp::try_new(self.dscp_ecn >> 2).unwrap();
        h.ecn = etherparse::IpEcn::try_new(self.dscp_ecn & 3).unwrap();
        h.options = Ipv4Options::try_from(&self.ip_options[..]).unwrap();
        h
    }

    pub fn tcp_header(&self) -> TcpHeader {
        let mut t = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        t.syn = self.syn;
        t.fin = self.fin;
        t.rst = self.rst;
        t.psh = self.psh;
        if let Some(a) = self.ack {
            t.ack = true;
            t.acknowledgment_number = a;
        }
        if let Some(m) = self.mss {
            t.set_options(&[TcpOptionElement::MaximumSegmentSize(m)])
                .unwrap();
        }
        t
    }

    /// The frame as TCP; every checksum computed by etherparse.
    pub fn tcp(&self) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.src_mac, self.dst_mac)
            .ip(IpHeaders::Ipv4(
                self.ip_header(IpNumber::TCP),
                Default::default(),
            ))
            .tcp_header(self.tcp_header());
        let mut out = Vec::new();
        b.write(&mut out, &self.payload).unwrap();
        out
    }

    /// The frame as UDP (ports and payload; TCP fields ignored); checksums by etherparse.
    pub fn udp(&self) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.src_mac, self.dst_mac)
            .ip(IpHeaders::Ipv4(
                self.ip_header(IpNumber::UDP),
                Default::default(),
            ))
            .udp(self.sport, self.dport);
        let mut out = Vec::new();
        b.write(&mut out, &self.payload).unwrap();
        out
    }

    /// The IPv4 packet alone (no Ethernet header), TCP.
    pub fn tcp_ip(&self) -> Vec<u8> {
        self.tcp()[14..].to_vec()
    }

    /// The IPv4 packet alone (no Ethernet header), UDP.
    pub fn udp_ip(&self) -> Vec<u8> {
        self.udp()[14..].to_vec()
    }

    /// What the responder must send back to this segment: from `dst:dport` to `src:sport`,
    /// our MAC on `port` to the sender's MAC, TTL 64, id 0, DF, window 65535 (0 on a RST).
    pub fn answer(&self, port: Port) -> Seg {
        Seg {
            src_mac: US[port.0 as usize],
            dst_mac: self.src_mac,
            src: self.dst,
            dst: self.src,
            ttl: 64,
            ident: 0,
            df: true,
            dscp_ecn: 0,
            ip_options: Vec::new(),
            sport: self.dport,
            dport: self.sport,
            seq: 0,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 65535,
            mss: None,
            payload: Vec::new(),
        }
    }

    /// The sequence number just past this segment (SYN and FIN count one).
    pub fn next_seq(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload.len() as u32)
            .wrapping_add(u32::from(self.syn))
            .wrapping_add(u32::from(self.fin))
    }
}

/// An Ethernet/IPv4 ICMP frame: the 8-byte ICMP header `icmp_head` (checksum field ignored)
/// followed by `body`; the ICMP checksum and the IPv4 header are computed here by hand.
#[allow(clippy::too_many_arguments)]
pub fn icmp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    ident: u16,
    icmp_head: [u8; 8],
    body: &[u8],
) -> Vec<u8> {
    let mut icmp = icmp_head.to_vec();
    icmp[2] = 0;
    icmp[3] = 0;
    icmp.extend_from_slice(body);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&ident.to_be_bytes());
    ip.extend_from_slice(&[0, 0, ttl, 1, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// An ARP request or reply (`op` 1 or 2), Ethernet/IPv4, written by hand (42 bytes).
pub fn arp(
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tha: [u8; 6],
    tpa: [u8; 4],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f
}

// ---- checksums, by hand (RFC 1071) --------------------------------------------------------

/// One's-complement sum of `data` (odd length padded with a zero byte), folded, from `init`.
pub fn ones_sum(init: u32, data: &[u8]) -> u32 {
    let mut s = u64::from(init);
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// The Internet checksum of `data` (the value to store).
pub fn checksum(data: &[u8]) -> u16 {
    !(ones_sum(0, data) as u16)
}

pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The IPv4 packet in an Ethernet frame: (ip offset 14, ihl, total length), if well formed.
pub fn ipv4_bounds(f: &[u8]) -> Option<(usize, usize)> {
    if f.len() < 34 || be16(f, 12) != 0x0800 || f[14] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(f[14] & 15) * 4;
    let total = usize::from(be16(f, 16));
    if ihl < 20 || total < ihl || 14 + total > f.len() {
        return None;
    }
    Some((ihl, total))
}

/// The IPv4 header checksum a full recompute gives for the frame's IPv4 header.
pub fn recomputed_ip_checksum(f: &[u8]) -> u16 {
    let ihl = usize::from(f[14] & 15) * 4;
    let mut h = f[14..14 + ihl].to_vec();
    h[10] = 0;
    h[11] = 0;
    checksum(&h)
}

/// The TCP (proto 6) or UDP (17) checksum a full recompute over pseudo-header + segment gives
/// (for UDP, a computed 0 is sent as 0xFFFF, RFC 768).
pub fn recomputed_l4_checksum(f: &[u8]) -> u16 {
    let (ihl, total) = ipv4_bounds(f).expect("an IPv4 frame");
    let proto = f[14 + 9];
    let seg = &f[14 + ihl..14 + total];
    let at = if proto == 6 { 16 } else { 6 };
    let mut s = seg.to_vec();
    s[at] = 0;
    s[at + 1] = 0;
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&f[26..34]);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    let c = !(ones_sum(ones_sum(0, &pseudo), &s) as u16);
    if proto == 17 && c == 0 {
        0xffff
    } else {
        c
    }
}

/// The L4 checksum field as sent (TCP or UDP).
pub fn l4_checksum_field(f: &[u8]) -> u16 {
    let (ihl, _) = ipv4_bounds(f).expect("an IPv4 frame");
    let at = 14 + ihl + if f[23] == 6 { 16 } else { 6 };
    be16(f, at)
}

/// Whether the whole IPv4 header sums to 0xFFFF (a receiver's check).
pub fn ip_header_valid(f: &[u8]) -> bool {
    let ihl = usize::from(f[14] & 15) * 4;
    f.len() >= 14 + ihl && ones_sum(0, &f[14..14 + ihl]) == 0xffff
}

// ---- parsing outputs -------------------------------------------------------------------------

/// The TCP fields of an output frame (no checks beyond the bounds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpView {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload: Vec<u8>,
}

pub const FIN: u8 = 1;
pub const SYN: u8 = 2;
pub const RST: u8 = 4;
pub const PSH: u8 = 8;
pub const ACK: u8 = 16;

pub fn tcp_view(f: &[u8]) -> Option<TcpView> {
    let (ihl, total) = ipv4_bounds(f)?;
    if f[23] != 6 {
        return None;
    }
    let t = &f[14 + ihl..14 + total];
    if t.len() < 20 {
        return None;
    }
    let off = usize::from(t[12] >> 4) * 4;
    if off < 20 || off > t.len() {
        return None;
    }
    Some(TcpView {
        src: f[26..30].try_into().unwrap(),
        dst: f[30..34].try_into().unwrap(),
        sport: be16(t, 0),
        dport: be16(t, 2),
        seq: be32(t, 4),
        ack: be32(t, 8),
        flags: t[13],
        window: be16(t, 14),
        payload: t[off..].to_vec(),
    })
}

// ---- expected HTTP responses, written out independently ------------------------------------

/// The redirect the responder must send: status line, Location, fixed headers, and the HTML
/// body (whose length is announced even for HEAD, which gets no body).
pub fn redirect_response(code: u16, reason: &str, location: &str, head_only: bool) -> Vec<u8> {
    let href = location
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<html><head><title>{code} {reason}</title></head><body><a href=\"{href}\">{code} {reason}</a></body></html>\n"
    );
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nLocation: {location}\r\nServer: detour\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if !head_only {
        r.push_str(&body);
    }
    r.into_bytes()
}

/// A fixed status response with an empty body.
pub fn status_response(code: u16, reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

// ---- comparison ----------------------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A hex dump, 16 bytes a line.
pub fn hex_dump(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in b.chunks(16).enumerate() {
        let _ = writeln!(s, "  {:04x}   {}", i * 16, hex(row));
    }
    s
}

/// A line-by-line hex diff (16 bytes a line, differing lines marked `!`).
pub fn hex_diff(expected: &[u8], got: &[u8]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "expected {} bytes, got {} bytes",
        expected.len(),
        got.len()
    );
    let diffs: Vec<usize> = (0..expected.len().max(got.len()))
        .filter(|&i| expected.get(i) != got.get(i))
        .collect();
    let _ = writeln!(
        s,
        "{} differing byte(s), first at offsets {:?}",
        diffs.len(),
        &diffs[..diffs.len().min(16)]
    );
    for row in (0..expected.len().max(got.len())).step_by(16) {
        let e = &expected[row.min(expected.len())..(row + 16).min(expected.len())];
        let g = &got[row.min(got.len())..(row + 16).min(got.len())];
        if e == g {
            let _ = writeln!(s, "  {row:04x}   {}", hex(e));
        } else {
            let _ = writeln!(s, "! {row:04x} - {}", hex(e));
            let _ = writeln!(s, "!      + {}", hex(g));
        }
    }
    s
}

/// Assert two frames are byte for byte equal, printing a hex diff if not.
#[track_caller]
pub fn assert_frame(what: &str, expected: &[u8], got: &[u8]) {
    if expected != got {
        panic!(
            "{what}: output frame differs (- expected, + got)\n{}",
            hex_diff(expected, got)
        );
    }
}

/// SYN from `seg`'s tuple to the responder; returns the cookie (our ISN) of the SYN-ACK.
pub fn handshake(w: &mut Worker, seg: &Seg) -> u32 {
    let syn = Seg {
        ack: None,
        fin: false,
        rst: false,
        psh: false,
        payload: Vec::new(),
        ..seg.clone()
    }
    .syn();
    let (v, out) = run(w, &syn.tcp(), CLIENT);
    assert!(matches!(v, Verdict::Tx { .. }), "SYN got {v:?}");
    let t = tcp_view(&out).expect("a TCP SYN-ACK");
    assert_eq!(t.flags, SYN | ACK, "SYN got flags {:#x}", t.flags);
    t.seq
}
