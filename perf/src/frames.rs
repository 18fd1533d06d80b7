//! Frame templates for the generator: Ethernet + IPv4 + TCP with correct checksums, built once
//! in user space and copied whole into every frame by the XDP program.

use std::net::Ipv4Addr;

/// Largest template (bytes), as `TPL_MAX` in `bpf/gen.bpf.c`.
pub const TPL_MAX: usize = 256;

/// Smallest Ethernet frame without FCS: shorter frames are padded with zeros to this.
const ETH_MIN: usize = 60;

/// What a template is, also the generator's counter index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A 60-byte TCP segment (ACK|PSH, 6 payload bytes) of one of many client flows to a DIP.
    Flows = 0,
    /// A SYN (with an MSS option) from one of many client flows to the VIP.
    Syn = 1,
    /// A SYN from a spoofed source (198.19.0.0/16) to the VIP.
    SynFlood = 2,
    /// Malformed frames to the VIP/DIP: truncated, bad header lengths, bad checksums, fragments.
    Malformed = 3,
    /// The ACK that carries an HTTP request, with a valid SYN cookie (the config's secret).
    Requests = 4,
    /// The ACK that carries a TLS 1.3 ClientHello, with a valid SYN cookie: each makes a `tls`
    /// virtual open an entry and sign its server flight (the handshake goes no further).
    Hellos = 5,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "flows" => Kind::Flows,
            "syn" => Kind::Syn,
            "synflood" => Kind::SynFlood,
            "malformed" => Kind::Malformed,
            "requests" => Kind::Requests,
            "hellos" => Kind::Hellos,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Flows => "flows",
            Kind::Syn => "syn",
            Kind::SynFlood => "synflood",
            Kind::Malformed => "malformed",
            Kind::Requests => "requests",
            Kind::Hellos => "hellos",
        }
    }

    pub const ALL: [Kind; 6] = [
        Kind::Flows,
        Kind::Syn,
        Kind::SynFlood,
        Kind::Malformed,
        Kind::Requests,
        Kind::Hellos,
    ];
}

/// One template: the frame bytes and its kind.
#[derive(Clone, Debug)]
pub struct Template {
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// `(stamp offset, checksum offset, marker)`: the generator writes the marker and the send
    /// time over the 8 bytes at the stamp offset and fixes the checksum (see `lat.rs`).
    pub stamp: Option<(u16, u16, u16)>,
}

impl Template {
    /// Have the generator stamp this `flows` frame with its send time (TCP urgent pointer:
    /// the marker; the 6 payload bytes: the time).
    pub fn with_stamp(mut self) -> Template {
        if self.kind == Kind::Flows && self.bytes.len() >= crate::lat::STAMP_OFF + 8 {
            self.stamp = Some((
                crate::lat::STAMP_OFF as u16,
                crate::lat::CSUM_OFF as u16,
                crate::lat::MARK,
            ));
        }
        self
    }
}

/// Addresses shared by all templates.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Destination of `flows` (a DIP, or the real itself for plain forwarding).
    pub dip: Ipv4Addr,
    pub dip_port: u16,
    /// Destination of `syn`, `synflood`, `requests`.
    pub vip: Ipv4Addr,
    pub vip_port: u16,
}

