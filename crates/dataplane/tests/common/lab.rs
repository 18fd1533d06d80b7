//! A [`Lab`]: building its namespaces, taps, HTTP servers and director thread, swapping the
//! director's configuration, diagnosis (reports, checks that fail with the trace), and
//! tearing everything down in `Drop`.

use super::director::{director, reader, Msg};
use super::host::{kill_all_in, mac_str, must, quiet, sweep_stale};
use super::*;
use detour_config::{model::load, Snapshot};
use detour_dataplane::{CLIENT, SERVER};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tun_tap::{Iface, Mode};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    pub n: u32,
    pub cns: String,
    pub sns: String,
    pub ctap: String,
    pub stap: String,
    pub dir: PathBuf,
    pub(super) children: Vec<Child>,
    pub(super) tx: Option<mpsc::Sender<Msg>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) epoch: u64,
    pub(super) namespaces: Vec<String>,
    pub(super) files: AtomicU32,
}

impl Lab {
    /// Builds the topology, starts the HTTP servers and the director on `config`.
    /// `big`: also write the 20 MiB `big.bin` the reals serve.
    pub fn new(config: &str, big: bool) -> Lab {
        require_root();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale);
        // dpt<pid>-<n>: at most 14 characters (pids < 2^22), unique per process and lab.
        let tag = format!("dpt{}-{:02}", std::process::id(), n % 100);
        let dir = std::env::temp_dir().join(format!("detour-kernel-{tag}"));
        let mut lab = Lab {
            n,
            cns: format!("{tag}c"),
            sns: format!("{tag}s"),
            ctap: format!("{tag}c"),
            stap: format!("{tag}s"),
            dir,
            children: Vec::new(),
            tx: None,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            epoch: 0,
            namespaces: Vec::new(),
            files: AtomicU32::new(0),
        };
        // Leftovers of a crashed run with the same name (ours by construction of the name).
        for ns in [&lab.cns, &lab.sns] {
            quiet(&["ip", "netns", "del", ns]);
        }
        quiet(&["ip", "link", "del", &lab.ctap]);
        quiet(&["ip", "link", "del", &lab.stap]);
        let _ = fs::remove_dir_all(&lab.dir);
        lab.build(config, big);
        lab
    }

    fn build(&mut self, config: &str, big: bool) {
        let (cns, sns, ctap, stap) = (
            self.cns.clone(),
            self.sns.clone(),
            self.ctap.clone(),
            self.stap.clone(),
        );
        for ns in [&cns, &sns] {
            must(&["ip", "netns", "add", ns]);
            self.namespaces.push(ns.clone());
        }
        // The taps are created here (root namespace), then moved: the fds keep working.
        let ctap_if = Iface::without_packet_info(&ctap, Mode::Tap)
            .unwrap_or_else(|e| panic!("cannot create tap {ctap}: {e}"));
        let stap_if = Iface::without_packet_info(&stap, Mode::Tap)
            .unwrap_or_else(|e| panic!("cannot create tap {stap}: {e}"));
        assert_eq!(ctap_if.name(), ctap);
        assert_eq!(stap_if.name(), stap);
        for (tap, mac, ns) in [
            (&ctap, &CLIENT_TAP_MAC, &cns),
            (&stap, &SERVER_TAP_MAC, &sns),
        ] {
            must(&["ip", "link", "set", "dev", tap, "address", &mac_str(mac)]);
            must(&["ip", "link", "set", "dev", tap, "netns", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let ip = |ns: &str, rest: &[&str]| {
            let mut a = vec!["ip", "-n", ns];
            a.extend_from_slice(rest);
            must(&a);
        };
        ip(&cns, &["addr", "add", "198.18.0.100/24", "dev", &ctap]);
        // IPv6 beside it (nodad: nothing waits for duplicate address detection). The client
        // resolves the IPv6 VIP and DIP by neighbour discovery, answered by the director.
        ip(
            &cns,
            &[
                "-6",
                "addr",
                "add",
                "2001:db8::100/64",
                "dev",
                &ctap,
                "nodad",
            ],
        );
        ip(&cns, &["link", "set", &ctap, "up"]);
        ip(&sns, &["addr", "add", "198.18.1.2/24", "dev", &stap]);
        ip(&sns, &["addr", "add", "198.18.0.3/32", "dev", &stap]);
        ip(
            &sns,
            &[
                "-6",
                "addr",
                "add",
                "2001:db8:1::2/64",
                "dev",
                &stap,
                "nodad",
            ],
        );
        ip(&sns, &["link", "set", &stap, "up"]);
        ip(
            &sns,
            &["route", "add", "198.18.0.100/32", "via", "198.18.1.1"],
        );
        ip(
            &sns,
            &[
                "-6",
                "route",
                "add",
                "2001:db8::100/128",
                "via",
                "2001:db8:1::1",
            ],
        );
        let dmac = mac_str(&DIRECTOR_MACS[1]);
        ip(
            &sns,
            &[
                "-6",
                "neigh",
                "replace",
                "2001:db8:1::1",
                "lladdr",
                &dmac,
                "dev",
                &stap,
                "nud",
                "permanent",
            ],
        );
        ip(
            &sns,
            &[
                "neigh",
                "replace",
                "198.18.1.1",
                "lladdr",
                &dmac,
                "dev",
                &stap,
                "nud",
                "permanent",
            ],
        );

        // Content: each real names itself; both serve the same big.bin.
        let nat_dir = self.dir.join("nat");
        let same_dir = self.dir.join("same");
        fs::create_dir_all(&nat_dir).unwrap();
        fs::create_dir_all(&same_dir).unwrap();
        fs::write(
            nat_dir.join("index.html"),
            "<html><body>real nat 198.18.1.2:8080</body></html>\n",
        )
        .unwrap();
        fs::write(
            same_dir.join("index.html"),
            "<html><body>real same 198.18.0.3:80</body></html>\n",
        )
        .unwrap();
        if big {
            let data = pseudo_random(BIG_LEN, 0x5eed_0000 + u64::from(self.n));
            fs::write(nat_dir.join("big.bin"), &data).unwrap();
            fs::hard_link(nat_dir.join("big.bin"), same_dir.join("big.bin")).unwrap();
        }
        self.server(&nat_dir, REAL_NAT_PORT);
        self.server(&same_dir, 80);

        // The director.
        let snap = self.snapshot(config);
        let ctap_if = Arc::new(ctap_if);
        let stap_if = Arc::new(stap_if);
        let (tx, rx) = mpsc::channel();
        self.tx = Some(tx.clone());
        let start = Instant::now();
        for (port, iface) in [(CLIENT, ctap_if.clone()), (SERVER, stap_if.clone())] {
            let tx = tx.clone();
            let stop = self.stop.clone();
            let h = thread::Builder::new()
                .name(format!("{}-rx{}", self.cns, port.0))
                .spawn(move || reader(port, &iface, &tx, &stop, start))
                .unwrap();
            self.threads.push(h);
        }
        let stop = self.stop.clone();
        let h = thread::Builder::new()
            .name(format!("{}-director", self.cns))
            .spawn(move || director(snap, [ctap_if, stap_if], rx, &stop, start))
            .unwrap();
        self.threads.push(h);

        // The servers answer (locally, not through the director).
        for url in [
            format!("http://{REAL_NAT}:{REAL_NAT_PORT}/index.html"),
            format!("http://{DIP_SAME}:80/index.html"),
        ] {
            let mut last = None;
            for _ in 0..100 {
                let o = self.run_in(
                    &sns,
                    &[
                        "curl",
                        "-s",
                        "--max-time",
                        "2",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        &url,
                    ],
                    Duration::from_secs(5),
                );
                if o.stdout == "200" {
                    last = None;
                    break;
                }
                last = Some(o);
                thread::sleep(Duration::from_millis(100));
            }
            if let Some(o) = last {
                self.fail(&format!(
                    "the real server at {url} did not come up: {o:?}\nserver logs:\n{}",
                    self.server_logs()
                ));
            }
        }
    }

    fn server(&mut self, dir: &Path, port: u16) {
        let log = fs::File::create(self.dir.join(format!("server-{port}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sns, "python3", "-m", "http.server"])
            // `::`: http.server's dual-stack server, both families.
            .args(["--bind", "::", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 -m http.server: {e}"));
        self.children.push(child);
    }

    fn server_logs(&self) -> String {
        let mut s = String::new();
        for port in [REAL_NAT_PORT, 80] {
            let p = self.dir.join(format!("server-{port}.log"));
            let t = fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(20).collect();
            let _ = writeln!(s, "-- {}:", p.display());
            for l in tail.iter().rev() {
                let _ = writeln!(s, "   {l}");
            }
        }
        s
    }

    /// Compiles `config` into the next snapshot, with the lab's MACs filled in.
    fn snapshot(&mut self, config: &str) -> Arc<Snapshot> {
        let model = load(config, "test.conf")
            .unwrap_or_else(|e| panic!("the test config is refused: {e:?}\n{config}"));
        self.epoch += 1;
        let mut snap = Snapshot::compile(&model, self.epoch);
        snap.gateway_mac = CLIENT_TAP_MAC;
        for r in &mut snap.reals {
            r.mac = SERVER_TAP_MAC;
        }
        Arc::new(snap)
    }

    /// Swaps the director's configuration; frames sent after this returns see it.
    pub fn install(&mut self, config: &str) {
        let snap = self.snapshot(config);
        let tx = self.tx.as_ref().expect("director running");
        tx.send(Msg::Install(snap)).expect("director alive");
        // Round trip through the director's queue: the install is done when the report comes.
        let _ = self.report();
    }

    /// The worker's counters, the harness's own tallies and the last frames, for diagnosis.
    pub fn report(&self) -> String {
        self.report_and_problems().0
    }

    /// The report, and the number of frames the director sent that the harness found wrong
    /// (a bad IPv4/TCP/ICMP checksum, a port that does not exist, a failed tap write).
    fn report_and_problems(&self) -> (String, u64) {
        let (rtx, rrx) = mpsc::channel();
        let sent = self
            .tx
            .as_ref()
            .map(|t| t.send(Msg::Report(rtx)).is_ok())
            .unwrap_or(false);
        if !sent {
            return ("(director not running)".into(), 0);
        }
        rrx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| ("(director did not answer within 5 s)".into(), 0))
    }

    /// Fails unless every frame the director sent so far was well formed. A bad checksum
    /// would be dropped by the receiving stack and hidden by TCP retransmission, so the
    /// tests check it explicitly.
    pub fn assert_clean(&self) {
        let (report, problems) = self.report_and_problems();
        if problems > 0 {
            panic!(
                "the director sent {problems} malformed frame(s) (see `harness:` below)\n\
                 ==== director report ====\n{report}"
            );
        }
    }

    /// Panics with `msg`, the director's report and the servers' logs.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n==== director report ====\n{}\n==== server logs ====\n{}",
            self.report(),
            self.server_logs()
        )
    }

    /// Asserts `cond`, else fails with `msg` and the diagnosis.
    pub fn check(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(&msg());
        }
    }

    /// A fresh path in the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        let k = self.files.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{k}-{name}"))
    }
}
impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything else still running in our namespaces was started by this lab (curl, python).
        for ns in &self.namespaces {
            kill_all_in(ns);
        }
        // Deleting the taps wakes the reader threads blocked on them.
        quiet(&["ip", "-n", &self.cns, "link", "del", &self.ctap]);
        quiet(&["ip", "-n", &self.sns, "link", "del", &self.stap]);
        for ns in &self.namespaces {
            quiet(&["ip", "netns", "del", ns]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in self.threads.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                eprintln!(
                    "lab {}: a director thread did not stop within 10 s",
                    self.cns
                );
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
