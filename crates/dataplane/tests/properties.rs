//! Property tests of the data path: checksums after the incremental NAT rewrite equal a full
//! recompute, forward-then-reply restores the client's view, and the responder's cookies
//! accept exactly the handshakes they answered.
//!
//! Checksums are verified with the plain RFC 1071 sum in `frames` (never the dataplane's own
//! `csum`), and expected frames are built with etherparse.

mod frames;

use detour_dataplane::{Port, Verdict, Worker, CLIENT, SERVER};
use frames::*;
use proptest::prelude::*;

/// DIPs of both kinds on several ports: (DIP, DIP port, real, real port).
const PROP_CONF: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
dip 198.18.0.5:443 real 198.18.1.5:8443
dip 198.18.0.6:8000
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
";
const PAIRS: [([u8; 4], u16, [u8; 4], u16); 4] = [
    ([198, 18, 0, 2], 80, [198, 18, 1, 2], 8080),
    ([198, 18, 0, 3], 80, [198, 18, 0, 3], 80),
    ([198, 18, 0, 5], 443, [198, 18, 1, 5], 8443),
    ([198, 18, 0, 6], 8000, [198, 18, 0, 6], 8000),
];

/// Which checksum to force to an edge value (0x0000 / 0xFFFF), and on which side.
#[derive(Clone, Copy, Debug)]
enum Edge {
    None,
    /// The output's L4 checksum is the edge value (TCP 0x0000, UDP computed 0 sent as 0xFFFF).
    OutL4,
    /// The input's L4 checksum is the edge value.
    InL4,
    /// The output's IPv4 header checksum is 0x0000.
    OutIp,
    /// The input's IPv4 header checksum is 0x0000.
    InIp,
}

fn edge() -> impl Strategy<Value = Edge> {
    prop_oneof![
        4 => Just(Edge::None),
        1 => Just(Edge::OutL4),
        1 => Just(Edge::InL4),
        1 => Just(Edge::OutIp),
        1 => Just(Edge::InIp),
    ]
}

/// A client address outside everything the director owns (198.19.0.0/16).
fn client_ip() -> impl Strategy<Value = [u8; 4]> {
    (any::<u8>(), 1u8..=254).prop_map(|(c, d)| [198, 19, c, d])
}

#[derive(Clone, Debug)]
struct ClientFrame {
    seg: Seg,
    udp: bool,
    /// UDP sent without a checksum (0).
    no_udp_csum: bool,
    pair: usize,
    edge: Edge,
}

prop_compose! {
    fn client_frame()(
        pair in 0..PAIRS.len(),
        udp in any::<bool>(),
        no_udp_csum in prop::bool::weighted(0.2),
        src in client_ip(),
        sport in 1u16..,
        ttl in 2u8..,
        ident in any::<u16>(),
        df in any::<bool>(),
        dscp_ecn in any::<u8>(),
        opt_words in 0usize..=10,
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
        flags in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        window in any::<u16>(),
        mss in proptest::option::of(any::<u16>()),
        payload in prop::collection::vec(any::<u8>(), 0..1400),
        edge in edge(),
    ) -> ClientFrame {
        let (dip, dport, _, _) = PAIRS[pair];
        let mut seg = Seg::from_client(dip, dport);
        seg.src = src;
        seg.sport = sport;
        seg.ttl = ttl;
        seg.ident = ident;
        seg.df = df;
        seg.dscp_ecn = dscp_ecn;
        // NOPs then an end-of-options: any length the IHL allows.
        seg.ip_options = vec![1; opt_words * 4];
        if let Some(last) = seg.ip_options.last_mut() {
            *last = 0;
        }
        seg.seq = seq;
        seg.ack = ack;
        (seg.syn, seg.fin, seg.rst, seg.psh) = flags;
        seg.window = window;
        seg.mss = mss;
        seg.payload = payload;
        ClientFrame { seg, udp, no_udp_csum, pair, edge }
    }
}

impl ClientFrame {
    fn frame_of(&self, s: &Seg) -> Vec<u8> {
        let f = if self.udp { s.udp() } else { s.tcp() };
        if self.udp && self.no_udp_csum {
            let mut f = f;
            let at = 14 + s.ip_options.len() + 20 + 6;
            f[at] = 0;
            f[at + 1] = 0;
            f
        } else {
            f
        }
    }

