//! ICMP (for IPv4) message view (RFC 792).
//!
//! [`Packet::new_checked`] takes the IP payload and checks its 8 bytes of header (type, code,
//! checksum, and the 4 bytes whose meaning depends on the type); after it no accessor or
//! setter panics. The checksum covers the whole message, with no pseudo-header. An error
//! message (destination unreachable, source quench, redirect, time exceeded, parameter
//! problem) quotes the offending packet's IP header and at least 8 bytes after it in
//! [`Packet::data`]; [`super::quoted`] reads that.

use super::{get16, put16, Error, Result};
use crate::csum;

/// A read/write view of an ICMP message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const DATA: usize = 8;
}

pub const HEADER_LEN: usize = field::DATA;

/// Message types (RFC 792).
pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap the IP payload holding an ICMP message.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), field::IDENT)
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.buffer.as_ref(), field::SEQ)
    }

    /// An error about another packet (the types whose data quotes it, RFC 792 and 1812).
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            kind::DST_UNREACHABLE
                | kind::SOURCE_QUENCH
                | kind::REDIRECT
                | kind::TIME_EXCEEDED
                | kind::PARAM_PROBLEM
        )
    }

    /// Everything after the 8-byte header: the echo data, or the quoted packet of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    #[inline]
    pub fn verify_checksum(&self) -> bool {
        csum::sum(0, self.buffer.as_ref()) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the type (an echo request becomes a reply), updating the checksum (RFC 1624).
    #[inline]
    pub fn rewrite_type(&mut self, t: u8) {
        let d = self.buffer.as_mut();
        let old = get16(d, field::TYPE);
        // The new word from the values (reading it back would stall on store forwarding).
        let new = u16::from_be_bytes([t, d[field::CODE]]);
        put16(d, field::TYPE, new);
        let c = csum::update16(get16(d, field::CHECKSUM), old, new);
        put16(d, field::CHECKSUM, c);
    }

    /// Recompute the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let d = self.buffer.as_mut();
        put16(d, field::CHECKSUM, 0);
        let c = csum::checksum(d);
        put16(d, field::CHECKSUM, c);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request, ident 0x1234, seq 1, data "ping", checksum filled.
    fn echo() -> Vec<u8> {
        let mut e = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g'];
        let c = csum::checksum(&e);
        e[2..4].copy_from_slice(&c.to_be_bytes());
        e
    }

    #[test]
    fn parses_an_echo_request() {
        let e = echo();
        let p = Packet::new_checked(&e[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (kind::ECHO_REQUEST, 0));
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.data(), b"ping");
        assert!(p.verify_checksum() && !p.is_error());
    }

    #[test]
    fn turns_a_request_into_a_reply_with_a_valid_checksum() {
        let mut e = echo();
        let mut p = Packet::new_checked(&mut e[..]).unwrap();
        p.rewrite_type(kind::ECHO_REPLY);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
        assert_eq!(e[0], 0);
    }

    #[test]
    fn errors_are_recognised_and_truncation_refused() {
        let mut e = echo();
        for (t, err) in [(3, true), (11, true), (12, true), (0, false), (13, false)] {
            e[0] = t;
            assert_eq!(Packet::new_checked(&e[..]).unwrap().is_error(), err);
        }
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&e[..n]).unwrap_err(), Error::Truncated);
        }
        assert!(Packet::new_checked(&e[..8]).unwrap().data().is_empty());
    }
}
