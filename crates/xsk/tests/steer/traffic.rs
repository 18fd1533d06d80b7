//! Traffic and observation for the steering tests: ICMP echo from the peer namespace with a
//! hand-built checksum, and waiting (bounded) for the program's counters to reach a value.

use super::*;

pub(super) fn icmp_checksum(b: &[u8]) -> u16 {
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
pub(super) fn ping(dst: Ipv4Addr, count: u16, wait: Duration) -> u16 {
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
pub(super) fn wait_counters(
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
pub(super) fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

pub(super) fn counters(steer: &Steer) -> SteerCounters {
    steer.counters().expect("read counters")
}
