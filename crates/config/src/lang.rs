//! The command language: one command per line, the seed's syntax plus documented extensions.
//!
//! This module is syntax only: it turns a line into a [`Command`], checking the shape of
//! every token (addresses, ports, codes, URL templates, numbers). Whether the ids a command
//! names exist is the model's business ([`crate::model`]).
//!
//! Lexing: tokens are separated by spaces or tabs; a token starting with `#` or `!` begins
//! a comment that runs to the end of the line; command words are case-insensitive (the seed
//! writes both `url` and `URL`); only printable ASCII is allowed outside comments.

use crate::error::{quoted, LineError};
use crate::predictor::Predictor;
use crate::url::{UrlTemplate, REDIRECT_CODES};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 8192;
/// Longest URL id (the seed's `uchar name[40]`).
pub const MAX_ID: usize = 40;
pub use crate::predictor::MAX_WEIGHT;
/// Port assumed when an address is written without one.
pub const DEFAULT_PORT: u16 = 80;

/// A token of a line, with its 1-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a str,
    pub col: usize,
}

/// A reference to an object by id, as written, with its column for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub text: String,
    pub col: usize,
}

/// Service states of the seed; DESIGN.md section 1 is the contract for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    InService,
    /// Draining: no new redirects; traffic to its DIP still forwarded.
    Sticky,
    /// Out of service (the default of `out-of-service`).
    Oos,
    Maintenance,
    /// Set by health checks (or by hand).
    Failed,
}

impl State {
    pub fn keyword(self) -> &'static str {
        match self {
            State::InService => "in-service",
            State::Sticky => "sticky",
            State::Oos => "oos",
            State::Maintenance => "maintenance",
            State::Failed => "failed",
        }
    }
    /// Takes new redirects (and new flows sent to it as someone's backup).
    pub fn takes_new(self) -> bool {
        self == State::InService
    }
    /// Traffic to its DIP is forwarded to it.
    pub fn forwards(self) -> bool {
        matches!(self, State::InService | State::Sticky)
    }
    /// The more restrictive of two states (a linked URL is as down as either of its parts).
    pub fn worst(self, other: State) -> State {
        self.max(other)
    }
}

/// Kind of object named by `in-service` / `out-of-service`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Virtual,
    Real,
    Url,
}

impl Kind {
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Virtual => "virtual",
            Kind::Real => "real",
            Kind::Url => "url",
        }
    }
}

/// Health check of a real, run by the control thread through the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a failed real back.
    pub rise: u32,
    /// Consecutive failures that mark a real failed.
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthKind {
    None,
    Tcp,
    Http { path: String, expect: u16 },
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthKind::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// Which side of the director an interface faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `virtual <ip>[:port]`: a primary virtual server.
    Virtual { addr: SocketAddrV4, col: usize },
    /// `real <ip>[:port]`: a real server.
    Real { addr: SocketAddrV4, col: usize },
    /// `dip <ip>[:port] [real <ip>[:port]]` (also `direct-ip`, `direct - ip`): a secondary
    /// virtual paired 1-to-1 with a real at the same address, or at `real` (NAT case).
    Dip {
        addr: SocketAddrV4,
        real: Option<SocketAddrV4>,
        /// Column of the address, for errors found by the model.
        col: usize,
    },
    /// `url <id> <url_string> [code]`.
    Url {
        id: Ref,
        template: UrlTemplate,
        code: u16,
    },
    /// `[no] bind <virtual_id> <real_id|url_id> ...`.
    Bind {
        no: bool,
        virt: Ref,
        members: Vec<Ref>,
    },
    /// `link <url_id> <virtual_id|real_id>`.
    Link { url: Ref, target: Ref },
    /// `[no] backup <real_id|virtual_id> <backup_id>` (`no backup <id>` alone also clears).
    Backup {
        no: bool,
        of: Ref,
        backup: Option<Ref>,
    },
    /// `in-service virtual|real|url <id> [all]`.
    InService { kind: Kind, id: Ref, all: bool },
    /// `out-of-service virtual|real|url <id> [oos|maintenance|sticky|failed] [all]`.
    OutOfService {
        kind: Kind,
        id: Ref,
        state: State,
        all: bool,
    },
    /// `weight <real_id|url_id> <0..=1000>`.
    Weight { id: Ref, weight: u32 },
    /// `predictor <virtual_id> roundrobin|weighted|leastconns|hash`.
    Predictor { virt: Ref, predictor: Predictor },
    /// `health-check <real_id|all> none|tcp|http [path P] [expect N] [interval D] [timeout D] [rise N] [fall N]`.
    HealthCheck { target: Ref, check: HealthCheck },
    /// `cookie-secret <64 hex digits>`.
    CookieSecret { secret: [u8; 32] },
    /// `interface client|server <name> [queues N]`.
    Interface {
        role: Role,
        name: String,
        queues: u16,
    },
    /// `cores <n>[,<n>...]`.
    Cores { cores: Vec<usize> },
    /// `metrics <loopback ip>:<port>`.
    Metrics { addr: SocketAddr },
    /// `gateway <ip>`: the client-side next hop, whose MAC replies to clients are sent to.
    Gateway { addr: Ipv4Addr },
    /// `no url|real|dip|virtual <id>`: remove an object nothing else refers to.
    Remove { kind: Removable, id: Ref },
}

