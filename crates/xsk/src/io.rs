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
use std::ffi::CString;
use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::busy::{self, BusyPoll};
use crate::stats::SocketStats;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

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
    /// Bind sockets on `ifaces[i]` queue `queue`, all sharing one UMEM. Tries zero-copy, driver
    /// copy and skb in that order (only `cfg.force_mode` if set), logging to stderr which one
    /// was taken and why the others were refused; retries `EBUSY` (a socket on the queue closed
    /// less than about a second ago) with backoff from 50 ms, doubling, for up to 3 s in all.
    pub fn open(ifaces: &[&str], queue: u32, cfg: &IoConfig) -> Result<QueueIo, IoError> {
        validate(ifaces, cfg)?;
        let label = format!("{} queue {queue}", ifaces.join("+"));
        let deadline = Instant::now() + EBUSY_BUDGET;

        if let Some(mode) = cfg.force_mode {
            let io = open_mode(ifaces, queue, cfg, mode, deadline).map_err(|e| {
                note(
                    cfg,
                    format_args!("{label}: {mode} mode (forced) refused: {e}"),
                );
                e
            })?;
            note(cfg, format_args!("{label}: AF_XDP in {mode} mode (forced)"));
            io.log_busy_poll(&label, cfg);
            return Ok(io);
        }

        // Can a native XDP program run on every interface?
        let mut native: Result<(), String> = Ok(());
        for name in ifaces {
            match probe_native_xdp(name) {
                NativeProbe::Attachable | NativeProbe::NativeInUse => {}
                NativeProbe::GenericInUse => {
                    native = Err(format!("{name} has a generic (skb) XDP program attached"));
                    break;
                }
                NativeProbe::Refused(errno) => {
                    native = Err(format!(
                        "{name} refuses a driver-mode XDP program: {}",
                        io::Error::from_raw_os_error(errno)
                    ));
                    break;
                }
            }
        }

        let mut refusals = Vec::new();
        let mut last_err = None;
        for mode in [Mode::ZeroCopy, Mode::DriverCopy, Mode::Skb] {
            if mode.native_xdp() {
                if let Err(why) = &native {
                    note(cfg, format_args!("{label}: {mode} mode refused: {why}"));
                    refusals.push(format!("{mode}: {why}"));
                    continue;
                }
            }
            match open_mode(ifaces, queue, cfg, mode, deadline) {
                Ok(io) => {
                    note(cfg, format_args!("{label}: AF_XDP in {mode} mode"));
                    io.log_busy_poll(&label, cfg);
                    return Ok(io);
                }
                Err(e) if e.errno == Some(libc::EBUSY) => {
                    // Still bound by another socket after the retries: no other mode will do.
                    return Err(IoError::new(
                        format!(
                            "{label} still bound by another AF_XDP socket after {} ms",
                            EBUSY_BUDGET.as_millis()
                        ),
                        Some(libc::EBUSY),
                    ));
                }
                Err(e) => {
                    note(cfg, format_args!("{label}: {mode} mode refused: {e}"));
                    refusals.push(format!("{mode}: {e}"));
                    last_err = e.errno;
                }
            }
        }
        Err(IoError::new(
            format!(
                "no AF_XDP mode could be bound on {label} ({})",
                refusals.join("; ")
            ),
            last_err,
        ))
    }

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

    /// Receive up to `batch` frames from each port; for each call `f(frame_buf, len, port)`
    /// where `frame_buf` is the whole frame buffer (`frame_size - 256` bytes) and the frame is
    /// `frame_buf[..len]`; `f` returns what to do with it. Frames to send are put on the tx
    /// ring of their port without copying (the UMEM is shared); dropped frames are recycled.
    /// Then: kick TX where the ring asks for a wakeup (`sendto` with `MSG_DONTWAIT`; in copy
    /// mode once per 32 queued frames, bounded), reap completions into the free pool, and
    /// refill every fill ring from the pool. No allocation, no syscall but those wakeups (and,
    /// with busy polling in force, one `recvfrom` per port first, which runs its queue's NAPI).
    /// A frame for a full tx ring is dropped and counted in `tx_ring_full`.
    pub fn run_batch(&mut self, mut f: impl FnMut(&mut [u8], usize, usize) -> Out) -> BatchStats {
        let mut st = BatchStats::default();
        let nports = self.ports.len();
        if self.busy_polling() {
            // Run each queue's NAPI here (one syscall per port per batch).
            for port in &self.ports {
                busy::drive(port.fd);
            }
        }
        self.reap_completions();

        let want = (self.batch * nports) as u32;
        for (room, port) in self.tx_room.iter_mut().zip(self.ports.iter_mut()) {
            *room = port.tx.nb_free(want) as usize;
        }

        let Self {
            ports,
            umem,
            pool,
            rx_scratch,
            tx_stage,
            tx_room,
            ..
        } = self;
        for (p, port) in ports.iter_mut().enumerate() {
            // SAFETY: the descriptors are overwritten with frames of this socket's UMEM
            // (`umem`), which the kernel hands back only after we gave them to its fill ring.
            let n = unsafe { port.rx.consume(rx_scratch) };
            debug_assert!(n <= port.in_fill);
            port.in_fill -= n;
            st.rx += n;
            for desc in &mut rx_scratch[..n] {
                let len = desc.lengths().data();
                let target = {
                    // SAFETY: `desc` was just consumed from the rx ring of a socket on `umem`,
                    // so it describes a frame of `umem` that the kernel has finished with and
                    // that sits in no ring: this is the only reference to its bytes until the
                    // descriptor is put on a tx ring or back in the pool below.
                    let mut data = unsafe { umem.data_mut(desc) };
                    let cap = {
                        let mut c = data.cursor();
                        let cap = c.buf_len();
                        c.set_pos(cap);
                        cap
                    };
                    match f(data.contents_mut(), len.min(cap), p) {
                        Out::Tx { port: q, len: l }
                            if q < nports && (ETH_HLEN..=cap).contains(&l) =>
                        {
                            data.cursor().set_pos(l);
                            Some(q)
                        }
                        _ => None,
                    }
                };
                match target {
                    Some(q) if tx_stage[q].len() < tx_room[q] => {
                        desc.set_options(0);
                        tx_stage[q].push(*desc);
                    }
                    Some(_) => {
                        st.tx_ring_full += 1;
                        pool.push(*desc);
                    }
                    None => {
                        st.dropped += 1;
                        pool.push(*desc);
                    }
                }
            }
        }

        for (port, stage) in ports.iter_mut().zip(tx_stage.iter_mut()) {
            if stage.is_empty() {
                continue;
            }
            // SAFETY: every staged descriptor is a frame of `umem` received in this batch and
            // held nowhere else (it left the rx ring and was not put in the pool).
            let sent = unsafe { port.tx.produce(stage) };
            if sent == stage.len() {
                port.in_tx += sent;
                st.tx += sent;
            } else {
                // Not expected: the ring had room for all of them at the start of the batch and
                // only we produce on it. `produce` is all-or-nothing.
                st.tx_ring_full += stage.len();
                pool.extend_from_slice(stage);
            }
            stage.clear();
        }

        self.kick_all();
        self.reap_completions();
        self.refill(st.rx == 0);
        debug_assert!(self.pool.len() <= self.frame_count);
        st
    }

    /// Block in `poll()` on the ports' sockets for at most `timeout_ms` (POLLIN; POLLOUT too
    /// on a port whose tx ring is more than half full, so the wait ends when it drains). Call it
    /// when a batch came back empty, so the worker sleeps instead of spinning against the
    /// kernel's receive work on the same core. Frames still queued for transmit are kicked
    /// first (in copy mode `poll()` itself also transmits); while completions are outstanding
    /// and the pool is short of a batch the wait is capped at 1 ms. Returns whether a socket
    /// has frames to receive (or completions to reap); no syscall if it already has. With busy
    /// polling in force it never sleeps: it kicks pending frames and returns at once.
    pub fn wait(&mut self, timeout_ms: i32) -> bool {
        if self.has_work() {
            return true;
        }
        if self.busy_polling() {
            // No sleep: the next batch busy-polls the queues again.
            self.kick_all();
            return self.has_work();
        }
        let pending_tx = self.kick_all();
        let mut timeout = timeout_ms;
        let in_tx: usize = self.ports.iter().map(|p| p.in_tx).sum();
        if pending_tx || (in_tx > 0 && self.pool.len() < self.batch) {
            timeout = timeout.clamp(0, 1);
        }
        let half = self.ring_size / 2;
        for (pfd, port) in self.pollfds.iter_mut().zip(self.ports.iter_mut()) {
            let queued = self.ring_size - port.tx.nb_free_exact() as usize;
            pfd.events = libc::POLLIN;
            if queued > half {
                pfd.events |= libc::POLLOUT;
            }
            pfd.revents = 0;
        }
        // SAFETY: `pollfds` is a live, initialised array of `pollfds.len()` entries, each with
        // the fd of a socket this QueueIo owns and keeps open.
        let r = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout,
            )
        };
        if r > 0
            && self
                .pollfds
                .iter()
                .any(|p| p.revents & (libc::POLLIN | libc::POLLOUT) != 0)
        {
            return true;
        }
        self.has_work()
    }

    /// Frames waiting on an rx ring or completions on a completion ring (no syscall).
    fn has_work(&mut self) -> bool {
        self.ports
            .iter_mut()
            .any(|p| p.rx.nb_avail(1) > 0 || p.cq.nb_avail(1) > 0)
    }

    /// Kick every port whose tx ring holds frames the kernel has not taken and asks for a
    /// wakeup. In copy mode the kernel transmits at most 32 frames per `sendto()` and answers
    /// `EAGAIN` when more remain, so a port is kicked again while that makes progress (at most
    /// [`MAX_KICKS`] times). Returns whether frames remain queued.
    fn kick_all(&mut self) -> bool {
        let mut pending_left = false;
        let ring = self.ring_size;
        for port in self.ports.iter_mut() {
            let mut queued = ring - port.tx.nb_free_exact() as usize;
            let mut kicks = 0;
            while queued > 0 && kicks < MAX_KICKS && port.tx.needs_wakeup() {
                kicks += 1;
                // SAFETY: a zero-length `sendto` with null buffer and address on a socket fd
                // this QueueIo owns; the kernel reads nothing from user memory.
                let r = unsafe {
                    libc::sendto(
                        port.fd,
                        std::ptr::null(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null(),
                        0,
                    )
                };
                if r >= 0 {
                    break;
                }
                let e = last_errno();
                if e != libc::EAGAIN {
                    if !matches!(e, libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) {
                        self.kick_errors += 1;
                    }
                    break;
                }
                let now = ring - port.tx.nb_free_exact() as usize;
                if now >= queued || queued <= COPY_TX_PER_KICK {
                    // No progress (the completion ring may be full), or the kernel gave up
                    // for another reason: try again next batch.
                    queued = now;
                    break;
                }
                queued = now;
            }
            if kicks > 0 {
                queued = ring - port.tx.nb_free_exact() as usize;
            }
            if queued > 0 {
                pending_left = true;
            }
        }
        pending_left
    }

    /// Move completed tx frames back into the pool.
    fn reap_completions(&mut self) {
        let Self {
            ports,
            pool,
            comp_scratch,
            ..
        } = self;
        for port in ports.iter_mut() {
            if port.in_tx == 0 {
                continue;
            }
            // SAFETY: the descriptors are overwritten with addresses of frames of this
            // socket's UMEM that we put on its tx ring and the kernel has finished sending.
            let n = unsafe { port.cq.consume(comp_scratch) };
            debug_assert!(n <= port.in_tx);
            port.in_tx -= n.min(port.in_tx);
            pool.extend_from_slice(&comp_scratch[..n]);
        }
    }

    /// Top up every fill ring to `fill_target` from the pool, sharing the pool fairly when it
    /// is short. `idle`: nothing was received this batch (wake a zero-copy driver that asks).
    fn refill(&mut self, idle: bool) {
        let nports = self.ports.len();
        let Self {
            ports,
            pool,
            fill_target,
            ..
        } = self;
        for (i, port) in ports.iter_mut().enumerate() {
            let deficit = fill_target.saturating_sub(port.in_fill);
            let mut k = 0;
            if deficit > 0 && !pool.is_empty() {
                let share = pool.len().div_ceil(nports - i);
                k = deficit
                    .min(share)
                    .min(port.fq.nb_free(deficit as u32) as usize);
                if k > 0 {
                    let from = pool.len() - k;
                    // SAFETY: the frames come out of the free pool, so they are frames of this
                    // UMEM that no ring and no one else holds; they leave the pool right below.
                    let given = unsafe { port.fq.produce(&pool[from..]) };
                    if given == k {
                        pool.truncate(from);
                        port.in_fill += k;
                    } else {
                        k = 0;
                    }
                }
            }
            if (k > 0 || idle) && port.fq.needs_wakeup() {
                // SAFETY: a zero-length, non-blocking `recvfrom` with null buffer and address
                // on a socket fd this QueueIo owns: it only wakes the driver's receive path.
                unsafe {
                    libc::recvfrom(
                        port.fd,
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    );
                }
            }
        }
    }
}

