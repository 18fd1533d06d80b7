//! The one table of commands. Each verb is declared here once, with its spellings, its
//! usage and help line, whether it applies live or at the next start, its parser, how it
//! changes the model and how the model is written back as commands. The language's
//! dispatch ([`crate::lang::parse_line`]), [`crate::Model::apply`], the canonical config
//! ([`crate::Model::to_config`]), `detour ctl help` and the README's command list all come
//! from it: adding a command is adding an entry (and its `Command` variant).

use crate::error::LineError;
use crate::lang::{Command, Cursor, Removable};
use crate::model::Model;
use crate::{parse, tls, write};

/// When a change takes effect on a running director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// A new snapshot goes to the workers at once.
    Live,
    /// Recorded in the running config; takes effect when detour restarts.
    NextStart,
}

/// One verb of the language.
pub struct Verb {
    /// The words that name it (case-insensitive); the first spelling is the canonical one.
    pub spellings: &'static [&'static [&'static str]],
    /// Its arguments, as the README writes them.
    pub usage: &'static str,
    pub help: &'static str,
    pub applies: Applies,
    /// Reads the arguments after the verb's words.
    pub parse: fn(&mut Cursor) -> Result<Command, LineError>,
    /// Whether a parsed command is this verb's.
    pub is: fn(&Command) -> bool,
    /// Changes the model, or refuses with nothing changed.
    pub apply: fn(&mut Model, &Command) -> Result<(), LineError>,
    /// Appends the commands that rebuild the model's part this verb sets (the canonical
    /// config is every entry's part, in the table's order); `None`: written by another
    /// entry, or nothing to write (removals).
    pub write: Option<fn(&Model, &mut String)>,
}

impl Verb {
    /// The canonical words, e.g. `no bind`.
    pub fn name(&self) -> String {
        self.spellings[0].join(" ")
    }
}

/// Every verb, in the order the canonical config writes them.
pub static VERBS: &[Verb] = &[
    Verb {
        spellings: &[&["cookie-secret"]],
        usage: "<64 hex digits>",
        help: "the SYN-cookie secret, shared by directors behind ECMP (random when not set)",
        applies: Applies::Live,
        parse: parse::cookie_secret,
        is: |c| matches!(c, Command::CookieSecret { .. }),
        apply: |m, c| m.apply_setting(c),
        write: Some(write::cookie_secret),
    },
    Verb {
        spellings: &[&["interface"]],
        usage: "client|server <name> [queues N]",
        help: "an interface the director runs on (one interface: one-armed)",
        applies: Applies::NextStart,
        parse: parse::interface,
        is: |c| matches!(c, Command::Interface { .. }),
        apply: |m, c| m.apply_setting(c),
        write: Some(write::interfaces),
    },
    Verb {
        spellings: &[&["cores"]],
        usage: "<n>[,<n>...]",
        help: "cores for the workers, one per queue",
        applies: Applies::NextStart,
        parse: parse::cores,
        is: |c| matches!(c, Command::Cores { .. }),
        apply: |m, c| m.apply_setting(c),
        write: Some(write::cores),
    },
    Verb {
        spellings: &[&["metrics"]],
        usage: "<loopback ip>:<port>",
        help: "where the Prometheus endpoint listens (loopback only)",
        applies: Applies::NextStart,
        parse: parse::metrics,
        is: |c| matches!(c, Command::Metrics { .. }),
        apply: |m, c| m.apply_setting(c),
        write: Some(write::metrics),
    },
    Verb {
        spellings: &[&["gateway"]],
        usage: "<ip>",
        help: "the client-side next hop (default: the client interface's default gateway)",
        applies: Applies::NextStart,
        parse: parse::gateway,
        is: |c| matches!(c, Command::Gateway { .. }),
        apply: |m, c| m.apply_setting(c),
        write: Some(write::gateway),
    },
    Verb {
        spellings: &[&["tls-connections"]],
        usage: "<n>",
        help: "entries of each worker's table of TLS connections (default 1024)",
        applies: Applies::NextStart,
        parse: tls::tls_connections,
        is: |c| matches!(c, Command::TlsConnections { .. }),
        apply: |m, c| m.apply_tls(c),
        write: Some(tls::write_tls_connections),
    },
    Verb {
        spellings: &[&["tls-handshakes-per-batch"]],
        usage: "<n>",
        help: "new TLS server flights (signatures) each worker makes per batch of frames, 1 to 64 (default 1): DIP latency against handshake rate",
        applies: Applies::Live,
        parse: tls::tls_handshakes_per_batch,
        is: |c| matches!(c, Command::TlsHandshakesPerBatch { .. }),
        apply: |m, c| m.apply_tls(c),
        write: Some(tls::write_tls_handshakes_per_batch),
    },
    Verb {
        spellings: &[&["certificate"]],
        usage: "<name|*.suffix|*> <cert.pem> <key.pem>",
        help: "the certificate (ECDSA or RSA) tls virtuals serve to clients naming it (`*`: the default)",
        applies: Applies::Live,
        parse: tls::certificate,
        is: |c| matches!(c, Command::Certificate { .. }),
        apply: |m, c| m.apply_tls(c),
        write: Some(tls::write_certificates),
    },
    Verb {
        spellings: &[&["no", "certificate"]],
        usage: "<name>",
        help: "stop serving a certificate",
        applies: Applies::Live,
        parse: tls::no_certificate,
        is: |c| matches!(c, Command::NoCertificate { .. }),
        apply: |m, c| m.apply_tls(c),
        write: None,
    },
    Verb {
        spellings: &[&["real"]],
        usage: "<ip>[:port]",
        help: "a real server",
        applies: Applies::Live,
        parse: parse::real,
        is: |c| matches!(c, Command::Real { .. }),
        apply: |m, c| m.apply_object(c),
        write: Some(write::reals),
    },
    Verb {
        spellings: &[&["virtual"]],
        usage: "<ip>[:port] [tls]",
        help: "a primary virtual server: requests to it get a redirect (`tls`: over TLS 1.3, port 443 unless given)",
        applies: Applies::Live,
        parse: parse::virtual_,
        is: |c| matches!(c, Command::Virtual { .. }),
        apply: |m, c| m.apply_object(c),
        // Virtuals and DIPs are written together, in their order.
        write: Some(write::virtuals_and_dips),
    },
    Verb {
        spellings: &[&["dip"], &["direct-ip"], &["direct", "-", "ip"]],
        usage: "<ip>[:port] [real <ip>[:port]]",
        help: "a directed IP paired 1-to-1 with a real (at the same address, or NAT to `real`)",
        applies: Applies::Live,
        parse: parse::dip,
        is: |c| matches!(c, Command::Dip { .. }),
        apply: |m, c| m.apply_dip(c),
        write: None,
    },
    Verb {
        spellings: &[&["url"]],
        usage: "<id> <url_string> [301|302|303|307|308]",
        help: "a URL template to redirect to (code 302 unless given)",
        applies: Applies::Live,
        parse: parse::url,
        is: |c| matches!(c, Command::Url { .. }),
        apply: |m, c| m.apply_object(c),
        write: Some(write::urls),
    },
    Verb {
        spellings: &[&["link"]],
        usage: "<url> <dip|real|virtual>",
        help: "the URL inherits the state (and, from a real, the weight) of what it is linked to",
        applies: Applies::Live,
        parse: parse::link,
        is: |c| matches!(c, Command::Link { .. }),
        apply: |m, c| m.apply_link(c),
        write: Some(write::links),
    },
    Verb {
        spellings: &[&["weight"]],
        usage: "<real|url> <0..1000>",
        help: "the member's share of redirects (0: none)",
        applies: Applies::Live,
        parse: parse::weight,
        is: |c| matches!(c, Command::Weight { .. }),
        apply: |m, c| m.apply_weight(c),
        write: Some(write::weights),
    },
    Verb {
        spellings: &[&["health-check"]],
        usage: "<real|all> none|tcp|http [path P] [expect N] [interval D] [timeout D] [rise N] [fall N]",
        help: "health check of a real (`all`: the default for reals without their own)",
        applies: Applies::Live,
        parse: parse::health_check,
        is: |c| matches!(c, Command::HealthCheck { .. }),
        apply: |m, c| m.apply_health(c),
        write: Some(write::health_checks),
    },
    Verb {
        spellings: &[&["bind"]],
        usage: "<virtual> <real|url> ...",
        help: "add members to a virtual's rotation (`|` separators accepted)",
        applies: Applies::Live,
        parse: |c| parse::bind(c, false),
        is: |c| matches!(c, Command::Bind { no: false, .. }),
        apply: |m, c| m.apply_bind(c),
        write: Some(write::binds),
    },
    Verb {
        spellings: &[&["no", "bind"]],
        usage: "<virtual> <real|url> ...",
        help: "remove members from a virtual's rotation",
        applies: Applies::Live,
        parse: |c| parse::bind(c, true),
        is: |c| matches!(c, Command::Bind { no: true, .. }),
        apply: |m, c| m.apply_bind(c),
        write: None,
    },
    Verb {
        spellings: &[&["predictor"]],
        usage: "<virtual> roundrobin|weighted|leastconns|hash",
        help: "how a virtual's member is picked (default weighted)",
        applies: Applies::Live,
        parse: parse::predictor,
        is: |c| matches!(c, Command::Predictor { .. }),
        apply: |m, c| m.apply_predictor(c),
        write: Some(write::predictors),
    },
    Verb {
        spellings: &[&["backup"]],
        usage: "<real|virtual> <real|virtual|url>",
        help: "what takes over when it is down",
        applies: Applies::Live,
        parse: |c| parse::backup(c, false),
        is: |c| matches!(c, Command::Backup { no: false, .. }),
        apply: |m, c| m.apply_backup(c),
        write: Some(write::backups),
    },
    Verb {
        spellings: &[&["no", "backup"]],
        usage: "<real|virtual> [<backup>]",
        help: "clear a backup",
        applies: Applies::Live,
        parse: |c| parse::backup(c, true),
        is: |c| matches!(c, Command::Backup { no: true, .. }),
        apply: |m, c| m.apply_backup(c),
        write: None,
    },
    Verb {
        spellings: &[&["in-service"]],
        usage: "virtual|real|url <id> [all]",
        help: "put it (with `all`: its members or linked URLs too) in service",
        applies: Applies::Live,
        parse: parse::in_service,
        is: |c| matches!(c, Command::InService { .. }),
        apply: |m, c| m.apply_state(c),
        write: None,
    },
    Verb {
        spellings: &[&["out-of-service"]],
        usage: "virtual|real|url <id> [oos|maintenance|sticky|failed] [all]",
        help: "take it out of service (`sticky`: its sessions go on, no new redirects)",
        applies: Applies::Live,
        parse: parse::out_of_service,
        is: |c| matches!(c, Command::OutOfService { .. }),
        apply: |m, c| m.apply_state(c),
        write: Some(write::states),
    },
    removal(&[&["no", "url"]], "<url>", Removable::Url),
    removal(&[&["no", "dip"], &["no", "direct-ip"]], "<dip>", Removable::Dip),
    removal(&[&["no", "real"]], "<real>", Removable::Real),
    removal(&[&["no", "virtual"]], "<virtual>", Removable::Virtual),
];

/// `no url|dip|real|virtual <id>`: one entry per kind, all removing through the model.
const fn removal(
    spellings: &'static [&'static [&'static str]],
    usage: &'static str,
    kind: Removable,
) -> Verb {
    Verb {
        spellings,
        usage,
        help: "remove it; refused, naming them, while anything refers to it",
        applies: Applies::Live,
        parse: match kind {
            Removable::Url => |c| parse::remove(c, Removable::Url),
            Removable::Dip => |c| parse::remove(c, Removable::Dip),
            Removable::Real => |c| parse::remove(c, Removable::Real),
            Removable::Virtual => |c| parse::remove(c, Removable::Virtual),
        },
        is: match kind {
            Removable::Url => |c| {
                matches!(
                    c,
                    Command::Remove {
                        kind: Removable::Url,
                        ..
                    }
                )
            },
            Removable::Dip => |c| {
                matches!(
                    c,
                    Command::Remove {
                        kind: Removable::Dip,
                        ..
                    }
                )
            },
            Removable::Real => |c| {
                matches!(
                    c,
                    Command::Remove {
                        kind: Removable::Real,
                        ..
                    }
                )
            },
            Removable::Virtual => |c| {
                matches!(
                    c,
                    Command::Remove {
                        kind: Removable::Virtual,
                        ..
                    }
                )
            },
        },
        apply: |m, c| m.apply_remove(c),
        write: None,
    }
}

/// The entry of a parsed command.
pub fn verb_of(cmd: &Command) -> &'static Verb {
    VERBS
        .iter()
        .find(|v| (v.is)(cmd))
        .expect("every command has an entry in VERBS")
}

/// One line per verb: `name usage — help` (and when it applies).
pub fn help() -> String {
    let mut o = String::new();
    for v in VERBS {
        let when = match v.applies {
            Applies::Live => "",
            Applies::NextStart => " (at the next start)",
        };
        o.push_str(&format!(
            "  {} {}\n      {}{when}\n",
            v.name(),
            v.usage,
            v.help
        ));
    }
    o
}
