//! Ethernet II frame view (IEEE 802.3 with an EtherType field). VLAN-tagged frames carry
//! EtherType 0x8100 here and are not looked into. After [`Frame::new_checked`] (14 bytes) no
//! accessor panics; the payload is everything after the header, Ethernet padding included
//! (the IP view below trims it by its own length field).

use super::{get16, mac, put16, Error, Result};

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer holding a frame: at least the 14-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        mac(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src(&self) -> [u8; 6] {
        mac(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        get16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the header (padding included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m);
    }

    #[inline]
    pub fn set_src(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// An Ethernet II header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub ethertype: u16,
}

impl Repr {
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Repr {
        Repr {
            src: f.src(),
            dst: f.dst(),
            ethertype: f.ethertype(),
        }
    }

    /// Write the header into `buf[..14]`; returns the header length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut f = Frame::new_checked(buf)?;
        f.set_dst(self.dst);
        f.set_src(self.src);
        f.set_ethertype(self.ethertype);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethertype;

    /// Broadcast ARP frame header from 02:00:00:00:00:10, then 4 payload bytes.
    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x10, 0x08, 0x06, 1, 2,
        3, 4,
    ];

    #[test]
    fn parses_addresses_type_and_payload() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [0xff; 6]);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 0x10]);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &[1, 2, 3, 4]);
        assert_eq!(Repr::parse(&f).ethertype, 0x0806);
    }

    #[test]
    fn builds_the_same_bytes() {
        let mut buf = [0u8; 18];
        buf[14..].copy_from_slice(&[1, 2, 3, 4]);
        let r = Repr {
            src: [2, 0, 0, 0, 0, 0x10],
            dst: [0xff; 6],
            ethertype: ethertype::ARP,
        };
        assert_eq!(r.emit(&mut buf), Ok(14));
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn truncated_header_is_refused() {
        for n in 0..14 {
            assert_eq!(
                Frame::new_checked(&FRAME[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Frame::new_checked(&FRAME[..14])
            .unwrap()
            .payload()
            .is_empty());
        assert_eq!(
            Repr::parse(&Frame::new_checked(&FRAME[..]).unwrap()).emit(&mut [0; 13]),
            Err(Error::Truncated)
        );
    }
}
