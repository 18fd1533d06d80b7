//! Property tests over sequences of frames through one worker: handshakes (some with their
//! segments reordered), forged requests, traffic to DIPs, replies of reals on either port,
//! mutated frames, configuration changes and clock jumps, interleaved. After every frame:
//! - a transmitted frame carries valid checksums (a forwarded frame whose own L4 checksum
//!   was already wrong keeps it wrong: the real's stack drops it);
//! - a frame to a DIP only ever leaves toward that DIP's real or its backup;
//! - nothing leaves toward an address the config does not name: out of the server port only
//!   to a real (its address and MAC), out of the client port only back to the sender or,
//!   for a real's reply, to the client it was for, through the gateway;
//! - no HTTP payload without a completed cookie handshake: a segment the responder sends
//!   with data continues a SYN-ACK it sent that client;
//! - `Location` holds only URI characters;
//! - and, after each sequence, the tables stay within their bounds.
//!
//! Checks use the plain RFC 1071 sum in `frames`, never the dataplane's own code.

mod frames;

use detour_config::{model::load, Snapshot};
use detour_dataplane::{
    Port, Verdict, Worker, WorkerConfig, BACKUP_FLOW_PER_PEER, BACKUP_FLOW_SLOTS, CLIENT,
    HEAD_PER_PEER, HEAD_SLOTS, SERVER,
};
use frames::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// DIP_NAT's real fails over to DIP_B's in the "down" config; DIP_SAME's real is at its own
/// address. Two URLs, one copying the client's Host.
const UP: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
dip 198.18.0.4 real 198.18.1.4:8080
url nat http://nat.lab/%d
url host http://%h/x/%d
link nat 198.18.0.2
bind 198.18.0.1 nat host
backup 198.18.0.2 198.18.0.4
";

fn down() -> String {
    format!("{UP}out-of-service real 198.18.0.2 failed\n")
}

fn snapshot(conf: &str) -> Arc<Snapshot> {
    let m = load(conf, "seq.conf").unwrap_or_else(|e| panic!("config refused: {e:?}"));
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        if let std::net::IpAddr::V4(a) = r.addr.ip() {
            r.mac = real_mac(a.octets());
        }
    }
    Arc::new(s)
}

/// An address and port.
type Addr = ([u8; 4], u16);

/// (DIP, its real, its backup real).
const DIPS: [([u8; 4], Addr, Option<Addr>); 3] = [
    (
        DIP_NAT,
        (REAL_NAT, REAL_NAT_PORT),
        Some((REAL_B, REAL_B_PORT)),
    ),
    (DIP_SAME, (DIP_SAME, 80), None),
    (DIP_B, (REAL_B, REAL_B_PORT), None),
];
const REALS: [Addr; 3] = [
    (REAL_NAT, REAL_NAT_PORT),
    (DIP_SAME, 80),
    (REAL_B, REAL_B_PORT),
];
const OWNED: [[u8; 4]; 4] = [VIP, DIP_NAT, DIP_SAME, DIP_B];

/// Clients: a few addresses, so tuples repeat across operations.
fn client(i: u8) -> [u8; 4] {
    [198, 19, 0, 1 + i % 4]
}

#[derive(Clone, Debug)]
enum Op {
    /// SYN, then the head in pieces (the first two swapped when `swap`), the last with FIN.
    Handshake {
        c: u8,
        sport: u16,
        head: Vec<u8>,
        cuts: Vec<prop::sample::Index>,
        swap: bool,
        fin: bool,
    },
    /// A data segment to the VIP with any ack: no handshake behind it.
    Forged {
        c: u8,
        sport: u16,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
    },
    /// A TCP segment (any flags) or UDP datagram to a DIP.
    ToDip {
        c: u8,
        sport: u16,
        dip: usize,
        flags: u8,
        udp: bool,
    },
    /// A real's reply to a client, on either port.
    FromReal {
        real: usize,
        c: u8,
        cport: u16,
        flags: u8,
        port: bool,
    },
    /// A valid frame of some kind with bytes changed or cut, on either port.
    Mangled {
        kind: usize,
        edits: Vec<(prop::sample::Index, u8)>,
        cut: Option<prop::sample::Index>,
        port: bool,
    },
    /// The other configuration (the NAT real up or failed), with or without a clock.
    Toggle { with_clock: bool },
    /// The clock moves on.
    Tick(u64),
}

