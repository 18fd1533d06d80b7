//! What the NAT needs of an IP family, so that [`super`] is one code path compiled for each
//! ([`Ip`] for IPv4, [`Ip6`] for IPv6), as the responder is over [`Net`]: the addresses, the
//! snapshot's lookups by address, rewriting one end of a TCP/UDP packet (IPv4 updates its
//! header checksum incrementally with the TTL; IPv6 has none and a hop limit), and the ICMP
//! error of the family (which types are errors about a forwarded packet, their checksum: a
//! plain one for ICMPv4, one over the pseudo-header for ICMPv6).
//!
//! Everything on the forwarding paths is inlined (`rewrite` always: the compiler left it out
//! of line once generic, at ~60 instructions per forwarded frame), so a generic path pays
//! nothing for the other family.

use crate::counters::Reason;
use crate::frame::{Ip, Net};
use crate::frame6::Ip6;
use crate::wire::quoted::Quoted;
use crate::wire::{icmpv4, icmpv6, ipv4, proto, tcp, udp, AddrChange, End, IpPair};
use detour_config::Snapshot;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IP family as the NAT sees a classified packet of it.
pub(crate) trait Family: Net {
    /// An address of the family.
    type A: Copy + PartialEq;
    /// Reason for a header that fails its checksum.
    const BAD_HEADER: Reason;
    fn src(&self) -> Self::A;
    fn dst(&self) -> Self::A;
    /// The upper-layer protocol.
    fn proto(&self) -> u8;
    /// TTL or hop limit.
    fn ttl(&self) -> u8;
    /// A fragment (first or later).
    fn frag(&self) -> bool;
    /// A fragment the NAT cannot map by ports: IPv4's later fragments (no L4 header), every
    /// IPv6 fragment.
    fn unmappable(&self) -> bool;
    /// Length of the IP packet, and of the frame without its padding.
    fn len(&self) -> usize;
    fn frame_len(&self) -> usize;
    /// Whether the header checksum verifies (IPv6 has none).
    fn header_ok(&self, frame: &[u8]) -> bool;
    /// The upper-layer bytes, writable.
    fn l4_mut<'a>(&self, frame: &'a mut [u8]) -> &'a mut [u8];

    /// An address of this family as the tables key it.
    fn host(a: Self::A) -> Ipv6Addr;
    /// The address of this family a table holds, if it is one.
    fn of_host(a: Ipv6Addr) -> Option<Self::A>;
    /// A configured socket address of this family (the model keeps a DIP's real and
    /// backups in the DIP's family).
    fn sock(a: SocketAddr) -> Option<(Self::A, u16)>;
    fn real_at(snap: &Snapshot, a: Self::A, port: u16) -> Option<u32>;
    fn dip_at(snap: &Snapshot, a: Self::A, port: u16) -> Option<u32>;
    fn virtual_at(snap: &Snapshot, a: Self::A, port: u16) -> Option<u32>;
    fn is_real_ip(snap: &Snapshot, a: Self::A) -> bool;

    /// Set one end's address to `new` and the TTL (hop limit) to `ttl` in the IP header.
    /// False for another buffer.
    fn translate(&self, frame: &mut [u8], end: End, new: Self::A, ttl: u8) -> bool;
    /// The change of one end's address, for the transport checksum.
    fn change(old: Self::A, new: Self::A) -> AddrChange;

    /// Whether the ICMP message is an error the NAT translates.
    fn icmp_error(&self, frame: &[u8]) -> bool;
    /// Whether the ICMP message's checksum verifies.
    fn icmp_checksum_ok(&self, frame: &[u8]) -> bool;
    /// One end of the packet an ICMP error quotes, if it is a TCP/UDP packet of this family.
    fn quoted_end(&self, frame: &[u8], end: End) -> Option<(Self::A, u16)>;
    /// Rewrite the quoted packet's `inner` end to `to`, the outer address at `outer` (if
    /// any) to `to`'s address, decrement the TTL, recompute the checksums.
    fn translate_error(
        &self,
        frame: &mut [u8],
        inner: End,
        to: (Self::A, u16),
        outer: Option<End>,
    ) -> bool;
}

/// Source port, destination port and the RST bit of a TCP or UDP packet, if its header is
/// whole (checked views).
#[inline]
pub(crate) fn ports<I: Family>(ip: &I, frame: &[u8]) -> Option<(u16, u16, bool)> {
    let l4 = ip.l4(frame);
    match ip.proto() {
        proto::TCP => tcp::Packet::new_checked(l4)
            .ok()
            .map(|t| (t.src_port(), t.dst_port(), t.rst())),
        proto::UDP => udp::Packet::new_checked(l4)
            .ok()
            .map(|u| (u.src_port(), u.dst_port(), false)),
        _ => None,
    }
}

