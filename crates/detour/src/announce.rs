//! Route announcements for running several directors behind ECMP.
//!
//! Contract: while `detour run` can serve an address, a host route to it (/32 for IPv4, /128
//! for IPv6) exists in a dedicated kernel routing table (`--announce-table`, default 100) through a TUN device that detour
//! itself created, non-persistent (`--announce <ifname>`). A BGP speaker in the same
//! namespace (BIRD: `protocol kernel { learn; kernel table 100; }`) imports exactly those
//! routes and offers them to the routers. The device lives only as long as detour's file
//! descriptor: if detour dies, even by SIGKILL, the kernel deletes the device and every
//! route through it, and BIRD withdraws them. Besides the served addresses, a default route
//! per family (0.0.0.0/0, ::/0) in the same table says "the reals' return traffic may come
//! through here" while the workers run and an address of that family is announced (BIRD
//! exports it on the server side only); an IPv4-only configuration never touches IPv6 routes.
//!
//! What can be announced is a pure function of the snapshot
//! ([`detour_control::announce::announceable`]). The routes are changed with `ip route` on
//! the control thread when that set changes, never per frame.
//! Nothing is announced before the health checks have settled ([`health_settled`]): every
//! target starts "up", so a director joining while a real is down would otherwise forward to
//! it until its checks have failed `fall` times.

use crate::log::Event;
use detour_config::Snapshot;
use detour_control::announce::announceable;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Announce anyway when the health checks have not settled this long after the start.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// A failed route change is tried again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// The announcements' life in `detour run`: nothing until the health checks have settled,
/// then the snapshot's [`announceable`] set, and on stop a withdrawal followed by the drain.
pub struct Lifecycle {
    announcer: Option<Announcer>,
    drain: Duration,
    started: Instant,
    /// The snapshot epoch announced (0: none yet).
    epoch: u64,
    /// When a route change last failed (tried again after [`RETRY`]).
    last_try: Option<Instant>,
    settled_at: Option<Instant>,
    drain_until: Option<Instant>,
}

impl Lifecycle {
    pub fn new(announcer: Option<Announcer>, drain: Duration) -> Lifecycle {
        Lifecycle {
            announcer,
            drain,
            started: Instant::now(),
            epoch: 0,
            last_try: None,
            settled_at: None,
            drain_until: None,
        }
    }

    /// Called while a stop is requested: withdraws at once, then keeps the loop going for
    /// the drain time. False when the loop should end now.
    pub fn keep_serving(&mut self) -> bool {
        match self.drain_until {
            None => {
                if let Some(a) = &mut self.announcer {
                    a.withdraw_all();
                }
                if self.drain.is_zero() {
                    return false;
                }
                crate::log!(
                    Event::Withdrawn,
                    "announcements withdrawn; draining: serving for {} s more",
                    self.drain.as_secs_f64()
                );
                self.drain_until = Some(Instant::now() + self.drain);
                true
            }
            Some(t) => Instant::now() < t,
        }
    }

    /// Follow the running snapshot (on each pass of the control loop). `health` is asked
    /// only until the checks have settled.
    pub fn follow(&mut self, snap: &Snapshot, health: impl FnOnce() -> Vec<crate::health::Status>) {
        let Some(a) = self.announcer.as_mut() else {
            return;
        };
        if self.drain_until.is_some() {
            return;
        }
        if self.settled_at.is_none()
            && (self.started.elapsed() > SETTLE_LIMIT || health_settled(&health()))
        {
            self.settled_at = Some(Instant::now());
        }
        // One more pass after settling, so the last health transitions are in the snapshot.
        if self
            .settled_at
            .is_none_or(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        let due = match self.last_try {
            Some(t) => t.elapsed() >= RETRY,
            None => snap.epoch != self.epoch,
        };
        if due {
            let ok = a.set(&announceable(snap), true);
            self.epoch = snap.epoch;
            self.last_try = Some(Instant::now()).filter(|_| !ok);
        }
    }

    /// `show announce`.
    pub fn show(&self) -> String {
        match &self.announcer {
            None => "not announcing (no --announce)\n".to_string(),
            Some(a) if self.drain_until.is_some() => format!("draining: {}", a.show()),
            Some(_) if self.settled_at.is_none() => {
                "waiting for the health checks' first verdicts\n".to_string()
            }
            Some(a) => a.show(),
        }
    }

    /// Prometheus lines (none without `--announce`).
    pub fn prometheus(&self) -> String {
        self.announcer
            .as_ref()
            .map_or_else(String::new, Announcer::prometheus)
    }
}

/// True once every health check has a verdict: passed at least once since its last
/// failure, or declared down.
pub fn health_settled(status: &[crate::health::Status]) -> bool {
    status.iter().all(|s| !s.up || s.ok_streak >= 1)
}

/// The TUN device and the routes through it.
pub struct Announcer {
    /// Held open for the process's lifetime: closing it deletes the device and its routes.
    _tun: tun_tap::Iface,
    ifname: String,
    table: u32,
    /// Addresses with a route now.
    current: BTreeSet<IpAddr>,
    /// The default route (return path) of each family is in the table: [IPv4, IPv6].
    return_path: [bool; 2],
    /// Routes announced or withdrawn so far.
    changes: u64,
    /// Failed `ip route` calls (their error is logged).
    pub errors: u64,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Announcer {
    /// Create the TUN device `ifname` (refused if one exists: another detour may hold it),
    /// bring it up and empty the table.
    pub fn open(ifname: &str, table: u32) -> Result<Announcer, String> {
        if ifname.is_empty() || ifname.len() > 15 || !ifname.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("--announce: `{ifname}` is not an interface name"));
        }
        if table == 0 || table >= 252 {
            return Err(format!(
                "--announce-table: {table} is reserved (use 1..=251)"
            ));
        }
        if std::path::Path::new("/sys/class/net").join(ifname).exists() {
            return Err(format!(
                "--announce: interface {ifname} exists already (another detour?)"
            ));
        }
        let tun = tun_tap::Iface::without_packet_info(ifname, tun_tap::Mode::Tun)
            .map_err(|e| format!("--announce: TUN device {ifname}: {e}"))?;
        let t = table.to_string();
        // Left over from a detour that died: routes through a device that is gone are gone
        // already, but a table may hold others put there by hand.
        let _ = ip(&["-4", "route", "flush", "table", &t]);
        let _ = ip(&["-6", "route", "flush", "table", &t]);
        ip(&["link", "set", "dev", ifname, "up"])?;
        Ok(Announcer {
            _tun: tun,
            ifname: ifname.to_string(),
            table,
            current: BTreeSet::new(),
            return_path: [false; 2],
            changes: 0,
            errors: 0,
        })
    }