fn head() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("GET"), Just("HEAD"), Just("POST")],
        "/[ -~]{0,40}",
        proptest::option::of("[ -~]{0,30}"),
    )
        .prop_map(|(m, path, host)| {
            let mut h = format!("{m} {path} HTTP/1.1\r\n");
            if let Some(host) = host {
                h.push_str(&format!("Host: {host}\r\n"));
            }
            h.push_str("\r\n");
            h.into_bytes()
        })
}

fn op() -> impl Strategy<Value = Op> {
    let sport = prop_oneof![Just(40000u16), 1u16..];
    prop_oneof![
        4 => (any::<u8>(), sport.clone(), head(), prop::collection::vec(any::<prop::sample::Index>(), 0..3), prop::bool::weighted(0.3), prop::bool::weighted(0.2))
            .prop_map(|(c, sport, head, cuts, swap, fin)| Op::Handshake { c, sport, head, cuts, swap, fin }),
        1 => (any::<u8>(), sport.clone(), any::<u32>(), any::<u32>(), prop::collection::vec(any::<u8>(), 1..60))
            .prop_map(|(c, sport, seq, ack, payload)| Op::Forged { c, sport, seq, ack, payload }),
        3 => (any::<u8>(), sport.clone(), 0..DIPS.len(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(c, sport, dip, flags, udp)| Op::ToDip { c, sport, dip, flags, udp }),
        3 => (0..REALS.len(), any::<u8>(), sport, any::<u8>(), prop::bool::weighted(0.8))
            .prop_map(|(real, c, cport, flags, port)| Op::FromReal { real, c, cport, flags, port }),
        2 => (0..6usize, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), proptest::option::of(any::<prop::sample::Index>()), any::<bool>())
            .prop_map(|(kind, edits, cut, port)| Op::Mangled { kind, edits, cut, port }),
        1 => any::<bool>().prop_map(|with_clock| Op::Toggle { with_clock }),
        1 => (0u64..70_000).prop_map(Op::Tick),
    ]
}

/// What a sequence has seen: the clock, the config in force, and the cookies the worker
/// sent each client tuple in SYN-ACKs.
struct Run {
    w: Worker,
    now: u64,
    up: bool,
    cookies: HashMap<([u8; 4], u16), Vec<u32>>,
}

impl Run {
    fn new() -> Run {
        let cfg = WorkerConfig {
            macs: US,
            cookie_secret: SECRET,
            table_key: TABLE_KEY,
            kernel_addrs: Vec::new(),
            one_armed: false,
        };
        Run {
            w: Worker::new(cfg, snapshot(UP)),
            now: NOW_MS,
            up: true,
            cookies: HashMap::new(),
        }
    }

