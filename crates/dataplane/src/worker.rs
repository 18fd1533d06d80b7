//! The worker: one frame in, a verdict out, the frame rewritten in place or replaced by a
//! reply. This file classifies and dispatches; each capability is a module of its own:
//! [`crate::nat`] (DIP NAT both ways, ICMP errors), [`crate::responder`] (the redirect
//! responder), [`crate::local`] (ARP and echo for the director's own addresses), all over one
//! [`crate::egress`].

use crate::counters::{Counters, RealCounters, Reason};
use crate::egress::{Egress, Originate, Verdict};
use crate::frame::{Ctx, Ip, Tcp};
use crate::nat::{Family, Nat, Ports};
use crate::responder::Responder;
use crate::wire::{ethernet, ethertype, icmpv4, proto, udp};
use crate::{local, Port, SERVER};
use detour_config::{Action, Carry, Snapshot};
use std::net::Ipv4Addr;
use std::sync::Arc;

mod v6;

/// How often the run loop should call [`Worker::tick`] (ms): the granularity of the TLS
/// retransmission timeout (400 ms at first).
pub const TICK_MS: u64 = 10;

/// SYN-ACKs a worker sends per batch, by default, when the batch came in full (it is behind:
/// the receive ring may hold more): the rest of that batch's SYNs are dropped
/// ([`Reason::SynDeferred`]) after every other frame of the batch was handled. A batch that is
/// not full answers them all. [`Worker::set_syn_budget`] changes it.
pub const SYN_ACKS_PER_FULL_BATCH: usize = 16;

/// What the runtime tells a worker about where it runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The director's MAC on each port ([`crate::CLIENT`], [`SERVER`]).
    pub macs: [[u8; 6]; 2],
    /// The SYN-cookie secret when the snapshot sets none: one per director (every worker gets
    /// the same, or an ACK landing on another queue than its SYN is refused), from the
    /// kernel's random source.
    pub cookie_secret: [u8; 32],
    /// The key of the tables' hash (SipHash-1-3), drawn at each start from the kernel's
    /// random source, so that nobody outside can aim keys at one set.
    pub table_key: [u8; 16],
    /// One interface serves both sides: a real's replies arrive on the port frames from
    /// clients do, so they are translated whatever the port. Otherwise they are translated
    /// only when they arrive on [`SERVER`].
    pub one_armed: bool,
    /// Addresses of the director's own kernel (traffic to them is passed, never forwarded).
    pub kernel_addrs: Vec<Ipv4Addr>,
}

/// One worker's state: the snapshot it reads, its capabilities' state and its counters.
pub struct Worker {
    snap: Arc<Snapshot>,
    default_secret: [u8; 32],
    one_armed: bool,
    /// The kernel's addresses, sorted.
    kernel: Vec<u32>,
    c: Counters,
    egress: Egress,
    nat: Nat,
    responder: Responder,
    /// SYN-ACKs a full batch may send ([`SYN_ACKS_PER_FULL_BATCH`]; `usize::MAX`: no bound),
    /// and those left to the current batch.
    syn_budget_per_batch: usize,
    syn_budget: usize,
    /// The second pass of this batch got its handshake budget.
    second_budget: bool,
}

impl Worker {
    pub fn new(cfg: WorkerConfig, snap: Arc<Snapshot>) -> Worker {
        let secret = snap.cookie_secret.unwrap_or(cfg.cookie_secret);
        let mut kernel: Vec<u32> = cfg.kernel_addrs.iter().map(|&a| u32::from(a)).collect();
        kernel.sort_unstable();
        let mut w = Worker {
            snap: snap.clone(),
            default_secret: cfg.cookie_secret,
            one_armed: cfg.one_armed,
            kernel,
            c: Counters::default(),
            egress: Egress::new(cfg.macs),
            nat: Nat::new(cfg.table_key),
            responder: Responder::new(secret, cfg.table_key),
            syn_budget_per_batch: SYN_ACKS_PER_FULL_BATCH,
            syn_budget: SYN_ACKS_PER_FULL_BATCH,
            second_budget: false,
        };
        w.install_with(snap, None);
        w
    }

    /// Switch to a new snapshot (between batches). Allocates per-virtual state; never per frame.
    /// A new cookie secret takes over at the next frame, whose time starts the previous
    /// secret's grace window.
    pub fn install(&mut self, snap: Arc<Snapshot>) {
        self.install_with(snap, None)
    }

    /// As [`Worker::install`], with the time (ms) that starts a cookie-secret grace window.
    pub fn install_at(&mut self, snap: Arc<Snapshot>, now_ms: u64) {
        self.install_with(snap, Some(now_ms))
    }

