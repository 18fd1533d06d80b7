//! The control thread's loop, once the workers run: every tick (20 ms, or at once when a
//! command comes) it merges the workers' reports, applies health transitions, SIGHUP and
//! ctl commands to the control plane, hands every new snapshot to the workers and the XDP
//! maps, refreshes MACs every 2 s, feeds connection counts to least connections and
//! publishes the metrics text every 0.5 s, prints the summary line, and keeps the route
//! announcements in step with the snapshot ([`crate::announce`]).

use crate::announce::Lifecycle;
use crate::log::Event;
use crate::serve::{self, Board, Request};
use crate::summary::summary_line;
use crate::worker::Msg;
use crate::{health, notify};
use crossbeam_channel::Receiver;
use crossbeam_queue::ArrayQueue;
use detour_config::Snapshot;
use detour_control::show::CheckStatus;
use detour_control::{Control, Outcome, Report};
use detour_dataplane::Counters;
use detour_xsk::steer::Steer;
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the loop drives.
pub struct Loop {
    pub control: Control,
    pub steers: Vec<Steer>,
    pub kernel: Vec<Ipv4Addr>,
    pub inboxes: Vec<Arc<ArrayQueue<Msg>>>,
    pub reports: Receiver<Report>,
    pub checker: health::Health,
    pub transitions: Receiver<health::Transition>,
    pub requests: Receiver<Request>,
    pub ctl: serve::Server,
    pub metrics: Option<serve::Server>,
    pub board: Board,
    pub summary_every: Duration,
    pub started: Instant,
    /// Every snapshot handed to the workers is also held here until no worker holds it, so
    /// the last reference, and the freeing of its tables, is always dropped on this thread,
    /// never on a worker's (the quiescent-state idea of DPDK's RCU, by reference counts).
    pub held: Vec<Arc<Snapshot>>,
    pub timers: Timers,
    /// The routes announced for the BGP speaker (`--announce`; inert without it).
    pub announce: Lifecycle,
    /// `--cookie-secret-file`, re-read after every reload or config change.
    pub cookie_secret_file: Option<std::path::PathBuf>,
}

/// When each periodic job last ran, and the summary's running figures.
pub struct Timers {
    neigh: Instant,
    conns: Instant,
    summary: Instant,
    prev_total: Counters,
    interval: Histogram<u64>,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            neigh: Instant::now(),
            conns: Instant::now(),
            summary: Instant::now(),
            prev_total: Counters::default(),
            interval: Histogram::<u64>::new(3).expect("3 significant digits"),
        }
    }
}

impl Loop {
    /// One tick; `hup`: a SIGHUP came.
    pub fn tick(&mut self, hup: bool) {
        self.held.retain(|s| Arc::strong_count(s) > 1);
        while let Ok(r) = self.reports.try_recv() {
            let _ = self.timers.interval.add(&r.hist);
            self.control.stats.report(r);
        }
        let health_changed = self.health();
        let mut config_changed = false;
        if hup {
            notify::notify(notify::State::Reloading);
            let o = self.control.reload();
            log_outcome("SIGHUP reload", &o);
            notify::notify(notify::State::Ready);
            config_changed |= o.changed();
        }
        while let Ok(req) = self.requests.try_recv() {
            config_changed |= self.answer(req);
        }
        self.after(config_changed, health_changed);
        self.periodic();
        let checker = &self.checker;
        self.announce
            .follow(&self.control.snap, || checker.status());
        // Sleep until the next tick, or until a command comes (answered at once).
        if let Ok(req) = self.requests.recv_timeout(Duration::from_millis(20)) {
            let changed = self.answer(req);
            self.after(changed, false);
        }
    }

    /// Apply the health transitions waiting; true when the snapshot changed.
    fn health(&mut self) -> bool {
        let mut changed = false;
        while let Ok(t) = self.transitions.try_recv() {
            let at = t.at.saturating_duration_since(self.started).as_secs_f64();
            if t.up {
                crate::log!(
                    Event::HealthRecovered,
                    "[{at:.1}s] real {} back in service: {}",
                    t.addr,
                    t.reason
                );
            } else {
                crate::log!(
                    Event::HealthFailed,
                    "[{at:.1}s] real {} failed: {} (detected in {} ms)",
                    t.addr,
                    t.reason,
                    t.detection.as_millis()
                );
            }
            changed |= self.control.health(t.addr, t.up);
        }
        changed
    }

    /// After a change: health checks follow the config; workers and XDP maps the snapshot.
    fn after(&mut self, config_changed: bool, snapshot_changed: bool) {
        if config_changed {
            self.reread_secret();
            self.checker.update(health::targets(&self.control.model));
            if self.checker.ignored() > 0 {
                crate::log!(
                    Event::HealthNotStarted,
                    "{} health check(s) not started (see `show health`)",
                    self.checker.ignored()
                );
            }
        }
        if config_changed || snapshot_changed {
            crate::run::steer_all(&mut self.steers, &self.control.snap, &self.kernel);
            self.push();
        }
    }