/// Rewrite one end (address and port) of the TCP/UDP packet in `frame`, decrement the TTL,
/// and update the checksums incrementally (RFC 1624). False, with nothing changed, when the
/// L4 header is not whole.
#[inline(always)]
pub(crate) fn rewrite<I: Family>(
    frame: &mut [u8],
    ip: &I,
    end: End,
    addr: I::A,
    port: u16,
) -> bool {
    let old = if end == End::Src { ip.src() } else { ip.dst() };
    let change = I::change(old, addr);
    let l4 = ip.l4_mut(frame);
    if ip.proto() == proto::TCP {
        let Ok(mut t) = tcp::Packet::new_checked(l4) else {
            return false;
        };
        t.translate(end, &change, port);
    } else {
        let Ok(mut u) = udp::Packet::new_checked(l4) else {
            return false;
        };
        u.translate(end, &change, port);
    }
    ip.translate(frame, end, addr, ip.ttl() - 1)
}

impl Family for Ip {
    type A = Ipv4Addr;
    const BAD_HEADER: Reason = Reason::BadIpv4;
    #[inline]
    fn src(&self) -> Ipv4Addr {
        self.src
    }
    #[inline]
    fn dst(&self) -> Ipv4Addr {
        self.dst
    }
    #[inline]
    fn proto(&self) -> u8 {
        self.proto
    }
    #[inline]
    fn ttl(&self) -> u8 {
        self.ttl
    }
    #[inline]
    fn frag(&self) -> bool {
        self.frag
    }
    #[inline]
    fn unmappable(&self) -> bool {
        self.later_frag
    }
    #[inline]
    fn len(&self) -> usize {
        Ip::len(self)
    }
    #[inline]
    fn frame_len(&self) -> usize {
        Ip::frame_len(self)
    }
    #[inline]
    fn header_ok(&self, frame: &[u8]) -> bool {
        Ip::header_ok(self, frame)
    }
    #[inline]
    fn l4_mut<'a>(&self, frame: &'a mut [u8]) -> &'a mut [u8] {
        Ip::l4_mut(self, frame)
    }
    #[inline]
    fn host(a: Ipv4Addr) -> Ipv6Addr {
        a.to_ipv6_mapped()
    }
    #[inline]
    fn of_host(a: Ipv6Addr) -> Option<Ipv4Addr> {
        a.to_ipv4_mapped()
    }
    #[inline]
    fn sock(a: SocketAddr) -> Option<(Ipv4Addr, u16)> {
        match a {
            SocketAddr::V4(a) => Some((*a.ip(), a.port())),
            SocketAddr::V6(_) => None,
        }
    }
    #[inline]
    fn real_at(snap: &Snapshot, a: Ipv4Addr, port: u16) -> Option<u32> {
        snap.real_at(a, port)
    }
    #[inline]
    fn dip_at(snap: &Snapshot, a: Ipv4Addr, port: u16) -> Option<u32> {
        snap.dip_at(a, port)
    }
    #[inline]
    fn virtual_at(snap: &Snapshot, a: Ipv4Addr, port: u16) -> Option<u32> {
        snap.virtual_at(a, port)
    }
    #[inline]
    fn is_real_ip(snap: &Snapshot, a: Ipv4Addr) -> bool {
        snap.is_real_ip(a)
    }
    #[inline]
    fn translate(&self, frame: &mut [u8], end: End, new: Ipv4Addr, ttl: u8) -> bool {
        // The parse checked this header: rewritten in place, not checked again.
        let Some(h) = self.header_mut(frame) else {
            return false;
        };
        ipv4::translate_fixed(h, end, new, ttl);
        true
    }
    #[inline]
    fn change(old: Ipv4Addr, new: Ipv4Addr) -> AddrChange {
        AddrChange::V4 { old, new }
    }
    #[inline]
    fn icmp_error(&self, frame: &[u8]) -> bool {
        use icmpv4::kind::*;
        icmpv4::Packet::new_checked(self.l4(frame)).is_ok_and(|m| {
            matches!(
                m.msg_type(),
                DST_UNREACHABLE | TIME_EXCEEDED | PARAM_PROBLEM
            )
        })
    }
    #[inline]
    fn icmp_checksum_ok(&self, frame: &[u8]) -> bool {
        icmpv4::Packet::new_checked(self.l4(frame)).is_ok_and(|m| m.verify_checksum())
    }
    fn quoted_end(&self, frame: &[u8], end: End) -> Option<(Ipv4Addr, u16)> {
        let m = icmpv4::Packet::new_checked(self.l4(frame)).ok()?;
        let q = Quoted::new_checked(m.data(), false).ok()?;
        match q.addr(end) {
            IpAddr::V4(a) => Some((a, q.port(end))),
            IpAddr::V6(_) => None,
        }
    }
    fn translate_error(
        &self,
        frame: &mut [u8],
        inner: End,
        (to, port): (Ipv4Addr, u16),
        outer: Option<End>,
    ) -> bool {
        let Some(mut p) = self.packet_mut(frame) else {
            return false;
        };
        {
            let Ok(mut m) = icmpv4::Packet::new_checked(p.payload_mut()) else {
                return false;
            };
            let Ok(mut q) = Quoted::new_checked(m.data_mut(), false) else {
                return false;
            };
            if q.rewrite(inner, IpAddr::V4(to), port).is_err() {
                return false;
            }
            m.fill_checksum();
        }
        match outer {
            Some(End::Src) => p.set_src(to),
            Some(End::Dst) => p.set_dst(to),
            None => {}
        }
        p.set_ttl(self.ttl - 1);
        p.fill_checksum();
        true
    }
}