/// What `no <kind> <id>` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removable {
    Url,
    Real,
    Dip,
    Virtual,
}

/// Split a line into tokens, dropping a trailing comment.
pub fn tokenize(line: &str) -> Result<Vec<Token<'_>>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::new(
            1,
            format!("a line of at most {MAX_LINE} bytes"),
            format!("{} bytes", line.len()),
        ));
    }
    let mut out = Vec::new();
    let mut start = None;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        let sep = matches!(b, None | Some(b' ') | Some(b'\t') | Some(b'\r'));
        match (start, sep) {
            (None, false) => {
                if b == Some(b'#') || b == Some(b'!') {
                    break;
                }
                start = Some(i);
            }
            (Some(s), true) => {
                out.push(token(line, s, i)?);
                start = None;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(out)
}

fn token(line: &str, s: usize, e: usize) -> Result<Token<'_>, LineError> {
    let col = line[..s].chars().count() + 1;
    // Byte positions s and e are at ASCII separators or the ends, so slicing is safe.
    let text = &line[s..e];
    if let Some((off, ch)) = text.char_indices().find(|&(_, c)| !c.is_ascii_graphic()) {
        return Err(LineError::new(
            col + text[..off].chars().count(),
            "printable ASCII",
            quoted(&ch.to_string()),
        ));
    }
    Ok(Token { text, col })
}

struct Cursor<'a, 't> {
    toks: &'t [Token<'a>],
    pos: usize,
    /// Column just past the last token, for "found end of line".
    end_col: usize,
}

impl<'a> Cursor<'a, '_> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.pos)
    }
    fn next(&mut self, expected: &str) -> Result<Token<'a>, LineError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(LineError::new(self.end_col, expected, "end of line")),
        }
    }
    fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(t) if t.text.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
    fn finish(&self) -> Result<(), LineError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(LineError::new(t.col, "end of line", quoted(t.text))),
        }
    }
    fn reference(&mut self, expected: &str) -> Result<Ref, LineError> {
        let t = self.next(expected)?;
        Ok(Ref {
            text: t.text.to_string(),
            col: t.col,
        })
    }
}

