//! Several directors behind ECMP: real BIRD on the router and on each director, real kernel
//! multipath routes, detour on AF_XDP in each director namespace (scripts/cluster.sh).
//! Each test says what it measured on stderr (`cargo test -- --nocapture` shows it).

use detour_e2e::cluster::{Cluster, RedirectLoop, Sample, DIR, VIP, VIP6};
use detour_e2e::KillOnDrop;
use std::time::{Duration, Instant};

const DIPS: [&str; 3] = ["198.18.20.2", "198.18.20.3", "198.18.20.4"];
const DIPS6: [&str; 3] = ["2001:db8:20::2", "2001:db8:20::3", "2001:db8:20::4"];

/// Spread redirects over the directors: every one answered, each director's share 20-46 %.
#[test]
fn redirects_spread_over_three_directors() {
    let c = Cluster::up(4);
    let before: Vec<u64> = (1..=3).map(|n| c.redirects(n)).collect();
    let mut answered = 0;
    for _ in 0..3 {
        answered += c.redirect_batch(1000);
    }
    // Counters reach the control thread twice a second.
    std::thread::sleep(Duration::from_millis(1200));
    let got: Vec<u64> = (1..=3)
        .map(|n| c.redirects(n) - before[n as usize - 1])
        .collect();
    let total: u64 = got.iter().sum();
    eprintln!("3000 redirects: {answered} answered; per director {got:?} (sum {total})");
    assert_eq!(answered, 3000);
    assert_eq!(
        total, 3000,
        "each redirect answered by exactly one director"
    );
    for (i, n) in got.iter().enumerate() {
        let share = *n as f64 / total as f64;
        assert!(
            (0.20..=0.46).contains(&share),
            "director {} answered {:.1} %",
            i + 1,
            share * 100.0
        );
    }
}

/// The router sends SYNs to director 1 and everything else to director 2 (nftables marks,
/// policy routes): the handshake completes across directors and the request gets its 302.
#[test]
fn a_handshake_split_across_directors_gets_its_redirect() {
    let c = Cluster::up(4);
    c.split_handshakes(1, 2);
    std::thread::sleep(Duration::from_millis(700));
    let syn = [c.syn_acks(1), c.syn_acks(2)];
    let red = [c.redirects(1), c.redirects(2)];
    let mut ok = 0;
    for i in 0..20 {
        let r = c.client(
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "3",
                "-w",
                "%{http_code}",
                &format!("http://{VIP}/split{i}"),
            ],
            5,
        );
        ok += usize::from(r.stdout == "302");
    }
    std::thread::sleep(Duration::from_millis(1200));
    let syn_d = [c.syn_acks(1) - syn[0], c.syn_acks(2) - syn[1]];
    let red_d = [c.redirects(1) - red[0], c.redirects(2) - red[1]];
    eprintln!(
        "split handshakes: {ok}/20 redirected; syn-acks d1 {} d2 {}; redirects d1 {} d2 {}",
        syn_d[0], syn_d[1], red_d[0], red_d[1]
    );
    assert_eq!(ok, 20);
    assert!(
        syn_d[0] >= 20 && syn_d[1] == 0,
        "SYNs went to director 1 only"
    );
    assert!(
        red_d[1] >= 20 && red_d[0] == 0,
        "requests went to director 2 only"
    );
}

/// Failures and slow answers of a redirect loop, and the span they cover.
fn summarize(samples: &[Sample], slow: Duration) -> (usize, usize, Option<(f64, f64)>) {
    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok).collect();
    let slow_n = samples.iter().filter(|s| s.ok && s.took > slow).count();
    let span = failed
        .first()
        .zip(failed.last())
        .map(|(a, b)| (a.at.as_secs_f64(), (b.at + b.took).as_secs_f64()));
    (failed.len(), slow_n, span)
}

