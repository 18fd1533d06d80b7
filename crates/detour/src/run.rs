//! `detour run`: the wiring of the control thread and the per-queue workers.
//!
//! The control thread binds the control socket (first, so a path that is not ours is
//! refused before anything is touched) and the metrics endpoint (both served on threads of
//! their own: [`crate::serve`]), loads the control plane, waits briefly for MACs, attaches
//! the XDP steering program, starts one worker per queue (pinned with core_affinity; see
//! [`crate::worker`]), starts the health checks, and runs [`crate::ctlloop::Loop`] until
//! SIGINT/SIGTERM or `--duration-secs`. Workers never lock: they pick up new snapshots (and
//! connection counts) between batches from their own lock-free queues.

use crate::announce::{Announcer, Lifecycle};
use crate::ctlloop::{Loop, Timers};
use crate::log::Event;
use crate::serve::{self, Board};
use crate::summary::totals_line;
use crate::worker::{worker_main, Msg, Started, WorkerCtx};
use crate::{health, neigh, notify, privs};
use crossbeam_channel::Receiver;
use crossbeam_queue::ArrayQueue;
use detour_config::{model::Model, Snapshot};
use detour_control::{Control, Report};
use detour_dataplane::WorkerConfig;
use detour_xsk::io::IoConfig;
use detour_xsk::steer::{kernel_addrs, kernel_addrs6, Steer};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// SYN-ACKs per full batch (`None`: no bound).
    pub syn_budget: Option<usize>,
    /// Announce what can be served through this TUN device's routes in this table.
    pub announce: Option<(String, u32)>,
    /// After SIGTERM/SIGINT: withdraw the announcements, keep serving this long, then stop.
    pub drain: Duration,
    /// Read the cookie secret from this owner-only file (at start and on every reload).
    pub cookie_secret_file: Option<PathBuf>,
}

/// The interfaces and addresses detour runs on.
struct Net {
    ifaces: Vec<String>,
    macs: [[u8; 6]; 2],
    /// The kernel's own addresses on them (left to the kernel by the XDP program).
    kernel: Vec<Ipv4Addr>,
    gateway: Ipv4Addr,
}

fn net(plan: &Plan) -> Result<Net, String> {
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
    crate::log!(
        Event::Interfaces,
        "client side {} ({}), server side {} ({})",
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
    Ok(Net {
        ifaces,
        macs,
        kernel,
        gateway,
    })
}

pub fn steer_all(steers: &mut [Steer], snap: &Snapshot, kernel: &[Ipv4Addr]) {
    let owned: Vec<Ipv4Addr> = snap.owned_addrs().collect();
    let owned6: Vec<std::net::Ipv6Addr> = snap.owned_addrs6().collect();
    let (mut reals, mut reals6) = (Vec::new(), Vec::new());
    for r in &snap.reals {
        match r.addr {
            std::net::SocketAddr::V4(a) => reals.push(a),
            std::net::SocketAddr::V6(a) => reals6.push(a),
        }
    }
    for s in steers {
        let kernel6 = kernel_addrs6(s.iface());
        let set = s
            .set_addresses(&owned, &reals, kernel)
            .and_then(|()| s.set_addresses6(&owned6, &reals6, &kernel6));
        if let Err(e) = set {
            crate::log!(Event::XdpMaps, "XDP maps on {}: {e}", s.iface());
        }
    }
}

/// The running workers.
struct Workers {
    inboxes: Vec<Arc<ArrayQueue<Msg>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    reports: Receiver<Report>,
}

impl Workers {
    fn stop(self) -> Receiver<Report> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
        self.reports
    }
}

/// Start one worker per queue, wait until each has its sockets, and put them in the XDP
/// programs' socket maps.
fn start_workers(
    plan: &Plan,
    net: &Net,
    snap: &Arc<Snapshot>,
    steers: &mut [Steer],
    keys: ([u8; 32], [u8; 16]),
) -> Result<Workers, String> {
    let (report_tx, reports) = crossbeam_channel::bounded::<Report>(64);
    let (start_tx, start_rx) =
        crossbeam_channel::bounded::<Result<Started, String>>(plan.queues as usize);
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = Workers {
        inboxes: Vec::new(),
        handles: Vec::new(),
        stop: stop.clone(),
        reports,
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for q in 0..plan.queues {
        let inbox = Arc::new(ArrayQueue::<Msg>::new(8));
        w.inboxes.push(inbox.clone());
        let cfg = WorkerConfig {
            macs: net.macs,
            cookie_secret: keys.0,
            table_key: keys.1,
            kernel_addrs: net.kernel.clone(),
            one_armed: net.ifaces.len() == 1,
        };
        let core = plan
            .cores
            .get(q as usize % plan.cores.len().max(1))
            .copied();
        let core_id = core.and_then(|c| cores.iter().find(|id| id.id == c).copied());
        let ctx = WorkerCtx {
            id: q as usize,
            ifaces: net.ifaces.clone(),
            io: plan.io.clone(),
            cfg,
            snap: snap.clone(),
            inbox,
            stop: stop.clone(),
            reports: report_tx.clone(),
            idle_spin: plan.idle_spin,
            syn_budget: plan.syn_budget,
        };
        let start_tx = start_tx.clone();
        let h = std::thread::Builder::new()
            .name(format!("detour-w{q}"))
            .spawn(move || {
                if let Some(c) = core_id {
                    core_affinity::set_for_current(c);
                }
                worker_main(ctx, start_tx)
            })
            .map_err(|e| format!("spawn worker: {e}"))?;
        w.handles.push(h);
    }
    let mut mode = None;
    for _ in 0..plan.queues {
        let started = match start_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                w.stop();
                return Err(e);
            }
            Err(_) => {
                w.stop();
                return Err("a worker did not start within 15 s".into());
            }
        };
        for (port, fd) in started.fds.iter().enumerate() {
            steers[port]
                .set_socket(started.worker as u32, *fd)
                .map_err(|e| format!("XSKMAP {}: {e}", net.ifaces[port]))?;
        }
        mode.get_or_insert(started.mode);
    }
    crate::log!(
        Event::Ready,
        "{} worker(s) on {} (AF_XDP {}), config epoch {}, control socket {}",
        plan.queues,
        net.ifaces.join(" + "),
        mode.map_or("?".to_string(), |m| m.to_string()),
        snap.epoch,
        plan.ctl_socket.display()
    );
    Ok(w)
}

