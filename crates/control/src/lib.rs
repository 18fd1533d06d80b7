//! detour's control plane as a library, free of sockets and threads: the running model and
//! the snapshots it builds ([`running`]), statistics from the workers' reports ([`stats`]),
//! the `show` views ([`show`]) and the Prometheus text ([`prometheus`]), config files
//! ([`files`]: `reload`, `write memory`), and what each `detour ctl` command does, answered
//! with a typed [`Outcome`] ([`commands`]). The `detour` binary wires it to the control
//! socket, the metrics endpoint, the health checkers and the workers.
#![forbid(unsafe_code)]

pub mod commands;
pub mod files;
pub mod prometheus;
pub mod running;
pub mod show;
pub mod stats;

pub use commands::Outcome;
pub use running::{Control, Neighbours};
pub use stats::{Report, Stats};

/// `help`: the operator's verbs and the config commands, one line each.
pub fn help() -> String {
    let mut o = String::from("operator commands:\n");
    for (usage, what) in OPERATOR_VERBS {
        o.push_str(&format!("  {usage:<44} {what}\n"));
    }
    o.push_str("and any config command (README.md: The command language)\n");
    o
}

/// The commands that act on the running director rather than on its config.
pub const OPERATOR_VERBS: &[(&str, &str)] = &[
    (
        "show config|virtual|real|url|bind|backup|statistics|health",
        "the running config, or one view of the director's state",
    ),
    (
        "clear statistics",
        "counts of `show statistics` start again from zero",
    ),
    (
        "reload",
        "re-read the config file; a file with errors is refused whole",
    ),
    ("write memory", "save the running config to the config file"),
    ("help", "this list"),
];
