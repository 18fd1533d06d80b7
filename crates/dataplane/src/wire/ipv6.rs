//! IPv6 packet view (RFC 8200) and a bounded walk over its extension headers.
//!
//! [`Packet::new_checked`] checks, once: at least the 40-byte header, version 6, and a
//! payload length inside the buffer (bytes past it are Ethernet padding). A payload length
//! of 0 is an empty payload: jumbograms (RFC 2675) do not fit an Ethernet frame.
//! [`Packet::new_quoted`] drops the last bound, for the packet an ICMPv6 error quotes. After
//! either, no accessor or setter panics.
//!
//! [`Packet::chain`] walks the extension headers (RFC 8200 section 4) to the upper-layer
//! header: hop-by-hop options (first only, section 4.3), routing, destination options,
//! authentication (RFC 4302: length in 4-byte units), and stops at a fragment header, which
//! it reports so that the caller can drop and count fragments (the director does not
//! reassemble). The walk reads at most [`MAX_EXT_HEADERS`] headers and
//! [`MAX_EXT_BYTES`] bytes: a longer chain is [`Error::Limit`], not a loop over the
//! attacker's bytes. Each header's length is checked against the payload before it is used.

use super::{get128, get16, get32, proto, put16, AddrChange, Error, Result};
use std::net::Ipv6Addr;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use crate::wire::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Most extension headers walked before the upper layer.
pub const MAX_EXT_HEADERS: usize = 8;
/// Most bytes of extension headers walked.
pub const MAX_EXT_BYTES: usize = 512;
/// Minimum link MTU (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;

/// Where a packet's upper-layer header is, after the extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Next-header value of the upper layer (of the fragment's content for a fragment).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub at: usize,
    /// The fragment header, when the packet is a fragment (the walk stops there).
    pub fragment: Option<Fragment>,
    /// Segments left in a routing header (nonzero: the director is not the final destination).
    pub segments_left: u8,
    /// Number of extension headers walked.
    pub headers: u8,
}

