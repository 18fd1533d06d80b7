//! Properties of the NAT both ways: the forwarded frame is the input with only the
//! addresses, ports, TTL and MACs changed and checksums equal to a full recompute; forward then
//! reply restores the client's view, also through a backup real.

use super::*;

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
