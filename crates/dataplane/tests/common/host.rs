//! Host commands for the lab: the root check, set-up commands that must succeed, teardown
//! commands that may fail, killing a namespace's processes, sweeping what dead test processes
//! left behind, and reproducible pseudo-random payloads.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

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
pub(super) fn must(args: &[&str]) -> String {
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
pub(super) fn kill_all_in(ns: &str) {
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
pub(super) fn sweep_stale() {
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
pub(super) fn quiet(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub(super) fn mac_str(m: &[u8; 6]) -> String {
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
