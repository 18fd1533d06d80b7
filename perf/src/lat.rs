//! `detour-perf lat`: forwarding latency from the generator's payload timestamps, sampled at
//! the sink.
//!
//! With `gen --stamp`, every `flows` frame carries, in place of its TCP urgent pointer and
//! payload, the marker [`MARK`] and the low 48 bits of CLOCK_MONOTONIC in ns
//! (`bpf_ktime_get_ns()`) taken by the generator's XDP program as it sends the frame (the TCP
//! checksum is kept valid). This sampler is an AF_PACKET socket on the sink's interface (the
//! nftables counter sink stays in place: packet taps run before netdev ingress): a classic BPF
//! filter keeps only stamped frames and, of those, one in `--sample` at random (`ld rand`), so
//! the frames not sampled cost the tap a filter run only. The frame's arrival time is the
//! kernel's software receive timestamp (SO_TIMESTAMPNS: CLOCK_REALTIME, taken when the frame is
//! queued to the sink's interface, i.e. as the router transmits it), converted to
//! CLOCK_MONOTONIC; latency = arrival - stamp, into an hdrhistogram (ns). It stops on
//! SIGTERM/SIGINT or after `--duration-secs` and prints one JSON object.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The TCP urgent pointer of a stamped frame (URG is not set, so it means nothing to TCP).
pub const MARK: u16 = 0x5453;

/// Offsets in a stamped frame (Ethernet + 20-byte IPv4 + 20-byte TCP): the TCP checksum, the
/// urgent pointer (marker), the 48-bit timestamp.
pub const CSUM_OFF: usize = 14 + 20 + 16;
pub const STAMP_OFF: usize = 14 + 20 + 18;
const TS_OFF: usize = STAMP_OFF + 2;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Classic BPF: IPv4, IHL 5, TCP, marker in the urgent pointer, then one in `sample` (a power
/// of two) at random; accept 96 bytes.
fn filter(sample: u32) -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // SKF_AD_OFF + SKF_AD_RANDOM
    const RANDOM: u32 = (-0x1000i32 + 56) as u32;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // Each test jumps to the last instruction (drop) when it fails.
    vec![
        ins(LD_H_ABS, 0, 0, 12),                  // 0: ethertype
        ins(JEQ, 0, 10, 0x0800),                  // 1
        ins(LD_B_ABS, 0, 0, 14),                  // 2: version + IHL
        ins(JEQ, 0, 8, 0x45),                     // 3
        ins(LD_B_ABS, 0, 0, 23),                  // 4: protocol
        ins(JEQ, 0, 6, 6),                        // 5
        ins(LD_H_ABS, 0, 0, STAMP_OFF as u32),    // 6: urgent pointer
        ins(JEQ, 0, 4, u32::from(MARK)),          // 7
        ins(LD_W_ABS, 0, 0, RANDOM),              // 8
        ins(AND, 0, 0, sample.saturating_sub(1)), // 9
        ins(JEQ, 0, 1, 0),                        // 10 -> 11 accept, 12 drop
        ins(RET, 0, 0, 96),                       // 11
        ins(RET, 0, 0, 0),                        // 12
    ]
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC (ns), read between two monotonic reads.
fn real_minus_mono() -> i128 {
    let a = clock_ns(libc::CLOCK_MONOTONIC);
    let r = clock_ns(libc::CLOCK_REALTIME);
    let b = clock_ns(libc::CLOCK_MONOTONIC);
    r - (a + b) / 2
}

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by socket() and is closed only here.
        unsafe { libc::close(self.0) };
    }
}

fn setsockopt<T>(
    fd: &Fd,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
    what: &str,
) -> Result<(), String> {
    // SAFETY: `v` points at a live value of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.0,
            level,
            name,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err(what));
    }
    Ok(())
}

