//! HTTPS end to end. The lab's reals serve their pages over TLS 1.3 with certificates for
//! their names from the lab's test CA (scripts/lab.sh makes both); clients that trust that
//! CA only (curl --cacert, python requests) reach them through their DIPs (L4, NAT 443 to
//! 8443 and same-address), and are redirected there by a `tls` virtual that answers over
//! TLS 1.3 itself, with the certificate their SNI names, the same redirect as over HTTP.

use detour_e2e::{lab_config, Lab};

const CA: &str = "/tmp/detour-lab/tls/ca.pem";
const HTTPS_DIPS: &str = "dip 198.18.0.2:443 real 198.18.1.11:8443\ndip 198.18.0.3:443\n";

/// configs/lab-tls.conf: a `tls` virtual on www.lab:443 (and secure.lab, the same address,
/// with an RSA certificate) redirecting to the reals' HTTPS URLs through their DIPs.
fn tls_config() -> String {
    let tls = std::fs::read_to_string(detour_e2e::root().join("configs/lab-tls.conf")).unwrap();
    lab_config(&tls)
}

fn curl(lab: &Lab, args: &[&str]) -> detour_e2e::Run {
    let mut a = vec!["curl", "-sS", "--max-time", "5", "--cacert", CA];
    a.extend_from_slice(args);
    lab.client(&a, 10)
}

#[test]
fn curl_and_python_requests_get_each_reals_https_page_through_its_dip() {
    let lab = Lab::start(&lab_config(HTTPS_DIPS), 1);
    for (name, real) in [("real1.lab", "dt-real1"), ("real3.lab", "dt-real3")] {
        let url = format!("https://{name}/index.html");
        let r = lab.client(
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--tlsv1.3",
                "--cacert",
                CA,
                &url,
            ],
            10,
        );
        assert!(
            r.ok() && r.stdout.contains(&format!("real server {real}<")),
            "{url}: {r:?}\n{}",
            lab.log_text()
        );
        let py = format!(
            "import requests; r = requests.get({url:?}, verify={CA:?}, timeout=5); print(r.status_code, r.text)"
        );
        let r = lab.client(&["python3", "-c", &py], 15);
        assert!(
            r.ok() && r.stdout.starts_with("200 ") && r.stdout.contains(real),
            "python requests {url}: {r:?}"
        );
        // Without the lab's CA the certificate is refused: the CA is what is trusted.
        let r = lab.client(&["curl", "-sS", "--max-time", "5", &url], 10);
        assert_eq!(r.code, Some(60), "curl without the CA: {r:?}");
    }
}

