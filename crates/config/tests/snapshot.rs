//! Snapshot compilation of the seed's examples, checked field by field, and the service-state
//! table of DESIGN.md section 1.

use detour_config::model::load;
use detour_config::predictor::{PickState, Predictor};
use detour_config::{Action, Snapshot, State};
use std::net::{Ipv4Addr, Ipv6Addr};

const ACME: &str = include_str!("../../../configs/acme.conf");
const LOAD_SHARE: &str = include_str!("../../../configs/load-share.conf");

fn snap(text: &str) -> Snapshot {
    let m = load(text, "t.conf").unwrap_or_else(|e| panic!("{:?}", e));
    Snapshot::compile(&m, 7)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn acme_compiles_field_by_field() {
    let s = snap(ACME);
    assert_eq!(s.epoch, 7);
    assert_eq!(s.virtuals.len(), 1);
    let v = &s.virtuals[0];
    assert_eq!(v.id, "198.18.0.1:80");
    assert_eq!(v.predictor, Predictor::Weighted);
    assert_eq!(v.state, State::InService);
    assert_eq!(v.action, Action::Redirect(0));
    let book = s.urls.iter().position(|u| u.id == "book").unwrap() as u32;
    assert_eq!(v.fallback, Action::RedirectUrl(book));
    assert_eq!(v.members.len(), 2);
    let (m0, m1) = (v.members[0], v.members[1]);
    assert_eq!(s.urls[m0.url as usize].id, "coyote");
    assert_eq!(
        s.urls[m0.url as usize].template.as_str(),
        "http://coyote.acme.com/%d"
    );
    assert_eq!(s.urls[m0.url as usize].code, 302);
    assert_eq!(
        (m0.real, m0.weight, m0.state),
        (Some(0), 2, State::InService)
    );
    assert_eq!(s.urls[m1.url as usize].id, "roadrunner");
    assert_eq!(
        (m1.real, m1.weight, m1.state),
        (Some(1), 1, State::InService)
    );

    assert_eq!(s.reals.len(), 2);
    assert_eq!(s.reals[0].id, "198.18.0.2:80");
    assert_eq!(s.reals[0].dip, Some("198.18.0.2:80".parse().unwrap()));
    assert_eq!(s.reals[0].action, Action::Forward(0));
    assert_eq!(s.reals[1].action, Action::Forward(1));

    assert_eq!(s.virtual_at(ip("198.18.0.1"), 80), Some(0));
    assert_eq!(s.virtual_at(ip("198.18.0.1"), 81), None);
    assert_eq!(
        s.virtual_at(ip("198.18.0.2"), 80),
        None,
        "a DIP is not a primary virtual"
    );
    assert_eq!(s.dip_at(ip("198.18.0.2"), 80), Some(0));
    assert_eq!(s.dip_at(ip("198.18.0.3"), 80), Some(1));
    assert_eq!(s.dip_at(ip("198.18.0.1"), 80), None);
    assert_eq!(s.real_at(ip("198.18.0.3"), 80), Some(1));
    let owned: Vec<_> = s.owned_addrs().map(|a| a.to_string()).collect();
    assert_eq!(owned, ["198.18.0.1", "198.18.0.2", "198.18.0.3"]);
    assert!(s.owns(ip("198.18.0.2")) && !s.owns(ip("198.18.0.4")));
    let t = s.table();
    for needle in [
        "198.18.0.1:80",
        "coyote",
        "weight 2",
        "DIP 198.18.0.2:80 (same address)",
        "redirect to url book",
    ] {
        assert!(t.contains(needle), "{needle} missing from\n{t}");
    }
}

#[test]
fn load_sharing_rotates_over_two_dips_and_another_site() {
    let s = snap(LOAD_SHARE);
    let v = &s.virtuals[0];
    assert_eq!(v.predictor, Predictor::RoundRobin);
    let urls: Vec<_> = v
        .members
        .iter()
        .map(|m| s.urls[m.url as usize].template.as_str().to_string())
        .collect();
    assert_eq!(
        urls,
        [
            "http://198.18.0.2/%d",
            "http://198.18.0.3/%d",
            "http://www.bar.com/%d"
        ]
    );
    let mut st = PickState::new(&v.rotation);
    let picks: Vec<_> = (0..9)
        .map(|_| {
            v.rotation
                .pick(&mut st, Ipv4Addr::from(1).to_ipv6_mapped(), |_| 0)
                .unwrap()
        })
        .collect();
    assert_eq!(
        picks,
        [0, 1, 2, 0, 1, 2, 0, 1, 2],
        "a third goes to www.bar.com"
    );
}

const NAT: &str = "virtual 198.18.0.1
dip 198.18.0.2 real 198.18.1.2:8080
dip 198.18.0.3 real 198.18.1.3:8080
dip 198.18.0.4 real 198.18.1.4:8080
url other http://other.example/%d
bind 198.18.0.1 198.18.0.2 198.18.0.3
";

fn with(extra: &str) -> Snapshot {
    snap(&format!("{NAT}{extra}"))
}

#[test]
fn nat_dips_map_to_backend_addresses() {
    let s = with("");
    assert_eq!(s.dip_at(ip("198.18.0.2"), 80), Some(0));
    assert_eq!(s.reals[0].addr.to_string(), "198.18.1.2:8080");
    assert_eq!(s.real_at(ip("198.18.1.2"), 8080), Some(0));
    assert_eq!(s.real_at(ip("198.18.1.2"), 80), None);
    assert!(
        !s.owns(ip("198.18.1.2")),
        "the backend address is not the director's"
    );
    assert_eq!(
        s.urls[s.virtuals[0].members[0].url as usize]
            .template
            .as_str(),
        "http://198.18.0.2/%d"
    );
}

#[test]
fn service_states_follow_the_design_table() {
    // in-service: redirects and forwards.
    let s = with("");
    assert!(s.virtuals[0].rotation.members()[0].eligible);
    assert_eq!(s.reals[0].action, Action::Forward(0));
    // sticky: no new redirects, DIP traffic still forwarded.
    let s = with("out-of-service real 198.18.0.2 sticky\n");
    assert!(!s.virtuals[0].rotation.members()[0].eligible);
    assert_eq!(s.reals[0].action, Action::Forward(0));
    // maintenance, oos, failed: no redirects; DIP traffic to the backup, or refused.
    for st in ["maintenance", "oos", "failed"] {
        let s = with(&format!("out-of-service real 198.18.0.2 {st}\n"));
        assert!(!s.virtuals[0].rotation.members()[0].eligible, "{st}");
        assert_eq!(s.reals[0].action, Action::Refuse, "{st} without backup");
        let s = with(&format!(
            "out-of-service real 198.18.0.2 {st}\nbackup 198.18.0.2 198.18.0.3\n"
        ));
        assert_eq!(
            s.reals[0].action,
            Action::Forward(1),
            "{st} with a real backup"
        );
        let s = with(&format!(
            "out-of-service real 198.18.0.2 {st}\nbackup 198.18.0.2 198.18.0.1\n"
        ));
        assert_eq!(
            s.reals[0].action,
            Action::Redirect(0),
            "{st} with a virtual backup"
        );
        let s = with(&format!(
            "out-of-service real 198.18.0.2 {st}\nbackup 198.18.0.2 other\n"
        ));
        assert_eq!(
            s.reals[0].action,
            Action::RedirectUrl(0),
            "{st} with a url backup"
        );
    }
}

#[test]
fn backup_chains_resolve_to_the_first_live_target_and_terminate() {
    // .2 down -> .3 (sticky: takes no new flows) -> .4 (in service)
    let s = with("backup 198.18.0.2 198.18.0.3\nbackup 198.18.0.3 198.18.0.4\nout-of-service real 198.18.0.2\nout-of-service real 198.18.0.3 sticky\n");
    assert_eq!(s.reals[0].action, Action::Forward(2));
    assert_eq!(
        s.reals[1].action,
        Action::Forward(1),
        "sticky keeps its own DIP"
    );
    // Everything down: the chain ends in a refusal.
    let s = with("backup 198.18.0.2 198.18.0.3\nbackup 198.18.0.3 198.18.0.4\nout-of-service real 198.18.0.2\nout-of-service real 198.18.0.3\nout-of-service real 198.18.0.4\n");
    assert_eq!(s.reals[0].action, Action::Refuse);
    // A virtual with no eligible member uses its own backup; a real backed by it follows on.
    let s = with("backup 198.18.0.1 other\nbackup 198.18.0.4 198.18.0.1\nout-of-service real 198.18.0.2\nout-of-service real 198.18.0.3 failed\nout-of-service real 198.18.0.4\n");
    assert_eq!(s.virtuals[0].action, Action::RedirectUrl(0));
    assert_eq!(s.reals[2].action, Action::RedirectUrl(0));
    // A url that is out of service is no backup.
    let s =
        with("backup 198.18.0.2 other\nout-of-service real 198.18.0.2\nout-of-service url other\n");
    assert_eq!(s.reals[0].action, Action::Refuse);
}

#[test]
fn an_out_of_service_virtual_uses_its_backup() {
    let s = with("out-of-service virtual 198.18.0.1\n");
    assert_eq!(s.virtuals[0].action, Action::Refuse);
    let s = with("out-of-service virtual 198.18.0.1\nbackup 198.18.0.1 other\n");
    assert_eq!(s.virtuals[0].action, Action::RedirectUrl(0));
    assert_eq!(
        s.reals[0].action,
        Action::Forward(0),
        "its reals' DIPs are unaffected"
    );
}

#[test]
fn weight_zero_takes_no_redirects() {
    let s = with("weight 198.18.0.2 0\nweight 198.18.0.3 0\nbackup 198.18.0.1 other\n");
    assert_eq!(s.virtuals[0].action, Action::RedirectUrl(0));
}

#[test]
fn a_request_to_acme_is_answered_with_the_picked_url_expanded() {
    use detour_config::url::{render_redirect, Request};
    let s = snap(ACME);
    let v = &s.virtuals[0];
    let mut st = PickState::new(&v.rotation);
    let req = Request {
        host: Some(b"www.acme.com"),
        vip: ip("198.18.0.1").into(),
        port: 80,
        target: b"/cart.html",
        head_only: false,
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = v.members[v
            .rotation
            .pick(&mut st, Ipv6Addr::UNSPECIFIED, |_| 0)
            .unwrap()];
        let u = &s.urls[m.url as usize];
        let mut out = [0u8; 1024];
        let n = render_redirect(&u.template, u.code, &req, &mut out).unwrap();
        let text = std::str::from_utf8(&out[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 302 Found\r\n"), "{text}");
        let loc = text
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
            .unwrap()
            .to_string();
        seen.push(loc);
    }
    // weight 2 (coyote, through its real) : 1 (roadrunner), smooth.
    assert_eq!(
        seen,
        [
            "http://coyote.acme.com/cart.html",
            "http://roadrunner.acme.com/cart.html",
            "http://coyote.acme.com/cart.html"
        ]
    );
}

#[test]
fn lookup_tables_answer_for_both_families() {
    let s = snap("virtual 198.18.0.1\nvirtual [2001:db8::1]:80\ndip [2001:db8::2] real [2001:db8:1::2]:8080\ndip 198.18.0.2\nbind [2001:db8::1] 2001:db8::2\n");
    let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let d6: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let r6: std::net::Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    let v = s.virtual_at6(v6, 80).unwrap();
    assert_eq!(s.virtuals[v as usize].id, "[2001:db8::1]:80");
    assert_eq!(s.virtual_at6(v6, 81), None);
    assert_eq!(s.virtual_at(ip("198.18.0.1"), 80), Some(0));
    let r = s.dip_at6(d6, 80).unwrap();
    assert_eq!(s.reals[r as usize].id, "[2001:db8:1::2]:8080");
    assert_eq!(s.real_at6(r6, 8080), Some(r));
    assert_eq!(s.real_at6(r6, 80), None);
    assert!(s.owns6(v6) && s.owns6(d6) && !s.owns6(r6));
    assert!(s.is_real_ip6(r6) && !s.is_real_ip6(d6));
    assert!(!s.owns(ip("198.18.1.2")) && s.owns(ip("198.18.0.2")));
    assert_eq!(s.owned_addrs6().collect::<Vec<_>>(), vec![v6, d6]);
    let u = s.virtuals[v as usize].members[0].url as usize;
    assert_eq!(s.urls[u].template.as_str(), "http://[2001:db8::2]/%d");
    assert!(s.table().contains("2001:db8::1 2001:db8::2"));
}
