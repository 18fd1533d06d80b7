//! The director's own addresses: ARP replies (RFC 826) for the addresses it owns and echo
//! replies (RFC 792) to pings of them. Stateless; every answer leaves through the egress,
//! back out of the port the request came in on.

use crate::egress::Verdict;
use crate::frame::{Ctx, Ip, L3, OWN_TTL};
use crate::wire::{arp, ethernet, icmpv4};
use crate::Reason;

/// An ARP frame (`buf[..len]`): answer a request for an owned address; pass the rest to the
/// kernel (which keeps its own neighbour cache from them).
pub(crate) fn arp(cx: &mut Ctx, buf: &mut [u8], len: usize) -> Verdict {
    let Some(Ok(p)) = buf.get(L3..len).map(arp::Packet::new_checked) else {
        return Verdict::Drop(Reason::BadArp);
    };
    let req = arp::Repr::parse(&p);
    if req.operation != arp::REQUEST || !cx.snap.owns(req.target_ip) {
        return Verdict::Pass;
    }
    let hop = cx.eg.back(cx.port, req.sender_mac);
    if req.reply(hop.src()).emit(&mut buf[L3..]).is_err() {
        return Verdict::Drop(Reason::BadArp);
    }
    cx.c.arp_replies += 1;
    hop.send(buf, L3 + arp::LEN)
}

/// An echo request to an owned address (an ICMP message of at least 8 bytes): the same
/// frame turned into the reply, checksum updated for the type change.
pub(crate) fn echo(cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
    let Ok(peer) = ethernet::Frame::new_checked(&*buf).map(|f| f.src()) else {
        return Verdict::Drop(Reason::Runt);
    };
    let Some(mut p) = ip.packet_mut(buf) else {
        return Verdict::Drop(Reason::BadIpv4);
    };
    let Ok(mut icmp) = icmpv4::Packet::new_checked(p.payload_mut()) else {
        return Verdict::Drop(Reason::BadIcmp);
    };
    icmp.rewrite_type(icmpv4::kind::ECHO_REPLY);
    p.set_addrs_ttl(ip.dst, ip.src, OWN_TTL);
    cx.c.echo_replies += 1;
    cx.eg.back(cx.port, peer).send(buf, ip.frame_len())
}
