//! Log lines an operator can filter: each names its level and a stable event name, declared
//! once in [`events!`], e.g.
//!
//! ```text
//! detour: info  health.failed: real 198.18.1.12:8080 failed: connect: refused (detected in 212 ms)
//! ```
//!
//! On a terminal or in a file the line reads as above; when stderr is the journal
//! (`$JOURNAL_STREAM`, set by systemd) each line also starts with its syslog priority
//! (`<3>`, `<4>`, `<6>`), so `journalctl -p warning` filters by level, and
//! `journalctl -u detour | grep health.failed` by event. Logging happens on the control
//! thread at set-up, on changes and on health transitions, never per frame.

use std::fmt::Arguments;
use std::io::Write as _;
use std::sync::OnceLock;

/// How bad it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }

    /// syslog priority (sd-daemon(3) prefixes).
    fn priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
        }
    }
}

macro_rules! events {
    ($($variant:ident => $name:literal, $level:ident, $doc:literal;)*) => {
        /// Every event detour logs: its stable name and level.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Event {
            $(#[doc = $doc] $variant,)*
        }

        impl Event {
            #[cfg(test)]
            pub const ALL: &'static [Event] = &[$(Event::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Event::$variant => $name,)* }
            }

            pub fn level(self) -> Level {
                match self { $(Event::$variant => Level::$level,)* }
            }

            #[cfg(test)]
            pub fn doc(self) -> &'static str {
                match self { $(Event::$variant => $doc,)* }
            }
        }
    };
}

events! {
    Interfaces => "start.interfaces", Info, "the interfaces and their MACs";
    XdpAttached => "start.xdp", Info, "a steering program attached to an interface, and its mode";
    SocketMode => "start.afxdp", Info, "AF_XDP sockets bound (the mode), a mode refused before falling back, busy polling";
    Ready => "start.ready", Info, "every worker runs: detour serves";
    Capabilities => "start.capabilities", Info, "the capabilities kept after set-up";
    NoMac => "neighbour.missing", Warn, "reals or the gateway without a MAC yet (their frames are dropped)";
    NeighboursChanged => "neighbour.changed", Info, "a MAC changed; a new snapshot went to the workers";
    ConfigApplied => "config.applied", Info, "a command or a reload changed the running config (with its epoch)";
    ConfigRefused => "config.refused", Warn, "a command or a reload was refused; the running config stays";
    ConfigWritten => "config.written", Info, "write memory saved the running config";
    HealthFailed => "health.failed", Warn, "a health check failed a real (with the reason and the detection time)";
    HealthRecovered => "health.recovered", Info, "a real passed its health checks again";
    HealthNotStarted => "health.skipped", Warn, "health checks that could not start";
    XdpMaps => "xdp.maps", Error, "the steering program's maps could not be updated";
    Announced => "announce.up", Info, "addresses announced to the BGP speaker";
    Withdrawn => "announce.down", Info, "addresses withdrawn from the BGP speaker";
    AnnounceFailed => "announce.error", Error, "a route change for an announcement failed";
    Notify => "systemd.notify", Warn, "the service manager could not be notified";
    Summary => "stats.summary", Info, "the periodic one-line summary (`--summary-secs`)";
    Stopping => "stop.begin", Info, "a stop was asked (signal or duration)";
    Stopped => "stop.done", Info, "the workers stopped; the totals";
    Fatal => "stop.error", Error, "detour could not start or run";
}

fn journal() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// The line for `event` (without the journal's priority prefix).
pub fn line(event: Event, args: Arguments<'_>) -> String {
    format!(
        "detour: {:<5} {}: {args}",
        event.level().name(),
        event.name()
    )
}

/// Write one log line to stderr.
pub fn emit(event: Event, args: Arguments<'_>) {
    let text = line(event, args);
    let mut err = std::io::stderr().lock();
    let _ = if journal() {
        writeln!(err, "<{}>{text}", event.level().priority())
    } else {
        writeln!(err, "{text}")
    };
}

/// `log!(Event, "format", args...)`: one line with the event's level and name.
#[macro_export]
macro_rules! log {
    ($event:expr, $($arg:tt)*) => {
        $crate::log::emit($event, format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_level_and_event_name() {
        assert_eq!(
            line(
                Event::HealthFailed,
                format_args!("real {} failed", "198.18.1.12:8080")
            ),
            "detour: warn  health.failed: real 198.18.1.12:8080 failed"
        );
    }

    /// The README's table of events, generated from the declaration.
    fn markdown() -> String {
        let mut o = String::from("| event | level | when |\n|---|---|---|\n");
        for e in Event::ALL {
            o.push_str(&format!(
                "| `{}` | {} | {} |\n",
                e.name(),
                e.level().name(),
                e.doc()
            ));
        }
        o
    }

    #[test]
    fn the_readme_lists_every_event() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let table = markdown();
        assert!(
            readme.contains(&table),
            "README.md's table of log events differs from crates/detour/src/log.rs; it should read:\n{table}"
        );
    }

    #[test]
    fn event_names_are_unique_and_dotted() {
        let mut names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "an event name is declared twice");
        for e in Event::ALL {
            let (area, what) = e.name().split_once('.').expect("area.what");
            assert!(!area.is_empty() && !what.is_empty() && !e.doc().is_empty());
            assert!(e
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.'));
        }
    }
}
