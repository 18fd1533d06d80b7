//! The redirect responder over TLS 1.3, for a `tls` virtual (IPv4 and IPv6 alike): the TCP
//! handshake stays the stateless SYN-cookie one; the first data segment whose cookie checks
//! opens an entry of the worker's [`detour_tls::Table`], which holds the connection for its two
//! round trips. The decrypted request head gets exactly the bytes the plain responder would
//! send (the same [`super::http::answer`]), encrypted, then close_notify and FIN. Each incoming
//! segment is answered with at most one segment written over its frame, so the server's
//! flight is clocked by the client's ACKs, and a client's retransmission makes the table
//! resend.
//!
//! Timers run from [`Responder::tls_tick`], which the run loop calls every few milliseconds
//! whether frames arrive or not: a server flight not acknowledged within its retransmission
//! timeout is sent again (go-back-N, the timeout doubling), in frames the runtime gives
//! (`Originate`); a connection past its retries or its lifetime is reset and freed. Each entry
//! keys on the connection's full addresses and ports and carries the way back to its client
//! (port and MAC), so a timer can address a frame without a frame to answer.
//!
//! Floods: at most `handshakes` new server flights (signatures) per batch (the
//! `tls-handshakes-per-batch` setting); a ClientHello past it is dropped unacknowledged
//! (`tls_deferred`) and comes back with the client's retransmission. Connections allocate when
//! they open; nothing else here does.

use super::{Answer, Responder, OUT};
use crate::cookie::Cookies;
use crate::counters::Counters;
use crate::egress::{Egress, Originate, Verdict};
use crate::frame::{Ctx, Net, Tcp, OWN_TTL};
use crate::wire::tcp::{self, Flags};
use crate::wire::{ethernet, IpPair, TcpReply};
use crate::{Port, Reason};
use detour_config::Action;
use detour_tls::{Incoming, Outcome, Segment, TlsConfig};
use std::hash::{Hash, Hasher};

/// The largest segment a timer sends (a 1500-byte MTU less IPv4 and TCP headers; the client's
/// MSS bounds it further).
const TIMER_MSS: usize = 1460;

/// A TLS connection's entry key: its addresses and ports (the identity), and the way back to
/// the client, which is not part of the identity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TlsKey {
    /// As the client sent them (source: the client).
    ips: IpPair,
    sport: u16,
    dport: u16,
    /// The port the client's segments arrive on, and the MAC they come from.
    port: Port,
    peer: [u8; 6],
}

impl PartialEq for TlsKey {
    fn eq(&self, o: &Self) -> bool {
        (self.ips, self.sport, self.dport) == (o.ips, o.sport, o.dport)
    }
}

impl Eq for TlsKey {}

impl Hash for TlsKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.ips, self.sport, self.dport).hash(h);
    }
}

impl TlsKey {
    fn of<I: Net>(cx: &Ctx, buf: &[u8], t: &Tcp<I>) -> TlsKey {
        let peer = ethernet::Frame::new_checked(buf).map_or([0; 6], |f| f.src());
        TlsKey {
            ips: t.ip.pair(),
            sport: t.sport,
            dport: t.dport,
            port: cx.port,
            peer,
        }
    }
}

/// The TCP flags of a segment the table asks for.
fn flags_of(s: &Segment<'_>) -> Flags {
    if s.rst {
        return Flags::RST;
    }
    let mut flags = Flags::ACK;
    if !s.payload.is_empty() {
        flags = Flags(flags.0 | Flags::PSH.0);
    }
    if s.fin {
        flags = Flags(flags.0 | Flags::FIN.0);
    }
    flags
}

impl Responder {
    /// A new batch: its handshake budget.
    #[inline]
    pub(crate) fn tls_batch(&mut self, handshakes: u32) {
        self.tls.begin_batch(handshakes);
    }

    /// The TLS timers: retransmit flights whose timeout passed, reset and free connections
    /// past their retries or lifetime, each frame through `out`. O(1) while nothing is due.
    pub(crate) fn tls_tick(
        &mut self,
        c: &mut Counters,
        eg: &Egress,
        now: u64,
        out: &mut impl Originate,
    ) {
        let before = self.tls.stats;
        self.tls.poll_timers(now, TIMER_MSS, |k, s| {
            let hop = eg.back(k.port, k.peer);
            let reply = TcpReply {
                src_mac: hop.src(),
                dst_mac: hop.dst(),
                ips: k.ips.reversed(),
                hop_limit: OWN_TTL,
                tcp: tcp::Repr {
                    src_port: k.dport,
                    dst_port: k.sport,
                    seq: s.seq,
                    ack: Some(s.ack),
                    flags: flags_of(&s),
                    window: if s.rst { 0 } else { 65535 },
                    mss: None,
                },
                payload: s.payload,
            };
            let sent = out.originate(|buf| match reply.emit(buf) {
                Ok(len) => hop.send(buf, len),
                Err(_) => Verdict::Drop(Reason::NoRoom),
            });
            if sent {
                c.tx += 1;
                c.rsts += u64::from(s.rst);
            } else {
                // No free frame or no room on the tx ring: the next timeout tries again.
                c.drop(Reason::NoRoom);
            }
        });
        let s = &self.tls.stats;
        c.tls_retransmits += s.retransmits - before.retransmits;
        c.tls_timed_out += (s.resets + s.expired) - (before.resets + before.expired);
    }