    fn route(&mut self, verb: &str, prefix: &str) -> bool {
        let t = self.table.to_string();
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        let args = [
            family,
            "route",
            verb,
            prefix,
            "dev",
            &self.ifname,
            "table",
            &t,
            "proto",
            "static",
        ];
        match ip(&args) {
            Ok(()) => true,
            Err(e) => {
                self.errors += 1;
                crate::log!(Event::AnnounceFailed, "{e}");
                false
            }
        }
    }

    /// Make the announced set `want` (and the return path while `serving`); logs changes.
    /// False when some route could not be changed (tried again on the next call).
    pub fn set(&mut self, want: &BTreeSet<IpAddr>, serving: bool) -> bool {
        let errors = self.errors;
        let gone: Vec<IpAddr> = self.current.difference(want).copied().collect();
        let new: Vec<IpAddr> = want.difference(&self.current).copied().collect();
        for a in gone {
            if self.route("del", &host_route(a)) {
                self.current.remove(&a);
                self.changes += 1;
                crate::log!(Event::Withdrawn, "withdrawn {a}");
            }
        }
        for a in new {
            if self.route("replace", &host_route(a)) {
                self.current.insert(a);
                self.changes += 1;
                crate::log!(Event::Announced, "announced {a}");
            }
        }
        for (f, default) in ["0.0.0.0/0", "::/0"].into_iter().enumerate() {
            let on = serving && want.iter().any(|a| usize::from(a.is_ipv6()) == f);
            if on != self.return_path[f] {
                let verb = if on { "replace" } else { "del" };
                if self.route(verb, default) {
                    self.return_path[f] = on;
                }
            }
        }
        self.errors == errors
    }

    /// Withdraw everything (the start of a drain).
    pub fn withdraw_all(&mut self) {
        self.set(&BTreeSet::new(), false);
    }

    /// `show announce`.
    pub fn show(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "device {} table {}: {} address(es) announced, return path {}, {} change(s), {} error(s)",
            self.ifname,
            self.table,
            self.current.len(),
            match self.return_path {
                [true, true] => "announced (IPv4, IPv6)",
                [true, false] => "announced (IPv4)",
                [false, true] => "announced (IPv6)",
                [false, false] => "withdrawn",
            },
            self.changes,
            self.errors
        );
        for a in &self.current {
            let _ = writeln!(o, "  {}", host_route(*a));
        }
        o
    }

    /// Prometheus lines: one gauge per announced address, and the change count.
    pub fn prometheus(&self) -> String {
        let mut o = String::new();
        o.push_str("# HELP detour_announced Addresses announced to the BGP speaker (1 each).\n");
        o.push_str("# TYPE detour_announced gauge\n");
        for a in &self.current {
            let _ = writeln!(o, "detour_announced{{addr=\"{a}\"}} 1");
        }
        o.push_str("# HELP detour_announce_return_path The default route for the reals' return traffic is announced, per family.\n");
        o.push_str("# TYPE detour_announce_return_path gauge\n");
        for (family, on) in ["ipv4", "ipv6"].iter().zip(self.return_path) {
            let _ = writeln!(
                o,
                "detour_announce_return_path{{family=\"{family}\"}} {}",
                u8::from(on)
            );
        }
        o.push_str("# HELP detour_announce_changes_total Routes announced or withdrawn.\n");
        o.push_str("# TYPE detour_announce_changes_total counter\n");
        let _ = writeln!(o, "detour_announce_changes_total {}", self.changes);
        o
    }
}

/// The host route of an address: `a/32` or `a/128`.
fn host_route(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routes_by_family() {
        assert_eq!(host_route("198.18.20.1".parse().unwrap()), "198.18.20.1/32");
        assert_eq!(
            host_route("2001:db8:20::1".parse().unwrap()),
            "2001:db8:20::1/128"
        );
    }

    #[test]
    fn health_settles_when_every_check_has_a_verdict() {
        let st = |up, ok_streak, fail_streak| crate::health::Status {
            addr: "198.18.12.21:8080".parse().unwrap(),
            up,
            ok_streak,
            fail_streak,
            last: String::new(),
            checks: u64::from(ok_streak + fail_streak),
            failures: u64::from(fail_streak),
            transitions: 0,
            since: Instant::now(),
        };
        assert!(health_settled(&[]));
        assert!(!health_settled(&[st(true, 0, 0)]), "not checked yet");
        assert!(
            !health_settled(&[st(true, 0, 1)]),
            "failed once, not yet down"
        );
        assert!(health_settled(&[st(true, 1, 0), st(false, 0, 2)]));
        assert!(!health_settled(&[st(true, 1, 0), st(true, 0, 1)]));
    }
}
