//! The control socket's file: never replacing anything but a stale socket, and no wider
//! than its mode from the moment it exists.

use detour_control::files::random_hex;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Bind the control socket at `path` with `mode` (0600, or 0660 for a group of operators),
/// and no wider from the moment it exists: it is bound in a fresh 0700 directory next to
/// `path`, given its mode there, then renamed into place. Whatever
/// is at `path` already is replaced only when it is a stale socket (connecting to it is
/// refused); a live socket (another detour) or anything else is an error, left intact.
pub fn bind_socket(path: &Path, mode: u32) -> Result<UnixListener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(format!(
                    "{shown}: exists and is not a socket; refusing to replace it"
                ));
            }
            match UnixStream::connect(path) {
                Ok(_) => return Err(format!("{shown}: another detour is listening there")),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {} // stale
                Err(e) => return Err(format!("{shown}: {e}; refusing to replace it")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let private = dir.join(format!(".detour-ctl.{}", random_hex()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| format!("{}: {e}", private.display()))?;
    let inner = private.join("sock");
    let r = (|| -> std::io::Result<UnixListener> {
        let l = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&inner, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&private);
    r.map_err(|e| format!("{shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("detour-sock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn socket_replaces_only_a_stale_socket() {
        let d = scratch("sock");
        let p = d.join("ctl.sock");
        std::fs::write(&p, "precious").unwrap();
        let e = bind_socket(&p, 0o600).unwrap_err();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious");
        std::fs::remove_file(&p).unwrap();

        let l = bind_socket(&p, 0o600).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(UnixStream::connect(&p).is_ok());
        let e = bind_socket(&p, 0o600).unwrap_err();
        assert!(e.contains("another detour"), "{e}");
        drop(l); // the file stays: a stale socket
        let _l = bind_socket(&p, 0o600).unwrap();
        assert!(UnixStream::connect(&p).is_ok());
        // Only the socket is left in the directory (no private temp directory).
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
