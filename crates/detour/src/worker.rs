//! A worker: one queue's AF_XDP sockets driven run-to-completion by the data path. It
//! reads only its snapshot, picks up new snapshots and connection counts between batches
//! from its own lock-free inbox, and reports its counters (plain arrays indexed like its
//! snapshot's tables) about twice a second on a bounded channel (a full channel skips a
//! report: the next one is cumulative). Every [`TICK_MS`] (the loop wakes from its idle
//! wait at least that often) it runs the worker's timers, which may send frames of their own.

use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;
use detour_config::Snapshot;
use detour_control::stats::new_hist;
use detour_control::Report;
use detour_dataplane::{Originate, Verdict, Worker, WorkerConfig, CLIENT, SERVER, TICK_MS};
use detour_xsk::io::{IoConfig, Mode, Out, Pass, QueueIo};
use detour_xsk::stats as xsk_stats;
use hdrhistogram::Histogram;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the control thread sends a worker.
pub enum Msg {
    Snapshot(Arc<Snapshot>),
    /// Active connections per real of the snapshot with this epoch.
    Conns(u64, Arc<Vec<u32>>),
}

pub struct Started {
    pub worker: usize,
    pub mode: Mode,
    pub fds: Vec<RawFd>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct WorkerCtx {
    pub id: usize,
    pub ifaces: Vec<String>,
    pub io: IoConfig,
    pub cfg: WorkerConfig,
    pub snap: Arc<Snapshot>,
    pub inbox: Arc<ArrayQueue<Msg>>,
    pub stop: Arc<AtomicBool>,
    pub reports: Sender<Report>,
    pub idle_spin: Duration,
    /// SYN-ACKs per full batch (`None`: no bound).
    pub syn_budget: Option<usize>,
}

/// A worker's report: plain copies of its counters, indexed like its snapshot's tables.
fn report(id: usize, w: &Worker, batches: u64, hist: Histogram<u64>, io: &QueueIo) -> Report {
    let sockets = io.socket_stats();
    Report {
        worker: id,
        counters: w.counters().clone(),
        batches,
        hist,
        epoch: w.snapshot().epoch,
        reals: w.real_counters().to_vec(),
        urls: w.redirects_by_url().to_vec(),
        sockets: xsk_stats::FIELDS
            .iter()
            .map(|(name, get)| (*name, get(&sockets)))
            .collect(),
    }
}

/// The frames a worker's timers send: free frames of its sockets, out of the port the
/// worker's verdict names.
struct Rings<'a> {
    io: &'a mut QueueIo,
    one_armed: bool,
    sent: usize,
}

impl Originate for Rings<'_> {
    fn originate(&mut self, write: impl FnOnce(&mut [u8]) -> Verdict) -> bool {
        let one_armed = self.one_armed;
        let ok = self.io.originate(|buf| out(write(buf), one_armed));
        self.sent += usize::from(ok);
        ok
    }
}

/// What the rings do with a frame the worker gave `v`: its socket is the client side's (0)
/// or the server side's (1); one-armed, there is only 0.
#[inline]
fn out(v: Verdict, one_armed: bool) -> Out {
    match v {
        Verdict::Tx { port, len } => Out::Tx {
            port: if one_armed || port == CLIENT { 0 } else { 1 },
            len,
        },
        Verdict::Drop(_) | Verdict::Pass => Out::Drop,
    }
}

/// Run the worker's timers; one kick of the tx rings if they sent anything.
fn tick(w: &mut Worker, io: &mut QueueIo, one_armed: bool, now: u64) {
    let mut rings = Rings {
        io,
        one_armed,
        sent: 0,
    };
    w.tick(now, &mut rings);
    if rings.sent > 0 {
        io.flush();
    }
}

pub fn worker_main(ctx: WorkerCtx, started: Sender<Result<Started, String>>) {
    let names: Vec<&str> = ctx.ifaces.iter().map(String::as_str).collect();
    let mut io = match QueueIo::open(&names, ctx.id as u32, &ctx.io) {
        Ok(io) => io,
        Err(e) => {
            let _ = started.send(Err(format!(
                "AF_XDP sockets on queue {} of {}: {e}",
                ctx.id,
                names.join("+")
            )));
            return;
        }
    };
    let fds = (0..names.len()).map(|p| io.rx_fd(p)).collect();
    let _ = started.send(Ok(Started {
        worker: ctx.id,
        mode: io.mode(),
        fds,
    }));
    crate::privs::drop_all_of_this_thread();
    let one_armed = names.len() == 1;
    let mut w = Worker::new(ctx.cfg, ctx.snap);
    w.set_syn_budget(ctx.syn_budget);
    let mut hist = new_hist();
    let mut batches = 0u64;
    let mut last_report = Instant::now();
    let port_of = |p: usize| if p == 0 { CLIENT } else { SERVER };
    let mut idle_since: Option<Instant> = None;
    let mut next_tick = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        // New configuration is picked up between batches only.
        while let Some(m) = ctx.inbox.pop() {
            match m {
                Msg::Snapshot(s) => w.install_at(s, now_ms()),
                Msg::Conns(epoch, c) => {
                    if epoch == w.snapshot().epoch {
                        w.set_conns(&c);
                    }
                }
            }
        }
        let t = Instant::now();
        let now = now_ms();
        w.begin_batch();
        // Two passes: SYNs to the responder after everything else of the batch, and only
        // SYN_ACKS_PER_FULL_BATCH of them when the batch came in full.
        let st = io.run_batch_in_two(|buf, len, p, pass| {
            let v = match pass {
                Pass::First => w.process_first(buf, len, port_of(p), now),
                Pass::Second { full } => Some(w.process_deferred(buf, len, port_of(p), now, full)),
            };
            v.map_or(Out::Defer, |v| out(v, one_armed))
        });
        if st.rx > 0 {
            batches += 1;
            let _ = hist.record(t.elapsed().as_nanos() as u64);
        }
        if now >= next_tick {
            next_tick = now + TICK_MS;
            tick(&mut w, &mut io, one_armed, now);
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            let h = std::mem::replace(&mut hist, new_hist());
            let _ = ctx.reports.try_send(report(ctx.id, &w, batches, h, &io));
        }
        if st.rx == 0 {
            // Idle: after at most `idle_spin` of polling the rings, sleep in poll() rather
            // than spin against the kernel's receive work on this core.
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() < ctx.idle_spin {
                std::hint::spin_loop();
                continue;
            }
            io.wait(10);
            idle_since = None;
        } else {
            idle_since = None;
        }
    }
    let _ = ctx.reports.try_send(report(ctx.id, &w, batches, hist, &io));
}
