//! Fuzz targets for `Worker::process`, run on stable as proptest properties, and the replay of
//! the corpus in `crates/dataplane/fuzz/corpus/`.
//!
//! The invariants every output must keep, whatever the input:
//! - no panic;
//! - `Tx { len }` within the buffer, out of one of the two ports;
//! - a transmitted IPv4 frame is well formed (lengths) with a valid header checksum;
//! - a TCP segment the responder originates (any TCP sent for a frame to the VIP, which is
//!   never forwarded) has a valid TCP checksum.
//!
//! Corpus files are named `NN-<port>-<what>.<outcome>.bin`: replayed in name order through one
//! worker (so a split request's second part finds its first), each must give `<outcome>`
//! (`tx`, `pass`, or `drop_<reason>`) on `<port>` (`client` or `server`). New files (crashes
//! found elsewhere, say) may be added with any outcome that holds. Regenerate the generated ones
//! with `cargo test -p detour-dataplane --test fuzz -- --ignored write_corpus`.

mod frames;

use detour_dataplane::{Port, Reason, Verdict, Worker, CLIENT, SERVER};
use frames::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// Check the invariants on one processed frame; `cap` is the buffer size handed to the worker.
fn check_output(v: Verdict, cap: usize, input: &[u8], out: &[u8]) -> Result<(), String> {
    let Verdict::Tx { port, len } = v else {
        return Ok(());
    };
    if len > cap {
        return Err(format!("Tx len {len} beyond the {cap}-byte buffer"));
    }
    if port != CLIENT && port != SERVER {
        return Err(format!("Tx out of port {port:?}"));
    }
    if len < 14 {
        return Err(format!("Tx of a {len}-byte frame"));
    }
    if be16(out, 12) == 0x0800 {
        if ipv4_bounds(out).is_none() {
            return Err("Tx of a malformed IPv4 frame".into());
        }
        if !ip_header_valid(out) {
            return Err("Tx with a bad IPv4 header checksum".into());
        }
        let (ihl, total) = ipv4_bounds(out).unwrap();
        let to_vip = input.len() >= 34 && be16(input, 12) == 0x0800 && input[30..34] == VIP;
        if to_vip && out[23] == 6 && total >= ihl + 20 && !l4_valid(out) {
            return Err("the responder sent a bad TCP checksum".into());
        }
    }
    Ok(())
}

fn l4_valid(f: &[u8]) -> bool {
    l4_checksum_field(f) == recomputed_l4_checksum(f)
}

/// Process `frame` in a buffer of `cap` bytes (at least the frame) and check the invariants.
fn process_checked(
    w: &mut Worker,
    frame: &[u8],
    port: Port,
    cap: usize,
    now: u64,
) -> Result<(Verdict, Vec<u8>), String> {
    let cap = cap.max(frame.len());
    let mut buf = vec![0u8; cap];
    buf[..frame.len()].copy_from_slice(frame);
    let v = w.process(&mut buf, frame.len(), port, now);
    let out = match v {
        Verdict::Tx { len, .. } if len <= cap => buf[..len].to_vec(),
        _ => Vec::new(),
    };
    check_output(v, cap, frame, &out)?;
    Ok((v, out))
}

fn port_of(b: bool) -> Port {
    if b {
        SERVER
    } else {
        CLIENT
    }
}

// ---- the corpus -------------------------------------------------------------------------------

/// The client tuple every corpus handshake uses.
fn corpus_syn() -> Seg {
    Seg::from_client(VIP, 80).syn()
}

/// The cookie the worker at `NOW_MS` gives `corpus_syn`.
fn corpus_cookie() -> u32 {
    handshake(&mut worker(BASE), &corpus_syn())
}

fn after_handshake(payload: &[u8], seq_off: u32, cookie: u32) -> Seg {
    let syn = corpus_syn();
    let mut s = Seg::from_client(VIP, 80);
    s.seq = syn.seq.wrapping_add(1).wrapping_add(seq_off);
    s.ack = Some(cookie.wrapping_add(1));
    s.psh = true;
    s.payload = payload.to_vec();
    s
}

