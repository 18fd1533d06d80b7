//! ARP packet view for Ethernet/IPv4 (RFC 826): hardware type 1, protocol 0x0800, address
//! lengths 6 and 4. Other kinds are refused as [`Error::Malformed`] by [`Packet::new_checked`],
//! which also checks the 28 bytes; after it no accessor panics.

use super::{ethertype, get16, mac, put16, Error, Result};
use std::net::Ipv4Addr;

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use crate::wire::Field;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = field::TPA.end;
/// `oper` of a request and of a reply.
pub const REQUEST: u16 = 1;
pub const REPLY: u16 = 2;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap an Ethernet payload holding an Ethernet/IPv4 ARP packet (padding may follow).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let d = buffer.as_ref();
        if d.len() < LEN {
            return Err(Error::Truncated);
        }
        if get16(d, field::HTYPE) != 1
            || get16(d, field::PTYPE) != ethertype::IPV4
            || d[field::HLEN] != 6
            || d[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn operation(&self) -> u16 {
        get16(self.buffer.as_ref(), field::OPER)
    }

    #[inline]
    pub fn sender_mac(&self) -> [u8; 6] {
        mac(self.buffer.as_ref(), field::SHA)
    }

    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::SPA.start)
    }

    #[inline]
    pub fn target_mac(&self) -> [u8; 6] {
        mac(self.buffer.as_ref(), field::THA)
    }

    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::TPA.start)
    }
}

#[inline]
fn ip(d: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER, op);
    }

    #[inline]
    pub fn set_sender(&mut self, m: [u8; 6], a: Ipv4Addr) {
        let d = self.buffer.as_mut();
        d[field::SHA].copy_from_slice(&m);
        d[field::SPA].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_target(&mut self, m: [u8; 6], a: Ipv4Addr) {
        let d = self.buffer.as_mut();
        d[field::THA].copy_from_slice(&m);
        d[field::TPA].copy_from_slice(&a.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub operation: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl Repr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    /// The reply that `mac` owning the target address sends to this request (RFC 826,
    /// "Packet Reception": swap sender and target, fill in the asked-for hardware address).
    #[inline]
    #[must_use]
    pub fn reply(&self, mac: [u8; 6]) -> Repr {
        Repr {
            operation: REPLY,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// Write the packet into `buf[..28]`; returns its length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < LEN {
            return Err(Error::Truncated);
        }
        put16(buf, field::HTYPE, 1);
        put16(buf, field::PTYPE, ethertype::IPV4);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        let mut p = Packet { buffer: buf };
        p.set_operation(self.operation);
        p.set_sender(self.sender_mac, self.sender_ip);
        p.set_target(self.target_mac, self.target_ip);
        Ok(LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 198.18.0.1? Tell 198.18.0.100 (02:00:00:00:00:10).
    const REQ: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 2, 0, 0, 0, 0, 0x10, 198, 18, 0, 100, 0, 0, 0, 0,
        0, 0, 198, 18, 0, 1,
    ];

    #[test]
    fn parses_a_request() {
        let p = Packet::new_checked(&REQ[..]).unwrap();
        assert_eq!(p.operation(), REQUEST);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 0x10]);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(p.target_mac(), [0; 6]);
        assert_eq!(p.target_ip(), Ipv4Addr::new(198, 18, 0, 1));
    }

    #[test]
    fn builds_the_reply_bytes() {
        let me = [2, 0, 0, 0, 0, 1];
        let r = Repr::parse(&Packet::new_checked(&REQ[..]).unwrap()).reply(me);
        let mut buf = [0xAAu8; 30];
        assert_eq!(r.emit(&mut buf), Ok(28));
        let expected: [u8; 28] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1, 2, 0, 0, 0,
            0, 0x10, 198, 18, 0, 100,
        ];
        assert_eq!(buf[..28], expected);
        assert_eq!(buf[28..], [0xAA, 0xAA], "nothing written past the packet");
        assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), r);
    }

    #[test]
    fn truncated_and_foreign_kinds_are_refused() {
        for n in 0..28 {
            assert_eq!(
                Packet::new_checked(&REQ[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        for (at, v) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut p = REQ;
            p[at] = v;
            assert_eq!(Packet::new_checked(&p[..]).unwrap_err(), Error::Malformed);
        }
        assert_eq!(
            Repr::parse(&Packet::new_checked(&REQ[..]).unwrap()).emit(&mut [0; 27]),
            Err(Error::Truncated)
        );
    }
}
