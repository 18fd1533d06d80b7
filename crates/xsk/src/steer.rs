//! The XDP steering program (`bpf/steer.bpf.c`, compiled by `build.rs`) and its loader.
//!
//! The program sends the director's traffic to the AF_XDP sockets and everything else to the
//! kernel. Per frame (untagged Ethernet; 802.1Q-tagged frames go to the kernel):
//!
//! - ARP request whose target IP is an owned address (VIP or DIP) → socket;
//! - IPv4 to an owned address, whatever the protocol → socket;
//! - IPv4 to one of the director kernel's own addresses → kernel (health checks, management);
//! - TCP/UDP from a real server's (address, port) → socket (replies of reals to clients),
//!   except on the client side of a two-armed director ([`Steer::set_client_side_only`]) →
//!   kernel;
//! - ICMP from a real server's address → socket (errors about the director's flows), with the
//!   same exception;
//! - anything else (other ARP, IPv6, other IPv4...) → kernel.
//!
//! "→ socket" is `bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS)`: a frame steered to a
//! queue with no socket in the XSKMAP goes to the kernel (counted in
//! [`SteerCounters::no_socket`]).
//!
//! [`Steer`] loads the program with aya and attaches it through a bpf_link, so it is detached
//! when the [`Steer`] is dropped and also when the process dies. (Only on kernels without XDP
//! bpf_links, before 5.9, does aya fall back to a netlink attachment, which outlives a crash.)
//! Load one program per interface, from one process: the kernel refuses a second one.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::Ebpf;

/// The compiled program (ELF, BPF target).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

/// Name of the XDP function in `steer.bpf.c`.
const PROGRAM_NAME: &str = "detour_steer";

/// Capacities, as declared in `steer.bpf.c`.
const XSKS_MAX: u32 = 64;
const OWNED_MAX: usize = 65536;
const REALS_MAX: usize = 65536;
const REAL_IPS_MAX: usize = 65536;
const KERNEL_MAX: usize = 256;

/// Counter indices of the `stats` map, as in `steer.bpf.c`.
mod st {
    pub const REDIRECTED: u32 = 0;
    pub const PASSED: u32 = 1;
    pub const NO_SOCKET: u32 = 2;
    pub const ARP_OWNED: u32 = 3;
    pub const TO_OWNED: u32 = 4;
    pub const FROM_REAL: u32 = 5;
    pub const ICMP_FROM_REAL: u32 = 6;
    pub const TO_KERNEL: u32 = 7;
    pub const ARP_OTHER: u32 = 8;
    pub const NOT_IPV4: u32 = 9;
    pub const VLAN: u32 = 10;
    pub const OTHER_IPV4: u32 = 11;
    pub const MALFORMED: u32 = 12;
    pub const REAL_CLIENT_SIDE: u32 = 13;
    pub const NS_OWNED: u32 = 14;
    pub const OTHER_IPV6: u32 = 15;
}

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP, run by the driver (`XDP_FLAGS_DRV_MODE`).
    Driver,
    /// Generic XDP, run by the kernel network stack (`XDP_FLAGS_SKB_MODE`).
    Skb,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Driver => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Driver => "driver",
            AttachMode::Skb => "skb",
        })
    }
}

/// A failure of the steering program: what was being done, and the underlying error (with its
/// causes) in the message.
#[derive(Debug)]
pub struct SteerError {
    message: String,
}

impl SteerError {
    fn new(what: impl fmt::Display) -> SteerError {
        SteerError {
            message: what.to_string(),
        }
    }

    fn with(what: impl fmt::Display, err: &(dyn std::error::Error + 'static)) -> SteerError {
        let mut message = format!("{what}: {err}");
        let mut cause = err.source();
        // Bounded: error chains are short, but never trust a cycle.
        for _ in 0..16 {
            let Some(c) = cause else { break };
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        SteerError { message }
    }
}

impl fmt::Display for SteerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XDP steering: {}", self.message)
    }
}

impl std::error::Error for SteerError {}

