//! The HTTP side of the responder: parse a request head (httparse), pick a URL with the
//! virtual's predictor, and render the redirect into the response buffer, or choose the
//! fixed status response that answers a head that cannot be redirected.

use super::choose;
use crate::frame::{Ctx, Net, Tcp};
use crate::wire::tcp::Flags;
use detour_config::predictor::PickState;
use detour_config::url::{render_redirect, RenderError, Request};
use detour_config::Action;

/// Longest request head collected over several segments; past it the client gets 431.
pub const MAX_HEAD: usize = 4096;
/// Most headers in a request head.
const MAX_HEADERS: usize = 32;

pub(super) const RESP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
pub(super) const RESP_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
pub(super) const RESP_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
pub(super) const RESP_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: detour\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// How a complete (or hopeless) head is answered.
pub(super) enum Outcome {
    /// `out[..len]` holds the redirect to URL `url`.
    Redirect { url: u32, len: usize },
    /// A fixed response.
    Status(&'static [u8]),
}

/// Answer the head `head` of segment `t` for `action`, rendering a redirect into `out`.
/// `None` while the head is incomplete and may still grow.
pub(super) fn answer<I: Net>(
    cx: &mut Ctx,
    t: &Tcp<I>,
    action: Action,
    (picks, conns): (&mut [PickState], &[u32]),
    head: &[u8],
    out: &mut [u8],
) -> Option<Outcome> {
    let n = head.len();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let c = &mut *cx.c;
    let status: &'static [u8] = match req.parse(head) {
        Ok(httparse::Status::Partial) if n < MAX_HEAD && !t.has(Flags::FIN) => return None,
        Ok(httparse::Status::Partial) if n < MAX_HEAD => {
            // The client closed before finishing its head.
            c.bad_requests += 1;
            RESP_400
        }
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            c.too_large += 1;
            RESP_431
        }
        Err(_) => {
            c.bad_requests += 1;
            RESP_400
        }
        Ok(httparse::Status::Complete(_)) => {
            let client = t.ip.hosts().0;
            let Some(u) = choose(cx.snap, picks, conns, action, client) else {
                c.unavailable += 1;
                return Some(Outcome::Status(RESP_503));
            };
            let url = &cx.snap.urls[u as usize];
            let host = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| h.value);
            let r = Request {
                host,
                vip: t.ip.dst_ip(),
                port: t.dport,
                target: req.path.unwrap_or("/").as_bytes(),
                head_only: req.method == Some("HEAD"),
            };
            match render_redirect(&url.template, url.code, &r, out) {
                Ok(len) => {
                    c.redirects += 1;
                    return Some(Outcome::Redirect { url: u, len });
                }
                Err(RenderError::TooLong) => {
                    c.uri_too_long += 1;
                    RESP_414
                }
                Err(RenderError::BadHost | RenderError::BadPath) => {
                    c.bad_requests += 1;
                    RESP_400
                }
            }
        }
    };
    Some(Outcome::Status(status))
}