    /// Answer a segment to a `tls` virtual (the SYN as the plain responder does).
    pub(crate) fn respond_tls<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        action: Action,
        cfg: &TlsConfig,
    ) -> Verdict {
        let k = TlsKey::of(cx, buf, t);
        if t.has(Flags::SYN) || (t.plen == 0 && !self.tls.contains(&k)) {
            // A handshake (a new connection on the 4-tuple ends the old one), or a bare FIN
            // or ACK of a connection already gone: the plain rules.
            if t.has(Flags::SYN) && t.checksum_ok(buf) {
                self.tls.remove(&k);
            }
            return self.respond(cx, buf, t, action);
        }
        if !t.checksum_ok(buf) {
            return Verdict::Drop(Reason::BadTcpChecksum);
        }
        let mut mss = 536;
        let open = if self.tls.contains(&k) {
            None
        } else {
            if !t.has(Flags::ACK) {
                return Verdict::Drop(Reason::BadFlags);
            }
            let (src, dst) = t.ip.cookie_addrs();
            match self.cookies.check(
                src,
                dst,
                t.sport,
                t.dport,
                t.seq.wrapping_sub(1),
                t.ack.wrapping_sub(1),
                cx.now / 1000,
            ) {
                Some(m) => mss = m,
                None if Cookies::in_window(t.ack.wrapping_sub(1), cx.now / 1000) => {
                    return Verdict::Drop(Reason::Unchecked);
                }
                None => {
                    cx.c.drop(Reason::BadCookie);
                    cx.c.rsts += 1;
                    return self.send(cx, buf, t, Answer::rst(t.ack), 0);
                }
            }
            Some(cfg)
        };
        let seg = Incoming {
            seq: t.seq,
            ack: t.has(Flags::ACK).then_some(t.ack),
            payload: t.payload(buf),
            fin: t.has(Flags::FIN),
            rst: t.has(Flags::RST),
            mss,
        };
        let before = self.tls.stats;
        let outcome = self.tls.on_segment(k, seg, cx.now, open);
        if matches!(outcome, Outcome::Deferred) && cx.first_pass {
            // Past this batch's handshake budget in its first pass: left for the second,
            // which has a budget of its own unless the batch came in full. The worker counts
            // nothing for it yet (`tls_deferred` is the verdict of the second pass).
            cx.deferred = true;
            return Verdict::Drop(Reason::TlsDeferred);
        }
        self.count_tls(cx, before);
        match outcome {
            Outcome::Unknown | Outcome::Freed => Verdict::Drop(Reason::NothingToAnswer),
            Outcome::Deferred => Verdict::Drop(Reason::TlsDeferred),
            Outcome::Full => Verdict::Drop(Reason::TlsFull),
            Outcome::Reset { seq, ack } => {
                cx.c.rsts += 1;
                self.send(
                    cx,
                    buf,
                    t,
                    Answer {
                        seq,
                        ack: Some(ack),
                        flags: Flags::RST,
                        mss: None,
                    },
                    0,
                )
            }
            Outcome::Handled { request, ack } => {
                if request {
                    // Counted apart: what the answer counts (answered, a failure) comes after
                    // the segment's own counts above.
                    let before = self.tls.stats;
                    self.answer_tls(cx, t, action, &k);
                    self.count_tls(cx, before);
                }
                self.emit_tls(cx, buf, t, &k, ack)
            }
        }
    }

    /// Render the redirect (or status) for the decrypted head and hand it to the table.
    fn answer_tls<I: Net>(&mut self, cx: &mut Ctx, t: &Tcp<I>, action: Action, k: &TlsKey) {
        let Some(head) = self.tls.request_head(k) else {
            return;
        };
        let n = head.len().min(OUT);
        let (h, out) = self.scratch.split_at_mut(OUT);
        h[..n].copy_from_slice(&head[..n]);
        let picks = (&mut self.picks[..], &self.conns[..]);
        let bytes: &[u8] = match super::http::answer(cx, t, action, picks, &h[..n], out) {
            Some(super::http::Outcome::Redirect { url, len }) => {
                self.redirects_by_url[url as usize] += 1;
                &out[..len]
            }
            Some(super::http::Outcome::Status(resp)) => resp,
            None => super::http::RESP_400,
        };
        self.tls.answer(k, bytes);
    }

    /// Write the table's next segment for `k` over the frame (or a bare ACK if `ack`).
    fn emit_tls<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        k: &TlsKey,
        ack: bool,
    ) -> Verdict {
        let room = buf
            .len()
            .saturating_sub(super::HEADERS)
            .min(self.scratch.len() - OUT);
        let out = &mut self.scratch[OUT..];
        let mut answer = None;
        self.tls.emit(k, room, 1, ack, cx.now, |s| {
            out[..s.payload.len()].copy_from_slice(s.payload);
            answer = Some((
                Answer {
                    seq: s.seq,
                    ack: Some(s.ack),
                    flags: flags_of(&s),
                    mss: None,
                },
                s.payload.len(),
            ));
        });
        match answer {
            Some((a, len)) => self.send(cx, buf, t, a, len),
            None => Verdict::Drop(Reason::NothingToAnswer),
        }
    }

    /// Add what the table counted during one call to the worker's counters.
    fn count_tls(&self, cx: &mut Ctx, before: detour_tls::Stats) {
        let s = &self.tls.stats;
        let c = &mut *cx.c;
        c.tls_handshakes += s.handshakes - before.handshakes;
        c.tls_resumed += s.resumed - before.resumed;
        c.tls_answered += s.answered - before.answered;
        c.tls_failures += (s.tls_failures + s.oversized + s.closed_early)
            - (before.tls_failures + before.oversized + before.closed_early);
        c.tls_evicted += s.evicted - before.evicted;
    }
}
