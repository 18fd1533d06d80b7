//! The one egress: every frame the data path transmits leaves through here. It knows the
//! director's MAC on each port and which port faces what (clients, reals), checks that the
//! next hop's MAC is known, writes the Ethernet addresses, and returns the [`Verdict`].
//! Nothing else writes MAC addresses or builds a `Tx` verdict.

use crate::counters::Reason;
use crate::wire::ethernet;
use crate::{Port, CLIENT, SERVER};

/// What to do with a frame after [`crate::Worker::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send `buf[..len]` out of `port`.
    Tx {
        port: Port,
        len: usize,
    },
    Drop(Reason),
    /// Not the director's: hand it to the kernel unchanged.
    Pass,
}

/// Where the frames a worker originates go (frames that answer no received frame: the
/// timers' retransmissions): the runtime's free frames and transmit rings.
pub trait Originate {
    /// Lend `write` a free frame buffer; it writes a frame and returns the verdict. Returns
    /// whether a `Tx` verdict was put on its port's transmit ring (false: no free frame or no
    /// room on the ring, or `write` did not say `Tx`; nothing was sent).
    fn originate(&mut self, write: impl FnOnce(&mut [u8]) -> Verdict) -> bool;
}

/// A checked next hop: out of `port`, to `dst`, from our MAC on that port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hop {
    port: Port,
    dst: [u8; 6],
    src: [u8; 6],
}

impl Hop {
    /// Address `buf[..len]` (a frame whose IP part is ready) to this hop and send it.
    #[inline]
    pub(crate) fn send(self, buf: &mut [u8], len: usize) -> Verdict {
        let Some(frame) = buf.get_mut(..len) else {
            return Verdict::Drop(Reason::NoRoom);
        };
        let Ok(mut f) = ethernet::Frame::new_checked(frame) else {
            return Verdict::Drop(Reason::NoRoom);
        };
        f.set_dst(self.dst);
        f.set_src(self.src);
        Verdict::Tx {
            port: self.port,
            len,
        }
    }

    /// Our MAC on the hop's port (the source of the frame).
    #[inline]
    pub(crate) fn src(&self) -> [u8; 6] {
        self.src
    }

    #[inline]
    pub(crate) fn dst(&self) -> [u8; 6] {
        self.dst
    }
}

/// The director's MACs, per port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Egress {
    macs: [[u8; 6]; 2],
}

impl Egress {
    pub(crate) fn new(macs: [[u8; 6]; 2]) -> Egress {
        Egress { macs }
    }

    #[inline]
    fn mac(&self, port: Port) -> [u8; 6] {
        self.macs[usize::from(port.0) & 1]
    }

    /// Toward a real (its MAC from the neighbour cache; zero while unknown), server side.
    #[inline]
    pub(crate) fn toward_real(&self, real_mac: [u8; 6]) -> Result<Hop, Reason> {
        self.hop(SERVER, real_mac)
    }

    /// Toward a client, through the client-side gateway (zero while unknown).
    #[inline]
    pub(crate) fn toward_client(&self, gateway_mac: [u8; 6]) -> Result<Hop, Reason> {
        self.hop(CLIENT, gateway_mac)
    }

    #[inline]
    fn hop(&self, port: Port, dst: [u8; 6]) -> Result<Hop, Reason> {
        if dst == [0; 6] {
            return Err(Reason::NoNeighbour);
        }
        Ok(Hop {
            port,
            dst,
            src: self.mac(port),
        })
    }

    /// Back to whoever sent a frame received on `port`, to `peer` (a MAC the frame carried:
    /// its Ethernet source, or an ARP sender's).
    #[inline]
    pub(crate) fn back(&self, port: Port, peer: [u8; 6]) -> Hop {
        Hop {
            port,
            dst: peer,
            src: self.mac(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];

    #[test]
    fn hops_carry_the_port_and_our_mac_on_it() {
        let e = Egress::new(US);
        let mut buf = [0u8; 20];
        let v = e
            .toward_real([2, 0, 0, 0, 0, 0x20])
            .unwrap()
            .send(&mut buf, 20);
        assert_eq!(
            v,
            Verdict::Tx {
                port: SERVER,
                len: 20
            }
        );
        assert_eq!(buf[..12], [2, 0, 0, 0, 0, 0x20, 2, 0, 0, 0, 0, 2]);
        let v = e.back(CLIENT, [2, 0, 0, 0, 0, 0x10]).send(&mut buf, 14);
        assert_eq!(
            v,
            Verdict::Tx {
                port: CLIENT,
                len: 14
            }
        );
        assert_eq!(buf[..12], [2, 0, 0, 0, 0, 0x10, 2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn an_unknown_neighbour_or_a_short_buffer_is_a_drop() {
        let e = Egress::new(US);
        assert_eq!(e.toward_client([0; 6]).unwrap_err(), Reason::NoNeighbour);
        assert_eq!(e.toward_real([0; 6]).unwrap_err(), Reason::NoNeighbour);
        let hop = e.toward_client([1; 6]).unwrap();
        assert_eq!(hop.send(&mut [0; 10], 20), Verdict::Drop(Reason::NoRoom));
        assert_eq!(hop.send(&mut [0; 20], 13), Verdict::Drop(Reason::NoRoom));
    }
}
