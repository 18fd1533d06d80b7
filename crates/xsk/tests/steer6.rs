//! The XDP steering program's IPv6 decisions, on a veth pair between two network namespaces
//! created here (prefix `dx6s-`): namespace A holds the veth the program is attached to
//! (2001:db8::1/64, the kernel's address), namespace B its peer (2001:db8::2/64, also a real
//! at port 8080). Addresses are added with `nodad` so nothing waits for duplicate address
//! detection. No AF_XDP socket is bound, so a steered frame falls back to the kernel:
//! steering is observed through the program's counters.
//!
//! Root is required (namespaces, veths, BPF); CI runs the tests as root.

use std::fs::File;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use detour_xsk::steer::{kernel_addrs6, Steer, SteerCounters};

const KERNEL_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const PEER_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// Owned by the director, configured on no interface; B knows its MAC statically.
const OWNED: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// Owned too, but B must solicit it (nobody answers).
const OWNED_SOLICITED: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101);
/// A client behind the director.
const ELSEWHERE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);
const REAL_PORT: u16 = 8080;

fn run(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair, dual-stack; deleted on drop.
struct Lab {
    ns: [String; 2],
    ifs: [String; 2],
    mac_a: String,
}

impl Lab {
    fn new() -> Lab {
        let pid = std::process::id();
        let mut lab = Lab {
            ns: [format!("dx6s-{pid}-a"), format!("dx6s-{pid}-b")],
            ifs: [format!("dx6{pid}a"), format!("dx6{pid}b")],
            mac_a: String::new(),
        };
        lab.cleanup();
        for ns in &lab.ns {
            run(&["netns", "add", ns]);
            run(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b) = (&lab.ns[0], &lab.ns[1]);
        run(&[
            "-n",
            a,
            "link",
            "add",
            &lab.ifs[0],
            "type",
            "veth",
            "peer",
            "name",
            &lab.ifs[1],
            "netns",
            b,
        ]);
        for (i, addr) in [(0, KERNEL_A), (1, PEER_B)] {
            let (ns, dev) = (&lab.ns[i], &lab.ifs[i]);
            let cidr = format!("{addr}/64");
            run(&["-n", ns, "addr", "add", &cidr, "dev", dev, "nodad"]);
            run(&["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
            run(&["-n", ns, "link", "set", dev, "up"]);
        }
        let link = run(&["-n", a, "-o", "link", "show", "dev", &lab.ifs[0]]);
        lab.mac_a = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("MAC of the veth")
            .to_string();
        lab
    }

    fn cleanup(&self) {
        for ns in &self.ns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// In B, resolve `addr` to A's MAC without neighbour discovery.
    fn static_neigh(&self, addr: Ipv6Addr) {
        let a = addr.to_string();
        run(&[
            "-n",
            &self.ns[1],
            "-6",
            "neigh",
            "replace",
            &a,
            "lladdr",
            &self.mac_a,
            "dev",
            &self.ifs[1],
            "nud",
            "permanent",
        ]);
    }

    /// `count` UDP datagrams from B's `[PEER_B]:src_port` to `[dst]:9`.
    fn udp_from_b(&self, src_port: u16, dst: Ipv6Addr, count: usize) {
        in_ns(&self.ns[1], move || {
            let s = UdpSocket::bind(SocketAddrV6::new(PEER_B, src_port, 0, 0)).expect("bind");
            for _ in 0..count {
                let _ = s.send_to(b"detour steer6 test", SocketAddrV6::new(dst, 9, 0, 0));
            }
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Run `f` on a fresh thread inside the network namespace `ns`.
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `file` is an open network namespace file, valid for the call; setns only
            // switches this scoped, short-lived thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

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

#[test]
fn ipv6_owned_solicited_and_reals_are_steered_the_rest_is_the_kernels() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "the steering tests need root: run them as root, as CI does"
    );
    let lab = Lab::new();
    let iface = lab.ifs[0].clone();
    let mut steer = in_ns(&lab.ns[0], move || Steer::attach(&iface, None)).expect("attach");
    let real = SocketAddrV6::new(PEER_B, REAL_PORT, 0, 0);
    steer.set_addresses(&[], &[], &[]).expect("set_addresses");
    let iface = lab.ifs[0].clone();
    let kernel = in_ns(&lab.ns[0], move || kernel_addrs6(&iface));
    assert!(kernel.contains(&KERNEL_A), "{kernel:?}");
    steer
        .set_addresses6(&[OWNED, OWNED_SOLICITED], &[real], &kernel)
        .expect("set_addresses6");

    // TCP to the kernel's own address works through the program: neighbour discovery between
    // the kernels (B's solicitations from a real's address too) and the segments are passed.
    let c0 = steer.counters().unwrap();
    let listener = in_ns(&lab.ns[0], || {
        TcpListener::bind(SocketAddrV6::new(KERNEL_A, 7000, 0, 0))
    })
    .expect("listen in A");
    let to = SocketAddr::V6(SocketAddrV6::new(KERNEL_A, 7000, 0, 0));
    in_ns(&lab.ns[1], move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(2))
    })
    .expect("connect from B to A's kernel over IPv6");
    drop(listener);
    let c1 = wait_counters(&steer, "kernel traffic", |c| {
        c.other_ipv6 >= c0.other_ipv6 + 3
    });
    assert_eq!(
        c1.redirected, c0.redirected,
        "kernel traffic was steered: {c1:?}"
    );

    // UDP to an owned address (B knows its MAC): steered.
    lab.static_neigh(OWNED);
    lab.udp_from_b(5000, OWNED, 3);
    let c2 = wait_counters(&steer, "UDP to the owned address", |c| {
        c.to_owned >= c1.to_owned + 3
    });

    // B solicits the other owned address: the solicitation is steered (nobody answers it).
    lab.udp_from_b(5000, OWNED_SOLICITED, 1);
    let c3 = wait_counters(&steer, "solicitation for an owned address", |c| {
        c.ns_owned > c2.ns_owned
    });

    // From the real's [addr]:port to a client: steered; from another port: passed.
    lab.static_neigh(ELSEWHERE);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    let c4 = wait_counters(&steer, "UDP from the real", |c| {
        c.from_real >= c3.from_real + 3
    });
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 3);
    let c5 = wait_counters(&steer, "UDP from another port", |c| {
        c.other_ipv6 >= c4.other_ipv6 + 3
    });
    assert_eq!(c5.from_real, c4.from_real);

    // From the real's [addr]:port to the kernel's own address (a health check's answer):
    // the kernel's.
    let c6 = steer.counters().unwrap();
    lab.udp_from_b(REAL_PORT, KERNEL_A, 3);
    let c7 = wait_counters(&steer, "UDP from the real to the kernel", |c| {
        c.to_kernel >= c6.to_kernel + 3
    });
    assert_eq!(c7.from_real, c6.from_real);

    // The totals are the sums of the reasons.
    std::thread::sleep(Duration::from_millis(300));
    let c = steer.counters().unwrap();
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
    assert_eq!(c.no_socket, c.redirected);
}
