//! What a `detour ctl` command does to the running control plane, answered with a typed
//! [`Outcome`]: the operator's verbs (`show`, `reload`, `write memory`, `clear statistics`)
//! and every config command, applied to a copy of the model first so a refused one changes
//! nothing.

use crate::files;
use crate::running::Control;
use detour_config::commands::{verb_of, Applies};
use detour_config::error::quoted;
use detour_config::lang;
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

    pub(crate) fn error(e: impl std::fmt::Display) -> Outcome {
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
    ("announce", &["announce"]),
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

/// A command that acts on the running director rather than on its config.
pub struct OperatorVerb {
    /// The words that name it (case-insensitive); the first spelling is the canonical one.
    pub spellings: &'static [&'static [&'static str]],
    pub usage: &'static str,
    pub help: &'static str,
    /// Runs it with the words after the verb's (none when `usage` is empty).
    pub run: fn(&mut Control, &[&str]) -> Outcome,
}

/// The operator's verbs; any other line is a config command ([`detour_config::commands`]).
pub static OPERATOR_VERBS: &[OperatorVerb] = &[
    OperatorVerb {
        spellings: &[&["show"]],
        usage: "config|virtual|real|url|bind|backup|statistics|health|announce",
        help: "the running config, or one view of the director's state",
        run: show_command,
    },
    OperatorVerb {
        spellings: &[&["clear", "statistics"], &["clear", "stats"]],
        usage: "",
        help: "the counts of `show statistics` start again from zero (Prometheus counters stay monotonic)",
        run: |c, _| {
            c.stats.clear();
            Outcome::Shown("ok: statistics cleared\n".into())
        },
    },
    OperatorVerb {
        spellings: &[&["reload"]],
        usage: "",
        help: "re-read the config file (SIGHUP does too); a file with errors is refused whole",
        run: |c, _| c.reload(),
    },
    OperatorVerb {
        spellings: &[&["write", "memory"], &["write", "mem"]],
        usage: "",
        help: "save the running config to the config file, atomically, keeping its owner and mode",
        run: |c, _| c.write_memory(),
    },
    OperatorVerb {
        spellings: &[&["help"]],
        usage: "",
        help: "every command, one line each",
        run: |_, _| Outcome::Shown(crate::help()),
    },
];

impl OperatorVerb {
    /// The canonical words, e.g. `write memory`.
    pub fn name(&self) -> String {
        self.spellings[0].join(" ")
    }
}

fn show_command(c: &mut Control, rest: &[&str]) -> Outcome {
    match rest {
        [what] => match show_view(what) {
            Some(view) => Outcome::Shown(c.show(view)),
            None => Outcome::error(format!(
                "expected {}, found {}",
                show_expected(),
                quoted(what)
            )),
        },
        _ => Outcome::error(format!("expected {}", show_expected())),
    }
}

/// The operator verb a line starts with, and the words after it.
fn operator_verb<'w>(words: &'w [&'w str]) -> Option<(&'static OperatorVerb, &'w [&'w str])> {
    for v in OPERATOR_VERBS {
        for sp in v.spellings {
            let n = sp.len();
            if words.len() >= n && sp.iter().zip(words).all(|(a, b)| a.eq_ignore_ascii_case(b)) {
                return Some((v, &words[n..]));
            }
        }
    }
    None
}

impl Control {
    /// Run one `detour ctl` command (`show health` is answered by whoever runs the checks,
    /// `show announce` by whoever announces).
    pub fn command(&mut self, line: &str) -> Outcome {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            return Outcome::error("expected a command (try `help`)");
        }
        match operator_verb(&words) {
            // A verb without arguments (empty usage) takes no more words.
            Some((v, [w, ..])) if v.usage.is_empty() => {
                Outcome::error(format!("expected end of line, found {}", quoted(w)))
            }
            Some((v, rest)) => (v.run)(self, rest),
            None => self.config_command(line),
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
        let restart = verb_of(&cmd).applies == Applies::NextStart;
        match self.tls_for(&next) {
            Ok(tls) => self.tls = tls,
            Err(e) => return Outcome::error(format!("{e}; running config unchanged")),
        }
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
                match self.tls_for(&m) {
                    Ok(tls) => self.tls = tls,
                    Err(e) => {
                        return Outcome::error(format!("{name}: {e}; running config unchanged"))
                    }
                }
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
