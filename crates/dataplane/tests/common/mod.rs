//! A lab for end-to-end tests of the dataplane against the real Linux TCP stack.
//!
//! Per lab: two network namespaces (a client and a server side), each holding one TAP device
//! whose other end is this test process. Two reader threads block on the taps and hand frames
//! to a director thread that owns a [`Worker`] and sends each `Tx` verdict out of the tap of the
//! returned port. Real HTTP servers (`python3 -m http.server`) run in the server namespace;
//! clients (`curl`, small Python scripts) run in the client namespace.
//!
//! Rules kept here: only addresses from 198.18.0.0/15, only inside namespaces the lab
//! creates; every wait bounded in count and time; everything the lab made (namespaces, taps,
//! processes, threads, files) is torn down by [`Lab`]'s `Drop`, on success, failure or panic.
//!
//! The reader threads block in `recv` (no busy polling, which matters on a 2-core CI box and
//! needs neither `unsafe` nor tun-tap's `libc` feature for `set_non_blocking`): teardown wakes
//! them by deleting the taps (a read on a detached tap fails), and they also stop on the stop
//! flag and at a hard time limit.

use detour_config::{model::load, Snapshot};
use detour_dataplane::{Port, Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tun_tap::{Iface, Mode};

/// The director's own MACs: index 0 on the client port, 1 on the server port.
pub const DIRECTOR_MACS: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]];
/// The kernel side of the client tap (the director's `gateway_mac`).
pub const CLIENT_TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x00];
/// The kernel side of the server tap (every real's `mac`).
pub const SERVER_TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x00];

pub const VIP: &str = "198.18.0.1";
pub const DIP_NAT: &str = "198.18.0.2";
pub const DIP_SAME: &str = "198.18.0.3";
pub const REAL_NAT: &str = "198.18.1.2";
pub const REAL_NAT_PORT: u16 = 8080;

/// The lab's base configuration: a VIP with round robin over a NAT-mode DIP (real at
/// 198.18.1.2:8080) and a same-address DIP (real at 198.18.0.3:80).
pub const BASE_CONFIG: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
url nat http://nat.lab/%d
url same http://same.lab/%d
link nat 198.18.0.2
link same 198.18.0.3
bind 198.18.0.1 nat same
predictor 198.18.0.1 roundrobin
";

/// Size of the file each real serves as `big.bin`.
pub const BIG_LEN: usize = 20 << 20;

/// The director thread stops on its own after this long, whatever happens.
const DIRECTOR_LIMIT: Duration = Duration::from_secs(300);
/// Frames kept for the trace printed on failure.
const TRACE_LEN: usize = 160;

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// What a bounded command run produced.
#[derive(Debug)]
pub struct Out {
    /// Exit code; `None` when killed by a signal or by the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

enum Msg {
    Frame(Port, Vec<u8>),
    Install(Arc<Snapshot>),
    /// The report text, and how many frames the harness found wrong.
    Report(mpsc::Sender<(String, u64)>),
    Stop,
}

pub struct Lab {
    pub n: u32,
    pub cns: String,
    pub sns: String,
    pub ctap: String,
    pub stap: String,
    pub dir: PathBuf,
    children: Vec<Child>,
    tx: Option<mpsc::Sender<Msg>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    epoch: u64,
    namespaces: Vec<String>,
    files: AtomicU32,
}

/// Fails the test early, with a clear message, unless it runs as root.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests create network namespaces and TAP devices and must run as root \
         (effective uid {uid:?}); CI runs them as root"
    );
}

/// Runs a set-up command that must succeed (`ip ...`); returns its stdout.
fn must(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills every process in namespace `ns` (one of the labs': only the lab starts processes
/// there). `kill` is the shell's builtin: procps may be missing on a fresh machine.
fn kill_all_in(ns: &str) {
    let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&o.stdout);
    let pids: Vec<&str> = text
        .split_whitespace()
        .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
        .collect();
    if !pids.is_empty() {
        let mut args = vec!["sh", "-c", "kill -KILL \"$@\"", "sh"];
        args.extend(pids);
        quiet(&args);
    }
}

/// Removes what labs of a test process that died without unwinding (SIGKILL) left behind:
/// namespaces named `dpt<pid>-<n>c|s` whose process is gone, and the servers in them.
fn sweep_stale() {
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, rest)) = name.strip_prefix("dpt").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let ours = !pid.is_empty()
            && pid.bytes().all(|c| c.is_ascii_digit())
            && rest.len() == 3
            && rest[..2].bytes().all(|c| c.is_ascii_digit())
            && (rest.ends_with('c') || rest.ends_with('s'));
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            quiet(&["ip", "netns", "del", name]);
            let _ = fs::remove_dir_all(
                std::env::temp_dir().join(format!("detour-kernel-{}", &name[..name.len() - 1])),
            );
        }
    }
}

