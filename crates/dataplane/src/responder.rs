//! The stateless redirect responder for a primary VIP:port (and for a DIP whose real is down
//! and whose backup redirects): SYN -> SYN-ACK with a SYN cookie (RFC 4987); the ACK carrying
//! the request head with a valid cookie -> one segment with the redirect (or an error status)
//! and FIN; FIN -> ACK. A head split over several segments is kept in a small bounded table
//! until it is complete. Every answer is a [`TcpReply`] written over the frame and sent back
//! through the egress.
//!
//! What Linux's listener drops is dropped here too and counted: bad checksums, SYN with FIN
//! or RST, segments with none of SYN, ACK and RST.

use crate::cookie::Cookies;
use crate::egress::Verdict;
use crate::frame::{Ctx, Net, Tcp, OWN_TTL};
use crate::table::{Inserted, Key, Table};
use crate::wire::{ethernet, ipv6, tcp, tcp::Flags, TcpReply};
use crate::Reason;
use detour_config::predictor::PickState;
use detour_config::{Action, Carry, Snapshot};
use std::net::Ipv6Addr;

mod http;
mod tls;

pub use http::MAX_HEAD;

/// Marks the SYN-ACK's MSS option; the value sent is the family's ([`Net::OWN_MSS`]).
const OWN_MSS: u16 = 0;
/// Request heads being collected at once per worker.
pub const HEAD_SLOTS: usize = 1024;
/// A split head not completed within this time is forgotten.
pub const HEAD_TTL_MS: u64 = 5_000;
/// Ways of one set of the split-head table one client address may hold.
pub const HEAD_PER_PEER: usize = 2;
/// How long a previous cookie secret is still accepted after a change.
pub const COOKIE_GRACE_SECS: u64 = 128;
/// Where the response is built in the scratch buffer.
const OUT: usize = MAX_HEAD;
/// The headers before a response's payload in a frame: Ethernet, IPv4 (no options), TCP.
/// The largest headers a reply carries (Ethernet, IPv6, TCP): room left for the response.
const HEADERS: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp::HEADER_LEN;

/// A request head being collected over several segments.
#[derive(Clone)]
struct Head {
    /// The ACK number of the connection's segments (our cookie + 1): a segment of another
    /// connection on the same 4-tuple carries another one.
    ack: u32,
    mss: u16,
    next_seq: u32,
    len: usize,
    bytes: Box<[u8; MAX_HEAD]>,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            ack: 0,
            mss: 536,
            next_seq: 0,
            len: 0,
            bytes: Box::new([0; MAX_HEAD]),
        }
    }
}

/// The TCP fields that differ between the responder's answers.
#[derive(Clone, Copy)]
struct Answer {
    seq: u32,
    ack: Option<u32>,
    flags: Flags,
    mss: Option<u16>,
}

impl Answer {
    /// RST for a segment with an ACK (RFC 9293 3.10.7.1: seq is its ACK number).
    fn rst(seq: u32) -> Answer {
        Answer {
            seq,
            ack: None,
            flags: Flags::RST,
            mss: None,
        }
    }

    /// RST for a segment without an ACK: seq 0, acknowledging it.
    fn rst_ack(ack: u32) -> Answer {
        Answer {
            seq: 0,
            ack: Some(ack),
            flags: Flags::RST,
            mss: None,
        }
    }

    fn ack(seq: u32, ack: u32) -> Answer {
        Answer {
            seq,
            ack: Some(ack),
            flags: Flags::ACK,
            mss: None,
        }
    }

    fn syn_ack(cookie: u32, ack: u32) -> Answer {
        Answer {
            seq: cookie,
            ack: Some(ack),
            flags: Flags::SYN_ACK,
            mss: Some(OWN_MSS),
        }
    }

    /// The response segment: data, PSH and FIN.
    fn fin(seq: u32, ack: u32) -> Answer {
        Answer {
            seq,
            ack: Some(ack),
            flags: Flags::FIN_PSH_ACK,
            mss: None,
        }
    }
}

/// The responder's state: cookies, predictors, the split-head table, a scratch buffer.
pub(crate) struct Responder {
    pub cookies: Cookies,
    /// The secret cookies are made with.
    pub secret: [u8; 32],
    /// A secret installed without a clock: the rotation (and its grace window) starts at the
    /// next frame's time.
    pub pending_secret: Option<[u8; 32]>,
    picks: Vec<PickState>,
    /// Active connections per real, fed by the control thread (least connections).
    pub conns: Vec<u32>,
    pub redirects_by_url: Vec<u64>,
    heads: Table<Head>,
    /// `[..OUT]`: the request head being parsed; `[OUT..]`: the response being built.
    scratch: Box<[u8; 2 * MAX_HEAD]>,
    /// Connections of `tls` virtuals past their first data segment (see [`tls`]).
    tls: detour_tls::Table<tls::TlsKey>,
    /// Whether `tls` has its configured size (`tls-connections` applies at the start).
    tls_sized: bool,
}

