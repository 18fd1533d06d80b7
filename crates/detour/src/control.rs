//! The control thread's state: the running configuration, the health overlay, the current
//! snapshot, and the statistics merged from the workers; and what `detour ctl` commands do
//! to them. Every change builds a new snapshot; nothing here runs on a worker.

use detour_config::lang::{self, Command, State};
use detour_config::model::Model;
use detour_config::Snapshot;
use detour_dataplane::{Counters, RealCounters, Reason};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a worker publishes about twice a second (cumulative since it started).
pub struct Report {
    pub worker: usize,
    pub counters: Counters,
    pub batches: u64,
    /// Batch service times since the worker's previous report.
    pub hist: Histogram<u64>,
    pub epoch: u64,
    pub reals: Vec<(SocketAddrV4, RealCounters)>,
    /// (url id, implicit, redirects).
    pub urls: Vec<(String, bool, u64)>,
}

/// Per-worker view kept by the control thread.
struct WorkerView {
    counters: Counters,
    batches: u64,
    hist: Histogram<u64>,
    epoch: u64,
    reals: BTreeMap<SocketAddrV4, RealCounters>,
    urls: BTreeMap<(String, bool), u64>,
}

/// Totals over the workers (or at the last `clear statistics`).
#[derive(Default, Clone)]
pub struct Baseline {
    pub counters: Counters,
    batches: u64,
    reals: BTreeMap<SocketAddrV4, RealCounters>,
    urls: BTreeMap<(String, bool), u64>,
}

pub struct Control {
    pub path: PathBuf,
    /// The running configuration, with the states the operator set.
    pub model: Model,
    /// Reals the health checks found down (shown as `failed` while configured in service).
    pub health_down: BTreeSet<SocketAddrV4>,
    pub gateway: Ipv4Addr,
    pub epoch: u64,
    pub snap: Arc<Snapshot>,
    pub missing: Vec<String>,
    routes: crate::neigh::Routes,
    /// Effective state of each real and since when.
    state_since: BTreeMap<SocketAddrV4, (State, Instant)>,
    workers: Vec<Option<WorkerView>>,
    base: Baseline,
    /// Each worker's counters and batches at the last `clear statistics`.
    worker_base: Vec<(Counters, u64)>,
    pub health_transitions: u64,
    pub started: Instant,
}

/// What a command did.
pub struct Outcome {
    pub answer: String,
    /// The configuration changed: push the new snapshot, update steering and health.
    pub changed: bool,
}

impl Outcome {
    fn text(answer: String) -> Outcome {
        Outcome {
            answer,
            changed: false,
        }
    }
    fn error(e: impl std::fmt::Display) -> Outcome {
        Outcome {
            answer: format!("error: {e}\n"),
            changed: false,
        }
    }
}

impl Control {
    pub fn new(path: PathBuf, model: Model, gateway: Ipv4Addr, workers: usize) -> Control {
        let mut c = Control {
            path,
            model,
            health_down: BTreeSet::new(),
            gateway,
            epoch: 0,
            snap: Arc::new(Snapshot::compile(&Model::default(), 0)),
            missing: Vec::new(),
            routes: Default::default(),
            state_since: BTreeMap::new(),
            workers: (0..workers).map(|_| None).collect(),
            base: Baseline::default(),
            worker_base: Vec::new(),
            health_transitions: 0,
            started: Instant::now(),
        };
        c.rebuild();
        c
    }

    /// The model the data path runs: the running config with health failures applied.
    pub fn effective(&self) -> Model {
        let mut m = self.model.clone();
        for r in &mut m.reals {
            if self.health_down.contains(&r.addr) && r.state.forwards() {
                r.state = State::Failed;
            }
        }
        m
    }

    /// Build the next snapshot (MACs from the kernel) and remember state changes.
    pub fn rebuild(&mut self) -> Arc<Snapshot> {
        self.epoch += 1;
        let s = crate::run::snapshot(
            &self.effective(),
            self.epoch,
            self.gateway,
            &mut self.missing,
            &mut self.routes,
        );
        let now = Instant::now();
        for r in &s.reals {
            let e = self.state_since.entry(r.addr).or_insert((r.state, now));
            if e.0 != r.state {
                *e = (r.state, now);
            }
        }
        self.snap = Arc::new(s);
        self.snap.clone()
    }

