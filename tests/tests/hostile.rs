//! The control plane against hostile local clients and untrusted files, end to end: slowloris
//! on the metrics endpoint and idle connections on the control socket while a real fails
//! over; `write memory` keeping a config's owner, mode and symlink; `--ctl-socket` refusing
//! to replace a file that is not a stale socket.

use detour_e2e::{detour_bin, lab_config, run, KillOnDrop, Lab};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Health checks of the slowloris test: detected after `fall` failures, `interval` apart,
/// the last one taking up to `timeout`.
const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 150;
const FALL: u64 = 2;

/// A python3 client in the director's namespace, for `secs` seconds: `tcp` slowloris
/// connections to the metrics endpoint (a byte of a request every 0.5 s, reconnecting when
/// cut) and `unix` idle connections to the control socket (reconnecting when cut). At the
/// end it prints how many of each it opened.
const HOSTILE: &str = r#"
import socket, sys, time
addr, port, path, ntcp, nunix, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
req = b"GET /metrics HTTP/1.0\r\n\r\n"
opened = {"tcp": 0, "unix": 0}
def tcp():
    s = socket.create_connection((addr, port)); s.setblocking(False); opened["tcp"] += 1; return [s, 0]
def unix():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.setblocking(False); opened["unix"] += 1; return [s, 0]
t = [tcp() for _ in range(ntcp)]
u = [unix() for _ in range(nunix)]
print("holding", flush=True)
end = time.time() + secs
while time.time() < end:
    for pool, mk, slow in ((t, tcp, True), (u, unix, False)):
        for i, c in enumerate(pool):
            try:
                if c[0].recv(4096) == b"":
                    raise ConnectionError
            except BlockingIOError:
                pass
            except OSError:
                c[0].close(); pool[i] = mk(); continue
            if slow:
                try:
                    c[0].send(req[c[1] % (len(req) - 2):][:1]); c[1] += 1
                except OSError:
                    c[0].close(); pool[i] = mk()
    time.sleep(0.5)
