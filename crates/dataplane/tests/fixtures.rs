//! Golden fixtures for every path of the data plane: a table of cases, each with its config,
//! its input frames, the verdicts expected and the output frames expected byte for byte.
//!
//! Expected frames are built independently of the dataplane (etherparse's `PacketBuilder`
//! computes their checksums, ICMP and ARP frames are written by hand). Where an output carries
//! a SYN cookie, the cookie is read from the output and the expected frame is built with it:
//! every other byte is still compared. Each case also checks the worker's counters: every
//! counter it names must have the value given, and every other counter must be zero (`rx`,
//! `tx`, `pass` and the drop reasons are derived from the steps' verdicts).

mod frames;

use detour_dataplane::{Counters, Port, Reason, Verdict, CLIENT, SERVER};
use frames::*;

/// What a step learned from earlier outputs.
#[derive(Default, Clone, Copy)]
struct Ctx {
    /// Our ISN from the last SYN-ACK seen.
    cookie: u32,
}

type Build = Box<dyn Fn(&Ctx) -> Vec<u8>>;
type Check = Box<dyn Fn(&[u8])>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Tx(Port),
    Drop(Reason),
    Pass,
}

struct Step {
    what: &'static str,
    port: Port,
    input: Build,
    want: Want,
    /// The output frame, for `Tx`.
    expect: Option<Build>,
    /// Read the cookie (our ISN) from this step's SYN-ACK before building `expect`.
    learn_cookie: bool,
    /// More checks on the output, beyond byte equality.
    extra: Option<Check>,
    /// The clock (ms) when the frame arrives.
    at: u64,
}

struct Case {
    desc: &'static str,
    conf: String,
    real_macs: bool,
    gateway: bool,
    steps: Vec<Step>,
    /// Counters that must have these values (others: zero, or derived from the verdicts).
    counters: Vec<(&'static str, u64)>,
}

impl Case {
    fn new(desc: &'static str, conf: &str) -> Case {
        Case {
            desc,
            conf: conf.to_string(),
            real_macs: true,
            gateway: true,
            steps: Vec::new(),
            counters: Vec::new(),
        }
    }

    fn step(mut self, what: &'static str, port: Port, input: Build, want: Want) -> Case {
        self.steps.push(Step {
            what,
            port,
            input,
            want,
            expect: None,
            learn_cookie: false,
            extra: None,
            at: NOW_MS,
        });
        self
    }

    /// The expected output of the last step.
    fn expect(mut self, e: Build) -> Case {
        self.steps.last_mut().unwrap().expect = Some(e);
        self
    }

    fn learn_cookie(mut self) -> Case {
        self.steps.last_mut().unwrap().learn_cookie = true;
        self
    }

    fn extra(mut self, c: Check) -> Case {
        self.steps.last_mut().unwrap().extra = Some(c);
        self
    }

    /// The last step's frame arrives `ms` after `NOW_MS`.
    fn later(mut self, ms: u64) -> Case {
        self.steps.last_mut().unwrap().at = NOW_MS + ms;
        self
    }