/// The program's counters, summed over CPUs. `redirected` is the sum of the steering reasons
/// (`arp_owned`, `to_owned`, `from_real`, `icmp_from_real`), `passed` the sum of the passing
/// ones (`to_kernel`, `arp_other`, `not_ipv4`, `vlan`, `other_ipv4`, `malformed`,
/// `real_client_side`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerCounters {
    /// Frames steered to the sockets.
    pub redirected: u64,
    /// Frames passed to the kernel.
    pub passed: u64,
    /// Steered frames for which no socket sat at their queue: the kernel got them.
    pub no_socket: u64,
    /// Steered: ARP requests for an owned address.
    pub arp_owned: u64,
    /// Steered: IPv4 to an owned address.
    pub to_owned: u64,
    /// Steered: TCP/UDP from a real's address and port.
    pub from_real: u64,
    /// Steered: ICMP from a real's address.
    pub icmp_from_real: u64,
    /// Passed: IPv4 to one of the kernel's addresses.
    pub to_kernel: u64,
    /// Passed: other ARP (replies, requests for other addresses).
    pub arp_other: u64,
    /// Passed: IPv6 and other ethertypes.
    pub not_ipv4: u64,
    /// Passed: 802.1Q / 802.1ad tagged frames.
    pub vlan: u64,
    /// Passed: IPv4 that is not the director's.
    pub other_ipv4: u64,
    /// Passed: truncated or malformed headers.
    pub malformed: u64,
    /// Passed: from a real's address, but on the client-side interface.
    pub real_client_side: u64,
    /// Steered: an ICMPv6 neighbour solicitation for an owned address.
    pub ns_owned: u64,
    /// Passed: IPv6 not the director's.
    pub other_ipv6: u64,
}

/// Key of the `reals` map: `struct real_key` of `steer.bpf.c`, in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RealKey {
    addr: u32,
    port: u16,
    pad: u16,
}

// SAFETY: `RealKey` is `repr(C)` with fields of 4 + 2 + 2 bytes: no padding, every bit pattern
// is valid, and it matches the layout of `struct real_key` in `steer.bpf.c`.
unsafe impl aya::Pod for RealKey {}

impl RealKey {
    fn new(real: &SocketAddrV4) -> RealKey {
        RealKey {
            addr: addr_key(*real.ip()),
            port: u16::from_ne_bytes(real.port().to_be_bytes()),
            pad: 0,
        }
    }
}

/// An IPv4 address as the program's `__u32` key (network order in memory).
/// The key of `reals6`: `struct real_key6` of the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RealKey6 {
    addr: [u8; 16],
    port: u16,
    pad: u16,
}

// SAFETY: `RealKey6` is `repr(C)`, made of plain integers with no padding (16 + 2 + 2 bytes),
// and every bit pattern is a valid value: aya may copy it to and from the kernel as bytes.
unsafe impl aya::Pod for RealKey6 {}

impl RealKey6 {
    fn new(real: &SocketAddrV6) -> RealKey6 {
        RealKey6 {
            addr: real.ip().octets(),
            port: u16::from_ne_bytes(real.port().to_be_bytes()),
            pad: 0,
        }
    }
}

fn addr_key(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The steering program loaded and attached on one interface. Dropping it detaches the
/// program (and so does the process dying: aya's bpf_link).
pub struct Steer {
    iface: String,
    mode: AttachMode,
    xsks: XskMap<MapData>,
    owned: HashMap<MapData, u32, u8>,
    reals: HashMap<MapData, RealKey, u8>,
    real_ips: HashMap<MapData, u32, u8>,
    kernel: HashMap<MapData, u32, u8>,
    owned6: HashMap<MapData, [u8; 16], u8>,
    reals6: HashMap<MapData, RealKey6, u8>,
    real_ips6: HashMap<MapData, [u8; 16], u8>,
    kernel6: HashMap<MapData, [u8; 16], u8>,
    side: Array<MapData, u32>,
    stats: PerCpuArray<MapData, u64>,
    /// Holds the program and its link: dropping it detaches the program.
    _ebpf: Ebpf,
}

impl fmt::Debug for Steer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steer")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, SteerError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| SteerError::new(format!("map `{name}` missing from the program")))?;
    M::try_from(map).map_err(|e| SteerError::with(format!("map `{name}`"), &e))
}

