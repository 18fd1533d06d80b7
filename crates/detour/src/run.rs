//! `detour run`: the control thread and the per-queue workers.
//!
//! The control thread loads the config, resolves MACs, attaches the XDP steering program,
//! starts one worker per queue (pinned with core_affinity), and then loops: it serves the
//! control socket and the metrics endpoint, applies health-check transitions, merges the
//! workers' statistics, prints a one-line summary, keeps MACs fresh, and hands every new
//! snapshot to each worker through the worker's own lock-free queue. Workers never lock:
//! they run the data path over their AF_XDP sockets in a run-to-completion loop and pick up
//! new snapshots (and connection counts) between batches.

use crate::serve::{self, Board, Request};
use crate::{health, neigh};
use crate::{notify, privs};
use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;
use detour_config::{model::Model, Snapshot};
use detour_control::show::CheckStatus;
use detour_control::{Control, Report};
use detour_dataplane::{Counters, Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use detour_xsk::io::{IoConfig, Mode, Out, QueueIo};
use detour_xsk::steer::{kernel_addrs, Steer};
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `detour run` was asked to do, after the CLI and the config file are merged.
pub struct Plan {
    pub config_path: PathBuf,
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
    pub ctl_socket: PathBuf,
    /// The control socket's mode (0600: the owner only; 0660: its group too).
    pub ctl_mode: u32,
    /// How long a worker keeps polling its rings after an empty batch before sleeping.
    pub idle_spin: Duration,
}

/// What the control thread sends a worker.
pub enum Msg {
    Snapshot(Arc<Snapshot>),
    /// Active connections per real of the snapshot with this epoch.
    Conns(u64, Arc<Vec<u32>>),
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

fn steer_all(steers: &mut [Steer], snap: &Snapshot, kernel: &[Ipv4Addr]) {
    let owned: Vec<Ipv4Addr> = snap.owned_addrs().collect();
    let reals: Vec<_> = snap.reals.iter().map(|r| r.addr).collect();
    for s in steers {
        if let Err(e) = s.set_addresses(&owned, &reals, kernel) {
            eprintln!("detour: XDP maps on {}: {e}", s.iface());
        }
    }
}

pub fn run(plan: Plan) -> Result<(), String> {
    // First, so a path that is not ours is refused before anything else is touched.
    let listener = crate::socket::bind_socket(&plan.ctl_socket, plan.ctl_mode)?;
    let (ctl, requests) = serve::serve_ctl(listener, &plan.ctl_socket, serve::CTL_LIMITS)?;
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| format!("signal handler: {e}"))?;
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
    let board = Board::default();
    let metrics = match plan.model.settings.metrics {
        Some(a) => Some(serve::serve_metrics(
            a,
            board.clone(),
            serve::METRICS_LIMITS,
        )?),
        None => None,
    };

    // MACs: wait a little for the kernel to resolve them, then go on (and keep trying).
    let mut control = Control::new(
        plan.config_path.clone(),
        plan.model.clone(),
        gateway,
        plan.queues as usize,
        Box::new(neigh::Kernel::default()),
    );
    let t0 = Instant::now();
    while !control.missing.is_empty() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        control.rebuild();
    }
    if !control.missing.is_empty() {
        eprintln!(
            "detour: no MAC yet for {}; their frames are dropped until resolved",
            control.missing.join(", ")
        );
    }

    // One cookie secret and one table key for the whole director, or no start.
    let (cookie_secret, table_key) = director_keys()?;

    // Steering: one XDP program per interface; frames from reals only on the server side.
    let mut steers = Vec::new();
    for i in &ifaces {
        let mut s = Steer::attach(i, None).map_err(|e| format!("XDP program on {i}: {e}"))?;
        s.set_client_side_only(ifaces.len() > 1 && *i == plan.client_if)
            .map_err(|e| format!("XDP program on {i}: {e}"))?;
        eprintln!("detour: XDP steering attached to {i} in {} mode", s.mode());
        steers.push(s);
    }
    steer_all(&mut steers, &control.snap, &kernel);

    // Workers.
    let (report_tx, report_rx) = crossbeam_channel::bounded::<Report>(64);
    let (start_tx, start_rx) =
        crossbeam_channel::bounded::<Result<Started, String>>(plan.queues as usize);
    let mut inboxes = Vec::new();
    let mut handles = Vec::new();
    let wstop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for q in 0..plan.queues {
        let inbox = Arc::new(ArrayQueue::<Msg>::new(8));
        inboxes.push(inbox.clone());
        let cfg = WorkerConfig {
            macs,
            cookie_secret,
            table_key,
            kernel_addrs: kernel.clone(),
            one_armed: ifaces.len() == 1,
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
            snap: control.snap.clone(),
            inbox,
            stop: wstop.clone(),
            reports: report_tx.clone(),
            idle_spin: plan.idle_spin,
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
        let started = match start_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                wstop.store(true, Ordering::Relaxed);
                return Err(e);
            }
            Err(_) => {
                wstop.store(true, Ordering::Relaxed);
                return Err("a worker did not start within 15 s".into());
            }
        };
        for (port, fd) in started.fds.iter().enumerate() {
            steers[port]
                .set_socket(started.worker as u32, *fd)
                .map_err(|e| format!("XSKMAP {}: {e}", ifaces[port]))?;
        }
        modes.push(started.mode);
    }
    eprintln!(
        "detour: {} worker(s) on {} (AF_XDP {}), config epoch {}, control socket {}",
        plan.queues,
        ifaces.join(" + "),
        modes.first().map_or("?".to_string(), |m| m.to_string()),
        control.epoch,
        plan.ctl_socket.display()
    );
    let kept = privs::drop_after_setup(privs::effective_uid()?)?;
    eprintln!("detour: capabilities after set-up: {}", kept.join(" "));
    notify::notify(notify::State::Ready);

    // Health checks.
    let (health_tx, health_rx) = crossbeam_channel::bounded::<health::Transition>(health::QUEUE);
    let mut checker = health::Health::start(health::targets(&control.model), health_tx);

    // The control loop.
    let started = Instant::now();
    let mut last_summary = Instant::now();
    let mut last_neigh = Instant::now();
    let mut last_conns = Instant::now();
    let mut prev_total = Counters::default();
    let mut interval = Histogram::<u64>::new(3).expect("3 significant digits");
    // Every snapshot handed to the workers is also held here until no worker holds it, so
    // the last reference, and the freeing of its tables, is always dropped on this thread,
    // never on a worker's (the quiescent-state idea of DPDK's RCU, by reference counts).
    let mut held: Vec<Arc<Snapshot>> = vec![control.snap.clone()];
    let push =
        |inboxes: &[Arc<ArrayQueue<Msg>>], snap: &Arc<Snapshot>, held: &mut Vec<Arc<Snapshot>>| {
            held.push(snap.clone());
            for q in inboxes {
                q.force_push(Msg::Snapshot(snap.clone()));
            }
        };
    while !stop.load(Ordering::Relaxed) && plan.duration.is_none_or(|d| started.elapsed() < d) {
        held.retain(|s| Arc::strong_count(s) > 1);
        while let Ok(r) = report_rx.try_recv() {
            let _ = interval.add(&r.hist);
            control.stats.report(r);
        }
        let mut changed = false;
        while let Ok(t) = health_rx.try_recv() {
            let at = t.at.saturating_duration_since(started).as_secs_f64();
            if t.up {
                eprintln!(
                    "detour: [{at:.1}s] real {} back in service: {}",
                    t.addr, t.reason
                );
            } else {
                eprintln!(
                    "detour: [{at:.1}s] real {} failed: {} (detected in {} ms)",
                    t.addr,
                    t.reason,
                    t.detection.as_millis()
                );
            }
            changed |= control.health(t.addr, t.up);
        }
        let mut config_changed = false;
        if hup.swap(false, Ordering::Relaxed) {
            notify::notify(notify::State::Reloading);
            let o = control.reload();
            notify::notify(notify::State::Ready);
            eprint!("detour: SIGHUP: {}", o.text());
            config_changed |= o.changed();
        }
        while let Ok(req) = requests.try_recv() {
            config_changed |= answer(&mut control, &checker, req);
        }
        if config_changed {
            checker.update(health::targets(&control.model));
            if checker.ignored() > 0 {
                eprintln!(
                    "detour: {} health check(s) not started (see `show health`)",
                    checker.ignored()
                );
            }
            changed = true;
        }
        if changed {
            steer_all(&mut steers, &control.snap, &kernel);
            push(&inboxes, &control.snap, &mut held);
        }
        if last_neigh.elapsed() >= Duration::from_secs(2) {
            last_neigh = Instant::now();
            if control.refresh_neighbours() {
                push(&inboxes, &control.snap, &mut held);
                eprintln!(
                    "detour: neighbours changed; snapshot epoch {} sent to the workers",
                    control.epoch
                );
            }
        }
        if last_conns.elapsed() >= Duration::from_millis(500) {
            last_conns = Instant::now();
            let conns = Arc::new(control.active_conns());
            for q in &inboxes {
                let _ = q.push(Msg::Conns(control.epoch, conns.clone()));
            }
            if metrics.is_some() {
                board.publish(prometheus(&control, &ctl, metrics.as_ref()));
            }
        }
        if last_summary.elapsed() >= plan.summary {
            let secs = last_summary.elapsed().as_secs_f64();
            last_summary = Instant::now();
            let total = control.stats.totals().counters;
            println!(
                "{}",
                summary_line(
                    started.elapsed(),
                    secs,
                    &prev_total,
                    &total,
                    &interval,
                    &control
                )
            );
            prev_total = total;
            interval.reset();
        }
        // Sleep until the next tick, or until a command comes (answered at once).
        if let Ok(req) = requests.recv_timeout(Duration::from_millis(20)) {
            if answer(&mut control, &checker, req) {
                checker.update(health::targets(&control.model));
                steer_all(&mut steers, &control.snap, &kernel);
                push(&inboxes, &control.snap, &mut held);
            }
        }
    }
    notify::notify(notify::State::Stopping);
    wstop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    while let Ok(r) = report_rx.try_recv() {
        control.stats.report(r);
    }
    checker.stop();
    let total = control.stats.totals().counters;
    println!(
        "detour: stopped after {:.1}s; totals: {}",
        started.elapsed().as_secs_f64(),
        totals_line(&total)
    );
    drop(steers);
    drop(ctl);
    Ok(())
}

