//! Tests of expansion and rendering.

use super::*;

#[test]
fn expand_substitutes_each_macro() {
    let r = Request {
        port: 8080,
        ..req(Some(b"www.acme.com:8080"), b"/a/b.html?x=1")
    };
    assert_eq!(exp("http://%h/", &r).unwrap(), "http://www.acme.com/");
    assert_eq!(
        exp("http://x.example:%s/", &r).unwrap(),
        "http://x.example:8080/"
    );
    assert_eq!(
        exp("http://x.example/p%s", &r).unwrap(),
        "http://x.example/p8080"
    );
    assert_eq!(
        exp("http://%h/new/%d", &r).unwrap(),
        "http://www.acme.com/new/a/b.html?x=1"
    );
    assert_eq!(
        exp("https://%h:%s/new/%d", &r).unwrap(),
        "https://www.acme.com:8080/new/a/b.html?x=1"
    );
    assert_eq!(
        exp("http://coyote.acme.com", &r).unwrap(),
        "http://coyote.acme.com"
    );
    assert_eq!(exp("HTTP://x.example/", &r).unwrap(), "http://x.example/");
}

#[test]
fn expand_double_percent_is_a_literal_percent_and_escapes_are_kept() {
    let r = req(None, b"/");
    assert_eq!(
        exp("http://x.example/100%%/a%2fb", &r).unwrap(),
        "http://x.example/100%/a%2fb"
    );
}

#[test]
fn expand_percent_encodes_odd_path_bytes() {
    let r = req(
        Some(b"h.example"),
        b"/a b/\"<>\\^`{|}\r\n\t\x00\x7f\xc3\xa9/%41%zz%4?q=[1]#frag",
    );
    assert_eq!(
        exp("http://%h/%d", &r).unwrap(),
        "http://h.example/a%20b/%22%3C%3E%5C%5E%60%7B%7C%7D%0D%0A%09%00%7F%C3%A9/%41%25zz%254?q=%5B1%5D"
    );
    let r = req(None, b"/keep/!$&'()*+,;=:@~_-./?a=b");
    assert_eq!(
        exp("http://x.example/%d", &r).unwrap(),
        "http://x.example/keep/!$&'()*+,;=:@~_-./?a=b"
    );
}

#[test]
fn expand_takes_the_path_of_absolute_form_and_star_targets() {
    let tpl = "http://x.example/new/%d";
    let cases: &[(&[u8], &str)] = &[
        (b"http://www.acme.com/a/b?x=1", "a/b?x=1"),
        (b"HTTPS://www.acme.com:443/a", "a"),
        (b"http://www.acme.com", ""),
        (b"http://www.acme.com?x", "?x"),
        (b"http://www.acme.com#f", ""),
        (b"*", ""),
        (b"/", ""),
        (b"/a#frag", "a"),
    ];
    for &(target, path) in cases {
        let r = req(None, target);
        assert_eq!(
            exp(tpl, &r).unwrap(),
            format!("http://x.example/new/{path}")
        );
    }
    for target in [
        &b""[..],
        b"a/b",
        b"www.acme.com:443",
        b"ftp://x/y",
        b"http:///x",
        b"**",
    ] {
        assert_eq!(
            exp(tpl, &req(None, target)),
            Err(RenderError::BadPath),
            "{target:?}"
        );
    }
    // A template without %d does not look at the target.
    assert_eq!(
        exp("http://x.example/", &req(None, b"garbage")).unwrap(),
        "http://x.example/"
    );
}

#[test]
fn expand_without_host_header_uses_the_vip() {
    let r = req(None, b"/a");
    assert_eq!(exp("http://%h/%d", &r).unwrap(), "http://198.18.0.10/a");
    let r = Request {
        vip: Ipv4Addr::new(0, 0, 0, 0).into(),
        ..r
    };
    assert_eq!(exp("http://%h/", &r).unwrap(), "http://0.0.0.0/");
    let r = Request {
        vip: Ipv4Addr::new(255, 255, 255, 255).into(),
        ..r
    };
    assert_eq!(exp("http://%h/", &r).unwrap(), "http://255.255.255.255/");
    let r = Request {
        vip: "2001:db8::1".parse().unwrap(),
        ..r
    };
    assert_eq!(exp("http://%h/%d", &r).unwrap(), "http://[2001:db8::1]/a");
    let longest: Ipv6Addr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
    let r = Request {
        vip: longest.into(),
        port: 8080,
        ..r
    };
    assert_eq!(
        exp("http://%h:%s/", &r).unwrap(),
        "http://[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:8080/"
    );
}

