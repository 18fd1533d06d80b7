//! The per-worker table of TLS connections between their first data segment and the ACK of
//! the server's FIN, and the TCP each of them needs.
//!
//! Contract: at most `capacity` entries, preallocated, keyed by the caller's 4-tuple type. A
//! new connection finds room by evicting the oldest entry still in its TLS handshake; when
//! every entry is past its handshake the newcomer is dropped (counted). Each batch is given a
//! budget of handshakes (server flights, i.e. signatures); a segment that would need one past
//! the budget is left unacknowledged (counted) so the client retransmits it later. Every entry
//! dies by `lifetime_ms` at the latest; the server's bytes are retransmitted go-back-N from the
//! oldest unacknowledged byte with a doubling timeout. Nothing here touches the clock: the
//! caller passes `now` in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::certs::TlsConfig;
use crate::conn::{Conn, Failure, Phase};

/// The bounds of one worker's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries at most (memory: a few KiB each, one maximal record at worst).
    pub capacity: usize,
    /// An entry is freed this long after its first data segment, whatever its state.
    pub lifetime_ms: u64,
    /// First retransmission timeout of the server's bytes (doubled at each retransmission).
    pub rto_ms: u64,
    /// Retransmissions before the connection is reset (at the next timeout).
    pub max_retries: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            capacity: 1024,
            lifetime_ms: 10_000,
            // RFC 6298 asks 1 s before any RTT sample; the SYN-cookie handshake leaves none
            // (stateless), but a client reaching a director is a few ms away, and waiting
            // 1 s costs a visible second: 400 ms is still well above any such RTT and below
            // Linux's client-side retransmission of the ClientHello (~1 s with no ACK).
            // 400 + 800 + 1600 ms of retransmissions, then the reset at 6 s: within the
            // 10 s lifetime, so a silent client's entry goes by its retries.
            rto_ms: 400,
            max_retries: 3,
        }
    }
}

/// A TCP segment of a TLS connection, as the worker parsed it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub seq: u32,
    /// The ACK field when the ACK flag is set.
    pub ack: Option<u32>,
    pub payload: &'a [u8],
    pub fin: bool,
    pub rst: bool,
    /// The client's MSS (from its SYN cookie), kept when the segment opens an entry; the
    /// segments sent to it are at most this long.
    pub mss: u16,
}

/// A TCP segment to send back (the caller writes headers, window and checksums).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub seq: u32,
    pub ack: u32,
    pub payload: &'a [u8],
    pub fin: bool,
    pub rst: bool,
}

/// What became of one incoming segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No entry, and the segment does not open one (no payload, or no config given).
    Unknown,
    /// Over this batch's handshake budget: dropped unacknowledged, the client will resend.
    Deferred,
    /// No room (every entry past its handshake): dropped.
    Full,
    /// Taken; call [`Table::emit`] (with `ack`: the segment carried data or a FIN to
    /// acknowledge). `request` means the head is complete: answer it first.
    Handled { request: bool, ack: bool },
    /// The entry is gone (reset by the peer, or everything acknowledged).
    Freed,
    /// The entry is gone and the peer must be told: send a RST with these numbers.
    Reset { seq: u32, ack: u32 },
}

/// Counted events of one table (the worker adds them to its counters).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub opened: u64,
    pub handshakes: u64,
    pub resumed: u64,
    pub answered: u64,
    pub tls_failures: u64,
    pub oversized: u64,
    pub closed_early: u64,
    pub evicted: u64,
    pub full_drops: u64,
    pub deferred: u64,
    pub expired: u64,
    pub retransmits: u64,
    pub out_of_order: u64,
    pub resets: u64,
}

/// One worker's TLS connections.
pub struct Table<K> {
    map: HashMap<K, Conn>,
    /// Insertion order with entry ids; stale pairs are skipped and compacted lazily.
    order: VecDeque<(K, u64)>,
    limits: Limits,
    next_id: u64,
    budget: u32,
    /// Keys to free after a timer sweep (kept allocated).
    doomed: Vec<K>,
    /// No timer is due before this (ms): [`Table::poll_timers`] costs O(1) until then.
    due: u64,
    pub stats: Stats,
}

