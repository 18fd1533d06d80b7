//! DIP NAT over IPv6: the same translations as IPv4 ([`super`]), with no header checksum to
//! update (the TCP/UDP checksums follow the pseudo-header incrementally, RFC 1624 over 16-byte
//! addresses) and the hop limit in place of the TTL. ICMPv6 errors about translated flows
//! (packet too big above all, so that path-MTU discovery works through the DIP; destination
//! unreachable, time exceeded, parameter problem) are translated as for IPv4, their checksum
//! recomputed under the new pseudo-header.
//!
//! Flows moved to a backup real are not remembered over IPv6: a backup real's replies leave
//! from its own DIP.

use super::{Nat, Ports};
use crate::counters::Reason;
use crate::egress::Verdict;
use crate::frame::{Ctx, Net};
use crate::frame6::Ip6;
use crate::wire::quoted::Quoted;
use crate::wire::{icmpv6, proto, tcp, udp, AddrChange, End, IpPair};
use detour_config::Action;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

impl Nat {
    /// Client -> \[DIP\]:port of real `r`, sent to real `to` (`r` itself, or its backup).
    pub(crate) fn forward6(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &Ip6,
        p: Ports,
        to: u32,
    ) -> Verdict {
        let real = &cx.snap.reals[to as usize];
        let SocketAddr::V6(addr) = real.addr else {
            return Verdict::Drop(Reason::NoService);
        };
        let hop = match cx.eg.toward_real(real.mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.hop_limit <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if !rewrite6(buf, ip, End::Dst, *addr.ip(), addr.port()) {
            return Verdict::Drop(if ip.proto == proto::TCP {
                Reason::BadTcp
            } else {
                Reason::BadUdp
            });
        }
        let rc = &mut self.reals[to as usize];
        if let Some(f) = p.flags {
            rc.opened += u64::from(f.has(tcp::Flags::SYN) && !f.has(tcp::Flags::ACK));
            rc.closed += u64::from(f.0 & (tcp::Flags::FIN.0 | tcp::Flags::RST.0) != 0);
        }
        rc.to_real += 1;
        rc.to_real_bytes += ip.len() as u64;
        cx.c.to_real += 1;
        cx.c.to_real_bytes += ip.len() as u64;
        hop.send(buf, ip.frame_len())
    }

    /// \[Real\]:port -> client, arriving on the server side: from the DIP instead. Anything
    /// that is not a real's reply is the kernel's.
    pub(crate) fn reply_of_real6(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
        if ip.frag {
            return if cx.snap.is_real_ip6(ip.src) {
                Verdict::Drop(Reason::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let Some((sport, rst)) = sport_of(ip, buf) else {
            return Verdict::Pass;
        };
        let Some(sender) = cx.snap.real_at6(ip.src, sport) else {
            return Verdict::Pass;
        };
        let Some(SocketAddr::V6(dip)) = cx.snap.reals[sender as usize].dip else {
            return Verdict::Pass;
        };
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.hop_limit <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if !rewrite6(buf, ip, End::Src, *dip.ip(), dip.port()) {
            return Verdict::Pass;
        }
        if let Some(rc) = self.reals.get_mut(sender as usize) {
            rc.closed += u64::from(rst);
            rc.to_client += 1;
            rc.to_client_bytes += ip.len() as u64;
        }
        cx.c.to_client += 1;
        cx.c.to_client_bytes += ip.len() as u64;
        hop.send(buf, ip.frame_len())
    }

    /// An ICMPv6 error to an owned address about a packet a real sent through its DIP
    /// (quoted: \[DIP\]:port -> client): delivered to the real, the quoted packet as the real
    /// sent it.
    pub(crate) fn icmp_to_dip6(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
        let Some((src, sport)) = quoted_end6(buf, ip, End::Src) else {
            return Verdict::Drop(Reason::BadIcmp);
        };
        let Some(r) = cx.snap.dip_at6(src, sport) else {
            return Verdict::Drop(Reason::NoService);
        };
        let Action::Forward(to) = cx.snap.reals[r as usize].action else {
            return Verdict::Drop(Reason::NoService);
        };
        let real = &cx.snap.reals[to as usize];
        let SocketAddr::V6(addr) = real.addr else {
            return Verdict::Drop(Reason::NoService);
        };
        let hop = match cx.eg.toward_real(real.mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.hop_limit <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if !translate_error6(buf, ip, (End::Src, addr), Some(End::Dst)) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }

    /// An ICMPv6 error from the server side about a packet a client sent to a DIP (quoted:
    /// client -> \[real\]:port): delivered to the client as if about (and, when the real
    /// itself sent it, from) the DIP. Anything else is the kernel's.
    pub(crate) fn icmp_from_real6(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
        let is_error = icmpv6::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| m.is_error());
        if !is_error || ip.frag {
            return Verdict::Pass;
        }
        let Some((idst, idport)) = quoted_end6(buf, ip, End::Dst) else {
            return Verdict::Pass;
        };
        let Some(sender) = cx.snap.real_at6(idst, idport) else {
            return Verdict::Pass;
        };
        let Some(SocketAddr::V6(dip)) = cx.snap.reals[sender as usize].dip else {
            return Verdict::Pass;
        };
        if !icmpv6::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| m.verify_checksum(&ip.pair())) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.hop_limit <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        let outer = (ip.src == idst).then_some(End::Src);
        if !translate_error6(buf, ip, (End::Dst, dip), outer) {
            return Verdict::Pass;
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }
}

/// Source port and the RST bit of a TCP or UDP packet, if its header is whole.
#[inline]
fn sport_of(ip: &Ip6, buf: &[u8]) -> Option<(u16, bool)> {
    let l4 = ip.l4(buf);
    match ip.proto {
        proto::TCP => tcp::Packet::new_checked(l4)
            .ok()
            .map(|t| (t.src_port(), t.rst())),
        proto::UDP => udp::Packet::new_checked(l4)
            .ok()
            .map(|u| (u.src_port(), false)),
        _ => None,
    }
}

/// Rewrite one end (address and port) of the TCP/UDP packet in `buf`, decrement the hop
/// limit, and update the L4 checksum incrementally. False, with nothing changed, when the L4
/// header is not whole.
#[inline]
fn rewrite6(buf: &mut [u8], ip: &Ip6, end: End, addr: Ipv6Addr, port: u16) -> bool {
    let old = if end == End::Src { ip.src } else { ip.dst };
    let change = AddrChange::V6 { old, new: addr };
    let l4 = ip.l4_mut(buf);
    if ip.proto == proto::TCP {
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
    let Some(mut p) = ip.packet_mut(buf) else {
        return false;
    };
    if end == End::Src {
        p.rewrite_src(addr);
    } else {
        p.rewrite_dst(addr);
    }
    p.set_hop_limit(ip.hop_limit - 1);
    true
}

/// One end of the packet quoted by the ICMPv6 error in `buf`, if it is an IPv6 TCP/UDP packet
/// with its ports.
fn quoted_end6(buf: &[u8], ip: &Ip6, end: End) -> Option<(Ipv6Addr, u16)> {
    let m = icmpv6::Packet::new_checked(ip.l4(buf)).ok()?;
    let q = Quoted::new_checked(m.data(), true).ok()?;
    match q.addr(end) {
        IpAddr::V6(a) => Some((a, q.port(end))),
        IpAddr::V4(_) => None,
    }
}

/// Rewrite the quoted packet's `inner` end to `to`; set the outer address at `outer` (if
/// any) to `to`'s address; decrement the hop limit; recompute the ICMPv6 checksum under the
/// new pseudo-header.
fn translate_error6(
    buf: &mut [u8],
    ip: &Ip6,
    (inner, to): (End, SocketAddrV6),
    outer: Option<End>,
) -> bool {
    let (mut src, mut dst) = (ip.src, ip.dst);
    match outer {
        Some(End::Src) => src = *to.ip(),
        Some(End::Dst) => dst = *to.ip(),
        None => {}
    }
    {
        let Ok(mut m) = icmpv6::Packet::new_checked(ip.l4_mut(buf)) else {
            return false;
        };
        let Ok(mut q) = Quoted::new_checked(m.data_mut(), true) else {
            return false;
        };
        if q.rewrite(inner, IpAddr::V6(*to.ip()), to.port()).is_err() {
            return false;
        }
        m.fill_checksum(&IpPair::V6 { src, dst });
    }
    let Some(mut p) = ip.packet_mut(buf) else {
        return false;
    };
    p.rewrite_src(src);
    p.rewrite_dst(dst);
    p.set_hop_limit(ip.hop_limit - 1);
    true
}
