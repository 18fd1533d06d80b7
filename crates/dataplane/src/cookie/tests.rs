//! Tests of the SYN cookies: round trips, every bound field, slots, rotation and grace,
//! known answers, and properties over random tuples.

use super::*;
use proptest::prelude::*;

const SECRET: [u8; 32] = *b"an example secret, 32 bytes long";
const OTHER: [u8; 32] = *b"another secret, also 32 bytes!!!";
const SRC: [u8; 4] = [198, 51, 100, 7];
const DST: [u8; 4] = [203, 0, 113, 10];
const SPORT: u16 = 49152;
const DPORT: u16 = 80;
const ISN: u32 = 0x1234_5678;
/// Some time well away from zero, at the start of a slot.
const T0: u64 = 1_700_000_000 / SLOT_SECS * SLOT_SECS;

#[test]
fn ipv4_cookies_are_the_known_answer() {
    // Computed before IPv6 addresses were accepted: the IPv4 message did not change, so
    // directors of either version accept each other's cookies.
    let c = Cookies::new(&SECRET);
    let v = c.make(SRC, DST, SPORT, DPORT, ISN, Some(1460), 1_700_000_000);
    assert_eq!(v, 0x26ac_b016);
}

#[test]
fn ipv6_cookies_check_and_bind_the_whole_addresses() {
    let c = Cookies::new(&SECRET);
    let src6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let dst6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let cookie = c.make(src6, dst6, SPORT, DPORT, ISN, Some(1440), T0);
    assert_eq!(
        c.check(src6, dst6, SPORT, DPORT, ISN, cookie, T0),
        Some(1440)
    );
    assert_eq!(
        c.check(src6, dst6, SPORT, DPORT, ISN, cookie, T0 + SLOT_SECS),
        Some(1440)
    );
    for i in 0..16 {
        let mut other = src6;
        other[i] ^= 0x80; // any byte of the address counts, not only the low 4
        assert_eq!(
            c.check(other, dst6, SPORT, DPORT, ISN, cookie, T0),
            None,
            "{i}"
        );
    }
    assert_eq!(c.check(dst6, src6, DPORT, SPORT, ISN, cookie, T0), None);
    // An IPv4-mapped address is another message than the IPv4 address.
    let mut mapped = [0u8; 16];
    mapped[10..12].copy_from_slice(&[0xff, 0xff]);
    mapped[12..].copy_from_slice(&SRC);
    let mut mapped_dst = mapped;
    mapped_dst[12..].copy_from_slice(&DST);
    let v4 = c.make(SRC, DST, SPORT, DPORT, ISN, Some(1440), T0);
    assert_eq!(c.check(mapped, mapped_dst, SPORT, DPORT, ISN, v4, T0), None);
}

fn make_at(c: &Cookies, now: u64) -> u32 {
    c.make(SRC, DST, SPORT, DPORT, ISN, Some(1460), now)
}

fn check_at(c: &Cookies, cookie: u32, now: u64) -> Option<u16> {
    c.check(SRC, DST, SPORT, DPORT, ISN, cookie, now)
}

/// splitmix64, for many cheap deterministic random values.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn cookie_checks_in_its_slot_and_the_next() {
    let c = Cookies::new(&SECRET);
    for made in [T0, T0 + 30, T0 + SLOT_SECS - 1] {
        let cookie = make_at(&c, made);
        assert_eq!(check_at(&c, cookie, made), Some(1460));
        assert_eq!(check_at(&c, cookie, T0 + SLOT_SECS - 1), Some(1460));
        assert_eq!(check_at(&c, cookie, T0 + SLOT_SECS), Some(1460));
        assert_eq!(check_at(&c, cookie, T0 + 2 * SLOT_SECS - 1), Some(1460));
    }
}

