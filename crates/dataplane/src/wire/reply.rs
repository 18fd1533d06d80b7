//! A TCP segment the director originates (SYN-ACK, RST, the redirect with FIN, an ACK), as a
//! value that writes itself into a frame: Ethernet II, an IPv4 header (no options, DF,
//! identification 0) or an IPv6 header (no extension headers), the TCP header (an MSS option
//! when asked), the payload, and both checksums. [`TcpReply::emit`] checks the buffer's length
//! first and writes nothing when it is too short.

use super::{ethernet, ethertype, ipv4, ipv6, proto, tcp, Error, IpPair, Result};
use crate::csum;

/// A TCP segment from the director, whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpReply<'a> {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Source and destination addresses (the family picks the IP header).
    pub ips: IpPair,
    /// TTL or hop limit.
    pub hop_limit: u8,
    pub tcp: tcp::Repr,
    pub payload: &'a [u8],
}

impl TcpReply<'_> {
    /// Length of the IP header this reply carries.
    #[inline]
    fn ip_header_len(&self) -> usize {
        match self.ips {
            IpPair::V4 { .. } => ipv4::MIN_HEADER_LEN,
            IpPair::V6 { .. } => ipv6::HEADER_LEN,
        }
    }

    /// Length of the TCP segment (header and payload).
    #[inline]
    fn segment_len(&self) -> usize {
        self.tcp.header_len() + self.payload.len()
    }

    /// Length of the whole frame.
    #[inline]
    pub fn frame_len(&self) -> usize {
        ethernet::HEADER_LEN + self.ip_header_len() + self.segment_len()
    }

    /// Write the frame into `buf[..frame_len]`; returns its length. [`Error::Truncated`] when
    /// `buf` is too short, [`Error::Malformed`] when the segment cannot fit an IP packet.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.frame_len();
        if self.ip_header_len() + self.segment_len() > usize::from(u16::MAX) {
            return Err(Error::Malformed);
        }
        let Some(frame) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        let seg = self.segment_len();
        let (eth, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
        let et = match self.ips {
            IpPair::V4 { .. } => ethertype::IPV4,
            IpPair::V6 { .. } => ethertype::IPV6,
        };
        ethernet::Repr {
            src: self.src_mac,
            dst: self.dst_mac,
            ethertype: et,
        }
        .emit(eth)?;
        let hl = match self.ips {
            IpPair::V4 { src, dst } => ipv4::Repr {
                src,
                dst,
                protocol: proto::TCP,
                payload_len: seg,
                ttl: self.hop_limit,
            }
            .emit(rest)?,
            IpPair::V6 { src, dst } => ipv6::Repr {
                src,
                dst,
                next_header: proto::TCP,
                payload_len: seg,
                hop_limit: self.hop_limit,
            }
            .emit(rest)?,
        };
        let segment = &mut rest[hl..];
        let th = self.tcp.emit(segment)?;
        segment[th..].copy_from_slice(self.payload);
        // The checksum from the values and the payload's source, not from the bytes just
        // written (reading them back would stall on store forwarding).
        let head = self.ips.pseudo(proto::TCP, seg) + self.tcp.header_sum();
        let check = !csum::fold(csum::sum(head, self.payload));
        tcp::Packet::new_checked(segment)?.set_checksum(check);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const US: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

    fn reply(ips: IpPair, payload: &[u8]) -> TcpReply<'_> {
        TcpReply {
            src_mac: US,
            dst_mac: PEER,
            ips,
            hop_limit: 64,
            tcp: tcp::Repr {
                src_port: 80,
                dst_port: 40000,
                seq: 0x0102_0304,
                ack: Some(0x0a0b_0c0d),
                flags: tcp::Flags::FIN.with(tcp::Flags::PSH),
                window: 65535,
                mss: None,
            },
            payload,
        }
    }

    /// The expected IPv4 frame, written out by hand: Ethernet, IPv4 (checksum computed by the
    /// byte-pair loop of RFC 1071 below), TCP, payload.
    #[test]
    fn ipv4_redirect_bytes_are_exact() {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 100));
        let r = reply(IpPair::V4 { src: s, dst: d }, b"HTTP");
        let mut buf = [0xEEu8; 80];
        assert_eq!(r.emit(&mut buf), Ok(14 + 20 + 20 + 4));
        assert_eq!(buf[58..], [0xEE; 22], "nothing past the frame");
        let mut want = vec![2, 0, 0, 0, 0, 0x10, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let ip = [
            0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 100,
        ];
        want.extend_from_slice(&ip);
        want.extend_from_slice(&[
            0, 80, 0x9c, 0x40, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x50, 0x19, 0xff, 0xff, 0, 0, 0,
            0,
        ]);
        want.extend_from_slice(b"HTTP");
        let ipc = slow_checksum(&want[14..34], &[]);
        want[24..26].copy_from_slice(&ipc.to_be_bytes());
        let pseudo = [198, 18, 0, 1, 198, 18, 0, 100, 0, 6, 0, 24];
        let tc = slow_checksum(&pseudo, &want[34..]);
        want[50..52].copy_from_slice(&tc.to_be_bytes());
        assert_eq!(buf[..58], want[..]);
    }

    /// RFC 1071 section 4.1, one byte pair at a time, independent of `csum`.
    fn slow_checksum(a: &[u8], b: &[u8]) -> u16 {
        let bytes: Vec<u8> = a.iter().chain(b).copied().collect();
        let mut s: u32 = 0;
        for pair in bytes.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            s += u32::from(w);
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn ipv6_syn_ack_parses_back() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::100".parse().unwrap(),
        );
        let ips = IpPair::V6 { src: s, dst: d };
        let mut r = reply(ips, b"");
        r.tcp.flags = tcp::Flags::SYN;
        r.tcp.mss = Some(1440);
        let mut buf = [0u8; 200];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, 14 + 40 + 24);
        let eth = ethernet::Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            (eth.dst(), eth.src(), eth.ethertype()),
            (PEER, US, ethertype::IPV6)
        );
        let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit(), ip.payload_len()),
            (s, d, 64, 24)
        );
        let c = ip.chain().unwrap();
        assert_eq!((c.proto, c.at), (proto::TCP, 40));
        let t = tcp::Packet::new_checked(ip.upper(&c)).unwrap();
        assert!(t.verify_checksum(&ips));
        assert_eq!((t.flags(), t.mss()), (tcp::Flags::SYN_ACK, Some(1440)));
    }

    #[test]
    fn a_short_buffer_is_left_untouched() {
        let ips = IpPair::V4 {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 100),
        };
        let r = reply(ips, b"HTTP/1.1 302");
        let mut buf = [0x55u8; 14 + 20 + 20 + 11];
        assert_eq!(r.emit(&mut buf), Err(Error::Truncated));
        assert_eq!(buf, [0x55; 65]);
        let huge = [0u8; 65_500];
        assert_eq!(
            reply(ips, &huge).emit(&mut [0; 70_000]),
            Err(Error::Malformed)
        );
    }
}
