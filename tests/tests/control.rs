//! The control plane end to end: `detour ctl` under load, health checks and failover,
//! backups for a whole site, reload and `write memory`, the Prometheus endpoint.

use detour_e2e::{lab_config, sha256, Lab, BIG_BIN};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Hosts of the next `n` redirects from the VIP.
fn hosts(lab: &Lab, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let got = lab.code_and_location(&format!("http://www.lab/n{i}"));
            got.split('/').nth(2).unwrap_or(&got).to_string()
        })
        .collect()
}

fn count(v: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for h in v {
        *m.entry(h.clone()).or_insert(0) += 1;
    }
    m
}

/// Wait (bounded) until `f` holds.
fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "not within {secs}s: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

const FAST_HEALTH: &str =
    "health-check all http path /index.html expect 200 interval 200ms timeout 150ms rise 2 fall 2";

#[test]
fn ctl_changes_the_rotation_at_once_while_a_download_through_a_dip_goes_on() {
    let lab = Lab::start(&lab_config("predictor 198.18.0.1 weighted"), 60);
    let want = sha256(BIG_BIN);
    // A long download from real1 through its DIP, slowed so it spans every change below.
    let out = "/tmp/detour-e2e-ctl.bin";
    let mut dl = lab.spawn_client(&[
        "curl",
        "-sS",
        "--max-time",
        "60",
        "--limit-rate",
        "15M",
        "-o",
        out,
        "http://real1.lab/big.bin",
    ]);
    std::thread::sleep(Duration::from_millis(300));

    lab.ctl_ok("weight 198.18.0.2 3");
    let c = count(&hosts(&lab, 5));
    assert_eq!(
        c.get("real1.lab"),
        Some(&3),
        "weights 3:1:1 over one cycle: {c:?}"
    );

    lab.ctl_ok("no bind 198.18.0.1 real2");
    let h = hosts(&lab, 8);
    assert!(
        !h.iter().any(|x| x == "real2.lab"),
        "unbound real2 still redirected to: {h:?}"
    );
    lab.ctl_ok("bind 198.18.0.1 real2");
    let h = hosts(&lab, 5);
    assert!(
        h.iter().any(|x| x == "real2.lab"),
        "bound again but never picked: {h:?}"
    );

    // Sticky: no new redirects, but its DIP still serves (the download too).
    lab.ctl_ok("out-of-service real 198.18.0.2 sticky");
    let h = hosts(&lab, 6);
    assert!(
        !h.iter().any(|x| x == "real1.lab"),
        "sticky real got new redirects: {h:?}"
    );
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://real1.lab/index.html",
        ],
        10,
    );
    assert!(
        page.ok() && page.stdout.contains("dt-real1"),
        "sticky real's DIP must still serve: {page:?}"
    );
    assert!(lab.ctl_ok("show real").contains("sticky"));

    lab.ctl_ok("in-service real 198.18.0.2");
    let h = hosts(&lab, 5);
    assert!(
        h.iter().any(|x| x == "real1.lab"),
        "back in service but never picked: {h:?}"
    );

    // A bad command is refused and changes nothing.
    let before = lab.ctl_ok("show config");
    let r = lab.ctl("bind 198.18.0.1 nobody");
    assert!(
        !r.ok()
            && r.stdout
                .contains("<ctl>:1:17: expected a defined url, found `nobody`"),
        "{r:?}"
    );
    assert_eq!(lab.ctl_ok("show config"), before);

    let ok = dl.wait_ok(70);
    let got = if ok { sha256(out) } else { String::new() };
    let _ = std::fs::remove_file(out);
    assert!(
        ok,
        "download through the DIP failed during the changes\n{}",
        lab.log_text()
    );
    assert_eq!(got, want, "download through the DIP damaged by the changes");
}

