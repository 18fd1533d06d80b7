//! Regression tests for the probe findings of issue 10, each a few frames against `Worker`:
//! the cookie secret shared by workers and kept through `install`, the tables an attacker
//! could aim evictions at, a real's replies accepted only from the server side, TCP checksums,
//! martian sources and impossible flags on the responder path, and a request segment that
//! cannot be checked yet.
//!
//! Expected frames are built independently of the data path (etherparse, or by hand in
//! `frames`); every case checks the worker's counters: the ones it names have the values given,
//! every other one is zero (`rx`, `tx`, `pass` and the drops are derived from the verdicts).

mod frames;

use detour_config::{model::load, Snapshot};
use detour_dataplane::{
    Port, Reason, Verdict, Worker, WorkerConfig, BACKUP_FLOW_PER_PEER, CLIENT, HEAD_PER_PEER,
    SERVER,
};
use frames::*;
use std::sync::Arc;

/// Runs frames through one worker and counts what their verdicts imply.
struct Probe {
    w: Worker,
    implied: Vec<(String, u64)>,
}

impl Probe {
    fn new(w: Worker) -> Probe {
        Probe {
            w,
            implied: Vec::new(),
        }
    }

    fn bump(&mut self, name: &str) {
        match self.implied.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 += 1,
            None => self.implied.push((name.to_string(), 1)),
        }
    }

    fn send_at(&mut self, f: &[u8], port: Port, at: u64) -> (Verdict, Vec<u8>) {
        let (v, out) = run_cap(&mut self.w, f, port, BUF, at);
        self.bump("rx");
        match v {
            Verdict::Tx { .. } => self.bump("tx"),
            Verdict::Pass => self.bump("pass"),
            Verdict::Drop(r) => self.bump(&format!("drop:{}", r.name())),
        }
        (v, out)
    }

    /// `f` arrives on `port`; `expected` must leave out of `out_port`, byte for byte.
    fn tx(&mut self, what: &str, f: &[u8], port: Port, out_port: Port, expected: &[u8]) {
        self.tx_at(what, f, port, out_port, expected, NOW_MS)
    }

    fn tx_at(&mut self, what: &str, f: &[u8], port: Port, out: Port, expected: &[u8], at: u64) {
        let (v, got) = self.send_at(f, port, at);
        assert!(
            matches!(v, Verdict::Tx { port: p, .. } if p == out),
            "{what}: expected Tx out of {out:?}, got {v:?}; counters {:?}",
            self.w.counters()
        );
        assert_frame(what, expected, &got);
    }

    /// `f` arrives on `port` and must be dropped for `r`.
    fn drop(&mut self, what: &str, f: &[u8], port: Port, r: Reason) {
        self.drop_at(what, f, port, r, NOW_MS)
    }

    fn drop_at(&mut self, what: &str, f: &[u8], port: Port, r: Reason, at: u64) {
        let (v, _) = self.send_at(f, port, at);
        assert_eq!(v, Verdict::Drop(r), "{what}");
    }

    /// The cookie of the SYN-ACK answering `syn` (checked to be one).
    fn handshake(&mut self, syn: &Seg) -> u32 {
        let (v, out) = self.send_at(&syn.tcp(), CLIENT, NOW_MS);
        assert!(
            matches!(v, Verdict::Tx { port: CLIENT, .. }),
            "SYN got {v:?}"
        );
        let t = tcp_view(&out).expect("a SYN-ACK");
        assert_eq!(t.flags, SYN | ACK);
        t.seq
    }

    /// The counters named have these values; every other one is zero or what the verdicts
    /// imply.
    fn counters(&self, named: &[(&str, u64)]) {
        let c = self.w.counters();
        let mut wrong = Vec::new();
        let names = c
            .fields()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .chain(
                Reason::ALL
                    .iter()
                    .map(|r| (format!("drop:{}", r.name()), c.dropped(*r))),
            );
        for (n, got) in names {
            let want = named
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, v)| *v)
                .or_else(|| self.implied.iter().find(|(m, _)| *m == n).map(|e| e.1))
                .unwrap_or(0);
            if got != want {
                wrong.push(format!("{n}: expected {want}, got {got}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "counters differ:\n  {}",
            wrong.join("\n  ")
        );
    }
}

fn snapshot(conf: &str) -> Arc<Snapshot> {
    let m = load(conf, "test.conf").unwrap_or_else(|e| panic!("config refused: {e:?}"));
    let mut s = Snapshot::compile(&m, 1);
    s.gateway_mac = GW;
    for r in &mut s.reals {
        r.mac = real_mac(r.addr.ip().octets());
    }
    Arc::new(s)
}

fn config(one_armed: bool, kernel: &[[u8; 4]]) -> WorkerConfig {
    WorkerConfig {
        macs: US,
        cookie_secret: SECRET,
        table_key: TABLE_KEY,
        kernel_addrs: kernel.iter().map(|&a| a.into()).collect(),
        one_armed,
    }
}

const REQ: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: www.acme.com\r\n\r\n";
const LOCATION: &str = "http://nat.lab/a/b?x=1";
/// A client of the attacker's (not the victim, `CLIENT_IP`).
const ATTACKER: [u8; 4] = [198, 19, 7, 7];

/// The data segment after the handshake of `syn`, `off` bytes into the stream.
fn data(syn: &Seg, cookie: u32, off: u32, payload: &[u8]) -> Seg {
    let mut s = syn.clone();
    s.syn = false;
    s.mss = None;
    s.psh = true;
    s.seq = syn.seq.wrapping_add(1).wrapping_add(off);
    s.ack = Some(cookie.wrapping_add(1));
    s.payload = payload.to_vec();
    s
}

/// The responder's answer to `seg`: seq cookie+1, acking all of it, with `body` and FIN if
/// any body, else a pure ACK.
fn answer(seg: &Seg, cookie: u32, body: &[u8]) -> Vec<u8> {
    let mut a = seg.answer(CLIENT);
    a.seq = cookie.wrapping_add(1);
    a.ack = Some(seg.next_seq());
    if !body.is_empty() {
        a.fin = true;
        a.psh = true;
        a.payload = body.to_vec();
    }
    a.tcp()
}

fn redirect() -> Vec<u8> {
    redirect_response(302, "Found", LOCATION, false)
}

/// `f` with its TCP flags byte set to `flags` and its TCP checksum recomputed by hand.
fn with_flags(mut f: Vec<u8>, flags: u8) -> Vec<u8> {
    f[14 + 20 + 13] = flags;
    let c = recomputed_l4_checksum(&f);
    f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// `f` with its TCP checksum off by one bit.
fn bad_tcp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    f[14 + 20 + 17] ^= 1;
    f
}

/// The set the tables used before the fix (an unkeyed multiply-xorshift of the 4-tuple),
/// to aim frames at the set of a victim's entry as the probes did.
fn old_set(a: [u8; 4], a_port: u16, b: [u8; 4], b_port: u16, sets: u64) -> u64 {
    let (a, b) = (
        u64::from(u32::from_be_bytes(a)),
        u64::from(u32::from_be_bytes(b)),
    );
    let x = (a << 32 | b)
        ^ (u64::from(a_port) << 16 | u64::from(b_port)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 29)) & (sets - 1)
}

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

const PART1: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHo";
const PART2: &[u8] = b"st: www.acme.com\r\n\r\n";

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
