//! The kernel's own counters of an AF_XDP socket (`getsockopt(SOL_XDP, XDP_STATISTICS)`), as
//! one plain value that can be summed over ports and workers and subtracted between two
//! readings. Reading them is one syscall per socket: callers read them between batches (detour
//! twice a second), never per frame.
//!
//! What each counter means (the kernel's `struct xdp_statistics`, net/xdp/xsk.c):
//!
//! - `rx_dropped`: frames the socket could not take for another reason (in copy mode a frame
//!   longer than the UMEM frame);
//! - `rx_invalid_descs` / `tx_invalid_descs`: descriptors user space put on the fill / tx ring
//!   that the kernel refused (bad address or length);
//! - `rx_ring_full`: frames dropped because the rx ring was full (user space too slow);
//! - `rx_fill_ring_empty_descs`: times the kernel found the fill ring empty (frames dropped);
//! - `tx_ring_empty_descs`: times the kernel was woken to transmit and found the tx ring empty
//!   (not a loss: a measure of useless kicks).

use std::ops::{Add, Sub};

/// The kernel's statistics of one AF_XDP socket, or their sum over sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// Reads one counter.
pub type Getter = fn(&SocketStats) -> u64;

/// The counters, once, with their names: everything that prints or exports them derives from
/// this list.
pub const FIELDS: [(&str, Getter); 6] = [
    ("rx_dropped", |s| s.rx_dropped),
    ("rx_invalid_descs", |s| s.rx_invalid_descs),
    ("tx_invalid_descs", |s| s.tx_invalid_descs),
    ("rx_ring_full", |s| s.rx_ring_full),
    ("rx_fill_ring_empty_descs", |s| s.rx_fill_ring_empty_descs),
    ("tx_ring_empty_descs", |s| s.tx_ring_empty_descs),
];

impl SocketStats {
    /// Frames the socket lost (everything but `tx_ring_empty_descs`, which counts kicks).
    pub fn frames_lost(&self) -> u64 {
        self.rx_dropped
            + self.rx_invalid_descs
            + self.tx_invalid_descs
            + self.rx_ring_full
            + self.rx_fill_ring_empty_descs
    }

    /// `{"rx_dropped": 0, ...}`: a JSON object of the counters.
    pub fn to_json(&self) -> String {
        let body: Vec<String> = FIELDS
            .iter()
            .map(|(name, get)| format!("\"{name}\": {}", get(self)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    pub(crate) fn from_lib(s: &xsk_rs::socket::XdpStatistics) -> SocketStats {
        SocketStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        }
    }
}

impl Add for SocketStats {
    type Output = SocketStats;
    fn add(self, o: SocketStats) -> SocketStats {
        SocketStats {
            rx_dropped: self.rx_dropped + o.rx_dropped,
            rx_invalid_descs: self.rx_invalid_descs + o.rx_invalid_descs,
            tx_invalid_descs: self.tx_invalid_descs + o.tx_invalid_descs,
            rx_ring_full: self.rx_ring_full + o.rx_ring_full,
            rx_fill_ring_empty_descs: self.rx_fill_ring_empty_descs + o.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: self.tx_ring_empty_descs + o.tx_ring_empty_descs,
        }
    }
}

impl Sub for SocketStats {
    type Output = SocketStats;
    /// Counter differences (saturating: a socket re-opened in between restarts from 0).
    fn sub(self, o: SocketStats) -> SocketStats {
        SocketStats {
            rx_dropped: self.rx_dropped.saturating_sub(o.rx_dropped),
            rx_invalid_descs: self.rx_invalid_descs.saturating_sub(o.rx_invalid_descs),
            tx_invalid_descs: self.tx_invalid_descs.saturating_sub(o.tx_invalid_descs),
            rx_ring_full: self.rx_ring_full.saturating_sub(o.rx_ring_full),
            rx_fill_ring_empty_descs: self
                .rx_fill_ring_empty_descs
                .saturating_sub(o.rx_fill_ring_empty_descs),
            tx_ring_empty_descs: self
                .tx_ring_empty_descs
                .saturating_sub(o.tx_ring_empty_descs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> SocketStats {
        SocketStats {
            rx_dropped: n,
            rx_invalid_descs: 2 * n,
            tx_invalid_descs: 3 * n,
            rx_ring_full: 4 * n,
            rx_fill_ring_empty_descs: 5 * n,
            tx_ring_empty_descs: 6 * n,
        }
    }

    #[test]
    fn sum_difference_and_loss() {
        assert_eq!(s(1) + s(2), s(3));
        assert_eq!(s(3) - s(1), s(2));
        assert_eq!(s(1) - s(3), SocketStats::default());
        // tx_ring_empty_descs counts kicks, not frames.
        assert_eq!(s(1).frames_lost(), 1 + 2 + 3 + 4 + 5);
    }

    #[test]
    fn json_names_every_field_once() {
        let j = s(1).to_json();
        for (i, (name, _)) in FIELDS.iter().enumerate() {
            assert_eq!(
                j.matches(&format!("\"{name}\": {}", i + 1)).count(),
                1,
                "{j}"
            );
        }
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
    }
}
