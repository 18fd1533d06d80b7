//! detour's control plane as a library, free of sockets and threads: the running model and
//! the snapshots it builds ([`running`]), statistics from the workers' reports ([`stats`]),
//! the `show` views ([`show`]) and the Prometheus text ([`prometheus`]), config files
//! ([`files`]: `reload`, `write memory`), and what each `detour ctl` command does, answered
//! with a typed [`Outcome`] ([`commands`]), and which addresses a director can announce
//! ([`announce`]). The `detour` binary wires it to the control
//! socket, the metrics endpoint, the health checkers and the workers.
#![forbid(unsafe_code)]

pub mod announce;
pub mod commands;
pub mod files;
pub mod prometheus;
pub mod running;
pub mod show;
pub mod stats;
pub mod status;
pub mod tls;

pub use commands::Outcome;
pub use running::{Control, Neighbours};
pub use stats::{Report, Stats};

/// `help`: the operator's verbs and the config commands, one line each, from their tables.
pub fn help() -> String {
    let mut o = String::from("operator commands:\n");
    for v in commands::OPERATOR_VERBS {
        o.push_str(&format!("  {} {}\n      {}\n", v.name(), v.usage, v.help));
    }
    o.push_str("config commands (applied to the running config at once, unless noted):\n");
    o.push_str(&detour_config::commands::help());
    o
}

/// The README's list of every command, generated from the two tables (a test keeps the
/// README's copy equal to it).
pub fn markdown() -> String {
    let mut o = String::from("| command | what it does |\n|---|---|\n");
    let esc = |t: &str| t.replace('|', "\\|");
    let mut row = |spellings: &[&[&str]], usage: &str, help: &str, note: &str| {
        let name = spellings[0].join(" ");
        let cmd = if usage.is_empty() {
            name
        } else {
            format!("{name} {usage}")
        };
        let also: Vec<String> = spellings[1..]
            .iter()
            .map(|s| format!("`{}`", s.join(" ")))
            .collect();
        let also = if also.is_empty() {
            String::new()
        } else {
            format!(" (also {})", also.join(", "))
        };
        o.push_str(&format!(
            "| `{}`{also} | {}{note} |\n",
            esc(&cmd),
            esc(help)
        ));
    };
    for v in commands::OPERATOR_VERBS {
        row(v.spellings, v.usage, v.help, " (operator)");
    }
    for v in detour_config::commands::VERBS {
        let note = match v.applies {
            detour_config::commands::Applies::Live => "",
            detour_config::commands::Applies::NextStart => {
                " (recorded live; takes effect at the next start)"
            }
        };
        row(v.spellings, v.usage, v.help, note);
    }
    o
}
