//! Statistics from the workers' reports.
//!
//! A worker reports plain arrays indexed like the tables of the snapshot it runs (its
//! epoch says which): per real of `Snapshot::reals`, per URL of `Snapshot::urls`. Nothing
//! is named, cloned or searched per report. When the control thread builds a new snapshot
//! it computes, once, which old index each object of the new one had (the snapshot's
//! [`Carry`], which the workers apply to their own counters too); the views
//! kept here are carried over with it, and a report from a worker that still runs an older
//! snapshot is mapped through the chain of remaps since its epoch.

use detour_config::{Carry, Snapshot};
use detour_dataplane::{Counters, RealCounters};
use hdrhistogram::Histogram;
use std::collections::VecDeque;

/// Remaps kept for reports from workers that have not picked up the newest snapshots yet.
const KEEP_REMAPS: usize = 16;

/// What a worker publishes about twice a second (cumulative since it started).
pub struct Report {
    pub worker: usize,
    pub counters: Counters,
    pub batches: u64,
    /// Batch service times since the worker's previous report.
    pub hist: Histogram<u64>,
    /// The epoch of the snapshot the arrays are indexed by.
    pub epoch: u64,
    /// Per real, index as in that snapshot's `reals`.
    pub reals: Vec<RealCounters>,
    /// Redirects per URL, index as in that snapshot's `urls`.
    pub urls: Vec<u64>,
    /// The kernel's counters of the worker's AF_XDP sockets, cumulative since they opened, as
    /// (name, value) in the I/O layer's own list (`detour_xsk::stats::FIELDS`).
    pub sockets: Vec<(&'static str, u64)>,
}

/// A new snapshot's [`Carry`] (its objects' indices in snapshot `carry.from`) and its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remap {
    pub to: u64,
    pub carry: Carry,
}

/// Per-object counts in the current snapshot's indices.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Objects {
    pub reals: Vec<RealCounters>,
    pub urls: Vec<u64>,
}

impl Objects {
    fn remap(&self, m: &Remap) -> Objects {
        Objects {
            reals: Carry::apply(&m.carry.reals, &self.reals),
            urls: Carry::apply(&m.carry.urls, &self.urls),
        }
    }
    fn add(&mut self, o: &Objects) {
        grow(&mut self.reals, o.reals.len());
        grow(&mut self.urls, o.urls.len());
        for (a, b) in self.reals.iter_mut().zip(&o.reals) {
            a.add(b);
        }
        for (a, b) in self.urls.iter_mut().zip(&o.urls) {
            *a += b;
        }
    }
    fn sub(&mut self, o: &Objects) {
        for (a, b) in self.reals.iter_mut().zip(&o.reals) {
            *a = sub_real(a, b);
        }
        for (a, b) in self.urls.iter_mut().zip(&o.urls) {
            *a = a.saturating_sub(*b);
        }
    }
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// One worker as last reported.
pub struct WorkerView {
    pub counters: Counters,
    pub batches: u64,
    /// Batch service times since the last `clear statistics`.
    pub hist: Histogram<u64>,
    /// The epoch the worker runs.
    pub epoch: u64,
    pub objects: Objects,
    /// Its sockets' kernel counters as last reported (see [`Report::sockets`]).
    pub sockets: Vec<(&'static str, u64)>,
}

/// Totals over workers.
#[derive(Clone, Default, Debug)]
pub struct Totals {
    pub counters: Counters,
    pub batches: u64,
    pub objects: Objects,
}

/// The statistics the control thread keeps.
pub struct Stats {
    /// The epoch the views are indexed by.
    epoch: u64,
    workers: Vec<Option<WorkerView>>,
    remaps: VecDeque<Remap>,
    /// Totals at the last `clear statistics`.
    base: Totals,
    /// Each worker's counters and batches at the last `clear statistics`.
    worker_base: Vec<(Counters, u64)>,
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

impl Stats {
    pub fn new(workers: usize, epoch: u64) -> Stats {
        Stats {
            epoch,
            workers: (0..workers).map(|_| None).collect(),
            remaps: VecDeque::new(),
            base: Totals::default(),
            worker_base: Vec::new(),
        }
    }

