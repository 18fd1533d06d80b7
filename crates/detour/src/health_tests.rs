//! Tests of the health checks against real sockets on loopback.
use super::*;
use crossbeam_channel::Receiver;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

const MS: Duration = Duration::from_millis(1);

fn tcp(interval_ms: u32, timeout_ms: u32, rise: u32, fall: u32) -> HealthCheck {
    HealthCheck {
        kind: HealthKind::Tcp,
        interval: interval_ms * MS,
        timeout: timeout_ms * MS,
        rise,
        fall,
    }
}

fn http(path: &str, interval_ms: u32, timeout_ms: u32, rise: u32, fall: u32) -> HealthCheck {
    HealthCheck {
        kind: HealthKind::Http {
            path: path.to_string(),
            expect: 200,
        },
        ..tcp(interval_ms, timeout_ms, rise, fall)
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

fn listen() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// An address where nothing listens (connect is refused).
fn dead() -> SocketAddr {
    listen().1
}

fn status_of(h: &Health, a: SocketAddr) -> Status {
    h.status().into_iter().find(|s| s.addr == a).unwrap()
}

fn next(rx: &Receiver<Transition>, within: Duration) -> Transition {
    rx.recv_timeout(within)
        .unwrap_or_else(|e| panic!("no transition within {within:?}: {e}"))
}

fn quiet(rx: &Receiver<Transition>, for_: Duration) {
    if let Ok(t) = rx.recv_timeout(for_) {
        panic!("unexpected transition {t:?}");
    }
}

/// Waits (bounded) until `f` holds.
fn wait_for(what: &str, within: Duration, f: impl Fn() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "{what} not within {within:?}");
        thread::sleep(5 * MS);
    }
}

