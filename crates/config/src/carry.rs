//! Counters follow their objects across snapshots by index, computed once on the control
//! side: for each real and URL of a new snapshot, its index in the snapshot the control plane
//! built before it ([`Carry::between`]). Every worker then moves its per-real and per-URL
//! counters with [`Carry::apply`] (no string or address search on a worker), and the control
//! plane maps late reports the same way. A real is the same object when its address is; a
//! URL when its id and implicitness are.

use crate::snapshot::Snapshot;
use std::collections::HashMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carry {
    /// The epoch whose indices the entries name (0: none, a first snapshot).
    pub from: u64,
    /// For each real of the new snapshot, its index in snapshot `from`.
    pub reals: Vec<Option<u32>>,
    /// For each URL of the new snapshot, its index in snapshot `from`.
    pub urls: Vec<Option<u32>>,
}

impl Carry {
    pub fn between(old: &Snapshot, new: &Snapshot) -> Carry {
        let reals: HashMap<_, _> = old
            .reals
            .iter()
            .enumerate()
            .map(|(i, r)| (r.addr, i as u32))
            .collect();
        let urls: HashMap<_, _> = old
            .urls
            .iter()
            .enumerate()
            .map(|(i, u)| ((u.id.as_str(), u.implicit), i as u32))
            .collect();
        Carry {
            from: old.epoch,
            reals: new
                .reals
                .iter()
                .map(|r| reals.get(&r.addr).copied())
                .collect(),
            urls: new
                .urls
                .iter()
                .map(|u| urls.get(&(u.id.as_str(), u.implicit)).copied())
                .collect(),
        }
    }

    /// True when this carry (of `new`) maps from `old`: same epoch, one entry per object.
    pub fn leads_from(&self, old: &Snapshot, new: &Snapshot) -> bool {
        self.from == old.epoch
            && old.epoch != 0
            && self.reals.len() == new.reals.len()
            && self.urls.len() == new.urls.len()
    }

    /// `old` (indexed as in snapshot `from`) moved to the new indices; new objects start at
    /// the default.
    pub fn apply<T: Copy + Default>(map: &[Option<u32>], old: &[T]) -> Vec<T> {
        map.iter()
            .map(|i| {
                i.and_then(|i| old.get(i as usize).copied())
                    .unwrap_or_default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load;

    #[test]
    fn objects_keep_their_counts_when_indices_move() {
        let a = Snapshot::compile(
            &load(
                "real 10.0.0.1\nreal 10.0.0.2\nurl u1 http://a/\nurl u2 http://b/\n",
                "t",
            )
            .unwrap(),
            1,
        );
        let b = Snapshot::compile(
            &load(
                "real 10.0.0.0\nreal 10.0.0.2\nurl u0 http://z/\nurl u2 http://b/\n",
                "t",
            )
            .unwrap(),
            2,
        );
        let c = Carry::between(&a, &b);
        assert_eq!(c.from, 1);
        let pos =
            |s: &Snapshot, ip: &str| s.reals.iter().position(|r| r.addr.ip().to_string() == ip);
        let old_counts: Vec<u64> = a
            .reals
            .iter()
            .map(|r| match r.addr.ip() {
                std::net::IpAddr::V4(a) => u64::from(a.octets()[3]) * 10,
                std::net::IpAddr::V6(_) => 0,
            })
            .collect();
        let moved = Carry::apply(&c.reals, &old_counts);
        assert_eq!(
            moved[pos(&b, "10.0.0.2").unwrap()],
            20,
            "10.0.0.2 keeps its count"
        );
        assert_eq!(
            moved[pos(&b, "10.0.0.0").unwrap()],
            0,
            "a new real starts at zero"
        );
        let u2_old = a.urls.iter().position(|u| u.id == "u2").unwrap() as u32;
        let u2_new = b.urls.iter().position(|u| u.id == "u2").unwrap();
        assert_eq!(c.urls[u2_new], Some(u2_old));
        assert!(
            c.urls.iter().filter(|u| u.is_none()).count() >= 1,
            "u0 is new"
        );
    }
}
