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
//!   address, of either family (see [`client_hash`]). The lookup table is built in [`Rotation::new`] over the eligible members, from
//!   each member's stable [`Candidate::key`], so that it depends neither on the member order
//!   nor on the machine: several directors with the same configuration send a client to the
//!   same member, and taking one of N members out of service moves only about 1/N of the
//!   clients. See [`Rotation::table_len`] for the table size and the weighting rule.
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// An IPv4 client as the predictor takes it (IPv4-mapped).
    fn v4(c: u32) -> Ipv6Addr {
        Ipv4Addr::from(c).to_ipv6_mapped()
    }

    fn member(id: &str, weight: u32, eligible: bool) -> Candidate {
        Candidate {
            weight,
            eligible,
            key: stable_key(id),
        }
    }

    /// Members "m0", "m1", ... with the given weights, all eligible.
    fn weighted(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| member(&format!("m{i}"), w, true))
            .collect()
    }

    fn picks(rotation: &Rotation, state: &mut PickState, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| {
                rotation
                    .pick(state, v4(0), |_| 0)
                    .expect("an eligible member")
            })
            .collect()
    }

    fn sequence(kind: Predictor, members: Vec<Candidate>, count: usize) -> Vec<usize> {
        let rotation = Rotation::new(kind, members);
        let mut state = PickState::new(&rotation);
        picks(&rotation, &mut state, count)
    }

    fn counts(seq: &[usize], members: usize) -> Vec<usize> {
        let mut c = vec![0; members];
        for &i in seq {
            c[i] += 1;
        }
        c
    }

    fn max_run(seq: &[usize]) -> usize {
        seq.chunk_by(|a, b| a == b)
            .map(<[usize]>::len)
            .max()
            .unwrap_or(0)
    }

    // --- keywords and keys ---

    #[test]
    fn keywords_round_trip_and_unknown_is_none() {
        for p in Predictor::ALL {
            assert_eq!(Predictor::from_keyword(p.keyword()), Some(p));
            assert_eq!(p.to_string(), p.keyword());
        }
        assert_eq!(
            Predictor::from_keyword("LeastConns"),
            Some(Predictor::LeastConns)
        );
        assert_eq!(Predictor::from_keyword("random"), None);
        assert_eq!(Predictor::from_keyword(""), None);
    }

    #[test]
    fn client_hash_is_the_splitmix64_reference() {
        // The first two outputs of splitmix64 seeded with 0 (Vigna's reference code).
        assert_eq!(client_hash(v4(0)), 0xe220_a839_7b1d_cdaf);
        assert_eq!(
            mix64(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(2)),
            0x6e78_9e6a_a1b9_65f4
        );
    }

    #[test]
    fn stable_key_is_fnv1a_64() {
        // Reference values of FNV-1a 64.
        assert_eq!(stable_key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_key("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_key("foobar"), 0x8594_4171_f739_67e8);
    }

    // --- nothing eligible ---

    #[test]
    fn every_predictor_returns_none_when_nothing_is_eligible() {
        let cases = [
            vec![],
            vec![member("a", 1, false), member("b", 5, false)],
            vec![member("a", 0, true), member("b", 0, true)],
            vec![member("a", 0, true), member("b", 3, false)],
        ];
        for kind in Predictor::ALL {
            for members in &cases {
                let rotation = Rotation::new(kind, members.clone());
                assert!(!rotation.has_eligible());
                let mut state = PickState::new(&rotation);
                for client in [0, 1, u32::MAX] {
                    assert_eq!(rotation.pick(&mut state, v4(client), |_| 0), None, "{kind}");
                }
            }
        }
    }

    // --- round robin ---

    #[test]
    fn round_robin_cycles_members_in_order() {
        let seq = sequence(Predictor::RoundRobin, weighted(&[1, 1, 1]), 7);
        assert_eq!(seq, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_ignores_nonzero_weights() {
        let seq = sequence(Predictor::RoundRobin, weighted(&[5, 1, 9]), 6);
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn round_robin_skips_ineligible_member() {
        let members = vec![
            member("a", 1, true),
            member("b", 1, false),
            member("c", 1, true),
        ];
        assert_eq!(sequence(Predictor::RoundRobin, members, 4), [0, 2, 0, 2]);
    }

    #[test]
    fn round_robin_skips_weight_zero_member() {
        let members = vec![
            member("a", 0, true),
            member("b", 2, true),
            member("c", 0, true),
            member("d", 1, true),
        ];
        assert_eq!(sequence(Predictor::RoundRobin, members, 5), [1, 3, 1, 3, 1]);
    }

    #[test]
    fn round_robin_with_single_eligible_member_always_picks_it() {
        let members = vec![
            member("a", 1, false),
            member("b", 1, false),
            member("c", 1, true),
        ];
        assert_eq!(sequence(Predictor::RoundRobin, members, 3), [2, 2, 2]);
    }

    // --- weighted ---

    #[test]
    fn weighted_gives_exact_shares_over_a_full_cycle() {
        for weights in [
            &[5, 1, 1][..],
            &[3, 2],
            &[1, 1, 1],
            &[7, 3, 0, 2],
            &[1000, 1],
            &[4, 4, 2, 1],
        ] {
            let cycle: u32 = weights.iter().sum();
            let rotation = Rotation::new(Predictor::Weighted, weighted(weights));
            let mut state = PickState::new(&rotation);
            for _ in 0..3 {
                let seq = picks(&rotation, &mut state, cycle as usize);
                let got = counts(&seq, weights.len());
                let want: Vec<usize> = weights.iter().map(|&w| w as usize).collect();
                assert_eq!(got, want, "weights {weights:?}");
            }
        }
    }

    #[test]
    fn weighted_5_1_1_is_the_smooth_nginx_sequence() {
        let seq = sequence(Predictor::Weighted, weighted(&[5, 1, 1]), 14);
        // a a b a c a a, twice.
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weighted_never_runs_longer_than_the_smooth_bound() {
        // Longest run of one member over five cycles (cycle boundaries included). A blockwise
        // weighted round robin (`a a a a a b c`) would run as long as the largest weight.
        for (weights, bound) in [
            (&[5, 1, 1][..], 4),
            (&[3, 2][..], 2),
            (&[8, 8, 1][..], 1),
            (&[20, 5, 5][..], 3),
            (&[9, 1, 1, 1][..], 5),
            (&[6, 3, 3][..], 2),
        ] {
            let cycle: u32 = weights.iter().sum();
            let seq = sequence(Predictor::Weighted, weighted(weights), 5 * cycle as usize);
            assert!(
                max_run(&seq) <= bound,
                "weights {weights:?}: run {} > {bound} in {seq:?}",
                max_run(&seq)
            );
        }
    }

    #[test]
    fn weighted_stays_close_to_its_shares_at_every_prefix() {
        // Smoothness: after any number k of picks, member i has k * w_i / T picks, give or
        // take one.
        for weights in [&[5, 1, 1][..], &[3, 2], &[9, 7, 3, 1], &[100, 1, 50]] {
            let total: u32 = weights.iter().sum();
            let seq = sequence(Predictor::Weighted, weighted(weights), 3 * total as usize);
            let mut got = vec![0i64; weights.len()];
            for (k, &i) in seq.iter().enumerate() {
                got[i] += 1;
                for (j, &w) in weights.iter().enumerate() {
                    let ideal = (k as i64 + 1) * i64::from(w);
                    let diff = (got[j] * i64::from(total) - ideal).abs();
                    assert!(
                        diff <= i64::from(total),
                        "weights {weights:?}, prefix {}: member {j} has {} picks",
                        k + 1,
                        got[j]
                    );
                }
            }
        }
    }

    #[test]
    fn weighted_with_equal_weights_is_round_robin() {
        let seq = sequence(Predictor::Weighted, weighted(&[4, 4, 4, 4]), 8);
        assert_eq!(seq, [0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn weighted_skips_ineligible_and_weight_zero_members() {
        let members = vec![
            member("a", 5, false),
            member("b", 2, true),
            member("c", 0, true),
            member("d", 1, true),
        ];
        let seq = sequence(Predictor::Weighted, members, 9);
        assert_eq!(seq, [1, 3, 1, 1, 3, 1, 1, 3, 1]);
    }

    // --- least connections ---

    #[test]
    fn least_conns_picks_the_member_with_fewest_connections() {
        let rotation = Rotation::new(Predictor::LeastConns, weighted(&[1, 1, 1]));
        let mut state = PickState::new(&rotation);
        let conns = [7, 2, 5];
        for _ in 0..5 {
            assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(1));
        }
    }

    #[test]
    fn least_conns_divides_connections_by_weight() {
        // Loads 10/5 = 2, 3/1 = 3, 5/2 = 2.5: member 0 is least loaded despite most conns.
        let rotation = Rotation::new(Predictor::LeastConns, weighted(&[5, 1, 2]));
        let mut state = PickState::new(&rotation);
        let conns = [10, 3, 5];
        assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(0));
        // One more on member 0 (11/5 = 2.2) still beats 2.5; at 13/5 = 2.6 member 2 wins.
        let conns = [11, 3, 5];
        assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(0));
        let conns = [13, 3, 5];
        assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(2));
    }

    #[test]
    fn least_conns_rotates_among_tied_members() {
        let rotation = Rotation::new(Predictor::LeastConns, weighted(&[1, 1, 1]));
        let mut state = PickState::new(&rotation);
        let seq: Vec<_> = (0..6)
            .map(|_| rotation.pick(&mut state, v4(0), |_| 4).unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);

        // Only members 0 and 2 tie for least: they alternate, member 1 is never picked.
        let conns = [0, 9, 0];
        let seq: Vec<_> = (0..6)
            .map(|_| rotation.pick(&mut state, v4(0), |i| conns[i]).unwrap())
            .collect();
        assert_eq!(counts(&seq, 3), [3, 0, 3]);
        assert!(seq.windows(2).all(|w| w[0] != w[1]), "{seq:?}");
    }

    #[test]
    fn least_conns_skips_ineligible_member_even_when_idle() {
        let members = vec![
            member("a", 1, false),
            member("b", 1, true),
            member("c", 0, true),
        ];
        let rotation = Rotation::new(Predictor::LeastConns, members);
        let mut state = PickState::new(&rotation);
        let conns = [0, 1000, 0];
        assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(1));
    }

    #[test]
    fn least_conns_handles_extreme_counts_without_overflow() {
        let rotation = Rotation::new(Predictor::LeastConns, weighted(&[1000, 1]));
        let mut state = PickState::new(&rotation);
        let conns = [u32::MAX, u32::MAX - 1];
        // u32::MAX / 1000 < (u32::MAX - 1) / 1.
        assert_eq!(rotation.pick(&mut state, v4(0), |i| conns[i]), Some(0));
    }

    // --- hash (Maglev) ---

    /// Members "real-0", "real-1", ... with the given weights, all eligible.
    fn reals(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| member(&format!("real-{i}"), w, true))
            .collect()
    }

    /// The member each of `clients` clients (spread over the address space) is sent to.
    fn assignments(rotation: &Rotation, clients: u32) -> Vec<usize> {
        let mut state = PickState::new(rotation);
        (0..clients)
            .map(|c| {
                let addr = 0x0a00_0000_u32.wrapping_add(c.wrapping_mul(2_654_435_761));
                rotation.pick(&mut state, v4(addr), |_| 0).unwrap()
            })
            .collect()
    }

    #[test]
    fn hash_sends_a_client_to_the_same_member_on_independent_directors() {
        let director_a = Rotation::new(Predictor::Hash, reals(&[1, 1, 2, 1, 3]));
        let director_b = Rotation::new(Predictor::Hash, reals(&[1, 1, 2, 1, 3]));
        assert_eq!(
            assignments(&director_a, 20_000),
            assignments(&director_b, 20_000)
        );
        // Repeated picks on one director agree too (no hidden state).
        assert_eq!(
            assignments(&director_a, 1000),
            assignments(&director_a, 1000)
        );
    }

    #[test]
    fn hash_table_does_not_depend_on_member_order() {
        let members = reals(&[1, 2, 1, 1]);
        let mut reversed = members.clone();
        reversed.reverse();
        let forward = Rotation::new(Predictor::Hash, members.clone());
        let backward = Rotation::new(Predictor::Hash, reversed);
        let a = assignments(&forward, 20_000);
        let b = assignments(&backward, 20_000);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(members[*x].key, backward.members()[*y].key);
        }
    }

    #[test]
    fn hash_is_pinned_across_builds_and_machines() {
        // Golden values: a change here means directors of different versions disagree.
        let rotation = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1]));
        assert_eq!(rotation.table_len(), 4093);
        let mut state = PickState::new(&rotation);
        let got: Vec<_> = [0u32, 1, 0x0a00_0001, 0xc0a8_0101, u32::MAX]
            .iter()
            .map(|&c| rotation.pick(&mut state, v4(c), |_| 0).unwrap())
            .collect();
        assert_eq!(got, GOLDEN_HASH_PICKS);
    }
    const GOLDEN_HASH_PICKS: [usize; 5] = [0, 1, 2, 1, 2];

    #[test]
    fn hash_of_ipv6_clients_is_pinned() {
        // Golden values, as for IPv4: directors of different versions must agree.
        let rotation = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1]));
        let mut state = PickState::new(&rotation);
        let got: Vec<_> = ["2001:db8::1", "2001:db8:1::1", "::", "ffff::ffff"]
            .iter()
            .map(|a| {
                let a: Ipv6Addr = a.parse().unwrap();
                rotation.pick(&mut state, a, |_| 0).unwrap()
            })
            .collect();
        assert_eq!(got, GOLDEN_HASH_PICKS_V6);
    }
    const GOLDEN_HASH_PICKS_V6: [usize; 4] = [0, 1, 3, 3];

    /// The share of `clients` sent to each of 4 equal members.
    fn shares_v6(clients: impl Iterator<Item = Ipv6Addr>) -> [f64; 4] {
        let rotation = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1]));
        let mut state = PickState::new(&rotation);
        let picks: Vec<usize> = clients
            .map(|a| rotation.pick(&mut state, a, |_| 0).unwrap())
            .collect();
        let got = counts(&picks, 4);
        std::array::from_fn(|i| got[i] as f64 / picks.len() as f64)
    }

    #[test]
    fn hash_uses_every_bit_of_an_ipv6_client() {
        // Clients that differ only above bit 32 (identical low 32 bits, as a fold or a
        // truncation to 32 bits would see them): spread evenly over the members, whichever
        // 16-bit group of the address varies.
        for shift in [32u32, 48, 64, 80, 96, 112] {
            let base = u128::from("2001:db8::c633:6401".parse::<Ipv6Addr>().unwrap());
            let clients =
                (0..40_000u128).map(move |i| Ipv6Addr::from(base ^ ((i & 0xffff) << shift)));
            let s = shares_v6(clients);
            for (i, share) in s.iter().enumerate() {
                assert!(
                    (0.22..=0.28).contains(share),
                    "bits {shift}..{}: member {i} got {share} ({s:?})",
                    shift + 16
                );
            }
        }
        // Two clients differing only in their high bits are hashed independently: over many
        // such pairs, they land on the same member about 1 time in 4, not always.
        let rotation = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1]));
        let mut state = PickState::new(&rotation);
        let pairs = 20_000u128;
        let same = (0..pairs)
            .filter(|&i| {
                let low = i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff;
                let a = Ipv6Addr::from(0x2001_0db8_u128 << 96 | low);
                let b = Ipv6Addr::from(0x2001_0db9_u128 << 96 | low);
                rotation.pick(&mut state, a, |_| 0) == rotation.pick(&mut state, b, |_| 0)
            })
            .count();
        let share = same as f64 / pairs as f64;
        assert!((0.22..=0.28).contains(&share), "{share}");
    }

    #[test]
    fn ipv4_clients_hash_as_their_32_bits() {
        // IPv4 keeps its member assignment across the 128-bit predictor: the mapped address
        // hashes as the 32-bit one did, and differs from the same bits as an IPv6 address.
        assert_eq!(
            client_hash(v4(0xc0a8_0101)),
            mix64(0xc0a8_0101_u64.wrapping_add(GOLDEN))
        );
        assert_ne!(
            client_hash(v4(0xc0a8_0101)),
            client_hash(Ipv6Addr::from(0xc0a8_0101_u128))
        );
    }

    #[test]
    fn hash_spreads_clients_evenly_over_equal_members() {
        let rotation = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1]));
        let got = counts(&assignments(&rotation, 100_000), 4);
        for (i, &c) in got.iter().enumerate() {
            let share = c as f64 / 100_000.0;
            assert!(
                (0.225..=0.275).contains(&share),
                "member {i}: {share} ({got:?})"
            );
        }
    }

    #[test]
    fn hash_removing_one_of_five_members_moves_about_a_fifth_of_clients() {
        let before = Rotation::new(Predictor::Hash, reals(&[1, 1, 1, 1, 1]));
        let mut members = reals(&[1, 1, 1, 1, 1]);
        members[2].eligible = false;
        let after = Rotation::new(Predictor::Hash, members);
        let a = assignments(&before, 100_000);
        let b = assignments(&after, 100_000);

        assert!(b.iter().all(|&i| i != 2));
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        let moved_fraction = moved as f64 / a.len() as f64;
        assert!(
            (0.15..=0.30).contains(&moved_fraction),
            "moved {moved_fraction}"
        );

        let stayed_members: Vec<_> = a.iter().zip(&b).filter(|(x, _)| **x != 2).collect();
        let disturbed = stayed_members.iter().filter(|(x, y)| x != y).count();
        let disturbed_fraction = disturbed as f64 / stayed_members.len() as f64;
        assert!(disturbed_fraction < 0.05, "disturbed {disturbed_fraction}");
    }

    #[test]
    fn hash_honours_weights_3_to_1() {
        let rotation = Rotation::new(Predictor::Hash, reals(&[3, 1]));
        let got = counts(&assignments(&rotation, 100_000), 2);
        let heavy = got[0] as f64 / 100_000.0;
        assert!((0.72..=0.78).contains(&heavy), "{got:?}");
    }

    #[test]
    fn hash_skips_ineligible_and_weight_zero_members() {
        let members = vec![
            member("a", 1, false),
            member("b", 1, true),
            member("c", 0, true),
            member("d", 2, true),
        ];
        let rotation = Rotation::new(Predictor::Hash, members);
        let got = counts(&assignments(&rotation, 30_000), 4);
        assert_eq!((got[0], got[2]), (0, 0), "{got:?}");
        assert!(got[1] > 0 && got[3] > 0, "{got:?}");
    }

    #[test]
    fn hash_table_size_depends_on_member_count_only() {
        let sizes: Vec<_> = [1, 16, 17, 64, 65, 1024]
            .iter()
            .map(|&n| Rotation::new(Predictor::Hash, reals(&vec![1; n])).table_len())
            .collect();
        assert_eq!(sizes, [4093, 4093, 16381, 16381, 65521, 65521]);
        let mut members = reals(&[1; 20]);
        for m in &mut members[1..] {
            m.eligible = false;
        }
        assert_eq!(Rotation::new(Predictor::Hash, members).table_len(), 16381);
        assert_eq!(
            Rotation::new(Predictor::RoundRobin, reals(&[1, 1])).table_len(),
            0
        );
    }

    // --- limits and foreign state ---

    #[test]
    fn new_truncates_members_and_clamps_weights() {
        let rotation = Rotation::new(Predictor::Weighted, weighted(&vec![5000; MAX_MEMBERS + 10]));
        assert_eq!(rotation.members().len(), MAX_MEMBERS);
        assert!(rotation.members().iter().all(|m| m.weight == MAX_WEIGHT));
    }

    #[test]
    fn pick_with_a_state_from_another_rotation_does_not_panic() {
        let small = Rotation::new(Predictor::Weighted, weighted(&[1, 2]));
        let large: Vec<Rotation> = Predictor::ALL
            .iter()
            .map(|&kind| Rotation::new(kind, weighted(&[1, 2, 3, 4, 5, 6, 7])))
            .collect();
        let mut foreign = PickState::new(&large[1]);
        for _ in 0..5 {
            foreign.cursor = foreign.cursor.wrapping_add(usize::MAX / 3);
            let i = small.pick(&mut foreign, v4(7), |_| 0).unwrap();
            assert!(i < 2);
        }
        for rotation in &large {
            let mut foreign = PickState::new(&small);
            foreign.cursor = usize::MAX;
            for _ in 0..10 {
                let i = rotation.pick(&mut foreign, v4(7), |_| 0).unwrap();
                assert!(i < 7);
            }
        }
        // A round-robin state (no weighted credits) on a weighted rotation: the rotation's
        // own shared cycle goes on.
        let rr = Rotation::new(Predictor::RoundRobin, weighted(&[1, 1, 1]));
        let mut state = PickState::new(&rr);
        let seq: Vec<_> = (0..3)
            .map(|_| large[1].pick(&mut state, v4(0), |_| 0).unwrap())
            .collect();
        assert!(seq.iter().all(|&i| i < 7), "{seq:?}");
    }

    #[test]
    fn workers_sharing_a_rotation_walk_one_sequence() {
        // Two workers (two states) take turns, as requests land on either: together they
        // still produce the exact round-robin and smooth-weighted sequences.
        let rr = Rotation::new(Predictor::RoundRobin, weighted(&[1, 1, 1]));
        let (mut a, mut b) = (PickState::new(&rr), PickState::new(&rr));
        let seq: Vec<_> = (0..6)
            .map(|k| {
                rr.pick(if k % 3 == 0 { &mut a } else { &mut b }, v4(0), |_| 0)
                    .unwrap()
            })
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let w = Rotation::new(Predictor::Weighted, weighted(&[5, 1, 1]));
        let (mut a, mut b) = (PickState::new(&w), PickState::new(&w));
        let seq: Vec<_> = (0..14)
            .map(|k| {
                w.pick(if k % 2 == 0 { &mut a } else { &mut b }, v4(0), |_| 0)
                    .unwrap()
            })
            .collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
        // Across threads too: 3 threads x 700 picks of weights 3,2,2 give exact shares.
        let w = std::sync::Arc::new(Rotation::new(Predictor::Weighted, weighted(&[3, 2, 2])));
        let counts: Vec<[usize; 3]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let w = w.clone();
                    s.spawn(move || {
                        let mut st = PickState::new(&w);
                        let mut c = [0usize; 3];
                        for _ in 0..700 {
                            c[w.pick(&mut st, v4(0), |_| 0).unwrap()] += 1;
                        }
                        c
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: Vec<usize> = (0..3).map(|i| counts.iter().map(|c| c[i]).sum()).collect();
        assert_eq!(total, [900, 600, 600]);
    }

    fn arb_members() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (0u32..10, any::<bool>(), any::<u64>()).prop_map(|(weight, eligible, key)| Candidate {
                weight,
                eligible,
                key,
            }),
            0..40,
        )
    }

    fn arb_predictor() -> impl Strategy<Value = Predictor> {
        prop::sample::select(Predictor::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn pick_only_returns_eligible_members_and_none_iff_nothing_is(
            kind in arb_predictor(),
            members in arb_members(),
            clients in prop::collection::vec(any::<u32>(), 1..20),
            conns in prop::collection::vec(any::<u32>(), 40),
        ) {
            let any_pickable = members.iter().any(|m| m.eligible && m.weight > 0);
            let rotation = Rotation::new(kind, members.clone());
            prop_assert_eq!(rotation.has_eligible(), any_pickable);
            let mut state = PickState::new(&rotation);
            for &client in &clients {
                let got = rotation.pick(&mut state, v4(client), |i| conns[i % conns.len()]);
                match got {
                    None => prop_assert!(!any_pickable),
                    Some(i) => {
                        prop_assert!(any_pickable);
                        prop_assert!(i < members.len());
                        prop_assert!(members[i].eligible && members[i].weight > 0);
                    }
                }
            }
        }
    }
}