/// 20 rate-limited downloads through the DIPs, then `event`, then every download must end
/// with the right hash. Returns the redirect loop's samples and the event's time in it.
fn under_load(c: &Cluster, event: impl FnOnce(&Cluster) -> f64) -> (Vec<Sample>, f64) {
    let want = c.big_sha();
    let mut dls: Vec<(KillOnDrop, String)> = (0..20)
        .map(|i| {
            let out = format!("{DIR}/dl{i}");
            (c.download(DIPS[i % 3], "1500k", &out), out)
        })
        .collect();
    let lp = RedirectLoop::start(3, Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(2));
    let at = lp.t0.elapsed().as_secs_f64();
    let _ = event(c);
    let mut broken = Vec::new();
    for (i, (dl, out)) in dls.iter_mut().enumerate() {
        if !dl.wait_ok(60) || detour_e2e::sha256(out) != want {
            broken.push(i);
        }
    }
    let samples = lp.finish();
    assert!(broken.is_empty(), "downloads broken: {broken:?}");
    (samples, at)
}

#[test]
fn sigkill_of_a_director_is_withdrawn_and_downloads_survive() {
    let c = Cluster::up(8);
    let mut withdrawn = Duration::ZERO;
    let (samples, at) = under_load(&c, |c| {
        let t = Instant::now();
        c.signal(1, "KILL");
        withdrawn = c.wait_nexthops(VIP, 2, 10);
        for d in DIPS {
            c.wait_nexthops(d, 2, 5);
        }
        t.elapsed().as_secs_f64()
    });
    let (failed, slow, span) = summarize(&samples, Duration::from_millis(500));
    eprintln!(
        "SIGKILL: withdrawn from the router in {} ms; redirect loop {} requests, {failed} failed, \
         {slow} slower than 0.5 s; failures between {span:?} s, kill at {at:.2} s",
        withdrawn.as_millis(),
        samples.len()
    );
    assert!(
        withdrawn < Duration::from_secs(3),
        "withdrawal took {withdrawn:?}"
    );
    if let Some((first, last)) = span {
        // A request fails only if it started before the withdrawal was complete.
        assert!(first >= at - 0.1, "a redirect failed before the kill");
        assert!(
            first <= at + withdrawn.as_secs_f64() + 0.1,
            "a redirect started after the withdrawal failed (last failure ended at {last:.2} s)"
        );
    }
}

#[test]
fn sigterm_drains_without_a_failure() {
    let c = Cluster::up(8);
    let (samples, _) = under_load(&c, |c| {
        c.signal(2, "TERM");
        let t = c.wait_nexthops(VIP, 2, 5);
        eprintln!("SIGTERM: withdrawn from the router in {} ms", t.as_millis());
        t.as_secs_f64()
    });
    let (failed, slow, _) = summarize(&samples, Duration::from_millis(500));
    eprintln!(
        "SIGTERM: redirect loop {} requests, {failed} failed, {slow} slower than 0.5 s",
        samples.len()
    );
    assert!(samples.len() > 50);
    assert_eq!(failed, 0);
}

#[test]
fn a_fourth_director_joins_under_load() {
    let c = Cluster::up(8);
    let (samples, _) = under_load(&c, |c| {
        c.start(4, 3);
        c.wait_nexthops(VIP, 4, 10).as_secs_f64()
    });
    let (failed, _, _) = summarize(&samples, Duration::from_millis(500));
    eprintln!(
        "join: redirect loop {} requests, {failed} failed",
        samples.len()
    );
    assert_eq!(failed, 0);
    assert!(
        c.redirects(4) > 0 || c.syn_acks(4) > 0,
        "director 4 took traffic"
    );
}