    /// The frame the real must receive for `input`.
    fn forwarded(&self, input: &Seg) -> Seg {
        let (_, _, real, rport) = PAIRS[self.pair];
        let mut s = input.clone();
        s.src_mac = US[1];
        s.dst_mac = real_mac(real);
        s.dst = real;
        s.dport = rport;
        s.ttl -= 1;
        s
    }

    /// Apply the edge: adjust the first payload word (L4) or the IP id so that the chosen
    /// checksum takes its edge value. Returns the (input, expected output) segments.
    fn with_edge(&self) -> (Seg, Seg) {
        let mut input = self.seg.clone();
        let l4_edge = matches!(self.edge, Edge::OutL4 | Edge::InL4);
        if l4_edge && (input.payload.len() < 2 || (self.udp && self.no_udp_csum)) {
            return (input.clone(), self.forwarded(&input));
        }
        match self.edge {
            Edge::None => {}
            Edge::OutL4 | Edge::InL4 => {
                input.payload[0] = 0;
                input.payload[1] = 0;
                let side = if matches!(self.edge, Edge::OutL4) {
                    self.forwarded(&input)
                } else {
                    input.clone()
                };
                let s = l4_sum_without_checksum(&self.frame_of(&side));
                let w = (0xffff - s) as u16;
                input.payload[..2].copy_from_slice(&w.to_be_bytes());
            }
            Edge::OutIp | Edge::InIp => {
                input.ident = 0;
                let side = if matches!(self.edge, Edge::OutIp) {
                    self.forwarded(&input)
                } else {
                    input.clone()
                };
                let f = self.frame_of(&side);
                let ihl = usize::from(f[14] & 15) * 4;
                let mut h = f[14..14 + ihl].to_vec();
                h[10] = 0;
                h[11] = 0;
                input.ident = (0xffff - ones_sum(0, &h)) as u16;
            }
        }
        let out = self.forwarded(&input);
        (input, out)
    }
}

/// The one's-complement sum of pseudo-header + segment with the checksum field zeroed.
fn l4_sum_without_checksum(f: &[u8]) -> u32 {
    let (ihl, total) = ipv4_bounds(f).unwrap();
    let proto = f[23];
    let mut seg = f[14 + ihl..14 + total].to_vec();
    let at = if proto == 6 { 16 } else { 6 };
    seg[at] = 0;
    seg[at + 1] = 0;
    let mut pseudo = f[26..34].to_vec();
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    ones_sum(ones_sum(0, &pseudo), &seg)
}

/// Every checksum of an output frame equals a full recompute (UDP 0 = none stays 0 when
/// `udp_none`).
fn assert_checksums_recomputed(out: &[u8], udp_none: bool) -> Result<(), TestCaseError> {
    prop_assert!(ipv4_bounds(out).is_some(), "not IPv4");
    prop_assert_eq!(
        be16(out, 24),
        recomputed_ip_checksum(out),
        "IPv4 header checksum"
    );
    if udp_none {
        prop_assert_eq!(l4_checksum_field(out), 0, "UDP checksum 0 must stay 0");
    } else {
        prop_assert_eq!(
            l4_checksum_field(out),
            recomputed_l4_checksum(out),
            "L4 checksum"
        );
    }
    Ok(())
}