fn fix_ip(mut f: Vec<u8>) -> Vec<u8> {
    let ihl = usize::from(f[14] & 15) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// The generated corpus: (file name, frame), in replay order.
fn corpus_frames() -> Vec<(String, Vec<u8>)> {
    let cookie = corpus_cookie();
    let syn = corpus_syn();
    let mut v: Vec<(&str, &str, Vec<u8>)> = Vec::new();
    v.push(("client-syn-to-vip", "tx", syn.tcp()));
    v.push((
        "client-request",
        "tx",
        after_handshake(
            b"GET /a/b?x=1 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n",
            0,
            cookie,
        )
        .tcp(),
    ));
    let p1: &[u8] = b"GET /split HTTP/1.1\r\nHo";
    v.push((
        "client-split-request-part1",
        "tx",
        after_handshake(p1, 0, cookie).tcp(),
    ));
    v.push((
        "client-split-request-part2",
        "tx",
        after_handshake(b"st: www.acme.com\r\n\r\n", p1.len() as u32, cookie).tcp(),
    ));
    v.push((
        "client-request-bad-cookie",
        "tx",
        // The slot bits changed: stale whatever the ISN, so a RST.
        after_handshake(b"GET / HTTP/1.1\r\n\r\n", 0, cookie ^ 0x4000_0000).tcp(),
    ));
    v.push((
        "client-tls-hello-after-handshake",
        "tx",
        after_handshake(
            &[
                0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ],
            0,
            cookie,
        )
        .tcp(),
    ));
    let mut data = Seg::from_client(DIP_NAT, 80).with_ack(77);
    data.psh = true;
    data.payload = b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n".to_vec();
    v.push(("client-data-to-nat-dip", "tx", data.tcp()));
    let mut opts = Seg::from_client(DIP_SAME, 80).syn();
    opts.ip_options = vec![1, 1, 1, 0];
    v.push(("client-syn-with-ip-options-to-dip", "tx", opts.tcp()));
    let mut reply = Seg::from_client(CLIENT_IP, 40000).with_ack(1001);
    reply.src_mac = real_mac(REAL_NAT);
    reply.dst_mac = US[1];
    reply.src = REAL_NAT;
    reply.sport = REAL_NAT_PORT;
    reply.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    v.push(("server-reply-from-nat-real", "tx", reply.tcp()));
    let mut udp = Seg::from_client(DIP_NAT, 80).udp();
    udp[14 + 20 + 6] = 0;
    udp[14 + 20 + 7] = 0;
    v.push(("client-udp-zero-checksum-to-dip", "tx", udp));
    let mut arp_vip = arp(GW, BROADCAST, 1, GW, CLIENT_IP, [0; 6], VIP);
    arp_vip.resize(60, 0);
    v.push(("client-arp-who-has-vip", "tx", arp_vip));
    v.push((
        "client-arp-who-has-foreign",
        "pass",
        arp(GW, BROADCAST, 1, GW, CLIENT_IP, [0; 6], [198, 18, 0, 77]),
    ));
    v.push((
        "client-icmp-echo-to-vip",
        "tx",
        icmp_frame(
            GW,
            US[0],
            CLIENT_IP,
            VIP,
            64,
            7,
            [8, 0, 0, 0, 0, 1, 0, 1],
            b"abcdefgh",
        ),
    ));
    let mut quoted = Seg::from_client(CLIENT_IP, 40000).with_ack(1);
    quoted.src = DIP_NAT;
    quoted.sport = 80;
    quoted.payload = vec![0x55; 100];
    v.push((
        "client-icmp-frag-needed-to-dip",
        "tx",
        icmp_frame(
            GW,
            US[0],
            [198, 18, 0, 254],
            DIP_NAT,
            64,
            9,
            [3, 4, 0, 0, 0, 0, 0x05, 0x78],
            &quoted.tcp_ip()[..28],
        ),
    ));
    let mut sent = Seg::from_client(REAL_NAT, REAL_NAT_PORT);
    sent.ttl = 63;
    sent.payload = b"query".to_vec();
    v.push((
        "server-icmp-port-unreachable-from-real",
        "tx",
        icmp_frame(
            real_mac(REAL_NAT),
            US[1],
            REAL_NAT,
            CLIENT_IP,
            64,
            11,
            [3, 3, 0, 0, 0, 0, 0, 0],
            &sent.udp_ip(),
        ),
    ));
    v.push(("client-runt", "drop_runt", syn.tcp()[..10].to_vec()));
    v.push((
        "client-syn-truncated-in-ip-header",
        "drop_bad_ipv4",
        syn.tcp()[..30].to_vec(),
    ));
    let mut short = syn.tcp()[..44].to_vec();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    v.push((
        "client-syn-truncated-in-tcp-header",
        "drop_bad_tcp",
        fix_ip(short),
    ));
    let mut frag = syn.tcp();
    frag[20] = 0x20; // more fragments
    v.push(("client-fragment-to-vip", "drop_fragment", fix_ip(frag)));
    let mut bad = syn.tcp();
    bad[25] ^= 0xff;
    v.push(("client-syn-bad-ip-checksum", "drop_bad_ipv4", bad));
    let mut bad_sum = syn.tcp();
    bad_sum[14 + 20 + 16] ^= 0x01;
    v.push((
        "client-syn-bad-tcp-checksum",
        "drop_bad_tcp_checksum",
        bad_sum,
    ));
    let mut loopback = corpus_syn();
    loopback.src = [127, 0, 0, 1];
    v.push(("client-syn-from-loopback", "drop_martian", loopback.tcp()));
    let mut syn_fin = corpus_syn();
    syn_fin.fin = true;
    v.push(("client-syn-fin", "drop_bad_flags", syn_fin.tcp()));
    let mut spoofed = reply.clone();
    spoofed.src_mac = GW;
    spoofed.dst_mac = US[0];
    v.push((
        "client-reply-from-nat-real",
        "drop_wrong_side",
        spoofed.tcp(),
    ));
    v.push((
        "client-request-unchecked-cookie",
        "drop_unchecked",
        // The hash bits changed, the slot bits kept: maybe a later segment, so silence.
        after_handshake(b"GET / HTTP/1.1\r\n\r\n", 0, cookie ^ 0x0040_0000).tcp(),
    ));
    v.into_iter()
        .enumerate()
        .map(|(i, (what, outcome, f))| (format!("{:02}-{what}.{outcome}.bin", i + 1), f))
        .collect()
}

/// (port, expected outcome) from a corpus file name `NN-<port>-<what>.<outcome>.bin`.
fn parse_name(name: &str) -> Option<(Port, String)> {
    let stem = name.strip_suffix(".bin")?;
    let (head, outcome) = stem.rsplit_once('.')?;
    let port = match head.split('-').nth(1)? {
        "client" => CLIENT,
        "server" => SERVER,
        _ => return None,
    };
    Some((port, outcome.to_string()))
}

fn outcome_of(v: Verdict) -> String {
    match v {
        Verdict::Tx { .. } => "tx".into(),
        Verdict::Pass => "pass".into(),
        Verdict::Drop(r) => format!("drop_{}", r.name()),
    }
}

fn read_corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Writes the generated corpus (run by hand with `--ignored`).
#[test]
#[ignore = "writes crates/dataplane/fuzz/corpus; run by hand to regenerate"]
fn write_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, f) in corpus_frames() {
        std::fs::write(dir.join(name), f).unwrap();
    }
}

