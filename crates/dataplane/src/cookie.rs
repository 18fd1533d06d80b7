//! SYN cookies (RFC 4987 section 3.6): the redirect responder's only "state" for a handshake.
//!
//! The responder answers a SYN with a SYN-ACK whose sequence number (our ISN) is a cookie, and
//! keeps nothing. It later accepts the ACK carrying the HTTP request only if `ack - 1` is a cookie
//! it issued, recently, for that segment's 4-tuple and for the client ISN `seq - 1`. The cookie
//! is a deterministic function of (secret, 4-tuple, client ISN, time slot, MSS index), so several
//! directors behind ECMP that share the secret accept each other's cookies.
//!
//! # Layout
//!
//! ```text
//!  31      27 26  24 23                                            0
//! +----------+------+-----------------------------------------------+
//! | slot % 32| mss  |  low 24 bits of SipHash-2-4(key, message)      |
//! +----------+------+-----------------------------------------------+
//! message (21 bytes) = src (4) | dst (4) | sport (2) | dport (2) | client ISN (4)
//!                      | slot (4, low 32 bits of the counter) | mss index (1)
//! ```
//!
//! - `slot = now_secs / SLOT_SECS`, a counter of 64-second slots. Its low 5 bits are sent in
//!   clear so that [`Cookies::check`] knows which slot to recompute; the full counter (low 32 bits,
//!   which wrap after 8000 years) is inside the hash.
//! - `mss` is an index into [`MSS_TABLE`] (RFC 4987 section 3.6: the MSS is the one piece of SYN
//!   state a cookie must carry). It is inside the hash too, so it cannot be altered.
//! - All multi-byte fields are big-endian (wire order), so every director computes the same bytes.
//!
//! # Security
//!
//! - Forgery: a blind attacker (one who spoofs the source and never sees our SYN-ACK) knows the
//!   clock, so the top 8 bits are free to them, but must guess 24 bits of a keyed PRF: each try
//!   succeeds with probability 2^-24 (2^-23 during a key rotation's grace window, when two keys
//!   are tried). Success earns no state on the director, only the redirect response an honest
//!   handshake would get (sent to the spoofed address), so this is the usual SYN-cookie
//!   trade-off; rate limits belong elsewhere. The comparison is of a `u32` and ends in one
//!   instruction's time, so it leaks nothing useful.
//! - Replay window: a cookie is accepted in its own slot and the next one, i.e. for 64 to 128 s
//!   after it was made, and no more (the slot counter is authenticated). Directors behind ECMP
//!   must keep their clocks in step (NTP); a cookie checked by a director whose clock is one slot
//!   behind the maker's is refused.
//! - Why the client ISN is in the hash: the responder has no TCB, so the ACK's `seq - 1` is the
//!   only record of the client's ISN and it is trusted for the reply's acknowledgment number.
//!   Binding it means an ACK is accepted only if it continues the very SYN we answered: one seen
//!   (or leaked) cookie cannot be replayed with other sequence numbers, and a new connection on a
//!   reused 4-tuple (a new ISN) gets a new cookie while stray ACKs of the previous incarnation are
//!   refused. (Linux folds the ISN in as well, `net/ipv4/syncookies.c`.)
//! - The secret: 32 bytes, shared by the directors and rotated with [`Cookies::rotate`]. It is
//!   turned into the 128-bit SipHash key by SipHash itself (see [`CookieKey::new`]), so any
//!   32-byte secret with 128 bits of entropy in either half gives an unpredictable key.
//!
//! No allocation, no panic on any input: `make` costs one SipHash-2-4 over 21 bytes, `check` one
//! (two during a grace window).

use core::hash::Hasher;

use siphasher::sip::SipHasher24;

/// The MSS values a cookie can encode (3 bits). [`Cookies::make`] encodes the largest entry
/// `<=` the client's MSS, or 536 (RFC 879's default, RFC 9293 section 3.7.1) if the client gave
/// none or less.
pub const MSS_TABLE: [u16; 8] = [536, 1024, 1220, 1300, 1380, 1440, 1460, 8960];

/// Seconds per time slot.
pub const SLOT_SECS: u64 = 64;

/// Bits of the cookie carrying the slot counter's low bits.
const SLOT_BITS: u32 = 5;
/// Bits of the cookie carrying the MSS index.
const MSS_BITS: u32 = 3;
/// Bits of the cookie carrying the hash.
const HASH_BITS: u32 = 32 - SLOT_BITS - MSS_BITS;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const MSS_MASK: u32 = (1 << MSS_BITS) - 1;

/// Domain separation for deriving the SipHash key from the secret.
const KDF_LABEL: &[u8; 16] = b"detour-cookie-v1";

/// One secret's SipHash-2-4 key. `Debug` does not print it.
#[derive(Clone)]
pub struct CookieKey {
    k0: u64,
    k1: u64,
}

impl CookieKey {
    /// Derive the 128-bit SipHash-2-4 key from a 32-byte secret: with the secret's first half as
    /// SipHash key, `k_i = SipHash-2-4(label "detour-cookie-v1" | second half | i)` for i = 0, 1.
    /// Every director given the same secret derives the same key.
    #[must_use]
    pub fn new(secret: &[u8; 32]) -> CookieKey {
        let (first, second) = secret.split_at(16);
        let mut key = [0u8; 16];
        key.copy_from_slice(first);
        let prf = SipHasher24::new_with_key(&key);
        let mut msg = [0u8; 33];
        msg[..16].copy_from_slice(KDF_LABEL);
        msg[16..32].copy_from_slice(second);
        let k0 = prf.hash(&msg);
        msg[32] = 1;
        let k1 = prf.hash(&msg);
        CookieKey { k0, k1 }
    }

