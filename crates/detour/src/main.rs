//! `detour`: the HTTP-redirect packet director's command line.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use detour_config::lang::Role;
use detour_config::{load_bytes, Snapshot};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod announce;
mod ctlloop;
mod health;
mod log;
mod neigh;
mod notify;
mod privs;
mod run;
mod secret;
mod serve;
mod socket;
mod summary;
mod worker;

/// Default path of the control socket.
const DEFAULT_SOCKET: &str = "/run/detour.sock";

/// The manual's closing sections (also `detour --help`).
const MAN_NOTES: &str = "\
Files:
  /etc/detour/detour.conf   the config (the command language; README.md documents every command)
  /run/detour/detour.sock   the control socket of the packaged service (`detour ctl --socket`)

Signals (detour run):
  SIGHUP           re-read the config file; a file with errors is refused whole
  SIGINT, SIGTERM  stop: the workers stop, the XDP programs are detached

Exit status:
  0 success; 1 a refused config or command; 2 usage, I/O or a broken connection

See /usr/share/doc/detour/README.md for the command language, the data path and its limits.";

#[derive(Parser)]
#[command(
    name = "detour",
    version,
    about = "HTTP-redirect load balancer (LocalDirector-style) on AF_XDP",
    after_long_help = MAN_NOTES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a config file and print the resolved model; exit 1 on any error.
    Check {
        /// The config file (the seed's command language, one command per line).
        file: PathBuf,
        /// Print the canonical running config (what `write memory` would save) instead of the tables.
        #[arg(long)]
        canonical: bool,
    },
    /// Run the director: AF_XDP workers, one per queue, on the configured interfaces.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Client-facing interface (default: the config's `interface client`).
        #[arg(long)]
        client_if: Option<String>,
        /// Server-facing interface (default: the config's `interface server`; none: one-armed).
        #[arg(long)]
        server_if: Option<String>,
        /// Queues, one worker each (default: the config's `queues`, else 1).
        #[arg(long)]
        queues: Option<u32>,
        /// Cores to pin the workers to, e.g. `0,1` (default: the config's `cores`, else 0..queues).
        #[arg(long, value_delimiter = ',')]
        cores: Vec<usize>,
        /// Force an AF_XDP bind mode instead of trying zero-copy, then driver copy, then SKB.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Frames per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// After an empty batch, keep polling the rings this long before sleeping in poll()
        /// (0: sleep at once). Spinning costs the core's kernel receive work its time.
        #[arg(long, env = "DETOUR_IDLE_SPIN_US", default_value_t = 0)]
        idle_spin_us: u64,
        /// Opt-in preferred busy polling: the workers run their queues' NAPI themselves for up
        /// to this many µs per call and never sleep (a core each, always busy). Needs a driver
        /// that registers a NAPI per queue; refused, with the reason, where it does not (veth),
        /// and the workers sleep in poll() as without it.
        #[arg(long)]
        busy_poll_us: Option<u32>,
        /// SYN-ACKs a worker sends per batch when the batch came in full (it is behind, e.g.
        /// under a SYN flood); that batch's other SYNs are dropped (`syn_deferred`) after
        /// everything else in it was served. 0: no bound.
        #[arg(long, env = "DETOUR_SYN_BUDGET", default_value_t = detour_dataplane::SYN_ACKS_PER_FULL_BATCH as u16)]
        syn_budget: u16,
        /// Seconds between live summary lines.
        #[arg(long, default_value_t = 5)]
        summary_secs: u64,
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration_secs: Option<u64>,
        /// The control socket (`detour ctl` talks to it).
        #[arg(long, default_value = DEFAULT_SOCKET)]
        ctl_socket: PathBuf,
        /// The control socket's mode, octal: 600 lets only detour's user in, 660 also the
        /// members of its group (the packaged service: the `detour` group).
        #[arg(long, default_value = "600", value_parser = parse_ctl_mode)]
        ctl_mode: u32,
        /// Announce the addresses this director can serve as /32 routes through a TUN device
        /// of this name that detour creates (and that dies with it), for a BGP speaker.
        #[arg(long, value_name = "IFNAME")]
        announce: Option<String>,
        /// The kernel routing table the announced routes go to.
        #[arg(long, default_value_t = 100)]
        announce_table: u32,
        /// On SIGTERM/SIGINT: withdraw the announcements first, keep serving this long, then stop.
        #[arg(long, default_value_t = 0)]
        drain_secs: u64,
        /// Read the SYN-cookie secret (64 hex digits; a second line: one also accepted) from
        /// this owner-only file, at start and on every reload; it overrides the config's
        /// `cookie-secret` and is never saved.
        #[arg(long, value_name = "PATH")]
        cookie_secret_file: Option<PathBuf>,
    },
    /// Send one command to a running detour: any config command, or `show
    /// virtual|real|url|bind|backup|statistics|health|announce|config`, `reload`, `write memory`,
    /// `clear statistics`.
    Ctl {
        /// The control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The command, as words (e.g. `out-of-service real 198.18.0.2 sticky`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a shell completion script for detour (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (roff): detour(1) and one per subcommand, as the package
    /// installs them.
    Man {
        /// The directory to write `detour.1`, `detour-run.1`, ... into.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    ZeroCopy,
    Driver,
    Skb,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "detour", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Cmd::Man { dir } => {
            use clap::CommandFactory;
            match clap_mangen::generate_to(Cli::command(), &dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("detour man: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Check { file, canonical } => check(&file, canonical),
        Cmd::Ctl { socket, command } => ctl(&socket, &command.join(" ")),
        Cmd::Run {
            config,
            client_if,
            server_if,
            queues,
            cores,
            mode,
            batch,
            idle_spin_us,
            busy_poll_us,
            syn_budget,
            summary_secs,
            duration_secs,
            ctl_socket,
            ctl_mode,
            announce,
            announce_table,
            drain_secs,
            cookie_secret_file,
        } => {
            let model = match load_for_run(&config) {
                Ok(m) => m,
                Err(code) => return code,
            };
            if let Err(e) = detour_control::tls::load(&model, &[0; 32]) {
                eprintln!("{}: {e}", config.display());
                return ExitCode::FAILURE;
            }
            let iface = |role| model.settings.interfaces.iter().find(|i| i.role == role);
            let Some(client_if) = client_if.or_else(|| iface(Role::Client).map(|i| i.name.clone()))
            else {
                log!(
                    log::Event::Fatal,
                    "no client interface: give --client-if or `interface client <name>`"
                );
                return ExitCode::from(2);
            };
            let server_if = server_if.or_else(|| iface(Role::Server).map(|i| i.name.clone()));
            let queues = queues
                .or_else(|| iface(Role::Client).map(|i| u32::from(i.queues)))
                .unwrap_or(1)
                .max(1);
            let cores = if !cores.is_empty() {
                cores
            } else if !model.settings.cores.is_empty() {
                model.settings.cores.clone()
            } else {
                (0..queues as usize).collect()
            };
            let io = io_config(batch, mode, busy_poll_us);
            let plan = run::Plan {
                config_path: config.clone(),
                idle_spin: Duration::from_micros(idle_spin_us.min(1_000_000)),
                syn_budget: (syn_budget > 0).then_some(usize::from(syn_budget)),
                ctl_socket,
                ctl_mode,
                model,
                client_if,
                server_if,
                queues,
                cores,
                io,
                summary: Duration::from_secs(summary_secs.max(1)),
                duration: duration_secs.map(Duration::from_secs),
                announce: announce.map(|i| (i, announce_table)),
                drain: Duration::from_secs(drain_secs.min(3600)),
                cookie_secret_file,
            };
            match run::run(plan) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log!(log::Event::Fatal, "{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `--ctl-mode`: octal, read and write bits for the owner and group only (a world-usable
/// control socket would let any local user reconfigure the director).
fn parse_ctl_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("expected an octal mode such as 600 or 660, found `{s}`"))?;
    if mode & !0o660 != 0 || mode & 0o600 != 0o600 {
        return Err(format!(
            "expected 600 or 660 (owner read-write, group at most read-write, nothing for others), found `{s}`"
        ));
    }
    Ok(mode)
}

fn check(file: &std::path::Path, canonical: bool) -> ExitCode {
    let name = file.display().to_string();
    let text = match read_config(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    match load_bytes(&text, &name) {
        Ok(model) => {
            // The certificates of `tls` virtuals are read and checked too.
            if let Err(e) = detour_control::tls::load(&model, &[0; 32]) {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
            if canonical {
                print!("{}", model.to_config());
            } else {
                print!("{}", Snapshot::compile(&model, 1).table());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{name}: {} error(s); nothing applied", errors.len());
            ExitCode::FAILURE
        }
    }
}

fn io_config(
    batch: usize,
    mode: Option<ModeArg>,
    busy_poll_us: Option<u32>,
) -> detour_xsk::io::IoConfig {
    let batch = batch.clamp(1, 256);
    detour_xsk::io::IoConfig {
        batch,
        force_mode: mode.map(|m| match m {
            ModeArg::ZeroCopy => detour_xsk::io::Mode::ZeroCopy,
            ModeArg::Driver => detour_xsk::io::Mode::DriverCopy,
            ModeArg::Skb => detour_xsk::io::Mode::Skb,
        }),
        busy_poll: busy_poll_us.map(|usecs| detour_xsk::busy::BusyPoll {
            usecs,
            budget: batch as u16,
        }),
        note: Some(|args| log!(log::Event::SocketMode, "{args}")),
        ..Default::default()
    }
}

/// `detour ctl`: exit 1 when the command was refused, 2 when there was no answer.
fn ctl(socket: &std::path::Path, command: &str) -> ExitCode {
    match serve::request(socket, command) {
        Ok(answer) => {
            print!("{answer}");
            if answer.starts_with("error") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("detour ctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// The model `detour run` starts with; every error printed.
fn load_for_run(config: &std::path::Path) -> Result<detour_config::Model, ExitCode> {
    let name = config.display().to_string();
    let text = match read_config(config) {
        Ok(t) => t,
        Err(e) => {
            log!(log::Event::Fatal, "{name}: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let model = match load_bytes(&text, &name) {
        Ok(m) => m,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            log!(
                log::Event::Fatal,
                "{name}: {} error(s); not started",
                errors.len()
            );
            return Err(ExitCode::FAILURE);
        }
    };
    Ok(model)
}

/// A config file's text, or why it cannot be had.
fn read_config(file: &std::path::Path) -> Result<Vec<u8>, String> {
    detour_control::files::read_config(file)
}
