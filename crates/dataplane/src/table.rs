//! A fixed-capacity, set-associative table with per-entry timeouts and LRU eviction inside a
//! set: what a worker uses to remember the few things the data path must (request heads
//! split over segments, flows moved to a backup real). Allocated once; lookups and inserts
//! never allocate, and a full set evicts its oldest entry (counted by the caller).
//!
//! Hostile input decides the keys, so:
//! - the set of a key is SipHash-1-3 of the key under a key drawn at each start (the caller
//!   passes it): without it nobody can aim keys at the set of a chosen entry;
//! - one peer (the key's `a_ip`, the remote host) holds at most `per_peer` ways of a set: a
//!   peer past its bound recycles its own oldest entry of that set, so one host evicts at most
//!   `per_peer` other entries of a set, whatever it sends.

use core::hash::Hasher;
use siphasher::sip::SipHasher13;
use std::net::Ipv6Addr;

/// A connection's 4-tuple: (remote ip, remote port, local ip, local port), the addresses in
/// full, of either family: IPv6 as is, IPv4 mapped (`::ffff:a.b.c.d`), so two
/// clients are one key only when they are one host. `a_ip` is the peer whose entries
/// [`Table`] bounds per set. 36 bytes, aligned to 2 (no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub a_ip: Ipv6Addr,
    pub a_port: u16,
    pub b_ip: Ipv6Addr,
    pub b_port: u16,
}

impl Default for Key {
    fn default() -> Key {
        Key {
            a_ip: Ipv6Addr::UNSPECIFIED,
            a_port: 0,
            b_ip: Ipv6Addr::UNSPECIFIED,
            b_port: 0,
        }
    }
}

impl Key {
    /// SipHash-1-3 over all 36 bytes, in five words.
    #[inline]
    fn hash(&self, k0: u64, k1: u64) -> u64 {
        let (a, b) = (u128::from(self.a_ip), u128::from(self.b_ip));
        let mut h = SipHasher13::new_with_keys(k0, k1);
        h.write_u64(a as u64);
        h.write_u64((a >> 64) as u64);
        h.write_u64(b as u64);
        h.write_u64((b >> 64) as u64);
        h.write_u64(u64::from(self.a_port) << 16 | u64::from(self.b_port));
        h.finish()
    }
}

/// Ways per set.
pub const WAYS: usize = 8;

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Into a free (or expired) slot.
    Fresh,
    /// By evicting a live entry of another peer (the table is under pressure).
    Evicted,
    /// By recycling the peer's own oldest entry of the set (it holds its bound).
    Recycled,
}

pub struct Table<V> {
    keys: Vec<Key>,
    /// Last use in milliseconds; 0 = empty.
    stamps: Vec<u64>,
    vals: Vec<V>,
    set_mask: usize,
    ttl_ms: u64,
    per_peer: usize,
    k0: u64,
    k1: u64,
    /// Slots with a nonzero stamp (live, or expired and not yet reused): while none, lookups
    /// and removals return at once without hashing.
    used: usize,
}

impl<V: Default + Clone> Table<V> {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least one
    /// set of [`WAYS`]), whose entries expire `ttl_ms` after their last use, where one peer
    /// holds at most `per_peer` (1..=[`WAYS`]) ways of a set, hashed under `key`.
    pub fn new(capacity: usize, ttl_ms: u64, per_peer: usize, key: [u8; 16]) -> Self {
        let sets = (capacity.max(WAYS) / WAYS).next_power_of_two();
        let n = sets * WAYS;
        Table {
            keys: vec![Key::default(); n],
            stamps: vec![0; n],
            vals: vec![V::default(); n],
            set_mask: sets - 1,
            ttl_ms,
            per_peer: per_peer.clamp(1, WAYS),
            k0: u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
            used: 0,
        }
    }

