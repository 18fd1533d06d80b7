//! systemd's readiness protocol (`sd_notify(3)`), without libsystemd: when `$NOTIFY_SOCKET`
//! names a unix datagram socket (a path, or `@name` for the abstract namespace), send it
//! `READY=1` once the workers run and the control socket listens, `RELOADING=1` /
//! `READY=1` around a reload, `STOPPING=1` when stopping. Without the variable nothing is
//! sent. A failure to notify is reported once and otherwise ignored: readiness is advisory.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// What the service tells its manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Reloading,
    Stopping,
}

impl State {
    fn message(self) -> &'static str {
        match self {
            State::Ready => "READY=1\n",
            State::Reloading => "RELOADING=1\n",
            State::Stopping => "STOPPING=1\n",
        }
    }
}

/// Tell the service manager `state` (no-op without `$NOTIFY_SOCKET`).
pub fn notify(state: State) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&target.to_string_lossy(), state.message()) {
        crate::log!(
            crate::log::Event::Notify,
            "notify {state:?} to $NOTIFY_SOCKET: {e}"
        );
    }
}

fn send(target: &str, message: &str) -> std::io::Result<()> {
    let addr = address(target)?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

fn address(target: &str) -> std::io::Result<SocketAddr> {
    match target.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("detour-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), State::Ready.message()).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stopping_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("detour-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        send(&format!("@{name}"), State::Stopping.message()).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(send("/nonexistent/detour/notify.sock", "READY=1\n").is_err());
    }
}
