//! The XDP steering program on a veth pair between two network namespaces created here.
//!
//! Namespace A holds the veth the program is attached to (address 198.18.0.1/24, the "kernel"
//! address); namespace B holds its peer (198.18.0.2/24), from which the test sends traffic. No
//! AF_XDP socket is bound, so a steered frame falls back to the kernel (`bpf_redirect_map` with
//! `XDP_PASS`): steering is observed through the program's counters.
//!
//! Root is required (namespaces, veths, BPF); CI runs the tests as root.

//!
//! Helpers live in `lab` (the namespaces and veths, commands run in them) and `traffic`
//! (pings, waiting on the program's counters); the steering decisions are tested in
//! `steering`. The attach/detach lifecycle tests stay here at the crate root:
//! `process_death_detaches_the_program` starts its child test by its exact name.

mod lab;
mod steering;
mod traffic;

use lab::{in_ns, require_root, Lab};

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use detour_xsk::steer::{kernel_addrs, AttachMode, Steer, SteerCounters};

const KERNEL_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Owned by the director, configured on no interface.
const OWNED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const OWNED2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
/// A client address behind the director: neither owned nor the kernel's.
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);
const REAL_PORT: u16 = 8080;

/// Set in the child process of `process_death_detaches`: "<netns>:<iface>".
const CHILD_ENV: &str = "DETOUR_STEER_TEST_CHILD";
const CHILD_READY: &str = "DETOUR_STEER_TEST_ATTACHED";

#[test]
fn dropping_steer_detaches_the_program() {
    require_root();
    let lab = Lab::new();
    let steer = lab.attach(None);
    assert!(
        lab.link_a().contains("xdp"),
        "no XDP program: {}",
        lab.link_a()
    );
    drop(steer);
    assert!(
        !lab.link_a().contains("xdp"),
        "still attached: {}",
        lab.link_a()
    );

    // SKB mode when forced, and detached the same way.
    let steer = lab.attach(Some(AttachMode::Skb));
    assert_eq!(steer.mode(), AttachMode::Skb);
    assert!(lab.link_a().contains("xdpgeneric"), "{}", lab.link_a());
    drop(steer);
    assert!(
        !lab.link_a().contains("xdp"),
        "still attached: {}",
        lab.link_a()
    );
}

#[test]
fn attach_errors_say_what_failed() {
    require_root();
    let err = Steer::attach("nosuchdx0", None).expect_err("attached to a missing interface");
    let msg = err.to_string();
    eprintln!("missing interface: {msg}");
    assert!(msg.contains("nosuchdx0"), "{msg}");
    assert!(kernel_addrs("nosuchdx0").is_empty());

    // A second program on the same interface is refused while the first holds it.
    let lab = Lab::new();
    let first = lab.attach(None);
    let iface = lab.if_a.clone();
    let second = in_ns(&lab.ns_a, move || Steer::attach(&iface, None));
    let err = second.expect_err("two programs attached to one interface");
    eprintln!("second program: {err}");
    drop(first);
}

/// Kills the child on drop, if the test fails before it does.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn process_death_detaches_the_program() {
    require_root();
    let lab = Lab::new();
    let exe = std::env::current_exe().expect("test executable");
    let child = Command::new(exe)
        .args([
            "--exact",
            "attach_and_wait_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}:{}", lab.ns_a, lab.if_a))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child test process");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(CHILD_READY) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the child never attached the program");
    assert!(
        lab.link_a().contains("xdp"),
        "child's program missing: {}",
        lab.link_a()
    );

    child.0.kill().expect("kill the child");
    child.0.wait().expect("reap the child");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.link_a().contains("xdp") {
        assert!(
            Instant::now() < deadline,
            "still attached after the process died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Not a test of its own: the child process of `process_death_detaches_the_program`. Does
/// nothing unless that test started it.
#[test]
fn attach_and_wait_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ns, iface) = spec.split_once(':').expect("<netns>:<iface>");
    let iface = iface.to_string();
    let steer = in_ns(ns, move || Steer::attach(&iface, None)).expect("attach in the child");
    println!("{CHILD_READY}");
    // Killed by the parent long before this ends.
    std::thread::sleep(Duration::from_secs(60));
    drop(steer);
}