#[test]
fn a_tls_virtual_redirects_over_tls13_to_each_reals_https_page() {
    let lab = Lab::start(&tls_config(), 1);
    // The same redirect as over HTTP: the first pick of each virtual, whole responses
    // compared with the scheme of the URL swapped (Content-Length follows the body).
    let whole = |url: &str| curl(&lab, &["-i", url]);
    let plain = whole("http://www.lab/p/1.html?q=1");
    let tls = whole("https://www.lab/p/1.html?q=1");
    assert!(
        plain.ok() && tls.ok(),
        "{plain:?}\n{tls:?}\n{}",
        lab.log_text()
    );
    let norm = |t: &str| {
        t.replace("https://", "http://")
            .lines()
            .filter(|l| !l.starts_with("Content-Length:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(norm(&tls.stdout), norm(&plain.stdout), "{}", lab.log_text());
    let (headers, body) = tls.stdout.split_once("\r\n\r\n").unwrap();
    assert!(
        headers.contains(&format!("Content-Length: {}", body.len())),
        "{}",
        tls.stdout
    );
    assert!(headers.contains("Connection: close"), "{headers}");
    assert!(tls.stdout.starts_with("HTTP/1.1 302"), "{}", tls.stdout);
    assert!(
        tls.stdout
            .contains("Location: https://real1.lab/p/1.html?q=1"),
        "{}",
        tls.stdout
    );
    // curl follows it over HTTPS through the DIPs; three in a row visit each real.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = curl(&lab, &["-L", "--tlsv1.3", "https://www.lab/index.html"]);
        assert!(r.ok(), "{r:?}\n{}", lab.log_text());
        seen.push(
            ["dt-real1", "dt-real2", "dt-real3"]
                .into_iter()
                .find(|n| r.stdout.contains(&format!("real server {n}<")))
                .unwrap_or("?"),
        );
    }
    seen.sort();
    assert_eq!(seen, ["dt-real1", "dt-real2", "dt-real3"]);
    // SNI picks the certificate: curl checks the name, so secure.lab (RSA) verifies only if
    // it was served secure.lab's.
    let r = curl(
        &lab,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://secure.lab/",
        ],
    );
    assert_eq!((r.ok(), r.stdout.as_str()), (true, "302"), "{r:?}");
    // python requests follows it too.
    let py = format!(
        "import requests; r = requests.get('https://www.lab/index.html', verify={CA:?}, timeout=5); print(r.status_code, r.url, r.text)"
    );
    let r = lab.client(&["python3", "-c", &py], 15);
    assert!(
        r.ok() && r.stdout.starts_with("200 https://real") && r.stdout.contains("real server"),
        "{r:?}"
    );
    // Hostile: TLS 1.2 at most gets an alert; plain HTTP to :443 is refused; then it still works.
    let r = curl(&lab, &["--tls-max", "1.2", "https://www.lab/"]);
    assert_eq!(r.code, Some(35), "a TLS 1.2-only client: {r:?}");
    let r = lab.client(
        &["curl", "-sS", "--max-time", "5", "http://www.lab:443/"],
        10,
    );
    assert!(!r.ok(), "plain HTTP to the TLS port: {r:?}");
    let r = curl(
        &lab,
        &["-o", "/dev/null", "-w", "%{http_code}", "https://www.lab/"],
    );
    assert_eq!(r.stdout, "302", "{r:?}\n{}", lab.log_text());
}

/// The base64 SHA-256 of a certificate's public key (what Chromium's SPKI list takes).
fn spki_hash(cert: &str) -> String {
    let r = detour_e2e::run(
        &[
            "sh",
            "-c",
            &format!("openssl x509 -pubkey -noout -in {cert} | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"),
        ],
        10,
    );
    assert!(r.ok(), "{r:?}");
    r.stdout.trim().to_string()
}

#[test]
fn headless_chromium_follows_the_https_redirect() {
    let lab = Lab::start(&tls_config(), 1);
    let spki: Vec<String> = ["www.lab", "real1.lab", "real2.lab", "real3.lab"]
        .iter()
        .map(|n| spki_hash(&format!("/tmp/detour-lab/tls/{n}.pem")))
        .collect();
    let profile = std::env::temp_dir().join(format!("detour-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let r = lab.client(
        &[
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--ignore-certificate-errors-spki-list={}", spki.join(",")),
            "--dump-dom",
            "https://www.lab/index.html",
        ],
        60,
    );
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        r.stdout.contains("real server dt-real"),
        "{r:?}\n{}",
        lab.log_text()
    );
}

#[test]
fn sessions_resume_on_new_connections_and_stalled_handshakes_do_not_block_others() {
    let lab = Lab::start(&tls_config(), 1);
    let sess = "/tmp/detour-lab/tls/session.pem";
    let s_client = |extra: &str| {
        let cmd = format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: www.lab\\r\\n\\r\\n' | timeout 5 openssl s_client -connect www.lab:443 -servername www.lab -CAfile {CA} -tls1_3 -ign_eof {extra} 2>&1"
        );
        lab.client(&["sh", "-c", &cmd], 10)
    };
    let first = s_client(&format!("-sess_out {sess}"));
    assert!(
        first.stdout.contains("New, TLSv1.3") && first.stdout.contains("302 Found"),
        "{first:?}"
    );
    // Eight new connections (new source ports, spread over the two workers' queues) resume.
    for i in 0..8 {
        let r = s_client(&format!("-sess_in {sess}"));
        assert!(
            r.stdout.contains("Reused, TLSv1.3") && r.stdout.contains("302 Found"),
            "connection {i}: {r:?}\n{}",
            lab.log_text()
        );
    }
    // 20 connections send the first 60 bytes of a ClientHello (a record header promising
    // 512) and stall; while they hang, a full HTTPS request is answered.
    let stall = r#"
import socket, sys, time
socks = []
for _ in range(20):
    s = socket.create_connection(("www.lab", 443), timeout=3)
    s.sendall(bytes([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]) + bytes(49))
    socks.append(s)
print("stalled", len(socks), flush=True)
time.sleep(4)
"#;
    std::thread::scope(|sc| {
        let stalled = sc.spawn(|| lab.client(&["python3", "-c", stall], 10));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let r = lab.client(
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                CA,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "https://www.lab/",
            ],
            10,
        );
        assert_eq!(r.stdout, "302", "{r:?}");
        let stalled = stalled.join().unwrap();
        assert!(
            stalled.ok() && stalled.stdout.contains("stalled 20"),
            "{stalled:?}"
        );
    });
}