/// Every handshake split (SYN to director 1, the rest to director 2) while the secret
/// changes on directors 1, 2, 3 in turn, in two passes (accept the new one; issue it).
#[test]
fn a_rolling_cookie_secret_change_refuses_no_handshake() {
    let c = Cluster::up(4);
    c.split_handshakes(1, 2);
    let lp = RedirectLoop::start(3, Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(1));
    let old = std::fs::read_to_string(format!("{DIR}/d1.secret")).expect("secret");
    let new = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90\n";
    for text in [format!("{old}{new}"), format!("{new}{old}")] {
        for n in 1..=3 {
            let path = format!("{DIR}/d{n}.secret");
            let tmp = format!("{path}.new");
            std::fs::write(&tmp, &text).expect("secret");
            detour_e2e::run(&["chmod", "600", &tmp], 5);
            std::fs::rename(&tmp, &path).expect("rename");
            c.ctl(n, "reload");
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let samples = lp.finish();
    let (failed, slow, _) = summarize(&samples, Duration::from_millis(500));
    eprintln!(
        "rolling secret change: {} requests, {failed} failed, {slow} slower than 0.5 s",
        samples.len()
    );
    for n in 1..=3 {
        let log = std::fs::read_to_string(format!("{DIR}/d{n}.log")).unwrap_or_default();
        assert!(
            log.contains("cookie secret changed"),
            "director {n} took the new secret"
        );
    }
    assert!(samples.len() > 50);
    assert_eq!(failed, 0);
    // The control: a one-pass change on director 1 alone, and director 2 (which gets the
    // ACKs) refuses every handshake.
    let path = format!("{DIR}/d1.secret");
    std::fs::write(
        &path,
        "5555555555555555555555555555555555555555555555555555555555555555\n",
    )
    .expect("secret");
    c.ctl(1, "reload");
    let refused = (0..5)
        .filter(|i| {
            let r = c.client(
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "2",
                    "-w",
                    "%{http_code}",
                    &format!("http://{VIP}/control{i}"),
                ],
                4,
            );
            r.stdout != "302"
        })
        .count();
    eprintln!("one-pass change on one director: {refused}/5 handshakes refused");
    assert_eq!(refused, 5);
}

/// Flows to a DIP whose real is down go to its backup real, and only the director that
/// forwarded a flow knows it: the backup's replies come back through whichever director the
/// router's return path hashes them to. Measures how many such requests succeed with three
/// directors and with one, and how a download through the backup fares when the ECMP set
/// changes (two directors join).
#[test]
fn backup_flows_are_per_director_state() {
    let c = Cluster::up(8);
    c.stop_real(1);
    for n in 1..=3 {
        c.wait_state(n, "198.18.12.21:8080", "failed", 10);
    }
    let want = c.big_sha();
    let attempt = |c: &Cluster, n: usize| -> usize {
        (0..n)
            .filter(|i| {
                let r = c.client(
                    &[
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        "0.5",
                        "-w",
                        "%{http_code}",
                        &format!("http://198.18.20.2/index.html?{i}"),
                    ],
                    3,
                );
                r.stdout == "200"
            })
            .count()
    };
    let three = attempt(&c, 40);
    c.signal(2, "KILL");
    c.signal(3, "KILL");
    c.wait_nexthops("198.18.20.2", 1, 10);
    let one = attempt(&c, 30);
    let out = format!("{DIR}/backup-dl");
    let mut dl = c.download("198.18.20.2", "1500k", &out);
    std::thread::sleep(Duration::from_secs(1));
    c.start(2, 3);
    c.start(3, 3);
    c.wait_nexthops("198.18.20.2", 3, 15);
    let finished = dl.wait_ok(12) && detour_e2e::sha256(&out) == want;
    eprintln!(
        "backup flows: 3 directors {three}/40 answered; 1 director {one}/30; \
         a download through the backup while the set grows 1 -> 3: {}",
        if finished {
            "completed"
        } else {
            "broken (stalled or wrong hash)"
        }
    );
    assert_eq!(one, 30, "with one director every backup flow works");
    assert!(
        three < 40,
        "with three directors some replies reach a director without the flow"
    );
}

/// A director that stops answering without closing anything (its links cut): BFD (3 x 100 ms)
/// takes its routes out; a director whose BIRD dies closes its sessions at once.
#[test]
fn a_director_cut_off_is_withdrawn_by_bfd() {
    let c = Cluster::up(4);
    let t = Instant::now();
    for link in ["dc", "ds"] {
        let r = detour_e2e::run(
            &[
                "ip", "netns", "exec", "dtc-d1", "ip", "link", "set", link, "down",
            ],
            5,
        );
        assert!(r.ok(), "{r:?}");
    }
    c.wait_nexthops(VIP, 2, 5);
    let cut = t.elapsed();
    let t = Instant::now();
    let pid = std::fs::read_to_string(format!("{DIR}/d2.bird.pid")).expect("bird pid");
    assert!(detour_e2e::run(&["kill", "-9", pid.trim()], 5).ok());
    c.wait_nexthops(VIP, 1, 5);
    let bird = t.elapsed();
    eprintln!(
        "links cut: withdrawn in {} ms; BIRD killed: withdrawn in {} ms",
        cut.as_millis(),
        bird.as_millis()
    );
    assert!(cut < Duration::from_secs(1), "BFD took {cut:?}");
    assert!(bird < Duration::from_secs(3));
    // The survivor serves every redirect.
    assert_eq!(c.redirect_batch(100), 100);
}

/// What is announced follows health: a real without a backup fails, its DIP is withdrawn on
/// every director (the router loses the route), a real with a backup keeps its DIP; `show
/// announce` and the metrics say so.
#[test]
fn announcements_follow_health() {
    let c = Cluster::up(4);
    let show = c.ctl(1, "show announce");
    assert!(show.contains("8 address(es) announced"), "{show}");
    assert!(show.contains("2001:db8:20::4/128"), "{show}");
    let metrics = |n: u32| {
        detour_e2e::run(
            &[
                "ip",
                "netns",
                "exec",
                &format!("dtc-d{n}"),
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:9100/metrics",
            ],
            5,
        )
        .stdout
    };
    let m = metrics(1);
    assert!(m.contains("detour_announced{addr=\"198.18.20.4\"} 1"));
    assert!(m.contains("detour_announced{addr=\"2001:db8:20::4\"} 1"));
    assert!(m.contains("detour_announce_return_path{family=\"ipv6\"} 1"));
    // real3 (DIP 198.18.20.4) has no backup; real1 (DIP 198.18.20.2) is backed by real2.
    let t = Instant::now();
    c.stop_real(3);
    c.wait_nexthops("198.18.20.4", 0, 10);
    let gone = t.elapsed();
    // The same real's IPv6 address: its IPv6 DIP goes too.
    c.wait_nexthops("2001:db8:20::4", 0, 5);
    c.stop_real(1);
    for n in 1..=3 {
        c.wait_state(n, "198.18.12.21:8080", "failed", 10);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.nexthops("198.18.20.2"),
        3,
        "a DIP with a live backup stays"
    );
    assert_eq!(c.nexthops("2001:db8:20::2"), 3);
    assert_eq!(c.nexthops(VIP), 3);
    assert_eq!(c.nexthops(VIP6), 3);
    for n in 1..=3 {
        let show = c.ctl(n, "show announce");
        assert!(
            show.contains("6 address(es) announced"),
            "director {n}: {show}"
        );
        assert!(!show.contains("198.18.20.4/32"), "director {n}: {show}");
        assert!(!show.contains("2001:db8:20::4/128"), "director {n}: {show}");
        let m = metrics(n);
        assert!(!m.contains("addr=\"198.18.20.4\""));
        assert!(!m.contains("addr=\"2001:db8:20::4\""));
    }
    eprintln!(
        "real 3 stopped: its DIP withdrawn from the router in {} ms (health checks: 500 ms x fall 2)",
        gone.as_millis()
    );
    // A drained director says so.
    c.signal(2, "TERM");
    c.wait_nexthops(VIP, 2, 5);
    c.wait_nexthops(VIP6, 2, 5);
    let show = c.ctl(2, "show announce");
    assert!(show.starts_with("draining"), "{show}");
}

/// IPv6 through the ECMP router: every IPv6 virtual and DIP has a next hop per director;
/// `curl -6` is redirected by the IPv6 virtual to an IPv6 DIP and downloads through it (hash
/// checked); redirects spread over the directors. Then director 2 drains (SIGTERM): its IPv6
/// routes (and its IPv4 ones) leave the router, an IPv6 redirect loop sees no failure and
/// IPv6 downloads running through every DIP complete with the right hash.
#[test]
fn ipv6_is_announced_redirected_and_drained() {
    let c = Cluster::up(8);
    for a in std::iter::once(VIP6).chain(DIPS6) {
        c.wait_nexthops(a, 3, 10);
    }
    let want = c.big_sha();
    let before: Vec<u64> = (1..=3).map(|n| c.virtual_redirects(n, VIP6)).collect();
    let out = format!("{DIR}/v6-follow");
    let r = c.client(
        &[
            "curl",
            "-6",
            "-sS",
            "-g",
            "-L",
            "--max-time",
            "30",
            "-o",
            &out,
            "-w",
            "%{num_redirects} %{url_effective}",
            &format!("http://[{VIP6}]/big.bin"),
        ],
        35,
    );
    eprintln!("curl -6 -L via the IPv6 virtual: {}", r.stdout);
    assert!(r.ok(), "{r:?}");
    let (hops, last) = r.stdout.split_once(' ').unwrap_or_default();
    assert_eq!(hops, "1", "one redirect");
    assert!(
        DIPS6
            .iter()
            .any(|d| last == format!("http://[{d}]/big.bin")),
        "redirected to an IPv6 DIP: {last}"
    );
    assert_eq!(detour_e2e::sha256(&out), want, "downloaded through {last}");

    let answered = c.redirect_batch_to(VIP6, 300);
    std::thread::sleep(Duration::from_millis(1200));
    let got: Vec<u64> = (1..=3)
        .map(|n| c.virtual_redirects(n, VIP6) - before[n as usize - 1])
        .collect();
    eprintln!("1 + 300 IPv6 redirects: {answered} of the 300 answered; per director {got:?}");
    assert_eq!(answered, 300);
    assert_eq!(
        got.iter().sum::<u64>(),
        301,
        "each answered by exactly one director"
    );
    assert!(got.iter().all(|&n| n > 0), "ECMP spread: {got:?}");

    // Director 2 drains under IPv6 load.
    let mut dls: Vec<(KillOnDrop, String)> = (0..6)
        .map(|i| {
            let out = format!("{DIR}/v6-dl{i}");
            (c.download(DIPS6[i % 3], "2000k", &out), out)
        })
        .collect();
    let lp = RedirectLoop::start_to(VIP6, 3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    c.signal(2, "TERM");
    let vip6 = c.wait_nexthops(VIP6, 2, 5);
    for d in DIPS6 {
        c.wait_nexthops(d, 2, 5);
    }
    let all6 = t.elapsed();
    c.wait_nexthops(VIP, 2, 5);
    // Past the drain (3 s): director 2 has stopped, the loop runs on without it.
    std::thread::sleep(Duration::from_secs(4));
    let show = c.ctl(1, "show announce");
    let samples = lp.finish();
    let mut broken = Vec::new();
    for (i, (dl, out)) in dls.iter_mut().enumerate() {
        if !dl.wait_ok(30) || detour_e2e::sha256(out) != want {
            broken.push(i);
        }
    }
    let (failed, slow, _) = summarize(&samples, Duration::from_millis(500));
    eprintln!(
        "IPv6 drain: virtual withdrawn from the router in {} ms, all IPv6 routes in {} ms; \
         redirect loop {} requests, {failed} failed, {slow} slower than 0.5 s; \
         downloads broken: {broken:?}",
        vip6.as_millis(),
        all6.as_millis(),
        samples.len()
    );
    assert!(show.contains("8 address(es) announced"), "{show}");
    assert!(samples.len() > 30);
    assert_eq!(failed, 0);
    assert!(broken.is_empty(), "IPv6 downloads broken: {broken:?}");
}
