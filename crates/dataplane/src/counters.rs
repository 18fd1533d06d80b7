//! Per-worker counters: every outcome of a frame is counted here, never logged.

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Shorter than an Ethernet header.
    Runt,
    /// IPv4 header malformed: version, length, header checksum.
    BadIpv4,
    /// An IPv4 fragment for an address the director owns (fragments are not reassembled).
    Fragment,
    /// TCP header malformed or truncated.
    BadTcp,
    /// UDP header malformed or truncated.
    BadUdp,
    /// ICMP message malformed or truncated, or an ICMP type the director does not handle.
    BadIcmp,
    /// ARP packet malformed.
    BadArp,
    /// To an owned address, but to no configured port or protocol.
    NoService,
    /// TTL would reach zero on forwarding.
    TtlExceeded,
    /// The MAC of the next hop (a real, or the client-side gateway) is not known yet.
    NoNeighbour,
    /// An ACK whose cookie did not check (forged, stale, or from before a restart); a RST is sent.
    BadCookie,
    /// A pure ACK or a RST to the responder: nothing to answer.
    NothingToAnswer,
    /// A segment of a split request head that did not follow the collected bytes.
    OutOfOrder,
    /// The reply did not fit the frame buffer.
    NoRoom,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::Runt,
        Reason::BadIpv4,
        Reason::Fragment,
        Reason::BadTcp,
        Reason::BadUdp,
        Reason::BadIcmp,
        Reason::BadArp,
        Reason::NoService,
        Reason::TtlExceeded,
        Reason::NoNeighbour,
        Reason::BadCookie,
        Reason::NothingToAnswer,
        Reason::OutOfOrder,
        Reason::NoRoom,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Reason::Runt => "runt",
            Reason::BadIpv4 => "bad_ipv4",
            Reason::Fragment => "fragment",
            Reason::BadTcp => "bad_tcp",
            Reason::BadUdp => "bad_udp",
            Reason::BadIcmp => "bad_icmp",
            Reason::BadArp => "bad_arp",
            Reason::NoService => "no_service",
            Reason::TtlExceeded => "ttl_exceeded",
            Reason::NoNeighbour => "no_neighbour",
            Reason::BadCookie => "bad_cookie",
            Reason::NothingToAnswer => "nothing_to_answer",
            Reason::OutOfOrder => "out_of_order",
            Reason::NoRoom => "no_room",
        }
    }
}

/// Counters of one worker. Plain integers: only the worker writes them; the runtime copies
/// them out between batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx: u64,
    pub tx: u64,
    /// Handed to the kernel (not the director's traffic, ARP replies to the kernel, IPv6...).
    pub pass: u64,
    pub ipv6: u64,
    /// Client -> DIP frames forwarded to a real (its own or a backup).
    pub to_real: u64,
    pub to_real_bytes: u64,
    /// Real -> client frames forwarded back.
    pub to_client: u64,
    pub to_client_bytes: u64,
    /// Frames forwarded to a backup real (also counted in `to_real`).
    pub to_backup: u64,
    /// ICMP errors translated for a forwarded flow.
    pub icmp_translated: u64,
    pub syn_acks: u64,
    /// Redirect responses sent (each retransmission too).
    pub redirects: u64,
    pub bad_requests: u64,
    pub too_large: u64,
    pub unavailable: u64,
    pub uri_too_long: u64,
    pub rsts: u64,
    pub fin_acks: u64,
    pub arp_replies: u64,
    pub echo_replies: u64,
    /// Request heads kept for more segments, and live ones evicted to make room.
    pub heads_kept: u64,
    pub heads_evicted: u64,
    pub backup_flows_evicted: u64,
    drops: [u64; Reason::COUNT],
}

impl Counters {
    #[inline]
    pub fn drop(&mut self, r: Reason) {
        self.drops[r as usize] += 1;
    }
    pub fn dropped(&self, r: Reason) -> u64 {
        self.drops[r as usize]
    }
    pub fn drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// Drops by reason, with names, for reports.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r.name(), self.drops[r as usize]))
    }
}