fn validate(ifaces: &[&str], cfg: &IoConfig) -> Result<(), IoError> {
    let bad = |what: String| Err(IoError::new(what, Some(libc::EINVAL)));
    if ifaces.is_empty() {
        return bad("no interface given".into());
    }
    for (i, a) in ifaces.iter().enumerate() {
        if a.is_empty() || a.len() >= libc::IFNAMSIZ || a.contains('\0') {
            return bad(format!("bad interface name {a:?}"));
        }
        if ifaces[..i].contains(a) {
            return bad(format!("interface {a} given twice"));
        }
    }
    if !(cfg.frame_size == 2048 || cfg.frame_size == 4096) {
        return bad(format!("frame size {} is not 2048 or 4096", cfg.frame_size));
    }
    if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 2 {
        return bad(format!("ring size {} is not a power of two", cfg.ring_size));
    }
    if cfg.batch == 0 || cfg.batch > cfg.ring_size as usize {
        return bad(format!(
            "batch {} is not within 1..={}",
            cfg.batch, cfg.ring_size
        ));
    }
    if (cfg.frame_count as usize) < 2 * ifaces.len() {
        return bad(format!(
            "{} frames are too few for {} port(s)",
            cfg.frame_count,
            ifaces.len()
        ));
    }
    Ok(())
}

