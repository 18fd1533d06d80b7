//! The cluster lab for end-to-end tests: `scripts/cluster.sh` brings up a router (BIRD,
//! kernel ECMP), four director namespaces (BIRD each), three reals and a client;
//! [`Cluster::up`] starts detour in the first three directors. The lab is dual-stack: each
//! IPv4 virtual and DIP has an IPv6 twin. The helpers run curl in the
//! client, signal directors, read the router's multipath routes and each director's counts.
//! Everything is torn down when the [`Cluster`] is dropped, also when a test fails.

use crate::{require_root, root, run, KillOnDrop, Run};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Where the cluster's files live (secrets, logs, big.bin).
pub const DIR: &str = "/tmp/detour-cluster-e2e";
/// The virtual; DIPs are 198.18.20.2-4.
pub const VIP: &str = "198.18.20.1";
/// The IPv6 virtual; DIPs are 2001:db8:20::2-4.
pub const VIP6: &str = "2001:db8:20::1";

/// `addr` as the host of a URL: an IPv6 address in brackets.
pub fn url_host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

pub struct Cluster {
    _lock: MutexGuard<'static, ()>,
}

fn script(args: &[&str], secs: u64) -> Run {
    let mut full = vec!["env".to_string(), format!("CLUSTER_DIR={DIR}")];
    full.push(format!("DETOUR_BIN={}", crate::detour_bin().display()));
    full.push(root().join("scripts/cluster.sh").display().to_string());
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    run(&refs, secs)
}

