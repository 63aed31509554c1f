//! The `itlin` command-line tool: `itlin train`, `itlin sweep`, `itlin bench` (see `itlin --help`).

mod cli;

use clap::Parser;
use clap::error::ErrorKind;
use cli::args::{Cli, Command};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                // clap's message is several lines (usage, hint): keep the first one.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("error: {first} (see itlin --help)");
                std::process::exit(2);
            }
        },
    };
    if let Err(e) = itlin::kernels::cpu::level::requested_cap() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = match &cli.command {
        Command::Train(a) => cli::train::main(a),
        Command::Sweep(a) => cli::sweep::main(a),
        Command::Bench(a) => cli::bench::main(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
