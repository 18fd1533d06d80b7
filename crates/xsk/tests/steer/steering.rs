//! What the XDP program steers: everything to the director's owned addresses whatever the
//! protocol (ARP included), a real's replies from its address and port and its ICMP, while the
//! kernel's own traffic is passed; on the client side of a two-armed director frames from a
//! real's address are passed; and replacing the address sets at run time (limits refused).

use super::*;
use crate::lab::{in_ns, require_root, Lab};
use crate::traffic::{counters, settle, wait_counters};

#[test]
fn steers_the_directors_traffic_and_passes_the_rest() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    assert!(matches!(steer.mode(), AttachMode::Driver | AttachMode::Skb));
    eprintln!("attach mode on veth: {}", steer.mode());
    assert!(
        lab.link_a().contains("xdp"),
        "no XDP program: {}",
        lab.link_a()
    );

    let kernel = lab.kernel_a();
    assert_eq!(kernel, vec![KERNEL_A]);
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    steer
        .set_addresses(&[OWNED], &[real], &kernel)
        .expect("set_addresses");

    // ARP for the kernel's address and ping to it: passed, and answered by the kernel.
    let c0 = counters(&steer);
    assert_eq!(
        lab.ping_from_b(KERNEL_A, 3),
        3,
        "the kernel did not answer the pings"
    );
    let c1 = wait_counters(&steer, "ping to the kernel", |c| {
        c.to_kernel >= c0.to_kernel + 3 && c.arp_other > c0.arp_other
    });
    assert!(c1.passed >= c0.passed + 4);
    settle();
    let c1 = counters(&steer);
    assert_eq!(
        c1.redirected, c0.redirected,
        "kernel traffic was steered: {c1:?}"
    );

    // ARP request for the owned address: steered (and, with no socket, unanswered).
    lab.udp_from_b(5000, OWNED, 1);
    let c2 = wait_counters(&steer, "ARP for the owned address", |c| {
        c.arp_owned > c1.arp_owned
    });
    assert!(c2.redirected > c1.redirected);
    assert!(
        c2.no_socket > c1.no_socket,
        "steered without a socket: {c2:?}"
    );

    // Ping, UDP and TCP to the owned address: steered, whatever the protocol.
    lab.static_neigh(OWNED);
    lab.static_neigh(ELSEWHERE);
    let c2 = counters(&steer);
    assert_eq!(
        lab.ping_from_b(OWNED, 3),
        0,
        "nobody should answer for the owned address"
    );
    lab.udp_from_b(5000, OWNED, 3);
    let b = lab.ns_b.clone();
    in_ns(&b, || {
        let _ = TcpStream::connect_timeout(
            &SocketAddrV4::new(OWNED, 80).into(),
            Duration::from_millis(200),
        );
    });
    let c3 = wait_counters(&steer, "ping/UDP/TCP to the owned address", |c| {
        c.to_owned >= c2.to_owned + 7
    });
    assert!(c3.redirected >= c2.redirected + 7);

    // From a real's addr:port to a client: steered; from another port: passed.
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    let c4 = wait_counters(&steer, "UDP from the real", |c| {
        c.from_real >= c3.from_real + 3
    });
    assert!(c4.redirected >= c3.redirected + 3);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 3);
    let c5 = wait_counters(&steer, "UDP from another port", |c| {
        c.other_ipv4 >= c4.other_ipv4 + 3
    });
    assert_eq!(c5.from_real, c4.from_real);

    // ICMP from a real's address: steered.
    assert_eq!(lab.ping_from_b(ELSEWHERE, 2), 0);
    let c6 = wait_counters(&steer, "ICMP from the real", |c| {
        c.icmp_from_real >= c5.icmp_from_real + 2
    });
    assert!(c6.redirected >= c5.redirected + 2);

    // The totals are the sums of the reasons.
    settle();
    let c = counters(&steer);
    assert_eq!(
        c.redirected,
        c.arp_owned + c.to_owned + c.from_real + c.icmp_from_real + c.ns_owned
    );
    assert_eq!(
        c.passed,
        c.to_kernel
            + c.arp_other
            + c.not_ipv4
            + c.vlan
            + c.other_ipv4
            + c.malformed
            + c.real_client_side
            + c.other_ipv6
    );
    // No socket anywhere: every steered frame fell back to the kernel.
    assert_eq!(c.no_socket, c.redirected);
    assert_eq!(steer.stats(), (c.redirected, c.passed));
}