/// Runs a command, ignoring failure (teardown).
fn quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Pseudo-random bytes (xorshift64*), reproducible.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
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

    /// Runs `args` in namespace `ns`, bounded by `limit` (killed after it).
    pub fn run_in(&self, ns: &str, args: &[&str], limit: Duration) -> Out {
        let child = self.spawn_in(ns, args);
        self.wait_bounded(vec![child], limit).pop().unwrap()
    }

    /// Runs `args` in the client namespace, bounded by `limit`.
    pub fn client(&self, args: &[&str], limit: Duration) -> Out {
        self.run_in(&self.cns, args, limit)
    }

    /// `curl` in the client namespace with `--max-time secs`, `--connect-timeout` at most 10 s,
    /// and a hard limit a bit above.
    pub fn curl(&self, secs: u32, args: &[&str]) -> Out {
        let s = secs.to_string();
        let c = secs.min(10).to_string();
        let mut a = vec!["curl", "--max-time", &s, "--connect-timeout", &c];
        a.extend_from_slice(args);
        self.client(&a, Duration::from_secs(u64::from(secs) + 10))
    }

    /// Starts `args` in namespace `ns`; stdout and stderr go to files of the lab.
    pub fn spawn_in(&self, ns: &str, args: &[&str]) -> Spawned {
        let out = self.path("stdout");
        let err = self.path("stderr");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"));
        Spawned {
            child,
            out,
            err,
            done: None,
            timed_out: false,
        }
    }

    /// Waits for all `procs`, killing those still running after `limit`.
    pub fn wait_bounded(&self, mut procs: Vec<Spawned>, limit: Duration) -> Vec<Out> {
        let deadline = Instant::now() + limit;
        loop {
            let mut pending = 0;
            for p in procs.iter_mut().filter(|p| p.done.is_none()) {
                match p.child.try_wait() {
                    Ok(Some(st)) => p.done = Some(st.code()),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        p.timed_out = true;
                        p.done = Some(None);
                    }
                    Ok(None) => pending += 1,
                    Err(_) => p.done = Some(None),
                }
            }
            if pending == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        procs
            .into_iter()
            .map(|p| {
                let out = Out {
                    code: p.done.flatten(),
                    stdout: fs::read_to_string(&p.out).unwrap_or_default(),
                    stderr: fs::read_to_string(&p.err).unwrap_or_default(),
                    timed_out: p.timed_out,
                };
                let _ = fs::remove_file(&p.out);
                let _ = fs::remove_file(&p.err);
                out
            })
            .collect()
    }
}

