//! Least privilege after set-up. Attaching the XDP programs and binding the AF_XDP sockets
//! needs five capabilities (the packaged unit grants exactly these, to the `detour` user):
//!
//! | capability | needed for | after set-up |
//! |---|---|---|
//! | `CAP_NET_ADMIN` | attach XDP programs; add and remove announced routes | kept |
//! | `CAP_BPF` | load the steering program; update its maps when the config changes | kept |
//! | `CAP_NET_RAW` | create the AF_XDP sockets | dropped |
//! | `CAP_IPC_LOCK` | pin the UMEM without counting against `RLIMIT_MEMLOCK` | dropped |
//! | `CAP_PERFMON` | the verifier allows the program's packet-pointer arithmetic | dropped |
//!
//! Capabilities belong to threads. A worker drops all of its own once its sockets are
//! bound (it needs none to move frames), the listeners drop all at start, and once every
//! worker runs, [`drop_after_setup`] removes every other capability from the
//! effective, permitted, inheritable and ambient sets and from the bounding set, so neither
//! detour nor a program it starts (`ip`) can regain them. A detour started by root keeps,
//! besides these two, what `write memory` needs to keep a config file's owner
//! (`CAP_CHOWN`, `CAP_DAC_OVERRIDE`, `CAP_FOWNER`): root's files stay root's.

use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities a running detour keeps.
pub const RUNTIME: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_BPF];
/// Kept in addition when running as root.
pub const ROOT_FILES: [Capability; 3] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
];

/// The capabilities to keep for a process of user `uid` that holds `held` now.
pub fn keep(uid: u32, held: &CapsHashSet) -> CapsHashSet {
    let extra: &[Capability] = if uid == 0 { &ROOT_FILES } else { &[] };
    RUNTIME
        .iter()
        .chain(extra)
        .filter(|c| held.contains(c))
        .copied()
        .collect()
}

/// Drop every capability of the calling thread (capabilities are per thread; threads it
/// starts inherit none): the workers once their sockets are bound, the listeners at start.
pub fn drop_all_of_this_thread() {
    for set in [
        CapSet::Ambient,
        CapSet::Effective,
        CapSet::Inheritable,
        CapSet::Permitted,
    ] {
        let _ = caps::clear(None, set);
    }
}

/// The effective user id, from `/proc/self/status` (std has no safe `geteuid`).
pub fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| "/proc/self/status: no effective Uid".to_string())
}

/// Drop every capability but [`keep`]'s; returns what is kept, for the log.
pub fn drop_after_setup(uid: u32) -> Result<Vec<String>, String> {
    let err = |what: &str, e: caps::errors::CapsError| format!("capabilities: {what}: {e}");
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| err("read", e))?;
    let kept = keep(uid, &permitted);
    for c in caps::read(None, CapSet::Bounding).map_err(|e| err("read bounding", e))? {
        if !kept.contains(&c) && permitted.contains(&Capability::CAP_SETPCAP) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| err("bounding", e))?;
        }
    }
    // Ambient needs the capability in inheritable and permitted: shrink outermost first.
    caps::set(None, CapSet::Ambient, &CapsHashSet::new()).map_err(|e| err("ambient", e))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Inheritable, &kept).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| err("permitted", e))?;
    for c in &kept {
        // Programs detour starts (`ip`) get the runtime capabilities, nothing else.
        if RUNTIME.contains(c) {
            caps::raise(None, CapSet::Ambient, *c).map_err(|e| err("ambient", e))?;
        }
    }
    let mut names: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cs: &[Capability]) -> CapsHashSet {
        cs.iter().copied().collect()
    }

    #[test]
    fn the_service_user_keeps_only_net_admin_and_bpf() {
        let held = set(&[
            Capability::CAP_NET_ADMIN,
            Capability::CAP_NET_RAW,
            Capability::CAP_BPF,
            Capability::CAP_PERFMON,
            Capability::CAP_IPC_LOCK,
        ]);
        assert_eq!(
            keep(999, &held),
            set(&[Capability::CAP_NET_ADMIN, Capability::CAP_BPF])
        );
    }

    #[test]
    fn root_also_keeps_what_write_memory_needs_and_nothing_it_lacked() {
        let held: CapsHashSet = caps::all();
        let kept = keep(0, &held);
        assert_eq!(kept.len(), 5);
        assert!(kept.contains(&Capability::CAP_CHOWN));
        assert!(!kept.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!kept.contains(&Capability::CAP_NET_RAW));
        assert_eq!(
            keep(0, &set(&[Capability::CAP_BPF])),
            set(&[Capability::CAP_BPF])
        );
    }
}