    fn push(&mut self) {
        let snap = self.control.snap.clone();
        self.held.push(snap.clone());
        for q in &self.inboxes {
            q.force_push(Msg::Snapshot(snap.clone()));
        }
    }

    fn periodic(&mut self) {
        if self.timers.neigh.elapsed() >= Duration::from_secs(2) {
            self.timers.neigh = Instant::now();
            if self.control.refresh_neighbours() {
                self.push();
                crate::log!(
                    Event::NeighboursChanged,
                    "neighbours changed; snapshot epoch {} sent to the workers",
                    self.control.epoch
                );
            }
        }
        if self.timers.conns.elapsed() >= Duration::from_millis(500) {
            self.timers.conns = Instant::now();
            let conns = Arc::new(self.control.active_conns());
            for q in &self.inboxes {
                let _ = q.push(Msg::Conns(self.control.epoch, conns.clone()));
            }
            if self.metrics.is_some() {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let status = self
                    .control
                    .status_json(&check_statuses(&self.checker), now_ms);
                self.board.publish(self.prometheus(), status);
            }
        }
        if self.timers.summary.elapsed() >= self.summary_every {
            let secs = self.timers.summary.elapsed().as_secs_f64();
            self.timers.summary = Instant::now();
            let total = self.control.stats.totals().counters;
            let t = &mut self.timers;
            crate::log!(
                Event::Summary,
                "{}",
                summary_line(
                    self.started.elapsed(),
                    secs,
                    &t.prev_total,
                    &total,
                    &t.interval,
                    &self.control
                )
            );
            t.prev_total = total;
            t.interval.reset();
        }
    }

    /// Answer one ctl command; true when the configuration changed.
    fn answer(&mut self, req: Request) -> bool {
        let words: Vec<&str> = req.line.split_whitespace().collect();
        let (text, changed) = match words.as_slice() {
            [show, view]
                if show.eq_ignore_ascii_case("show")
                    && detour_control::commands::show_view(view) == Some("health") =>
            {
                (show_health(&self.checker), false)
            }
            [show, view]
                if show.eq_ignore_ascii_case("show")
                    && detour_control::commands::show_view(view) == Some("announce") =>
            {
                (self.announce.show(), false)
            }
            _ => {
                let o = self.control.command(&req.line);
                log_outcome(&format!("ctl `{}`", req.line.escape_debug()), &o);
                (o.text(), o.changed())
            }
        };
        let _ = req.reply.try_send(text);
        changed
    }

    /// The metrics text: the control plane's, and the serving counts of both listeners.
    fn prometheus(&self) -> String {
        let mut o = self.control.prometheus();
        o.push_str(&self.announce.prometheus());
        o.push_str("# HELP detour_listener_connections_total Connections to the control socket and the metrics endpoint, by outcome.\n# TYPE detour_listener_connections_total counter\n");
        let listeners = std::iter::once(("ctl", &self.ctl))
            .chain(self.metrics.as_ref().map(|m| ("metrics", m)));
        for (name, srv) in listeners {
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

    /// Re-read `--cookie-secret-file`; a changed secret makes a new snapshot. A file that
    /// became unreadable or invalid keeps the running secret.
    fn reread_secret(&mut self) {
        let Some(p) = &self.cookie_secret_file else {
            return;
        };
        match crate::secret::read(p) {
            Ok(s) if self.control.cookie_secrets != Some(s) => {
                if let Err(e) = self.control.set_cookie_secrets(s) {
                    crate::log!(Event::ConfigRefused, "{e}; the running certificates stay");
                }
                crate::log!(
                    Event::ConfigApplied,
                    "cookie secret changed ({}); the previous one is accepted for a grace window",
                    p.display()
                );
            }
            Ok(_) => {}
            Err(e) => crate::log!(Event::ConfigRefused, "{e}; the running cookie secret stays"),
        }
    }

    /// Stop the health checks and take the workers' last reports.
    pub fn finish(&mut self) {
        while let Ok(r) = self.reports.try_recv() {
            self.control.stats.report(r);
        }
        self.checker.stop();
    }
}

fn show_health(h: &health::Health) -> String {
    detour_control::show::health(&check_statuses(h))
}

fn check_statuses(h: &health::Health) -> Vec<CheckStatus> {
    h.status()
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
        .collect()
}

/// A command's or a reload's effect on the running config, logged (shown views are not).
fn log_outcome(what: &str, o: &Outcome) {
    match o {
        Outcome::Applied { epoch, restart } => crate::log!(
            Event::ConfigApplied,
            "{what}: epoch {epoch}{}",
            if *restart {
                " (part of it at the next start)"
            } else {
                ""
            }
        ),
        Outcome::Reloaded { file, epoch } => {
            crate::log!(Event::ConfigApplied, "{what}: {file}, epoch {epoch}")
        }
        Outcome::Written { file, .. } => crate::log!(Event::ConfigWritten, "{what}: {file}"),
        Outcome::Refused(why) => crate::log!(
            Event::ConfigRefused,
            "{what}: {}; the running config stays",
            why.join("; ")
        ),
        Outcome::Shown(_) => {}
    }
}