/// Open in one mode, retrying `EBUSY` until `deadline`.
fn open_mode(
    ifaces: &[&str],
    queue: u32,
    cfg: &IoConfig,
    mode: Mode,
    deadline: Instant,
) -> Result<QueueIo, IoError> {
    let mut delay = EBUSY_FIRST_DELAY;
    loop {
        match try_open(ifaces, queue, cfg, mode) {
            Err(e) if e.errno == Some(libc::EBUSY) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                let d = delay.min(deadline - now);
                note(
                    cfg,
                    format_args!(
                        "{} queue {queue} busy ({e}); retrying in {} ms",
                        ifaces.join("+"),
                        d.as_millis()
                    ),
                );
                std::thread::sleep(d);
                delay *= 2;
            }
            r => return r,
        }
    }
}

fn try_open(ifaces: &[&str], queue: u32, cfg: &IoConfig, mode: Mode) -> Result<QueueIo, IoError> {
    let invalid = |what: String| IoError::new(what, Some(libc::EINVAL));
    let ring = QueueSize::new(cfg.ring_size).map_err(|e| invalid(e.to_string()))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| invalid(e.to_string()))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .frame_headroom(0)
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let frames = NonZeroU32::new(cfg.frame_count).ok_or_else(|| invalid("no frames".into()))?;
    let (umem, descs) = Umem::new(umem_cfg, frames, false).map_err(|e| {
        lib_error(
            format!(
                "UMEM of {} frames of {} bytes",
                cfg.frame_count, cfg.frame_size
            ),
            &e,
        )
    })?;

    let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
    bind |= match mode {
        Mode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
        Mode::DriverCopy | Mode::Skb => BindFlags::XDP_COPY,
    };
    let (libxdp, xdp) = if cfg.load_default_program {
        let x = if mode.native_xdp() {
            XdpFlags::XDP_FLAGS_DRV_MODE
        } else {
            XdpFlags::XDP_FLAGS_SKB_MODE
        };
        (LibxdpFlags::empty(), x)
    } else {
        (
            LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD,
            XdpFlags::empty(),
        )
    };
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(libxdp)
        .xdp_flags(xdp)
        .bind_flags(bind)
        .build();

    let mut ports = Vec::with_capacity(ifaces.len());
    for name in ifaces {
        let ifname = Interface::new(
            CString::new(*name).map_err(|_| invalid(format!("bad interface name {name:?}")))?,
        );
        // SAFETY: the interface names are distinct (checked by `validate`) and this UMEM is
        // new, so no (interface, queue) pair is bound twice on it; that is the case in which
        // `Socket::new` requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD.
        let (tx, rx, rings) =
            unsafe { Socket::new(sock_cfg, &umem, &ifname, queue) }.map_err(|e| {
                lib_error(
                    format!("AF_XDP socket on {name} queue {queue} ({mode})"),
                    &e,
                )
            })?;
        let (fq, cq) = rings.ok_or_else(|| {
            IoError::new(
                format!("AF_XDP socket on {name} queue {queue}: no fill/completion rings"),
                None,
            )
        })?;
        let fd = rx.fd().as_raw_fd();
        ports.push(Port {
            name: (*name).to_string(),
            tx,
            rx,
            fq,
            cq,
            fd,
            in_fill: 0,
            in_tx: 0,
        });
    }

    let nports = ports.len();
    let frame_count = descs.len();
    let ring_size = cfg.ring_size as usize;
    let batch = cfg.batch;
    let mut pool = Vec::with_capacity(frame_count);
    pool.extend_from_slice(&descs);
    drop(descs);
    let mut io = QueueIo {
        ports,
        umem,
        mode,
        queue,
        frame_size: cfg.frame_size,
        batch,
        ring_size,
        frame_count,
        fill_target: ring_size.min(frame_count / (2 * nports)).max(1),
        pool,
        rx_scratch: vec![FrameDesc::default(); batch],
        comp_scratch: vec![FrameDesc::default(); ring_size],
        tx_stage: (0..nports)
            .map(|_| Vec::with_capacity(batch * nports))
            .collect(),
        tx_room: vec![0; nports],
        pollfds: Vec::with_capacity(nports),
        kick_errors: 0,
        busy: None,
    };
    if let Some(bp) = cfg.busy_poll {
        io.busy = Some(setup_busy_poll(&io.ports, queue, bp));
    }
    io.pollfds = io
        .ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    io.refill(false);
    Ok(io)
}

