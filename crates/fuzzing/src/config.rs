//! Target `config`: the command language and its URL templates and macros.
//!
//! Input: a config text, optionally followed by a NUL byte and a request (`host` NUL `target`;
//! without a second NUL, no `Host` header and all of it the target). Invariants:
//! - the text loads to a model or to errors with positions (line, column >= 1), never a panic;
//! - an accepted model compiles to a snapshot, and the config it writes loads to the same model;
//! - every line that parses as a URL template, and every URL of the model, renders the
//!   request (and a few fixed ones) as a well-formed redirect whose `Location` is the
//!   expansion, made only of URI characters, within the template's `expanded_len` bound; an
//!   invalid `Host` is refused before anything else; a buffer one byte short is `TooLong`;
//! - a refused template names an offset within the text.

use crate::http::check_response;
use crate::worker::{find, is_uri_char};
use detour_config::url::{expand, render_redirect, valid_host, RenderError, Request, UrlTemplate};
use detour_config::{load_bytes, model::load, Snapshot};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lines tried as URL templates on their own, at most.
const MAX_TEMPLATE_LINES: usize = 16;

pub fn config(data: &[u8]) -> Result<(), String> {
    let (text, tail) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let mut requests: Vec<(Option<&[u8]>, &[u8])> = vec![
        (None, b"/a b/\x01\xff?x=1#f"),
        (Some(b"www.example:8080"), b"http://other.example/p?q"),
        (Some(b"[2001:db8::1]"), b"*"),
    ];
    if let Some(t) = tail {
        requests.push(match t.iter().position(|&b| b == 0) {
            Some(i) => (Some(&t[..i]), &t[i + 1..]),
            None => (None, t),
        });
    }
    let templates = model(text)?;
    let lines = text.split(|&b| b == b'\n').take(MAX_TEMPLATE_LINES);
    let parsed = lines.filter_map(|l| template(l).transpose());
    for t in templates.into_iter().map(Ok).chain(parsed) {
        let t = t?;
        for &(host, target) in &requests {
            render(&t, host, target)?;
        }
    }
    Ok(())
}

/// Load `text`; the templates of its URLs when accepted.
fn model(text: &[u8]) -> Result<Vec<UrlTemplate>, String> {
    match load_bytes(text, "fuzz") {
        Ok(m) => {
            let s = Snapshot::compile(&m, 1);
            let _ = s.table();
            let again = load(&m.to_config(), "again")
                .map_err(|e| format!("the written config is refused: {e:?}"))?;
            ensure!(again == m, "the written config loads to another model");
            Ok(m.urls.iter().map(|u| u.template.clone()).collect())
        }
        Err(errs) => {
            ensure!(!errs.is_empty(), "refused without an error");
            for e in errs {
                ensure!(e.line >= 1 && e.col >= 1, "error without a position: {e}");
            }
            Ok(Vec::new())
        }
    }
}

/// `line` as a template, if it parses; a refusal must point inside the text.
fn template(line: &[u8]) -> Result<Option<UrlTemplate>, String> {
    let Ok(s) = std::str::from_utf8(line) else {
        return Ok(None);
    };
    let s = s.trim();
    match UrlTemplate::parse(s) {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            ensure!(
                s.is_char_boundary(e.offset),
                "error offset {} outside {s:?}",
                e.offset
            );
            Ok(None)
        }
    }
}

/// Render one request with `t` (IPv4 and IPv6 VIP, GET and HEAD) and check the result.
fn render(t: &UrlTemplate, host: Option<&[u8]>, target: &[u8]) -> Result<(), String> {
    let vips = [
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    for (vip, head_only) in vips.into_iter().zip([false, true]) {
        let req = Request {
            host,
            vip,
            port: 8080,
            target,
            head_only,
        };
        render_one(t, &req)?;
    }
    Ok(())
}

fn render_one(t: &UrlTemplate, req: &Request) -> Result<(), String> {
    let mut url = vec![0u8; 16384];
    let r = expand(t, req, &mut url);
    let bad_host = req.host.is_some_and(|h| valid_host(h).is_none());
    ensure!(
        bad_host == (r == Err(RenderError::BadHost)),
        "Host {:?}: {r:?}",
        req.host
    );
    let Ok(n) = r else {
        return Ok(());
    };
    let url = &url[..n];
    ensure!(
        url.iter().all(|&b| is_uri_char(b)),
        "expansion {:?} of {t}",
        String::from_utf8_lossy(url)
    );
    let host_len = req.host.and_then(valid_host).map_or(41, <[u8]>::len);
    let bound = t.expanded_len(host_len, 5, req.target.len());
    ensure!(n <= bound, "expansion of {n} bytes over the bound {bound}");
    let mut out = vec![0u8; 32768];
    let len = render_redirect(t, 302, req, &mut out)
        .map_err(|e| format!("render failed after expand succeeded: {e}"))?;
    let resp = &out[..len];
    check_response(resp)?;
    let at = find(resp, b"\r\nLocation: ").ok_or("no Location")? + 12;
    ensure!(
        resp[at..].starts_with(url) && resp[at + n..].starts_with(b"\r\n"),
        "Location is not the expansion"
    );
    ensure!(
        req.head_only == resp.ends_with(b"\r\n\r\n"),
        "HEAD with a body, or GET without"
    );
    let mut short = vec![0u8; len - 1];
    let r = render_redirect(t, 302, req, &mut short);
    ensure!(r == Err(RenderError::TooLong), "one byte short gave {r:?}");
    Ok(())
}
