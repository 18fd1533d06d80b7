//! Redirect URL templates (`url <id> <url_string> [code]`) and the redirect response renderer.
//!
//! A primary virtual server answers each HTTP request with a redirect to the URL of a real
//! server. That URL is configured as a template ([`UrlTemplate`]) that may contain the seed's
//! macros:
//!
//! | macro | expands to |
//! |---|---|
//! | `%h` | the host of the request's `Host` header, port stripped ([`valid_host`]); without a `Host` header, the virtual's IP address as dotted text |
//! | `%s` | the port the request arrived on (the virtual's port), in decimal |
//! | `%d` | the request's path ("directory"): the request-target without its leading `/`, query included, fragment dropped, bytes outside RFC 3986's set percent-encoded |
//! | `%%` | a literal `%` (written as it is: follow it with two hex digits, or write `%25`, to keep the URL valid) |
//!
//! so `http://%h/new/%d` answers `GET /a/b.html?x=1` with `Host: www.acme.com` by
//! `Location: http://www.acme.com/new/a/b.html?x=1`.
//!
//! [`UrlTemplate::parse`] validates a template once, at configuration time; errors carry the
//! byte offset so that the config parser can print `line:col: expected X, found Y`.
//!
//! On the hot path, [`expand`] and [`render_redirect`] write into a caller's buffer and never
//! allocate, never panic, and never copy a byte of client input into the response unless it is
//! syntactically safe: the `Host` value must pass [`valid_host`] (otherwise
//! [`RenderError::BadHost`], with nothing written) and the path is percent-encoded so that no
//! control byte, space, quote or angle bracket reaches the `Location` header or the HTML body.
//! `%h` can only stand for the whole host of the URL, so a client can never choose the
//! authority of the redirect beyond the host name it already asked for.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest accepted URL template, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// Redirect status codes accepted by the `url` command.
pub const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// The status used when a `url` command gives no code (the seed's default).
pub const DEFAULT_REDIRECT_CODE: u16 = 302;

/// Whether `code` is one of [`REDIRECT_CODES`].
pub fn is_redirect_code(code: u16) -> bool {
    REDIRECT_CODES.contains(&code)
}

/// One part of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Bytes copied as they are (always printable ASCII allowed by RFC 3986, or a `%` from `%%`).
    Lit(Box<str>),
    /// `%h`
    Host,
    /// `%s`
    Port,
    /// `%d`
    Path,
}

/// A validated redirect URL template, e.g. `http://%h/new/%d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate {
    text: String,
    pieces: Vec<Piece>,
}

/// Why a URL template was refused: at byte `offset` of the template text, `expected` was
/// expected and `found` was found. [`fmt::Display`] prints `expected X, found Y`.
///
/// `offset` is always a char boundary of the text (`<= text.len()`), so `&text[..offset]` is
/// safe for computing a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError {
    /// Byte offset in the template text where the problem is.
    pub offset: usize,
    /// What would have been accepted there.
    pub expected: &'static str,
    /// What is there instead, quoted or described (`"'<'"`, `"space"`, `"end of URL"`, ...).
    pub found: String,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for UrlError {}

const EXPECT_SCHEME: &str = "`http://` or `https://`";
const EXPECT_HOST: &str = "host name, IP address or %h";
const EXPECT_AFTER_HOST: &str = "':', '/', '?', '#' or end of URL after the host";
const EXPECT_AFTER_PORT: &str = "'/', '?', '#' or end of URL after the port";
const EXPECT_PORT: &str = "port 1..=65535 or %s";
const EXPECT_PORT_RANGE: &str = "port 1..=65535";
const EXPECT_MACRO: &str = "macro %h, %s, %d, %% or a %XX escape";
const EXPECT_NO_HOST_MACRO: &str = "path character (%h is only allowed as the host)";
const EXPECT_NO_PATH_IN_FRAGMENT: &str = "fragment character (%d is not allowed in the fragment)";
const EXPECT_URL_CHAR: &str = "URL character (RFC 3986)";
const EXPECT_FRAGMENT_CHAR: &str = "fragment character (only one '#' allowed)";
const EXPECT_IPV6_CHAR: &str = "IPv6 address character or ']'";
const EXPECT_IPV6: &str = "IPv6 address";
const EXPECT_TOO_LONG: &str = "URL template of at most 1024 bytes";