/// detour's resident memory (KiB).
fn rss_kib(lab: &Lab) -> u64 {
    let pid = lab.detour_pid().expect("detour runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_client_hello_flood_stays_within_the_table_and_dip_traffic_flows() {
    let conf = tls_config() + "tls-connections 256\n";
    let lab = Lab::start(&conf, 1);
    // Warm up (first handshakes allocate rustls's lazily built state), then measure.
    for _ in 0..3 {
        let r = curl(
            &lab,
            &["-o", "/dev/null", "-w", "%{http_code}", "https://www.lab/"],
        );
        assert_eq!(r.stdout, "302", "{r:?}");
    }
    let before = rss_kib(&lab);
    // 3000 connections from as many source ports, each a real ClientHello, then silence.
    let flood = r#"
import resource, socket, ssl, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
o = ctx.wrap_bio(inc, out, server_hostname="www.lab")
try:
    o.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
socks, sent = [], 0
for i in range(3000):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("198.18.0.1", 443))
        s.send(hello)
        sent += 1
    except OSError:
        pass
    socks.append(s)
print("sent", sent, flush=True)
time.sleep(3)
"#;
    std::thread::scope(|sc| {
        let flood = sc.spawn(|| lab.client(&["python3", "-c", flood], 120));
        std::thread::sleep(std::time::Duration::from_secs(2));
        // During the flood: the DIPs forward and a legitimate HTTPS client is answered.
        let r = curl(&lab, &["http://real1.lab/index.html"]);
        assert!(r.ok() && r.stdout.contains("real server dt-real1"), "{r:?}");
        let r = curl(&lab, &["-L", "https://www.lab/index.html"]);
        assert!(r.ok() && r.stdout.contains("real server"), "{r:?}");
        let f = flood.join().unwrap();
        assert!(f.ok() && f.stdout.contains("sent 3000"), "{f:?}");
    });
    let after = rss_kib(&lab);
    // 256 entries per worker, two workers: a few MiB at most.
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} to {after} KiB\n{}",
        lab.log_text()
    );
    println!("detour VmRSS {before} KiB before, {after} KiB after 3000 ClientHellos");
    let st = lab.ctl_ok("show statistics");
    println!("{st}");
}

/// Every `tls:` line of `show statistics` after the `WORKERS` header, by worker (`w0`, `w1`):
/// the named counter's value.
fn per_worker(stats: &str, counter: &str) -> Vec<(String, u64)> {
    let workers = &stats[stats.find("WORKERS").unwrap_or(0)..];
    let mut out = Vec::new();
    let mut who = String::new();
    for l in workers.lines() {
        let t = l.trim_start();
        if let Some((w, _)) = t.split_once(':').filter(|(w, _)| w.starts_with('w')) {
            who = w.to_string();
        } else if let Some(rest) = t.strip_prefix("tls:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let n = words
                .windows(2)
                .find(|p| p[0] == counter)
                .and_then(|p| p[1].parse().ok())
                .unwrap_or(0);
            out.push((who.clone(), n));
        }
    }
    out
}

