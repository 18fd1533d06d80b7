//! The lab for end-to-end tests: `scripts/lab.sh` brings up the namespaces and real servers,
//! [`Lab::start`] runs the `detour` binary in the director's namespace with a config, and the
//! helpers run real clients (curl) in the client namespace. Everything is torn down when the
//! [`Lab`] is dropped, also when a test fails. Tests share one set of namespace names, so a
//! process-wide lock runs them one at a time.

#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub mod cluster;

static ONE_LAB: Mutex<()> = Mutex::new(());

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The detour binary: `$DETOUR_BIN`, else the workspace's release build.
pub fn detour_bin() -> PathBuf {
    let p = std::env::var_os("DETOUR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/detour"));
    assert!(
        p.exists(),
        "{} is missing: build it first (`cargo build --release -p detour`, as scripts/test.sh does)",
        p.display()
    );
    p
}

pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("1").to_string())
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "end-to-end tests need root (namespaces, AF_XDP); CI runs them as root"
    );
}

pub struct Lab {
    detour: Option<Child>,
    log: PathBuf,
    /// The config file detour runs (reload and `write memory` use it).
    pub config: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    launch: Launch,
    _lock: MutexGuard<'static, ()>,
}

/// How detour is started in the director's namespace: which binary, under which wrapper
/// command (e.g. `setpriv` for a service user with capabilities), with which extra
/// arguments and environment.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// The binary (default: [`detour_bin`]).
    pub bin: Option<PathBuf>,
    /// Words run before the binary inside the namespace.
    pub wrap: Vec<String>,
    /// Extra arguments after `run`.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// The config file to write and run (default: a temp file).
    pub config: Option<PathBuf>,
    /// The control socket (default: in the temp dir).
    pub socket: Option<PathBuf>,
}