    /// Rebuild only if the neighbours' MACs changed; true when a new snapshot was made.
    pub fn refresh_neighbours(&mut self) -> bool {
        let mut missing = Vec::new();
        let fresh = crate::run::snapshot(
            &self.effective(),
            self.epoch + 1,
            self.gateway,
            &mut missing,
            &mut self.routes,
        );
        let macs = |s: &Snapshot| {
            (
                s.reals.iter().map(|r| r.mac).collect::<Vec<_>>(),
                s.gateway_mac,
            )
        };
        if macs(&fresh) == macs(&self.snap) {
            return false;
        }
        self.epoch += 1;
        self.missing = missing;
        self.snap = Arc::new(fresh);
        true
    }

    /// A health transition: returns true when the snapshot must change.
    pub fn health(&mut self, addr: SocketAddrV4, up: bool) -> bool {
        self.health_transitions += 1;
        let changed = if up {
            self.health_down.remove(&addr)
        } else {
            self.health_down.insert(addr)
        };
        if changed {
            self.rebuild();
        }
        changed
    }

    /// Run one `detour ctl` command.
    pub fn command(&mut self, line: &str) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => Outcome::error("expected a command (try `show config`)"),
            ["show", what] => match *what {
                "config" => Outcome::text(self.model.to_config()),
                "virtual" | "virtuals" => Outcome::text(self.show_virtuals(false)),
                "real" | "reals" => Outcome::text(self.show_reals()),
                "url" | "urls" => Outcome::text(self.show_urls()),
                "bind" | "binds" => Outcome::text(self.show_virtuals(true)),
                "backup" | "backups" => Outcome::text(self.show_backups()),
                "statistics" | "stats" => Outcome::text(self.show_statistics()),
                other => Outcome::error(format!(
                    "expected `show virtual|real|url|bind|backup|statistics|health|config`, found {}",
                    detour_config::error::quoted(other)
                )),
            },
            ["show"] => Outcome::error("expected `show virtual|real|url|bind|backup|statistics|config`"),
            ["reload"] => self.reload(),
            ["write", "memory"] | ["write", "mem"] => self.write_memory(),
            ["clear", "statistics"] | ["clear", "stats"] => {
                self.base = self.totals_now();
                // Batch service times start again too (they are kept here, not in workers).
                self.worker_base = self
                    .workers
                    .iter()
                    .map(|w| w.as_ref().map_or((Counters::default(), 0), |w| (w.counters.clone(), w.batches)))
                    .collect();
                for w in self.workers.iter_mut().flatten() {
                    w.hist.reset();
                }
                Outcome::text("ok: statistics cleared\n".into())
            }
            _ => self.config_command(line),
        }
    }

    fn config_command(&mut self, line: &str) -> Outcome {
        let cmd = match lang::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Outcome::text("ok: nothing to do\n".into()),
            Err(e) => return Outcome::error(e.at("<ctl>", 1)),
        };
        let mut next = self.model.clone();
        if let Err(e) = next.apply(&cmd) {
            return Outcome::error(e.at("<ctl>", 1));
        }
        let note = match cmd {
            Command::Interface { .. }
            | Command::Cores { .. }
            | Command::Metrics { .. }
            | Command::Gateway { .. } => " (recorded; takes effect when detour restarts)",
            _ => "",
        };
        self.model = next;
        self.rebuild();
        Outcome {
            answer: format!("ok: epoch {}{note}\n", self.epoch),
            changed: true,
        }
    }

    pub fn reload(&mut self) -> Outcome {
        let name = self.path.display().to_string();
        let text = match crate::files::read_config(&self.path) {
            Ok(t) => t,
            Err(e) => return Outcome::error(format!("{name}: {e}; running config unchanged")),
        };
        match detour_config::load_bytes(&text, &name) {
            Ok(m) => {
                self.model = m;
                self.rebuild();
                Outcome {
                    answer: format!("ok: reloaded {name}, epoch {}\n", self.epoch),
                    changed: true,
                }
            }
            Err(errors) => {
                let mut a = String::new();
                for e in &errors {
                    let _ = writeln!(a, "error: {e}");
                }
                let _ = writeln!(
                    a,
                    "error: {} error(s) in {name}; running config unchanged",
                    errors.len()
                );
                Outcome::text(a)
            }
        }
    }

    /// Save the running config atomically: temp file, fsync, rename, fsync the directory.
    pub fn write_memory(&mut self) -> Outcome {
        let text = format!(
            "# written by detour `write memory` ({}s after the Unix epoch)\n{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            self.model.to_config()
        );
        match crate::files::write_config(&self.path, &text) {
            Ok(target) if target == self.path => {
                Outcome::text(format!("ok: wrote {}\n", self.path.display()))
            }
            Ok(target) => Outcome::text(format!(
                "ok: wrote {} (through {})\n",
                target.display(),
                self.path.display()
            )),
            Err(e) => Outcome::error(e),
        }
    }

    // ---- statistics -------------------------------------------------------------------------

    pub fn report(&mut self, r: Report) {
        let w = r.worker;
        let Some(slot) = self.workers.get_mut(w) else {
            return;
        };
        let view = slot.get_or_insert_with(|| WorkerView {
            counters: Counters::default(),
            batches: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            epoch: 0,
            reals: BTreeMap::new(),
            urls: BTreeMap::new(),
        });
        view.counters = r.counters;
        view.batches = r.batches;
        let _ = view.hist.add(&r.hist);
        view.epoch = r.epoch;
        // Worker counters follow reals and URLs by identity across snapshots; ones that left
        // the configuration keep their last value here.
        for (a, c) in r.reals {
            view.reals.insert(a, c);
        }
        for (id, implicit, n) in r.urls {
            view.urls.insert((id, implicit), n);
        }
    }

    fn totals_now(&self) -> Baseline {
        let mut b = Baseline::default();
        for v in self.workers.iter().flatten() {
            b.counters.add(&v.counters);
            b.batches += v.batches;
            for (a, c) in &v.reals {
                b.reals.entry(*a).or_default().add(c);
            }
            for (k, n) in &v.urls {
                *b.urls.entry(k.clone()).or_default() += n;
            }
        }
        b
    }

    /// Totals since the last `clear statistics`.
    pub fn totals(&self) -> Baseline {
        let mut t = self.totals_now();
        let b = &self.base;
        t.counters = sub_counters(&t.counters, &b.counters);
        t.batches -= b.batches.min(t.batches);
        for (a, c) in t.reals.iter_mut() {
            if let Some(o) = b.reals.get(a) {
                *c = sub_real(c, o);
            }
        }
        for (k, n) in t.urls.iter_mut() {
            *n -= b.urls.get(k).copied().unwrap_or(0).min(*n);
        }
        t
    }

    /// Active connections per real of the current snapshot (opened - closed, summed over
    /// workers, never below zero), for least connections.
    pub fn active_conns(&self) -> Vec<u32> {
        let t = self.totals_now();
        self.snap
            .reals
            .iter()
            .map(|r| {
                t.reals.get(&r.addr).map_or(0, |c| {
                    c.opened.saturating_sub(c.closed).min(u64::from(u32::MAX)) as u32
                })
            })
            .collect()
    }

    pub fn worker_epochs(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.as_ref().map_or(0, |w| w.epoch))
            .collect()
    }

    pub fn worker_rx(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.as_ref().map_or(0, |w| w.counters.rx))
            .collect()
    }

    fn show_virtuals(&self, binds_only: bool) -> String {
        let s = &self.snap;
        let mut o = String::new();
        for v in &s.virtuals {
            if binds_only {
                let ids: Vec<String> = v
                    .members
                    .iter()
                    .map(|m| s.urls[m.url as usize].id.clone())
                    .collect();
                let _ = writeln!(o, "bind {} {}", v.id, ids.join(" "));
                continue;
            }
            let _ = writeln!(
                o,
                "{:<21} {:<12} predictor {:<10} -> {}",
                v.id,
                v.state.keyword(),
                v.predictor.keyword(),
                s.describe(v.action)
            );
            for m in &v.members {
                let u = &s.urls[m.url as usize];
                let _ = writeln!(
                    o,
                    "    {:<21} weight {:<4} {:<12} {} {}",
                    u.id,
                    m.weight,
                    m.state.keyword(),
                    u.code,
                    u.template.as_str()
                );
            }
        }
        o
    }

    fn show_reals(&self) -> String {
        let s = &self.snap;
        let mut o = String::new();
        for r in &s.reals {
            let since = self
                .state_since
                .get(&r.addr)
                .map_or(Duration::ZERO, |(_, t)| t.elapsed());
            let health = if self.health_down.contains(&r.addr) {
                " (health check: down)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "{:<21} {:<12} for {:<10} weight {:<4} dip {:<21} DIP traffic: {}{}",
                r.id,
                r.state.keyword(),
                fmt_dur(since),
                r.weight,
                r.dip.map_or("-".to_string(), |d| d.to_string()),
                s.describe(r.action),
                health
            );
        }
        o
    }

    fn show_urls(&self) -> String {
        let mut o = String::new();
        for u in self.snap.urls.iter().filter(|u| !u.implicit) {
            let _ = writeln!(
                o,
                "{:<16} {} {:<12} {}",
                u.id,
                u.code,
                u.state.keyword(),
                u.template.as_str()
            );
        }
        o
    }

    fn show_backups(&self) -> String {
        let s = &self.snap;
        let mut o = String::new();
        for r in &s.reals {
            if let Some(b) = &r.backup {
                let _ = writeln!(
                    o,
                    "real {:<21} backup {:<21} now: {}",
                    r.id,
                    b,
                    s.describe(r.action)
                );
            }
        }
        for v in &s.virtuals {
            if let Some(b) = &v.backup {
                let _ = writeln!(
                    o,
                    "virtual {:<18} backup {:<21} when nothing is eligible: {}",
                    v.id,
                    b,
                    s.describe(v.fallback)
                );
            }
        }
        o
    }

    pub fn show_statistics(&self) -> String {
        let t = self.totals();
        let c = &t.counters;
        let s = &self.snap;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "up {}  epoch {}  health transitions {}",
            fmt_dur(self.started.elapsed()),
            self.epoch,
            self.health_transitions
        );
        let _ = writeln!(o, "\nVIRTUALS");
        for v in &s.virtuals {
            let total: u64 = v
                .members
                .iter()
                .map(|m| {
                    let u = &s.urls[m.url as usize];
                    t.urls
                        .get(&(u.id.clone(), u.implicit))
                        .copied()
                        .unwrap_or(0)
                })
                .sum();
            let _ = writeln!(o, "  {:<21} redirects {}", v.id, total);
            for m in &v.members {
                let u = &s.urls[m.url as usize];
                let n = t
                    .urls
                    .get(&(u.id.clone(), u.implicit))
                    .copied()
                    .unwrap_or(0);
                let _ = writeln!(
                    o,
                    "      {:<21} {} x {:<8} {}",
                    u.id,
                    u.code,
                    n,
                    u.template.as_str()
                );
            }
        }
        let _ = writeln!(
            o,
            "  responses: redirects {}  400 {}  414 {}  431 {}  503 {}  syn-acks {}  rst {}",
            c.redirects,
            c.bad_requests,
            c.uri_too_long,
            c.too_large,
            c.unavailable,
            c.syn_acks,
            c.rsts
        );
        let _ = writeln!(o, "\nREALS");
        let _ = writeln!(
            o,
            "  {:<21} {:<12} {:>9} {:>10} {:>12} {:>10} {:>12} {:>7} {:>8}",
            "real",
            "state",
            "for",
            "pkts in",
            "bytes in",
            "pkts out",
            "bytes out",
            "active",
            "opened"
        );
        let active = self.active_conns();
        for (i, r) in s.reals.iter().enumerate() {
            let rc = t.reals.get(&r.addr).copied().unwrap_or_default();
            let since = self
                .state_since
                .get(&r.addr)
                .map_or(Duration::ZERO, |(_, t)| t.elapsed());
            let _ = writeln!(
                o,
                "  {:<21} {:<12} {:>9} {:>10} {:>12} {:>10} {:>12} {:>7} {:>8}",
                r.id,
                r.state.keyword(),
                fmt_dur(since),
                rc.to_real,
                rc.to_real_bytes,
                rc.to_client,
                rc.to_client_bytes,
                active.get(i).copied().unwrap_or(0),
                rc.opened
            );
        }
        let _ = writeln!(o, "\nWORKERS");
        for (i, w) in self.workers.iter().enumerate() {
            let Some(w) = w else {
                let _ = writeln!(o, "  w{i}: no report yet");
                continue;
            };
            let h = &w.hist;
            let mut wc = w.counters.clone();
            let mut batches = w.batches;
            if let Some((c0, b0)) = self.worker_base.get(i) {
                wc.sub(c0);
                batches = batches.saturating_sub(*b0);
            }
            let _ = writeln!(
                o,
                "  w{i}: rx {} tx {} batches {} drops {}  batch service time p50 {}us p90 {}us p99 {}us p99.9 {}us max {}us  epoch {}",
                wc.rx,
                wc.tx,
                batches,
                wc.drops(),
                h.value_at_quantile(0.5) / 1000,
                h.value_at_quantile(0.9) / 1000,
                h.value_at_quantile(0.99) / 1000,
                h.value_at_quantile(0.999) / 1000,
                h.max() / 1000,
                w.epoch
            );
        }
        let drops: Vec<String> = c
            .drops_by_reason()
            .filter(|(r, n)| *n > 0 && *r != Reason::NothingToAnswer.name())
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "  drops by reason (since clear): {}",
            if drops.is_empty() {
                "none".into()
            } else {
                drops.join(", ")
            }
        );
        let _ = writeln!(
            o,
            "  pure ACKs and RSTs the responder absorbed: {}",
            c.dropped(Reason::NothingToAnswer)
        );
        o
    }

    /// The Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let t = self.totals_now();
        let s = &self.snap;
        let mut o = String::new();
        let _ = writeln!(o, "# HELP detour_up_seconds Seconds since detour started.\n# TYPE detour_up_seconds gauge");
        let _ = writeln!(
            o,
            "detour_up_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = writeln!(
            o,
            "# TYPE detour_config_epoch gauge\ndetour_config_epoch {}",
            self.epoch
        );
        let _ = writeln!(o, "# HELP detour_events_total Frames and answers by kind, all workers.\n# TYPE detour_events_total counter");
        for (name, v) in t.counters.fields() {
            let _ = writeln!(o, "detour_events_total{{kind=\"{name}\"}} {v}");
        }
        let _ = writeln!(o, "# HELP detour_drops_total Frames dropped, by reason.\n# TYPE detour_drops_total counter");
        for (r, n) in t.counters.drops_by_reason() {
            let _ = writeln!(o, "detour_drops_total{{reason=\"{r}\"}} {n}");
        }
        let _ = writeln!(o, "# HELP detour_redirects_total Redirects sent, by URL.\n# TYPE detour_redirects_total counter");
        for u in &s.urls {
            let n = t
                .urls
                .get(&(u.id.clone(), u.implicit))
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                o,
                "detour_redirects_total{{url=\"{}\",code=\"{}\"}} {n}",
                u.id, u.code
            );
        }
        let _ = writeln!(o, "# TYPE detour_real_packets_total counter\n# TYPE detour_real_bytes_total counter\n# TYPE detour_real_connections_opened_total counter\n# TYPE detour_real_active_connections gauge\n# TYPE detour_real_in_service gauge");
        let active = self.active_conns();
        for (i, r) in s.reals.iter().enumerate() {
            let rc = t.reals.get(&r.addr).copied().unwrap_or_default();
            let l = format!("real=\"{}\"", r.id);
            let _ = writeln!(
                o,
                "detour_real_packets_total{{{l},direction=\"to_real\"}} {}",
                rc.to_real
            );
            let _ = writeln!(
                o,
                "detour_real_packets_total{{{l},direction=\"to_client\"}} {}",
                rc.to_client
            );
            let _ = writeln!(
                o,
                "detour_real_bytes_total{{{l},direction=\"to_real\"}} {}",
                rc.to_real_bytes
            );
            let _ = writeln!(
                o,
                "detour_real_bytes_total{{{l},direction=\"to_client\"}} {}",
                rc.to_client_bytes
            );
            let _ = writeln!(
                o,
                "detour_real_connections_opened_total{{{l}}} {}",
                rc.opened
            );
            let _ = writeln!(
                o,
                "detour_real_active_connections{{{l}}} {}",
                active.get(i).copied().unwrap_or(0)
            );
            let _ = writeln!(
                o,
                "detour_real_in_service{{{l},state=\"{}\"}} {}",
                r.state.keyword(),
                u8::from(r.state.takes_new())
            );
        }
        let _ = writeln!(o, "# HELP detour_batch_seconds Batch service time per worker.\n# TYPE detour_batch_seconds summary");
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(w) = w {
                for q in [0.5, 0.9, 0.99, 0.999] {
                    let _ = writeln!(
                        o,
                        "detour_batch_seconds{{worker=\"{i}\",quantile=\"{q}\"}} {:.9}",
                        w.hist.value_at_quantile(q) as f64 / 1e9
                    );
                }
                let _ = writeln!(
                    o,
                    "detour_batch_seconds_count{{worker=\"{i}\"}} {}",
                    w.batches
                );
                let _ = writeln!(
                    o,
                    "detour_worker_frames_total{{worker=\"{i}\",direction=\"rx\"}} {}",
                    w.counters.rx
                );
                let _ = writeln!(
                    o,
                    "detour_worker_frames_total{{worker=\"{i}\",direction=\"tx\"}} {}",
                    w.counters.tx
                );
            }
        }
        o
    }
}

fn sub_counters(a: &Counters, b: &Counters) -> Counters {
    let mut out = a.clone();
    out.sub(b);
    out
}

fn sub_real(a: &RealCounters, b: &RealCounters) -> RealCounters {
    RealCounters {
        to_real: a.to_real.saturating_sub(b.to_real),
        to_real_bytes: a.to_real_bytes.saturating_sub(b.to_real_bytes),
        to_client: a.to_client.saturating_sub(b.to_client),
        to_client_bytes: a.to_client_bytes.saturating_sub(b.to_client_bytes),
        opened: a.opened.saturating_sub(b.opened),
        closed: a.closed.saturating_sub(b.closed),
    }
}

pub fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 {
        format!("{}d{}h", s / 86400, s % 86400 / 3600)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}