/// The 1's-complement sum of `data` folded to 16 bits, not inverted.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// TCP segment fields.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Ethernet + IPv4 (no options, DF, TTL 64) + TCP, checksums computed, padded to 60 bytes.
pub fn tcp_frame(ep: &Endpoints, t: &Tcp<'_>, ip_id: u16) -> Vec<u8> {
    assert!(t.options.len().is_multiple_of(4));
    let tcp_len = 20 + t.options.len() + t.payload.len();
    let ip_len = 20 + tcp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&ep.dst_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4
    let ip_start = f.len();
    f.push(0x45);
    f.push(0);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&ip_id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0x00]); // DF
    f.push(64);
    f.push(6);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&t.src.octets());
    f.extend_from_slice(&t.dst.octets());
    let c = fold(sum16(&f[ip_start..ip_start + 20], 0));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
    // TCP
    let tcp_start = f.len();
    f.extend_from_slice(&t.sport.to_be_bytes());
    f.extend_from_slice(&t.dport.to_be_bytes());
    f.extend_from_slice(&t.seq.to_be_bytes());
    f.extend_from_slice(&t.ack.to_be_bytes());
    f.push((((20 + t.options.len()) / 4) as u8) << 4);
    f.push(t.flags);
    f.extend_from_slice(&65535u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(t.options);
    f.extend_from_slice(t.payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&t.src.octets());
    pseudo.extend_from_slice(&t.dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    let c = fold(sum16(&f[tcp_start..], sum16(&pseudo, 0)));
    f[tcp_start + 16..tcp_start + 18].copy_from_slice(&c.to_be_bytes());
    if f.len() < ETH_MIN {
        f.resize(ETH_MIN, 0);
    }
    f
}

/// Source of the i-th client flow: 198.18.2.1-250 (+ another /24 per 250 * 50,000 flows is
/// not needed: at most 12.5 M flows), port 10000 + i / 250.
pub fn client(i: u32) -> (Ipv4Addr, u16) {
    let host = 1 + (i % 250) as u8;
    let port = 10000 + ((i / 250) % 50000) as u16;
    (Ipv4Addr::new(198, 18, 2, host), port)
}

/// A spoofed source in 198.19.0.0/16, scattered (multiplicative hash of i).
pub fn spoofed(i: u32) -> (Ipv4Addr, u16) {
    let h = i.wrapping_mul(0x9e37_79b1);
    let o = h.to_be_bytes();
    let host = if o[1] == 0 || o[1] == 255 { 1 } else { o[1] };
    (
        Ipv4Addr::new(198, 19, o[0], host),
        1024 + (u16::from_be_bytes([o[2], o[3]]) % 60000),
    )
}

/// The client's ISN for flow i (the generator's, arbitrary).
pub fn client_isn(i: u32) -> u32 {
    i.wrapping_mul(0x0101_0101) ^ 0x5eed_0000
}

/// MSS option: kind 2, length 4, 1460.
const MSS_OPT: [u8; 4] = [2, 4, 0x05, 0xb4];

/// `n` templates of `kind`. `cookie(src, sport, isn)` gives the SYN cookie the director would
/// issue (only used by `Requests` and `Hellos`).
pub fn templates(
    ep: &Endpoints,
    kind: Kind,
    n: u32,
    cookie: &dyn Fn(Ipv4Addr, u16, u32) -> u32,
) -> Vec<Template> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let bytes = match kind {
            Kind::Flows => {
                let (src, sport) = client(i);
                tcp_frame(
                    ep,
                    &Tcp {
                        src,
                        dst: ep.dip,
                        sport,
                        dport: ep.dip_port,
                        seq: 1_000_000 + i,
                        ack: 1,
                        flags: ACK | PSH,
                        options: &[],
                        payload: b"detour",
                    },
                    i as u16,
                )
            }
            Kind::Syn | Kind::SynFlood => {
                let (src, sport) = if kind == Kind::Syn {
                    client(i)
                } else {
                    spoofed(i)
                };
                tcp_frame(
                    ep,
                    &Tcp {
                        src,
                        dst: ep.vip,
                        sport,
                        dport: ep.vip_port,
                        seq: client_isn(i),
                        ack: 0,
                        flags: SYN,
                        options: &MSS_OPT,
                        payload: &[],
                    },
                    i as u16,
                )
            }
            Kind::Requests | Kind::Hellos => {
                let (src, sport) = client(i);
                let isn = client_isn(i);
                let c = cookie(src, sport, isn);
                let hello = client_hello(i);
                tcp_frame(
                    ep,
                    &Tcp {
                        src,
                        dst: ep.vip,
                        sport,
                        dport: ep.vip_port,
                        seq: isn.wrapping_add(1),
                        ack: c.wrapping_add(1),
                        flags: ACK | PSH,
                        options: &[],
                        payload: if kind == Kind::Hellos {
                            &hello
                        } else {
                            b"GET /bench HTTP/1.1\r\nHost: www.bench\r\nUser-Agent: detour-perf\r\n\r\n"
                        },
                    },
                    i as u16,
                )
            }
            Kind::Malformed => malformed(ep, i),
        };
        assert!(bytes.len() <= TPL_MAX);
        out.push(Template {
            kind,
            bytes,
            stamp: None,
        });
    }
    out
}

