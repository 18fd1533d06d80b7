//! The TLS words of the language: `virtual ... tls` (port 443 unless given), `certificate`
//! (names checked, replaced by name, written back), `no certificate`, `tls-connections`;
//! and what the snapshot says of each virtual.

use detour_config::lang::{parse_line, Command};
use detour_config::{load, Snapshot};

#[test]
fn a_tls_virtual_defaults_to_443_and_is_written_back() {
    let text = "virtual 198.18.0.1 tls\nvirtual 198.18.0.1:8443 TLS\nvirtual 198.18.0.1:80\n";
    let m = load(text, "t").unwrap();
    let ports: Vec<(u16, bool)> = m.virtuals.iter().map(|v| (v.addr.port(), v.tls)).collect();
    assert_eq!(ports, [(443, true), (8443, true), (80, false)]);
    let written = m.to_config();
    assert!(
        written.contains("virtual 198.18.0.1:443 tls\n"),
        "{written}"
    );
    assert!(written.contains("virtual 198.18.0.1:8443 tls\n"));
    assert!(written.contains("virtual 198.18.0.1:80\n"));
    assert_eq!(load(&written, "w").unwrap(), m);
    let snap = Snapshot::compile(&m, 1);
    let tls: Vec<bool> = snap.virtuals.iter().map(|v| v.tls).collect();
    assert_eq!(tls, [true, true, false]);
    assert!(
        snap.tls.is_none(),
        "certificates are loaded by the control side"
    );
    // The same address and port twice is refused as for any virtual.
    assert!(load("virtual 198.18.0.1 tls\nvirtual 198.18.0.1:443\n", "t").is_err());
    let e = parse_line("virtual 198.18.0.1 tls extra").unwrap_err();
    assert_eq!(e.col, 24);
}

#[test]
fn certificates_by_name_replaced_removed_and_written_back() {
    let text = "certificate www.example /c/www.pem /c/www.key\ncertificate *.Example.ORG /c/org.pem /c/org.key\ncertificate * /c/d.pem /c/d.key\ncertificate www.example /c/www2.pem /c/www2.key\n";
    let mut m = load(text, "t").unwrap();
    let names: Vec<(&str, &str)> = m
        .settings
        .certificates
        .iter()
        .map(|c| (c.name.as_str(), c.cert.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("www.example", "/c/www2.pem"),
            ("*.example.org", "/c/org.pem"),
            ("*", "/c/d.pem")
        ]
    );
    let written = m.to_config();
    assert_eq!(load(&written, "w").unwrap(), m, "{written}");
    m.apply_line("no certificate *.example.org").unwrap();
    assert_eq!(m.settings.certificates.len(), 2);
    assert!(m.apply_line("no certificate nothere.example").is_err());
    for bad in [
        "certificate -",
        "certificate a..b /c /k",
        "certificate *a /c /k",
        "certificate a_b /c /k",
        "certificate x /c",
    ] {
        assert!(parse_line(bad).is_err(), "{bad}");
    }
    let long = format!("certificate {}.example /c /k", "a".repeat(64));
    assert!(parse_line(&long).is_err(), "a label over 63 bytes");
    assert!(
        matches!(parse_line("certificate WWW.Example /c /k").unwrap(), Some(Command::Certificate { name, .. }) if name.text == "www.example")
    );
}

#[test]
fn tls_handshakes_per_batch_is_bounded_and_written_back() {
    let m = load("tls-handshakes-per-batch 8\n", "t").unwrap();
    assert_eq!(m.settings.tls_handshakes_per_batch, Some(8));
    assert!(m.to_config().contains("tls-handshakes-per-batch 8\n"));
    let d = load("", "t").unwrap();
    assert_eq!(d.settings.tls_handshakes_per_batch, None);
    for bad in [
        "tls-handshakes-per-batch 0",
        "tls-handshakes-per-batch 65",
        "tls-handshakes-per-batch lots",
    ] {
        assert!(load(bad, "t").is_err(), "{bad}");
    }
}

#[test]
fn tls_connections_is_bounded_and_written_back() {
    let m = load("tls-connections 4096\n", "t").unwrap();
    assert_eq!(m.settings.tls_connections, Some(4096));
    assert!(m.to_config().contains("tls-connections 4096\n"));
    for bad in [
        "tls-connections 0",
        "tls-connections 1048577",
        "tls-connections many",
    ] {
        assert!(parse_line(bad).is_err(), "{bad}");
    }
}
