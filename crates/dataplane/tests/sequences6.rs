//! Property tests over sequences of IPv6 frames through one worker (the IPv6 counterpart of
//! `sequences.rs`): handshakes to a `[VIP]:80` (split, reordered), forged requests, TCP and
//! UDP to `[DIP]`s, replies of reals on either port, neighbour solicitations, echo, packet
//! too big both ways, mangled frames and configuration changes, interleaved. After every frame:
//! - a transmitted frame carries valid checksums over the IPv6 pseudo-header (a forwarded
//!   frame whose own checksum was already wrong keeps it wrong);
//! - a frame to a DIP only ever leaves toward that DIP's real or its backup;
//! - nothing leaves toward an address the config does not name: out of the server port only
//!   to a real (its address and MAC), out of the client port only back to the sender (or to
//!   all nodes, for duplicate address detection) or, for a real's reply, to its client
//!   through the gateway;
//! - no HTTP payload without a completed cookie handshake; `Location` holds only URI
//!   characters; after each sequence, the tables stay within their bounds.
//!
//! Frames are built with etherparse or by hand; checks use the plain RFC 1071 sum of `frames`.

mod frames;

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Port, Verdict, Worker, WorkerConfig, CLIENT, HEAD_SLOTS, SERVER};
use etherparse::{IcmpEchoHeader, Icmpv6Type, PacketBuilder, TcpHeader};
use frames::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

const UP: &str = "\
virtual [2001:db8::1]:80
dip [2001:db8::2] real [2001:db8:1::2]:8080
dip [2001:db8::3]
dip [2001:db8::4] real [2001:db8:1::4]:8080
url nat http://[2001:db8::2]/%d
url host http://%h/x/%d
bind [2001:db8::1] nat host
backup [2001:db8::2] [2001:db8::4]
";

type A6 = [u8; 16];

const fn v6(net: u8, host: u8) -> A6 {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
    ]
}

const VIP6: A6 = v6(0, 1);
/// An address and port.
type Addr = (A6, u16);

/// (DIP, its real, its backup real).
const DIPS: [(A6, Addr, Option<Addr>); 3] = [
    (v6(0, 2), (v6(1, 2), 8080), Some((v6(1, 4), 8080))),
    (v6(0, 3), (v6(0, 3), 80), None),
    (v6(0, 4), (v6(1, 4), 8080), None),
];
const REALS: [Addr; 3] = [(v6(1, 2), 8080), (v6(0, 3), 80), (v6(1, 4), 8080)];
const OWNED: [A6; 4] = [VIP6, v6(0, 2), v6(0, 3), v6(0, 4)];
/// A router on the server side (the source of some packet-too-big messages).
const SERVER_ROUTER: A6 = v6(1, 0xfe);
const ALL_NODES: A6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn client(i: u8) -> A6 {
    v6(0x20, 1 + i % 4)
}

fn snapshot(conf: &str) -> Arc<Snapshot> {
    let m = load(conf, "seq6.conf").unwrap_or_else(|e| panic!("config refused: {e:?}"));
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        if let std::net::IpAddr::V6(a) = r.addr.ip() {
            r.mac = real_mac6(a.octets());
        }
    }
    Arc::new(s)
}

/// A TCP segment (`flags` the raw byte) in an Ethernet/IPv6 frame; checksums by etherparse.
#[allow(clippy::too_many_arguments)]
fn tcp6(
    macs: ([u8; 6], [u8; 6]),
    src: A6,
    dst: A6,
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
    t.acknowledgment_number = ack;
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src, dst, 64)
        .tcp_header(t)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn udp6(macs: ([u8; 6], [u8; 6]), src: A6, dst: A6, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src, dst, 64)
        .udp(ports.0, ports.1)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// An ICMPv6 message by hand, checksum summed here.
fn icmp6(
    macs: ([u8; 6], [u8; 6]),
    src: A6,
    dst: A6,
    hop: u8,
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
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(m.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, hop]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = !(ones_sum(pseudo(&src, &dst, 58, m.len()), &m) as u16);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&m);
    f
}

fn pseudo(src: &[u8], dst: &[u8], next: u8, len: usize) -> u32 {
    let mut p = src.to_vec();
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next]);
    ones_sum(0, &p)
}

/// A neighbour solicitation from `src` (MAC GW) for `target`.
fn ns(src: A6, target: A6) -> Vec<u8> {
    let dst = [
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, target[13], target[14], target[15],
    ];
    let mut body = vec![0; 4];
    body.extend_from_slice(&target);
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&GW);
    icmp6(
        (GW, [0x33, 0x33, 0xff, target[13], target[14], target[15]]),
        src,
        dst,
        255,
        [135, 0, 0, 0],
        &body,
    )
}

