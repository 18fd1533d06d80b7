//! Internet checksums: full computation (RFC 1071) and incremental update (RFC 1624).
//!
//! Conventions, for every function here:
//! - 16-bit values are the big-endian wire words read as numbers (`u16::from_be_bytes`), and a
//!   returned checksum is stored with `to_be_bytes`. 32-bit values (IPv4 addresses) likewise.
//! - A *sum* (`u32`) is a one's-complement partial sum, folded to 16 bits but not complemented;
//!   it can be fed back as the `initial` of [`sum`]. A *checksum* (`u16`) is the complemented
//!   folded sum, the value stored in a header.
//! - Data of odd length is padded with one zero byte at the end (RFC 1071 section 4.1:
//!   "Add left-over byte, if any"). A partial sum may be continued only after an even number of
//!   bytes.
//!
//! Incremental updates use RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, which gives exactly the
//! checksum a full recompute gives, with one exception that no real header can hit: if every
//! 16-bit word the checksum covers (checksum field excluded) is zero after the change, a full
//! recompute gives 0xFFFF and the update gives 0x0000. The two cannot be told apart from the old
//! checksum alone (RFC 1624 section 3: "+0" and "-0"). An IPv4 header has its version nibble,
//! a TCP or UDP checksum covers the pseudo-header's nonzero protocol number, so neither is ever
//! all zero.
//!
//! UDP (RFC 768): a checksum of 0 means "no checksum", and a computed 0 is sent as 0xFFFF. So a
//! UDP checksum field holding 0 must be left at 0 (never updated), and any other must be passed
//! through [`udp_fix`] after an update or a full computation.

/// Bytes summed per inner block. 16384 native 32-bit words each below 2^32 sum to below 2^46,
/// so the block's `u64` accumulator cannot overflow, whatever the input length.
const BLOCK: usize = 1 << 16;

/// One's-complement sum of `data` (RFC 1071), folded to 16 bits but NOT complemented, starting
/// from `initial` (a partial sum of the bytes before `data`, which must be of even length; any
/// `u32` is accepted, it is folded too).
///
/// The result is at most 0xFFFF. It is 0 only if `initial` and every byte of `data` are 0.
///
/// Speed (RFC 1071 section 2): the bytes are summed as native-order 32-bit words into a 64-bit
/// accumulator ("parallel summation", 2(C): the carries collect in the upper bits and are folded
/// back once at the end), and the 16-bit result is byte-swapped back to wire order once ("byte
/// order independence", 2(B)) instead of swapping every word. The inner loop has no carries
/// between iterations, so the compiler vectorises it.
#[inline]
#[must_use]
pub fn sum(initial: u32, data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    for block in data.chunks(BLOCK) {
        acc = add_end_around(acc, sum_block_native(block));
    }
    // The native-order sum folded to 16 bits has, as its native bytes, the wire bytes of the
    // big-endian sum (RFC 1071 2(B)); on a big-endian machine this is the identity.
    let wire = u16::from_be_bytes(fold64(acc).to_ne_bytes());
    u32::from(fold64(u64::from(initial) + u64::from(wire)))
}

/// Sum of one block (at most [`BLOCK`] bytes) as native-order 32-bit words, unfolded. Only the
/// last block of a buffer can have a remainder; it is zero-padded at the end, in memory order.
#[inline]
fn sum_block_native(block: &[u8]) -> u64 {
    let (words, rest) = block.as_chunks::<4>();
    // Cannot wrap: at most BLOCK / 4 = 2^14 words, each < 2^32.
    let mut acc = words.iter().fold(0u64, |a, w| {
        a.wrapping_add(u64::from(u32::from_ne_bytes(*w)))
    });
    if !rest.is_empty() {
        let mut pad = [0u8; 4];
        for (p, b) in pad.iter_mut().zip(rest) {
            *p = *b;
        }
        acc = acc.wrapping_add(u64::from(u32::from_ne_bytes(pad)));
    }
    acc
}

