//! IPv4 packet view (RFC 791).
//!
//! [`Packet::new_checked`] checks, once: at least 20 bytes, version 4, a header length (IHL)
//! of 20..=60 bytes inside the buffer, and a total length between the header length and the
//! buffer's length. Bytes after the total length (Ethernet padding) are not part of the
//! packet. [`Packet::new_quoted`] is the same check without the last bound, for the packet an
//! ICMP error quotes (RFC 792: its header and at least 8 bytes); its payload is what is
//! there. After either, no accessor or setter panics.
//!
//! Address and TTL rewrites update the header checksum incrementally (RFC 1624), so the
//! stored checksum stays as valid (or as invalid) as it was.

use super::{get16, get32, put16, put32, AddrChange, End, Error, Result};
use crate::csum;
use std::net::Ipv4Addr;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    /// TTL and protocol form one 16-bit word of the checksum.
    pub const TTL_PROTO: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;

    pub const DONT_FRAG: u16 = 0x4000;
    pub const MORE_FRAGS: u16 = 0x2000;
    pub const OFFSET: u16 = 0x1FFF;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer holding an IPv4 packet (trailing bytes past its total length allowed).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_quoted(buffer)?;
        if usize::from(p.total_len()) > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wrap the possibly truncated packet quoted by an ICMP error: the whole header must be
    /// there and the total length must cover it, the payload may be cut short.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let d = buffer.as_ref();
        if d.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(d[field::VER_IHL] & 0x0F) * 4;
        if d[field::VER_IHL] >> 4 != 4 || hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > d.len() {
            return Err(Error::Truncated);
        }
        if usize::from(get16(d, field::LENGTH)) < hl {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in bytes (20..=60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total-length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & field::DONT_FRAG != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & field::MORE_FRAGS != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        get16(self.buffer.as_ref(), field::FLG_OFF) & field::OFFSET
    }

    /// A fragment, first or later (RFC 791: MF set or a nonzero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get16(self.buffer.as_ref(), field::FLG_OFF) & (field::MORE_FRAGS | field::OFFSET) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(get32(self.buffer.as_ref(), field::SRC.start))
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(get32(self.buffer.as_ref(), field::DST.start))
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Whether the header checksum verifies (RFC 791: the header sums to all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        csum::sum(0, self.header()) == 0xFFFF
    }

    /// End of the packet in the buffer: the total length, or the buffer's end if quoted.
    #[inline]
    fn end(&self) -> usize {
        usize::from(self.total_len()).min(self.buffer.as_ref().len())
    }

    /// The payload: from the header's end to the total length (or what is there, if quoted).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.end()]
    }
}

