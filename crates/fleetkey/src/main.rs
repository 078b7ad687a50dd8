//! The `fleetkey` binary. This commands are offline: keygen, seal, unseal,
//! inspect. See `fleetkey --help`.

mod background;
mod cli;
mod commands;
mod error;
mod files;
mod keyfile;

use clap::Parser;
use error::CliError;

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Keygen(a) => commands::keygen::run(a),
        cli::Command::Seal(a) => commands::seal::run(a),
        cli::Command::Unseal(a) => commands::unseal::run(a),
        cli::Command::Inspect(a) => commands::inspect::run(a),
    };
    if let Err(e) = result {
        exit_with(e);
    }
}

fn exit_with(e: CliError) -> ! {
    // A closed pipe (`fleetkey unseal … | head`) is not an error worth reporting.
    if e.broken_pipe {
        std::process::exit(0);
    }
    eprintln!("fleetkey: {}", e.message);
    if let Some(h) = &e.hint {
        eprintln!("fleetkey: hint: {h}");
    }
    std::process::exit(e.code);
}