impl Family for Ip6 {
    type A = Ipv6Addr;
    const BAD_HEADER: Reason = Reason::BadIpv6;
    #[inline]
    fn src(&self) -> Ipv6Addr {
        self.src
    }
    #[inline]
    fn dst(&self) -> Ipv6Addr {
        self.dst
    }
    #[inline]
    fn proto(&self) -> u8 {
        self.proto
    }
    #[inline]
    fn ttl(&self) -> u8 {
        self.hop_limit
    }
    #[inline]
    fn frag(&self) -> bool {
        self.frag
    }
    #[inline]
    fn unmappable(&self) -> bool {
        self.frag
    }
    #[inline]
    fn len(&self) -> usize {
        Ip6::len(self)
    }
    #[inline]
    fn frame_len(&self) -> usize {
        Ip6::frame_len(self)
    }
    #[inline]
    fn header_ok(&self, _: &[u8]) -> bool {
        true
    }
    #[inline]
    fn l4_mut<'a>(&self, frame: &'a mut [u8]) -> &'a mut [u8] {
        Ip6::l4_mut(self, frame)
    }
    #[inline]
    fn host(a: Ipv6Addr) -> Ipv6Addr {
        a
    }
    #[inline]
    fn of_host(a: Ipv6Addr) -> Option<Ipv6Addr> {
        Some(a)
    }
    #[inline]
    fn sock(a: SocketAddr) -> Option<(Ipv6Addr, u16)> {
        match a {
            SocketAddr::V6(a) => Some((*a.ip(), a.port())),
            SocketAddr::V4(_) => None,
        }
    }
    #[inline]
    fn real_at(snap: &Snapshot, a: Ipv6Addr, port: u16) -> Option<u32> {
        snap.real_at6(a, port)
    }
    #[inline]
    fn dip_at(snap: &Snapshot, a: Ipv6Addr, port: u16) -> Option<u32> {
        snap.dip_at6(a, port)
    }
    #[inline]
    fn virtual_at(snap: &Snapshot, a: Ipv6Addr, port: u16) -> Option<u32> {
        snap.virtual_at6(a, port)
    }
    #[inline]
    fn is_real_ip(snap: &Snapshot, a: Ipv6Addr) -> bool {
        snap.is_real_ip6(a)
    }
    #[inline]
    fn translate(&self, frame: &mut [u8], end: End, new: Ipv6Addr, ttl: u8) -> bool {
        let Some(mut p) = self.packet_mut(frame) else {
            return false;
        };
        p.set_hop_limit(ttl);
        match end {
            End::Src => p.rewrite_src(new),
            End::Dst => p.rewrite_dst(new),
        };
        true
    }
    #[inline]
    fn change(old: Ipv6Addr, new: Ipv6Addr) -> AddrChange {
        AddrChange::V6 { old, new }
    }
    #[inline]
    fn icmp_error(&self, frame: &[u8]) -> bool {
        icmpv6::Packet::new_checked(self.l4(frame)).is_ok_and(|m| m.is_error())
    }
    #[inline]
    fn icmp_checksum_ok(&self, frame: &[u8]) -> bool {
        icmpv6::Packet::new_checked(self.l4(frame)).is_ok_and(|m| m.verify_checksum(&self.pair()))
    }
    fn quoted_end(&self, frame: &[u8], end: End) -> Option<(Ipv6Addr, u16)> {
        let m = icmpv6::Packet::new_checked(self.l4(frame)).ok()?;
        let q = Quoted::new_checked(m.data(), true).ok()?;
        match q.addr(end) {
            IpAddr::V6(a) => Some((a, q.port(end))),
            IpAddr::V4(_) => None,
        }
    }
    fn translate_error(
        &self,
        frame: &mut [u8],
        inner: End,
        (to, port): (Ipv6Addr, u16),
        outer: Option<End>,
    ) -> bool {
        let (mut src, mut dst) = (self.src, self.dst);
        match outer {
            Some(End::Src) => src = to,
            Some(End::Dst) => dst = to,
            None => {}
        }
        {
            let Ok(mut m) = icmpv6::Packet::new_checked(self.l4_mut(frame)) else {
                return false;
            };
            let Ok(mut q) = Quoted::new_checked(m.data_mut(), true) else {
                return false;
            };
            if q.rewrite(inner, IpAddr::V6(to), port).is_err() {
                return false;
            }
            m.fill_checksum(&IpPair::V6 { src, dst });
        }
        let Some(mut p) = self.packet_mut(frame) else {
            return false;
        };
        p.rewrite_src(src);
        p.rewrite_dst(dst);
        p.set_hop_limit(self.hop_limit - 1);
        true
    }
}
