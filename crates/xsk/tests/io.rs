//! AF_XDP I/O on veth pairs in network namespaces created (and deleted) by each test.
//!
//! Root is required (CI runs as root). The AF_XDP side runs on a thread moved into its
//! namespace with setns(); the kernel side is driven with python3 sockets through
//! `ip netns exec`. Addresses are in 198.18.0.0/15. libxdp's default program (redirect every
//! frame of the queue to the socket) feeds the sockets, via `IoConfig::load_default_program`.
//!
//! `cargo test -p detour-xsk --test io -- --ignored --nocapture pingpong` measures the echo
//! rate of two QueueIos bouncing frames at each other over one veth.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use detour_xsk::busy::BusyPoll;
use detour_xsk::io::{BatchStats, IoConfig, Mode, Out, Pass, QueueIo};

/// One test at a time: they share two cores and time their traffic.
static SERIAL: Mutex<()> = Mutex::new(());

const MAC_X0: &str = "02:00:c6:12:00:a0";
const MAC_K0: &str = "02:00:c6:12:00:b0";
const MAC_P1: &str = "02:00:c6:12:01:a1";
const MAC_K1: &str = "02:00:c6:12:01:c1";

fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, b) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(b, 16).unwrap();
    }
    m
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "these tests create network namespaces, veth pairs and AF_XDP sockets: run them as root"
    );
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces deleted on drop (with the veths in them), also when a test fails.
struct Netns {
    names: Vec<String>,
}

