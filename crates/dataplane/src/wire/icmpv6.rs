//! ICMPv6 message view (RFC 4443) and neighbour discovery messages (RFC 4861).
//!
//! [`Packet::new_checked`] takes the upper-layer bytes (after the extension headers) and
//! checks the 8-byte header; after it no accessor or setter panics. The checksum covers the
//! IPv6 pseudo-header (RFC 8200 section 8.1, next header 58) and the whole message.
//!
//! Error messages (types below 128) quote as much of the offending packet as fits the minimum
//! MTU, in [`Packet::data`]; packet too big carries the MTU in the 4 bytes after the checksum.
//!
//! [`NdRepr`] reads and writes neighbour solicitations and advertisements: code 0, at least
//! 24 bytes, a target that is not multicast, options with a nonzero length (RFC 4861 sections
//! 4.3, 4.4, 4.6, 7.1), of which the source/target link-layer address options are kept. The
//! option walk is bounded by [`MAX_ND_OPTIONS`]. The checks on the IPv6 header (hop limit 255,
//! the unspecified source only to a solicited-node address) are the caller's.

use super::{get128, get16, get32, proto, put16, put32, Error, IpPair, Result};
use crate::csum;
use std::net::Ipv6Addr;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Packet too big: the MTU. Echo: identifier and sequence number. NA: flags.
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const DATA: usize = 8;
    /// Neighbour solicitation and advertisement: the target address, then options.
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

pub const HEADER_LEN: usize = field::DATA;
/// Most neighbour-discovery options read from one message.
pub const MAX_ND_OPTIONS: usize = 16;

/// Message types (RFC 4443, RFC 4861).
pub mod kind {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Flags of a neighbour advertisement (RFC 4861 section 4.4).
pub mod na_flags {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

/// Neighbour-discovery option types (RFC 4861 section 4.6).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap the upper-layer bytes holding an ICMPv6 message.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The MTU of a packet-too-big message (the same 4 bytes of any other type).
    #[inline]
    pub fn mtu(&self) -> u32 {
        get32(self.buffer.as_ref(), field::REST)
    }

    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SEQ)
    }

    /// An error message (RFC 4443 section 2.1: types 0..=127).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Everything after the 8-byte header (echo data, or the packet an error quotes).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        ips.verifies(proto::ICMPV6, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the type, updating the checksum (RFC 1624). An echo reply to a request keeps the
    /// pseudo-header's sum (the addresses only swap), so this is all it needs.
    #[inline]
    pub fn rewrite_type(&mut self, t: u8) {
        let d = self.buffer.as_mut();
        let old = get16(d, field::TYPE);
        // The new word from the values (reading it back would stall on store forwarding).
        let new = u16::from_be_bytes([t, d[field::CODE]]);
        put16(d, field::TYPE, new);
        let c = csum::update16(get16(d, field::CHECKSUM), old, new);
        put16(d, field::CHECKSUM, c);
    }

    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        put32(self.buffer.as_mut(), field::REST, mtu);
    }

    /// Recompute the checksum under the pseudo-header of `ips`.
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let c = ips.checksum(proto::ICMPV6, self.buffer.as_ref());
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// A neighbour solicitation or advertisement as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdRepr {
    Solicit {
        target: Ipv6Addr,
        /// The source link-layer address option.
        source_mac: Option<[u8; 6]>,
    },
    Advert {
        /// [`na_flags`] bits.
        flags: u8,
        target: Ipv6Addr,
        /// The target link-layer address option.
        target_mac: Option<[u8; 6]>,
    },
}

