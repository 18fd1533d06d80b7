//! Frame diagnosis for the lab: a tcpdump-like one-line summary, and why a frame the
//! director sends would be refused by a receiver's stack (IPv4/IPv6 header, TCP, UDP, ICMP
//! and ICMPv6 checksums).

use super::host::mac_str;
use std::fmt::Write as _;

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn ip4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// One line, tcpdump-like.
pub fn summary(f: &[u8]) -> String {
    if f.len() < 14 {
        return format!("runt ({} bytes)", f.len());
    }
    let mut s = format!(
        "{} > {} ",
        mac_str(f[6..12].try_into().unwrap()),
        mac_str(f[0..6].try_into().unwrap())
    );
    let et = be16(f, 12);
    let p = &f[14..];
    match et {
        0x0806 if p.len() >= 28 => {
            let op = be16(p, 6);
            let _ = match op {
                1 => write!(
                    s,
                    "ARP who-has {} tell {}",
                    ip4(&p[24..28]),
                    ip4(&p[14..18])
                ),
                2 => write!(
                    s,
                    "ARP reply {} is-at {}",
                    ip4(&p[14..18]),
                    mac_str(p[8..14].try_into().unwrap())
                ),
                _ => write!(s, "ARP op {op}"),
            };
        }
        0x0800 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 15) * 4;
            let tot = usize::from(be16(p, 2));
            let (src, dst) = (ip4(&p[12..16]), ip4(&p[16..20]));
            let l4 = p.get(ihl..tot.min(p.len())).unwrap_or(&[]);
            match p[9] {
                6 if l4.len() >= 20 => {
                    let off = usize::from(l4[12] >> 4) * 4;
                    let fl = l4[13];
                    let flags: String = [
                        (0x02, 'S'),
                        (0x01, 'F'),
                        (0x04, 'R'),
                        (0x08, 'P'),
                        (0x10, '.'),
                    ]
                    .iter()
                    .filter(|(m, _)| fl & m != 0)
                    .map(|(_, c)| *c)
                    .collect();
                    let _ = write!(
                        s,
                        "IP {src}.{} > {dst}.{}: [{flags}] seq {} ack {} win {} len {}",
                        be16(l4, 0),
                        be16(l4, 2),
                        be32(l4, 4),
                        be32(l4, 8),
                        be16(l4, 14),
                        l4.len().saturating_sub(off)
                    );
                }
                1 if l4.len() >= 8 => {
                    let _ = write!(
                        s,
                        "IP {src} > {dst}: ICMP type {} code {} id {} seq {}",
                        l4[0],
                        l4[1],
                        be16(l4, 4),
                        be16(l4, 6)
                    );
                }
                proto => {
                    let _ = write!(s, "IP {src} > {dst}: proto {proto} len {tot}");
                }
            }
        }
        0x86dd => s.push_str("IPv6"),
        _ => {
            let _ = write!(s, "ethertype {et:#06x} len {}", f.len());
        }
    }
    s
}

fn csum_add(mut sum: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        sum += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Why an IPv6 frame the director sends would be refused by a receiver's stack, if it would
/// (TCP, UDP and ICMPv6 right after the fixed header: what the director sends).
fn checksum_problem6(f: &[u8]) -> Option<String> {
    let p = f.get(14..)?;
    if p.len() < 40 || 40 + usize::from(be16(p, 4)) > p.len() {
        return Some("bad IPv6 length".into());
    }
    let l4 = &p[40..40 + usize::from(be16(p, 4))];
    if !matches!(p[6], 6 | 17 | 58) {
        return None;
    }
    let mut sum = csum_add(0, &p[8..40]);
    sum += u32::from(p[6]) + l4.len() as u32;
    (csum_fold(csum_add(sum, l4)) != 0)
        .then(|| format!("bad checksum of IPv6 next header {}", p[6]))
}

/// Why an IPv4 or IPv6 frame the director sends would be refused by a receiver's stack, if
/// it would.
pub fn checksum_problem(f: &[u8]) -> Option<String> {
    if f.len() >= 14 && be16(f, 12) == 0x86dd {
        return checksum_problem6(f);
    }
    if f.len() < 34 || be16(f, 12) != 0x0800 {
        return None;
    }
    let p = &f[14..];
    let ihl = usize::from(p[0] & 15) * 4;
    let tot = usize::from(be16(p, 2));
    if ihl < 20 || tot < ihl || tot > p.len() {
        return Some(format!(
            "bad IPv4 lengths ihl {ihl} total {tot} have {}",
            p.len()
        ));
    }
    if csum_fold(csum_add(0, &p[..ihl])) != 0 {
        return Some("bad IPv4 header checksum".into());
    }
    let l4 = &p[ihl..tot];
    match p[9] {
        6 => {
            let mut sum = csum_add(0, &p[12..20]);
            sum += 6 + l4.len() as u32;
            if csum_fold(csum_add(sum, l4)) != 0 {
                return Some("bad TCP checksum".into());
            }
        }
        1 if csum_fold(csum_add(0, l4)) != 0 => return Some("bad ICMP checksum".into()),
        _ => {}
    }
    None
}
