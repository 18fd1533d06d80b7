//! detour end to end: the `detour` binary on AF_XDP sockets on veth in network namespaces,
//! python3 http.server real servers, curl as the client (scripts/lab.sh is the topology).

use detour_e2e::{lab_config, sha256, Lab, BIG_BIN};
use std::collections::BTreeMap;
use std::time::Duration;

const PAGE: &str = "<h1>real server";

fn page_host(body: &str) -> Option<&str> {
    ["dt-real1", "dt-real2", "dt-real3"]
        .into_iter()
        .find(|r| body.contains(&format!("real server {r}<")))
}

#[test]
fn curl_follows_the_redirect_to_each_real_and_round_robin_alternates() {
    let lab = Lab::start(&lab_config(""), 1);
    // Location is exactly the URL with its macros expanded, in the rotation's order.
    let mut seen = Vec::new();
    for i in 0..6 {
        seen.push(lab.code_and_location(&format!("http://www.lab/p/{i}.html?q=1")));
    }
    let want: Vec<String> = (0..6)
        .map(|i| format!("302 http://real{}.lab/p/{i}.html?q=1", i % 3 + 1))
        .collect();
    assert_eq!(seen, want, "{}", lab.log_text());
    // Following it: each real's page through its DIP.
    let mut served = BTreeMap::new();
    for _ in 0..6 {
        let r = lab.client(
            &[
                "curl",
                "-sS",
                "-L",
                "--max-time",
                "5",
                "http://www.lab/index.html",
            ],
            10,
        );
        assert!(
            r.ok() && r.stdout.contains(PAGE),
            "{r:?}\n{}",
            lab.log_text()
        );
        *served
            .entry(page_host(&r.stdout).unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        served,
        BTreeMap::from([
            ("dt-real1".into(), 2),
            ("dt-real2".into(), 2),
            ("dt-real3".into(), 2)
        ]),
        "{}",
        lab.log_text()
    );
}

#[test]
fn weighted_shares_hold_over_600_requests() {
    let conf = lab_config("predictor 198.18.0.1 weighted\nweight 198.18.0.2 3\nweight 198.18.0.4 2\nweight 198.18.0.3 1");
    let lab = Lab::start(&conf, 1);
    // 600 requests through curl's URL globbing: one connection per request.
    let r = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "120",
            "-H",
            "Connection: close",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}\n",
            "http://www.lab/[1-600]",
        ],
        150,
    );
    assert!(r.ok(), "{r:?}\n{}", lab.log_text());
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    for l in r.stdout.lines() {
        let host = l.split('/').nth(2).unwrap_or("?").to_string();
        *n.entry(host).or_insert(0) += 1;
    }
    let slack = lab.extra_answers(600) as usize;
    for (h, want) in [
        ("real1.lab", 300usize),
        ("real2.lab", 200),
        ("real3.lab", 100),
    ] {
        let got = n.get(h).copied().unwrap_or(0);
        assert!(
            got.abs_diff(want) <= slack,
            "smooth weighted round robin is exact over whole cycles: {h} got {got}, want {want} \
             ({slack} retransmitted requests answered again): {n:?}\n{}",
            lab.log_text()
        );
    }
}

#[test]
fn a_100_mb_download_through_each_kind_of_dip_is_byte_identical_while_others_are_redirected() {
    let lab = Lab::start(&lab_config(""), 100);
    let want = sha256(BIG_BIN);
    // Redirect load in the background, bounded in count and time.
    let mut bg = lab.spawn_client(&[
        "curl",
        "-sS",
        "--max-time",
        "90",
        "-o",
        "/dev/null",
        "http://www.lab/bg/[1-3000]",
    ]);
    for (dip, what) in [("real1.lab", "NAT"), ("real3.lab", "same address")] {
        let out = format!("/tmp/detour-e2e-{dip}.bin");
        let r = lab.client(
            &[
                "curl",
                "-sS",
                "--max-time",
                "90",
                "-o",
                &out,
                &format!("http://{dip}/big.bin"),
            ],
            100,
        );
        let got = if r.ok() { sha256(&out) } else { String::new() };
        let _ = std::fs::remove_file(&out);
        assert!(r.ok(), "{what} download: {r:?}\n{}", lab.log_text());
        assert_eq!(got, want, "{what} download differs\n{}", lab.log_text());
    }
    let ok = bg.wait_ok(100);
    assert!(ok, "background redirects failed\n{}", lab.log_text());
}

#[test]
fn both_workers_carry_traffic() {
    let mut lab = Lab::start(&lab_config(""), 1);
    // Many connections from many source ports spread over the client's two tx queues.
    let r = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "http://www.lab/[1-400]",
        ],
        70,
    );
    assert!(r.ok(), "{r:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let log = lab.stop();
    // The summary lines name each worker's received frames: `frames w0:N w1:M`.
    let last = log
        .lines()
        .rfind(|l| l.contains("frames w0:"))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    let counts: Vec<u64> = last
        .split("frames ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .take_while(|w| w.starts_with('w'))
        .filter_map(|w| w.split(':').nth(1)?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "{last}");
    assert!(
        counts.iter().all(|&c| c > 50),
        "each worker should carry a share: {last}"
    );
}

#[test]
fn an_out_of_service_real_gets_no_redirects_and_its_dip_follows_its_backup() {
    let conf = lab_config("out-of-service real 198.18.0.2 maintenance");
    let lab = Lab::start(&conf, 1);
    for i in 0..6 {
        let got = lab.code_and_location(&format!("http://www.lab/{i}"));
        assert!(
            !got.contains("real1.lab"),
            "redirected to the real in maintenance: {got}"
        );
    }
    // Its DIP answers with a fresh redirect from www.lab (its backup).
    let got = lab.code_and_location("http://real1.lab/bookmark");
    assert!(
        got == "302 http://real2.lab/bookmark" || got == "302 http://real3.lab/bookmark",
        "{got}\n{}",
        lab.log_text()
    );
    // Without a backup it is refused.
    drop(lab);
    let conf = lab_config("out-of-service real 198.18.0.2 maintenance\nno backup 198.18.0.2");
    let lab = Lab::start(&conf, 1);
    let r = lab.client(&["curl", "-sS", "--max-time", "5", "http://real1.lab/"], 10);
    assert_eq!(
        r.code,
        Some(7),
        "refused (RST) expected: {r:?}\n{}",
        lab.log_text()
    );
}

#[test]
fn two_hundred_concurrent_clients_complete_without_error() {
    let lab = Lab::start(&lab_config(""), 1);
    let mut kids = Vec::new();
    for i in 0..200 {
        kids.push(
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    "dt-client",
                    "curl",
                    "-sS",
                    "-L",
                    "--max-time",
                    "30",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://www.lab/index.html?c={i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("curl"),
        );
    }
    let mut bad = Vec::new();
    for (i, k) in kids.into_iter().enumerate() {
        let o = k.wait_with_output().expect("wait");
        let code = String::from_utf8_lossy(&o.stdout).to_string();
        if !o.status.success() || code != "200" {
            bad.push((i, code, String::from_utf8_lossy(&o.stderr).to_string()));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 200 failed: {:?}\n{}",
        bad.len(),
        &bad[..bad.len().min(5)],
        lab.log_text()
    );
}