/// [`Packet::translate`] on the fixed part of a header (its first 20 bytes; options are not
/// touched): for a header a checked view has vouched for already (the data path's parsed
/// packet, rewritten in place), which a fixed-size array lets the compiler address without a
/// second check. Returns the address change.
#[inline]
pub fn translate_fixed(
    d: &mut [u8; MIN_HEADER_LEN],
    end: End,
    new: Ipv4Addr,
    ttl: u8,
) -> AddrChange {
    let at = match end {
        End::Src => field::SRC.start,
        End::Dst => field::DST.start,
    };
    let old = get32(d, at);
    put32(d, at, u32::from(new));
    let old_word = get16(d, field::TTL_PROTO);
    let new_word = u16::from_be_bytes([ttl, d[field::PROTOCOL]]);
    put16(d, field::TTL_PROTO, new_word);
    // The address's and the TTL's changes folded in once.
    let delta = csum::delta32(old, u32::from(new)) + csum::delta16(old_word, new_word);
    let check = csum::adjust(get16(d, field::CHECKSUM), delta);
    put16(d, field::CHECKSUM, check);
    AddrChange::V4 {
        old: Ipv4Addr::from(old),
        new,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Recompute the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = csum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Set the source address, updating the header checksum; returns the change, for the
    /// transport checksum whose pseudo-header covers it.
    #[inline]
    pub fn rewrite_src(&mut self, new: Ipv4Addr) -> AddrChange {
        self.rewrite(field::SRC.start, new)
    }

    /// Set the destination address, updating the header checksum; returns the change.
    #[inline]
    pub fn rewrite_dst(&mut self, new: Ipv4Addr) -> AddrChange {
        self.rewrite(field::DST.start, new)
    }

    #[inline]
    fn rewrite(&mut self, at: usize, new: Ipv4Addr) -> AddrChange {
        let d = self.buffer.as_mut();
        let old = get32(d, at);
        put32(d, at, u32::from(new));
        let c = csum::update32(get16(d, field::CHECKSUM), old, u32::from(new));
        put16(d, field::CHECKSUM, c);
        AddrChange::V4 {
            old: Ipv4Addr::from(old),
            new,
        }
    }

    /// Translate one end: its address becomes `new` and the TTL `ttl`, with one incremental
    /// update of the header checksum (what NAT does to every forwarded packet). Returns the
    /// address change, for the transport checksum.
    #[inline]
    pub fn translate(&mut self, end: End, new: Ipv4Addr, ttl: u8) -> AddrChange {
        match self.buffer.as_mut().first_chunk_mut() {
            Some(fixed) => translate_fixed(fixed, end, new, ttl),
            // The check let no shorter buffer in.
            None => AddrChange::V4 { old: new, new },
        }
    }

    /// Set the TTL, updating the header checksum.
    #[inline]
    pub fn rewrite_ttl(&mut self, ttl: u8) {
        let d = self.buffer.as_mut();
        let old = get16(d, field::TTL_PROTO);
        let new = u16::from_be_bytes([ttl, d[field::PROTOCOL]]);
        put16(d, field::TTL_PROTO, new);
        let c = csum::update16(get16(d, field::CHECKSUM), old, new);
        put16(d, field::CHECKSUM, c);
    }

    /// Set the source address; the header checksum is left for [`Packet::fill_checksum`].
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::SRC.start, u32::from(a));
    }

    /// Set the destination address; the header checksum is left for [`Packet::fill_checksum`].
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        put32(self.buffer.as_mut(), field::DST.start, u32::from(a));
    }

    /// Set the TTL; the header checksum is left for [`Packet::fill_checksum`].
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Set both addresses and the TTL, then recompute the header checksum (for replies).
    #[inline]
    pub fn set_addrs_ttl(&mut self, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) {
        self.set_src(src);
        self.set_dst(dst);
        self.set_ttl(ttl);
        self.fill_checksum();
    }

    /// The header (options included) and the payload, apart, to rewrite both.
    #[inline]
    pub fn split_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (hl, end) = (self.header_len(), self.end());
        let (h, rest) = self.buffer.as_mut()[..end].split_at_mut(hl);
        (h, rest)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.split_mut().1
    }
}

/// The header of a packet the director originates: no options, DF set, identification 0
/// (RFC 6864 section 4.1: atomic datagrams may use any identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
}

impl Repr {
    /// Length of the packet this header heads.
    #[inline]
    pub fn total_len(&self) -> usize {
        MIN_HEADER_LEN + self.payload_len
    }

