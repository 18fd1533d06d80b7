//! The parsers of the command language: one per verb (the table in [`crate::commands`]
//! names which), each reading its arguments from a [`Cursor`] after the verb's words, and
//! the token parsers they share (addresses, ids, numbers, durations, hex).

use crate::error::{quoted, LineError};
use crate::lang::{
    Command, Cursor, HealthCheck, HealthKind, Kind, Ref, Removable, Role, State, Token,
    DEFAULT_PORT, MAX_ID, MAX_WEIGHT,
};
use crate::predictor::Predictor;
use crate::url::{UrlTemplate, REDIRECT_CODES};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Port of a `tls` virtual given without one.
pub const TLS_PORT: u16 = 443;

/// `virtual <ip>[:port] [tls]`.
pub(crate) fn virtual_(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next(ADDR)?;
    let mut addr = sock_addr(&t)?;
    let tls = c.eat("tls");
    if tls && !has_port(t.text) {
        addr.set_port(TLS_PORT);
    }
    Ok(Command::Virtual {
        addr,
        col: t.col,
        tls,
    })
}

/// `real <ip>[:port]`.
pub(crate) fn real(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next(ADDR)?;
    Ok(Command::Real {
        addr: sock_addr(&t)?,
        col: t.col,
    })
}

pub(crate) fn link(c: &mut Cursor) -> Result<Command, LineError> {
    let url = c.reference("a url id")?;
    let target = c.reference("a virtual or real id")?;
    Ok(Command::Link { url, target })
}

pub(crate) fn backup(c: &mut Cursor, no: bool) -> Result<Command, LineError> {
    let of = c.reference("a real or virtual id")?;
    let backup = if !no {
        Some(c.reference("a backup id (real, virtual or url)")?)
    } else if c.peek().is_some() {
        Some(c.reference("a backup id")?)
    } else {
        None
    };
    Ok(Command::Backup { no, of, backup })
}

pub(crate) fn remove(c: &mut Cursor, kind: Removable) -> Result<Command, LineError> {
    let what = match kind {
        Removable::Url => "a url id",
        Removable::Real => "a real id",
        Removable::Virtual => "a virtual id",
        Removable::Dip => "a DIP address",
    };
    Ok(Command::Remove {
        kind,
        id: c.reference(what)?,
    })
}

pub(crate) fn in_service(c: &mut Cursor) -> Result<Command, LineError> {
    let kind = kind(c)?;
    let id = c.reference("an id")?;
    let all = c.eat("all");
    Ok(Command::InService { kind, id, all })
}

pub(crate) fn out_of_service(c: &mut Cursor) -> Result<Command, LineError> {
    let kind = kind(c)?;
    let id = c.reference("an id")?;
    let mut state = State::Oos;
    if let Some(t) = c.peek() {
        let s = match t.text.to_ascii_lowercase().as_str() {
            "oos" => Some(State::Oos),
            "maintenance" => Some(State::Maintenance),
            "sticky" => Some(State::Sticky),
            "failed" => Some(State::Failed),
            "all" => None,
            _ => {
                return Err(LineError::new(
                    t.col,
                    "`oos`, `maintenance`, `sticky`, `failed` or `all`",
                    quoted(t.text),
                ))
            }
        };
        if let Some(s) = s {
            state = s;
            c.pos += 1;
        }
    }
    let all = c.eat("all");
    Ok(Command::OutOfService {
        kind,
        id,
        state,
        all,
    })
}

pub(crate) fn weight(c: &mut Cursor) -> Result<Command, LineError> {
    let id = c.reference("a real or url id")?;
    let t = c.next("a weight (0 to 1000)")?;
    let weight = number(&t, 0, MAX_WEIGHT as u64, "a weight (0 to 1000)")? as u32;
    Ok(Command::Weight { id, weight })
}

pub(crate) fn predictor(c: &mut Cursor) -> Result<Command, LineError> {
    let virt = c.reference("a virtual id")?;
    let t = c.next("`roundrobin`, `weighted`, `leastconns` or `hash`")?;
    let predictor = Predictor::from_keyword(&t.text.to_ascii_lowercase()).ok_or_else(|| {
        LineError::new(
            t.col,
            "`roundrobin`, `weighted`, `leastconns` or `hash`",
            quoted(t.text),
        )
    })?;
    Ok(Command::Predictor { virt, predictor })
}

