//! DIP NAT both ways (the seed's claim 13), stateless except for flows moved to a backup
//! real, and the ICMP errors about translated flows (RFC 5508 section 4.2).
//!
//! - Client -> DIP:port becomes client -> real:port ([`Nat::forward`]); a flow sent to the
//!   backup real instead is remembered (opened only by a SYN, refreshed by the rest), since
//!   the backup's replies come from its own address.
//! - Real:port -> client becomes DIP:port -> client ([`Nat::reply_of_real`]).
//! - An ICMP error about a packet the real sent (to the DIP, from a router on the client
//!   side) is delivered to the real with the quoted packet as the real sent it
//!   ([`Nat::icmp_to_dip`]); one from the real's side about a client's packet goes to the
//!   client as if about the DIP ([`Nat::icmp_from_real`]).
//!
//! Addresses and ports are rewritten through the checked views, the checksums updated
//! incrementally (RFC 1624) for TCP/UDP, recomputed for the (rare, short) ICMP errors. The
//! TTL is decremented; a frame that would leave with TTL 0 is dropped.

use crate::counters::{RealCounters, Reason};
use crate::egress::Verdict;
use crate::frame::{Ctx, Ip};
use crate::table::{Inserted, Key, Table};
use crate::wire::quoted::Quoted;
use crate::wire::{icmpv4, proto, tcp, udp, AddrChange, End};
use detour_config::{Action, Carry, Snapshot};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

mod v6;

/// Flows moved to a backup real remembered at once per worker.
pub const BACKUP_FLOW_SLOTS: usize = 65_536;
/// A backup flow idle this long is forgotten.
pub const BACKUP_FLOW_TTL_MS: u64 = 300_000;
/// Ways of one set of the backup-flow table one client address may hold.
pub const BACKUP_FLOW_PER_PEER: usize = 4;

/// A flow moved to a backup real: what the real's replies must look like to the client.
#[derive(Clone, Copy, Default)]
struct BackupFlow {
    dip: u32,
    dip_port: u16,
}

/// The ports of a client's TCP or UDP packet to a DIP, and its TCP control bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ports {
    pub sport: u16,
    pub dport: u16,
    /// `None` for UDP.
    pub flags: Option<tcp::Flags>,
}

/// The NAT's state: the backup-flow table and the traffic per real.
pub(crate) struct Nat {
    flows: Table<BackupFlow>,
    /// No flow was ever opened: replies skip the table.
    backup_flows: bool,
    /// Per real of the current snapshot.
    pub reals: Vec<RealCounters>,
}

impl Nat {
    pub(crate) fn new(table_key: [u8; 16]) -> Nat {
        Nat {
            flows: Table::new(
                BACKUP_FLOW_SLOTS,
                BACKUP_FLOW_TTL_MS,
                BACKUP_FLOW_PER_PEER,
                table_key,
            ),
            backup_flows: false,
            reals: Vec::new(),
        }
    }

    /// Follow a new snapshot: counters follow reals by address (indices may change).
    pub(crate) fn install(&mut self, carry: &Carry) {
        self.reals = Carry::apply(&carry.reals, &self.reals);
    }

    /// Live entries and capacity; the most ways one client holds in a set.
    pub(crate) fn occupancy(&self, now: u64) -> ((usize, usize), usize) {
        (
            (self.flows.len(now), self.flows.capacity()),
            self.flows.most_per_peer(now),
        )
    }

