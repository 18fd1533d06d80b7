//! One worker's AF_XDP sockets: one socket per interface ("port"), all bound to the same queue
//! id and sharing one UMEM, so a frame received on one port is rewritten in place and sent on
//! any port without a copy.
//!
//! # Frame accounting
//!
//! Every UMEM frame is, between two calls of [`QueueIo::run_batch`], in exactly one of these
//! places:
//!
//! - the user-space free pool (a `Vec` allocated once with room for every frame);
//! - a port's fill ring, or inside the kernel on its way to that port's rx ring
//!   (counted per port as "fill");
//! - a port's tx ring, or inside the kernel on its way to that port's completion ring
//!   (counted per port as "tx in flight").
//!
//! During a batch a received frame belongs to the batch until it is either put on a tx ring or
//! returned to the pool. Completions and dropped frames go back to the pool, and the fill rings
//! are topped up from the pool. [`QueueIo::frame_counts`] exposes the counts so tests can check
//! that `free + fill + tx == total` after every batch.
//!
//! # Modes
//!
//! [`QueueIo::open`] tries zero-copy, then driver-mode copy, then SKB-mode copy (unless a mode
//! is forced). The socket's bind mode is zero-copy or copy; "driver" versus "skb" is the mode of
//! the XDP program that feeds the sockets, which is not loaded here (see [`crate::steer`]). So
//! `open` probes whether a driver-mode (native) XDP program can be attached to each interface
//! by attaching a two-instruction `XDP_PASS` program through a BPF link and closing it at once.
//! If a native program is already attached (the steering program, attached first) the probe
//! reads that as native mode being available; if a generic (skb) one is, as native mode being
//! refused. The steering program should be attached in driver mode unless [`QueueIo::mode`] is
//! [`Mode::Skb`].
//!
//! # Platform notes (veth, see DESIGN.md section 3)
//!
//! Zero-copy is refused on veth (`EOPNOTSUPP`); driver mode is refused when the peer's MTU is
//! above 3506; re-binding a queue within about a second of the previous socket closing fails
//! with `EBUSY`, which `open` retries with backoff. In copy mode the kernel transmits only from
//! `sendto()`/`poll()`, at most 32 frames per call, and the tx ring always asks for a wakeup.

use std::error::Error;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::busy::{self, BusyPoll};
use crate::stats::SocketStats;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

mod batch;
mod open;
mod originate;
mod probe;
mod wake;

/// The AF_XDP mode taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sockets bound with `XDP_ZEROCOPY` (the driver DMAs into the UMEM); needs a native XDP
    /// program.
    ZeroCopy,
    /// Sockets bound with `XDP_COPY`, fed by a native (driver-mode) XDP program.
    DriverCopy,
    /// Sockets bound with `XDP_COPY`, fed by a generic (skb-mode) XDP program.
    Skb,
}

impl Mode {
    /// Whether this mode needs the XDP program attached in driver (native) mode.
    pub fn native_xdp(self) -> bool {
        !matches!(self, Mode::Skb)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::ZeroCopy => "zero-copy",
            Mode::DriverCopy => "driver copy",
            Mode::Skb => "skb",
        })
    }
}

/// Sizes and mode of one worker's AF_XDP sockets.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// UMEM frame size: 2048 or 4096 (a power of two no larger than a page). The kernel puts
    /// 256 bytes of XDP headroom in front of each frame, so a frame buffer holds
    /// `frame_size - 256` bytes.
    pub frame_size: u32,
    /// UMEM frames of this worker (shared by all its ports).
    pub frame_count: u32,
    /// Size of each rx, tx, fill and completion ring (a power of two).
    pub ring_size: u32,
    /// Frames received per port per [`QueueIo::run_batch`].
    pub batch: usize,
    /// `None`: try zero-copy, then driver copy, then skb. `Some(m)`: only `m`.
    pub force_mode: Option<Mode>,
    /// Let libxdp load and attach its default program (redirect everything on the queue to the
    /// socket) instead of inhibiting it. For tests and examples only: detour loads its own
    /// program and puts the sockets in its XSKMAP.
    pub load_default_program: bool,
    /// Preferred busy polling (opt-in, see [`crate::busy`]): set on every socket if each one's
    /// queue has a NAPI id after `bind()`; refused otherwise (logged; [`QueueIo::busy_poll`]
    /// then says why), and the sockets keep sleeping in `poll()`.
    pub busy_poll: Option<BusyPoll>,
    /// Where the port's notes go (the mode taken, modes refused, busy retries, busy
    /// polling): the caller's log; `None`: stderr, prefixed `detour-xsk:`.
    pub note: Option<fn(std::fmt::Arguments<'_>)>,
}