/// What follows a `%` in a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Macro {
    Host,
    Port,
    Path,
    Percent,
    /// `%XX`, kept as it is.
    Escape,
}

impl Macro {
    /// Length in the template text, `%` included.
    fn len(self) -> usize {
        match self {
            Macro::Escape => 3,
            _ => 2,
        }
    }
}

/// Collects pieces, merging adjacent literals.
#[derive(Default)]
struct Builder {
    pieces: Vec<Piece>,
    lit: String,
}

impl Builder {
    fn lit(&mut self, s: &str) {
        self.lit.push_str(s);
    }

    fn push(&mut self, p: Piece) {
        self.flush();
        self.pieces.push(p);
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            let lit = std::mem::take(&mut self.lit);
            self.pieces.push(Piece::Lit(lit.into_boxed_str()));
        }
    }

    fn finish(mut self) -> Vec<Piece> {
        self.flush();
        self.pieces
    }
}

impl UrlTemplate {
    /// Parse and validate a template (see the module doc for the macros).
    ///
    /// Accepted: `http://` or `https://` (any case), then an authority: a host name, an IPv4
    /// address, a bracketed IPv6 address or `%h`, optionally followed by `:port` (1..=65535) or
    /// `:%s`; then optionally a path/query/fragment made of RFC 3986 characters (unreserved,
    /// sub-delims, `:`, `@`, `/`, `?`, one `#`) and `%` macros or `%XX` escapes. `%s` may also
    /// appear anywhere after the authority, `%d` in the path and the query (not the fragment),
    /// `%h` only as the host. At most [`MAX_TEMPLATE_LEN`] bytes.
    pub fn parse(s: &str) -> Result<UrlTemplate, UrlError> {
        let b = s.as_bytes();
        if b.len() > MAX_TEMPLATE_LEN {
            // The offset is kept on a char boundary so that callers may slice `s` with it.
            let mut offset = MAX_TEMPLATE_LEN;
            while !s.is_char_boundary(offset) {
                offset -= 1;
            }
            return Err(UrlError {
                offset,
                expected: EXPECT_TOO_LONG,
                found: format!("{} bytes", b.len()),
            });
        }
        let mut out = Builder::default();
        // The scheme is written lower case in redirects; `as_str` keeps the original text.
        let mut i = if starts_with_ci(b, b"http://") {
            out.lit("http://");
            7
        } else if starts_with_ci(b, b"https://") {
            out.lit("https://");
            8
        } else {
            return Err(UrlError {
                offset: 0,
                expected: EXPECT_SCHEME,
                found: found_scheme(s),
            });
        };

        i = parse_host(s, i, &mut out)?;
        if b.get(i) == Some(&b':') {
            out.lit(":");
            i = parse_port(s, i + 1, &mut out)?;
            if !matches!(b.get(i), None | Some(b'/' | b'?' | b'#')) {
                return Err(error_at(s, i, EXPECT_AFTER_PORT));
            }
        } else if !matches!(b.get(i), None | Some(b'/' | b'?' | b'#')) {
            return Err(error_at(s, i, EXPECT_AFTER_HOST));
        }

        // Path, query, fragment.
        let mut in_fragment = false;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let m = macro_at(s, i)?;
                    match m {
                        Macro::Host => {
                            return Err(UrlError {
                                offset: i,
                                expected: EXPECT_NO_HOST_MACRO,
                                found: "'%h'".to_string(),
                            })
                        }
                        Macro::Path if in_fragment => {
                            return Err(UrlError {
                                offset: i,
                                expected: EXPECT_NO_PATH_IN_FRAGMENT,
                                found: "'%d'".to_string(),
                            })
                        }
                        Macro::Path => out.push(Piece::Path),
                        Macro::Port => out.push(Piece::Port),
                        Macro::Percent => out.lit("%"),
                        Macro::Escape => out.lit(&s[i..i + 3]),
                    }
                    i += m.len();
                }
                b'#' if in_fragment => return Err(error_at(s, i, EXPECT_FRAGMENT_CHAR)),
                b'#' => {
                    in_fragment = true;
                    out.lit("#");
                    i += 1;
                }
                c if is_uri_char(c) => {
                    out.lit(&s[i..i + 1]);
                    i += 1;
                }
                _ => return Err(error_at(s, i, EXPECT_URL_CHAR)),
            }
        }
        Ok(UrlTemplate {
            text: s.to_string(),
            pieces: out.finish(),
        })
    }

    /// The original text, for `show config` and write-back.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template contains `%h`.
    pub fn uses_host(&self) -> bool {
        self.pieces.contains(&Piece::Host)
    }

    /// Whether the template contains `%s`.
    pub fn uses_port(&self) -> bool {
        self.pieces.contains(&Piece::Port)
    }

    /// Whether the template contains `%d`.
    pub fn uses_path(&self) -> bool {
        self.pieces.contains(&Piece::Path)
    }

    /// Upper bound of the expanded length given the lengths of the host, the port text and
    /// the path.
    ///
    /// `path_len` is the length of the raw request-target (or of the path taken from it);
    /// since [`expand`] may percent-encode every byte, each `%d` counts `3 * path_len`.
    /// Saturates instead of overflowing.
    pub fn expanded_len(&self, host_len: usize, port_len: usize, path_len: usize) -> usize {
        self.pieces.iter().fold(0usize, |n, p| {
            n.saturating_add(match p {
                Piece::Lit(l) => l.len(),
                Piece::Host => host_len,
                Piece::Port => port_len,
                Piece::Path => path_len.saturating_mul(3),
            })
        })
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for UrlTemplate {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UrlTemplate::parse(s)
    }
}

fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// RFC 3986 characters allowed literally after the authority, except `%` and `#`:
/// unreserved, sub-delims, `:`, `@`, `/`, `?`.
fn is_uri_char(c: u8) -> bool {
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

/// Describe the character at `i` for an error message.
fn describe(s: &str, i: usize) -> String {
    match s.as_bytes().get(i) {
        None => "end of URL".to_string(),
        Some(&c) if c >= 0x80 => match s.get(i..).and_then(|t| t.chars().next()) {
            Some(ch) => format!("non-ASCII character {ch:?}"),
            None => format!("non-ASCII byte 0x{c:02X}"),
        },
        Some(b' ') => "space".to_string(),
        Some(b'\t') => "tab".to_string(),
        Some(b'\r') => "carriage return (CR)".to_string(),
        Some(b'\n') => "line feed (LF)".to_string(),
        Some(&c) if c < 0x20 || c == 0x7f => format!("control byte 0x{c:02X}"),
        Some(&c) => format!("{:?}", c as char),
    }
}

fn error_at(s: &str, i: usize, expected: &'static str) -> UrlError {
    UrlError {
        offset: i,
        expected,
        found: describe(s, i),
    }
}

fn found_scheme(s: &str) -> String {
    if s.is_empty() {
        return "end of URL".to_string();
    }
    match s.find("://") {
        Some(p) if p <= 16 => format!("{:?}", &s[..p + 3]),
        _ => {
            let head: String = s.chars().take(16).collect();
            format!("{head:?}")
        }
    }
}

/// Classify the `%` at `i` (which must be a `%`), or the "bad macro" error.
fn macro_at(s: &str, i: usize) -> Result<Macro, UrlError> {
    let b = s.as_bytes();
    let next = b.get(i + 1).copied();
    match next {
        Some(b'h') => Ok(Macro::Host),
        Some(b's') => Ok(Macro::Port),
        Some(b'd') => Ok(Macro::Path),
        Some(b'%') => Ok(Macro::Percent),
        Some(c) if c.is_ascii_hexdigit() && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) => {
            Ok(Macro::Escape)
        }
        _ => {
            let found = match next {
                None => "'%' at end of URL".to_string(),
                Some(c) if c.is_ascii_graphic() => {
                    // `%X` followed by a non-hex byte: show the three bytes.
                    match b.get(i + 2) {
                        Some(&d) if c.is_ascii_hexdigit() && d.is_ascii_graphic() => {
                            format!("'%{}{}'", c as char, d as char)
                        }
                        _ => format!("'%{}'", c as char),
                    }
                }
                Some(_) => format!("'%' followed by {}", describe(s, i + 1)),
            };
            Err(UrlError {
                offset: i,
                expected: EXPECT_MACRO,
                found,
            })
        }
    }
}

