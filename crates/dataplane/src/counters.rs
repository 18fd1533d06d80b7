//! Per-worker counters: every outcome of a frame is counted here, never logged.

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Shorter than an Ethernet header.
    Runt,
    /// IPv4 header malformed: version, length, header checksum.
    BadIpv4,
    /// An IPv4 or IPv6 fragment for an address the director owns, or one from a real (fragments
    /// are not reassembled).
    Fragment,
    /// TCP header malformed or truncated.
    BadTcp,
    /// UDP header malformed or truncated.
    BadUdp,
    /// ICMP message malformed, truncated or with a bad checksum, or an ICMP type the director
    /// does not handle.
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
    /// A pure ACK or a RST to the responder: nothing to answer. The normal end of most
    /// segments a client sends the responder, so not counted in [`Counters::drops`].
    NothingToAnswer,
    /// A segment of a split request head that did not follow the collected bytes.
    OutOfOrder,
    /// The reply did not fit the frame buffer.
    NoRoom,
    /// A TCP segment the responder would answer (to a VIP, a DIP it answers for, or a port
    /// with no service) whose checksum is wrong: never answered.
    BadTcpChecksum,
    /// To an owned address from a source no host may use (0.0.0.0/8, 127.0.0.0/8, multicast
    /// 224.0.0.0/4, 240.0.0.0/4 with the broadcast address) or from one of the director's
    /// own addresses: never answered nor forwarded.
    Martian,
    /// TCP flags no segment to a listener may carry (SYN with FIN or RST; none of SYN, ACK
    /// and RST, such as a lone FIN or no flags at all): dropped as Linux does.
    BadFlags,
    /// From a real's address, but received on the client port (spoofed, or a loop): never
    /// translated. In a one-armed setup both sides are one port and this never happens.
    WrongSide,
    /// A request segment with no kept head whose cookie does not check with its sequence
    /// number, but whose cookie is of the current time slots: it may be a later segment whose
    /// first is lost or late. Dropped without a RST, so the client's retransmission of the
    /// first segment completes the request.
    Unchecked,
    /// A ClientHello to a `tls` virtual past the batch's handshake budget: dropped without an
    /// ACK, so the client sends it again.
    TlsDeferred,
    /// A new TLS connection while every entry of the worker's TLS table is past its handshake.
    TlsFull,
    /// IPv6 header malformed (version, length), or an extension-header chain that is
    /// malformed, truncated or longer than the walk's bounds.
    BadIpv6,
    /// A SYN to the responder past the budget of SYN-ACKs of a batch that came in full (the
    /// worker is behind: a SYN flood, or more work than it keeps up with); dropped unanswered,
    /// after every other segment of the batch was served, so connections already open finish
    /// first. The client sends the SYN again. See [`crate::SYN_ACKS_PER_FULL_BATCH`].
    SynDeferred,
}

impl Reason {
    pub const ALL: [Reason; 23] = [
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
        Reason::BadTcpChecksum,
        Reason::Martian,
        Reason::BadFlags,
        Reason::WrongSide,
        Reason::Unchecked,
        Reason::TlsDeferred,
        Reason::TlsFull,
        Reason::BadIpv6,
        Reason::SynDeferred,
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
            Reason::BadTcpChecksum => "bad_tcp_checksum",
            Reason::Martian => "martian",
            Reason::BadFlags => "bad_flags",
            Reason::WrongSide => "wrong_side",
            Reason::Unchecked => "unchecked",
            Reason::TlsDeferred => "tls_deferred",
            Reason::TlsFull => "tls_full",
            Reason::BadIpv6 => "bad_ipv6",
            Reason::SynDeferred => "syn_deferred",
        }
    }
}