impl Netns {
    fn new(tag: &str, count: usize) -> Netns {
        let names: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    "dtio{}{tag}{}",
                    std::process::id(),
                    (b'a' + i as u8) as char
                )
            })
            .collect();
        let ns = Netns { names };
        for n in &ns.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            sh(&format!("ip netns add {n}"));
            sh(&format!("ip -n {n} link set lo up"));
            // No IPv6 chatter (router solicitations, DAD) on the links.
            sh(&format!(
                "ip netns exec {n} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
            ));
        }
        ns
    }

    fn name(&self, i: usize) -> &str {
        &self.names[i]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// A veth pair: `a` in namespace `ns_a` with MAC `mac_a`, `b` in `ns_b` with `mac_b` and
/// address `addr_b` (a /24), checksum offload off on `b` (the kernel side), both up.
#[allow(clippy::too_many_arguments)]
fn veth(ns_a: &str, a: &str, mac_a: &str, ns_b: &str, b: &str, mac_b: &str, addr_b: &str) {
    sh(&format!(
        "ip -n {ns_a} link add {a} type veth peer name {b} netns {ns_b}"
    ));
    sh(&format!("ip -n {ns_a} link set {a} address {mac_a} up"));
    sh(&format!("ip -n {ns_b} link set {b} address {mac_b} up"));
    sh(&format!("ip -n {ns_b} addr add {addr_b}/24 dev {b}"));
    sh(&format!(
        "ip netns exec {ns_b} ethtool -K {b} tx off >/dev/null"
    ));
}

/// Run `f` on a thread moved into network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: `file` is an open namespace file that outlives the call; setns with
            // CLONE_NEWNET moves only the calling thread, a thread of our own that ends with
            // this closure.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

fn test_config() -> IoConfig {
    IoConfig {
        load_default_program: true,
        ..IoConfig::default()
    }
}

/// Swap MACs, IPv4 addresses and UDP ports; drop anything but IPv4/UDP.
fn udp_echo(buf: &mut [u8], len: usize, port: usize) -> Out {
    if len < 42 || buf[12..14] != [0x08, 0x00] || buf[23] != 17 {
        return Out::Drop;
    }
    let l4 = 14 + (buf[14] & 0x0f) as usize * 4;
    if len < l4 + 8 {
        return Out::Drop;
    }
    for i in 0..6 {
        buf.swap(i, 6 + i);
    }
    for i in 0..4 {
        buf.swap(26 + i, 30 + i);
    }
    for i in 0..2 {
        buf.swap(l4 + i, l4 + 2 + i);
    }
    Out::Tx { port, len }
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    rx: usize,
    tx: usize,
    dropped: usize,
    tx_ring_full: usize,
    batches: usize,
}

impl Totals {
    fn add(&mut self, st: BatchStats) {
        self.rx += st.rx;
        self.tx += st.tx;
        self.dropped += st.dropped;
        self.tx_ring_full += st.tx_ring_full;
        self.batches += 1;
        assert_eq!(st.rx, st.tx + st.dropped + st.tx_ring_full, "{st:?}");
    }
}

/// Run batches until `stop` (or `limit`), checking the frame accounting after each.
fn pump(
    io: &mut QueueIo,
    stop: &AtomicBool,
    limit: Duration,
    mut f: impl FnMut(&mut [u8], usize, usize) -> Out,
) -> Totals {
    let mut t = Totals::default();
    let cap = io.frame_capacity();
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < limit {
        let st = io.run_batch(|buf, len, port| {
            assert_eq!(buf.len(), cap);
            assert!(len <= cap);
            f(buf, len, port)
        });
        t.add(st);
        let (accounted, total) = io.frames_accounted();
        assert_eq!(
            accounted,
            total,
            "frames lost or doubled: {:?}",
            io.frame_counts()
        );
        if st.rx == 0 {
            io.wait(10);
        }
    }
    t
}

const ECHO_CLIENT: &str = r#"
import socket, sys, time
n, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
s.bind((src, 40000))
s.setblocking(False)
sent = got = bad = 0
deadline = time.time() + 20
last = time.time()
while got < n and time.time() < deadline:
    while sent < n and sent - got < 128:
        s.sendto(b'detour-echo-%08d' % sent + b'x' * 64, (dst, 7))
        sent += 1
    try:
        d, a = s.recvfrom(4096)
    except BlockingIOError:
        if time.time() - last > 2:
            break
        time.sleep(0.0002)
        continue
    last = time.time()
    if a == (dst, 7) and d.startswith(b'detour-echo-'):
        got += 1
    else:
        bad += 1
print(sent, got, bad)
"#;

/// Send `n` UDP datagrams from `src` (in `ns`) to `dst` port 7 and count the echoes.
fn echo_client(ns: &str, n: usize, src: &str, dst: &str) -> (usize, usize, usize) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", ECHO_CLIENT])
        .args([n.to_string(), src.to_string(), dst.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "echo client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let v: Vec<usize> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

/// Namespace a holds x0 (AF_XDP), namespace b holds k0 = 198.18.0.1 with a static ARP entry
/// 198.18.0.2 -> x0.
fn echo_lab(tag: &str) -> Netns {
    let ns = Netns::new(tag, 2);
    veth(
        ns.name(0),
        "x0",
        MAC_X0,
        ns.name(1),
        "k0",
        MAC_K0,
        "198.18.0.1",
    );
    sh(&format!(
        "ip -n {} neigh replace 198.18.0.2 lladdr {MAC_X0} dev k0 nud permanent",
        ns.name(1)
    ));
    ns
}

/// Open x0 with `cfg` in namespace a, echo `n` datagrams sent from namespace b, return the mode
/// taken, the echo client's (sent, got, bad) and the totals.
fn echo_run(ns: &Netns, cfg: &IoConfig, n: usize) -> (Mode, (usize, usize, usize), Totals) {
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Mode, String>>();
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            in_netns(ns.name(0), || {
                let mut io = match QueueIo::open(&["x0"], 0, cfg) {
                    Ok(io) => io,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Totals::default();
                    }
                };
                let _ = ready_tx.send(Ok(io.mode()));
                let t = pump(&mut io, &stop, Duration::from_secs(30), udp_echo);
                if let Ok(s) = io.xdp_statistics(0) {
                    eprintln!(
                        "x0 socket: rx_dropped {} rx_ring_full {} fill_ring_empty {} tx_invalid {}",
                        s.rx_dropped(),
                        s.rx_ring_full(),
                        s.rx_fill_ring_empty_descs(),
                        s.tx_invalid_descs()
                    );
                }
                eprintln!("frames: {:?}", io.frame_counts());
                t
            })
        });
        let mode = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("worker did not start")
            .unwrap_or_else(|e| panic!("QueueIo::open: {e}"));
        let r = echo_client(ns.name(1), n, "198.18.0.1", "198.18.0.2");
        stop.store(true, Ordering::Relaxed);
        let totals = worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (mode, r, totals)
    })
}

