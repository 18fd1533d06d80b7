//! detour end to end over IPv6, in the dual-stack lab (scripts/lab.sh): curl -6 resolves the
//! VIP and the DIPs by neighbour discovery (answered by the director), follows the redirect
//! to an IPv6 DIP and downloads through it (NAT both ways, hash checked); a real's IPv6 health
//! check fails it over. IPv4 traffic runs beside it.

use detour_e2e::{lab_config, sha256, Lab, BIG_BIN};
use std::time::{Duration, Instant};

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `curl -6` in the client namespace; (ok, stdout).
fn curl6(lab: &Lab, args: &[&str]) -> (bool, String) {
    let mut v = vec!["curl", "-6", "-sS", "--max-time", "30"];
    v.extend_from_slice(args);
    let r = lab.client(&v, 40);
    (r.ok(), format!("{}{}", r.stdout, r.stderr))
}

#[test]
fn curl6_follows_the_redirect_and_downloads_through_an_ipv6_dip() {
    let lab = Lab::start(&lab_config(""), 20);
    // The reals' IPv6 MACs are learned within a refresh: until then a SYN may go unanswered
    // (curl retries).
    eventually("the IPv6 VIP answers", 15, || {
        curl6(
            &lab,
            &["-o", "/dev/null", "-w", "%{http_code}", "http://www6.lab/x"],
        )
        .1 == "302"
    });
    let (ok, loc) = curl6(
        &lab,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "http://www6.lab/big.bin",
        ],
    );
    assert!(ok, "{loc}\n{}", lab.log_text());
    assert!(
        loc == "http://[2001:db8::2]/big.bin" || loc == "http://[2001:db8::4]/big.bin",
        "Location {loc:?}"
    );
    // Without a Host header, %h would be the bracketed VIP; curl sends one, so the DIP's
    // implicit URL is what the Location names. Follow it and download through the DIP.
    let out = "/tmp/detour-e2e-ipv6.bin";
    let (ok, msg) = curl6(&lab, &["-L", "-o", out, "http://www6.lab/big.bin"]);
    let got = if ok { sha256(out) } else { String::new() };
    let _ = std::fs::remove_file(out);
    assert!(ok, "IPv6 download: {msg}\n{}", lab.log_text());
    assert_eq!(
        got,
        sha256(BIG_BIN),
        "IPv6 download differs\n{}",
        lab.log_text()
    );
    // And directly through each IPv6 DIP, next to IPv4 through its DIP.
    for url in [
        "http://[2001:db8::2]/index.html",
        "http://[2001:db8::4]/index.html",
    ] {
        let (ok, page) = curl6(&lab, &[url]);
        assert!(
            ok && page.contains("<h1>real server"),
            "{url}: {page}\n{}",
            lab.log_text()
        );
    }
    let r = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://real1.lab/index.html",
        ],
        15,
    );
    assert!(
        r.ok() && r.stdout.contains("dt-real1"),
        "IPv4 beside it: {r:?}"
    );
    let stats = lab.ctl_ok("show real");
    assert!(stats.contains("[2001:db8:1::11]:8080"), "{stats}");
}

#[test]
fn a_reals_ipv6_health_check_fails_it_over() {
    let lab = Lab::start(&lab_config(""), 1);
    eventually("both IPv6 reals up", 15, || {
        let s = lab.ctl_ok("show real");
        s.lines()
            .filter(|l| l.starts_with("[2001:db8:1::1") && l.contains("in-service"))
            .count()
            == 2
    });
    lab.real_server(2, false);
    eventually("real2's IPv6 side marked failed", 10, || {
        lab.ctl_ok("show real")
            .lines()
            .any(|l| l.starts_with("[2001:db8:1::12]:8080") && l.contains("failed"))
    });
    // Every IPv6 redirect now names real1's DIP, and following it serves real1.
    for i in 0..4 {
        let (ok, loc) = curl6(
            &lab,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{redirect_url}",
                &format!("http://www6.lab/{i}"),
            ],
        );
        assert!(
            ok && loc == format!("http://[2001:db8::2]/{i}"),
            "{loc}\n{}",
            lab.log_text()
        );
    }
    let (ok, page) = curl6(&lab, &["-L", "http://www6.lab/index.html"]);
    assert!(
        ok && page.contains("dt-real1"),
        "{page}\n{}",
        lab.log_text()
    );
    // real2's IPv6 DIP follows its backup (the IPv6 virtual): a redirect, not a timeout.
    let (ok, code) = curl6(
        &lab,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://[2001:db8::4]/y",
        ],
    );
    assert!(ok && code == "302", "{code}\n{}", lab.log_text());
    lab.real_server(2, true);
}
