//! Tests of the hash predictor (Maglev): the same member on every director, pinned across
//! versions, every bit of an IPv6 client used, IPv4 clients as their 32 bits, even spread,
//! minimal disruption, weights.

use super::*;

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
        let clients = (0..40_000u128).map(move |i| Ipv6Addr::from(base ^ ((i & 0xffff) << shift)));
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
