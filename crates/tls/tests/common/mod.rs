//! Shared harness: the test CA's certificates, real rustls clients, and a loop that carries
//! bytes between a client and one [`Table`] entry as TCP segments would.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use detour_tls::{CertSource, Incoming, Outcome, Table, TlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
pub const MSS: usize = 1460;
pub const REDIRECT: &[u8] =
    b"HTTP/1.1 302 Found\r\nLocation: http://198.18.1.10/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

pub fn source(name: &str, file: &str) -> CertSource {
    let read = |ext: &str| std::fs::read(format!("{DATA}/{file}.{ext}")).unwrap();
    CertSource {
        name: name.into(),
        cert_pem: read("pem"),
        key_pem: read("key"),
    }
}

pub fn sources() -> Vec<CertSource> {
    vec![
        source("www.example", "www.example"),
        source("rsa.example", "rsa.example"),
        source("*", "default.example"),
    ]
}

pub fn config(secret: &[u8]) -> TlsConfig {
    TlsConfig::build(&sources(), secret).unwrap()
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting the test CA.
pub fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let ca = std::fs::read(format!("{DATA}/ca.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Accepts any certificate and remembers the leaf it was shown.
#[derive(Debug, Default)]
pub struct Record(pub Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end.as_ref().to_vec());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One segment the table sent, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
    pub fin: bool,
    pub rst: bool,
}

/// A client connection over one table entry, with both sides' sequence numbers.
pub struct Link {
    pub key: u32,
    pub cseq: u32,
    /// Next server byte the client expects (it acknowledges up to here).
    pub sseq: u32,
    pub now: u64,
    pub got_fin: bool,
    pub got_rst: bool,
    pub mss: usize,
    /// Segments the table may send per incoming segment.
    pub max: usize,
}

pub const CLIENT_ISN: u32 = 0xffff_fff0; // wraps during the test
pub const SERVER_ISN: u32 = 0x7fff_fffa;

impl Link {
    pub fn new(key: u32) -> Self {
        Self {
            key,
            cseq: CLIENT_ISN.wrapping_add(1),
            sseq: SERVER_ISN.wrapping_add(1),
            now: 1_000,
            got_fin: false,
            got_rst: false,
            mss: MSS,
            max: usize::MAX,
        }
    }

    /// Send `bytes` as one segment (acknowledging what arrived so far); collect the answer.
    pub fn send(
        &mut self,
        t: &mut Table<u32>,
        cfg: &TlsConfig,
        bytes: &[u8],
        fin: bool,
    ) -> (Outcome, Vec<Out>) {
        let seg = Incoming {
            seq: self.cseq,
            ack: Some(self.sseq),
            payload: bytes,
            fin,
            rst: false,
            mss: 1460,
        };
        let o = t.on_segment(self.key, seg, self.now, Some(cfg));
        self.cseq = self.cseq.wrapping_add(bytes.len() as u32 + fin as u32);
        let mut outs = Vec::new();
        if let Outcome::Handled { request, ack } = o {
            if request {
                assert!(t.answer(&self.key, REDIRECT));
            }
            t.emit(&self.key, self.mss, self.max, ack, self.now, |s| {
                outs.push(own(s))
            });
        }
        self.absorb(&outs);
        (o, outs)
    }

    /// Take the server's in-order bytes (as the client's kernel would).
    pub fn absorb(&mut self, outs: &[Out]) {
        for s in outs {
            if s.rst {
                self.got_rst = true;
            }
            if s.seq == self.sseq {
                self.sseq = self
                    .sseq
                    .wrapping_add(s.payload.len() as u32 + s.fin as u32);
                self.got_fin |= s.fin;
            }
        }
    }
}

pub fn own(s: detour_tls::Segment<'_>) -> Out {
    Out {
        seq: s.seq,
        ack: s.ack,
        payload: s.payload.to_vec(),
        fin: s.fin,
        rst: s.rst,
    }
}

pub fn bytes_of(outs: &[Out]) -> Vec<u8> {
    outs.iter()
        .flat_map(|o| o.payload.iter().copied())
        .collect()
}

/// The client's pending TLS output.
pub fn client_out(c: &mut ClientConnection) -> Vec<u8> {
    let mut v = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut v).unwrap();
    }
    v
}

/// Give the client the server's bytes; return the plaintext it decrypted.
pub fn client_in(c: &mut ClientConnection, bytes: &[u8]) -> Result<Vec<u8>, rustls::Error> {
    let mut rd = bytes;
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets()?;
    }
    let mut plain = Vec::new();
    use std::io::Read;
    let _ = c.reader().read_to_end(&mut plain);
    Ok(plain)
}

/// Run a whole exchange: handshake, one request, the redirect. Returns (plaintext, client).
pub fn exchange(
    t: &mut Table<u32>,
    cfg: &TlsConfig,
    link: &mut Link,
    client: Arc<ClientConfig>,
    sni: &str,
) -> (Vec<u8>, ClientConnection) {
    let mut c =
        ClientConnection::new(client, ServerName::try_from(sni.to_string()).unwrap()).unwrap();
    use std::io::Write;
    c.writer()
        .write_all(b"GET /x HTTP/1.1\r\nHost: www.example\r\n\r\n")
        .unwrap();
    let mut plain = Vec::new();
    for _ in 0..8 {
        let out = client_out(&mut c);
        if out.is_empty() && link.got_fin {
            break;
        }
        let (_, segs) = link.send(t, cfg, &out, false);
        plain.extend(client_in(&mut c, &bytes_of(&segs)).unwrap());
    }
    (plain, c)
}
