//! Predictors: how a virtual server picks the member of its rotation that the next redirect
//! points at.
//!
//! Everything here is pure code. A [`Rotation`] is built off the hot path (allocation allowed,
//! once per snapshot); each worker owns one [`PickState`] per rotation, allocated when it
//! installs the snapshot; [`Rotation::pick`] then runs once per redirect and never allocates
//! or panics.
//!
//! Only members that are eligible (their service state takes new redirects) and have a
//! weight above zero are ever picked, by every predictor. When none is, `pick` returns `None`
//! and the caller applies the virtual's backup.
//!
//! - [`Predictor::RoundRobin`]: the eligible members in member order, each once per cycle
//!   (`0, 1, 2, 0, 1, 2, ...`; with member 1 out: `0, 2, 0, 2, ...`). Weights other than zero
//!   are ignored.
//! - [`Predictor::Weighted`]: smooth weighted round robin, nginx's algorithm. Every pick adds
//!   each eligible member's weight to its `current` credit, picks the member with the largest
//!   credit (ties: lowest index) and takes the total eligible weight off the winner. Over a
//!   cycle of `sum(weights)` picks every member gets exactly its weight, interleaved rather than
//!   in runs (weights 5, 1, 1 give `a a b a c a a`). Equal weights give plain round robin.
//! - [`Predictor::LeastConns`]: weighted least connections: the eligible member minimising
//!   `conns / weight` (compared by cross-multiplication in `u64`). The scan starts just after
//!   the previous winner, so members tied on load take turns instead of the first one taking
//!   everything.
//! - [`Predictor::Hash`]: Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and
//!   Reliable Software Network Load Balancer", NSDI 2016, section 3.4) of the client's whole
//!   address, of either family (all 128 bits of an IPv6 address; an IPv4 one, mapped, as its
//!   32 bits always were). The lookup table is built in [`Rotation::new`] over the eligible
//!   members, from each member's stable [`Candidate::key`], so that it depends neither on the
//!   member order nor on the machine: several directors with the same configuration send a
//!   client to the same member, and taking one of N members out of service moves only about
//!   1/N of the clients. See [`Rotation::table_len`] for the table size and the weighting rule.
//!
//! Limits: a rotation holds at most [`MAX_MEMBERS`] members and weights are at most
//! [`MAX_WEIGHT`]; callers (the model) are expected to reject larger values, and
//! [`Rotation::new`] truncates / clamps as a last resort so that the hot path never meets an
//! out-of-range value.

use std::fmt;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most members a rotation holds. [`Rotation::new`] keeps only the first `MAX_MEMBERS`
/// (callers are expected to reject larger rotations before they get here). Member indices
/// then fit in the `u16` entries of the Maglev table.
pub const MAX_MEMBERS: usize = 1024;

/// Largest member weight; [`Rotation::new`] clamps larger weights to it.
pub const MAX_WEIGHT: u32 = 1000;

/// How a virtual picks a member of its rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Predictor {
    /// Each eligible member in turn.
    RoundRobin,
    /// Smooth weighted round robin.
    Weighted,
    /// Fewest active connections per unit of weight.
    LeastConns,
    /// Maglev consistent hashing of the client address.
    Hash,
}

impl Predictor {
    /// Every predictor, in keyword order of the documentation.
    pub const ALL: [Predictor; 4] = [
        Predictor::RoundRobin,
        Predictor::Weighted,
        Predictor::LeastConns,
        Predictor::Hash,
    ];

