//! Rendering: [`expand`] a template for one [`Request`] and [`render_redirect`] the whole
//! HTTP response, into a caller's buffer, never allocating or panicking, client bytes only
//! after validation (the `Host`) or percent-encoding (the path).

use super::chars::{is_uri_char, starts_with_ci, valid_host};
use super::{is_redirect_code, Piece, UrlTemplate, DEFAULT_REDIRECT_CODE};
use std::fmt;
use std::net::IpAddr;

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