impl NdRepr {
    /// Read a solicitation or an advertisement (see the module docs for what is checked).
    /// Other types are [`Error::Malformed`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<NdRepr> {
        let t = p.msg_type();
        if !matches!(t, kind::NEIGHBOR_SOLICIT | kind::NEIGHBOR_ADVERT) || p.code() != 0 {
            return Err(Error::Malformed);
        }
        let d = p.buffer.as_ref();
        if d.len() < field::ND_OPTIONS {
            return Err(Error::Truncated);
        }
        let target = Ipv6Addr::from(get128(d, field::ND_TARGET));
        if target.is_multicast() {
            return Err(Error::Malformed);
        }
        let want = if t == kind::NEIGHBOR_SOLICIT {
            OPT_SOURCE_LL
        } else {
            OPT_TARGET_LL
        };
        let mac = ll_option(&d[field::ND_OPTIONS..], want)?;
        Ok(if t == kind::NEIGHBOR_SOLICIT {
            NdRepr::Solicit {
                target,
                source_mac: mac,
            }
        } else {
            NdRepr::Advert {
                flags: d[field::REST]
                    & (na_flags::ROUTER | na_flags::SOLICITED | na_flags::OVERRIDE),
                target,
                target_mac: mac,
            }
        })
    }

    /// Length of the message this value writes.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        let mac = match self {
            NdRepr::Solicit { source_mac, .. } => source_mac.is_some(),
            NdRepr::Advert { target_mac, .. } => target_mac.is_some(),
        };
        field::ND_OPTIONS + if mac { 8 } else { 0 }
    }

    /// Write the message into `buf[..buffer_len]`, checksum filled under `ips`.
    pub fn emit(&self, buf: &mut [u8], ips: &IpPair) -> Result<usize> {
        let len = self.buffer_len();
        let Some(m) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        m.fill(0);
        let (t, target, mac, opt) = match *self {
            NdRepr::Solicit { target, source_mac } => {
                (kind::NEIGHBOR_SOLICIT, target, source_mac, OPT_SOURCE_LL)
            }
            NdRepr::Advert {
                flags,
                target,
                target_mac,
            } => {
                m[field::REST] = flags;
                (kind::NEIGHBOR_ADVERT, target, target_mac, OPT_TARGET_LL)
            }
        };
        m[field::TYPE] = t;
        m[field::ND_TARGET..field::ND_OPTIONS].copy_from_slice(&target.octets());
        if let Some(mac) = mac {
            let o = &mut m[field::ND_OPTIONS..];
            o[0] = opt;
            o[1] = 1; // 8 bytes
            o[2..8].copy_from_slice(&mac);
        }
        Packet { buffer: m }.fill_checksum(ips);
        Ok(len)
    }
}

/// The MAC of the first link-layer address option of type `want` in `opts`. An option of
/// length 0 makes the message invalid (RFC 4861 section 4.6); more than [`MAX_ND_OPTIONS`]
/// options is [`Error::Limit`]; an option running past the end is [`Error::Truncated`].
fn ll_option(opts: &[u8], want: u8) -> Result<Option<[u8; 6]>> {
    let mut found = None;
    let mut i = 0;
    for _ in 0..MAX_ND_OPTIONS {
        if i == opts.len() {
            return Ok(found);
        }
        let Some(h) = opts.get(i..i + 2) else {
            return Err(Error::Truncated);
        };
        let len = usize::from(h[1]) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let Some(o) = opts.get(i..i + len) else {
            return Err(Error::Truncated);
        };
        if h[0] == want && len == 8 && found.is_none() {
            let mut m = [0; 6];
            m.copy_from_slice(&o[2..8]);
            found = Some(m);
        }
        i += len;
    }
    if i == opts.len() {
        Ok(found)
    } else {
        Err(Error::Limit)
    }
}

