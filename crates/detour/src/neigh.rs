//! MAC addresses from the kernel: the interfaces' own, and those of next hops (reals and the
//! client-side gateway) from the neighbour table, with resolution triggered where missing.
//! Runs on the control thread only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// An interface's MAC, from sysfs.
pub fn iface_mac(iface: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_mac(text.trim()).ok_or_else(|| format!("{path}: not a MAC: {text:?}"))
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The next hop the kernel uses for `dst` (the gateway, or `dst` itself when on-link) and
/// the interface it leaves by (`ip -4` or `ip -6 route get`).
pub fn next_hop(dst: IpAddr) -> Option<(IpAddr, String)> {
    let family = if dst.is_ipv4() { "-4" } else { "-6" };
    let out = Command::new("ip")
        .args([family, "route", "get", &dst.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_route_get(&String::from_utf8_lossy(&out.stdout), dst)
}

fn parse_route_get(text: &str, dst: IpAddr) -> Option<(IpAddr, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let dev = after("dev")?.to_string();
    // `via inet6 fe80::1` is how a route of one family through the other's gateway reads.
    let via = after("via")
        .and_then(|v| v.parse().ok())
        .filter(|v: &IpAddr| v.is_ipv4() == dst.is_ipv4())
        .unwrap_or(dst);
    Some((via, dev))
}

/// The kernel's default gateway on `iface`, if it has one.
pub fn default_gateway(iface: &str) -> Option<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "default", "dev", iface])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "via")
        .and_then(|i| words.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// A neighbour entry: (address, device) -> MAC.
pub type Entry = (IpAddr, String, [u8; 6]);

/// Complete entries of the kernel's neighbour tables: ARP from `/proc/net/arp`, IPv6 from
/// `ip -6 neigh show` (only when asked for: `want6`).
pub fn neighbour_table(want6: bool) -> Vec<Entry> {
    let text = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    let mut t = parse_arp(&text);
    if want6 {
        if let Ok(out) = Command::new("ip").args(["-6", "neigh", "show"]).output() {
            t.extend(parse_neigh6(&String::from_utf8_lossy(&out.stdout)));
        }
    }
    t
}

fn parse_arp(text: &str) -> Vec<Entry> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (ip, flags, mac, dev) = (f.first()?, f.get(2)?, f.get(3)?, f.get(5)?);
            // ATF_COM (0x2): the entry is complete.
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None;
            }
            Some((ip.parse().ok()?, dev.to_string(), parse_mac(mac)?))
        })
        .collect()
}

/// `ip -6 neigh show` lines: `<addr> dev <dev> lladdr <mac> [router] <STATE>`; entries
/// without a link-layer address (INCOMPLETE, FAILED) are left out.
fn parse_neigh6(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| f.iter().position(|w| *w == k).and_then(|i| f.get(i + 1));
            let ip: Ipv6Addr = f.first()?.parse().ok()?;
            let state = *f.last()?;
            if matches!(state, "INCOMPLETE" | "FAILED" | "NOARP") {
                return None;
            }
            Some((
                IpAddr::V6(ip),
                after("dev")?.to_string(),
                parse_mac(after("lladdr")?)?,
            ))
        })
        .collect()
}

/// Routes change rarely: a next hop found by `ip route get` is reused this long.
const ROUTE_TTL: Duration = Duration::from_secs(30);

/// Next hops by destination, so the 2-second MAC refresh reads only /proc/net/arp and runs
/// `ip route get` only for new destinations or every [`ROUTE_TTL`].
#[derive(Default)]
pub struct Routes(HashMap<IpAddr, (IpAddr, String, Instant)>);

impl Routes {
    fn next_hop(&mut self, dst: IpAddr) -> Option<(IpAddr, String)> {
        if let Some((hop, dev, at)) = self.0.get(&dst) {
            if at.elapsed() < ROUTE_TTL {
                return Some((*hop, dev.clone()));
            }
        }
        let (hop, dev) = next_hop(dst)?;
        self.0.insert(dst, (hop, dev.clone(), Instant::now()));
        Some((hop, dev))
    }
}

