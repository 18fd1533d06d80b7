//! The small network the worker targets run in (one VIP, three DIPs, three reals, a backup;
//! in IPv4 or IPv6), frames built independently of the dataplane (etherparse, or by hand), and
//! a receiver's view of output frames with the plain RFC 1071 sum (never the dataplane's own
//! checksum code).

use etherparse::{PacketBuilder, TcpHeader};

/// The director's MACs: index 0 on the client port, 1 on the server port.
pub const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
/// The client-side gateway.
pub const GW: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
pub const SECRET: [u8; 32] = [9; 32];
pub const TABLE_KEY: [u8; 16] = [0x5a; 16];
/// A realistic wall clock (ms); never 0 (tables treat a stamp of 0 as empty).
pub const NOW_MS: u64 = 1_700_000_000_000;
/// The frame buffer handed to the worker, as the runtime's UMEM frames.
pub const BUF: usize = 2048;

pub const FIN: u8 = 1;
pub const SYN: u8 = 2;
pub const PSH: u8 = 8;
pub const ACK: u8 = 16;

/// An address (4 or 16 bytes) and a port.
pub type Addr = (Vec<u8>, u16);

/// One family's network: what the config names, and how to write it.
pub struct Net {
    pub v6: bool,
    pub vip: Vec<u8>,
    /// (DIP, its real, its backup real).
    pub dips: Vec<(Vec<u8>, Addr, Option<Addr>)>,
    pub reals: Vec<Addr>,
    /// Every address the director owns.
    pub owned: Vec<Vec<u8>>,
    /// The config with every real up, and with the first DIP's real failed.
    pub up: String,
    pub down: String,
}

fn a4(net: u8, host: u8) -> Vec<u8> {
    vec![198, 18, net, host]
}

fn a6(net: u8, host: u8) -> Vec<u8> {
    let mut a = vec![0x20, 0x01, 0x0d, 0xb8, 0, net];
    a.resize(15, 0);
    a.push(host);
    a
}

impl Net {
    pub fn new(v6: bool) -> Net {
        let a = if v6 { a6 } else { a4 };
        let (up, down_real) = if v6 {
            (
                "virtual [2001:db8::1]:80\ndip [2001:db8::2] real [2001:db8:1::2]:8080\n\
                 dip [2001:db8::3]\ndip [2001:db8::4] real [2001:db8:1::4]:8080\n\
                 url nat http://[2001:db8::2]/%d\nurl host http://%h/x/%d\n\
                 bind [2001:db8::1] nat host\nbackup [2001:db8::2] [2001:db8::4]\n",
                "[2001:db8::2]",
            )
        } else {
            (
                "virtual 198.18.0.1\ndip 198.18.0.2 real 198.18.1.2:8080\ndip 198.18.0.3\n\
                 dip 198.18.0.4 real 198.18.1.4:8080\nurl nat http://nat.lab/%d\n\
                 url host http://%h/x/%d\nlink nat 198.18.0.2\nbind 198.18.0.1 nat host\n\
                 backup 198.18.0.2 198.18.0.4\n",
                "198.18.0.2",
            )
        };
        let reals = vec![(a(1, 2), 8080), (a(0, 3), 80), (a(1, 4), 8080)];
        Net {
            v6,
            vip: a(0, 1),
            dips: vec![
                (a(0, 2), reals[0].clone(), Some(reals[2].clone())),
                (a(0, 3), reals[1].clone(), None),
                (a(0, 4), reals[2].clone(), None),
            ],
            reals,
            owned: vec![a(0, 1), a(0, 2), a(0, 3), a(0, 4)],
            up: up.to_string(),
            down: format!("{up}out-of-service real {down_real} failed\n"),
        }
    }

    /// Client `i`: a few addresses, so tuples repeat.
    pub fn client(&self, i: u8) -> Vec<u8> {
        if self.v6 {
            a6(0x20, 1 + i % 4)
        } else {
            vec![198, 19, 0, 1 + i % 4]
        }
    }

    /// A router on the server side.
    pub fn router(&self) -> Vec<u8> {
        if self.v6 {
            a6(1, 0xfe)
        } else {
            a4(1, 0xfe)
        }
    }