/// The solicited-node multicast address of `a` (RFC 4291 section 2.7.1: ff02::1:ff00:0/104
/// and the low 24 bits of `a`).
#[must_use]
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of an IPv6 multicast address (RFC 2464 section 7: 33:33 and its low
/// 32 bits).
#[must_use]
pub fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const DIRECTOR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

    /// A solicitation for DIRECTOR from HOST (MAC), to DIRECTOR's solicited-node address,
    /// written out by hand: type 135, code 0, checksum, reserved, target, option 1 len 1 MAC.
    fn solicit() -> (Vec<u8>, IpPair) {
        let ips = IpPair::V6 {
            src: HOST,
            dst: solicited_node(DIRECTOR),
        };
        let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&DIRECTOR.octets());
        m.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x10]);
        let c = ips.checksum(proto::ICMPV6, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        (m, ips)
    }

    #[test]
    fn solicited_node_and_multicast_mac() {
        assert_eq!(
            solicited_node(DIRECTOR),
            "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(DIRECTOR)),
            [0x33, 0x33, 0xff, 0, 0, 1]
        );
    }

    #[test]
    fn parses_a_solicitation() {
        let (m, ips) = solicit();
        let p = Packet::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum(&ips) && !p.is_error());
        assert_eq!(
            NdRepr::parse(&p),
            Ok(NdRepr::Solicit {
                target: DIRECTOR,
                source_mac: Some(MAC)
            })
        );
    }

    #[test]
    fn builds_an_advertisement_that_parses_back() {
        let na = NdRepr::Advert {
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target: DIRECTOR,
            target_mac: Some([2, 0, 0, 0, 0, 1]),
        };
        let ips = IpPair::V6 {
            src: DIRECTOR,
            dst: HOST,
        };
        let mut buf = [0xAAu8; 34];
        assert_eq!(na.emit(&mut buf, &ips), Ok(32));
        assert_eq!(buf[32..], [0xAA, 0xAA]);
        let mut expected = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        expected.extend_from_slice(&DIRECTOR.octets());
        expected.extend_from_slice(&[2, 1, 2, 0, 0, 0, 0, 1]);
        let c = ips.checksum(proto::ICMPV6, &expected);
        expected[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(buf[..32], expected[..]);
        let p = Packet::new_checked(&buf[..32]).unwrap();
        assert!(p.verify_checksum(&ips));
        assert_eq!(NdRepr::parse(&p), Ok(na));
        assert_eq!(na.emit(&mut buf[..31], &ips), Err(Error::Truncated));
    }

    #[test]
    fn echo_request_becomes_a_reply_with_a_valid_checksum() {
        let ips = IpPair::V6 {
            src: HOST,
            dst: DIRECTOR,
        };
        let mut m = vec![128, 0, 0, 0, 0x12, 0x34, 0, 7, b'h', b'i'];
        let c = ips.checksum(proto::ICMPV6, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        assert_eq!(
            (p.echo_ident(), p.echo_seq(), p.data()),
            (0x1234, 7, &b"hi"[..])
        );
        p.rewrite_type(kind::ECHO_REPLY);
        assert!(p.verify_checksum(&ips.reversed()));
    }

    #[test]
    fn packet_too_big_carries_the_mtu() {
        let mut m = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00, 0x60];
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(p.mtu(), 1280);
        p.set_mtu(1400);
        assert_eq!(p.mtu(), 1400);
        assert_eq!(p.data(), &[0x60]);
    }

    #[test]
    fn truncated_messages_are_refused() {
        let (m, _) = solicit();
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&m[..n]).unwrap_err(), Error::Truncated);
        }
        for n in 8..24 {
            let p = Packet::new_checked(&m[..n]).unwrap();
            assert_eq!(NdRepr::parse(&p), Err(Error::Truncated), "{n}");
        }
        // An option cut short.
        let p = Packet::new_checked(&m[..30]).unwrap();
        assert_eq!(NdRepr::parse(&p), Err(Error::Truncated));
        // No options at all is fine.
        let p = Packet::new_checked(&m[..24]).unwrap();
        assert!(matches!(
            NdRepr::parse(&p),
            Ok(NdRepr::Solicit {
                source_mac: None,
                ..
            })
        ));
    }

    #[test]
    fn hostile_solicitations_are_refused() {
        let (m, _) = solicit();
        let mut bad = m.clone();
        bad[25] = 0; // option length 0: would never advance
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(NdRepr::parse(&p), Err(Error::Malformed));
        let mut bad = m.clone();
        bad[1] = 1; // code
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed)
        );
        let mut bad = m.clone();
        bad[8] = 0xff; // multicast target
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed)
        );
        let mut bad = m.clone();
        bad[0] = kind::ROUTER_ADVERT;
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed)
        );
        // Many small options: the count cap.
        let mut many = m[..24].to_vec();
        for _ in 0..MAX_ND_OPTIONS + 1 {
            many.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]); // nonce options
        }
        assert_eq!(
            NdRepr::parse(&Packet::new_checked(&many[..]).unwrap()),
            Err(Error::Limit)
        );
        // Exactly the cap: accepted, the link-layer option found among them.
        let mut ok = m[..24].to_vec();
        for _ in 0..MAX_ND_OPTIONS - 1 {
            ok.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        }
        ok.extend_from_slice(&m[24..32]);
        assert!(matches!(
            NdRepr::parse(&Packet::new_checked(&ok[..]).unwrap()),
            Ok(NdRepr::Solicit {
                source_mac: Some(MAC),
                ..
            })
        ));
    }
}
