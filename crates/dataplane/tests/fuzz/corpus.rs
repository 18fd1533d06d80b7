//! The corpus in `crates/dataplane/fuzz/corpus/`: the generated frames (handshakes and
//! requests, NAT traffic, ARP, ICMP, malformed input), their names and outcomes, the replay in
//! name order, the truncations of every frame, and the check that the files on disk are current.

use super::*;

// ---- the corpus -------------------------------------------------------------------------------

/// The client tuple every corpus handshake uses.
pub(super) fn corpus_syn() -> Seg {
    Seg::from_client(VIP, 80).syn()
}

/// The cookie the worker at `NOW_MS` gives `corpus_syn`.
fn corpus_cookie() -> u32 {
    handshake(&mut worker(BASE), &corpus_syn())
}

pub(super) fn after_handshake(payload: &[u8], seq_off: u32, cookie: u32) -> Seg {
    let syn = corpus_syn();
    let mut s = Seg::from_client(VIP, 80);
    s.seq = syn.seq.wrapping_add(1).wrapping_add(seq_off);
    s.ack = Some(cookie.wrapping_add(1));
    s.psh = true;
    s.payload = payload.to_vec();
    s
}

pub(super) fn fix_ip(mut f: Vec<u8>) -> Vec<u8> {
    let ihl = usize::from(f[14] & 15) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// The generated corpus: (file name, frame), in replay order.
pub(super) fn corpus_frames() -> Vec<(String, Vec<u8>)> {
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
