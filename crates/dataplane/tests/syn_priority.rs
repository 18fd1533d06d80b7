//! Legitimate traffic first under a SYN flood (issue 13 item 5): a batch is handled in two
//! passes, as the runtime's `QueueIo::run_batch_in_two` does (every frame through
//! `Worker::process_first`, the SYNs it leaves through `Worker::process_deferred` afterwards,
//! in arrival order), so requests with a valid cookie, DIP traffic and the rest are answered
//! before any SYN; a full batch answers at most `SYN_ACKS_PER_FULL_BATCH` SYNs and counts the
//! rest as `syn_deferred`, a batch that is not full answers them all.

use detour_config::{model::load, Snapshot};
use detour_dataplane::SYN_ACKS_PER_FULL_BATCH;
use detour_dataplane::{Port, Reason, Verdict, Worker, WorkerConfig, CLIENT, SERVER};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::sync::Arc;

const CONF: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
";
const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const RMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x20];
const US: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
const NOW: u64 = 1_000_000;
/// The runtime's batch per port (IoConfig::default().batch).
const BATCH: usize = 64;

fn worker() -> Worker {
    let m = load(CONF, "t").unwrap();
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = CMAC;
    for r in &mut s.reals {
        r.mac = RMAC;
    }
    let cfg = WorkerConfig {
        macs: US,
        cookie_secret: [9; 32],
        table_key: [5; 16],
        one_armed: false,
        kernel_addrs: vec![],
    };
    Worker::new(cfg, Arc::new(s))
}

/// A TCP segment from `src`:`sport` to `dst`:`dport` (a SYN has an MSS option).
fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    data: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CMAC, US[0])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64240);
    let syn = ack.is_none();
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = if syn {
        b.options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap()
    } else {
        b
    };
    let mut out = Vec::new();
    b.write(&mut out, data).unwrap();
    out
}

fn flags(out: &[u8]) -> (bool, bool, bool, bool) {
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    (t.syn(), t.ack(), t.fin(), t.rst())
}

/// What a frame of the batch became, in the order the worker decided.
#[derive(Debug)]
struct Done {
    index: usize,
    verdict: Verdict,
    out: Vec<u8>,
}

/// One batch through the worker in two passes, as the runtime runs it. The deferred frames'
/// indices are kept in a fixed array as the runtime keeps their descriptors.
fn two_passes(w: &mut Worker, frames: &[Vec<u8>], full: bool) -> Vec<Done> {
    assert!(frames.len() <= BATCH);
    let mut bufs: Vec<[u8; 2048]> = frames
        .iter()
        .map(|f| {
            let mut b = [0u8; 2048];
            b[..f.len()].copy_from_slice(f);
            b
        })
        .collect();
    let mut deferred = [0usize; BATCH];
    let mut n_deferred = 0;
    let mut done = Vec::new();
    let mut keep = |index: usize, verdict: Verdict, buf: &[u8]| {
        let len = match verdict {
            Verdict::Tx { len, .. } => len,
            _ => 0,
        };
        done.push(Done {
            index,
            verdict,
            out: buf[..len].to_vec(),
        });
    };
    w.begin_batch();
    for (i, buf) in bufs.iter_mut().enumerate() {
        match w.process_first(buf, frames[i].len(), CLIENT, NOW) {
            Some(v) => keep(i, v, buf),
            None => {
                deferred[n_deferred] = i;
                n_deferred += 1;
            }
        }
    }
    for &i in &deferred[..n_deferred] {
        let v = w.process_deferred(&mut bufs[i], frames[i].len(), CLIENT, NOW, full);
        keep(i, v, &bufs[i]);
    }
    done
}

/// A legitimate client's cookie: its SYN answered in an earlier (quiet) batch.
fn cookie_of(w: &mut Worker, src: [u8; 4], sport: u16) -> u32 {
    let syn = tcp(src, sport, [198, 18, 0, 1], 80, 7000, None, b"");
    let mut buf = [0u8; 2048];
    buf[..syn.len()].copy_from_slice(&syn);
    let v = w.process(&mut buf, syn.len(), CLIENT, NOW);
    let Verdict::Tx { len, .. } = v else {
        panic!("{v:?}")
    };
    let p = SlicedPacket::from_ethernet(&buf[..len]).unwrap();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!()
    };
    t.sequence_number()
}

const REQ: &[u8] = b"GET /x HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";

