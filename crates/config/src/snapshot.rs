//! The immutable, epoch-numbered [`Snapshot`]: the model compiled into flat tables that a
//! worker reads per frame without locks.
//!
//! Everything a worker decides from configuration is precomputed here, off the hot path:
//! which virtual owns a VIP:port, which real a DIP:port forwards to, each virtual's rotation
//! with effective weights and states (resolved through `link`), and for every real and
//! virtual the [`Action`] that applies (the backup chain followed to its end, so workers
//! never walk it). The service-state table of DESIGN.md section 1 is implemented by
//! [`State::forwards`] / [`State::takes_new`] and the resolution below.

use crate::lang::State;
use crate::model::{Link, Member, Model, Settings, Target, VirtualKind};
use crate::predictor::{stable_key, Candidate, Predictor, Rotation};
use crate::url::UrlTemplate;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the director does with new traffic for a virtual or a real's DIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward to this real (index into [`Snapshot::reals`]).
    Forward(u32),
    /// Answer as this primary virtual: a fresh redirect picked by its predictor.
    Redirect(u32),
    /// Redirect to this URL (index into [`Snapshot::urls`]).
    RedirectUrl(u32),
    /// Nothing can take it: a SYN gets a RST.
    Refuse,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub epoch: u64,
    /// Primary virtuals only (DIPs are in [`Snapshot::dip_of`]).
    pub virtuals: Vec<VirtualEntry>,
    pub reals: Vec<RealEntry>,
    /// Configured URLs, then one implicit URL per real bound directly to a virtual.
    pub urls: Vec<UrlEntry>,
    vips: AddrTable,
    dips: AddrTable,
    real_addrs: AddrTable,
    owned: IpSet,
    real_ips: IpSet,
    pub cookie_secret: Option<[u8; 32]>,
    pub settings: Settings,
    /// MAC of the client-side next hop; filled by the runtime (zero until known).
    pub gateway_mac: [u8; 6],
    /// Where each real's and URL's counters were in the snapshot before this one; set by the
    /// control plane (empty from [`Snapshot::compile`]).
    pub carry: crate::carry::Carry,
    /// The certificates and ticket key of the `tls` virtuals, loaded by the control side
    /// (`None` until then, or when no virtual is `tls`). Shared by `Arc`: a reload builds a
    /// new one while connections in progress keep theirs.
    pub tls: Option<std::sync::Arc<detour_tls::TlsConfig>>,
}