/// Parse one line. `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Command>, LineError> {
    let toks = tokenize(line)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let end_col = line.trim_end().chars().count() + 1;
    let mut c = Cursor {
        toks: &toks,
        pos: 0,
        end_col,
    };
    let head = c.next("a command")?;
    let word = head.text.to_ascii_lowercase();
    let cmd = match word.as_str() {
        "virtual" => {
            let t = c.next("an IPv4 address with optional :port")?;
            Command::Virtual {
                addr: sock_addr(&t)?,
                col: t.col,
            }
        }
        "real" => {
            let t = c.next("an IPv4 address with optional :port")?;
            Command::Real {
                addr: sock_addr(&t)?,
                col: t.col,
            }
        }
        "dip" | "direct-ip" => dip(&mut c)?,
        "direct" => {
            // The seed's spelling `direct - ip`.
            if !(c.eat("-") && c.eat("ip")) {
                let t = c.peek().cloned();
                return Err(match t {
                    Some(t) => {
                        LineError::new(t.col, "`- ip` (as in `direct - ip`)", quoted(t.text))
                    }
                    None => LineError::new(end_col, "`- ip` (as in `direct - ip`)", "end of line"),
                });
            }
            dip(&mut c)?
        }
        "url" => url(&mut c)?,
        "bind" => bind(&mut c, false)?,
        "link" => {
            let url = c.reference("a url id")?;
            let target = c.reference("a virtual or real id")?;
            Command::Link { url, target }
        }
        "backup" => {
            let of = c.reference("a real or virtual id")?;
            let backup = Some(c.reference("a backup id (real, virtual or url)")?);
            Command::Backup {
                no: false,
                of,
                backup,
            }
        }
        "no" => {
            let t = c.next("`bind`, `backup`, `url`, `real`, `dip` or `virtual`")?;
            match t.text.to_ascii_lowercase().as_str() {
                "bind" => bind(&mut c, true)?,
                "url" => Command::Remove {
                    kind: Removable::Url,
                    id: c.reference("a url id")?,
                },
                "real" => Command::Remove {
                    kind: Removable::Real,
                    id: c.reference("a real id")?,
                },
                "virtual" => Command::Remove {
                    kind: Removable::Virtual,
                    id: c.reference("a virtual id")?,
                },
                "dip" | "direct-ip" => Command::Remove {
                    kind: Removable::Dip,
                    id: c.reference("a DIP address")?,
                },
                "backup" => {
                    let of = c.reference("a real or virtual id")?;
                    let backup = if c.peek().is_some() {
                        Some(c.reference("a backup id")?)
                    } else {
                        None
                    };
                    Command::Backup {
                        no: true,
                        of,
                        backup,
                    }
                }
                _ => {
                    return Err(LineError::new(
                        t.col,
                        "`bind`, `backup`, `url`, `real`, `dip` or `virtual` after `no`",
                        quoted(t.text),
                    ))
                }
            }
        }
        "in-service" => {
            let kind = kind(&mut c)?;
            let id = c.reference("an id")?;
            let all = c.eat("all");
            Command::InService { kind, id, all }
        }
        "out-of-service" => {
            let kind = kind(&mut c)?;
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
            Command::OutOfService {
                kind,
                id,
                state,
                all,
            }
        }
        "weight" => {
            let id = c.reference("a real or url id")?;
            let t = c.next("a weight (0 to 1000)")?;
            let weight = number(&t, 0, MAX_WEIGHT as u64, "a weight (0 to 1000)")? as u32;
            Command::Weight { id, weight }
        }
        "predictor" => {
            let virt = c.reference("a virtual id")?;
            let t = c.next("`roundrobin`, `weighted`, `leastconns` or `hash`")?;
            let predictor =
                Predictor::from_keyword(&t.text.to_ascii_lowercase()).ok_or_else(|| {
                    LineError::new(
                        t.col,
                        "`roundrobin`, `weighted`, `leastconns` or `hash`",
                        quoted(t.text),
                    )
                })?;
            Command::Predictor { virt, predictor }
        }
        "health-check" => health_check(&mut c)?,
        "cookie-secret" => {
            let t = c.next("64 hex digits")?;
            Command::CookieSecret { secret: hex32(&t)? }
        }
        "interface" => {
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
            Command::Interface {
                role,
                name: n.text.to_string(),
                queues,
            }
        }
        "cores" => {
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
            Command::Cores { cores }
        }
        "gateway" => {
            let t = c.next("the IPv4 address of the client-side next hop")?;
            let a = sock_addr(&t)?;
            if t.text.contains(':') {
                return Err(LineError::new(t.col, "an IPv4 address without a port", quoted(t.text)));
            }
            Command::Gateway { addr: *a.ip() }
        }
        "metrics" => {
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
            Command::Metrics { addr }
        }
        _ => return Err(LineError::new(
            head.col,
            "a command (virtual, real, dip, url, bind, link, backup, in-service, out-of-service, \
                 weight, predictor, health-check, cookie-secret, interface, cores, gateway, metrics)",
            quoted(head.text),
        )),
    };
    c.finish()?;
    Ok(Some(cmd))
}

fn dip(c: &mut Cursor) -> Result<Command, LineError> {
    let t = c.next("an IPv4 address with optional :port")?;
    let addr = sock_addr(&t)?;
    let real = if c.eat("real") {
        Some(sock_addr(&c.next(
            "the real server's IPv4 address with optional :port",
        )?)?)
    } else {
        None
    };
    Ok(Command::Dip {
        addr,
        real,
        col: t.col,
    })
}

fn url(c: &mut Cursor) -> Result<Command, LineError> {
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

fn bind(c: &mut Cursor, no: bool) -> Result<Command, LineError> {
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

fn kind(c: &mut Cursor) -> Result<Kind, LineError> {
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

fn health_check(c: &mut Cursor) -> Result<Command, LineError> {
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

/// `a.b.c.d` or `a.b.c.d:port` (port 1..=65535, default 80).
pub fn sock_addr(t: &Token) -> Result<SocketAddrV4, LineError> {
    let expected = "an IPv4 address with optional :port";
    let (ip, port) = match t.text.split_once(':') {
        Some((ip, port)) => (ip, Some(port)),
        None => (t.text, None),
    };
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| LineError::new(t.col, expected, quoted(t.text)))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(LineError::new(
            t.col,
            "a unicast IPv4 address",
            quoted(t.text),
        ));
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
    Ok(SocketAddrV4::new(ip, port))
}

/// Parse a token that may be an address; `None` when it is not written as one.
pub fn maybe_addr(text: &str) -> Option<SocketAddrV4> {
    let t = Token { text, col: 1 };
    let first = text.bytes().next()?;
    if first.is_ascii_digit() {
        sock_addr(&t).ok()
    } else {
        None
    }
}

fn url_id(t: &Token) -> Result<Ref, LineError> {
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

fn number(t: &Token, min: u64, max: u64, expected: &str) -> Result<u64, LineError> {
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

fn duration(t: &Token) -> Result<Duration, LineError> {
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

fn hex32(t: &Token) -> Result<[u8; 32], LineError> {
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
