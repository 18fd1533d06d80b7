//! The certificates of `tls` virtuals on the control side: loaded into every snapshot and
//! shared by `Arc` (a health change reuses them, a certificate change or `reload` builds
//! new ones while the old stay valid for whoever holds them); files that do not load are
//! refused with the running config unchanged.

mod common;

use common::*;
use std::sync::Arc;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tls/tests/data");

fn conf(extra: &str) -> String {
    format!(
        "virtual 198.18.0.1 tls\nreal 198.18.1.11\nurl a http://a/%d\nbind 198.18.0.1:443 a\ncertificate www.example {DATA}/www.example.pem {DATA}/www.example.key\n{extra}"
    )
}

#[test]
fn snapshots_carry_the_certificates_and_health_changes_reuse_them() {
    let dir = scratch("tls-share");
    let mut c = control(&dir, &conf(""), 2);
    let first = c
        .snap
        .tls
        .clone()
        .expect("a tls virtual gets its certificates");
    assert!(c.snap.virtuals[0].tls);
    c.health("198.18.1.11:80".parse().unwrap(), false);
    assert!(
        Arc::ptr_eq(c.snap.tls.as_ref().unwrap(), &first),
        "same Arc after a health change"
    );
    // A new certificate builds a new config; the old one stays whole for its holders.
    let out = c.command(&format!(
        "certificate * {DATA}/default.example.pem {DATA}/default.example.key"
    ));
    assert!(!out.refused(), "{}", out.text());
    let second = c.snap.tls.clone().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(
        second.leaf_for(Some("other.example")),
        second.leaf_for(None)
    );
    assert_ne!(
        first.leaf_for(Some("other.example")),
        second.leaf_for(Some("other.example"))
    );
    assert_eq!(
        first.leaf_for(Some("www.example")),
        second.leaf_for(Some("www.example"))
    );
}

#[test]
fn certificates_that_do_not_load_are_refused_with_nothing_changed() {
    let dir = scratch("tls-refuse");
    let mut c = control(&dir, &conf(""), 1);
    let before = (c.model.clone(), c.epoch);
    for bad in [
        format!("certificate x.example {DATA}/missing.pem {DATA}/www.example.key"),
        format!("certificate x.example {DATA}/www.example.pem {DATA}/rsa.example.key"),
        format!("certificate x.example {DATA}/www.example.key {DATA}/www.example.key"),
        format!("certificate x.example {DATA}/www.example.pem {DATA}/www.example.pem"),
        format!("certificate x.example {DATA} {DATA}/www.example.key"),
    ] {
        let out = c.command(&bad);
        assert!(out.refused(), "{bad}");
        assert!(out.text().contains("unchanged"), "{}", out.text());
        assert_eq!((c.model.clone(), c.epoch), before, "{bad}");
    }
    // Removing the only certificate of a tls virtual is refused too.
    assert!(c.command("no certificate www.example").refused());
    // A reload of a file whose certificate does not load is refused whole.
    std::fs::write(
        &c.path,
        conf("certificate y.example /nonexistent.pem /nonexistent.key\n"),
    )
    .unwrap();
    assert!(c.reload().refused());
    assert_eq!(c.model, before.0);
}

#[test]
fn no_tls_virtual_loads_nothing() {
    let dir = scratch("tls-none");
    let c = control(
        &dir,
        "virtual 198.18.0.1\ncertificate www.example /nonexistent.pem /nonexistent.key\n",
        1,
    );
    assert!(c.snap.tls.is_none());
}

#[test]
fn tickets_follow_the_cookie_secret() {
    let model = |s: &str| detour_config::load(&conf(&format!("cookie-secret {s}\n")), "t").unwrap();
    let a = detour_control::tls::load(&model(&"11".repeat(32)), &[1; 32])
        .unwrap()
        .unwrap();
    let b = detour_control::tls::load(&model(&"11".repeat(32)), &[2; 32])
        .unwrap()
        .unwrap();
    assert_eq!(
        a.ticket_key_id(),
        b.ticket_key_id(),
        "the configured secret, not the director's own"
    );
    let c = detour_control::tls::load(&model(&"22".repeat(32)), &[1; 32])
        .unwrap()
        .unwrap();
    assert_ne!(a.ticket_key_id(), c.ticket_key_id());
    let unset = detour_config::load(&conf(""), "t").unwrap();
    let d = detour_control::tls::load(&unset, &[1; 32])
        .unwrap()
        .unwrap();
    let e = detour_control::tls::load(&unset, &[2; 32])
        .unwrap()
        .unwrap();
    assert_ne!(
        d.ticket_key_id(),
        e.ticket_key_id(),
        "without one, the director's own"
    );
}
