//! Which addresses a director can announce to its routers: a pure function of the snapshot.
//!
//! A virtual whose new requests get an answer (an eligible member or a backup), and a DIP
//! whose traffic goes somewhere (its real in service or sticky, or a backup that can take
//! it). `detour run --announce` puts exactly these into the kernel for the BGP speaker.

use detour_config::snapshot::Action;
use detour_config::Snapshot;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The IPv4 addresses this director can take new traffic for now, ascending (IPv6 virtuals
/// and DIPs are not announced yet).
pub fn announceable(snap: &Snapshot) -> BTreeSet<Ipv4Addr> {
    let v4 = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(_) => None,
    };
    let vips = snap
        .virtuals
        .iter()
        .filter(|v| v.action != Action::Refuse)
        .filter_map(|v| v4(v.addr));
    let dips = snap
        .reals
        .iter()
        .filter(|r| r.action != Action::Refuse)
        .filter_map(|r| r.dip.and_then(v4));
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

    fn addrs(s: &[&str]) -> BTreeSet<Ipv4Addr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
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