#[test]
fn a_director_accepting_the_next_secret_takes_cookies_of_one_already_switched() {
    let switched = Cookies::new(&OTHER);
    let cookie = make_at(&switched, T0);
    let mut waiting = Cookies::new(&SECRET);
    assert!(check_at(&waiting, cookie, T0).is_none());
    waiting.accept_also(Some(&OTHER));
    assert!(check_at(&waiting, cookie, T0).is_some());
    // Its own cookies still check, and it still issues with its own secret.
    assert!(check_at(&waiting, make_at(&waiting, T0), T0).is_some());
    assert!(check_at(&switched, make_at(&waiting, T0), T0).is_none());
    waiting.accept_also(None);
    assert!(check_at(&waiting, cookie, T0).is_none());
}

#[test]
fn in_window_holds_exactly_while_a_cookie_could_check() {
    let c = Cookies::new(&SECRET);
    let cookie = make_at(&c, T0 + 5);
    for (at, want) in [
        (T0, true),
        (T0 + SLOT_SECS, true),
        (T0 + 2 * SLOT_SECS - 1, true),
        (T0 + 2 * SLOT_SECS, false),
        (T0 - 1, false),
    ] {
        assert_eq!(Cookies::in_window(cookie, at), want, "at {at}");
        assert_eq!(check_at(&c, cookie, at).is_some(), want, "check at {at}");
    }
    assert!(Cookies::in_window(make_at(&c, 0), 0));
    assert!(!Cookies::in_window(make_at(&c, SLOT_SECS), 0));
}

#[test]
fn cookie_is_stale_two_slots_later() {
    let c = Cookies::new(&SECRET);
    let cookie = make_at(&c, T0 + SLOT_SECS - 1);
    assert_eq!(check_at(&c, cookie, T0 + 2 * SLOT_SECS), None);
    assert_eq!(check_at(&c, cookie, T0 + 3 * SLOT_SECS), None);
    // 32 slots later the clear 5 bits match again; the hashed full counter does not.
    assert_eq!(check_at(&c, cookie, T0 + 32 * SLOT_SECS), None);
    assert_eq!(check_at(&c, cookie, T0 + 33 * SLOT_SECS), None);
}

#[test]
fn cookie_from_the_future_or_before_time_zero_is_refused() {
    let c = Cookies::new(&SECRET);
    let cookie = make_at(&c, T0 + SLOT_SECS);
    assert_eq!(check_at(&c, cookie, T0), None);
    // Slot 0 has no previous slot: nothing underflows.
    let early = make_at(&c, 0);
    assert_eq!(check_at(&c, early, 0), Some(1460));
    assert_eq!(check_at(&c, early ^ (1 << 27), 0), None);
    assert_eq!(check_at(&c, early, u64::MAX), None);
    let late = make_at(&c, u64::MAX);
    assert_eq!(check_at(&c, late, u64::MAX), Some(1460));
}

#[test]
fn any_changed_field_fails() {
    let c = Cookies::new(&SECRET);
    let cookie = make_at(&c, T0);
    for bit in 0..32 {
        let mut src = SRC;
        src[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            c.check(src, DST, SPORT, DPORT, ISN, cookie, T0),
            None,
            "src bit {bit}"
        );
        let mut dst = DST;
        dst[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            c.check(SRC, dst, SPORT, DPORT, ISN, cookie, T0),
            None,
            "dst bit {bit}"
        );
        let isn = ISN ^ (1 << bit);
        assert_eq!(
            c.check(SRC, DST, SPORT, DPORT, isn, cookie, T0),
            None,
            "isn bit {bit}"
        );
    }
    for bit in 0..16 {
        let p = SPORT ^ (1 << bit);
        assert_eq!(
            c.check(SRC, DST, p, DPORT, ISN, cookie, T0),
            None,
            "sport bit {bit}"
        );
        let p = DPORT ^ (1 << bit);
        assert_eq!(
            c.check(SRC, DST, SPORT, p, ISN, cookie, T0),
            None,
            "dport bit {bit}"
        );
    }
    // Swapped direction (the SYN-ACK's tuple instead of the client's) fails too.
    assert_eq!(c.check(DST, SRC, DPORT, SPORT, ISN, cookie, T0), None);
}