/// `a + b` in 64-bit one's-complement arithmetic: a carry out of bit 63 is added back at bit 0
/// (RFC 1071 section 1, "end-around carry"). After a wrap the sum is below `b`, so adding the
/// carry cannot overflow again.
#[inline]
fn add_end_around(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// Fold a 64-bit one's-complement sum to 16 bits (RFC 1071 section 4.1, "Fold 32-bit sum to 16
/// bits", done twice more for the upper half).
#[inline]
fn fold64(s: u64) -> u16 {
    let s = (s & 0xFFFF_FFFF) + (s >> 32); // < 2^33
    let s = (s & 0xFFFF_FFFF) + (s >> 32); // <= 2^32 - 1
    fold(s as u32) // lossless: s < 2^32
}

/// Fold carries into the low 16 bits (RFC 1071 section 4.1: `while (sum>>16) sum = (sum &
/// 0xffff) + (sum >> 16);`). Two rounds suffice for 32 bits: the first leaves at most 0x1FFFE,
/// the second at most 0xFFFF.
#[inline]
#[must_use]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xFFFF) + (sum >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    s as u16 // lossless: s <= 0xFFFF
}

/// Full checksum, `!fold(sum(0, data))`: the value to store in a header whose checksum field was
/// zeroed while summing (RFC 1071 section 1, step 3). For a segment with a pseudo-header use
/// `!fold(sum(pseudo_v4(..), segment))`, and for UDP pass the result through [`udp_fix`].
#[inline]
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Sum of the IPv4 pseudo-header of TCP (RFC 793 section 3.1, now RFC 9293 section 3.1) and UDP
/// (RFC 768): source address, destination address, a zero byte, the protocol number, and `len`,
/// the length of the TCP/UDP header plus payload in bytes. Folded, not complemented: use it as
/// the `initial` of [`sum`] over the segment (12 bytes, so an even-length prefix).
#[inline]
#[must_use]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let w = |hi: u8, lo: u8| u32::from(u16::from_be_bytes([hi, lo]));
    let s = w(src[0], src[1])
        + w(src[2], src[3])
        + w(dst[0], dst[1])
        + w(dst[2], dst[3])
        + u32::from(proto) // the word [0, proto]
        + u32::from(len);
    u32::from(fold(s))
}

/// Sum of the IPv6 pseudo-header of an upper-layer checksum (RFC 8200 section 8.1: TCP, UDP,
/// ICMPv6): source address, destination address, the 32-bit upper-layer packet length `len`,
/// three zero bytes and the next-header value `next` (of the upper layer, not of an extension
/// header). Folded, not complemented: the `initial` of [`sum`] over the upper-layer packet.
#[inline]
#[must_use]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next: u8, len: u32) -> u32 {
    // 16 words of at most 0xFFFF plus three more: far below 2^32.
    let mut s = 0u32;
    for pair in src.as_chunks::<2>().0.iter().chain(dst.as_chunks::<2>().0) {
        s += u32::from(u16::from_be_bytes(*pair));
    }
    s += (len >> 16) + (len & 0xFFFF) + u32::from(next);
    u32::from(fold(s))
}

/// The change of a 16-bit field from `old` to `new` as RFC 1624 equation 3 adds it,
/// `~m + m'`, unfolded: changes are added up and applied by [`adjust`] with one fold for all.
#[inline]
#[must_use]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// The change of a 32-bit field (two words), as [`delta16`].
#[inline]
#[must_use]
pub fn delta32(old: u32, new: u32) -> u32 {
    let hi = |v: u32| (v >> 16) as u16; // lossless after the shift
    let lo = |v: u32| v as u16; // the low word, by design
    delta16(hi(old), hi(new)) + delta16(lo(old), lo(new))
}

/// `check` updated by the sum of changes `delta` ([`delta16`], [`delta32`], or a folded
/// sum): `~(~HC + delta)`, one fold. `delta` must stay below 2^32 - 2^16 (a sum of at most
/// 65,000 word changes); the same results as [`update16`] / [`update32`] applied in turn.
#[inline]
#[must_use]
pub fn adjust(check: u16, delta: u32) -> u16 {
    !fold(u32::from(!check) + delta)
}

/// RFC 1624 equation 3 incremental update, `HC' = ~(~HC + ~m + m')`, for a 16-bit field that
/// changed from `old` (m) to `new` (m'), where `check` (HC) is the current checksum.
///
/// Equals a full recompute except when all the covered data is zero afterwards (see the module
/// docs). Do not call it on a UDP checksum of 0; pass a UDP result through [`udp_fix`].
#[inline]
#[must_use]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    // RFC 1624 section 3, eqn. 3. Three 16-bit terms cannot overflow a u32.
    !fold(u32::from(!check) + u32::from(!old) + u32::from(new))
}