/// Parse the host at `a`; return the offset after it.
fn parse_host(s: &str, a: usize, out: &mut Builder) -> Result<usize, UrlError> {
    let b = s.as_bytes();
    match b.get(a) {
        Some(b'%') => {
            let m = macro_at(s, a)?;
            if m == Macro::Host {
                out.push(Piece::Host);
                Ok(a + 2)
            } else {
                Err(UrlError {
                    offset: a,
                    expected: EXPECT_HOST,
                    found: format!("{:?}", &s[a..a + m.len()]),
                })
            }
        }
        Some(b'[') => {
            let mut j = a + 1;
            while j < b.len() && is_ipv6_char(b[j]) {
                j += 1;
            }
            if b.get(j) != Some(&b']') {
                return Err(error_at(s, j, EXPECT_IPV6_CHAR));
            }
            if !ipv6_ok(&b[a + 1..j]) {
                return Err(UrlError {
                    offset: a + 1,
                    expected: EXPECT_IPV6,
                    found: format!("{:?}", &s[a + 1..j]),
                });
            }
            out.lit(&s[a..=j]);
            Ok(j + 1)
        }
        _ => {
            let mut j = a;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b'.') {
                j += 1;
            }
            if j == a {
                return Err(error_at(s, a, EXPECT_HOST));
            }
            check_name(&b[a..j]).map_err(|(off, expected)| UrlError {
                offset: a + off,
                expected,
                found: format!("{:?}", &s[a..j]),
            })?;
            out.lit(&s[a..j]);
            Ok(j)
        }
    }
}

/// Parse the port at `p` (after the `:`); return the offset after it.
fn parse_port(s: &str, p: usize, out: &mut Builder) -> Result<usize, UrlError> {
    let b = s.as_bytes();
    if b.get(p) == Some(&b'%') {
        let m = macro_at(s, p)?;
        if m == Macro::Port {
            out.push(Piece::Port);
            return Ok(p + 2);
        }
        return Err(UrlError {
            offset: p,
            expected: EXPECT_PORT,
            found: format!("{:?}", &s[p..p + m.len()]),
        });
    }
    let mut j = p;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == p {
        return Err(error_at(s, p, EXPECT_PORT));
    }
    let digits = &s[p..j];
    match parse_port_digits(digits.as_bytes()) {
        Some(1..=65535) => {
            out.lit(digits);
            Ok(j)
        }
        _ => Err(UrlError {
            offset: p,
            expected: EXPECT_PORT_RANGE,
            found: format!("{digits:?}"),
        }),
    }
}

/// 1..=5 ASCII digits to their value (0..=99999); anything else is `None`.
fn parse_port_digits(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
}