#[test]
fn echo_on_veth_auto_mode() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("e");
    let n = 2000;
    let t0 = Instant::now();
    let (mode, (sent, got, bad), t) = echo_run(&ns, &test_config(), n);
    eprintln!(
        "echo: mode {mode}, sent {sent} got {got} bad {bad}, {t:?}, {:?}",
        t0.elapsed()
    );
    assert!(
        matches!(mode, Mode::DriverCopy | Mode::Skb),
        "veth must refuse zero-copy, got {mode}"
    );
    assert_eq!(
        mode,
        Mode::DriverCopy,
        "driver copy works on veth with MTU 1500"
    );
    assert_eq!((sent, got, bad), (n, n, 0));
    assert!(t.tx >= n && t.tx_ring_full == 0, "{t:?}");
}

/// The echo's datagram number (`detour-echo-%08d` after the UDP header), if it is one.
fn echo_id(buf: &[u8], len: usize) -> Option<u32> {
    let at = 14 + 20 + 8 + 12;
    let digits = buf.get(at..(at + 8).min(len))?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `run_batch_in_two` over veth: every even datagram is deferred in the first pass and echoed
/// in the second; within each batch no first-pass call follows a second-pass one, the second
/// pass sees exactly the deferred frames in the order received (with their lengths), and
/// every datagram is echoed with the frame accounting intact.
#[test]
fn deferred_frames_get_a_second_pass_after_the_whole_batch() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("d");
    let n = 3000;
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            in_netns(ns.name(0), || {
                let mut io = QueueIo::open(&["x0"], 0, &test_config()).expect("open x0");
                let _ = ready_tx.send(());
                let (mut t, mut seconds) = (Totals::default(), 0usize);
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(30) {
                    let mut kept: Vec<(u32, usize)> = Vec::new();
                    let mut second: Vec<(u32, usize)> = Vec::new();
                    let st = io.run_batch_in_two(|buf, len, port, pass| {
                        let id = echo_id(buf, len);
                        match pass {
                            Pass::First => {
                                assert!(second.is_empty(), "a first pass after a second one");
                                match id {
                                    Some(i) if i % 2 == 0 => {
                                        kept.push((i, len));
                                        Out::Defer
                                    }
                                    _ => udp_echo(buf, len, port),
                                }
                            }
                            Pass::Second { .. } => {
                                second.push((id.expect("a deferred echo datagram"), len));
                                udp_echo(buf, len, port)
                            }
                        }
                    });
                    assert_eq!(
                        kept, second,
                        "the second pass is the deferred frames, in order"
                    );
                    seconds += second.len();
                    t.add(st);
                    let (accounted, total) = io.frames_accounted();
                    assert_eq!(accounted, total, "{:?}", io.frame_counts());
                    if st.rx == 0 {
                        io.wait(10);
                    }
                }
                (t, seconds)
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("worker did not start");
        let (sent, got, bad) = echo_client(ns.name(1), n, "198.18.0.1", "198.18.0.2");
        stop.store(true, Ordering::Relaxed);
        let (t, seconds) = worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        eprintln!("two passes: sent {sent} got {got} bad {bad}, {seconds} deferred, {t:?}");
        assert_eq!((sent, got, bad), (n, n, 0));
        assert_eq!(
            seconds,
            n / 2,
            "every even datagram went through the second pass"
        );
    });
}

