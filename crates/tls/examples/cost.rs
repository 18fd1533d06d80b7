//! The server-side CPU of one TLS redirect through a [`Table`] (full handshake with ECDSA
//! P-256 or RSA-2048, or resumed), next to the cost of the signature alone. Only the table's
//! calls are timed; the rustls client that drives them runs untimed in the same thread.
//!
//! `cargo run --release -p detour-tls --example cost [connections]`

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use detour_tls::{CertSource, Incoming, Limits, Outcome, Table, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const REDIRECT: &[u8] = b"HTTP/1.1 302 Found\r\nLocation: http://198.18.1.10/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

fn read(f: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{f}")).expect("test data")
}

fn client() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read("ca.pem")) {
        roots.add(c.expect("pem")).expect("ca");
    }
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots)
            .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// One connection; returns the time spent in the table's calls.
fn one(
    t: &mut Table<u32>,
    cfg: &TlsConfig,
    client: &Arc<ClientConfig>,
    sni: &str,
    key: u32,
) -> Duration {
    let mut c = ClientConnection::new(
        client.clone(),
        ServerName::try_from(sni.to_string()).expect("name"),
    )
    .expect("client");
    c.writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("buffered");
    let (mut cseq, mut sseq) = (1u32, 1u32);
    let mut spent = Duration::ZERO;
    let mut got = Vec::new();
    for _ in 0..6 {
        let mut out = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut out).expect("vec");
        }
        let mut back = Vec::new();
        let t0 = Instant::now();
        let seg = Incoming {
            seq: cseq,
            ack: Some(sseq),
            payload: &out,
            fin: false,
            rst: false,
            mss: 1460,
        };
        let o = t.on_segment(key, seg, 0, Some(cfg));
        if let Outcome::Handled { request, ack } = o {
            if request {
                t.answer(&key, REDIRECT);
            }
            t.emit(&key, 1460, usize::MAX, ack, 0, |s| {
                back.extend_from_slice(s.payload);
                sseq = s.seq.wrapping_add(s.payload.len() as u32 + s.fin as u32);
            });
        }
        spent += t0.elapsed();
        cseq = cseq.wrapping_add(out.len() as u32);
        let mut rd = &back[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("read");
            c.process_new_packets().expect("tls");
        }
        let _ = c.reader().read_to_end(&mut got);
        if o == Outcome::Freed || got.len() == REDIRECT.len() {
            break;
        }
    }
    assert_eq!(got, REDIRECT);
    let t0 = Instant::now();
    t.on_segment(
        key,
        Incoming {
            seq: cseq,
            ack: Some(sseq),
            payload: &[],
            fin: false,
            rst: false,
            mss: 1460,
        },
        0,
        None,
    );
    spent + t0.elapsed()
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let src = |name: &str, f: &str| CertSource {
        name: name.into(),
        cert_pem: read(&format!("{f}.pem")),
        key_pem: read(&format!("{f}.key")),
    };
    let cfg = TlsConfig::build(
        &[
            src("www.example", "www.example"),
            src("rsa.example", "rsa.example"),
        ],
        b"bench",
    )
    .expect("config");
    let mut t = Table::new(Limits {
        capacity: 64,
        ..Limits::default()
    });

    // The signature alone: what rustls's signer does once per full handshake.
    let key = PrivateKeyDer::from_pem_slice(&read("www.example.key")).expect("key");
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("signer");
    let s = signer
        .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
        .expect("scheme");
    let t0 = Instant::now();
    for i in 0..n {
        std::hint::black_box(s.sign(&i.to_le_bytes()).expect("sign"));
    }
    let sign_us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("ecdsa-p256 signature alone: {sign_us:.1} us");

    for (what, sni, fresh) in [
        ("full ecdsa-p256", "www.example", true),
        ("full rsa-2048", "rsa.example", true),
        ("resumed", "www.example", false),
    ] {
        let shared = client();
        let runs = if sni == "rsa.example" { n / 4 } else { n };
        let mut spent = Duration::ZERO;
        if !fresh {
            one(&mut t, &cfg, &shared, sni, 0);
        }
        for i in 0..runs {
            let c = if fresh { client() } else { shared.clone() };
            spent += one(&mut t, &cfg, &c, sni, i + 1);
        }
        let us = spent.as_secs_f64() * 1e6 / runs as f64;
        println!("{what}: {us:.1} us server CPU per redirect ({:.0}/s on one core), {:.1}x the ecdsa signature", 1e6 / us, us / sign_us);
    }
    println!("table after the runs: {} entries, {:?}", t.len(), t.stats);
}