/// A full batch: 8 requests with valid cookies, 4 DIP segments and a SYN to a port without
/// service among flood SYNs from spoofed sources; `kinds[i]` says which is which.
fn flood_batch(w: &mut Worker) -> (Vec<Vec<u8>>, Vec<char>) {
    let mut frames = Vec::new();
    let mut kinds = Vec::new();
    let cookies: Vec<u32> = (0..8)
        .map(|i| cookie_of(w, [198, 18, 2, 1 + i], 40000))
        .collect();
    for i in 0..BATCH {
        let (f, k) = match i % 8 {
            3 => {
                let c = i / 8;
                let src = [198, 18, 2, 1 + c as u8];
                (
                    tcp(
                        src,
                        40000,
                        [198, 18, 0, 1],
                        80,
                        7001,
                        Some(cookies[c].wrapping_add(1)),
                        REQ,
                    ),
                    'R',
                )
            }
            5 if i < 40 => (
                tcp(
                    [198, 18, 2, 200],
                    50000 + i as u16,
                    [198, 18, 0, 2],
                    80,
                    1,
                    Some(1),
                    b"x",
                ),
                'D',
            ),
            _ if i == 62 => (
                tcp([198, 18, 2, 201], 40000, [198, 18, 0, 1], 81, 9, None, b""),
                'N',
            ),
            _ => {
                let src = [198, 19, (i / 200) as u8, (i % 200) as u8 + 1];
                (
                    tcp(
                        src,
                        1024 + i as u16,
                        [198, 18, 0, 1],
                        80,
                        i as u32 * 77,
                        None,
                        b"",
                    ),
                    'S',
                )
            }
        };
        frames.push(f);
        kinds.push(k);
    }
    (frames, kinds)
}

#[test]
fn a_full_batch_serves_requests_and_dip_traffic_first_and_bounds_its_syn_acks() {
    let mut w = worker();
    let (frames, kinds) = flood_batch(&mut w);
    let syns = kinds.iter().filter(|&&k| k == 'S' || k == 'N').count();
    assert!(
        syns > SYN_ACKS_PER_FULL_BATCH,
        "the test needs more SYNs than the budget"
    );
    let before = w.counters().clone();
    let done = two_passes(&mut w, &frames, true);
    assert_eq!(done.len(), frames.len(), "every frame gets one verdict");

    // Order: no SYN is answered (or dropped) before every other frame had its verdict.
    let first_syn = done
        .iter()
        .position(|d| matches!(kinds[d.index], 'S' | 'N'))
        .unwrap();
    assert_eq!(first_syn, frames.len() - syns);
    assert!(done[first_syn..]
        .iter()
        .all(|d| matches!(kinds[d.index], 'S' | 'N')));

    // Requests: every one redirected (data + FIN); DIP segments forwarded to the real.
    for d in &done[..first_syn] {
        match kinds[d.index] {
            'R' => {
                assert!(
                    matches!(d.verdict, Verdict::Tx { port: CLIENT, .. }),
                    "{d:?}"
                );
                assert_eq!(flags(&d.out), (false, true, true, false));
                assert!(d.out.windows(12).any(|x| x == b"HTTP/1.1 302"));
            }
            'D' => assert!(
                matches!(d.verdict, Verdict::Tx { port: SERVER, .. }),
                "{d:?}"
            ),
            k => panic!("{k}"),
        }
    }

    // SYNs: the first SYN_ACKS_PER_FULL_BATCH in arrival order answered, the rest deferred.
    let syn_done = &done[first_syn..];
    let indices: Vec<usize> = syn_done.iter().map(|d| d.index).collect();
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    assert_eq!(indices, sorted, "second pass in arrival order");
    for (n, d) in syn_done.iter().enumerate() {
        if n < SYN_ACKS_PER_FULL_BATCH {
            assert!(
                matches!(d.verdict, Verdict::Tx { port: CLIENT, .. }),
                "{d:?}"
            );
            let want = if kinds[d.index] == 'N' {
                (false, true, false, true) // RST+ACK: no service on :81
            } else {
                (true, true, false, false)
            };
            assert_eq!(flags(&d.out), want);
        } else {
            assert_eq!(d.verdict, Verdict::Drop(Reason::SynDeferred));
        }
    }

    // Counters: rx once per frame, one outcome per frame, the deferred SYNs by name.
    let c = w.counters();
    let deferred = (syns - SYN_ACKS_PER_FULL_BATCH) as u64;
    assert_eq!(c.rx - before.rx, frames.len() as u64);
    assert_eq!(c.dropped(Reason::SynDeferred), deferred);
    let outcomes = (c.tx - before.tx)
        + (c.pass - before.pass)
        + Reason::ALL
            .iter()
            .map(|&r| c.dropped(r) - before.dropped(r))
            .sum::<u64>();
    assert_eq!(outcomes, frames.len() as u64);
    assert!(c
        .drops_by_reason()
        .any(|(name, n)| name == "syn_deferred" && n == deferred));

    // The next batch has its budget again.
    let done = two_passes(&mut w, &frames[..1], true);
    assert!(matches!(done[0].verdict, Verdict::Tx { .. }));
}

