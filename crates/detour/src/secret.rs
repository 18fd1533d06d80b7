//! The SYN-cookie secret from a file (`detour run --cookie-secret-file PATH`), so that every
//! director of a cluster shares one config without the secret living in it.
//!
//! Contract: the file holds one line of 64 hex digits, the secret detour issues cookies
//! with, and optionally a second, a secret whose cookies it also accepts (surrounding white
//! space and `#` comment lines are ignored). It is a regular file owned by the user detour runs as, and is readable and
//! writable by that owner only (mode `0600` or `0400`); anything else is refused with the
//! reason. The file's secret overrides a `cookie-secret` in the config. It is read at start
//! and again on every `reload` / SIGHUP; a changed secret reaches the workers as a new
//! snapshot, and each worker keeps accepting cookies of the previous secret for a grace
//! window (see the data path). A rolling change across directors refuses no handshake, even
//! when a connection's SYN and ACK reach different directors, in two passes: first every
//! director gets `OLD` then `NEW` (accepts the new one), then every director gets `NEW` then
//! `OLD` (issues the new one, still accepts the old).

use detour_config::lang::{self, Command};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Largest secret file read.
const MAX_LEN: u64 = 4096;

/// What the file says: the secret to issue cookies with, and one also accepted.
pub type Secrets = ([u8; 32], Option<[u8; 32]>);

/// Read and check the secret file.
pub fn read(path: &Path) -> Result<Secrets, String> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name}: not a regular file"));
    }
    let me = crate::privs::effective_uid()?;
    check_owner(meta.uid(), meta.mode(), me).map_err(|e| format!("{name}: {e}"))?;
    if meta.len() > MAX_LEN {
        return Err(format!("{name}: larger than {MAX_LEN} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    parse(&text).map_err(|e| format!("{name}: {e}"))
}

/// Owner-only: owned by `me`, no permission bits for group or others.
fn check_owner(uid: u32, mode: u32, me: u32) -> Result<(), String> {
    if uid != me {
        return Err(format!(
            "owned by uid {uid}, not by detour's uid {me}; refused"
        ));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {:04o} lets group or others read it; chmod 600 (refused)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// The secrets in the file's text: one or two lines of 64 hex digits, `#` lines ignored.
fn parse(text: &str) -> Result<Secrets, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(first) = lines.next() else {
        return Err("expected 64 hex digits, found an empty file".into());
    };
    let issue = parse_line(first)?;
    let also = lines.next().map(parse_line).transpose()?;
    if lines.next().is_some() {
        return Err("expected one or two lines of 64 hex digits, found more".into());
    }
    Ok((issue, also.filter(|a| *a != issue)))
}

fn parse_line(line: &str) -> Result<[u8; 32], String> {
    if line.split_whitespace().count() != 1 {
        return Err("expected 64 hex digits, found several words".into());
    }
    // The same parser as the config's `cookie-secret` command.
    match lang::parse_line(&format!("cookie-secret {line}")) {
        Ok(Some(Command::CookieSecret { secret })) => Ok(secret),
        Ok(_) => Err("expected 64 hex digits".into()),
        Err(e) => Err(format!("{}", e.at("secret", 1))
            .trim_start_matches("secret:1:")
            .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn a_line_of_hex_is_the_secret() {
        let (s, also) = parse(&format!("# rotated 2026-11-29\n{HEX}\n")).unwrap();
        assert_eq!(s[0], 0x00);
        assert_eq!(s[1], 0x11);
        assert_eq!(s[31], 0xff);
        assert_eq!(also, None);
    }

    #[test]
    fn a_second_line_is_also_accepted() {
        let next = HEX.replace('0', "a");
        let (s, also) = parse(&format!("{HEX}\n{next}\n")).unwrap();
        assert_eq!(s[1], 0x11);
        assert_eq!(also.unwrap()[0], 0xaa);
        // The same secret twice is one.
        assert_eq!(parse(&format!("{HEX}\n{HEX}\n")).unwrap().1, None);
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(parse("").is_err());
        assert!(parse(&HEX[..62]).is_err());
        assert!(parse(&format!("{HEX}\n{HEX}\n{HEX}\n")).is_err());
        assert!(parse(&format!("{}zz", &HEX[..62])).is_err());
        assert!(parse(&format!("{HEX} extra")).is_err());
    }

    #[test]
    fn only_owner_only_files_are_accepted() {
        assert!(check_owner(0, 0o100600, 0).is_ok());
        assert!(check_owner(0, 0o100400, 0).is_ok());
        assert!(check_owner(0, 0o100640, 0).is_err());
        assert!(check_owner(0, 0o100604, 0).is_err());
        assert!(check_owner(1000, 0o100600, 0).is_err());
    }

    #[test]
    fn a_group_readable_file_is_refused_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("detour-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        std::fs::write(&f, HEX).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&f).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&f).unwrap().0[1], 0x11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
