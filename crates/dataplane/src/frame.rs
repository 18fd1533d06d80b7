//! The frame a path works on: what the classifier learned of its IPv4 packet (where the
//! layers are, the fields every path reads), read once through the checked views of
//! [`crate::wire`], and the context every path gets (snapshot, counters, egress, port, time).
//!
//! An [`Ip`] is made only by [`Ip::parse`] from a checked view of the same frame, so the
//! views it hands back over that frame ([`Ip::packet_mut`], [`Ip::l4`]) are always there;
//! given another buffer they come back empty (`None`), never panic.

use crate::cookie::CookieAddr;
use crate::counters::{Counters, Reason};
use crate::csum;
use crate::egress::{Egress, Verdict};
use crate::wire::{ethernet, ipv4, tcp, IpPair};
use crate::Port;
use detour_config::Snapshot;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where the IP packet starts in a frame.
pub(crate) const L3: usize = ethernet::HEADER_LEN;
/// TTL (hop limit) of the packets the director originates.
pub(crate) const OWN_TTL: u8 = 64;

/// What every path gets besides the frame.
pub(crate) struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub c: &'a mut Counters,
    pub eg: &'a Egress,
    /// The port the frame arrived on.
    pub port: Port,
    /// Wall-clock milliseconds.
    pub now: u64,
    /// The first pass of a two-pass batch ([`crate::Worker::process_first`]): a segment that
    /// opens a connection to the responder (a SYN, or a ClientHello past the batch's handshake
    /// budget) is not answered now but left for the second pass.
    pub first_pass: bool,
    /// Set when this frame was left for the second pass.
    pub deferred: bool,
    /// The second pass of a batch that came in full: SYNs spend `syn_budget`.
    pub second_full: bool,
    /// SYN-ACKs the current full batch may still send.
    pub syn_budget: &'a mut usize,
}

impl Ctx<'_> {
    /// What becomes of a SYN without ACK (a new connection; the whole of a SYN flood) before
    /// the responder handles it: in the first pass it is left for the second (`Some`, and
    /// nothing of the frame has been changed or counted: the second pass handles it from the
    /// start); in the second pass of a full batch it spends the batch's SYN budget or, past
    /// it, is dropped as [`Reason::SynDeferred`]. `None`: handle it now.
    #[inline]
    pub(crate) fn hold_syn<I: Net>(&mut self, t: &Tcp<I>) -> Option<Verdict> {
        if !t.has(tcp::Flags::SYN) || t.has(tcp::Flags::ACK) {
            return None;
        }
        if self.first_pass {
            self.deferred = true;
            return Some(Verdict::Drop(Reason::NothingToAnswer));
        }
        if self.second_full {
            if *self.syn_budget == 0 {
                return Some(Verdict::Drop(Reason::SynDeferred));
            }
            *self.syn_budget -= 1;
        }
        None
    }
}

/// The fixed part of a classified IPv4 frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    /// A fragment (first or later).
    pub frag: bool,
    /// A fragment other than the first: no L4 header.
    pub later_frag: bool,
    /// Offset of the L4 header in the frame (the IPv4 header is `L3..l4`).
    l4: usize,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    end: usize,
}

impl Ip {
    /// Read the IPv4 packet of `frame` (an Ethernet frame of type IPv4).
    #[inline]
    pub(crate) fn parse(frame: &[u8]) -> Result<Ip, Reason> {
        let p = frame
            .get(L3..)
            .and_then(|b| ipv4::Packet::new_checked(b).ok())
            .ok_or(Reason::BadIpv4)?;
        Ok(Ip {
            src: p.src(),
            dst: p.dst(),
            proto: p.protocol(),
            ttl: p.ttl(),
            frag: p.is_fragment(),
            later_frag: p.frag_offset() != 0,
            l4: L3 + p.header_len(),
            end: L3 + usize::from(p.total_len()),
        })
    }

    /// Whether the header checksum of the frame this was parsed from verifies (computed on
    /// demand: the paths that pass a frame on never pay for it).
    #[inline]
    pub(crate) fn header_ok(&self, frame: &[u8]) -> bool {
        // RFC 791: the header, checksum included, sums to all ones. The usual 20-byte header
        // as a fixed-size array, so that the sum is unrolled.
        match frame.get(L3..self.l4) {
            Some(h) => match <&[u8; 20]>::try_from(h) {
                Ok(h20) => csum::sum(0, h20) == 0xFFFF,
                Err(_) => csum::sum(0, h) == 0xFFFF,
            },
            None => false,
        }
    }

