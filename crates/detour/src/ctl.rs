//! The control socket: a unix socket (owner-only) on which `detour ctl` sends one command
//! line and reads the answer; and the Prometheus text endpoint on a loopback TCP address.
//! Both are served from the control thread, never from a worker.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest command line accepted on the socket.
pub const MAX_COMMAND: u64 = 8192;
/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/detour.sock";

pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl CtlServer {
    /// Bind the socket, owner-only. A stale socket file (nobody listening) is replaced; a
    /// live one is an error (another detour runs).
    pub fn bind(path: &Path, mode: u32) -> Result<CtlServer, String> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{}: another detour is listening there",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(CtlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serve the connections waiting now, each with `handle(command) -> answer`.
    pub fn poll(&self, mut handle: impl FnMut(&str) -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = serve_one(stream, &mut handle);
        }
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, handle: &mut impl FnMut(&str) -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_COMMAND + 1)).read_until(b'\n', &mut line)?;
    let answer = if line.len() as u64 > MAX_COMMAND {
        format!("error: a command of at most {MAX_COMMAND} bytes\n")
    } else {
        match std::str::from_utf8(&line) {
            Ok(text) => handle(text.trim_end_matches(['\n', '\r'])),
            Err(_) => "error: expected UTF-8 text\n".to_string(),
        }
    };
    (&stream).write_all(answer.as_bytes())
}

/// Send one command and return the answer (`detour ctl`).
pub fn request(path: &Path, command: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is detour running?)", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(command.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(b"\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The Prometheus text endpoint.
pub struct Metrics {
    listener: TcpListener,
}

impl Metrics {
    pub fn bind(addr: SocketAddr) -> Result<Metrics, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("metrics on {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Metrics { listener })
    }

    /// Answer the scrapes waiting now; `body()` renders the metrics.
    pub fn poll(&self, mut body: impl FnMut() -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = (|| -> std::io::Result<()> {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                stream.set_write_timeout(Some(Duration::from_secs(2)))?;
                let mut first = String::new();
                BufReader::new((&stream).take(8192)).read_line(&mut first)?;
                let mut w = &stream;
                if first.starts_with("GET /metrics ") || first.starts_with("GET / ") {
                    let b = body();
                    write!(
                        w,
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    )
                } else {
                    w.write_all(
                        b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                }
            })();
        }
    }
}