/// [`update16`] for a 32-bit field (an IPv4 address, in the IP header or a pseudo-header),
/// treated as its two 16-bit words: `HC' = ~(~HC + ~m_hi + ~m_lo + m'_hi + m'_lo)`.
#[inline]
#[must_use]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let hi = |v: u32| (v >> 16) as u16; // lossless after the shift
    let lo = |v: u32| v as u16; // the low word, by design
                                // RFC 1624 section 3, eqn. 3 applied to two words at once. Five 16-bit terms fit a u32.
    !fold(
        u32::from(!check)
            + u32::from(!hi(old))
            + u32::from(!lo(old))
            + u32::from(hi(new))
            + u32::from(lo(new)),
    )
}

/// [`update16`] over a changed range of bytes: `old` is what the range held, `new` what it holds
/// now. The range must start at an even offset of the checksummed data and the slices should
/// have the same length, even (a range ending the data may be odd: both are padded alike).
///
/// Computed as `HC' = ~(~HC + ~sum(old) + sum(new))` (RFC 1624 eqn. 3, where the negated sum of
/// the old words replaces the sum of their complements; both are the same one's-complement
/// value). Slices of different lengths do not panic: the sum of `old` is taken out and the sum of
/// `new` put in, which is only meaningful if that is what happened to the data.
#[inline]
#[must_use]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    // Three terms, each <= 0xFFFF: no overflow.
    !fold(u32::from(!check) + u32::from(!fold(sum(0, old))) + sum(0, new))
}