    /// Length of the IP packet (what the byte counters count).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - L3
    }

    /// Length of the frame without its padding.
    #[inline]
    pub(crate) fn frame_len(&self) -> usize {
        self.end
    }

    /// The addresses, for pseudo-headers.
    #[inline]
    pub(crate) fn pair(&self) -> IpPair {
        IpPair::V4 {
            src: self.src,
            dst: self.dst,
        }
    }

    /// The L4 bytes (header and payload) of the frame this was parsed from.
    #[inline]
    pub(crate) fn l4<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.l4..self.end).unwrap_or(&[])
    }

    /// The L4 bytes of the frame this was parsed from, writable.
    #[inline]
    pub(crate) fn l4_mut<'a>(&self, frame: &'a mut [u8]) -> &'a mut [u8] {
        frame.get_mut(self.l4..self.end).unwrap_or(&mut [])
    }

    /// The fixed part (20 bytes) of the IPv4 header of the frame this was parsed from,
    /// writable, without checking the header again (the parse did); `None` for a buffer too
    /// short to be that frame.
    #[inline]
    pub(crate) fn header_mut<'a>(
        &self,
        frame: &'a mut [u8],
    ) -> Option<&'a mut [u8; ipv4::MIN_HEADER_LEN]> {
        frame.get_mut(L3..)?.first_chunk_mut()
    }

    /// The IPv4 packet of the frame this was parsed from, writable.
    #[inline]
    pub(crate) fn packet_mut<'a>(&self, frame: &'a mut [u8]) -> Option<ipv4::Packet<&'a mut [u8]>> {
        ipv4::Packet::new_checked(frame.get_mut(L3..self.end)?).ok()
    }
}

/// What the family-agnostic paths (the responder, TCP parsing) need of a classified IP
/// packet: [`Ip`] for IPv4, [`crate::frame6::Ip6`] for IPv6. Generic code is compiled once per
/// family, so neither pays for the other.
pub(crate) trait Net: Copy {
    /// A cookie's address type (`[u8; 4]` or `[u8; 16]`).
    type Addr: CookieAddr;
    /// The MSS the responder's SYN-ACK offers: a 1500-byte MTU less this family's IP and TCP
    /// headers.
    const OWN_MSS: u16;
    /// The addresses, for pseudo-headers.
    fn pair(&self) -> IpPair;
    /// The L4 bytes (header and payload) of the frame this was parsed from.
    fn l4<'a>(&self, frame: &'a [u8]) -> &'a [u8];
    /// Source and destination as cookies bind them.
    fn cookie_addrs(&self) -> (Self::Addr, Self::Addr);
    /// Source and destination in full as the tables and the hash predictor key them (IPv6;
    /// IPv4 mapped, `::ffff:a.b.c.d`).
    fn hosts(&self) -> (Ipv6Addr, Ipv6Addr);
    /// The destination (the VIP of `%h`).
    fn dst_ip(&self) -> IpAddr;
}

impl Net for Ip {
    type Addr = [u8; 4];
    const OWN_MSS: u16 = 1460;
    #[inline]
    fn pair(&self) -> IpPair {
        Ip::pair(self)
    }
    #[inline]
    fn l4<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        Ip::l4(self, frame)
    }
    #[inline]
    fn cookie_addrs(&self) -> ([u8; 4], [u8; 4]) {
        (self.src.octets(), self.dst.octets())
    }
    #[inline]
    fn hosts(&self) -> (Ipv6Addr, Ipv6Addr) {
        (self.src.to_ipv6_mapped(), self.dst.to_ipv6_mapped())
    }
    #[inline]
    fn dst_ip(&self) -> IpAddr {
        IpAddr::V4(self.dst)
    }
}

/// The fields of a TCP segment every TCP path reads, read once from a checked view. It
/// refers to its [`Ip`] rather than holding a copy (a copy of a value just stored field by
/// field is a wide load that stalls on store forwarding).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tcp<'a, I: Net = Ip> {
    pub ip: &'a I,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: tcp::Flags,
    /// The MSS option of a SYN (not read on other segments).
    pub mss: Option<u16>,
    /// Payload length.
    pub plen: usize,
}

