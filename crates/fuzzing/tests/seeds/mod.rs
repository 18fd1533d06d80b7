//! The seed corpus of every target, encoded by hand in each body's input format (the inverse
//! of its decoder): the paths the property tests take, the dataplane's stable fuzz corpus as
//! raw frames, the golden configs, real ClientHellos from rustls.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// (target, [(file name, bytes)]).
pub type Seeds = Vec<(&'static str, Vec<(String, Vec<u8>)>)>;

pub fn all() -> Seeds {
    vec![
        ("worker4", worker(false)),
        ("worker6", worker(true)),
        ("http_head", http()),
        ("tls", tls()),
        ("config", config()),
    ]
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

// ---- worker4 / worker6 ----------------------------------------------------------------------

fn handshake(c: u8, sport: u16, head: &[u8], cuts: &[u8], swap: bool, fin: bool) -> Vec<u8> {
    let bits = u8::from(swap) | u8::from(fin) << 1 | (cuts.len() as u8) << 2;
    let mut v = vec![0, c];
    v.extend(sport.to_be_bytes());
    v.push(bits);
    v.push(head.len() as u8);
    v.extend(head);
    v.extend(cuts);
    v
}

fn forged(c: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![1, c, 0x9c, 0x40];
    v.extend(seq.to_be_bytes());
    v.extend(ack.to_be_bytes());
    v.push(payload.len() as u8);
    v.extend(payload);
    v
}

fn to_dip(c: u8, dip: u8, flags: u8, udp: bool) -> Vec<u8> {
    vec![2, c, 0x9c, 0x41, dip, flags, u8::from(udp)]
}

fn from_real(real: u8, c: u8, flags: u8, server: bool) -> Vec<u8> {
    vec![3, real, c, 0x9c, 0x41, flags, u8::from(server)]
}

fn icmp(kind: u8, c: u8, which: u8) -> Vec<u8> {
    vec![4, kind, c, which]
}

fn mangled(kind: u8, edits: &[(u16, u8)], cut: Option<u16>, server: bool) -> Vec<u8> {
    let mut v = vec![5, kind, edits.len() as u8 - 1];
    for (i, b) in edits {
        v.extend(i.to_be_bytes());
        v.push(*b);
    }
    match cut {
        Some(c) => {
            v.push(1);
            v.extend(c.to_be_bytes());
        }
        None => v.push(0),
    }
    v.push(u8::from(server));
    v
}

fn raw(server: bool, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![6, u8::from(server)];
    v.extend((frame.len() as u16).to_be_bytes());
    v.extend(frame);
    v
}

fn toggle(with_clock: bool) -> Vec<u8> {
    vec![7, u8::from(with_clock)]
}

fn tick(ms: u32) -> Vec<u8> {
    let mut v = vec![8];
    v.extend(((ms / 2) as u16).to_be_bytes());
    v
}

const GET: &[u8] = b"GET /index.html?x=1 HTTP/1.1\r\nHost: www.example\r\n\r\n";

/// The operation sequences of both worker targets, by name.
fn worker_ops() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    [handshake_ops(), traffic_ops()].concat()
}

/// Handshakes (whole, split, reordered, odd hosts) and forged requests.
fn handshake_ops() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let host6 = b"GET /a%20b HTTP/1.1\r\nHost: [2001:db8::9]:8080\r\n\r\n";
    vec![
        (
            "handshake",
            vec![handshake(0, 40000, GET, &[], false, false)],
        ),
        (
            "handshake-split-swapped",
            vec![handshake(1, 40001, GET, &[5, 30], true, true)],
        ),
        (
            "handshake-hosts",
            vec![
                handshake(2, 40002, host6, &[], false, false),
                handshake(
                    2,
                    40003,
                    b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
                    &[],
                    false,
                    false,
                ),
                handshake(
                    3,
                    40004,
                    b"HEAD /\xff\"<> HTTP/1.1\r\n\r\n",
                    &[],
                    false,
                    false,
                ),
                handshake(3, 40005, b"GET / HTTP/1.1\r\n", &[], false, true),
            ],
        ),
        (
            "forged",
            vec![
                forged(0, 1, 2, b"GET / HTTP/1.1\r\n\r\n"),
                forged(1, 0, 0, b"x"),
            ],
        ),
    ]
}

