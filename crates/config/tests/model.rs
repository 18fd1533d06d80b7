//! The model: references checked, a refused command or file changes nothing, the running
//! config written back rebuilds the same model.

use detour_config::model::{load, Link, Member, Model, Target, VirtualKind};
use detour_config::State;

const ACME: &str = include_str!("../../../configs/acme.conf");
const LOAD_SHARE: &str = include_str!("../../../configs/load-share.conf");

fn model(text: &str) -> Model {
    load(text, "t.conf").unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Load `base` then `line` as the last line: the error must be at that line and column.
fn refused(base: &str, line: &str, col: usize, expected: &str, found: &str) {
    let text = format!("{base}{line}\n");
    let errs = load(&text, "t.conf").expect_err(line);
    let e = errs.last().unwrap();
    let line_no = base.lines().count() + 1;
    assert_eq!((e.line, e.col), (line_no, col), "{line}: {e}");
    assert!(
        e.expected.contains(expected),
        "{line}: expected {expected:?} in {e}"
    );
    assert!(e.found.contains(found), "{line}: found {found:?} in {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("t.conf:{line_no}:{col}: expected ")),
        "{e}"
    );
}

const BASE: &str = "virtual 198.18.0.1\ndip 198.18.0.2\ndip 198.18.0.3 real 198.18.1.3:8080\nreal 198.18.1.9\nurl coyote http://coyote.acme.com/%d\n";

#[test]
fn the_seed_example_builds_the_expected_model() {
    let m = model(ACME);
    assert_eq!(m.virtuals.len(), 3);
    assert_eq!(m.reals.len(), 2);
    let VirtualKind::Primary { members, .. } = &m.virtuals[0].kind else {
        panic!()
    };
    assert_eq!(members, &[Member::Url(0), Member::Url(1)]);
    assert_eq!(m.virtuals[1].kind, VirtualKind::Dip { real: 0 });
    assert_eq!(m.reals[0].dip, Some(1));
    assert_eq!(m.urls[0].link, Some(Link::Real(0)));
    assert_eq!(m.reals[0].backup, Some(Target::Virtual(0)));
    assert_eq!(m.reals[1].backup, Some(Target::Real(0)));
    assert_eq!(m.virtuals[0].backup, Some(Target::Url(2)));
    assert_eq!(
        m.url_weight(0),
        2,
        "coyote takes its real's weight through link"
    );
    assert!(m.settings.default_health.is_some());
}

#[test]
fn undefined_duplicate_and_misdirected_references_are_refused() {
    refused(
        BASE,
        "virtual 198.18.0.1",
        9,
        "an address not yet in use",
        "already a virtual",
    );
    refused(
        BASE,
        "real 198.18.0.2",
        6,
        "an address not yet in use",
        "already a virtual or DIP",
    );
    refused(
        BASE,
        "real 198.18.1.9:80",
        6,
        "an address not yet in use",
        "already a real",
    );
    refused(
        BASE,
        "dip 198.18.0.1",
        5,
        "an address not yet in use",
        "already a virtual",
    );
    refused(
        BASE,
        "dip 198.18.0.9 real 198.18.1.3:8080",
        5,
        "a real without a DIP",
        "already paired",
    );
    refused(
        BASE,
        "dip 198.18.0.9 real 198.18.0.1",
        5,
        "not a virtual",
        "198.18.0.1",
    );
    refused(
        BASE,
        "url coyote http://x",
        5,
        "a new url id",
        "already defined",
    );
    refused(
        BASE,
        "bind 198.18.0.7 coyote",
        6,
        "a defined virtual",
        "198.18.0.7",
    );
    refused(BASE, "bind coyote coyote", 6, "a defined virtual", "coyote");
    refused(
        BASE,
        "bind 198.18.0.2 coyote",
        6,
        "a primary virtual",
        "a DIP",
    );
    refused(
        BASE,
        "bind 198.18.0.1 coyote nobody",
        24,
        "a defined url",
        "nobody",
    );
    refused(
        BASE,
        "bind 198.18.0.1 198.18.0.1",
        17,
        "a primary virtual cannot be bound",
        "198.18.0.1",
    );
    refused(
        BASE,
        "bind 198.18.0.1 coyote coyote",
        24,
        "each member once",
        "again",
    );
    refused(
        &format!("{BASE}bind 198.18.0.1 coyote\n"),
        "bind 198.18.0.1 coyote",
        17,
        "not yet bound",
        "coyote",
    );
    refused(
        BASE,
        "no bind 198.18.0.1 coyote",
        20,
        "a member bound to",
        "coyote",
    );
    refused(BASE, "link nobody 198.18.0.2", 6, "a defined url", "nobody");
    refused(
        BASE,
        "link coyote 198.18.0.8",
        13,
        "a defined real, virtual or url",
        "198.18.0.8",
    );
    refused(
        BASE,
        "link coyote coyote",
        13,
        "a virtual, DIP or real",
        "a url",
    );
    refused(
        BASE,
        "backup coyote 198.18.0.1",
        8,
        "a url has no backup",
        "coyote",
    );
    refused(
        BASE,
        "backup 198.18.0.2 nobody",
        19,
        "a defined url",
        "nobody",
    );
    refused(
        BASE,
        "backup 198.18.0.2 198.18.0.2",
        19,
        "without a cycle",
        "198.18.0.2:80 -> 198.18.0.2:80",
    );
    refused(
        BASE,
        "no backup 198.18.0.2 coyote",
        22,
        "the current backup",
        "coyote",
    );
    refused(
        BASE,
        "in-service virtual 198.18.0.5",
        20,
        "a defined virtual",
        "198.18.0.5",
    );
    refused(
        BASE,
        "in-service url 198.18.0.1",
        16,
        "a defined url",
        "198.18.0.1",
    );
    refused(
        BASE,
        "out-of-service real coyote",
        21,
        "a defined real",
        "coyote",
    );
    refused(
        BASE,
        "weight 198.18.0.1 3",
        8,
        "virtuals have no weight",
        "198.18.0.1",
    );
    refused(
        &format!("{BASE}link coyote 198.18.0.2\n"),
        "weight coyote 3",
        8,
        "an unlinked url",
        "linked to",
    );
    refused(
        BASE,
        "predictor 198.18.0.2 hash",
        11,
        "a primary virtual",
        "a DIP",
    );
    refused(
        BASE,
        "health-check coyote tcp",
        14,
        "a defined real",
        "coyote",
    );
    refused(
        BASE,
        "virtual 198.18.0.300",
        9,
        "an address",
        "198.18.0.300",
    );
}

#[test]
fn backup_cycles_through_chains_are_refused() {
    let base = format!("{BASE}backup 198.18.0.2 198.18.0.3\nbackup 198.18.1.3:8080 198.18.0.1\n");
    // 198.18.0.1 -> 198.18.0.2's real -> 198.18.1.3:8080 -> 198.18.0.1
    refused(
        &base,
        "backup 198.18.0.1 198.18.0.2",
        19,
        "a backup chain without a cycle",
        "198.18.0.1:80 -> 198.18.0.2:80 -> 198.18.1.3:8080 -> 198.18.0.1:80",
    );
    // Replacing a backup with one that breaks the chain is fine.
    let ok = format!("{base}no backup 198.18.1.3:8080\nbackup 198.18.0.1 198.18.0.2\n");
    model(&ok);
}

#[test]
fn a_dip_address_names_its_real() {
    let m = model(&format!(
        "{BASE}out-of-service real 198.18.0.3 maintenance\nweight 198.18.0.3 5\n"
    ));
    assert_eq!(m.reals[1].addr.to_string(), "198.18.1.3:8080");
    assert_eq!(m.reals[1].state, State::Maintenance);
    assert_eq!(m.reals[1].weight, 5);
    // `virtual <dip>` states are the real's too (a DIP and its real share one state).
    let m = model(&format!("{BASE}out-of-service virtual 198.18.0.2 sticky\n"));
    assert_eq!(m.reals[0].state, State::Sticky);
}

#[test]
fn all_applies_to_the_members_of_a_virtual_and_the_urls_of_a_real() {
    let text = format!("{BASE}bind 198.18.0.1 coyote 198.18.1.9\nout-of-service virtual 198.18.0.1 maintenance all\n");
    let m = model(&text);
    assert_eq!(m.virtuals[0].state, State::Maintenance);
    assert_eq!(m.urls[0].state, State::Maintenance);
    assert_eq!(m.reals[2].state, State::Maintenance);
    assert_eq!(m.reals[0].state, State::InService, "not a member");
    let m = model(&format!("{text}in-service virtual 198.18.0.1\n"));
    assert_eq!(m.virtuals[0].state, State::InService);
    assert_eq!(
        m.urls[0].state,
        State::Maintenance,
        "without all, members keep their state"
    );
}

#[test]
fn a_linked_url_is_as_down_as_its_real() {
    let m = model(&format!(
        "{BASE}link coyote 198.18.0.2\nout-of-service real 198.18.0.2 failed\n"
    ));
    assert_eq!(m.urls[0].state, State::InService);
    assert_eq!(m.url_state(0), State::Failed);
}

#[test]
fn a_file_with_errors_reports_them_all_and_builds_nothing() {
    let text = "virtual 198.18.0.1\nbogus\nbind 198.18.0.1 nobody\nvirtual 198.18.0.1\nurl ok http://ok/\n";
    let errs = load(text, "f.conf").unwrap_err();
    let at: Vec<_> = errs.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(at, [(2, 1), (3, 17), (4, 9)]);
}

#[test]
fn a_refused_command_leaves_the_model_as_it_was() {
    let mut m = model(ACME);
    let before = m.clone();
    for bad in [
        "bind 198.18.0.1 coyote nobody",
        "no bind 198.18.0.1 coyote nobody",
        "backup 198.18.0.1 198.18.0.2",
        "weight coyote 3",
        "dip 198.18.0.2",
        "out-of-service real 198.18.0.9",
        "garbage",
    ] {
        assert!(m.apply_line(bad).is_err(), "{bad}");
        assert_eq!(m, before, "{bad} changed the model");
    }
    m.apply_line("no bind 198.18.0.1 coyote").unwrap();
    assert_ne!(m, before);
}

#[test]
fn the_running_config_rebuilds_the_same_model() {
    for text in [ACME, LOAD_SHARE, &format!("{BASE}bind 198.18.0.1 coyote 198.18.1.9\nweight coyote 7\npredictor 198.18.0.1 hash\nout-of-service url coyote sticky\nout-of-service virtual 198.18.0.1 oos\nhealth-check 198.18.1.9 tcp interval 5s timeout 1s rise 1 fall 1\nbackup 198.18.0.1 coyote\ncookie-secret {}\ninterface client c0 queues 2\ninterface server s0\ncores 0,1\nmetrics 127.0.0.1:9100\ngateway 198.18.0.100\n", "ab".repeat(32))] {
        let m = model(text);
        let written = m.to_config();
        let again = model(&written);
        assert_eq!(again, m, "written config:\n{written}");
        assert_eq!(again.to_config(), written);
    }
}

#[test]
fn objects_are_removed_only_when_nothing_refers_to_them() {
    let mut m = model(ACME);
    // Bound to www.acme.com, linked, a backup: each reference is named.
    let e = m.apply_line("no url coyote").unwrap_err();
    assert_eq!(e.col, 8);
    assert!(e.found.contains("bound to virtual 198.18.0.1:80"), "{e:?}");
    let e = m.apply_line("no real 198.18.0.2").unwrap_err();
    assert!(
        e.found.contains("the backup of real 198.18.0.3:80"),
        "{e:?}"
    );
    assert!(e.found.contains("paired with DIP 198.18.0.2:80"), "{e:?}");
    assert!(e.found.contains("linked from url coyote"), "{e:?}");
    let e = m.apply_line("no virtual 198.18.0.1").unwrap_err();
    assert!(
        e.found.contains("the backup of real 198.18.0.2:80"),
        "{e:?}"
    );
    let e = m.apply_line("no dip 198.18.0.1").unwrap_err();
    assert!(e.expected.contains("use `no virtual`"), "{e:?}");
    let e = m.apply_line("no virtual 198.18.0.2").unwrap_err();
    assert!(e.expected.contains("use `no dip`"), "{e:?}");
    assert!(m.apply_line("no url nobody").is_err());

    // Take coyote out step by step; roadrunner keeps working, renumbered.
    for line in [
        "no bind 198.18.0.1 coyote",
        "no url coyote",
        "no backup 198.18.0.3",
        "no dip 198.18.0.2",
        "no backup 198.18.0.2",
        "no real 198.18.0.2",
    ] {
        m.apply_line(line)
            .unwrap_or_else(|e| panic!("{line}: {e:?}"));
    }
    assert_eq!(m.reals.len(), 1);
    assert_eq!(m.reals[0].addr.to_string(), "198.18.0.3:80");
    assert_eq!(
        m.reals[0].dip,
        Some(1),
        "the DIP of 198.18.0.3 moved down one"
    );
    assert_eq!(m.virtuals[1].kind, VirtualKind::Dip { real: 0 });
    assert_eq!(m.urls[0].id, "roadrunner");
    assert_eq!(m.urls[0].link, Some(Link::Real(0)));
    assert_eq!(
        m.virtuals[0].backup,
        Some(Target::Url(1)),
        "book moved down one"
    );
    let VirtualKind::Primary { members, .. } = &m.virtuals[0].kind else {
        panic!()
    };
    assert_eq!(members, &[Member::Url(0)]);
    // The result is a model the language can write and read back.
    let again = model(&m.to_config());
    assert_eq!(again, m);
    // And a virtual with nothing pointing at it goes, its rotation with it.
    m.apply_line("no backup 198.18.0.3").ok();
    m.apply_line("no virtual 198.18.0.1").unwrap();
    assert!(m
        .virtuals
        .iter()
        .all(|v| v.addr.to_string() != "198.18.0.1:80"));
    assert_eq!(model(&m.to_config()), m);
}

/// A dual-stack config: IPv6 virtuals, DIPs (same address and NAT) and reals beside IPv4 ones.
const DUAL: &str = "virtual 198.18.0.1\nvirtual [2001:db8::1]:80\ndip 198.18.0.2\ndip [2001:db8::2] real [2001:db8:1::2]:8080\ndip 2001:db8::3\nreal 2001:db8:1::9\nbind [2001:db8::1]:80 2001:db8::2 [2001:db8::3]:80 2001:db8:1::9\nbind 198.18.0.1 198.18.0.2\nweight [2001:db8:1::2]:8080 3\nbackup [2001:db8:1::9]:80 [2001:db8::1]:80\nhealth-check [2001:db8:1::2]:8080 http path /hc\nout-of-service real [2001:db8::3]:80 maintenance\n";

#[test]
fn ipv6_ids_apply_and_write_back_canonically() {
    let m = model(DUAL);
    assert_eq!(m.virtuals[1].addr, "[2001:db8::1]:80".parse().unwrap());
    let r = m
        .real_by_addr("[2001:db8:1::2]:8080".parse().unwrap())
        .unwrap();
    assert_eq!(m.reals[r].weight, 3);
    assert!(m.reals[r].health.is_some());
    assert_eq!(
        m.virtuals[m.reals[r].dip.unwrap()].addr.to_string(),
        "[2001:db8::2]:80"
    );
    let text = m.to_config();
    for line in [
        "virtual [2001:db8::1]:80\n",
        "dip [2001:db8::2]:80 real [2001:db8:1::2]:8080\n",
        "dip [2001:db8::3]:80\n",
        "weight [2001:db8:1::2]:8080 3\n",
        "backup [2001:db8:1::9]:80 [2001:db8::1]:80\n",
        "out-of-service real [2001:db8::3]:80 maintenance\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    assert_eq!(model(&text), m, "round trip through the written config");
    assert_eq!(model(&model(&text).to_config()).to_config(), text);
}

#[test]
fn families_do_not_mix_in_a_rotation_or_a_dip() {
    refused(
        DUAL,
        "dip 198.18.0.7 real [2001:db8:1::7]",
        5,
        "one address family",
        "2001:db8:1::7",
    );
    refused(
        DUAL,
        "dip [2001:db8::7] real 198.18.1.7",
        5,
        "one address family",
        "198.18.1.7",
    );
    refused(
        DUAL,
        "bind 198.18.0.1 [2001:db8::3]",
        17,
        "family",
        "[2001:db8::3]",
    );
    refused(
        DUAL,
        "bind [2001:db8::1] 198.18.0.2",
        20,
        "family",
        "198.18.0.2",
    );
    refused(
        DUAL,
        "backup [2001:db8:1::2]:8080 198.18.0.2",
        29,
        "same address family",
        "198.18.0.2",
    );
    // A url of any host may join either family's rotation; the same address in another
    // family's spelling is another object.
    let m = model(&format!(
        "{DUAL}url u http://[2001:db8::9]/%d\nbind 198.18.0.1 u\n"
    ));
    assert!(m
        .virtual_by_addr("[::ffff:198.18.0.1]:80".parse().unwrap())
        .is_none());
}