/// A process started by [`Lab::spawn_in`].
pub struct Spawned {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    /// Set once it has ended: its exit code, if it exited.
    done: Option<Option<i32>>,
    timed_out: bool,
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

fn reader(port: Port, iface: &Iface, tx: &mpsc::Sender<Msg>, stop: &AtomicBool, start: Instant) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < DIRECTOR_LIMIT {
        match iface.recv(&mut buf) {
            Ok(n) => {
                if tx.send(Msg::Frame(port, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // the tap is gone
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    rx: [u64; 2],
    tx: [u64; 2],
    drops: u64,
    passes: u64,
    send_errors: u64,
    bad_checksums: u64,
    bad_port: u64,
}

fn director(
    snap: Arc<Snapshot>,
    taps: [Arc<Iface>; 2],
    rx: mpsc::Receiver<Msg>,
    stop: &AtomicBool,
    start: Instant,
) {
    let cfg = WorkerConfig {
        macs: DIRECTOR_MACS,
        cookie_secret: [7u8; 32],
        table_key: [6u8; 16],
        one_armed: false,
        kernel_addrs: Vec::new(), // this harness has no kernel of its own
    };
    let mut w = Worker::new(cfg, snap);
    let mut buf = [0u8; 2048];
    let mut tally = Tally::default();
    let mut trace: VecDeque<String> = VecDeque::with_capacity(TRACE_LEN);
    let mut first_bad: Option<String> = None;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < DIRECTOR_LIMIT {
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Frame(port, frame) => {
                let len = frame.len().min(buf.len());
                buf[..len].copy_from_slice(&frame[..len]);
                tally.rx[usize::from(port.0 & 1)] += 1;
                let now_ms = start.elapsed().as_millis() as u64;
                let verdict = w.process(&mut buf, len, port, now_ms);
                let t = start.elapsed().as_secs_f64();
                let input = summary(&frame[..len]);
                let line = match verdict {
                    Verdict::Tx { port: out, len } => {
                        let out_i = usize::from(out.0);
                        let frame_out = &buf[..len.min(buf.len())];
                        let bad = checksum_problem(frame_out);
                        if let Some(b) = &bad {
                            tally.bad_checksums += 1;
                            if first_bad.is_none() {
                                first_bad = Some(format!(
                                    "{b}: {} -> {}",
                                    summary(&frame[..]),
                                    summary(frame_out)
                                ));
                            }
                        }
                        if out_i < 2 {
                            tally.tx[out_i] += 1;
                            if taps[out_i].send(frame_out).is_err() {
                                tally.send_errors += 1;
                            }
                        } else {
                            tally.bad_port += 1;
                        }
                        format!(
                            "{t:9.4} in{} {input}\n            => TX out{} {}{}",
                            port.0,
                            out.0,
                            summary(frame_out),
                            bad.map(|b| format!("  [{b}]")).unwrap_or_default()
                        )
                    }
                    Verdict::Drop(reason) => {
                        tally.drops += 1;
                        format!(
                            "{t:9.4} in{} {input}\n            => DROP {reason:?}",
                            port.0
                        )
                    }
                    Verdict::Pass => {
                        tally.passes += 1;
                        format!("{t:9.4} in{} {input}\n            => PASS", port.0)
                    }
                };
                if trace.len() == TRACE_LEN {
                    trace.pop_front();
                }
                trace.push_back(line);
            }
            Msg::Install(s) => {
                w.install(s);
                if trace.len() == TRACE_LEN {
                    trace.pop_front();
                }
                trace.push_back(format!(
                    "{:9.4} -- new snapshot installed",
                    start.elapsed().as_secs_f64()
                ));
            }
            Msg::Report(reply) => {
                let mut s = String::new();
                let c = w.counters();
                let _ = writeln!(s, "worker counters: {c:?}");
                let drops: Vec<_> = c.drops_by_reason().filter(|(_, n)| *n > 0).collect();
                let _ = writeln!(s, "worker drops by reason: {drops:?}");
                let _ = writeln!(
                    s,
                    "harness: {tally:?} (rx/tx index 0 = client port, 1 = server port)"
                );
                if let Some(b) = &first_bad {
                    let _ = writeln!(s, "first frame sent with a bad checksum: {b}");
                }
                let _ = writeln!(s, "last {} frames (oldest first):", trace.len());
                for l in &trace {
                    let _ = writeln!(s, "  {l}");
                }
                let problems = tally.bad_checksums + tally.send_errors + tally.bad_port;
                let _ = reply.send((s, problems));
            }
            Msg::Stop => break,
        }
    }
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn ip4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// One line, tcpdump-like.
pub fn summary(f: &[u8]) -> String {
    if f.len() < 14 {
        return format!("runt ({} bytes)", f.len());
    }
    let mut s = format!(
        "{} > {} ",
        mac_str(f[6..12].try_into().unwrap()),
        mac_str(f[0..6].try_into().unwrap())
    );
    let et = be16(f, 12);
    let p = &f[14..];
    match et {
        0x0806 if p.len() >= 28 => {
            let op = be16(p, 6);
            let _ = match op {
                1 => write!(
                    s,
                    "ARP who-has {} tell {}",
                    ip4(&p[24..28]),
                    ip4(&p[14..18])
                ),
                2 => write!(
                    s,
                    "ARP reply {} is-at {}",
                    ip4(&p[14..18]),
                    mac_str(p[8..14].try_into().unwrap())
                ),
                _ => write!(s, "ARP op {op}"),
            };
        }
        0x0800 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 15) * 4;
            let tot = usize::from(be16(p, 2));
            let (src, dst) = (ip4(&p[12..16]), ip4(&p[16..20]));
            let l4 = p.get(ihl..tot.min(p.len())).unwrap_or(&[]);
            match p[9] {
                6 if l4.len() >= 20 => {
                    let off = usize::from(l4[12] >> 4) * 4;
                    let fl = l4[13];
                    let flags: String = [
                        (0x02, 'S'),
                        (0x01, 'F'),
                        (0x04, 'R'),
                        (0x08, 'P'),
                        (0x10, '.'),
                    ]
                    .iter()
                    .filter(|(m, _)| fl & m != 0)
                    .map(|(_, c)| *c)
                    .collect();
                    let _ = write!(
                        s,
                        "IP {src}.{} > {dst}.{}: [{flags}] seq {} ack {} win {} len {}",
                        be16(l4, 0),
                        be16(l4, 2),
                        be32(l4, 4),
                        be32(l4, 8),
                        be16(l4, 14),
                        l4.len().saturating_sub(off)
                    );
                }
                1 if l4.len() >= 8 => {
                    let _ = write!(
                        s,
                        "IP {src} > {dst}: ICMP type {} code {} id {} seq {}",
                        l4[0],
                        l4[1],
                        be16(l4, 4),
                        be16(l4, 6)
                    );
                }
                proto => {
                    let _ = write!(s, "IP {src} > {dst}: proto {proto} len {tot}");
                }
            }
        }
        0x86dd => s.push_str("IPv6"),
        _ => {
            let _ = write!(s, "ethertype {et:#06x} len {}", f.len());
        }
    }
    s
}

fn csum_add(mut sum: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        sum += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Why an IPv6 frame the director sends would be refused by a receiver's stack, if it would
/// (TCP, UDP and ICMPv6 right after the fixed header: what the director sends).
fn checksum_problem6(f: &[u8]) -> Option<String> {
    let p = f.get(14..)?;
    if p.len() < 40 || 40 + usize::from(be16(p, 4)) > p.len() {
        return Some("bad IPv6 length".into());
    }
    let l4 = &p[40..40 + usize::from(be16(p, 4))];
    if !matches!(p[6], 6 | 17 | 58) {
        return None;
    }
    let mut sum = csum_add(0, &p[8..40]);
    sum += u32::from(p[6]) + l4.len() as u32;
    (csum_fold(csum_add(sum, l4)) != 0)
        .then(|| format!("bad checksum of IPv6 next header {}", p[6]))
}

/// Why an IPv4 or IPv6 frame the director sends would be refused by a receiver's stack, if
/// it would.
pub fn checksum_problem(f: &[u8]) -> Option<String> {
    if f.len() >= 14 && be16(f, 12) == 0x86dd {
        return checksum_problem6(f);
    }
    if f.len() < 34 || be16(f, 12) != 0x0800 {
        return None;
    }
    let p = &f[14..];
    let ihl = usize::from(p[0] & 15) * 4;
    let tot = usize::from(be16(p, 2));
    if ihl < 20 || tot < ihl || tot > p.len() {
        return Some(format!(
            "bad IPv4 lengths ihl {ihl} total {tot} have {}",
            p.len()
        ));
    }
    if csum_fold(csum_add(0, &p[..ihl])) != 0 {
        return Some("bad IPv4 header checksum".into());
    }
    let l4 = &p[ihl..tot];
    match p[9] {
        6 => {
            let mut sum = csum_add(0, &p[12..20]);
            sum += 6 + l4.len() as u32;
            if csum_fold(csum_add(sum, l4)) != 0 {
                return Some("bad TCP checksum".into());
            }
        }
        1 if csum_fold(csum_add(0, l4)) != 0 => return Some("bad ICMP checksum".into()),
        _ => {}
    }
    None
}