#[test]
fn echo_on_veth_forced_skb() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("s");
    let cfg = IoConfig {
        force_mode: Some(Mode::Skb),
        // Small, but the fill ring holds the client's window of 128 datagrams.
        batch: 16,
        frame_count: 1024,
        ring_size: 256,
        ..test_config()
    };
    let n = 1000;
    let (mode, (sent, got, bad), t) = echo_run(&ns, &cfg, n);
    eprintln!("skb echo: sent {sent} got {got} bad {bad}, {t:?}");
    assert_eq!(mode, Mode::Skb);
    assert_eq!((sent, got, bad), (n, n, 0));
}

#[test]
fn zero_copy_is_refused_on_veth() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("z");
    let cfg = IoConfig {
        force_mode: Some(Mode::ZeroCopy),
        ..IoConfig::default()
    };
    let err = in_netns(ns.name(0), || {
        QueueIo::open(&["x0"], 0, &cfg).map(|io| io.mode())
    })
    .expect_err("zero-copy on veth");
    eprintln!("forced zero-copy: {err}");
    assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
}

/// Busy polling asked for on veth: refused with the reason (veth registers no NAPI for its
/// queues, so the socket has no NAPI id after bind()), and the sockets still echo, sleeping in
/// poll() as without it.
#[test]
fn busy_poll_is_refused_on_veth() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("b");
    let cfg = IoConfig {
        busy_poll: Some(BusyPoll::default()),
        ..test_config()
    };
    let state = in_netns(ns.name(0), || {
        let io = QueueIo::open(&["x0"], 0, &cfg).unwrap_or_else(|e| panic!("{e}"));
        io.busy_poll().cloned()
    });
    match state {
        Some(Err(why)) => assert!(
            why.contains("x0 queue 0: SO_INCOMING_NAPI_ID is 0 after bind()"),
            "{why}"
        ),
        other => panic!("busy polling on veth should be refused, got {other:?}"),
    }
    let n = 500;
    let (mode, (sent, got, bad), _) = echo_run(&ns, &cfg, n);
    assert_eq!(
        (sent, got, bad),
        (n, n, 0),
        "echo in {mode} mode after the refusal"
    );
}

/// Without libxdp's program (as detour runs): the native-XDP probe picks driver copy, and skb
/// once the peer's MTU is too large for a driver-mode program on veth. Also re-opens the same
/// queue right after closing it each time.
#[test]
fn inhibited_open_probes_driver_mode() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("p");
    let cfg = IoConfig::default();
    let mode = in_netns(ns.name(0), || {
        let io = QueueIo::open(&["x0"], 0, &cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(io.rx_fd(0) >= 0);
        assert_eq!(io.frames_accounted(), (8192, 8192));
        assert_eq!(io.frame_counts().fill, 2048);
        io.mode()
    });
    assert_eq!(mode, Mode::DriverCopy);
    sh(&format!("ip -n {} link set k0 mtu 9000", ns.name(1)));
    let mode = in_netns(ns.name(0), || {
        QueueIo::open(&["x0"], 0, &cfg)
            .unwrap_or_else(|e| panic!("{e}"))
            .mode()
    });
    assert_eq!(
        mode,
        Mode::Skb,
        "driver mode is refused on veth when the peer MTU is > 3506"
    );
}

/// With an XDP program already attached (as detour's steering program is when the workers
/// open their queues), the probe reads its mode: driver copy under a native program, skb
/// under a generic one. libxdp's program on queue 0 stands in for the steering program; the
/// inhibited QueueIo opens queue 1 of a two-queue veth.
#[test]
fn probe_reads_the_attached_program_mode() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new("m", 2);
    let (a, b) = (ns.name(0), ns.name(1));
    sh(&format!(
        "ip -n {a} link add x0 numtxqueues 2 numrxqueues 2 type veth peer name k0 numtxqueues 2 numrxqueues 2 netns {b}"
    ));
    sh(&format!("ip -n {a} link set x0 address {MAC_X0} up"));
    sh(&format!("ip -n {b} link set k0 address {MAC_K0} up"));
    for (holder, expect) in [(Mode::DriverCopy, Mode::DriverCopy), (Mode::Skb, Mode::Skb)] {
        let got = in_netns(a, || {
            let holder_cfg = IoConfig {
                force_mode: Some(holder),
                ..test_config()
            };
            let _prog = QueueIo::open(&["x0"], 0, &holder_cfg).unwrap_or_else(|e| panic!("{e}"));
            let io =
                QueueIo::open(&["x0"], 1, &IoConfig::default()).unwrap_or_else(|e| panic!("{e}"));
            io.mode()
        });
        assert_eq!(got, expect, "under a {holder} program");
    }
}