/// Answer one ctl command; true when the configuration changed.
fn answer(control: &mut Control, checker: &health::Health, req: Request) -> bool {
    let words: Vec<&str> = req.line.split_whitespace().collect();
    let (text, changed) = match words.as_slice() {
        [show, view]
            if show.eq_ignore_ascii_case("show")
                && detour_control::commands::show_view(view) == Some("health") =>
        {
            (show_health(checker), false)
        }
        _ => {
            let o = control.command(&req.line);
            (o.text(), o.changed())
        }
    };
    let _ = req.reply.try_send(text);
    changed
}

/// The metrics text: the control plane's, and the serving counts of both listeners.
fn prometheus(control: &Control, ctl: &serve::Server, metrics: Option<&serve::Server>) -> String {
    let mut o = control.prometheus();
    o.push_str("# HELP detour_listener_connections_total Connections to the control socket and the metrics endpoint, by outcome.\n# TYPE detour_listener_connections_total counter\n");
    for (name, srv) in std::iter::once(("ctl", ctl)).chain(metrics.map(|m| ("metrics", m))) {
        let c = &srv.counts;
        for (outcome, n) in [
            ("served", c.served.load(Ordering::Relaxed)),
            ("refused", c.refused.load(Ordering::Relaxed)),
            ("cut", c.cut.load(Ordering::Relaxed)),
        ] {
            o.push_str(&format!(
                "detour_listener_connections_total{{listener=\"{name}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
    }
    o
}

fn show_health(h: &health::Health) -> String {
    let checks: Vec<CheckStatus> = h
        .status()
        .into_iter()
        .map(|s| CheckStatus {
            addr: s.addr,
            up: s.up,
            since: s.since,
            checks: s.checks,
            failures: s.failures,
            transitions: s.transitions,
            last: s.last,
        })
        .collect();
    detour_control::show::health(&checks)
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
    c: &Control,
) -> String {
    let workers = c.stats.workers();
    let per_worker: Vec<String> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| format!("w{i}:{}", w.as_ref().map_or(0, |w| w.counters.rx)))
        .collect();
    let epoch = workers
        .iter()
        .map(|w| w.as_ref().map_or(0, |w| w.epoch))
        .min()
        .unwrap_or(0);
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
        h.len(),
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

/// The director's cookie secret (used when the config sets none) and its tables' hash key,
/// from the kernel's random source; without one, detour does not start.
fn director_keys() -> Result<([u8; 32], [u8; 16]), String> {
    let mut b = [0u8; 48];
    getrandom::fill(&mut b).map_err(|e| {
        format!("the kernel's random source failed ({e}): no cookie secret or table key")
    })?;
    let mut secret = [0u8; 32];
    let mut key = [0u8; 16];
    secret.copy_from_slice(&b[..32]);
    key.copy_from_slice(&b[32..]);
    Ok((secret, key))
}

struct WorkerCtx {
    id: usize,
    ifaces: Vec<String>,
    io: IoConfig,
    cfg: WorkerConfig,
    snap: Arc<Snapshot>,
    inbox: Arc<ArrayQueue<Msg>>,
    stop: Arc<AtomicBool>,
    reports: Sender<Report>,
    idle_spin: Duration,
}

/// A worker's report: plain copies of its counters, indexed like its snapshot's tables.
fn report(id: usize, w: &Worker, batches: u64, hist: Histogram<u64>) -> Report {
    Report {
        worker: id,
        counters: w.counters().clone(),
        batches,
        hist,
        epoch: w.snapshot().epoch,
        reals: w.real_counters().to_vec(),
        urls: w.redirects_by_url().to_vec(),
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
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
    let mut hist = new_hist();
    let mut batches = 0u64;
    let mut last_report = Instant::now();
    let port_of = |p: usize| if p == 0 { CLIENT } else { SERVER };
    let mut idle_since: Option<Instant> = None;
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
            let h = std::mem::replace(&mut hist, new_hist());
            let _ = ctx.reports.try_send(report(ctx.id, &w, batches, h));
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
    let _ = ctx.reports.try_send(report(ctx.id, &w, batches, hist));
}
