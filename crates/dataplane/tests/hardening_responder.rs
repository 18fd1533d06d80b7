//! Regression tests for the probe findings of issue 10 about what the data path answers or
//! translates: a request segment that cannot be checked yet, a real's replies only from the
//! server side, TCP and ICMP checksums, martian sources and impossible TCP flags. Each is a
//! few frames against `Worker`; expected frames are built independently of the data path
//! (etherparse, or by hand in `frames`), and every case checks the worker's counters.

mod frames;
mod probe;

use detour_dataplane::{Reason, Worker, CLIENT, SERVER};
use frames::*;
use probe::*;

// ---- a request segment that cannot be checked yet ------------------------------------------

/// The second segment of a split request before the first: dropped in silence (no RST); the
/// first then the second's retransmission complete the request.
#[test]
fn second_segment_before_the_first_is_dropped_without_rst() {
    let mut p = Probe::new(worker(BASE));
    let syn = Seg::from_client(VIP, 80).syn();
    let cookie = p.handshake(&syn);
    let part1 = data(&syn, cookie, 0, PART1);
    let part2 = data(&syn, cookie, PART1.len() as u32, PART2);
    p.drop("part 2 first", &part2.tcp(), CLIENT, Reason::Unchecked);
    p.tx(
        "part 1",
        &part1.tcp(),
        CLIENT,
        CLIENT,
        &answer(&part1, cookie, b""),
    );
    p.tx(
        "part 2 again",
        &part2.tcp(),
        CLIENT,
        CLIENT,
        &answer(&part2, cookie, &redirect()),
    );
    p.counters(&[("syn_acks", 1), ("heads_kept", 1), ("redirects", 1)]);
}

// ---- a real's replies only from the server side --------------------------------------------

/// The NAT real's reply, arriving from `mac`.
fn real_reply(mac: [u8; 6], to: [u8; 6]) -> Seg {
    let mut s = Seg::from_client(CLIENT_IP, 40000).with_ack(1001);
    s.src_mac = mac;
    s.dst_mac = to;
    s.src = REAL_NAT;
    s.sport = REAL_NAT_PORT;
    s.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    s
}

fn as_from_dip(s: &Seg) -> Vec<u8> {
    let mut o = s.clone();
    o.src_mac = US[0];
    o.dst_mac = GW;
    o.ttl -= 1;
    o.src = DIP_NAT;
    o.sport = 80;
    o.tcp()
}

#[test]
fn a_reals_reply_is_translated_only_from_the_server_side() {
    let mut p = Probe::new(worker(BASE));
    let spoofed = real_reply(GW, US[0]);
    p.drop(
        "from the real's address:port on the client port",
        &spoofed.tcp(),
        CLIENT,
        Reason::WrongSide,
    );
    let udp = real_reply(GW, US[0]).udp();
    p.drop("UDP likewise", &udp, CLIENT, Reason::WrongSide);
    let mut quoted = Seg::from_client(REAL_NAT, REAL_NAT_PORT);
    quoted.payload = b"q".to_vec();
    let icmp = icmp_frame(
        GW,
        US[0],
        REAL_NAT,
        CLIENT_IP,
        64,
        1,
        [3, 3, 0, 0, 0, 0, 0, 0],
        &quoted.udp_ip(),
    );
    p.drop(
        "ICMP from the real's address on the client port",
        &icmp,
        CLIENT,
        Reason::WrongSide,
    );
    let genuine = real_reply(real_mac(REAL_NAT), US[1]);
    p.tx(
        "the same reply on the server port",
        &genuine.tcp(),
        SERVER,
        CLIENT,
        &as_from_dip(&genuine),
    );
    let len = (genuine.tcp().len() - 14) as u64;
    p.counters(&[("to_client", 1), ("to_client_bytes", len)]);
    assert_eq!(p.w.real_counters()[0].to_client, 1);
}

/// One-armed (one interface for both sides): replies arrive on the one port and are
/// translated.
#[test]
fn one_armed_translates_replies_on_its_one_port() {
    let mut p = Probe::new(Worker::new(config(true, &[]), snapshot(BASE)));
    let reply = real_reply(real_mac(REAL_NAT), US[0]);
    p.tx(
        "reply on the one port",
        &reply.tcp(),
        CLIENT,
        CLIENT,
        &as_from_dip(&reply),
    );
    p.counters(&[
        ("to_client", 1),
        ("to_client_bytes", (reply.tcp().len() - 14) as u64),
    ]);
}

// ---- checksums, martians and flags on the responder path -----------------------------------

