//! The redirect responder over TLS 1.3, for a `tls` virtual: the TCP handshake stays the
//! stateless SYN-cookie one; the first data segment whose cookie checks opens an entry of the
//! worker's [`detour_tls::Table`], which holds the connection for its two round trips. The
//! decrypted request head gets exactly the bytes the plain responder would send (the same
//! [`super::http::answer`]), encrypted, then close_notify and FIN. Each incoming segment is
//! answered with at most one segment written over its frame, so the server's flight is
//! clocked by the client's ACKs, and a client's retransmission makes the table resend.
//!
//! Floods: at most [`HANDSHAKES_PER_BATCH`] new server flights (signatures) per batch; a
//! ClientHello past it is dropped unacknowledged (`tls_deferred`) and comes back with the
//! client's retransmission. Entries are freed when the FIN is acknowledged, by the table's
//! bounds, or [`detour_tls::Limits::lifetime_ms`] after they opened (swept every
//! [`EXPIRE_EVERY_MS`]). Connections allocate when they open; nothing else here does.

use super::{key, Answer, Responder, OUT};
use crate::cookie::Cookies;
use crate::egress::Verdict;
use crate::frame::{Ctx, Tcp};
use crate::wire::tcp::Flags;
use crate::Reason;
use detour_config::Action;
use detour_tls::{Incoming, Outcome, TlsConfig};

/// New server flights (each one signature, 0.1-0.3 ms with ECDSA P-256 here) per batch.
pub const HANDSHAKES_PER_BATCH: u32 = 1;
/// How often entries past their lifetime are swept.
pub const EXPIRE_EVERY_MS: u64 = 250;

impl Responder {
    /// A new batch: its handshake budget.
    #[inline]
    pub(crate) fn tls_batch(&mut self) {
        self.tls.begin_batch(HANDSHAKES_PER_BATCH);
    }

    /// Answer a segment to a `tls` virtual (the SYN as the plain responder does).
    pub(crate) fn respond_tls(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp,
        action: Action,
        cfg: &TlsConfig,
    ) -> Verdict {
        if cx.now >= self.tls_sweep_at {
            self.tls.expire(cx.now);
            self.tls_sweep_at = cx.now + EXPIRE_EVERY_MS;
        }
        let k = key(t);
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
            match self.cookies.check(
                t.ip.src.octets(),
                t.ip.dst.octets(),
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
                    self.answer_tls(cx, t, action, &k);
                }
                self.emit_tls(cx, buf, t, &k, ack)
            }
        }
    }

    /// Render the redirect (or status) for the decrypted head and hand it to the table.
    fn answer_tls(&mut self, cx: &mut Ctx, t: &Tcp, action: Action, k: &crate::table::Key) {
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
    fn emit_tls(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp,
        k: &crate::table::Key,
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
            let mut flags = Flags::ACK;
            if !s.payload.is_empty() {
                flags = Flags(flags.0 | Flags::PSH.0);
            }
            if s.fin {
                flags = Flags(flags.0 | Flags::FIN.0);
            }
            answer = Some((
                Answer {
                    seq: s.seq,
                    ack: Some(s.ack),
                    flags,
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