impl Steer {
    /// Load and attach to `iface`, trying driver mode first then SKB mode (or `force`), and
    /// report which one was taken.
    pub fn attach(iface: &str, force: Option<AttachMode>) -> Result<Steer, SteerError> {
        let mut ebpf = Ebpf::load(PROGRAM)
            .map_err(|e| SteerError::with("loading the program's object", &e))?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| SteerError::new(format!("program `{PROGRAM_NAME}` missing")))?
            .try_into()
            .map_err(|e| SteerError::with(format!("program `{PROGRAM_NAME}`"), &e))?;
        program
            .load()
            .map_err(|e| SteerError::with("loading the program into the kernel", &e))?;

        let modes: &[AttachMode] = match force {
            Some(AttachMode::Driver) => &[AttachMode::Driver],
            Some(AttachMode::Skb) => &[AttachMode::Skb],
            None => &[AttachMode::Driver, AttachMode::Skb],
        };
        let mut failures = Vec::new();
        let mut taken = None;
        for &mode in modes {
            match program.attach(iface, mode.xdp_mode()) {
                Ok(_link) => {
                    taken = Some(mode);
                    break;
                }
                Err(ProgramError::UnknownInterface { .. }) => {
                    return Err(SteerError::new(format!(
                        "no network interface {iface} (in this network namespace)"
                    )));
                }
                Err(e) => failures.push(SteerError::with(format!("{mode} mode"), &e).message),
            }
        }
        let Some(mode) = taken else {
            return Err(SteerError::new(format!(
                "attaching to {iface} failed ({}); is another XDP program attached to it? \
                 (`ip link show dev {iface}`)",
                failures.join("; ")
            )));
        };