    fn install_with(&mut self, snap: Arc<Snapshot>, now_ms: Option<u64>) {
        let secret = snap.cookie_secret.unwrap_or(self.default_secret);
        // Counters follow their objects by the indices the control plane computed; only a
        // worker that missed a snapshot (its inbox overflowed) computes them itself.
        let own;
        let carry = if snap.carry.leads_from(&self.snap, &snap) {
            &snap.carry
        } else {
            own = Carry::between(&self.snap, &snap);
            &own
        };
        self.responder.install(&snap, carry, secret, now_ms);
        self.nat.install(carry);
        self.snap = snap;
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    pub fn counters(&self) -> &Counters {
        &self.c
    }

    /// Traffic per real of the current snapshot (index as in `Snapshot::reals`).
    pub fn real_counters(&self) -> &[RealCounters] {
        &self.nat.reals
    }

    /// Redirects sent per URL of the current snapshot (index as in `Snapshot::urls`).
    pub fn redirects_by_url(&self) -> &[u64] {
        &self.responder.redirects_by_url
    }

    /// Live entries and capacity of the split-head table and the backup-flow table
    /// (walks both tables: for statistics, not for the hot path).
    pub fn occupancy(&self, now_ms: u64) -> [(usize, usize); 2] {
        [
            self.responder.occupancy(now_ms).0,
            self.nat.occupancy(now_ms).0,
        ]
    }

    /// The most ways one client holds in one set of the split-head table and of the
    /// backup-flow table (at most [`crate::HEAD_PER_PEER`] and [`crate::BACKUP_FLOW_PER_PEER`]; walks both
    /// tables: for tests and statistics).
    pub fn most_per_client(&self, now_ms: u64) -> [usize; 2] {
        [
            self.responder.occupancy(now_ms).1,
            self.nat.occupancy(now_ms).1,
        ]
    }

    /// Active connections per real (index as in `Snapshot::reals`), for least connections.
    pub fn set_conns(&mut self, conns: &[u32]) {
        let mine = &mut self.responder.conns;
        let n = mine.len().min(conns.len());
        mine[..n].copy_from_slice(&conns[..n]);
    }

    /// A new batch of frames begins: its budget of TLS handshakes (`tls-handshakes-per-batch`)
    /// and of SYN-ACKs if it is full ([`SYN_ACKS_PER_FULL_BATCH`]).
    #[inline]
    pub fn begin_batch(&mut self) {
        self.responder.tls_batch(self.handshakes_per_batch());
        self.syn_budget = self.syn_budget_per_batch;
        self.second_budget = false;
    }

    /// `tls-handshakes-per-batch`, or its default.
    fn handshakes_per_batch(&self) -> u32 {
        let n = self.snap.settings.tls_handshakes_per_batch;
        n.unwrap_or(detour_config::tls::DEFAULT_TLS_HANDSHAKES_PER_BATCH)
    }

    /// SYN-ACKs a full batch may send from the next batch on (`None`: no bound, every SYN
    /// is answered, after the rest of its batch).
    pub fn set_syn_budget(&mut self, per_full_batch: Option<usize>) {
        self.syn_budget_per_batch = per_full_batch.unwrap_or(usize::MAX);
    }

    /// The worker's timers. Call it every [`TICK_MS`] or so from the run loop, whether frames
    /// arrive or not, between batches: TLS flights not acknowledged in time are sent again and
    /// connections past their retries or lifetime are reset and freed, with frames taken from
    /// `out`. O(1) while no timer is due; allocates nothing; makes no syscall (the runtime
    /// kicks its transmit rings once after it).
    pub fn tick(&mut self, now_ms: u64, out: &mut impl Originate) {
        self.responder
            .tls_tick(&mut self.c, &self.egress, now_ms, out);
    }

    /// Process one frame received on `port`: the frame is `buf[..len]`; `buf` beyond `len` is
    /// room for a longer reply. `now_ms` is wall-clock milliseconds (directors sharing a cookie
    /// secret must agree on it within a few seconds). Every frame is answered here, SYNs too:
    /// a runtime that handles a batch in two passes calls [`Worker::process_first`] instead.
    pub fn process(&mut self, buf: &mut [u8], len: usize, port: Port, now_ms: u64) -> Verdict {
        self.c.rx += 1;
        self.run(buf, len, port, now_ms, Pass::Only)
            .unwrap_or(Verdict::Drop(Reason::NothingToAnswer))
    }

    /// The first pass over a batch: as [`Worker::process`], except that a SYN without ACK to
    /// the responder (a new connection; all of a SYN flood), and a ClientHello past the
    /// batch's handshake budget, is neither answered nor changed nor counted beyond `rx`:
    /// `None`. The runtime keeps such frames (their indices in a
    /// fixed array) and hands them to [`Worker::process_deferred`] once every other frame of
    /// the batch was handled, so segments of open connections, DIP traffic and the rest go
    /// first, and a worker that is behind bounds its SYN-ACKs.
    pub fn process_first(
        &mut self,
        buf: &mut [u8],
        len: usize,
        port: Port,
        now_ms: u64,
    ) -> Option<Verdict> {
        self.c.rx += 1;
        self.run(buf, len, port, now_ms, Pass::First)
    }

    /// The second pass: a frame [`Worker::process_first`] left (not counted again in `rx`).
    /// `full`: the batch came in full, i.e. the worker is behind; then only the budget
    /// ([`SYN_ACKS_PER_FULL_BATCH`] unless [`Worker::set_syn_budget`] changed it) of its SYNs
    /// are answered in the batch (since [`Worker::begin_batch`]) and the rest are dropped as
    /// [`Reason::SynDeferred`], and its ClientHellos get no new handshake budget
    /// ([`Reason::TlsDeferred`]). A batch that is not full answers every SYN and gets one more
    /// `tls-handshakes-per-batch` for its ClientHellos.
    pub fn process_deferred(
        &mut self,
        buf: &mut [u8],
        len: usize,
        port: Port,
        now_ms: u64,
        full: bool,
    ) -> Verdict {
        if !full && !self.second_budget {
            // Not behind: the ClientHellos the first pass left get one more budget (so a
            // batch that is not full makes up to twice `tls-handshakes-per-batch`, a full
            // one only once: what DIP frames wait behind stays bounded under a flood).
            self.second_budget = true;
            self.responder.tls_batch(self.handshakes_per_batch());
        }
        self.run(buf, len, port, now_ms, Pass::Second { full })
            .unwrap_or(Verdict::Drop(Reason::NothingToAnswer))
    }

    /// Classify and handle one frame, counting its verdict; `None` (nothing counted) when, in
    /// the first pass, it is left for the second.
    #[inline]
    fn run(
        &mut self,
        buf: &mut [u8],
        len: usize,
        port: Port,
        now_ms: u64,
        pass: Pass,
    ) -> Option<Verdict> {
        self.responder.take_pending(now_ms);
        let len = len.min(buf.len());
        let mut cx = Ctx {
            snap: &self.snap,
            c: &mut self.c,
            eg: &self.egress,
            port,
            now: now_ms,
            first_pass: pass == Pass::First,
            deferred: false,
            second_full: pass == Pass::Second { full: true },
            syn_budget: &mut self.syn_budget,
        };
        let mut d = Dispatch {
            nat: &mut self.nat,
            responder: &mut self.responder,
            kernel: &self.kernel,
            one_armed: self.one_armed,
        };
        let v = d.frame(&mut cx, buf, len);
        if cx.deferred {
            return None;
        }
        match v {
            Verdict::Tx { .. } => self.c.tx += 1,
            Verdict::Pass => self.c.pass += 1,
            Verdict::Drop(r) => self.c.drop(r),
        }
        Some(v)
    }
}

/// Which pass over a batch a frame is in ([`Worker::process`]: the only one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Only,
    First,
    Second { full: bool },
}

