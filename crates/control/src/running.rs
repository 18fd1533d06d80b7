//! The running configuration and the snapshots built from it.
//!
//! [`Control`] holds the model as the operator set it, the reals the health checks found
//! down (an overlay: shown and run as `failed` while configured to forward, never written
//! back), the current snapshot and its epoch, when each real entered its state, and the
//! statistics. Every change builds a new snapshot through [`Control::rebuild`]; the MACs of
//! the reals and of the gateway come from a [`Neighbours`] (the kernel's table in `detour
//! run`, a fixed table in tests).

use crate::stats::Stats;
use detour_config::lang::State;
use detour_config::model::Model;
use detour_config::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where MAC addresses come from.
pub trait Neighbours: Send {
    /// Fill in the MACs of `snap`'s reals and its gateway; name in `missing` what has none
    /// (`real <addr>`, `gateway <ip>`).
    fn fill(&mut self, snap: &mut Snapshot, gateway: Ipv4Addr, missing: &mut Vec<String>);
}

pub struct Control {
    /// The config file `reload` and `write memory` use.
    pub path: PathBuf,
    /// The running configuration, with the states the operator set.
    pub model: Model,
    /// Reals the health checks found down (shown as `failed` while configured in service).
    pub health_down: BTreeSet<SocketAddr>,
    pub gateway: Ipv4Addr,
    pub epoch: u64,
    pub snap: Arc<Snapshot>,
    /// What has no MAC yet.
    pub missing: Vec<String>,
    neighbours: Box<dyn Neighbours>,
    /// Effective state of each real and since when.
    pub(crate) state_since: BTreeMap<SocketAddr, (State, Instant)>,
    pub stats: Stats,
    pub health_transitions: u64,
    pub started: Instant,
    /// The cookie secret to issue with, and one also accepted, from `detour run
    /// --cookie-secret-file`: they override the config's and are never written back.
    pub cookie_secrets: Option<([u8; 32], Option<[u8; 32]>)>,
    /// The certificates and ticket key every snapshot carries (see [`crate::tls`]).
    pub tls: Option<Arc<detour_tls::TlsConfig>>,
    /// Seals tickets when the config sets no `cookie-secret`.
    tls_secret: [u8; 32],
}

impl Control {
    pub fn new(
        path: PathBuf,
        model: Model,
        gateway: Ipv4Addr,
        workers: usize,
        neighbours: Box<dyn Neighbours>,
    ) -> Control {
        let mut c = Control {
            path,
            model,
            health_down: BTreeSet::new(),
            gateway,
            epoch: 0,
            snap: Arc::new(Snapshot::compile(&Model::default(), 0)),
            missing: Vec::new(),
            neighbours,
            state_since: BTreeMap::new(),
            stats: Stats::new(workers, 0),
            health_transitions: 0,
            started: Instant::now(),
            cookie_secrets: None,
            tls: None,
            tls_secret: own_secret(),
        };
        // A `tls` virtual whose certificates do not load answers nothing until they do;
        // `detour run` checks [`Control::load_tls`] before it starts.
        let _ = c.load_tls();
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
        if let Some((issue, also)) = self.cookie_secrets {
            m.settings.cookie_secret = Some(issue);
            m.settings.cookie_accept = also;
        }
        m
    }

    /// Load the running model's certificates (see [`crate::tls::load`]); on failure the
    /// previous ones stay.
    pub fn load_tls(&mut self) -> Result<(), String> {
        self.tls = self.tls_for(&self.model)?;
        Ok(())
    }

    /// The certificates `model` would run with, or why not (nothing is changed). Tickets are
    /// keyed by the cookie secret the director issues with (`--cookie-secret-file`, else the
    /// config's), else by this director's own.
    pub fn tls_for(&self, model: &Model) -> Result<Option<Arc<detour_tls::TlsConfig>>, String> {
        match self.cookie_secrets {
            Some((issue, _)) => {
                let mut m = model.clone();
                m.settings.cookie_secret = Some(issue);
                crate::tls::load(&m, &self.tls_secret)
            }
            None => crate::tls::load(model, &self.tls_secret),
        }
    }

    /// Issue with (and accept) these cookie secrets from now on, in a new snapshot; the
    /// ticket key follows (an error: the certificates no longer load, the running ones stay).
    pub fn set_cookie_secrets(&mut self, s: ([u8; 32], Option<[u8; 32]>)) -> Result<(), String> {
        self.cookie_secrets = Some(s);
        let tls = self.load_tls();
        self.rebuild();
        tls
    }

    fn compile(&mut self, epoch: u64, missing: &mut Vec<String>) -> Snapshot {
        let mut s = Snapshot::compile(&self.effective(), epoch);
        s.tls = self.tls.clone();
        missing.clear();
        self.neighbours.fill(&mut s, self.gateway, missing);
        s
    }

    fn install(&mut self, mut s: Snapshot) {
        s.carry = detour_config::Carry::between(&self.snap, &s);
        let now = Instant::now();
        for r in &s.reals {
            let e = self.state_since.entry(r.addr).or_insert((r.state, now));
            if e.0 != r.state {
                *e = (r.state, now);
            }
        }
        self.stats.follow(&s);
        self.epoch = s.epoch;
        self.snap = Arc::new(s);
    }

    /// Build the next snapshot (MACs from the neighbours) and remember state changes.
    pub fn rebuild(&mut self) -> Arc<Snapshot> {
        let mut missing = Vec::new();
        let s = self.compile(self.epoch + 1, &mut missing);
        self.missing = missing;
        self.install(s);
        self.snap.clone()
    }

    /// Rebuild only if the neighbours' MACs changed; true when a new snapshot was made.
    pub fn refresh_neighbours(&mut self) -> bool {
        let mut missing = Vec::new();
        let fresh = self.compile(self.epoch + 1, &mut missing);
        let macs = |s: &Snapshot| {
            (
                s.reals.iter().map(|r| r.mac).collect::<Vec<_>>(),
                s.gateway_mac,
            )
        };
        if macs(&fresh) == macs(&self.snap) {
            return false;
        }
        self.missing = missing;
        self.install(fresh);
        true
    }

    /// A health transition: true when the snapshot changed (a real went down or came back
    /// while configured to forward).
    pub fn health(&mut self, addr: SocketAddr, up: bool) -> bool {
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

    /// Active connections per real of the current snapshot, for least connections.
    pub fn active_conns(&self) -> Vec<u32> {
        self.stats.active_conns(self.snap.reals.len())
    }

    /// How long real `addr` has been in its current state.
    pub fn since(&self, addr: SocketAddr) -> std::time::Duration {
        self.state_since
            .get(&addr)
            .map_or(std::time::Duration::ZERO, |(_, t)| t.elapsed())
    }
}

/// A random ticket secret of this director (zeros if the kernel's source fails: tickets
/// then only resume on directors that failed alike, which the configured secret avoids).
fn own_secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b
}