        Ok(Steer {
            iface: iface.to_string(),
            mode,
            xsks: take_map(&mut ebpf, "xsks")?,
            owned: take_map(&mut ebpf, "owned")?,
            reals: take_map(&mut ebpf, "reals")?,
            real_ips: take_map(&mut ebpf, "real_ips")?,
            kernel: take_map(&mut ebpf, "kernel")?,
            owned6: take_map(&mut ebpf, "owned6")?,
            reals6: take_map(&mut ebpf, "reals6")?,
            real_ips6: take_map(&mut ebpf, "real_ips6")?,
            kernel6: take_map(&mut ebpf, "kernel6")?,
            side: take_map(&mut ebpf, "side")?,
            stats: take_map(&mut ebpf, "stats")?,
            _ebpf: ebpf,
        })
    }

    /// The attach mode taken.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Mark this interface as the client side of a two-armed director (`true`): frames from
    /// reals' addresses then go to the kernel, never to the sockets, since a real's replies
    /// come from the server side. `false` (the default): the server side, or the one interface
    /// of a one-armed director.
    pub fn set_client_side_only(&mut self, on: bool) -> Result<(), SteerError> {
        self.side
            .set(0, u32::from(on), 0)
            .map_err(|e| SteerError::with(format!("marking the side of {}", self.iface), &e))
    }

    /// Put an AF_XDP rx socket fd at `queue` in the XSKMAP.
    pub fn set_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), SteerError> {
        if queue >= XSKS_MAX {
            return Err(SteerError::new(format!(
                "queue {queue} on {}: the XSKMAP has {XSKS_MAX} slots",
                self.iface
            )));
        }
        self.xsks.set(queue, fd, 0).map_err(|e| {
            SteerError::with(
                format!("putting socket fd {fd} at queue {queue} of {}", self.iface),
                &e,
            )
        })
    }

    /// Remove the socket at `queue` from the XSKMAP (its frames then go to the kernel).
    /// Removing an empty slot is not an error.
    pub fn clear_socket(&mut self, queue: u32) -> Result<(), SteerError> {
        if queue >= XSKS_MAX {
            return Ok(());
        }
        match self.xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(e) if is_enoent(&e) => Ok(()),
            Err(e) => Err(SteerError::with(
                format!("removing the socket at queue {queue} of {}", self.iface),
                &e,
            )),
        }
    }

    /// Replace the address sets (called at start and on every configuration change): owned
    /// VIP/DIP addresses, reals' (addr, port), the director kernel's own addresses. Adds new
    /// entries and removes stale ones; no window where a still-valid entry is missing.
    ///
    /// Each map is updated in place: stale keys are deleted first (so a full map has room),
    /// then missing keys inserted; keys in both the old and the new set are never touched.
    /// The sizes are checked before any map is changed.
    pub fn set_addresses(
        &mut self,
        owned: &[Ipv4Addr],
        reals: &[SocketAddrV4],
        kernel: &[Ipv4Addr],
    ) -> Result<(), SteerError> {
        let owned: HashSet<u32> = owned.iter().map(|a| addr_key(*a)).collect();
        let real_keys: HashSet<RealKey> = reals.iter().map(RealKey::new).collect();
        let real_ips: HashSet<u32> = reals.iter().map(|r| addr_key(*r.ip())).collect();
        let kernel: HashSet<u32> = kernel.iter().map(|a| addr_key(*a)).collect();
        for (name, len, max) in [
            ("owned addresses", owned.len(), OWNED_MAX),
            ("real servers", real_keys.len(), REALS_MAX),
            ("real server addresses", real_ips.len(), REAL_IPS_MAX),
            ("kernel addresses", kernel.len(), KERNEL_MAX),
        ] {
            if len > max {
                return Err(SteerError::new(format!(
                    "{len} {name} on {}, at most {max}",
                    self.iface
                )));
            }
        }
        replace(&mut self.kernel, &kernel, "kernel")?;
        replace(&mut self.owned, &owned, "owned")?;
        replace(&mut self.reals, &real_keys, "reals")?;
        replace(&mut self.real_ips, &real_ips, "real_ips")?;
        Ok(())
    }

    /// Replace the IPv6 address sets, as [`Steer::set_addresses`] does for IPv4: owned VIP/DIP
    /// addresses (their traffic and the neighbour solicitations for them are steered) and the
    /// reals' \[addr\]:port (their TCP/UDP and ICMPv6 errors are steered on the server side),
    /// the director kernel's own IPv6 addresses (their traffic is never steered).
    pub fn set_addresses6(
        &mut self,
        owned: &[Ipv6Addr],
        reals: &[SocketAddrV6],
        kernel: &[Ipv6Addr],
    ) -> Result<(), SteerError> {
        let kernel: HashSet<[u8; 16]> = kernel.iter().map(Ipv6Addr::octets).collect();
        let owned: HashSet<[u8; 16]> = owned.iter().map(Ipv6Addr::octets).collect();
        let real_keys: HashSet<RealKey6> = reals.iter().map(RealKey6::new).collect();
        let real_ips: HashSet<[u8; 16]> = reals.iter().map(|r| r.ip().octets()).collect();
        for (name, len, max) in [
            ("owned IPv6 addresses", owned.len(), OWNED_MAX),
            ("IPv6 real servers", real_keys.len(), REALS_MAX),
            ("IPv6 real server addresses", real_ips.len(), REAL_IPS_MAX),
            ("kernel IPv6 addresses", kernel.len(), KERNEL_MAX),
        ] {
            if len > max {
                return Err(SteerError::new(format!(
                    "{len} {name} on {}, at most {max}",
                    self.iface
                )));
            }
        }
        replace(&mut self.kernel6, &kernel, "kernel6")?;
        replace(&mut self.owned6, &owned, "owned6")?;
        replace(&mut self.reals6, &real_keys, "reals6")?;
        replace(&mut self.real_ips6, &real_ips, "real_ips6")?;
        Ok(())
    }

    /// Counters summed over CPUs: (redirected, passed). Zeros if the map cannot be read.
    pub fn stats(&self) -> (u64, u64) {
        let c = self.counters().unwrap_or_default();
        (c.redirected, c.passed)
    }

    /// All the program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<SteerCounters, SteerError> {
        let get = |index: u32| -> Result<u64, SteerError> {
            let values = self
                .stats
                .get(&index, 0)
                .map_err(|e| SteerError::with(format!("reading counter {index}"), &e))?;
            Ok(values.iter().fold(0u64, |acc, v| acc.wrapping_add(*v)))
        };
        Ok(SteerCounters {
            redirected: get(st::REDIRECTED)?,
            passed: get(st::PASSED)?,
            no_socket: get(st::NO_SOCKET)?,
            arp_owned: get(st::ARP_OWNED)?,
            to_owned: get(st::TO_OWNED)?,
            from_real: get(st::FROM_REAL)?,
            icmp_from_real: get(st::ICMP_FROM_REAL)?,
            to_kernel: get(st::TO_KERNEL)?,
            arp_other: get(st::ARP_OTHER)?,
            not_ipv4: get(st::NOT_IPV4)?,
            vlan: get(st::VLAN)?,
            other_ipv4: get(st::OTHER_IPV4)?,
            malformed: get(st::MALFORMED)?,
            real_client_side: get(st::REAL_CLIENT_SIDE)?,
            ns_owned: get(st::NS_OWNED)?,
            other_ipv6: get(st::OTHER_IPV6)?,
        })
    }
}

