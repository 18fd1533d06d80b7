//! Checked views of the bytes the data path reads and writes, in the manner of smoltcp's `wire`.
//!
//! Contract, for every view here (`ethernet::Frame`, `arp::Packet`, `ipv4::Packet`,
//! `ipv6::Packet`, `tcp::Packet`, `udp::Packet`, `icmpv4::Packet`, `icmpv6::Packet`):
//! - A view wraps a buffer `T: AsRef<[u8]>`; getters need `AsRef`, setters `AsMut`.
//! - `new_checked` checks the length (and the length fields the view trusts: IHL, total
//!   length, data offset, UDP length) once. After it succeeds, no accessor or setter panics,
//!   whatever the bytes. No setter changes a length field, so the check stays true.
//! - Each header's layout is a `mod field` table of byte ranges; only the view reads them.
//! - Malformed input is an [`Error`], a small `Copy` value the caller counts; nothing here
//!   allocates, logs or panics on outside input.
//! - A `Repr` (or [`TcpReply`]) is the validated, owned form of a header: it knows its length
//!   and writes itself into a buffer after checking the buffer is long enough.
//!
//! Checksums are [`crate::csum`]'s (RFC 1071 sums, RFC 1624 incremental updates); the
//! pseudo-headers of TCP/UDP/ICMPv6 come from [`IpPair`].

use crate::csum;
use std::net::{Ipv4Addr, Ipv6Addr};

pub mod arp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod quoted;
pub mod reply;
pub mod tcp;
pub mod udp;

pub use reply::TcpReply;

/// A header field: a range of byte offsets from the start of the header.
pub type Field = core::ops::Range<usize>;

/// Why a view or a `Repr` refused a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header, or than a length field says.
    Truncated,
    /// A field holds an impossible value (version, IHL, data offset, length below minimum).
    Malformed,
    /// A bounded walk (IPv6 extension headers, options) hit its cap.
    Limit,
}

pub type Result<T> = core::result::Result<T, Error>;

/// EtherTypes (IEEE 802 numbers, IANA registry).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86DD;
}

/// IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DST_OPTS: u8 = 60;
}

/// Source and destination of a packet: the addresses a transport pseudo-header covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpPair {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl IpPair {
    /// The same pair, the other way round (the addresses of a reply).
    #[inline]
    #[must_use]
    pub fn reversed(self) -> IpPair {
        match self {
            IpPair::V4 { src, dst } => IpPair::V4 { src: dst, dst: src },
            IpPair::V6 { src, dst } => IpPair::V6 { src: dst, dst: src },
        }
    }

    /// Folded sum of the pseudo-header for `proto` and an upper-layer length of `len` bytes:
    /// RFC 9293 section 3.1 / RFC 768 for IPv4, RFC 8200 section 8.1 for IPv6.
    #[inline]
    #[must_use]
    pub fn pseudo(&self, proto: u8, len: usize) -> u32 {
        match self {
            // An IPv4 datagram is at most 65535 bytes: the length fits the 16-bit field.
            IpPair::V4 { src, dst } => {
                csum::pseudo_v4(src.octets(), dst.octets(), proto, len as u16)
            }
            IpPair::V6 { src, dst } => {
                csum::pseudo_v6(src.octets(), dst.octets(), proto, len as u32)
            }
        }
    }

    /// Checksum to store over `data` (checksum field zeroed) under this pseudo-header.
    #[inline]
    #[must_use]
    pub fn checksum(&self, proto: u8, data: &[u8]) -> u16 {
        !csum::fold(csum::sum(self.pseudo(proto, data.len()), data))
    }

    /// Whether `data`, checksum field included, sums to all ones under this pseudo-header.
    #[inline]
    #[must_use]
    pub fn verifies(&self, proto: u8, data: &[u8]) -> bool {
        csum::sum(self.pseudo(proto, data.len()), data) == 0xFFFF
    }
}

/// Big-endian 16-bit word at `at`. Callers index only inside a checked length (one bounds
/// check per access, which the views' length checks usually let the compiler drop).
#[inline(always)]
pub(crate) fn get16(d: &[u8], at: usize) -> u16 {
    let mut b = [0; 2];
    b.copy_from_slice(&d[at..at + 2]);
    u16::from_be_bytes(b)
}

/// Big-endian 32-bit word at `at`.
#[inline(always)]
pub(crate) fn get32(d: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&d[at..at + 4]);
    u32::from_be_bytes(b)
}

#[inline(always)]
pub(crate) fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn put32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A MAC address (6 bytes) at `f`.
#[inline(always)]
pub(crate) fn mac(d: &[u8], f: Field) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&d[f]);
    m
}

/// 16 bytes at `at` (an IPv6 address).
#[inline(always)]
pub(crate) fn get128(d: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(&d[at..at + 16]);
    a
}

/// One end of a packet: its source or its destination (address and port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// Incremental checksum updates for a transport checksum when an address its pseudo-header
/// covers changes (RFC 1624 eqn. 3): the IPv4 words, or the IPv6 address's 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrChange {
    V4 { old: Ipv4Addr, new: Ipv4Addr },
    V6 { old: Ipv6Addr, new: Ipv6Addr },
}

impl AddrChange {
    /// `check` updated for this change.
    #[inline]
    #[must_use]
    pub fn apply(&self, check: u16) -> u16 {
        match self {
            AddrChange::V4 { old, new } => csum::update32(check, u32::from(*old), u32::from(*new)),
            AddrChange::V6 { old, new } => csum::update_bytes(check, &old.octets(), &new.octets()),
        }
    }