/// The control plane, once MACs had a little time to resolve (the rest keep being tried).
fn control(plan: &Plan, gateway: Ipv4Addr) -> Control {
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
        crate::log!(
            Event::NoMac,
            "no MAC yet for {}; their frames are dropped until resolved",
            control.missing.join(", ")
        );
    }
    control
}

/// One XDP program per interface; frames from reals are taken only on the server side.
fn attach(ifaces: &[String], client_if: &str) -> Result<Vec<Steer>, String> {
    let mut steers = Vec::new();
    for i in ifaces {
        let mut s = Steer::attach(i, None).map_err(|e| format!("XDP program on {i}: {e}"))?;
        s.set_client_side_only(ifaces.len() > 1 && i == client_if)
            .map_err(|e| format!("XDP program on {i}: {e}"))?;
        crate::log!(
            Event::XdpAttached,
            "XDP steering attached to {i} in {} mode",
            s.mode()
        );
        steers.push(s);
    }
    Ok(steers)
}

pub fn run(plan: Plan) -> Result<(), String> {
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
    let net = net(&plan)?;
    let board = Board::default();
    let metrics = match plan.model.settings.metrics {
        Some(a) => Some(serve::serve_metrics(
            a,
            board.clone(),
            serve::METRICS_LIMITS,
        )?),
        None => None,
    };
    let mut control = control(&plan, net.gateway);
    if let Some(p) = &plan.cookie_secret_file {
        if let Err(e) = control.set_cookie_secrets(crate::secret::read(p)?) {
            crate::log!(
                Event::ConfigRefused,
                "{e}; the certificates loaded at start stay"
            );
        }
    }
    let announcer = match &plan.announce {
        Some((ifname, table)) => Some(Announcer::open(ifname, *table)?),
        None => None,
    };
    // One cookie secret and one table key for the whole director, or no start.
    let keys = director_keys()?;
    let mut steers = attach(&net.ifaces, &plan.client_if)?;
    steer_all(&mut steers, &control.snap, &net.kernel);
    let workers = start_workers(&plan, &net, &control.snap, &mut steers, keys)?;
    let kept = privs::drop_after_setup(privs::effective_uid()?)?;
    crate::log!(
        Event::Capabilities,
        "capabilities after set-up: {}",
        kept.join(" ")
    );
    notify::notify(notify::State::Ready);
    let (health_tx, transitions) = crossbeam_channel::bounded(health::QUEUE);
    let checker = health::Health::start(health::targets(&control.model), health_tx);
    let started = Instant::now();
    let mut l = Loop {
        held: vec![control.snap.clone()],
        control,
        steers,
        kernel: net.kernel,
        inboxes: workers.inboxes.clone(),
        reports: workers.reports.clone(),
        checker,
        transitions,
        requests,
        ctl,
        metrics,
        board,
        summary_every: plan.summary,
        started,
        timers: Timers::default(),
        announce: Lifecycle::new(announcer, plan.drain),
        cookie_secret_file: plan.cookie_secret_file.clone(),
    };
    loop {
        let stopping =
            stop.load(Ordering::Relaxed) || plan.duration.is_some_and(|d| started.elapsed() >= d);
        // On a stop: withdraw the announcements, then serve for the drain time.
        if stopping && !l.announce.keep_serving() {
            break;
        }
        l.tick(hup.swap(false, Ordering::Relaxed));
    }
    crate::log!(
        Event::Stopping,
        "stopping after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    notify::notify(notify::State::Stopping);
    workers.stop();
    l.finish();
    crate::log!(
        Event::Stopped,
        "stopped after {:.1}s; totals: {}",
        started.elapsed().as_secs_f64(),
        totals_line(&l.control.stats.totals().counters)
    );
    Ok(())
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