#[test]
fn expand_refuses_an_invalid_host_even_without_percent_h() {
    let r = req(Some(b"a\r\nX: y"), b"/");
    let mut buf = [0u8; 256];
    assert_eq!(
        expand(&t("http://x.example/"), &r, &mut buf),
        Err(RenderError::BadHost)
    );
    assert_eq!(
        expand(&t("http://%h/"), &r, &mut buf),
        Err(RenderError::BadHost)
    );
    assert!(buf.iter().all(|&c| c == 0));
}

#[test]
fn expand_reports_too_long_for_every_short_buffer() {
    let tpl = t("https://%h:%s/new/%d");
    let r = req(Some(b"www.acme.com"), b"/a b?x=1");
    let mut big = [0u8; 256];
    let need = expand(&tpl, &r, &mut big).unwrap();
    for n in 0..need {
        let mut buf = vec![0u8; n];
        assert_eq!(expand(&tpl, &r, &mut buf), Err(RenderError::TooLong), "{n}");
    }
    let mut buf = vec![0u8; need];
    assert_eq!(expand(&tpl, &r, &mut buf), Ok(need));
}

// ---- response rendering ----

#[test]
fn reason_phrases_match_the_redirect_codes() {
    let want = [
        (301, "Moved Permanently"),
        (302, "Found"),
        (303, "See Other"),
        (307, "Temporary Redirect"),
        (308, "Permanent Redirect"),
    ];
    for (code, phrase) in want {
        assert!(REDIRECT_CODES.contains(&code));
        assert_eq!(reason(code), phrase);
    }
    assert_eq!(reason(200), "");
}

#[test]
fn render_302_byte_for_byte() {
    let tpl = t("http://%h/new/%d");
    let r = req(Some(b"www.acme.com:80"), b"/a/b.html?x=1&y=2");
    let got = render(&tpl, 302, &r).unwrap();
    let want: &[u8] = b"HTTP/1.1 302 Found\r\n\
Location: http://www.acme.com/new/a/b.html?x=1&y=2\r\n\
Server: detour\r\n\
Connection: close\r\n\
Content-Type: text/html\r\n\
Content-Length: 132\r\n\
\r\n\
<html><head><title>302 Found</title></head><body><a href=\"http://www.acme.com/new/a/b.html?x=1&amp;y=2\">302 Found</a></body></html>\n";
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    assert_eq!(got, want);
}

#[test]
fn render_status_line_for_every_redirect_code() {
    let tpl = t("http://coyote.acme.com/");
    let r = req(None, b"/");
    for code in REDIRECT_CODES {
        let got = render(&tpl, code, &r).unwrap();
        let status = format!("HTTP/1.1 {code} {}\r\n", reason(code));
        assert!(got.starts_with(status.as_bytes()), "{code}");
        let title = format!("<title>{code} {}</title>", reason(code));
        assert!(got.windows(title.len()).any(|w| w == title.as_bytes()));
        assert!(got.ends_with(format!(">{code} {}</a></body></html>\n", reason(code)).as_bytes()));
    }
}

#[test]
fn render_unknown_code_as_302() {
    let tpl = t("http://coyote.acme.com/");
    let r = req(None, b"/");
    let want = render(&tpl, 302, &r).unwrap();
    for code in [0, 200, 300, 304, 305, 306, 400, 999, u16::MAX] {
        assert_eq!(render(&tpl, code, &r).unwrap(), want, "{code}");
    }
}

/// Split a response into (status line, headers, body) and check its framing.
fn parse_response(resp: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let sep = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = std::str::from_utf8(&resp[..sep]).expect("head is UTF-8");
    let body = resp[sep + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("header line");
            (k.to_string(), v.to_string())
        })
        .collect();
    (status, headers, body)
}

#[test]
fn render_content_length_matches_the_body() {
    let tpl = t("https://%h:%s/new/%d");
    for target in [&b"/"[..], b"/a&b&&c?d=1&e", b"/\"<x>\"", b"/a b"] {
        let r = req(Some(b"www.acme.com"), target);
        let resp = render(&tpl, 301, &r).unwrap();
        let (_, headers, body) = parse_response(&resp);
        let cl: usize = headers
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(cl, body.len(), "{target:?}");
    }
}

#[test]
fn render_head_has_the_same_headers_and_no_body() {
    let tpl = t("http://%h/new/%d");
    let r = req(Some(b"www.acme.com"), b"/a&b");
    let get = render(&tpl, 307, &r).unwrap();
    let head = render(
        &tpl,
        307,
        &Request {
            head_only: true,
            ..r
        },
    )
    .unwrap();
    let (gs, gh, gb) = parse_response(&get);
    let (hs, hh, hb) = parse_response(&head);
    assert_eq!((gs, gh), (hs, hh));
    assert!(hb.is_empty());
    assert!(!gb.is_empty());
    assert_eq!(head, get[..get.len() - gb.len()]);
}

