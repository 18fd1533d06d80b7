//! Health checks of the reals, run for the control thread through the kernel's own sockets
//! (the XDP program passes the director's own traffic to the kernel).
//!
//! [`targets`] says which checks a model asks for; [`Health::start`] runs them, one thread per
//! target (at most [`MAX_TARGETS`] threads), each at its own interval with never more than
//! one check in flight. Every target starts up; `fall` consecutive failures send a Down
//! [`Transition`], then `rise` consecutive successes an Up one, on the channel the control
//! thread drains. [`Health::update`] swaps in a new target list keeping the state of the
//! unchanged ones. Nothing here logs: the control thread reports the transitions.
//!
//! - `tcp`: `TcpStream::connect_timeout(addr, timeout)`.
//! - `http`: connect, send `GET <path> HTTP/1.0` (with `Host`, `User-Agent: detour-health`,
//!   `Connection: close`), read until the server closes, 4 KiB or the timeout, and compare
//!   the status of the line `HTTP/1.x NNN` with `expect`. The whole check (connect, write,
//!   read) is bounded by `timeout`.
//!
//! Stopping: the threads sleep on a channel that is disconnected to stop them, and read and
//! write in slices of [`SLICE`], so a stop is seen at once between checks and within a slice
//! during one. The one wait std cannot interrupt is the kernel's connect (a real that drops
//! SYNs): a thread blocked there is waited for up to [`STOP_WAIT`], then detached; it exits on
//! its own when the connect gives up (within the check's timeout) and sends nothing more.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use detour_config::lang::{HealthCheck, HealthKind};
use detour_config::model::Model;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Most targets checked at once (one thread each); further targets are not checked and are
/// counted by [`Health::ignored`].
pub const MAX_TARGETS: usize = 1024;
/// Longest a checking thread reads or writes before looking whether it is asked to stop.
pub const SLICE: Duration = Duration::from_millis(20);
/// Longest [`Health::stop`] (and [`Health::update`], for removed targets) waits for a thread
/// before detaching it (only a thread blocked in the kernel's connect can take that long).
pub const STOP_WAIT: Duration = Duration::from_millis(100);
/// Most bytes of a response read by an HTTP check.
pub const MAX_RESPONSE: usize = 4096;
/// Shortest interval and timeout used, whatever the check says (the language allows 10ms).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Capacity of the transition channel the control thread drains: a checking thread whose
/// transition does not fit waits (backpressure, still stoppable), it never drops one.
pub const QUEUE: usize = 256;
/// Stack of a checking thread: a check needs a 4 KiB buffer and a few strings.
const STACK: usize = 128 * 1024;

/// One health check to run: a real's address and its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub check: HealthCheck,
}

/// Which checks apply to a model: one target per real with a check (its own, else the
/// default `health-check all`), kind `none` excluded (a real's own `none` overrides the
/// default). In the model's order of reals.
pub fn targets(model: &Model) -> Vec<Target> {
    model
        .reals
        .iter()
        .filter_map(|r| {
            let check = r
                .health
                .as_ref()
                .or(model.settings.default_health.as_ref())?;
            (check.kind != HealthKind::None).then(|| Target {
                addr: r.addr,
                check: check.clone(),
            })
        })
        .collect()
}

/// A real went down or came back.
#[derive(Clone, Debug)]
pub struct Transition {
    pub addr: SocketAddr,
    pub up: bool,
    /// Down: the last failure (`connect: Connection refused`, `timeout after 500ms`,
    /// `HTTP 503, expected 200`, …). Up: `2 checks passed`.
    pub reason: String,
    pub at: Instant,
    /// From the start of the first check of the run that caused the transition (the first
    /// failed one for a Down, the first passed one for an Up) to `at`: for a Down, the
    /// failover detection time.
    pub detection: Duration,
}

/// The state of one target, as [`Health::status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub addr: SocketAddr,
    pub up: bool,
    /// Consecutive passed checks (0 after a failure).
    pub ok_streak: u32,
    /// Consecutive failed checks (0 after a pass).
    pub fail_streak: u32,
    /// The last check's result: `connected`, `HTTP 200`, a failure reason, or
    /// `not checked yet`.
    pub last: String,
    pub checks: u64,
    pub failures: u64,
    pub transitions: u64,
    /// The last transition, or the start of checking.
    pub since: Instant,
}

