//! Regression tests for the probe findings of issue 10 about state: the cookie secret shared
//! by a director's workers and kept through `install`, and the tables an attacker could aim
//! evictions at (backup flows, split request heads). Each is a few frames against `Worker`;
//! expected frames are built independently of the data path (etherparse, or by hand in
//! `frames`), and every case checks the worker's counters: the ones it names have the values
//! given, every other one is zero (`rx`, `tx`, `pass` and the drops follow from the verdicts).

mod frames;
mod probe;

use detour_dataplane::{Worker, BACKUP_FLOW_PER_PEER, CLIENT, HEAD_PER_PEER, SERVER};
use frames::*;
use probe::*;

// ---- one cookie secret per director, kept through `install` ---------------------------------

/// The runtime gives every worker one `WorkerConfig`: an ACK on another queue than its SYN
/// (another worker) is accepted.
#[test]
fn workers_of_one_director_accept_each_others_cookies() {
    let snap = snapshot(BASE);
    let mut a = Probe::new(Worker::new(config(false, &[]), snap.clone()));
    let mut b = Probe::new(Worker::new(config(false, &[]), snap));
    let syn = Seg::from_client(VIP, 80).syn();
    let cookie = a.handshake(&syn);
    let req = data(&syn, cookie, 0, REQ);
    b.tx(
        "request on the other worker",
        &req.tcp(),
        CLIENT,
        CLIENT,
        &answer(&req, cookie, &redirect()),
    );
    a.counters(&[("syn_acks", 1)]);
    b.counters(&[("redirects", 1)]);
}

/// A new `cookie-secret` installed without a clock starts its grace window at the next frame,
/// not at time 0: a handshake begun under the old secret completes.
#[test]
fn install_starts_the_grace_window_of_the_old_secret_at_the_next_frame() {
    let old = format!("{BASE}cookie-secret {}\n", "11".repeat(32));
    let new = format!("{BASE}cookie-secret {}\n", "22".repeat(32));
    let mut p = Probe::new(Worker::new(config(false, &[]), snapshot(&old)));
    let syn = Seg::from_client(VIP, 80).syn();
    let cookie = p.handshake(&syn);
    p.w.install(snapshot(&new));
    // The new secret makes the cookies from now on.
    let mut syn2 = syn.clone();
    syn2.sport = 40001;
    let cookie2 = p.handshake(&syn2);
    assert_ne!(
        cookie2 & 0xff_ffff,
        cookie & 0xff_ffff,
        "the same cookie after a new secret"
    );
    let req = data(&syn, cookie, 0, REQ);
    p.tx_at(
        "request of the old secret's handshake, 1 s later",
        &req.tcp(),
        CLIENT,
        CLIENT,
        &answer(&req, cookie, &redirect()),
        NOW_MS + 1000,
    );
    let req2 = data(&syn2, cookie2, 0, REQ);
    p.tx_at(
        "request of the new secret's handshake",
        &req2.tcp(),
        CLIENT,
        CLIENT,
        &answer(&req2, cookie2, &redirect()),
        NOW_MS + 1000,
    );
    p.counters(&[("syn_acks", 2), ("redirects", 2)]);
}

// ---- the backup-flow table -------------------------------------------------------------------

/// Real 198.18.1.2:8080 (DIP 198.18.0.2) failed, its backup the real of DIP 198.18.0.4.
const BACKUP_CONF: &str = "\
virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.4 real 198.18.1.4:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.2 198.18.0.4
out-of-service real 198.18.0.2 failed
";

/// `seg` (client -> DIP_NAT:80) as the backup real receives it.
fn at_backup(seg: &Seg) -> Vec<u8> {
    let mut s = seg.clone();
    s.src_mac = US[1];
    s.dst_mac = real_mac(REAL_B);
    s.ttl -= 1;
    s.dst = REAL_B;
    s.dport = REAL_B_PORT;
    s.tcp()
}

/// The backup real's segment to `client:cport`, and how the client must receive it: from
/// `dip:80`.
fn backup_reply(client: [u8; 4], cport: u16, dip: [u8; 4]) -> (Vec<u8>, Vec<u8>) {
    let mut s = Seg::from_client(client, cport);
    s.src_mac = real_mac(REAL_B);
    s.dst_mac = US[1];
    s.src = REAL_B;
    s.sport = REAL_B_PORT;
    s.seq = 7;
    s.ack = Some(1001);
    s.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    let mut out = s.clone();
    out.src_mac = US[0];
    out.dst_mac = GW;
    out.ttl -= 1;
    out.src = dip;
    out.sport = 80;
    (s.tcp(), out.tcp())
}