    /// A new snapshot replaced the previous one: carry every view over to its indices (with
    /// the snapshot's own [`Carry`], the one the workers apply too).
    pub fn follow(&mut self, new: &Snapshot) {
        let m = Remap {
            to: new.epoch,
            carry: new.carry.clone(),
        };
        for w in self.workers.iter_mut().flatten() {
            w.objects = w.objects.remap(&m);
        }
        self.base.objects = self.base.objects.remap(&m);
        self.epoch = new.epoch;
        if self.remaps.len() == KEEP_REMAPS {
            self.remaps.pop_front();
        }
        self.remaps.push_back(m);
    }

    /// Map arrays of `epoch` to the current indices through the remaps since; `None` when
    /// that epoch is too old (or unknown).
    fn to_current(&self, epoch: u64, objects: Objects) -> Option<Objects> {
        if epoch == self.epoch {
            return Some(objects);
        }
        let start = self.remaps.iter().position(|m| m.carry.from == epoch)?;
        let mut o = objects;
        for m in self.remaps.iter().skip(start) {
            o = o.remap(m);
        }
        Some(o)
    }

    pub fn report(&mut self, r: Report) {
        let objects = self.to_current(
            r.epoch,
            Objects {
                reals: r.reals,
                urls: r.urls,
            },
        );
        let Some(slot) = self.workers.get_mut(r.worker) else {
            return;
        };
        let view = slot.get_or_insert_with(|| WorkerView {
            counters: Counters::default(),
            batches: 0,
            hist: new_hist(),
            epoch: 0,
            objects: Objects::default(),
            sockets: Vec::new(),
        });
        view.counters = r.counters;
        view.sockets = r.sockets;
        view.batches = r.batches;
        let _ = view.hist.add(&r.hist);
        view.epoch = r.epoch;
        // A report too old to map keeps the previous per-object view (it is cumulative: the
        // next report brings it up to date).
        if let Some(o) = objects {
            view.objects = o;
        }
    }

    /// Totals over workers since detour started (monotonic: for Prometheus).
    pub fn totals_ever(&self) -> Totals {
        let mut t = Totals::default();
        for v in self.workers.iter().flatten() {
            t.counters.add(&v.counters);
            t.batches += v.batches;
            t.objects.add(&v.objects);
        }
        t
    }

    /// Totals since the last `clear statistics`.
    pub fn totals(&self) -> Totals {
        let mut t = self.totals_ever();
        t.counters.sub(&self.base.counters);
        t.batches = t.batches.saturating_sub(self.base.batches);
        t.objects.sub(&self.base.objects);
        t
    }

    /// `clear statistics`: counts (and batch service times) start again from zero.
    pub fn clear(&mut self) {
        self.base = self.totals_ever();
        self.worker_base = self
            .workers
            .iter()
            .map(|w| {
                w.as_ref().map_or((Counters::default(), 0), |w| {
                    (w.counters.clone(), w.batches)
                })
            })
            .collect();
        for w in self.workers.iter_mut().flatten() {
            w.hist.reset();
        }
    }

    /// Active connections per real of the current snapshot (opened - closed, summed over
    /// workers, never below zero), for least connections.
    pub fn active_conns(&self, reals: usize) -> Vec<u32> {
        let t = self.totals_ever();
        (0..reals)
            .map(|i| {
                t.objects.reals.get(i).map_or(0, |c| {
                    c.opened.saturating_sub(c.closed).min(u64::from(u32::MAX)) as u32
                })
            })
            .collect()
    }

    pub fn workers(&self) -> &[Option<WorkerView>] {
        &self.workers
    }

    /// A worker's counters and batches since the last `clear statistics`.
    pub fn worker_since_clear(&self, i: usize) -> Option<(Counters, u64)> {
        let w = self.workers.get(i)?.as_ref()?;
        let mut c = w.counters.clone();
        let mut b = w.batches;
        if let Some((c0, b0)) = self.worker_base.get(i) {
            c.sub(c0);
            b = b.saturating_sub(*b0);
        }
        Some((c, b))
    }
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
