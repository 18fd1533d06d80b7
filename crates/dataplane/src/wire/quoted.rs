//! The packet an ICMP (RFC 792) or ICMPv6 (RFC 4443) error quotes: its IP header and at
//! least the first 8 bytes of its TCP or UDP header, enough for the ports. A NAT that
//! forwards the error rewrites the quoted addresses and ports the way it rewrote the
//! packet itself (RFC 5508 section 4.2 for IPv4, the same for IPv6).
//!
//! [`Quoted::new_checked`] checks the IP header (as `new_quoted` of its view: the header whole,
//! the payload possibly cut), a TCP or UDP protocol, no later fragment, and the 8 bytes of
//! ports; for IPv6 the extension headers are walked within their bounds. The offsets it
//! found are kept, so no accessor or setter panics afterwards. The quoted L4 checksum is
//! updated only when it was quoted (TCP needs 18 bytes of header, UDP has it in its 8); the
//! IPv4 header checksum is updated incrementally; a UDP checksum of 0 stays 0.

use super::{get128, get16, get32, ipv4, ipv6, proto, put16, put32, AddrChange, Error, Result};
use crate::csum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A read/write view of a quoted packet.
#[derive(Debug, Clone)]
pub struct Quoted<T: AsRef<[u8]>> {
    buffer: T,
    v6: bool,
    /// Offset of the TCP/UDP header (8 bytes at least are there).
    l4: usize,
    proto: u8,
}

mod field {
    /// Addresses in the IPv4 header.
    pub const V4_CHECKSUM: usize = 10;
    pub const V4_SRC: usize = 12;
    pub const V4_DST: usize = 16;
    /// Addresses in the IPv6 header.
    pub const V6_SRC: usize = 8;
    pub const V6_DST: usize = 24;
    /// In the TCP/UDP header.
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const UDP_CHECKSUM: usize = 6;
    pub const TCP_CHECKSUM: usize = 16;
}

pub use super::End;

impl<T: AsRef<[u8]>> Quoted<T> {
    /// Wrap the data of an ICMP (`v6` false) or ICMPv6 (`v6` true) error.
    pub fn new_checked(buffer: T, v6: bool) -> Result<Quoted<T>> {
        let (l4, proto) = if v6 {
            let p = ipv6::Packet::new_quoted(buffer.as_ref())?;
            let c = p.chain()?;
            if c.fragment.is_some_and(|f| f.offset != 0) {
                return Err(Error::Malformed);
            }
            (c.at, c.proto)
        } else {
            let p = ipv4::Packet::new_quoted(buffer.as_ref())?;
            if p.frag_offset() != 0 {
                return Err(Error::Malformed);
            }
            (p.header_len(), p.protocol())
        };
        if !matches!(proto, proto::TCP | proto::UDP) {
            return Err(Error::Malformed);
        }
        if buffer.as_ref().len() < l4 + 8 {
            return Err(Error::Truncated);
        }
        Ok(Quoted {
            buffer,
            v6,
            l4,
            proto,
        })
    }

    /// [`proto::TCP`] or [`proto::UDP`].
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.proto
    }

    #[inline]
    pub fn addr(&self, end: End) -> IpAddr {
        let d = self.buffer.as_ref();
        match (self.v6, end) {
            (false, End::Src) => IpAddr::V4(Ipv4Addr::from(get32(d, field::V4_SRC))),
            (false, End::Dst) => IpAddr::V4(Ipv4Addr::from(get32(d, field::V4_DST))),
            (true, End::Src) => IpAddr::V6(Ipv6Addr::from(get128(d, field::V6_SRC))),
            (true, End::Dst) => IpAddr::V6(Ipv6Addr::from(get128(d, field::V6_DST))),
        }
    }

    #[inline]
    pub fn port(&self, end: End) -> u16 {
        get16(self.buffer.as_ref(), self.l4 + port_at(end))
    }

    /// Where the L4 checksum is, if it was quoted.
    #[inline]
    fn checksum_at(&self) -> Option<usize> {
        let at = self.l4
            + if self.proto == proto::TCP {
                field::TCP_CHECKSUM
            } else {
                field::UDP_CHECKSUM
            };
        (at + 2 <= self.buffer.as_ref().len()).then_some(at)
    }
}