/// Packet too big quoting `q_src:q_sport -> q_dst:q_dport` (IPv6 header + 8 bytes of TCP).
fn ptb(macs: ([u8; 6], [u8; 6]), src: A6, dst: A6, q: (A6, u16, A6, u16)) -> Vec<u8> {
    let mut b = 1280u32.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 63]);
    b.extend_from_slice(&q.0);
    b.extend_from_slice(&q.2);
    b.extend_from_slice(&q.1.to_be_bytes());
    b.extend_from_slice(&q.3.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 1]);
    icmp6(macs, src, dst, 64, [2, 0, 0, 0], &b)
}

#[derive(Clone, Debug)]
enum Op {
    Handshake {
        c: u8,
        sport: u16,
        head: Vec<u8>,
        cut: Option<prop::sample::Index>,
        swap: bool,
    },
    Forged {
        c: u8,
        sport: u16,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
    },
    ToDip {
        c: u8,
        sport: u16,
        dip: usize,
        flags: u8,
        udp: bool,
    },
    FromReal {
        real: usize,
        c: u8,
        cport: u16,
        flags: u8,
        port: bool,
    },
    Icmp {
        kind: usize,
        c: u8,
        which: usize,
    },
    Mangled {
        kind: usize,
        edits: Vec<(prop::sample::Index, u8)>,
        cut: Option<prop::sample::Index>,
        port: bool,
    },
    Toggle,
}

fn op() -> impl Strategy<Value = Op> {
    let sport = prop_oneof![Just(40000u16), 1u16..];
    prop_oneof![
        4 => (any::<u8>(), sport.clone(), "GET /[ -~]{0,40} HTTP/1.1\r\n(Host: [ -~]{0,20}\r\n)?\r\n", proptest::option::of(any::<prop::sample::Index>()), prop::bool::weighted(0.3))
            .prop_map(|(c, sport, head, cut, swap)| Op::Handshake { c, sport, head: head.into_bytes(), cut, swap }),
        1 => (any::<u8>(), sport.clone(), any::<u32>(), any::<u32>(), prop::collection::vec(any::<u8>(), 1..60))
            .prop_map(|(c, sport, seq, ack, payload)| Op::Forged { c, sport, seq, ack, payload }),
        3 => (any::<u8>(), sport.clone(), 0..DIPS.len(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(c, sport, dip, flags, udp)| Op::ToDip { c, sport, dip, flags, udp }),
        3 => (0..REALS.len(), any::<u8>(), sport, any::<u8>(), prop::bool::weighted(0.8))
            .prop_map(|(real, c, cport, flags, port)| Op::FromReal { real, c, cport, flags, port }),
        2 => (0..4usize, any::<u8>(), 0..4usize).prop_map(|(kind, c, which)| Op::Icmp { kind, c, which }),
        2 => (0..5usize, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), proptest::option::of(any::<prop::sample::Index>()), any::<bool>())
            .prop_map(|(kind, edits, cut, port)| Op::Mangled { kind, edits, cut, port }),
        1 => Just(Op::Toggle),
    ]
}

/// The ICMPv6 frames of `Op::Icmp` and the mangled templates.
fn icmp_frame(kind: usize, c: A6, which: usize) -> (Vec<u8>, Port) {
    let real = REALS[which % 3];
    let dip = DIPS[which % 3].0;
    match kind {
        0 => (
            ns(if which == 3 { [0; 16] } else { c }, OWNED[which]),
            CLIENT,
        ),
        1 => {
            let e = IcmpEchoHeader {
                id: 1,
                seq: which as u16,
            };
            let mut out = Vec::new();
            PacketBuilder::ethernet2(GW, US[0])
                .ipv6(c, OWNED[which], 64)
                .icmpv6(Icmpv6Type::EchoRequest(e))
                .write(&mut out, b"ping")
                .unwrap();
            (out, CLIENT)
        }
        2 => (
            ptb(
                (real_mac6(real.0), US[1]),
                if which == 3 { SERVER_ROUTER } else { real.0 },
                c,
                (c, 40000, real.0, real.1),
            ),
            SERVER,
        ),
        _ => (
            ptb((GW, US[0]), v6(0, 0xfe), dip, (dip, 80, c, 40000)),
            CLIENT,
        ),
    }
}

