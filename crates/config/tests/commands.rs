//! The one table of commands: every entry's spellings parse to a command that is that
//! entry's, applies, and is written back by the table's writers; unknown words are refused
//! with what the table offers.

use detour_config::commands::{verb_of, Applies, VERBS};
use detour_config::lang::parse_line;

/// A base config the samples refer to.
const BASE: &str = "virtual 198.18.0.1\nreal 198.18.1.1\ndip 198.18.0.2 real 198.18.1.2\nurl a http://a/%d\nbind 198.18.0.1 a\n";

/// One sample line per verb (arguments after the verb's words); a new entry needs one here.
const SAMPLES: &[(&str, &str)] = &[
    (
        "cookie-secret",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ),
    ("interface", "client eth0 queues 2"),
    ("cores", "0,1"),
    ("metrics", "127.0.0.1:9100"),
    ("gateway", "198.18.0.100"),
    ("tls-connections", "4096"),
    ("tls-handshakes-per-batch", "4"),
    (
        "certificate",
        "www.example /etc/detour/www.pem /etc/detour/www.key",
    ),
    ("no certificate", "a.example"),
    ("real", "198.18.1.9:8080"),
    ("virtual", "198.18.0.9"),
    ("dip", "198.18.0.8"),
    ("url", "b http://b/%d 307"),
    ("link", "a 198.18.0.2"),
    ("weight", "198.18.1.1 4"),
    ("health-check", "all tcp interval 1s"),
    ("bind", "198.18.0.1 198.18.1.1"),
    ("no bind", "198.18.0.1 a"),
    ("predictor", "198.18.0.1 hash"),
    ("backup", "198.18.1.1 198.18.0.1"),
    ("no backup", "198.18.1.2"),
    ("in-service", "real 198.18.1.1"),
    ("out-of-service", "real 198.18.1.1 sticky"),
    ("no url", "b"),
    ("no dip", "198.18.0.2"),
    ("no real", "198.18.1.9:8080"),
    ("no virtual", "198.18.0.9"),
];

#[test]
fn every_entry_parses_applies_and_is_its_own() {
    for v in VERBS {
        let name = v.name();
        let args = SAMPLES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no sample for `{name}`"))
            .1;
        for sp in v.spellings {
            let line = format!("{} {args}", sp.join(" ").to_uppercase());
            let cmd = parse_line(&line).unwrap().unwrap();
            assert!(std::ptr::eq(verb_of(&cmd), v), "{line}");
        }
        let mut model = detour_config::load(BASE, "base").unwrap();
        // Removals need something to remove; the other samples apply to the base.
        for prep in [
            "url b http://b/%d",
            "real 198.18.1.9:8080",
            "virtual 198.18.0.9",
            "no bind 198.18.0.1 a",
            "certificate a.example /a.pem /a.key",
        ] {
            if name.starts_with("no ") && !name.ends_with("bind") && !name.ends_with("backup") {
                let _ = model.apply_line(prep);
            }
        }
        let before = model.clone();
        let cmd = parse_line(&format!("{name} {args}")).unwrap().unwrap();
        model
            .apply(&cmd)
            .unwrap_or_else(|e| panic!("{name} {args}: {e:?}"));
        assert!(
            model != before || name == "no backup" || name == "in-service",
            "{name} changed nothing"
        );
        let written = model.to_config();
        assert_eq!(
            detour_config::load(&written, "w").unwrap(),
            model,
            "{name}:\n{written}"
        );
    }
}

#[test]
fn settings_of_the_next_start_are_marked_in_the_table() {
    let later: Vec<String> = VERBS
        .iter()
        .filter(|v| v.applies == Applies::NextStart)
        .map(|v| v.name())
        .collect();
    assert_eq!(
        later,
        [
            "interface",
            "cores",
            "metrics",
            "gateway",
            "tls-connections"
        ]
    );
}

#[test]
fn unknown_words_are_refused_with_what_the_table_offers() {
    let e = parse_line("frobnicate 1").unwrap_err();
    for v in VERBS {
        assert!(
            e.expected.contains(v.spellings[0][0]),
            "{} missing from {}",
            v.name(),
            e.expected
        );
    }
    let e = parse_line("no frob x").unwrap_err();
    assert_eq!(e.col, 4);
    assert_eq!(
        e.expected,
        "`certificate`, `bind`, `backup`, `url`, `dip`, `direct-ip`, `real` or `virtual` after `no`"
    );
    let e = parse_line("direct ip 198.18.0.2").unwrap_err();
    assert_eq!((e.col, e.expected.as_str()), (8, "`- ip` after `direct`"));
}
