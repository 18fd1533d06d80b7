//! Files an operator can trust: reading a config (a regular file of at most [`MAX_CONFIG`]
//! bytes; opened without blocking, so a FIFO cannot hang the reader), writing one back
//! (through an exclusive temp file in the same directory, keeping the file's owner and mode,
//! through a symlinked path to its target), and binding the control socket (never replacing
//! anything but a stale socket; owner-only from the moment it exists).

use rustix::fs::{FileType, Mode, OFlags};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Most bytes read from a config file.
pub const MAX_CONFIG: u64 = 16 << 20;
/// Mode of a config file `write memory` creates.
pub const NEW_CONFIG_MODE: u32 = 0o600;
/// Most symbolic links followed from a config path to its file.
const MAX_LINKS: usize = 40;

/// Read a config file: refused unless it is a regular file of at most [`MAX_CONFIG`] bytes.
pub fn read_config(path: &Path) -> Result<Vec<u8>, String> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| std::io::Error::from(e).to_string())?;
    let st = rustix::fs::fstat(&fd).map_err(|e| std::io::Error::from(e).to_string())?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("not a regular file".into());
    }
    if st.st_size as u64 > MAX_CONFIG {
        return Err(format!("larger than {MAX_CONFIG} bytes"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(format!("larger than {MAX_CONFIG} bytes"));
    }
    Ok(bytes)
}

/// The file a path names after following symbolic links (the path itself when it is not
/// one, or does not exist yet). A link's relative target is taken from the link's directory.
pub fn link_target(path: &Path) -> Result<PathBuf, String> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                p = match p.parent() {
                    Some(dir) if t.is_relative() => dir.join(t),
                    _ => t,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(format!(
        "{}: too many levels of symbolic links",
        path.display()
    ))
}

/// Replace the file at `path` (through symbolic links, which stay) with `text` atomically:
/// a temp file created exclusively (`O_EXCL`, never following a link, random name) in the
/// target's directory, given the old file's owner, group and mode (or [`NEW_CONFIG_MODE`]),
/// written, fsynced, renamed over the target, and the directory fsynced.
pub fn write_config(path: &Path, text: &str) -> Result<PathBuf, String> {
    let target = link_target(path)?;
    let name = target
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", target.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let old = match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => Some((m.uid(), m.gid(), m.mode() & 0o7777)),
        Ok(_) => return Err(format!("{}: not a regular file", target.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", target.display())),
    };
    let mode = old.map_or(NEW_CONFIG_MODE, |o| o.2);
    let tmp = dir.join(format!(".{name}.{}.tmp", random_hex()));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        if let Some((uid, gid, _)) = old {
            let m = f.metadata()?;
            if (m.uid(), m.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    match r {
        Ok(()) => Ok(target),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!("{}: {e}", target.display()))
        }
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    // getrandom blocks only before the kernel's pool is initialised (early boot).
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    let n = u64::from_le_bytes(b) ^ u64::from(std::process::id());
    format!("{n:016x}")
}

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

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("detour-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn read_refuses_fifos_directories_and_big_files() {
        let d = scratch("read");
        let fifo = d.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert_eq!(read_config(&fifo).unwrap_err(), "not a regular file");
        assert_eq!(read_config(&d).unwrap_err(), "not a regular file");
        let big = d.join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG + 1)
            .unwrap();
        assert!(read_config(&big).unwrap_err().starts_with("larger than"));
        std::fs::write(d.join("ok"), b"real 10.0.0.1\n").unwrap();
        assert_eq!(read_config(&d.join("ok")).unwrap(), b"real 10.0.0.1\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_keeps_mode_creates_0600_and_writes_through_links() {
        let d = scratch("write");
        let f = d.join("a.conf");
        write_config(&f, "real 10.0.0.1\n").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(m.mode() & 0o7777, NEW_CONFIG_MODE);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_config(&f, "real 10.0.0.2\n").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "real 10.0.0.2\n");
        // A relative symlink in another directory: the target changes, the link stays.
        let links = d.join("links");
        std::fs::create_dir(&links).unwrap();
        let l = links.join("detour.conf");
        std::os::unix::fs::symlink("../a.conf", &l).unwrap();
        assert_eq!(
            write_config(&l, "real 10.0.0.3\n").unwrap(),
            links.join("../a.conf")
        );
        assert!(std::fs::symlink_metadata(&l)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "real 10.0.0.3\n");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        // No temp file left behind.
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 2, "{left:?}");
        std::fs::remove_dir_all(&d).unwrap();
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
