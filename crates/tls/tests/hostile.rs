//! Hostile input against the table: old-version clients, truncated and malformed
//! ClientHellos, plain HTTP, oversized records, clients that stop, floods of ClientHellos.

mod common;

use common::*;
use detour_tls::{Incoming, Limits, Outcome, Table, MAX_TLS_IN};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

fn hello(sni: &str) -> Vec<u8> {
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS13]),
        ServerName::try_from(sni.to_string()).unwrap(),
    )
    .unwrap();
    client_out(&mut c)
}

/// The table's answer to one segment of `bytes` on a new connection.
fn answer_to(bytes: &[u8]) -> (Table<u32>, Outcome, Vec<Out>) {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(9);
    let (o, outs) = link.send(&mut t, &cfg, bytes, false);
    (t, o, outs)
}

/// A plaintext fatal alert record carrying `desc`.
fn is_alert(payload: &[u8], desc: u8) -> bool {
    payload.len() == 7 && payload[0] == 21 && payload[5] == 2 && payload[6] == desc
}

#[test]
fn tls12_only_client_gets_protocol_version_alert_and_fin() {
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS12]),
        ServerName::try_from("www.example").unwrap(),
    )
    .unwrap();
    let (t, o, outs) = answer_to(&client_out(&mut c));
    assert!(matches!(o, Outcome::Handled { request: false, .. }));
    assert_eq!(outs.len(), 1);
    assert!(
        is_alert(&outs[0].payload, 70),
        "protocol_version: {:?}",
        outs[0].payload
    );
    assert!(outs[0].fin);
    assert_eq!(t.stats.tls_failures, 1);
    let err = client_in(&mut c, &outs[0].payload).unwrap_err();
    assert_eq!(
        err,
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
    );
}

#[test]
fn plain_http_to_the_tls_port_is_refused_cleanly() {
    let (t, _, outs) = answer_to(b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n");
    assert_eq!(t.stats.tls_failures, 1);
    assert!(outs.iter().any(|s| s.fin), "closed");
    assert_eq!(t.stats.handshakes, 0);
}

#[test]
fn truncated_client_hello_waits_then_is_freed_on_time() {
    let h = hello("www.example");
    let cfg = config(b"k");
    let mut t = Table::new(Limits {
        lifetime_ms: 5_000,
        ..Limits::default()
    });
    let mut link = Link::new(5);
    let (o, outs) = link.send(&mut t, &cfg, &h[..h.len() / 2], false);
    assert_eq!(
        o,
        Outcome::Handled {
            request: false,
            ack: true
        }
    );
    assert_eq!(outs.len(), 1, "a bare ACK");
    assert!(outs[0].payload.is_empty() && !outs[0].fin);
    assert_eq!(t.len(), 1);
    let mut rst = Vec::new();
    t.poll_timers(link.now + 4_999, MSS, |_, s| rst.push(own(s)));
    assert!(rst.is_empty() && t.len() == 1);
    t.poll_timers(link.now + 5_000, MSS, |_, s| rst.push(own(s)));
    assert_eq!(rst.len(), 1);
    assert!(rst[0].rst);
    assert!(t.is_empty());
    assert_eq!(t.stats.expired, 1);
}

#[test]
fn malformed_client_hellos_fail_cleanly() {
    let h = hello("www.example");
    // Wrong handshake length, wrong legacy version, garbage body, a bad content type.
    let mut bad_len = h.clone();
    bad_len[6] ^= 0x7f;
    let mut bad_body = h.clone();
    for b in bad_body[9..60].iter_mut() {
        *b = 0xff;
    }
    let mut bad_type = h.clone();
    bad_type[0] = 0x42;
    // An empty handshake record (illegal), then a ClientHello after a change_cipher_spec.
    let empty = vec![22, 3, 1, 0, 0];
    let mut ccs_first = vec![20, 3, 3, 0, 1, 1];
    ccs_first.extend_from_slice(&h);
    for (what, bytes) in [
        ("length", bad_len),
        ("body", bad_body),
        ("type", bad_type),
        ("empty", empty),
        ("ccs", ccs_first),
    ] {
        let (t, _, outs) = answer_to(&bytes);
        assert_eq!(t.stats.tls_failures, 1, "{what}");
        assert_eq!(t.stats.handshakes, 0, "{what}");
        assert!(outs.iter().any(|s| s.fin), "{what}: closed");
    }
}

#[test]
fn random_bytes_never_panic_and_never_complete() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let cfg = config(b"k");
    let mut t = Table::new(Limits {
        capacity: 64,
        ..Limits::default()
    });
    let h = hello("www.example");
    for i in 0..2_000u32 {
        let mut buf = if i % 2 == 0 {
            h.clone()
        } else {
            vec![0u8; 1 + (i as usize * 7) % 600]
        };
        for _ in 0..(1 + i % 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % buf.len();
            buf[at] = (x >> 32) as u8;
        }
        let mut link = Link::new(i);
        link.send(&mut t, &cfg, &buf, i % 3 == 0);
        assert!(t.len() <= 64);
    }
    assert_eq!(t.stats.answered, 0);
}