pub(crate) fn cookie_secret(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("64 hex digits")?;
    Ok(Command::CookieSecret { secret: hex32(&t)? })
}

pub(crate) fn interface(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("`client` or `server`")?;
    let role = match t.text.to_ascii_lowercase().as_str() {
        "client" => Role::Client,
        "server" => Role::Server,
        _ => {
            return Err(LineError::new(
                t.col,
                "`client` or `server`",
                quoted(t.text),
            ))
        }
    };
    let n = c.next("an interface name")?;
    if n.text.len() > 15
        || !n
            .text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(LineError::new(
            n.col,
            "an interface name (at most 15 letters, digits, `-`, `_`, `.`)",
            quoted(n.text),
        ));
    }
    let mut queues = 1;
    if c.eat("queues") {
        let q = c.next("a queue count (1 to 64)")?;
        queues = number(&q, 1, 64, "a queue count (1 to 64)")? as u16;
    }
    Ok(Command::Interface {
        role,
        name: n.text.to_string(),
        queues,
    })
}

pub(crate) fn cores(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("a list of core numbers like `0,1`")?;
    let mut cores = Vec::new();
    let mut col = t.col;
    for part in t.text.split(',') {
        let p = Token { text: part, col };
        let n = number(&p, 0, 4095, "a core number")? as usize;
        if cores.contains(&n) {
            return Err(LineError::new(
                col,
                "each core once",
                format!("core {n} again"),
            ));
        }
        cores.push(n);
        col += part.len() + 1;
    }
    Ok(Command::Cores { cores })
}

pub(crate) fn gateway(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("the IPv4 address of the client-side next hop")?;
    match sock_addr(&t).map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) if !t.text.contains(':') => Ok(Command::Gateway { addr: ip }),
        Err(e) if !looks_like_addr(t.text) => Err(LineError::new(
            e.col,
            "an IPv4 address without a port",
            quoted(t.text),
        )),
        Err(e) => Err(e),
        Ok(_) => Err(LineError::new(
            t.col,
            "an IPv4 address without a port",
            quoted(t.text),
        )),
    }
}

pub(crate) fn metrics(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("a loopback address and port like `127.0.0.1:9100`")?;
    let addr: SocketAddr = t.text.parse().map_err(|_| {
        LineError::new(
            t.col,
            "a loopback address and port like `127.0.0.1:9100`",
            quoted(t.text),
        )
    })?;
    if !addr.ip().is_loopback() || addr.port() == 0 {
        return Err(LineError::new(
            t.col,
            "a loopback address with a port (metrics are not served off the machine)",
            quoted(t.text),
        ));
    }
    Ok(Command::Metrics { addr })
}

pub(crate) fn dip(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next(ADDR)?;
    let addr = sock_addr(&t)?;
    let real = if c.eat("real") {
        Some(sock_addr(&c.next(ADDR)?)?)
    } else {
        None
    };
    Ok(Command::Dip {
        addr,
        real,
        col: t.col,
    })
}

pub(crate) fn url(c: &mut Cursor) -> Result<Command, LineError> {
    let id_tok = c.next("a url id")?;
    let id = url_id(&id_tok)?;
    let t = c.next("a URL like `http://coyote.acme.com/%d`")?;
    let template = UrlTemplate::parse(t.text).map_err(|e| {
        LineError::new(
            t.col + t.text[..e.offset.min(t.text.len())].chars().count(),
            e.expected,
            e.found,
        )
    })?;
    let mut code = 302;
    if let Some(ct) = c.peek().cloned() {
        let expected = "a redirect code (301, 302, 303, 307 or 308)";
        let n = number(&ct, 0, 999, expected)? as u16;
        if !REDIRECT_CODES.contains(&n) {
            return Err(LineError::new(ct.col, expected, quoted(ct.text)));
        }
        code = n;
        c.pos += 1;
    }
    Ok(Command::Url { id, template, code })
}

