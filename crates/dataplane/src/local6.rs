//! The director's own IPv6 addresses: neighbour advertisements (RFC 4861) answering
//! solicitations for the addresses it owns, and echo replies (RFC 4443) to pings of them.
//! Stateless; every answer leaves through the egress, back out of the port the request came
//! in on. Every other ICMPv6 message (router advertisements, solicitations for addresses it
//! does not own, redirects) is the kernel's.

use crate::egress::Verdict;
use crate::frame::{Ctx, Net, L3, OWN_TTL};
use crate::frame6::Ip6;
use crate::wire::icmpv6::{self, kind, na_flags, NdRepr};
use crate::wire::{ethernet, ethertype, ipv6, proto, IpPair};
use crate::Reason;
use std::net::Ipv6Addr;

/// Hop limit of neighbour discovery messages (RFC 4861 section 6.1: anything else is from
/// off the link and invalid).
const ND_HOP_LIMIT: u8 = 255;

/// All-nodes multicast (the destination of an advertisement answering duplicate address
/// detection) and its MAC.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An ICMPv6 message (the frame's upper layer, checksum not yet checked): answer what is
/// ours, pass the rest to the kernel.
pub(crate) fn icmp(cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
    let Ok(m) = icmpv6::Packet::new_checked(ip.l4(buf)) else {
        return Verdict::Drop(Reason::BadIcmp);
    };
    match m.msg_type() {
        kind::NEIGHBOR_SOLICIT => solicit(cx, buf, ip),
        kind::ECHO_REQUEST if cx.snap.owns6(ip.dst) => echo(cx, buf, ip),
        _ => Verdict::Pass,
    }
}

/// A neighbour solicitation: one for an owned address gets an advertisement with the MAC of
/// the port it came in on; any other is the kernel's.
fn solicit(cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
    let Ok(m) = icmpv6::Packet::new_checked(ip.l4(buf)) else {
        return Verdict::Drop(Reason::BadIcmp);
    };
    let Ok(NdRepr::Solicit { target, source_mac }) = NdRepr::parse(&m) else {
        return Verdict::Pass;
    };
    if !cx.snap.owns6(target) {
        return Verdict::Pass;
    }
    if ip.hop_limit != ND_HOP_LIMIT || !m.verify_checksum(&ip.pair()) {
        return Verdict::Drop(Reason::BadIcmp);
    }
    let Ok(peer) = ethernet::Frame::new_checked(&*buf).map(|f| f.src()) else {
        return Verdict::Drop(Reason::Runt);
    };
    // From the unspecified address: duplicate address detection, answered to all nodes
    // (RFC 4861 section 7.2.4), not solicited.
    let dad = ip.src.is_unspecified();
    let (dst, dst_mac, flags) = if dad {
        (
            ALL_NODES,
            icmpv6::multicast_mac(ALL_NODES),
            na_flags::OVERRIDE,
        )
    } else {
        let mac = source_mac.unwrap_or(peer);
        (ip.src, mac, na_flags::SOLICITED | na_flags::OVERRIDE)
    };
    let hop = cx.eg.back(cx.port, dst_mac);
    let na = NdRepr::Advert {
        flags,
        target,
        target_mac: Some(hop.src()),
    };
    let ips = IpPair::V6 { src: target, dst };
    let len = na.buffer_len();
    let frame_len = L3 + ipv6::HEADER_LEN + len;
    let Some(f) = buf.get_mut(..frame_len) else {
        return Verdict::Drop(Reason::NoRoom);
    };
    let header = ipv6::Repr {
        src: target,
        dst,
        next_header: proto::ICMPV6,
        payload_len: len,
        hop_limit: ND_HOP_LIMIT,
    };
    let written = ethernet::Repr {
        dst: hop.dst(),
        src: hop.src(),
        ethertype: ethertype::IPV6,
    }
    .emit(f)
    .and_then(|_| header.emit(&mut f[L3..]))
    .and_then(|_| na.emit(&mut f[L3 + ipv6::HEADER_LEN..], &ips));
    if written.is_err() {
        return Verdict::Drop(Reason::NoRoom);
    }
    cx.c.nd_adverts += 1;
    hop.send(buf, frame_len)
}

/// An echo request to an owned address: the same frame turned into the reply, checksum
/// updated for the type change (the pseudo-header's sum does not change when the addresses
/// swap).
fn echo(cx: &mut Ctx, buf: &mut [u8], ip: &Ip6) -> Verdict {
    let ok = icmpv6::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| m.verify_checksum(&ip.pair()));
    if !ok {
        return Verdict::Drop(Reason::BadIcmp);
    }
    let Ok(peer) = ethernet::Frame::new_checked(&*buf).map(|f| f.src()) else {
        return Verdict::Drop(Reason::Runt);
    };
    let Ok(mut m) = icmpv6::Packet::new_checked(ip.l4_mut(buf)) else {
        return Verdict::Drop(Reason::BadIcmp);
    };
    m.rewrite_type(kind::ECHO_REPLY);
    let Some(mut p) = ip.packet_mut(buf) else {
        return Verdict::Drop(Reason::BadIpv6);
    };
    p.rewrite_src(ip.dst);
    p.rewrite_dst(ip.src);
    p.set_hop_limit(OWN_TTL);
    cx.c.echo_replies += 1;
    cx.eg.back(cx.port, peer).send(buf, ip.frame_len())
}
