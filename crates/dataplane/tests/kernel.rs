//! End-to-end tests of the dataplane against the real Linux TCP stack: the worker runs in this
//! process behind two TAP devices in network namespaces, with real HTTP servers (python3) and
//! real clients (curl, python sockets). See `common/mod.rs` for the lab.
//!
//! Needs root (namespaces, taps), `ip`, `curl` and `python3`.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// A raw HTTP client: sends argv[3] to argv[1]:argv[2], reads until the server closes.
/// Exit 0: the server closed (FIN seen); 3: no close within 5 s; stdout: the bytes received.
const RAW_HTTP: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(sys.argv[3].encode("latin1"))
data = b""
code = 0
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except socket.timeout:
    code = 3
sys.stdout.buffer.write(data)
sys.exit(code)
"#;

/// ICMP echo with a raw socket (ping is not on a fresh Debian): argv[1] address, argv[2]
/// count. Exit 0 iff every echo got a reply with the right id, seq, payload and checksum.
const PING: &str = r#"
import os, socket, struct, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.2)
ident = os.getpid() & 0xffff
ok = 0
for seq in range(1, n + 1):
    payload = (b"detour-ping-%d-" % seq) * 4
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    pkt = hdr[:2] + struct.pack("!H", csum(hdr + payload)) + hdr[4:] + payload
    s.sendto(pkt, (dst, 0))
    end = time.time() + 1.0
    got = False
    while time.time() < end and not got:
        try:
            d, a = s.recvfrom(4096)
        except socket.timeout:
            continue
        icmp = d[(d[0] & 15) * 4:]
        if a[0] != dst or len(icmp) < 8:
            continue
        t, c, _, i, q = struct.unpack("!BBHHH", icmp[:8])
        if t != 0 or i != ident or q != seq:
            continue
        got = True
        if csum(icmp) != 0:
            print("seq %d: reply with a bad ICMP checksum" % seq)
        elif icmp[8:] != payload:
            print("seq %d: reply payload differs: %r" % (seq, icmp[8:]))
        else:
            print("seq %d: reply from %s" % (seq, a[0]))
            ok += 1
    if not got:
        print("seq %d: no reply within 1 s" % seq)
sys.exit(0 if ok == n else 1)
"#;

/// Connects to argv[1]:argv[2] and prints how it went: `connected`, or the exception's name
/// (`ConnectionRefusedError` when a RST answered the SYN, `TimeoutError`, `OSError` ...).
const CONNECT: &str = r#"
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except Exception as e:
    print(type(e).__name__, e)
"#;

const SECS: Duration = Duration::from_secs(20);

/// `curl -w '%{http_code} %{redirect_url}'` of `url` from the client.
fn code_and_location(lab: &Lab, url: &str) -> Out {
    lab.curl(
        10,
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            url,
        ],
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_end_matches('\r'))
    })
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn curl_gets_the_redirect_with_the_expected_location() {
    let lab = Lab::new(BASE_CONFIG, false);
    let url = "http://198.18.0.1/a/b.html?x=1";

    // Round robin in member order: nat, same, nat.
    for host in ["nat.lab", "same.lab", "nat.lab"] {
        let o = code_and_location(&lab, url);
        let want = format!("302 http://{host}/a/b.html?x=1");
        lab.check(o.ok() && o.stdout == want, || {
            format!("curl {url}: expected `{want}`, got {o:?}")
        });
    }

    // HEAD: a 302 with the Location header.
    let o = lab.curl(10, &["-sS", "-I", url]);
    lab.check(
        o.ok()
            && o.stdout.starts_with("HTTP/1.1 302")
            && header(&o.stdout, "location").is_some_and(|l| l.ends_with(".lab/a/b.html?x=1")),
        || format!("curl -I {url}: expected a 302 with a Location, got {o:?}"),
    );

    // HEAD on the wire: the head only, no body, and the director closes (FIN).
    let req = "HEAD /a/b.html?x=1 HTTP/1.1\r\nHost: 198.18.0.1\r\nUser-Agent: raw\r\n\r\n";
    let o = lab.client(&["python3", "-c", RAW_HTTP, VIP, "80", req], SECS);
    let (head, body) = o.stdout.split_once("\r\n\r\n").unwrap_or((&o.stdout, ""));
    lab.check(
        o.ok() && head.starts_with("HTTP/1.1 302") && body.is_empty(),
        || {
            format!(
                "raw HEAD: expected a 302 head, no body, and a close by the director \
                 (exit 0); got {o:?}"
            )
        },
    );

    // GET on the wire: the body is exactly Content-Length bytes, then the director closes.
    let req = "GET /a/b.html?x=1 HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n";
    let o = lab.client(&["python3", "-c", RAW_HTTP, VIP, "80", req], SECS);
    let (head, body) = o.stdout.split_once("\r\n\r\n").unwrap_or((&o.stdout, ""));
    let clen = header(head, "content-length").and_then(|v| v.parse::<usize>().ok());
    lab.check(
        o.ok() && head.starts_with("HTTP/1.1 302") && clen == Some(body.len()),
        || {
            format!(
                "raw GET: expected a 302 whose body is Content-Length ({clen:?}) bytes \
                 (got {}), then a close (exit 0); got {o:?}",
                body.len()
            )
        },
    );

    // The full response as curl sees it: Location and Connection: close.
    let o = lab.curl(10, &["-sv", "-o", "/dev/null", url]);
    let resp: String = o
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("< "))
        .map(|l| format!("{l}\n"))
        .collect();
    lab.check(
        o.ok()
            && resp.starts_with("HTTP/1.1 302")
            && header(&resp, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
            && header(&resp, "location").is_some_and(|l| l.ends_with(".lab/a/b.html?x=1")),
        || format!("curl -sv {url}: expected 302, Location, Connection: close; got {o:?}"),
    );
    lab.assert_clean();
}