/// The fields of a fragment header (RFC 8200 section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer holding an IPv6 packet (trailing padding allowed).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_quoted(buffer)?;
        if HEADER_LEN + usize::from(p.payload_len()) > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wrap the possibly truncated packet quoted by an ICMPv6 error: the fixed header must be
    /// there, the payload may be cut short.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let d = buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if d[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let d = self.buffer.as_ref();
        (d[0] << 4) | (d[1] >> 4)
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        get32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & 0x000F_FFFF
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        get16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The next-header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(get128(self.buffer.as_ref(), field::SRC))
    }

    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(get128(self.buffer.as_ref(), field::DST))
    }

    #[inline]
    fn end(&self) -> usize {
        (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len())
    }

    /// Everything after the fixed header, to the payload length (or what is there, if quoted).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.end()]
    }

    /// The upper-layer bytes a [`Chain`] of this packet points at (empty for a chain that is
    /// not this packet's).
    #[inline]
    pub fn upper(&self, c: &Chain) -> &[u8] {
        self.buffer.as_ref().get(c.at..self.end()).unwrap_or(&[])
    }

    /// Walk the extension headers to the upper layer (see the module docs).
    pub fn chain(&self) -> Result<Chain> {
        let p = self.payload();
        let mut next = self.next_header();
        let mut at = 0;
        let mut segments_left = 0;
        for n in 0..=MAX_EXT_HEADERS {
            let headers = n as u8; // at most MAX_EXT_HEADERS
            if !matches!(
                next,
                proto::HOP_BY_HOP | proto::ROUTING | proto::DST_OPTS | proto::AH | proto::FRAGMENT
            ) {
                return Ok(Chain {
                    proto: next,
                    at: HEADER_LEN + at,
                    fragment: None,
                    segments_left,
                    headers,
                });
            }
            if next == proto::HOP_BY_HOP && n != 0 {
                return Err(Error::Malformed); // RFC 8200 4.3: only right after the header
            }
            if n == MAX_EXT_HEADERS {
                return Err(Error::Limit);
            }
            let Some(h) = p.get(at..at + 8) else {
                return Err(Error::Truncated);
            };
            let len = match next {
                proto::FRAGMENT => 8,
                proto::AH => (usize::from(h[1]) + 2) * 4,
                _ => (usize::from(h[1]) + 1) * 8,
            };
            if at + len > MAX_EXT_BYTES {
                return Err(Error::Limit);
            }
            if at + len > p.len() {
                return Err(Error::Truncated);
            }
            if next == proto::FRAGMENT {
                let f = get16(h, 2);
                return Ok(Chain {
                    proto: h[0],
                    at: HEADER_LEN + at + len,
                    fragment: Some(Fragment {
                        offset: f >> 3,
                        more: f & 1 != 0,
                        ident: get32(h, 4),
                    }),
                    segments_left,
                    headers: headers + 1,
                });
            }
            if next == proto::ROUTING {
                segments_left = h[3];
            }
            next = h[0];
            at += len;
        }
        Err(Error::Limit) // not reached: the loop returns at n == MAX_EXT_HEADERS
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Set the source address; returns the change for the upper-layer checksum (IPv6 has no
    /// header checksum).
    #[inline]
    pub fn rewrite_src(&mut self, new: Ipv6Addr) -> AddrChange {
        let old = self.src();
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&new.octets());
        AddrChange::V6 { old, new }
    }

    /// Set the destination address; returns the change.
    #[inline]
    pub fn rewrite_dst(&mut self, new: Ipv6Addr) -> AddrChange {
        let old = self.dst();
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&new.octets());
        AddrChange::V6 { old, new }
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The upper-layer bytes of `c`, writable (empty for a chain that is not this packet's).
    #[inline]
    pub fn upper_mut(&mut self, c: &Chain) -> &mut [u8] {
        let end = self.end();
        self.buffer.as_mut().get_mut(c.at..end).unwrap_or(&mut [])
    }
}

/// The fixed header of a packet the director originates (no extension headers, traffic class
/// and flow label 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Repr {
    /// Write the header into `buf[..40]`; `buf` must hold the whole packet. Returns 40.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if self.payload_len > usize::from(u16::MAX) {
            return Err(Error::Malformed);
        }
        if buf.len() < HEADER_LEN + self.payload_len {
            return Err(Error::Truncated);
        }
        buf[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(buf, field::LENGTH, self.payload_len as u16); // checked above
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC..field::SRC + 16].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 16].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    /// A fixed header (traffic class 0xb8, flow label 0x12345) with `next` and `payload`.
    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x6b, 0x81, 0x23, 0x45];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&SRC.octets());
        p.extend_from_slice(&DST.octets());
        p.extend_from_slice(payload);
        p
    }

    /// An extension header of `len8` 8-byte units (+1) followed by `next`.
    fn ext(next: u8, len8: u8) -> Vec<u8> {
        let mut h = vec![0u8; (usize::from(len8) + 1) * 8];
        h[0] = next;
        h[1] = len8;
        h
    }

    #[test]
    fn parses_the_fixed_header_and_trims_padding() {
        let mut b = packet(proto::TCP, &[1, 2, 3, 4]);
        b.extend_from_slice(&[0, 0]); // padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (4, 6, 64)
        );
        assert_eq!((p.src(), p.dst()), (SRC, DST));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        let c = p.chain().unwrap();
        assert_eq!(
            (c.proto, c.at, c.fragment, c.headers),
            (proto::TCP, 40, None, 0)
        );
        assert_eq!(p.upper(&c), &[1, 2, 3, 4]);
    }

    #[test]
    fn builds_a_header_that_parses_back() {
        let mut buf = [0u8; 48];
        let r = Repr {
            src: DST,
            dst: SRC,
            next_header: proto::ICMPV6,
            payload_len: 8,
            hop_limit: 255,
        };
        assert_eq!(r.emit(&mut buf), Ok(40));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.src(), p.dst(), p.next_header(), p.hop_limit()),
            (DST, SRC, 58, 255)
        );
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.payload().len()),
            (0, 0, 8)
        );
        assert_eq!(r.emit(&mut buf[..47]), Err(Error::Truncated));
    }

    #[test]
    fn walks_hop_by_hop_routing_and_destination_options() {
        let mut pl = ext(proto::ROUTING, 0);
        let mut rt = ext(proto::DST_OPTS, 1);
        rt[3] = 2; // segments left
        pl.extend_from_slice(&rt);
        pl.extend_from_slice(&ext(proto::UDP, 0));
        pl.extend_from_slice(&[9; 8]);
        let b = packet(proto::HOP_BY_HOP, &pl);
        let p = Packet::new_checked(&b[..]).unwrap();
        let c = p.chain().unwrap();
        assert_eq!(
            (c.proto, c.at, c.segments_left, c.headers),
            (17, 40 + 32, 2, 3)
        );
        assert_eq!(p.upper(&c), &[9; 8]);
    }

    #[test]
    fn authentication_header_length_is_in_4_byte_units() {
        let mut ah = vec![0u8; 12];
        ah[0] = proto::TCP;
        ah[1] = 1; // (1 + 2) * 4 = 12 bytes
        let b = packet(proto::AH, &ah);
        let c = Packet::new_checked(&b[..]).unwrap().chain().unwrap();
        assert_eq!((c.proto, c.at), (proto::TCP, 52));
    }

    #[test]
    fn a_fragment_is_reported_and_the_walk_stops() {
        let mut frag = vec![proto::TCP, 0, 0x00, 0x19, 0xde, 0xad, 0xbe, 0xef]; // offset 3, M
        frag.extend_from_slice(&[7; 16]);
        let b = packet(proto::FRAGMENT, &frag);
        let c = Packet::new_checked(&b[..]).unwrap().chain().unwrap();
        assert_eq!(
            c.fragment,
            Some(Fragment {
                offset: 3,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert_eq!((c.proto, c.at), (proto::TCP, 48));
    }

    #[test]
    fn no_next_header_and_esp_end_the_walk() {
        for last in [proto::NO_NEXT, proto::ESP, proto::ICMPV6] {
            let b = packet(proto::DST_OPTS, &ext(last, 0));
            let c = Packet::new_checked(&b[..]).unwrap().chain().unwrap();
            assert_eq!((c.proto, c.at), (last, 48));
        }
    }

    #[test]
    fn truncated_packets_and_headers_are_refused() {
        let b = packet(proto::TCP, &[0; 20]);
        for n in 0..60 {
            assert_eq!(
                Packet::new_checked(&b[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        let q = Packet::new_quoted(&b[..48]).unwrap();
        assert_eq!(q.payload().len(), 8);
        // An extension header whose length runs past the payload.
        let b = packet(proto::DST_OPTS, &ext(proto::TCP, 3)[..16]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.chain(), Err(Error::Truncated));
        // Fewer than 8 bytes left for the next header.
        let b = packet(proto::DST_OPTS, &[proto::TCP, 0, 0, 0]);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().chain(),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn hostile_chains_are_bounded() {
        // Wrong version.
        let mut b = packet(proto::TCP, &[]);
        b[0] = 0x45;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        // Payload length beyond the buffer.
        let mut b = packet(proto::TCP, &[0; 8]);
        b[5] = 9;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        // A long chain of destination options: the count cap.
        let mut pl = Vec::new();
        for _ in 0..MAX_EXT_HEADERS + 1 {
            pl.extend_from_slice(&ext(proto::DST_OPTS, 0));
        }
        let b = packet(proto::DST_OPTS, &pl);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().chain(),
            Err(Error::Limit)
        );
        // Exactly the cap, then TCP: accepted.
        let mut pl = Vec::new();
        for i in 0..MAX_EXT_HEADERS {
            let last = i + 1 == MAX_EXT_HEADERS;
            pl.extend_from_slice(&ext(if last { proto::TCP } else { proto::DST_OPTS }, 0));
        }
        let b = packet(proto::DST_OPTS, &pl);
        let c = Packet::new_checked(&b[..]).unwrap().chain().unwrap();
        assert_eq!(
            (c.proto, usize::from(c.headers)),
            (proto::TCP, MAX_EXT_HEADERS)
        );
        // Two long headers: the byte cap.
        let mut pl = ext(proto::DST_OPTS, 255);
        pl.extend_from_slice(&ext(proto::TCP, 0));
        let b = packet(proto::DST_OPTS, &pl);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().chain(),
            Err(Error::Limit)
        );
        // Hop-by-hop after another header ("loops" back to the start).
        let b = packet(
            proto::DST_OPTS,
            &[ext(proto::HOP_BY_HOP, 0), ext(6, 0)].concat(),
        );
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().chain(),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn rewrites_report_the_change() {
        let mut b = packet(proto::TCP, &[0; 20]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let new = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
        assert_eq!(p.rewrite_dst(new), AddrChange::V6 { old: DST, new });
        assert_eq!(p.rewrite_src(DST), AddrChange::V6 { old: SRC, new: DST });
        p.set_hop_limit(63);
        assert_eq!((p.src(), p.dst(), p.hop_limit()), (DST, new, 63));
        let c = p.chain().unwrap();
        assert_eq!(p.upper_mut(&c).len(), 20);
    }
}
