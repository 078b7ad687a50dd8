//! The `fleetkey` binary: offline file commands (keygen, seal, unseal, inspect) and
//! local admin commands on a data directory (keys, audit). See `fleetkey --help`.

mod background;
mod binding;
mod cli;
mod client;
mod commands;
mod error;
mod files;
mod keyfile;
mod keyring_lifecycle;
mod keyrings;
mod local;
mod output;
mod pdf;
mod tokens;

use clap::Parser;
use error::CliError;

fn main() {
    output::install_panic_hook();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Keygen(a) => commands::keygen::run(a),
        cli::Command::Seal(a) => commands::seal::run(a),
        cli::Command::Unseal(a) => commands::unseal::run(a),
        cli::Command::Inspect(a) => commands::inspect::run(a),
        cli::Command::Verify(a) => commands::verify::run(a),
        cli::Command::Keys(c) => commands::keys::run(c),
        cli::Command::Audit(c) => commands::audit::run(c),
        cli::Command::Custody(c) => commands::custody::run(c),
        cli::Command::Backup(c) => commands::backup::run(c),
        cli::Command::Compliance(c) => commands::compliance::run(c),
        cli::Command::Serve(a) => commands::serve::run(a),
        cli::Command::Tokens(c) => commands::tokens::run(c),
        cli::Command::Fleets(c) => commands::fleets::fleets(c),
        cli::Command::Factory(c) => commands::factory::factory(c),
        cli::Command::Devices(c) => commands::devices::devices(c),
        cli::Command::Demo(a) => commands::demo::run(a),
        cli::Command::ServiceConfig(c) => commands::shell::config(c),
        cli::Command::Completions { shell } => commands::shell::completions(shell),
        cli::Command::Man { out_dir } => commands::shell::man(out_dir.as_deref()),
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
