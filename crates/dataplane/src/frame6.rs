//! The frame an IPv6 path works on: what the classifier learned of its IPv6 packet (where
//! the upper layer is after the bounded extension-header walk, the fields every path reads),
//! read once through the checked views of [`crate::wire`].
//!
//! An [`Ip6`] is made only by [`Ip6::parse`] from a checked view of the same frame, so the
//! views it hands back over that frame ([`Ip6::packet_mut`], [`Ip6::l4`]) are always there;
//! given another buffer they come back empty (`None`), never panic.

use crate::counters::Reason;
use crate::frame::{Net, L3};
use crate::wire::{ipv6, IpPair};
use std::net::{IpAddr, Ipv6Addr};

/// The fixed part of a classified IPv6 frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ip6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (after the extension headers).
    pub proto: u8,
    pub hop_limit: u8,
    /// A fragment (first or later): the walk stopped at its fragment header.
    pub frag: bool,
    /// Offset of the upper-layer header in the frame.
    l4: usize,
    /// End of the IPv6 packet in the frame (Ethernet padding excluded).
    end: usize,
}

impl Ip6 {
    /// Read the IPv6 packet of `frame` (an Ethernet frame of type IPv6) and walk its extension
    /// headers. A malformed header or chain is [`Reason::BadIpv6`].
    #[inline]
    pub(crate) fn parse(frame: &[u8]) -> Result<Ip6, Reason> {
        let p = frame
            .get(L3..)
            .and_then(|b| ipv6::Packet::new_checked(b).ok())
            .ok_or(Reason::BadIpv6)?;
        let c = p.chain().map_err(|_| Reason::BadIpv6)?;
        Ok(Ip6 {
            src: p.src(),
            dst: p.dst(),
            proto: c.proto,
            hop_limit: p.hop_limit(),
            frag: c.fragment.is_some(),
            l4: L3 + c.at,
            end: L3 + ipv6::HEADER_LEN + usize::from(p.payload_len()),
        })
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

    /// The IPv6 packet of the frame this was parsed from, writable.
    #[inline]
    pub(crate) fn packet_mut<'a>(&self, frame: &'a mut [u8]) -> Option<ipv6::Packet<&'a mut [u8]>> {
        ipv6::Packet::new_checked(frame.get_mut(L3..self.end)?).ok()
    }

    /// The upper-layer bytes of the frame this was parsed from, writable.
    #[inline]
    pub(crate) fn l4_mut<'a>(&self, frame: &'a mut [u8]) -> &'a mut [u8] {
        frame.get_mut(self.l4..self.end).unwrap_or(&mut [])
    }
}

impl Net for Ip6 {
    type Addr = [u8; 16];
    const OWN_MSS: u16 = 1440;
    #[inline]
    fn pair(&self) -> IpPair {
        IpPair::V6 {
            src: self.src,
            dst: self.dst,
        }
    }
    #[inline]
    fn l4<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.l4..self.end).unwrap_or(&[])
    }
    #[inline]
    fn cookie_addrs(&self) -> ([u8; 16], [u8; 16]) {
        (self.src.octets(), self.dst.octets())
    }
    #[inline]
    fn hosts(&self) -> (Ipv6Addr, Ipv6Addr) {
        (self.src, self.dst)
    }
    #[inline]
    fn dst_ip(&self) -> IpAddr {
        IpAddr::V6(self.dst)
    }
}
