//! Bounded commands in a lab's namespaces: run (`run_in`, `client`, `curl`), start
//! ([`Spawned`]) and wait with a time limit, killing what overruns.

use super::*;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a bounded command run produced.
#[derive(Debug)]
pub struct Out {
    /// Exit code; `None` when killed by a signal or by the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

impl Lab {
    /// Runs `args` in namespace `ns`, bounded by `limit` (killed after it).
    pub fn run_in(&self, ns: &str, args: &[&str], limit: Duration) -> Out {
        let child = self.spawn_in(ns, args);
        self.wait_bounded(vec![child], limit).pop().unwrap()
    }

    /// Runs `args` in the client namespace, bounded by `limit`.
    pub fn client(&self, args: &[&str], limit: Duration) -> Out {
        self.run_in(&self.cns, args, limit)
    }

    /// `curl` in the client namespace with `--max-time secs`, `--connect-timeout` at most 10 s,
    /// and a hard limit a bit above.
    pub fn curl(&self, secs: u32, args: &[&str]) -> Out {
        let s = secs.to_string();
        let c = secs.min(10).to_string();
        let mut a = vec!["curl", "--max-time", &s, "--connect-timeout", &c];
        a.extend_from_slice(args);
        self.client(&a, Duration::from_secs(u64::from(secs) + 10))
    }

    /// Starts `args` in namespace `ns`; stdout and stderr go to files of the lab.
    pub fn spawn_in(&self, ns: &str, args: &[&str]) -> Spawned {
        let out = self.path("stdout");
        let err = self.path("stderr");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"));
        Spawned {
            child,
            out,
            err,
            done: None,
            timed_out: false,
        }
    }

    /// Waits for all `procs`, killing those still running after `limit`.
    pub fn wait_bounded(&self, mut procs: Vec<Spawned>, limit: Duration) -> Vec<Out> {
        let deadline = Instant::now() + limit;
        loop {
            let mut pending = 0;
            for p in procs.iter_mut().filter(|p| p.done.is_none()) {
                match p.child.try_wait() {
                    Ok(Some(st)) => p.done = Some(st.code()),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = p.child.kill();
                        let _ = p.child.wait();
                        p.timed_out = true;
                        p.done = Some(None);
                    }
                    Ok(None) => pending += 1,
                    Err(_) => p.done = Some(None),
                }
            }
            if pending == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        procs
            .into_iter()
            .map(|p| {
                let out = Out {
                    code: p.done.flatten(),
                    stdout: fs::read_to_string(&p.out).unwrap_or_default(),
                    stderr: fs::read_to_string(&p.err).unwrap_or_default(),
                    timed_out: p.timed_out,
                };
                let _ = fs::remove_file(&p.out);
                let _ = fs::remove_file(&p.err);
                out
            })
            .collect()
    }
}

/// A process started by [`Lab::spawn_in`].
pub struct Spawned {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    /// Set once it has ended: its exit code, if it exited.
    done: Option<Option<i32>>,
    timed_out: bool,
}
