//! Serving the control socket and the metrics endpoint off the control thread, so that a
//! slow, idle or hostile client costs only its own connection.
//!
//! Each listener has its own accepting thread; each connection its own small thread, at
//! most [`Limits::max_conns`] at once (past that a connection gets a short refusal and is
//! closed, counted). A connection has [`Limits::deadline`] in all to send its request and
//! as long again to take the answer. A ctl command reaches the control thread through a
//! bounded channel ([`Request`], answered on a channel of its own); a metrics scrape never
//! reaches it: it is answered from the text the control thread last published ([`Board`]).

use crossbeam_channel::{Receiver, Sender};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest command line accepted on the control socket.
pub const MAX_COMMAND: usize = 8192;
/// Most bytes of an over-long command read (and discarded) before answering, so the client
/// can read the error instead of having its connection reset.
const MAX_DRAIN: usize = 1 << 20;
/// Most bytes of a metrics request head.
const MAX_HEAD: usize = 8192;
/// Commands waiting for the control thread.
pub const QUEUE: usize = 16;
/// Longest a ctl connection waits for the control thread's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// Stack of a connection's thread (it holds a request and an answer, on the heap).
const STACK: usize = 64 * 1024;

/// How a listener's connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_conns: usize,
    /// To send the whole request; again to take the answer.
    pub deadline: Duration,
}

pub const CTL_LIMITS: Limits = Limits {
    max_conns: 64,
    deadline: Duration::from_secs(2),
};
pub const METRICS_LIMITS: Limits = Limits {
    max_conns: 64,
    deadline: Duration::from_secs(2),
};

/// A ctl command for the control thread, and where its answer goes.
pub struct Request {
    pub line: String,
    pub reply: Sender<String>,
}

/// Counts of one listener, shared with its threads.
#[derive(Default)]
pub struct Counts {
    pub active: AtomicUsize,
    pub served: AtomicU64,
    /// Refused because [`Limits::max_conns`] were open.
    pub refused: AtomicU64,
    /// Closed at the deadline (slow or idle clients) or on a read/write error.
    pub cut: AtomicU64,
}

/// What the control thread last published, read by any thread: the metrics text and the
/// status page's JSON.
#[derive(Default, Clone)]
pub struct Board(Arc<Mutex<Pages>>);

#[derive(Default, Clone)]
pub struct Pages {
    pub metrics: Arc<String>,
    pub status: Arc<String>,
}

impl Board {
    pub fn publish(&self, metrics: String, status: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Pages {
            metrics: Arc::new(metrics),
            status: Arc::new(status),
        };
    }
    pub fn get(&self) -> Pages {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The status page: plain HTML and a little script that polls `status.json`.
const STATUS_PAGE: &str = include_str!("status.html");

/// A listener served on threads of its own; stops accepting when dropped.
pub struct Server {
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    wake: Wake,
}

enum Wake {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept; it sees the flag and returns.
        let _ = match &self.wake {
            Wake::Unix(p) => UnixStream::connect(p).map(drop),
            Wake::Tcp(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).map(drop),
        };
        if let Wake::Unix(p) = &self.wake {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The stream kinds served.
trait Conn: Send + 'static {
    fn timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()>;
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    fn send_all(&self, bytes: &[u8]) -> std::io::Result<()>;
}

macro_rules! conn {
    ($t:ty) => {
        impl Conn for $t {
            fn timeouts(&self, r: Option<Duration>, w: Option<Duration>) -> std::io::Result<()> {
                self.set_read_timeout(r)?;
                self.set_write_timeout(w)
            }
            fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&mut &*self).read(buf)
            }
            fn send_all(&self, bytes: &[u8]) -> std::io::Result<()> {
                (&mut &*self).write_all(bytes)
            }
        }
    };
}
conn!(UnixStream);
conn!(TcpStream);

/// Serve the control socket: each command goes to `commands` (bounded, [`QUEUE`]).
pub fn serve_ctl(
    listener: UnixListener,
    path: &Path,
    limits: Limits,
) -> Result<(Server, Receiver<Request>), String> {
    let (tx, rx) = crossbeam_channel::bounded::<Request>(QUEUE);
    let server = spawn_acceptor(
        "detour-ctl",
        move || listener.accept().map(|(s, _)| s),
        Wake::Unix(path.to_path_buf()),
        limits,
        move |s: UnixStream, deadline| ctl_conn(&s, deadline, &tx),
        |s: &UnixStream| {
            let _ = s.send_all(b"error: too many control connections; try again\n");
        },
    )?;
    Ok((server, rx))
}

/// Serve `GET /metrics` (and `GET /`) with what `board` holds.
pub fn serve_metrics(addr: SocketAddr, board: Board, limits: Limits) -> Result<Server, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    spawn_acceptor(
        "detour-metrics",
        move || listener.accept().map(|(s, _)| s),
        Wake::Tcp(local),
        limits,
        move |s: TcpStream, deadline| metrics_conn(&s, deadline, &board),
        |s: &TcpStream| {
            let _ = s.send_all(
                b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        },
    )
}

fn spawn_acceptor<S: Conn>(
    name: &str,
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    wake: Wake,
    limits: Limits,
    handle: impl Fn(S, Instant) -> std::io::Result<()> + Send + Sync + 'static,
    refuse: impl Fn(&S) + Send + 'static,
) -> Result<Server, String> {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (c, st) = (counts.clone(), stop.clone());
    let handle = Arc::new(handle);
    let conn_name = format!("{name}-conn");
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // Capabilities are per thread: this one and its connections' need none.
            crate::privs::drop_all_of_this_thread();
            accept_loop(&mut accept, &st, &c, limits, &handle, &refuse, &conn_name)
        })
        .map_err(|e| format!("spawn {name}: {e}"))?;
    Ok(Server { counts, stop, wake })
}