/// Busy polling on every port, or why not (then on none).
fn setup_busy_poll(ports: &[Port], queue: u32, bp: BusyPoll) -> Result<BusyPoll, String> {
    for p in ports {
        busy::check(p.fd, &format!("{} queue {queue}", p.name))?;
    }
    for p in ports {
        busy::enable(p.fd, bp).map_err(|e| format!("{} queue {queue}: {e}", p.name))?;
    }
    Ok(bp)
}

/// What attaching a native XDP program to an interface told us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NativeProbe {
    /// A native program could be attached (and was detached again).
    Attachable,
    /// A native program or link is already attached (`EBUSY`): native mode works.
    NativeInUse,
    /// A generic program is attached (`EEXIST`): native and generic can't coexist.
    GenericInUse,
    /// Refused with this errno (no driver support, a veth peer MTU above 3506, ...).
    Refused(i32),
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// `union bpf_attr` as used by BPF_PROG_LOAD, zero-padded to the 144 bytes of the kernel's
/// union (the kernel accepts any size as long as the bytes it does not know are zero).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u8; 72],
}

/// `union bpf_attr` as used by BPF_LINK_CREATE, zero-padded to 144 bytes.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u8; 128],
}

const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 144);
const _: () = assert!(std::mem::size_of::<LinkCreateAttr>() == 144);

