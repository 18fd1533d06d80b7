//! The status page's JSON: valid JSON whatever the names hold, and the same numbers as
//! `show statistics` and `show health`.

mod common;
use common::*;
use detour_control::show::CheckStatus;
use detour_control::status::json_str;
use std::time::{Duration, Instant};

fn field<'a>(s: &'a str, row: &str, n: usize) -> &'a str {
    line(s, row).split_whitespace().nth(n).unwrap_or("")
}

#[test]
fn status_json_carries_what_show_statistics_shows() {
    let dir = scratch("status");
    let mut c = control(&dir, &config("lab.conf"), 2);
    let e = c.epoch;
    let r = report(&c, 0, e, 5, 3);
    c.stats.report(r);
    let r = report(&c, 1, e, 2, 1);
    c.stats.report(r);
    let real1: std::net::SocketAddr = "198.18.1.11:8080".parse().unwrap();
    c.health(real1, false);
    let checks = [CheckStatus {
        addr: real1,
        up: false,
        since: Instant::now() - Duration::from_secs(3),
        checks: 9,
        failures: 2,
        transitions: 1,
        last: "connect: refused \"quoted\"\n".into(),
    }];
    let j: serde_json::Value = serde_json::from_str(&c.status_json(&checks, 1234)).unwrap();
    let stats = c.command("show statistics").text();
    assert_eq!(j["now_ms"], 1234);
    assert_eq!(j["epoch"], c.epoch);
    let v = &j["virtuals"][0];
    assert_eq!(v["id"], "198.18.0.1:80");
    assert_eq!(v["predictor"], "roundrobin");
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[1]["name"], "real2");
    assert_eq!(
        members[1]["redirects"].to_string(),
        field(&stats, "real2", 3)
    );
    // The events count every virtual's redirects (the lab has an IPv6 virtual too).
    let total = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("responses: redirects "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    assert_eq!(j["events"]["redirects"].to_string(), total);
    let reals = j["reals"].as_array().unwrap();
    let r1 = reals
        .iter()
        .find(|r| r["id"] == "198.18.1.11:8080")
        .unwrap();
    assert_eq!(r1["state"], "failed");
    assert_eq!(
        r1["state"].as_str().unwrap(),
        field(&stats, "198.18.1.11:8080", 1)
    );
    assert_eq!(
        r1["pkts_in"].to_string(),
        field(&stats, "198.18.1.11:8080", 3)
    );
    assert_eq!(
        r1["opened"].to_string(),
        field(&stats, "198.18.1.11:8080", 8)
    );
    assert_eq!(r1["dip"], "198.18.0.2:80");
    assert_eq!(r1["health"]["up"], false);
    assert_eq!(r1["health"]["last"], "connect: refused \"quoted\"\n");
    assert!(reals.iter().find(|r| r["id"] == "198.18.0.3:80").unwrap()["health"].is_null());
    let workers = j["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["rx"], 500);
    assert_eq!(workers[0]["batches"], 10);
    assert!(j["drops"].as_object().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_strings_escape_what_json_requires() {
    for s in [
        "plain",
        "q\"uote",
        "back\\slash",
        "ctl\u{1}\u{7f}\n\t",
        "é ü",
    ] {
        let v: serde_json::Value = serde_json::from_str(&json_str(s)).unwrap();
        assert_eq!(v, s);
    }
}