/// An IPv6 frame's upper layer: (protocol, offset), after the simple extension headers.
fn upper(f: &[u8]) -> Option<(u8, usize)> {
    let mut next = f[20];
    let mut at = 54;
    for _ in 0..8 {
        if !matches!(next, 0 | 43 | 60) {
            return Some((next, at));
        }
        let h = f.get(at..at + 2)?;
        next = h[0];
        at += (usize::from(h[1]) + 1) * 8;
    }
    None
}

/// Whether an IPv6 frame's TCP/UDP/ICMPv6 checksum verifies.
fn l4_ok(f: &[u8]) -> bool {
    let Some((p, at)) = upper(f) else {
        return false;
    };
    let end = 54 + usize::from(be16(f, 18));
    let Some(seg) = f.get(at..end) else {
        return false;
    };
    matches!(p, 6 | 17 | 58)
        && ones_sum(pseudo(&f[22..38], &f[38..54], p, seg.len()), seg) == 0xffff
}

struct Run {
    w: Worker,
    up: bool,
    cookies: HashMap<(A6, u16), Vec<u32>>,
}

impl Run {
    fn send(&mut self, f: &[u8], port: Port) -> Result<Option<Vec<u8>>, TestCaseError> {
        let (v, out) = run_cap(&mut self.w, f, port, BUF, NOW_MS);
        let Verdict::Tx { port: out_port, .. } = v else {
            return Ok(None);
        };
        self.check(f, port, out_port, &out)?;
        Ok(Some(out))
    }