fn process(w: &mut Worker, f: &[u8], port: Port) -> (Verdict, Vec<u8>) {
    run(w, f, port)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Client -> DIP (NAT and same-address, TCP and UDP, any ports, TTLs, options): the
    /// forwarded frame is exactly the input with dst/port/TTL/MACs changed, and its IPv4 and
    /// L4 checksums equal a full recompute, including at the checksums' edge values.
    #[test]
    fn forwarded_frame_checksums_equal_full_recompute(cf in client_frame()) {
        let mut w = worker(PROP_CONF);
        let (input, want) = cf.with_edge();
        let frame = cf.frame_of(&input);
        let (v, out) = process(&mut w, &frame, CLIENT);
        prop_assert_eq!(v, Verdict::Tx { port: SERVER, len: frame.len() });
        let udp_none = cf.udp && cf.no_udp_csum;
        assert_checksums_recomputed(&out, udp_none)?;
        let expected = cf.frame_of(&want);
        prop_assert!(out == expected, "{}", hex_diff(&expected, &out));
        // The generator did put the chosen checksum at its edge value.
        let edge_l4 = if cf.udp { 0xffff } else { 0 };
        let shaped = input.payload.len() >= 2 && !udp_none;
        match cf.edge {
            Edge::OutL4 if shaped => prop_assert_eq!(l4_checksum_field(&out), edge_l4),
            Edge::InL4 if shaped => prop_assert_eq!(l4_checksum_field(&frame), edge_l4),
            Edge::OutIp => prop_assert_eq!(be16(&out, 24), 0),
            Edge::InIp => prop_assert_eq!(be16(&frame, 24), 0),
            _ => {}
        }
    }

    /// Forward then reply is the identity on the client's view: the real's answer to the
    /// forwarded frame reaches the client from DIP:port, to client:port, TTL - 1, via the
    /// gateway, payload untouched, checksums equal to a full recompute.
    #[test]
    fn forward_then_reply_restores_the_clients_view(
        cf in client_frame(),
        reply_payload in prop::collection::vec(any::<u8>(), 0..1400),
        reply_ttl in 2u8..,
        reply_seq in any::<u32>(),
        reply_ident in any::<u16>(),
        reply_no_csum in prop::bool::weighted(0.2),
    ) {
        let mut w = worker(PROP_CONF);
        let frame = cf.frame_of(&cf.seg);
        let (v, out) = process(&mut w, &frame, CLIENT);
        prop_assert_eq!(v, Verdict::Tx { port: SERVER, len: frame.len() });
        // (real, real port, client, client port) as the real received it.
        let (real, rport, client, cport) = tcp_or_udp_tuple(&out);
        // The real answers from where the frame arrived to where it came from.
        let mut reply = Seg::from_client(client, cport);
        reply.src_mac = real_mac(real);
        reply.dst_mac = US[1];
        reply.src = real;
        reply.sport = rport;
        reply.ttl = reply_ttl;
        reply.ident = reply_ident;
        reply.seq = reply_seq;
        reply.ack = Some(cf.seg.next_seq());
        reply.payload = reply_payload;
        let no_csum = cf.udp && reply_no_csum;
        let rf = ClientFrame { seg: reply.clone(), no_udp_csum: no_csum, ..cf.clone() }.frame_of(&reply);
        let (v, back) = process(&mut w, &rf, SERVER);
        prop_assert_eq!(v, Verdict::Tx { port: CLIENT, len: rf.len() });
        assert_checksums_recomputed(&back, no_csum)?;
        let (dip, dport, _, _) = PAIRS[cf.pair];
        let seen = tcp_or_udp_tuple(&back);
        prop_assert_eq!(seen, (cf.seg.src, cf.seg.sport, dip, dport), "(dst, dport, src, sport) seen by the client");
        prop_assert_eq!(&back[0..6], &GW[..]);
        prop_assert_eq!(&back[6..12], &US[0][..]);
        prop_assert_eq!(back[22], reply_ttl - 1);
        let mut expected = reply.clone();
        expected.src_mac = US[0];
        expected.dst_mac = GW;
        expected.src = dip;
        expected.sport = dport;
        expected.ttl -= 1;
        let ef = ClientFrame { seg: expected.clone(), no_udp_csum: no_csum, ..cf.clone() }.frame_of(&expected);
        prop_assert!(back == ef, "{}", hex_diff(&ef, &back));
    }

    /// Flows moved to a backup real: whatever the tuple, the backup's replies reach the
    /// client as from the original DIP:80 (not the backup's own DIP).
    #[test]
    fn backup_real_replies_come_back_as_the_original_dip(
        src in client_ip(),
        sport in 1u16..,
        isn in any::<u32>(),
        state in prop::sample::select(vec!["oos", "maintenance", "failed"]),
    ) {
        let conf = format!("virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.4 real 198.18.1.4:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.2 198.18.0.4
out-of-service real 198.18.0.2 {state}
");
        let mut w = worker(&conf);
        let mut syn = Seg::from_client(DIP_NAT, 80).syn();
        syn.src = src;
        syn.sport = sport;
        syn.seq = isn;
        let (v, out) = process(&mut w, &syn.tcp(), CLIENT);
        prop_assert!(matches!(v, Verdict::Tx { port: SERVER, .. }), "{:?}", v);
        prop_assert_eq!(tcp_or_udp_tuple(&out), (src, sport, REAL_B, REAL_B_PORT).rev());
        let mut back = syn.answer(SERVER);
        back.src_mac = real_mac(REAL_B);
        back.dst_mac = US[1];
        back.src = REAL_B;
        back.sport = REAL_B_PORT;
        back.syn = true;
        back.ack = Some(isn.wrapping_add(1));
        let (v, out) = process(&mut w, &back.tcp(), SERVER);
        prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
        prop_assert_eq!(tcp_or_udp_tuple(&out), (src, sport, DIP_NAT, 80));
        assert_checksums_recomputed(&out, false)?;
    }
}

/// (dst, dport, src, sport) of a TCP or UDP frame.
fn tcp_or_udp_tuple(f: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let (ihl, _) = ipv4_bounds(f).unwrap();
    let l4 = 14 + ihl;
    (
        f[30..34].try_into().unwrap(),
        be16(f, l4 + 2),
        f[26..30].try_into().unwrap(),
        be16(f, l4),
    )
}

trait Rev {
    fn rev(self) -> Self;
}

impl Rev for ([u8; 4], u16, [u8; 4], u16) {
    /// From (a, ap, b, bp) to (b, bp, a, ap).
    fn rev(self) -> Self {
        (self.2, self.3, self.0, self.1)
    }
}

// ---- the responder ------------------------------------------------------------------------------

const REDIRECT_CODES: [&str; 5] = ["301", "302", "303", "307", "308"];
const STATUS_CODES: [&str; 4] = ["400", "414", "431", "503"];

#[derive(Clone, Debug)]
struct Client {
    src: [u8; 4],
    sport: u16,
    isn: u32,
    mss: Option<u16>,
    /// When the request arrives after the SYN (ms), within the cookie's window.
    delay_ms: u64,
}

prop_compose! {
    fn client()(
        src in client_ip(),
        sport in 1u16..,
        isn in any::<u32>(),
        mss in proptest::option::of(536u16..),
        delay_ms in 0u64..60_000,
    ) -> Client {
        Client { src, sport, isn, mss, delay_ms }
    }
}

impl Client {
    fn syn(&self) -> Seg {
        let mut s = Seg::from_client(VIP, 80).syn();
        s.src = self.src;
        s.sport = self.sport;
        s.seq = self.isn;
        s.mss = self.mss;
        s
    }

    /// A data segment at `seq` acking `ack`.
    fn data(&self, seq: u32, ack: u32, payload: &[u8]) -> Seg {
        let mut s = Seg::from_client(VIP, 80);
        s.src = self.src;
        s.sport = self.sport;
        s.seq = seq;
        s.ack = Some(ack);
        s.psh = true;
        s.payload = payload.to_vec();
        s
    }
}

/// SYN -> SYN-ACK: checks it and returns the cookie.
fn syn_ack(w: &mut Worker, c: &Client) -> Result<u32, TestCaseError> {
    let syn = c.syn();
    let (v, out) = run_cap(w, &syn.tcp(), CLIENT, BUF, NOW_MS);
    prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
    assert_checksums_recomputed(&out, false)?;
    let t = tcp_view(&out).unwrap();
    prop_assert_eq!(t.flags, SYN | ACK);
    prop_assert_eq!(t.ack, c.isn.wrapping_add(1));
    prop_assert_eq!((t.dst, t.dport), (c.src, c.sport));
    // Exactly one option: MSS 1460.
    let (ihl, _) = ipv4_bounds(&out).unwrap();
    let tcp = &out[14 + ihl..];
    prop_assert_eq!(tcp[12] >> 4, 6);
    prop_assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4][..]);
    Ok(t.seq)
}

