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
//! Over IPv6 the addresses are their 16 bytes each, so the message is 45 bytes (its length
//! keeps the two families apart); the layout is otherwise the same ([`CookieAddr`]).
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
//! No allocation, no panic on any input: `make` costs one SipHash-2-4 over 21 bytes (45 over
//! IPv6), `check` one (two during a grace window).

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

/// An address a cookie binds: the 4 bytes of an IPv4 address or the 16 of an IPv6 one, in
/// wire order. Both ends of one cookie are of one type, so a cookie never mixes families.
pub trait CookieAddr: Copy + sealed::Sealed {
    /// The address's bytes.
    fn bytes(&self) -> &[u8];
}

impl CookieAddr for [u8; 4] {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl CookieAddr for [u8; 16] {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for [u8; 4] {}
    impl Sealed for [u8; 16] {}
}

/// The longest message: two IPv6 addresses and the 13 bytes after them.
const MAX_MSG: usize = 2 * 16 + 13;

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

    /// The low 24 bits of SipHash-2-4 over the message in the module docs (21 bytes, or 45
    /// over IPv6).
    #[inline]
    #[allow(clippy::too_many_arguments)] // the fields of the message, spelled out
    fn hash24<A: CookieAddr>(
        &self,
        src: A,
        dst: A,
        sport: u16,
        dport: u16,
        client_isn: u32,
        slot: u64,
        mss_index: u32,
    ) -> u32 {
        let mut msg = [0u8; MAX_MSG];
        let n = src.bytes().len(); // 4 or 16: the type says which
        msg[..n].copy_from_slice(src.bytes());
        msg[n..2 * n].copy_from_slice(dst.bytes());
        let m = &mut msg[2 * n..2 * n + 13];
        m[0..2].copy_from_slice(&sport.to_be_bytes());
        m[2..4].copy_from_slice(&dport.to_be_bytes());
        m[4..8].copy_from_slice(&client_isn.to_be_bytes());
        m[8..12].copy_from_slice(&(slot as u32).to_be_bytes()); // low 32 bits, by design
        m[12] = (mss_index & MSS_MASK) as u8; // lossless: < 8
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(&msg[..2 * n + 13]);
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
    /// A key accepted but never issued with: the next secret of a rolling change, so that a
    /// director still issuing the old secret accepts the cookies of one already switched.
    also: Option<CookieKey>,
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
            also: None,
        }
    }

    /// Also accept cookies made with `secret` (None: stop). Called between batches.
    pub fn accept_also(&mut self, secret: Option<&[u8; 32]>) {
        self.also = secret.map(CookieKey::new);
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
    pub fn make<A: CookieAddr>(
        &self,
        src: A,
        dst: A,
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
    pub fn check<A: CookieAddr>(
        &self,
        src: A,
        dst: A,
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
            || matches!(&self.previous, Some((key, until)) if now_secs < *until && valid(key))
            || self.also.as_ref().is_some_and(valid);
        if ok {
            MSS_TABLE.get(mss as usize).copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