    /// The change as [`csum::adjust`] adds it (unfolded for IPv4, folded for IPv6's 16 bytes),
    /// so that a port's change can join it and the checksum is folded once.
    #[inline]
    #[must_use]
    pub fn delta(&self) -> u32 {
        match self {
            AddrChange::V4 { old, new } => csum::delta32(u32::from(*old), u32::from(*new)),
            AddrChange::V6 { old, new } => {
                u32::from(!csum::fold(csum::sum(0, &old.octets()))) + csum::sum(0, &new.octets())
            }
        }
    }
}

/// The contract of every view, over arbitrary bytes: a check either refuses the buffer or
/// every accessor and setter then runs without panicking.
#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn all_views(b: &mut [u8]) {
        let ips = IpPair::V4 {
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
        };
        if let Ok(mut f) = ethernet::Frame::new_checked(&mut *b) {
            let _ = (f.dst(), f.src(), f.ethertype(), f.payload().len());
            f.payload_mut();
        }
        if let Ok(p) = arp::Packet::new_checked(&*b) {
            let _ = arp::Repr::parse(&p).reply([1; 6]).emit(&mut [0; 28]);
        }
        if let Ok(mut p) = ipv4::Packet::new_checked(&mut *b) {
            let _ = (
                p.header_len(),
                p.total_len(),
                p.is_fragment(),
                p.frag_offset(),
            );
            let _ = (p.src(), p.dst(), p.ttl(), p.protocol(), p.verify_checksum());
            let _ = (p.ident(), p.dscp_ecn(), p.dont_frag(), p.payload().len());
            p.rewrite_dst(Ipv4Addr::BROADCAST);
            p.rewrite_ttl(1);
            p.split_mut();
        }
        for quoted in [false, true] {
            let v6 = if quoted {
                ipv6::Packet::new_quoted(&mut *b)
            } else {
                ipv6::Packet::new_checked(&mut *b)
            };
            if let Ok(mut p) = v6 {
                let _ = (
                    p.traffic_class(),
                    p.flow_label(),
                    p.payload_len(),
                    p.hop_limit(),
                );
                let _ = (p.src(), p.dst(), p.next_header(), p.payload().len());
                if let Ok(c) = p.chain() {
                    let _ = p.upper(&c).len();
                    p.upper_mut(&c);
                }
                p.rewrite_src(Ipv6Addr::LOCALHOST);
                p.set_hop_limit(0);
            }
            if let Ok(mut q) = quoted::Quoted::new_checked(&mut *b, quoted) {
                let _ = (
                    q.protocol(),
                    q.addr(quoted::End::Src),
                    q.port(quoted::End::Dst),
                );
                let a = if quoted {
                    IpAddr::V6(Ipv6Addr::LOCALHOST)
                } else {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                };
                q.rewrite(quoted::End::Dst, a, 1).unwrap();
            }
        }
        if let Ok(mut p) = tcp::Packet::new_checked(&mut *b) {
            let _ = (
                p.src_port(),
                p.dst_port(),
                p.seq(),
                p.ack_number(),
                p.flags(),
            );
            let _ = (
                p.header_len(),
                p.window(),
                p.urgent(),
                p.options().len(),
                p.mss(),
            );
            let _ = (p.seq_len(), p.verify_checksum(&ips), p.payload().len());
            p.rewrite_dst_port(1);
            p.adjust_checksum(&AddrChange::V4 {
                old: Ipv4Addr::LOCALHOST,
                new: Ipv4Addr::BROADCAST,
            });
            p.fill_checksum(&ips);
        }
        if let Ok(mut p) = udp::Packet::new_checked(&mut *b) {
            let _ = (p.src_port(), p.dst_port(), p.len(), p.payload().len());
            let _ = p.verify_checksum(&ips);
            p.rewrite_src_port(2);
            p.fill_checksum(&ips);
        }
        if let Ok(mut p) = icmpv4::Packet::new_checked(&mut *b) {
            let _ = (
                p.msg_type(),
                p.code(),
                p.echo_ident(),
                p.echo_seq(),
                p.is_error(),
            );
            let _ = (p.data().len(), p.verify_checksum());
            p.rewrite_type(0);
            p.fill_checksum();
        }
        if let Ok(mut p) = icmpv6::Packet::new_checked(&mut *b) {
            let _ = (
                p.mtu(),
                p.is_error(),
                p.verify_checksum(&ips),
                p.data().len(),
            );
            if let Ok(nd) = icmpv6::NdRepr::parse(&p) {
                let mut out = [0u8; 32];
                nd.emit(&mut out, &ips).unwrap();
            }
            p.rewrite_type(129);
            p.set_mtu(1280);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn checked_views_never_panic(mut b in prop::collection::vec(any::<u8>(), 0..160)) {
            all_views(&mut b);
        }

        /// Plausible headers: the version/IHL, data offset and length bytes biased to the
        /// values the checks look at.
        #[test]
        fn checked_views_never_panic_on_near_valid_headers(
            mut b in prop::collection::vec(any::<u8>(), 40..200),
            first in prop_oneof![0x40u8..0x50, 0x60u8..0x70],
            next in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), Just(6), Just(17)],
            small in 0u8..4,
        ) {
            b[0] = first;
            b[6] = next;
            b[4] = 0;
            b[5] = small.wrapping_mul(37);
            b[12] = small << 4 | 5;
            all_views(&mut b);
        }
    }
}