/// Hand a note to `cfg.note`, or to stderr.
fn note(cfg: &IoConfig, args: std::fmt::Arguments<'_>) {
    match cfg.note {
        Some(f) => f(args),
        None => eprintln!("detour-xsk: {args}"),
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            frame_size: 2048,
            frame_count: 8192,
            ring_size: 2048,
            batch: 64,
            force_mode: None,
            note: None,
            load_default_program: false,
            busy_poll: None,
        }
    }
}

/// What failed, and the errno when there is one.
#[derive(Debug)]
pub struct IoError {
    what: String,
    errno: Option<i32>,
}

impl IoError {
    fn new(what: impl Into<String>, errno: Option<i32>) -> Self {
        IoError {
            what: what.into(),
            errno,
        }
    }

    /// The errno of the failed call, if the failure had one.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// What failed, without the errno.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(e) => write!(f, "{}: {}", self.what, io::Error::from_raw_os_error(e)),
            None => f.write_str(&self.what),
        }
    }
}

impl Error for IoError {}

/// What the caller decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// Send `frame_buf[..len]` on port `port`.
    Tx { port: usize, len: usize },
    /// Recycle the frame.
    Drop,
    /// Keep the frame for the batch's second pass ([`QueueIo::run_batch_in_two`]).
    Defer,
}

/// Which call of [`QueueIo::run_batch_in_two`] a frame is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Every frame of the batch, in the order received.
    First,
    /// The frames the first pass deferred; `full`: some port gave a whole batch.
    Second { full: bool },
}

/// What one [`QueueIo::run_batch`] did. `rx == tx + dropped + tx_ring_full`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchStats {
    /// Frames received (all ports).
    pub rx: usize,
    /// Frames put on a tx ring.
    pub tx: usize,
    /// Frames the caller dropped, or sent to a port that does not exist or with a length
    /// outside `14..=capacity`.
    pub dropped: usize,
    /// Frames the caller wanted to send but their port's tx ring was full (dropped too).
    pub tx_ring_full: usize,
}

/// Where the UMEM frames are (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCounts {
    /// In the user-space free pool.
    pub free: usize,
    /// Given to the kernel through the fill rings, not received yet.
    pub fill: usize,
    /// Put on the tx rings, not completed yet.
    pub tx: usize,
    /// All frames of the UMEM.
    pub total: usize,
}

const ETH_HLEN: usize = 14;
/// The kernel's headroom in front of every frame (XDP_PACKET_HEADROOM).
const XDP_HEADROOM: u32 = 256;
/// The most frames a copy-mode `sendto()` transmits (the kernel's TX_BATCH_SIZE).
const COPY_TX_PER_KICK: usize = 32;
/// The most `sendto()` kicks per port per batch.
const MAX_KICKS: usize = 16;
/// Total time `open` keeps retrying `EBUSY`.
const EBUSY_BUDGET: Duration = Duration::from_millis(3000);
const EBUSY_FIRST_DELAY: Duration = Duration::from_millis(50);

struct Port {
    name: String,
    // The queues each hold a handle on the socket (and the UMEM); the socket is deleted when
    // the last of them is dropped.
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    fd: RawFd,
    /// Frames given to the kernel through the fill ring and not yet received.
    in_fill: usize,
    /// Frames put on the tx ring and not yet completed.
    in_tx: usize,
}

/// One worker's AF_XDP sockets: one per interface (port 0, port 1; or only port 0 for a
/// one-armed setup), all on the same queue id, sharing one UMEM.
pub struct QueueIo {
    ports: Vec<Port>,
    umem: Umem,
    mode: Mode,
    queue: u32,
    frame_size: u32,
    batch: usize,
    ring_size: usize,
    frame_count: usize,
    /// Frames the fill ring of each port is topped up to.
    fill_target: usize,
    /// Free frames; capacity `frame_count`, so pushing never reallocates.
    pool: Vec<FrameDesc>,
    /// Receive scratch, `batch` long.
    rx_scratch: Vec<FrameDesc>,
    /// Completion scratch, `ring_size` long.
    comp_scratch: Vec<FrameDesc>,
    /// Frames staged for each port's tx ring in the current batch; capacity
    /// `batch * ports` each (the most one batch can receive).
    tx_stage: Vec<Vec<FrameDesc>>,
    /// Free tx ring slots of each port at the start of the current batch.
    tx_room: Vec<usize>,
    /// Frames of the current batch left for its second pass (port, length, frame); capacity
    /// `batch * ports`, so pushing never reallocates.
    deferred: Vec<(usize, usize, FrameDesc)>,
    pollfds: Vec<libc::pollfd>,
    kick_errors: u64,
    /// Busy polling in force, or why it was refused (`None`: not asked for).
    busy: Option<Result<BusyPoll, String>>,
}

