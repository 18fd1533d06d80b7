//! Each kind of command applied, refused and written back; `reload`; every config of
//! `configs/` round-tripped through `write memory`.

mod common;
use common::*;
use detour_control::Outcome;

/// (command, the line `show config` then holds). One per verb of the language.
const APPLIED: &[(&str, &str)] = &[
    ("virtual 198.18.0.9", "virtual 198.18.0.9:80"),
    ("real 198.18.1.50:8080", "real 198.18.1.50:8080"),
    ("dip 198.18.0.8 real 198.18.1.51", "dip 198.18.0.8:80 real 198.18.1.51:80"),
    ("url spare http://spare.lab/%d 307", "url spare http://spare.lab/%d 307"),
    ("no bind 198.18.0.1 real3", "bind 198.18.0.1:80 real1 real2"),
    ("weight 198.18.0.2 7", "weight 198.18.1.11:8080 7"),
    ("backup 198.18.0.2 198.18.0.3", "backup 198.18.1.11:8080 198.18.0.3:80"),
    ("out-of-service real 198.18.0.4 sticky", "out-of-service real 198.18.1.12:8080 sticky"),
    ("bind 198.18.0.1 spare", "bind 198.18.0.1:80 real1 real2 spare"),
    ("link spare 198.18.0.9", "link spare 198.18.0.9:80"),
    ("no dip 198.18.0.8", "real 198.18.1.51:80"),
    ("no real 198.18.1.51", "real 198.18.1.50:8080"),
    ("predictor 198.18.0.1 hash", "predictor 198.18.0.1:80 hash"),
    ("health-check 198.18.0.3 http path /hc expect 204", "health-check 198.18.0.3:80 http path /hc expect 204 interval 2000ms timeout 1000ms rise 2 fall 3"),
    ("cookie-secret 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "cookie-secret 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
];

#[test]
fn each_command_applies_and_is_written_back() {
    let dir = scratch("apply");
    let mut c = control(&dir, &config("lab.conf"), 1);
    for (cmd, want) in APPLIED {
        let epoch = c.epoch;
        let o = c.command(cmd);
        assert_eq!(
            o,
            Outcome::Applied {
                epoch: epoch + 1,
                restart: false
            },
            "{cmd}"
        );
        assert!(o.changed());
        assert_eq!(o.text(), format!("ok: epoch {}\n", epoch + 1));
        let shown = c.command("show config").text();
        assert!(
            shown.lines().any(|l| l == *want),
            "{cmd}: no `{want}` in\n{shown}"
        );
    }
    // Written back: the file loads to the running model.
    let o = c.command("write memory");
    assert!(matches!(o, Outcome::Written { through: None, .. }), "{o:?}");
    let text = std::fs::read_to_string(&c.path).unwrap();
    assert_eq!(detour_config::load(&text, "w").unwrap(), c.model);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_wait_for_a_restart() {
    let dir = scratch("restart");
    let mut c = control(&dir, &config("lab.conf"), 1);
    for cmd in [
        "interface client eth9 queues 4",
        "cores 1",
        "metrics 127.0.0.1:9200",
        "gateway 198.18.0.99",
    ] {
        let o = c.command(cmd);
        assert!(
            matches!(o, Outcome::Applied { restart: true, .. }),
            "{cmd}: {o:?}"
        );
        assert!(o.text().contains("takes effect when detour restarts"));
    }
    let shown = c.command("show config").text();
    assert!(shown.contains("metrics 127.0.0.1:9200"), "{shown}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_command_changes_nothing() {
    let dir = scratch("refuse");
    let mut c = control(&dir, &config("lab.conf"), 1);
    let before = (c.model.clone(), c.epoch);
    for (cmd, why) in [
        ("bind 198.18.0.1 nobody", "<ctl>:1:17: expected a defined url, found `nobody`"),
        ("weight 198.18.0.2 x", "<ctl>:1:19: expected a weight"),
        ("frobnicate", "<ctl>:1:1: expected a command"),
        ("no real 198.18.1.11:8080", "<ctl>:1:"),
        ("show nonsense\u{1b}[2J", "expected `show config|virtual|real|url|bind|backup|statistics|health|announce`, found `nonsense\\u{1b}[2J`"),
        ("show", "expected `show config|"),
    ] {
        let o = c.command(cmd);
        assert!(o.refused(), "{cmd}: {o:?}");
        assert!(!o.changed());
        let text = o.text();
        assert!(text.starts_with("error: ") && text.contains(why), "{cmd}: {text}");
        assert!(!text.contains('\u{1b}'), "raw control byte echoed: {text:?}");
    }
    assert_eq!((c.model.clone(), c.epoch), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reload_applies_a_good_file_and_refuses_a_bad_one_or_a_fifo() {
    let dir = scratch("reload");
    let mut c = control(&dir, &config("lab.conf"), 1);
    let before = c.model.clone();
    std::fs::write(
        &c.path,
        b"virtual 198.18.0.1\nbind 198.18.0.1 nobody # caf\xe9\nreal 198.18.\xe9\n",
    )
    .unwrap();
    let o = c.command("reload");
    let text = o.text();
    assert!(o.refused(), "{text}");
    assert!(
        text.contains("detour.conf:2:17: expected a defined url, found `nobody`"),
        "{text}"
    );
    assert!(
        text.contains("detour.conf:3:13: expected printable ASCII, found byte 0xe9 (not UTF-8)"),
        "{text}"
    );
    assert!(
        text.ends_with("2 error(s) in ".to_string().as_str()) || text.contains("2 error(s) in"),
        "{text}"
    );
    assert_eq!(c.model, before);

    std::fs::write(
        &c.path,
        format!("{}\nweight 198.18.0.2 5 # é\n", config("lab.conf")),
    )
    .unwrap();
    let o = c.command("reload");
    assert!(
        matches!(o, Outcome::Reloaded { .. }) && o.changed(),
        "{o:?}"
    );
    assert_eq!(c.model.reals[0].weight, 5);

    std::fs::remove_file(&c.path).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&c.path)
        .status()
        .unwrap()
        .success());
    let o = c.command("reload");
    assert!(
        o.text()
            .contains("not a regular file; running config unchanged"),
        "{o:?}"
    );
    assert_eq!(c.model.reals[0].weight, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_config_round_trips_through_write_memory() {
    for name in ["acme.conf", "load-share.conf", "lab.conf"] {
        let dir = scratch(&format!("rt-{name}"));
        let text = config(name);
        let mut c = control(&dir, &text, 1);
        let model = c.model.clone();
        assert!(matches!(c.command("write memory"), Outcome::Written { .. }));
        let written = std::fs::read_to_string(&c.path).unwrap();
        assert!(written.starts_with("# written by detour `write memory`"));
        assert_eq!(
            detour_config::load(&written, name).unwrap(),
            model,
            "{name}"
        );
        // Reloading what was written changes nothing; writing again gives the same config.
        assert!(matches!(c.command("reload"), Outcome::Reloaded { .. }));
        assert_eq!(c.model, model, "{name}");
        c.command("write memory");
        let again = std::fs::read_to_string(&c.path).unwrap();
        let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&again), body(&written), "{name}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn write_memory_through_a_symlink_names_both() {
    let dir = scratch("link");
    let mut c = control(&dir, &config("acme.conf"), 1);
    let target = dir.join("real.conf");
    std::fs::rename(&c.path, &target).unwrap();
    std::os::unix::fs::symlink("real.conf", &c.path).unwrap();
    let o = c.command("write memory");
    assert_eq!(
        o.text(),
        format!(
            "ok: wrote {} (through {})\n",
            target.display(),
            c.path.display()
        )
    );
    assert!(std::fs::symlink_metadata(&c.path)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// IPv6 ids through the control plane: applied, shown, refused across families, written back.
#[test]
fn ipv6_ids_apply_show_refuse_and_write_back() {
    let dir = scratch("ipv6");
    let mut c = control(&dir, &config("lab.conf"), 1);
    for (cmd, want) in [
        ("virtual [2001:db8::31]:80", "virtual [2001:db8::31]:80"),
        (
            "dip 2001:db8::32 real [2001:db8:1::32]:8080",
            "dip [2001:db8::32]:80 real [2001:db8:1::32]:8080",
        ),
        (
            "bind [2001:db8::31] [2001:db8::32]:80",
            "bind [2001:db8::31]:80 [2001:db8:1::32]:8080",
        ),
        (
            "health-check [2001:db8:1::32]:8080 tcp",
            "health-check [2001:db8:1::32]:8080 tcp interval 2000ms timeout 1000ms rise 2 fall 3",
        ),
    ] {
        let o = c.command(cmd);
        assert!(o.changed(), "{cmd}: {o:?}");
        let shown = c.command("show config").text();
        assert!(
            shown.lines().any(|l| l == want),
            "{cmd}: no `{want}` in\n{shown}"
        );
    }
    assert!(c
        .command("show real")
        .text()
        .contains("[2001:db8:1::32]:8080"));
    assert!(c
        .command("show virtual")
        .text()
        .contains("[2001:db8::31]:80"));
    let before = (c.model.clone(), c.epoch);
    for (cmd, why) in [
        (
            "bind 198.18.0.1 [2001:db8::32]",
            "<ctl>:1:17: expected a real of the virtual's family",
        ),
        (
            "dip 198.18.0.77 real [2001:db8:1::77]",
            "<ctl>:1:5: expected a DIP and its real in one address family",
        ),
        ("virtual [2001:db8::1", "<ctl>:1:9: expected an address"),
    ] {
        let o = c.command(cmd);
        assert!(o.refused(), "{cmd}: {o:?}");
        assert!(o.text().contains(why), "{cmd}: {}", o.text());
    }
    assert_eq!((c.model.clone(), c.epoch), before);
    let o = c.command("write memory");
    assert!(matches!(o, Outcome::Written { .. }), "{o:?}");
    let text = std::fs::read_to_string(&c.path).unwrap();
    assert!(
        text.contains("dip [2001:db8::32]:80 real [2001:db8:1::32]:8080\n"),
        "{text}"
    );
    assert_eq!(detour_config::load(&text, "w").unwrap(), c.model);
    std::fs::remove_dir_all(&dir).unwrap();
}