#[test]
fn oversized_records_are_refused() {
    // A record header declaring more than 2^14 + 256 bytes: rustls's record_overflow.
    let (t, _, outs) = answer_to(&[22, 3, 1, 0x48, 0x00, 1, 0, 0]);
    assert_eq!(t.stats.tls_failures, 1);
    assert!(outs.iter().any(|s| s.fin));
    // Legal records carrying a 60000-byte ClientHello (rustls would join up to 64 KiB): more
    // than one maximal record is never buffered; the connection is reset and freed.
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(1);
    let mut stream = Vec::new();
    for i in 0..4 {
        stream.extend_from_slice(&[22, 3, 1, 0x40, 0x00]);
        let at = stream.len();
        stream.resize(at + 0x4000, 0);
        if i == 0 {
            stream[at..at + 4].copy_from_slice(&[1, 0x00, 0xea, 0x60]);
        }
    }
    let mut last = Outcome::Unknown;
    for chunk in stream.chunks(1400) {
        last = link.send(&mut t, &cfg, chunk, false).0;
        if !matches!(last, Outcome::Handled { .. }) {
            break;
        }
    }
    assert!(matches!(last, Outcome::Reset { .. }), "{last:?}");
    assert_eq!((t.stats.oversized, t.len()), (1, 0));
    assert!(link.cseq.wrapping_sub(CLIENT_ISN) as usize <= MAX_TLS_IN + 1400 + 1);
}

#[test]
fn client_hello_flood_stays_within_the_bound_and_spares_finished_handshakes() {
    let cfg = config(b"k");
    let cap = 32;
    let mut t = Table::new(Limits {
        capacity: cap,
        ..Limits::default()
    });
    // One client completes its handshake (its request still to come).
    let mut legit = Link::new(u32::MAX);
    let mut c = ClientConnection::new(
        client_config(&[&rustls::version::TLS13]),
        ServerName::try_from("www.example").unwrap(),
    )
    .unwrap();
    let (_, outs) = legit.send(&mut t, &cfg, &client_out(&mut c), false);
    client_in(&mut c, &bytes_of(&outs)).unwrap();
    let (_, outs) = legit.send(&mut t, &cfg, &client_out(&mut c), false);
    client_in(&mut c, &bytes_of(&outs)).unwrap();
    assert!(!c.is_handshaking());
    let h = hello("www.example");
    for i in 0..1_000u32 {
        let mut link = Link::new(i);
        link.send(&mut t, &cfg, &h, false);
        assert!(t.len() <= cap);
    }
    assert_eq!(t.len(), cap);
    assert_eq!(t.stats.evicted, 1_000 - (cap as u64 - 1));
    assert_eq!(t.stats.full_drops, 0);
    // The finished handshake was never evicted: its request is answered.
    use std::io::Write;
    c.writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n")
        .unwrap();
    let (o, outs) = legit.send(&mut t, &cfg, &client_out(&mut c), false);
    assert_eq!(
        o,
        Outcome::Handled {
            request: true,
            ack: true
        }
    );
    assert_eq!(client_in(&mut c, &bytes_of(&outs)).unwrap(), REDIRECT);
}

#[test]
fn full_of_finished_handshakes_drops_newcomers_counted() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits {
        capacity: 2,
        ..Limits::default()
    });
    for k in 0..2 {
        let mut link = Link::new(k);
        let mut c = ClientConnection::new(
            client_config(&[&rustls::version::TLS13]),
            ServerName::try_from("www.example").unwrap(),
        )
        .unwrap();
        let (_, outs) = link.send(&mut t, &cfg, &client_out(&mut c), false);
        client_in(&mut c, &bytes_of(&outs)).unwrap();
        link.send(&mut t, &cfg, &client_out(&mut c), false);
    }
    let (o, _) = Link::new(5).send(&mut t, &cfg, &hello("www.example"), false);
    assert_eq!(o, Outcome::Full);
    assert_eq!((t.stats.full_drops, t.len()), (1, 2));
}

#[test]
fn handshake_budget_defers_signatures_past_it() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let h = hello("www.example");
    t.begin_batch(4);
    let mut flights = 0;
    for i in 0..10u32 {
        let (o, outs) = Link::new(i).send(&mut t, &cfg, &h, false);
        match o {
            Outcome::Deferred => assert!(outs.is_empty(), "no ACK: the client resends"),
            Outcome::Handled { .. } => flights += (!outs.is_empty()) as u32,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((flights, t.stats.deferred, t.len()), (4, 6, 4));
    t.begin_batch(4);
    let (o, outs) = Link::new(100).send(&mut t, &cfg, &h, false);
    assert!(
        matches!(o, Outcome::Handled { .. }) && !outs.is_empty(),
        "next batch, next flights"
    );
}

#[test]
fn peer_reset_frees_and_stray_segments_are_unknown() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits::default());
    let mut link = Link::new(1);
    link.send(&mut t, &cfg, &hello("www.example"), false);
    assert_eq!(t.len(), 1);
    let rst = Incoming {
        seq: link.cseq,
        ack: None,
        payload: &[],
        fin: false,
        rst: true,
        mss: 1460,
    };
    assert_eq!(t.on_segment(1, rst, link.now, Some(&cfg)), Outcome::Freed);
    assert!(t.is_empty());
    let ack = Incoming {
        seq: 1,
        ack: Some(1),
        payload: &[],
        fin: false,
        rst: false,
        mss: 1460,
    };
    assert_eq!(
        t.on_segment(2, ack, 0, Some(&cfg)),
        Outcome::Unknown,
        "a bare ACK opens nothing"
    );
    assert!(t.is_empty());
}

#[test]
fn expire_frees_old_entries_without_sending() {
    let cfg = config(b"k");
    let mut t = Table::new(Limits {
        lifetime_ms: 1_000,
        ..Limits::default()
    });
    let mut link = Link::new(1);
    link.send(&mut t, &cfg, &hello("www.example"), false);
    assert!(t.contains(&1));
    t.expire(link.now + 999);
    assert!(t.contains(&1));
    t.expire(link.now + 1_000);
    assert!(!t.contains(&1) && t.is_empty());
    assert_eq!(t.stats.expired, 1);
    link.send(&mut t, &cfg, &hello("www.example"), false);
    assert!(t.remove(&1) && !t.contains(&1) && !t.remove(&1));
}