impl Responder {
    pub(crate) fn new(secret: [u8; 32], table_key: [u8; 16]) -> Responder {
        Responder {
            cookies: Cookies::new(&secret),
            secret,
            pending_secret: None,
            picks: Vec::new(),
            conns: Vec::new(),
            redirects_by_url: Vec::new(),
            heads: Table::new(HEAD_SLOTS, HEAD_TTL_MS, HEAD_PER_PEER, table_key),
            scratch: Box::new([0; 2 * MAX_HEAD]),
            tls: detour_tls::Table::new(detour_tls::Limits::default()),
            tls_sized: false,
        }
    }

    /// Follow a new snapshot: predictors restart, per-URL counters follow the carry,
    /// a new cookie secret rotates in (at `now_ms`, or at the next frame's time), and the
    /// snapshot's accepted-only secret (the next one of a rolling change) is accepted.
    pub(crate) fn install(
        &mut self,
        snap: &Snapshot,
        carry: &Carry,
        secret: [u8; 32],
        now_ms: Option<u64>,
    ) {
        self.picks = snap
            .virtuals
            .iter()
            .map(|v| PickState::new(&v.rotation))
            .collect();
        self.conns.resize(snap.reals.len(), 0);
        if !self.tls_sized && snap.virtuals.iter().any(|v| v.tls) {
            let capacity = snap
                .settings
                .tls_connections
                .unwrap_or(detour_config::tls::DEFAULT_TLS_CONNECTIONS)
                as usize;
            self.tls = detour_tls::Table::new(detour_tls::Limits {
                capacity,
                ..detour_tls::Limits::default()
            });
            self.tls_sized = true;
        }
        self.redirects_by_url = Carry::apply(&carry.urls, &self.redirects_by_url);
        // `self.secret` is the secret cookies are made with; a pending one never made any.
        self.pending_secret = None;
        if secret != self.secret {
            match now_ms {
                Some(now) => self.rotate(secret, now),
                None => self.pending_secret = Some(secret),
            }
        }
        self.cookies
            .accept_also(snap.settings.cookie_accept.as_ref());
    }

    /// Start using a pending secret, at the first frame after it was installed (one branch
    /// per frame otherwise).
    #[inline]
    pub(crate) fn take_pending(&mut self, now_ms: u64) {
        if self.pending_secret.is_some() {
            self.rotate_pending(now_ms);
        }
    }

    #[cold]
    fn rotate_pending(&mut self, now_ms: u64) {
        if let Some(secret) = self.pending_secret.take() {
            self.rotate(secret, now_ms);
        }
    }

    fn rotate(&mut self, secret: [u8; 32], now_ms: u64) {
        self.cookies
            .rotate(&secret, now_ms / 1000, COOKIE_GRACE_SECS);
        self.secret = secret;
    }

    /// Live entries and capacity; the most ways one client holds in a set.
    pub(crate) fn occupancy(&self, now: u64) -> ((usize, usize), usize) {
        (
            (self.heads.len(now), self.heads.capacity()),
            self.heads.most_per_peer(now),
        )
    }

    /// A segment to an owned address on a port with no service: refuse it as a host would
    /// (RFC 9293 3.10.7.1), so the client is told at once instead of timing out.
    pub(crate) fn refuse<I: Net>(&mut self, cx: &mut Ctx, buf: &mut [u8], t: &Tcp<I>) -> Verdict {
        if let Some(v) = cx.hold_syn(t) {
            return v;
        }
        if !t.checksum_ok(buf) {
            return Verdict::Drop(Reason::BadTcpChecksum);
        }
        if t.has(Flags::RST) {
            return Verdict::Drop(Reason::NoService);
        }
        cx.c.refused += 1;
        if t.has(Flags::ACK) {
            self.send(cx, buf, t, Answer::rst(t.ack), 0)
        } else {
            let len = t.plen as u32 + u32::from(t.has(Flags::SYN)) + u32::from(t.has(Flags::FIN));
            self.send(cx, buf, t, Answer::rst_ack(t.seq.wrapping_add(len)), 0)
        }
    }