    fn counters(mut self, c: &[(&'static str, u64)]) -> Case {
        self.counters.extend_from_slice(c);
        self
    }
}

fn fixed(v: Vec<u8>) -> Build {
    Box::new(move |_| v.clone())
}

/// A counter by name: `drop:<reason>` for a drop reason, else a field of [`Counters`].
fn counter(c: &Counters, name: &str) -> u64 {
    if let Some(r) = name.strip_prefix("drop:") {
        let r = Reason::ALL
            .iter()
            .find(|x| x.name() == r)
            .unwrap_or_else(|| panic!("no reason {r}"));
        return c.dropped(*r);
    }
    c.fields()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
        .1
}

fn run_case(case: Case) {
    let mut w = worker_with(&case.conf, case.real_macs, case.gateway);
    let mut ctx = Ctx::default();
    let mut want_counts: Vec<(String, u64)> = w
        .counters()
        .fields()
        .into_iter()
        .map(|(n, _)| (n.to_string(), 0))
        .chain(
            Reason::ALL
                .iter()
                .map(|r| (format!("drop:{}", r.name()), 0)),
        )
        .collect();
    let mut bump = |name: &str| {
        want_counts.iter_mut().find(|(n, _)| n == name).unwrap().1 += 1;
    };
    for (i, s) in case.steps.iter().enumerate() {
        let input = (s.input)(&ctx);
        let (v, out) = run_cap(&mut w, &input, s.port, BUF, s.at);
        let label = format!("[{}] step {} ({})", case.desc, i + 1, s.what);
        bump("rx");
        match (s.want, v) {
            (Want::Tx(p), Verdict::Tx { port, len }) => {
                bump("tx");
                assert_eq!(port, p, "{label}: sent out of the wrong port");
                assert_eq!(len, out.len());
            }
            (Want::Drop(r), Verdict::Drop(got)) => {
                bump(&format!("drop:{}", r.name()));
                assert_eq!(got, r, "{label}: dropped for the wrong reason");
            }
            (Want::Pass, Verdict::Pass) => bump("pass"),
            (want, got) => panic!(
                "{label}: expected {want:?}, got {got:?}\ninput:\n{}\noutput:\n{}\ncounters: {:?}",
                hex_dump(&input[..input.len().min(96)]),
                hex_dump(&out[..out.len().min(96)]),
                w.counters()
            ),
        }
        if s.learn_cookie {
            let t = tcp_view(&out).unwrap_or_else(|| panic!("{label}: no TCP in the output"));
            ctx.cookie = t.seq;
        }
        if let Some(e) = &s.expect {
            assert_frame(&label, &e(&ctx), &out);
        }
        if let Some(x) = &s.extra {
            x(&out);
        }
    }
    for (name, v) in &case.counters {
        let slot = want_counts
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no counter {name}"));
        slot.1 = *v;
    }
    let c = w.counters();
    let wrong: Vec<String> = want_counts
        .iter()
        .filter(|(n, v)| counter(c, n) != *v)
        .map(|(n, v)| format!("{n}: expected {v}, got {}", counter(c, n)))
        .collect();
    assert!(
        wrong.is_empty(),
        "[{}] counters differ:\n  {}\nall: {c:?}",
        case.desc,
        wrong.join("\n  ")
    );
}

macro_rules! fixtures {
    ($($name:ident => $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_case($case)
            }
        )*
    };
}

// ---- frames used by several cases ------------------------------------------------------------

const REQ: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: www.acme.com\r\nUser-Agent: fixture\r\n\r\n";

fn syn_to(dst: [u8; 4]) -> Seg {
    Seg::from_client(dst, 80).syn()
}

/// The data segment after a handshake from `syn`: seq ISN+1, ack cookie+1 (from the context).
fn data_after(syn: &Seg, payload: &[u8]) -> Seg {
    let mut s = syn.clone();
    s.syn = false;
    s.mss = None;
    s.psh = true;
    s.seq = syn.seq.wrapping_add(1);
    s.payload = payload.to_vec();
    s
}

fn with_cookie(seg: Seg, delta: u32) -> Build {
    Box::new(move |c| {
        let mut s = seg.clone();
        s.ack = Some(c.cookie.wrapping_add(1).wrapping_add(delta));
        s.tcp()
    })
}

fn expect_syn_ack(syn: &Seg) -> Build {
    let syn = syn.clone();
    Box::new(move |c| {
        let mut a = syn.answer(CLIENT);
        a.syn = true;
        a.seq = c.cookie;
        a.ack = Some(syn.seq.wrapping_add(1));
        a.mss = Some(1460);
        a.tcp()
    })
}

/// The responder's final answer to `req`: FIN|PSH|ACK with `body`, seq = cookie+1.
fn expect_final(req: &Seg, body: Vec<u8>) -> Build {
    let req = req.clone();
    Box::new(move |c| {
        let mut a = req.answer(CLIENT);
        a.seq = c.cookie.wrapping_add(1);
        a.ack = Some(req.next_seq());
        a.fin = true;
        a.psh = true;
        a.payload = body.clone();
        a.tcp()
    })
}

/// A pure ACK of everything up to the end of `seg`, seq = cookie+1.
fn expect_pure_ack(seg: &Seg) -> Build {
    let seg = seg.clone();
    Box::new(move |c| {
        let mut a = seg.answer(CLIENT);
        a.seq = c.cookie.wrapping_add(1);
        a.ack = Some(seg.next_seq());
        a.tcp()
    })
}

/// The RST+ACK a refused SYN gets: seq 0, ack ISN+1, window 0.
fn expect_refusal(syn: &Seg) -> Build {
    let mut a = syn.answer(CLIENT);
    a.rst = true;
    a.ack = Some(syn.seq.wrapping_add(1));
    a.window = 0;
    fixed(a.tcp())
}

/// `seg` as a router forwards it: to `mac` out of `port`, TTL - 1.
fn routed(seg: &Seg, port: Port, mac: [u8; 6]) -> Seg {
    let mut s = seg.clone();
    s.src_mac = US[port.0 as usize];
    s.dst_mac = mac;
    s.ttl -= 1;
    s
}

/// A data segment from the client to a DIP, with a few non-default header fields.
fn client_data(dst: [u8; 4]) -> Seg {
    let mut s = Seg::from_client(dst, 80);
    s.ident = 0xbeef;
    s.df = false;
    s.dscp_ecn = 0x2a;
    s.seq = 0x8000_0001;
    s.ack = Some(0x0102_0304);
    s.psh = true;
    s.payload = b"GET /index.html HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n".to_vec();
    s
}

/// The real's reply segment to the client: from `src:sport`, arriving on the server port.
fn real_reply(src: [u8; 4], sport: u16) -> Seg {
    let mut s = Seg::from_client(CLIENT_IP, 40000);
    s.src_mac = real_mac(src);
    s.dst_mac = US[1];
    s.src = src;
    s.sport = sport;
    s.ident = 0x4242;
    s.seq = 0x0102_0303;
    s.ack = Some(0x8000_0001 + 46);
    s.psh = true;
    s.payload = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
    s
}

fn ip_len(f: &[u8]) -> u64 {
    (f.len() - 14) as u64
}

/// Edit the IPv4 header of a frame (in place) and recompute its checksum by hand.
fn patch_ip(mut f: Vec<u8>, edit: impl Fn(&mut [u8])) -> Vec<u8> {
    let ihl = usize::from(f[14] & 15) * 4;
    edit(&mut f[14..14 + ihl]);
    f[24] = 0;
    f[25] = 0;
    let c = checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn zero_udp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let ihl = usize::from(f[14] & 15) * 4;
    f[14 + ihl + 6] = 0;
    f[14 + ihl + 7] = 0;
    f
}

// ---- forwarding -------------------------------------------------------------------------------

fn forward_nat() -> Case {
    let input = client_data(DIP_NAT);
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    let n = ip_len(&input.tcp());
    Case::new(
        "client -> NAT DIP: dst rewritten to the real and its port",
        BASE,
    )
    .step("data to DIP", CLIENT, fixed(input.tcp()), Want::Tx(SERVER))
    .expect(fixed(out.tcp()))
    .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

fn forward_same() -> Case {
    let input = client_data(DIP_SAME);
    let out = routed(&input, SERVER, real_mac(DIP_SAME));
    let n = ip_len(&input.tcp());
    Case::new("client -> same-address DIP: only MACs and TTL change", BASE)
        .step("data to DIP", CLIENT, fixed(input.tcp()), Want::Tx(SERVER))
        .expect(fixed(out.tcp()))
        .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

fn forward_ip_options() -> Case {
    let mut input = syn_to(DIP_NAT);
    input.ip_options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL: IHL 6
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    let n = ip_len(&input.tcp());
    Case::new("client -> NAT DIP with IPv4 options (IHL 6)", BASE)
        .step(
            "SYN with options",
            CLIENT,
            fixed(input.tcp()),
            Want::Tx(SERVER),
        )
        .expect(fixed(out.tcp()))
        .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

fn forward_padded() -> Case {
    let mut input = Seg::from_client(DIP_NAT, 80).with_ack(77); // a pure ACK: 54 bytes
    input.seq = 5;
    let mut frame = input.tcp();
    assert_eq!(frame.len(), 54);
    frame.resize(60, 0); // Ethernet padding to the minimum frame
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    Case::new(
        "client -> NAT DIP, a padded 60-byte frame: padding not forwarded",
        BASE,
    )
    .step("padded ACK", CLIENT, fixed(frame), Want::Tx(SERVER))
    .expect(fixed(out.tcp()))
    .counters(&[("to_real", 1), ("to_real_bytes", 40)])
}

fn reply_nat() -> Case {
    let input = real_reply(REAL_NAT, REAL_NAT_PORT);
    let mut out = routed(&input, CLIENT, GW);
    out.src = DIP_NAT;
    out.sport = 80;
    let n = ip_len(&input.tcp());
    Case::new("NAT real -> client: src rewritten back to DIP:80", BASE)
        .step("reply", SERVER, fixed(input.tcp()), Want::Tx(CLIENT))
        .expect(fixed(out.tcp()))
        .counters(&[("to_client", 1), ("to_client_bytes", n)])
}

fn reply_same() -> Case {
    let input = real_reply(DIP_SAME, 80);
    let out = routed(&input, CLIENT, GW);
    let n = ip_len(&input.tcp());
    Case::new("same-address real -> client: to the gateway, TTL - 1", BASE)
        .step("reply", SERVER, fixed(input.tcp()), Want::Tx(CLIENT))
        .expect(fixed(out.tcp()))
        .counters(&[("to_client", 1), ("to_client_bytes", n)])
}

fn reply_other_port_passes() -> Case {
    let input = real_reply(REAL_NAT, 22);
    Case::new(
        "a real's traffic from a port that is not the real's: passed to the kernel",
        BASE,
    )
    .step("ssh reply", SERVER, fixed(input.tcp()), Want::Pass)
}

fn reply_bad_ip_checksum() -> Case {
    let f = patch_ip(real_reply(REAL_NAT, REAL_NAT_PORT).tcp(), |_| {});
    let mut f = f;
    f[25] ^= 0x55; // break the header checksum after computing it
    Case::new(
        "real -> client with a bad IPv4 header checksum: dropped",
        BASE,
    )
    .step("reply", SERVER, fixed(f), Want::Drop(Reason::BadIpv4))
}

fn udp_forward() -> Case {
    let mut input = Seg::from_client(DIP_NAT, 80);
    input.sport = 5353;
    input.payload = b"a UDP datagram to the DIP".to_vec();
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    let n = ip_len(&input.udp());
    Case::new("UDP client -> NAT DIP: rewritten, checksum updated", BASE)
        .step("datagram", CLIENT, fixed(input.udp()), Want::Tx(SERVER))
        .expect(fixed(out.udp()))
        .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

fn udp_zero_checksum() -> Case {
    let mut input = Seg::from_client(DIP_NAT, 80);
    input.sport = 5353;
    input.payload = b"no checksum".to_vec();
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    let n = ip_len(&input.udp());
    Case::new(
        "UDP with checksum 0 (none): stays 0 after the rewrite",
        BASE,
    )
    .step(
        "datagram",
        CLIENT,
        fixed(zero_udp_checksum(input.udp())),
        Want::Tx(SERVER),
    )
    .expect(fixed(zero_udp_checksum(out.udp())))
    .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

fn udp_reply_nat() -> Case {
    let mut input = real_reply(REAL_NAT, REAL_NAT_PORT);
    input.sport = REAL_NAT_PORT;
    input.dport = 5353;
    input.payload = b"the real's UDP answer".to_vec();
    let mut out = routed(&input, CLIENT, GW);
    out.src = DIP_NAT;
    out.sport = 80;
    let n = ip_len(&input.udp());
    Case::new("UDP NAT real -> client: src rewritten back to DIP:80", BASE)
        .step("datagram", SERVER, fixed(input.udp()), Want::Tx(CLIENT))
        .expect(fixed(out.udp()))
        .counters(&[("to_client", 1), ("to_client_bytes", n)])
}

// ---- backups ----------------------------------------------------------------------------------

fn backup_real(state: &str) -> Case {
    let conf = format!(
        "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.4 real 198.18.1.4:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.2 198.18.0.4
out-of-service real 198.18.0.2 {state}
"
    );
    let syn = syn_to(DIP_NAT);
    let mut fwd = routed(&syn, SERVER, real_mac(REAL_B));
    fwd.dst = REAL_B;
    fwd.dport = REAL_B_PORT;
    // The backup real answers the client from its own address.
    let mut back = syn.answer(SERVER);
    back.src_mac = real_mac(REAL_B);
    back.dst_mac = US[1];
    back.src = REAL_B;
    back.sport = REAL_B_PORT;
    back.syn = true;
    back.seq = 0x5151_5151;
    back.ack = Some(syn.seq + 1);
    back.mss = Some(1460);
    back.window = 65160;
    let mut to_client = routed(&back, CLIENT, GW);
    to_client.src = DIP_NAT; // as from the original DIP, not the backup's DIP 198.18.0.4
    to_client.sport = 80;
    let (n1, n2) = (ip_len(&syn.tcp()), ip_len(&back.tcp()));
    let mut c = Case::new("real out of service with a backup real", &conf)
        .step("SYN to DIP", CLIENT, fixed(syn.tcp()), Want::Tx(SERVER))
        .expect(fixed(fwd.tcp()))
        .step(
            "backup's SYN-ACK",
            SERVER,
            fixed(back.tcp()),
            Want::Tx(CLIENT),
        )
        .expect(fixed(to_client.tcp()))
        .counters(&[
            ("to_real", 1),
            ("to_backup", 1),
            ("to_real_bytes", n1),
            ("to_client", 1),
            ("to_client_bytes", n2),
        ]);
    c.desc = leak(format!(
        "real {state} with a backup real: forwarded there, replies as from the DIP"
    ));
    c
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

const BACKUP_VIRTUAL_BASE: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3
url nat http://nat.lab/%d
url same http://same.lab/%d
link nat 198.18.0.2
link same 198.18.0.3
bind 198.18.0.1 nat same
backup 198.18.0.2 198.18.0.1
";

fn responder_case(
    desc: &'static str,
    conf: &str,
    dst: [u8; 4],
    request: &[u8],
    response: Vec<u8>,
) -> Case {
    let syn = syn_to(dst);
    let req = data_after(&syn, request);
    Case::new(desc, conf)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .expect(expect_syn_ack(&syn))
        .step(
            "request",
            CLIENT,
            with_cookie(req.clone(), 0),
            Want::Tx(CLIENT),
        )
        .expect(expect_final(&req, response))
}

fn backup_virtual(state: &str) -> Case {
    let conf = format!("{BACKUP_VIRTUAL_BASE}out-of-service real 198.18.0.2 {state}\n");
    let mut c = responder_case(
        "",
        &conf,
        DIP_NAT,
        REQ,
        redirect_response(302, "Found", "http://same.lab/a/b?x=1", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)]);
    c.desc = leak(format!(
        "real {state} with a backup virtual: the DIP answers as the virtual, 302 to a live member"
    ));
    c
}

fn backup_url(state: &str) -> Case {
    let conf = format!(
        "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url nat http://nat.lab/%d
url sorry http://sorry.lab/down/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.2 sorry
out-of-service real 198.18.0.2 {state}
"
    );
    let mut c = responder_case(
        "",
        &conf,
        DIP_NAT,
        REQ,
        redirect_response(302, "Found", "http://sorry.lab/down/a/b?x=1", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)]);
    c.desc = leak(format!(
        "real {state} with a backup URL: the DIP answers 302 to that URL"
    ));
    c
}

fn no_backup(state: &str) -> Case {
    let conf = format!("{BASE}out-of-service real 198.18.0.2 {state}\n");
    let syn = syn_to(DIP_NAT);
    let mut c = Case::new("", &conf)
        .step("SYN to DIP", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .expect(expect_refusal(&syn))
        .counters(&[("rsts", 1)]);
    c.desc = leak(format!(
        "real {state} without a backup: a SYN to its DIP gets RST+ACK"
    ));
    c
}

fn sticky() -> Case {
    let conf = format!("{BASE}out-of-service real 198.18.0.2 sticky\n");
    let input = client_data(DIP_NAT);
    let mut out = routed(&input, SERVER, real_mac(REAL_NAT));
    out.dst = REAL_NAT;
    out.dport = REAL_NAT_PORT;
    let n = ip_len(&input.tcp());
    Case::new("sticky real: its DIP's traffic is still forwarded", &conf)
        .step("data to DIP", CLIENT, fixed(input.tcp()), Want::Tx(SERVER))
        .expect(fixed(out.tcp()))
        .counters(&[("to_real", 1), ("to_real_bytes", n)])
}

// ---- the responder ----------------------------------------------------------------------------

fn syn_to_vip() -> Case {
    let syn = syn_to(VIP);
    Case::new("SYN to the VIP: SYN-ACK, MSS 1460, ack ISN+1", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .expect(expect_syn_ack(&syn))
        .counters(&[("syn_acks", 1)])
}

fn syn_without_mss() -> Case {
    let mut syn = syn_to(VIP);
    syn.mss = None;
    syn.seq = u32::MAX; // ISN + 1 wraps
    Case::new("SYN without MSS and ISN 2^32-1: SYN-ACK acks 0", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .expect(expect_syn_ack(&syn))
        .counters(&[("syn_acks", 1)])
}

fn request_302() -> Case {
    responder_case(
        "request after the handshake: 302 + FIN, exact Location, seq/ack exact",
        BASE,
        VIP,
        REQ,
        redirect_response(302, "Found", "http://nat.lab/a/b?x=1", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn head_request() -> Case {
    responder_case(
        "HEAD: the redirect's head only, Content-Length of the body",
        BASE,
        VIP,
        b"HEAD /x HTTP/1.1\r\nHost: www.acme.com\r\n\r\n",
        redirect_response(302, "Found", "http://nat.lab/x", true),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn split_request() -> Case {
    let syn = syn_to(VIP);
    let part1: &[u8] = b"GET /split/page.html HTTP/1.1\r\nHo";
    let part2: &[u8] = b"st: www.acme.com\r\nAccept: */*\r\n\r\n";
    let s1 = data_after(&syn, part1);
    let mut s2 = data_after(&syn, part2);
    s2.seq = s1.next_seq();
    Case::new(
        "request split in two segments: pure ACK, then 302 acking both",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .expect(expect_syn_ack(&syn))
    .step(
        "first part",
        CLIENT,
        with_cookie(s1.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&s1))
    .step(
        "second part",
        CLIENT,
        with_cookie(s2.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_final(
        &s2,
        redirect_response(302, "Found", "http://nat.lab/split/page.html", false),
    ))
    .counters(&[("syn_acks", 1), ("redirects", 1), ("heads_kept", 1)])
}

fn fin_gets_ack() -> Case {
    let syn = syn_to(VIP);
    let mut fin = data_after(&syn, b"");
    fin.psh = false;
    fin.fin = true;
    Case::new("FIN (no data) to the VIP: ACK of the FIN", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .expect(expect_syn_ack(&syn))
        .step("FIN", CLIENT, with_cookie(fin.clone(), 0), Want::Tx(CLIENT))
        .expect(expect_pure_ack(&fin))
        .counters(&[("syn_acks", 1), ("fin_acks", 1)])
}

fn rst_dropped() -> Case {
    let syn = syn_to(VIP);
    let mut rst = data_after(&syn, b"");
    rst.psh = false;
    rst.rst = true;
    Case::new("RST to the VIP: dropped, nothing sent", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .step(
            "RST",
            CLIENT,
            with_cookie(rst, 0),
            Want::Drop(Reason::NothingToAnswer),
        )
        .counters(&[("syn_acks", 1)])
}

fn pure_ack_dropped() -> Case {
    let syn = syn_to(VIP);
    let mut ack = data_after(&syn, b"");
    ack.psh = false;
    Case::new("the handshake's pure ACK: nothing to answer", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .step(
            "ACK",
            CLIENT,
            with_cookie(ack, 0),
            Want::Drop(Reason::NothingToAnswer),
        )
        .counters(&[("syn_acks", 1)])
}

fn bad_cookie() -> Case {
    let syn = syn_to(VIP);
    let req = data_after(&syn, REQ);
    let r = req.clone();
    // Eight slots away: no cookie of the current or previous slot, whatever the client's ISN.
    const STALE: u32 = 8 << 27;
    Case::new(
        "request with a wrong cookie of the current slots: dropped without RST (it may be a \
         later segment); of another slot: RST (seq = its ack), no payload",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "request with a wrong cookie of the current slot",
        CLIENT,
        with_cookie(req.clone(), 1),
        Want::Drop(Reason::Unchecked),
    )
    .step(
        "request with a stale cookie",
        CLIENT,
        with_cookie(req, STALE),
        Want::Tx(CLIENT),
    )
    .expect(Box::new(move |c| {
        let mut a = r.answer(CLIENT);
        a.rst = true;
        a.seq = c.cookie.wrapping_add(1).wrapping_add(STALE);
        a.window = 0;
        a.tcp()
    }))
    .counters(&[("syn_acks", 1), ("rsts", 1), ("drop:bad_cookie", 1)])
}

fn syn_with_ack() -> Case {
    let mut s = syn_to(VIP);
    s.ack = Some(0xdead_beef);
    let mut a = s.answer(CLIENT);
    a.rst = true;
    a.seq = 0xdead_beef;
    a.window = 0;
    Case::new("SYN+ACK to the VIP: RST with seq = its ack", BASE)
        .step("SYN-ACK", CLIENT, fixed(s.tcp()), Want::Tx(CLIENT))
        .expect(fixed(a.tcp()))
}

fn non_http() -> Case {
    // The start of a TLS ClientHello.
    let hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x5e, 0x7f, 0x00, 0x11,
        0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    responder_case(
        "a non-HTTP payload (TLS ClientHello): 400",
        BASE,
        VIP,
        hello,
        status_response(400, "Bad Request"),
    )
    .counters(&[("syn_acks", 1), ("bad_requests", 1)])
}

fn head_too_large() -> Case {
    let syn = syn_to(VIP);
    let mut head = b"GET / HTTP/1.1\r\nHost: www.acme.com\r\nX-Pad: ".to_vec();
    head.resize(1400 * 3, b'a');
    let mut segs = Vec::new();
    let mut seq = syn.seq.wrapping_add(1);
    for chunk in head.chunks(1400) {
        let mut s = data_after(&syn, chunk);
        s.seq = seq;
        seq = s.next_seq();
        segs.push(s);
    }
    Case::new(
        "a head over 4096 bytes in three 1400-byte segments: ACK, ACK, 431",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "part 1",
        CLIENT,
        with_cookie(segs[0].clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&segs[0]))
    .step(
        "part 2",
        CLIENT,
        with_cookie(segs[1].clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&segs[1]))
    .step(
        "part 3",
        CLIENT,
        with_cookie(segs[2].clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_final(
        &segs[2],
        status_response(431, "Request Header Fields Too Large"),
    ))
    .counters(&[("syn_acks", 1), ("heads_kept", 1), ("too_large", 1)])
}

fn host_with_cr() -> Case {
    responder_case(
        "a Host header with a bare CR (header injection): 400",
        BASE,
        VIP,
        b"GET / HTTP/1.1\r\nHost: www.acme.com\rSet-Cookie: x=1\r\n\r\n",
        status_response(400, "Bad Request"),
    )
    .counters(&[("syn_acks", 1), ("bad_requests", 1)])
}

fn host_with_lf_in_template() -> Case {
    // %h copies the Host: a Host that is no host name must never reach the Location.
    let conf = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url byhost http://%h/next/%d
link byhost 198.18.0.2
bind 198.18.0.1 byhost
";
    responder_case(
        "a Host that is not a host name, with a %h URL: 400",
        conf,
        VIP,
        b"GET / HTTP/1.1\r\nHost: evil.com/<script>\r\n\r\n",
        status_response(400, "Bad Request"),
    )
    .counters(&[("syn_acks", 1), ("bad_requests", 1)])
}

fn host_macro() -> Case {
    let conf = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url byhost http://%h/next/%d
link byhost 198.18.0.2
bind 198.18.0.1 byhost
";
    responder_case(
        "%h with a Host carrying a port: host copied without the port",
        conf,
        VIP,
        b"GET /p?q HTTP/1.1\r\nHost: www.acme.com:8080\r\n\r\n",
        redirect_response(302, "Found", "http://www.acme.com/next/p?q", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

const BY_HOST: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url byhost http://%h/next/%d
link byhost 198.18.0.2
bind 198.18.0.1 byhost
";

fn url_code_307() -> Case {
    let conf = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url moved http://moved.lab/%d 307
link moved 198.18.0.2
bind 198.18.0.1 moved
";
    responder_case(
        "a URL with code 307: 307 Temporary Redirect",
        conf,
        VIP,
        REQ,
        redirect_response(307, "Temporary Redirect", "http://moved.lab/a/b?x=1", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn host_obs_fold() -> Case {
    // RFC 9112 5.2: a server receiving obs-fold in a request must reject it (400) or replace
    // it by spaces; either way CR LF must never reach the Location.
    responder_case(
        "a Host folded over two lines (CR LF SP) with a %h URL: 400",
        BY_HOST,
        VIP,
        b"GET / HTTP/1.1\r\nHost: www.acme.com\r\n Location: http://evil/\r\n\r\n",
        status_response(400, "Bad Request"),
    )
    .counters(&[("syn_acks", 1), ("bad_requests", 1)])
}

fn host_bare_lf() -> Case {
    // RFC 9112 2.2: a bare LF may be taken as a line end; the Host is then www.acme.com and
    // the next line another header, so the Location must carry no LF of the client's.
    responder_case(
        "a Host line ended by a bare LF with a %h URL: the LF ends the header",
        BY_HOST,
        VIP,
        b"GET /p HTTP/1.1\r\nHost: www.acme.com\nX-Evil: 1\r\n\r\n",
        redirect_response(302, "Found", "http://www.acme.com/next/p", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn oos_virtual_no_backup() -> Case {
    let conf = format!("{BASE}out-of-service virtual 198.18.0.1\n");
    let syn = syn_to(VIP);
    Case::new("virtual out of service, no backup: SYN gets RST+ACK", &conf)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .expect(expect_refusal(&syn))
        .counters(&[("rsts", 1)])
}

fn oos_virtual_url_backup() -> Case {
    let conf = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
url nat http://nat.lab/%d
url sorry http://sorry.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.1 sorry
out-of-service virtual 198.18.0.1
";
    responder_case(
        "virtual out of service with a URL backup: 302 to that URL",
        conf,
        VIP,
        REQ,
        redirect_response(302, "Found", "http://sorry.lab/a/b?x=1", false),
    )
    .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn no_eligible_member() -> Case {
    // The virtual is in service but its only member takes no new redirects: the SYN is
    // answered (the action is decided per request), the request finds nothing: refused.
    let conf = format!("{BASE}out-of-service real 198.18.0.2 sticky\n");
    let syn = syn_to(VIP);
    Case::new(
        "virtual whose only member is sticky, no backup: SYN refused",
        &conf,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .expect(expect_refusal(&syn))
    .counters(&[("rsts", 1)])
}

// ---- ARP and ICMP -------------------------------------------------------------------------------

fn arp_for(target: [u8; 4], sender_mac: [u8; 6], sender_ip: [u8; 4]) -> Vec<u8> {
    let mut f = arp(
        sender_mac, BROADCAST, 1, sender_mac, sender_ip, [0; 6], target,
    );
    f.resize(60, 0); // padded to the minimum frame, as on the wire
    f
}

fn arp_vip() -> Case {
    let us = US[0];
    Case::new(
        "ARP who-has VIP on the client port: reply with our client MAC",
        BASE,
    )
    .step(
        "who-has",
        CLIENT,
        fixed(arp_for(VIP, GW, CLIENT_IP)),
        Want::Tx(CLIENT),
    )
    .expect(fixed(arp(us, GW, 2, us, VIP, GW, CLIENT_IP)))
    .counters(&[("arp_replies", 1)])
}

fn arp_dip_server_port() -> Case {
    let us = US[1];
    let m = real_mac(DIP_SAME);
    Case::new(
        "ARP who-has DIP on the server port: reply with our server MAC",
        BASE,
    )
    .step(
        "who-has",
        SERVER,
        fixed(arp_for(DIP_NAT, m, DIP_SAME)),
        Want::Tx(SERVER),
    )
    .expect(fixed(arp(us, m, 2, us, DIP_NAT, m, DIP_SAME)))
    .counters(&[("arp_replies", 1)])
}

fn arp_foreign() -> Case {
    Case::new(
        "ARP who-has a foreign address, and an ARP reply: passed",
        BASE,
    )
    .step(
        "who-has foreign",
        CLIENT,
        fixed(arp_for([198, 18, 0, 50], GW, CLIENT_IP)),
        Want::Pass,
    )
    .step(
        "a reply about the VIP",
        CLIENT,
        fixed(arp(GW, US[0], 2, GW, VIP, US[0], CLIENT_IP)),
        Want::Pass,
    )
}

fn echo_body() -> Vec<u8> {
    (0u8..56).collect()
}

fn echo(ttl: u8) -> Case {
    let input = icmp_frame(
        GW,
        US[0],
        CLIENT_IP,
        VIP,
        ttl,
        0x4321,
        [8, 0, 0, 0, 0, 7, 0, 9],
        &echo_body(),
    );
    let out = icmp_frame(
        US[0],
        GW,
        VIP,
        CLIENT_IP,
        64,
        0x4321,
        [0, 0, 0, 0, 0, 7, 0, 9],
        &echo_body(),
    );
    let mut c = Case::new("", BASE)
        .step("echo request", CLIENT, fixed(input), Want::Tx(CLIENT))
        .expect(fixed(out))
        .counters(&[("echo_replies", 1)]);
    c.desc = leak(format!(
        "ICMP echo to the VIP (TTL {ttl}): echo reply, checksum valid"
    ));
    c
}

/// Check an ICMP error frame's outer header, ICMP and quoted IPv4 header checksums by
/// recomputing each.
fn icmp_checksums_valid(f: &[u8]) {
    assert!(ip_header_valid(f), "outer IPv4 header checksum");
    let (ihl, total) = ipv4_bounds(f).unwrap();
    let icmp = &f[14 + ihl..14 + total];
    assert_eq!(ones_sum(0, icmp), 0xffff, "ICMP checksum");
    let inner = &icmp[8..];
    let iihl = usize::from(inner[0] & 15) * 4;
    let mut h = inner[..iihl].to_vec();
    let sent = be16(&h, 10);
    h[10] = 0;
    h[11] = 0;
    assert_eq!(sent, checksum(&h), "quoted IPv4 header checksum");
}

const ROUTER_CLIENT_SIDE: [u8; 4] = [198, 18, 0, 254];
const ROUTER_SERVER_SIDE: [u8; 4] = [198, 18, 1, 1];

/// The real's segment to the client, as the real sent it, and as the director forwarded it.
fn real_to_client_pair() -> (Seg, Seg) {
    let mut real = Seg::from_client(CLIENT_IP, 40000);
    real.src = REAL_NAT;
    real.sport = REAL_NAT_PORT;
    real.ttl = 61;
    real.ident = 0x2222;
    real.seq = 0x7000_0000;
    real.ack = Some(1001);
    real.psh = true;
    real.payload = (0..1400u32).map(|i| (i * 7) as u8).collect();
    let mut dip = real.clone();
    dip.src = DIP_NAT;
    dip.sport = 80;
    (real, dip)
}

fn frag_needed(quote: usize) -> Case {
    let (real, dip) = real_to_client_pair();
    let head = [3, 4, 0, 0, 0, 0, 0x05, 0x78]; // fragmentation needed, next-hop MTU 1400
    let q_in = dip.tcp_ip()[..quote].to_vec();
    let q_out = real.tcp_ip()[..quote].to_vec();
    let input = icmp_frame(
        GW,
        US[0],
        ROUTER_CLIENT_SIDE,
        DIP_NAT,
        250,
        0x7777,
        head,
        &q_in,
    );
    let out = icmp_frame(
        US[1],
        real_mac(REAL_NAT),
        ROUTER_CLIENT_SIDE,
        REAL_NAT,
        249,
        0x7777,
        head,
        &q_out,
    );
    let mut c = Case::new("", BASE)
        .step("frag needed", CLIENT, fixed(input), Want::Tx(SERVER))
        .expect(fixed(out))
        .extra(Box::new(icmp_checksums_valid))
        .counters(&[("icmp_translated", 1)]);
    c.desc = leak(format!(
        "ICMP frag-needed from the client side quoting {quote} bytes of a DIP -> client \
         packet: to the real, quoted packet as the real sent it"
    ));
    c
}

fn icmp_from_real_udp() -> Case {
    let mut sent = Seg::from_client(DIP_NAT, 80);
    sent.sport = 5353;
    sent.payload = b"query".to_vec();
    // As the real received it (forwarded: TTL 63, to the real's address and port).
    let mut at_real = sent.clone();
    at_real.ttl = 63;
    at_real.dst = REAL_NAT;
    at_real.dport = REAL_NAT_PORT;
    let mut at_client = sent.clone();
    at_client.ttl = 63;
    let head = [3, 3, 0, 0, 0, 0, 0, 0]; // port unreachable
    let input = icmp_frame(
        real_mac(REAL_NAT),
        US[1],
        REAL_NAT,
        CLIENT_IP,
        64,
        0x3333,
        head,
        &at_real.udp_ip(),
    );
    let out = icmp_frame(
        US[0],
        GW,
        DIP_NAT,
        CLIENT_IP,
        63,
        0x3333,
        head,
        &at_client.udp_ip(),
    );
    Case::new(
        "ICMP port unreachable from the real about a client -> real datagram: to the client, \
         from the DIP, quoting client -> DIP:80",
        BASE,
    )
    .step("port unreachable", SERVER, fixed(input), Want::Tx(CLIENT))
    .expect(fixed(out))
    .extra(Box::new(icmp_checksums_valid))
    .counters(&[("icmp_translated", 1)])
}

fn icmp_from_router_tcp() -> Case {
    let mut sent = client_data(DIP_NAT);
    sent.ttl = 2;
    let mut at_router = sent.clone();
    at_router.ttl = 1;
    at_router.dst = REAL_NAT;
    at_router.dport = REAL_NAT_PORT;
    let mut at_client = sent.clone();
    at_client.ttl = 1;
    let head = [11, 0, 0, 0, 0, 0, 0, 0]; // time exceeded in transit
    let input = icmp_frame(
        [2, 0, 0, 1, 1, 1],
        US[1],
        ROUTER_SERVER_SIDE,
        CLIENT_IP,
        255,
        0x0101,
        head,
        &at_router.tcp_ip()[..28],
    );
    let out = icmp_frame(
        US[0],
        GW,
        ROUTER_SERVER_SIDE,
        CLIENT_IP,
        254,
        0x0101,
        head,
        &at_client.tcp_ip()[..28],
    );
    Case::new(
        "ICMP time exceeded from a router behind the director: to the client, router source \
         kept, quoted dst back to DIP:80",
        BASE,
    )
    .step("time exceeded", SERVER, fixed(input), Want::Tx(CLIENT))
    .expect(fixed(out))
    .extra(Box::new(icmp_checksums_valid))
    .counters(&[("icmp_translated", 1)])
}

// ---- drops and passes ---------------------------------------------------------------------------

fn ipv6() -> Case {
    let b = etherparse::PacketBuilder::ethernet2(GW, US[0])
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(1000, 80);
    let mut f = Vec::new();
    b.write(&mut f, b"v6").unwrap();
    Case::new("IPv6: passed to the kernel, counted", BASE)
        .step("v6 datagram", CLIENT, fixed(f), Want::Pass)
        .counters(&[("ipv6", 1)])
}

fn ttl_one() -> Case {
    let mut s = client_data(DIP_NAT);
    s.ttl = 1;
    Case::new("TTL 1 to a DIP: dropped (TtlExceeded)", BASE).step(
        "data",
        CLIENT,
        fixed(s.tcp()),
        Want::Drop(Reason::TtlExceeded),
    )
}

fn unknown_real_mac() -> Case {
    let mut c = Case::new("real's MAC unknown: dropped (NoNeighbour)", BASE).step(
        "data",
        CLIENT,
        fixed(client_data(DIP_NAT).tcp()),
        Want::Drop(Reason::NoNeighbour),
    );
    c.real_macs = false;
    c
}

fn unknown_gateway_mac() -> Case {
    let mut c = Case::new(
        "gateway's MAC unknown: a real's reply is dropped (NoNeighbour)",
        BASE,
    )
    .step(
        "reply",
        SERVER,
        fixed(real_reply(REAL_NAT, REAL_NAT_PORT).tcp()),
        Want::Drop(Reason::NoNeighbour),
    );
    c.gateway = false;
    c
}

fn fragments() -> Case {
    let mf = patch_ip(syn_to(VIP).tcp(), |h| h[6] = 0x20); // MF, offset 0
    let later = patch_ip(syn_to(VIP).tcp(), |h| {
        h[6] = 0x00;
        h[7] = 0xb9; // offset 185 * 8
    });
    Case::new("IPv4 fragments to the VIP: dropped (Fragment)", BASE)
        .step(
            "first fragment",
            CLIENT,
            fixed(mf),
            Want::Drop(Reason::Fragment),
        )
        .step(
            "later fragment",
            CLIENT,
            fixed(later),
            Want::Drop(Reason::Fragment),
        )
}

fn bad_ip_checksum() -> Case {
    let mut f = syn_to(VIP).tcp();
    f[24] ^= 0x01;
    Case::new(
        "bad IPv4 header checksum to the VIP: dropped (BadIpv4)",
        BASE,
    )
    .step("SYN", CLIENT, fixed(f), Want::Drop(Reason::BadIpv4))
}

fn udp_no_service() -> Case {
    let mut s = Seg::from_client(VIP, 80);
    s.payload = b"x".to_vec();
    let mut d = Seg::from_client(DIP_NAT, 81);
    d.payload = b"y".to_vec();
    Case::new(
        "UDP to the VIP, and to a DIP's port with no service: NoService",
        BASE,
    )
    .step(
        "udp to VIP",
        CLIENT,
        fixed(s.udp()),
        Want::Drop(Reason::NoService),
    )
    .step(
        "udp to DIP:81",
        CLIENT,
        fixed(d.udp()),
        Want::Drop(Reason::NoService),
    )
}

fn tcp_no_service() -> Case {
    let syn = Seg::from_client(DIP_NAT, 81).syn();
    let mut refusal = syn.answer(CLIENT);
    refusal.rst = true;
    refusal.ack = Some(syn.seq.wrapping_add(1));
    refusal.window = 0;
    let mut data = Seg::from_client(VIP, 81).with_ack(0x1357_9bdf);
    data.seq = 77;
    data.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let mut reset = data.answer(CLIENT);
    reset.rst = true;
    reset.seq = 0x1357_9bdf;
    reset.window = 0;
    let mut rst = Seg::from_client(DIP_NAT, 81).with_ack(5);
    rst.rst = true;
    Case::new(
        "TCP to an owned address on a port with no service: RST as a closed port (RFC 9293 \
         3.10.7.1); a RST there is dropped",
        BASE,
    )
    .step("SYN to DIP:81", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .expect(fixed(refusal.tcp()))
    .step(
        "data+ACK to VIP:81",
        CLIENT,
        fixed(data.tcp()),
        Want::Tx(CLIENT),
    )
    .expect(fixed(reset.tcp()))
    .step(
        "RST to DIP:81",
        CLIENT,
        fixed(rst.tcp()),
        Want::Drop(Reason::NoService),
    )
    .counters(&[("refused", 2)])
}

// ---- more responder edges -------------------------------------------------------------------

fn split_retransmit_and_gap() -> Case {
    let syn = syn_to(VIP);
    let part1: &[u8] = b"GET /r HTTP/1.1\r\nHost: www";
    let part2: &[u8] = b".acme.com\r\n\r\n";
    let s1 = data_after(&syn, part1);
    let mut s2 = data_after(&syn, part2);
    s2.seq = s1.next_seq();
    let mut gap = s2.clone();
    gap.seq = s2.seq.wrapping_add(5);
    Case::new(
        "split head: a retransmitted first part is re-ACKed, a segment past a gap dropped",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "first part",
        CLIENT,
        with_cookie(s1.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&s1))
    .step(
        "first part again",
        CLIENT,
        with_cookie(s1.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&s1))
    .step(
        "after a gap",
        CLIENT,
        with_cookie(gap, 0),
        Want::Drop(Reason::OutOfOrder),
    )
    .step(
        "second part",
        CLIENT,
        with_cookie(s2.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_final(
        &s2,
        redirect_response(302, "Found", "http://nat.lab/r", false),
    ))
    .counters(&[("syn_acks", 1), ("redirects", 1), ("heads_kept", 1)])
}

fn request_with_fin() -> Case {
    let syn = syn_to(VIP);
    let mut req = data_after(&syn, REQ);
    req.fin = true;
    Case::new("request and FIN in one segment: 302 acks the FIN too", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .step(
            "request+FIN",
            CLIENT,
            with_cookie(req.clone(), 0),
            Want::Tx(CLIENT),
        )
        .expect(expect_final(
            &req,
            redirect_response(302, "Found", "http://nat.lab/a/b?x=1", false),
        ))
        .counters(&[("syn_acks", 1), ("redirects", 1)])
}

fn partial_head_then_fin() -> Case {
    let syn = syn_to(VIP);
    let mut req = data_after(&syn, b"GET / HTTP/1.1\r\nHost: www.ac");
    req.fin = true;
    Case::new(
        "an incomplete head closed by FIN: 400, acking the FIN",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "head+FIN",
        CLIENT,
        with_cookie(req.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_final(&req, status_response(400, "Bad Request")))
    .counters(&[("syn_acks", 1), ("bad_requests", 1)])
}

fn cookie_age() -> Case {
    let syn = syn_to(VIP);
    let req = data_after(&syn, REQ);
    let r = req.clone();
    Case::new(
        "a cookie is good 100 s after the SYN-ACK, refused 200 s after",
        BASE,
    )
    .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "request at +100 s",
        CLIENT,
        with_cookie(req.clone(), 0),
        Want::Tx(CLIENT),
    )
    .later(100_000)
    .expect(expect_final(
        &req,
        redirect_response(302, "Found", "http://nat.lab/a/b?x=1", false),
    ))
    .step(
        "request at +200 s",
        CLIENT,
        with_cookie(req, 0),
        Want::Tx(CLIENT),
    )
    .later(200_000)
    .expect(Box::new(move |c| {
        let mut a = r.answer(CLIENT);
        a.rst = true;
        a.seq = c.cookie.wrapping_add(1);
        a.window = 0;
        a.tcp()
    }))
    .counters(&[
        ("syn_acks", 1),
        ("redirects", 1),
        ("rsts", 1),
        ("drop:bad_cookie", 1),
    ])
}

fn reused_tuple_after_abandoned_split_head() -> Case {
    // A client (or a NAT in front of many) sends half a head, gives up with a RST, and opens a
    // new connection from the same address and port: a new ISN, so a new cookie. The new
    // connection's complete request must get its 302, not the old connection's state.
    let old_syn = syn_to(VIP);
    let part1 = data_after(&old_syn, b"GET /old HTTP/1.1\r\nHo");
    let mut rst = data_after(&old_syn, b"");
    rst.seq = part1.next_seq();
    rst.psh = false;
    rst.rst = true;
    let mut new_syn = syn_to(VIP);
    new_syn.seq = 0x9000_0000;
    let req = data_after(&new_syn, REQ);
    Case::new(
        "a new connection on a reused 4-tuple after an abandoned split head gets its 302",
        BASE,
    )
    .step("old SYN", CLIENT, fixed(old_syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .step(
        "old first part",
        CLIENT,
        with_cookie(part1.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_pure_ack(&part1))
    .step(
        "old RST",
        CLIENT,
        with_cookie(rst, 0),
        Want::Drop(Reason::NothingToAnswer),
    )
    .step("new SYN", CLIENT, fixed(new_syn.tcp()), Want::Tx(CLIENT))
    .learn_cookie()
    .expect(expect_syn_ack(&new_syn))
    .step(
        "new request",
        CLIENT,
        with_cookie(req.clone(), 0),
        Want::Tx(CLIENT),
    )
    .expect(expect_final(
        &req,
        redirect_response(302, "Found", "http://nat.lab/a/b?x=1", false),
    ))
    .counters(&[("syn_acks", 2), ("redirects", 1), ("heads_kept", 1)])
}

fn long_path() -> Vec<u8> {
    let mut r = b"GET /".to_vec();
    r.extend(std::iter::repeat_n(b'p', 900));
    r.extend_from_slice(b" HTTP/1.1\r\nHost: www.acme.com\r\n\r\n");
    r
}

fn long_redirect(mss: u16) -> Case {
    let mut syn = syn_to(VIP);
    syn.mss = Some(mss);
    let req = data_after(&syn, &long_path());
    // The 302 would be about 2 KiB: more than an MSS of 1460 and than the 2048-byte buffer.
    let full = redirect_response(
        302,
        "Found",
        &format!("http://nat.lab/{}", "p".repeat(900)),
        false,
    );
    assert!(full.len() > 2048 - 54, "{}", full.len());
    let mut c = Case::new("", BASE)
        .step("SYN", CLIENT, fixed(syn.tcp()), Want::Tx(CLIENT))
        .learn_cookie()
        .step(
            "long request",
            CLIENT,
            with_cookie(req.clone(), 0),
            Want::Tx(CLIENT),
        )
        .expect(expect_final(&req, status_response(414, "URI Too Long")))
        .counters(&[("syn_acks", 1), ("uri_too_long", 1)]);
    c.desc = leak(format!(
        "client MSS {mss}, a redirect too long for one segment in the frame buffer: 414"
    ));
    c
}

// ---- ICMP errors for flows moved to a backup real ---------------------------------------------

fn backup_real_conf() -> String {
    "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.4 real 198.18.1.4:8080
url nat http://nat.lab/%d
link nat 198.18.0.2
bind 198.18.0.1 nat
backup 198.18.0.2 198.18.0.4
out-of-service real 198.18.0.2 failed
"
    .to_string()
}

fn backup_flow_frag_needed() -> Case {
    let syn = syn_to(DIP_NAT);
    // The backup real's segment to the client, as it sent it and as the client side saw it.
    let (mut real, mut dip) = real_to_client_pair();
    real.src = REAL_B;
    real.sport = REAL_B_PORT;
    dip.ttl = real.ttl;
    let head = [3, 4, 0, 0, 0, 0, 0x05, 0x78];
    let input = icmp_frame(
        GW,
        US[0],
        ROUTER_CLIENT_SIDE,
        DIP_NAT,
        250,
        0x7777,
        head,
        &dip.tcp_ip()[..28],
    );
    let out = icmp_frame(
        US[1],
        real_mac(REAL_B),
        ROUTER_CLIENT_SIDE,
        REAL_B,
        249,
        0x7777,
        head,
        &real.tcp_ip()[..28],
    );
    Case::new(
        "frag-needed about a flow moved to a backup real: to the backup real, quoting its \
         own address and port",
        &backup_real_conf(),
    )
    .step(
        "SYN to DIP (to the backup)",
        CLIENT,
        fixed(syn.tcp()),
        Want::Tx(SERVER),
    )
    .step("frag needed", CLIENT, fixed(input), Want::Tx(SERVER))
    .expect(fixed(out))
    .counters(&[
        ("to_real", 1),
        ("to_backup", 1),
        ("to_real_bytes", ip_len(&syn.tcp())),
        ("icmp_translated", 1),
    ])
}

fn backup_flow_icmp_from_real() -> Case {
    let syn = syn_to(DIP_NAT);
    let mut sent = Seg::from_client(DIP_NAT, 80);
    sent.seq = syn.seq + 1;
    sent.ack = Some(1);
    sent.psh = true;
    sent.payload = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let mut at_real = sent.clone();
    at_real.ttl = 63;
    at_real.dst = REAL_B;
    at_real.dport = REAL_B_PORT;
    let mut at_client = sent.clone();
    at_client.ttl = 63;
    let head = [3, 1, 0, 0, 0, 0, 0, 0]; // host unreachable
    let input = icmp_frame(
        real_mac(REAL_B),
        US[1],
        REAL_B,
        CLIENT_IP,
        64,
        0x3333,
        head,
        &at_real.tcp_ip()[..28],
    );
    let out = icmp_frame(
        US[0],
        GW,
        DIP_NAT,
        CLIENT_IP,
        63,
        0x3333,
        head,
        &at_client.tcp_ip()[..28],
    );
    Case::new(
        "ICMP error from a backup real about a flow moved to it: to the client as from the \
         original DIP, quoting client -> original DIP:80",
        &backup_real_conf(),
    )
    .step(
        "SYN to DIP (to the backup)",
        CLIENT,
        fixed(syn.tcp()),
        Want::Tx(SERVER),
    )
    .step(
        "ICMP from the backup",
        SERVER,
        fixed(input),
        Want::Tx(CLIENT),
    )
    .expect(fixed(out))
    .counters(&[
        ("to_real", 1),
        ("to_backup", 1),
        ("to_real_bytes", ip_len(&syn.tcp())),
        ("icmp_translated", 1),
    ])
}

fixtures! {
    forward_client_to_nat_dip_rewrites_dst_to_real_addr_and_port => forward_nat();
    forward_client_to_same_address_dip_changes_only_macs_and_ttl => forward_same();
    forward_with_ipv4_options_rewrites_correctly => forward_ip_options();
    forward_of_padded_frame_sends_ip_length_only => forward_padded();
    reply_from_nat_real_is_sent_to_client_from_dip_and_port => reply_nat();
    reply_from_same_address_real_goes_to_gateway_with_ttl_decremented => reply_same();
    reply_from_a_port_not_the_reals_is_passed => reply_other_port_passes();
    reply_with_bad_ip_checksum_is_dropped => reply_bad_ip_checksum();
    udp_forward_to_nat_dip_updates_checksum => udp_forward();
    udp_forward_with_zero_checksum_keeps_it_zero => udp_zero_checksum();
    udp_reply_from_nat_real_comes_from_dip => udp_reply_nat();
    backup_real_for_oos_real_forwards_and_replies_as_dip => backup_real("oos");
    backup_real_for_maintenance_real_forwards_and_replies_as_dip => backup_real("maintenance");
    backup_real_for_failed_real_forwards_and_replies_as_dip => backup_real("failed");
    backup_virtual_for_oos_real_redirects_to_live_member => backup_virtual("oos");
    backup_virtual_for_maintenance_real_redirects_to_live_member => backup_virtual("maintenance");
    backup_virtual_for_failed_real_redirects_to_live_member => backup_virtual("failed");
    backup_url_for_oos_real_redirects_there_with_302 => backup_url("oos");
    backup_url_for_maintenance_real_redirects_there_with_302 => backup_url("maintenance");
    backup_url_for_failed_real_redirects_there_with_302 => backup_url("failed");
    no_backup_for_oos_real_refuses_syn_with_rst_ack => no_backup("oos");
    no_backup_for_maintenance_real_refuses_syn_with_rst_ack => no_backup("maintenance");
    no_backup_for_failed_real_refuses_syn_with_rst_ack => no_backup("failed");
    sticky_real_is_still_forwarded => sticky();
    syn_to_vip_gets_syn_ack_with_mss_1460 => syn_to_vip();
    syn_without_mss_and_wrapping_isn_gets_syn_ack => syn_without_mss();
    request_gets_302_with_fin_and_exact_location => request_302();
    head_request_gets_redirect_head_without_body => head_request();
    split_request_gets_ack_then_302 => split_request();
    fin_to_vip_gets_ack => fin_gets_ack();
    rst_to_vip_is_dropped => rst_dropped();
    pure_ack_to_vip_is_dropped => pure_ack_dropped();
    bad_cookie_is_dropped_in_its_slots_and_stale_one_gets_rst => bad_cookie();
    syn_with_ack_flag_gets_rst => syn_with_ack();
    non_http_payload_gets_400 => non_http();
    head_over_4096_bytes_gets_431 => head_too_large();
    host_with_bare_cr_gets_400 => host_with_cr();
    host_not_a_host_name_gets_400 => host_with_lf_in_template();
    host_macro_copies_host_without_port => host_macro();
    url_code_307_is_sent_as_307 => url_code_307();
    host_folded_with_crlf_gets_400 => host_obs_fold();
    host_ended_by_bare_lf_never_puts_lf_in_location => host_bare_lf();
    oos_virtual_without_backup_refuses_syn => oos_virtual_no_backup();
    oos_virtual_with_url_backup_redirects_there => oos_virtual_url_backup();
    virtual_with_no_eligible_member_refuses_syn => no_eligible_member();
    arp_request_for_vip_gets_reply_with_client_port_mac => arp_vip();
    arp_request_for_dip_on_server_port_gets_server_port_mac => arp_dip_server_port();
    arp_for_foreign_address_and_arp_reply_are_passed => arp_foreign();
    icmp_echo_to_vip_gets_echo_reply => echo(64);
    icmp_echo_with_ttl_1_to_vip_is_still_answered => echo(1);
    frag_needed_quoting_8_bytes_is_translated_to_real => frag_needed(28);
    frag_needed_quoting_548_bytes_updates_quoted_tcp_checksum => frag_needed(548);
    icmp_port_unreachable_from_real_is_translated_to_client => icmp_from_real_udp();
    icmp_time_exceeded_from_router_keeps_router_source => icmp_from_router_tcp();
    ipv6_is_passed_and_counted => ipv6();
    ttl_1_to_dip_is_dropped_ttl_exceeded => ttl_one();
    unknown_real_mac_is_dropped_no_neighbour => unknown_real_mac();
    unknown_gateway_mac_is_dropped_no_neighbour => unknown_gateway_mac();
    fragment_to_vip_is_dropped => fragments();
    bad_ipv4_checksum_to_vip_is_dropped => bad_ip_checksum();
    udp_to_vip_and_to_unconfigured_dip_port_is_no_service => udp_no_service();
    tcp_to_unconfigured_port_of_owned_address_gets_rst => tcp_no_service();
    split_head_retransmission_is_reacked_and_gap_dropped => split_retransmit_and_gap();
    request_with_fin_gets_302_acking_the_fin => request_with_fin();
    incomplete_head_closed_by_fin_gets_400 => partial_head_then_fin();
    cookie_is_accepted_at_100s_and_refused_at_200s => cookie_age();
    new_connection_on_reused_tuple_ignores_abandoned_split_head => reused_tuple_after_abandoned_split_head();
    too_long_redirect_for_mss_1460_gets_414 => long_redirect(1460);
    too_long_redirect_for_jumbo_mss_gets_414_not_a_silent_drop => long_redirect(9000);
    frag_needed_for_backup_flow_goes_to_the_backup_real => backup_flow_frag_needed();
    icmp_error_from_backup_real_reaches_client_as_from_original_dip => backup_flow_icmp_from_real();
}

// ---- malformed input: a valid SYN truncated at every length -------------------------------------

/// Which reason a truncation of the valid 58-byte SYN to the VIP at `len` must give.
/// `fixed_total`: the IPv4 total length (and header checksum) were rewritten to match.
fn truncation_reason(len: usize, fixed_total: bool) -> Reason {
    match len {
        0..=13 => Reason::Runt,
        14..=33 => Reason::BadIpv4,
        _ if !fixed_total => Reason::BadIpv4,
        _ => Reason::BadTcp,
    }
}

#[test]
fn truncated_syn_at_every_length_gives_the_reason_of_its_layer() {
    let frame = syn_to(VIP).tcp();
    assert_eq!(frame.len(), 58);
    let mut w = worker(BASE);
    let mut want = std::collections::HashMap::<Reason, u64>::new();
    for len in 0..frame.len() {
        let (v, _) = run(&mut w, &frame[..len], CLIENT);
        let r = truncation_reason(len, false);
        assert_eq!(v, Verdict::Drop(r), "truncated at {len}");
        *want.entry(r).or_default() += 1;
    }
    let (v, _) = run(&mut w, &frame, CLIENT);
    assert!(
        matches!(v, Verdict::Tx { port: CLIENT, .. }),
        "whole: {v:?}"
    );
    for (r, n) in want {
        assert_eq!(w.counters().dropped(r), n, "{r:?}");
    }
    assert_eq!(w.counters().rx, 59);
    assert_eq!(w.counters().tx, 1);
}

#[test]
fn truncated_syn_with_matching_total_length_gives_bad_tcp_inside_tcp_header() {
    let frame = syn_to(VIP).tcp();
    let mut w = worker(BASE);
    let mut bad_tcp = 0;
    for len in 34..frame.len() {
        let f = patch_ip(frame[..len].to_vec(), |h| {
            h[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes())
        });
        let (v, _) = run(&mut w, &f, CLIENT);
        assert_eq!(
            v,
            Verdict::Drop(truncation_reason(len, true)),
            "truncated at {len} with total length {}",
            len - 14
        );
        bad_tcp += 1;
    }
    assert_eq!(w.counters().dropped(Reason::BadTcp), bad_tcp);
}

#[test]
fn truncated_frames_of_every_kind_never_panic() {
    let (_, dip_pkt) = real_to_client_pair();
    let quote = dip_pkt.tcp_ip()[..28].to_vec();
    let frames = [
        syn_to(VIP).tcp(),
        client_data(DIP_NAT).tcp(),
        real_reply(REAL_NAT, REAL_NAT_PORT).tcp(),
        Seg::from_client(DIP_NAT, 80).with_payload(b"udp").udp(),
        arp_for(VIP, GW, CLIENT_IP),
        icmp_frame(
            GW,
            US[0],
            CLIENT_IP,
            VIP,
            64,
            1,
            [8, 0, 0, 0, 0, 1, 0, 1],
            b"ping",
        ),
        icmp_frame(
            GW,
            US[0],
            ROUTER_CLIENT_SIDE,
            DIP_NAT,
            64,
            1,
            [3, 4, 0, 0, 0, 0, 5, 0],
            &quote,
        ),
    ];
    let mut w = worker(BASE);
    for (i, f) in frames.iter().enumerate() {
        for len in 0..=f.len() {
            for port in [CLIENT, SERVER] {
                let (v, out) = run(&mut w, &f[..len], port);
                if let Verdict::Tx { len: n, .. } = v {
                    assert!(n <= BUF);
                    if ipv4_bounds(&out).is_some() {
                        assert!(
                            ip_header_valid(&out),
                            "frame {i} at {len}: bad IPv4 checksum"
                        );
                    }
                }
            }
        }
    }
}

/// A non-first fragment from a real carries no L4 header: whatever the director does with it,
/// it must never rewrite its payload as if the first bytes were ports and a checksum.
#[test]
fn non_first_fragment_from_real_is_never_rewritten_as_if_it_had_ports() {
    let mut w = worker(BASE);
    // Payload bytes that look like "sport 8080, dport 40000, ..., checksum 0x1234".
    let mut data = vec![0x1f, 0x90, 0x9c, 0x40, 0x00, 0x40, 0x12, 0x34];
    data.extend((0..64u8).map(|i| i ^ 0x5a));
    let mut f = Vec::new();
    f.extend_from_slice(&US[1]);
    f.extend_from_slice(&real_mac(REAL_NAT));
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x55, 0x55, 0x00, 0xb9, 64, 17, 0, 0]); // offset 185*8, UDP
    ip.extend_from_slice(&REAL_NAT);
    ip.extend_from_slice(&CLIENT_IP);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&data);
    let (v, out) = run(&mut w, &f, SERVER);
    match v {
        Verdict::Tx { .. } => {
            assert_eq!(
                &out[34..],
                &data[..],
                "fragment payload rewritten (verdict {v:?}):\n{}",
                hex_diff(&f, &out)
            );
            assert_eq!(&out[26..30], &DIP_NAT, "src not translated to the DIP");
            assert!(ip_header_valid(&out));
        }
        Verdict::Drop(_) | Verdict::Pass => {}
    }
}