impl<'a, I: Net> Tcp<'a, I> {
    /// Read the TCP header of the frame `ip` was parsed from.
    #[inline]
    pub(crate) fn parse(frame: &[u8], ip: &'a I) -> Result<Tcp<'a, I>, Reason> {
        let t = tcp::Packet::new_checked(ip.l4(frame)).map_err(|_| Reason::BadTcp)?;
        Ok(Tcp {
            ip,
            sport: t.src_port(),
            dport: t.dst_port(),
            seq: t.seq(),
            ack: t.ack_number(),
            flags: t.flags(),
            mss: if t.syn() { t.mss() } else { None },
            plen: t.payload().len(),
        })
    }

    #[inline]
    pub(crate) fn has(&self, f: tcp::Flags) -> bool {
        self.flags.has(f)
    }

    /// The payload, in the frame this was parsed from (empty for another buffer).
    #[inline]
    pub(crate) fn payload<'b>(&self, frame: &'b [u8]) -> &'b [u8] {
        let l4 = self.ip.l4(frame);
        l4.get(l4.len().saturating_sub(self.plen)..).unwrap_or(&[])
    }

    /// Whether the checksum verifies (pseudo-header included).
    #[inline]
    pub(crate) fn checksum_ok(&self, frame: &[u8]) -> bool {
        tcp::Packet::new_checked(self.ip.l4(frame))
            .is_ok_and(|t| t.verify_checksum(&self.ip.pair()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethertype, proto};

    /// An Ethernet frame with an IPv4 header of `ihl` words (options NOP-filled), TCP
    /// protocol, `payload` after it, the header checksum filled, and 4 bytes of padding.
    fn frame(ihl: u8, payload: &[u8]) -> Vec<u8> {
        let hl = usize::from(ihl) * 4;
        let mut f = vec![0u8; L3 + hl];
        f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let total = (hl + payload.len()) as u16;
        let h = &mut f[L3..];
        h[0] = 0x40 | ihl;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6] = 0x40;
        h[8] = 64;
        h[9] = proto::TCP;
        h[12..16].copy_from_slice(&[198, 18, 0, 100]);
        h[16..20].copy_from_slice(&[198, 18, 0, 2]);
        h[20..].fill(1);
        let c = csum::checksum(&f[L3..L3 + hl]);
        f[L3 + 10..L3 + 12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0xEE; 4]);
        f
    }

    #[test]
    fn parse_reads_the_fields_and_trims_the_padding() {
        let f = frame(5, b"0123");
        let ip = Ip::parse(&f).unwrap();
        assert_eq!(
            (ip.src, ip.dst),
            (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 2))
        );
        assert_eq!(
            (ip.proto, ip.ttl, ip.frag, ip.later_frag),
            (proto::TCP, 64, false, false)
        );
        assert_eq!((ip.len(), ip.frame_len()), (24, L3 + 24));
        assert_eq!(ip.l4(&f), b"0123");
        assert!(ip.header_ok(&f));
        assert_eq!(ip.packet_mut(&mut f.clone()).unwrap().payload(), b"0123");
    }

    #[test]
    fn header_checksums_are_checked_with_and_without_options() {
        for ihl in [5, 6, 15] {
            let mut f = frame(ihl, b"xy");
            let ip = Ip::parse(&f).unwrap();
            assert!(ip.header_ok(&f), "ihl {ihl}");
            assert_eq!(ip.l4(&f), b"xy");
            f[L3 + 8] = 63; // TTL changed, checksum not
            assert!(!ip.header_ok(&f), "ihl {ihl}");
        }
    }

    #[test]
    fn a_bad_header_is_bad_ipv4_and_another_buffer_gives_nothing() {
        let mut f = frame(5, b"");
        f[L3] = 0x44;
        assert_eq!(Ip::parse(&f).unwrap_err(), Reason::BadIpv4);
        assert_eq!(Ip::parse(&f[..L3 + 19]).unwrap_err(), Reason::BadIpv4);
        let f = frame(6, b"abcdef");
        let ip = Ip::parse(&f).unwrap();
        let short = &mut [0u8; 20][..];
        assert!(ip.packet_mut(short).is_none());
        assert!(ip.l4(short).is_empty());
        assert!(!ip.header_ok(short));
    }
}