#[test]
fn reopen_right_after_drop() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("r");
    let cfg = test_config();
    let (m1, r1, _) = echo_run(&ns, &cfg, 200);
    // echo_run dropped its QueueIo on return: open the same queue again at once.
    let t0 = Instant::now();
    let (m2, r2, _) = echo_run(&ns, &cfg, 200);
    eprintln!(
        "reopen: first {m1} {r1:?}, second {m2} {r2:?} ({:?} incl. traffic)",
        t0.elapsed()
    );
    assert_eq!(r1, (200, 200, 0));
    assert_eq!(r2, (200, 200, 0));
    assert_eq!(m1, m2);
    // And twice more back to back without traffic, timing the open.
    in_netns(ns.name(0), || {
        for _ in 0..2 {
            let t = Instant::now();
            let io = QueueIo::open(&["x0"], 0, &cfg).unwrap_or_else(|e| panic!("reopen: {e}"));
            eprintln!("reopen took {:?} ({})", t.elapsed(), io.mode());
        }
    });
}

/// A second QueueIo on a queue that is still bound gets EBUSY and retries until the first one
/// is closed (400 ms later), then succeeds.
#[test]
fn busy_queue_is_retried_until_free() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("y");
    let cfg = IoConfig::default();
    in_netns(ns.name(0), || {
        let first = QueueIo::open(&["x0"], 0, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let t0 = Instant::now();
        let second = std::thread::scope(|s| {
            // Threads spawned here start in this thread's namespace.
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                drop(first);
            });
            QueueIo::open(&["x0"], 0, &cfg)
        });
        let took = t0.elapsed();
        let second = second.unwrap_or_else(|e| panic!("second open: {e}"));
        eprintln!("second open took {took:?} ({})", second.mode());
        assert!(
            took >= Duration::from_millis(350),
            "{took:?}: the queue was still bound"
        );
        assert_eq!(second.mode(), Mode::DriverCopy);
    });
    // While a socket is bound, a second one never gets the queue (3 s budget).
    in_netns(ns.name(0), || {
        let _first = QueueIo::open(&["x0"], 0, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let t0 = Instant::now();
        let err = QueueIo::open(&["x0"], 0, &cfg).expect_err("queue is bound");
        eprintln!("while bound: {err} after {:?}", t0.elapsed());
        assert_eq!(err.errno(), Some(libc::EBUSY), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    });
}

const FWD_RECEIVER: &str = r#"
import socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((addr, 9000))
s.settimeout(3)
print('ready', flush=True)
got = 0
try:
    while got < n:
        d, a = s.recvfrom(4096)
        if d.startswith(b'detour-fwd-') and a[0] == '198.18.1.1':
            got += 1
except socket.timeout:
    pass
print(got, flush=True)
"#;

const FWD_SENDER: &str = r#"
import socket, sys, time
n, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 40001))
for i in range(n):
    s.sendto(b'detour-fwd-%08d' % i + b'y' * 200, (dst, 9000))
    if i % 32 == 31:
        time.sleep(0.0005)
print(n)
"#;