    /// Answer a TCP segment to `t.ip.dst:t.dport` as the responder, for `action`.
    #[inline]
    pub(crate) fn respond<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        action: Action,
    ) -> Verdict {
        if let Some(v) = cx.hold_syn(t) {
            // Left for the batch's second pass (the worker does not count that verdict), or
            // past a full batch's SYN budget.
            return v;
        }
        if !t.checksum_ok(buf) {
            return Verdict::Drop(Reason::BadTcpChecksum);
        }
        let (syn, fin, rst, ack) = (
            t.has(Flags::SYN),
            t.has(Flags::FIN),
            t.has(Flags::RST),
            t.has(Flags::ACK),
        );
        // What Linux's listener drops (tcp_rcv_state_process, LISTEN, and tcp_validate_incoming
        // for the cookie's connection): SYN with FIN or RST; none of SYN, ACK and RST.
        if (syn && (fin || rst)) || !(syn || ack || rst) {
            return Verdict::Drop(Reason::BadFlags);
        }
        if (rst || syn) && !self.heads.is_unused() {
            // The end of a connection, or a new one on this 4-tuple: forget any head kept.
            // (The key, 36 bytes, is built only when some head may be kept.)
            self.heads.remove(&key(t));
        }
        if rst {
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        if syn {
            return self.on_syn(cx, buf, t, action);
        }
        if !ack {
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        if t.plen == 0 {
            if fin {
                self.heads.remove(&key(t));
                cx.c.fin_acks += 1;
                return self.send(cx, buf, t, Answer::ack(t.ack, t.seq.wrapping_add(1)), 0);
            }
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        self.on_data(cx, buf, t, action)
    }

    #[inline]
    fn on_syn<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        action: Action,
    ) -> Verdict {
        if t.has(Flags::ACK) {
            return self.send(cx, buf, t, Answer::rst(t.ack), 0);
        }
        if action == Action::Refuse {
            cx.c.rsts += 1;
            let ack = t.seq.wrapping_add(1).wrapping_add(t.plen as u32);
            return self.send(cx, buf, t, Answer::rst_ack(ack), 0);
        }
        let (src, dst) = t.ip.cookie_addrs();
        let cookie = self
            .cookies
            .make(src, dst, t.sport, t.dport, t.seq, t.mss, cx.now / 1000);
        cx.c.syn_acks += 1;
        self.send(
            cx,
            buf,
            t,
            Answer::syn_ack(cookie, t.seq.wrapping_add(1)),
            0,
        )
    }

    /// A segment with data: the first of a head (the cookie must check), or the next one of
    /// a head being collected.
    #[inline]
    fn on_data<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        action: Action,
    ) -> Verdict {
        let plen = t.plen;
        let ack_to = t
            .seq
            .wrapping_add(plen as u32)
            .wrapping_add(u32::from(t.has(Flags::FIN)));
        let key = key(t);
        if let Some(h) = self.heads.get_mut(&key, cx.now).filter(|h| h.ack == t.ack) {
            if t.seq != h.next_seq {
                // Entirely before what we have: a retransmission; repeat the ACK.
                let behind = h.next_seq.wrapping_sub(t.seq);
                if (behind as usize) >= plen && behind < (1 << 30) {
                    let next = h.next_seq;
                    return self.send(cx, buf, t, Answer::ack(t.ack, next), 0);
                }
                return Verdict::Drop(Reason::OutOfOrder);
            }
            let mss = h.mss;
            if h.len + plen > MAX_HEAD {
                self.heads.remove(&key);
                cx.c.too_large += 1;
                return self.status(cx, buf, t, ack_to, http::RESP_431);
            }
            h.bytes[h.len..h.len + plen].copy_from_slice(t.payload(buf));
            h.len += plen;
            h.next_seq = t.seq.wrapping_add(plen as u32);
            let n = h.len;
            self.scratch[..n].copy_from_slice(&h.bytes[..n]);
            return match self.finish_head(cx, buf, t, action, (n, ack_to, mss)) {
                Some(v) => {
                    self.heads.remove(&key);
                    v
                }
                None => self.send(cx, buf, t, Answer::ack(t.ack, ack_to), 0),
            };
        }
        // The first data segment: the cookie must check.
        let (src, dst) = t.ip.cookie_addrs();
        let Some(mss) = self.cookies.check(
            src,
            dst,
            t.sport,
            t.dport,
            t.seq.wrapping_sub(1),
            t.ack.wrapping_sub(1),
            cx.now / 1000,
        ) else {
            if Cookies::in_window(t.ack.wrapping_sub(1), cx.now / 1000) {
                // Maybe a later segment of a head whose first is lost or late (its seq is not
                // ISN + 1, so the cookie cannot be checked): silence, as a kernel waiting for
                // the first segment; the client's retransmission completes the request.
                return Verdict::Drop(Reason::Unchecked);
            }
            // Stale, forged, or from before a restart whatever the ISN: RST, never a response.
            cx.c.drop(Reason::BadCookie);
            cx.c.rsts += 1;
            return self.send(cx, buf, t, Answer::rst(t.ack), 0);
        };
        if plen > MAX_HEAD {
            cx.c.too_large += 1;
            return self.status(cx, buf, t, ack_to, http::RESP_431);
        }
        self.scratch[..plen].copy_from_slice(t.payload(buf));
        if let Some(v) = self.finish_head(cx, buf, t, action, (plen, ack_to, mss)) {
            return v;
        }
        let (h, how) = self.heads.insert(key, cx.now);
        h.ack = t.ack;
        h.mss = mss;
        h.next_seq = t.seq.wrapping_add(plen as u32);
        h.len = plen;
        h.bytes[..plen].copy_from_slice(t.payload(buf));
        cx.c.heads_kept += 1;
        if how != Inserted::Fresh {
            cx.c.heads_evicted += 1;
        }
        self.send(cx, buf, t, Answer::ack(t.ack, ack_to), 0)
    }

    /// The head collected so far is `scratch[..n]`. Complete (or hopeless): answer it and
    /// return the verdict. Incomplete: `None`.
    fn finish_head<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        action: Action,
        (n, ack_to, mss): (usize, u32, u16),
    ) -> Option<Verdict> {
        let (head, out) = self.scratch.split_at_mut(OUT);
        // One segment: the response must fit the client's MSS and the frame buffer.
        let limit = out
            .len()
            .min(usize::from(mss.max(536)))
            .min(buf.len().saturating_sub(HEADERS));
        let picks = (&mut self.picks[..], &self.conns[..]);
        let outcome = http::answer(cx, t, action, picks, &head[..n], &mut out[..limit])?;
        Some(match outcome {
            http::Outcome::Redirect { url, len } => {
                self.redirects_by_url[url as usize] += 1;
                self.send(cx, buf, t, Answer::fin(t.ack, ack_to), len)
            }
            http::Outcome::Status(resp) => self.status(cx, buf, t, ack_to, resp),
        })
    }

    /// Answer with a fixed status response and FIN.
    fn status<I: Net>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        ack_to: u32,
        resp: &'static [u8],
    ) -> Verdict {
        self.scratch[OUT..OUT + resp.len()].copy_from_slice(resp);
        self.send(cx, buf, t, Answer::fin(t.ack, ack_to), resp.len())
    }

    /// Write `a` (with `scratch[OUT..OUT + payload]` as data) over the frame, back to the
    /// sender of `t` from `t.ip.dst:t.dport`, and send it.
    #[inline]
    fn send<I: Net>(
        &self,
        cx: &Ctx,
        buf: &mut [u8],
        t: &Tcp<I>,
        a: Answer,
        payload: usize,
    ) -> Verdict {
        let Ok(peer) = ethernet::Frame::new_checked(&*buf).map(|f| f.src()) else {
            return Verdict::Drop(Reason::Runt);
        };
        let hop = cx.eg.back(cx.port, peer);
        let reply = TcpReply {
            src_mac: hop.src(),
            dst_mac: hop.dst(),
            ips: t.ip.pair().reversed(),
            hop_limit: OWN_TTL,
            tcp: tcp::Repr {
                src_port: t.dport,
                dst_port: t.sport,
                seq: a.seq,
                ack: a.ack,
                flags: a.flags,
                window: if a.flags.has(Flags::RST) { 0 } else { 65535 },
                mss: a.mss.map(|_| I::OWN_MSS),
            },
            payload: &self.scratch[OUT..OUT + payload],
        };
        match reply.emit(buf) {
            Ok(len) => hop.send(buf, len),
            Err(_) => Verdict::Drop(Reason::NoRoom),
        }
    }
}

/// The split-head table's key: the client first (the table bounds each client's ways).
#[inline]
fn key<I: Net>(t: &Tcp<I>) -> Key {
    let (a_ip, b_ip) = t.ip.hosts();
    Key {
        a_ip,
        a_port: t.sport,
        b_ip,
        b_port: t.dport,
    }
}

/// Pick the URL for a new request answered for `action`.
pub(crate) fn choose(
    snap: &Snapshot,
    picks: &mut [PickState],
    conns: &[u32],
    action: Action,
    client: Ipv6Addr,
) -> Option<u32> {
    let mut a = action;
    // A virtual with nothing eligible falls back once (its fallback is already resolved).
    for _ in 0..2 {
        match a {
            Action::RedirectUrl(u) => return Some(u),
            Action::Redirect(v) => {
                let ve = &snap.virtuals[v as usize];
                let pick = ve.rotation.pick(&mut picks[v as usize], client, |i| {
                    ve.members[i]
                        .real
                        .map_or(0, |r| conns.get(r as usize).copied().unwrap_or(0))
                });
                match pick {
                    Some(i) => return Some(ve.members[i].url),
                    None => a = ve.fallback,
                }
            }
            Action::Forward(_) | Action::Refuse => return None,
        }
    }
    None
}
