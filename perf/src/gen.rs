//! The XDP live-frames generator: loads `dtb_gen` (bpf/gen.bpf.c), fills its templates and
//! configuration, and runs it with `BPF_PROG_TEST_RUN` + `BPF_F_TEST_XDP_LIVE_FRAMES` on an
//! interface of the current network namespace. Every XDP_TX of the program is a frame sent on
//! that interface. The syscall is ended by a signal from a timer thread once the run length has
//! passed or the frame budget is spent.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData};
use aya::programs::Xdp;
use aya::Ebpf;

use crate::frames::{Template, TPL_MAX};

pub static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.bpf.o"));

/// `struct tpl` of gen.bpf.c.
#[repr(C)]
#[derive(Clone, Copy)]
struct Tpl {
    len: u32,
    kind: u16,
    stamp_off: u16,
    csum_off: u16,
    mark: u16,
    data: [u8; TPL_MAX],
}

// SAFETY: `Tpl` is `repr(C)`, 4 + 4 * 2 + 256 bytes with no padding; every bit pattern is valid and
// it matches `struct tpl` in gen.bpf.c.
unsafe impl aya::Pod for Tpl {}

/// `struct cfg` of gen.bpf.c.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Cfg {
    rate_pps: u64,
    max_frames: u64,
    duration_ns: u64,
    ntpl: u32,
    burst: u32,
}

// SAFETY: `repr(C)`, 3 * 8 + 2 * 4 bytes, no padding, every bit pattern valid; matches
// `struct cfg` in gen.bpf.c.
unsafe impl aya::Pod for Cfg {}

pub const KINDS: usize = 8;

/// `struct state` of gen.bpf.c.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct State {
    pub start_ns: u64,
    pub last_ns: u64,
    pub refill_ns: u64,
    pub tokens: u64,
    pub sent: u64,
    pub idle: u64,
    pub next: u64,
    pub kind: [u64; KINDS],
}

// SAFETY: `repr(C)`, only u64 fields, no padding, every bit pattern valid; matches
// `struct state` in gen.bpf.c.
unsafe impl aya::Pod for State {}

/// What to send.
pub struct Run {
    pub ifindex: u32,
    /// Frames per second; 0: as fast as possible.
    pub rate_pps: u64,
    pub max_frames: u64,
    pub duration: Duration,
    /// Frames per test-run batch (kernel maximum 256).
    pub batch: u32,
}