fn is_ipv6_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// The inside of `[...]` is an IPv6 address (no zone identifier).
fn ipv6_ok(inner: &[u8]) -> bool {
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
fn check_name(name: &[u8]) -> Result<(), (usize, &'static str)> {
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

/// Why a redirect could not be rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// The request has a `Host` header that [`valid_host`] refuses (answer 400).
    BadHost,
    /// The template uses `%d` and the request-target is neither origin-form (`/...`), `*`,
    /// nor absolute-form `http(s)://host[/...]` (answer 400).
    BadPath,
    /// The response does not fit the buffer.
    TooLong,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RenderError::BadHost => "invalid Host header",
            RenderError::BadPath => "invalid request-target",
            RenderError::TooLong => "redirect does not fit the buffer",
        })
    }
}

impl std::error::Error for RenderError {}

/// What [`expand`] and [`render_redirect`] need to know about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Raw `Host` header value (whitespace around it stripped), unvalidated; `None` without
    /// a `Host` header.
    pub host: Option<&'a [u8]>,
    /// The virtual's IP address: the `%h` of a request without a `Host` header (an IPv6
    /// address in brackets).
    pub vip: IpAddr,
    /// The port the request arrived on: `%s`.
    pub port: u16,
    /// Raw request-target, e.g. `b"/a/b?x"`.
    pub target: &'a [u8],
    /// A HEAD request: the response has no body.
    pub head_only: bool,
}

/// Reason phrase of a redirect status code: 301 Moved Permanently, 302 Found, 303 See Other,
/// 307 Temporary Redirect, 308 Permanent Redirect; `""` for any other code.
pub fn reason(code: u16) -> &'static str {
    match code {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "",
    }
}

/// A writer over a caller's buffer: every write is bounds-checked, overflow is `TooLong`.
struct Cursor<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Cursor<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RenderError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(RenderError::TooLong)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(RenderError::TooLong)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Decimal text of `n` in `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The `%h` text: a validated Host or the VIP (dotted, or bracketed IPv6), without allocation.
enum HostText<'a> {
    Header(&'a [u8]),
    Vip([u8; 41], usize),
}

impl HostText<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            HostText::Header(h) => h,
            HostText::Vip(buf, len) => &buf[..*len],
        }
    }
}

/// A `fmt::Write` over a fixed array (the VIP's text; never longer than 41 bytes).
struct Fixed {
    buf: [u8; 41],
    len: usize,
}

impl std::fmt::Write for Fixed {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn vip_text(vip: IpAddr) -> HostText<'static> {
    use std::fmt::Write as _;
    let mut out = Fixed {
        buf: [0; 41],
        len: 0,
    };
    // At most 15 bytes (IPv4) or 2 + 39 (bracketed IPv6): the array always holds it.
    let _ = match vip {
        IpAddr::V4(a) => write!(out, "{a}"),
        IpAddr::V6(a) => write!(out, "[{a}]"),
    };
    HostText::Vip(out.buf, out.len)
}

/// The request-target's path for `%d`: leading `/` removed, fragment dropped.
///
/// origin-form `/p?q` -> `p?q`; `*` -> empty; absolute-form `http(s)://host/p?q` -> `p?q`,
/// `http://host?q` -> `?q`; anything else (authority-form, empty, other schemes) -> `None`.
fn request_path(target: &[u8]) -> Option<&[u8]> {
    let path = match target.first() {
        Some(b'/') => &target[1..],
        Some(b'*') if target.len() == 1 => &target[1..],
        _ => {
            let rest = if starts_with_ci(target, b"http://") {
                &target[7..]
            } else if starts_with_ci(target, b"https://") {
                &target[8..]
            } else {
                return None;
            };
            let end = rest
                .iter()
                .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            match rest.get(end) {
                Some(b'/') => &rest[end + 1..],
                _ => &rest[end..],
            }
        }
    };
    let end = path.iter().position(|&c| c == b'#').unwrap_or(path.len());
    Some(&path[..end])
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Copy `path`, percent-encoding (`%XX`, upper case) every byte outside RFC 3986's unreserved,
/// sub-delims, `:`, `@`, `/`, `?`; a `%` is copied only when it starts a valid `%XX` escape.
fn put_path(w: &mut Cursor<'_>, path: &[u8]) -> Result<(), RenderError> {
    let copy_ok = |i: usize| {
        let c = path[i];
        is_uri_char(c)
            || (c == b'%'
                && path.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && path.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    };
    let mut i = 0;
    while i < path.len() {
        let start = i;
        while i < path.len() && copy_ok(i) {
            i += 1;
        }
        w.put(&path[start..i])?;
        if let Some(&c) = path.get(i) {
            w.put(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]])?;
            i += 1;
        }
    }
    Ok(())
}

