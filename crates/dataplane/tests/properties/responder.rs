//! Properties of the responder: a SYN-ACK's cookie is accepted exactly by the request
//! that answers it (any other ack gets a RST or silence), and any payload after the handshake
//! gets an ack, a status or a drop.

use super::*;

// ---- the responder ------------------------------------------------------------------------------

const REDIRECT_CODES: [&str; 5] = ["301", "302", "303", "307", "308"];
const STATUS_CODES: [&str; 4] = ["400", "414", "431", "503"];

#[derive(Clone, Debug)]
struct Client {
    src: [u8; 4],
    sport: u16,
    isn: u32,
    mss: Option<u16>,
    /// When the request arrives after the SYN (ms), within the cookie's window.
    delay_ms: u64,
}

prop_compose! {
    fn client()(
        src in client_ip(),
        sport in 1u16..,
        isn in any::<u32>(),
        mss in proptest::option::of(536u16..),
        delay_ms in 0u64..60_000,
    ) -> Client {
        Client { src, sport, isn, mss, delay_ms }
    }
}

impl Client {
    fn syn(&self) -> Seg {
        let mut s = Seg::from_client(VIP, 80).syn();
        s.src = self.src;
        s.sport = self.sport;
        s.seq = self.isn;
        s.mss = self.mss;
        s
    }

    /// A data segment at `seq` acking `ack`.
    fn data(&self, seq: u32, ack: u32, payload: &[u8]) -> Seg {
        let mut s = Seg::from_client(VIP, 80);
        s.src = self.src;
        s.sport = self.sport;
        s.seq = seq;
        s.ack = Some(ack);
        s.psh = true;
        s.payload = payload.to_vec();
        s
    }
}

/// SYN -> SYN-ACK: checks it and returns the cookie.
fn syn_ack(w: &mut Worker, c: &Client) -> Result<u32, TestCaseError> {
    let syn = c.syn();
    let (v, out) = run_cap(w, &syn.tcp(), CLIENT, BUF, NOW_MS);
    prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
    assert_checksums_recomputed(&out, false)?;
    let t = tcp_view(&out).unwrap();
    prop_assert_eq!(t.flags, SYN | ACK);
    prop_assert_eq!(t.ack, c.isn.wrapping_add(1));
    prop_assert_eq!((t.dst, t.dport), (c.src, c.sport));
    // Exactly one option: MSS 1460.
    let (ihl, _) = ipv4_bounds(&out).unwrap();
    let tcp = &out[14 + ihl..];
    prop_assert_eq!(tcp[12] >> 4, 6);
    prop_assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4][..]);
    Ok(t.seq)
}

const REQUEST: &[u8] = b"GET /some/page?id=7 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";

/// A perturbation of a 32-bit value that never leaves it unchanged.
#[derive(Clone, Debug)]
enum Perturb {
    Add(u32),
    Sub(u32),
    Flip(u32),
}

fn perturb() -> impl Strategy<Value = Perturb> {
    prop_oneof![
        (1u32..=1 << 31).prop_map(Perturb::Add),
        (1u32..=1 << 31).prop_map(Perturb::Sub),
        // One to four bits flipped anywhere.
        prop::collection::vec(0u32..32, 1..=4).prop_filter_map("no bit flipped", |bits| {
            let m = bits.iter().fold(0u32, |m, b| m ^ (1 << b));
            (m != 0).then_some(Perturb::Flip(m))
        }),
    ]
}

impl Perturb {
    fn apply(&self, x: u32) -> u32 {
        match *self {
            Perturb::Add(d) => x.wrapping_add(d),
            Perturb::Sub(d) => x.wrapping_sub(d),
            Perturb::Flip(m) => x ^ m,
        }
    }
}

/// A request whose ack (or seq) does not continue the SYN-ACK must get a RST carrying
/// seq = its ack, no ACK flag, no payload.
fn assert_rst(out: &[u8], sent_ack: u32) -> Result<(), TestCaseError> {
    assert_checksums_recomputed(out, false)?;
    let t = tcp_view(out).unwrap();
    prop_assert_eq!(t.flags, RST, "flags {:#x}", t.flags);
    prop_assert_eq!(t.seq, sent_ack);
    prop_assert!(t.payload.is_empty(), "a RST with {} bytes", t.payload.len());
    Ok(())
}