fn is_enoent(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Make the keys of `map` exactly `want`: delete the stale keys, then insert the missing ones.
fn replace<K>(
    map: &mut HashMap<MapData, K, u8>,
    want: &HashSet<K>,
    name: &str,
) -> Result<(), SteerError>
where
    K: aya::Pod + Eq + Hash,
{
    let present: HashSet<K> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(|e| SteerError::with(format!("listing map `{name}`"), &e))?;
    for key in present.difference(want) {
        match map.remove(key) {
            Ok(()) => {}
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(SteerError::with(format!("removing from map `{name}`"), &e)),
        }
    }
    for key in want.difference(&present) {
        map.insert(key, 1, 0)
            .map_err(|e| SteerError::with(format!("inserting into map `{name}`"), &e))?;
    }
    Ok(())
}

/// The IPv6 addresses configured on `iface` (link-local ones included), read with
/// getifaddrs(3) in the calling thread's network namespace.
pub fn kernel_addrs6(iface: &str) -> Vec<Ipv6Addr> {
    kernel_ip_addrs(iface)
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
        .collect()
}

/// The IPv4 addresses configured on `iface` (empty if it has none or does not exist), read
/// with getifaddrs(3) in the calling thread's network namespace.
pub fn kernel_addrs(iface: &str) -> Vec<Ipv4Addr> {
    kernel_ip_addrs(iface)
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// The addresses of both families configured on `iface`, each once, in getifaddrs order.
fn kernel_ip_addrs(iface: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer; on success getifaddrs stores the head of a list
    // that stays valid until the freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is a non-null node of the list returned by getifaddrs, not yet freed.
        // `ifa_name` is a NUL-terminated string when non-null, and `ifa_addr`, when non-null,
        // points at a sockaddr whose `sa_family` says its real type: AF_INET means a
        // `sockaddr_in`, AF_INET6 a `sockaddr_in6`.
        unsafe {
            let ifa = &*node;
            let named = !ifa.ifa_name.is_null()
                && std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() == iface.as_bytes();
            let addr = if !named || ifa.ifa_addr.is_null() {
                None
            } else {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            };
            if let Some(a) = addr {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            node = ifa.ifa_next;
        }
    }
    // SAFETY: `list` came from a successful getifaddrs and is freed exactly once; no reference
    // into it outlives this point.
    unsafe { libc::freeifaddrs(list) };
    out
}