impl Cluster {
    /// Bring the cluster up (big.bin of `big_mb` MiB) and start directors 1-3.
    pub fn up(big_mb: u32) -> Cluster {
        require_root();
        let lock = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let _ = std::fs::remove_dir_all(DIR);
        let up = Command::new("env")
            .arg(format!("CLUSTER_DIR={DIR}"))
            .arg(format!("CLUSTER_BIG_MB={big_mb}"))
            .arg(root().join("scripts/cluster.sh"))
            .arg("up")
            .output()
            .expect("scripts/cluster.sh");
        assert!(
            up.status.success(),
            "cluster up failed: {}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let c = Cluster { _lock: lock };
        for n in 1..=3 {
            c.start(n, 3);
        }
        c.wait_nexthops(VIP, 3, 10);
        c
    }

    /// Start detour in director `n` with `drain` seconds of drain; waits for its routes.
    pub fn start(&self, n: u32, drain: u32) {
        let r = script(&["start", &n.to_string(), &drain.to_string()], 30);
        assert!(r.ok(), "start director {n}: {r:?}");
    }

    pub fn signal(&self, n: u32, sig: &str) {
        let r = script(&["signal", &n.to_string(), sig], 5);
        assert!(r.ok(), "signal {sig} to director {n}: {r:?}");
    }

    /// Run `detour ctl` on director `n`; panics when refused.
    pub fn ctl(&self, n: u32, command: &str) -> String {
        let mut args = vec!["ctl".to_string(), n.to_string()];
        args.extend(command.split_whitespace().map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = script(&refs, 10);
        assert!(r.ok(), "ctl {n} {command}: {r:?}");
        r.stdout
    }

    /// The router's next hops for `addr`, IPv4 or IPv6 (0 when it has no route).
    pub fn nexthops(&self, addr: &str) -> usize {
        let family = if addr.contains(':') { "-6" } else { "-4" };
        let r = run(
            &[
                "ip", "netns", "exec", "dtc-rt", "ip", family, "route", "show", addr,
            ],
            5,
        );
        let hops = r.stdout.matches("nexthop via").count();
        if hops > 0 {
            hops
        } else {
            usize::from(r.stdout.contains(" via "))
        }
    }

    /// Wait (at most `secs`) until the router has `n` next hops for `addr`; the time it took.
    pub fn wait_nexthops(&self, addr: &str, n: usize, secs: u64) -> Duration {
        let t = Instant::now();
        while self.nexthops(addr) != n {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "router: {addr} has {} next hops, not {n}, after {secs} s",
                self.nexthops(addr)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    }

    /// Redirects director `n` answered so far (its virtual's count in `show statistics`).
    pub fn redirects(&self, n: u32) -> u64 {
        self.stat(n, "redirects ")
    }

    /// SYN-ACKs director `n` sent so far.
    pub fn syn_acks(&self, n: u32) -> u64 {
        self.stat(n, "syn-acks ")
    }

    /// Redirects director `n` answered so far for the virtual `addr` (port 80).
    pub fn virtual_redirects(&self, n: u32, addr: &str) -> u64 {
        let id = format!("{}:80 ", url_host(addr));
        self.stat_of(n, "redirects ", |l| l.trim_start().starts_with(&id))
    }

    fn stat(&self, n: u32, word: &str) -> u64 {
        self.stat_of(n, word, |_| true)
    }

    /// The number after `word` on the first line of `show statistics` that has it and `pick`s.
    fn stat_of(&self, n: u32, word: &str, pick: impl Fn(&str) -> bool) -> u64 {
        let s = self.ctl(n, "show statistics");
        let line = s
            .lines()
            .find(|l| l.contains(word) && pick(l))
            .unwrap_or_default();
        let after = &line[line.find(word).map_or(line.len(), |i| i + word.len())..];
        after
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    }

    /// Route the router's SYNs to the virtual through director `syn_to` and every other
    /// segment to it through `rest_to` (nftables marks, policy routes), so each handshake is
    /// split across two directors.
    pub fn split_handshakes(&self, syn_to: u32, rest_to: u32) {
        let rt = |args: &str| {
            let mut full = vec!["ip", "netns", "exec", "dtc-rt"];
            full.extend(args.split_whitespace());
            let r = run(&full, 5);
            assert!(r.ok(), "{args}: {r:?}");
        };
        let nft = format!(
            "table ip split {{\n chain pre {{\n  type filter hook prerouting priority mangle;\n  \
             ip daddr {VIP} tcp flags & (syn | ack) == syn meta mark set 1\n  \
             ip daddr {VIP} tcp flags & (syn | ack) != syn meta mark set 2\n }}\n}}\n"
        );
        std::fs::write(format!("{DIR}/split.nft"), nft).expect("nft file");
        rt(&format!("nft -f {DIR}/split.nft"));
        rt("ip rule add fwmark 1 lookup 201 pref 50");
        rt("ip rule add fwmark 2 lookup 202 pref 51");
        rt(&format!(
            "ip route add {VIP}/32 via 198.18.11.1{syn_to} table 201"
        ));
        rt(&format!(
            "ip route add {VIP}/32 via 198.18.11.1{rest_to} table 202"
        ));
    }

    /// Stop real `n`'s HTTP server (the only processes in its namespace are ours).
    pub fn stop_real(&self, n: u32) {
        let r = run(&["ip", "netns", "pids", &format!("dtc-r{n}")], 5);
        for pid in r.stdout.split_whitespace() {
            run(&["kill", pid], 5);
        }
    }

    /// Wait until director `n`'s `show real` gives `real` the state `state`.
    pub fn wait_state(&self, n: u32, real: &str, state: &str, secs: u64) {
        let t = Instant::now();
        loop {
            let s = self.ctl(n, "show real");
            let line = s
                .lines()
                .find(|l| l.contains(real))
                .unwrap_or_default()
                .to_string();
            if line.contains(state) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "director {n}: {real} not {state} after {secs} s: {line}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run a command in the client namespace.
    pub fn client(&self, args: &[&str], secs: u64) -> Run {
        let mut full = vec!["ip", "netns", "exec", "dtc-cl"];
        full.extend_from_slice(args);
        run(&full, secs)
    }

    /// Start a rate-limited download of big.bin through DIP `dip` into `out`.
    pub fn download(&self, dip: &str, rate: &str, out: &str) -> KillOnDrop {
        let url = format!("http://{}/big.bin", url_host(dip));
        KillOnDrop(
            Command::new("ip")
                .args(["netns", "exec", "dtc-cl", "curl", "-sf", "--max-time", "90"])
                .args(["--limit-rate", rate, "-o", out, &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("curl"),
        )
    }

    /// `count` redirects in one curl process (a new connection, so a new client port, each);
    /// the number answered with 302.
    pub fn redirect_batch(&self, count: usize) -> usize {
        self.redirect_batch_to(VIP, count)
    }

    /// [`Cluster::redirect_batch`] to the virtual `vip` (IPv4 or IPv6).
    pub fn redirect_batch_to(&self, vip: &str, count: usize) -> usize {
        let cfg = format!("{DIR}/batch.curl");
        let host = url_host(vip);
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&format!(
                "url = \"http://{host}/b{i}\"\noutput = \"/dev/null\"\n"
            ));
        }
        std::fs::write(&cfg, text).expect("curl config");
        let r = self.client(
            &[
                "curl",
                "-s",
                "-g",
                "--max-time",
                "2",
                "-w",
                "%{http_code}\\n",
                "-K",
                &cfg,
            ],
            (count as u64 / 20).max(30),
        );
        r.stdout.lines().filter(|l| l.trim() == "302").count()
    }

    /// The sha256 of the served file.
    pub fn big_sha(&self) -> String {
        crate::sha256(&format!("{DIR}/big.bin"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in 1..=4 {
                if let Ok(log) = std::fs::read_to_string(format!("{DIR}/d{n}.log")) {
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    eprintln!("---- director {n} (last lines) ----");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
        let _ = script(&["down"], 60);
    }
}

/// One request of a [`RedirectLoop`]: when it started (since the loop began), whether it
/// got its 302, and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Duration,
    pub ok: bool,
    pub took: Duration,
}

/// Redirects one after another (each a fresh connection) in the background, until stopped.
pub struct RedirectLoop {
    pub t0: Instant,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl RedirectLoop {
    /// Start; each request may take `max_secs`; the loop ends by itself after `limit`.
    pub fn start(max_secs: u32, limit: Duration) -> RedirectLoop {
        RedirectLoop::start_to(VIP, max_secs, limit)
    }

    /// [`RedirectLoop::start`] to the virtual `vip` (IPv4 or IPv6).
    pub fn start_to(vip: &str, max_secs: u32, limit: Duration) -> RedirectLoop {
        let host = url_host(vip);
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            let max = max_secs.to_string();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) && t0.elapsed() < limit {
                let at = t0.elapsed();
                let url = format!("http://{host}/loop{i}");
                let r = run(
                    &[
                        "ip",
                        "netns",
                        "exec",
                        "dtc-cl",
                        "curl",
                        "-s",
                        "-g",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        &max,
                        "-w",
                        "%{http_code}",
                        &url,
                    ],
                    u64::from(max_secs) + 2,
                );
                out.push(Sample {
                    at,
                    ok: r.stdout.trim() == "302",
                    took: t0.elapsed() - at,
                });
                i += 1;
            }
            out
        });
        RedirectLoop {
            t0,
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for RedirectLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