/// Frames from the attacker's addresses whose old-hash set is the victim's flow's.
fn aimed_at_victim_flow(n: usize) -> Vec<([u8; 4], u16)> {
    let sets = (detour_dataplane::BACKUP_FLOW_SLOTS / 4) as u64;
    let victim = old_set(REAL_B, REAL_B_PORT, CLIENT_IP, 40000, sets);
    let mut out = Vec::new();
    'ips: for host in 1..=254u8 {
        for port in 1024..=u16::MAX {
            let ip = [198, 19, 9, host];
            if old_set(REAL_B, REAL_B_PORT, ip, port, sets) == victim {
                out.push((ip, port));
                if out.len() == n {
                    break 'ips;
                }
                continue 'ips;
            }
        }
    }
    assert_eq!(out.len(), n);
    out
}

/// Crafted non-SYN frames to the failed real's DIP are forwarded to the backup but open no
/// flow, so they cannot evict the victim's: its backup's replies keep leaving as its DIP.
#[test]
fn non_syn_frames_open_no_backup_flow_and_evict_none() {
    let mut p = Probe::new(worker(BACKUP_CONF));
    let syn = Seg::from_client(DIP_NAT, 80).syn();
    p.tx("victim SYN", &syn.tcp(), CLIENT, SERVER, &at_backup(&syn));
    let mut bytes = (syn.tcp().len() - 14) as u64;
    for (ip, port) in aimed_at_victim_flow(8) {
        let mut ack = Seg::from_client(DIP_NAT, 80).with_ack(5);
        ack.src = ip;
        ack.sport = port;
        p.tx("crafted ACK", &ack.tcp(), CLIENT, SERVER, &at_backup(&ack));
        bytes += (ack.tcp().len() - 14) as u64;
        // A reply to the attacker's tuple: no flow, so it leaves as the backup's own DIP.
        let (input, out) = backup_reply(ip, port, DIP_B);
        p.tx(
            "backup's reply to an ACK-only tuple",
            &input,
            SERVER,
            CLIENT,
            &out,
        );
    }
    let (input, out) = backup_reply(CLIENT_IP, 40000, DIP_NAT);
    p.tx("backup's reply to the victim", &input, SERVER, CLIENT, &out);
    let reply_bytes = (out.len() - 14) as u64;
    p.counters(&[
        ("to_real", 9),
        ("to_real_bytes", bytes),
        ("to_backup", 9),
        ("to_client", 9),
        ("to_client_bytes", 9 * reply_bytes),
    ]);
    assert_eq!(p.w.occupancy(NOW_MS)[1].0, 1, "one flow: the victim's");
}

/// SYNs aimed (under the old unkeyed hash) at the victim's set do not evict its flow.
#[test]
fn aimed_syns_do_not_evict_a_backup_flow() {
    let mut p = Probe::new(worker(BACKUP_CONF));
    let syn = Seg::from_client(DIP_NAT, 80).syn();
    p.tx("victim SYN", &syn.tcp(), CLIENT, SERVER, &at_backup(&syn));
    for (ip, port) in aimed_at_victim_flow(8) {
        let mut s = Seg::from_client(DIP_NAT, 80).syn();
        s.src = ip;
        s.sport = port;
        p.tx("aimed SYN", &s.tcp(), CLIENT, SERVER, &at_backup(&s));
    }
    let (input, out) = backup_reply(CLIENT_IP, 40000, DIP_NAT);
    p.tx("backup's reply to the victim", &input, SERVER, CLIENT, &out);
    let c = p.w.counters().clone();
    assert_eq!(c.backup_flows_evicted, 0);
    assert_eq!(p.w.occupancy(NOW_MS)[1].0, 9);
    assert!(p.w.most_per_client(NOW_MS)[1] <= BACKUP_FLOW_PER_PEER);
    p.counters(&[
        ("to_real", 9),
        ("to_real_bytes", c.to_real_bytes),
        ("to_backup", 9),
        ("to_client", 1),
        ("to_client_bytes", (out.len() - 14) as u64),
    ]);
}