    /// Write the header, checksum filled, into `buf[..20]`; `buf` must hold the whole packet.
    /// Returns the header length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.total_len();
        if total > usize::from(u16::MAX) {
            return Err(Error::Malformed);
        }
        if buf.len() < total {
            return Err(Error::Truncated);
        }
        let total = total as u16; // checked above
        let (src, dst) = (u32::from(self.src), u32::from(self.dst));
        let ttl_proto = u16::from_be_bytes([self.ttl, self.protocol]);
        // The checksum from the values (RFC 1071), not from the bytes just written: reading
        // them back would stall on store forwarding.
        let w = |v: u32| (v >> 16) + (v & 0xFFFF);
        let sum = 0x4500 + u32::from(total) + u32::from(field::DONT_FRAG) + u32::from(ttl_proto);
        let check = !csum::fold(sum + w(src) + w(dst));
        put16(buf, field::VER_IHL, 0x4500);
        put16(buf, field::LENGTH, total);
        put16(buf, field::IDENT, 0);
        put16(buf, field::FLG_OFF, field::DONT_FRAG);
        put16(buf, field::TTL_PROTO, ttl_proto);
        put16(buf, field::CHECKSUM, check);
        put32(buf, field::SRC.start, src);
        put32(buf, field::DST.start, dst);
        Ok(MIN_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto;

    /// A captured header (192.168.0.1 -> 192.168.0.199, UDP, total 0x73, checksum 0xb861),
    /// here with a total length of 24 and 4 payload bytes, then 2 bytes of padding.
    fn packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xde, 0xad, 0xbe, 0xef, 0, 0,
        ];
        let c = csum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn parses_fields_and_trims_padding() {
        let b = packet();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), proto::UDP);
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn builds_a_header_that_parses_back() {
        let mut buf = [0u8; 44];
        let r = Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            protocol: proto::TCP,
            payload_len: 20,
            ttl: 64,
        };
        assert_eq!(r.emit(&mut buf), Ok(20));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src(), p.dst(), p.protocol(), p.ttl()),
            (r.src, r.dst, 6, 64)
        );
        assert_eq!((p.total_len(), p.payload().len(), p.ident()), (40, 20, 0));
        assert!(p.dont_frag());
        assert_eq!(r.emit(&mut buf[..39]), Err(Error::Truncated));
        let huge = Repr {
            payload_len: 65_516,
            ..r
        };
        assert_eq!(huge.emit(&mut [0; 20]), Err(Error::Malformed));
    }

    #[test]
    fn rewrites_keep_the_checksum_valid() {
        let mut b = packet();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let ch = p.rewrite_dst(Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(
            ch,
            AddrChange::V4 {
                old: Ipv4Addr::new(192, 168, 0, 199),
                new: Ipv4Addr::new(198, 18, 1, 2)
            }
        );
        p.rewrite_src(Ipv4Addr::new(198, 18, 0, 2));
        p.rewrite_ttl(63);
        assert!(p.verify_checksum());
        let stored = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), stored, "incremental equals recompute");
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(p.ttl(), 63);
        let (h, pl) = p.split_mut();
        assert_eq!((h.len(), pl.len()), (20, 4));
    }

    #[test]
    fn truncated_packets_are_refused() {
        let b = packet();
        for n in 0..24 {
            assert_eq!(
                Packet::new_checked(&b[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        // Quoted: the header is enough, the payload is what is there.
        let q = Packet::new_quoted(&b[..22]).unwrap();
        assert_eq!(q.payload(), &[0xde, 0xad]);
        assert_eq!(Packet::new_quoted(&b[..19]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let mut b = packet();
        b[0] = 0x44; // IHL 16 bytes
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x4f; // IHL 60 bytes, beyond the buffer
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        b[0] = 0x65; // version 6
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = packet();
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total below the header
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        assert_eq!(Packet::new_quoted(&b[..]).unwrap_err(), Error::Malformed);
        b[2..4].copy_from_slice(&27u16.to_be_bytes()); // total beyond the buffer
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn options_are_part_of_the_header() {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&packet()[..20]);
        b[0] = 0x46;
        b[2..4].copy_from_slice(&28u16.to_be_bytes());
        b[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        b[24..28].copy_from_slice(&[9, 9, 9, 9]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn fragments_are_recognised() {
        let mut b = packet();
        b[6..8].copy_from_slice(&0x2000u16.to_be_bytes()); // MF, offset 0
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.more_frags() && p.frag_offset() == 0);
        b[6..8].copy_from_slice(&0x0003u16.to_be_bytes()); // last fragment, offset 24
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && !p.more_frags() && p.frag_offset() == 3);
    }
}
