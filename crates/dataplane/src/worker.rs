//! The worker: one frame in, a verdict out, the frame rewritten in place or replaced by a
//! reply. This file is the classifier and the dispatcher; each path is a method below.

use crate::cookie::Cookies;
use crate::counters::{Counters, RealCounters, Reason};
use crate::csum;
use crate::table::{Inserted, Key, Table};
use crate::{Port, CLIENT, SERVER};
use detour_config::predictor::PickState;
use detour_config::url::{render_redirect, RenderError, Request};
use detour_config::{Action, Snapshot};
use etherparse::{
    Ethernet2HeaderSlice, Ipv4HeaderSlice, TcpHeaderSlice, TcpOptionElement, UdpHeaderSlice,
};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket,
    TcpSeqNumber,
};
use std::net::Ipv4Addr;
use std::sync::Arc;

const ETH: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// TTL of the segments the responder originates.
const OWN_TTL: u8 = 64;
/// MSS the responder advertises.
const OWN_MSS: u16 = 1460;
/// Longest request head collected over several segments; past it the client gets 431.
pub const MAX_HEAD: usize = 4096;
/// Request heads being collected at once per worker.
pub const HEAD_SLOTS: usize = 1024;
/// A split head not completed within this time is forgotten.
pub const HEAD_TTL_MS: u64 = 5_000;
/// Flows moved to a backup real remembered at once per worker.
pub const BACKUP_FLOW_SLOTS: usize = 65_536;
/// A backup flow idle this long is forgotten.
pub const BACKUP_FLOW_TTL_MS: u64 = 300_000;
/// Ways of one set of the split-head table one client address may hold.
pub const HEAD_PER_PEER: usize = 2;
/// Ways of one set of the backup-flow table one client address may hold.
pub const BACKUP_FLOW_PER_PEER: usize = 4;
/// How long a previous cookie secret is still accepted after a change.
pub const COOKIE_GRACE_SECS: u64 = 128;
/// Most headers in a request head.
const MAX_HEADERS: usize = 32;
/// Where the response is built in the scratch buffer.
const OUT: usize = MAX_HEAD;

/// What the runtime tells a worker about where it runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The director's MAC on each port ([`CLIENT`], [`SERVER`]).
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

/// What to do with a frame after [`Worker::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send `buf[..len]` out of `port`.
    Tx {
        port: Port,
        len: usize,
    },
    Drop(Reason),
    /// Not the director's: hand it to the kernel unchanged.
    Pass,
}

/// The fixed part of a parsed IPv4 frame.
#[derive(Clone, Copy)]
struct Ip {
    ihl: usize,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    end: usize,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    /// A fragment (first or later).
    frag: bool,
    /// A fragment other than the first: no L4 header.
    later_frag: bool,
}

impl Ip {
    fn l4(&self) -> usize {
        ETH + self.ihl
    }
}

#[derive(Clone, Copy)]
struct Tcp {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    syn: bool,
    ackf: bool,
    fin: bool,
    rst: bool,
    /// Payload range in the frame.
    data: usize,
    mss: Option<u16>,
}

/// A request head being collected over several segments.
#[derive(Clone)]
struct Head {
    isn: u32,
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
            isn: 0,
            ack: 0,
            mss: 536,
            next_seq: 0,
            len: 0,
            bytes: Box::new([0; MAX_HEAD]),
        }
    }
}

/// A flow moved to a backup real: what the real's replies must look like to the client.
#[derive(Clone, Copy, Default)]
struct BackupFlow {
    dip: u32,
    dip_port: u16,
}

const RESP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const RESP_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const RESP_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const RESP_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// One worker's state: the snapshot it reads, its tables and counters.
pub struct Worker {
    snap: Arc<Snapshot>,
    st: State,
}

struct State {
    cfg: WorkerConfig,
    kernel: Vec<u32>,
    c: Counters,
    cookies: Cookies,
    secret: [u8; 32],
    /// A secret installed without a clock ([`Worker::install`]): the rotation (and its grace
    /// window) starts at the next frame's time.
    pending_secret: Option<[u8; 32]>,
    picks: Vec<PickState>,
    /// Active connections per real, fed by the control thread (least connections).
    conns: Vec<u32>,
    redirects_by_url: Vec<u64>,
    /// Per real of the current snapshot.
    reals: Vec<RealCounters>,
    heads: Table<Head>,
    flows: Table<BackupFlow>,
    backup_flows: bool,
    /// `[..OUT]`: the request head being parsed; `[OUT..]`: the response being built.
    scratch: Box<[u8; 2 * MAX_HEAD]>,
}