#[test]
fn a_stopped_server_fails_over_to_each_kind_of_backup_and_comes_back() {
    let mut lab = Lab::start(&lab_config(FAST_HEALTH), 1);
    lab.ctl_ok("url sorry http://sorry.lab/%d");
    lab.real_server(2, false);
    let took = eventually("real2 marked failed", 5, || {
        lab.ctl_ok("show real")
            .lines()
            .any(|l| l.starts_with("198.18.1.12:8080") && l.contains("failed"))
    });
    assert!(took < Duration::from_secs(3), "failover took {took:?}");
    let log = lab.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("real 198.18.1.12:8080 failed"))
        .unwrap_or_else(|| panic!("no failover log line:\n{log}"));
    assert!(line.contains("detected in"), "{line}");
    // No redirect to it any more.
    let h = hosts(&lab, 9);
    assert!(
        !h.iter().any(|x| x == "real2.lab"),
        "failed real still redirected to: {h:?}"
    );
    // Its DIP follows its backup: a virtual (lab.conf: www.lab) ...
    let got = lab.code_and_location("http://real2.lab/bm");
    assert!(
        got == "302 http://real1.lab/bm" || got == "302 http://real3.lab/bm",
        "{got}"
    );
    // ... a real (forwarded there) ...
    lab.ctl_ok("backup 198.18.0.4 198.18.0.2");
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://real2.lab/index.html",
        ],
        10,
    );
    assert!(
        page.ok() && page.stdout.contains("dt-real1"),
        "DIP of a failed real with a real backup: {page:?}\n{}",
        lab.log_text()
    );
    // ... a URL.
    lab.ctl_ok("backup 198.18.0.4 sorry");
    assert_eq!(
        lab.code_and_location("http://real2.lab/bm"),
        "302 http://sorry.lab/bm"
    );
    // Back: restarting the server brings it back by itself.
    lab.real_server(2, true);
    eventually("real2 back in service", 5, || {
        lab.ctl_ok("show real")
            .lines()
            .any(|l| l.starts_with("198.18.1.12:8080") && l.contains("in-service"))
    });
    let h = hosts(&lab, 6);
    assert!(
        h.iter().any(|x| x == "real2.lab"),
        "recovered real never picked: {h:?}"
    );
    assert!(lab
        .log_text()
        .contains("real 198.18.1.12:8080 back in service"));
    let _ = lab.stop();
}

#[test]
fn with_every_real_down_the_virtuals_backup_url_is_served() {
    let lab = Lab::start(
        &lab_config(&format!(
            "{FAST_HEALTH}\nurl othersite http://other.lab/%d\nbackup 198.18.0.1 othersite"
        )),
        1,
    );
    for n in 1..=3 {
        lab.real_server(n, false);
    }
    eventually("all IPv4 reals failed", 6, || {
        lab.ctl_ok("show real")
            .lines()
            .filter(|l| l.starts_with("198.18.") && l.contains("failed"))
            .count()
            == 3
    });
    assert_eq!(
        lab.code_and_location("http://www.lab/shop"),
        "302 http://other.lab/shop"
    );
    for n in 1..=3 {
        lab.real_server(n, true);
    }
    eventually("a real back", 6, || {
        lab.code_and_location("http://www.lab/x") != "302 http://other.lab/x"
    });
}

