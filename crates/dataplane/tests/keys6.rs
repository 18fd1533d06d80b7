//! IPv6 clients are remembered by their whole address (issue 10): the backup-flow table and
//! the split-head table key on all 128 bits, so an IPv6 client whose DIP's real is down keeps
//! its backup flow across segments, and two IPv6 clients that share their low 32 bits (and
//! the 32-bit fold the tables used before) are two clients.
//!
//! Expected frames are built independently of the data path (etherparse computes their
//! checksums); every case checks the counters it relies on.

mod frames;

use detour_dataplane::{Counters, Verdict, Worker, CLIENT, SERVER};
use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};
use frames::*;
use std::net::Ipv6Addr;

type A6 = [u8; 16];

/// The DIP of the failed real, its backup's DIP and real.
const DIP6: &str = "2001:db8::2";
const DIP_B6: &str = "2001:db8::4";
const REAL_B6: &str = "2001:db8:1::4";

/// [2001:db8::2]'s real failed; its backup is the real of [2001:db8::4].
const CONF: &str = "\
virtual [2001:db8::1]:80
dip [2001:db8::2] real [2001:db8:1::2]:8080
dip [2001:db8::4] real [2001:db8:1::4]:8080
url u http://%h/%d
bind [2001:db8::1] u
backup [2001:db8::2] [2001:db8::4]
out-of-service real [2001:db8::2] failed
";

