//! The fuzz targets as proptest properties: any bytes, random IPv4 headers, mutated corpus
//! frames, and any payload after a valid cookie, on either port: no panic and every Tx sane.

use super::*;
use crate::corpus::{after_handshake, corpus_frames, corpus_syn, fix_ip};

// ---- fuzz targets -------------------------------------------------------------------------------

/// Addresses worth hitting: owned, reals, the client, the gateway side, anything.
fn addr() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just(VIP),
        Just(DIP_NAT),
        Just(DIP_SAME),
        Just(REAL_NAT),
        Just(CLIENT_IP),
        any::<[u8; 4]>(),
    ]
}

fn l4_port() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(80u16),
        Just(REAL_NAT_PORT),
        Just(40000u16),
        any::<u16>()
    ]
}

prop_compose! {
    /// An Ethernet/IPv4 frame with a random but mostly well-formed header (checksum right 90%
    /// of the time), addressed among the interesting addresses, and random L4 bytes that
    /// start with plausible ports.
    fn random_ipv4()(
        ihl in prop_oneof![8 => Just(5u8), 1 => 0u8..16],
        opts in prop::collection::vec(any::<u8>(), 40),
        tos in any::<u8>(),
        total_delta in prop_oneof![8 => Just(0i32), 1 => -40i32..40],
        ident in any::<u16>(),
        frag in prop_oneof![8 => Just(0x4000u16), 1 => any::<u16>()],
        ttl in any::<u8>(),
        proto in prop_oneof![Just(6u8), Just(17u8), Just(1u8), any::<u8>()],
        src in addr(),
        dst in addr(),
        good_csum in prop::bool::weighted(0.9),
        sport in l4_port(),
        dport in l4_port(),
        l4 in prop::collection::vec(any::<u8>(), 0..600),
        src_mac in prop_oneof![Just(GW), Just(real_mac(REAL_NAT)), any::<[u8; 6]>()],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&US[0]);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let hl = usize::from(ihl.max(5)) * 4;
        let mut l4 = l4;
        if l4.len() >= 4 {
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
        }
        let total = (hl + l4.len()) as i32 + total_delta;
        let mut h = vec![0x40 | ihl, tos];
        h.extend_from_slice(&(total.clamp(0, 0xffff) as u16).to_be_bytes());
        h.extend_from_slice(&ident.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[ttl, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(&opts[..hl - 20]);
        let c = checksum(&h);
        if good_csum {
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&h);
        f.extend_from_slice(&l4);
        f
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
    FixIpChecksum,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        2 => Just(Mutation::FixIpChecksum),
    ]
}

fn mutate(mut f: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        match m {
            Mutation::Set(i, b) if !f.is_empty() => {
                let i = i.index(f.len());
                f[i] = *b;
            }
            Mutation::Truncate(i) => {
                let n = i.index(f.len() + 1);
                f.truncate(n);
            }
            Mutation::Append(b) => f.extend_from_slice(b),
            Mutation::FixIpChecksum if f.len() >= 34 && be16(&f, 12) == 0x0800 => {
                let ihl = usize::from(f[14] & 15) * 4;
                if ihl >= 20 && f.len() >= 14 + ihl {
                    f = fix_ip(f);
                }
            }
            _ => {}
        }
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Any bytes, 0 to 2048 of them, as a frame on either port, in a buffer with 0 to 2048
    /// bytes of room: no panic, Tx within the buffer, any IPv4 sent well formed with a valid
    /// header checksum.
    #[test]
    fn any_bytes_on_either_port_never_panic_and_tx_is_sane(
        frames in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..2048), any::<bool>(), 0usize..2048),
            1..4,
        ),
    ) {
        let mut w = worker(BASE);
        for (f, server, room) in frames {
            let r = process_checked(&mut w, &f, port_of(server), f.len() + room, NOW_MS);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }

    /// Random IPv4 headers (mostly valid, some options, wrong lengths, fragments, bad
    /// checksums) to the director's, the reals' and the client's addresses: the same
    /// invariants.
    #[test]
    fn random_ipv4_frames_never_panic_and_tx_is_sane(
        frames in prop::collection::vec((random_ipv4(), any::<bool>(), 0usize..1500), 1..6),
    ) {
        let mut w = worker(BASE);
        for (f, server, room) in frames {
            let r = process_checked(&mut w, &f, port_of(server), f.len() + room, NOW_MS);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }

    /// The corpus frames with random bytes changed, cut or appended (and the IPv4 checksum
    /// often fixed up, to get past it), in sequences through one worker: the same invariants.
    #[test]
    fn mutated_corpus_frames_never_panic_and_tx_is_sane(
        picks in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::collection::vec(mutation(), 0..6), any::<bool>(), 0usize..2048),
            1..6,
        ),
    ) {
        let seeds = seeds();
        let mut w = worker(BASE);
        for (i, ms, server, room) in picks {
            let f = mutate(seeds[i.index(seeds.len())].clone(), &ms);
            let r = process_checked(&mut w, &f, port_of(server), f.len() + room, NOW_MS);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| corpus_frames().into_iter().map(|(_, f)| f).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any bytes as the TCP payload of a request carrying a valid cookie, with any flags,
    /// then optionally any bytes again as the next segment: no panic, never passed to the
    /// kernel, every Tx sane and a TCP segment from the VIP.
    #[test]
    fn any_bytes_as_payload_of_a_valid_cookie_request_never_panic(
        first in prop::collection::vec(any::<u8>(), 0..4200),
        second in prop::option::of(prop::collection::vec(any::<u8>(), 0..1460)),
        flags in (any::<bool>(), any::<bool>(), any::<bool>()),
        mss in prop::option::of(any::<u16>()),
    ) {
        let mut w = worker(BASE);
        let mut syn = corpus_syn();
        syn.mss = mss;
        let cookie = handshake(&mut w, &syn);
        let mut s = after_handshake(&first, 0, cookie);
        (s.fin, s.psh, s.rst) = flags;
        let mut segs = vec![s.clone()];
        if let Some(b) = second {
            let mut n = after_handshake(&b, 0, cookie);
            n.seq = s.next_seq();
            segs.push(n);
        }
        for seg in segs {
            let f = seg.tcp();
            let r = process_checked(&mut w, &f, CLIENT, BUF.max(f.len()), NOW_MS);
            prop_assert!(r.is_ok(), "{}", r.as_ref().unwrap_err());
            let (v, out) = r.unwrap();
            match v {
                Verdict::Tx { port, .. } => {
                    prop_assert_eq!(port, CLIENT);
                    let t = tcp_view(&out);
                    prop_assert!(t.is_some(), "Tx of a non-TCP frame");
                    let t = t.unwrap();
                    prop_assert_eq!((t.src, t.sport, t.dst, t.dport), (VIP, 80, CLIENT_IP, 40000));
                }
                Verdict::Drop(r) => prop_assert!(r != Reason::Runt && r != Reason::BadIpv4, "{:?}", r),
                Verdict::Pass => prop_assert!(false, "passed to the kernel"),
            }
        }
    }
}