/// Traffic of one real, as one worker saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealCounters {
    /// Client -> real frames and bytes (IPv4 length).
    pub to_real: u64,
    pub to_real_bytes: u64,
    /// Real -> client.
    pub to_client: u64,
    pub to_client_bytes: u64,
    /// SYNs forwarded to it (connections opened).
    pub opened: u64,
    /// FINs and RSTs from clients, RSTs from it (connections closed; a connection that ends
    /// with both a FIN and a RST counts twice, so active = opened - closed is a lower bound).
    pub closed: u64,
}

impl RealCounters {
    pub fn add(&mut self, o: &RealCounters) {
        self.to_real += o.to_real;
        self.to_real_bytes += o.to_real_bytes;
        self.to_client += o.to_client;
        self.to_client_bytes += o.to_client_bytes;
        self.opened += o.opened;
        self.closed += o.closed;
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
    /// IPv6 frames received.
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
    /// TCP to an owned address on a port with no service, answered with RST.
    pub refused: u64,
    pub fin_acks: u64,
    pub arp_replies: u64,
    pub echo_replies: u64,
    /// Neighbour advertisements sent for owned IPv6 addresses.
    pub nd_adverts: u64,
    /// Request heads kept for more segments, and live ones evicted to make room.
    pub heads_kept: u64,
    pub heads_evicted: u64,
    pub backup_flows_evicted: u64,
    /// TLS handshakes completed on `tls` virtuals, and of those resumed from a ticket.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    /// Requests answered over TLS (each is also counted as its redirect or status).
    pub tls_answered: u64,
    /// TLS connections failed: bad or old-version ClientHellos, not TLS, oversized, closed
    /// early (an alert or RST was sent).
    pub tls_failures: u64,
    /// Half-open TLS entries evicted to make room for a new one.
    pub tls_evicted: u64,
    /// Server flights (or answers) sent again by the retransmission timer.
    pub tls_retransmits: u64,
    /// TLS connections reset and freed by a timer: retries exhausted or lifetime over.
    pub tls_timed_out: u64,
    drops: [u64; Reason::COUNT],
}

/// Applies `$m!(field)` to every plain counter field.
macro_rules! each_field {
    ($m:ident) => {
        $m!(
            rx,
            tx,
            pass,
            ipv6,
            to_real,
            to_real_bytes,
            to_client,
            to_client_bytes,
            to_backup,
            icmp_translated,
            syn_acks,
            redirects,
            bad_requests,
            too_large,
            unavailable,
            uri_too_long,
            rsts,
            refused,
            fin_acks,
            arp_replies,
            echo_replies,
            nd_adverts,
            heads_kept,
            heads_evicted,
            backup_flows_evicted,
            tls_handshakes,
            tls_resumed,
            tls_answered,
            tls_failures,
            tls_evicted,
            tls_retransmits,
            tls_timed_out
        )
    };
}

impl Counters {
    /// Add another worker's counters to these (the control thread's merge).
    pub fn add(&mut self, o: &Counters) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        each_field!(add);
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
    }

    /// Subtract earlier counters from these (saturating), for "since clear" views.
    pub fn sub(&mut self, o: &Counters) {
        macro_rules! sub {
            ($($f:ident),*) => { $( self.$f = self.$f.saturating_sub(o.$f); )* };
        }
        each_field!(sub);
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a = a.saturating_sub(*b);
        }
    }

    /// Every counter with its name, for reports and the metrics endpoint.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut v = Vec::new();
        macro_rules! list {
            ($($f:ident),*) => { $( v.push((stringify!($f), self.$f)); )* };
        }
        each_field!(list);
        v
    }

    #[inline]
    pub fn drop(&mut self, r: Reason) {
        self.drops[r as usize] += 1;
    }
    pub fn dropped(&self, r: Reason) -> u64 {
        self.drops[r as usize]
    }
    /// Frames dropped for a fault (everything but [`Reason::NothingToAnswer`]).
    pub fn drops(&self) -> u64 {
        self.drops.iter().sum::<u64>() - self.drops[Reason::NothingToAnswer as usize]
    }
    /// Drops by reason, with names, for reports.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r.name(), self.drops[r as usize]))
    }
}
