//! The director side of a lab: reader threads blocking on the taps, and the director thread
//! owning the [`Worker`] that sends each `Tx` verdict out of its port, keeps tallies and the
//! last frames for the trace, swaps snapshots and stops on request or at a hard limit.

use super::*;
use detour_config::Snapshot;
use detour_dataplane::{Port, Verdict, Worker, WorkerConfig};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tun_tap::Iface;

/// The director thread stops on its own after this long, whatever happens.
const DIRECTOR_LIMIT: Duration = Duration::from_secs(300);
/// Frames kept for the trace printed on failure.
const TRACE_LEN: usize = 160;

pub(super) enum Msg {
    Frame(Port, Vec<u8>),
    Install(Arc<Snapshot>),
    /// The report text, and how many frames the harness found wrong.
    Report(mpsc::Sender<(String, u64)>),
    Stop,
}

pub(super) fn reader(
    port: Port,
    iface: &Iface,
    tx: &mpsc::Sender<Msg>,
    stop: &AtomicBool,
    start: Instant,
) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < DIRECTOR_LIMIT {
        match iface.recv(&mut buf) {
            Ok(n) => {
                if tx.send(Msg::Frame(port, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // the tap is gone
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    rx: [u64; 2],
    tx: [u64; 2],
    drops: u64,
    passes: u64,
    send_errors: u64,
    bad_checksums: u64,
    bad_port: u64,
}

pub(super) fn director(
    snap: Arc<Snapshot>,
    taps: [Arc<Iface>; 2],
    rx: mpsc::Receiver<Msg>,
    stop: &AtomicBool,
    start: Instant,
) {
    let cfg = WorkerConfig {
        macs: DIRECTOR_MACS,
        cookie_secret: [7u8; 32],
        table_key: [6u8; 16],
        one_armed: false,
        kernel_addrs: Vec::new(), // this harness has no kernel of its own
    };
    let mut w = Worker::new(cfg, snap);
    let mut buf = [0u8; 2048];
    let mut tally = Tally::default();
    let mut trace: VecDeque<String> = VecDeque::with_capacity(TRACE_LEN);
    let mut first_bad: Option<String> = None;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < DIRECTOR_LIMIT {
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Frame(port, frame) => {
                let len = frame.len().min(buf.len());
                buf[..len].copy_from_slice(&frame[..len]);
                tally.rx[usize::from(port.0 & 1)] += 1;
                let now_ms = start.elapsed().as_millis() as u64;
                let verdict = w.process(&mut buf, len, port, now_ms);
                let t = start.elapsed().as_secs_f64();
                let input = summary(&frame[..len]);
                let line = match verdict {
                    Verdict::Tx { port: out, len } => {
                        let out_i = usize::from(out.0);
                        let frame_out = &buf[..len.min(buf.len())];
                        let bad = checksum_problem(frame_out);
                        if let Some(b) = &bad {
                            tally.bad_checksums += 1;
                            if first_bad.is_none() {
                                first_bad = Some(format!(
                                    "{b}: {} -> {}",
                                    summary(&frame[..]),
                                    summary(frame_out)
                                ));
                            }
                        }
                        if out_i < 2 {
                            tally.tx[out_i] += 1;
                            if taps[out_i].send(frame_out).is_err() {
                                tally.send_errors += 1;
                            }
                        } else {
                            tally.bad_port += 1;
                        }
                        format!(
                            "{t:9.4} in{} {input}\n            => TX out{} {}{}",
                            port.0,
                            out.0,
                            summary(frame_out),
                            bad.map(|b| format!("  [{b}]")).unwrap_or_default()
                        )
                    }
                    Verdict::Drop(reason) => {
                        tally.drops += 1;
                        format!(
                            "{t:9.4} in{} {input}\n            => DROP {reason:?}",
                            port.0
                        )
                    }
                    Verdict::Pass => {
                        tally.passes += 1;
                        format!("{t:9.4} in{} {input}\n            => PASS", port.0)
                    }
                };
                if trace.len() == TRACE_LEN {
                    trace.pop_front();
                }
                trace.push_back(line);
            }
            Msg::Install(s) => {
                w.install(s);
                if trace.len() == TRACE_LEN {
                    trace.pop_front();
                }
                trace.push_back(format!(
                    "{:9.4} -- new snapshot installed",
                    start.elapsed().as_secs_f64()
                ));
            }
            Msg::Report(reply) => {
                let mut s = String::new();
                let c = w.counters();
                let _ = writeln!(s, "worker counters: {c:?}");
                let drops: Vec<_> = c.drops_by_reason().filter(|(_, n)| *n > 0).collect();
                let _ = writeln!(s, "worker drops by reason: {drops:?}");
                let _ = writeln!(
                    s,
                    "harness: {tally:?} (rx/tx index 0 = client port, 1 = server port)"
                );
                if let Some(b) = &first_bad {
                    let _ = writeln!(s, "first frame sent with a bad checksum: {b}");
                }
                let _ = writeln!(s, "last {} frames (oldest first):", trace.len());
                for l in &trace {
                    let _ = writeln!(s, "  {l}");
                }
                let problems = tally.bad_checksums + tally.send_errors + tally.bad_port;
                let _ = reply.send((s, problems));
            }
            Msg::Stop => break,
        }
    }
}