    fn check(
        &mut self,
        input: &[u8],
        in_port: Port,
        out_port: Port,
        out: &[u8],
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            &out[6..12],
            &US[out_port.0 as usize][..],
            "our MAC as the source"
        );
        prop_assert!(out.len() >= 54 && be16(out, 12) == 0x86dd, "an IPv6 frame");
        prop_assert_eq!(out.len(), 54 + usize::from(be16(out, 18)), "length");
        let (proto, at) = upper(out).ok_or_else(|| TestCaseError::fail("no upper layer"))?;
        prop_assert!(
            l4_ok(out) || (input.len() >= 54 && !l4_ok(input) && proto != 58),
            "checksum of protocol {}",
            proto
        );
        let a6 = |f: &[u8], at: usize| -> A6 { f[at..at + 16].try_into().unwrap() };
        let (src, dst) = (a6(out, 22), a6(out, 38));
        let (in_src, in_dst) = (a6(input, 22), a6(input, 38));
        let dst_mac: [u8; 6] = out[0..6].try_into().unwrap();
        if out_port == in_port && OWNED.contains(&src) && (dst == in_src || dst == ALL_NODES) {
            // An answer (responder, echo, advertisement) from an owned address.
            if proto == 6 {
                prop_assert_eq!(&dst_mac[..], &input[6..12]);
                self.check_responder(out, at)?;
            }
            return Ok(());
        }
        if out_port == SERVER {
            let Some(&(real, _)) = REALS.iter().find(|(a, _)| *a == dst) else {
                return Err(TestCaseError::fail(format!("sent to {dst:?}, not a real")));
            };
            prop_assert_eq!(dst_mac, real_mac6(real));
            if let Some((_, own, backup)) = DIPS.iter().find(|(d, _, _)| *d == in_dst) {
                if proto != 58 {
                    let to = (dst, be16(out, at + 2));
                    prop_assert!(
                        to == *own || Some(to) == *backup,
                        "a frame to DIP {:?} sent to {:?}",
                        in_dst,
                        to
                    );
                }
            }
            return Ok(());
        }
        prop_assert_eq!(
            in_port,
            SERVER,
            "forwarded from the client port back to the client side"
        );
        prop_assert_eq!(dst_mac, GW);
        prop_assert_eq!(dst, in_dst);
        // From a DIP; or an ICMPv6 error from the server-side router, which keeps its source.
        prop_assert!(
            OWNED.contains(&src) || (proto == 58 && src == SERVER_ROUTER),
            "a reply to a client from {:?}",
            src
        );
        Ok(())
    }

    fn check_responder(&mut self, out: &[u8], at: usize) -> Result<(), TestCaseError> {
        let t = &out[at..];
        let (dport, seq, flags) = (be16(t, 2), be32(t, 4), t[13]);
        let dst: A6 = out[38..54].try_into().unwrap();
        if flags == SYN | ACK {
            self.cookies.entry((dst, dport)).or_default().push(seq);
            return Ok(());
        }
        let payload = &t[usize::from(t[12] >> 4) * 4..];
        if payload.is_empty() {
            return Ok(());
        }
        let ours = self.cookies.get(&(dst, dport));
        prop_assert!(
            ours.is_some_and(|cs| cs.contains(&seq.wrapping_sub(1))),
            "payload without a handshake"
        );
        if let Some(i) = payload.windows(12).position(|w| w == b"\r\nLocation: ") {
            let rest = &payload[i + 12..];
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(rest.len());
            for &b in &rest[..end] {
                prop_assert!(
                    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b),
                    "byte {:#04x} in Location",
                    b
                );
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let cl = (GW, US[0]);
        match op {
            Op::Handshake {
                c,
                sport,
                head,
                cut,
                swap,
            } => {
                let isn = u32::from(*sport).wrapping_mul(0x9e37_79b9);
                let ports = (*sport, 80);
                let Some(out) =
                    self.send(&tcp6(cl, client(*c), VIP6, ports, isn, 0, SYN, b""), CLIENT)?
                else {
                    return Ok(());
                };
                let cookie = be32(&out, 54 + 4);
                let at = cut.map_or(head.len(), |i| i.index(head.len()));
                let mut segs = vec![(0, &head[..at]), (at, &head[at..])];
                segs.retain(|(_, p)| !p.is_empty());
                if *swap {
                    segs.reverse();
                }
                for (off, p) in segs {
                    let seq = isn.wrapping_add(1 + off as u32);
                    self.send(
                        &tcp6(
                            cl,
                            client(*c),
                            VIP6,
                            ports,
                            seq,
                            cookie.wrapping_add(1),
                            PSH | ACK,
                            p,
                        ),
                        CLIENT,
                    )?;
                }
            }
            Op::Forged {
                c,
                sport,
                seq,
                ack,
                payload,
            } => {
                self.send(
                    &tcp6(
                        cl,
                        client(*c),
                        VIP6,
                        (*sport, 80),
                        *seq,
                        *ack,
                        PSH | ACK,
                        payload,
                    ),
                    CLIENT,
                )?;
            }
            Op::ToDip {
                c,
                sport,
                dip,
                flags,
                udp,
            } => {
                let (d, p) = (DIPS[*dip].0, (*sport, 80));
                let f = if *udp {
                    udp6(cl, client(*c), d, p, b"q")
                } else {
                    tcp6(
                        cl,
                        client(*c),
                        d,
                        p,
                        7,
                        9,
                        *flags,
                        b"GET / HTTP/1.1\r\n\r\n",
                    )
                };
                self.send(&f, CLIENT)?;
            }
            Op::FromReal {
                real,
                c,
                cport,
                flags,
                port,
            } => {
                let (ip, rport) = REALS[*real];
                let macs = if *port {
                    (real_mac6(ip), US[1])
                } else {
                    (GW, US[0])
                };
                let f = tcp6(
                    macs,
                    ip,
                    client(*c),
                    (rport, *cport),
                    1,
                    2,
                    *flags,
                    b"HTTP/1.1 200 OK\r\n\r\n",
                );
                self.send(&f, if *port { SERVER } else { CLIENT })?;
            }
            Op::Icmp { kind, c, which } => {
                let (f, port) = icmp_frame(*kind, client(*c), *which);
                self.send(&f, port)?;
            }
            Op::Mangled {
                kind,
                edits,
                cut,
                port,
            } => {
                let mut f = match kind {
                    0 => tcp6(cl, client(0), VIP6, (40000, 80), 1, 0, SYN, b""),
                    1 => tcp6(cl, client(0), DIPS[0].0, (40000, 80), 1, 9, ACK, b"GET /"),
                    _ => icmp_frame(kind - 2, client(0), 0).0,
                };
                for (i, b) in edits {
                    let i = i.index(f.len());
                    f[i] = *b;
                }
                if let Some(c) = cut {
                    f.truncate(c.index(f.len() + 1));
                }
                self.send(&f, if *port { SERVER } else { CLIENT })?;
            }
            Op::Toggle => {
                self.up = !self.up;
                let conf = if self.up {
                    UP.to_string()
                } else {
                    format!("{UP}out-of-service real [2001:db8::2] failed\n")
                };
                self.w.install(snapshot(&conf));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ipv6_sequences_keep_every_invariant(ops in prop::collection::vec(op(), 1..40)) {
        let cfg = WorkerConfig { macs: US, cookie_secret: SECRET, table_key: TABLE_KEY, kernel_addrs: Vec::new(), one_armed: false };
        let mut r = Run { w: Worker::new(cfg, snapshot(UP)), up: true, cookies: HashMap::new() };
        for op in &ops {
            r.apply(op)?;
        }
        let [(heads, cap), _] = r.w.occupancy(NOW_MS);
        prop_assert!(heads <= cap && cap == HEAD_SLOTS);
    }
}
