//! Stateless TLS 1.3 session tickets sealed under a key derived from a shared secret.
//!
//! Contract: every [`Ticketer`] built from the same secret opens the tickets of every other
//! (across workers and across directors), and none other. A ticket is
//! `tag(4) | nonce(12) | ChaCha20-Poly1305(state) | mac(16)`; `tag` names the key so tickets
//! from another secret are refused without trying to open them; the header is authenticated.
//! Anything that does not open is refused (rustls then does a full handshake).

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Seconds a ticket is valid for (the client is told so).
pub const TICKET_LIFETIME_SECS: u32 = 6 * 3600;
const TAG_LEN: usize = 4;
const HEADER: usize = TAG_LEN + NONCE_LEN;
/// rustls's serialized resumption state is a few hundred bytes; refuse anything far larger.
const MAX_TICKET: usize = 4096;

/// Seals and opens tickets; immutable, shared by `Arc` through the server config.
pub struct Ticketer {
    key: LessSafeKey,
    tag: [u8; TAG_LEN],
    rng: SystemRandom,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticketer")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(secret: &[u8], label: &[u8], out: &mut [u8]) {
    let prk = Salt::new(HKDF_SHA256, b"detour tls ticket v1").extract(secret);
    let info = [label];
    // HKDF-SHA256 can expand up to 8160 bytes; ours are 4 and 32.
    let okm = prk
        .expand(&info, Len(out.len()))
        .expect("short hkdf output");
    okm.fill(out).expect("length given above");
}

impl Ticketer {
    /// Derive the sealing key and its tag from `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        let mut tag = [0u8; TAG_LEN];
        expand(secret, b"key", &mut key);
        expand(secret, b"tag", &mut tag);
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("32-byte key"));
        Self {
            key,
            tag,
            rng: SystemRandom::new(),
        }
    }
}

impl Ticketer {
    /// The public tag that starts every ticket of this key.
    pub fn key_id(&self) -> [u8; TAG_LEN] {
        self.tag
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER + plain.len() + CHACHA20_POLY1305.tag_len());
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        let aad = Aad::from(&out[..HEADER]);
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut body)
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < HEADER + CHACHA20_POLY1305.tag_len() || cipher.len() > MAX_TICKET {
            return None;
        }
        let (header, sealed) = cipher.split_at(HEADER);
        if header[..TAG_LEN] != self.tag {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&header[TAG_LEN..]).ok()?;
        let mut body = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(header), &mut body)
            .ok()?;
        let n = plain.len();
        body.truncate(n);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_opens_other_secret_does_not() {
        let a = Ticketer::new(b"secret one");
        let b = Ticketer::new(b"secret one");
        let c = Ticketer::new(b"secret two");
        let t = a.encrypt(b"resumption state").unwrap();
        assert_eq!(b.decrypt(&t).as_deref(), Some(&b"resumption state"[..]));
        assert_eq!(c.decrypt(&t), None);
        let mut bent = t.clone();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        assert_eq!(a.decrypt(&bent), None);
        assert_eq!(a.decrypt(&t[..10]), None);
        assert_eq!(a.decrypt(&[]), None);
        assert_ne!(a.encrypt(b"x"), a.encrypt(b"x"), "fresh nonce per ticket");
    }
}