fn accept_loop<S: Conn, H>(
    accept: &mut impl FnMut() -> std::io::Result<S>,
    st: &AtomicBool,
    c: &Arc<Counts>,
    limits: Limits,
    handle: &Arc<H>,
    refuse: &impl Fn(&S),
    conn_name: &str,
) where
    H: Fn(S, Instant) -> std::io::Result<()> + Send + Sync + 'static,
{
    loop {
        let s = match accept() {
            Ok(s) => s,
            Err(_) => {
                // EMFILE and the like: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if st.load(Ordering::SeqCst) {
            return;
        }
        if c.active.fetch_add(1, Ordering::SeqCst) >= limits.max_conns {
            c.active.fetch_sub(1, Ordering::SeqCst);
            c.refused.fetch_add(1, Ordering::Relaxed);
            let _ = s.timeouts(
                Some(Duration::from_millis(1)),
                Some(Duration::from_millis(50)),
            );
            refuse(&s);
            // What the client already sent is read, so closing does not reset it.
            let _ = s.recv(&mut [0u8; 4096]);
            continue;
        }
        let (c2, h) = (c.clone(), handle.clone());
        let spawned = std::thread::Builder::new()
            .name(conn_name.to_string())
            .stack_size(STACK)
            .spawn(move || {
                let deadline = Instant::now() + limits.deadline;
                match h(s, deadline) {
                    Ok(()) => c2.served.fetch_add(1, Ordering::Relaxed),
                    Err(_) => c2.cut.fetch_add(1, Ordering::Relaxed),
                };
                c2.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            c.active.fetch_sub(1, Ordering::SeqCst);
            c.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Read until `done(bytes)` or more than `max` bytes, all before `deadline`.
fn read_until(
    s: &impl Conn,
    deadline: Instant,
    max: usize,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !done(&buf) && buf.len() <= max {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.timeouts(Some(left), Some(left))?;
        match s.recv(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

fn ctl_conn(s: &UnixStream, deadline: Instant, tx: &Sender<Request>) -> std::io::Result<()> {
    let line = read_until(s, deadline, MAX_COMMAND, |b| b.contains(&b'\n'))?;
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(n) => &line[..n],
        None => &line[..],
    };
    let answer = if line.len() > MAX_COMMAND {
        // Drain the rest of the line (bounded), so closing leaves nothing unread and the
        // client reads this answer instead of a reset.
        let _ = read_until(s, deadline, MAX_DRAIN, |b| b.contains(&b'\n'));
        format!("error: a command of at most {MAX_COMMAND} bytes\n")
    } else {
        match std::str::from_utf8(line) {
            Ok(text) => ask(tx, text.trim_end_matches('\r')),
            Err(_) => "error: expected UTF-8 text\n".to_string(),
        }
    };
    s.timeouts(None, Some(CTL_LIMITS.deadline))?;
    s.send_all(answer.as_bytes())
}

/// Hand a command to the control thread and wait for its answer.
fn ask(tx: &Sender<Request>, line: &str) -> String {
    let (reply, answer) = crossbeam_channel::bounded(1);
    let req = Request {
        line: line.to_string(),
        reply,
    };
    if tx.send_timeout(req, ANSWER_WAIT).is_err() {
        return "error: the control thread is busy; try again\n".into();
    }
    answer
        .recv_timeout(ANSWER_WAIT)
        .unwrap_or_else(|_| "error: no answer from the control thread\n".into())
}

fn metrics_conn(s: &TcpStream, deadline: Instant, board: &Board) -> std::io::Result<()> {
    let head = read_until(s, deadline, MAX_HEAD, |b| {
        b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n")
    })?;
    s.timeouts(None, Some(METRICS_LIMITS.deadline))?;
    let pages = board.get();
    let (kind, body): (&str, &str) = if head.starts_with(b"GET /metrics ") {
        ("text/plain; version=0.0.4", &pages.metrics)
    } else if head.starts_with(b"GET /status.json ") {
        ("application/json", &pages.status)
    } else if head.starts_with(b"GET / ") || head.starts_with(b"GET /index.html ") {
        ("text/html; charset=utf-8", STATUS_PAGE)
    } else {
        return s
            .send_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.send_all(head.as_bytes())?;
    s.send_all(body.as_bytes())
}

/// Send one command and return the answer (`detour ctl`). A command the server refuses
/// before reading all of it still gets its answer read.
pub fn request(path: &Path, command: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is detour running?)", path.display()))?;
    s.set_read_timeout(Some(ANSWER_WAIT + Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut line = command.as_bytes().to_vec();
    line.push(b'\n');
    let sent = s.write_all(&line);
    // Read what came even if the connection ended in error after it (a refusal at once).
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    let out = String::from_utf8_lossy(&raw).into_owned();
    match (sent, read) {
        (_, Ok(_)) if !out.is_empty() => Ok(out),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e.to_string()),
        (Ok(()), Ok(_)) => Err("no answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(name: &str, limits: Limits) -> (PathBuf, Server, Receiver<Request>) {
        let p = std::env::temp_dir().join(format!("detour-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let l = UnixListener::bind(&p).unwrap();
        let (srv, rx) = serve_ctl(l, &p, limits).unwrap();
        (p, srv, rx)
    }

    /// Poll `cond` until it holds; panics with `what` after 10 s (a generous bound: this
    /// orders events between threads, it does not time them).
    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < end, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Answer every request with its line, upper-cased, until the channel closes.
    fn echo(rx: Receiver<Request>) {
        std::thread::spawn(move || {
            for r in rx {
                let _ = r.reply.send(format!("{}\n", r.line.to_uppercase()));
            }
        });
    }

    #[test]
    fn idle_clients_cost_only_their_own_connection() {
        let limits = Limits {
            max_conns: 8,
            deadline: Duration::from_millis(1500),
        };
        let (p, srv, rx) = ctl("idle", limits);
        echo(rx);
        let idle: Vec<_> = (0..5).map(|_| UnixStream::connect(&p).unwrap()).collect();
        let active = || srv.counts.active.load(Ordering::SeqCst);
        wait_until("5 idle clients accepted", || active() == 5);
        let t = Instant::now();
        assert_eq!(request(&p, "show real").unwrap(), "SHOW REAL\n");
        // Answered while the five idle clients still hold their connections, i.e. not queued
        // behind them (they are cut only at their deadline).
        assert!(t.elapsed() < limits.deadline, "{:?}", t.elapsed());
        // Past the limit: refused at once, counted (after the served one's thread ended).
        wait_until("the served connection's thread ended", || active() == 5);
        let more: Vec<_> = (0..3).map(|_| UnixStream::connect(&p).unwrap()).collect();
        wait_until("8 connections held", || active() == 8);
        let answer = request(&p, "x").unwrap();
        assert!(answer.starts_with("error: too many"), "{answer}");
        assert!(srv.counts.refused.load(Ordering::SeqCst) >= 1);
        // The deadline closes the idle ones (each read ends at the cut); then there is room.
        for mut s in idle.into_iter().chain(more) {
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
            assert!(b.is_empty(), "{b:?}");
        }
        wait_until("8 connections cut", || {
            srv.counts.cut.load(Ordering::SeqCst) == 8 && active() == 0
        });
        assert_eq!(request(&p, "again").unwrap(), "AGAIN\n");
        drop(srv);
        assert!(!p.exists());
    }

    #[test]
    fn an_over_long_command_gets_the_error_not_a_reset() {
        let (p, _srv, rx) = ctl("long", CTL_LIMITS);
        echo(rx);
        let answer = request(&p, &"x".repeat(100_000)).unwrap();
        assert_eq!(answer, "error: a command of at most 8192 bytes\n");
        let answer = request(&p, &"y".repeat(MAX_COMMAND)).unwrap();
        assert_eq!(answer.len(), MAX_COMMAND + 1);
    }

    #[test]
    fn metrics_are_served_from_the_board_while_slow_clients_hang() {
        let board = Board::default();
        board.publish("detour_up_seconds 1\n".into(), "{}".into());
        let limits = Limits {
            max_conns: 8,
            deadline: Duration::from_millis(300),
        };
        let srv = serve_metrics("127.0.0.1:0".parse().unwrap(), board.clone(), limits);
        let srv = srv.unwrap();
        let Wake::Tcp(addr) = srv.wake else {
            unreachable!()
        };
        let get = || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let slow: Vec<_> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /met").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert!(get().ends_with("\r\n\r\ndetour_up_seconds 1\n"));
        board.publish("detour_up_seconds 2\n".into(), "{}".into());
        assert!(get().ends_with("detour_up_seconds 2\n"));
        drop(slow);
    }
}