/// A non-SYN frame keeps an existing flow alive (past the 300 s idle time of the SYN alone).
#[test]
fn non_syn_frames_refresh_their_backup_flow() {
    let mut p = Probe::new(worker(BACKUP_CONF));
    let syn = Seg::from_client(DIP_NAT, 80).syn();
    p.tx("SYN", &syn.tcp(), CLIENT, SERVER, &at_backup(&syn));
    let ack = Seg::from_client(DIP_NAT, 80).with_seq(1001).with_ack(8);
    p.tx_at(
        "ACK 200 s later",
        &ack.tcp(),
        CLIENT,
        SERVER,
        &at_backup(&ack),
        NOW_MS + 200_000,
    );
    let (input, out) = backup_reply(CLIENT_IP, 40000, DIP_NAT);
    p.tx_at(
        "reply 400 s after the SYN",
        &input,
        SERVER,
        CLIENT,
        &out,
        NOW_MS + 400_000,
    );
    let (input, out) = backup_reply(CLIENT_IP, 40000, DIP_B);
    p.tx_at(
        "reply after 300 s idle",
        &input,
        SERVER,
        CLIENT,
        &out,
        NOW_MS + 701_000,
    );
    let c = p.w.counters().clone();
    p.counters(&[
        ("to_real", 2),
        ("to_real_bytes", c.to_real_bytes),
        ("to_backup", 2),
        ("to_client", 2),
        ("to_client_bytes", 2 * (out.len() - 14) as u64),
    ]);
}

// ---- the split-head table ----------------------------------------------------------------------

/// A victim's half-received request survives handshakes aimed at it: 4 from one address
/// whose tuples shared its set under the old hash, then 3000 more from that address.
#[test]
fn handshakes_do_not_evict_a_half_received_request() {
    let mut p = Probe::new(worker(BASE));
    let syn = Seg::from_client(VIP, 80).syn();
    let cookie = p.handshake(&syn);
    let part1 = data(&syn, cookie, 0, PART1);
    p.tx(
        "victim's part 1",
        &part1.tcp(),
        CLIENT,
        CLIENT,
        &answer(&part1, cookie, b""),
    );
    let sets = (detour_dataplane::HEAD_SLOTS / 4) as u64;
    let victim = old_set(CLIENT_IP, 40000, VIP, 80, sets);
    let aimed = (1024..=u16::MAX).filter(|&port| old_set(ATTACKER, port, VIP, 80, sets) == victim);
    let flood = (20_000..23_000).filter(|port| old_set(ATTACKER, *port, VIP, 80, sets) != victim);
    let ports: Vec<u16> = aimed.take(4).chain(flood).collect();
    assert_eq!(
        ports.len() - 4,
        3000 - (20_000..23_000)
            .filter(|&p| old_set(ATTACKER, p, VIP, 80, sets) == victim)
            .count()
    );
    for &port in &ports {
        let mut s = Seg::from_client(VIP, 80).syn();
        s.src = ATTACKER;
        s.sport = port;
        let c = p.handshake(&s);
        let d = data(&s, c, 0, b"GET / HTTP/1.1\r\nX: ");
        p.tx(
            "attacker's part 1",
            &d.tcp(),
            CLIENT,
            CLIENT,
            &answer(&d, c, b""),
        );
    }
    let part2 = data(&syn, cookie, PART1.len() as u32, PART2);
    p.tx(
        "victim's part 2",
        &part2.tcp(),
        CLIENT,
        CLIENT,
        &answer(&part2, cookie, &redirect()),
    );
    let n = ports.len() as u64;
    let (live, cap) = p.w.occupancy(NOW_MS)[0];
    assert!(live <= cap && cap == detour_dataplane::HEAD_SLOTS);
    assert!(p.w.most_per_client(NOW_MS)[0] <= HEAD_PER_PEER);
    let evicted = p.w.counters().heads_evicted;
    assert!(evicted > 0 && evicted <= n, "{evicted} evicted");
    p.counters(&[
        ("syn_acks", n + 1),
        ("heads_kept", n + 1),
        ("heads_evicted", evicted),
        ("redirects", 1),
    ]);
}
