//! The classifier's IPv6 half: which capability an IPv6 frame is for. Neighbour
//! solicitations for owned addresses and echo go to [`crate::local6`], TCP to a VIP or a DIP
//! answered for to the responder, traffic to and from a DIP's real to the NAT (both the same
//! code as IPv4, compiled for [`Ip6`]); fragments and martian sources to owned addresses are
//! dropped and counted; everything else of IPv6 is the kernel's.

use super::Dispatch;
use crate::counters::Reason;
use crate::egress::Verdict;
use crate::frame::{Ctx, Net, L3};
use crate::frame6::Ip6;
use crate::wire::{icmpv6, ipv6, proto};
use crate::{local6, SERVER};
use detour_config::Snapshot;
use std::net::Ipv6Addr;

impl Dispatch<'_> {
    /// An Ethernet frame of type IPv6 (`buf[..len]`).
    #[inline]
    pub(super) fn ipv6_frame(&mut self, cx: &mut Ctx, buf: &mut [u8], len: usize) -> Verdict {
        cx.c.ipv6 += 1;
        match Ip6::parse(&buf[..len]) {
            Ok(ip) => self.ipv6(cx, buf, &ip),
            // A bad header or extension chain: dropped when it is to an owned address, the
            // kernel's otherwise (it has its own checks).
            Err(why) => {
                let owned = buf
                    .get(L3..len)
                    .and_then(|b| ipv6::Packet::new_quoted(b).ok())
                    .is_some_and(|p| cx.snap.owns6(p.dst()));
                if owned {
                    Verdict::Drop(why)
                } else {
                    Verdict::Pass
                }
            }
        }
    }

    #[inline]
    fn ipv6(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
        if ip.dst.is_multicast() {
            // Solicitations for owned addresses go to solicited-node multicast groups.
            return if ip.proto == proto::ICMPV6 && !ip.frag {
                local6::icmp(cx, buf, ip)
            } else {
                Verdict::Pass
            };
        }
        if !cx.snap.owns6(ip.dst) {
            return self.not_owned6(cx, buf, ip);
        }
        if ip.frag {
            return Verdict::Drop(Reason::Fragment);
        }
        if martian6(cx.snap, ip.src) {
            return Verdict::Drop(Reason::Martian);
        }
        match ip.proto {
            proto::TCP => self.tcp_to_owned(cx, buf, ip),
            proto::UDP => self.udp_to_owned(cx, buf, ip),
            proto::ICMPV6 if is_error(buf, ip) => self.nat.icmp_to_dip(cx, buf, ip),
            proto::ICMPV6 => local6::icmp(cx, buf, ip),
            _ => Verdict::Drop(Reason::NoService),
        }
    }

    /// Not to an owned address: a real's reply (or an ICMPv6 error about a client's packet)
    /// from the server side is translated; anything else is the kernel's.
    fn not_owned6(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
        if cx.port != SERVER && !self.one_armed {
            return if cx.snap.is_real_ip6(ip.src) {
                Verdict::Drop(Reason::WrongSide)
            } else {
                Verdict::Pass
            };
        }
        match ip.proto {
            proto::TCP | proto::UDP => self.nat.reply_of_real(cx, buf, ip),
            proto::ICMPV6 => self.nat.icmp_from_real(cx, buf, ip),
            _ => Verdict::Pass,
        }
    }
}

/// An ICMPv6 error message (types below 128, RFC 4443 section 2.1).
#[inline]
fn is_error(buf: &[u8], ip: &Ip6) -> bool {
    icmpv6::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| m.is_error())
}

/// A source no host may send from (RFC 4291: unspecified, loopback, multicast; IPv4-mapped,
/// RFC 4038 section 4.2) or the director's own: never answered nor forwarded.
#[inline]
fn martian6(snap: &Snapshot, src: Ipv6Addr) -> bool {
    src.is_unspecified()
        || src.is_loopback()
        || src.is_multicast()
        || src.to_ipv4_mapped().is_some()
        || snap.owns6(src)
}