/// Port 0 (p0, peer k0 = 198.18.1.1 in namespace b) and port 1 (p1, peer k1 = 198.18.1.2 in
/// namespace c) share one UMEM: frames received on p0 are re-addressed (MACs only) and sent on
/// p1 from the same UMEM frame, and arrive at k1's UDP socket.
#[test]
fn two_ports_forward_through_shared_umem() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Netns::new("f", 3);
    let (a, b, c) = (ns.name(0), ns.name(1), ns.name(2));
    veth(a, "p0", MAC_X0, b, "k0", MAC_K0, "198.18.1.1");
    veth(a, "p1", MAC_P1, c, "k1", MAC_K1, "198.18.1.2");
    sh(&format!(
        "ip -n {b} neigh replace 198.18.1.2 lladdr {MAC_X0} dev k0 nud permanent"
    ));
    sh(&format!(
        "ip netns exec {c} sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.k1.rp_filter=0"
    ));

    let n = 2000;
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Mode, String>>();
    let (k1, p1) = (mac(MAC_K1), mac(MAC_P1));
    let cfg = test_config();
    let (mode, got, totals, in_port) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            in_netns(a, || {
                let mut io = match QueueIo::open(&["p0", "p1"], 0, &cfg) {
                    Ok(io) => io,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return (Totals::default(), [0usize; 2]);
                    }
                };
                assert_eq!(io.ports(), 2);
                assert_ne!(io.rx_fd(0), io.rx_fd(1));
                let _ = ready_tx.send(Ok(io.mode()));
                let mut in_port = [0usize; 2];
                let t = pump(&mut io, &stop, Duration::from_secs(30), |buf, len, port| {
                    in_port[port] += 1;
                    if port != 0 || len < 42 || buf[12..14] != [0x08, 0x00] || buf[23] != 17 {
                        return Out::Drop;
                    }
                    buf[0..6].copy_from_slice(&k1);
                    buf[6..12].copy_from_slice(&p1);
                    Out::Tx { port: 1, len }
                });
                (t, in_port)
            })
        });
        let mode = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("worker did not start")
            .unwrap_or_else(|e| panic!("QueueIo::open: {e}"));
        let mut rx = Command::new("ip")
            .args(["netns", "exec", c, "python3", "-c", FWD_RECEIVER])
            .args([n.to_string(), "198.18.1.2".to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(rx.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let out = Command::new("ip")
            .args(["netns", "exec", b, "python3", "-c", FWD_SENDER])
            .args([
                n.to_string(),
                "198.18.1.1".to_string(),
                "198.18.1.2".to_string(),
            ])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: usize = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let _ = rx.wait();
        stop.store(true, Ordering::Relaxed);
        let (totals, in_port) = worker
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (mode, got, totals, in_port)
    });
    eprintln!(
        "forward: mode {mode}, {got}/{n} arrived at k1, {totals:?}, frames in per port {in_port:?}"
    );
    assert!(matches!(mode, Mode::DriverCopy | Mode::Skb));
    assert_eq!(got, n);
    assert!(in_port[0] >= n);
    assert!(totals.tx >= n && totals.tx_ring_full == 0, "{totals:?}");
}

/// Two QueueIos echo frames at each other over one veth (x0 in namespace a, k0 in b), seeded
/// with a burst from k0's kernel stack; reports frames echoed per second by each side.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn pingpong_rate() {
    require_root();
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("b");
    let secs: u64 = std::env::var("PINGPONG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: usize = std::env::var("PINGPONG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let cfg = test_config();
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Mode>();
    let side = |name: &'static str, nsn: &str, stop: &AtomicBool, ready: mpsc::Sender<Mode>| {
        let cfg = cfg.clone();
        in_netns(nsn, move || {
            let mut io = QueueIo::open(&[name], 0, &cfg).unwrap_or_else(|e| panic!("{e}"));
            let _ = ready.send(io.mode());
            let t0 = Instant::now();
            let t = pump(&mut io, stop, Duration::from_secs(secs + 20), udp_echo);
            (
                t,
                t0.elapsed(),
                io.xdp_statistics(0).ok().map(|s| {
                    (
                        s.rx_dropped(),
                        s.rx_ring_full(),
                        s.rx_fill_ring_empty_descs(),
                    )
                }),
            )
        })
    };
    std::thread::scope(|s| {
        let tx_a = ready_tx.clone();
        let a = s.spawn(|| side("x0", ns.name(0), &stop, tx_a));
        let b = s.spawn(|| side("k0", ns.name(1), &stop, ready_tx));
        let ma = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("side a");
        let mb = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("side b");
        sh(&format!(
            "ip netns exec {} python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'pingpong' * 8, ('198.18.0.2', 7)) for _ in range({seed})]\"",
            ns.name(1)
        ));
        // Measure the middle of the run.
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        let (ta, da, sa) = a.join().unwrap();
        let (tb, db, sb) = b.join().unwrap();
        let rate = |t: &Totals, d: Duration| t.rx as f64 / d.as_secs_f64();
        eprintln!(
            "pingpong ({ma} / {mb}, seed {seed}): x0 echoed {:.0} frames/s ({} in {:?}, {} batches, {:?}), k0 echoed {:.0} frames/s ({} in {:?}, {} batches, {:?}); xdp stats (rx_dropped, rx_ring_full, fill_empty) {sa:?} {sb:?}",
            rate(&ta, da), ta.rx, da, ta.batches, ta,
            rate(&tb, db), tb.rx, db, tb.batches, tb,
        );
        assert!(ta.rx > 0 && tb.rx > 0);
    });
}