/// Owns a file descriptor returned by the bpf() syscall and closes it.
struct OwnedBpfFd(RawFd);

impl Drop for OwnedBpfFd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned to us by bpf() and is closed only here, once.
        unsafe { libc::close(self.0) };
    }
}

/// Whether a driver-mode XDP program can run on `ifname`: load `r0 = XDP_PASS; exit`, attach
/// it through a BPF link (native mode) and close both at once, which detaches it.
fn probe_native_xdp(ifname: &str) -> NativeProbe {
    let Ok(cname) = CString::new(ifname) else {
        return NativeProbe::Refused(libc::EINVAL);
    };
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return NativeProbe::Refused(last_errno());
    }
    // mov64 r0, 2 (XDP_PASS); exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let license = b"GPL\0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"detour_probe");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
        _rest: [0; 72],
    };
    // SAFETY: bpf(BPF_PROG_LOAD) reads `size_of::<ProgLoadAttr>()` bytes of `attr` (laid out
    // as the kernel's union bpf_attr, the unknown tail zeroed) and the instructions and license
    // it points to, which all live until the call returns; it writes no user memory (log off).
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if prog < 0 {
        return NativeProbe::Refused(last_errno());
    }
    let prog = OwnedBpfFd(prog as RawFd);
    let attr = LinkCreateAttr {
        prog_fd: prog.0 as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        _rest: [0; 128],
    };
    // SAFETY: bpf(BPF_LINK_CREATE) reads `size_of::<LinkCreateAttr>()` bytes of `attr`, laid
    // out as the kernel's union bpf_attr with the unknown tail zeroed; it writes no user memory.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const LinkCreateAttr,
            std::mem::size_of::<LinkCreateAttr>(),
        )
    };
    if link < 0 {
        return match last_errno() {
            libc::EBUSY => NativeProbe::NativeInUse,
            libc::EEXIST => NativeProbe::GenericInUse,
            e => NativeProbe::Refused(e),
        };
    }
    // Closing the only reference to the link detaches the program.
    drop(OwnedBpfFd(link as RawFd));
    drop(prog);
    NativeProbe::Attachable
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

    #[test]
    fn config_is_validated() {
        let ok = IoConfig::default();
        assert!(validate(&["a", "b"], &ok).is_ok());
        assert!(validate(&[], &ok).is_err());
        assert!(validate(&["a", "a"], &ok).is_err());
        assert!(validate(
            &["a"],
            &IoConfig {
                frame_size: 3000,
                ..ok.clone()
            }
        )
        .is_err());
        assert!(validate(
            &["a"],
            &IoConfig {
                ring_size: 1000,
                ..ok.clone()
            }
        )
        .is_err());
        assert!(validate(
            &["a"],
            &IoConfig {
                batch: 0,
                ..ok.clone()
            }
        )
        .is_err());
        assert!(validate(
            &["a", "b"],
            &IoConfig {
                frame_count: 3,
                ..ok
            }
        )
        .is_err());
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn queue_io_is_send() {
        assert_send::<QueueIo>();
    }
}