/// Traffic to DIPs, replies of reals, failover, ICMP, mangled frames, many heads.
fn traffic_ops() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    const SYN: u8 = 2;
    const ACK: u8 = 16;
    vec![
        (
            "dips",
            (0..3)
                .flat_map(|d| {
                    [
                        to_dip(0, d, SYN, false),
                        to_dip(1, d, ACK, false),
                        to_dip(2, d, 0, true),
                    ]
                })
                .collect(),
        ),
        (
            "reals",
            (0..3)
                .flat_map(|r| {
                    [
                        from_real(r, 0, ACK, true),
                        from_real(r, 1, SYN | ACK, false),
                    ]
                })
                .collect(),
        ),
        (
            "backup",
            vec![
                to_dip(0, 0, SYN, false),
                toggle(true),
                to_dip(1, 0, SYN, false),
                to_dip(1, 0, ACK, false),
                from_real(2, 1, SYN | ACK, true),
                toggle(false),
                to_dip(1, 0, ACK, false),
                tick(70_000),
                to_dip(1, 0, ACK, false),
            ],
        ),
        (
            "icmp",
            (0..4)
                .flat_map(|k| (0..4).map(move |w| icmp(k, w, w)))
                .collect(),
        ),
        (
            "mangled",
            (0..6)
                .map(|k| mangled(k, &[(23, 0xff), (40, 1)], None, k == 2))
                .chain([mangled(0, &[(12, 0x86)], Some(30), false)])
                .collect(),
        ),
        (
            "heads-per-client",
            (0..8)
                .map(|i| handshake(0, 41000 + i, b"GET /", &[], false, false))
                .chain([tick(10_000)])
                .collect(),
        ),
    ]
}

fn worker(v6: bool) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = worker_ops()
        .into_iter()
        .map(|(n, ops)| (n.to_string(), ops.concat()))
        .collect();
    if !v6 {
        // The dataplane's stable fuzz corpus (IPv4 frames), each as a raw frame.
        let dir = root().join("crates/dataplane/fuzz/corpus");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let all: Vec<Vec<u8>> = files
            .iter()
            .map(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                raw(name.contains("-server-"), &std::fs::read(f).unwrap())
            })
            .collect();
        out.push(("stable-corpus".into(), all.concat()));
    }
    out
}

// ---- http_head ------------------------------------------------------------------------------

fn http_seed(v6: bool, fin: bool, swap: bool, cuts: &[u8], head: &[u8]) -> Vec<u8> {
    let bits = u8::from(v6) | u8::from(fin) << 1 | u8::from(swap) << 2 | (cuts.len() as u8) << 3;
    let mut v = vec![bits];
    v.extend(cuts);
    v.extend(head);
    v
}

