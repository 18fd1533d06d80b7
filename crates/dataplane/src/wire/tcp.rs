//! TCP segment view (RFC 9293 section 3.1).
//!
//! [`Packet::new_checked`] takes the whole segment (the IP payload, nothing after it) and
//! checks, once: at least 20 bytes, a data offset of 5..=15 words inside the segment. After it,
//! no accessor or setter panics. Options are read by a walk bounded by the header length
//! (RFC 9293 section 3.2: kind 0 ends the list, kind 1 is one byte, every other kind has a
//! length byte of at least 2).
//!
//! Port and address rewrites update the checksum incrementally (RFC 1624).

use super::{get16, get32, proto, put16, put32, AddrChange, End, Error, IpPair, Result};
use crate::csum;

/// A read/write view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    /// Data offset in the high nibble.
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: Field = 20..60;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Option kinds (RFC 9293 section 3.2).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// The control bits (RFC 9293 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const SYN_ACK: Flags = Flags(0x12);
    pub const FIN_PSH_ACK: Flags = Flags(0x19);

    /// Whether every bit of `other` is set.
    #[inline]
    pub fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    #[inline]
    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    #[inline]
    #[must_use]
    pub fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer holding exactly one TCP segment.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let d = buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(d[field::DATA_OFF] >> 4) * 4;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > d.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        get32(self.buffer.as_ref(), field::SEQ)
    }

    /// The acknowledgment number field (meaningful when [`Flags::ACK`] is set).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get32(self.buffer.as_ref(), field::ACK)
    }

    /// The control bits CWR..FIN (the reserved bits and the old NS bit are not included).
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().has(Flags::SYN)
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().has(Flags::ACK)
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().has(Flags::FIN)
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().has(Flags::RST)
    }

    /// Header length in bytes (20..=60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn window(&self) -> u16 {
        get16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        get16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes (header length minus 20).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS.start..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The segment's length in sequence space: payload bytes, plus one each for SYN and FIN.
    #[inline]
    pub fn seq_len(&self) -> u32 {
        // A segment fits an IP packet: below 2^16 bytes.
        self.payload().len() as u32 + u32::from(self.syn()) + u32::from(self.fin())
    }

    /// The maximum-segment-size option, if present and well formed. A malformed option list
    /// ends the walk (what came before it counts).
    pub fn mss(&self) -> Option<u16> {
        let o = self.options();
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                OPT_END => return None,
                OPT_NOP => i += 1,
                kind => {
                    let len = usize::from(*o.get(i + 1)?);
                    if len < 2 || i + len > o.len() {
                        return None;
                    }
                    if kind == OPT_MSS && len == 4 {
                        return Some(get16(o, i + 2));
                    }
                    i += len;
                }
            }
        }
        None
    }

    /// Whether the checksum verifies under the pseudo-header of `ips`.
    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        ips.verifies(proto::TCP, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Recompute the checksum under the pseudo-header of `ips`.
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        self.set_checksum(0);
        let c = ips.checksum(proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Translate one end: its port becomes `port`, and the pseudo-header's address changed
    /// as `change` says; one incremental checksum update for both (what NAT does). Inlined
    /// always, so that the family of `change` is known where it is applied.
    #[inline(always)]
    pub fn translate(&mut self, end: End, change: &AddrChange, port: u16) {
        let at = match end {
            End::Src => field::SRC_PORT,
            End::Dst => field::DST_PORT,
        };
        let d = self.buffer.as_mut();
        let old = get16(d, at);
        put16(d, at, port);
        // The address's and the port's changes folded in once.
        let delta = change.delta() + csum::delta16(old, port);
        put16(
            d,
            field::CHECKSUM,
            csum::adjust(get16(d, field::CHECKSUM), delta),
        );
    }

    /// Set the source port, updating the checksum.
    #[inline]
    pub fn rewrite_src_port(&mut self, new: u16) {
        self.rewrite16(field::SRC_PORT, new);
    }

    /// Set the destination port, updating the checksum.
    #[inline]
    pub fn rewrite_dst_port(&mut self, new: u16) {
        self.rewrite16(field::DST_PORT, new);
    }

    #[inline]
    fn rewrite16(&mut self, at: usize, new: u16) {
        let d = self.buffer.as_mut();
        let old = get16(d, at);
        put16(d, at, new);
        let c = csum::update16(get16(d, field::CHECKSUM), old, new);
        put16(d, field::CHECKSUM, c);
    }

    /// Update the checksum for an address change in the pseudo-header.
    #[inline]
    pub fn adjust_checksum(&mut self, change: &AddrChange) {
        let d = self.buffer.as_mut();
        let c = change.apply(get16(d, field::CHECKSUM));
        put16(d, field::CHECKSUM, c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A TCP header the director originates: 20 bytes, plus 4 when it carries an MSS option.
/// The ACK bit is set exactly when `ack` is given; urgent pointer 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    /// SYN, FIN, RST, PSH (ACK follows `ack`).
    pub flags: Flags,
    pub window: u16,
    pub mss: Option<u16>,
}

impl Repr {
    /// The header's length.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + if self.mss.is_some() { 4 } else { 0 }
    }

    /// One's-complement sum of the header this writes (checksum field 0), from the values.
    #[inline]
    pub fn header_sum(&self) -> u32 {
        let w = |v: u32| (v >> 16) + (v & 0xFFFF);
        let ack = self.ack.unwrap_or(0);
        let mut s = u32::from(self.src_port)
            + u32::from(self.dst_port)
            + w(self.seq)
            + w(ack)
            + u32::from(u16::from_be_bytes(self.off_flags()))
            + u32::from(self.window);
        if let Some(m) = self.mss {
            s += u32::from(u16::from_be_bytes([OPT_MSS, 4])) + u32::from(m);
        }
        s
    }

    /// The data-offset and flags bytes.
    #[inline]
    fn off_flags(&self) -> [u8; 2] {
        let words = (self.header_len() / 4) as u8; // 5 or 6
        let f = self.flags.without(Flags::ACK);
        let f = if self.ack.is_some() {
            f.with(Flags::ACK)
        } else {
            f
        };
        [words << 4, f.0]
    }

    /// Write the header into `buf[..header_len]` with checksum 0 (the caller fills it once the
    /// payload is in place). Returns the header length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let hl = self.header_len();
        let Some(h) = buf.get_mut(..hl) else {
            return Err(Error::Truncated);
        };
        put16(h, field::SRC_PORT, self.src_port);
        put16(h, field::DST_PORT, self.dst_port);
        put32(h, field::SEQ, self.seq);
        put32(h, field::ACK, self.ack.unwrap_or(0));
        h[field::DATA_OFF] = ((hl / 4) as u8) << 4; // 5 or 6 words
        let f = self.flags.without(Flags::ACK);
        h[field::FLAGS] = if self.ack.is_some() {
            f.with(Flags::ACK)
        } else {
            f
        }
        .0;
        put16(h, field::WINDOW, self.window);
        put16(h, field::CHECKSUM, 0);
        put16(h, field::URGENT, 0);
        if let Some(m) = self.mss {
            h[20] = OPT_MSS;
            h[21] = 4;
            put16(h, 22, m);
        }
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpPair = IpPair::V4 {
        src: Ipv4Addr::new(198, 18, 0, 100),
        dst: Ipv4Addr::new(198, 18, 0, 1),
    };

    /// A SYN from 40000 to 80, seq 1000, window 64240, options MSS 1460, NOP, NOP, SACK
    /// permitted, NOP, WS 7 (a Linux SYN without timestamps), checksum for `V4`.
    fn syn() -> Vec<u8> {
        let mut s = vec![
            0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0, 0, 0, 0, 0x80, 0x02, 0xfa, 0xf0, 0,
            0, 0, 0, 2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7,
        ];
        let c = V4.checksum(proto::TCP, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    #[test]
    fn parses_a_syn() {
        let s = syn();
        let p = Packet::new_checked(&s[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.seq()), (40000, 80, 1000));
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!((p.header_len(), p.window(), p.urgent()), (32, 64240, 0));
        assert_eq!(p.mss(), Some(1460));
        assert!(p.payload().is_empty());
        assert_eq!(p.seq_len(), 1);
        assert!(p.verify_checksum(&V4));
        let other = IpPair::V4 {
            src: Ipv4Addr::new(198, 18, 0, 101),
            dst: Ipv4Addr::new(198, 18, 0, 1),
        };
        assert!(!p.verify_checksum(&other), "the pseudo-header is covered");
    }

    #[test]
    fn builds_a_syn_ack_that_parses_back() {
        let r = Repr {
            src_port: 80,
            dst_port: 40000,
            seq: 0xdead_beef,
            ack: Some(1001),
            flags: Flags::SYN,
            window: 65535,
            mss: Some(1460),
        };
        let mut buf = [0xAAu8; 26];
        assert_eq!(r.emit(&mut buf), Ok(24));
        assert_eq!(buf[24..], [0xAA, 0xAA]);
        let mut p = Packet::new_checked(&mut buf[..24]).unwrap();
        p.fill_checksum(&V4.reversed());
        assert!(p.verify_checksum(&V4.reversed()));
        assert_eq!(p.flags(), Flags::SYN_ACK);
        assert_eq!(
            (p.seq(), p.ack_number(), p.mss()),
            (0xdead_beef, 1001, Some(1460))
        );
        let expected = [
            0x00, 0x50, 0x9c, 0x40, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x03, 0xe9, 0x60, 0x12, 0xff,
            0xff,
        ];
        assert_eq!(buf[..16], expected);
        // No ACK given: the ACK bit is off even if asked for in the flags.
        let rst = Repr {
            ack: None,
            flags: Flags::RST.with(Flags::ACK),
            mss: None,
            ..r
        };
        assert_eq!(rst.emit(&mut buf), Ok(20));
        assert_eq!(buf[13], Flags::RST.0);
        assert_eq!(rst.emit(&mut buf[..19]), Err(Error::Truncated));
    }

    #[test]
    fn truncated_segments_are_refused() {
        let s = syn();
        for n in 0..32 {
            assert_eq!(
                Packet::new_checked(&s[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
    }

    #[test]
    fn hostile_data_offsets_are_refused() {
        let mut s = syn();
        for doff in 0..5u8 {
            s[12] = doff << 4;
            assert_eq!(Packet::new_checked(&s[..]).unwrap_err(), Error::Malformed);
        }
        s[12] = 0xF0; // 60 bytes in a 32-byte segment
        assert_eq!(Packet::new_checked(&s[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn hostile_options_end_the_walk_without_panic() {
        let mut s = syn();
        for (bytes, mss) in [
            ([2u8, 0, 0, 0], None),          // length 0: would not advance
            ([2, 4, 0x02, 0x18], Some(536)), // fine
            ([1, 1, 1, 2], None),            // kind without its length byte
            ([3, 9, 0, 0], None),            // length past the header
            ([0, 2, 4, 0x05], None),         // end of list first
        ] {
            s[20..24].copy_from_slice(&bytes);
            s[24..32].fill(OPT_END);
            assert_eq!(Packet::new_checked(&s[..]).unwrap().mss(), mss, "{bytes:?}");
        }
        // An MSS option cut by the header's end.
        s[20..32].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4]);
        assert_eq!(Packet::new_checked(&s[..]).unwrap().mss(), None);
    }

    #[test]
    fn rewrites_update_the_checksum_as_a_recompute_would() {
        let mut s = syn();
        s.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        s[16..18].fill(0);
        let c = V4.checksum(proto::TCP, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        let mut p = Packet::new_checked(&mut s[..]).unwrap();
        p.rewrite_dst_port(8080);
        p.rewrite_src_port(1);
        let new = Ipv4Addr::new(198, 18, 1, 2);
        p.adjust_checksum(&AddrChange::V4 {
            old: Ipv4Addr::new(198, 18, 0, 1),
            new,
        });
        let after = IpPair::V4 {
            src: Ipv4Addr::new(198, 18, 0, 100),
            dst: new,
        };
        assert!(p.verify_checksum(&after));
        assert_eq!(p.payload(), b"GET / HTTP/1.1\r\n\r\n");
        // IPv6 pseudo-header.
        let (a, b) = (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        );
        let v6 = IpPair::V6 { src: a, dst: b };
        p.fill_checksum(&v6);
        assert!(p.verify_checksum(&v6));
        let b2 = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
        p.adjust_checksum(&AddrChange::V6 { old: b, new: b2 });
        assert!(p.verify_checksum(&IpPair::V6 { src: a, dst: b2 }));
    }
}