#[inline]
fn port_at(end: End) -> usize {
    match end {
        End::Src => field::SRC_PORT,
        End::Dst => field::DST_PORT,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Quoted<T> {
    /// Rewrite the address and port of one end, keeping the quoted checksums consistent.
    /// An address of the other family is [`Error::Malformed`] and changes nothing.
    pub fn rewrite(&mut self, end: End, addr: IpAddr, port: u16) -> Result<()> {
        let ck_at = self.checksum_at();
        let is_tcp = self.proto == proto::TCP;
        let l4 = self.l4;
        let d = self.buffer.as_mut();
        // The address, in the IP header (and in the IPv4 header checksum).
        let change = match (self.v6, addr) {
            (false, IpAddr::V4(new)) => {
                let at = if end == End::Src {
                    field::V4_SRC
                } else {
                    field::V4_DST
                };
                let old = get32(d, at);
                put32(d, at, u32::from(new));
                let c = csum::update32(get16(d, field::V4_CHECKSUM), old, u32::from(new));
                put16(d, field::V4_CHECKSUM, c);
                AddrChange::V4 {
                    old: Ipv4Addr::from(old),
                    new,
                }
            }
            (true, IpAddr::V6(new)) => {
                let at = if end == End::Src {
                    field::V6_SRC
                } else {
                    field::V6_DST
                };
                let old = Ipv6Addr::from(get128(d, at));
                d[at..at + 16].copy_from_slice(&new.octets());
                AddrChange::V6 { old, new }
            }
            _ => return Err(Error::Malformed),
        };
        // The port, and the L4 checksum (pseudo-header and port) when it was quoted.
        let p = l4 + port_at(end);
        let old_port = get16(d, p);
        put16(d, p, port);
        if let Some(at) = ck_at {
            let c = get16(d, at);
            if is_tcp || c != 0 {
                let c = csum::update16(change.apply(c), old_port, port);
                put16(d, at, if is_tcp { c } else { csum::udp_fix(c) });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{tcp, udp, IpPair};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const REAL: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

    /// An IPv4 TCP packet DIP:80 -> CLIENT:40000 with 4 payload bytes, checksums valid.
    fn v4_tcp() -> Vec<u8> {
        let mut b = vec![0u8; 44];
        ipv4::Repr {
            src: DIP,
            dst: CLIENT,
            protocol: proto::TCP,
            payload_len: 24,
            ttl: 64,
        }
        .emit(&mut b)
        .unwrap();
        tcp::Repr {
            src_port: 80,
            dst_port: 40000,
            seq: 1,
            ack: Some(2),
            flags: tcp::Flags::PSH,
            window: 100,
            mss: None,
        }
        .emit(&mut b[20..])
        .unwrap();
        b[40..].copy_from_slice(b"abcd");
        let ips = IpPair::V4 {
            src: DIP,
            dst: CLIENT,
        };
        tcp::Packet::new_checked(&mut b[20..])
            .unwrap()
            .fill_checksum(&ips);
        b
    }

    #[test]
    fn reads_the_quoted_ends() {
        let b = v4_tcp();
        let q = Quoted::new_checked(&b[..28], false).unwrap();
        assert_eq!(q.protocol(), proto::TCP);
        assert_eq!(q.addr(End::Src), IpAddr::V4(DIP));
        assert_eq!((q.port(End::Src), q.port(End::Dst)), (80, 40000));
    }

    #[test]
    fn a_whole_quote_stays_valid_after_a_rewrite() {
        let mut b = v4_tcp();
        let mut q = Quoted::new_checked(&mut b[..], false).unwrap();
        q.rewrite(End::Src, IpAddr::V4(REAL), 8080).unwrap();
        let ip = ipv4::Packet::new_checked(&b[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src(), REAL);
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(t.src_port(), 8080);
        assert!(t.verify_checksum(&IpPair::V4 {
            src: REAL,
            dst: CLIENT
        }));
    }

    #[test]
    fn a_short_quote_keeps_what_is_not_there_alone() {
        let mut b = v4_tcp();
        let mut q = Quoted::new_checked(&mut b[..28], false).unwrap();
        q.rewrite(End::Src, IpAddr::V4(REAL), 8080).unwrap();
        assert_eq!(get16(&b, 20), 8080);
        assert!(ipv4::Packet::new_quoted(&b[..28])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn udp_zero_checksum_stays_zero_and_others_verify() {
        let mut b = vec![0u8; 32];
        ipv4::Repr {
            src: CLIENT,
            dst: DIP,
            protocol: proto::UDP,
            payload_len: 12,
            ttl: 64,
        }
        .emit(&mut b)
        .unwrap();
        b[20..32].copy_from_slice(&[0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        let mut z = b.clone();
        Quoted::new_checked(&mut z[..], false)
            .unwrap()
            .rewrite(End::Dst, IpAddr::V4(REAL), 5353)
            .unwrap();
        assert_eq!(get16(&z, 26), 0);
        udp::Packet::new_checked(&mut b[20..])
            .unwrap()
            .fill_checksum(&IpPair::V4 {
                src: CLIENT,
                dst: DIP,
            });
        Quoted::new_checked(&mut b[..], false)
            .unwrap()
            .rewrite(End::Dst, IpAddr::V4(REAL), 5353)
            .unwrap();
        let u = udp::Packet::new_checked(&b[20..]).unwrap();
        assert!(u.verify_checksum(&IpPair::V4 {
            src: CLIENT,
            dst: REAL
        }));
        assert_eq!(u.dst_port(), 5353);
    }

    #[test]
    fn ipv6_quote_with_an_extension_header() {
        let (c6, d6) = (
            "2001:db8::100".parse::<Ipv6Addr>().unwrap(),
            "2001:db8::2".parse::<Ipv6Addr>().unwrap(),
        );
        let r6: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let mut b = vec![0u8; 40 + 8 + 20];
        ipv6::Repr {
            src: c6,
            dst: d6,
            next_header: proto::DST_OPTS,
            payload_len: 28,
            hop_limit: 64,
        }
        .emit(&mut b)
        .unwrap();
        b[40] = proto::TCP; // destination options, 8 bytes (PadN)
        b[42..44].copy_from_slice(&[1, 4]);
        tcp::Repr {
            src_port: 40000,
            dst_port: 80,
            seq: 9,
            ack: None,
            flags: tcp::Flags::SYN,
            window: 10,
            mss: None,
        }
        .emit(&mut b[48..])
        .unwrap();
        let ips = IpPair::V6 { src: c6, dst: d6 };
        tcp::Packet::new_checked(&mut b[48..])
            .unwrap()
            .fill_checksum(&ips);
        let mut q = Quoted::new_checked(&mut b[..], true).unwrap();
        assert_eq!(q.addr(End::Dst), IpAddr::V6(d6));
        assert_eq!(q.port(End::Src), 40000);
        assert_eq!(
            q.rewrite(End::Dst, IpAddr::V4(REAL), 1),
            Err(Error::Malformed),
            "family mismatch"
        );
        q.rewrite(End::Dst, IpAddr::V6(r6), 8080).unwrap();
        let t = tcp::Packet::new_checked(&b[48..]).unwrap();
        assert!(t.verify_checksum(&IpPair::V6 { src: c6, dst: r6 }));
        assert_eq!(t.dst_port(), 8080);
    }

    #[test]
    fn hostile_quotes_are_refused() {
        let b = v4_tcp();
        assert_eq!(
            Quoted::new_checked(&b[..27], false).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Quoted::new_checked(&b[..19], false).unwrap_err(),
            Error::Truncated
        );
        let mut f = b.clone();
        f[7] = 1; // a later fragment: no ports in it
        assert_eq!(
            Quoted::new_checked(&f[..], false).unwrap_err(),
            Error::Malformed
        );
        let mut f = b.clone();
        f[9] = proto::ICMP;
        assert_eq!(
            Quoted::new_checked(&f[..], false).unwrap_err(),
            Error::Malformed
        );
        let mut f = b.clone();
        f[0] = 0x4f; // IHL 60 in a 28-byte quote
        assert_eq!(
            Quoted::new_checked(&f[..28], false).unwrap_err(),
            Error::Truncated
        );
        f[0] = 0x44; // IHL 16
        assert_eq!(
            Quoted::new_checked(&f[..], false).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            Quoted::new_checked(&b[..], true).unwrap_err(),
            Error::Malformed
        );
    }
}