print("opened tcp %d unix %d" % (opened["tcp"], opened["unix"]), flush=True)
"#;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn a_real_fails_over_while_slowloris_holds_metrics_and_idle_clients_hold_the_socket() {
    let health = format!(
        "metrics 127.0.0.1:9100\nhealth-check all tcp interval {INTERVAL_MS}ms timeout {TIMEOUT_MS}ms rise 2 fall {FALL}"
    );
    let lab = Lab::start(&lab_config(&health), 1);
    let sock = lab.socket.display().to_string();
    let mut hostile = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", "dt-dir", "python3", "-c", HOSTILE])
            .args(["127.0.0.1", "9100", &sock, "200", "20", "12"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut out = hostile.0.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut out, &mut first).expect("the hostile client started");
    assert_eq!(&first, b"holding\n");
    std::thread::sleep(Duration::from_secs(3)); // past the 2 s deadline: reconnects too

    let mut latencies = Vec::new();
    let mut show_real = || {
        let t = Instant::now();
        let s = lab.ctl_ok("show real");
        latencies.push(t.elapsed());
        s
    };
    show_real();
    lab.real_server(2, false);
    let stopped = Instant::now();
    while !show_real()
        .lines()
        .any(|l| l.starts_with("198.18.1.12:8080") && l.contains("failed"))
    {
        assert!(stopped.elapsed() < Duration::from_secs(10), "never failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let failover = stopped.elapsed();
    let detection = Duration::from_millis(FALL * INTERVAL_MS + TIMEOUT_MS);
    // Its DIP follows its backup (the VIP: a fresh redirect to another real).
    let got = lab.code_and_location("http://real2.lab/bm");
    for _ in 0..20 {
        show_real();
    }
    let mut tail = String::new();
    assert!(hostile.wait_ok(20), "the hostile client failed");
    std::io::Read::read_to_string(&mut out, &mut tail).expect("its figures");
    let mut sorted = latencies.clone();
    sorted.sort();
    let max = *sorted.last().expect("latencies");
    let scrape = lab.director(
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:9100/metrics",
        ],
        10,
    );
    let listener: Vec<&str> = scrape
        .stdout
        .lines()
        .filter(|l| l.starts_with("detour_listener_connections_total"))
        .collect();
    eprintln!(
        "slowloris figures: failed {:.0} ms after the stop (configured detection {} ms + 1 s); \
         show real: {} answers, median {:.1} ms, max {:.1} ms; hostile client: {}; {}",
        ms(failover),
        detection.as_millis(),
        sorted.len(),
        ms(sorted[sorted.len() / 2]),
        ms(max),
        tail.trim(),
        listener.join(", ")
    );
    assert!(
        failover < detection + Duration::from_secs(1),
        "failed after {failover:?}\n{}",
        lab.log_text()
    );
    assert!(
        got == "302 http://real1.lab/bm" || got == "302 http://real3.lab/bm",
        "{got}"
    );
    assert!(
        max < Duration::from_millis(200),
        "show real took {max:?}: {sorted:?}"
    );
    // The hostile clients were really there: cut at the deadline and reconnected.
    let opened = |kind: &str| -> u64 {
        tail.split_whitespace()
            .skip_while(|w| *w != kind)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(opened("tcp") > 200 && opened("unix") > 20, "{tail}");
    assert!(scrape.ok(), "{scrape:?}");
}

fn other_user() -> (u32, u32) {
    // nobody:nogroup on Debian.
    (65534, 65534)
}

#[test]
fn write_memory_keeps_owner_mode_and_symlink_of_the_config() {
    let mut lab = Lab::start(&lab_config(""), 1);
    let dir = lab.config.parent().expect("dir").to_path_buf();
    let (uid, gid) = other_user();
    std::os::unix::fs::chown(&lab.config, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(&lab.config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    lab.ctl_ok("weight 198.18.0.3 4");
    // A command over 8 KiB: the documented error and exit 1, not a reset.
    let long = lab.ctl(&format!("weight {}", "9".repeat(9000)));
    assert_eq!(long.code, Some(1), "{long:?}");
    assert_eq!(long.stdout, "error: a command of at most 8192 bytes\n");
    assert!(lab.ctl_ok("write memory").starts_with("ok: wrote"));
    let m = std::fs::metadata(&lab.config).expect("config");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (uid, gid, 0o600));
    assert!(std::fs::read_to_string(&lab.config)
        .expect("read")
        .contains("weight 198.18.0.3:80 4"));

    // Run from a symlink: written through to the target, the link stays a link.
    let target = dir.join("real.conf");
    std::fs::rename(&lab.config, &target).expect("move");
    std::os::unix::fs::symlink("real.conf", &lab.config).expect("symlink");
    let _ = lab.stop();
    lab.run_detour();
    lab.ctl_ok("weight 198.18.0.3 6");
    let a = lab.ctl_ok("write memory");
    assert!(a.contains("real.conf"), "{a}");
    let l = std::fs::symlink_metadata(&lab.config).expect("link");
    assert!(l.file_type().is_symlink());
    let m = std::fs::metadata(&target).expect("target");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (uid, gid, 0o600));
    assert!(std::fs::read_to_string(&target)
        .expect("read")
        .contains("weight 198.18.0.3:80 6"));
    let strays: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

#[test]
fn ctl_socket_at_a_regular_file_is_refused_and_the_file_kept() {
    let dir = std::env::temp_dir().join(format!("detour-e2e-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("precious");
    std::fs::write(&file, "do not remove\n").expect("write");
    let conf = dir.join("c.conf");
    std::fs::write(&conf, lab_config("")).expect("config");
    let bin = detour_bin();
    let r = run(
        &[
            bin.to_str().expect("utf-8"),
            "run",
            "--config",
            conf.to_str().expect("utf-8"),
            "--ctl-socket",
            file.to_str().expect("utf-8"),
            "--duration-secs",
            "1",
        ],
        20,
    );
    let kept = std::fs::read_to_string(&file).expect("the file is still there");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("is not a socket; refusing to replace it"),
        "{r:?}"
    );
    assert_eq!(kept, "do not remove\n");
}
