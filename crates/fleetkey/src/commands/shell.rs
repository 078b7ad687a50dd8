//! What fits the operator's shell and system: completion scripts, manual pages,
//! and the service's configuration file (check one, print the defaults).

use crate::cli::{Cli, ServiceConfigCommand};
use crate::error::{CliError, CliResult};
use clap::CommandFactory;
use fleetkey_server::config::{Config, DEFAULTS_TOML};
use std::path::Path;

/// `fleetkey completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> CliResult<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fleetkey", &mut out);
    write_stdout(&out)
}

/// `fleetkey man [--out-dir DIR]`.
pub fn man(out_dir: Option<&Path>) -> CliResult<()> {
    let cmd = Cli::command();
    match out_dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| CliError::io("stdout", &e))?;
            write_stdout(&out)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir.display(), &e))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| CliError::io(dir.display(), &e))?;
            eprintln!("fleetkey: manual pages written to {}", dir.display());
            Ok(())
        }
    }
}

/// `fleetkey config check|defaults`.
pub fn config(cmd: ServiceConfigCommand) -> CliResult<()> {
    match cmd {
        ServiceConfigCommand::Defaults => write_stdout(DEFAULTS_TOML.as_bytes()),
        ServiceConfigCommand::Check { file } => {
            if !file.exists() {
                return Err(CliError::new(
                    crate::error::code::IO,
                    format!("{}: no such file", file.display()),
                ));
            }
            let c = Config::from_file(&file)
                .and_then(|c| c.validate().map(|()| c))
                .map_err(|e| {
                    CliError::usage(e.to_string())
                        .hint("`fleetkey config defaults` prints every setting with its default")
                })?;
            eprintln!(
                "fleetkey: {} is valid (HTTP {}, data in {}; FLEETKEY_* variables, not read here, override it)",
                file.display(),
                c.listen,
                c.data_dir.display()
            );
            Ok(())
        }
    }
}

fn write_stdout(bytes: &[u8]) -> CliResult<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        crate::output::failed(&e);
    }
    Ok(())
}
