//! The stable replay of the fuzz corpus: every file under `fuzz/corpus/<target>/` goes through
//! the same body (`detour_fuzzing::TARGETS`) the libFuzzer target runs, and must keep every
//! invariant. Each target's corpus must be there (a missing or emptied corpus fails), and the
//! checkers are shown to catch a broken invariant.
//!
//! The seeds (`seed-*` files) are written by the ignored test `write_seeds`:
//! `cargo test -p detour-fuzzing --test replay -- --ignored write_seeds`; the rest of the
//! corpus comes from `cargo fuzz` runs, minimised with `cargo fuzz cmin` (README, Testing).

mod seeds;

use detour_dataplane::{CLIENT, SERVER};
use detour_fuzzing::net::{GW, US};
use detour_fuzzing::{body, worker::Run, TARGETS};
use std::path::PathBuf;

/// Fewest files a target's corpus may have.
const MIN_FILES: usize = 5;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_FILES,
        "{}: {} corpus files, want at least {MIN_FILES}",
        dir.display(),
        files.len()
    );
    let run = body(target).unwrap();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let data = std::fs::read(f).unwrap();
            run(&data).err().map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn worker4_corpus_keeps_every_invariant() {
    replay("worker4");
}

#[test]
fn worker6_corpus_keeps_every_invariant() {
    replay("worker6");
}

#[test]
fn http_head_corpus_keeps_every_invariant() {
    replay("http_head");
}

#[test]
fn tls_corpus_keeps_every_invariant() {
    replay("tls");
}

#[test]
fn config_corpus_keeps_every_invariant() {
    replay("config");
}

#[test]
fn every_target_has_a_replay_test_and_a_fuzz_binary() {
    let src = include_str!("replay.rs");
    let fuzz_toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/Cargo.toml"
    ))
    .unwrap();
    for (name, _) in TARGETS {
        assert!(src.contains(&format!("replay(\"{name}\")")), "{name}");
        assert!(fuzz_toml.contains(&format!("name = \"{name}\"")), "{name}");
        assert!(corpus(name).is_dir(), "{name}");
    }
}

/// The worker checker catches a SYN-ACK with a broken checksum, one sent toward an address
/// the config does not name, and payload without a handshake.
#[test]
fn worker_checker_catches_broken_invariants() {
    for v6 in [false, true] {
        let mut r = Run::new(v6);
        let (cl, vip) = (r.net.client(0), r.net.vip.clone());
        let syn = r.net.tcp((GW, US[0]), &cl, &vip, (40000, 80), 7, 0, 2, b"");
        let out = r.send(&syn, CLIENT).unwrap().expect("a SYN-ACK");
        assert!(r.check(&syn, CLIENT, CLIENT, &out).is_ok());
        let tcp = if v6 { 54 } else { 34 };

        let mut bad = out.clone();
        bad[tcp + 16] ^= 1;
        let e = r.check(&syn, CLIENT, CLIENT, &bad).unwrap_err();
        assert!(e.contains("checksum"), "{e}");

        let e = r.check(&syn, CLIENT, SERVER, &out).unwrap_err();
        assert!(e.contains("not our source MAC"), "{e}");

        let body = b"HTTP/1.1 302 Found\r\n\r\n";
        let forged = r
            .net
            .tcp((US[0], GW), &vip, &cl, (80, 40000), 12345, 8, 0x18, body);
        let e = r.check(&syn, CLIENT, CLIENT, &forged).unwrap_err();
        assert!(e.contains("without a handshake"), "{e}");

        let to = r.net.client(3);
        let stray = r
            .net
            .tcp((US[1], GW), &vip, &to, (80, 40000), 1, 8, 0x10, b"");
        let e = r.check(&syn, CLIENT, SERVER, &stray).unwrap_err();
        assert!(e.contains("not a real"), "{e}");
    }
}

/// The response checker refuses a wrong Content-Length and an unknown status.
#[test]
fn response_checker_catches_broken_responses() {
    use detour_fuzzing::http::check_response;
    let ok = b"HTTP/1.1 302 Found\r\nLocation: http://x/\r\nContent-Length: 3\r\n\r\nabc";
    assert!(check_response(ok).is_ok());
    let long = b"HTTP/1.1 302 Found\r\nLocation: http://x/\r\nContent-Length: 4\r\n\r\nabc";
    assert!(check_response(long).is_err());
    let odd = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert!(check_response(odd).is_err());
}

#[test]
#[ignore = "writes the seed corpus"]
fn write_seeds() {
    for (target, files) in seeds::all() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in files {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}

/// The operations reach the paths they are meant for: a handshake is answered with a
/// redirect (checked as it passes), so a replay that passes is not one where everything
/// was dropped.
#[test]
fn a_handshake_is_answered_with_a_checked_redirect() {
    for v6 in [false, true] {
        let mut r = Run::new(v6);
        let head = b"GET /a?b HTTP/1.1\r\nHost: www.example\r\n\r\n";
        r.handshake(0, 40000, head, &[10], false, false).unwrap();
        assert_eq!(r.answers.len(), 1, "v6 {v6}");
        let a = String::from_utf8_lossy(&r.answers[0]);
        assert!(a.starts_with("HTTP/1.1 30"), "{a}");
        assert!(a.contains("\r\nLocation: http://"), "{a}");
        detour_fuzzing::http::check_response(&r.answers[0]).unwrap();
    }
}
