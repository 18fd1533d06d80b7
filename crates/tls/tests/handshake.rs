//! A real rustls client against the table: handshake, request, redirect, close; SNI; ALPN;
//! resumption across tables sharing (or not) a ticket secret; retransmission and freeing.

mod common;

use common::*;
use detour_tls::{Incoming, Limits, Outcome, Table};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, HandshakeKind};

/// A small MSS so that one flight spans several segments.
const SMALL: usize = 536;

#[test]
fn redirect_over_tls13_then_entry_freed() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(7);
    let (plain, c) = exchange(
        &mut t,
        &cfg,
        &mut link,
        client_config(&[&rustls::version::TLS13]),
        "www.example",
    );
    assert_eq!(plain, REDIRECT, "the client decrypts exactly the redirect");
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert!(link.got_fin, "the server closes after the answer");
    assert_eq!(t.len(), 1, "still owed an ACK of the FIN");
    // The client's ACK of everything frees the entry.
    let seg = Incoming {
        seq: link.cseq,
        ack: Some(link.sseq),
        payload: &[],
        fin: false,
        rst: false,
        mss: 1460,
    };
    assert_eq!(t.on_segment(7, seg, link.now, None), Outcome::Freed);
    assert!(t.is_empty());
    assert_eq!(
        (t.stats.opened, t.stats.handshakes, t.stats.answered),
        (1, 1, 1)
    );
    assert_eq!(t.stats.tls_failures, 0);
}

#[test]
fn sni_picks_the_certificate_and_unknown_gets_the_default() {
    let cfg = config(b"k");
    for (sni, leaf) in [
        ("www.example", "www.example"),
        ("rsa.example", "rsa.example"),
        ("RSA.Example", "rsa.example"),
        ("other.example", "default.example"),
    ] {
        let rec = std::sync::Arc::new(Record::default());
        let mut cc = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(rec.clone())
            .with_no_client_auth();
        cc.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut t = Table::new(Limits::default());
        let mut link = Link::new(1);
        let (plain, _) = exchange(&mut t, &cfg, &mut link, std::sync::Arc::new(cc), sni);
        assert_eq!(plain, REDIRECT, "{sni}");
        let shown = rec.0.lock().unwrap().clone().unwrap();
        assert_eq!(
            shown,
            cfg.leaf_for(Some(leaf)),
            "{sni} gets {leaf}'s certificate"
        );
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(format!("{DATA}/{leaf}.pem")).unwrap();
        let want = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(shown, want.as_ref());
    }
}

#[test]
fn verified_by_the_ca_for_ecdsa_and_rsa_names() {
    let cfg = config(b"k");
    for sni in ["www.example", "rsa.example"] {
        let mut t = Table::new(Limits::default());
        let mut link = Link::new(2);
        let (plain, _) = exchange(
            &mut t,
            &cfg,
            &mut link,
            client_config(&[&rustls::version::TLS13]),
            sni,
        );
        assert_eq!(plain, REDIRECT, "{sni}");
    }
}

#[test]
fn resumption_across_tables_sharing_the_secret_only() {
    let client = client_config(&[&rustls::version::TLS13]);
    let a_cfg = config(b"shared");
    let b_cfg = config(b"shared");
    let c_cfg = config(b"another");
    let mut a = Table::new(Limits::default());
    let (_, c) = exchange(
        &mut a,
        &a_cfg,
        &mut Link::new(1),
        client.clone(),
        "www.example",
    );
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    let mut b = Table::new(Limits::default());
    let (plain, c) = exchange(
        &mut b,
        &b_cfg,
        &mut Link::new(1),
        client.clone(),
        "www.example",
    );
    assert_eq!(plain, REDIRECT);
    assert_eq!(
        c.handshake_kind(),
        Some(HandshakeKind::Resumed),
        "ticket from A opens in B"
    );
    assert_eq!(b.stats.resumed, 1);
    let mut other = Table::new(Limits::default());
    let (plain, c) = exchange(&mut other, &c_cfg, &mut Link::new(1), client, "www.example");
    assert_eq!(
        plain, REDIRECT,
        "a foreign ticket falls back to a full handshake"
    );
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(other.stats.resumed, 0);
}

