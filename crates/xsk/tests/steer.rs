//! The XDP steering program on a veth pair between two network namespaces created here.
//!
//! Namespace A holds the veth the program is attached to (address 198.18.0.1/24, the "kernel"
//! address); namespace B holds its peer (198.18.0.2/24), from which the test sends traffic. No
//! AF_XDP socket is bound, so a steered frame falls back to the kernel (`bpf_redirect_map` with
//! `XDP_PASS`): steering is observed through the program's counters.
//!
//! Root is required (namespaces, veths, BPF); CI runs the tests as root.

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

// ---- helpers ---------------------------------------------------------------------------------

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the steering tests need root (network namespaces, veths, BPF): run them as root, as CI does"
    );
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair; deleted (with the veths) on drop.
struct Lab {
    ns_a: String,
    ns_b: String,
    if_a: String,
    if_b: String,
    mac_a: String,
}

impl Lab {
    fn new() -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let mut lab = Lab {
            ns_a: format!("dxsteer-{pid}-{n}-a"),
            ns_b: format!("dxsteer-{pid}-{n}-b"),
            if_a: format!("dxs{pid}x{n}a"),
            if_b: format!("dxs{pid}x{n}b"),
            mac_a: String::new(),
        };
        assert!(lab.if_a.len() <= 15, "interface name too long");
        // Leftovers of a killed run with the same pid.
        lab.cleanup();
        run("ip", &["netns", "add", &lab.ns_a]);
        run("ip", &["netns", "add", &lab.ns_b]);
        for ns in [&lab.ns_a, &lab.ns_b] {
            // No IPv6 chatter (DAD, router solicitations) to muddle the counters.
            for key in ["all", "default"] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                run("ip", &["netns", "exec", ns, "sysctl", "-qw", &setting]);
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n", &lab.ns_a, "link", "add", &lab.if_a, "type", "veth", "peer", "name",
                &lab.if_b, "netns", &lab.ns_b,
            ],
        );
        let a = format!("{KERNEL_A}/24");
        let b = format!("{PEER_B}/24");
        run(
            "ip",
            &["-n", &lab.ns_a, "addr", "add", &a, "dev", &lab.if_a],
        );
        run(
            "ip",
            &["-n", &lab.ns_b, "addr", "add", &b, "dev", &lab.if_b],
        );
        for (ns, dev) in [(&lab.ns_a, &lab.if_a), (&lab.ns_b, &lab.if_b)] {
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
            );
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        let link = run(
            "ip",
            &["-n", &lab.ns_a, "-o", "link", "show", "dev", &lab.if_a],
        );
        lab.mac_a = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("MAC address of the veth")
            .to_string();
        lab
    }

    fn cleanup(&self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// `ip link show` of the attached veth.
    fn link_a(&self) -> String {
        run("ip", &["-n", &self.ns_a, "link", "show", "dev", &self.if_a])
    }

    /// In B, resolve `addr` to A's MAC without ARP.
    fn static_neigh(&self, addr: Ipv4Addr) {
        let addr = addr.to_string();
        run(
            "ip",
            &[
                "-n",
                &self.ns_b,
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &self.mac_a,
                "dev",
                &self.if_b,
                "nud",
                "permanent",
            ],
        );
    }

    fn attach(&self, force: Option<AttachMode>) -> Steer {
        let iface = self.if_a.clone();
        in_ns(&self.ns_a, move || Steer::attach(&iface, force))
            .unwrap_or_else(|e| panic!("attach: {e}"))
    }

    /// The kernel addresses of A's veth, read in A.
    fn kernel_a(&self) -> Vec<Ipv4Addr> {
        let iface = self.if_a.clone();
        in_ns(&self.ns_a, move || kernel_addrs(&iface))
    }

    /// Send `count` UDP datagrams from B, from `src_port` on B's address, to `dst:9`.
    fn udp_from_b(&self, src_port: u16, dst: Ipv4Addr, count: usize) {
        in_ns(&self.ns_b, move || {
            let sock = UdpSocket::bind(SocketAddrV4::new(PEER_B, src_port)).expect("bind UDP");
            for _ in 0..count {
                sock.send_to(b"detour steer test", SocketAddrV4::new(dst, 9))
                    .expect("send UDP");
            }
        });
    }

    /// Ping `dst` from B `count` times; the number of echo replies received.
    fn ping_from_b(&self, dst: Ipv4Addr, count: u16) -> u16 {
        in_ns(&self.ns_b, move || {
            ping(dst, count, Duration::from_millis(500))
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Run `f` on a fresh thread that has entered the network namespace `ns` (setns affects only
/// the calling thread).
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `file` is an open network namespace file, valid for the call; setns only
            // switches this (scoped, short-lived) thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn icmp_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMP echo over a raw socket (no `ping` binary needed): sends `count` requests to `dst`,
/// waiting up to `wait` for each reply; returns the replies received.
fn ping(dst: Ipv4Addr, count: u16, wait: Duration) -> u16 {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(
        fd >= 0,
        "raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh socket owned by nobody else; OwnedFd closes it once.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: `timeout` is a valid timeval and its size is passed; `sock` is open.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut replies = 0;
    for seq in 0..count {
        let mut req = [0u8; 24];
        req[0] = 8; // echo request
        req[4..6].copy_from_slice(&id.to_be_bytes());
        req[6..8].copy_from_slice(&seq.to_be_bytes());
        req[8..].copy_from_slice(b"detour-steer-pin");
        let sum = icmp_checksum(&req);
        req[2..4].copy_from_slice(&sum.to_be_bytes());
        // SAFETY: `req` and `to` are valid for the lengths passed; `sock` is open.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            sent,
            req.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let mut buf = [0u8; 1500];
            // SAFETY: `buf` is writable for its length; `sock` is open.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue; // timeout (bounded by the deadline)
            }
            let pkt = &buf[..n as usize];
            let ihl = usize::from(pkt[0] & 0xf) * 4;
            if pkt.len() < ihl + 8 || pkt[12..16] != dst.octets() {
                continue;
            }
            let icmp = &pkt[ihl..];
            if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
                replies += 1;
                break;
            }
        }
    }
    replies
}

/// Poll the counters until `cond` holds (at most 3 s); the last counters read.
fn wait_counters(
    steer: &Steer,
    what: &str,
    cond: impl Fn(&SteerCounters) -> bool,
) -> SteerCounters {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = steer.counters().expect("read counters");
        if cond(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: counters never got there: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Let in-flight frames land before a "nothing changed" check.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn counters(steer: &Steer) -> SteerCounters {
    steer.counters().expect("read counters")
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn steers_the_directors_traffic_and_passes_the_rest() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    assert!(matches!(steer.mode(), AttachMode::Driver | AttachMode::Skb));
    eprintln!("attach mode on veth: {}", steer.mode());
    assert!(
        lab.link_a().contains("xdp"),
        "no XDP program: {}",
        lab.link_a()
    );

    let kernel = lab.kernel_a();
    assert_eq!(kernel, vec![KERNEL_A]);
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    steer
        .set_addresses(&[OWNED], &[real], &kernel)
        .expect("set_addresses");

    // ARP for the kernel's address and ping to it: passed, and answered by the kernel.
    let c0 = counters(&steer);
    assert_eq!(
        lab.ping_from_b(KERNEL_A, 3),
        3,
        "the kernel did not answer the pings"
    );
    let c1 = wait_counters(&steer, "ping to the kernel", |c| {
        c.to_kernel >= c0.to_kernel + 3 && c.arp_other > c0.arp_other
    });
    assert!(c1.passed >= c0.passed + 4);
    settle();
    let c1 = counters(&steer);
    assert_eq!(
        c1.redirected, c0.redirected,
        "kernel traffic was steered: {c1:?}"
    );

    // ARP request for the owned address: steered (and, with no socket, unanswered).
    lab.udp_from_b(5000, OWNED, 1);
    let c2 = wait_counters(&steer, "ARP for the owned address", |c| {
        c.arp_owned > c1.arp_owned
    });
    assert!(c2.redirected > c1.redirected);
    assert!(
        c2.no_socket > c1.no_socket,
        "steered without a socket: {c2:?}"
    );

    // Ping, UDP and TCP to the owned address: steered, whatever the protocol.
    lab.static_neigh(OWNED);
    lab.static_neigh(ELSEWHERE);
    let c2 = counters(&steer);
    assert_eq!(
        lab.ping_from_b(OWNED, 3),
        0,
        "nobody should answer for the owned address"
    );
    lab.udp_from_b(5000, OWNED, 3);
    let b = lab.ns_b.clone();
    in_ns(&b, || {
        let _ = TcpStream::connect_timeout(
            &SocketAddrV4::new(OWNED, 80).into(),
            Duration::from_millis(200),
        );
    });
    let c3 = wait_counters(&steer, "ping/UDP/TCP to the owned address", |c| {
        c.to_owned >= c2.to_owned + 7
    });
    assert!(c3.redirected >= c2.redirected + 7);

    // From a real's addr:port to a client: steered; from another port: passed.
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    let c4 = wait_counters(&steer, "UDP from the real", |c| {
        c.from_real >= c3.from_real + 3
    });
    assert!(c4.redirected >= c3.redirected + 3);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 3);
    let c5 = wait_counters(&steer, "UDP from another port", |c| {
        c.other_ipv4 >= c4.other_ipv4 + 3
    });
    assert_eq!(c5.from_real, c4.from_real);

    // ICMP from a real's address: steered.
    assert_eq!(lab.ping_from_b(ELSEWHERE, 2), 0);
    let c6 = wait_counters(&steer, "ICMP from the real", |c| {
        c.icmp_from_real >= c5.icmp_from_real + 2
    });
    assert!(c6.redirected >= c5.redirected + 2);

    // The totals are the sums of the reasons.
    settle();
    let c = counters(&steer);
    assert_eq!(
        c.redirected,
        c.arp_owned + c.to_owned + c.from_real + c.icmp_from_real + c.ns_owned
    );
    assert_eq!(
        c.passed,
        c.to_kernel
            + c.arp_other
            + c.not_ipv4
            + c.vlan
            + c.other_ipv4
            + c.malformed
            + c.real_client_side
            + c.other_ipv6
    );
    // No socket anywhere: every steered frame fell back to the kernel.
    assert_eq!(c.no_socket, c.redirected);
    assert_eq!(steer.stats(), (c.redirected, c.passed));
}

/// On the client side of a two-armed director, frames from a real's address are the kernel's
/// (a real's replies come from the server side); traffic to owned addresses is still steered.
#[test]
fn frames_from_reals_are_passed_on_the_client_side() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    let kernel = lab.kernel_a();
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    steer
        .set_addresses(&[OWNED], &[real], &kernel)
        .expect("set_addresses");
    lab.static_neigh(OWNED);
    lab.static_neigh(ELSEWHERE);
    steer.set_client_side_only(true).expect("client side");
    let c0 = counters(&steer);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    assert_eq!(lab.ping_from_b(ELSEWHERE, 2), 0);
    let c1 = wait_counters(&steer, "from the real on the client side", |c| {
        c.real_client_side >= c0.real_client_side + 5
    });
    assert_eq!(
        (c1.from_real, c1.icmp_from_real),
        (c0.from_real, c0.icmp_from_real)
    );
    lab.udp_from_b(5000, OWNED, 2);
    let c2 = wait_counters(&steer, "to the owned address", |c| {
        c.to_owned >= c1.to_owned + 2
    });
    // Back to the server side: steered again.
    steer.set_client_side_only(false).expect("server side");
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    let c3 = wait_counters(&steer, "from the real on the server side", |c| {
        c.from_real >= c2.from_real + 3
    });
    settle();
    assert_eq!(counters(&steer).real_client_side, c3.real_client_side);
}

#[test]
fn set_addresses_replaces_the_sets() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    let kernel = lab.kernel_a();
    for addr in [OWNED, OWNED2, ELSEWHERE] {
        lab.static_neigh(addr);
    }
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    let real2 = SocketAddrV4::new(PEER_B, REAL_PORT + 1);
    steer
        .set_addresses(&[OWNED, OWNED2], &[real], &kernel)
        .expect("set_addresses");

    let c0 = counters(&steer);
    lab.udp_from_b(5000, OWNED2, 2);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 2);
    wait_counters(&steer, "first sets", |c| {
        c.to_owned >= c0.to_owned + 2 && c.from_real >= c0.from_real + 2
    });

    // OWNED2 and the real on 8080 removed, the real on 8081 added.
    steer
        .set_addresses(&[OWNED], &[real2], &kernel)
        .expect("set_addresses");
    settle();
    let c1 = counters(&steer);
    lab.udp_from_b(5000, OWNED2, 2);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 2);
    wait_counters(&steer, "removed entries", |c| {
        c.other_ipv4 >= c1.other_ipv4 + 4
    });
    settle();
    let c2 = counters(&steer);
    assert_eq!(
        c2.redirected, c1.redirected,
        "a removed address is still steered: {c2:?}"
    );
    lab.udp_from_b(5000, OWNED, 2);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 2);
    wait_counters(&steer, "kept and added entries", |c| {
        c.to_owned >= c2.to_owned + 2 && c.from_real >= c2.from_real + 2
    });

    // Too many kernel addresses: refused, and nothing changed.
    let many: Vec<Ipv4Addr> = (0..300u32)
        .map(|i| Ipv4Addr::from(0xc612_1000 + i))
        .collect();
    let err = steer
        .set_addresses(&[], &[], &many)
        .expect_err("300 kernel addresses accepted");
    assert!(err.to_string().contains("kernel addresses"), "{err}");
    let c3 = counters(&steer);
    lab.udp_from_b(5000, OWNED, 1);
    wait_counters(&steer, "after a refused update", |c| {
        c.to_owned > c3.to_owned
    });

    // Empty sets: everything goes to the kernel.
    steer.set_addresses(&[], &[], &[]).expect("set_addresses");
    settle();
    let c4 = counters(&steer);
    lab.udp_from_b(5000, OWNED, 2);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 2);
    wait_counters(&steer, "empty sets", |c| c.other_ipv4 >= c4.other_ipv4 + 4);
    settle();
    assert_eq!(counters(&steer).redirected, c4.redirected);
}

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