    /// Client -> DIP:port of real `r`, sent to real `to` (`r` itself, or its backup).
    #[inline]
    pub(crate) fn forward(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &Ip,
        p: Ports,
        (r, to): (u32, u32),
    ) -> Verdict {
        let real = &cx.snap.reals[to as usize];
        let hop = match cx.eg.toward_real(real.mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        // The model keeps a DIP's real and backups in the DIP's family.
        let SocketAddr::V4(to_addr) = real.addr else {
            return Verdict::Drop(Reason::NoService);
        };
        let (new_ip, new_port) = (*to_addr.ip(), to_addr.port());
        if !rewrite(buf, ip, End::Dst, new_ip, new_port) {
            return Verdict::Drop(if ip.proto == proto::TCP {
                Reason::BadTcp
            } else {
                Reason::BadUdp
            });
        }
        let rc = &mut self.reals[to as usize];
        if let Some(f) = p.flags {
            // Connection estimate for least connections: SYNs open, FINs and RSTs close.
            rc.opened += u64::from(f.has(tcp::Flags::SYN) && !f.has(tcp::Flags::ACK));
            rc.closed += u64::from(f.0 & (tcp::Flags::FIN.0 | tcp::Flags::RST.0) != 0);
        }
        rc.to_real += 1;
        rc.to_real_bytes += ip.len() as u64;
        if to != r {
            self.remember(cx, ip, p, SocketAddrV4::new(new_ip, new_port));
        }
        cx.c.to_real += 1;
        cx.c.to_real_bytes += ip.len() as u64;
        hop.send(buf, ip.frame_len())
    }

    /// A client's packet went to a backup real (`to`): a SYN opens its flow, any other packet
    /// only refreshes the flow it belongs to (its DIP stays the one the SYN went to).
    fn remember(&mut self, cx: &mut Ctx, ip: &Ip, p: Ports, to: SocketAddrV4) {
        // Keyed by the client first: the table bounds each client's ways per set.
        let key = Key {
            a_ip: u32::from(ip.src),
            a_port: p.sport,
            b_ip: u32::from(*to.ip()),
            b_port: to.port(),
        };
        let opens = p.flags.is_some_and(|f| {
            let any = tcp::Flags::SYN
                .with(tcp::Flags::ACK)
                .with(tcp::Flags::RST)
                .with(tcp::Flags::FIN);
            f.0 & any.0 == tcp::Flags::SYN.0
        });
        if opens {
            let (f, how) = self.flows.insert(key, cx.now);
            *f = BackupFlow {
                dip: u32::from(ip.dst),
                dip_port: p.dport,
            };
            if how != Inserted::Fresh {
                cx.c.backup_flows_evicted += 1;
            }
            self.backup_flows = true;
        } else if self.backup_flows {
            let _ = self.flows.get_mut(&key, cx.now);
        }
        cx.c.to_backup += 1;
    }

    /// The DIP a reply from `real` (the snapshot's real `sender`, if it is one) to `client`
    /// must come from: its flow's, if it was moved to this real as a backup, else the real's
    /// own DIP.
    #[inline]
    fn dip_of(
        &mut self,
        snap: &Snapshot,
        (real, sender): (SocketAddrV4, Option<u32>),
        client: SocketAddrV4,
        now: u64,
    ) -> Option<SocketAddrV4> {
        if self.backup_flows {
            let key = Key {
                a_ip: u32::from(*client.ip()),
                a_port: client.port(),
                b_ip: u32::from(*real.ip()),
                b_port: real.port(),
            };
            if let Some(f) = self.flows.get_mut(&key, now) {
                return Some(SocketAddrV4::new(Ipv4Addr::from(f.dip), f.dip_port));
            }
        }
        match snap.reals[sender? as usize].dip? {
            SocketAddr::V4(d) => Some(d),
            SocketAddr::V6(_) => None,
        }
    }

    /// Real:port -> client (TCP or UDP), arriving on the server side: from the DIP instead.
    /// Anything that is not a real's reply is the kernel's.
    pub(crate) fn reply_of_real(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
        if ip.later_frag {
            // No ports to map by: a real's later fragments cannot be translated (and are
            // never read as if they had a header); anyone else's are the kernel's.
            return if cx.snap.is_real_ip(ip.src) {
                Verdict::Drop(Reason::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let Some((sport, dport, rst)) = ports(ip, buf) else {
            return Verdict::Pass;
        };
        let sender = cx.snap.real_at(ip.src, sport);
        let real = SocketAddrV4::new(ip.src, sport);
        let client = SocketAddrV4::new(ip.dst, dport);
        let Some(dip) = self.dip_of(cx.snap, (real, sender), client, cx.now) else {
            return Verdict::Pass;
        };
        if !ip.header_ok(buf) {
            return Verdict::Drop(Reason::BadIpv4);
        }
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if !rewrite(buf, ip, End::Src, *dip.ip(), dip.port()) {
            return Verdict::Pass;
        }
        if let Some(rc) = sender.and_then(|r| self.reals.get_mut(r as usize)) {
            rc.closed += u64::from(rst);
            rc.to_client += 1;
            rc.to_client_bytes += ip.len() as u64;
        }
        cx.c.to_client += 1;
        cx.c.to_client_bytes += ip.len() as u64;
        hop.send(buf, ip.frame_len())
    }

    /// An ICMP error to an owned address about a packet a real sent through its DIP (quoted:
    /// DIP:port -> client): deliver it to the real, with the quoted packet as the real sent it.
    pub(crate) fn icmp_to_dip(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
        let Some((src, sport)) = quoted_end(buf, ip, End::Src) else {
            return Verdict::Drop(Reason::BadIcmp);
        };
        let Some(r) = cx.snap.dip_at(src, sport) else {
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
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        let SocketAddr::V4(to) = real.addr else {
            return Verdict::Drop(Reason::NoService);
        };
        if !translate_error(buf, ip, (End::Src, to), Some(End::Dst)) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }

    /// An ICMP error from the server side about a packet a client sent to a DIP (quoted:
    /// client -> real:port): deliver it to the client as if about (and, when the real itself
    /// sent it, from) the DIP. Anything else is the kernel's.
    pub(crate) fn icmp_from_real(&mut self, cx: &mut Ctx, buf: &mut [u8], ip: &Ip) -> Verdict {
        let is_error = icmpv4::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| {
            use icmpv4::kind::*;
            matches!(
                m.msg_type(),
                DST_UNREACHABLE | TIME_EXCEEDED | PARAM_PROBLEM
            )
        });
        if !is_error || ip.frag {
            return Verdict::Pass;
        }
        let (Some((isrc, isport)), Some((idst, idport))) =
            (quoted_end(buf, ip, End::Src), quoted_end(buf, ip, End::Dst))
        else {
            return Verdict::Pass;
        };
        let real = SocketAddrV4::new(idst, idport);
        let client = SocketAddrV4::new(isrc, isport);
        let sender = cx.snap.real_at(idst, idport);
        let Some(dip) = self.dip_of(cx.snap, (real, sender), client, cx.now) else {
            return Verdict::Pass;
        };
        // Sent on with fresh checksums: a corrupt error must not get them.
        if !ip.header_ok(buf) {
            return Verdict::Drop(Reason::BadIpv4);
        }
        if !icmpv4::Packet::new_checked(ip.l4(buf)).is_ok_and(|m| m.verify_checksum()) {
            return Verdict::Drop(Reason::BadIcmp);
        }
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        // The error is from the real's address only when the real itself sent it; a router
        // between the director and the real keeps its own source address.
        let outer = (ip.src == idst).then_some(End::Src);
        if !translate_error(buf, ip, (End::Dst, dip), outer) {
            return Verdict::Pass;
        }
        cx.c.icmp_translated += 1;
        hop.send(buf, ip.frame_len())
    }
}

/// Source port, destination port and the RST bit of a TCP or UDP packet, if its header is
/// whole (checked views).
#[inline]
fn ports(ip: &Ip, buf: &[u8]) -> Option<(u16, u16, bool)> {
    let l4 = ip.l4(buf);
    match ip.proto {
        proto::TCP => tcp::Packet::new_checked(l4)
            .ok()
            .map(|t| (t.src_port(), t.dst_port(), t.rst())),
        proto::UDP => udp::Packet::new_checked(l4)
            .ok()
            .map(|u| (u.src_port(), u.dst_port(), false)),
        _ => None,
    }
}

/// Rewrite one end (address and port) of the TCP/UDP packet in `buf`, decrement the TTL, and
/// update the IPv4 and L4 checksums incrementally (RFC 1624). False, with nothing changed,
/// when the L4 header is not whole.
#[inline]
fn rewrite(buf: &mut [u8], ip: &Ip, end: End, addr: Ipv4Addr, port: u16) -> bool {
    let Some(mut p) = ip.packet_mut(buf) else {
        return false;
    };
    let old = if end == End::Src { ip.src } else { ip.dst };
    let change = AddrChange::V4 { old, new: addr };
    let l4 = p.payload_mut();
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
    p.translate(end, addr, ip.ttl - 1);
    true
}

/// One end of the packet quoted by the ICMP error in `buf`, if it is an IPv4 TCP/UDP packet
/// with its ports.
fn quoted_end(buf: &[u8], ip: &Ip, end: End) -> Option<(Ipv4Addr, u16)> {
    let m = icmpv4::Packet::new_checked(ip.l4(buf)).ok()?;
    let q = Quoted::new_checked(m.data(), false).ok()?;
    match q.addr(end) {
        IpAddr::V4(a) => Some((a, q.port(end))),
        IpAddr::V6(_) => None,
    }
}

/// Rewrite the quoted packet's `inner` end to `to`; set the outer address at `outer` (if
/// any) to `to`'s address; decrement the TTL; recompute the ICMP and IPv4 checksums.
fn translate_error(
    buf: &mut [u8],
    ip: &Ip,
    (inner, to): (End, SocketAddrV4),
    outer: Option<End>,
) -> bool {
    let Some(mut p) = ip.packet_mut(buf) else {
        return false;
    };
    {
        let Ok(mut m) = icmpv4::Packet::new_checked(p.payload_mut()) else {
            return false;
        };
        let Ok(mut q) = Quoted::new_checked(m.data_mut(), false) else {
            return false;
        };
        if q.rewrite(inner, IpAddr::V4(*to.ip()), to.port()).is_err() {
            return false;
        }
        m.fill_checksum();
    }
    match outer {
        Some(End::Src) => p.set_src(*to.ip()),
        Some(End::Dst) => p.set_dst(*to.ip()),
        None => {}
    }
    p.set_ttl(ip.ttl - 1);
    p.fill_checksum();
    true
}
