//! The checked views and the values that write frames (`detour_dataplane::wire`), checked
//! against an independent implementation (etherparse): IPv6 frames etherparse builds read back
//! field by field with verifying checksums, and the frames the views write equal, byte for
//! byte, what etherparse writes for the same fields.

use detour_dataplane::wire::icmpv6::{na_flags, NdRepr};
use detour_dataplane::wire::{
    ethernet, ethertype, icmpv6, ipv6, proto, tcp, udp, IpPair, TcpReply,
};
use etherparse::{
    icmpv6::NeighborAdvertisementHeader, Icmpv6Type, PacketBuilder, TcpOptionElement,
};
use std::net::Ipv6Addr;

const CLIENT: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
];
const VIP: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
const CMAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const US: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn v6(a: [u8; 16]) -> Ipv6Addr {
    Ipv6Addr::from(a)
}

fn pair() -> IpPair {
    IpPair::V6 {
        src: v6(CLIENT),
        dst: v6(VIP),
    }
}

#[test]
fn an_etherparse_ipv6_syn_reads_back_through_the_views() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CMAC, US)
        .ipv6(CLIENT, VIP, 61)
        .tcp(40000, 80, 1000, 64800)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1440)])
        .unwrap()
        .write(&mut f, &[])
        .unwrap();
    f.extend_from_slice(&[0; 4]); // Ethernet padding is not part of the packet
    let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
    assert_eq!(
        (eth.src(), eth.dst(), eth.ethertype()),
        (CMAC, US, ethertype::IPV6)
    );
    let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (v6(CLIENT), v6(VIP), 61)
    );
    let c = ip.chain().unwrap();
    assert_eq!((c.proto, c.at, c.fragment), (proto::TCP, 40, None));
    let t = tcp::Packet::new_checked(ip.upper(&c)).unwrap();
    assert!(t.verify_checksum(&pair()));
    assert_eq!((t.src_port(), t.dst_port(), t.seq()), (40000, 80, 1000));
    assert_eq!(
        (t.flags(), t.mss(), t.window()),
        (tcp::Flags::SYN, Some(1440), 64800)
    );
}

#[test]
fn an_etherparse_ipv6_udp_and_echo_verify_through_the_views() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CMAC, US)
        .ipv6(CLIENT, VIP, 64)
        .udp(5353, 53)
        .write(&mut f, b"query")
        .unwrap();
    let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
    let c = ip.chain().unwrap();
    let u = udp::Packet::new_checked(ip.upper(&c)).unwrap();
    assert!(u.verify_checksum(&pair()));
    assert_eq!(
        (u.src_port(), u.dst_port(), u.payload()),
        (5353, 53, &b"query"[..])
    );

    let mut f = Vec::new();
    PacketBuilder::ethernet2(CMAC, US)
        .ipv6(CLIENT, VIP, 64)
        .icmpv6_echo_request(7, 9)
        .write(&mut f, b"ping")
        .unwrap();
    let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
    let c = ip.chain().unwrap();
    assert_eq!(c.proto, proto::ICMPV6);
    let m = icmpv6::Packet::new_checked(ip.upper(&c)).unwrap();
    assert!(m.verify_checksum(&pair()));
    assert_eq!(m.msg_type(), icmpv6::kind::ECHO_REQUEST);
    assert_eq!(
        (m.echo_ident(), m.echo_seq(), m.data()),
        (7, 9, &b"ping"[..])
    );
}

#[test]
fn an_ipv6_syn_ack_is_byte_for_byte_what_etherparse_writes() {
    let reply = TcpReply {
        src_mac: US,
        dst_mac: CMAC,
        ips: pair().reversed(),
        hop_limit: 64,
        tcp: tcp::Repr {
            src_port: 80,
            dst_port: 40000,
            seq: 0xdead_beef,
            ack: Some(1001),
            flags: tcp::Flags::SYN,
            window: 65535,
            mss: Some(1440),
        },
        payload: &[],
    };
    let mut ours = vec![0u8; 200];
    let n = reply.emit(&mut ours).unwrap();
    let mut theirs = Vec::new();
    PacketBuilder::ethernet2(US, CMAC)
        .ipv6(VIP, CLIENT, 64)
        .tcp(80, 40000, 0xdead_beef, 65535)
        .syn()
        .ack(1001)
        .options(&[TcpOptionElement::MaximumSegmentSize(1440)])
        .unwrap()
        .write(&mut theirs, &[])
        .unwrap();
    assert_eq!(ours[..n], theirs[..]);
}

#[test]
fn an_ipv6_response_segment_is_byte_for_byte_what_etherparse_writes() {
    let body =
        b"HTTP/1.1 302 Found\r\nLocation: http://[2001:db8::2]/\r\nConnection: close\r\n\r\n";
    let reply = TcpReply {
        src_mac: US,
        dst_mac: CMAC,
        ips: pair().reversed(),
        hop_limit: 64,
        tcp: tcp::Repr {
            src_port: 80,
            dst_port: 40000,
            seq: 7,
            ack: Some(1090),
            flags: tcp::Flags::FIN_PSH_ACK,
            window: 65535,
            mss: None,
        },
        payload: body,
    };
    let mut ours = vec![0u8; 400];
    let n = reply.emit(&mut ours).unwrap();
    let mut theirs = Vec::new();
    PacketBuilder::ethernet2(US, CMAC)
        .ipv6(VIP, CLIENT, 64)
        .tcp(80, 40000, 7, 65535)
        .fin()
        .psh()
        .ack(1090)
        .write(&mut theirs, body)
        .unwrap();
    assert_eq!(ours[..n], theirs[..]);
}

#[test]
fn a_neighbour_advertisement_is_byte_for_byte_what_etherparse_writes() {
    // Solicited, override, with the target link-layer address option (RFC 4861 4.4, 4.6.1).
    let na = NdRepr::Advert {
        flags: na_flags::SOLICITED | na_flags::OVERRIDE,
        target: v6(VIP),
        target_mac: Some(US),
    };
    let ips = pair().reversed();
    let mut ours = vec![0u8; 14 + 40 + na.buffer_len()];
    ethernet::Repr {
        src: US,
        dst: CMAC,
        ethertype: ethertype::IPV6,
    }
    .emit(&mut ours)
    .unwrap();
    ipv6::Repr {
        src: v6(VIP),
        dst: v6(CLIENT),
        next_header: proto::ICMPV6,
        payload_len: na.buffer_len(),
        hop_limit: 255,
    }
    .emit(&mut ours[14..])
    .unwrap();
    na.emit(&mut ours[54..], &ips).unwrap();

    let mut payload = VIP.to_vec();
    payload.extend_from_slice(&[2, 1]);
    payload.extend_from_slice(&US);
    let mut theirs = Vec::new();
    PacketBuilder::ethernet2(US, CMAC)
        .ipv6(VIP, CLIENT, 255)
        .icmpv6(Icmpv6Type::NeighborAdvertisement(
            NeighborAdvertisementHeader {
                router: false,
                solicited: true,
                r#override: true,
            },
        ))
        .write(&mut theirs, &payload)
        .unwrap();
    assert_eq!(ours, theirs);
    // And it reads back.
    let m = icmpv6::Packet::new_checked(&theirs[54..]).unwrap();
    assert!(m.verify_checksum(&ips));
    assert_eq!(NdRepr::parse(&m), Ok(na));
}