    /// A TCP segment (`flags` the raw byte); checksums by etherparse.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &self,
        macs: ([u8; 6], [u8; 6]),
        src: &[u8],
        dst: &[u8],
        ports: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut t = TcpHeader::new(ports.0, ports.1, seq, 64240);
        t.fin = flags & 1 != 0;
        t.syn = flags & 2 != 0;
        t.rst = flags & 4 != 0;
        t.psh = flags & 8 != 0;
        t.ack = flags & 16 != 0;
        t.urg = flags & 32 != 0;
        t.acknowledgment_number = ack;
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2(macs.0, macs.1);
        let r = if self.v6 {
            b.ipv6(to16(src), to16(dst), 64)
                .tcp_header(t)
                .write(&mut out, payload)
        } else {
            b.ipv4(to4(src), to4(dst), 64)
                .tcp_header(t)
                .write(&mut out, payload)
        };
        r.expect("a frame etherparse can write");
        out
    }

    pub fn udp(
        &self,
        macs: ([u8; 6], [u8; 6]),
        src: &[u8],
        dst: &[u8],
        ports: (u16, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2(macs.0, macs.1);
        let r = if self.v6 {
            b.ipv6(to16(src), to16(dst), 64)
                .udp(ports.0, ports.1)
                .write(&mut out, payload)
        } else {
            b.ipv4(to4(src), to4(dst), 64)
                .udp(ports.0, ports.1)
                .write(&mut out, payload)
        };
        r.expect("a frame etherparse can write");
        out
    }

    /// An ICMP (v4) or ICMPv6 message by hand: the 4-byte head (checksum ignored), then
    /// `body`; every checksum summed here.
    pub fn icmp(
        &self,
        macs: ([u8; 6], [u8; 6]),
        src: &[u8],
        dst: &[u8],
        head: [u8; 4],
        body: &[u8],
    ) -> Vec<u8> {
        let mut m = head.to_vec();
        m[2] = 0;
        m[3] = 0;
        m.extend_from_slice(body);
        let mut f = Vec::new();
        f.extend_from_slice(&macs.1);
        f.extend_from_slice(&macs.0);
        if self.v6 {
            let c = !(ones_sum(pseudo(src, dst, 58, m.len()), &m) as u16);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(m.len() as u16).to_be_bytes());
            f.extend_from_slice(&[58, 255]);
            f.extend_from_slice(src);
            f.extend_from_slice(dst);
        } else {
            let c = !(ones_sum(0, &m) as u16);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = ((20 + m.len()) as u16).to_be_bytes().to_vec();
            ip.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0]);
            ip.extend_from_slice(src);
            ip.extend_from_slice(dst);
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&ip);
            let c = !(ones_sum(0, &h) as u16);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        f.extend_from_slice(&m);
        f
    }

    /// An IP header (no options or extensions) and the first 8 bytes of TCP, as quoted by an
    /// ICMP error: `src:sport -> dst:dport`.
    pub fn quote(&self, src: &[u8], sport: u16, dst: &[u8], dport: u16) -> Vec<u8> {
        let mut q = if self.v6 {
            vec![0x60, 0, 0, 0, 0, 20, 6, 63]
        } else {
            vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 63, 6, 0, 0]
        };
        q.extend_from_slice(src);
        q.extend_from_slice(dst);
        q.extend_from_slice(&sport.to_be_bytes());
        q.extend_from_slice(&dport.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 1]);
        q
    }
}

fn to4(a: &[u8]) -> [u8; 4] {
    let mut o = [0; 4];
    o.copy_from_slice(&a[..4]);
    o
}

fn to16(a: &[u8]) -> [u8; 16] {
    let mut o = [0; 16];
    o.copy_from_slice(&a[..16]);
    o
}

/// The MAC of a real: from its address's last two bytes (and its family).
pub fn real_mac(ip: &[u8]) -> [u8; 6] {
    let n = ip.len();
    [2, 0, 0, if n == 16 { 6 } else { 1 }, ip[n - 2], ip[n - 1]]
}

/// An ARP request or reply (`op` 1 or 2), by hand.
pub fn arp(op: u16, sha: [u8; 6], spa: &[u8], tpa: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(tpa);
    f
}

// ---- a receiver's view ---------------------------------------------------------------------

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

/// The pseudo-header's sum (either family: the addresses' lengths tell).
fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    let mut p = src.to_vec();
    p.extend_from_slice(dst);
    if src.len() == 16 {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    } else {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    }
    ones_sum(0, &p)
}

pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An IP packet in an Ethernet frame, as a receiver sees it.
pub struct Ip {
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    /// The upper-layer protocol (after IPv6's simple extension headers).
    pub proto: u8,
    /// Where the upper layer starts and ends in the frame.
    pub l4: std::ops::Range<usize>,
    /// The IPv4 header sums to 0xFFFF (always true for IPv6).
    pub header_ok: bool,
}

/// The IP packet of `f`, if well formed (lengths within the frame).
pub fn ip(f: &[u8]) -> Option<Ip> {
    if f.len() < 14 {
        return None;
    }
    match be16(f, 12) {
        0x0800 if f.len() >= 34 && f[14] >> 4 == 4 => {
            let ihl = usize::from(f[14] & 15) * 4;
            let total = usize::from(be16(f, 16));
            if ihl < 20 || total < ihl || 14 + total > f.len() {
                return None;
            }
            Some(Ip {
                src: f[26..30].to_vec(),
                dst: f[30..34].to_vec(),
                proto: f[23],
                l4: 14 + ihl..14 + total,
                header_ok: ones_sum(0, &f[14..14 + ihl]) == 0xffff,
            })
        }
        0x86dd if f.len() >= 54 && f[14] >> 4 == 6 => {
            let end = 54 + usize::from(be16(f, 18));
            if end > f.len() {
                return None;
            }
            let (mut next, mut at) = (f[20], 54);
            for _ in 0..8 {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                let h = f.get(at..at + 2)?;
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            if matches!(next, 0 | 43 | 60) || at > end {
                return None;
            }
            Some(Ip {
                src: f[22..38].to_vec(),
                dst: f[38..54].to_vec(),
                proto: next,
                l4: at..end,
                header_ok: true,
            })
        }
        _ => None,
    }
}

/// Whether the upper layer's checksum verifies as a receiver checks it (a UDP-over-IPv4
/// checksum of 0 means none; ICMPv4 has no pseudo-header).
pub fn l4_ok(f: &[u8], p: &Ip) -> bool {
    let seg = &f[p.l4.clone()];
    let v4 = p.src.len() == 4;
    match p.proto {
        6 if seg.len() >= 20 => ones_sum(pseudo(&p.src, &p.dst, 6, seg.len()), seg) == 0xffff,
        17 if seg.len() >= 8 => {
            (v4 && be16(seg, 6) == 0)
                || ones_sum(pseudo(&p.src, &p.dst, 17, seg.len()), seg) == 0xffff
        }
        1 if v4 && seg.len() >= 8 => ones_sum(0, seg) == 0xffff,
        58 if !v4 && seg.len() >= 8 => {
            ones_sum(pseudo(&p.src, &p.dst, 58, seg.len()), seg) == 0xffff
        }
        _ => false,
    }
}
