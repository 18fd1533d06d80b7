//! The `show` views, rendered from the current snapshot, the states and the statistics.

use crate::running::Control;
use detour_dataplane::{Counters, Reason};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One health check's state, as `show health` lists it.
#[derive(Clone, Debug)]
pub struct CheckStatus {
    pub addr: SocketAddr,
    pub up: bool,
    pub since: Instant,
    pub checks: u64,
    pub failures: u64,
    pub transitions: u64,
    pub last: String,
}

/// `show health`.
pub fn health(checks: &[CheckStatus]) -> String {
    let mut o = String::new();
    for s in checks {
        let _ = writeln!(
            o,
            "{:<21} {:<4} for {:<8} checks {} failures {} transitions {}  last: {}",
            s.addr,
            if s.up { "up" } else { "down" },
            fmt_dur(s.since.elapsed()),
            s.checks,
            s.failures,
            s.transitions,
            s.last
        );
    }
    if o.is_empty() {
        o.push_str("no health checks configured\n");
    }
    o
}

impl Control {
    /// A view named by [`crate::commands::show_view`] (`health` has no data here: see
    /// [`health`]).
    pub fn show(&self, view: &str) -> String {
        match view {
            "config" => self.model.to_config(),
            "virtual" => self.show_virtuals(false),
            "bind" => self.show_virtuals(true),
            "real" => self.show_reals(),
            "url" => self.show_urls(),
            "backup" => self.show_backups(),
            "statistics" => self.show_statistics(),
            "announce" => "not announcing (no --announce)\n".to_string(),
            _ => health(&[]),
        }
    }

    fn show_virtuals(&self, binds_only: bool) -> String {
        let s = &self.snap;
        let mut o = String::new();
        for v in &s.virtuals {
            if binds_only {
                let ids: Vec<&str> = v
                    .members
                    .iter()
                    .map(|m| s.urls[m.url as usize].id.as_str())
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
                fmt_dur(self.since(r.addr)),
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

    fn show_statistics(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "up {}  epoch {}  health transitions {}",
            fmt_dur(self.started.elapsed()),
            self.epoch,
            self.health_transitions
        );
        self.stat_virtuals(&mut o);
        self.stat_reals(&mut o);
        self.stat_workers(&mut o);
        o
    }

    fn stat_virtuals(&self, o: &mut String) {
        let t = self.stats.totals();
        let s = &self.snap;
        let url = |i: u32| t.objects.urls.get(i as usize).copied().unwrap_or(0);
        let _ = writeln!(o, "\nVIRTUALS");
        for v in &s.virtuals {
            let total: u64 = v.members.iter().map(|m| url(m.url)).sum();
            let _ = writeln!(o, "  {:<21} redirects {}", v.id, total);
            for m in &v.members {
                let u = &s.urls[m.url as usize];
                let _ = writeln!(
                    o,
                    "      {:<21} {} x {:<8} {}",
                    u.id,
                    u.code,
                    url(m.url),
                    u.template.as_str()
                );
            }
        }
        let c = &t.counters;
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
        let tls = self.snap.virtuals.iter().any(|v| v.tls);
        if let Some(line) = tls_counts(c, tls) {
            let _ = writeln!(o, "  tls: {line}");
        }
    }

    fn stat_reals(&self, o: &mut String) {
        let t = self.stats.totals();
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
        for (i, r) in self.snap.reals.iter().enumerate() {
            let rc = t.objects.reals.get(i).copied().unwrap_or_default();
            let _ = writeln!(
                o,
                "  {:<21} {:<12} {:>9} {:>10} {:>12} {:>10} {:>12} {:>7} {:>8}",
                r.id,
                r.state.keyword(),
                fmt_dur(self.since(r.addr)),
                rc.to_real,
                rc.to_real_bytes,
                rc.to_client,
                rc.to_client_bytes,
                active.get(i).copied().unwrap_or(0),
                rc.opened
            );
        }
    }

    fn stat_workers(&self, o: &mut String) {
        let _ = writeln!(o, "\nWORKERS");
        for (i, w) in self.stats.workers().iter().enumerate() {
            let (Some(w), Some((wc, batches))) = (w, self.stats.worker_since_clear(i)) else {
                let _ = writeln!(o, "  w{i}: no report yet");
                continue;
            };
            let h = &w.hist;
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
            if let Some(line) = tls_counts(&wc, false) {
                let _ = writeln!(o, "      tls: {line}");
            }
            if !w.sockets.is_empty() {
                let counts: Vec<String> =
                    w.sockets.iter().map(|(n, v)| format!("{n} {v}")).collect();
                let _ = writeln!(
                    o,
                    "      AF_XDP sockets (kernel, since start): {}",
                    counts.join(" ")
                );
            }
        }
        let c = self.stats.totals().counters;
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
    }
}

/// The TLS counters (every `tls_*` of [`Counters::fields`], so a new one shows by itself)
/// and the TLS drops, as `handshakes 3  resumed 1 ... deferred 0  full 0`; `None` when all
/// are zero and `always` is false.
fn tls_counts(c: &Counters, always: bool) -> Option<String> {
    let drops = c
        .drops_by_reason()
        .filter_map(|(r, n)| Some((r.strip_prefix("tls_")?, n)));
    let counts: Vec<(&str, u64)> = c
        .fields()
        .into_iter()
        .filter_map(|(f, n)| Some((f.strip_prefix("tls_")?, n)))
        .chain(drops)
        .collect();
    if !always && counts.iter().all(|(_, n)| *n == 0) {
        return None;
    }
    let parts: Vec<String> = counts.iter().map(|(f, n)| format!("{f} {n}")).collect();
    Some(parts.join("  "))
}

/// A duration as `4.2s`, `3m12s`, `2h5m`, `1d3h`.
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