#[test]
fn render_reports_too_long_for_every_short_buffer() {
    let tpl = t("http://%h/new/%d");
    let r = req(Some(b"www.acme.com"), b"/a/b.html?x=1&y=2");
    for head_only in [false, true] {
        let r = Request { head_only, ..r };
        let need = render(&tpl, 302, &r).unwrap().len();
        for n in 0..need {
            let mut buf = vec![0u8; n];
            assert_eq!(
                render_redirect(&tpl, 302, &r, &mut buf),
                Err(RenderError::TooLong),
                "{n}"
            );
        }
        let mut buf = vec![0u8; need];
        assert_eq!(render_redirect(&tpl, 302, &r, &mut buf), Ok(need));
    }
}

#[test]
fn render_refuses_response_splitting_through_host() {
    let attacks: &[&[u8]] = &[
        b"www.acme.com\r\nSet-Cookie: evil=1",
        b"www.acme.com\nSet-Cookie: evil=1",
        b"www.acme.com\rSet-Cookie: evil=1",
        b"www.acme.com\r\n\r\n<script>alert(1)</script>",
        b"www.acme.com:80\r\nLocation: http://evil.example/",
        b"evil.example/\r\nX: y",
        b"www.acme.com%0d%0aSet-Cookie:x",
        b"www.acme.com\x00\r\nX: y",
        b"user@evil.example",
    ];
    for tpl in ["http://%h/%d", "http://coyote.acme.com/"] {
        let tpl = t(tpl);
        for &host in attacks {
            let mut buf = vec![0u8; 4096];
            let r = req(Some(host), b"/");
            assert_eq!(
                render_redirect(&tpl, 302, &r, &mut buf),
                Err(RenderError::BadHost),
                "{:?}",
                String::from_utf8_lossy(host)
            );
            assert!(buf.iter().all(|&c| c == 0), "bytes written on BadHost");
            // Too small a buffer must not hide the bad host either.
            assert_eq!(
                render_redirect(&tpl, 302, &r, &mut []),
                Err(RenderError::BadHost)
            );
        }
    }
}

#[test]
fn render_never_puts_raw_crlf_from_the_path_into_the_response() {
    let tpl = t("http://%h/%d");
    let r = req(None, b"/x\r\nSet-Cookie: evil=1\r\n\r\n<b>");
    let resp = render(&tpl, 302, &r).unwrap();
    let (_, headers, body) = parse_response(&resp);
    assert_eq!(headers.len(), 5);
    assert_eq!(
        headers[0].1,
        "http://198.18.0.10/x%0D%0ASet-Cookie:%20evil=1%0D%0A%0D%0A%3Cb%3E"
    );
    assert!(!body.windows(3).any(|w| w == b"<b>"));
}

// ---- properties ----

const HEADER_NAMES: [&str; 5] = [
    "Location",
    "Server",
    "Connection",
    "Content-Type",
    "Content-Length",
];

fn check_response(resp: &[u8], code: u16, head_only: bool) -> Result<(), TestCaseError> {
    let sep = resp.windows(4).position(|w| w == b"\r\n\r\n");
    prop_assert!(sep.is_some());
    let sep = sep.unwrap();
    let head = &resp[..sep];
    let body = &resp[sep + 4..];
    let code = if is_redirect_code(code) { code } else { 302 };
    let lines: Vec<&[u8]> = head.split(|&c| c == b'\n').collect();
    prop_assert_eq!(lines.len(), 6);
    for (k, line) in lines.iter().enumerate() {
        // Every line but the last ends in CR (the LF was the split point); no other CR.
        let line = if k + 1 < lines.len() {
            prop_assert_eq!(line.last(), Some(&b'\r'));
            &line[..line.len() - 1]
        } else {
            line
        };
        prop_assert!(!line.contains(&b'\r'));
        if k == 0 {
            let status = format!("HTTP/1.1 {code} {}", reason(code));
            prop_assert_eq!(line, status.as_bytes());
            continue;
        }
        let name = HEADER_NAMES[k - 1];
        let prefix = format!("{name}: ");
        prop_assert!(line.starts_with(prefix.as_bytes()), "header {}", k);
        let value = &line[name.len() + 2..];
        if name == "Location" {
            prop_assert!(value.iter().all(|&c| (0x21..0x7f).contains(&c)));
            let bad_byte = value.iter().any(|c| b"\"<>\\^`{|} ".contains(c));
            prop_assert!(!bad_byte, "unsafe byte in Location");
        }
        if name == "Content-Length" {
            let n: usize = std::str::from_utf8(value).unwrap().parse().unwrap();
            if head_only {
                prop_assert!(body.is_empty());
            } else {
                prop_assert_eq!(n, body.len());
            }
        }
    }
    prop_assert!(!body.contains(&b'\r'));
    if !head_only {
        prop_assert_eq!(body.iter().filter(|&&c| c == b'\n').count(), 1);
        prop_assert_eq!(body.last(), Some(&b'\n'));
    }
    Ok(())
}

