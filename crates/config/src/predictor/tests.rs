//! Tests of the predictors: keywords, round robin, weighted, least connections, rotations
//! shared by workers, and the properties every predictor keeps; Maglev's in [`hash`].

mod hash;

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