#[test]
fn large_download_through_a_nat_dip_is_byte_identical() {
    let lab = Lab::new(BASE_CONFIG, true);
    let served = std::fs::read(lab.dir.join("nat/big.bin")).unwrap();
    let want = sha256_hex(&served);
    // Straight to each DIP: NAT mode (198.18.0.2:80 -> 198.18.1.2:8080), then same-address
    // mode (198.18.0.3:80 -> the real that owns 198.18.0.3).
    for dip in [DIP_NAT, DIP_SAME] {
        let file = lab.path("big-direct.bin");
        let url = format!("http://{dip}/big.bin");
        let o = lab.curl(
            60,
            &[
                "-sS",
                "-o",
                file.to_str().unwrap(),
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        let got_sha = sha256_hex(&std::fs::read(&file).unwrap_or_default());
        lab.check(o.ok() && o.stdout == "200" && got_sha == want, || {
            format!("GET {url}: expected 200 and sha256 {want}, got sha256 {got_sha}, {o:?}")
        });
        let _ = std::fs::remove_file(&file);
    }

    // Round robin: the first redirect goes to nat.lab (NAT DIP 198.18.0.2 -> 198.18.1.2:8080),
    // the second to same.lab (same-address DIP 198.18.0.3 -> 198.18.0.3:80).
    for host in ["nat.lab", "same.lab"] {
        let file = lab.path("big.bin");
        let f = file.to_str().unwrap();
        let o = lab.curl(
            60,
            &[
                "-sS",
                "-L",
                "--resolve",
                "nat.lab:80:198.18.0.2",
                "--resolve",
                "same.lab:80:198.18.0.3",
                "-o",
                f,
                "-w",
                "%{http_code} %{url_effective} %{num_redirects} %{size_download}",
                "http://198.18.0.1/big.bin",
            ],
        );
        let want_w = format!("200 http://{host}/big.bin 1 {BIG_LEN}");
        lab.check(o.ok() && o.stdout == want_w, || {
            format!("download via {host}: expected `{want_w}`, got {o:?}")
        });
        let got = std::fs::read(&file).unwrap_or_default();
        let got_sha = sha256_hex(&got);
        lab.check(got_sha == want, || {
            let first_diff = got.iter().zip(&served).position(|(a, b)| a != b);
            format!(
                "download via {host}: {} bytes with sha256 {got_sha}, want {BIG_LEN} bytes \
                 with sha256 {want} (first differing offset: {first_diff:?})",
                got.len()
            )
        });
        let _ = std::fs::remove_file(&file);
    }
    lab.assert_clean();
}

#[test]
fn out_of_service_real_follows_its_backup() {
    let mut lab = Lab::new(BASE_CONFIG, false);
    let dip_url = "http://198.18.0.2/x";

    // In service: the DIP forwards to the NAT real (which names itself).
    let o = lab.curl(10, &["-sS", "http://198.18.0.2/index.html"]);
    lab.check(
        o.ok() && o.stdout.contains("real nat 198.18.1.2:8080"),
        || format!("GET the NAT DIP in service: expected the real's page, got {o:?}"),
    );

    // Out of service with a virtual as backup: the DIP answers with a fresh redirect from
    // the virtual, which can only pick the other real.
    lab.install(&format!(
        "{BASE_CONFIG}out-of-service real 198.18.0.2\nbackup 198.18.0.2 198.18.0.1\n"
    ));
    for _ in 0..2 {
        let o = code_and_location(&lab, dip_url);
        lab.check(o.ok() && o.stdout == "302 http://same.lab/x", || {
            format!("{dip_url} with a virtual backup: expected `302 http://same.lab/x`, got {o:?}")
        });
    }
    // The VIP skips the real out of service too.
    for _ in 0..2 {
        let o = code_and_location(&lab, "http://198.18.0.1/y");
        lab.check(o.ok() && o.stdout == "302 http://same.lab/y", || {
            format!("VIP with the nat real out of service: expected same.lab, got {o:?}")
        });
    }

    // A URL as backup: redirected there.
    lab.install(&format!(
        "{BASE_CONFIG}url sorry http://sorry.lab/%d\nout-of-service real 198.18.0.2\n\
         backup 198.18.0.2 sorry\n"
    ));
    let o = code_and_location(&lab, dip_url);
    lab.check(o.ok() && o.stdout == "302 http://sorry.lab/x", || {
        format!("{dip_url} with a URL backup: expected `302 http://sorry.lab/x`, got {o:?}")
    });

    // No backup: refused (the director answers the SYN with a RST, which curl reports as
    // exit 7 and a socket as ECONNREFUSED, not as a timeout or an unreachable host).
    lab.install(&format!("{BASE_CONFIG}out-of-service real 198.18.0.2\n"));
    let o = code_and_location(&lab, dip_url);
    lab.check(o.code == Some(7), || {
        format!("{dip_url} with no backup: expected curl exit 7 (cannot connect), got {o:?}")
    });
    let o = lab.client(&["python3", "-c", CONNECT, DIP_NAT, "80"], SECS);
    lab.check(o.stdout.starts_with("ConnectionRefusedError"), || {
        format!(
            "connect to {DIP_NAT}:80 with no backup: expected ConnectionRefusedError, got {o:?}"
        )
    });

    // Back in service: forwarded again.
    lab.install(BASE_CONFIG);
    let o = lab.curl(10, &["-sS", "http://198.18.0.2/index.html"]);
    lab.check(
        o.ok() && o.stdout.contains("real nat 198.18.1.2:8080"),
        || format!("GET the NAT DIP back in service: expected the real's page, got {o:?}"),
    );
    lab.assert_clean();
}

#[test]
fn ping_and_arp_for_owned_addresses() {
    let lab = Lab::new(BASE_CONFIG, false);
    for addr in [VIP, DIP_NAT, DIP_SAME] {
        let o = lab.client(&["python3", "-c", PING, addr, "2"], SECS);
        lab.check(o.ok(), || {
            format!("ping {addr}: expected 2 replies, got {o:?}")
        });
        let o = lab.client(&["ip", "neigh", "show", addr, "dev", &lab.ctap], SECS);
        lab.check(
            o.ok() && o.stdout.contains("lladdr 02:00:00:00:00:01"),
            || format!("neighbour entry of {addr}: expected lladdr 02:00:00:00:00:01, got {o:?}"),
        );
    }
    // An on-link address the director does not own gets neither an ARP reply nor an echo.
    let stranger = "198.18.0.77";
    let o = lab.client(&["python3", "-c", PING, stranger, "1"], SECS);
    lab.check(!o.ok() && o.stdout.contains("no reply"), || {
        format!("ping {stranger} (not owned): expected no reply, got {o:?}")
    });
    let o = lab.client(&["ip", "neigh", "show", stranger, "dev", &lab.ctap], SECS);
    lab.check(!o.stdout.contains("lladdr"), || {
        format!("neighbour entry of {stranger} (not owned): expected none resolved, got {o:?}")
    });
    // A port of an owned address with no service is refused at once (RST), not left to time out.
    let o = lab.client(
        &["curl", "-sS", "--max-time", "5", "http://198.18.0.1:81/"],
        SECS,
    );
    lab.check(o.code == Some(7) && !o.timed_out, || {
        format!("curl to a port with no service: expected exit 7 (refused) at once, got {o:?}")
    });
    lab.assert_clean();
}

#[test]
fn concurrent_clients_all_get_redirects() {
    const N: usize = 50;
    let lab = Lab::new(BASE_CONFIG, false);
    let urls: Vec<String> = (0..N).map(|i| format!("http://198.18.0.1/c/{i}")).collect();
    let procs = urls
        .iter()
        .map(|u| {
            lab.spawn_in(
                &lab.cns,
                &[
                    "curl",
                    "--max-time",
                    "30",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{redirect_url}",
                    u,
                ],
            )
        })
        .collect();
    let outs = lab.wait_bounded(procs, Duration::from_secs(60));
    let mut per_host = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        let host = ["nat.lab", "same.lab"]
            .into_iter()
            .find(|h| o.ok() && o.stdout == format!("302 http://{h}/c/{i}"));
        match host {
            Some(h) => *per_host.entry(h).or_insert(0) += 1,
            None => bad.push((i, o)),
        }
    }
    lab.check(bad.is_empty(), || {
        format!(
            "{} of {N} concurrent requests did not get `302 http://<nat|same>.lab/c/<i>`: \
             {bad:#?}",
            bad.len()
        )
    });
    // Round robin shares them out (exactly, unless a request was retransmitted).
    lab.check(
        per_host.values().all(|&c| (15..=35).contains(&c)) && per_host.len() == 2,
        || format!("round robin over {N} concurrent requests: {per_host:?}"),
    );
    lab.assert_clean();
}

/// The base configuration with an IPv6 virtual bound directly to an IPv6 NAT DIP
/// ([2001:db8::2]:80 -> [2001:db8:1::2]:8080, the server namespace's address).
const CONFIG6: &str = "\
virtual [2001:db8::1]:80
dip [2001:db8::2] real [2001:db8:1::2]:8080
bind [2001:db8::1] [2001:db8::2]
";

#[test]
fn curl6_is_redirected_and_downloads_through_an_ipv6_dip_byte_identical() {
    let lab = Lab::new(&format!("{BASE_CONFIG}{CONFIG6}"), true);
    let served = std::fs::read(lab.dir.join("nat/big.bin")).unwrap();
    let want = sha256_hex(&served);
    // The client resolves the VIP by neighbour discovery (the director answers), gets the
    // redirect from the responder over IPv6 (the kernel's TCP stack on the client side).
    let o = lab.curl(
        10,
        &[
            "-6",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "http://[2001:db8::1]/a/b?x=1",
        ],
    );
    lab.check(
        o.ok() && o.stdout == "302 http://[2001:db8::2]/a/b?x=1",
        || format!("curl -6 to the IPv6 VIP: expected the redirect to the IPv6 DIP, got {o:?}"),
    );
    // Following it: 20 MiB through the DIP, NAT both ways (a kernel HTTP server behind it).
    let file = lab.path("big6.bin");
    let o = lab.curl(
        60,
        &[
            "-6",
            "-sS",
            "-L",
            "-o",
            file.to_str().unwrap(),
            "-w",
            "%{http_code} %{url_effective} %{size_download}",
            "http://[2001:db8::1]/big.bin",
        ],
    );
    let got_sha = sha256_hex(&std::fs::read(&file).unwrap_or_default());
    let _ = std::fs::remove_file(&file);
    let want_w = format!("200 http://[2001:db8::2]/big.bin {BIG_LEN}");
    lab.check(o.ok() && o.stdout == want_w && got_sha == want, || {
        format!("curl -6 -L: expected `{want_w}` and sha256 {want}, got sha256 {got_sha}, {o:?}")
    });
    // IPv4 beside it still works through the same worker.
    let o = code_and_location(&lab, "http://198.18.0.1/x");
    lab.check(o.ok() && o.stdout.starts_with("302 "), || {
        format!("IPv4 beside it: {o:?}")
    });
    lab.assert_clean();
}