    /// The low 24 bits of SipHash-2-4 over the 21-byte message in the module docs.
    #[inline]
    #[allow(clippy::too_many_arguments)] // the fields of the message, spelled out
    fn hash24(
        &self,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        client_isn: u32,
        slot: u64,
        mss_index: u32,
    ) -> u32 {
        let mut msg = [0u8; 21];
        msg[0..4].copy_from_slice(&src);
        msg[4..8].copy_from_slice(&dst);
        msg[8..10].copy_from_slice(&sport.to_be_bytes());
        msg[10..12].copy_from_slice(&dport.to_be_bytes());
        msg[12..16].copy_from_slice(&client_isn.to_be_bytes());
        msg[16..20].copy_from_slice(&(slot as u32).to_be_bytes()); // low 32 bits, by design
        msg[20] = (mss_index & MSS_MASK) as u8; // lossless: < 8
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(&msg);
        (h.finish() as u32) & HASH_MASK // the low 24 bits, by design
    }
}

impl core::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieKey").finish_non_exhaustive()
    }
}

/// The cookie set: the current key and, during a grace window after a rotation, the previous
/// one. Cheap to clone (a few words); each worker can hold its own copy.
#[derive(Clone, Debug)]
pub struct Cookies {
    current: CookieKey,
    /// The key before the last rotation, accepted while `now_secs < valid_until`.
    previous: Option<(CookieKey, u64)>,
}

/// The index into [`MSS_TABLE`] of the largest entry `<=` the client's MSS; 0 (536) when there
/// is none or it is smaller.
#[inline]
fn mss_index(client_mss: Option<u16>) -> u32 {
    let mss = client_mss.unwrap_or(0);
    let below = MSS_TABLE.iter().take_while(|&&m| m <= mss).count();
    below.saturating_sub(1) as u32 // lossless: <= 7
}

impl Cookies {
    /// A cookie set with one key, derived from `secret`.
    #[must_use]
    pub fn new(secret: &[u8; 32]) -> Cookies {
        Cookies {
            current: CookieKey::new(secret),
            previous: None,
        }
    }

    /// Rotate to a new secret at time `now_secs`; cookies of the old one keep being accepted for
    /// `grace_secs` (while `now_secs < rotation time + grace_secs`), on top of their own slot
    /// limit. Only one previous key is kept: rotating again drops the older one at once.
    pub fn rotate(&mut self, secret: &[u8; 32], now_secs: u64, grace_secs: u64) {
        let old = core::mem::replace(&mut self.current, CookieKey::new(secret));
        self.previous = Some((old, now_secs.saturating_add(grace_secs)));
    }

    /// The cookie (our ISN) for a SYN from `src:sport` to `dst:dport` with sequence number
    /// `client_isn`. `client_mss` is None when the SYN had no MSS option.
    #[inline]
    #[must_use]
    #[allow(clippy::too_many_arguments)] // a 4-tuple, an ISN, an option and a clock
    pub fn make(
        &self,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        client_isn: u32,
        client_mss: Option<u16>,
        now_secs: u64,
    ) -> u32 {
        let slot = now_secs / SLOT_SECS;
        let mss = mss_index(client_mss);
        let hash = self
            .current
            .hash24(src, dst, sport, dport, client_isn, slot, mss);
        ((slot & SLOT_MASK) as u32) << (MSS_BITS + HASH_BITS) | mss << HASH_BITS | hash
    }

    /// Whether `cookie` carries the low bits of the current or the previous time slot: what
    /// any cookie [`Cookies::check`] could accept does. A cookie that fails the check but
    /// passes this one may be a valid cookie checked with the wrong client ISN (a later
    /// segment of the connection); one that fails this is stale or forged whatever the ISN.
    #[inline]
    #[must_use]
    pub fn in_window(cookie: u32, now_secs: u64) -> bool {
        let now = now_secs / SLOT_SECS;
        let sent = u64::from(cookie >> (MSS_BITS + HASH_BITS));
        sent == now & SLOT_MASK || now.checked_sub(1).is_some_and(|p| sent == p & SLOT_MASK)
    }

    /// Check `cookie` (the ACK's ack number minus 1) against the segment's 4-tuple (the same
    /// direction as the SYN: `src` is the client) and client ISN (the ACK's seq minus 1).
    ///
    /// Returns the MSS the cookie encodes, or None for a forgery, a wrong tuple or ISN, or a
    /// cookie older than the previous slot. Tries the current key and, within its grace window,
    /// the previous one.
    #[inline]
    #[must_use]
    #[allow(clippy::too_many_arguments)] // a 4-tuple, an ISN, the cookie and a clock
    pub fn check(
        &self,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        client_isn: u32,
        cookie: u32,
        now_secs: u64,
    ) -> Option<u16> {
        let now = now_secs / SLOT_SECS;
        let sent = u64::from(cookie >> (MSS_BITS + HASH_BITS));
        // The one slot of {now, now - 1} whose low 5 bits the cookie carries (they differ).
        let slot = if sent == now & SLOT_MASK {
            now
        } else {
            let prev = now.checked_sub(1)?;
            if sent != prev & SLOT_MASK {
                return None;
            }
            prev
        };
        let mss = (cookie >> HASH_BITS) & MSS_MASK;
        let hash = cookie & HASH_MASK;
        let valid =
            |key: &CookieKey| key.hash24(src, dst, sport, dport, client_isn, slot, mss) == hash;
        let ok = valid(&self.current)
            || matches!(&self.previous, Some((key, until)) if now_secs < *until && valid(key));
        if ok {
            MSS_TABLE.get(mss as usize).copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
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
}