#[test]
fn a_batch_that_is_not_full_answers_every_syn_after_the_rest() {
    let mut w = worker();
    let (frames, kinds) = flood_batch(&mut w);
    let done = two_passes(&mut w, &frames, false);
    let syns = kinds.iter().filter(|&&k| k == 'S' || k == 'N').count();
    let first_syn = done
        .iter()
        .position(|d| matches!(kinds[d.index], 'S' | 'N'))
        .unwrap();
    assert_eq!(first_syn, frames.len() - syns);
    for d in &done[first_syn..] {
        assert!(
            matches!(d.verdict, Verdict::Tx { port: CLIENT, .. }),
            "{d:?}"
        );
    }
    assert_eq!(w.counters().dropped(Reason::SynDeferred), 0);
    assert_eq!(w.counters().syn_acks as usize, 8 + syns - 1);
}

#[test]
fn one_pass_processing_still_answers_syns_at_once() {
    let mut w = worker();
    let (frames, _) = flood_batch(&mut w);
    let mut answered = 0;
    w.begin_batch();
    for f in &frames {
        let mut buf = [0u8; 2048];
        buf[..f.len()].copy_from_slice(f);
        if let Verdict::Tx { .. } = w.process(&mut buf, f.len(), CLIENT, NOW) {
            answered += 1;
        }
    }
    assert_eq!(answered, frames.len());
    assert_eq!(w.counters().dropped(Reason::SynDeferred), 0);
}

#[test]
fn only_syns_without_ack_are_deferred() {
    let mut w = worker();
    let from = [198, 18, 2, 9];
    let port: Port = CLIENT;
    // A SYN+ACK to the VIP (answered with RST), a bad-checksum SYN, a SYN to the DIP
    // (forwarded: the NAT's, not the responder's).
    let synack = tcp(from, 1, [198, 18, 0, 1], 80, 1, Some(5), b"");
    let mut bad = tcp(from, 2, [198, 18, 0, 1], 80, 1, None, b"");
    let n = bad.len();
    bad[n - 3] ^= 0xff; // inside the TCP options: the checksum no longer matches
    let dip_syn = tcp(from, 3, [198, 18, 0, 2], 80, 1, None, b"");
    w.begin_batch();
    let mut buf = [0u8; 2048];
    buf[..synack.len()].copy_from_slice(&synack);
    assert!(w.process_first(&mut buf, synack.len(), port, NOW).is_some());
    buf[..dip_syn.len()].copy_from_slice(&dip_syn);
    let v = w.process_first(&mut buf, dip_syn.len(), port, NOW);
    assert!(matches!(v, Some(Verdict::Tx { port: SERVER, .. })), "{v:?}");
    buf[..bad.len()].copy_from_slice(&bad);
    assert_eq!(w.process_first(&mut buf, bad.len(), port, NOW), None);
    let v = w.process_deferred(&mut buf, bad.len(), port, NOW, false);
    assert_eq!(v, Verdict::Drop(Reason::BadTcpChecksum));
}

#[test]
fn the_budget_is_the_operators() {
    let mut w = worker();
    let (frames, kinds) = flood_batch(&mut w);
    let syns = kinds.iter().filter(|&&k| k == 'S' || k == 'N').count();
    w.set_syn_budget(Some(3));
    let done = two_passes(&mut w, &frames, true);
    let answered = done
        .iter()
        .filter(|d| matches!(kinds[d.index], 'S' | 'N') && matches!(d.verdict, Verdict::Tx { .. }))
        .count();
    assert_eq!(answered, 3);
    assert_eq!(w.counters().dropped(Reason::SynDeferred), (syns - 3) as u64);
    // No bound: a full batch answers every SYN, still after the rest.
    w.set_syn_budget(None);
    let done = two_passes(&mut w, &frames, true);
    assert!(done.iter().all(|d| matches!(d.verdict, Verdict::Tx { .. })));
    assert_eq!(w.counters().dropped(Reason::SynDeferred), (syns - 3) as u64);
}
