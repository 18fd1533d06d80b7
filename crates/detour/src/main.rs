//! `detour`: the HTTP-redirect packet director's command line.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use detour_config::{load, Snapshot};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "detour",
    version,
    about = "HTTP-redirect load balancer (LocalDirector-style) on AF_XDP"
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { file, canonical } => check(&file, canonical),
    }
}

/// Most bytes read from a config file.
const MAX_CONFIG: u64 = 16 << 20;

fn check(file: &std::path::Path, canonical: bool) -> ExitCode {
    let name = file.display().to_string();
    let text = match read_config(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    match load(&text, &name) {
        Ok(model) => {
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

fn read_config(file: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(format!("larger than {MAX_CONFIG} bytes"));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}
