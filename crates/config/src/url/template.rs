//! Parsing and validating a URL template (`UrlTemplate::parse`): scheme, authority (host,
//! IPv4/IPv6 address or `%h`, port or `%s`), path/query/fragment and the macros, with errors
//! that name the byte offset, what was expected and what was found.

use super::chars::{
    check_name, ipv6_ok, is_ipv6_char, is_uri_char, parse_port_digits, starts_with_ci,
};
use super::{Piece, UrlError, UrlTemplate, MAX_TEMPLATE_LEN};
use std::fmt;
use std::str::FromStr;

pub(super) const EXPECT_SCHEME: &str = "`http://` or `https://`";
pub(super) const EXPECT_HOST: &str = "host name, IP address or %h";
pub(super) const EXPECT_AFTER_HOST: &str = "':', '/', '?', '#' or end of URL after the host";
pub(super) const EXPECT_AFTER_PORT: &str = "'/', '?', '#' or end of URL after the port";
pub(super) const EXPECT_PORT: &str = "port 1..=65535 or %s";
pub(super) const EXPECT_PORT_RANGE: &str = "port 1..=65535";
pub(super) const EXPECT_MACRO: &str = "macro %h, %s, %d, %% or a %XX escape";
pub(super) const EXPECT_NO_HOST_MACRO: &str = "path character (%h is only allowed as the host)";
pub(super) const EXPECT_NO_PATH_IN_FRAGMENT: &str =
    "fragment character (%d is not allowed in the fragment)";
pub(super) const EXPECT_URL_CHAR: &str = "URL character (RFC 3986)";
pub(super) const EXPECT_FRAGMENT_CHAR: &str = "fragment character (only one '#' allowed)";
pub(super) const EXPECT_IPV6_CHAR: &str = "IPv6 address character or ']'";
pub(super) const EXPECT_IPV6: &str = "IPv6 address";
pub(super) const EXPECT_TOO_LONG: &str = "URL template of at most 1024 bytes";

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

        parse_rest(s, i, &mut out)?;
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

/// The path, query and fragment from byte `i` to the end: URI characters, `%` escapes and
/// macros (`%s`, `%d` outside the fragment, `%%`), at most one `#`.
fn parse_rest(s: &str, mut i: usize, out: &mut Builder) -> Result<(), UrlError> {
    let b = s.as_bytes();
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
    Ok(())
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