#[test]
fn flipping_any_cookie_bit_fails() {
    let c = Cookies::new(&SECRET);
    // Made in an odd slot and checked in the next, so that flipping bit 27 lands on the
    // other slot the check tries, and flipping the MSS bits gives valid indexes.
    let made = T0 + SLOT_SECS;
    let made = if (made / SLOT_SECS) % 2 == 1 {
        made
    } else {
        made + SLOT_SECS
    };
    let cookie = make_at(&c, made);
    for now in [made, made + SLOT_SECS] {
        assert_eq!(check_at(&c, cookie, now), Some(1460));
        for bit in 0..32 {
            assert_eq!(
                check_at(&c, cookie ^ (1 << bit), now),
                None,
                "bit {bit}, now {now}"
            );
        }
    }
}

#[test]
fn mss_round_trips_through_the_table() {
    let c = Cookies::new(&SECRET);
    let cases = [
        (Some(1460), 1460),
        (Some(1459), 1440),
        (None, 536),
        (Some(100), 536),
        (Some(0), 536),
        (Some(536), 536),
        (Some(1023), 536),
        (Some(1024), 1024),
        (Some(8959), 1460),
        (Some(9000), 8960),
        (Some(u16::MAX), 8960),
    ];
    for (client, expect) in cases {
        let cookie = c.make(SRC, DST, SPORT, DPORT, ISN, client, T0);
        assert_eq!(
            check_at(&c, cookie, T0),
            Some(expect),
            "client mss {client:?}"
        );
    }
    for &m in &MSS_TABLE {
        assert_eq!(MSS_TABLE[mss_index(Some(m)) as usize], m);
    }
}

#[test]
fn old_cookies_check_within_grace_only_and_new_ones_check() {
    let mut c = Cookies::new(&SECRET);
    let old = make_at(&c, T0);
    c.rotate(&OTHER, T0 + 10, 30);
    let new = make_at(&c, T0 + 10);
    assert_ne!(old, new);
    assert_eq!(check_at(&c, old, T0 + 10), Some(1460));
    assert_eq!(check_at(&c, old, T0 + 39), Some(1460));
    assert_eq!(check_at(&c, old, T0 + 40), None, "grace over");
    assert_eq!(check_at(&c, new, T0 + 10), Some(1460));
    assert_eq!(check_at(&c, new, T0 + 100), Some(1460));
    // A second rotation drops the first key at once.
    c.rotate(&[7; 32], T0 + 20, 1000);
    assert_eq!(check_at(&c, old, T0 + 21), None);
    assert_eq!(check_at(&c, new, T0 + 21), Some(1460));
    // The grace window never outlives the slot limit.
    let mut c = Cookies::new(&SECRET);
    c.rotate(&OTHER, T0, 10_000);
    assert_eq!(check_at(&c, old, T0 + 2 * SLOT_SECS), None);
    // Zero grace: the old key is refused at once; a huge one does not overflow.
    let mut c = Cookies::new(&SECRET);
    c.rotate(&OTHER, T0, 0);
    assert_eq!(check_at(&c, old, T0), None);
    let mut c = Cookies::new(&SECRET);
    c.rotate(&OTHER, T0, u64::MAX);
    assert_eq!(check_at(&c, old, T0 + 1), Some(1460));
}

#[test]
fn directors_with_the_same_secret_accept_each_others_cookies() {
    let a = Cookies::new(&SECRET);
    let b = Cookies::new(&SECRET);
    let stranger = Cookies::new(&OTHER);
    let from_a = make_at(&a, T0);
    let from_b = make_at(&b, T0 + 5);
    assert_eq!(from_a, from_b, "deterministic across directors");
    assert_eq!(check_at(&b, from_a, T0 + 70), Some(1460));
    assert_eq!(check_at(&a, from_b, T0 + 70), Some(1460));
    assert_eq!(check_at(&stranger, from_a, T0), None);
    assert_ne!(make_at(&stranger, T0), from_a);
}