    /// One frame in; every invariant checked on what comes out. Returns the output.
    fn send(&mut self, f: &[u8], port: Port) -> Result<Option<Vec<u8>>, TestCaseError> {
        let (v, out) = run_cap(&mut self.w, f, port, BUF, self.now);
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
        prop_assert!(out.len() >= 14, "a {}-byte frame sent", out.len());
        let in_src_mac: [u8; 6] = input[6..12].try_into().unwrap();
        let out_dst_mac: [u8; 6] = out[0..6].try_into().unwrap();
        prop_assert_eq!(
            &out[6..12],
            &US[out_port.0 as usize][..],
            "our MAC as the source"
        );
        if be16(out, 12) == 0x0806 {
            prop_assert_eq!(
                out_port,
                in_port,
                "an ARP reply leaves where the request came"
            );
            prop_assert_eq!(&out_dst_mac[..], &input[22..28], "to the request's sender");
            return Ok(());
        }
        let Some((ihl, total)) = ipv4_bounds(out) else {
            return Err(TestCaseError::fail(
                "a transmitted frame that is not IPv4 or ARP",
            ));
        };
        prop_assert!(ip_header_valid(out), "IPv4 header checksum");
        let dst: [u8; 4] = out[30..34].try_into().unwrap();
        let proto = out[23];
        let in_ip = ipv4_bounds(input).map(|_| {
            let s: [u8; 4] = input[26..30].try_into().unwrap();
            let d: [u8; 4] = input[30..34].try_into().unwrap();
            (s, d)
        });
        // Checksums of the L4 part.
        match proto {
            6 | 17 => {
                let field = l4_checksum_field(out);
                let ok = field == recomputed_l4_checksum(out) || (proto == 17 && field == 0);
                let input_was_bad = ipv4_bounds(input).is_some()
                    && input[23] == proto
                    && l4_checksum_field(input) != recomputed_l4_checksum(input)
                    && !(proto == 17 && l4_checksum_field(input) == 0);
                prop_assert!(
                    ok || input_was_bad,
                    "L4 checksum {:#06x}, recomputed {:#06x}",
                    field,
                    recomputed_l4_checksum(out)
                );
            }
            1 => prop_assert_eq!(
                ones_sum(0, &out[14 + ihl..14 + total]),
                0xffff,
                "ICMP checksum"
            ),
            p => prop_assert!(false, "protocol {} sent", p),
        }
        let (in_src, in_dst) = in_ip.expect("IPv4 out of IPv4 in");
        let src: [u8; 4] = out[26..30].try_into().unwrap();
        if out_port == in_port && dst == in_src && out_dst_mac == in_src_mac && OWNED.contains(&src)
        {
            // An answer back to the sender (the responder, echo), from an owned address.
            if proto == 6 {
                self.check_responder(out)?;
            }
            return Ok(());
        }
        if out_port == SERVER {
            // Otherwise only toward a real: its address, its MAC.
            let Some(&(real, _)) = REALS.iter().find(|(a, _)| *a == dst) else {
                return Err(TestCaseError::fail(format!("sent to {dst:?}, not a real")));
            };
            prop_assert_eq!(out_dst_mac, real_mac(real));
            if let Some((_, own, backup)) = DIPS.iter().find(|(d, _, _)| *d == in_dst) {
                if proto != 1 {
                    let dport = be16(out, 14 + ihl + 2);
                    let to = (dst, dport);
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
        // Out of the client port and not an answer: a real's reply (from the server port) on
        // to its client through the gateway, as from a DIP.
        prop_assert_eq!(
            in_port,
            SERVER,
            "forwarded from the client port back to the client side"
        );
        prop_assert_eq!(out_dst_mac, GW);
        prop_assert_eq!(dst, in_dst);
        prop_assert!(OWNED.contains(&src), "a reply to a client from {:?}", src);
        Ok(())
    }

    /// A TCP segment the responder sent a client.
    fn check_responder(&mut self, out: &[u8]) -> Result<(), TestCaseError> {
        let t = tcp_view(out).unwrap();
        if t.flags == SYN | ACK {
            self.cookies
                .entry((t.dst, t.dport))
                .or_default()
                .push(t.seq);
            return Ok(());
        }
        if t.payload.is_empty() {
            return Ok(());
        }
        let ours = self.cookies.get(&(t.dst, t.dport));
        prop_assert!(
            ours.is_some_and(|cs| cs.contains(&t.seq.wrapping_sub(1))),
            "{} bytes of payload to {:?}:{} without a handshake (seq {:#x})",
            t.payload.len(),
            t.dst,
            t.dport,
            t.seq
        );
        let text = &t.payload[..];
        if let Some(at) = find(text, b"\r\nLocation: ") {
            let rest = &text[at + 12..];
            let end = find(rest, b"\r\n").unwrap_or(rest.len());
            for &b in &rest[..end] {
                prop_assert!(
                    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b),
                    "byte {:#04x} in Location {:?}",
                    b,
                    String::from_utf8_lossy(&rest[..end])
                );
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Handshake {
                c,
                sport,
                head,
                cuts,
                swap,
                fin,
            } => {
                let mut syn = Seg::from_client(VIP, 80).syn();
                syn.src = client(*c);
                syn.sport = *sport;
                syn.seq = u32::from(*sport).wrapping_mul(0x9e37_79b9);
                let Some(out) = self.send(&syn.tcp(), CLIENT)? else {
                    return Ok(());
                };
                let cookie = tcp_view(&out).unwrap().seq;
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(head.len())).collect();
                at.push(0);
                at.push(head.len());
                at.sort_unstable();
                at.dedup();
                let mut segs: Vec<Seg> = at
                    .windows(2)
                    .map(|w| {
                        let mut s = syn.clone();
                        s.syn = false;
                        s.mss = None;
                        s.psh = true;
                        s.seq = syn.seq.wrapping_add(1 + w[0] as u32);
                        s.ack = Some(cookie.wrapping_add(1));
                        s.payload = head[w[0]..w[1]].to_vec();
                        s
                    })
                    .collect();
                if *fin {
                    segs.last_mut().unwrap().fin = true;
                }
                if *swap && segs.len() > 1 {
                    segs.swap(0, 1);
                }
                for s in segs {
                    self.send(&s.tcp(), CLIENT)?;
                }
            }
            Op::Forged {
                c,
                sport,
                seq,
                ack,
                payload,
            } => {
                let mut s = Seg::from_client(VIP, 80).with_seq(*seq).with_ack(*ack);
                s.src = client(*c);
                s.sport = *sport;
                s.payload = payload.clone();
                self.send(&s.tcp(), CLIENT)?;
            }
            Op::ToDip {
                c,
                sport,
                dip,
                flags,
                udp,
            } => {
                let mut s = Seg::from_client(DIPS[*dip].0, 80);
                s.src = client(*c);
                s.sport = *sport;
                s.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
                let f = if *udp {
                    s.udp()
                } else {
                    with_flags(s.tcp(), *flags)
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
                let mut s = Seg::from_client(client(*c), *cport);
                s.src_mac = if *port { real_mac(ip) } else { GW };
                s.dst_mac = US[usize::from(*port)];
                s.src = ip;
                s.sport = rport;
                s.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
                let f = with_flags(s.tcp(), *flags);
                self.send(&f, if *port { SERVER } else { CLIENT })?;
            }
            Op::Mangled {
                kind,
                edits,
                cut,
                port,
            } => {
                let mut f = template(*kind);
                for (i, b) in edits {
                    let i = i.index(f.len());
                    f[i] = *b;
                }
                if let Some(c) = cut {
                    f.truncate(c.index(f.len() + 1));
                }
                self.send(&f, if *port { SERVER } else { CLIENT })?;
            }
            Op::Toggle { with_clock } => {
                self.up = !self.up;
                let s = if self.up {
                    snapshot(UP)
                } else {
                    snapshot(&down())
                };
                if *with_clock {
                    self.w.install_at(s, self.now);
                } else {
                    self.w.install(s);
                }
            }
            Op::Tick(ms) => self.now += ms,
        }
        Ok(())
    }

    fn check_tables(&self) -> Result<(), TestCaseError> {
        let [(heads, head_cap), (flows, flow_cap)] = self.w.occupancy(self.now);
        prop_assert_eq!(head_cap, HEAD_SLOTS);
        prop_assert_eq!(flow_cap, BACKUP_FLOW_SLOTS);
        prop_assert!(heads <= head_cap && flows <= flow_cap);
        let [h, f] = self.w.most_per_client(self.now);
        prop_assert!(
            h <= HEAD_PER_PEER && f <= BACKUP_FLOW_PER_PEER,
            "{} / {} ways per client",
            h,
            f
        );
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `f` with its TCP flags byte set to `flags` and its checksum recomputed by hand.
fn with_flags(mut f: Vec<u8>, flags: u8) -> Vec<u8> {
    f[14 + 20 + 13] = flags;
    let c = recomputed_l4_checksum(&f);
    f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// Valid frames of several kinds, to be mangled.
fn template(kind: usize) -> Vec<u8> {
    match kind {
        0 => Seg::from_client(VIP, 80).syn().tcp(),
        1 => Seg::from_client(DIP_NAT, 80)
            .with_ack(9)
            .with_payload(b"GET /")
            .tcp(),
        2 => {
            let mut s = Seg::from_client(CLIENT_IP, 40000).with_ack(1);
            s.src_mac = real_mac(REAL_NAT);
            s.dst_mac = US[1];
            s.src = REAL_NAT;
            s.sport = REAL_NAT_PORT;
            s.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            s.tcp()
        }
        3 => icmp_frame(
            GW,
            US[0],
            CLIENT_IP,
            VIP,
            64,
            1,
            [8, 0, 0, 0, 0, 1, 0, 1],
            b"ping",
        ),
        4 => {
            let mut q = Seg::from_client(CLIENT_IP, 40000).with_ack(1);
            q.src = DIP_NAT;
            q.sport = 80;
            icmp_frame(
                GW,
                US[0],
                [198, 18, 0, 254],
                DIP_NAT,
                64,
                2,
                [3, 4, 0, 0, 0, 0, 5, 0x78],
                &q.tcp_ip()[..28],
            )
        }
        _ => arp(GW, BROADCAST, 1, GW, CLIENT_IP, [0; 6], DIP_NAT),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sequences_of_frames_keep_every_invariant(ops in prop::collection::vec(op(), 1..48)) {
        let mut r = Run::new();
        for op in &ops {
            r.apply(op)?;
        }
        r.check_tables()?;
    }
}