/// Is this output an acceptable answer to data after a valid handshake: a pure ACK, or a
/// status response (redirect, 400, 414, 431, 503) with FIN? Returns true for a final answer.
fn check_answer(out: &[u8], seg: &Seg, cookie: u32) -> Result<bool, TestCaseError> {
    assert_checksums_recomputed(out, false)?;
    let t = tcp_view(out).unwrap();
    prop_assert_eq!(
        (t.dst, t.dport, t.src, t.sport),
        (seg.src, seg.sport, VIP, 80)
    );
    prop_assert_eq!(t.seq, cookie.wrapping_add(1), "our seq");
    if t.flags == ACK {
        prop_assert!(t.payload.is_empty(), "an ACK with data");
        return Ok(false);
    }
    prop_assert_eq!(t.flags, FIN | PSH | ACK, "flags {:#x}", t.flags);
    prop_assert_eq!(
        t.ack,
        seg.next_seq(),
        "the final answer acks the whole segment"
    );
    let text = String::from_utf8_lossy(&t.payload);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .map(|r| &r[..3.min(r.len())])
        .unwrap_or("");
    prop_assert!(
        REDIRECT_CODES.contains(&code) || STATUS_CODES.contains(&code),
        "unexpected response {:?}",
        &text[..text.len().min(80)]
    );
    Ok(true)
}