/// Output of a command run with a time limit.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Run a command, killing it after `secs`.
pub fn run(args: &[&str], secs: u64) -> Run {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let t = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Lab {
    /// Bring the lab up (big.bin of `big_mb` MiB) and start detour with `config` (text).
    pub fn start(config: &str, big_mb: u32) -> Lab {
        Lab::start_with(config, big_mb, Launch::default())
    }

    /// [`Lab::start`], with detour launched as `launch` says.
    pub fn start_with(config: &str, big_mb: u32, launch: Launch) -> Lab {
        require_root();
        let lock = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
        let up = Command::new(root().join("scripts/lab.sh"))
            .arg("up")
            .env("LAB_BIG_MB", big_mb.to_string())
            .output()
            .expect("scripts/lab.sh");
        assert!(
            up.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let dir = std::env::temp_dir().join(format!("detour-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = launch
            .config
            .clone()
            .unwrap_or_else(|| dir.join("test.conf"));
        std::fs::write(&config_path, config).expect("write config");
        let mut lab = Lab {
            detour: None,
            log: dir.join("detour.log"),
            config: config_path,
            socket: launch
                .socket
                .clone()
                .unwrap_or_else(|| dir.join("ctl.sock")),
            launch,
            _lock: lock,
        };
        lab.run_detour();
        lab
    }

    /// Start detour (again) on the lab's config file; waits until its workers run.
    pub fn run_detour(&mut self) {
        let logf = std::fs::File::create(&self.log).expect("log");
        let bin = self.launch.bin.clone().unwrap_or_else(detour_bin);
        let child = Command::new("ip")
            .args(["netns", "exec", "dt-dir"])
            .args(&self.launch.wrap)
            .arg(bin)
            .args([
                "run",
                "--summary-secs",
                "1",
                "--duration-secs",
                "300",
                "--ctl-socket",
            ])
            .arg(&self.socket)
            .arg("--config")
            .arg(&self.config)
            .args(&self.launch.args)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .expect("start detour");
        self.detour = Some(child);
        let t = Instant::now();
        while !self.log_text().contains("worker(s) on") {
            if let Some(c) = self.detour.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("detour exited ({st}):\n{}", self.log_text());
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "detour did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Run a command in the client namespace.
    pub fn client(&self, args: &[&str], secs: u64) -> Run {
        let mut v = vec!["ip", "netns", "exec", "dt-client"];
        v.extend_from_slice(args);
        run(&v, secs)
    }

    /// Start a command in the client namespace in the background; it is killed if still
    /// running when the returned guard is dropped (for instance by a failing assertion).
    pub fn spawn_client(&self, args: &[&str]) -> KillOnDrop {
        KillOnDrop(
            Command::new("ip")
                .args(["netns", "exec", "dt-client"])
                .args(args)
                .spawn()
                .unwrap_or_else(|e| panic!("{args:?}: {e}")),
        )
    }

    /// Run a command in the director's namespace.
    pub fn director(&self, args: &[&str], secs: u64) -> Run {
        let mut v = vec!["ip", "netns", "exec", "dt-dir"];
        v.extend_from_slice(args);
        run(&v, secs)
    }

    /// `curl -w '%{http_code} %{redirect_url}'` of one URL, no redirect following.
    pub fn code_and_location(&self, url: &str) -> String {
        let r = self.client(
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                "-w",
                "%{http_code} %{redirect_url}",
                url,
            ],
            10,
        );
        assert!(r.ok(), "curl {url}: {r:?}\n{}", self.log_text());
        r.stdout
    }

    /// `detour ctl <command>`.
    pub fn ctl(&self, command: &str) -> Run {
        let bin = self.launch.bin.clone().unwrap_or_else(detour_bin);
        let sock = self.socket.to_string_lossy().into_owned();
        let mut v = vec![bin.to_str().expect("utf-8 path"), "ctl", "--socket", &sock];
        v.extend(command.split_whitespace());
        run(&v, 30)
    }

    /// `detour ctl <command>` that must succeed; returns its answer.
    pub fn ctl_ok(&self, command: &str) -> String {
        let r = self.ctl(command);
        assert!(
            r.ok() && !r.stdout.starts_with("error"),
            "ctl {command}: {r:?}\n{}",
            self.log_text()
        );
        r.stdout
    }

    /// Redirects detour sent since its statistics were last cleared (`show statistics`).
    pub fn redirects_sent(&self) -> u64 {
        let s = self.ctl_ok("show statistics");
        s.lines()
            .find_map(|l| l.trim().strip_prefix("responses: redirects "))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no redirect count in\n{s}"))
    }

    /// Exact shares are only owed when every request was answered once: a request the
    /// client retransmitted (the stateless responder cannot tell) is answered, and counted
    /// by the rotation, again. Returns how many extra answers detour sent for `requests`.
    pub fn extra_answers(&self, requests: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(700)); // workers report twice a second
        self.redirects_sent().saturating_sub(requests)
    }

    /// Stop or start real server `n`'s HTTP server (1-3).
    pub fn real_server(&self, n: u32, up: bool) {
        let lab = root().join("scripts/lab.sh");
        let r = run(
            &[
                lab.to_str().expect("utf-8 path"),
                if up { "start-real" } else { "stop-real" },
                &n.to_string(),
            ],
            30,
        );
        assert!(r.ok(), "lab.sh real {n} up={up}: {r:?}");
    }

    /// The pid of the running detour (of the `ip netns exec` that became it).
    pub fn detour_pid(&self) -> Option<u32> {
        self.detour.as_ref().map(|c| c.id())
    }

    /// Wait up to `secs` for detour to exit by itself; its exit code, if it did.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Some(c) = self.detour.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.detour = None;
                    return st.code();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stop detour (SIGTERM) and return its whole output.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.detour.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log_text()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("---- detour's output ----\n{log}");
        }
        let _ = Command::new(root().join("scripts/lab.sh"))
            .arg("down")
            .output();
        if let Some(d) = self.log.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves no load behind.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Wait for it to finish by itself, at most `secs`; true when it exited with success.
    pub fn wait_ok(&mut self, secs: u64) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The large file every real serves (written by `scripts/lab.sh up`).
pub const BIG_BIN: &str = "/tmp/detour-lab/big.bin";

/// The lab's config (configs/lab.conf) with `extra` lines appended.
pub fn lab_config(extra: &str) -> String {
    let base = std::fs::read_to_string(root().join("configs/lab.conf")).expect("configs/lab.conf");
    format!("{base}\n{extra}\n")
}

/// sha256 of a file, with the `sha256sum` tool.
pub fn sha256(path: &str) -> String {
    let r = run(&["sha256sum", path], 60);
    assert!(r.ok(), "sha256sum {path}: {r:?}");
    r.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