/// The running health checks.
pub struct Health {
    checkers: Vec<Checker>,
    tx: Sender<Transition>,
    limit: usize,
    ignored: usize,
}

/// One target's thread and what it shares with [`Health`].
struct Checker {
    target: Target,
    status: Arc<Mutex<Status>>,
    /// Never sent on: dropping it tells the thread to stop.
    stop: Option<Sender<()>>,
    /// Never sent on: disconnected when the thread's function returns.
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Health {
    /// Start checking. Every target starts up (no transition is sent for the initial state).
    /// A target of kind `none` is skipped (always up); a second target for an address already
    /// listed is ignored, as are targets beyond [`MAX_TARGETS`] (see [`Health::ignored`]).
    pub fn start(targets: Vec<Target>, tx: Sender<Transition>) -> Health {
        Health::with_limit(targets, tx, MAX_TARGETS)
    }

    fn with_limit(targets: Vec<Target>, tx: Sender<Transition>, limit: usize) -> Health {
        let mut h = Health {
            checkers: Vec::new(),
            tx,
            limit,
            ignored: 0,
        };
        h.update(targets);
        h
    }

    /// Replace the targets: those whose (addr, check) are unchanged keep their thread, state
    /// and streaks; the others stop (a changed check counts as removed and added); new ones
    /// start up, without a transition, whatever state the control thread last had for that
    /// address. Transitions that removed targets queued before this returns stay in the
    /// channel; none are sent after.
    pub fn update(&mut self, targets: Vec<Target>) {
        let mut old: HashMap<SocketAddr, Checker> = self
            .checkers
            .drain(..)
            .map(|c| (c.target.addr, c))
            .collect();
        let mut seen = HashMap::new();
        let mut keep = Vec::new();
        let mut new = Vec::new();
        self.ignored = 0;
        for t in targets {
            if t.check.kind == HealthKind::None {
                // No check: always up, nothing to run.
                continue;
            }
            if seen.insert(t.addr, ()).is_some() {
                self.ignored += 1;
                continue;
            }
            if keep.len() + new.len() >= self.limit {
                self.ignored += 1;
                continue;
            }
            match old.remove(&t.addr) {
                Some(c) if c.target == t => keep.push(c),
                Some(c) => {
                    // Changed check: the old thread goes, a fresh one starts.
                    old.insert(t.addr, c);
                    new.push(t);
                }
                None => new.push(t),
            }
        }
        // Stop the removed ones before starting replacements, so one address never has two
        // threads sending transitions for long.
        stop_all(old.into_values().collect());
        for t in new {
            match Checker::spawn(t, self.tx.clone()) {
                Ok(c) => keep.push(c),
                Err(_) => self.ignored += 1,
            }
        }
        keep.sort_by_key(|c| c.target.addr);
        self.checkers = keep;
    }

    /// Every checked target's state, sorted by address.
    pub fn status(&self) -> Vec<Status> {
        self.checkers
            .iter()
            .map(|c| lock(&c.status).clone())
            .collect()
    }

    /// Targets of the last `start`/`update` that are not checked: a duplicate address, beyond
    /// [`MAX_TARGETS`], or the thread could not be created.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Stop every checking thread and join it (all within about [`SLICE`]; see the module
    /// documentation for a connect that std cannot interrupt). Idempotent; also done on drop.
    pub fn stop(&mut self) {
        stop_all(std::mem::take(&mut self.checkers));
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Checker {
    fn spawn(target: Target, tx: Sender<Transition>) -> io::Result<Checker> {
        let status = Arc::new(Mutex::new(Status {
            addr: target.addr,
            up: true,
            ok_streak: 0,
            fail_streak: 0,
            last: "not checked yet".to_string(),
            checks: 0,
            failures: 0,
            transitions: 0,
            since: Instant::now(),
        }));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let (t, s) = (target.clone(), status.clone());
        let handle = thread::Builder::new()
            .name(format!("health {}", target.addr))
            .stack_size(STACK)
            .spawn(move || {
                let _done = done_tx;
                run(&t, &s, &stop_rx, &tx);
            })?;
        Ok(Checker {
            target,
            status,
            stop: Some(stop_tx),
            done: done_rx,
            handle: Some(handle),
        })
    }
}

/// Tell all to stop, then wait for each (together at most [`STOP_WAIT`]) and join it; a
/// thread still blocked in connect after that is detached.
fn stop_all(mut checkers: Vec<Checker>) {
    for c in &mut checkers {
        c.stop = None;
    }
    let deadline = Instant::now() + STOP_WAIT;
    for mut c in checkers {
        if let Err(RecvTimeoutError::Disconnected) = c.done.recv_deadline(deadline) {
            if let Some(h) = c.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn lock(s: &Mutex<Status>) -> MutexGuard<'_, Status> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn stopped(stop: &Receiver<()>) -> bool {
    matches!(stop.try_recv(), Err(TryRecvError::Disconnected))
}

/// A check's result.
enum Outcome {
    Pass(String),
    Fail(String),
    /// Asked to stop mid-check.
    Stopped,
}

/// One target's thread: check, update the status, send transitions, sleep until the next
/// check (on the stop channel, so a stop wakes it at once).
fn run(t: &Target, status: &Mutex<Status>, stop: &Receiver<()>, tx: &Sender<Transition>) {
    let interval = t.check.interval.max(MIN_INTERVAL);
    let rise = t.check.rise.max(1);
    let fall = t.check.fall.max(1);
    // Start of the first check of the current run of passes or failures.
    let mut run_start = Instant::now();
    let mut next = Instant::now();
    loop {
        if let Err(RecvTimeoutError::Disconnected) | Ok(()) = stop.recv_deadline(next) {
            return;
        }
        let started = Instant::now();
        let (pass, text) = match check(t, started, stop) {
            Outcome::Pass(s) => (true, s),
            Outcome::Fail(s) => (false, s),
            Outcome::Stopped => return,
        };
        let now = Instant::now();
        let mut s = lock(status);
        s.checks += 1;
        let mut transition = None;
        if pass {
            s.ok_streak += 1;
            s.fail_streak = 0;
            if s.ok_streak == 1 {
                run_start = started;
            }
            if !s.up && s.ok_streak >= rise {
                let reason = if rise == 1 {
                    "1 check passed".to_string()
                } else {
                    format!("{rise} checks passed")
                };
                transition = Some((true, reason));
            }
        } else {
            s.failures += 1;
            s.fail_streak += 1;
            s.ok_streak = 0;
            if s.fail_streak == 1 {
                run_start = started;
            }
            if s.up && s.fail_streak >= fall {
                transition = Some((false, text.clone()));
            }
        }
        s.last = text;
        if let Some((up, reason)) = transition {
            s.up = up;
            s.transitions += 1;
            s.since = now;
            drop(s);
            if !stopped(stop) {
                send(
                    tx,
                    stop,
                    Transition {
                        addr: t.addr,
                        up,
                        reason,
                        at: now,
                        detection: now.saturating_duration_since(run_start),
                    },
                );
            }
        } else {
            drop(s);
        }
        // Keep to the schedule; after a check that overran it, the next one starts at once
        // (still one at a time).
        next = (next + interval).max(Instant::now());
    }
}

/// Send a transition, waiting while the channel is full (checking for a stop each
/// [`SLICE`]); dropped only when stopped or nobody listens any more.
fn send(tx: &Sender<Transition>, stop: &Receiver<()>, mut t: Transition) {
    loop {
        match tx.send_timeout(t, SLICE) {
            Ok(()) | Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                if stopped(stop) {
                    return;
                }
                t = back;
            }
        }
    }
}

/// Run one check, started at `started`, bounded by the check's timeout.
fn check(t: &Target, started: Instant, stop: &Receiver<()>) -> Outcome {
    let timeout = t.check.timeout.max(MIN_TIMEOUT);
    let deadline = started + timeout;
    let timed_out = || format!("timeout after {}", fmt_duration(timeout));
    let (path, expect) = match &t.check.kind {
        HealthKind::None => return Outcome::Pass("not checked".to_string()),
        HealthKind::Tcp => (None, 0),
        HealthKind::Http { path, expect } => (Some(path.as_str()), *expect),
    };
    // The only wait std cannot interrupt (see the module documentation).
    let stream = match TcpStream::connect_timeout(&t.addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            return Outcome::Fail(format!("connect: {}", timed_out()))
        }
        Err(e) => return Outcome::Fail(format!("connect: {}", os_message(&e))),
    };
    let Some(path) = path else {
        return Outcome::Pass("connected".to_string());
    };
    if stopped(stop) {
        return Outcome::Stopped;
    }
    if path.is_empty() || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Outcome::Fail(format!("invalid path {path:?}"));
    }
    let _ = stream.set_nodelay(true);
    let request = http_request(t.addr, path);
    match write_all(&stream, request.as_bytes(), deadline, stop) {
        Ok(()) => {}
        Err(Cut::Stopped) => return Outcome::Stopped,
        Err(Cut::Timeout) => return Outcome::Fail(timed_out()),
        Err(Cut::Io(e)) => return Outcome::Fail(format!("send: {}", os_message(&e))),
    }
    let mut buf = [0u8; MAX_RESPONSE];
    let mut len = 0;
    // Read until the server closes, the buffer is full or the deadline; a status line
    // already complete decides even when the rest does not come.
    while len < buf.len() {
        let now = Instant::now();
        if now >= deadline {
            if status_line_complete(&buf[..len]) {
                break;
            }
            return Outcome::Fail(if len == 0 {
                format!("{} (no response)", timed_out())
            } else {
                format!("{} (incomplete status line)", timed_out())
            });
        }
        if stopped(stop) {
            return Outcome::Stopped;
        }
        if stream
            .set_read_timeout(Some((deadline - now).clamp(MIN_TIMEOUT, SLICE)))
            .is_err()
        {
            return Outcome::Fail("set read timeout failed".to_string());
        }
        match (&stream).read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if retry(&e) => {}
            Err(_) if status_line_complete(&buf[..len]) => break,
            Err(e) => return Outcome::Fail(format!("receive: {}", os_message(&e))),
        }
    }
    parse_status(&buf[..len], expect)
}

/// `GET <path> HTTP/1.0` with the address as `Host` (with `:port` when not 80).
fn http_request(addr: SocketAddr, path: &str) -> String {
    let host = if addr.port() == 80 {
        match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        }
    } else {
        addr.to_string()
    };
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: detour-health\r\nConnection: close\r\n\r\n"
    )
}