impl fmt::Debug for QueueIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueIo")
            .field(
                "ports",
                &self.ports.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("frames", &self.frame_counts())
            .finish()
    }
}

fn errno_of(e: &(dyn Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(ioe) = err.downcast_ref::<io::Error>() {
            return ioe.raw_os_error();
        }
        cur = err.source();
    }
    None
}

/// An xsk-rs error: its errno if it has one, else its own text.
fn lib_error(what: String, e: &(dyn Error + 'static)) -> IoError {
    match errno_of(e) {
        Some(errno) => IoError::new(what, Some(errno)),
        None => IoError::new(format!("{what}: {e}"), None),
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl QueueIo {
    /// The mode taken.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Busy polling: `None` if not asked for, `Some(Ok(p))` in force, `Some(Err(why))` refused
    /// (the sockets sleep in `poll()` as without it).
    pub fn busy_poll(&self) -> Option<&Result<BusyPoll, String>> {
        self.busy.as_ref()
    }

    fn log_busy_poll(&self, label: &str, cfg: &IoConfig) {
        match &self.busy {
            Some(Ok(b)) => note(
                cfg,
                format_args!(
                    "{label}: preferred busy polling on ({} us, budget {})",
                    b.usecs, b.budget
                ),
            ),
            Some(Err(why)) => note(
                cfg,
                format_args!("{label}: busy polling refused: {why}; sleeping in poll() instead"),
            ),
            None => {}
        }
    }

    fn busy_polling(&self) -> bool {
        matches!(self.busy, Some(Ok(_)))
    }

    /// The queue id the sockets are bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The size of the frame buffer handed to [`QueueIo::run_batch`]'s closure: the frame
    /// size minus the kernel's 256 bytes of XDP headroom.
    pub fn frame_capacity(&self) -> usize {
        (self.frame_size - XDP_HEADROOM) as usize
    }

    /// The number of ports (interfaces).
    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// The rx socket fd of port `port`, to put into the XDP program's XSKMAP at index
    /// [`QueueIo::queue`]. Panics if `port` is out of range.
    pub fn rx_fd(&self, port: usize) -> RawFd {
        self.ports[port].fd
    }

    /// `sendto()` wakeups that failed with something other than `EAGAIN`/`EBUSY`/`ENOBUFS`.
    pub fn kick_errors(&self) -> u64 {
        self.kick_errors
    }

    /// The kernel's statistics of port `port`'s socket (drops for a full rx ring or an empty
    /// fill ring, invalid descriptors).
    pub fn xdp_statistics(&self, port: usize) -> io::Result<xsk_rs::socket::XdpStatistics> {
        self.ports[port].rx.fd().xdp_statistics()
    }

    /// The kernel's statistics of every port's socket, summed (one `getsockopt` per port: call
    /// it between batches, not per frame). A port whose read fails counts as zero.
    pub fn socket_stats(&self) -> SocketStats {
        (0..self.ports.len())
            .filter_map(|p| self.xdp_statistics(p).ok())
            .map(|s| SocketStats::from_lib(&s))
            .fold(SocketStats::default(), |a, b| a + b)
    }

    /// Where the frames are (valid between batches).
    pub fn frame_counts(&self) -> FrameCounts {
        FrameCounts {
            free: self.pool.len(),
            fill: self.ports.iter().map(|p| p.in_fill).sum(),
            tx: self.ports.iter().map(|p| p.in_tx).sum(),
            total: self.frame_count,
        }
    }

    /// `(free + fill + tx in flight, total)`: the two are equal unless a frame was lost or
    /// counted twice.
    pub fn frames_accounted(&self) -> (usize, usize) {
        let c = self.frame_counts();
        (c.free + c.fill + c.tx, c.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_display() {
        assert_eq!(Mode::ZeroCopy.to_string(), "zero-copy");
        assert_eq!(Mode::DriverCopy.to_string(), "driver copy");
        assert_eq!(Mode::Skb.to_string(), "skb");
    }

    #[test]
    fn error_display_has_errno() {
        let e = IoError::new(
            "AF_XDP socket on x queue 0 (zero-copy)",
            Some(libc::EOPNOTSUPP),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("AF_XDP socket on x queue 0 (zero-copy): "),
            "{s}"
        );
        assert!(s.contains("os error 95"), "{s}");
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn queue_io_is_send() {
        assert_send::<QueueIo>();
    }
}