    /// Config keyword: `"roundrobin" | "weighted" | "leastconns" | "hash"`.
    pub fn keyword(self) -> &'static str {
        match self {
            Predictor::RoundRobin => "roundrobin",
            Predictor::Weighted => "weighted",
            Predictor::LeastConns => "leastconns",
            Predictor::Hash => "hash",
        }
    }

    /// The predictor named by a config keyword (ASCII case-insensitive), if any.
    pub fn from_keyword(s: &str) -> Option<Predictor> {
        Predictor::ALL
            .into_iter()
            .find(|p| p.keyword().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Predictor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One member of a rotation as the predictor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Weight 0..=1000 (0 = takes no new redirects).
    pub weight: u32,
    /// False when the member's service state takes no new redirects (oos, maintenance, sticky,
    /// failed).
    pub eligible: bool,
    /// Stable identity of the member (a hash of its id string, computed by the caller with
    /// [`stable_key`]), used by consistent hashing so that the table does not depend on member
    /// order.
    pub key: u64,
}

impl Candidate {
    /// True when the member may be picked: eligible and weight above zero.
    pub fn is_pickable(&self) -> bool {
        self.eligible && self.weight > 0
    }
}

/// Deterministic 64-bit hash of an id string: FNV-1a 64 over its UTF-8 bytes, identical on
/// every machine and run.
pub fn stable_key(id: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    id.bytes()
        .fold(OFFSET_BASIS, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The splitmix64 finalizer (Steele, Lea and Flood; Stafford's "Mix13" constants): a
/// bijective, well-avalanched mix of 64 bits, the same everywhere.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64's increment (the golden ratio), added before each mix.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hash of a client's address for the Maglev lookup, over all of its bits. An IPv4 client
/// (IPv4-mapped, `::ffff:a.b.c.d`) hashes as its 32 bits always did (one splitmix64 step), so
/// IPv4 clients keep their members across versions; any other IPv6 address is two chained
/// steps, the high 64 bits first, so that addresses differing only in their high bits (the
/// network part) are spread as independently as those differing in the low ones.
fn client_hash(client: Ipv6Addr) -> u64 {
    if let Some(v4) = client.to_ipv4_mapped() {
        return mix64(u64::from(u32::from(v4)).wrapping_add(GOLDEN));
    }
    let a = u128::from(client);
    let (hi, lo) = ((a >> 64) as u64, a as u64);
    mix64(mix64(hi.wrapping_add(GOLDEN)) ^ lo.wrapping_add(GOLDEN))
}

/// Seeds of the two member hashes of Maglev's permutation (`offset` and `skip`).
const OFFSET_SEED: u64 = 0x6d61_676c_6576_3031; // "maglev01"
const SKIP_SEED: u64 = 0x6d61_676c_6576_3032; // "maglev02"

/// Maglev table sizes (all prime), chosen from the number of configured members — never from
/// their eligibility or weights, so taking a member out of service never resizes the table
/// (which would move nearly every client). Each size leaves at least ~64 entries per member.
const TABLE_SIZES: [(usize, usize); 3] = [(16, 4093), (64, 16381), (MAX_MEMBERS, 65521)];

/// Marks a free entry while the Maglev table fills (member indices are below [`MAX_MEMBERS`]).
const EMPTY: u16 = u16::MAX;

/// Longest precomputed weighted cycle (entries); heavier rotations keep per-worker state.
const MAX_CYCLE: u64 = 1 << 20;

/// A virtual's rotation, built off the hot path (allocation allowed in `new`).
///
/// Round robin and weighted keep their position in one atomic cursor inside the rotation,
/// which every worker reading the same snapshot shares: the director as a whole walks one
/// sequence, whichever worker a request lands on (one relaxed `fetch_add` per redirect, no
/// lock). A new snapshot starts the cycle again.
pub struct Rotation {
    kind: Predictor,
    members: Vec<Candidate>,
    /// Indices of the pickable members (eligible, weight > 0), ascending.
    pickable: Vec<u16>,
    /// Sum of the pickable members' weights.
    total_weight: u64,
    /// Maglev lookup table (member indices); empty unless `kind` is `Hash` and some member is
    /// pickable.
    table: Vec<u16>,
    /// Weighted: one whole smooth-weighted cycle (member indices), `total_weight` long; empty
    /// when longer than [`MAX_CYCLE`] (then each worker keeps its own credits).
    cycle: Vec<u16>,
    /// Shared position of round robin and weighted.
    cursor: AtomicU64,
}

impl Clone for Rotation {
    fn clone(&self) -> Self {
        Rotation {
            kind: self.kind,
            members: self.members.clone(),
            pickable: self.pickable.clone(),
            total_weight: self.total_weight,
            table: self.table.clone(),
            cycle: self.cycle.clone(),
            cursor: AtomicU64::new(self.cursor.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("kind", &self.kind)
            .field("members", &self.members)
            .field("pickable", &self.pickable)
            .field("total_weight", &self.total_weight)
            .field("table_len", &self.table.len())
            .finish()
    }
}

impl Rotation {
    /// Builds a rotation. Members beyond [`MAX_MEMBERS`] are dropped and weights above
    /// [`MAX_WEIGHT`] clamped (callers are expected to validate both first). For
    /// [`Predictor::Hash`] this builds the Maglev table (up to 65521 entries; about 20 ms in
    /// the worst case measured, 1024 members with skewed weights, release build).
    pub fn new(kind: Predictor, mut members: Vec<Candidate>) -> Rotation {
        members.truncate(MAX_MEMBERS);
        for m in &mut members {
            m.weight = m.weight.min(MAX_WEIGHT);
        }
        let pickable: Vec<u16> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_pickable())
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect();
        let total_weight = pickable
            .iter()
            .map(|&i| u64::from(members[usize::from(i)].weight))
            .sum();
        let table = match kind {
            Predictor::Hash => maglev_table(&members, &pickable),
            _ => Vec::new(),
        };
        let mut r = Rotation {
            kind,
            members,
            pickable,
            total_weight,
            table,
            cycle: Vec::new(),
            cursor: AtomicU64::new(0),
        };
        if kind == Predictor::Weighted && r.total_weight > 0 && r.total_weight <= MAX_CYCLE {
            // One whole cycle of the smooth weighted sequence, computed once.
            let mut st = PickState::new(&r);
            r.cycle = (0..r.total_weight)
                .map(|_| r.pick_weighted(&mut st) as u16)
                .collect();
        }
        r
    }

    /// The predictor this rotation uses.
    pub fn kind(&self) -> Predictor {
        self.kind
    }

    /// The members, in configuration order (after truncation and weight clamping).
    pub fn members(&self) -> &[Candidate] {
        &self.members
    }

    /// True when at least one member is eligible with weight > 0.
    pub fn has_eligible(&self) -> bool {
        !self.pickable.is_empty()
    }

    /// Number of entries in the Maglev lookup table (0 unless the predictor is
    /// [`Predictor::Hash`] and some member is eligible).
    ///
    /// The size is a prime picked from the number of configured members (eligible or not):
    /// 4093 for up to 16 members, 16381 for up to 64, 65521 beyond, so every member has room
    /// for dozens of entries and eligibility changes never resize the table.
    ///
    /// Weights: the table fills in turns, as in the paper, but in each turn every eligible
    /// member adds its weight to a credit and claims its next preferred free entry only when
    /// the credit reaches the largest eligible weight, which it then gives back (the scheme of
    /// Katran's `MaglevHashV2`). The heaviest members claim every turn, a member of half their
    /// weight every other turn, so entries — and clients — are shared in proportion to weight.
    /// Turns visit members in `(key, index)` order, so the table does not depend on the order
    /// of the member list. A member whose weight is tiny next to the others' (below about
    /// `max_weight / table_len`) may end up with no entry at all.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Picks a member index, or `None` when nothing is eligible (the caller then applies the
    /// virtual's backup).
    ///
    /// `client` is the client's address, IPv4 mapped (`::ffff:a.b.c.d`), used by
    /// [`Predictor::Hash`] with all of its bits; `conns(i)`
    /// returns member `i`'s active connection count (used by [`Predictor::LeastConns`]).
    ///
    /// Never allocates and never panics. `state` should come from [`PickState::new`] on this
    /// rotation; a state made for another rotation is tolerated: cursors are taken modulo the
    /// member count, and a weighted state of the wrong length is reset in place (without
    /// allocating) or, when it is too small for that, the pick falls back to round robin.
    pub fn pick(
        &self,
        state: &mut PickState,
        client: Ipv6Addr,
        conns: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        if self.pickable.is_empty() {
            return None;
        }
        match self.kind {
            Predictor::RoundRobin => {
                let k = self.cursor.fetch_add(1, Ordering::Relaxed);
                Some(usize::from(
                    self.pickable[(k % self.pickable.len() as u64) as usize],
                ))
            }
            Predictor::Weighted if !self.cycle.is_empty() => {
                let k = self.cursor.fetch_add(1, Ordering::Relaxed);
                Some(usize::from(
                    self.cycle[(k % self.cycle.len() as u64) as usize],
                ))
            }
            Predictor::Weighted => Some(self.pick_weighted(state)),
            Predictor::LeastConns => Some(self.pick_least_conns(state, conns)),
            Predictor::Hash => self.pick_hash(client),
        }
    }

    /// `pickable` must be non-empty.
    fn pick_round_robin(&self, state: &mut PickState) -> usize {
        let n = self.pickable.len();
        let slot = state.cursor % n;
        state.cursor = (slot + 1) % n;
        usize::from(self.pickable[slot])
    }

    /// `pickable` must be non-empty.
    fn pick_weighted(&self, state: &mut PickState) -> usize {
        let n = self.members.len();
        if state.current.len() != n {
            if state.current.capacity() < n {
                // Not this rotation's state and too small to reuse without allocating.
                return self.pick_round_robin(state);
            }
            state.current.clear();
            state.current.resize(n, 0);
        }
        let total = i64::try_from(self.total_weight).unwrap_or(i64::MAX);
        let mut best = (usize::from(self.pickable[0]), i64::MIN);
        for &i in &self.pickable {
            let i = usize::from(i);
            let cur = &mut state.current[i];
            *cur = cur.saturating_add(i64::from(self.members[i].weight));
            // Strictly greater: ties go to the lowest index (pickable is ascending).
            if *cur > best.1 {
                best = (i, *cur);
            }
        }
        let i = best.0;
        state.current[i] = state.current[i].saturating_sub(total);
        i
    }

    /// `pickable` must be non-empty.
    fn pick_least_conns(&self, state: &mut PickState, conns: impl Fn(usize) -> u32) -> usize {
        let n = self.pickable.len();
        let start = state.cursor % n;
        let mut best_slot = start;
        let mut best_load = (0u64, 1u64); // (conns, weight) of the best so far
        for k in 0..n {
            let slot = (start + k) % n;
            let i = usize::from(self.pickable[slot]);
            let load = (u64::from(conns(i)), u64::from(self.members[i].weight));
            // load.0 / load.1 < best.0 / best.1, cross-multiplied (weights are > 0 and
            // <= 1000, connection counts are u32: no overflow).
            if k == 0 || load.0 * best_load.1 < best_load.0 * load.1 {
                best_slot = slot;
                best_load = load;
            }
        }
        state.cursor = (best_slot + 1) % n;
        usize::from(self.pickable[best_slot])
    }

    fn pick_hash(&self, client: Ipv6Addr) -> Option<usize> {
        let len = u64::try_from(self.table.len()).ok().filter(|&l| l > 0)?;
        let entry = usize::try_from(client_hash(client) % len).ok()?;
        self.table.get(entry).map(|&i| usize::from(i))
    }
}

/// Builds the Maglev lookup table over the pickable members (see [`Rotation::table_len`]).
fn maglev_table(members: &[Candidate], pickable: &[u16]) -> Vec<u16> {
    if pickable.is_empty() {
        return Vec::new();
    }
    let m = TABLE_SIZES
        .iter()
        .find(|&&(most, _)| members.len() <= most)
        .map_or(TABLE_SIZES[TABLE_SIZES.len() - 1].1, |&(_, size)| size);

    // Turn order by key, so the table does not depend on the order of the member list.
    let mut order: Vec<u16> = pickable.to_vec();
    order.sort_by_key(|&i| (members[usize::from(i)].key, i));

    struct Walker {
        index: u16,
        weight: u32,
        credit: u32,
        /// Next position of this member's permutation: offset, offset + skip, ... (mod m).
        next: usize,
        skip: usize,
    }
    let m64 = m as u64;
    let mut walkers: Vec<Walker> = order
        .iter()
        .map(|&index| {
            let key = members[usize::from(index)].key;
            Walker {
                index,
                weight: members[usize::from(index)].weight,
                credit: 0,
                // Both below m <= 65521: the casts cannot truncate.
                next: (mix64(key ^ OFFSET_SEED) % m64) as usize,
                skip: (mix64(key ^ SKIP_SEED) % (m64 - 1) + 1) as usize,
            }
        })
        .collect();
    let max_weight = walkers.iter().map(|w| w.weight).max().unwrap_or(1);

    let mut table = vec![EMPTY; m];
    let mut filled = 0;
    // Every turn the heaviest member claims an entry, so this ends after at most m turns.
    // Each permutation visits all m positions (m is prime, 0 < skip < m), so a claim always
    // finds a free entry while the table is not full.
    loop {
        for w in &mut walkers {
            w.credit += w.weight;
            if w.credit < max_weight {
                continue;
            }
            w.credit -= max_weight;
            loop {
                let c = w.next;
                w.next = (w.next + w.skip) % m;
                if table[c] == EMPTY {
                    table[c] = w.index;
                    break;
                }
            }
            filled += 1;
            if filled == m {
                return table;
            }
        }
    }
}

/// Per-worker mutable predictor state for one rotation (allocated once when a worker installs
/// a snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PickState {
    /// Round robin: next slot of the pickable list. Least connections: slot the scan starts at.
    cursor: usize,
    /// Weighted: each member's smooth-weighted-round-robin credit (empty for other predictors).
    current: Vec<i64>,
}

impl PickState {
    /// Fresh state for `rotation`: round robin starts at the first eligible member, weighted
    /// with all credits at zero.
    pub fn new(rotation: &Rotation) -> PickState {
        let current = match rotation.kind {
            Predictor::Weighted => vec![0; rotation.members.len()],
            _ => Vec::new(),
        };
        PickState { cursor: 0, current }
    }
}

#[cfg(test)]
mod tests;