/// On the client side of a two-armed director, frames from a real's address are the kernel's
/// (a real's replies come from the server side); traffic to owned addresses is still steered.
#[test]
fn frames_from_reals_are_passed_on_the_client_side() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    let kernel = lab.kernel_a();
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    steer
        .set_addresses(&[OWNED], &[real], &kernel)
        .expect("set_addresses");
    lab.static_neigh(OWNED);
    lab.static_neigh(ELSEWHERE);
    steer.set_client_side_only(true).expect("client side");
    let c0 = counters(&steer);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    assert_eq!(lab.ping_from_b(ELSEWHERE, 2), 0);
    let c1 = wait_counters(&steer, "from the real on the client side", |c| {
        c.real_client_side >= c0.real_client_side + 5
    });
    assert_eq!(
        (c1.from_real, c1.icmp_from_real),
        (c0.from_real, c0.icmp_from_real)
    );
    lab.udp_from_b(5000, OWNED, 2);
    let c2 = wait_counters(&steer, "to the owned address", |c| {
        c.to_owned >= c1.to_owned + 2
    });
    // Back to the server side: steered again.
    steer.set_client_side_only(false).expect("server side");
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 3);
    let c3 = wait_counters(&steer, "from the real on the server side", |c| {
        c.from_real >= c2.from_real + 3
    });
    settle();
    assert_eq!(counters(&steer).real_client_side, c3.real_client_side);
}

#[test]
fn set_addresses_replaces_the_sets() {
    require_root();
    let lab = Lab::new();
    let mut steer = lab.attach(None);
    let kernel = lab.kernel_a();
    for addr in [OWNED, OWNED2, ELSEWHERE] {
        lab.static_neigh(addr);
    }
    let real = SocketAddrV4::new(PEER_B, REAL_PORT);
    let real2 = SocketAddrV4::new(PEER_B, REAL_PORT + 1);
    steer
        .set_addresses(&[OWNED, OWNED2], &[real], &kernel)
        .expect("set_addresses");

    let c0 = counters(&steer);
    lab.udp_from_b(5000, OWNED2, 2);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 2);
    wait_counters(&steer, "first sets", |c| {
        c.to_owned >= c0.to_owned + 2 && c.from_real >= c0.from_real + 2
    });

    // OWNED2 and the real on 8080 removed, the real on 8081 added.
    steer
        .set_addresses(&[OWNED], &[real2], &kernel)
        .expect("set_addresses");
    settle();
    let c1 = counters(&steer);
    lab.udp_from_b(5000, OWNED2, 2);
    lab.udp_from_b(REAL_PORT, ELSEWHERE, 2);
    wait_counters(&steer, "removed entries", |c| {
        c.other_ipv4 >= c1.other_ipv4 + 4
    });
    settle();
    let c2 = counters(&steer);
    assert_eq!(
        c2.redirected, c1.redirected,
        "a removed address is still steered: {c2:?}"
    );
    lab.udp_from_b(5000, OWNED, 2);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 2);
    wait_counters(&steer, "kept and added entries", |c| {
        c.to_owned >= c2.to_owned + 2 && c.from_real >= c2.from_real + 2
    });

    // Too many kernel addresses: refused, and nothing changed.
    let many: Vec<Ipv4Addr> = (0..300u32)
        .map(|i| Ipv4Addr::from(0xc612_1000 + i))
        .collect();
    let err = steer
        .set_addresses(&[], &[], &many)
        .expect_err("300 kernel addresses accepted");
    assert!(err.to_string().contains("kernel addresses"), "{err}");
    let c3 = counters(&steer);
    lab.udp_from_b(5000, OWNED, 1);
    wait_counters(&steer, "after a refused update", |c| {
        c.to_owned > c3.to_owned
    });

    // Empty sets: everything goes to the kernel.
    steer.set_addresses(&[], &[], &[]).expect("set_addresses");
    settle();
    let c4 = counters(&steer);
    lab.udp_from_b(5000, OWNED, 2);
    lab.udp_from_b(REAL_PORT + 1, ELSEWHERE, 2);
    wait_counters(&steer, "empty sets", |c| c.other_ipv4 >= c4.other_ipv4 + 4);
    settle();
    assert_eq!(counters(&steer).redirected, c4.redirected);
}