/// The value of `counter` on the totals' `tls:` line of `show statistics`.
fn tls_total(stats: &str, counter: &str) -> u64 {
    let line = stats
        .lines()
        .find(|l| l.starts_with("  tls:"))
        .unwrap_or_else(|| panic!("no tls line in\n{stats}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|p| p[0] == counter)
        .and_then(|p| p[1].parse().ok())
        .unwrap_or_else(|| panic!("no {counter} in {line}"))
}

/// Statistics after the workers' next reports (every 500 ms).
fn fresh_stats(lab: &Lab) -> String {
    std::thread::sleep(std::time::Duration::from_millis(1200));
    lab.ctl_ok("show statistics")
}

#[test]
fn a_session_from_one_worker_resumes_on_the_other() {
    let lab = Lab::start(&tls_config(), 1);
    let sess = "/tmp/detour-lab/tls/session-x.pem";
    let s_client = |extra: &str| {
        let cmd = format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: www.lab\\r\\n\\r\\n' | timeout 5 openssl s_client -connect www.lab:443 -servername www.lab -CAfile {CA} -tls1_3 -ign_eof {extra} 2>&1"
        );
        lab.client(&["sh", "-c", &cmd], 10)
    };
    lab.ctl_ok("clear statistics");
    let first = s_client(&format!("-sess_out {sess}"));
    assert!(
        first.stdout.contains("New, TLSv1.3") && first.stdout.contains("302 Found"),
        "{first:?}"
    );
    let s = fresh_stats(&lab);
    let full = per_worker(&s, "handshakes");
    let (origin, _) = full
        .iter()
        .find(|(_, n)| *n == 1)
        .unwrap_or_else(|| panic!("one worker made the full handshake:\n{s}"))
        .clone();
    // New connections (new source ports: the client's queue choice spreads them over the
    // two queues) resume until one lands on the other worker; each must say Reused.
    let mut crossed = None;
    for i in 0..16 {
        let r = s_client(&format!("-sess_in {sess}"));
        assert!(
            r.stdout.contains("Reused, TLSv1.3") && r.stdout.contains("302 Found"),
            "resumption {i}: {r:?}\n{}",
            lab.log_text()
        );
        let s = fresh_stats(&lab);
        let other = per_worker(&s, "resumed")
            .into_iter()
            .find(|(w, n)| *w != origin && *n > 0);
        if let Some(o) = other {
            crossed = Some((i, o, s));
            break;
        }
    }
    let (i, (w, n), s) = crossed.unwrap_or_else(|| {
        panic!(
            "no resumption reached the worker other than {origin} in 16 connections\n{}",
            lab.ctl_ok("show statistics")
        )
    });
    println!("resumption {i}: {w} resumed {n} of the session {origin} issued\n{s}");
    // The other worker never made a full handshake for it: all its handshakes are resumed.
    let hs = per_worker(&s, "handshakes");
    let theirs = hs.iter().find(|(x, _)| *x == w).map_or(0, |p| p.1);
    assert_eq!(theirs, n, "{w}: every handshake resumed\n{s}");
    let _ = std::fs::remove_file(sess);
}

#[test]
fn a_lost_server_flight_is_recovered_by_the_directors_timer() {
    let lab = Lab::start(&tls_config(), 1);
    // The client's own recovery is pushed out of the way: no tail-loss probe, and a
    // retransmission timeout of at least 5 s toward the VIP. The first data segment from
    // the VIP's port 443 (the server's flight) is dropped on arrival.
    let setup = [
        "echo 0 > /proc/sys/net/ipv4/tcp_early_retrans",
        "ip route add 198.18.0.1/32 dev c0 rto_min 5000ms",
        "nft add table inet dtls2",
        "nft add chain inet dtls2 in { type filter hook input priority 0 \\; }",
        "nft add rule inet dtls2 in ip saddr 198.18.0.1 tcp sport 443 meta length gt 200 numgen inc mod 1000000 eq 0 counter drop",
    ];
    for cmd in setup {
        let r = lab.client(&["sh", "-c", cmd], 10);
        assert!(r.ok(), "{cmd}: {r:?}");
    }
    lab.ctl_ok("clear statistics");
    // Within 3 s: only the director's timer (400 ms) can resend the flight in time.
    let r = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            "--cacert",
            CA,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            "https://www.lab/",
        ],
        10,
    );
    let dropped = lab.client(&["nft", "list", "table", "inet", "dtls2"], 10);
    for cmd in [
        "nft delete table inet dtls2",
        "ip route del 198.18.0.1/32 dev c0",
        "echo 3 > /proc/sys/net/ipv4/tcp_early_retrans",
    ] {
        let _ = lab.client(&["sh", "-c", cmd], 10);
    }
    assert!(
        dropped.stdout.contains("counter packets 1 "),
        "one segment dropped: {dropped:?}"
    );
    assert!(
        r.ok() && r.stdout.starts_with("302 "),
        "{r:?}\n{}",
        lab.log_text()
    );
    let s = fresh_stats(&lab);
    assert!(tls_total(&s, "retransmits") >= 1, "{s}");
    println!("curl: {} after the loss\n{s}", r.stdout);
}

#[test]
fn an_ipv6_tls_virtual_redirects_to_a_reals_https_page_through_an_ipv6_dip() {
    let conf = tls_config()
        + "virtual [2001:db8::1]:443 tls\n\
           dip [2001:db8::2]:443 real [2001:db8:1::11]:8443\n\
           url s6 https://real1.lab/%d\n\
           link s6 [2001:db8::2]:443\n\
           bind [2001:db8::1]:443 s6\n";
    let lab = Lab::start(&conf, 1);
    // The names of the lab's certificates, on the IPv6 addresses.
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "curl",
            "-6",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            CA,
            "--resolve",
            "www.lab:443:[2001:db8::1]",
            "--resolve",
            "real1.lab:443:[2001:db8::2]",
        ];
        v.extend_from_slice(extra);
        v
    };
    // The reals' IPv6 MACs are learned within a refresh (as in lab6.rs).
    let t = std::time::Instant::now();
    let loc = loop {
        let r = lab.client(
            &args(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "https://www.lab/x",
            ]),
            10,
        );
        if r.ok() && r.stdout.starts_with("302 ") {
            break r.stdout;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "{r:?}\n{}",
            lab.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(loc, "302 https://real1.lab/x");
    let r = lab.client(&args(&["-L", "https://www.lab/index.html"]), 10);
    assert!(
        r.ok() && r.stdout.contains("real server dt-real1<"),
        "{r:?}\n{}",
        lab.log_text()
    );
    let s = fresh_stats(&lab);
    assert!(tls_total(&s, "answered") >= 2, "{s}");
}
