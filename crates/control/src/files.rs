//! Config files an operator can trust: reading one (a regular file of at most [`MAX_CONFIG`]
//! bytes; opened without blocking, so a FIFO cannot hang the reader) and writing one back
//! (through an exclusive temp file in the same directory, keeping the file's owner and mode,
//! through a symlinked path to its target).

use rustix::fs::{FileType, Mode, OFlags};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
        // The mode first, while the file is still ours; then the old owner.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid, _)) = old {
            let m = f.metadata()?;
            if (m.uid(), m.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
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

/// 16 random hex digits (for temp names).
pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    // getrandom blocks only before the kernel's pool is initialised (early boot).
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    let n = u64::from_le_bytes(b) ^ u64::from(std::process::id());
    format!("{n:016x}")
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
}