#[test]
fn lost_flight_is_retransmitted_byte_for_byte_then_reset_after_retries() {
    let cfg = config(b"k");
    let limits = Limits {
        rto_ms: 100,
        max_retries: 2,
        ..Limits::default()
    };
    let mut t = Table::new(limits);
    let mut link = Link::new(3);
    link.mss = SMALL;
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS13]),
        ServerName::try_from("rsa.example").unwrap(),
    )
    .unwrap();
    let hello = client_out(&mut c);
    let (_, first) = link.send(&mut t, &cfg, &hello, false);
    assert!(
        first.len() >= 2,
        "a flight with a certificate spans segments of {SMALL}"
    );
    assert!(first.iter().all(|s| s.payload.len() <= SMALL));
    let mut again = Vec::new();
    t.poll_timers(link.now + 99, SMALL, |_, s| again.push(own(s)));
    assert!(again.is_empty(), "not before the timeout");
    t.poll_timers(link.now + 100, SMALL, |_, s| again.push(own(s)));
    assert_eq!(
        again, first,
        "go-back-N from the oldest unacknowledged byte"
    );
    again.clear();
    t.poll_timers(link.now + 300, SMALL, |_, s| again.push(own(s)));
    assert_eq!(again, first, "doubled timeout");
    again.clear();
    t.poll_timers(link.now + 700, SMALL, |_, s| again.push(own(s)));
    assert_eq!(again.len(), 1);
    assert!(again[0].rst && again[0].payload.is_empty());
    assert!(t.is_empty());
    assert_eq!((t.stats.retransmits, t.stats.resets), (2, 1));
    // The client still completes against what it got the first time (lost ACKs only).
    client_in(&mut c, &bytes_of(&first)).unwrap();
    assert!(!c.is_handshaking());
}

#[test]
fn partial_ack_advances_and_duplicate_or_early_data_is_reacked() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(4);
    link.mss = SMALL;
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS13]),
        ServerName::try_from("rsa.example").unwrap(),
    )
    .unwrap();
    let hello = client_out(&mut c);
    let (_, first) = link.send(&mut t, &cfg, &hello, false);
    // The same ClientHello again (the client did not get our flight): the flight again,
    // byte for byte, acknowledging the client's bytes.
    let seg = Incoming {
        seq: link.cseq.wrapping_sub(hello.len() as u32),
        ack: Some(first[0].seq),
        payload: &hello,
        fin: false,
        rst: false,
        mss: 1460,
    };
    let o = t.on_segment(4, seg, link.now, Some(&cfg));
    assert_eq!(
        o,
        Outcome::Handled {
            request: false,
            ack: true
        }
    );
    let mut outs = Vec::new();
    t.emit(&4, SMALL, usize::MAX, true, link.now, |s| outs.push(own(s)));
    assert_eq!(outs, first);
    assert!(outs.iter().all(|s| s.ack == link.cseq));
    // Nothing new and nothing to resend: a bare ACK when asked.
    outs.clear();
    t.emit(&4, SMALL, usize::MAX, true, link.now, |s| outs.push(own(s)));
    assert_eq!(outs.len(), 1);
    assert!(outs[0].payload.is_empty() && outs[0].ack == link.cseq);
    // A segment beyond a hole is not taken.
    let seg = Incoming {
        seq: link.cseq.wrapping_add(10),
        ack: None,
        payload: b"xx",
        fin: false,
        rst: false,
        mss: 1460,
    };
    assert_eq!(
        t.on_segment(4, seg, link.now, Some(&cfg)),
        Outcome::Handled {
            request: false,
            ack: true
        }
    );
    assert_eq!(t.stats.out_of_order, 1);
    // Acknowledging the first segment only: a timeout resends from the second.
    let seg = Incoming {
        seq: link.cseq,
        ack: Some(first[1].seq),
        payload: &[],
        fin: false,
        rst: false,
        mss: 1460,
    };
    t.on_segment(4, seg, link.now, Some(&cfg));
    let mut again = Vec::new();
    t.poll_timers(link.now + 10_000 - 1, SMALL, |_, s| again.push(own(s)));
    assert_eq!(again, first[1..].to_vec());
}

#[test]
fn one_segment_per_incoming_segment_is_clocked_by_the_clients_acks() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(6);
    link.mss = SMALL;
    link.max = 1;
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS13]),
        ServerName::try_from("rsa.example").unwrap(),
    )
    .unwrap();
    use std::io::Write;
    c.writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: rsa.example\r\n\r\n")
        .unwrap();
    let (mut plain, mut rounds) = (Vec::new(), 0);
    while !link.got_fin && rounds < 40 {
        rounds += 1;
        // The client's TLS bytes if it has any, else a bare ACK of what it got.
        let out = client_out(&mut c);
        let (_, segs) = link.send(&mut t, &cfg, &out, false);
        assert!(segs.len() <= 1, "one frame out per frame in");
        plain.extend(client_in(&mut c, &bytes_of(&segs)).unwrap());
    }
    assert_eq!(plain, REDIRECT);
    // At this MSS the flight is 3 segments, one per client segment (ClientHello, its
    // change_cipher_spec, a bare ACK); then the answer and FIN for Finished + request.
    assert_eq!(rounds, 4, "the flight went out a segment at a time");
}
