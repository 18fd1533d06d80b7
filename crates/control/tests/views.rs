//! Every `show` view; statistics from synthetic worker reports (and across a change of the
//! configuration); health transitions driving the states the data path runs.

mod common;
use common::*;
use detour_config::lang::State;
use detour_config::Action;
use detour_control::stats::new_hist;
use detour_control::{Control, Report};
use detour_dataplane::{Counters, RealCounters};

#[test]
fn every_show_view() {
    let dir = scratch("views");
    let mut c = control(&dir, &config("acme.conf"), 2);
    let show = |c: &mut Control, v: &str| c.command(&format!("show {v}")).text();
    let v = show(&mut c, "virtual");
    assert!(
        line(&v, "198.18.0.1:80").contains("in-service   predictor weighted"),
        "{v}"
    );
    assert!(
        line(&v, "coyote").contains("weight 2    in-service   302 http://coyote.acme.com/%d"),
        "{v}"
    );
    assert_eq!(
        show(&mut c, "bind"),
        "bind 198.18.0.1:80 coyote roadrunner\n"
    );
    let r = show(&mut c, "real");
    let real2 = line(&r, "198.18.0.2:80");
    assert!(
        real2.contains("in-service") && real2.contains("weight 2"),
        "{r}"
    );
    assert!(
        real2.contains("DIP traffic: forward to real 198.18.0.2:80"),
        "{r}"
    );
    let u = show(&mut c, "urls");
    assert!(
        line(&u, "book").contains("302 in-service   http://www.book.com/%d"),
        "{u}"
    );
    let b = show(&mut c, "backup");
    assert!(
        line(&b, "real 198.18.0.3:80").contains("backup 198.18.0.2:80"),
        "{b}"
    );
    assert!(
        line(&b, "virtual 198.18.0.1:80")
            .contains("when nothing is eligible: redirect to url book"),
        "{b}"
    );
    assert_eq!(show(&mut c, "config"), c.model.to_config());
    let s = show(&mut c, "stats");
    assert!(
        s.contains("VIRTUALS") && s.contains("REALS") && s.contains("w1: no report yet"),
        "{s}"
    );
    assert_eq!(show(&mut c, "health"), "no health checks configured\n");
    let h = c.command("help").text();
    for verb in ["show config", "clear statistics", "reload", "write memory"] {
        assert!(h.contains(verb), "{h}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn statistics_from_reports_follow_a_change_of_the_configuration() {
    let dir = scratch("stats");
    let mut c = control(&dir, &config("lab.conf"), 2);
    let e1 = c.epoch;
    let r0 = report(&c, 0, e1, 5, 3);
    c.stats.report(r0);
    c.stats.report(report(&c, 1, e1, 2, 1));
    let s = c.command("show statistics").text();
    assert!(line(&s, "198.18.0.1:80").ends_with("redirects 12"), "{s}");
    assert!(line(&s, "real1").contains("302 x 4"), "{s}");
    let r1 = line(&s, "198.18.1.11:8080");
    assert_eq!(r1.split_whitespace().nth(3), Some("7"), "pkts in: {r1}");
    assert_eq!(
        r1.split_whitespace().nth(7),
        Some("5"),
        "active (7 opened - 2 closed): {r1}"
    );
    // Three IPv4 reals and two IPv6 ones in the lab.
    assert_eq!(c.active_conns(), vec![5; 5]);
    let p = c.prometheus();
    assert!(
        p.contains("detour_redirects_total{url=\"real2\",code=\"302\"} 4\n"),
        "{p}"
    );
    assert!(
        p.contains("detour_real_packets_total{real=\"198.18.0.3:80\",direction=\"to_real\"} 7\n"),
        "{p}"
    );

    // A new URL goes first and real1's DIP goes away: the indices move; the counts stay
    // with their objects. Worker 1 still runs the old snapshot and reports in its indices.
    assert!(c.command("no bind 198.18.0.1 real1").changed());
    let e2 = c.epoch;
    assert!(e2 > e1);
    let before = c.snap.clone();
    assert!(c.command("no url real1").changed());
    let e3 = c.epoch;
    assert_eq!(c.snap.urls.iter().filter(|u| u.id == "real1").count(), 0);
    // The snapshot carries, for the workers, where each URL was in the one before it.
    assert_eq!(c.snap.carry.from, e2);
    assert_eq!(c.snap.carry.urls.len(), c.snap.urls.len());
    for (i, u) in c.snap.urls.iter().enumerate() {
        let was = before
            .urls
            .iter()
            .position(|o| o.id == u.id)
            .map(|j| j as u32);
        assert!(was.is_some(), "{} was there before", u.id);
        assert_eq!(c.snap.carry.urls[i], was, "{}", u.id);
    }
    assert!(
        c.snap
            .carry
            .urls
            .iter()
            .enumerate()
            .any(|(i, j)| *j != Some(i as u32)),
        "real1's removal moved indices"
    );
    let mut old = report_like(&c, 1, e1, 3);
    old.urls = vec![9, 9, 9];
    c.stats.report(old);
    let p = c.prometheus();
    // real2: worker 0 said 3 (carried over), worker 1 now says 9 from epoch e1's index.
    assert!(
        p.contains("detour_redirects_total{url=\"real2\",code=\"302\"} 12\n"),
        "{p}"
    );
    assert!(!p.contains("url=\"real1\""), "{p}");
    let mut new = report_like(&c, 1, e3, 4);
    new.urls = vec![1; c.snap.urls.len()];
    c.stats.report(new);
    let p = c.prometheus();
    assert!(
        p.contains("detour_redirects_total{url=\"real3\",code=\"302\"} 4\n"),
        "{p}"
    );

    c.command("clear statistics");
    let s = c.command("show statistics").text();
    assert!(s.contains("responses: redirects 0 "), "{s}");
    assert!(line(&s, "real2").contains("302 x 0"), "{s}");
    assert!(c
        .prometheus()
        .contains("detour_redirects_total{url=\"real3\",code=\"302\"} 4\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A report of `epoch` with `n` in every real's counters, for a snapshot of the lab's five
/// reals.
fn report_like(_c: &Control, worker: usize, epoch: u64, n: u64) -> Report {
    Report {
        worker,
        counters: Counters::default(),
        batches: 1,
        hist: new_hist(),
        epoch,
        reals: vec![
            RealCounters {
                to_real: n,
                ..Default::default()
            };
            5
        ],
        urls: Vec::new(),
        sockets: Vec::new(),
    }
}

#[test]
fn health_transitions_drive_the_states_the_data_path_runs() {
    let dir = scratch("health");
    let mut c = control(&dir, &config("lab.conf"), 1);
    let real2 = "198.18.1.12:8080".parse().unwrap();
    let idx = |c: &Control| c.snap.reals.iter().position(|r| r.addr == real2).unwrap();
    let epoch = c.epoch;
    assert!(c.health(real2, false));
    assert_eq!(c.epoch, epoch + 1);
    let r = &c.snap.reals[idx(&c)];
    assert_eq!(r.state, State::Failed);
    // Its DIP follows its backup (the VIP: a fresh redirect).
    assert!(
        matches!(r.action, Action::Redirect { .. }),
        "{:?}",
        r.action
    );
    let shown = c.command("show real").text();
    assert!(
        line(&shown, "198.18.1.12:8080").contains("failed"),
        "{shown}"
    );
    assert!(shown.contains("(health check: down)"));
    // The same transition again changes nothing; the health state is not written back.
    assert!(!c.health(real2, false));
    assert!(!c.command("show config").text().contains("failed"));
    // The operator's state wins while it does not forward.
    c.command("out-of-service real 198.18.0.4 maintenance");
    assert_eq!(c.snap.reals[idx(&c)].state, State::Maintenance);
    c.command("in-service real 198.18.0.4");
    assert_eq!(c.snap.reals[idx(&c)].state, State::Failed);
    assert!(c.health(real2, true));
    assert_eq!(c.snap.reals[idx(&c)].state, State::InService);
    assert!(matches!(
        c.snap.reals[idx(&c)].action,
        Action::Forward { .. }
    ));
    assert_eq!(c.health_transitions, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_counters_show_in_statistics_per_worker_and_in_metrics() {
    let dir = scratch("tlsstats");
    let mut c = control(&dir, &config("lab.conf"), 2);
    let e = c.epoch;
    // No TLS traffic and no `tls` virtual: no TLS line.
    let s = c.command("show statistics").text();
    assert!(!s.contains("tls:"), "{s}");
    let mut r0 = report_like(&c, 0, e, 0);
    r0.counters.tls_handshakes = 3;
    r0.counters.tls_retransmits = 2;
    r0.counters.tls_timed_out = 1;
    r0.counters.drop(detour_dataplane::Reason::TlsDeferred);
    let mut r1 = report_like(&c, 1, e, 0);
    r1.counters.tls_handshakes = 4;
    r1.counters.tls_resumed = 4;
    c.stats.report(r0);
    c.stats.report(r1);
    let s = c.command("show statistics").text();
    // Totals: every tls_ counter of the declaration, then the TLS drops.
    let total = line(&s, "tls: handshakes");
    assert_eq!(
        total.trim(),
        "tls: handshakes 7  resumed 4  answered 0  failures 0  evicted 0  retransmits 2  timed_out 1  deferred 1  full 0",
        "{s}"
    );
    // Per worker: worker 1 resumed 4 of its 4.
    let workers = &s[s.find("WORKERS").unwrap()..];
    let per: Vec<&str> = workers
        .lines()
        .filter(|l| l.trim_start().starts_with("tls:"))
        .collect();
    assert_eq!(per.len(), 2, "{s}");
    assert!(per[0].contains("handshakes 3  resumed 0"), "{s}");
    assert!(per[1].contains("handshakes 4  resumed 4"), "{s}");
    let p = c.prometheus();
    for (kind, n) in [
        ("tls_handshakes", 7),
        ("tls_resumed", 4),
        ("tls_retransmits", 2),
        ("tls_timed_out", 1),
    ] {
        assert!(
            p.contains(&format!("detour_events_total{{kind=\"{kind}\"}} {n}\n")),
            "{kind}: {p}"
        );
    }
    assert!(
        p.contains("detour_drops_total{reason=\"tls_deferred\"} 1\n"),
        "{p}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
