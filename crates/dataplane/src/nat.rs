//! DIP NAT both ways (the seed's claim 13), stateless except for flows moved to a backup
//! real, and the ICMP errors about translated flows (RFC 5508 section 4.2; [`icmp`]). One
//! code path for both families, generic over [`Family`] ([`family`]) and compiled for each.
//!
//! - Client -> DIP:port becomes client -> real:port ([`Nat::forward`]); a flow sent to the
//!   backup real instead is remembered (opened only by a SYN, refreshed by the rest), keyed
//!   by the client's whole address (IPv6 in full, IPv4 mapped), since the backup's replies
//!   come from its own address.
//! - Real:port -> client becomes DIP:port -> client ([`Nat::reply_of_real`]).
//!
//! Addresses and ports are rewritten through the checked views, the checksums updated
//! incrementally (RFC 1624) for TCP/UDP over the family's pseudo-header (IPv4's header
//! checksum too; IPv6 has none). The TTL (hop limit) is decremented; a frame that would
//! leave with 0 is dropped.

use crate::counters::{RealCounters, Reason};
use crate::egress::Verdict;
use crate::frame::Ctx;
use crate::table::{Inserted, Key, Table};
use crate::wire::{proto, tcp, End};
use detour_config::{Carry, Snapshot};
use std::net::Ipv6Addr;

mod family;
mod icmp;

pub(crate) use family::Family;
use family::{ports, rewrite};

/// Flows moved to a backup real remembered at once per worker.
pub const BACKUP_FLOW_SLOTS: usize = 65_536;
/// A backup flow idle this long is forgotten.
pub const BACKUP_FLOW_TTL_MS: u64 = 300_000;
/// Ways of one set of the backup-flow table one client address may hold.
pub const BACKUP_FLOW_PER_PEER: usize = 4;

/// A flow moved to a backup real: what the real's replies must look like to the client.
/// The DIP in full (IPv4 mapped): 18 bytes, so an entry of the table (key 36, last use 8,
/// this 18) is 62 bytes, and the table's 65,536 entries 3.9 MiB per worker.
#[derive(Clone, Copy)]
struct BackupFlow {
    dip: Ipv6Addr,
    dip_port: u16,
}

// What an entry costs, checked at compile time (the README states it).
const _: () = assert!(std::mem::size_of::<BackupFlow>() == 18);
const _: () = assert!(std::mem::size_of::<Key>() == 36);

impl Default for BackupFlow {
    fn default() -> BackupFlow {
        BackupFlow {
            dip: Ipv6Addr::UNSPECIFIED,
            dip_port: 0,
        }
    }
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
    pub(crate) fn forward<I: Family>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &I,
        p: Ports,
        (r, to): (u32, u32),
    ) -> Verdict {
        let real = &cx.snap.reals[to as usize];
        let hop = match cx.eg.toward_real(real.mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        // The model keeps a DIP's real and backups in the DIP's family.
        let Some((new_ip, new_port)) = I::sock(real.addr) else {
            return Verdict::Drop(Reason::NoService);
        };
        if !rewrite(buf, ip, End::Dst, new_ip, new_port) {
            return Verdict::Drop(if ip.proto() == proto::TCP {
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
            self.remember(cx, ip, p, to);
        }
        cx.c.to_real += 1;
        cx.c.to_real_bytes += ip.len() as u64;
        hop.send(buf, ip.frame_len())
    }

    /// A client's packet went to a backup real (the snapshot's real `to`): a SYN opens its
    /// flow, any other packet only refreshes the flow it belongs to (its DIP stays the one
    /// the SYN went to). Out of line: only traffic to a failed real's backup comes here, and
    /// inlined its key and table calls cost every forwarded frame ~30 instructions of spills.
    /// It reads the backup's address again from the snapshot rather than being handed it, so
    /// that the forward path keeps no address live across the rewrite for it.
    #[inline(never)]
    fn remember<I: Family>(&mut self, cx: &mut Ctx, ip: &I, p: Ports, to: u32) {
        let Some((b_ip, b_port)) = I::sock(cx.snap.reals[to as usize].addr) else {
            return;
        };
        // Keyed by the client first: the table bounds each client's ways per set.
        let key = Key {
            a_ip: I::host(ip.src()),
            a_port: p.sport,
            b_ip: I::host(b_ip),
            b_port,
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
                dip: I::host(ip.dst()),
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
    fn dip_of<I: Family>(
        &mut self,
        snap: &Snapshot,
        (real, sender): ((I::A, u16), Option<u32>),
        client: (I::A, u16),
        now: u64,
    ) -> Option<(I::A, u16)> {
        if self.backup_flows {
            let key = Key {
                a_ip: I::host(client.0),
                a_port: client.1,
                b_ip: I::host(real.0),
                b_port: real.1,
            };
            if let Some(f) = self.flows.get_mut(&key, now) {
                return Some((I::of_host(f.dip)?, f.dip_port));
            }
        }
        I::sock(snap.reals[sender? as usize].dip?)
    }

    /// Real:port -> client (TCP or UDP), arriving on the server side: from the DIP instead.
    /// Anything that is not a real's reply is the kernel's.
    #[inline]
    pub(crate) fn reply_of_real<I: Family>(
        &mut self,
        cx: &mut Ctx,
        buf: &mut [u8],
        ip: &I,
    ) -> Verdict {
        if ip.unmappable() {
            // No ports to map by: a real's fragments cannot be translated (and are never read
            // as if they had a header); anyone else's are the kernel's.
            return if I::is_real_ip(cx.snap, ip.src()) {
                Verdict::Drop(Reason::Fragment)
            } else {
                Verdict::Pass
            };
        }
        let Some((sport, dport, rst)) = ports(ip, buf) else {
            return Verdict::Pass;
        };
        let sender = I::real_at(cx.snap, ip.src(), sport);
        let real = (ip.src(), sport);
        let client = (ip.dst(), dport);
        let Some(dip) = self.dip_of::<I>(cx.snap, (real, sender), client, cx.now) else {
            return Verdict::Pass;
        };
        if !ip.header_ok(buf) {
            return Verdict::Drop(I::BAD_HEADER);
        }
        let hop = match cx.eg.toward_client(cx.snap.gateway_mac) {
            Ok(h) => h,
            Err(why) => return Verdict::Drop(why),
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(Reason::TtlExceeded);
        }
        if !rewrite(buf, ip, End::Src, dip.0, dip.1) {
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
}
