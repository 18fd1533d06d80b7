//! The ICMP errors about translated flows (RFC 5508 section 4.2), both families in one path:
//!
//! - An error about a packet the real sent (to the DIP, from a router on the client side) is
//!   delivered to the real with the quoted packet as the real sent it
//!   ([`Nat::icmp_to_dip`]).
//! - One from the real's side about a client's packet goes to the client as if about the
//!   DIP ([`Nat::icmp_from_real`]); a flow moved to a backup real is found in the backup-flow
//!   table as its replies are.
//!
//! The (rare, short) errors get fresh checksums (ICMPv6's under the new pseudo-header), so
//! one that arrives corrupt is dropped rather than given good ones. Packet too big above all
//! must pass, so that path-MTU discovery works through the DIP.

use super::{Family, Nat};
use crate::counters::Reason;
use crate::egress::Verdict;
use crate::frame::Ctx;
use crate::wire::End;
use detour_config::Action;

impl Nat {
    /// An ICMP error to an owned address about a packet a real sent through its DIP (quoted:
    /// DIP:port -> client): deliver it to the real, with the quoted packet as the real sent it.
    pub(crate) fn icmp_to_dip<I: Family>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &I,
    ) -> Verdict {
        let Some((src, sport)) = ip.quoted_end(buf, End::Src) else {
            return Verdict::Drop(Reason::BadIcmp);
        };
        let Some(r) = I::dip_at(cx.snap, src, sport) else {
            return Verdict::Drop(Reason::NoService);
        };
        // The quoted packet was sent by whichever real the DIP's traffic goes to now: the
        // real itself, or its backup (the same stateless choice as `forward`).
        let Action::Forward(to) = cx.snap.reals[r as usize].action else {
            return Verdict::Drop(Reason::NoService);
        };
        let real = &cx.snap.reals[to as usize];
        let hop = match cx.eg.toward_real(real.mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        let Some(to) = I::sock(real.addr) else {
            return Verdict::Drop(Reason::NoService);
        };
        if !ip.translate_error(buf, End::Src, to, Some(End::Dst)) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }

    /// An ICMP error from the server side about a packet a client sent to a DIP (quoted:
    /// client -> real:port): deliver it to the client as if about (and, when the real itself
    /// sent it, from) the DIP. Anything else is the kernel's.
    pub(crate) fn icmp_from_real<I: Family>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &I,
    ) -> Verdict {
        if !ip.icmp_error(buf) || ip.frag() {
            return Verdict::Pass;
        }
        let (Some(client), Some(real)) =
            (ip.quoted_end(buf, End::Src), ip.quoted_end(buf, End::Dst))
        else {
            return Verdict::Pass;
        };
        let sender = I::real_at(cx.snap, real.0, real.1);
        let Some(dip) = self.dip_of::<I>(cx.snap, (real, sender), client, cx.now) else {
            return Verdict::Pass;
        };
        // Sent on with fresh checksums: a corrupt error must not get them.
        if !ip.header_ok(buf) {
            return Verdict::Drop(I::BAD_HEADER);
        }
        if !ip.icmp_checksum_ok(buf) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        // The error is from the real's address only when the real itself sent it; a router
        // between the director and the real keeps its own source address.
        let outer = (ip.src() == real.0).then_some(End::Src);
        if !ip.translate_error(buf, End::Dst, dip, outer) {
            return Verdict::Pass;
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }
}