/// An Ethernet/IPv4/UDP frame from x0 (198.18.0.2:40001) to k0 (198.18.0.1:9) carrying
/// `orig-<i>`, written into `buf`; its length.
fn udp_to_k0(buf: &mut [u8], i: usize) -> usize {
    let payload = format!("orig-{i:04}");
    let (ip_len, len) = (20 + 8 + payload.len(), 14 + 20 + 8 + payload.len());
    buf[..6].copy_from_slice(&mac(MAC_K0));
    buf[6..12].copy_from_slice(&mac(MAC_X0));
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut buf[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
    ]);
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut buf[34..42];
    udp[..4].copy_from_slice(&[0x9c, 0x41, 0, 9]);
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    buf[42..len].copy_from_slice(payload.as_bytes());
    len
}

const COUNT_RECEIVER: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
s.bind(("198.18.0.1", 9))
s.settimeout(0.5)
print("ready", flush=True)
n, end = 0, time.time() + 8
while time.time() < end:
    try:
        d = s.recv(100)
    except socket.timeout:
        if n:
            break
        continue
    if d.startswith(b"orig-"):
        n += 1
print(n, flush=True)
"#;

#[test]
fn originated_frames_reach_the_peer_and_every_frame_stays_accounted() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = echo_lab("or");
    let mut rx = Command::new("ip")
        .args(["netns", "exec", ns.name(1), "python3", "-c", COUNT_RECEIVER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(rx.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    const N: usize = 200;
    let sent = in_netns(ns.name(0), || {
        let mut io = QueueIo::open(&["x0"], 0, &test_config()).expect("open x0");
        let total = io.frames_accounted().1;
        // Refused: no Tx, a port that does not exist, a length under an Ethernet header.
        assert!(!io.originate(|_| Out::Drop));
        assert!(!io.originate(|buf| Out::Tx {
            port: 3,
            len: udp_to_k0(buf, 0)
        }));
        assert!(!io.originate(|_| Out::Tx { port: 0, len: 10 }));
        assert_eq!(io.frame_counts().free + io.frame_counts().fill, total);
        let mut sent = 0;
        for i in 0..N {
            sent += usize::from(io.originate(|buf| Out::Tx {
                port: 0,
                len: udp_to_k0(buf, i),
            }));
        }
        assert_eq!(io.frame_counts().tx, sent);
        io.flush();
        // Completions come back through the batches; every frame is somewhere, once.
        let t0 = Instant::now();
        while io.frame_counts().tx > 0 && t0.elapsed() < Duration::from_secs(5) {
            io.run_batch(|_, _, _| Out::Drop);
            io.wait(10);
        }
        let (accounted, all) = io.frames_accounted();
        assert_eq!((accounted, all, io.frame_counts().tx), (total, total, 0));
        sent
    });
    let got: usize = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let _ = rx.wait();
    assert_eq!((sent, got), (N, N), "originated, received by k0");
}