/// Bytes of [`client_hello`]: a 5-byte record header and a 116-byte handshake message.
const HELLO_LEN: usize = 121;

/// A minimal TLS 1.3 ClientHello in one record: suites AES-256-GCM, ChaCha20, AES-128-GCM;
/// no compression; supported_versions TLS 1.3; supported_groups and key_share X25519 (the
/// share is the curve's base point, a valid public key, so the server's key exchange runs
/// as for any client); signature_algorithms ecdsa_secp256r1_sha256. No SNI (the default
/// certificate), no ALPN, no PSK. The random differs per flow `i`.
pub fn client_hello(i: u32) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    let mut w = 0;
    let mut put = |b: &[u8]| {
        h[w..w + b.len()].copy_from_slice(b);
        w += b.len();
    };
    put(&[22, 3, 1, 0, 116]); // record: handshake, legacy version, length
    put(&[1, 0, 0, 112, 3, 3]); // ClientHello, length, legacy_version
    let mut random = [0x5au8; 32];
    random[..4].copy_from_slice(&i.to_be_bytes());
    put(&random);
    put(&[0]); // legacy_session_id
    put(&[0, 6, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01]); // cipher suites
    put(&[1, 0]); // compression: null
    put(&[0, 65]); // extensions
    put(&[0, 0x2b, 0, 3, 2, 3, 4]); // supported_versions: TLS 1.3
    put(&[0, 0x0a, 0, 4, 0, 2, 0, 0x1d]); // supported_groups: x25519
    put(&[0, 0x0d, 0, 4, 0, 2, 4, 3]); // signature_algorithms: ecdsa_secp256r1_sha256
    put(&[0, 0x33, 0, 38, 0, 36, 0, 0x1d, 0, 32, 9]); // key_share: x25519, u = 9
    debug_assert_eq!(w + 31, HELLO_LEN); // the share's 31 zero bytes follow
    h
}

