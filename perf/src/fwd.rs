//! `detour-perf fwd`: the no-op AF_XDP forwarder, the ceiling of detour's I/O path on this
//! machine. It is built from detour's own I/O, the same way: `detour_xsk::io::QueueIo` with one
//! UMEM shared by the sockets on both interfaces (a frame received on one is sent on the other
//! without a copy), `detour_xsk::steer::Steer` (detour's XDP steering program, attached to
//! both interfaces, the sockets in its XSKMAP; the owned address is the DIP, the real's
//! address:port steers replies), the same ring sizes and batch, and the same idle policy as
//! detour's worker: after an empty batch it sleeps in `QueueIo::wait` (poll) instead of
//! spinning against the kernel's receive work on its core. Per frame it only rewrites the
//! Ethernet addresses: port 0 -> port 1 and port 1 -> port 0.
//!
//! It stops on SIGTERM/SIGINT or after `--duration-secs`, and prints one JSON object: frames
//! received and sent, batches, the sockets' XDP_STATISTICS (summed over both ports) and the
//! batch service time percentiles (measured as detour's worker measures its own).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use detour_xsk::io::{IoConfig, Out, QueueIo};
use detour_xsk::steer::{kernel_addrs, Steer};
use hdrhistogram::Histogram;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// What to forward.
pub struct Fwd {
    /// Port 0 (client side) and port 1 (server side).
    pub ifaces: [String; 2],
    /// The next hop's MAC on each side: frames sent on port i get `next_mac[i]`.
    pub next_mac: [[u8; 6]; 2],
    /// Addresses steered to the sockets on arrival (the DIP).
    pub owned: Vec<Ipv4Addr>,
    /// Real servers whose replies are steered to the sockets.
    pub reals: Vec<SocketAddrV4>,
    pub batch: usize,
    pub queue: u32,
    pub duration: Duration,
}

fn install_stop_handlers() -> Result<(), String> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // stores to an atomic (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

fn iface_mac(name: &str) -> Result<[u8; 6], String> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .map_err(|e| format!("{name}: {e} (is it in this network namespace?)"))?;
    crate::parse_mac(&s)
}

/// Rewrite the Ethernet addresses of a frame leaving on a port.
#[inline]
fn rewrite(buf: &mut [u8], dst: &[u8; 6], src: &[u8; 6]) {
    buf[0..6].copy_from_slice(dst);
    buf[6..12].copy_from_slice(src);
}

pub fn run(f: &Fwd) -> Result<String, String> {
    install_stop_handlers()?;
    let own_mac = [iface_mac(&f.ifaces[0])?, iface_mac(&f.ifaces[1])?];
    let mut kernel: Vec<Ipv4Addr> = f.ifaces.iter().flat_map(|i| kernel_addrs(i)).collect();
    kernel.sort();
    kernel.dedup();

    // As `detour run`: the steering program first (driver mode), then the sockets.
    let mut steers = Vec::new();
    for i in &f.ifaces {
        let mut s = Steer::attach(i, None).map_err(|e| format!("XDP program on {i}: {e}"))?;
        s.set_addresses(&f.owned, &f.reals, &kernel)
            .map_err(|e| format!("XDP maps on {i}: {e}"))?;
        steers.push(s);
    }
    let names: Vec<&str> = f.ifaces.iter().map(String::as_str).collect();
    let cfg = IoConfig {
        batch: f.batch.clamp(1, 256),
        ..IoConfig::default()
    };
    let mut io = QueueIo::open(&names, f.queue, &cfg)
        .map_err(|e| format!("AF_XDP sockets on {}: {e}", names.join("+")))?;
    for (p, s) in steers.iter_mut().enumerate() {
        s.set_socket(f.queue, io.rx_fd(p))
            .map_err(|e| format!("XSKMAP of {}: {e}", f.ifaces[p]))?;
    }
    eprintln!(
        "detour-perf fwd: ready: {} <-> {} queue {} (AF_XDP {}, XDP {} mode), batch {}",
        f.ifaces[0],
        f.ifaces[1],
        f.queue,
        io.mode(),
        steers[0].mode(),
        cfg.batch
    );

    // Out of port p: to the next hop on the other side, from our MAC there.
    let dst = [f.next_mac[1], f.next_mac[0]];
    let src = [own_mac[1], own_mac[0]];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let (mut rx, mut tx, mut dropped, mut ring_full, mut batches) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    while !STOP.load(Ordering::Relaxed) && started.elapsed() < f.duration {
        let t = Instant::now();
        let st = io.run_batch(|buf, len, p| {
            if len < 14 {
                return Out::Drop;
            }
            rewrite(buf, &dst[p], &src[p]);
            Out::Tx { port: 1 - p, len }
        });
        if st.rx > 0 {
            batches += 1;
            let _ = hist.record(t.elapsed().as_nanos() as u64);
            rx += st.rx as u64;
            tx += st.tx as u64;
            dropped += st.dropped as u64;
            ring_full += st.tx_ring_full as u64;
        } else {
            // Idle: sleep in poll() as detour's worker does (its default --idle-spin-us 0).
            io.wait(10);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let sock = io.socket_stats();
    let q = |x: f64| hist.value_at_quantile(x);
    let out = format!(
        "{{\"rx\": {rx}, \"tx\": {tx}, \"dropped\": {dropped}, \"tx_ring_full\": {ring_full}, \
         \"socket_drops\": {}, \"xdp_statistics\": {}, \"kick_errors\": {}, \"batches\": {batches}, \"secs\": {secs:.3}, \
         \"mode\": \"{}\", \"batch_p50_ns\": {}, \"batch_p90_ns\": {}, \"batch_p99_ns\": {}, \
         \"batch_p999_ns\": {}, \"batch_max_ns\": {}}}",
        sock.frames_lost(),
        sock.to_json(),
        io.kick_errors(),
        io.mode(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        hist.max()
    );
    drop(io);
    drop(steers);
    Ok(out)
}