fn http() -> Vec<(String, Vec<u8>)> {
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(3000));
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(40));
    let heads: Vec<(&str, Vec<u8>)> = vec![
        ("get", GET.to_vec()),
        (
            "head",
            b"HEAD /x HTTP/1.1\r\nHost: www.example\r\n\r\n".to_vec(),
        ),
        (
            "post",
            b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        (
            "absolute",
            b"GET http://other.example/p?q HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("star", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n".to_vec()),
        ("http10", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        (
            "bad-host",
            b"GET / HTTP/1.1\r\nHost: a b\r\nX: y\r\n\r\n".to_vec(),
        ),
        (
            "host-v6",
            b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n".to_vec(),
        ),
        ("odd-path", b"GET /\x7f%zz\"<>{} HTTP/1.1\r\n\r\n".to_vec()),
        ("long", long.into_bytes()),
        ("many-headers", many.into_bytes()),
        ("garbage", b"\x16\x03\x01\x00\x05hello".to_vec()),
        ("bare-lf", b"GET / HTTP/1.1\nHost: x\n\n".to_vec()),
    ];
    let mut out = Vec::new();
    for (name, h) in heads {
        out.push((format!("{name}-4"), http_seed(false, false, false, &[], &h)));
        out.push((
            format!("{name}-6-split"),
            http_seed(true, false, false, &[3, 20], &h),
        ));
    }
    // Reordered: the second piece first is dropped unchecked (no RST), so no answer.
    out.push((
        "get-swapped".into(),
        http_seed(false, false, true, &[9], GET),
    ));
    out.push((
        "partial-fin".into(),
        http_seed(false, true, false, &[], b"GET / HT"),
    ));
    out
}

// ---- tls ------------------------------------------------------------------------------------

fn segment(key: u8, open: bool, fin: bool, rst: bool, payload: &[u8]) -> Vec<u8> {
    let bits = u8::from(open) | u8::from(fin) << 1 | u8::from(rst) << 2;
    let mut v = vec![0, key, bits];
    v.extend((payload.len() as u16).to_be_bytes());
    v.extend(payload);
    v
}

fn hello(versions: &[&'static rustls::SupportedProtocolVersion], sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut c = ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut v = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut v).unwrap();
    }
    v
}

fn tls() -> Vec<(String, Vec<u8>)> {
    let h13 = hello(&[&rustls::version::TLS13], "www.example");
    let other = hello(&[&rustls::version::TLS13], "other.example");
    let h12 = hello(&[&rustls::version::TLS12], "www.example");
    let (a, b) = h13.split_at(40);
    let huge = [0x16, 3, 3, 0xff, 0xff, 1, 0, 0];
    let s: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("hello13", vec![segment(0, true, false, false, &h13)]),
        (
            "hello13-other-sni",
            vec![segment(0, true, false, false, &other)],
        ),
        ("hello12", vec![segment(0, true, false, false, &h12)]),
        (
            "hello-split",
            vec![
                segment(1, true, false, false, a),
                segment(1, true, false, false, b),
            ],
        ),
        ("plain-http", vec![segment(0, true, false, false, GET)]),
        ("huge-record", vec![segment(0, true, false, false, &huge)]),
        (
            "hello-then-timers",
            vec![
                segment(0, true, false, false, &h13),
                vec![2, 0x02, 0x00],
                vec![3],
                vec![2, 0x30, 0x00],
                vec![3],
                vec![4],
            ],
        ),
        (
            "over-capacity",
            vec![
                segment(0, true, false, false, &h13),
                segment(1, true, false, false, &h12),
                segment(2, true, false, false, &h13),
                vec![5, 1],
                segment(2, true, false, true, b"x"),
            ],
        ),
        (
            "no-budget",
            vec![vec![1, 0], segment(0, true, true, false, &h13)],
        ),
    ];
    s.into_iter()
        .map(|(n, ops)| (n.to_string(), ops.concat()))
        .collect()
}

// ---- config ---------------------------------------------------------------------------------

fn config() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["configs", "crates/config/fuzz/corpus"] {
        let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            out.push((name, std::fs::read(&f).unwrap()));
        }
    }
    let templates: &[&[u8]] = &[
        b"https://%h:%s/new/%d?p=%d#top\0www.example:8080\0/a b?c",
        b"http://[2001:db8::7]:8080/%d\0\0*",
        b"http://%h/%%41%d\0bad host\0/x",
        b"url u1 http://%h/x/%d 301\nvirtual 198.18.0.1\nreal 198.18.1.2\nbind 198.18.0.1 u1\n\0[::1]\0http://a.b/c",
        b"http://a..b/\nhttp://%h%h/\nhttps://x:0/\nftp://x/\n",
    ];
    for (i, t) in templates.iter().enumerate() {
        out.push((format!("url-{i}"), t.to_vec()));
    }
    out
}
