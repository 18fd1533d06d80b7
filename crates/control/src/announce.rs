//! Which addresses a director can announce to its routers: a pure function of the snapshot.
//!
//! A virtual whose new requests get an answer (an eligible member or a backup), and a DIP
//! whose traffic goes somewhere (its real in service or sticky, or a backup that can take
//! it). `detour run --announce` puts exactly these into the kernel for the BGP speaker.

use detour_config::snapshot::Action;
use detour_config::Snapshot;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The addresses this director can take new traffic for now, both families, ascending (IPv4
/// first).
pub fn announceable(snap: &Snapshot) -> BTreeSet<IpAddr> {
    let vips = snap
        .virtuals
        .iter()
        .filter(|v| v.action != Action::Refuse)
        .map(|v| v.addr.ip());
    let dips = snap
        .reals
        .iter()
        .filter(|r| r.action != Action::Refuse)
        .filter_map(|r| r.dip.map(|d| d.ip()));
    vips.chain(dips).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use detour_config::load;

    fn snap(text: &str) -> Snapshot {
        let m = load(text, "t").expect("valid config");
        Snapshot::compile(&m, 1)
    }

    const BASE: &str = "virtual 198.18.20.1\n\
        dip 198.18.20.2 real 198.18.12.21:8080\n\
        dip 198.18.20.3 real 198.18.12.22:8080\n\
        bind 198.18.20.1 198.18.20.2 198.18.20.3\n";

    fn addrs(s: &[&str]) -> BTreeSet<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    const DUAL: &str = "virtual [2001:db8:20::1]:80\n\
        dip [2001:db8:20::2] real [2001:db8:12::21]:8080\n\
        dip [2001:db8:20::3] real [2001:db8:12::22]:8080\n\
        bind [2001:db8:20::1] [2001:db8:20::2] [2001:db8:20::3]\n";

    #[test]
    fn both_families_are_announced_ipv4_first() {
        let s = snap(&format!("{BASE}{DUAL}"));
        let got: Vec<IpAddr> = announceable(&s).into_iter().collect();
        let want: Vec<IpAddr> = [
            "198.18.20.1",
            "198.18.20.2",
            "198.18.20.3",
            "2001:db8:20::1",
            "2001:db8:20::2",
            "2001:db8:20::3",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ipv6_follows_health_and_service_as_ipv4_does() {
        // A real down without backup: its IPv6 DIP goes, the IPv4 ones stay.
        let s = snap(&format!(
            "{BASE}{DUAL}out-of-service real [2001:db8:20::2] failed\n"
        ));
        let a = announceable(&s);
        assert!(!a.contains(&"2001:db8:20::2".parse().unwrap()));
        assert!(a.contains(&"2001:db8:20::3".parse().unwrap()));
        assert_eq!(a.len(), 5);
        // With a live backup it stays; sticky keeps it too.
        let s = snap(&format!(
            "{BASE}{DUAL}backup [2001:db8:20::2] [2001:db8:20::3]\n\
             out-of-service real [2001:db8:20::2]\n"
        ));
        assert!(announceable(&s).contains(&"2001:db8:20::2".parse().unwrap()));
        let s = snap(&format!(
            "{BASE}{DUAL}out-of-service real [2001:db8:20::2] sticky\n"
        ));
        assert!(announceable(&s).contains(&"2001:db8:20::2".parse().unwrap()));
        // Both IPv6 reals down: the IPv6 virtual has nobody, and goes with its DIPs.
        let s = snap(&format!(
            "{BASE}{DUAL}out-of-service real [2001:db8:20::2]\n\
             out-of-service real [2001:db8:20::3]\n"
        ));
        assert_eq!(
            announceable(&s),
            addrs(&["198.18.20.1", "198.18.20.2", "198.18.20.3"])
        );
        // A virtual taken out of service by hand.
        let s = snap(&format!(
            "{BASE}{DUAL}out-of-service virtual [2001:db8:20::1]:80\n"
        ));
        assert!(!announceable(&s).contains(&"2001:db8:20::1".parse().unwrap()));
    }

    #[test]
    fn everything_in_service_is_announced() {
        assert_eq!(
            announceable(&snap(BASE)),
            addrs(&["198.18.20.1", "198.18.20.2", "198.18.20.3"])
        );
    }

    #[test]
    fn a_dip_whose_real_is_down_without_backup_is_withdrawn() {
        let s = snap(&format!("{BASE}out-of-service real 198.18.20.2 failed\n"));
        assert_eq!(announceable(&s), addrs(&["198.18.20.1", "198.18.20.3"]));
    }

    #[test]
    fn a_sticky_real_keeps_its_dip() {
        let s = snap(&format!("{BASE}out-of-service real 198.18.20.2 sticky\n"));
        assert!(announceable(&s).contains(&"198.18.20.2".parse().unwrap()));
    }

    #[test]
    fn a_dip_with_a_live_backup_stays() {
        let s = snap(&format!(
            "{BASE}backup 198.18.20.2 198.18.20.3\nout-of-service real 198.18.20.2\n"
        ));
        assert!(announceable(&s).contains(&"198.18.20.2".parse().unwrap()));
        // The backup down too: nothing can take it.
        let s = snap(&format!(
            "{BASE}backup 198.18.20.2 198.18.20.3\nout-of-service real 198.18.20.2\nout-of-service real 198.18.20.3\n"
        ));
        assert_eq!(announceable(&s), BTreeSet::new());
    }

    #[test]
    fn a_virtual_without_eligible_members_is_withdrawn_unless_it_has_a_backup() {
        let down = format!(
            "{BASE}out-of-service real 198.18.20.2 sticky\nout-of-service real 198.18.20.3 sticky\n"
        );
        // Both reals sticky: their DIPs stay, the virtual has nobody to redirect to.
        assert_eq!(
            announceable(&snap(&down)),
            addrs(&["198.18.20.2", "198.18.20.3"])
        );
        let with_backup =
            format!("{down}url away http://other.example/%d\nbackup 198.18.20.1 away\n");
        assert!(announceable(&snap(&with_backup)).contains(&"198.18.20.1".parse().unwrap()));
    }

    #[test]
    fn a_virtual_out_of_service_is_withdrawn() {
        let s = snap(&format!("{BASE}out-of-service virtual 198.18.20.1\n"));
        assert!(!announceable(&s).contains(&"198.18.20.1".parse().unwrap()));
    }
}