pub(crate) fn bind(c: &mut Cursor, no: bool) -> Result<Command, LineError> {
    let virt = c.reference("a virtual id")?;
    let mut members = vec![c.reference("a real or url id")?];
    while c.peek().is_some() {
        // The seed writes the list with optional `|` separators.
        if c.eat("|") {
            members.push(c.reference("a real or url id")?);
            continue;
        }
        members.push(c.reference("a real or url id")?);
    }
    Ok(Command::Bind { no, virt, members })
}

pub(crate) fn kind(c: &mut Cursor) -> Result<Kind, LineError> {
    let t = c.next("`virtual`, `real` or `url`")?;
    match t.text.to_ascii_lowercase().as_str() {
        "virtual" => Ok(Kind::Virtual),
        "real" => Ok(Kind::Real),
        "url" => Ok(Kind::Url),
        _ => Err(LineError::new(
            t.col,
            "`virtual`, `real` or `url`",
            quoted(t.text),
        )),
    }
}

pub(crate) fn health_check(c: &mut Cursor) -> Result<Command, LineError> {
    let target = c.reference("a real id or `all`")?;
    let t = c.next("`none`, `tcp` or `http`")?;
    let mut check = HealthCheck::default();
    let mut path = None;
    let mut expect = None;
    check.kind = match t.text.to_ascii_lowercase().as_str() {
        "none" => HealthKind::None,
        "tcp" => HealthKind::Tcp,
        "http" => HealthKind::Http {
            path: String::new(),
            expect: 200,
        },
        _ => {
            return Err(LineError::new(
                t.col,
                "`none`, `tcp` or `http`",
                quoted(t.text),
            ))
        }
    };
    while let Some(k) = c.peek().cloned() {
        c.pos += 1;
        let key = k.text.to_ascii_lowercase();
        let expected_key = "`path`, `expect`, `interval`, `timeout`, `rise` or `fall`";
        match key.as_str() {
            "path" | "expect" if !matches!(check.kind, HealthKind::Http { .. }) => {
                return Err(LineError::new(
                    k.col,
                    "a setting of a tcp check (`interval`, `timeout`, `rise`, `fall`)",
                    quoted(k.text),
                ))
            }
            "path" => {
                let v = c.next("a path starting with `/`")?;
                if !v.text.starts_with('/') || v.text.len() > 1024 {
                    return Err(LineError::new(
                        v.col,
                        "a path starting with `/`",
                        quoted(v.text),
                    ));
                }
                path = Some(v.text.to_string());
            }
            "expect" => {
                let v = c.next("an HTTP status (100 to 599)")?;
                expect = Some(number(&v, 100, 599, "an HTTP status (100 to 599)")? as u16);
            }
            "interval" => check.interval = duration(&c.next("a duration like `2s` or `500ms`")?)?,
            "timeout" => check.timeout = duration(&c.next("a duration like `1s` or `500ms`")?)?,
            "rise" => {
                check.rise =
                    number(&c.next("a count (1 to 100)")?, 1, 100, "a count (1 to 100)")? as u32
            }
            "fall" => {
                check.fall =
                    number(&c.next("a count (1 to 100)")?, 1, 100, "a count (1 to 100)")? as u32
            }
            _ => return Err(LineError::new(k.col, expected_key, quoted(k.text))),
        }
    }
    if let HealthKind::Http { path: p, expect: e } = &mut check.kind {
        *p = path.unwrap_or_else(|| "/".to_string());
        *e = expect.unwrap_or(200);
    }
    if check.timeout > check.interval {
        return Err(LineError::new(
            t.col,
            "a timeout no longer than the interval",
            format!(
                "timeout {:?} > interval {:?}",
                check.timeout, check.interval
            ),
        ));
    }
    Ok(Command::HealthCheck { target, check })
}

/// What an address token is described as in errors.
pub(crate) const ADDR: &str =
    "an address with optional port (`a.b.c.d[:port]`, `[v6][:port]` or bare `v6`)";