/// The i-th malformed frame (cycling through 8 defects).
fn malformed(ep: &Endpoints, i: u32) -> Vec<u8> {
    let (src, sport) = client(i);
    let good = |dst, dport| {
        tcp_frame(
            ep,
            &Tcp {
                src,
                dst,
                sport,
                dport,
                seq: i,
                ack: 1,
                flags: ACK,
                options: &[],
                payload: b"xx",
            },
            i as u16,
        )
    };
    let mut f = good(ep.vip, ep.vip_port);
    match i % 8 {
        0 => f.truncate(24),                           // IPv4 header cut short
        1 => f[14] = 0x4f,                             // IHL 15: options past the end
        2 => f[16..18].copy_from_slice(&[0xff, 0xff]), // total length past the frame
        3 => f[24] ^= 0x55,                            // bad IPv4 header checksum
        4 => f[46] = 0xf0,                             // TCP data offset 60: past the end
        5 => f[20..22].copy_from_slice(&[0x20, 0x10]), // a fragment (MF, offset 16)
        6 => {
            f = good(ep.dip, ep.dip_port);
            f[14] = 0x44; // IHL 4: shorter than a header
        }
        _ => f[50] ^= 0xaa, // bad TCP checksum
    }
    if f.len() < ETH_MIN {
        f.resize(ETH_MIN, 0);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            dip: Ipv4Addr::new(198, 18, 0, 10),
            dip_port: 80,
            vip: Ipv4Addr::new(198, 18, 0, 1),
            vip_port: 80,
        }
    }

    #[test]
    fn checksums_verify() {
        for kind in [
            Kind::Flows,
            Kind::Syn,
            Kind::SynFlood,
            Kind::Requests,
            Kind::Hellos,
        ] {
            for t in templates(&ep(), kind, 300, &|_, _, _| 7) {
                let f = &t.bytes;
                assert_eq!(fold(sum16(&f[14..34], 0)), 0, "{kind:?} ip");
                let ip_len = u16::from_be_bytes([f[16], f[17]]) as usize;
                let tcp = &f[34..14 + ip_len];
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&f[26..34]);
                pseudo.extend_from_slice(&[0, 6]);
                pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                assert_eq!(fold(sum16(tcp, sum16(&pseudo, 0))), 0, "{kind:?} tcp");
                assert!(f.len() >= 60);
            }
        }
    }

    /// What `stamp()` in gen.bpf.c does, step by step (RFC 1624 on 16-bit big-endian words).
    fn stamp_like_bpf(f: &mut [u8], so: usize, co: usize, mark: u16, now: u64) {
        let mut st = [0u8; 8];
        st[..2].copy_from_slice(&mark.to_be_bytes());
        st[2..].copy_from_slice(&now.to_be_bytes()[2..]);
        let mut sum = u32::from(!u16::from_be_bytes([f[co], f[co + 1]]));
        for i in (0..8).step_by(2) {
            let old = u16::from_be_bytes([f[so + i], f[so + i + 1]]);
            let new = u16::from_be_bytes([st[i], st[i + 1]]);
            sum += u32::from(!old) + u32::from(new);
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        let c = !(sum as u16);
        f[so..so + 8].copy_from_slice(&st);
        f[co..co + 2].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn stamped_flows_keep_valid_checksums() {
        for t in templates(&ep(), Kind::Flows, 300, &|_, _, _| 0) {
            let t = t.with_stamp();
            let (so, co, mark) = t.stamp.expect("flows are stamped");
            for now in [
                0u64,
                1,
                0xffff,
                0x1234_5678_9abc,
                u64::MAX,
                1_764_000_000_123_456_789,
            ] {
                let mut f = t.bytes.clone();
                stamp_like_bpf(&mut f, so as usize, co as usize, mark, now);
                let tcp = &f[34..60];
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&f[26..34]);
                pseudo.extend_from_slice(&[0, 6]);
                pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                assert_eq!(fold(sum16(tcp, sum16(&pseudo, 0))), 0, "now {now:#x}");
                assert_eq!(u16::from_be_bytes([f[52], f[53]]), crate::lat::MARK);
            }
        }
        let syn = templates(&ep(), Kind::Syn, 1, &|_, _, _| 0).remove(0);
        assert!(syn.with_stamp().stamp.is_none());
    }

    #[test]
    fn flows_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            assert!(seen.insert(client(i)));
        }
    }

    #[test]
    fn client_hello_lengths_are_consistent() {
        let h = client_hello(7);
        let n = |a: usize| usize::from(u16::from_be_bytes([h[a], h[a + 1]]));
        assert_eq!(n(3), h.len() - 5); // record
        assert_eq!((h[5], h[6]), (1, 0)); // ClientHello, 24-bit length
        assert_eq!(n(7), h.len() - 9);
        // extensions: after version 2, random 32, session id 1, suites 2 + 6, compression 2
        let ext = 9 + 2 + 32 + 1 + 8 + 2;
        assert_eq!(n(ext), h.len() - ext - 2);
        // each extension's length fits exactly
        let mut at = ext + 2;
        let mut types = Vec::new();
        while at < h.len() {
            types.push(n(at));
            at += 4 + n(at + 2);
        }
        assert_eq!(at, h.len());
        assert_eq!(types, [0x2b, 0x0a, 0x0d, 0x33]);
        assert_eq!(&h[h.len() - 32..h.len() - 31], &[9]);
        assert_ne!(client_hello(1)[11..43], client_hello(2)[11..43]);
    }
}