#[test]
fn bad_tcp_checksums_to_the_responder_are_dropped() {
    let mut p = Probe::new(worker(BASE));
    let syn = Seg::from_client(VIP, 80).syn();
    p.drop(
        "SYN",
        &bad_tcp_checksum(syn.tcp()),
        CLIENT,
        Reason::BadTcpChecksum,
    );
    let cookie = p.handshake(&syn);
    let req = data(&syn, cookie, 0, REQ);
    p.drop(
        "request",
        &bad_tcp_checksum(req.tcp()),
        CLIENT,
        Reason::BadTcpChecksum,
    );
    let closed = Seg::from_client(VIP, 81).syn();
    p.drop(
        "SYN to a port with no service",
        &bad_tcp_checksum(closed.tcp()),
        CLIENT,
        Reason::BadTcpChecksum,
    );
    p.tx(
        "the request, intact",
        &req.tcp(),
        CLIENT,
        CLIENT,
        &answer(&req, cookie, &redirect()),
    );
    p.counters(&[("syn_acks", 1), ("redirects", 1)]);
}

#[test]
fn martian_sources_are_never_answered_nor_forwarded() {
    let kernel = [198, 18, 0, 254];
    let mut p = Probe::new(Worker::new(config(false, &[kernel]), snapshot(BASE)));
    let martians: [[u8; 4]; 11] = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [127, 0, 0, 1],
        [127, 255, 0, 9],
        [224, 0, 0, 1],
        [239, 255, 255, 250],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
        VIP,
        DIP_NAT,
        kernel,
    ];
    for src in martians {
        let mut syn = Seg::from_client(VIP, 80).syn();
        syn.src = src;
        p.drop(
            &format!("SYN from {src:?}"),
            &syn.tcp(),
            CLIENT,
            Reason::Martian,
        );
        let mut fwd = Seg::from_client(DIP_NAT, 80).syn();
        fwd.src = src;
        p.drop(
            &format!("SYN to a DIP from {src:?}"),
            &fwd.tcp(),
            CLIENT,
            Reason::Martian,
        );
        let echo = icmp_frame(
            GW,
            US[0],
            src,
            VIP,
            64,
            1,
            [8, 0, 0, 0, 0, 1, 0, 1],
            b"ping",
        );
        p.drop(
            &format!("echo from {src:?}"),
            &echo,
            CLIENT,
            Reason::Martian,
        );
    }
    p.counters(&[]);
}

#[test]
fn impossible_flags_to_the_responder_are_dropped_as_linux_does() {
    let mut p = Probe::new(worker(BASE));
    let base = Seg::from_client(VIP, 80).tcp();
    for (what, flags) in [
        ("SYN+FIN", SYN | FIN),
        ("SYN+RST", SYN | RST),
        ("SYN+FIN+PSH+URG", SYN | FIN | PSH | 0x20),
        ("FIN without ACK", FIN),
        ("FIN+PSH+URG without ACK", FIN | PSH | 0x20),
        ("no flags", 0),
        ("PSH alone", PSH),
    ] {
        p.drop(
            what,
            &with_flags(base.clone(), flags),
            CLIENT,
            Reason::BadFlags,
        );
    }
    // What stays answered: a SYN+ACK gets a RST, a lone RST nothing, FIN+ACK its ACK.
    let mut synack = Seg::from_client(VIP, 80).syn().with_ack(77);
    synack.mss = None;
    let mut rst = synack.answer(CLIENT);
    rst.rst = true;
    rst.seq = 77;
    rst.window = 0;
    p.tx("SYN+ACK", &synack.tcp(), CLIENT, CLIENT, &rst.tcp());
    let mut lone = Seg::from_client(VIP, 80);
    lone.rst = true;
    p.drop("RST", &lone.tcp(), CLIENT, Reason::NothingToAnswer);
    let mut fin = Seg::from_client(VIP, 80).with_ack(78);
    fin.fin = true;
    let mut ack = fin.answer(CLIENT);
    ack.seq = 78;
    ack.ack = Some(fin.next_seq());
    p.tx("FIN+ACK", &fin.tcp(), CLIENT, CLIENT, &ack.tcp());
    p.counters(&[("fin_acks", 1)]);
}

/// ICMP the director answers (echo) or passes on with a fresh checksum (errors): a corrupt
/// message is dropped, never given a valid checksum.
#[test]
fn icmp_with_a_bad_checksum_is_neither_answered_nor_translated() {
    let mut p = Probe::new(worker(BASE));
    let mut echo = icmp_frame(
        GW,
        US[0],
        CLIENT_IP,
        VIP,
        64,
        1,
        [8, 0, 0, 0, 0, 1, 0, 1],
        b"ping",
    );
    echo[14 + 20 + 9] ^= 0x40;
    p.drop("echo request", &echo, CLIENT, Reason::BadIcmp);
    let mut quoted = Seg::from_client(REAL_NAT, REAL_NAT_PORT);
    quoted.payload = b"q".to_vec();
    let mut err = icmp_frame(
        real_mac(REAL_NAT),
        US[1],
        REAL_NAT,
        CLIENT_IP,
        64,
        1,
        [3, 3, 0, 0, 0, 0, 0, 0],
        &quoted.udp_ip(),
    );
    let n = err.len();
    err[n - 1] ^= 0x40;
    p.drop(
        "port unreachable from the real",
        &err,
        SERVER,
        Reason::BadIcmp,
    );
    p.counters(&[]);
}
