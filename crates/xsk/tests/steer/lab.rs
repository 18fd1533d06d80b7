//! The steering tests' lab: two namespaces joined by a veth pair (unique names, deleted on
//! drop), the root check, commands run in them, attaching the program to A, UDP and pings from
//! B, and running a closure inside a namespace.

use super::*;
use crate::traffic::ping;

pub(super) fn require_root() {
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

pub(super) fn run(cmd: &str, args: &[&str]) -> String {
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
pub(super) struct Lab {
    pub(super) ns_a: String,
    pub(super) ns_b: String,
    pub(super) if_a: String,
    pub(super) if_b: String,
    pub(super) mac_a: String,
}

impl Lab {
    pub(super) fn new() -> Lab {
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

    pub(super) fn cleanup(&self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// `ip link show` of the attached veth.
    pub(super) fn link_a(&self) -> String {
        run("ip", &["-n", &self.ns_a, "link", "show", "dev", &self.if_a])
    }

    /// In B, resolve `addr` to A's MAC without ARP.
    pub(super) fn static_neigh(&self, addr: Ipv4Addr) {
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

    pub(super) fn attach(&self, force: Option<AttachMode>) -> Steer {
        let iface = self.if_a.clone();
        in_ns(&self.ns_a, move || Steer::attach(&iface, force))
            .unwrap_or_else(|e| panic!("attach: {e}"))
    }

    /// The kernel addresses of A's veth, read in A.
    pub(super) fn kernel_a(&self) -> Vec<Ipv4Addr> {
        let iface = self.if_a.clone();
        in_ns(&self.ns_a, move || kernel_addrs(&iface))
    }

    /// Send `count` UDP datagrams from B, from `src_port` on B's address, to `dst:9`.
    pub(super) fn udp_from_b(&self, src_port: u16, dst: Ipv4Addr, count: usize) {
        in_ns(&self.ns_b, move || {
            let sock = UdpSocket::bind(SocketAddrV4::new(PEER_B, src_port)).expect("bind UDP");
            for _ in 0..count {
                sock.send_to(b"detour steer test", SocketAddrV4::new(dst, 9))
                    .expect("send UDP");
            }
        });
    }

    /// Ping `dst` from B `count` times; the number of echo replies received.
    pub(super) fn ping_from_b(&self, dst: Ipv4Addr, count: u16) -> u16 {
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
pub(super) fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
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