/// The UDP transmission rule (RFC 768, "Checksum"): "If the computed checksum is zero, it is
/// transmitted as all ones", because 0 means "no checksum". Maps 0 to 0xFFFF and leaves any other
/// value alone. Apply it to a UDP checksum after [`checksum`] or an update; a received UDP
/// checksum of 0 must not be updated at all (it stays 0).
#[inline]
#[must_use]
pub fn udp_fix(c: u16) -> u16 {
    if c == 0 {
        0xFFFF
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The slow reference: RFC 1071 section 4.1's loop, one big-endian byte pair at a time,
    /// folding after every addition so nothing can overflow.
    fn reference_sum(initial: u32, data: &[u8]) -> u32 {
        let mut s = u32::from(fold(initial));
        let mut i = 0;
        while i < data.len() {
            let hi = data[i];
            let lo = if i + 1 < data.len() { data[i + 1] } else { 0 };
            s += u32::from(u16::from_be_bytes([hi, lo]));
            s = (s & 0xFFFF) + (s >> 16);
            i += 2;
        }
        s
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// An IPv4 header captured from a real UDP packet: 192.168.0.1 -> 192.168.0.199, checksum
    /// 0xb861 at offset 10.
    const IPV4_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 section 3, "Numerical Examples".
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(0, &data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn real_ipv4_header_checksum_is_b861() {
        let mut h = IPV4_HEADER;
        // Verification: summing the header including its checksum gives 0xFFFF.
        assert_eq!(sum(0, &h), 0xFFFF);
        assert_eq!(checksum(&h), 0);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn odd_length_pads_the_last_byte_as_a_high_byte() {
        assert_eq!(sum(0, &[0xab]), 0xab00);
        assert_eq!(sum(0, &[0x01, 0x02, 0x03]), 0x0102 + 0x0300);
        assert_eq!(
            sum(0, &[0x01, 0x02, 0x03, 0x04, 0x05]),
            0x0102 + 0x0304 + 0x0500
        );
        assert_eq!(sum(0, &[0xff, 0xff, 0xff]), fold(0xFFFF + 0xFF00) as u32);
        assert_eq!(sum(0, &[]), 0);
        assert_eq!(checksum(&[]), 0xFFFF);
    }

    #[test]
    fn fold_adds_carries_back() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xFFFF), 0xFFFF);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_FFFE), 0xFFFF);
        assert_eq!(fold(0xFFFF_FFFF), 0xFFFF);
        assert_eq!(fold(0x1234_5678), 0x68AC);
    }

    #[test]
    fn initial_is_folded_whatever_its_size() {
        assert_eq!(sum(u32::MAX, &[]), 0xFFFF);
        assert_eq!(sum(u32::MAX, &[0xff, 0xff]), 0xFFFF);
        assert_eq!(sum(0x0001_0000, &[0x00, 0x01]), 2);
    }

    #[test]
    fn sum_over_several_blocks_matches_reference() {
        // Longer than BLOCK, all ones (the most carries), and an odd tail.
        let data = vec![0xFFu8; 3 * BLOCK + 7];
        assert_eq!(sum(0, &data), reference_sum(0, &data));
        let data: Vec<u8> = (0..(2 * BLOCK + 3)).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(sum(0x1234, &data), reference_sum(0x1234, &data));
    }

    #[test]
    fn pseudo_v4_equals_the_sum_of_the_pseudo_header_bytes() {
        let (src, dst) = ([192, 168, 0, 1], [10, 255, 3, 4]);
        let bytes = [192, 168, 0, 1, 10, 255, 3, 4, 0, 6, 0x05, 0xdc];
        assert_eq!(pseudo_v4(src, dst, 6, 1500), sum(0, &bytes));
        let ones = [0xFF; 4];
        let bytes = [
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0xFF,
        ];
        assert_eq!(pseudo_v4(ones, ones, 0xFF, 0xFFFF), sum(0, &bytes));
    }

    #[test]
    fn pseudo_v6_equals_the_sum_of_the_pseudo_header_bytes() {
        let src: [u8; 16] = core::array::from_fn(|i| (i * 17 + 1) as u8);
        let dst: [u8; 16] = core::array::from_fn(|i| 0xF0 ^ (i as u8));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src);
        bytes.extend_from_slice(&dst);
        bytes.extend_from_slice(&0x0001_05dcu32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_v6(src, dst, 58, 0x0001_05dc), sum(0, &bytes));
        let ones = [0xFF; 16];
        let mut bytes = vec![0xFF; 32];
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF]);
        assert_eq!(pseudo_v6(ones, ones, 0xFF, u32::MAX), sum(0, &bytes));
    }

    #[test]
    fn rfc1624_example_gives_0000_not_ffff() {
        // RFC 1624 section 4: the other header words sum to 0xCD7A, m = 0x5555 becomes
        // m' = 0x3285. HC = 0xDD2F; eqn. 3 gives 0x0000 where eqn. 2 wrongly gave 0xFFFF.
        let hc = !fold(0xCD7A + 0x5555);
        assert_eq!(hc, 0xDD2F);
        assert_eq!(update16(hc, 0x5555, 0x3285), 0x0000);
        assert_eq!(update16(hc, 0x5555, 0x3285), !fold(0xCD7A + 0x3285));
    }

    #[test]
    fn ttl_decrement_on_a_real_header_matches_recompute() {
        let mut h = IPV4_HEADER;
        let old = be16(&h, 8);
        h[8] -= 1; // TTL 64 -> 63
        let new = be16(&h, 8);
        let updated = update16(0xb861, old, new);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(updated, checksum(&h));
    }

    #[test]
    fn all_zero_data_is_the_documented_exception() {
        // The only case where eqn. 3 and a recompute differ: everything covered becomes zero.
        let check = checksum(&[0x00, 0x00, 0x12, 0x34]);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xFFFF);
        assert_eq!(update16(check, 0x1234, 0), 0x0000);
    }

    #[test]
    fn udp_fix_maps_only_zero() {
        assert_eq!(udp_fix(0), 0xFFFF);
        assert_eq!(udp_fix(0xFFFF), 0xFFFF);
        assert_eq!(udp_fix(1), 1);
        assert_eq!(udp_fix(0xb861), 0xb861);
    }

    #[test]
    fn update_bytes_handles_an_odd_final_byte() {
        let mut d = [0x12, 0x34, 0x56, 0x78, 0x9a];
        let check = checksum(&d);
        d[4] = 0x01;
        assert_eq!(update_bytes(check, &[0x9a], &[0x01]), checksum(&d));
    }

    #[test]
    fn mismatched_update_bytes_lengths_do_not_panic() {
        let _ = update_bytes(0x1234, &[1, 2, 3], &[]);
        let _ = update_bytes(0, &[], &[0xff; 9]);
    }

    /// A buffer, an even offset in it with room for `width` bytes, and new bytes for it.
    fn buf_and_change(
        lens: std::ops::Range<usize>,
        width: usize,
    ) -> impl Strategy<Value = (Vec<u8>, usize, Vec<u8>)> {
        prop::collection::vec(any::<u8>(), lens).prop_flat_map(move |buf| {
            let slots = (buf.len() - width) / 2 + 1;
            (
                Just(buf),
                (0..slots).prop_map(|s| s * 2),
                prop::collection::vec(any::<u8>(), width),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_sum_equals_byte_pair_reference(
            initial in any::<u32>(),
            data in prop::collection::vec(any::<u8>(), 0..3000),
        ) {
            prop_assert_eq!(sum(initial, &data), reference_sum(initial, &data));
            prop_assert_eq!(sum(0, &data), reference_sum(0, &data));
        }

        #[test]
        fn fast_sum_equals_reference_on_mostly_ones(
            data in prop::collection::vec(prop_oneof![9 => Just(0xFFu8), 1 => any::<u8>()], 0..600),
        ) {
            prop_assert_eq!(sum(0, &data), reference_sum(0, &data));
        }

        #[test]
        fn sum_continues_after_an_even_prefix(
            data in prop::collection::vec(any::<u8>(), 0..600),
            cut in any::<prop::sample::Index>(),
        ) {
            let cut = cut.index(data.len() / 2 + 1) * 2;
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(sum(sum(0, a), b), sum(0, &data));
        }

        #[test]
        fn update16_equals_recompute((mut buf, at, new) in buf_and_change(20..61, 2)) {
            let check = checksum(&buf);
            let old = be16(&buf, at);
            buf[at..at + 2].copy_from_slice(&new);
            prop_assume!(buf.iter().any(|&b| b != 0));
            prop_assert_eq!(update16(check, old, be16(&buf, at)), checksum(&buf));
        }

        /// The RFC 1624 corner: the new word is chosen so that the new checksum is 0x0000
        /// (the sum is "-0", 0xFFFF). Equation 2 would give 0xFFFF here; equation 3 must not.
        #[test]
        fn update16_equals_recompute_when_the_checksum_becomes_zero(
            (mut buf, at, _) in buf_and_change(20..61, 2),
        ) {
            let check = checksum(&buf);
            let old = be16(&buf, at);
            buf[at..at + 2].fill(0);
            let new = !fold(sum(0, &buf));
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(buf.iter().any(|&b| b != 0));
            prop_assert_eq!(checksum(&buf), 0);
            prop_assert_eq!(update16(check, old, new), 0);
        }

        /// One fold over the changes of an address and a port (the NAT's rewrite) gives what
        /// a full recompute gives.
        #[test]
        fn adjust_over_summed_deltas_equals_recompute(
            (mut buf, _, new32) in buf_and_change(20..61, 4),
            new16 in any::<u16>(),
        ) {
            let check = checksum(&buf);
            let (old32, old16) = (u32::from_be_bytes(buf[12..16].try_into().unwrap()), be16(&buf, 2));
            let new32 = u32::from_be_bytes(new32[..4].try_into().unwrap());
            buf[12..16].copy_from_slice(&new32.to_be_bytes());
            buf[2..4].copy_from_slice(&new16.to_be_bytes());
            prop_assume!(buf.iter().any(|&b| b != 0));
            let delta = delta32(old32, new32) + delta16(old16, new16);
            prop_assert_eq!(adjust(check, delta), checksum(&buf));
        }

        #[test]
        fn update32_equals_recompute((mut buf, at, new) in buf_and_change(20..61, 4)) {
            let check = checksum(&buf);
            let old = be32(&buf, at);
            buf[at..at + 4].copy_from_slice(&new);
            prop_assume!(buf.iter().any(|&b| b != 0));
            prop_assert_eq!(update32(check, old, be32(&buf, at)), checksum(&buf));
        }

        #[test]
        fn update_bytes_equals_recompute(
            (mut buf, at, new) in (0usize..=10).prop_flat_map(|w| buf_and_change(20..61, w * 2)),
        ) {
            let check = checksum(&buf);
            let old = buf[at..at + new.len()].to_vec();
            buf[at..at + new.len()].copy_from_slice(&new);
            prop_assume!(buf.iter().any(|&b| b != 0));
            prop_assert_eq!(update_bytes(check, &old, &new), checksum(&buf));
        }

        /// An IPv4 header of 20..60 bytes with its checksum in place at offset 10; a 16-bit or
        /// 32-bit field elsewhere changes; the updated stored checksum verifies and equals a
        /// recompute. Includes repeated updates (the checksum field itself is never changed).
        #[test]
        fn ipv4_header_updates_equal_recompute(
            words in 5usize..=15,
            body in prop::collection::vec(any::<u8>(), 60),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>(), any::<bool>()), 1..6),
        ) {
            let len = words * 4;
            let mut h = body[..len].to_vec();
            h[0] = 0x40 | words as u8;
            h[10] = 0;
            h[11] = 0;
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            for (idx, value, wide) in changes {
                // An even offset whose 2 or 4 bytes avoid the version byte and the checksum.
                let width = if wide { 4 } else { 2 };
                let offsets: Vec<usize> = (2..=len - width)
                    .step_by(2)
                    .filter(|&o| o + width <= 10 || o >= 12)
                    .collect();
                let at = offsets[idx.index(offsets.len())];
                let stored = be16(&h, 10);
                let updated = if wide {
                    let old = be32(&h, at);
                    h[at..at + 4].copy_from_slice(&value.to_be_bytes());
                    update32(stored, old, value)
                } else {
                    let old = be16(&h, at);
                    let new = value as u16;
                    h[at..at + 2].copy_from_slice(&new.to_be_bytes());
                    update16(stored, old, new)
                };
                h[10..12].copy_from_slice(&updated.to_be_bytes());
                prop_assert_eq!(sum(0, &h), 0xFFFF, "the updated header verifies");
                let mut zeroed = h.clone();
                zeroed[10] = 0;
                zeroed[11] = 0;
                prop_assert_eq!(updated, checksum(&zeroed));
            }
        }

        /// TCP-style: a checksum over pseudo-header + header + payload (odd lengths too). NAT
        /// rewrites an address (only in the pseudo-header, update32), a port (update16), and
        /// both addresses at once (update_bytes over the 8 address bytes); each result equals a
        /// recompute. The same with UDP's rule: udp_fix after the update equals udp_fix of the
        /// recompute.
        #[test]
        fn tcp_nat_updates_equal_recompute(
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            new_src in any::<[u8; 4]>(),
            new_dst in any::<[u8; 4]>(),
            new_port in any::<u16>(),
            udp in any::<bool>(),
            header in prop::collection::vec(any::<u8>(), 20..61),
            payload in prop::collection::vec(any::<u8>(), 0..1500),
        ) {
            let (proto, check_at) = if udp { (17u8, 6) } else { (6u8, 16) };
            let mut seg = header;
            seg.extend_from_slice(&payload);
            seg[check_at] = 0;
            seg[check_at + 1] = 0;
            let len = seg.len() as u16;
            let full = |s: [u8; 4], d: [u8; 4], seg: &[u8]| !fold(sum(pseudo_v4(s, d, proto, len), seg));
            let c0 = full(src, dst, &seg);

            // Source address change (as DNAT/SNAT does): the pseudo-header word changes.
            let c1 = update32(c0, u32::from_be_bytes(src), u32::from_be_bytes(new_src));
            prop_assert_eq!(c1, full(new_src, dst, &seg));
            prop_assert_eq!(udp_fix(c1), udp_fix(full(new_src, dst, &seg)));

            // Destination port change, in the segment itself.
            let old_port = be16(&seg, 2);
            seg[2..4].copy_from_slice(&new_port.to_be_bytes());
            let c2 = update16(c1, old_port, new_port);
            prop_assert_eq!(c2, full(new_src, dst, &seg));

            // Both addresses as one 8-byte range.
            let old_pair = [new_src, dst].concat();
            let new_pair = [src, new_dst].concat();
            let c3 = update_bytes(c2, &old_pair, &new_pair);
            prop_assert_eq!(c3, full(src, new_dst, &seg));
        }
    }
}