const REQUEST: &[u8] = b"GET /some/page?id=7 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";

/// A perturbation of a 32-bit value that never leaves it unchanged.
#[derive(Clone, Debug)]
enum Perturb {
    Add(u32),
    Sub(u32),
    Flip(u32),
}

fn perturb() -> impl Strategy<Value = Perturb> {
    prop_oneof![
        (1u32..=1 << 31).prop_map(Perturb::Add),
        (1u32..=1 << 31).prop_map(Perturb::Sub),
        // One to four bits flipped anywhere.
        prop::collection::vec(0u32..32, 1..=4).prop_filter_map("no bit flipped", |bits| {
            let m = bits.iter().fold(0u32, |m, b| m ^ (1 << b));
            (m != 0).then_some(Perturb::Flip(m))
        }),
    ]
}

impl Perturb {
    fn apply(&self, x: u32) -> u32 {
        match *self {
            Perturb::Add(d) => x.wrapping_add(d),
            Perturb::Sub(d) => x.wrapping_sub(d),
            Perturb::Flip(m) => x ^ m,
        }
    }
}

/// A request whose ack (or seq) does not continue the SYN-ACK must get a RST carrying
/// seq = its ack, no ACK flag, no payload.
fn assert_rst(out: &[u8], sent_ack: u32) -> Result<(), TestCaseError> {
    assert_checksums_recomputed(out, false)?;
    let t = tcp_view(out).unwrap();
    prop_assert_eq!(t.flags, RST, "flags {:#x}", t.flags);
    prop_assert_eq!(t.seq, sent_ack);
    prop_assert!(t.payload.is_empty(), "a RST with {} bytes", t.payload.len());
    Ok(())
}

