//! `detour check` on config files as bytes: any byte inside a comment is accepted; a byte
//! that is not UTF-8 outside one is an error with file, line and column (exit 1); a FIFO is
//! refused without hanging (exit 2).

use std::process::Command;

fn check(path: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_detour"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run detour check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reads_bytes_and_points_at_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("detour-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.conf");
    std::fs::write(
        &good,
        b"# r\xe9sum\xe9 in Latin-1\nvirtual 198.18.0.1 ! caf\xe9\n",
    )
    .unwrap();
    let (code, out, err) = check(&good);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("198.18.0.1:80"), "{out}");

    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        b"virtual 198.18.0.1\nreal 198.18.\xe9.2 # fine: \xff\n",
    )
    .unwrap();
    let (code, _, err) = check(&bad);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}:2:13: expected printable ASCII, found byte 0xe9 (not UTF-8)",
            bad.display()
        )),
        "{err}"
    );

    let fifo = dir.join("fifo.conf");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, _, err) = check(&fifo);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_loads_the_certificates_of_tls_virtuals() {
    let dir = std::env::temp_dir().join(format!("detour-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../tls/tests/data");
    let conf = |cert: &str| {
        format!("virtual 198.18.0.1 tls\ncertificate www.example {data}/{cert} {data}/www.example.key\n")
    };
    let good = dir.join("tls.conf");
    std::fs::write(&good, conf("www.example.pem")).unwrap();
    let (code, out, err) = check(&good);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("198.18.0.1:443"), "{out}");
    let bad = dir.join("tls-bad.conf");
    std::fs::write(&bad, conf("rsa.example.pem")).unwrap();
    let (code, _, err) = check(&bad);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("certificate www.example: the key does not match"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
