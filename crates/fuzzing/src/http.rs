//! Target `http_head`: a request head of any bytes sent to the VIP after a valid cookie
//! handshake, in up to four segments (perhaps reordered, the last perhaps with FIN), through
//! one `Worker`, so the responder's head parser runs where it lives. Besides every invariant
//! of the worker targets, the answer must be one well-formed response: a redirect (status
//! 301/302/303/307/308, a `Location`, a `Content-Length` equal to the body, or no body for
//! HEAD) or one of the fixed statuses (400, 414, 431, 503) with an empty body.
//!
//! Input: byte 0 = flags (bit 0 IPv6, bit 1 FIN, bit 2 swap the first two pieces, bits 3-4 the
//! number of cuts), then the cut offsets (one byte each), then the head.

use crate::input::Input;
use crate::worker::{find, Run};

pub fn http_head(data: &[u8]) -> Result<(), String> {
    let mut input = Input::new(data);
    let bits = input.u8();
    let cuts: Vec<usize> = (0..(bits >> 3) % 4)
        .map(|_| usize::from(input.u8()))
        .collect();
    let head = input.rest();
    let mut r = Run::new(bits & 1 != 0);
    r.handshake(1, 40000, head, &cuts, bits & 4 != 0, bits & 2 != 0)?;
    r.check_tables()?;
    for a in &r.answers {
        check_response(a)?;
    }
    Ok(())
}

/// One response of the responder, whole in one segment.
pub fn check_response(resp: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(resp);
    let end = find(resp, b"\r\n\r\n").ok_or_else(|| format!("no end of head in {text:?}"))?;
    let (head, body) = (&resp[..end + 2], &resp[end + 4..]);
    ensure!(
        resp.starts_with(b"HTTP/1.1 ") && resp.len() >= 12,
        "status line of {text:?}"
    );
    let code = &resp[9..12];
    let length = header(head, b"Content-Length")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
        .ok_or_else(|| format!("no Content-Length in {text:?}"))?;
    match code {
        b"301" | b"302" | b"303" | b"307" | b"308" => {
            ensure!(
                header(head, b"Location").is_some(),
                "a redirect without Location: {text:?}"
            );
            ensure!(
                body.is_empty() || body.len() == length,
                "Content-Length {length} for a body of {}",
                body.len()
            );
        }
        b"400" | b"414" | b"431" | b"503" => {
            ensure!(length == 0 && body.is_empty(), "a status with a body")
        }
        _ => return Err(format!("status {text:?}")),
    }
    Ok(())
}

/// The value of header `name` in `head` (status line and header lines, CRLF-terminated).
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let rest = line.strip_prefix(name)?;
        rest.strip_prefix(b": ")
    })
}
