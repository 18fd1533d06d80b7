//! The command language: every command accepted, and every way a line is refused, with the
//! exact column.

use detour_config::lang::{parse_line, Command, HealthKind, Kind, Role, State};
use detour_config::predictor::Predictor;
use std::net::SocketAddr;
use std::time::Duration;

fn ok(line: &str) -> Command {
    match parse_line(line) {
        Ok(Some(c)) => c,
        other => panic!("{line:?}: {other:?}"),
    }
}

/// (column, expected fragment, found fragment)
fn err(line: &str) -> (usize, String, String) {
    match parse_line(line) {
        Err(e) => (e.col, e.expected, e.found),
        other => panic!("{line:?} was accepted: {other:?}"),
    }
}

fn assert_err(line: &str, col: usize, expected: &str, found: &str) {
    let (c, e, f) = err(line);
    assert_eq!(c, col, "column for {line:?} ({e}; {f})");
    assert!(
        e.contains(expected),
        "{line:?}: expected {expected:?} in {e:?}"
    );
    assert!(f.contains(found), "{line:?}: found {found:?} in {f:?}");
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn blank_and_comment_lines_are_nothing() {
    for l in ["", "   ", "\t", "# comment", "   ! cisco style", "\r"] {
        assert_eq!(parse_line(l), Ok(None), "{l:?}");
    }
}

#[test]
fn virtual_real_and_ports() {
    assert_eq!(
        ok("virtual 198.18.0.1"),
        Command::Virtual {
            addr: sa("198.18.0.1:80"),
            col: 9,
            tls: false
        }
    );
    assert_eq!(
        ok("  VIRTUAL 198.18.0.1:8080 # www"),
        Command::Virtual {
            addr: sa("198.18.0.1:8080"),
            col: 11,
            tls: false
        }
    );
    assert_eq!(
        ok("real 198.18.1.2:81"),
        Command::Real {
            addr: sa("198.18.1.2:81"),
            col: 6
        }
    );
}

#[test]
fn ipv6_ids_bracketed_or_bare() {
    let v = |line, addr, col| {
        assert_eq!(
            ok(line),
            Command::Virtual {
                addr: sa(addr),
                col,
                tls: false
            }
        )
    };
    v("virtual [2001:db8::1]:8080", "[2001:db8::1]:8080", 9);
    v("virtual [2001:db8::1]", "[2001:db8::1]:80", 9);
    v("virtual 2001:db8::1", "[2001:db8::1]:80", 9);
    v("virtual 2001:DB8:0::1", "[2001:db8::1]:80", 9);
    // TLS virtuals of either family; port 443 unless given.
    let t = |line: &str, addr: &str| {
        assert_eq!(
            ok(line),
            Command::Virtual {
                addr: sa(addr),
                col: 9,
                tls: true
            }
        )
    };
    t("virtual 2001:db8::1 tls", "[2001:db8::1]:443");
    t("virtual [2001:db8::1]:8443 tls", "[2001:db8::1]:8443");
    assert_eq!(
        ok("dip [2001:db8::2]:80 real [2001:db8:1::2]:8080"),
        Command::Dip {
            addr: sa("[2001:db8::2]:80"),
            real: Some(sa("[2001:db8:1::2]:8080")),
            col: 5
        }
    );
}

#[test]
fn dip_in_every_spelling() {
    let want = |col| Command::Dip {
        addr: sa("198.18.0.2:80"),
        real: None,
        col,
    };
    assert_eq!(ok("dip 198.18.0.2"), want(5));
    assert_eq!(ok("direct-ip 198.18.0.2"), want(11));
    assert_eq!(ok("direct - ip 198.18.0.2"), want(13));
    assert_eq!(
        ok("dip 198.18.0.2:80 real 198.18.1.2:8080"),
        Command::Dip {
            addr: sa("198.18.0.2:80"),
            real: Some(sa("198.18.1.2:8080")),
            col: 5
        }
    );
}

#[test]
fn url_with_and_without_code() {
    match ok("URL coyote http://coyote.acme.com") {
        Command::Url { id, template, code } => {
            assert_eq!(id.text, "coyote");
            assert_eq!(template.as_str(), "http://coyote.acme.com");
            assert_eq!(code, 302);
        }
        c => panic!("{c:?}"),
    }
    for code in [301, 302, 303, 307, 308] {
        match ok(&format!("url a http://%h/new/%d {code}")) {
            Command::Url { code: c, .. } => assert_eq!(c, code),
            c => panic!("{c:?}"),
        }
    }
}

#[test]
fn bind_link_backup_and_their_negations() {
    match ok("bind 198.18.0.1 coyote | roadrunner 198.18.0.9") {
        Command::Bind { no, virt, members } => {
            assert!(!no);
            assert_eq!(virt.text, "198.18.0.1");
            let m: Vec<_> = members.iter().map(|r| (r.text.as_str(), r.col)).collect();
            assert_eq!(m, [("coyote", 17), ("roadrunner", 26), ("198.18.0.9", 37)]);
        }
        c => panic!("{c:?}"),
    }
    assert!(matches!(
        ok("no bind 198.18.0.1 coyote"),
        Command::Bind { no: true, .. }
    ));
    match ok("link coyote 198.18.0.2") {
        Command::Link { url, target } => {
            assert_eq!((url.text.as_str(), target.col), ("coyote", 13))
        }
        c => panic!("{c:?}"),
    }
    assert!(matches!(
        ok("backup 198.18.0.2 198.18.0.1"),
        Command::Backup {
            no: false,
            backup: Some(_),
            ..
        }
    ));
    assert!(matches!(
        ok("no backup 198.18.0.2"),
        Command::Backup {
            no: true,
            backup: None,
            ..
        }
    ));
    assert!(matches!(
        ok("no backup 198.18.0.2 book"),
        Command::Backup {
            no: true,
            backup: Some(_),
            ..
        }
    ));
}

#[test]
fn service_states() {
    assert_eq!(
        ok("in-service real 198.18.0.2 all"),
        Command::InService {
            kind: Kind::Real,
            id: detour_config::lang::Ref {
                text: "198.18.0.2".into(),
                col: 17
            },
            all: true
        }
    );
    for (w, s) in [
        ("oos", State::Oos),
        ("maintenance", State::Maintenance),
        ("sticky", State::Sticky),
        ("failed", State::Failed),
    ] {
        match ok(&format!("out-of-service url coyote {w}")) {
            Command::OutOfService {
                kind, state, all, ..
            } => {
                assert_eq!((kind, state, all), (Kind::Url, s, false));
            }
            c => panic!("{c:?}"),
        }
    }
    match ok("out-of-service virtual 198.18.0.1 all") {
        Command::OutOfService { state, all, .. } => assert_eq!((state, all), (State::Oos, true)),
        c => panic!("{c:?}"),
    }
}

#[test]
fn extensions() {
    assert!(matches!(
        ok("weight 198.18.0.2 1000"),
        Command::Weight { weight: 1000, .. }
    ));
    for p in Predictor::ALL {
        match ok(&format!("predictor 198.18.0.1 {}", p.keyword())) {
            Command::Predictor { predictor, .. } => assert_eq!(predictor, p),
            c => panic!("{c:?}"),
        }
    }
    match ok("health-check 198.18.0.2 http path /health expect 204 interval 500ms timeout 200ms rise 1 fall 2") {
        Command::HealthCheck { check, .. } => {
            assert_eq!(check.kind, HealthKind::Http { path: "/health".into(), expect: 204 });
            assert_eq!(check.interval, Duration::from_millis(500));
            assert_eq!(check.timeout, Duration::from_millis(200));
            assert_eq!((check.rise, check.fall), (1, 2));
        }
        c => panic!("{c:?}"),
    }
    match ok(&format!("cookie-secret {}", "0f".repeat(32))) {
        Command::CookieSecret { secret } => assert_eq!(secret, [0x0f; 32]),
        c => panic!("{c:?}"),
    }
    assert_eq!(
        ok("interface client veth-c queues 2"),
        Command::Interface {
            role: Role::Client,
            name: "veth-c".into(),
            queues: 2
        }
    );
    assert_eq!(ok("cores 1,0"), Command::Cores { cores: vec![1, 0] });
    assert!(matches!(
        ok("metrics 127.0.0.1:9100"),
        Command::Metrics { .. }
    ));
}

#[test]
fn refusals_point_at_the_exact_column() {
    assert_err("frobnicate 1.2.3.4", 1, "a command", "`frobnicate`");
    assert_err("   bnid x", 4, "a command", "`bnid`");
    assert_err("virtual", 8, "an address", "end of line");
    assert_err("virtual 198.18.0.256", 9, "an address", "`198.18.0.256`");
    assert_err("virtual www.acme.com", 9, "an address", "`www.acme.com`");
    assert_err("virtual [2001:db8::1", 9, "an address", "`[2001:db8::1`");
    assert_err(
        "virtual [2001:db8::1]80",
        9,
        "an address",
        "`[2001:db8::1]80`",
    );
    assert_err("virtual 2001:db8::g", 9, "an address", "`2001:db8::g`");
    assert_err("virtual [2001:db8::1]:0", 23, "a port", "`0`");
    assert_err("virtual [ff02::1]:80", 9, "unicast", "ff02::1");
    assert_err("real ::", 6, "unicast", "::");
    assert_err(
        "real [::ffff:198.18.0.1]",
        6,
        "unicast",
        "::ffff:198.18.0.1",
    );
    assert_err("gateway 2001:db8::1", 9, "IPv4 address", "2001:db8::1");
    assert_err("virtual 198.18.0.1:0", 20, "a port", "`0`");
    assert_err("virtual 198.18.0.1:65536", 20, "a port", "`65536`");
    assert_err("virtual 198.18.0.1:http", 20, "a port", "`http`");
    assert_err("virtual 224.0.0.1", 9, "unicast", "224.0.0.1");
    assert_err("virtual 198.18.0.1 extra", 20, "end of line", "`extra`");
    assert_err("real 0.0.0.0", 6, "unicast", "0.0.0.0");
    assert_err("direct ip 198.18.0.2", 8, "`- ip`", "`ip`");
    assert_err("direct -", 9, "`- ip`", "end of line");
    assert_err("dip 198.18.0.2 real", 20, "an address", "end of line");
    assert_err("url 1bad http://x", 5, "a url id", "`1bad`");
    assert_err("url all http://x", 5, "a url id", "`all`");
    assert_err(
        &format!("url {} http://x", "a".repeat(41)),
        5,
        "a url id",
        "aaaa",
    );
    assert_err("url a http://x 404", 16, "a redirect code", "`404`");
    assert_err("url a http://x 200", 16, "a redirect code", "`200`");
    assert_err("url a http://x 30x", 16, "a redirect code", "`30x`");
    assert_err("url a http://x 302 more", 20, "end of line", "`more`");
    assert_err("url a", 6, "a URL", "end of line");
    // Errors inside a URL point into it.
    let (col, _, _) = err("url a ftp://x");
    assert_eq!(col, 7);
    let (col, e, _) = err("url a http://x/%q");
    assert_eq!(col, 16, "bad macro at its `%` ({e})");
    assert_err("bind 198.18.0.1", 16, "a real or url id", "end of line");
    assert_err("bind 198.18.0.1 a |", 20, "a real or url id", "end of line");
    assert_err("no", 3, "`bind`, `backup`", "end of line");
    assert_err("no link a b", 4, "`bind`, `backup`", "`link`");
    assert_err("backup 198.18.0.2", 18, "a backup id", "end of line");
    assert_err(
        "in-service server x",
        12,
        "`virtual`, `real` or `url`",
        "`server`",
    );
    assert_err(
        "out-of-service real 198.18.0.2 broken",
        32,
        "`oos`, `maintenance`",
        "`broken`",
    );
    assert_err(
        "out-of-service real 198.18.0.2 oos all x",
        40,
        "end of line",
        "`x`",
    );
    assert_err("weight 198.18.0.2 1001", 19, "a weight", "`1001`");
    assert_err("weight 198.18.0.2 -1", 19, "a weight", "`-1`");
    assert_err(
        "predictor 198.18.0.1 random",
        22,
        "`roundrobin`",
        "`random`",
    );
    assert_err(
        "health-check 198.18.0.2 udp",
        25,
        "`none`, `tcp` or `http`",
        "`udp`",
    );
    assert_err(
        "health-check 198.18.0.2 tcp path /",
        29,
        "a setting of a tcp check",
        "`path`",
    );
    assert_err(
        "health-check 198.18.0.2 http path health",
        35,
        "a path starting with `/`",
        "`health`",
    );
    assert_err(
        "health-check 198.18.0.2 http expect 700",
        37,
        "an HTTP status",
        "`700`",
    );
    assert_err(
        "health-check 198.18.0.2 tcp interval 5m",
        38,
        "a duration",
        "`5m`",
    );
    assert_err(
        "health-check 198.18.0.2 tcp interval 1s timeout 2s",
        25,
        "no longer than the interval",
        "timeout",
    );
    assert_err(
        "health-check 198.18.0.2 tcp speed 1",
        29,
        "`path`, `expect`",
        "`speed`",
    );
    assert_err("cookie-secret abc", 15, "64 hex digits", "3 characters");
    assert_err(
        &format!("cookie-secret {}g{}", "0".repeat(10), "0".repeat(53)),
        25,
        "a hex digit",
        "`g`",
    );
    assert_err("interface side eth0", 11, "`client` or `server`", "`side`");
    assert_err(
        "interface client a-very-long-interface",
        18,
        "an interface name",
        "a-very-long",
    );
    assert_err("interface client eth0 queues 0", 30, "a queue count", "`0`");
    assert_err("cores 0,x", 9, "a core number", "`x`");
    assert_err("cores 0,1,0", 11, "each core once", "core 0 again");
    assert_err(
        "metrics 0.0.0.0:9100",
        9,
        "a loopback address",
        "0.0.0.0:9100",
    );
    assert_err(
        "gateway 198.18.0.1:80",
        9,
        "without a port",
        "198.18.0.1:80",
    );
    assert_err("gateway router", 9, "IPv4 address", "`router`");
    assert_err(
        "metrics 127.0.0.1",
        9,
        "a loopback address and port",
        "127.0.0.1",
    );
}

#[test]
fn unprintable_and_non_ascii_bytes_are_refused_where_they_are() {
    assert_err("virtual 198.18.0.1\u{7}", 19, "printable ASCII", "\\u{7}");
    assert_err("url caf\u{e9} http://x", 8, "printable ASCII", "é");
    // Non-ASCII inside a comment is fine.
    assert_eq!(parse_line("# café ☕"), Ok(None));
    let long = format!("virtual {}", " ".repeat(9000));
    assert_err(&long, 1, "a line of at most", "bytes");
}