#[test]
fn reload_refuses_a_broken_file_applies_a_good_one_and_write_memory_survives_a_restart() {
    let mut lab = Lab::start(&lab_config(""), 1);
    let before = lab.ctl_ok("show config");
    std::fs::write(
        &lab.config,
        "virtual 198.18.0.1\nbind 198.18.0.1 nobody\nweight 198.18.0.9 x\n",
    )
    .unwrap();
    let r = lab.ctl("reload");
    assert!(!r.ok(), "{r:?}");
    let path = lab.config.display().to_string();
    assert!(
        r.stdout.contains(&format!(
            "{path}:2:17: expected a defined url, found `nobody`"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("{path}:3:19: expected a weight")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("running config unchanged"),
        "{}",
        r.stdout
    );
    assert_eq!(lab.ctl_ok("show config"), before);

    std::fs::write(&lab.config, lab_config("weight 198.18.0.2 5")).unwrap();
    assert!(lab.ctl_ok("reload").starts_with("ok: reloaded"));
    assert!(lab
        .ctl_ok("show config")
        .contains("weight 198.18.1.11:8080 5"));

    lab.ctl_ok("weight 198.18.0.3 4");
    lab.ctl_ok("out-of-service real 198.18.0.4 maintenance");
    let running = lab.ctl_ok("show config");
    assert!(lab.ctl_ok("write memory").starts_with("ok: wrote"));
    let _ = lab.stop();
    lab.run_detour();
    assert_eq!(
        lab.ctl_ok("show config"),
        running,
        "config after write memory and a restart"
    );
}

#[test]
fn prometheus_counters_match_what_the_clients_did() {
    let lab = Lab::start(&lab_config("metrics 127.0.0.1:9100"), 1);
    for i in 0..30 {
        lab.code_and_location(&format!("http://www.lab/m{i}"));
    }
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "http://real3.lab/index.html",
        ],
        10,
    );
    assert!(page.ok(), "{page:?}");
    std::thread::sleep(Duration::from_millis(1200)); // workers report twice a second
    let scrape = || {
        let m = lab.director(
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://127.0.0.1:9100/metrics",
            ],
            10,
        );
        assert!(m.ok(), "{m:?}");
        m
    };
    let m = scrape();
    let value = |name: &str| -> u64 {
        m.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from\n{}", m.stdout))
    };
    assert_eq!(value("detour_events_total{kind=\"redirects\"}"), 30);
    for u in ["real1", "real2", "real3"] {
        assert_eq!(
            value(&format!(
                "detour_redirects_total{{url=\"{u}\",code=\"302\"}}"
            )),
            10,
            "{u}"
        );
    }
    assert_eq!(
        value("detour_real_connections_opened_total{real=\"198.18.0.3:80\"}"),
        1
    );
    assert!(
        value("detour_real_packets_total{real=\"198.18.0.3:80\",direction=\"to_client\"}") >= 3
    );
    assert_eq!(
        value("detour_real_packets_total{real=\"198.18.1.11:8080\",direction=\"to_real\"}"),
        0
    );
    // The kernel's counters of the worker's AF_XDP sockets are exported, and at this load the
    // sockets lost no frame (a full rx ring, an empty fill ring, a bad descriptor).
    for c in [
        "rx_dropped",
        "rx_invalid_descs",
        "tx_invalid_descs",
        "rx_ring_full",
        "rx_fill_ring_empty_descs",
    ] {
        assert_eq!(
            value(&format!(
                "detour_xsk_socket_total{{worker=\"0\",counter=\"{c}\"}}"
            )),
            0,
            "{c}"
        );
    }
    value("detour_xsk_socket_total{worker=\"0\",counter=\"tx_ring_empty_descs\"}");
    // `show statistics` tells the same story.
    let s = lab.ctl_ok("show statistics");
    assert!(s.contains("redirects 30"), "{s}");
    assert!(
        s.contains("AF_XDP sockets (kernel, since start): rx_dropped 0 rx_invalid_descs 0"),
        "{s}"
    );
    // `clear statistics` restarts the table's counts; Prometheus counters stay monotonic.
    lab.ctl_ok("clear statistics");
    let s = lab.ctl_ok("show statistics");
    assert!(s.contains("responses: redirects 0 "), "{s}");
    let m = scrape();
    assert!(
        m.stdout
            .contains("detour_events_total{kind=\"redirects\"} 30"),
        "{}",
        m.stdout
    );
}

#[test]
fn binding_another_sites_url_shares_the_load_between_sites() {
    // The seed's Fig. 12: with round robin over two local reals and www.bar.com, a third of
    // the requests go to the other site.
    let lab = Lab::start(&lab_config(""), 1);
    lab.ctl_ok("url bar http://www.bar.com/%d");
    lab.ctl_ok("no bind 198.18.0.1 real3");
    // real3 is out of the rotation: its DIP can go too, and the director stops owning it.
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            "http://real3.lab/index.html",
        ],
        10,
    );
    assert!(page.ok() && page.stdout.contains("dt-real3"), "{page:?}");
    lab.ctl_ok("no dip 198.18.0.3");
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            "http://real3.lab/index.html",
        ],
        10,
    );
    assert!(!page.ok(), "a removed DIP still answered: {page:?}");
    assert!(!lab.ctl_ok("show config").contains("dip 198.18.0.3"));
    lab.ctl_ok("bind 198.18.0.1 bar");
    lab.ctl_ok("clear statistics");
    let c = count(&hosts(&lab, 30));
    let slack = lab.extra_answers(30) as usize;
    for h in ["real1.lab", "real2.lab", "www.bar.com"] {
        let n = c.get(h).copied().unwrap_or(0);
        assert!(
            n.abs_diff(10) <= slack,
            "{h}: {n} of 30 (a third expected; {slack} retransmitted requests answered again): {c:?}\n{}",
            lab.log_text()
        );
    }
}
