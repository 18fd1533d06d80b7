//! A fixed-capacity, set-associative table with per-entry timeouts and LRU eviction inside a
//! set: what a worker uses to remember the few things the data path must (request heads
//! split over segments, flows moved to a backup real). Allocated once; lookups and inserts
//! never allocate, and a full set evicts its oldest entry (counted by the caller).

/// A connection's 4-tuple, packed: (remote ip, remote port, local ip, local port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Key {
    pub a_ip: u32,
    pub a_port: u16,
    pub b_ip: u32,
    pub b_port: u16,
}

impl Key {
    #[inline]
    fn hash(&self) -> u64 {
        // A multiply-xorshift mix; attacker-chosen tuples can at worst fill one set.
        let x = (u64::from(self.a_ip) << 32 | u64::from(self.b_ip))
            ^ (u64::from(self.a_port) << 16 | u64::from(self.b_port))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^ (x >> 29)
    }
}

const WAYS: usize = 4;

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Into a free (or expired) slot.
    Fresh,
    /// By evicting a live entry (the table is under pressure).
    Evicted,
}

pub struct Table<V> {
    keys: Vec<Key>,
    /// Last use in milliseconds; 0 = empty.
    stamps: Vec<u64>,
    vals: Vec<V>,
    set_mask: usize,
    ttl_ms: u64,
}

impl<V: Default + Clone> Table<V> {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least 4),
    /// whose entries expire `ttl_ms` after their last use.
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        let sets = (capacity.max(WAYS) / WAYS).next_power_of_two();
        let n = sets * WAYS;
        Table {
            keys: vec![Key::default(); n],
            stamps: vec![0; n],
            vals: vec![V::default(); n],
            set_mask: sets - 1,
            ttl_ms,
        }
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    #[inline]
    fn set(&self, k: &Key) -> usize {
        ((k.hash() as usize) & self.set_mask) * WAYS
    }

    #[inline]
    fn live(&self, i: usize, now: u64) -> bool {
        let s = self.stamps[i];
        s != 0 && now.saturating_sub(s) < self.ttl_ms
    }

    /// The live entry for `k`, refreshed.
    #[inline]
    pub fn get_mut(&mut self, k: &Key, now: u64) -> Option<&mut V> {
        let base = self.set(k);
        for i in base..base + WAYS {
            if self.keys[i] == *k && self.live(i, now) {
                self.stamps[i] = now.max(1);
                return Some(&mut self.vals[i]);
            }
        }
        None
    }

    /// Insert or replace; returns the slot's value to fill and how it was obtained.
    pub fn insert(&mut self, k: Key, now: u64) -> (&mut V, Inserted) {
        let base = self.set(&k);
        let mut victim = base;
        let mut how = Inserted::Evicted;
        for i in base..base + WAYS {
            if self.keys[i] == k && self.live(i, now) {
                victim = i;
                how = Inserted::Fresh;
                break;
            }
            if !self.live(i, now) {
                victim = i;
                how = Inserted::Fresh;
            } else if how == Inserted::Evicted && self.stamps[i] < self.stamps[victim] {
                victim = i;
            }
        }
        self.keys[victim] = k;
        self.stamps[victim] = now.max(1);
        (&mut self.vals[victim], how)
    }

    pub fn remove(&mut self, k: &Key) {
        let base = self.set(k);
        for i in base..base + WAYS {
            if self.keys[i] == *k {
                self.stamps[i] = 0;
            }
        }
    }

    /// Live entries (for statistics; walks the whole table).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self, now: u64) -> usize {
        (0..self.keys.len()).filter(|&i| self.live(i, now)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u32) -> Key {
        Key {
            a_ip: n,
            a_port: n as u16,
            b_ip: 7,
            b_port: 80,
        }
    }

    #[test]
    fn entries_are_found_until_they_expire() {
        let mut t: Table<u32> = Table::new(64, 1000);
        *t.insert(k(1), 10).0 = 5;
        assert_eq!(t.get_mut(&k(1), 500).copied(), Some(5));
        assert_eq!(t.get_mut(&k(1), 1499).copied(), Some(5), "refreshed at 500");
        assert_eq!(t.get_mut(&k(1), 2600), None);
        assert_eq!(t.get_mut(&k(2), 10), None);
    }

    #[test]
    fn a_full_set_evicts_its_oldest_entry_and_memory_stays_fixed() {
        let mut t: Table<u32> = Table::new(4, 1_000_000);
        assert_eq!(t.capacity(), 4, "one set of four ways");
        for i in 0..4 {
            assert_eq!(t.insert(k(i), 1 + u64::from(i)).1, Inserted::Fresh);
        }
        assert_eq!(t.insert(k(9), 100).1, Inserted::Evicted);
        assert_eq!(t.get_mut(&k(0), 100), None, "the oldest went");
        assert!(t.get_mut(&k(3), 100).is_some());
        for i in 0..10_000 {
            t.insert(k(100 + i), 200 + u64::from(i));
        }
        assert_eq!(t.capacity(), 4);
        assert_eq!(t.len(20_000), 4);
    }

    #[test]
    fn removed_entries_are_gone() {
        let mut t: Table<u32> = Table::new(16, 1000);
        t.insert(k(3), 1);
        t.remove(&k(3));
        assert!(t.get_mut(&k(3), 2).is_none());
        assert_eq!(t.len(2), 0);
    }
}