/// Everything taken from the request, validated.
struct Resolved<'a> {
    host: HostText<'a>,
    port: u16,
    path: &'a [u8],
}

/// Validate the request's parts. A present `Host` header is always checked, even when the
/// template has no `%h`; the target is checked only when the template has `%d`.
fn resolve<'a>(t: &UrlTemplate, req: &Request<'a>) -> Result<Resolved<'a>, RenderError> {
    let host = match req.host {
        Some(raw) => HostText::Header(valid_host(raw).ok_or(RenderError::BadHost)?),
        None => vip_text(req.vip),
    };
    let path = if t.uses_path() {
        request_path(req.target).ok_or(RenderError::BadPath)?
    } else {
        &[]
    };
    Ok(Resolved {
        host,
        port: req.port,
        path,
    })
}

fn put_expanded(t: &UrlTemplate, r: &Resolved<'_>, w: &mut Cursor<'_>) -> Result<(), RenderError> {
    let mut port_buf = [0u8; 20];
    let port = decimal(usize::from(r.port), &mut port_buf);
    for piece in &t.pieces {
        match piece {
            Piece::Lit(l) => w.put(l.as_bytes())?,
            Piece::Host => w.put(r.host.bytes())?,
            Piece::Port => w.put(port)?,
            Piece::Path => put_path(w, r.path)?,
        }
    }
    Ok(())
}

/// Expand the template for this request into `out`, return bytes written.
///
/// `%h` is `valid_host(req.host)` or, without a `Host` header, `req.vip` in dotted form; `%s`
/// is `req.port`; `%d` is the request path (see the module doc). Errors:
/// - [`RenderError::BadHost`] whenever `req.host` is `Some` and invalid, **even if the
///   template has no `%h`**: the caller's contract is that such a request is refused with 400.
///   Nothing is written to `out` then.
/// - [`RenderError::BadPath`] when the template uses `%d` and the target has no usable path
///   (nothing written).
/// - [`RenderError::TooLong`] when `out` is too small (its contents are then unspecified, but
///   hold only validated bytes).
pub fn expand(t: &UrlTemplate, req: &Request, out: &mut [u8]) -> Result<usize, RenderError> {
    let r = resolve(t, req)?;
    let mut w = Cursor::new(out);
    put_expanded(t, &r, &mut w)?;
    Ok(w.pos)
}

/// Length of `s` with `&`, `<`, `>`, `"` escaped as HTML entities.
fn html_escaped_len(s: &[u8]) -> usize {
    s.iter()
        .map(|&c| match c {
            b'&' => 5,
            b'<' | b'>' => 4,
            b'"' => 6,
            _ => 1,
        })
        .sum()
}

/// Write `s` with `&`, `<`, `>`, `"` escaped. Only `&` can occur in an expanded URL; the others
/// are escaped for defence in depth.
fn put_html(w: &mut Cursor<'_>, s: &[u8]) -> Result<(), RenderError> {
    for chunk in s.split_inclusive(|&c| matches!(c, b'&' | b'<' | b'>' | b'"')) {
        let (last, head) = match chunk.split_last() {
            Some(x) => (*x.0, x.1),
            None => continue,
        };
        let entity: &[u8] = match last {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            _ => {
                w.put(chunk)?;
                continue;
            }
        };
        w.put(head)?;
        w.put(entity)?;
    }
    Ok(())
}