/// Is this output an acceptable answer to data after a valid handshake: a pure ACK, or a
/// status response (redirect, 400, 414, 431, 503) with FIN? Returns true for a final answer.
fn check_answer(out: &[u8], seg: &Seg, cookie: u32) -> Result<bool, TestCaseError> {
    assert_checksums_recomputed(out, false)?;
    let t = tcp_view(out).unwrap();
    prop_assert_eq!(
        (t.dst, t.dport, t.src, t.sport),
        (seg.src, seg.sport, VIP, 80)
    );
    prop_assert_eq!(t.seq, cookie.wrapping_add(1), "our seq");
    if t.flags == ACK {
        prop_assert!(t.payload.is_empty(), "an ACK with data");
        return Ok(false);
    }
    prop_assert_eq!(t.flags, FIN | PSH | ACK, "flags {:#x}", t.flags);
    prop_assert_eq!(
        t.ack,
        seg.next_seq(),
        "the final answer acks the whole segment"
    );
    let text = String::from_utf8_lossy(&t.payload);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .map(|r| &r[..3.min(r.len())])
        .unwrap_or("");
    prop_assert!(
        REDIRECT_CODES.contains(&code) || STATUS_CODES.contains(&code),
        "unexpected response {:?}",
        &text[..text.len().min(80)]
    );
    Ok(true)
}