#[test]
fn corpus_replays_in_order_with_the_outcome_in_each_name() {
    let files = read_corpus();
    assert!(
        files.len() >= 10,
        "only {} corpus files in {}",
        files.len(),
        corpus_dir().display()
    );
    let mut w = worker(BASE);
    for (name, f) in &files {
        let (port, want) =
            parse_name(name).unwrap_or_else(|| panic!("corpus file {name}: unparsable name"));
        let (v, _) = process_checked(&mut w, f, port, BUF, NOW_MS)
            .unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
        assert_eq!(outcome_of(v), want, "corpus file {name}: {v:?}");
    }
}

#[test]
fn corpus_frames_and_all_their_truncations_keep_the_invariants_on_both_ports() {
    for (name, f) in read_corpus() {
        let mut w = worker(BASE);
        for port in [CLIENT, SERVER] {
            for len in 0..=f.len() {
                for cap in [len, BUF] {
                    process_checked(&mut w, &f[..len], port, cap, NOW_MS).unwrap_or_else(|e| {
                        panic!("corpus file {name} cut at {len}, buffer {cap}: {e}")
                    });
                }
            }
        }
    }
}

#[test]
fn corpus_on_disk_holds_every_generated_frame() {
    let on_disk = read_corpus();
    for (name, f) in corpus_frames() {
        let found = on_disk.iter().find(|(n, _)| *n == name);
        assert!(
            found.is_some_and(|(_, g)| *g == f),
            "corpus file {name} missing or stale: run `cargo test -p detour-dataplane --test \
             fuzz -- --ignored write_corpus`"
        );
    }
}

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
