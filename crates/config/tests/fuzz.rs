//! Fuzzing the parser on stable: any bytes give a model or errors, never a panic.
//!
//! `cargo test -p detour-config --test fuzz` runs the default budget; raise it with
//! `PROPTEST_CASES=200000` for a long run. Inputs that once caused trouble go into
//! `fuzz/corpus/`, which every run replays.

use detour_config::model::{load, Model};
use detour_config::Snapshot;
use proptest::prelude::*;

/// Parse, and when the text is accepted, compile it and write it back: the written config
/// must load to the same model.
fn exercise(text: &str) {
    match load(text, "fuzz") {
        Ok(m) => {
            let s = Snapshot::compile(&m, 1);
            let _ = s.table();
            let again = load(&m.to_config(), "again").expect("written config loads");
            assert_eq!(again, m);
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            for e in errs {
                assert!(e.line >= 1 && e.col >= 1, "{e}");
            }
        }
    }
}

const WORDS: &[&str] = &[
    "virtual",
    "real",
    "dip",
    "direct-ip",
    "direct",
    "-",
    "ip",
    "url",
    "URL",
    "bind",
    "no",
    "link",
    "backup",
    "in-service",
    "out-of-service",
    "weight",
    "predictor",
    "health-check",
    "all",
    "oos",
    "maintenance",
    "sticky",
    "failed",
    "roundrobin",
    "weighted",
    "leastconns",
    "hash",
    "tcp",
    "http",
    "path",
    "/",
    "expect",
    "interval",
    "1s",
    "timeout",
    "rise",
    "fall",
    "2",
    "0",
    "302",
    "307",
    "|",
    "198.18.0.1",
    "198.18.0.2",
    "198.18.0.3:8080",
    "198.18.0.2:80",
    "coyote",
    "book",
    "http://%h/new/%d",
    "http://coyote.acme.com",
    "https://x:%s/%d",
    "#",
    "virtual",
    "url",
    "real",
    "interface",
    "client",
    "server",
    "queues",
    "cores",
    "0,1",
    "metrics",
    "127.0.0.1:9100",
    "cookie-secret",
];

fn line_of_words() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..8).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_sequence_of_commands_never_panics(lines in prop::collection::vec(line_of_words(), 0..24)) {
        exercise(&lines.join("\n"));
    }

    #[test]
    fn a_refused_line_changes_nothing(lines in prop::collection::vec(line_of_words(), 0..24)) {
        let mut m = Model::default();
        for l in &lines {
            let before = m.clone();
            if m.apply_line(l).is_err() {
                prop_assert_eq!(&m, &before);
            }
        }
    }
}

#[test]
fn corpus_replays() {
    let mut n = 0;
    for dir in [
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs"),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            exercise(&String::from_utf8_lossy(&bytes));
            n += 1;
        }
    }
    assert!(n >= 5, "corpus has {n} files");
}

/// Commands that mean something against the acme config: adds, removals, rebinding.
const ACME_LINES: &[&str] = &[
    "no bind 198.18.0.1 coyote",
    "no bind 198.18.0.1 roadrunner",
    "bind 198.18.0.1 coyote",
    "bind 198.18.0.1 roadrunner",
    "bind 198.18.0.1 198.18.0.3",
    "no url coyote",
    "no url roadrunner",
    "no url book",
    "url coyote http://coyote.acme.com/%d",
    "url spare http://spare.acme.com/%d 307",
    "bind 198.18.0.1 spare",
    "link coyote 198.18.0.2",
    "link spare 198.18.0.1",
    "no backup 198.18.0.2",
    "no backup 198.18.0.3",
    "no backup 198.18.0.1",
    "backup 198.18.0.3 198.18.0.2",
    "backup 198.18.0.1 spare",
    "no dip 198.18.0.2",
    "no dip 198.18.0.3",
    "dip 198.18.0.2",
    "dip 198.18.0.7 real 198.18.0.3",
    "no real 198.18.0.2",
    "no real 198.18.0.3",
    "real 198.18.0.2",
    "no virtual 198.18.0.1",
    "virtual 198.18.0.1",
    "virtual 198.18.0.9:8080",
    "bind 198.18.0.9:8080 roadrunner",
    "out-of-service real 198.18.0.3 failed",
    "in-service virtual 198.18.0.1 all",
    "weight 198.18.0.3 4",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Any sequence of adds and removals keeps the model consistent: a refused command changes
    /// nothing, an accepted one leaves a model that compiles and that its written config
    /// rebuilds exactly.
    #[test]
    fn adds_and_removals_keep_the_model_consistent(picks in prop::collection::vec(0..ACME_LINES.len(), 1..40)) {
        let mut m = load(include_str!("../../../configs/acme.conf"), "acme").unwrap();
        for i in picks {
            let before = m.clone();
            match m.apply_line(ACME_LINES[i]) {
                Err(_) => prop_assert_eq!(&m, &before),
                Ok(()) => {
                    let s = Snapshot::compile(&m, 1);
                    let _ = s.table();
                    let again = load(&m.to_config(), "again").expect("written config loads");
                    prop_assert_eq!(&again, &m);
                }
            }
        }
    }
}
