//! The live status page (`GET /` on the metrics listener) in headless Chromium, as an
//! operator opens it: it renders (a screenshot is written to
//! `target/status-page.png`), its numbers match `detour ctl show statistics` within one
//! refresh, and a real going down shows on it.

use detour_e2e::{lab_config, root, Lab, Run};
use std::time::{Duration, Instant};

const PAGE: &str = "http://127.0.0.1:9100/";

/// Headless Chromium in the director's namespace (the metrics listener is on its loopback).
fn chromium(lab: &Lab, extra: &[&str]) -> Run {
    let profile = std::env::temp_dir().join(format!("detour-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let data_dir = format!("--user-data-dir={}", profile.display());
    let mut args = vec![
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &data_dir,
        // Long enough for the first status.json answer and a second refresh.
        "--virtual-time-budget=5000",
    ];
    args.extend_from_slice(extra);
    args.push(PAGE);
    let r = lab.director(&args, 90);
    let _ = std::fs::remove_dir_all(&profile);
    r
}

/// The text of the cell marked `data-k="<key>"` in the rendered DOM.
fn cell(dom: &str, key: &str) -> String {
    let mark = format!("data-k=\"{key}\">");
    let at = dom
        .find(&mark)
        .unwrap_or_else(|| panic!("no cell {key} on the page:\n{dom}"));
    let rest = &dom[at + mark.len()..];
    rest[..rest.find('<').unwrap_or(0)].to_string()
}

fn dom(lab: &Lab) -> String {
    let r = chromium(lab, &["--dump-dom"]);
    assert!(
        r.ok() && r.stdout.contains("data-refreshed"),
        "chromium --dump-dom: {r:?}"
    );
    r.stdout
}

/// `show statistics`: the VIP's redirects and the `opened` count of a real.
fn statistics(lab: &Lab) -> (String, String) {
    let s = lab.ctl_ok("show statistics");
    let redirects = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("responses: redirects "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let opened = s
        .lines()
        .find(|l| l.trim_start().starts_with("198.18.0.3:80"))
        .and_then(|l| l.split_whitespace().nth(8))
        .unwrap_or_default()
        .to_string();
    (redirects, opened)
}

#[test]
fn the_status_page_renders_matches_show_statistics_and_shows_a_real_going_down() {
    let lab = Lab::start(&lab_config("metrics 127.0.0.1:9100"), 1);
    for i in 0..12 {
        lab.code_and_location(&format!("http://www.lab/p{i}"));
    }
    let page = lab.client(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "http://real3.lab/index.html",
        ],
        10,
    );
    assert!(page.ok(), "{page:?}");
    std::thread::sleep(Duration::from_millis(1200)); // reports twice a second, published after

    let shot = root().join("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let r = chromium(&lab, &[&arg, "--window-size=1280,1500"]);
    assert!(r.ok(), "chromium --screenshot: {r:?}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );

    let d = dom(&lab);
    let (redirects, opened) = statistics(&lab);
    assert_eq!(redirects, "12");
    assert_eq!(
        cell(&d, "event:redirects"),
        redirects,
        "redirects on the page"
    );
    assert_eq!(
        cell(&d, "opened:198.18.0.3:80"),
        opened,
        "real3's connections"
    );
    let stats = lab.ctl_ok("show statistics");
    for n in ["real1", "real2", "real3"] {
        let shown = stats
            .lines()
            .find(|l| l.trim_start().starts_with(n) && l.contains(" x "))
            .and_then(|l| l.split(" x ").nth(1)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("{n} in\n{stats}"));
        assert_eq!(
            cell(&d, &format!("redirects:198.18.0.1:80:{n}")),
            shown,
            "{n}"
        );
    }
    assert_eq!(cell(&d, "state:198.18.1.12:8080"), "in-service");
    assert!(
        d.contains("<div id=\"err\"></div>"),
        "the page reports an error:\n{d}"
    );

    // real2 goes down: the health check fails it, and the page says so.
    lab.real_server(2, false);
    let t = Instant::now();
    while !lab
        .ctl_ok("show real")
        .lines()
        .any(|l| l.starts_with("198.18.1.12:8080") && l.contains("failed"))
    {
        assert!(t.elapsed() < Duration::from_secs(10), "real2 not failed");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(600)); // one publication
    let d = dom(&lab);
    assert_eq!(
        cell(&d, "state:198.18.1.12:8080"),
        "failed",
        "real2 on the page"
    );
    assert!(d.contains(">DOWN ("), "real2's health check on the page");
    lab.real_server(2, true);
    println!("status page: screenshot {}", shot.display());
}
