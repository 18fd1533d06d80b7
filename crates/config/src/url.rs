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

mod chars;
mod render;
mod template;

pub use chars::valid_host;
pub use render::{expand, reason, render_redirect, RenderError, Request};

#[cfg(test)]
mod tests;