fn templates() -> Vec<UrlTemplate> {
    [
        "http://%h/new/%d",
        "https://%h:%s/%d?from=%s#x",
        "http://coyote.acme.com",
        "http://[2001:db8::1]:8080/a%%b/%d",
    ]
    .iter()
    .map(|s| t(s))
    .collect()
}

/// Host header values: absent, valid (with and without port), valid with an injection
/// appended, host-like text with CR/LF/space mixed in, and arbitrary bytes.
fn host_header() -> impl Strategy<Value = Option<Vec<u8>>> {
    let name = "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){0,3}(:[0-9]{1,5})?";
    prop_oneof![
        Just(None),
        name.prop_map(|s| Some(s.into_bytes())),
        (name, "[\r\n @/%\"<>]{1,3}[a-zA-Z: =]{0,12}")
            .prop_map(|(a, b)| Some(format!("{a}{b}").into_bytes())),
        "[a-zA-Z0-9.:\\[\\]\r\n -]{0,30}".prop_map(|s| Some(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn prop_render_never_panics_and_frames_are_exact(
        which in 0usize..4,
        host in host_header(),
        target in proptest::collection::vec(any::<u8>(), 0..200),
        slash in any::<bool>(),
        port in any::<u16>(),
        code in prop_oneof![Just(301u16), Just(302), Just(303), Just(307), Just(308), any::<u16>()],
        head_only in any::<bool>(),
        small in 0usize..600,
    ) {
        let tpl = &templates()[which];
        let mut target = target;
        if slash {
            target.insert(0, b'/');
        }
        let r = Request {
            host: host.as_deref(),
            vip: IpAddr::V4(VIP),
            port,
            target: &target,
            head_only,
        };
        let mut buf = vec![0u8; 4096];
        match render_redirect(tpl, code, &r, &mut buf) {
            Ok(n) => {
                prop_assert!(host.as_deref().and_then(valid_host).is_some() || host.is_none());
                check_response(&buf[..n], code, head_only)?;
                let mut small_buf = vec![0u8; small];
                let got = render_redirect(tpl, code, &r, &mut small_buf);
                if small >= n {
                    prop_assert_eq!(got, Ok(n));
                    prop_assert_eq!(&small_buf[..n], &buf[..n]);
                } else {
                    prop_assert_eq!(got, Err(RenderError::TooLong));
                }
            }
            Err(RenderError::BadHost) => {
                prop_assert!(host.as_deref().is_some_and(|h| valid_host(h).is_none()));
            }
            Err(RenderError::BadPath) => prop_assert!(tpl.uses_path()),
            Err(RenderError::TooLong) => prop_assert!(false, "4096 bytes is enough here"),
        }
        let mut out = vec![0u8; small];
        let _ = expand(tpl, &r, &mut out);
    }

    #[test]
    fn prop_valid_host_never_panics_and_returns_a_safe_prefix(
        raw in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Some(h) = valid_host(&raw) {
            prop_assert!(raw.starts_with(h));
            prop_assert!(!h.is_empty());
            prop_assert!(h.iter().all(|&c| c.is_ascii_alphanumeric() || b".:[]-".contains(&c)));
        }
    }

    #[test]
    fn prop_valid_host_accepts_generated_names_with_ports(
        labels in proptest::collection::vec("[a-z][a-z0-9-]{0,10}[a-z0-9]", 1..5),
        port in proptest::option::of(0u32..=65535),
    ) {
        let name = labels.join(".");
        let raw = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        };
        prop_assert_eq!(valid_host(raw.as_bytes()), Some(name.as_bytes()));
    }

    #[test]
    fn prop_parse_never_panics_and_keeps_the_text(s in "\\PC{0,80}|[%a-z:/\\[\\]0-9.#?]{0,40}") {
        let with_scheme = format!("http://{s}");
        for text in [s.as_str(), with_scheme.as_str()] {
            match UrlTemplate::parse(text) {
                Ok(tpl) => {
                    prop_assert_eq!(tpl.as_str(), text);
                    prop_assert!(text.is_ascii());
                    prop_assert!(!text.bytes().any(|c| c <= b' '));
                }
                Err(e) => prop_assert!(text.is_char_boundary(e.offset)),
            }
        }
    }
}
