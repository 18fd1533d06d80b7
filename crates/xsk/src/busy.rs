//! Preferred busy polling (opt-in): the worker, not an interrupt, runs the NAPI of its queue.
//!
//! With `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` (µs) and `SO_BUSY_POLL_BUDGET` set on an AF_XDP
//! socket, each `recvfrom()`/`sendto()` on it runs the NAPI of the socket's queue in the
//! caller's context, and (with the operator's `napi_defer_hard_irqs` and `gro_flush_timeout` on
//! the interface) the device's interrupts stay masked while the application keeps polling. It
//! only works if the socket knows its queue's NAPI: since Linux 6.13 an AF_XDP socket takes the
//! NAPI id of its queue at `bind()`, which a driver provides by registering a NAPI per queue
//! (`netif_queue_set_napi()`). veth registers none, so there `SO_INCOMING_NAPI_ID` reads 0
//! after `bind()` and the kernel would never busy-poll: [`check`] refuses the mode then, and
//! the caller keeps sleeping in `poll()`.

use std::io;
use std::os::fd::RawFd;

/// `SOL_SOCKET` options (include/uapi/asm-generic/socket.h; the same on x86-64 and arm64).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_INCOMING_NAPI_ID: libc::c_int = 56;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Busy-polling parameters of a worker's sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: how long one call may poll the NAPI, in µs.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: frames per NAPI poll.
    pub budget: u16,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            usecs: 20,
            budget: 64,
        }
    }
}

/// The NAPI id the kernel gave the socket (0: none).
pub(crate) fn napi_id(fd: RawFd) -> io::Result<u32> {
    let mut v: libc::c_uint = 0;
    let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, a live c_uint, and updates `len`;
    // `fd` is a socket the caller owns.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_INCOMING_NAPI_ID,
            &mut v as *mut libc::c_uint as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

fn set(fd: RawFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `value`, which lives across the
    // call; `fd` is a socket the caller owns.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether busy polling can work on a bound socket: `Err` with the reason when it cannot.
pub(crate) fn check(fd: RawFd, what: &str) -> Result<u32, String> {
    match napi_id(fd) {
        Ok(0) => Err(format!(
            "{what}: SO_INCOMING_NAPI_ID is 0 after bind(): its driver registers no NAPI for its \
             queues (veth does not), so the kernel would never busy-poll it"
        )),
        Ok(id) => Ok(id),
        Err(e) => Err(format!("{what}: SO_INCOMING_NAPI_ID: {e}")),
    }
}

/// Set the three options on a bound socket.
pub(crate) fn enable(fd: RawFd, bp: BusyPoll) -> io::Result<()> {
    set(fd, SO_PREFER_BUSY_POLL, 1)?;
    set(
        fd,
        SO_BUSY_POLL,
        bp.usecs.min(i32::MAX as u32) as libc::c_int,
    )?;
    set(fd, SO_BUSY_POLL_BUDGET, libc::c_int::from(bp.budget))
}

/// Run the socket's NAPI once from this thread: a zero-length, non-blocking `recvfrom`, which
/// an AF_XDP socket with busy polling on answers by busy-polling its queue.
pub(crate) fn drive(fd: RawFd) {
    // SAFETY: a zero-length, non-blocking `recvfrom` with null buffer and address on a socket
    // fd the caller owns: the kernel writes no user memory.
    unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}