/// Bytes an HTTP client (or anything else) might send as a request head: mostly well-formed
/// requests (to reach 302, 414 and 431), some malformed ones, some random bytes.
fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = "[A-Za-z!#$%&'*+.^_`|~0-9-]{1,12}";
    let structured = (
        prop_oneof![
            3 => Just("GET".to_string()),
            2 => Just("HEAD".to_string()),
            1 => Just("POST".to_string()),
            1 => token.prop_map(|s| s)
        ],
        prop_oneof![
            6 => "/[!-~&&[^%]]{0,40}",
            2 => "/[a-z]{500,1200}",
            1 => "/[!-~]{0,60}",
            1 => "[ -~]{0,20}"
        ],
        prop_oneof![
            6 => Just("HTTP/1.1".to_string()),
            2 => Just("HTTP/1.0".to_string()),
            1 => "[ -~]{0,10}"
        ],
        prop::option::of(prop_oneof![
            6 => "[a-z0-9.-]{1,40}(:[0-9]{1,5})?",
            1 => "[ -~]{0,60}",
            1 => "[\\x00-\\xff]{0,20}"
        ]),
        prop_oneof![
            8 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,80}"), 0..8),
            1 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,20}"), 60..80),
            1 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{200,300}"), 10..20),
        ],
        prop::bool::weighted(0.8),
    )
        .prop_map(|(m, p, v, host, hs, done)| {
            let mut r = format!("{m} {p} {v}\r\n").into_bytes();
            if let Some(h) = host {
                r.extend_from_slice(b"Host: ");
                r.extend_from_slice(h.as_bytes());
                r.extend_from_slice(b"\r\n");
            }
            for (n, val) in hs {
                r.extend_from_slice(format!("{n}: {val}\r\n").as_bytes());
            }
            if done {
                r.extend_from_slice(b"\r\n");
            }
            r
        });
    prop_oneof![
        4 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..1460),
        1 => prop::collection::vec(any::<u8>(), 0..4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The cookie of a SYN-ACK, used in the request within the window, gets a 302 with the
    /// exact seq/ack; the same request with its ack or seq moved by ±1..2^31 or with bits
    /// flipped gets no response: a RST without payload, or (when its cookie is of the current
    /// slots) a silent drop. The SYN's retransmission gets the same cookie.
    #[test]
    fn cookie_gets_302_and_any_other_ack_gets_rst_or_silence(c in client(), p in perturb(), on_seq in prop::bool::weighted(0.25)) {
        let mut w = worker(BASE);
        let cookie = syn_ack(&mut w, &c)?;
        prop_assert_eq!(syn_ack(&mut w, &c)?, cookie, "a retransmitted SYN gets the same cookie");
        let at = NOW_MS + c.delay_ms;
        let ok = c.data(c.isn.wrapping_add(1), cookie.wrapping_add(1), REQUEST);
        let (v, out) = run_cap(&mut w, &ok.tcp(), CLIENT, BUF, at);
        prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
        prop_assert!(check_answer(&out, &ok, cookie)?);
        let t = tcp_view(&out).unwrap();
        prop_assert!(t.payload.starts_with(b"HTTP/1.1 302 Found\r\nLocation: http://nat.lab/some/page?id=7\r\n"));
        let limit = usize::from(c.mss.unwrap_or(536).max(536));
        prop_assert!(t.payload.len() <= limit, "{} bytes for MSS {:?}", t.payload.len(), c.mss);
        prop_assert_eq!(w.counters().redirects, 1);

        let bad = if on_seq {
            c.data(p.apply(c.isn.wrapping_add(1)), cookie.wrapping_add(1), REQUEST)
        } else {
            c.data(c.isn.wrapping_add(1), p.apply(cookie.wrapping_add(1)), REQUEST)
        };
        let (v, out) = run_cap(&mut w, &bad.tcp(), CLIENT, BUF, at);
        // A cookie carrying the current or the previous 64 s slot in its top 5 bits may be
        // valid for another ISN (a later segment): dropped in silence. Any other: RST.
        let slot = at / 1000 / 64;
        let sent_slot = u64::from(bad.ack.unwrap().wrapping_sub(1) >> 27);
        let in_window = sent_slot == slot % 32 || sent_slot == (slot - 1) % 32;
        if in_window {
            prop_assert_eq!(v, Verdict::Drop(detour_dataplane::Reason::Unchecked));
            prop_assert_eq!(w.counters().dropped(detour_dataplane::Reason::BadCookie), 0);
        } else {
            prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
            assert_rst(&out, bad.ack.unwrap())?;
            prop_assert_eq!(w.counters().dropped(detour_dataplane::Reason::BadCookie), 1);
        }
        prop_assert_eq!(w.counters().redirects, 1, "a forged ack got a redirect");
    }

    /// After a valid handshake, any bytes (random or HTTP-like), in one to four segments,
    /// with or without a FIN, get for each segment a pure ACK, a status response with FIN,
    /// or a drop; never a panic, a RST, or an answer with wrong seq/ack.
    #[test]
    fn any_payload_after_handshake_gets_ack_status_or_drop(
        c in client(),
        head in head_bytes(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        fin in any::<bool>(),
    ) {
        let mut w = worker(BASE);
        let cookie = syn_ack(&mut w, &c)?;
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(head.len() + 1)).collect();
        cuts.push(0);
        cuts.push(head.len());
        cuts.sort_unstable();
        cuts.dedup();
        let pieces: Vec<&[u8]> = if head.is_empty() {
            vec![&head[..]]
        } else {
            cuts.windows(2).map(|p| &head[p[0]..p[1]]).collect()
        };
        let mut seq = c.isn.wrapping_add(1);
        let at = NOW_MS + c.delay_ms;
        for (i, piece) in pieces.iter().enumerate() {
            let mut s = c.data(seq, cookie.wrapping_add(1), piece);
            s.fin = fin && i + 1 == pieces.len();
            let (v, out) = run_cap(&mut w, &s.tcp(), CLIENT, BUF, at);
            seq = s.next_seq();
            match v {
                Verdict::Tx { port, .. } => {
                    prop_assert_eq!(port, CLIENT);
                    if s.payload.is_empty() {
                        // A bare FIN: its ACK.
                        let t = tcp_view(&out).unwrap();
                        prop_assert_eq!(t.flags, ACK);
                        prop_assert_eq!(t.ack, s.next_seq());
                        break;
                    }
                    if check_answer(&out, &s, cookie)? {
                        break;
                    }
                    let t = tcp_view(&out).unwrap();
                    prop_assert_eq!(t.ack, s.next_seq(), "the ACK covers the segment");
                }
                Verdict::Drop(_) => {}
                Verdict::Pass => prop_assert!(false, "data to the VIP passed to the kernel"),
            }
        }
    }
}
