//! What a `detour ctl` command does to the running control plane, answered with a typed
//! [`Outcome`]: the operator's verbs (`show`, `reload`, `write memory`, `clear statistics`)
//! and every config command, applied to a copy of the model first so a refused one changes
//! nothing.

use crate::files;
use crate::running::Control;
use detour_config::error::quoted;
use detour_config::lang::{self, Command};
use std::fmt::Write as _;
use std::time::SystemTime;

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without changing anything (`show`, `clear statistics`, a comment).
    Shown(String),
    /// The running config changed: a new snapshot (this epoch) goes to the workers, the
    /// XDP maps and the health checks follow. `restart` names what waits for the next start.
    Applied { epoch: u64, restart: bool },
    /// `reload`: the file replaced the running config.
    Reloaded { file: String, epoch: u64 },
    /// `write memory`: saved to this file (the target of a symlinked path).
    Written {
        file: String,
        through: Option<String>,
    },
    /// Refused: nothing changed. Each line is one reason.
    Refused(Vec<String>),
}

impl Outcome {
    /// The configuration changed: push the new snapshot, update steering and health.
    pub fn changed(&self) -> bool {
        matches!(self, Outcome::Applied { .. } | Outcome::Reloaded { .. })
    }

    pub fn refused(&self) -> bool {
        matches!(self, Outcome::Refused(_))
    }

    /// The answer sent back: `ok: ...` or `error: ...` lines (what `detour ctl` prints).
    pub fn text(&self) -> String {
        match self {
            Outcome::Shown(t) => t.clone(),
            Outcome::Applied { epoch, restart } => format!(
                "ok: epoch {epoch}{}\n",
                if *restart {
                    " (recorded; takes effect when detour restarts)"
                } else {
                    ""
                }
            ),
            Outcome::Reloaded { file, epoch } => format!("ok: reloaded {file}, epoch {epoch}\n"),
            Outcome::Written {
                file,
                through: None,
            } => format!("ok: wrote {file}\n"),
            Outcome::Written {
                file,
                through: Some(p),
            } => format!("ok: wrote {file} (through {p})\n"),
            Outcome::Refused(lines) => lines.iter().fold(String::new(), |mut o, l| {
                let _ = writeln!(o, "error: {l}");
                o
            }),
        }
    }

    fn error(e: impl std::fmt::Display) -> Outcome {
        Outcome::Refused(vec![e.to_string()])
    }
}

/// The views of `show`, and the words that name them.
pub const SHOW_VIEWS: &[(&str, &[&str])] = &[
    ("config", &["config"]),
    ("virtual", &["virtual", "virtuals"]),
    ("real", &["real", "reals"]),
    ("url", &["url", "urls"]),
    ("bind", &["bind", "binds"]),
    ("backup", &["backup", "backups"]),
    ("statistics", &["statistics", "stats"]),
    ("health", &["health"]),
];

fn show_expected() -> String {
    let names: Vec<&str> = SHOW_VIEWS.iter().map(|(n, _)| *n).collect();
    format!("`show {}`", names.join("|"))
}

/// The canonical name of a `show` view, if `word` names one.
pub fn show_view(word: &str) -> Option<&'static str> {
    SHOW_VIEWS
        .iter()
        .find(|(_, words)| words.iter().any(|w| w.eq_ignore_ascii_case(word)))
        .map(|(n, _)| *n)
}

impl Control {
    /// Run one `detour ctl` command (`show health` is answered by whoever runs the checks).
    pub fn command(&mut self, line: &str) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            [] => Outcome::error("expected a command (try `help`)"),
            ["show", what] => match show_view(what) {
                Some(view) => Outcome::Shown(self.show(view)),
                None => Outcome::error(format!(
                    "expected {}, found {}",
                    show_expected(),
                    quoted(words[1])
                )),
            },
            ["show", ..] => Outcome::error(format!("expected {}", show_expected())),
            ["help"] => Outcome::Shown(crate::help()),
            ["reload"] => self.reload(),
            ["write", "memory" | "mem"] => self.write_memory(),
            ["clear", "statistics" | "stats"] => {
                self.stats.clear();
                Outcome::Shown("ok: statistics cleared\n".into())
            }
            _ => self.config_command(line),
        }
    }

    fn config_command(&mut self, line: &str) -> Outcome {
        let cmd = match lang::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Outcome::Shown("ok: nothing to do\n".into()),
            Err(e) => return Outcome::error(e.at("<ctl>", 1)),
        };
        let mut next = self.model.clone();
        if let Err(e) = next.apply(&cmd) {
            return Outcome::error(e.at("<ctl>", 1));
        }
        let restart = matches!(
            cmd,
            Command::Interface { .. }
                | Command::Cores { .. }
                | Command::Metrics { .. }
                | Command::Gateway { .. }
        );
        self.model = next;
        self.rebuild();
        Outcome::Applied {
            epoch: self.epoch,
            restart,
        }
    }

    /// Re-read the config file; one with errors is refused whole.
    pub fn reload(&mut self) -> Outcome {
        let name = self.path.display().to_string();
        let bytes = match files::read_config(&self.path) {
            Ok(t) => t,
            Err(e) => return Outcome::error(format!("{name}: {e}; running config unchanged")),
        };
        match detour_config::load_bytes(&bytes, &name) {
            Ok(m) => {
                self.model = m;
                self.rebuild();
                Outcome::Reloaded {
                    file: name,
                    epoch: self.epoch,
                }
            }
            Err(errors) => {
                let mut lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                lines.push(format!(
                    "{} error(s) in {name}; running config unchanged",
                    errors.len()
                ));
                Outcome::Refused(lines)
            }
        }
    }

    /// Save the running config (see [`files::write_config`]).
    pub fn write_memory(&mut self) -> Outcome {
        let text = format!(
            "# written by detour `write memory` ({}s after the Unix epoch)\n{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            self.model.to_config()
        );
        match files::write_config(&self.path, &text) {
            Ok(target) => Outcome::Written {
                file: target.display().to_string(),
                through: (target != self.path).then(|| self.path.display().to_string()),
            },
            Err(e) => Outcome::error(e),
        }
    }
}
