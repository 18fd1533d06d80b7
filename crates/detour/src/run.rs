//! `detour run`: the control thread and the per-queue workers.
//!
//! The control thread loads the config, resolves MACs, attaches the XDP steering program,
//! starts one worker per queue (pinned with core_affinity), and then loops: it merges the
//! workers' statistics, prints a one-line summary, keeps MACs fresh, and hands every new
//! snapshot to each worker through the worker's own lock-free queue. Workers never lock:
//! they run the data path over their AF_XDP sockets in a run-to-completion loop and pick up
//! a new snapshot between batches.

use crate::neigh;
use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;
use detour_config::{model::Model, Snapshot};
use detour_dataplane::{Counters, Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use detour_xsk::io::{IoConfig, Mode, Out, QueueIo};
use detour_xsk::steer::{kernel_addrs, Steer};
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `detour run` was asked to do, after the CLI and the config file are merged.
pub struct Plan {
    pub model: Model,
    pub client_if: String,
    /// `None`: one-armed (everything on the client interface).
    pub server_if: Option<String>,
    pub queues: u32,
    pub cores: Vec<usize>,
    pub io: IoConfig,
    pub summary: Duration,
    /// Stop by itself after this long (tests, benchmarks).
    pub duration: Option<Duration>,
}

/// Statistics a worker publishes about once a second (cumulative counters, and the batch
/// service times since its last report).
struct Report {
    worker: usize,
    counters: Counters,
    batches: u64,
    hist: Histogram<u64>,
    epoch: u64,
}

struct Started {
    worker: usize,
    mode: Mode,
    fds: Vec<RawFd>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Snapshot of the model with MACs filled in from the kernel.
fn snapshot(model: &Model, epoch: u64, gateway: Ipv4Addr, missing: &mut Vec<String>) -> Snapshot {
    let table = neigh::arp_table();
    let mut s = Snapshot::compile(model, epoch);
    missing.clear();
    for r in &mut s.reals {
        match neigh::resolve(*r.addr.ip(), &table) {
            Some(m) => r.mac = m,
            None => missing.push(format!("real {}", r.addr)),
        }
    }
    match neigh::resolve(gateway, &table) {
        Some(m) => s.gateway_mac = m,
        None => missing.push(format!("gateway {gateway}")),
    }
    s
}

fn macs_of(s: &Snapshot) -> Vec<[u8; 6]> {
    let mut v: Vec<[u8; 6]> = s.reals.iter().map(|r| r.mac).collect();
    v.push(s.gateway_mac);
    v
}

pub fn run(plan: Plan) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let server_if = plan
        .server_if
        .clone()
        .unwrap_or_else(|| plan.client_if.clone());
    let ifaces: Vec<String> = if server_if == plan.client_if {
        vec![plan.client_if.clone()]
    } else {
        vec![plan.client_if.clone(), server_if.clone()]
    };
    let macs = [
        neigh::iface_mac(&plan.client_if)?,
        neigh::iface_mac(&server_if)?,
    ];
    eprintln!(
        "detour: client side {} ({}), server side {} ({})",
        plan.client_if,
        neigh::fmt_mac(macs[0]),
        server_if,
        neigh::fmt_mac(macs[1])
    );
    let mut kernel: Vec<Ipv4Addr> = ifaces.iter().flat_map(|i| kernel_addrs(i)).collect();
    kernel.sort();
    kernel.dedup();
    let gateway = plan
        .model
        .settings
        .gateway
        .or_else(|| neigh::default_gateway(&plan.client_if))
        .ok_or_else(|| {
            format!(
                "no client-side gateway: set `gateway <ip>` in the config (no default route on {})",
                plan.client_if
            )
        })?;

    // MACs: wait a little for the kernel to resolve them, then go on (and keep trying).
    let mut epoch = 1;
    let mut missing = Vec::new();
    let mut snap = snapshot(&plan.model, epoch, gateway, &mut missing);
    let t0 = Instant::now();
    while !missing.is_empty() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        snap = snapshot(&plan.model, epoch, gateway, &mut missing);
    }
    if !missing.is_empty() {
        eprintln!(
            "detour: no MAC yet for {}; their frames are dropped until resolved",
            missing.join(", ")
        );
    }
    let mut snap = Arc::new(snap);

    // Steering: one XDP program per interface.
    let mut steers = Vec::new();
    let owned: Vec<Ipv4Addr> = snap.owned_addrs().collect();
    let reals: Vec<_> = snap.reals.iter().map(|r| r.addr).collect();
    for i in &ifaces {
        let mut s = Steer::attach(i, None).map_err(|e| format!("XDP program on {i}: {e}"))?;
        s.set_addresses(&owned, &reals, &kernel)
            .map_err(|e| format!("XDP maps on {i}: {e}"))?;
        eprintln!("detour: XDP steering attached to {i} in {} mode", s.mode());
        steers.push(s);
    }

    // Workers.
    let (report_tx, report_rx) = crossbeam_channel::bounded::<Report>(64);
    let (start_tx, start_rx) =
        crossbeam_channel::bounded::<Result<Started, String>>(plan.queues as usize);
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    let wstop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for q in 0..plan.queues {
        let inbox = Arc::new(ArrayQueue::<Arc<Snapshot>>::new(4));
        queues.push(inbox.clone());
        let cfg = WorkerConfig {
            macs,
            cookie_secret: random_secret(),
            kernel_addrs: kernel.clone(),
        };
        let core = plan
            .cores
            .get(q as usize % plan.cores.len().max(1))
            .copied();
        let core_id = core.and_then(|c| cores.iter().find(|id| id.id == c).copied());
        let ctx = WorkerCtx {
            id: q as usize,
            ifaces: ifaces.clone(),
            io: plan.io.clone(),
            cfg,
            snap: snap.clone(),
            inbox,
            stop: wstop.clone(),
            reports: report_tx.clone(),
        };
        let start_tx = start_tx.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("detour-w{q}"))
                .spawn(move || {
                    if let Some(c) = core_id {
                        core_affinity::set_for_current(c);
                    }
                    worker_main(ctx, start_tx)
                })
                .map_err(|e| format!("spawn worker: {e}"))?,
        );
    }
    drop(report_tx);
    let mut modes = Vec::new();
    for _ in 0..plan.queues {
        match start_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(s)) => {
                for (port, fd) in s.fds.iter().enumerate() {
                    steers[port]
                        .set_socket(s.worker as u32, *fd)
                        .map_err(|e| format!("XSKMAP {}: {e}", ifaces[port]))?;
                }
                modes.push(s.mode);
            }
            Ok(Err(e)) => {
                wstop.store(true, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                wstop.store(true, Ordering::Relaxed);
                return Err("a worker did not start within 15 s".into());
            }
        }
    }
    eprintln!(
        "detour: {} worker(s) on {} (AF_XDP {}), config epoch {}",
        plan.queues,
        ifaces.join(" + "),
        modes.first().map_or("?".to_string(), |m| m.to_string()),
        snap.epoch
    );

    // The control loop.
    let started = Instant::now();
    let mut last_summary = Instant::now();
    let mut last_neigh = Instant::now();
    let mut latest: Vec<Option<Report>> = (0..plan.queues).map(|_| None).collect();
    let mut prev_total = Counters::default();
    let mut interval = Histogram::<u64>::new(3).expect("3 significant digits");
    while !stop.load(Ordering::Relaxed) && plan.duration.is_none_or(|d| started.elapsed() < d) {
        drain(&report_rx, &mut latest, &mut interval);
        if last_neigh.elapsed() >= Duration::from_secs(2) {
            last_neigh = Instant::now();
            let fresh = snapshot(&plan.model, epoch + 1, gateway, &mut missing);
            if macs_of(&fresh) != macs_of(&snap) {
                epoch += 1;
                snap = Arc::new(fresh);
                for q in &queues {
                    q.force_push(snap.clone());
                }
                eprintln!("detour: neighbours changed; snapshot epoch {epoch} sent to the workers");
            }
        }
        if last_summary.elapsed() >= plan.summary {
            let secs = last_summary.elapsed().as_secs_f64();
            last_summary = Instant::now();
            let total = sum(&latest);
            println!(
                "{}",
                summary_line(
                    started.elapsed(),
                    secs,
                    &prev_total,
                    &total,
                    &interval,
                    &latest
                )
            );
            prev_total = total;
            interval.reset();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wstop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    drain(&report_rx, &mut latest, &mut interval);
    let total = sum(&latest);
    println!(
        "detour: stopped after {:.1}s; totals: {}",
        started.elapsed().as_secs_f64(),
        totals_line(&total)
    );
    drop(steers);
    Ok(())
}

fn drain(rx: &Receiver<Report>, latest: &mut [Option<Report>], interval: &mut Histogram<u64>) {
    while let Ok(r) = rx.try_recv() {
        let _ = interval.add(&r.hist);
        let w = r.worker;
        latest[w] = Some(r);
    }
}

fn sum(latest: &[Option<Report>]) -> Counters {
    let mut t = Counters::default();
    for r in latest.iter().flatten() {
        t.add(&r.counters);
    }
    t
}

fn rate(now: u64, before: u64, secs: f64) -> String {
    let r = now.saturating_sub(before) as f64 / secs.max(1e-3);
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn summary_line(
    up: Duration,
    secs: f64,
    a: &Counters,
    b: &Counters,
    h: &Histogram<u64>,
    latest: &[Option<Report>],
) -> String {
    let per_worker: Vec<String> = latest
        .iter()
        .enumerate()
        .map(|(i, r)| format!("w{i}:{}", r.as_ref().map_or(0, |r| r.counters.rx)))
        .collect();
    let epoch = latest.iter().flatten().map(|r| r.epoch).max().unwrap_or(0);
    let batches: u64 = latest.iter().flatten().map(|r| r.batches).sum();
    format!(
        "[{:>6.1}s] rx {}/s tx {}/s | redirects {}/s syn-acks {}/s | to-real {}/s to-client {}/s | drops {}/s | batch p50 {}us p99 {}us ({} batches) | frames {} | epoch {}",
        up.as_secs_f64(),
        rate(b.rx, a.rx, secs),
        rate(b.tx, a.tx, secs),
        rate(b.redirects, a.redirects, secs),
        rate(b.syn_acks, a.syn_acks, secs),
        rate(b.to_real, a.to_real, secs),
        rate(b.to_client, a.to_client, secs),
        rate(b.drops(), a.drops(), secs),
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        batches,
        per_worker.join(" "),
        epoch
    )
}

fn totals_line(t: &Counters) -> String {
    let drops: Vec<String> = t
        .drops_by_reason()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    format!(
        "rx {} tx {} pass {} redirects {} syn-acks {} to-real {} to-client {} arp {} echo {} drops {} [{}]",
        t.rx,
        t.tx,
        t.pass,
        t.redirects,
        t.syn_acks,
        t.to_real,
        t.to_client,
        t.arp_replies,
        t.echo_replies,
        t.drops(),
        drops.join(" ")
    )
}

fn random_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        // Two kernel-generated random UUIDs give 32 bytes of randomness.
        let more = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
        for (i, c) in b
            .iter()
            .chain(more.iter())
            .filter(|c| c.is_ascii_hexdigit())
            .enumerate()
            .take(64)
        {
            let v = (*c as char).to_digit(16).unwrap_or(0) as u8;
            s[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
    }
    s
}

struct WorkerCtx {
    id: usize,
    ifaces: Vec<String>,
    io: IoConfig,
    cfg: WorkerConfig,
    snap: Arc<Snapshot>,
    inbox: Arc<ArrayQueue<Arc<Snapshot>>>,
    stop: Arc<AtomicBool>,
    reports: Sender<Report>,
}

fn worker_main(ctx: WorkerCtx, started: Sender<Result<Started, String>>) {
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
    let one_armed = names.len() == 1;
    let mut w = Worker::new(ctx.cfg, ctx.snap);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut batches = 0u64;
    let mut last_report = Instant::now();
    let port_of = |p: usize| if p == 0 { CLIENT } else { SERVER };
    while !ctx.stop.load(Ordering::Relaxed) {
        // New configuration is picked up between batches only.
        while let Some(s) = ctx.inbox.pop() {
            w.install_at(s, now_ms());
        }
        let t = Instant::now();
        let now = now_ms();
        let st = io.run_batch(|buf, len, p| match w.process(buf, len, port_of(p), now) {
            Verdict::Tx { port, len } => Out::Tx {
                port: if one_armed || port == CLIENT { 0 } else { 1 },
                len,
            },
            Verdict::Drop(_) | Verdict::Pass => Out::Drop,
        });
        if st.rx > 0 {
            batches += 1;
            let _ = hist.record(t.elapsed().as_nanos() as u64);
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            let r = Report {
                worker: ctx.id,
                counters: w.counters().clone(),
                batches,
                hist: std::mem::replace(
                    &mut hist,
                    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
                ),
                epoch: w.snapshot().epoch,
            };
            let _ = ctx.reports.try_send(r);
        }
        if st.rx == 0 {
            // Idle: sleep in poll() rather than spin against the kernel's receive work.
            io.wait(10);
        }
    }
    let _ = ctx.reports.try_send(Report {
        worker: ctx.id,
        counters: w.counters().clone(),
        batches,
        hist,
        epoch: w.snapshot().epoch,
    });
}