/// The classifier: which capability a frame is for.
struct Dispatch<'a> {
    nat: &'a mut Nat,
    responder: &'a mut Responder,
    kernel: &'a [u32],
    one_armed: bool,
}

impl Dispatch<'_> {
    #[inline]
    fn frame(&mut self, cx: &mut Ctx, buf: &mut [u8], len: usize) -> Verdict {
        let Ok(eth) = ethernet::Frame::new_checked(&buf[..len]) else {
            return Verdict::Drop(Reason::Runt);
        };
        match eth.ethertype() {
            ethertype::IPV4 => match Ip::parse(&buf[..len]) {
                Ok(ip) => self.ipv4(cx, buf, &ip),
                Err(why) => Verdict::Drop(why),
            },
            ethertype::ARP => local::arp(cx, buf, len),
            ethertype::IPV6 => self.ipv6_frame(cx, buf, len),
            _ => Verdict::Pass,
        }
    }

    #[inline]
    fn kernel_owns(&self, a: Ipv4Addr) -> bool {
        self.kernel.binary_search(&u32::from(a)).is_ok()
    }

    #[inline]
    fn ipv4(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
        if cx.snap.owns(ip.dst) {
            if !ip.header_ok(buf) {
                return Verdict::Drop(Reason::BadIpv4);
            }
            if ip.frag {
                return Verdict::Drop(Reason::Fragment);
            }
            if self.martian(cx.snap, ip.src) {
                return Verdict::Drop(Reason::Martian);
            }
            return match ip.proto {
                proto::TCP => self.tcp_to_owned(cx, buf, ip),
                proto::UDP => self.udp_to_owned(cx, buf, ip),
                proto::ICMP => self.icmp_to_owned(cx, buf, ip),
                _ => Verdict::Drop(Reason::NoService),
            };
        }
        if self.kernel_owns(ip.dst) {
            return Verdict::Pass;
        }
        if cx.port != SERVER && !self.one_armed {
            // Replies of reals come from the server side only: one from a real's address on
            // the client side is spoofed (or looped) and never translated.
            return if cx.snap.is_real_ip(ip.src) {
                Verdict::Drop(Reason::WrongSide)
            } else {
                Verdict::Pass
            };
        }
        match ip.proto {
            proto::TCP | proto::UDP => self.nat.reply_of_real(cx, buf, ip),
            proto::ICMP => self.nat.icmp_from_real(cx, buf, ip),
            _ => Verdict::Pass,
        }
    }

    /// A source no host may send from (RFC 1122 3.2.1.3, RFC 5735), or the director's own:
    /// never answered nor forwarded (Linux drops these as martians before TCP sees them).
    #[inline]
    fn martian(&self, snap: &Snapshot, src: Ipv4Addr) -> bool {
        let first = src.octets()[0];
        // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 (255.255.255.255 too).
        first == 0 || first == 127 || first >= 224 || snap.owns(src) || self.kernel_owns(src)
    }

    /// Client -> VIP or DIP over TCP, either family: the responder, or the NAT.
    #[inline]
    fn tcp_to_owned<I: Family>(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &I) -> Verdict {
        let t = match Tcp::parse(buf, ip) {
            Ok(t) => t,
            Err(why) => return Verdict::Drop(why),
        };
        if let Some(v) = I::virtual_at(cx.snap, ip.dst(), t.dport) {
            let ve = &cx.snap.virtuals[v as usize];
            let action = ve.action;
            if ve.tls {
                // Certificates are loaded with the snapshot; without them, no service.
                let Some(cfg) = cx.snap.tls.clone() else {
                    return self.responder.refuse(cx, buf, &t);
                };
                return self.responder.respond_tls(cx, buf, &t, action, &cfg);
            }
            return self.responder.respond(cx, buf, &t, action);
        }
        let Some(r) = I::dip_at(cx.snap, ip.dst(), t.dport) else {
            return self.responder.refuse(cx, buf, &t);
        };
        match cx.snap.reals[r as usize].action {
            Action::Forward(to) => {
                let p = Ports {
                    sport: t.sport,
                    dport: t.dport,
                    flags: Some(t.flags),
                };
                self.nat.forward(cx, buf, ip, p, (r, to))
            }
            a => self.responder.respond(cx, buf, &t, a),
        }
    }

    /// Client -> DIP over UDP, either family: forwarded when the DIP's traffic goes to a real.
    fn udp_to_owned<I: Family>(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &I) -> Verdict {
        let Ok(u) = udp::Packet::new_checked(ip.l4(buf)) else {
            return Verdict::Drop(Reason::BadUdp);
        };
        let p = Ports {
            sport: u.src_port(),
            dport: u.dst_port(),
            flags: None,
        };
        let Some(r) = I::dip_at(cx.snap, ip.dst(), p.dport) else {
            return Verdict::Drop(Reason::NoService);
        };
        match cx.snap.reals[r as usize].action {
            Action::Forward(to) => self.nat.forward(cx, buf, ip, p, (r, to)),
            _ => Verdict::Drop(Reason::NoService),
        }
    }

    /// ICMP to an owned address: echo is answered, errors about a DIP's traffic translated.
    fn icmp_to_owned(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
        let Ok(m) = icmpv4::Packet::new_checked(ip.l4(buf)) else {
            return Verdict::Drop(Reason::BadIcmp);
        };
        // Answered or translated with a fresh checksum: a corrupt message must not get one.
        if !m.verify_checksum() {
            return Verdict::Drop(Reason::BadIcmp);
        }
        use icmpv4::kind::*;
        match m.msg_type() {
            ECHO_REQUEST => local::echo(cx, buf, ip),
            DST_UNREACHABLE | TIME_EXCEEDED | PARAM_PROBLEM => self.nat.icmp_to_dip(cx, buf, ip),
            _ => Verdict::Drop(Reason::BadIcmp),
        }
    }
}