#[test]
fn secrets_differing_in_either_half_give_different_keys() {
    let mut s = SECRET;
    s[0] ^= 1;
    let mut t = SECRET;
    t[31] ^= 1;
    let base = make_at(&Cookies::new(&SECRET), T0);
    assert_ne!(make_at(&Cookies::new(&s), T0), base);
    assert_ne!(make_at(&Cookies::new(&t), T0), base);
}

#[test]
fn debug_does_not_print_the_key() {
    let c = Cookies::new(&[0xAB; 32]);
    let text = format!("{c:?}");
    assert!(text.contains("CookieKey"));
    let key = CookieKey::new(&[0xAB; 32]);
    assert!(!text.contains(&key.k0.to_string()) && !text.contains(&format!("{:x}", key.k0)));
}

/// A blind forger who knows the clock (so sets the right slot bits) and picks random low bits
/// succeeds with probability 2^-24: 200k tries expect 0.012 successes.
#[test]
fn random_cookies_with_the_right_slot_are_refused() {
    let c = Cookies::new(&SECRET);
    let mut rng = 0xD370_u64;
    let mut accepted = 0;
    for _ in 0..200_000 {
        let r = splitmix(&mut rng);
        let src = (r as u32).to_be_bytes();
        let dst = ((r >> 32) as u32).to_be_bytes();
        let r = splitmix(&mut rng);
        let (sport, dport, isn) = (r as u16, (r >> 16) as u16, (r >> 32) as u32);
        let r = splitmix(&mut rng);
        let now = r >> 8;
        let slot = (now / SLOT_SECS - u64::from(r & 1 == 1 && now >= SLOT_SECS)) & SLOT_MASK;
        let cookie = (slot as u32) << 27 | ((splitmix(&mut rng) as u32) & 0x07FF_FFFF);
        if c.check(src, dst, sport, dport, isn, cookie, now).is_some() {
            accepted += 1;
        }
    }
    assert!(
        accepted <= 2,
        "{accepted} of 200000 random cookies accepted"
    );
}

proptest! {
    #[test]
    fn check_of_make_gives_the_encoded_mss(
        secret in any::<[u8; 32]>(),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        isn in any::<u32>(),
        mss in any::<Option<u16>>(),
        made in any::<u64>(),
        later in 0u64..SLOT_SECS,
    ) {
        let c = Cookies::new(&secret);
        let cookie = c.make(src, dst, sport, dport, isn, mss, made);
        let expect = MSS_TABLE[mss_index(mss) as usize];
        prop_assert!(expect <= mss.unwrap_or(0).max(536));
        prop_assert_eq!(c.check(src, dst, sport, dport, isn, cookie, made), Some(expect));
        // Any time less than a slot later is still within the cookie's own or next slot.
        let until = made.saturating_add(later);
        prop_assert_eq!(c.check(src, dst, sport, dport, isn, cookie, until), Some(expect));
        let other = Cookies::new(&secret).check(src, dst, sport, dport, isn, cookie, made);
        prop_assert_eq!(other, Some(expect));
    }

    #[test]
    fn random_u32_is_refused_for_a_random_tuple(
        seed in any::<u64>(),
        now in any::<u64>(),
    ) {
        // 2000 random cookies per case, whose slot bits are right half the time.
        let c = Cookies::new(&SECRET);
        let mut rng = seed;
        let mut accepted = 0u32;
        for _ in 0..2000 {
            let r = splitmix(&mut rng);
            let mut cookie = splitmix(&mut rng) as u32;
            if r & 1 == 1 {
                let slot = ((now / SLOT_SECS) & SLOT_MASK) as u32;
                cookie = cookie & 0x07FF_FFFF | slot << 27;
            }
            let src = (r >> 32) as u32;
            let ok = c.check(src.to_be_bytes(), DST, r as u16, DPORT, (r >> 8) as u32, cookie, now);
            accepted += u32::from(ok.is_some());
        }
        prop_assert!(accepted <= 1, "{} accepted", accepted);
    }
}
