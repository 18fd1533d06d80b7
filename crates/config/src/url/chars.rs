//! Character classes of URLs and hosts: RFC 3986 characters, IPv6 literals, DNS names and
//! IPv4 addresses, ports; and [`valid_host`], the check a client's `Host` header must pass
//! before any byte of it reaches a response.

use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// RFC 3986 characters allowed literally after the authority, except `%` and `#`:
/// unreserved, sub-delims, `:`, `@`, `/`, `?`.
pub(super) fn is_uri_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
        )
}

/// 1..=5 ASCII digits to their value (0..=99999); anything else is `None`.
pub(super) fn parse_port_digits(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
}

pub(super) fn is_ipv6_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// The inside of `[...]` is an IPv6 address (no zone identifier).
pub(super) fn ipv6_ok(inner: &[u8]) -> bool {
    // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is the longest form.
    inner.len() <= 45
        && inner.iter().all(|&c| is_ipv6_char(c))
        && std::str::from_utf8(inner)
            .ok()
            .and_then(|t| t.parse::<Ipv6Addr>().ok())
            .is_some()
}

/// Check a DNS name or IPv4 address. On error: offset within `name` and what was expected.
///
/// DNS names: labels of 1..=63 `[A-Za-z0-9-]` not starting or ending with `-`, at most 253
/// bytes (without the optional trailing dot). A name made only of digits and dots must be a
/// dotted-quad IPv4 address, and the last label of a DNS name may not be all digits (so that
/// forms like `1.2.3` or `0x7f.1` that resolvers read as addresses are refused).
pub(super) fn check_name(name: &[u8]) -> Result<(), (usize, &'static str)> {
    if name.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
        let ok = std::str::from_utf8(name)
            .ok()
            .and_then(|t| t.parse::<Ipv4Addr>().ok())
            .is_some();
        return if ok {
            Ok(())
        } else {
            Err((0, "IPv4 address a.b.c.d"))
        };
    }
    let body = name.strip_suffix(b".").unwrap_or(name);
    if body.len() > 253 {
        return Err((253, "host name of at most 253 bytes"));
    }
    let mut start = 0;
    loop {
        let end = body[start..]
            .iter()
            .position(|&c| c == b'.')
            .map_or(body.len(), |p| start + p);
        let label = &body[start..end];
        if label.is_empty() {
            return Err((start, "non-empty label"));
        }
        if label.len() > 63 {
            return Err((start + 63, "label of at most 63 bytes"));
        }
        if let Some(p) = label
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'-'))
        {
            return Err((start + p, "host name character"));
        }
        if label[0] == b'-' {
            return Err((start, "label not starting with '-'"));
        }
        if label[label.len() - 1] == b'-' {
            return Err((end - 1, "label not ending with '-'"));
        }
        if end == body.len() {
            if label.iter().all(u8::is_ascii_digit) {
                return Err((start, "top-level label that is not all digits"));
            }
            return Ok(());
        }
        start = end + 1;
    }
}

/// Validate the raw value of a Host header and return the host part without port, or None.
///
/// Accepts DNS names (labels 1..=63 of `[A-Za-z0-9-]`, not starting or ending with `-`, at
/// most 253 bytes, optional trailing dot; the last label not all digits), IPv4 dotted quads and
/// bracketed IPv6 literals (`[2001:db8::1]`, returned with the brackets, as they are written in
/// a URL), each optionally followed by `:port` (1..=5 digits, value <= 65535).
///
/// Refuses everything else: CR, LF, spaces, tabs, `@`, `/`, `%`, quotes, NUL, non-ASCII, empty
/// values, zone identifiers — anything that could split the response or smuggle a header. The
/// caller strips the optional whitespace around a header value before calling. Never panics on
/// any bytes; the result, when there is one, is a prefix of `raw` made only of
/// `[A-Za-z0-9.:\[\]-]`.
pub fn valid_host(raw: &[u8]) -> Option<&[u8]> {
    let (host, port) = if raw.first() == Some(&b'[') {
        let close = raw.iter().position(|&c| c == b']')?;
        if !ipv6_ok(&raw[1..close]) {
            return None;
        }
        raw.split_at(close + 1)
    } else {
        let colon = raw.iter().position(|&c| c == b':').unwrap_or(raw.len());
        let (host, port) = raw.split_at(colon);
        if host.is_empty()
            || !host
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            || check_name(host).is_err()
        {
            return None;
        }
        (host, port)
    };
    if !port.is_empty() {
        let value = parse_port_digits(port.strip_prefix(b":")?)?;
        if value > 65535 {
            return None;
        }
    }
    Some(host)
}