    /// No entry is kept (nor an expired one awaiting reuse): lookups and removals would
    /// return at once, so callers may skip building their key.
    #[inline]
    pub fn is_unused(&self) -> bool {
        self.used == 0
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    #[inline]
    fn set(&self, k: &Key) -> usize {
        ((k.hash(self.k0, self.k1) as usize) & self.set_mask) * WAYS
    }

    #[inline]
    fn live(&self, i: usize, now: u64) -> bool {
        let s = self.stamps[i];
        s != 0 && now.saturating_sub(s) < self.ttl_ms
    }

    /// The live entry for `k`, refreshed.
    #[inline]
    pub fn get_mut(&mut self, k: &Key, now: u64) -> Option<&mut V> {
        if self.used == 0 {
            return None;
        }
        let base = self.set(k);
        for i in base..base + WAYS {
            if self.keys[i] == *k && self.live(i, now) {
                self.stamps[i] = now.max(1);
                return Some(&mut self.vals[i]);
            }
        }
        None
    }

    /// Insert or replace; returns the slot's value to fill and how it was obtained. Order of
    /// choice: the key's own live entry; the peer's oldest entry when it holds its bound in
    /// this set; a free (or expired) way; the set's oldest entry.
    pub fn insert(&mut self, k: Key, now: u64) -> (&mut V, Inserted) {
        let base = self.set(&k);
        let mut free = None;
        let mut oldest: Option<usize> = None;
        let mut peer_oldest: Option<usize> = None;
        let mut peer_ways = 0;
        for i in base..base + WAYS {
            if !self.live(i, now) {
                free.get_or_insert(i);
                continue;
            }
            if self.keys[i] == k {
                self.stamps[i] = now.max(1);
                return (&mut self.vals[i], Inserted::Fresh);
            }
            let older = |o: Option<usize>| o.is_none_or(|o| self.stamps[i] < self.stamps[o]);
            if self.keys[i].a_ip == k.a_ip {
                peer_ways += 1;
                if older(peer_oldest) {
                    peer_oldest = Some(i);
                }
            }
            if older(oldest) {
                oldest = Some(i);
            }
        }
        let (slot, how) = match (peer_oldest, free, oldest) {
            (Some(p), _, _) if peer_ways >= self.per_peer => (p, Inserted::Recycled),
            (_, Some(f), _) => (f, Inserted::Fresh),
            (_, None, Some(o)) => (o, Inserted::Evicted),
            // Every way is free or live: with none free, some way is the oldest.
            (_, None, None) => (base, Inserted::Fresh),
        };
        self.used += usize::from(self.stamps[slot] == 0);
        self.keys[slot] = k;
        self.stamps[slot] = now.max(1);
        (&mut self.vals[slot], how)
    }

    pub fn remove(&mut self, k: &Key) {
        if self.used == 0 {
            return;
        }
        let base = self.set(k);
        for i in base..base + WAYS {
            if self.keys[i] == *k && self.stamps[i] != 0 {
                self.stamps[i] = 0;
                self.used -= 1;
            }
        }
    }

    /// Live entries (for statistics; walks the whole table).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self, now: u64) -> usize {
        (0..self.keys.len()).filter(|&i| self.live(i, now)).count()
    }

    /// The most live ways one peer holds in any set (for tests of the bound; walks the table).
    pub fn most_per_peer(&self, now: u64) -> usize {
        let mut most = 0;
        let mut peers = [Ipv6Addr::UNSPECIFIED; WAYS];
        for base in (0..self.keys.len()).step_by(WAYS) {
            let mut n = 0;
            for i in base..base + WAYS {
                if self.live(i, now) {
                    peers[n] = self.keys[i].a_ip;
                    n += 1;
                }
            }
            let live = &mut peers[..n];
            live.sort_unstable();
            for run in live.chunk_by(|a, b| a == b) {
                most = most.max(run.len());
            }
        }
        most
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7; 16];

    /// An IPv4 address as a key holds it.
    fn host(a: std::net::Ipv4Addr) -> Ipv6Addr {
        a.to_ipv6_mapped()
    }

    fn k(n: u32) -> Key {
        Key {
            a_ip: host(n.into()),
            a_port: n as u16,
            b_ip: host(7.into()),
            b_port: 80,
        }
    }

    #[test]
    fn entries_are_found_until_they_expire() {
        let mut t: Table<u32> = Table::new(64, 1000, WAYS, KEY);
        *t.insert(k(1), 10).0 = 5;
        assert_eq!(t.get_mut(&k(1), 500).copied(), Some(5));
        assert_eq!(t.get_mut(&k(1), 1499).copied(), Some(5), "refreshed at 500");
        assert_eq!(t.get_mut(&k(1), 2600), None);
        assert_eq!(t.get_mut(&k(2), 10), None);
    }