impl<K: Copy + Eq + Hash> Table<K> {
    pub fn new(limits: Limits) -> Self {
        let cap = limits.capacity.max(1);
        Self {
            map: HashMap::with_capacity(cap),
            order: VecDeque::with_capacity(2 * cap + 1),
            limits: Limits {
                capacity: cap,
                ..limits
            },
            next_id: 0,
            budget: u32::MAX,
            doomed: Vec::with_capacity(cap),
            due: u64::MAX,
            stats: Stats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Allow `handshakes` new server flights (signatures) until the next call.
    pub fn begin_batch(&mut self, handshakes: u32) {
        self.budget = handshakes;
    }

    /// Feed one segment. A missing entry is opened when `open` is given and the segment
    /// carries data (the caller has checked the SYN cookie in `seg.ack`).
    pub fn on_segment(
        &mut self,
        key: K,
        seg: Incoming<'_>,
        now: u64,
        open: Option<&TlsConfig>,
    ) -> Outcome {
        if !self.map.contains_key(&key) {
            let Some(cfg) = open else {
                return Outcome::Unknown;
            };
            if seg.payload.is_empty() || seg.rst {
                return Outcome::Unknown;
            }
            if self.budget == 0 {
                self.stats.deferred += 1;
                return Outcome::Deferred;
            }
            let Some(ack) = seg.ack else {
                return Outcome::Unknown;
            };
            if self.map.len() >= self.limits.capacity && !self.evict_one() {
                self.stats.full_drops += 1;
                return Outcome::Full;
            }
            let Some(conn) =
                Conn::new(cfg.server.clone(), seg.seq, ack, now, self.next_id, seg.mss)
            else {
                return Outcome::Unknown;
            };
            self.order.push_back((key, self.next_id));
            self.next_id += 1;
            self.map.insert(key, conn);
            self.due = self.due.min(now.saturating_add(self.limits.lifetime_ms));
            self.stats.opened += 1;
            self.compact();
        }
        let Some(conn) = self.map.get_mut(&key) else {
            return Outcome::Unknown;
        };
        if seg.rst {
            self.map.remove(&key);
            return Outcome::Freed;
        }
        if !conn.flight && !seg.payload.is_empty() && self.budget == 0 {
            self.stats.deferred += 1;
            return Outcome::Deferred;
        }
        if let Some(ack) = seg.ack {
            if conn.acked(ack) {
                conn.retries = 0;
                conn.rto_ms = self.limits.rto_ms;
                conn.rto_at = if conn.sent > 0 || conn.fin_sent {
                    now + conn.rto_ms
                } else {
                    u64::MAX
                };
                self.due = self.due.min(conn.rto_at);
            }
        }
        let out = feed(conn, seg, &mut self.stats, &mut self.budget);
        if matches!(out, Outcome::Reset { .. }) {
            self.map.remove(&key);
            return out;
        }
        if conn.done() {
            // Our FIN is acknowledged: nothing is owed any more.
            self.map.remove(&key);
            return Outcome::Freed;
        }
        out
    }

    /// The complete request head of `key`, once [`Outcome::Handled`] said `request`.
    pub fn request_head(&self, key: &K) -> Option<&[u8]> {
        self.map
            .get(key)
            .filter(|c| c.phase == Phase::Ready)
            .map(|c| c.head.as_slice())
    }

    /// Encrypt the answer and a close_notify, and queue the FIN; then call [`Table::emit`].
    pub fn answer(&mut self, key: &K, response: &[u8]) -> bool {
        let Some(conn) = self.map.get_mut(key) else {
            return false;
        };
        if conn.phase != Phase::Ready {
            return false;
        }
        match conn.answer(response) {
            Ok(()) => {
                self.stats.answered += 1;
                true
            }
            Err(_) => {
                self.stats.tls_failures += 1;
                conn.close();
                false
            }
        }
    }

    /// Send what `key` has not sent yet (TLS records in `mss`-sized segments, then the FIN),
    /// at most `max` segments (the rest waits for the next call: a caller that can answer
    /// each incoming segment with one frame only is clocked by the client's ACKs), or a bare
    /// ACK when nothing is pending and `ack` asks for one.
    pub fn emit(
        &mut self,
        key: &K,
        mss: usize,
        max: usize,
        ack: bool,
        now: u64,
        f: impl FnMut(Segment<'_>),
    ) {
        let rto = self.limits.rto_ms;
        if let Some(conn) = self.map.get_mut(key) {
            emit_conn(conn, mss.min(usize::from(conn.mss)), max, ack, now, rto, f);
            self.due = self.due.min(conn.rto_at);
        }
    }

    /// Forget `key`'s entry (a new connection on its 4-tuple); true if there was one.
    pub fn remove(&mut self, key: &K) -> bool {
        self.map.remove(key).is_some()
    }

    /// Whether `key` has an entry.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Free the entries that outlived `lifetime_ms` (counted `expired`), sending nothing: for
    /// a caller without frames of its own. O(entries): call it every few hundred ms.
    pub fn expire(&mut self, now: u64) {
        let life = self.limits.lifetime_ms;
        let before = self.map.len();
        self.map.retain(|_, c| now < c.born_ms.saturating_add(life));
        self.stats.expired += (before - self.map.len()) as u64;
    }

    /// Retransmit what timed out (go-back-N: everything unacknowledged again, in segments of
    /// at most `mss` and the client's MSS) and free what outlived `lifetime_ms` or its
    /// retries (a RST is sent for those). O(1) while no timer is due, O(entries) when one is:
    /// call it every few milliseconds, not per packet. Allocates nothing.
    pub fn poll_timers(&mut self, now: u64, mss: usize, mut f: impl FnMut(&K, Segment<'_>)) {
        if now < self.due {
            return;
        }
        let limits = self.limits;
        let mut due = u64::MAX;
        for (key, conn) in self.map.iter_mut() {
            let expired = now >= conn.born_ms.saturating_add(limits.lifetime_ms);
            let give_up = now >= conn.rto_at && conn.retries >= limits.max_retries;
            if expired || give_up {
                f(key, reset(conn));
                self.doomed.push(*key);
                if expired {
                    self.stats.expired += 1;
                } else {
                    self.stats.resets += 1;
                }
            } else if now >= conn.rto_at {
                conn.retries += 1;
                conn.rto_ms = conn.rto_ms.saturating_mul(2);
                conn.sent = 0;
                conn.fin_sent = false;
                conn.rto_at = u64::MAX;
                self.stats.retransmits += 1;
                let mss = mss.min(usize::from(conn.mss));
                emit_conn(conn, mss, usize::MAX, false, now, conn.rto_ms, |s| {
                    f(key, s)
                });
            }
            if !expired && !give_up {
                let life = conn.born_ms.saturating_add(limits.lifetime_ms);
                due = due.min(conn.rto_at).min(life);
            }
        }
        for key in self.doomed.drain(..) {
            self.map.remove(&key);
        }
        self.due = due;
    }

    /// Make room: the oldest live entry still in its handshake goes. False when none is.
    fn evict_one(&mut self) -> bool {
        while let Some(&(k, id)) = self.order.front() {
            match self.map.get(&k) {
                Some(c) if c.id == id => break,
                _ => {
                    self.order.pop_front();
                }
            }
        }
        let victim = self
            .order
            .iter()
            .take(64)
            .find(|(k, id)| {
                self.map
                    .get(k)
                    .is_some_and(|c| c.id == *id && c.phase == Phase::Handshake)
            })
            .map(|&(k, _)| k);
        match victim {
            Some(k) => {
                self.map.remove(&k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Drop stale order entries once they outnumber the live ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.limits.capacity {
            let map = &self.map;
            self.order
                .retain(|(k, id)| map.get(k).is_some_and(|c| c.id == *id));
        }
    }
}

/// Take a segment's bytes and FIN into `conn`, drive TLS, and say what to do.
fn feed(conn: &mut Conn, seg: Incoming<'_>, stats: &mut Stats, budget: &mut u32) -> Outcome {
    let closing = conn.phase == Phase::Closing;
    let taken = if closing || seg.payload.is_empty() {
        Ok(Some(0))
    } else {
        conn.accept(seg.seq, seg.payload)
    };
    let mut ack = !seg.payload.is_empty();
    match taken {
        Err(_) => {
            stats.oversized += 1;
            let r = reset(conn);
            return Outcome::Reset {
                seq: r.seq,
                ack: r.ack,
            };
        }
        Ok(None) => {
            stats.out_of_order += 1;
            return Outcome::Handled {
                request: false,
                ack: true,
            };
        }
        Ok(Some(0)) => {
            if !seg.payload.is_empty() && conn.phase != Phase::Closing {
                // The client sent old data again: it has not had our answer. Go back to the
                // oldest unacknowledged byte (the only retransmission of a caller that sends
                // one frame per incoming frame).
                conn.sent = 0;
                conn.fin_sent = false;
            }
        }
        Ok(Some(_)) => {
            let had_flight = conn.flight;
            let was = conn.phase;
            let driven = conn.drive();
            if conn.flight && !had_flight {
                *budget = budget.saturating_sub(1);
            }
            if was == Phase::Handshake && conn.phase != Phase::Handshake {
                stats.handshakes += 1;
                stats.resumed += conn.resumed() as u64;
            }
            if let Err(f) = driven {
                match f {
                    Failure::Tls => stats.tls_failures += 1,
                    Failure::Oversized => stats.oversized += 1,
                    Failure::PeerClosed => stats.closed_early += 1,
                }
                conn.close();
            }
        }
    }
    let fin_at = seg.seq.wrapping_add(seg.payload.len() as u32);
    if seg.fin && fin_at == conn.rcv_nxt {
        conn.rcv_nxt = conn.rcv_nxt.wrapping_add(1);
        ack = true;
        if conn.phase != Phase::Ready && conn.phase != Phase::Closing {
            stats.closed_early += 1;
            conn.close();
        }
    }
    Outcome::Handled {
        request: conn.phase == Phase::Ready,
        ack,
    }
}

/// Emit the unsent part of `conn.out`, then the FIN; or a bare ACK if asked and nothing went.
fn emit_conn(
    conn: &mut Conn,
    mss: usize,
    max: usize,
    ack: bool,
    now: u64,
    rto: u64,
    mut f: impl FnMut(Segment<'_>),
) {
    let mss = mss.max(1);
    let mut went = 0;
    while conn.sent < conn.out.len() && went < max {
        let end = (conn.sent + mss).min(conn.out.len());
        let last = end == conn.out.len();
        let fin = last && conn.fin_queued && !conn.fin_acked;
        f(Segment {
            seq: conn.snd_una.wrapping_add(conn.sent as u32),
            ack: conn.rcv_nxt,
            payload: &conn.out[conn.sent..end],
            fin,
            rst: false,
        });
        conn.fin_sent |= fin;
        conn.sent = end;
        went += 1;
    }
    let all_data = conn.sent == conn.out.len();
    if all_data && went < max && conn.fin_queued && !conn.fin_sent && !conn.fin_acked {
        f(Segment {
            seq: conn.snd_una.wrapping_add(conn.sent as u32),
            ack: conn.rcv_nxt,
            payload: &[],
            fin: true,
            rst: false,
        });
        conn.fin_sent = true;
        went += 1;
    }
    if went > 0 {
        if conn.rto_at == u64::MAX {
            conn.rto_ms = if conn.rto_ms == 0 { rto } else { conn.rto_ms };
            conn.rto_at = now + conn.rto_ms;
        }
    } else if ack {
        f(Segment {
            seq: conn.snd_end(),
            ack: conn.rcv_nxt,
            payload: &[],
            fin: false,
            rst: false,
        });
    }
}

fn reset(conn: &Conn) -> Segment<'static> {
    Segment {
        seq: conn.snd_una.wrapping_add(conn.sent as u32),
        ack: conn.rcv_nxt,
        payload: &[],
        fin: false,
        rst: true,
    }
}