/// What was sent.
#[derive(Debug)]
pub struct Outcome {
    pub state: State,
    /// From the first to the last frame sent, by the program's clock (seconds).
    pub send_secs: f64,
    /// Wall time of the whole run (seconds).
    pub wall_secs: f64,
    pub calls: u64,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

extern "C" fn on_signal(_: libc::c_int) {}

/// Install a no-op SIGUSR1 handler without SA_RESTART, so the signal ends the test-run
/// syscall with EINTR.
fn install_handler() -> Result<(), String> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // `extern "C"` function that does nothing (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) != 0 {
            return Err(err("sigaction", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// `struct xdp_md` as the test run's context: only `data_end`, the ifindex and queue matter.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// The `test` member of `union bpf_attr` (BPF_PROG_TEST_RUN), padded.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// One BPF_PROG_TEST_RUN call in live-frames mode. Ok(()) when it ran `repeat` iterations,
/// Err(EINTR) when a signal ended it.
fn test_run(
    prog_fd: i32,
    frame: &[u8],
    ctx: &mut XdpMd,
    repeat: u32,
    batch: u32,
) -> std::io::Result<()> {
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: ctx as *mut XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a properly laid out `bpf_attr.test` (zero-padded to 80 bytes) whose
    // pointers (`frame`, `ctx`) are valid for the sizes given for the whole call; the kernel
    // does not keep them after it returns. No output buffers are passed (live mode forbids them).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Send `templates` (cycled in order) as described by `run`.
pub fn generate(templates: &[Template], run: &Run) -> Result<Outcome, String> {
    if templates.is_empty() || templates.len() > 65536 {
        return Err(format!("{} templates: need 1..=65536", templates.len()));
    }
    install_handler()?;
    let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| err("loading gen.bpf.o", e))?;
    {
        let prog: &mut Xdp = ebpf
            .program_mut("dtb_gen")
            .ok_or("program dtb_gen missing")?
            .try_into()
            .map_err(|e| err("dtb_gen", e))?;
        prog.load()
            .map_err(|e| err("loading dtb_gen into the kernel", e))?;
    }
    let mut tpls: Array<MapData, Tpl> =
        Array::try_from(ebpf.take_map("tpls").ok_or("no tpls map")?).map_err(|e| err("tpls", e))?;
    let mut cfgs: Array<MapData, Cfg> =
        Array::try_from(ebpf.take_map("cfgs").ok_or("no cfgs map")?).map_err(|e| err("cfgs", e))?;
    let states: Array<MapData, State> =
        Array::try_from(ebpf.take_map("states").ok_or("no states map")?)
            .map_err(|e| err("states", e))?;

    let mut frame_len = 0;
    for (i, t) in templates.iter().enumerate() {
        let mut data = [0u8; TPL_MAX];
        data[..t.bytes.len()].copy_from_slice(&t.bytes);
        frame_len = frame_len.max(t.bytes.len());
        let (stamp_off, csum_off, mark) = t.stamp.unwrap_or((0, 0, 0));
        let v = Tpl {
            len: t.bytes.len() as u32,
            kind: t.kind as u16,
            stamp_off,
            csum_off,
            mark,
            data,
        };
        tpls.set(i as u32, v, 0)
            .map_err(|e| err("filling templates", e))?;
    }
    let cfg = Cfg {
        rate_pps: run.rate_pps,
        max_frames: run.max_frames,
        duration_ns: run.duration.as_nanos() as u64,
        ntpl: templates.len() as u32,
        // Bucket depth: 32 frames, well under a veth ring (256), so a stall of this thread is
        // not made up by a burst the receiver could not take.
        burst: 32,
    };
    cfgs.set(0, cfg, 0).map_err(|e| err("config", e))?;

    let mut frame = templates[0].bytes.clone();
    frame.resize(frame_len, 0);
    let mut ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: run.ifindex,
        ..XdpMd::default()
    };

    let prog: &Xdp = ebpf
        .program("dtb_gen")
        .ok_or("program dtb_gen missing")?
        .try_into()
        .map_err(|e| err("dtb_gen", e))?;
    let prog_fd = prog
        .fd()
        .map_err(|e| err("dtb_gen fd", e))?
        .as_fd()
        .as_raw_fd();

    // The timer: signal this thread when the run is over (time or frames), every 20 ms until
    // it is done, so a signal landing between two calls cannot be lost.
    let done = Arc::new(AtomicBool::new(false));
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let timer = {
        let done = done.clone();
        let max = run.max_frames;
        let deadline = run.duration + Duration::from_millis(50);
        std::thread::spawn(move || -> Result<State, String> {
            let t0 = Instant::now();
            let mut finished = false;
            loop {
                std::thread::sleep(Duration::from_millis(20));
                let st = states.get(&0, 0).map_err(|e| err("reading state", e))?;
                if st.sent >= max || t0.elapsed() >= deadline {
                    finished = true;
                }
                if done.load(Ordering::Acquire) {
                    return states.get(&0, 0).map_err(|e| err("reading state", e));
                }
                if finished {
                    // SAFETY: `me` is the generator's thread, alive until `done` is set (it
                    // joins this thread after); SIGUSR1 has a no-op handler.
                    unsafe {
                        libc::pthread_kill(me, libc::SIGUSR1);
                    }
                }
            }
        })
    };

    let t0 = Instant::now();
    let mut calls = 0u64;
    let hard_stop = run.duration + Duration::from_secs(5);
    let mut failure = None;
    loop {
        calls += 1;
        match test_run(prog_fd, &frame, &mut ctx, u32::MAX, run.batch.clamp(1, 256)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => break,
            Err(e) => {
                failure = Some(err("BPF_PROG_TEST_RUN (live frames; kernel >= 5.18)", e));
                break;
            }
        }
        if t0.elapsed() >= hard_stop {
            break;
        }
    }
    let wall_secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let state = timer.join().map_err(|_| "timer thread panicked")??;
    if let Some(f) = failure {
        return Err(f);
    }
    let send_secs = if state.sent > 0 {
        (state.last_ns.saturating_sub(state.start_ns)) as f64 / 1e9
    } else {
        0.0
    };
    Ok(Outcome {
        state,
        send_secs,
        wall_secs,
        calls,
    })
}