/// Bytes an HTTP client (or anything else) might send as a request head: mostly well-formed
/// requests (to reach 302, 414 and 431), some malformed ones, some random bytes.
fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = "[A-Za-z!#$%&'*+.^_`|~0-9-]{1,12}";
    let structured = (
        prop_oneof![
            3 => Just("GET".to_string()),
            2 => Just("HEAD".to_string()),
            1 => Just("POST".to_string()),
            1 => token.prop_map(|s| s)
        ],
        prop_oneof![
            6 => "/[!-~&&[^%]]{0,40}",
            2 => "/[a-z]{500,1200}",
            1 => "/[!-~]{0,60}",
            1 => "[ -~]{0,20}"
        ],
        prop_oneof![
            6 => Just("HTTP/1.1".to_string()),
            2 => Just("HTTP/1.0".to_string()),
            1 => "[ -~]{0,10}"
        ],
        prop::option::of(prop_oneof![
            6 => "[a-z0-9.-]{1,40}(:[0-9]{1,5})?",
            1 => "[ -~]{0,60}",
            1 => "[\\x00-\\xff]{0,20}"
        ]),
        prop_oneof![
            8 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,80}"), 0..8),
            1 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,20}"), 60..80),
            1 => prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{200,300}"), 10..20),
        ],
        prop::bool::weighted(0.8),
    )
        .prop_map(|(m, p, v, host, hs, done)| {
            let mut r = format!("{m} {p} {v}\r\n").into_bytes();
            if let Some(h) = host {
                r.extend_from_slice(b"Host: ");
                r.extend_from_slice(h.as_bytes());
                r.extend_from_slice(b"\r\n");
            }
            for (n, val) in hs {
                r.extend_from_slice(format!("{n}: {val}\r\n").as_bytes());
            }
            if done {
                r.extend_from_slice(b"\r\n");
            }
            r
        });
    prop_oneof![
        4 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..1460),
        1 => prop::collection::vec(any::<u8>(), 0..4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The cookie of a SYN-ACK, used in the request within the window, gets a 302 with the
    /// exact seq/ack; the same request with its ack or seq moved by ±1..2^31 or with bits
    /// flipped gets no response: a RST without payload, or (when its cookie is of the current
    /// slots) a silent drop. The SYN's retransmission gets the same cookie.
    #[test]
    fn cookie_gets_302_and_any_other_ack_gets_rst_or_silence(c in client(), p in perturb(), on_seq in prop::bool::weighted(0.25)) {
        let mut w = worker(BASE);
        let cookie = syn_ack(&mut w, &c)?;
        prop_assert_eq!(syn_ack(&mut w, &c)?, cookie, "a retransmitted SYN gets the same cookie");
        let at = NOW_MS + c.delay_ms;
        let ok = c.data(c.isn.wrapping_add(1), cookie.wrapping_add(1), REQUEST);
        let (v, out) = run_cap(&mut w, &ok.tcp(), CLIENT, BUF, at);
        prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
        prop_assert!(check_answer(&out, &ok, cookie)?);
        let t = tcp_view(&out).unwrap();
        prop_assert!(t.payload.starts_with(b"HTTP/1.1 302 Found\r\nLocation: http://nat.lab/some/page?id=7\r\n"));
        let limit = usize::from(c.mss.unwrap_or(536).max(536));
        prop_assert!(t.payload.len() <= limit, "{} bytes for MSS {:?}", t.payload.len(), c.mss);
        prop_assert_eq!(w.counters().redirects, 1);

        let bad = if on_seq {
            c.data(p.apply(c.isn.wrapping_add(1)), cookie.wrapping_add(1), REQUEST)
        } else {
            c.data(c.isn.wrapping_add(1), p.apply(cookie.wrapping_add(1)), REQUEST)
        };
        let (v, out) = run_cap(&mut w, &bad.tcp(), CLIENT, BUF, at);
        // A cookie carrying the current or the previous 64 s slot in its top 5 bits may be
        // valid for another ISN (a later segment): dropped in silence. Any other: RST.
        let slot = at / 1000 / 64;
        let sent_slot = u64::from(bad.ack.unwrap().wrapping_sub(1) >> 27);
        let in_window = sent_slot == slot % 32 || sent_slot == (slot - 1) % 32;
        if in_window {
            prop_assert_eq!(v, Verdict::Drop(detour_dataplane::Reason::Unchecked));
            prop_assert_eq!(w.counters().dropped(detour_dataplane::Reason::BadCookie), 0);
        } else {
            prop_assert!(matches!(v, Verdict::Tx { port: CLIENT, .. }), "{:?}", v);
            assert_rst(&out, bad.ack.unwrap())?;
            prop_assert_eq!(w.counters().dropped(detour_dataplane::Reason::BadCookie), 1);
        }
        prop_assert_eq!(w.counters().redirects, 1, "a forged ack got a redirect");
    }

    /// After a valid handshake, any bytes (random or HTTP-like), in one to four segments,
    /// with or without a FIN, get for each segment a pure ACK, a status response with FIN,
    /// or a drop; never a panic, a RST, or an answer with wrong seq/ack.
    #[test]
    fn any_payload_after_handshake_gets_ack_status_or_drop(
        c in client(),
        head in head_bytes(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        fin in any::<bool>(),
    ) {
        let mut w = worker(BASE);
        let cookie = syn_ack(&mut w, &c)?;
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(head.len() + 1)).collect();
        cuts.push(0);
        cuts.push(head.len());
        cuts.sort_unstable();
        cuts.dedup();
        let pieces: Vec<&[u8]> = if head.is_empty() {
            vec![&head[..]]
        } else {
            cuts.windows(2).map(|p| &head[p[0]..p[1]]).collect()
        };
        let mut seq = c.isn.wrapping_add(1);
        let at = NOW_MS + c.delay_ms;
        for (i, piece) in pieces.iter().enumerate() {
            let mut s = c.data(seq, cookie.wrapping_add(1), piece);
            s.fin = fin && i + 1 == pieces.len();
            let (v, out) = run_cap(&mut w, &s.tcp(), CLIENT, BUF, at);
            seq = s.next_seq();
            match v {
                Verdict::Tx { port, .. } => {
                    prop_assert_eq!(port, CLIENT);
                    if s.payload.is_empty() {
                        // A bare FIN: its ACK.
                        let t = tcp_view(&out).unwrap();
                        prop_assert_eq!(t.flags, ACK);
                        prop_assert_eq!(t.ack, s.next_seq());
                        break;
                    }
                    if check_answer(&out, &s, cookie)? {
                        break;
                    }
                    let t = tcp_view(&out).unwrap();
                    prop_assert_eq!(t.ack, s.next_seq(), "the ACK covers the segment");
                }
                Verdict::Drop(_) => {}
                Verdict::Pass => prop_assert!(false, "data to the VIP passed to the kernel"),
            }
        }
    }
}