    #[test]
    fn a_full_set_evicts_its_oldest_entry_and_memory_stays_fixed() {
        let mut t: Table<u32> = Table::new(WAYS, 1_000_000, WAYS, KEY);
        assert_eq!(t.capacity(), WAYS, "one set");
        for i in 0..WAYS as u32 {
            assert_eq!(t.insert(k(i), 1 + u64::from(i)).1, Inserted::Fresh);
        }
        assert_eq!(t.insert(k(99), 100).1, Inserted::Evicted);
        assert_eq!(t.get_mut(&k(0), 100), None, "the oldest went");
        assert!(t.get_mut(&k(WAYS as u32 - 1), 100).is_some());
        for i in 0..10_000 {
            t.insert(k(100 + i), 200 + u64::from(i));
        }
        assert_eq!(t.capacity(), WAYS);
        assert_eq!(t.len(20_000), WAYS);
    }

    #[test]
    fn one_peer_recycles_its_own_entries_past_its_bound() {
        let mut t: Table<u32> = Table::new(WAYS, 1_000_000, 2, KEY);
        // Six other peers, then one peer sending many keys: it never holds more than two ways
        // and never evicts the others.
        for i in 0..6u32 {
            t.insert(k(i), 1 + u64::from(i));
        }
        let peer = |p: u16| Key {
            a_ip: host(1000.into()),
            a_port: p,
            b_ip: host(7.into()),
            b_port: 80,
        };
        let mut how = Vec::new();
        for p in 0..100u16 {
            how.push(t.insert(peer(p), 10 + u64::from(p)).1);
        }
        assert_eq!(
            &how[..3],
            &[Inserted::Fresh, Inserted::Fresh, Inserted::Recycled]
        );
        assert!(how[2..].iter().all(|h| *h == Inserted::Recycled));
        for i in 0..6u32 {
            assert!(t.get_mut(&k(i), 200).is_some(), "peer {i} kept its entry");
        }
        assert_eq!(t.most_per_peer(200), 2);
        assert!(t.get_mut(&peer(99), 200).is_some() && t.get_mut(&peer(98), 200).is_some());
    }

    #[test]
    fn the_set_of_a_key_depends_on_the_table_key() {
        // Under one key, gather keys that share a set; under another key they spread out.
        let a: Table<u32> = Table::new(1024, 1000, WAYS, KEY);
        let b: Table<u32> = Table::new(1024, 1000, WAYS, [8; 16]);
        let set0 = a.set(&k(0));
        let same: Vec<u32> = (1..100_000)
            .filter(|&n| a.set(&k(n)) == set0)
            .take(8)
            .collect();
        assert_eq!(same.len(), 8);
        let spread = same
            .iter()
            .filter(|&&n| b.set(&k(n)) == b.set(&k(0)))
            .count();
        assert!(
            spread < 3,
            "{spread} of 8 keys still share a set under another key"
        );
    }

    #[test]
    fn ipv6_keys_differ_in_any_bit_and_peers_are_whole_addresses() {
        // Two IPv6 hosts sharing their low 32 bits (or any 32-bit fold) are two keys and two
        // peers: one's bound never recycles the other's entries.
        let a: Ipv6Addr = "2001:db8:0:1::c633:6401".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:0:2::c633:6401".parse().unwrap();
        let key = |ip, port| Key {
            a_ip: ip,
            a_port: port,
            b_ip: host(7.into()),
            b_port: 80,
        };
        let mut t: Table<u32> = Table::new(WAYS, 1_000_000, 1, KEY);
        *t.insert(key(a, 1000), 1).0 = 1;
        assert_eq!(t.get_mut(&key(b, 1000), 2), None, "b is not a");
        let (v, how) = t.insert(key(b, 1000), 3);
        *v = 2;
        assert_eq!(how, Inserted::Fresh, "b does not recycle a's way");
        assert_eq!(t.get_mut(&key(a, 1000), 4).copied(), Some(1));
        assert_eq!(t.get_mut(&key(b, 1000), 4).copied(), Some(2));
        assert_eq!(t.most_per_peer(4), 1);
        // And an IPv4 host is not the IPv6 host with the same 32 bits.
        let v4 = host(std::net::Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(t.get_mut(&key(v4, 1000), 5), None);
    }

    #[test]
    fn removed_entries_are_gone() {
        let mut t: Table<u32> = Table::new(16, 1000, WAYS, KEY);
        t.insert(k(3), 1);
        t.remove(&k(3));
        assert!(t.get_mut(&k(3), 2).is_none());
        assert_eq!(t.len(2), 0);
    }
}