#[derive(Clone, Debug)]
pub struct VirtualEntry {
    pub id: String,
    pub addr: SocketAddr,
    /// Answers over TLS 1.3 with [`Snapshot::tls`]'s certificates.
    pub tls: bool,
    pub state: State,
    pub predictor: Predictor,
    /// Member `i` of the rotation is `members[i]`.
    pub rotation: Rotation,
    pub members: Vec<MemberEntry>,
    /// What a new request gets: `Redirect(self)` while in service with an eligible member,
    /// otherwise the backup chain's answer.
    pub action: Action,
    /// The backup chain's answer, for when the predictor finds nothing eligible.
    pub fallback: Action,
    /// The configured backup's id (for display).
    pub backup: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberEntry {
    /// URL to redirect to.
    pub url: u32,
    /// The real behind it, when known (for least connections and statistics).
    pub real: Option<u32>,
    pub weight: u32,
    pub state: State,
}

#[derive(Clone, Debug)]
pub struct RealEntry {
    pub id: String,
    pub addr: SocketAddr,
    /// Its DIP, if it has one.
    pub dip: Option<SocketAddr>,
    pub state: State,
    pub weight: u32,
    /// What traffic to its DIP gets: `Forward(self)` while in service or sticky, else the backup's.
    pub action: Action,
    /// MAC to send to; filled by the runtime (zero until known).
    pub mac: [u8; 6],
    /// The configured backup's id (for display).
    pub backup: Option<String>,
}

#[derive(Clone, Debug)]
pub struct UrlEntry {
    pub id: String,
    pub template: UrlTemplate,
    pub code: u16,
    pub state: State,
    /// Made for a real bound directly (`http://<its DIP or address>/%d`).
    pub implicit: bool,
}

/// Sorted tables from (address, port) to an index, searched by bisection: IPv4 keys packed
/// in a `u64` (one compare per step), IPv6 keys as `(u128, port)`.
#[derive(Clone, Debug, Default)]
struct AddrTable {
    v4: Vec<(u64, u32)>,
    v6: Vec<((u128, u16), u32)>,
}

fn key(ip: Ipv4Addr, port: u16) -> u64 {
    (u64::from(u32::from(ip)) << 16) | u64::from(port)
}

impl AddrTable {
    fn build(entries: impl Iterator<Item = (SocketAddr, u32)>) -> Self {
        let mut t = AddrTable::default();
        for (a, i) in entries {
            match a.ip() {
                IpAddr::V4(ip) => t.v4.push((key(ip, a.port()), i)),
                IpAddr::V6(ip) => t.v6.push(((u128::from(ip), a.port()), i)),
            }
        }
        t.v4.sort_unstable();
        t.v6.sort_unstable();
        t
    }
    #[inline]
    fn get(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        let k = key(ip, port);
        let i = self.v4.binary_search_by_key(&k, |e| e.0).ok()?;
        Some(self.v4[i].1)
    }
    #[inline]
    fn get6(&self, ip: Ipv6Addr, port: u16) -> Option<u32> {
        let k = (u128::from(ip), port);
        let i = self.v6.binary_search_by_key(&k, |e| e.0).ok()?;
        Some(self.v6[i].1)
    }
}

/// Sorted, deduplicated sets of addresses of both families.
#[derive(Clone, Debug, Default)]
struct IpSet {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl IpSet {
    fn build(ips: impl Iterator<Item = IpAddr>) -> Self {
        let mut s = IpSet::default();
        for ip in ips {
            match ip {
                IpAddr::V4(a) => s.v4.push(u32::from(a)),
                IpAddr::V6(a) => s.v6.push(u128::from(a)),
            }
        }
        s.v4.sort_unstable();
        s.v4.dedup();
        s.v6.sort_unstable();
        s.v6.dedup();
        s
    }
}

/// Where model objects land in a snapshot's tables, and how backups resolve.
struct Compiler<'m> {
    m: &'m Model,
    /// Snapshot index of each model virtual that is a primary (`u32::MAX` for DIPs).
    vmap: Vec<u32>,
    /// Per model virtual: a primary in service with an eligible member.
    usable: Vec<bool>,
}

impl Compiler<'_> {
    /// Follow a backup chain to the first thing that can take new traffic.
    fn resolve(&self, start: Option<Target>) -> Action {
        let m = self.m;
        let mut cur = start;
        for _ in 0..=(m.reals.len() + m.virtuals.len()) {
            match cur {
                None => return Action::Refuse,
                Some(Target::Real(r)) => {
                    if m.reals[r].state.takes_new() {
                        return Action::Forward(r as u32);
                    }
                    cur = m.reals[r].backup;
                }
                Some(Target::Virtual(v)) => {
                    if self.usable[v] {
                        return Action::Redirect(self.vmap[v]);
                    }
                    cur = m.virtuals[v].backup;
                }
                Some(Target::Url(u)) => {
                    return if m.url_state(u).takes_new() {
                        Action::RedirectUrl(u as u32)
                    } else {
                        Action::Refuse
                    };
                }
            }
        }
        Action::Refuse
    }
}

/// A primary's member as the workers see it, and its id (the key of consistent hashing). A
/// real bound directly gets an implicit URL, made once per real.
fn member(
    m: &Model,
    mem: Member,
    urls: &mut Vec<UrlEntry>,
    implicit: &mut [Option<u32>],
) -> (MemberEntry, String) {
    match mem {
        Member::Url(u) => {
            let real = match m.urls[u].link {
                Some(Link::Real(r)) => Some(r as u32),
                _ => None,
            };
            let e = MemberEntry {
                url: u as u32,
                real,
                weight: m.url_weight(u),
                state: m.url_state(u),
            };
            (e, m.urls[u].id.clone())
        }
        Member::Real(r) => {
            let url = *implicit[r].get_or_insert_with(|| {
                urls.push(implicit_url(m, r));
                (urls.len() - 1) as u32
            });
            let real = &m.reals[r];
            let e = MemberEntry {
                url,
                real: Some(r as u32),
                weight: real.weight,
                state: real.state,
            };
            (e, Model::addr_id(real.addr))
        }
    }
}

/// The primary virtuals, in the model's order, with their members and rotations (actions
/// are filled in later); implicit URLs are appended to `urls`.
fn primaries(m: &Model, urls: &mut Vec<UrlEntry>) -> Vec<VirtualEntry> {
    let mut implicit = vec![None::<u32>; m.reals.len()];
    let mut virtuals = Vec::new();
    for v in &m.virtuals {
        let VirtualKind::Primary { members, predictor } = &v.kind else {
            continue;
        };
        let mut entries = Vec::with_capacity(members.len());
        let mut cands = Vec::with_capacity(members.len());
        for mem in members {
            let (entry, id) = member(m, *mem, urls, &mut implicit);
            cands.push(Candidate {
                weight: entry.weight,
                eligible: entry.state.takes_new(),
                key: stable_key(&id),
            });
            entries.push(entry);
        }
        virtuals.push(VirtualEntry {
            id: Model::addr_id(v.addr),
            addr: v.addr,
            tls: v.tls,
            state: v.state,
            predictor: *predictor,
            rotation: Rotation::new(*predictor, cands),
            members: entries,
            action: Action::Refuse,
            fallback: Action::Refuse,
            backup: v.backup.map(|b| m.target_id(b)),
        });
    }
    virtuals
}

