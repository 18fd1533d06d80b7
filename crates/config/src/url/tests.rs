//! Unit and property tests of URL templates: parsing and host validation here, expansion
//! and rendering in `render`.

use super::chars::*;
use super::template::*;
use super::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

fn t(s: &str) -> UrlTemplate {
    UrlTemplate::parse(s).unwrap_or_else(|e| panic!("{s:?} refused: {e:?}"))
}

fn req<'a>(host: Option<&'a [u8]>, target: &'a [u8]) -> Request<'a> {
    Request {
        host,
        vip: IpAddr::V4(VIP),
        port: 80,
        target,
        head_only: false,
    }
}

fn exp(tpl: &str, r: &Request) -> Result<String, RenderError> {
    let mut buf = [0u8; 4096];
    let n = expand(&t(tpl), r, &mut buf)?;
    Ok(String::from_utf8(buf[..n].to_vec()).unwrap())
}

fn render(tpl: &UrlTemplate, code: u16, r: &Request) -> Result<Vec<u8>, RenderError> {
    let mut buf = vec![0u8; 16384];
    let n = render_redirect(tpl, code, r, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn err(s: &str) -> UrlError {
    match UrlTemplate::parse(s) {
        Ok(_) => panic!("{s:?} accepted"),
        Err(e) => e,
    }
}

// ---- template parsing ----

#[test]
fn parse_accepts_patent_examples_and_common_forms() {
    for s in [
        "http://coyote.acme.com",
        "http://%h/new/%d",
        "https://%h:%s/new/%d",
        "http://198.18.1.2:8080/x",
        "http://[2001:db8::1]/",
        "HTTPS://www.bar.com/",
        "http://a.example/p?x=%d&y=%s#top",
        "http://a.example/100%%/%2Fx/%s",
        "http://a.example:65535",
        "http://localhost.",
        "http://[::ffff:192.0.2.1]:8443/%d",
        "http://a.example/!$&'()*+,;=:@~_-.",
    ] {
        let tpl = t(s);
        assert_eq!(tpl.as_str(), s);
        assert_eq!(tpl.to_string(), s);
        assert_eq!(s.parse::<UrlTemplate>().unwrap(), tpl);
    }
}

#[test]
fn parse_reports_which_macros_are_used() {
    let a = t("http://coyote.acme.com");
    assert!(!a.uses_host() && !a.uses_port() && !a.uses_path());
    let b = t("https://%h:%s/new/%d");
    assert!(b.uses_host() && b.uses_port() && b.uses_path());
    let c = t("http://x.example/%s");
    assert!(!c.uses_host() && c.uses_port() && !c.uses_path());
}

#[test]
fn parse_rejects_each_bad_case_at_the_exact_offset() {
    let long = format!("http://a.example/{}", "x".repeat(MAX_TEMPLATE_LEN));
    let cases: &[(&str, usize)] = &[
        ("ftp://x", 0),
        ("", 0),
        ("http:/x", 0),
        ("http:///x", 7),
        ("http://", 7),
        ("http://h/%x", 9),
        ("http://h/%4g", 9),
        ("http://h/%h", 9),
        ("http://h/a%", 10),
        ("http://h/a b", 10),
        ("http://h/a\rb", 10),
        ("http://h/a\nb", 10),
        ("http://h/a<b", 10),
        ("http://h/\"", 9),
        ("http://h/a\\", 10),
        ("http://h/a^", 10),
        ("http://h/a`", 10),
        ("http://h/{", 9),
        ("http://h/|", 9),
        ("http://h/}", 9),
        ("http://h/a[", 10),
        ("http://h/é", 9),
        ("http://hé/", 8),
        ("http://h:0/", 9),
        ("http://h:65536/", 9),
        ("http://h:123456/", 9),
        ("http://h:/", 9),
        ("http://h:%d/", 9),
        ("http://h:%x/", 9),
        ("http://%s/", 7),
        ("http://%d/", 7),
        ("http://%%/", 7),
        ("http://%h.acme.com/", 9),
        ("http://a b/", 8),
        ("http://a@b/", 8),
        ("http://a..b/", 9),
        ("http://-a.com/", 7),
        ("http://a-.com/", 8),
        ("http://1.2.3/", 7),
        ("http://256.1.1.1/", 7),
        ("http://a.123/", 9),
        ("http://[2001:db8::1/", 19),
        ("http://[2001:db8::g]/", 18),
        ("http://[1:2]/", 8),
        ("http://h/#a#b", 11),
        ("http://h/#%d", 10),
        ("http://h/\t", 9),
        ("http://h/\0", 9),
        (long.as_str(), MAX_TEMPLATE_LEN),
    ];
    for &(s, offset) in cases {
        let e = err(s);
        assert_eq!(e.offset, offset, "{s:?}: {e:?}");
        assert!(!e.found.is_empty());
    }
}

#[test]
fn parse_errors_name_what_was_expected_and_found() {
    let e = err("ftp://x");
    assert_eq!(e.expected, EXPECT_SCHEME);
    assert_eq!(e.found, "\"ftp://\"");
    assert_eq!(
        e.to_string(),
        "expected `http://` or `https://`, found \"ftp://\""
    );
    let e = err("http://h/%x");
    assert_eq!((e.expected, e.found.as_str()), (EXPECT_MACRO, "'%x'"));
    let e = err("http://h/a%");
    assert_eq!(
        (e.expected, e.found.as_str()),
        (EXPECT_MACRO, "'%' at end of URL")
    );
    let e = err("http://h/%h");
    assert_eq!(e.expected, EXPECT_NO_HOST_MACRO);
    let e = err("http://h/a b");
    assert_eq!(e.found, "space");
    let e = err("http://h/a\r");
    assert_eq!(e.found, "carriage return (CR)");
    let e = err("http://h/a\n");
    assert_eq!(e.found, "line feed (LF)");
    let e = err("http://h/é");
    assert_eq!(e.found, "non-ASCII character 'é'");
    let e = err("http://h:0/");
    assert_eq!((e.expected, e.found.as_str()), (EXPECT_PORT_RANGE, "\"0\""));
    let e = err("http:///x");
    assert_eq!((e.expected, e.found.as_str()), (EXPECT_HOST, "'/'"));
    let e = err("http://-a.com/");
    assert_eq!(e.expected, "label not starting with '-'");
}

#[test]
fn parse_accepts_exactly_max_len_and_rejects_one_more() {
    let base = "http://a.example/";
    let ok = format!("{base}{}", "x".repeat(MAX_TEMPLATE_LEN - base.len()));
    assert_eq!(ok.len(), MAX_TEMPLATE_LEN);
    t(&ok);
    let bad = format!("{ok}x");
    assert_eq!(err(&bad).offset, MAX_TEMPLATE_LEN);
    // A multi-byte character across the limit: the offset stays on a char boundary.
    let wide = format!("{}é", &ok[..MAX_TEMPLATE_LEN - 1]);
    assert_eq!(err(&wide).offset, MAX_TEMPLATE_LEN - 1);
}

#[test]
fn parse_accepts_longest_dns_label_and_rejects_64() {
    let l63 = "a".repeat(63);
    t(&format!("http://{l63}.example/"));
    let l64 = "a".repeat(64);
    assert_eq!(err(&format!("http://{l64}.example/")).offset, 7 + 63);
}

#[test]
fn expanded_len_bounds_the_expansion() {
    let tpl = t("https://%h:%s/new/%d?p=%d");
    let lit = "https://".len() + ":".len() + "/new/".len() + "?p=".len();
    assert_eq!(tpl.expanded_len(10, 2, 5), lit + 10 + 2 + 2 * 15);
    assert_eq!(t("http://x.example").expanded_len(99, 99, 99), 16);
    assert_eq!(tpl.expanded_len(usize::MAX, 1, 1), usize::MAX);
    let host = b"www.acme.com";
    let target = b"/a b/\x01\xff?x=1";
    let r = Request {
        port: 8080,
        ..req(Some(host), target)
    };
    let n = exp(tpl.as_str(), &r).unwrap().len();
    assert!(n <= tpl.expanded_len(host.len(), 4, target.len()));
}

// ---- Host validation ----

#[test]
fn valid_host_accepts_names_addresses_and_ports() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"www.acme.com", b"www.acme.com"),
        (b"www.acme.com:8080", b"www.acme.com"),
        (b"www.acme.com.", b"www.acme.com."),
        (b"localhost", b"localhost"),
        (b"a-b.c0", b"a-b.c0"),
        (b"WWW.Acme.COM:1", b"WWW.Acme.COM"),
        (b"198.18.1.2", b"198.18.1.2"),
        (b"198.18.1.2:65535", b"198.18.1.2"),
        (b"[2001:db8::1]", b"[2001:db8::1]"),
        (b"[2001:db8::1]:443", b"[2001:db8::1]"),
        (b"[::ffff:192.0.2.1]", b"[::ffff:192.0.2.1]"),
        (b"x:00080", b"x"),
    ];
    for &(raw, host) in cases {
        assert_eq!(
            valid_host(raw),
            Some(host),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let l63 = "a".repeat(63);
    let name = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
    assert_eq!(name.len(), 253);
    assert!(valid_host(name.as_bytes()).is_some());
}

#[test]
fn valid_host_refuses_anything_that_could_split_or_smuggle() {
    let l64 = "a".repeat(64);
    let l63 = "a".repeat(63);
    let too_long = format!("{l63}.{l63}.{l63}.{}", "b".repeat(62));
    let cases: &[&[u8]] = &[
        b"a\r\nSet-Cookie: x",
        b"a\nSet-Cookie: x",
        b"a\r",
        b"a b",
        b"a\tb",
        b" a",
        b"",
        b"a..b",
        b".a",
        b".",
        b"-a.com",
        b"a-.com",
        l64.as_bytes(),
        too_long.as_bytes(),
        b"a@b",
        b"user@host",
        b"a/b",
        b"a%0d",
        b"a\"b",
        b"a'b",
        b"a<b",
        b"a\0",
        b"\0",
        "ex\u{e4}mple.com".as_bytes(),
        b"\xff",
        b":80",
        b"host:99999",
        b"host:65536",
        b"host:123456",
        b"host:",
        b"host:80:80",
        b"host:8a",
        b"a_b.com",
        b"1.2.3",
        b"256.1.1.1",
        b"1.2.3.4.",
        b"a.123",
        b"[2001:db8::1",
        b"[2001:db8::1]x",
        b"[fe80::1%eth0]",
        b"[]",
        b"[1.2.3.4]",
        b"2001:db8::1",
        b"[::1]:99999",
    ];
    for &raw in cases {
        assert_eq!(
            valid_host(raw),
            None,
            "{:?} accepted",
            String::from_utf8_lossy(raw)
        );
    }
}

// ---- expansion ----

mod render;