fn a6(s: &str) -> A6 {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

/// Two clients with the same low 32 bits and the same XOR fold of their four 32-bit words
/// (words 1 and 2 both differ by 1): one host each only to a table keyed on every bit.
fn twins() -> (A6, A6) {
    let a = a6("2001:db8:5:0:0:0:c633:6401");
    let b = a6("2001:db8:5:1:0:1:c633:6401");
    let fold = |x: A6| {
        let o = u128::from_be_bytes(x);
        (o as u32) ^ ((o >> 32) as u32) ^ ((o >> 64) as u32) ^ ((o >> 96) as u32)
    };
    assert_eq!(fold(a), fold(b));
    assert_eq!(a[12..], b[12..]);
    (a, b)
}

/// A TCP segment in an Ethernet/IPv6 frame; `flags` letters: S, A (ack number `ack`), P.
#[allow(clippy::too_many_arguments)]
fn seg(
    macs: ([u8; 6], [u8; 6]),
    (src, dst): (A6, A6),
    hop: u8,
    (sport, dport): (u16, u16),
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = TcpHeader::new(sport, dport, seq, 65535);
    t.syn = syn;
    if let Some(a) = ack {
        t.ack = true;
        t.acknowledgment_number = a;
    }
    if syn {
        t.set_options(&[TcpOptionElement::MaximumSegmentSize(1440)])
            .unwrap();
    }
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src, dst, hop)
        .tcp_header(t)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn tx(w: &mut Worker, frame: &[u8], port: detour_dataplane::Port) -> Vec<u8> {
    let (v, out) = run(w, frame, port);
    assert!(
        matches!(v, Verdict::Tx { .. }),
        "{v:?} {:?}\n{}",
        w.counters(),
        hex_dump(frame)
    );
    out
}

/// A client's segment to [DIP]:80, and that segment as the backup real must receive it.
fn to_dip(client: A6, syn: bool, seq: u32) -> (Vec<u8>, Vec<u8>) {
    let ack = (!syn).then_some(7);
    let p: &[u8] = if syn { b"" } else { b"GET / HTTP/1.1\r\n\r\n" };
    let input = seg(
        (GW, US[0]),
        (client, a6(DIP6)),
        64,
        (40000, 80),
        seq,
        ack,
        syn,
        p,
    );
    let want = seg(
        (US[1], real_mac6(a6(REAL_B6))),
        (client, a6(REAL_B6)),
        63,
        (40000, 8080),
        seq,
        ack,
        syn,
        p,
    );
    (input, want)
}

/// The backup real's segment to `client`:40000, and how the client must receive it: from
/// `dip`:80.
fn from_backup(client: A6, dip: &str) -> (Vec<u8>, Vec<u8>) {
    let p = b"HTTP/1.1 200 OK\r\n\r\n";
    let input = seg(
        (real_mac6(a6(REAL_B6)), US[1]),
        (a6(REAL_B6), client),
        64,
        (8080, 40000),
        7,
        Some(1001),
        false,
        p,
    );
    let want = seg(
        (US[0], GW),
        (a6(dip), client),
        63,
        (80, 40000),
        7,
        Some(1001),
        false,
        p,
    );
    (input, want)
}

fn counts(c: &Counters) -> [u64; 4] {
    [c.to_real, c.to_backup, c.to_client, c.backup_flows_evicted]
}

/// An IPv6 client whose DIP's real is down: its SYN opens a backup flow, and every later
/// segment of that flow (both ways, across segments) goes through the backup real as if it
/// were the DIP. Before, IPv6 flows were not remembered: the backup's replies left from its
/// own DIP, and the client's TCP dropped them.
#[test]
fn an_ipv6_client_keeps_its_backup_flow_across_segments() {
    let mut w = worker(CONF);
    let (client, _) = twins();
    let (syn, want) = to_dip(client, true, 1000);
    assert_frame("SYN to the backup real", &want, &tx(&mut w, &syn, CLIENT));
    assert_eq!(w.occupancy(NOW_MS)[1].0, 1, "the SYN opened one flow");
    for i in 0..3 {
        let (reply, want) = from_backup(client, DIP6);
        assert_frame(
            &format!("backup's reply {i} to the client"),
            &want,
            &tx(&mut w, &reply, SERVER),
        );
        let (data, want) = to_dip(client, false, 1001 + i);
        assert_frame(
            &format!("client's segment {i} to the backup real"),
            &want,
            &tx(&mut w, &data, CLIENT),
        );
    }
    assert_eq!(counts(w.counters()), [4, 4, 3, 0]);
    assert_eq!(w.occupancy(NOW_MS)[1].0, 1, "other segments only refresh");
}

/// Two IPv6 clients sharing their low 32 bits (and the old 32-bit fold), on the same port:
/// the one whose SYN opened a flow gets replies from the DIP it asked for; the other, whose
/// segments opened none (an ACK does not open a flow), gets the backup's replies from the
/// backup's own DIP. Keyed on 32 bits, the second client's replies took the first one's flow.
#[test]
fn two_ipv6_clients_sharing_the_low_32_bits_have_their_own_backup_flows() {
    let mut w = worker(CONF);
    let (a, b) = twins();
    let (syn, want) = to_dip(a, true, 1000);
    assert_frame("a's SYN", &want, &tx(&mut w, &syn, CLIENT));
    let (ack, want) = to_dip(b, false, 5000);
    assert_frame("b's ACK", &want, &tx(&mut w, &ack, CLIENT));
    let (reply, want) = from_backup(b, DIP_B6);
    assert_frame(
        "reply to b: from the backup's own DIP",
        &want,
        &tx(&mut w, &reply, SERVER),
    );
    let (reply, want) = from_backup(a, DIP6);
    assert_frame(
        "reply to a: from a's DIP",
        &want,
        &tx(&mut w, &reply, SERVER),
    );
    assert_eq!(counts(w.counters()), [2, 2, 2, 0]);
    assert_eq!(w.occupancy(NOW_MS)[1].0, 1, "b's ACK opened no flow");
    assert_eq!(w.most_per_client(NOW_MS)[1], 1);
}

/// Two IPv6 clients sharing their low 32 bits (and the old fold) on the same port each
/// split their request over two segments: both heads are kept apart and both complete.
/// Keyed on 32 bits, the second one's first segment replaced the first one's head.
#[test]
fn two_ipv6_clients_sharing_the_low_32_bits_keep_their_own_split_heads() {
    let mut w = worker(CONF);
    let (a, b) = twins();
    let vip = a6("2001:db8::1");
    let mut cookies = Vec::new();
    for c in [a, b] {
        let syn = seg(
            (GW, US[0]),
            (c, vip),
            64,
            (40000, 80),
            1000,
            None,
            true,
            b"",
        );
        let out = tx(&mut w, &syn, CLIENT);
        cookies.push(be32(&out, 14 + 40 + 4));
    }
    let part1 = b"GET /a HTTP/1.1\r\nUser-Agent: x\r\n";
    let part2 = b"Accept: */*\r\n\r\n";
    for (c, &k) in [a, b].iter().zip(&cookies) {
        let s = seg(
            (GW, US[0]),
            (*c, vip),
            64,
            (40000, 80),
            1001,
            Some(k + 1),
            false,
            part1,
        );
        let out = tx(&mut w, &s, CLIENT);
        assert_eq!(out.len(), 14 + 40 + 20, "part 1 is ACKed without data");
    }
    assert_eq!(w.occupancy(NOW_MS)[0].0, 2, "two heads kept");
    let seq2 = 1001 + part1.len() as u32;
    for (c, &k) in [a, b].iter().zip(&cookies) {
        let s = seg(
            (GW, US[0]),
            (*c, vip),
            64,
            (40000, 80),
            seq2,
            Some(k + 1),
            false,
            part2,
        );
        let out = tx(&mut w, &s, CLIENT);
        let body = String::from_utf8_lossy(&out[14 + 40 + 20..]);
        assert!(body.starts_with("HTTP/1.1 302"), "{body}");
        assert_eq!(out[14 + 24..14 + 40], c[..], "to the right client");
    }
    let k = w.counters();
    assert_eq!(
        (k.syn_acks, k.heads_kept, k.heads_evicted, k.redirects),
        (2, 2, 0, 2)
    );
}

/// An ICMPv6 message by hand: Ethernet, IPv6 (hop limit `hop`), type 2 (packet too big),
/// MTU 1280, the checksum summed here with the plain RFC 1071 sum of `frames`, then the
/// quoted packet: an IPv6 header and the first 8 bytes of TCP, `src`:`ports.0` ->
/// `dst`:`ports.1`.
fn too_big(
    macs: ([u8; 6], [u8; 6]),
    (src, dst): (A6, A6),
    hop: u8,
    quoted: (A6, A6, (u16, u16)),
) -> Vec<u8> {
    let mut m = vec![2, 0, 0, 0, 0, 0, 5, 0];
    m.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 63]);
    m.extend_from_slice(&quoted.0);
    m.extend_from_slice(&quoted.1);
    m.extend_from_slice(&quoted.2 .0.to_be_bytes());
    m.extend_from_slice(&quoted.2 .1.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 1]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let mut s = ones_sum(ones_sum(0, &pseudo), &m);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    m[2..4].copy_from_slice(&(!(s as u16)).to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&macs.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(m.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, hop]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&m);
    f
}

/// Packet too big from the backup real about a backup flow's packet (quoted: client ->
/// [backup real]:8080) reaches the client as from, and about, the DIP the flow's SYN went
/// to, as the flow's replies do (so path-MTU discovery works for it). Before, IPv6 errors
/// were translated by the real's own DIP only.
#[test]
fn packet_too_big_from_the_backup_real_follows_the_flow() {
    let mut w = worker(CONF);
    let (client, _) = twins();
    let (syn, want) = to_dip(client, true, 1000);
    assert_frame("SYN to the backup real", &want, &tx(&mut w, &syn, CLIENT));
    let real = a6(REAL_B6);
    let error = too_big(
        (real_mac6(real), US[1]),
        (real, client),
        64,
        (client, real, (40000, 8080)),
    );
    let want = too_big(
        (US[0], GW),
        (a6(DIP6), client),
        63,
        (client, a6(DIP6), (40000, 80)),
    );
    assert_frame(
        "the error to the client",
        &want,
        &tx(&mut w, &error, SERVER),
    );
    assert_eq!(w.counters().icmp_translated, 1);
}