const BODY_OPEN: &[u8] = b"<html><head><title>";
const BODY_TITLE_END: &[u8] = b"</title></head><body><a href=\"";
const BODY_HREF_END: &[u8] = b"\">";
const BODY_CLOSE: &[u8] = b"</a></body></html>\n";

/// Write the complete HTTP/1.1 response into `out` and return its length.
///
/// The response is exactly (CRLF line ends):
///
/// ```text
/// HTTP/1.1 <code> <reason>\r\n
/// Location: <url>\r\n
/// Server: detour\r\n
/// Connection: close\r\n
/// Content-Type: text/html\r\n
/// Content-Length: <n>\r\n
/// \r\n
/// <html><head><title><code> <reason></title></head><body><a href="<url with & as &amp;>"><code> <reason></a></body></html>\n
/// ```
///
/// where `<url>` is [`expand`]'s output and `<n>` the length of the last line (newline
/// included). For `req.head_only` the headers are the same (same `Content-Length`) and the body
/// is left out. A `code` that is not in [`REDIRECT_CODES`] renders as 302 Found. Errors as for
/// [`expand`]; `BadHost` and `BadPath` are reported before anything is written, whatever the
/// size of `out`. Never allocates, never panics.
pub fn render_redirect(
    t: &UrlTemplate,
    code: u16,
    req: &Request,
    out: &mut [u8],
) -> Result<usize, RenderError> {
    let r = resolve(t, req)?;
    let code = if is_redirect_code(code) {
        code
    } else {
        DEFAULT_REDIRECT_CODE
    };
    let reason = reason(code).as_bytes();
    let mut code_buf = [0u8; 20];
    let code_text = decimal(usize::from(code), &mut code_buf);

    let mut w = Cursor::new(out);
    w.put(b"HTTP/1.1 ")?;
    w.put(code_text)?;
    w.put(b" ")?;
    w.put(reason)?;
    w.put(b"\r\nLocation: ")?;
    let loc_start = w.pos;
    put_expanded(t, &r, &mut w)?;
    let loc_end = w.pos;
    w.put(
        b"\r\nServer: detour\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: ",
    )?;

    let status_len = code_text.len() + 1 + reason.len();
    let href_len = html_escaped_len(&w.buf[loc_start..loc_end]);
    let body_len = BODY_OPEN.len()
        + status_len
        + BODY_TITLE_END.len()
        + href_len
        + BODY_HREF_END.len()
        + status_len
        + BODY_CLOSE.len();
    let mut len_buf = [0u8; 20];
    w.put(decimal(body_len, &mut len_buf))?;
    w.put(b"\r\n\r\n")?;
    if req.head_only {
        return Ok(w.pos);
    }

    // The body's href is copied from the Location already written, so the URL is expanded
    // only once.
    let head_len = w.pos;
    let (head, rest) = w.buf.split_at_mut(head_len);
    let location = &head[loc_start..loc_end];
    let mut b = Cursor::new(rest);
    b.put(BODY_OPEN)?;
    b.put(code_text)?;
    b.put(b" ")?;
    b.put(reason)?;
    b.put(BODY_TITLE_END)?;
    put_html(&mut b, location)?;
    b.put(BODY_HREF_END)?;
    b.put(code_text)?;
    b.put(b" ")?;
    b.put(reason)?;
    b.put(BODY_CLOSE)?;
    debug_assert_eq!(b.pos, body_len);
    Ok(head_len + b.pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            assert!(
                got.ends_with(format!(">{code} {}</a></body></html>\n", reason(code)).as_bytes())
            );
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
}