/// A tiny HTTP server: answers each request with `code` (0: accepts and never answers).
struct Server {
    addr: SocketAddr,
    code: Arc<AtomicU16>,
    accepted: Arc<AtomicUsize>,
    last_request: Arc<Mutex<String>>,
    quit: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    fn new(code: u16) -> Server {
        let (l, addr) = listen();
        let code = Arc::new(AtomicU16::new(code));
        let accepted = Arc::new(AtomicUsize::new(0));
        let last_request = Arc::new(Mutex::new(String::new()));
        let quit = Arc::new(AtomicBool::new(false));
        let (c, n, r, q) = (
            code.clone(),
            accepted.clone(),
            last_request.clone(),
            quit.clone(),
        );
        let handle = thread::spawn(move || {
            let mut silent = Vec::new();
            for s in l.incoming() {
                if q.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut s) = s else { continue };
                n.fetch_add(1, Ordering::SeqCst);
                let code = c.load(Ordering::SeqCst);
                if code == 0 {
                    silent.push(s);
                    continue;
                }
                s.set_read_timeout(Some(1000 * MS)).unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 512];
                while !req.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&b[..k]),
                    }
                }
                *r.lock().unwrap() = String::from_utf8_lossy(&req).into_owned();
                let _ = write!(s, "HTTP/1.0 {code} Whatever\r\nContent-Length: 2\r\n\r\nhi");
            }
        });
        Server {
            addr,
            code,
            accepted,
            last_request,
            quit,
            handle: Some(handle),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        // Wake the accept.
        let _ = TcpStream::connect_timeout(&self.addr, 1000 * MS);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn tcp_down_after_fall_failures_and_up_after_rise() {
    let (l, a) = listen();
    let (interval, rise, fall) = (150 * MS, 2, 3);
    let (tx, rx) = crossbeam_channel::unbounded();
    let h = Health::start(
        vec![Target {
            addr: a,
            check: tcp(150, 100, rise, fall),
        }],
        tx,
    );
    quiet(&rx, 500 * MS);
    let s = status_of(&h, a);
    assert!(s.up && s.checks >= 3 && s.failures == 0, "{s:?}");
    assert_eq!(s.last, "connected");

    drop(l);
    let t = next(&rx, 2000 * MS);
    let s = status_of(&h, a);
    assert!(!t.up, "{t:?}");
    assert_eq!(t.addr, a);
    assert!(t.reason.contains("refused"), "{t:?}");
    assert_eq!(t.reason, "connect: Connection refused");
    // Exactly `fall` failures: the first and the last are (fall-1) intervals apart.
    let min = interval * (fall - 1);
    assert!(
        t.detection >= min - 10 * MS && t.detection < min + interval / 2,
        "{t:?}"
    );
    assert!(
        !s.up && s.failures == u64::from(fall) && s.transitions == 1,
        "{s:?}"
    );
    assert_eq!(s.fail_streak, fall);

    let _l = TcpListener::bind(a).unwrap();
    let t = next(&rx, 2000 * MS);
    assert!(t.up, "{t:?}");
    assert_eq!(t.reason, "2 checks passed");
    assert!(
        t.detection >= interval * (rise - 1) - 10 * MS && t.detection < interval * rise,
        "{t:?}"
    );
    let s = status_of(&h, a);
    assert!(s.up && s.ok_streak >= rise && s.transitions == 2, "{s:?}");
    assert_eq!(s.failures, u64::from(fall));
}

#[test]
fn http_status_and_timeout() {
    let srv = Server::new(200);
    let (tx, rx) = crossbeam_channel::unbounded();
    let h = Health::start(
        vec![Target {
            addr: srv.addr,
            check: http("/health", 100, 100, 2, 2),
        }],
        tx,
    );
    quiet(&rx, 400 * MS);
    let s = status_of(&h, srv.addr);
    assert!(s.up && s.checks >= 2 && s.failures == 0, "{s:?}");
    assert_eq!(s.last, "HTTP 200");
    assert_eq!(
        *srv.last_request.lock().unwrap(),
        format!(
            "GET /health HTTP/1.0\r\nHost: {}\r\nUser-Agent: detour-health\r\n\
             Connection: close\r\n\r\n",
            srv.addr
        )
    );

    srv.code.store(503, Ordering::SeqCst);
    let t = next(&rx, 2000 * MS);
    assert!(!t.up, "{t:?}");
    assert_eq!(t.reason, "HTTP 503, expected 200");

    srv.code.store(200, Ordering::SeqCst);
    let t = next(&rx, 2000 * MS);
    assert!(t.up, "{t:?}");

    // Accepts, never answers: a timeout, detected within timeout + a little.
    srv.code.store(0, Ordering::SeqCst);
    let t = next(&rx, 2000 * MS);
    assert!(!t.up, "{t:?}");
    assert_eq!(t.reason, "timeout after 100ms (no response)");
    // fall 2: one interval between the two failed checks, then the second's timeout.
    assert!(
        t.detection >= 200 * MS - 10 * MS && t.detection < 200 * MS + 100 * MS,
        "{t:?}"
    );
    drop(h);
    assert!(srv.accepted.load(Ordering::SeqCst) >= 6);
}

#[test]
fn http_timeout_with_fall_one() {
    let srv = Server::new(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let _h = Health::start(
        vec![Target {
            addr: srv.addr,
            check: http("/", 200, 150, 1, 1),
        }],
        tx,
    );
    let t = next(&rx, 1000 * MS);
    assert!(!t.up);
    assert!(t.reason.starts_with("timeout after 150ms"), "{t:?}");
    assert!(
        t.detection >= 150 * MS && t.detection < 150 * MS + 100 * MS,
        "{t:?}"
    );
}

#[test]
fn update_keeps_unchanged_targets() {
    let (_la, a) = listen();
    let b = dead();
    let (_lc, c) = listen();
    let check = tcp(50, 50, 2, 2);
    let target = |addr| Target {
        addr,
        check: check.clone(),
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut h = Health::start(vec![target(a), target(b)], tx);
    let t = next(&rx, 1000 * MS);
    assert!(!t.up && t.addr == b, "{t:?}");
    let before = status_of(&h, b);

    h.update(vec![target(b), target(a), target(c)]);
    assert_eq!(h.status().len(), 3);
    quiet(&rx, 400 * MS);
    let sb = status_of(&h, b);
    assert!(!sb.up && sb.transitions == 1, "{sb:?}");
    assert!(
        sb.checks > before.checks && sb.since == before.since,
        "{sb:?}"
    );
    let sc = status_of(&h, c);
    assert!(sc.up && sc.checks >= 2, "{sc:?}");
    let addrs: Vec<_> = h.status().iter().map(|s| s.addr).collect();
    let mut sorted = addrs.clone();
    sorted.sort();
    assert_eq!(addrs, sorted);

    // Removed: stops. Changed check: starts afresh (up, no transition yet).
    let mut changed = target(b);
    changed.check.interval = 60 * MS;
    h.update(vec![target(a), changed]);
    let after = h.status();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|s| s.addr != c));
    let sb = status_of(&h, b);
    assert!(sb.up && sb.transitions == 0 && sb.checks <= 1, "{sb:?}");
    let t = next(&rx, 1000 * MS);
    assert!(!t.up && t.addr == b, "{t:?}");
    quiet(&rx, 200 * MS);
}

#[test]
fn stop_is_prompt_mid_timeout() {
    let srv = Server::new(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut h = Health::start(
        vec![Target {
            addr: srv.addr,
            check: http("/", 5000, 5000, 2, 2),
        }],
        tx,
    );
    wait_for("the check's connection", 2000 * MS, || {
        srv.accepted.load(Ordering::SeqCst) == 1
    });
    thread::sleep(100 * MS);
    let t0 = Instant::now();
    h.stop();
    let took = t0.elapsed();
    assert!(took < 500 * MS, "stop took {took:?}");
    assert!(h.status().is_empty());
    h.stop();
    drop(h);
    // Every thread exited (joined, not detached): the channel is disconnected.
    assert!(matches!(
        rx.recv_timeout(100 * MS),
        Err(RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn drop_stops_promptly() {
    let srv = Server::new(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let h = Health::start(
        vec![Target {
            addr: srv.addr,
            check: http("/", 5000, 5000, 2, 2),
        }],
        tx,
    );
    wait_for("the check's connection", 2000 * MS, || {
        srv.accepted.load(Ordering::SeqCst) == 1
    });
    let t0 = Instant::now();
    drop(h);
    assert!(t0.elapsed() < 500 * MS, "drop took {:?}", t0.elapsed());
    assert!(matches!(
        rx.recv_timeout(100 * MS),
        Err(RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn limits_and_duplicates() {
    let (tx, _rx) = crossbeam_channel::unbounded();
    let (_l1, a) = listen();
    let (_l2, b) = listen();
    let (_l3, c) = listen();
    let t = |addr| Target {
        addr,
        check: tcp(1000, 100, 2, 2),
    };
    let mut none = t(c);
    none.check.kind = HealthKind::None;
    let mut h = Health::with_limit(vec![none, t(a), t(a), t(b), t(c)], tx, 2);
    let addrs: Vec<_> = h.status().iter().map(|s| s.addr).collect();
    assert_eq!(addrs, [a.min(b), a.max(b)]);
    assert_eq!(h.ignored(), 2);
    h.update(vec![t(c)]);
    assert_eq!(h.ignored(), 0);
    assert_eq!(h.status().len(), 1);
}

#[test]
fn targets_from_model() {
    let text = "real 10.0.0.1\n\
                real 10.0.0.2:8080\n\
                real 10.0.0.3\n\
                health-check all tcp interval 1s timeout 500ms\n\
                health-check 10.0.0.1 http path /hc expect 204 interval 3s rise 1 fall 5\n\
                health-check 10.0.0.3 none\n";
    let model = detour_config::load(text, "t.conf").unwrap();
    let ts = targets(&model);
    assert_eq!(ts.len(), 2, "{ts:?}");
    assert_eq!(ts[0].addr, "10.0.0.1:80".parse().unwrap());
    assert_eq!(
        ts[0].check,
        HealthCheck {
            kind: HealthKind::Http {
                path: "/hc".to_string(),
                expect: 204
            },
            interval: 3000 * MS,
            timeout: 1000 * MS,
            rise: 1,
            fall: 5,
        }
    );
    assert_eq!(ts[1].addr, "10.0.0.2:8080".parse().unwrap());
    assert_eq!(ts[1].check, tcp(1000, 500, 2, 3));

    // Without a default only reals with their own check; `none` as default: nothing.
    let model = detour_config::load(
        "real 10.0.0.1\nreal 10.0.0.2\nhealth-check 10.0.0.2 tcp\n",
        "t",
    )
    .unwrap();
    let ts = targets(&model);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].addr, "10.0.0.2:80".parse().unwrap());
    let model = detour_config::load("real 10.0.0.1\nhealth-check all none\n", "t").unwrap();
    assert!(targets(&model).is_empty());
}

#[test]
fn status_lines() {
    let pass = |d: &[u8], e| match parse_status(d, e) {
        Outcome::Pass(s) => s,
        Outcome::Fail(s) => panic!("failed: {s}"),
        Outcome::Stopped => unreachable!(),
    };
    let fail = |d: &[u8], e| match parse_status(d, e) {
        Outcome::Fail(s) => s,
        Outcome::Pass(s) => panic!("passed: {s}"),
        Outcome::Stopped => unreachable!(),
    };
    assert_eq!(pass(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\n", 200), "HTTP 200");
    assert_eq!(pass(b"HTTP/1.0 204\r\n", 204), "HTTP 204");
    assert_eq!(pass(b"HTTP/1.0 200", 200), "HTTP 200");
    assert_eq!(
        fail(b"HTTP/1.0 404 Not Found\r\n", 200),
        "HTTP 404, expected 200"
    );
    assert_eq!(fail(b"", 200), "connection closed without a response");
    assert_eq!(
        fail(b"SSH-2.0-OpenSSH_9.2\r\n", 200),
        "malformed status line \"SSH-2.0-OpenSSH_9.2\""
    );
    assert!(fail(b"HTTP/2 200\r\n", 200).starts_with("malformed"));
    assert!(fail(b"HTTP/1.1 2000 OK\r\n", 200).starts_with("malformed"));
    assert!(fail(b"HTTP/1.1 20x OK\r\n", 200).starts_with("malformed"));
    assert_eq!(
        fail(&[b'x'; MAX_RESPONSE], 200),
        "no status line in the first 4096 bytes"
    );
    assert_eq!(fmt_duration(500 * MS), "500ms");
    assert_eq!(fmt_duration(2000 * MS), "2s");
    assert_eq!(fmt_duration(1500 * MS), "1500ms");
    assert_eq!(
        http_request(local(80), "/x"),
        "GET /x HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: detour-health\r\nConnection: close\r\n\r\n"
    );
}