/// `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port` or a bare `v6` (port 1..=65535, default
/// 80). Unspecified, broadcast and multicast addresses are refused, and so are IPv4-mapped
/// IPv6 addresses (write the IPv4 address).
pub fn sock_addr(t: &Token) -> Result<SocketAddr, LineError> {
    let bad = || LineError::new(t.col, ADDR, quoted(t.text));
    let (ip, port): (IpAddr, Option<&str>) = if let Some(rest) = t.text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (IpAddr::V6(ip.parse::<Ipv6Addr>().map_err(|_| bad())?), port)
    } else if t.text.bytes().filter(|&b| b == b':').count() > 1 {
        (
            IpAddr::V6(t.text.parse::<Ipv6Addr>().map_err(|_| bad())?),
            None,
        )
    } else {
        let (ip, port) = match t.text.split_once(':') {
            Some((ip, port)) => (ip, Some(port)),
            None => (t.text, None),
        };
        (IpAddr::V4(ip.parse::<Ipv4Addr>().map_err(|_| bad())?), port)
    };
    let unusable = match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some(),
    };
    if unusable {
        return Err(LineError::new(t.col, "a unicast address", quoted(t.text)));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => {
            let pt = Token {
                text: p,
                col: t.col + t.text.len() - p.len(),
            };
            number(&pt, 1, 65535, "a port (1 to 65535)")? as u16
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// True when an address token names its port (`a.b.c.d:port`, `[v6]:port`; a bare IPv6
/// address never does).
fn has_port(text: &str) -> bool {
    if text.starts_with('[') {
        text.contains("]:")
    } else {
        text.bytes().filter(|&b| b == b':').count() == 1
    }
}

/// True when a token is written as an address (a digit first, a `[`, or a `:` anywhere;
/// ids of urls hold none of these).
pub fn looks_like_addr(text: &str) -> bool {
    text.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'[')
        || text.contains(':')
}

/// Parse a token that may be an address; `None` when it is not written as one.
pub fn maybe_addr(text: &str) -> Option<SocketAddr> {
    if looks_like_addr(text) {
        sock_addr(&Token { text, col: 1 }).ok()
    } else {
        None
    }
}

pub(crate) fn url_id(t: &Token) -> Result<Ref, LineError> {
    let ok = t.text.len() <= MAX_ID
        && t.text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
        && t.text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok || t.text.eq_ignore_ascii_case("all") {
        return Err(LineError::new(
            t.col,
            format!(
                "a url id (a letter, then up to {} letters, digits, `-`, `_`, `.`)",
                MAX_ID - 1
            ),
            quoted(t.text),
        ));
    }
    Ok(Ref {
        text: t.text.to_string(),
        col: t.col,
    })
}

pub(crate) fn number(t: &Token, min: u64, max: u64, expected: &str) -> Result<u64, LineError> {
    let err = || LineError::new(t.col, expected, quoted(t.text));
    if t.text.is_empty() || t.text.len() > 10 || !t.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: u64 = t.text.parse().map_err(|_| err())?;
    if n < min || n > max {
        return Err(err());
    }
    Ok(n)
}

pub(crate) fn duration(t: &Token) -> Result<Duration, LineError> {
    let expected = "a duration like `2s` or `500ms` (10ms to 1h)";
    let (num, unit_ms) = if let Some(n) = t.text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.text.strip_suffix('s') {
        (n, 1000)
    } else {
        return Err(LineError::new(t.col, expected, quoted(t.text)));
    };
    let n = number(
        &Token {
            text: num,
            col: t.col,
        },
        0,
        3_600_000,
        expected,
    )?;
    let ms = n * unit_ms;
    if !(10..=3_600_000).contains(&ms) {
        return Err(LineError::new(t.col, expected, quoted(t.text)));
    }
    Ok(Duration::from_millis(ms))
}

pub(crate) fn hex32(t: &Token) -> Result<[u8; 32], LineError> {
    let b = t.text.as_bytes();
    if b.len() != 64 {
        return Err(LineError::new(
            t.col,
            "64 hex digits (a 32-byte secret)",
            format!("{} characters", b.len()),
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16);
        let lo = (pair[1] as char).to_digit(16);
        match (hi, lo) {
            (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
            _ => {
                let bad = if hi.is_none() { 2 * i } else { 2 * i + 1 };
                return Err(LineError::new(
                    t.col + bad,
                    "a hex digit",
                    quoted(&(b[bad] as char).to_string()),
                ));
            }
        }
    }
    Ok(out)
}