/// Sample the latency of stamped frames arriving on `iface` (this network namespace).
pub fn run(iface: &str, sample: u32, duration: Duration) -> Result<String, String> {
    if !sample.is_power_of_two() {
        return Err("--sample must be a power of two".into());
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // stores to an atomic (async-signal-safe). No SA_RESTART: poll() returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(os_err("sigaction"));
            }
        }
    }
    let ifindex = crate::ifindex(iface)?;
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket() call.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if raw < 0 {
        return Err(os_err("AF_PACKET socket"));
    }
    let fd = Fd(raw);
    // The filter before the bind, so nothing unfiltered is queued.
    let prog = filter(sample);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        "SO_ATTACH_FILTER",
    )?;
    let one: libc::c_int = 1;
    setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        &one,
        "SO_TIMESTAMPNS",
    )?;
    // PACKET_IGNORE_OUTGOING (23): frames the sink itself sends are not ours.
    let _ = setsockopt(&fd, libc::SOL_PACKET, 23, &one, "PACKET_IGNORE_OUTGOING");
    let rcvbuf: libc::c_int = 8 << 20;
    let _ = setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &rcvbuf,
        "SO_RCVBUFFORCE",
    );
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set below make it a bind address.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd.0,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err("bind AF_PACKET"));
    }
    // Enabling receive timestamps flips a static key from a work item: let it settle.
    std::thread::sleep(Duration::from_millis(100));
    let offset0 = real_minus_mono();
    eprintln!("detour-perf lat: ready: sampling 1 in {sample} stamped frames on {iface}");

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let (mut negative, mut unstamped_time, mut seen) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 128];
    let mut cbuf = [0u64; 16];
    let started = Instant::now();
    let mut offset = offset0;
    let mut last_offset = Instant::now();
    while !STOP.load(Ordering::Relaxed) && started.elapsed() < duration {
        let mut pfd = libc::pollfd {
            fd: fd.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        if last_offset.elapsed() >= Duration::from_secs(1) {
            offset = real_minus_mono();
            last_offset = Instant::now();
        }
        loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: `msg` describes live buffers of the sizes given.
            let n = unsafe { libc::recvmsg(fd.0, &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                break;
            }
            let n = n as usize;
            if n < TS_OFF + 6 {
                continue;
            }
            seen += 1;
            let mut rx_real: Option<i128> = None;
            // SAFETY: CMSG_* walk the control buffer the kernel just filled (msg_controllen
            // bytes); a SCM_TIMESTAMPNS message carries one struct timespec.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET
                        && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
                    {
                        let ts: libc::timespec =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                        rx_real =
                            Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let Some(rx_real) = rx_real else {
                unstamped_time += 1;
                continue;
            };
            let rx_mono = rx_real - offset;
            let mut s = [0u8; 8];
            s[2..].copy_from_slice(&buf[TS_OFF..TS_OFF + 6]);
            let stamp48 = i128::from(u64::from_be_bytes(s));
            // The stamp is the low 48 bits of the sender's clock: rebuild it next to rx_mono.
            let m = 1i128 << 48;
            let mut stamp = (rx_mono & !(m - 1)) | stamp48;
            if stamp > rx_mono + m / 2 {
                stamp -= m;
            }
            let lat = rx_mono - stamp;
            if lat < 0 {
                negative += 1;
                continue;
            }
            let _ = hist.record(lat.min(60_000_000_000) as u64);
        }
    }
    let drift = real_minus_mono() - offset0;
    // SAFETY: tpacket_stats is plain data; getsockopt writes at most `len` bytes into it.
    let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are valid out-pointers of the sizes given.
    unsafe {
        libc::getsockopt(
            fd.0,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut stats as *mut libc::tpacket_stats as *mut libc::c_void,
            &mut len,
        )
    };
    let q = |x: f64| {
        if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(x)
        }
    };
    // A compact log2 histogram (ns buckets 2^k..2^(k+1)) for plots.
    let mut log2 = Vec::new();
    if !hist.is_empty() {
        let mut lo = 1u64;
        while lo <= hist.max() {
            let hi = lo.saturating_mul(2);
            let n = hist.count_between(lo, hi - 1);
            if n > 0 {
                log2.push(format!("[{lo}, {n}]"));
            }
            lo = hi;
        }
    }
    Ok(format!(
        "{{\"samples\": {}, \"seen\": {seen}, \"no_timestamp\": {unstamped_time}, \
         \"negative\": {negative}, \"socket_drops\": {}, \"sample_one_in\": {sample}, \
         \"clock_drift_ns\": {drift}, \"min_ns\": {}, \"p50_ns\": {}, \"p90_ns\": {}, \
         \"p99_ns\": {}, \"p999_ns\": {}, \"max_ns\": {}, \"mean_ns\": {:.0}, \"log2\": [{}]}}",
        hist.len(),
        stats.tp_drops,
        if hist.is_empty() { 0 } else { hist.min() },
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        hist.max(),
        hist.mean(),
        log2.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_land_on_drop() {
        let f = filter(16);
        let last = f.len() - 1;
        for (i, ins) in f.iter().enumerate() {
            if ins.code == (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16 {
                assert_eq!(i + 1 + ins.jf as usize, last, "instruction {i}");
            }
        }
        assert_eq!(f[last].k, 0);
        assert_eq!(f[9].k, 15);
    }
}