fn real_entries(m: &Model) -> Vec<RealEntry> {
    m.reals
        .iter()
        .map(|r| RealEntry {
            id: Model::addr_id(r.addr),
            addr: r.addr,
            dip: r.dip.map(|d| m.virtuals[d].addr),
            state: r.state,
            weight: r.weight,
            action: Action::Refuse,
            mac: [0; 6],
            backup: r.backup.map(|b| m.target_id(b)),
        })
        .collect()
}

impl Snapshot {
    /// Compile a model. The model's invariants (checked by `apply`) make this infallible.
    pub fn compile(m: &Model, epoch: u64) -> Snapshot {
        let mut vmap = vec![u32::MAX; m.virtuals.len()];
        let mut n = 0;
        for (i, v) in m.virtuals.iter().enumerate() {
            if matches!(v.kind, VirtualKind::Primary { .. }) {
                vmap[i] = n;
                n += 1;
            }
        }
        let mut urls: Vec<UrlEntry> = m
            .urls
            .iter()
            .enumerate()
            .map(|(i, u)| UrlEntry {
                id: u.id.clone(),
                template: u.template.clone(),
                code: u.code,
                state: m.url_state(i),
                implicit: false,
            })
            .collect();
        let mut virtuals = primaries(m, &mut urls);
        let usable = (0..m.virtuals.len())
            .map(|vi| {
                vmap[vi] != u32::MAX && {
                    let e = &virtuals[vmap[vi] as usize];
                    e.state.takes_new() && e.rotation.has_eligible()
                }
            })
            .collect();
        let c = Compiler { m, vmap, usable };
        let primary_ids = m
            .virtuals
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v.kind, VirtualKind::Primary { .. }));
        for (e, (i, v)) in virtuals.iter_mut().zip(primary_ids) {
            e.fallback = c.resolve(v.backup);
            e.action = if c.usable[i] {
                Action::Redirect(c.vmap[i])
            } else {
                e.fallback
            };
        }
        let mut reals = real_entries(m);
        for (i, (e, r)) in reals.iter_mut().zip(&m.reals).enumerate() {
            e.action = if r.state.forwards() {
                Action::Forward(i as u32)
            } else {
                c.resolve(r.backup)
            };
        }
        Snapshot {
            epoch,
            carry: crate::carry::Carry::default(),
            vips: AddrTable::build(virtuals.iter().zip(0..).map(|(v, i)| (v.addr, i))),
            dips: AddrTable::build(
                reals
                    .iter()
                    .zip(0..)
                    .filter_map(|(r, i)| r.dip.map(|d| (d, i))),
            ),
            real_addrs: AddrTable::build(reals.iter().zip(0..).map(|(r, i)| (r.addr, i))),
            owned: IpSet::build(m.virtuals.iter().map(|v| v.addr.ip())),
            real_ips: IpSet::build(reals.iter().map(|r| r.addr.ip())),
            virtuals,
            reals,
            urls,
            cookie_secret: m.settings.cookie_secret,
            settings: m.settings.clone(),
            gateway_mac: [0; 6],
            tls: None,
        }
    }

    /// The primary virtual at VIP:port.
    #[inline]
    pub fn virtual_at(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        self.vips.get(ip, port)
    }

    /// The real whose DIP is DIP:port.
    #[inline]
    pub fn dip_at(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        self.dips.get(ip, port)
    }

    /// The real at its own address:port (return traffic).
    #[inline]
    pub fn real_at(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        self.real_addrs.get(ip, port)
    }

    /// The primary virtual at \[VIP\]:port (IPv6).
    #[inline]
    pub fn virtual_at6(&self, ip: Ipv6Addr, port: u16) -> Option<u32> {
        self.vips.get6(ip, port)
    }

    /// The real whose DIP is \[DIP\]:port (IPv6).
    #[inline]
    pub fn dip_at6(&self, ip: Ipv6Addr, port: u16) -> Option<u32> {
        self.dips.get6(ip, port)
    }

    /// The real at its own \[address\]:port (IPv6 return traffic).
    #[inline]
    pub fn real_at6(&self, ip: Ipv6Addr, port: u16) -> Option<u32> {
        self.real_addrs.get6(ip, port)
    }

    /// True for an address the director answers ARP and ICMP echo for (VIPs and DIPs).
    #[inline]
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.owned.v4.binary_search(&u32::from(ip)).is_ok()
    }

    /// True for an IPv6 address the director answers neighbour solicitations and echo for.
    #[inline]
    pub fn owns6(&self, ip: Ipv6Addr) -> bool {
        self.owned.v6.binary_search(&u128::from(ip)).is_ok()
    }

    /// True for the address of some real (any port).
    #[inline]
    pub fn is_real_ip(&self, ip: Ipv4Addr) -> bool {
        self.real_ips.v4.binary_search(&u32::from(ip)).is_ok()
    }

    /// True for the IPv6 address of some real (any port).
    #[inline]
    pub fn is_real_ip6(&self, ip: Ipv6Addr) -> bool {
        self.real_ips.v6.binary_search(&u128::from(ip)).is_ok()
    }

    /// The IPv4 addresses the director owns, ascending.
    pub fn owned_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.owned.v4.iter().map(|&a| Ipv4Addr::from(a))
    }

    /// The IPv6 addresses the director owns, ascending.
    pub fn owned_addrs6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.owned.v6.iter().map(|&a| Ipv6Addr::from(a))
    }

    pub fn describe(&self, a: Action) -> String {
        match a {
            Action::Forward(r) => format!("forward to real {}", self.reals[r as usize].id),
            Action::Redirect(v) => format!("redirect as virtual {}", self.virtuals[v as usize].id),
            Action::RedirectUrl(u) => format!("redirect to url {}", self.urls[u as usize].id),
            Action::Refuse => "refuse (RST)".to_string(),
        }
    }

    /// The resolved model as readable tables (what `detour check` prints).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "epoch {}", self.epoch);
        let _ = writeln!(s, "\nVIRTUALS");
        for v in &self.virtuals {
            let _ = writeln!(
                s,
                "  {:<21} {:<12} predictor {:<10} -> {}",
                v.id,
                v.state.keyword(),
                v.predictor.keyword(),
                self.describe(v.action)
            );
            if v.members.is_empty() {
                let _ = writeln!(s, "      (no members)");
            }
            for m in &v.members {
                let u = &self.urls[m.url as usize];
                let real = m
                    .real
                    .map(|r| format!(" real {}", self.reals[r as usize].id))
                    .unwrap_or_default();
                let name = if u.implicit {
                    "(real)".to_string()
                } else {
                    u.id.clone()
                };
                let _ = writeln!(
                    s,
                    "      {:<12} weight {:<4} {:<12} {} {}{}",
                    name,
                    m.weight,
                    m.state.keyword(),
                    u.code,
                    u.template.as_str(),
                    real
                );
            }
            let _ = writeln!(
                s,
                "      backup {}; when nothing is eligible: {}",
                v.backup.as_deref().unwrap_or("none"),
                self.describe(v.fallback)
            );
        }
        let _ = writeln!(s, "\nREALS");
        for r in &self.reals {
            let dip = r
                .dip
                .map(|d| {
                    if d == r.addr {
                        format!("DIP {d} (same address)")
                    } else {
                        format!("DIP {d} (NAT)")
                    }
                })
                .unwrap_or_else(|| "no DIP".to_string());
            let _ = writeln!(
                s,
                "  {:<21} {:<12} weight {:<4} {:<32} backup {:<15} DIP traffic: {}",
                r.id,
                r.state.keyword(),
                r.weight,
                dip,
                r.backup.as_deref().unwrap_or("none"),
                self.describe(r.action)
            );
        }
        let _ = writeln!(s, "\nURLS");
        for u in self.urls.iter().filter(|u| !u.implicit) {
            let _ = writeln!(
                s,
                "  {:<12} {} {:<12} {}",
                u.id,
                u.code,
                u.state.keyword(),
                u.template.as_str()
            );
        }
        let owned: Vec<String> = (self.owned_addrs().map(IpAddr::V4))
            .chain(self.owned_addrs6().map(IpAddr::V6))
            .map(|a| a.to_string())
            .collect();
        let _ = writeln!(s, "\nOWNED ADDRESSES (ARP/NDP/ICMP)\n  {}", owned.join(" "));
        s
    }
}

fn implicit_url(m: &Model, r: usize) -> UrlEntry {
    let real = &m.reals[r];
    let a = m.redirect_addr(r);
    let text = if a.port() == 80 {
        match a.ip() {
            IpAddr::V4(ip) => format!("http://{ip}/%d"),
            IpAddr::V6(ip) => format!("http://[{ip}]/%d"),
        }
    } else {
        format!("http://{a}/%d")
    };
    UrlEntry {
        id: Model::addr_id(real.addr),
        template: UrlTemplate::parse(&text).expect("an address makes a valid URL"),
        code: 302,
        state: real.state,
        implicit: true,
    }
}
