//! UDP datagram view (RFC 768).
//!
//! [`Packet::new_checked`] takes the IP payload and checks, once: at least 8 bytes, a length
//! field of at least 8 and inside the buffer. The datagram ends at its length field. After it,
//! no accessor or setter panics.
//!
//! A checksum of 0 means "none" over IPv4 and stays 0 through rewrites; over IPv6 it is
//! invalid (RFC 8200 section 8.1). A computed 0 is sent as 0xFFFF ([`csum::udp_fix`]).

use super::{get16, proto, put16, AddrChange, End, Error, IpPair, Result};
use crate::csum;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

pub const HEADER_LEN: usize = 8;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer holding a UDP datagram (bytes past its length field allowed).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let d = buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(get16(d, field::LENGTH));
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > d.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header and payload.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(get16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Never true after the check (the length is at least 8); for clippy's sake.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    /// Whether the checksum verifies under `ips` (0 is "none": valid over IPv4 only).
    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if self.checksum() == 0 {
            return matches!(ips, IpPair::V4 { .. });
        }
        ips.verifies(proto::UDP, &self.buffer.as_ref()[..self.len()])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recompute the checksum under `ips` (0 is sent as 0xFFFF).
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        let len = self.len();
        let d = self.buffer.as_mut();
        put16(d, field::CHECKSUM, 0);
        let c = csum::udp_fix(ips.checksum(proto::UDP, &d[..len]));
        put16(d, field::CHECKSUM, c);
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
        let c = get16(d, field::CHECKSUM);
        if c != 0 {
            let c = csum::adjust(c, change.delta() + csum::delta16(old, port));
            put16(d, field::CHECKSUM, csum::udp_fix(c));
        }
    }

    /// Set the source port, updating a checksum that is there.
    #[inline]
    pub fn rewrite_src_port(&mut self, new: u16) {
        self.rewrite16(field::SRC_PORT, new);
    }

    /// Set the destination port, updating a checksum that is there.
    #[inline]
    pub fn rewrite_dst_port(&mut self, new: u16) {
        self.rewrite16(field::DST_PORT, new);
    }

    #[inline]
    fn rewrite16(&mut self, at: usize, new: u16) {
        let d = self.buffer.as_mut();
        let old = get16(d, at);
        put16(d, at, new);
        let c = get16(d, field::CHECKSUM);
        if c != 0 {
            put16(
                d,
                field::CHECKSUM,
                csum::udp_fix(csum::update16(c, old, new)),
            );
        }
    }

    /// Update a checksum that is there for an address change in the pseudo-header.
    #[inline]
    pub fn adjust_checksum(&mut self, change: &AddrChange) {
        let d = self.buffer.as_mut();
        let c = get16(d, field::CHECKSUM);
        if c != 0 {
            put16(d, field::CHECKSUM, csum::udp_fix(change.apply(c)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpPair = IpPair::V4 {
        src: Ipv4Addr::new(198, 18, 0, 100),
        dst: Ipv4Addr::new(198, 18, 0, 2),
    };

    /// 5353 -> 53, length 12, payload "abcd", checksum for `V4`, then 2 bytes of padding.
    fn datagram() -> Vec<u8> {
        let mut d = vec![
            0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0, 0, b'a', b'b', b'c', b'd',
        ];
        let c = csum::udp_fix(V4.checksum(proto::UDP, &d));
        d[6..8].copy_from_slice(&c.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d
    }

    #[test]
    fn parses_and_verifies() {
        let d = datagram();
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (5353, 53, 12));
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum(&V4));
        let other = IpPair::V4 {
            src: Ipv4Addr::new(198, 18, 0, 101),
            dst: Ipv4Addr::new(198, 18, 0, 2),
        };
        assert!(!p.verify_checksum(&other), "the pseudo-header is covered");
    }

    #[test]
    fn zero_checksum_is_none_over_ipv4_only_and_stays_zero() {
        let mut d = datagram();
        d[6..8].fill(0);
        let mut p = Packet::new_checked(&mut d[..]).unwrap();
        assert!(p.verify_checksum(&V4));
        let v6 = IpPair::V6 {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::LOCALHOST,
        };
        assert!(!p.verify_checksum(&v6));
        p.rewrite_dst_port(5300);
        p.adjust_checksum(&AddrChange::V4 {
            old: Ipv4Addr::new(198, 18, 0, 2),
            new: Ipv4Addr::new(198, 18, 1, 2),
        });
        assert_eq!(p.checksum(), 0);
        p.fill_checksum(&v6);
        assert!(p.verify_checksum(&v6));
    }

    #[test]
    fn rewrites_keep_the_checksum_valid() {
        let mut d = datagram();
        let mut p = Packet::new_checked(&mut d[..]).unwrap();
        p.rewrite_src_port(40000);
        let new = Ipv4Addr::new(198, 18, 1, 2);
        p.adjust_checksum(&AddrChange::V4 {
            old: Ipv4Addr::new(198, 18, 0, 2),
            new,
        });
        let after = IpPair::V4 {
            src: Ipv4Addr::new(198, 18, 0, 100),
            dst: new,
        };
        assert!(p.verify_checksum(&after));
    }

    #[test]
    fn truncated_and_hostile_lengths_are_refused() {
        let d = datagram();
        for n in 0..12 {
            assert_eq!(
                Packet::new_checked(&d[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        let mut d = datagram();
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&d[..]).unwrap_err(), Error::Malformed);
        d[4..6].copy_from_slice(&15u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&d[..]).unwrap_err(), Error::Truncated);
    }
}