/// The MAC for sending to `dst`: its next hop's entry in the neighbour table. When missing,
/// a datagram to the discard port makes the kernel resolve it; the caller retries later.
pub fn resolve(dst: IpAddr, table: &[Entry], routes: &mut Routes) -> Option<[u8; 6]> {
    let (hop, dev) = routes.next_hop(dst)?;
    if let Some((_, _, mac)) = table.iter().find(|(ip, d, _)| *ip == hop && *d == dev) {
        return Some(*mac);
    }
    let (bind, to) = match hop {
        IpAddr::V4(h) => ("0.0.0.0:0", SocketAddr::V4(SocketAddrV4::new(h, 9))),
        IpAddr::V6(h) => {
            // A link-local next hop needs its interface as the scope.
            let scope = std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            ("[::]:0", SocketAddr::V6(SocketAddrV6::new(h, 9, 0, scope)))
        }
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(b"", to);
    }
    None
}

/// The kernel's neighbour table as the control plane's source of MACs.
#[derive(Default)]
pub struct Kernel {
    routes: Routes,
}

impl detour_control::Neighbours for Kernel {
    fn fill(
        &mut self,
        s: &mut detour_config::Snapshot,
        gateway: Ipv4Addr,
        missing: &mut Vec<String>,
    ) {
        let table = neighbour_table(s.reals.iter().any(|r| r.addr.is_ipv6()));
        for r in &mut s.reals {
            match resolve(r.addr.ip(), &table, &mut self.routes) {
                Some(m) => r.mac = m,
                None => missing.push(format!("real {}", r.addr)),
            }
        }
        match resolve(gateway.into(), &table, &mut self.routes) {
            Some(m) => s.gateway_mac = m,
            None => missing.push(format!("gateway {gateway}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_get_output_gives_the_next_hop_and_device() {
        let ip: IpAddr = "198.18.1.11".parse().unwrap();
        assert_eq!(
            parse_route_get("198.18.1.11 dev ds src 198.18.1.1 uid 0 \n    cache \n", ip),
            Some((ip, "ds".to_string()))
        );
        assert_eq!(
            parse_route_get(
                "198.18.9.9 via 198.18.1.254 dev ds src 198.18.1.1 uid 0",
                "198.18.9.9".parse().unwrap()
            ),
            Some(("198.18.1.254".parse().unwrap(), "ds".to_string()))
        );
        assert_eq!(parse_route_get("unreachable", ip), None);
        let d6: IpAddr = "2001:db8:1::2".parse().unwrap();
        assert_eq!(
            parse_route_get("2001:db8:1::2 from :: dev ds proto kernel src 2001:db8:1::1 metric 256 pref medium", d6),
            Some((d6, "ds".to_string()))
        );
        assert_eq!(
            parse_route_get(
                "2001:db8:9::9 from :: via 2001:db8:1::fe dev ds src 2001:db8:1::1",
                d6
            ),
            Some(("2001:db8:1::fe".parse().unwrap(), "ds".to_string()))
        );
    }

    #[test]
    fn only_resolved_ipv6_neighbours_count() {
        let t = "2001:db8:1::2 dev ds lladdr aa:bb:cc:dd:ee:02 REACHABLE\n\
                 2001:db8:1::3 dev ds lladdr aa:bb:cc:dd:ee:03 router STALE\n\
                 2001:db8:1::4 dev ds INCOMPLETE\n\
                 2001:db8:1::5 dev ds FAILED\n\
                 fe80::1 dev ds lladdr aa:bb:cc:dd:ee:06 DELAY\n";
        let e = parse_neigh6(t);
        let ips: Vec<String> = e.iter().map(|(ip, _, _)| ip.to_string()).collect();
        assert_eq!(ips, ["2001:db8:1::2", "2001:db8:1::3", "fe80::1"]);
        assert_eq!(e[1].2, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 3]);
    }

    #[test]
    fn only_complete_arp_entries_count() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 198.18.1.11      0x1         0x2         aa:bb:cc:dd:ee:01     *        ds\n\
                 198.18.1.12      0x1         0x0         00:00:00:00:00:00     *        ds\n";
        let e = parse_arp(t);
        assert_eq!(
            e,
            vec![(
                "198.18.1.11".parse().unwrap(),
                "ds".to_string(),
                [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 1]
            )]
        );
    }

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01"),
            Some([2, 0, 0xa, 0xff, 0, 1])
        );
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(fmt_mac([2, 0, 0xa, 0xff, 0, 1]), "02:00:0a:ff:00:01");
    }
}
