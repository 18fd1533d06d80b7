//! Opening a [`QueueIo`]: the configuration checked, one AF_XDP socket per interface on one
//! shared UMEM, the modes tried in order (zero-copy, driver copy, skb) with `EBUSY` retried
//! under a time budget, and busy polling set up or refused as a whole.

use super::probe::{probe_native_xdp, NativeProbe};
use super::*;
use std::ffi::CString;
use std::num::NonZeroU32;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::Socket;

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
        deferred: Vec::with_capacity(batch * nports),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