impl Worker {
    pub fn new(cfg: WorkerConfig, snap: Arc<Snapshot>) -> Worker {
        let secret = snap.cookie_secret.unwrap_or(cfg.cookie_secret);
        let mut kernel: Vec<u32> = cfg.kernel_addrs.iter().map(|&a| u32::from(a)).collect();
        kernel.sort_unstable();
        let mut w = Worker {
            st: State {
                kernel,
                c: Counters::default(),
                cookies: Cookies::new(&secret),
                secret,
                pending_secret: None,
                picks: Vec::new(),
                conns: Vec::new(),
                redirects_by_url: Vec::new(),
                reals: Vec::new(),
                heads: Table::new(HEAD_SLOTS, HEAD_TTL_MS, HEAD_PER_PEER, cfg.table_key),
                flows: Table::new(
                    BACKUP_FLOW_SLOTS,
                    BACKUP_FLOW_TTL_MS,
                    BACKUP_FLOW_PER_PEER,
                    cfg.table_key,
                ),
                backup_flows: false,
                scratch: Box::new([0; 2 * MAX_HEAD]),
                cfg,
            },
            snap: snap.clone(),
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
        let st = &mut self.st;
        st.picks = snap
            .virtuals
            .iter()
            .map(|v| PickState::new(&v.rotation))
            .collect();
        st.conns.resize(snap.reals.len(), 0);
        // Counters follow reals and URLs by identity across snapshots (indices may change).
        let old = &self.snap;
        st.redirects_by_url = snap
            .urls
            .iter()
            .map(|u| {
                old.urls
                    .iter()
                    .position(|o| o.id == u.id && o.implicit == u.implicit)
                    .and_then(|i| st.redirects_by_url.get(i).copied())
                    .unwrap_or(0)
            })
            .collect();
        st.reals = snap
            .reals
            .iter()
            .map(|r| {
                old.reals
                    .iter()
                    .position(|o| o.addr == r.addr)
                    .and_then(|i| st.reals.get(i).copied())
                    .unwrap_or_default()
            })
            .collect();
        let secret = snap.cookie_secret.unwrap_or(st.cfg.cookie_secret);
        // `st.secret` is the secret cookies are made with; a pending one never made any.
        st.pending_secret = None;
        if secret != st.secret {
            match now_ms {
                Some(now) => {
                    st.cookies.rotate(&secret, now / 1000, COOKIE_GRACE_SECS);
                    st.secret = secret;
                }
                None => st.pending_secret = Some(secret),
            }
        }
        self.snap = snap;
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    pub fn counters(&self) -> &Counters {
        &self.st.c
    }

    /// Traffic per real of the current snapshot (index as in `Snapshot::reals`).
    pub fn real_counters(&self) -> &[RealCounters] {
        &self.st.reals
    }

    /// Redirects sent per URL of the current snapshot (index as in `Snapshot::urls`).
    pub fn redirects_by_url(&self) -> &[u64] {
        &self.st.redirects_by_url
    }

    /// Live entries and capacity of the split-head table and the backup-flow table
    /// (walks both tables: for statistics, not for the hot path).
    pub fn occupancy(&self, now_ms: u64) -> [(usize, usize); 2] {
        [
            (self.st.heads.len(now_ms), self.st.heads.capacity()),
            (self.st.flows.len(now_ms), self.st.flows.capacity()),
        ]
    }

    /// The most ways one client holds in one set of the split-head table and of the
    /// backup-flow table (at most [`HEAD_PER_PEER`] and [`BACKUP_FLOW_PER_PEER`]; walks both
    /// tables: for tests and statistics).
    pub fn most_per_client(&self, now_ms: u64) -> [usize; 2] {
        [
            self.st.heads.most_per_peer(now_ms),
            self.st.flows.most_per_peer(now_ms),
        ]
    }

    /// Active connections per real (index as in `Snapshot::reals`), for least connections.
    pub fn set_conns(&mut self, conns: &[u32]) {
        let n = self.st.conns.len().min(conns.len());
        self.st.conns[..n].copy_from_slice(&conns[..n]);
    }

    /// Process one frame received on `port`: the frame is `buf[..len]`; `buf` beyond `len` is
    /// room for a longer reply. `now_ms` is wall-clock milliseconds (directors sharing a cookie
    /// secret must agree on it within a few seconds).
    pub fn process(&mut self, buf: &mut [u8], len: usize, port: Port, now_ms: u64) -> Verdict {
        let st = &mut self.st;
        st.c.rx += 1;
        if st.pending_secret.is_some() {
            st.rotate_pending(now_ms);
        }
        let len = len.min(buf.len());
        let v = st.frame(&self.snap, buf, len, port, now_ms);
        match v {
            Verdict::Tx { .. } => st.c.tx += 1,
            Verdict::Pass => st.c.pass += 1,
            Verdict::Drop(r) => st.c.drop(r),
        }
        v
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

impl State {
    fn frame(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        len: usize,
        port: Port,
        now: u64,
    ) -> Verdict {
        let Ok(eth) = Ethernet2HeaderSlice::from_slice(&buf[..len]) else {
            return Verdict::Drop(Reason::Runt);
        };
        match eth.ether_type().0 {
            ETHERTYPE_IPV4 => self.ipv4(snap, buf, len, port, now),
            ETHERTYPE_ARP => self.arp(snap, buf, len, port),
            ETHERTYPE_IPV6 => {
                self.c.ipv6 += 1;
                Verdict::Pass
            }
            _ => Verdict::Pass,
        }
    }

    fn ipv4(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        len: usize,
        port: Port,
        now: u64,
    ) -> Verdict {
        let ip = match Ipv4HeaderSlice::from_slice(&buf[ETH..len]) {
            Ok(h) => {
                let ihl = usize::from(h.ihl()) * 4;
                let total = usize::from(h.total_len());
                if total < ihl || ETH + total > len {
                    return Verdict::Drop(Reason::BadIpv4);
                }
                Ip {
                    ihl,
                    end: ETH + total,
                    proto: h.protocol().0,
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                    ttl: h.ttl(),
                    frag: h.more_fragments() || h.fragments_offset().value() != 0,
                    later_frag: h.fragments_offset().value() != 0,
                }
            }
            Err(_) => return Verdict::Drop(Reason::BadIpv4),
        };
        if snap.owns(ip.dst) {
            if csum::checksum(&buf[ETH..ETH + ip.ihl]) != 0 {
                return Verdict::Drop(Reason::BadIpv4);
            }
            if ip.frag {
                return Verdict::Drop(Reason::Fragment);
            }
            if self.martian(snap, ip.src) {
                return Verdict::Drop(Reason::Martian);
            }
            return match ip.proto {
                PROTO_TCP => self.tcp_to_owned(snap, buf, ip, port, now),
                PROTO_UDP => self.udp_to_owned(snap, buf, ip),
                PROTO_ICMP => self.icmp_to_owned(snap, buf, ip, port),
                _ => Verdict::Drop(Reason::NoService),
            };
        }
        if self.kernel.binary_search(&u32::from(ip.dst)).is_ok() {
            return Verdict::Pass;
        }
        if port != SERVER && !self.cfg.one_armed {
            // Replies of reals come from the server side only: one from a real's address on
            // the client side is spoofed (or looped) and never translated.
            return if snap.is_real_ip(ip.src) {
                Verdict::Drop(Reason::WrongSide)
            } else {
                Verdict::Pass
            };
        }
        match ip.proto {
            PROTO_TCP | PROTO_UDP => self.real_to_client(snap, buf, ip, now),
            PROTO_ICMP => self.icmp_real_to_client(snap, buf, ip, now),
            _ => Verdict::Pass,
        }
    }

    /// A source no host may send from (RFC 1122 3.2.1.3, RFC 5735), or the director's own:
    /// never answered nor forwarded (Linux drops these as martians before TCP sees them).
    #[inline]
    fn martian(&self, snap: &Snapshot, src: Ipv4Addr) -> bool {
        let first = src.octets()[0];
        // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 (255.255.255.255 too).
        first == 0
            || first == 127
            || first >= 224
            || snap.owns(src)
            || self.kernel.binary_search(&u32::from(src)).is_ok()
    }

    /// Whether the TCP checksum of the segment in `buf` (pseudo-header included) is right.
    #[inline]
    fn tcp_checksum_ok(buf: &[u8], ip: &Ip) -> bool {
        let seg = &buf[ip.l4()..ip.end];
        let pseudo = csum::pseudo_v4(
            ip.src.octets(),
            ip.dst.octets(),
            PROTO_TCP,
            seg.len() as u16,
        );
        csum::fold(csum::sum(pseudo, seg)) == 0xffff
    }

    fn parse_tcp(buf: &[u8], ip: &Ip) -> Option<Tcp> {
        let h = TcpHeaderSlice::from_slice(&buf[ip.l4()..ip.end]).ok()?;
        let mut mss = None;
        if h.syn() {
            for o in h.options_iterator() {
                match o {
                    Ok(TcpOptionElement::MaximumSegmentSize(m)) => mss = Some(m),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Some(Tcp {
            sport: h.source_port(),
            dport: h.destination_port(),
            seq: h.sequence_number(),
            ack: h.acknowledgment_number(),
            syn: h.syn(),
            ackf: h.ack(),
            fin: h.fin(),
            rst: h.rst(),
            data: ip.l4() + h.slice().len(),
            mss,
        })
    }

    /// Start using a secret installed without a clock, at the first frame's time.
    #[cold]
    fn rotate_pending(&mut self, now_ms: u64) {
        if let Some(secret) = self.pending_secret.take() {
            self.cookies
                .rotate(&secret, now_ms / 1000, COOKIE_GRACE_SECS);
            self.secret = secret;
        }
    }

    // ---- client -> VIP / DIP -------------------------------------------------------------

    fn tcp_to_owned(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        ip: Ip,
        port: Port,
        now: u64,
    ) -> Verdict {
        let Some(t) = Self::parse_tcp(buf, &ip) else {
            return Verdict::Drop(Reason::BadTcp);
        };
        if let Some(v) = snap.virtual_at(ip.dst, t.dport) {
            return self.respond(
                snap,
                buf,
                ip,
                t,
                snap.virtuals[v as usize].action,
                port,
                now,
            );
        }
        let Some(r) = snap.dip_at(ip.dst, t.dport) else {
            // An owned address on a port with no service: refuse as a host would (RFC 9293
            // 3.10.7.1), so the client is told at once instead of timing out.
            if !Self::tcp_checksum_ok(buf, &ip) {
                return Verdict::Drop(Reason::BadTcpChecksum);
            }
            if t.rst {
                return Verdict::Drop(Reason::NoService);
            }
            self.c.refused += 1;
            let plen = (ip.end - t.data) as u32;
            return if t.ackf {
                self.reply(buf, &ip, &t, port, t.ack, None, Flags::RST, None, 0)
            } else {
                let ack = t
                    .seq
                    .wrapping_add(plen)
                    .wrapping_add(u32::from(t.syn) + u32::from(t.fin));
                self.reply(buf, &ip, &t, port, 0, Some(ack), Flags::RST, None, 0)
            };
        };
        match snap.reals[r as usize].action {
            Action::Forward(to) => self.forward(snap, buf, ip, t.sport, t.dport, r, to, now),
            a => self.respond(snap, buf, ip, t, a, port, now),
        }
    }

    fn udp_to_owned(&mut self, snap: &Snapshot, buf: &mut [u8], ip: Ip) -> Verdict {
        let Ok(h) = UdpHeaderSlice::from_slice(&buf[ip.l4()..ip.end]) else {
            return Verdict::Drop(Reason::BadUdp);
        };
        let (sport, dport) = (h.source_port(), h.destination_port());
        let Some(r) = snap.dip_at(ip.dst, dport) else {
            return Verdict::Drop(Reason::NoService);
        };
        match snap.reals[r as usize].action {
            Action::Forward(to) => self.forward(snap, buf, ip, sport, dport, r, to, 0),
            _ => Verdict::Drop(Reason::NoService),
        }
    }

    /// Client -> DIP:port of real `r`, sent to real `to` (`r` itself, or its backup).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        ip: Ip,
        sport: u16,
        dport: u16,
        r: u32,
        to: u32,
        now: u64,
    ) -> Verdict {
        let real = &snap.reals[to as usize];
        if real.mac == [0; 6] {
            return Verdict::Drop(Reason::NoNeighbour);
        }
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        let rc = &mut self.reals[to as usize];
        if ip.proto == PROTO_TCP {
            // Connection estimate for least connections: SYNs open, FINs and RSTs close.
            let flags = buf[ip.l4() + 13];
            rc.opened += u64::from(flags & 0x12 == 0x02);
            rc.closed += u64::from(flags & 0x05 != 0);
        }
        rc.to_real += 1;
        rc.to_real_bytes += (ip.end - ETH) as u64;
        let (new_ip, new_port) = (*real.addr.ip(), real.addr.port());
        rewrite_l4(buf, &ip, Rewrite::Dst, new_ip, dport, new_port);
        set_macs(buf, real.mac, self.cfg.macs[SERVER.0 as usize]);
        if to != r {
            // Keyed by the client first: the table bounds each client's ways per set.
            let key = Key {
                a_ip: u32::from(ip.src),
                a_port: sport,
                b_ip: u32::from(new_ip),
                b_port: new_port,
            };
            let flow = BackupFlow {
                dip: u32::from(ip.dst),
                dip_port: dport,
            };
            // Only a SYN opens a flow; every other frame only refreshes the flow it belongs to.
            if ip.proto == PROTO_TCP && buf[ip.l4() + 13] & 0x17 == 0x02 {
                let (f, how) = self.flows.insert(key, now);
                *f = flow;
                if how != Inserted::Fresh {
                    self.c.backup_flows_evicted += 1;
                }
                self.backup_flows = true;
            } else if self.backup_flows {
                // Refresh only: the DIP stays the one the SYN went to.
                let _ = self.flows.get_mut(&key, now);
            }
            self.c.to_backup += 1;
        }
        self.c.to_real += 1;
        self.c.to_real_bytes += (ip.end - ETH) as u64;
        Verdict::Tx {
            port: SERVER,
            len: ip.end,
        }
    }

    // ---- real -> client ------------------------------------------------------------------

    fn real_to_client(&mut self, snap: &Snapshot, buf: &mut [u8], ip: Ip, now: u64) -> Verdict {
        if ip.later_frag {
            // No ports to map by: a real's later fragments cannot be translated (and are
            // never read as if they had a header); anyone else's are the kernel's.
            return if snap.is_real_ip(ip.src) {
                Verdict::Drop(Reason::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let l4 = ip.l4();
        let min = if ip.proto == PROTO_TCP { 20 } else { 8 };
        if ip.end < l4 + min {
            return Verdict::Pass;
        }
        let (sport, dport) = (be16(buf, l4), be16(buf, l4 + 2));
        let sender = snap.real_at(ip.src, sport);
        let (dip, dip_port) = match self.backup_flow(ip, sport, dport, now) {
            Some(f) => (Ipv4Addr::from(f.dip), f.dip_port),
            None => {
                let Some(r) = sender else {
                    return Verdict::Pass;
                };
                match snap.reals[r as usize].dip {
                    Some(d) => (*d.ip(), d.port()),
                    None => return Verdict::Pass,
                }
            }
        };
        if csum::checksum(&buf[ETH..l4]) != 0 {
            return Verdict::Drop(Reason::BadIpv4);
        }
        if snap.gateway_mac == [0; 6] {
            return Verdict::Drop(Reason::NoNeighbour);
        }
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if let Some(rc) = sender.and_then(|r| self.reals.get_mut(r as usize)) {
            if ip.proto == PROTO_TCP {
                rc.closed += u64::from(buf[l4 + 13] & 0x04 != 0);
            }
            rc.to_client += 1;
            rc.to_client_bytes += (ip.end - ETH) as u64;
        }
        rewrite_l4(buf, &ip, Rewrite::Src, dip, sport, dip_port);
        set_macs(buf, snap.gateway_mac, self.cfg.macs[CLIENT.0 as usize]);
        self.c.to_client += 1;
        self.c.to_client_bytes += (ip.end - ETH) as u64;
        Verdict::Tx {
            port: CLIENT,
            len: ip.end,
        }
    }

    #[inline]
    fn backup_flow(&mut self, ip: Ip, sport: u16, dport: u16, now: u64) -> Option<BackupFlow> {
        if !self.backup_flows {
            return None;
        }
        // A reply: the client is the destination.
        let key = Key {
            a_ip: u32::from(ip.dst),
            a_port: dport,
            b_ip: u32::from(ip.src),
            b_port: sport,
        };
        self.flows.get_mut(&key, now).copied()
    }

    // ---- the redirect responder ------------------------------------------------------------

    /// Answer a TCP segment to `ip.dst:t.dport` as the responder, for `action`.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        ip: Ip,
        t: Tcp,
        action: Action,
        port: Port,
        now: u64,
    ) -> Verdict {
        let plen = ip.end - t.data;
        if !Self::tcp_checksum_ok(buf, &ip) {
            return Verdict::Drop(Reason::BadTcpChecksum);
        }
        // What Linux's listener drops (tcp_rcv_state_process, LISTEN, and tcp_validate_incoming
        // for the cookie's connection): SYN with FIN or RST; none of SYN, ACK and RST.
        if (t.syn && (t.fin || t.rst)) || !(t.syn || t.ackf || t.rst) {
            return Verdict::Drop(Reason::BadFlags);
        }
        let key = Key {
            a_ip: u32::from(ip.src),
            a_port: t.sport,
            b_ip: u32::from(ip.dst),
            b_port: t.dport,
        };
        if t.rst || t.syn {
            // The end of a connection, or a new one on this 4-tuple: forget any head kept.
            self.heads.remove(&key);
        }
        if t.rst {
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        if t.syn {
            if t.ackf {
                return self.reply(buf, &ip, &t, port, t.ack, None, Flags::RST, None, 0);
            }
            if action == Action::Refuse {
                self.c.rsts += 1;
                let ack = t.seq.wrapping_add(1).wrapping_add(plen as u32);
                return self.reply(buf, &ip, &t, port, 0, Some(ack), Flags::RST, None, 0);
            }
            let cookie = self.cookies.make(
                ip.src.octets(),
                ip.dst.octets(),
                t.sport,
                t.dport,
                t.seq,
                t.mss,
                now / 1000,
            );
            self.c.syn_acks += 1;
            return self.reply(
                buf,
                &ip,
                &t,
                port,
                cookie,
                Some(t.seq.wrapping_add(1)),
                Flags::SYN_ACK,
                Some(OWN_MSS),
                0,
            );
        }
        if !t.ackf {
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        if plen == 0 {
            if t.fin {
                self.heads.remove(&key);
                self.c.fin_acks += 1;
                return self.reply(
                    buf,
                    &ip,
                    &t,
                    port,
                    t.ack,
                    Some(t.seq.wrapping_add(1)),
                    Flags::ACK,
                    None,
                    0,
                );
            }
            return Verdict::Drop(Reason::NothingToAnswer);
        }
        let ack_to = t
            .seq
            .wrapping_add(plen as u32)
            .wrapping_add(u32::from(t.fin));

        // A head being collected: append this segment (if it is of the same connection).
        if let Some(h) = self.heads.get_mut(&key, now).filter(|h| h.ack == t.ack) {
            if t.seq != h.next_seq {
                // Entirely before what we have: a retransmission; repeat the ACK.
                let behind = h.next_seq.wrapping_sub(t.seq);
                if (behind as usize) >= plen && behind < (1 << 30) {
                    let next = h.next_seq;
                    return self.reply(buf, &ip, &t, port, t.ack, Some(next), Flags::ACK, None, 0);
                }
                return Verdict::Drop(Reason::OutOfOrder);
            }
            let mss = h.mss;
            if h.len + plen > MAX_HEAD {
                self.heads.remove(&key);
                self.c.too_large += 1;
                return self.status(buf, &ip, &t, port, ack_to, RESP_431);
            }
            h.bytes[h.len..h.len + plen].copy_from_slice(&buf[t.data..ip.end]);
            h.len += plen;
            h.next_seq = t.seq.wrapping_add(plen as u32);
            let n = h.len;
            self.scratch[..n].copy_from_slice(&h.bytes[..n]);
            return match self.finish_head(snap, buf, &ip, &t, port, action, n, ack_to, mss) {
                Some(v) => {
                    self.heads.remove(&key);
                    v
                }
                None => self.reply(buf, &ip, &t, port, t.ack, Some(ack_to), Flags::ACK, None, 0),
            };
        }

        // The first data segment: the cookie must check.
        let Some(mss) = self.cookies.check(
            ip.src.octets(),
            ip.dst.octets(),
            t.sport,
            t.dport,
            t.seq.wrapping_sub(1),
            t.ack.wrapping_sub(1),
            now / 1000,
        ) else {
            if Cookies::in_window(t.ack.wrapping_sub(1), now / 1000) {
                // Maybe a later segment of a head whose first is lost or late (its seq is not
                // ISN + 1, so the cookie cannot be checked): silence, as a kernel waiting for
                // the first segment; the client's retransmission completes the request.
                return Verdict::Drop(Reason::Unchecked);
            }
            // Stale, forged, or from before a restart whatever the ISN: RST, never a response.
            self.c.drop(Reason::BadCookie);
            self.c.rsts += 1;
            return self.reply(buf, &ip, &t, port, t.ack, None, Flags::RST, None, 0);
        };
        if plen > MAX_HEAD {
            self.c.too_large += 1;
            return self.status(buf, &ip, &t, port, ack_to, RESP_431);
        }
        self.scratch[..plen].copy_from_slice(&buf[t.data..ip.end]);
        if let Some(v) = self.finish_head(snap, buf, &ip, &t, port, action, plen, ack_to, mss) {
            return v;
        }
        let (h, how) = self.heads.insert(key, now);
        h.isn = t.seq.wrapping_sub(1);
        h.ack = t.ack;
        h.mss = mss;
        h.next_seq = t.seq.wrapping_add(plen as u32);
        h.len = plen;
        h.bytes[..plen].copy_from_slice(&buf[t.data..ip.end]);
        self.c.heads_kept += 1;
        if how != Inserted::Fresh {
            self.c.heads_evicted += 1;
        }
        self.reply(buf, &ip, &t, port, t.ack, Some(ack_to), Flags::ACK, None, 0)
    }

    /// The head collected so far is `scratch[..n]`. Complete (or hopeless): answer it and
    /// return the verdict. Incomplete: `None`.
    #[allow(clippy::too_many_arguments)]
    fn finish_head(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        ip: &Ip,
        t: &Tcp,
        port: Port,
        action: Action,
        n: usize,
        ack_to: u32,
        mss: u16,
    ) -> Option<Verdict> {
        let (head, out) = self.scratch.split_at_mut(OUT);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let status: &'static [u8] = match req.parse(&head[..n]) {
            Ok(httparse::Status::Partial) if n < MAX_HEAD && !t.fin => return None,
            Ok(httparse::Status::Partial) if n < MAX_HEAD => {
                // The client closed before finishing its head.
                self.c.bad_requests += 1;
                RESP_400
            }
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                self.c.too_large += 1;
                RESP_431
            }
            Err(_) => {
                self.c.bad_requests += 1;
                RESP_400
            }
            Ok(httparse::Status::Complete(_)) => {
                match choose(snap, &mut self.picks, &self.conns, action, ip.src) {
                    None => {
                        self.c.unavailable += 1;
                        RESP_503
                    }
                    Some(u) => {
                        let url = &snap.urls[u as usize];
                        let host = req
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("host"))
                            .map(|h| h.value);
                        let r = Request {
                            host,
                            vip: ip.dst,
                            port: t.dport,
                            target: req.path.unwrap_or("/").as_bytes(),
                            head_only: req.method == Some("HEAD"),
                        };
                        // One segment: the response must fit the client's MSS.
                        // ... and the frame buffer (Ethernet, IPv4 and TCP headers first).
                        let limit = out
                            .len()
                            .min(usize::from(mss.max(536)))
                            .min(buf.len().saturating_sub(ETH + 40));
                        match render_redirect(&url.template, url.code, &r, &mut out[..limit]) {
                            Ok(len) => {
                                self.c.redirects += 1;
                                self.redirects_by_url[u as usize] += 1;
                                return Some(self.reply(
                                    buf,
                                    ip,
                                    t,
                                    port,
                                    t.ack,
                                    Some(ack_to),
                                    Flags::FIN_PSH_ACK,
                                    None,
                                    len,
                                ));
                            }
                            Err(RenderError::TooLong) => {
                                self.c.uri_too_long += 1;
                                RESP_414
                            }
                            Err(RenderError::BadHost | RenderError::BadPath) => {
                                self.c.bad_requests += 1;
                                RESP_400
                            }
                        }
                    }
                }
            }
        };
        Some(self.status(buf, ip, t, port, ack_to, status))
    }

    /// Answer with a fixed status response and FIN.
    fn status(
        &mut self,
        buf: &mut [u8],
        ip: &Ip,
        t: &Tcp,
        port: Port,
        ack_to: u32,
        resp: &'static [u8],
    ) -> Verdict {
        self.scratch[OUT..OUT + resp.len()].copy_from_slice(resp);
        self.reply(
            buf,
            ip,
            t,
            port,
            t.ack,
            Some(ack_to),
            Flags::FIN_PSH_ACK,
            None,
            resp.len(),
        )
    }

    /// Turn the frame into a TCP segment back to the sender: from `ip.dst:t.dport`, with
    /// `scratch[OUT..OUT + payload]` as data.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        buf: &mut [u8],
        ip: &Ip,
        t: &Tcp,
        port: Port,
        seq: u32,
        ack: Option<u32>,
        flags: Flags,
        mss: Option<u16>,
        payload: usize,
    ) -> Verdict {
        let opt = if mss.is_some() { 4 } else { 0 };
        let tcp_len = 20 + opt + payload;
        let total = 20 + tcp_len;
        if ETH + total > buf.len() {
            return Verdict::Drop(Reason::NoRoom);
        }
        let client_mac: [u8; 6] = buf[6..12].try_into().expect("6 bytes");
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..ETH + total]);
        eth.set_dst_addr(EthernetAddress(client_mac));
        eth.set_src_addr(EthernetAddress(self.cfg.macs[port.0 as usize]));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ETH..ETH + total]);
        ipp.set_version(4);
        ipp.set_header_len(20);
        ipp.set_dscp(0);
        ipp.set_ecn(0);
        ipp.set_total_len(total as u16);
        ipp.set_ident(0);
        ipp.clear_flags();
        ipp.set_dont_frag(true);
        ipp.set_frag_offset(0);
        ipp.set_hop_limit(OWN_TTL);
        ipp.set_next_header(IpProtocol::Tcp);
        ipp.set_src_addr(ip.dst);
        ipp.set_dst_addr(ip.src);
        ipp.fill_checksum();
        let l4 = ETH + 20;
        buf[l4 + 20 + opt..l4 + 20 + opt + payload]
            .copy_from_slice(&self.scratch[OUT..OUT + payload]);
        let mut tcp = TcpPacket::new_unchecked(&mut buf[l4..l4 + tcp_len]);
        tcp.set_src_port(t.dport);
        tcp.set_dst_port(t.sport);
        tcp.set_seq_number(TcpSeqNumber(seq as i32));
        tcp.set_ack_number(TcpSeqNumber(ack.unwrap_or(0) as i32));
        tcp.set_header_len((20 + opt) as u8);
        tcp.clear_flags();
        tcp.set_syn(flags.0 & Flags::SYN.0 != 0);
        tcp.set_ack(ack.is_some());
        tcp.set_fin(flags.0 & Flags::FIN.0 != 0);
        tcp.set_rst(flags.0 & Flags::RST.0 != 0);
        tcp.set_psh(flags.0 & Flags::PSH.0 != 0);
        tcp.set_window_len(if flags.0 & Flags::RST.0 != 0 {
            0
        } else {
            65535
        });
        tcp.set_urgent_at(0);
        if let Some(m) = mss {
            let o = tcp.options_mut();
            o[0] = 2;
            o[1] = 4;
            o[2..4].copy_from_slice(&m.to_be_bytes());
        }
        tcp.set_checksum(0);
        // The segment may carry a whole response: use the word-at-a-time sum.
        let pseudo = csum::pseudo_v4(ip.dst.octets(), ip.src.octets(), PROTO_TCP, tcp_len as u16);
        let c = !csum::fold(csum::sum(pseudo, &buf[l4..l4 + tcp_len]));
        put16(buf, l4 + 16, c);
        Verdict::Tx {
            port,
            len: ETH + total,
        }
    }

    // ---- ARP and ICMP ------------------------------------------------------------------------

    fn arp(&mut self, snap: &Snapshot, buf: &mut [u8], len: usize, port: Port) -> Verdict {
        // Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
        if len < ETH + 28 {
            return Verdict::Drop(Reason::BadArp);
        }
        let a = &buf[ETH..ETH + 28];
        if be16(a, 0) != 1 || be16(a, 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 {
            return Verdict::Drop(Reason::BadArp);
        }
        let op = be16(a, 6);
        let target = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
        if op != 1 || !snap.owns(target) {
            return Verdict::Pass;
        }
        let mac = self.cfg.macs[port.0 as usize];
        let sender_mac: [u8; 6] = a[8..14].try_into().expect("6 bytes");
        let sender_ip: [u8; 4] = a[14..18].try_into().expect("4 bytes");
        let a = &mut buf[ETH..ETH + 28];
        put16(a, 6, 2);
        a[8..14].copy_from_slice(&mac);
        a[14..18].copy_from_slice(&target.octets());
        a[18..24].copy_from_slice(&sender_mac);
        a[24..28].copy_from_slice(&sender_ip);
        set_macs(buf, sender_mac, mac);
        self.c.arp_replies += 1;
        Verdict::Tx {
            port,
            len: ETH + 28,
        }
    }

    fn icmp_to_owned(&mut self, snap: &Snapshot, buf: &mut [u8], ip: Ip, port: Port) -> Verdict {
        let l4 = ip.l4();
        // Answered or translated with a fresh checksum: a corrupt message must not get one.
        if ip.end < l4 + 8 || csum::checksum(&buf[l4..ip.end]) != 0 {
            return Verdict::Drop(Reason::BadIcmp);
        }
        match buf[l4] {
            8 => {
                // Echo request -> echo reply (RFC 792), checksum updated for the type change.
                let old = be16(buf, l4);
                buf[l4] = 0;
                let c = csum::update16(be16(buf, l4 + 2), old, be16(buf, l4));
                put16(buf, l4 + 2, c);
                let (src, dst) = (ip.src, ip.dst);
                let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ETH..ip.end]);
                ipp.set_src_addr(dst);
                ipp.set_dst_addr(src);
                ipp.set_hop_limit(OWN_TTL);
                ipp.fill_checksum();
                let peer: [u8; 6] = buf[6..12].try_into().expect("6 bytes");
                set_macs(buf, peer, self.cfg.macs[port.0 as usize]);
                self.c.echo_replies += 1;
                Verdict::Tx { port, len: ip.end }
            }
            3 | 11 | 12 => self.icmp_error_to_dip(snap, buf, ip),
            _ => Verdict::Drop(Reason::BadIcmp),
        }
    }

    /// An ICMP error about a packet a real sent through its DIP (inner: DIP:port -> client):
    /// deliver it to the real, with the inner packet as the real sent it.
    fn icmp_error_to_dip(&mut self, snap: &Snapshot, buf: &mut [u8], ip: Ip) -> Verdict {
        let Some(inner) = inner_header(buf, &ip) else {
            return Verdict::Drop(Reason::BadIcmp);
        };
        let isrc = Ipv4Addr::from(be32(buf, inner.at + 12));
        let isport = be16(buf, inner.l4);
        let Some(r) = snap.dip_at(isrc, isport) else {
            return Verdict::Drop(Reason::NoService);
        };
        // The quoted packet was sent by whichever real the DIP's traffic goes to now: the
        // real itself, or its backup (the same stateless choice as `forward`).
        let Action::Forward(to) = snap.reals[r as usize].action else {
            return Verdict::Drop(Reason::NoService);
        };
        let real = &snap.reals[to as usize];
        if real.mac == [0; 6] {
            return Verdict::Drop(Reason::NoNeighbour);
        }
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        let (rip, rport) = (*real.addr.ip(), real.addr.port());
        translate_inner(buf, ip.end, &inner, 12, rip, 0, rport);
        finish_icmp(buf, &ip, Rewrite::Dst, rip);
        set_macs(buf, real.mac, self.cfg.macs[SERVER.0 as usize]);
        self.c.icmp_translated += 1;
        Verdict::Tx {
            port: SERVER,
            len: ip.end,
        }
    }

    /// An ICMP error from a real about a packet a client sent to its DIP (inner: client ->
    /// real:port): deliver it to the client as if from the DIP.
    fn icmp_real_to_client(
        &mut self,
        snap: &Snapshot,
        buf: &mut [u8],
        ip: Ip,
        now: u64,
    ) -> Verdict {
        let l4 = ip.l4();
        if ip.end < l4 + 8 || !matches!(buf[l4], 3 | 11 | 12) || ip.frag {
            return Verdict::Pass;
        }
        let Some(inner) = inner_header(buf, &ip) else {
            return Verdict::Pass;
        };
        let idst = Ipv4Addr::from(be32(buf, inner.at + 16));
        let idport = be16(buf, inner.l4 + 2);
        let isrc = Ipv4Addr::from(be32(buf, inner.at + 12));
        let isport = be16(buf, inner.l4);
        // A flow moved to a backup real is answered as its original DIP.
        let quoted = Ip {
            src: idst,
            dst: isrc,
            ..ip
        };
        let dip = match self.backup_flow(quoted, idport, isport, now) {
            Some(f) => std::net::SocketAddrV4::new(Ipv4Addr::from(f.dip), f.dip_port),
            None => {
                let Some(r) = snap.real_at(idst, idport) else {
                    return Verdict::Pass;
                };
                let Some(dip) = snap.reals[r as usize].dip else {
                    return Verdict::Pass;
                };
                dip
            }
        };
        // Sent on with fresh checksums: a corrupt error must not get them.
        if csum::checksum(&buf[ETH..l4]) != 0 {
            return Verdict::Drop(Reason::BadIpv4);
        }
        if csum::checksum(&buf[l4..ip.end]) != 0 {
            return Verdict::Drop(Reason::BadIcmp);
        }
        if snap.gateway_mac == [0; 6] {
            return Verdict::Drop(Reason::NoNeighbour);
        }
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        translate_inner(buf, ip.end, &inner, 16, *dip.ip(), 2, dip.port());
        // The error is from the real's address only when the real itself sent it; a router
        // between the director and the real keeps its own source address.
        if ip.src == idst {
            finish_icmp(buf, &ip, Rewrite::Src, *dip.ip());
        } else {
            finish_icmp(buf, &ip, Rewrite::None, *dip.ip());
        }
        set_macs(buf, snap.gateway_mac, self.cfg.macs[CLIENT.0 as usize]);
        self.c.icmp_translated += 1;
        Verdict::Tx {
            port: CLIENT,
            len: ip.end,
        }
    }
}

/// Pick the URL for a new request answered for `action`.
fn choose(
    snap: &Snapshot,
    picks: &mut [PickState],
    conns: &[u32],
    action: Action,
    client: Ipv4Addr,
) -> Option<u32> {
    let mut a = action;
    // A virtual with nothing eligible falls back once (its fallback is already resolved).
    for _ in 0..2 {
        match a {
            Action::RedirectUrl(u) => return Some(u),
            Action::Redirect(v) => {
                let ve = &snap.virtuals[v as usize];
                let pick = ve
                    .rotation
                    .pick(&mut picks[v as usize], u32::from(client), |i| {
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

#[derive(Clone, Copy, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    const FIN: Flags = Flags(1);
    const SYN: Flags = Flags(2);
    const RST: Flags = Flags(4);
    const PSH: Flags = Flags(8);
    const ACK: Flags = Flags(16);
    const SYN_ACK: Flags = Flags(2 | 16);
    const FIN_PSH_ACK: Flags = Flags(1 | 8 | 16);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    Src,
    Dst,
    None,
}

#[inline]
fn set_macs(buf: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
}

/// Rewrite the source or destination address and port of a TCP/UDP packet, decrement the
/// TTL, and update the IPv4 and L4 checksums incrementally (RFC 1624).
#[inline]
fn rewrite_l4(
    buf: &mut [u8],
    ip: &Ip,
    which: Rewrite,
    new_ip: Ipv4Addr,
    old_port: u16,
    new_port: u16,
) {
    let (addr_at, port_at) = match which {
        Rewrite::Src => (ETH + 12, ip.l4()),
        _ => (ETH + 16, ip.l4() + 2),
    };
    let old_ip = be32(buf, addr_at);
    let new = u32::from(new_ip);
    buf[addr_at..addr_at + 4].copy_from_slice(&new.to_be_bytes());
    // TTL and protocol share a 16-bit word.
    let old_word = be16(buf, ETH + 8);
    buf[ETH + 8] = ip.ttl - 1;
    let new_word = be16(buf, ETH + 8);
    let mut c = be16(buf, ETH + 10);
    c = csum::update32(c, old_ip, new);
    c = csum::update16(c, old_word, new_word);
    put16(buf, ETH + 10, c);
    put16(buf, port_at, new_port);
    let l4 = ip.l4();
    if ip.proto == PROTO_TCP {
        let mut c = be16(buf, l4 + 16);
        c = csum::update32(c, old_ip, new);
        c = csum::update16(c, old_port, new_port);
        put16(buf, l4 + 16, c);
    } else {
        // UDP: a zero checksum means "none" and stays zero (RFC 768).
        let c = be16(buf, l4 + 6);
        if c != 0 {
            let c = csum::update16(csum::update32(c, old_ip, new), old_port, new_port);
            put16(buf, l4 + 6, csum::udp_fix(c));
        }
    }
}

/// Where the packet quoted in an ICMP error starts.
struct Inner {
    /// Its IPv4 header.
    at: usize,
    /// Its L4 header (at least 8 bytes are present).
    l4: usize,
    proto: u8,
}

fn inner_header(buf: &[u8], ip: &Ip) -> Option<Inner> {
    let at = ip.l4() + 8;
    if ip.end < at + 20 || buf[at] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(buf[at] & 0xf) * 4;
    let proto = buf[at + 9];
    if ihl < 20 || ip.end < at + ihl + 8 || !matches!(proto, PROTO_TCP | PROTO_UDP) {
        return None;
    }
    Some(Inner {
        at,
        l4: at + ihl,
        proto,
    })
}

/// Rewrite the quoted packet's address at `addr_off` (12 src, 16 dst) and its port at
/// `port_off` (0 src, 2 dst), keeping its IPv4 checksum and (when quoted) its L4 checksum
/// consistent.
fn translate_inner(
    buf: &mut [u8],
    end: usize,
    inner: &Inner,
    addr_off: usize,
    new_ip: Ipv4Addr,
    port_off: usize,
    new_port: u16,
) {
    let a = inner.at + addr_off;
    let old_ip = be32(buf, a);
    let new = u32::from(new_ip);
    buf[a..a + 4].copy_from_slice(&new.to_be_bytes());
    let c = csum::update32(be16(buf, inner.at + 10), old_ip, new);
    put16(buf, inner.at + 10, c);
    let p = inner.l4 + port_off;
    let old_port = be16(buf, p);
    put16(buf, p, new_port);
    let ck = if inner.proto == PROTO_TCP {
        inner.l4 + 16
    } else {
        inner.l4 + 6
    };
    // The quoted L4 checksum is there only when enough of the packet was quoted.
    if ck + 2 <= end {
        let c = be16(buf, ck);
        if inner.proto == PROTO_TCP || c != 0 {
            let c = csum::update16(csum::update32(c, old_ip, new), old_port, new_port);
            put16(buf, ck, c);
        }
    }
}

/// After translating the quoted packet: rewrite the outer address, decrement the TTL,
/// recompute the ICMP checksum (errors are rare and short) and the IPv4 header checksum.
fn finish_icmp(buf: &mut [u8], ip: &Ip, which: Rewrite, new_ip: Ipv4Addr) {
    let l4 = ip.l4();
    put16(buf, l4 + 2, 0);
    let c = csum::checksum(&buf[l4..ip.end]);
    put16(buf, l4 + 2, c);
    let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ETH..ip.end]);
    match which {
        Rewrite::Src => ipp.set_src_addr(new_ip),
        Rewrite::Dst => ipp.set_dst_addr(new_ip),
        Rewrite::None => {}
    }
    ipp.set_hop_limit(ip.ttl - 1);
    ipp.fill_checksum();
}