enum Cut {
    Stopped,
    Timeout,
    Io(io::Error),
}

fn write_all(
    mut stream: &TcpStream,
    mut data: &[u8],
    deadline: Instant,
    stop: &Receiver<()>,
) -> Result<(), Cut> {
    while !data.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return Err(Cut::Timeout);
        }
        if stopped(stop) {
            return Err(Cut::Stopped);
        }
        stream
            .set_write_timeout(Some((deadline - now).clamp(MIN_TIMEOUT, SLICE)))
            .map_err(Cut::Io)?;
        match stream.write(data) {
            Ok(0) => return Err(Cut::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => data = &data[n..],
            Err(e) if retry(&e) => {}
            Err(e) => return Err(Cut::Io(e)),
        }
    }
    Ok(())
}

/// A slice's timeout or a signal: look at the deadline and the stop channel, then go on.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn status_line_complete(data: &[u8]) -> bool {
    data.contains(&b'\n')
}

/// The verdict on a response: its status line must be `HTTP/1.x NNN` (then a space and a
/// reason, or the line's end) and NNN must be `expect`.
fn parse_status(data: &[u8], expect: u16) -> Outcome {
    if data.is_empty() {
        return Outcome::Fail("connection closed without a response".to_string());
    }
    let line = match data.iter().position(|&b| b == b'\n') {
        Some(i) => &data[..i],
        None if data.len() >= MAX_RESPONSE => {
            return Outcome::Fail(format!("no status line in the first {MAX_RESPONSE} bytes"))
        }
        // The server closed after a line without its end.
        None => data,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let well_formed = line.len() >= 12
        && line.starts_with(b"HTTP/1.")
        && line[7].is_ascii_digit()
        && line[8] == b' '
        && line[9..12].iter().all(u8::is_ascii_digit)
        && (line.len() == 12 || line[12] == b' ');
    if !well_formed {
        let shown: String = String::from_utf8_lossy(line).chars().take(64).collect();
        return Outcome::Fail(format!("malformed status line {shown:?}"));
    }
    let code = line[9..12]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if code == expect {
        Outcome::Pass(format!("HTTP {code}"))
    } else {
        Outcome::Fail(format!("HTTP {code}, expected {expect}"))
    }
}

/// An I/O error's text without std's ` (os error N)` suffix: `Connection refused`.
fn os_message(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// As the config language writes durations: `2s`, `500ms`.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 0 {
        format!("{ms}ms")
    } else {
        format!("{}us", d.as_micros())
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
