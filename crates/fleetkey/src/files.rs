//! Inputs, atomic outputs and progress for the file commands.

use crate::error::{CliError, CliResult, code};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Reads and writes go to the OS in blocks this large.
const IO_BUFFER: usize = 1 << 20;

/// An opened input and, for files, its size.
pub struct Input {
    pub reader: Box<dyn Read>,
    pub size: Option<u64>,
    pub name: String,
}

/// Opens `path`, or stdin.
pub fn open_input(path: Option<&Path>) -> CliResult<Input> {
    match path {
        Some(p) if p != Path::new("-") => {
            let f = std::fs::File::open(p).map_err(|e| CliError::io(p.display(), &e))?;
            let size = f.metadata().ok().map(|m| m.len());
            Ok(Input {
                reader: Box::new(std::io::BufReader::with_capacity(IO_BUFFER, f)),
                size,
                name: p.display().to_string(),
            })
        }
        _ => Ok(Input {
            reader: Box::new(std::io::stdin().lock()),
            size: None,
            name: "stdin".into(),
        }),
    }
}

/// Where results go: stdout, or a temporary file renamed over the destination
/// only by [`Output::commit`]. Dropping an uncommitted output deletes the temporary.
pub enum Output {
    Stdout(std::io::StdoutLock<'static>),
    File {
        tmp: tempfile::NamedTempFile,
        writer: crate::background::BackgroundWriter<std::fs::File>,
        dest: PathBuf,
    },
}

impl Output {
    /// Prepares the output before any work is done, so a bad destination fails fast.
    pub fn create(path: Option<&Path>, force: bool) -> CliResult<Self> {
        match path {
            Some(p) if p != Path::new("-") => {
                if p.exists() && !force {
                    return Err(
                        CliError::new(code::IO, format!("{} already exists", p.display()))
                            .hint("choose another path, or pass --force to replace it"),
                    );
                }
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                // NamedTempFile is created with mode 0600.
                let tmp = tempfile::Builder::new()
                    .prefix(".fleetkey-")
                    .suffix(".partial")
                    .tempfile_in(dir)
                    .map_err(|e| CliError::io(dir.display(), &e))?;
                let handle = tmp
                    .as_file()
                    .try_clone()
                    .map_err(|e| CliError::io(dir.display(), &e))?;
                Ok(Output::File {
                    tmp,
                    writer: crate::background::BackgroundWriter::new(handle)
                        .map_err(|e| CliError::io("writer thread", &e))?,
                    dest: p.to_path_buf(),
                })
            }
            _ => Ok(Output::Stdout(std::io::stdout().lock())),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Output::Stdout(s) if s.is_terminal())
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(s) => s,
            Output::File { writer, .. } => writer,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".into(),
            Output::File { dest, .. } => dest.display().to_string(),
        }
    }

    /// Makes the output visible: flushes stdout, or renames the file into place.
    /// With `sync`, the file's data reaches the disk before the rename (slower;
    /// survives power loss); without, flushing is left to the OS, as `cp` does.
    pub fn commit(self, sync: bool) -> CliResult<()> {
        match self {
            Output::Stdout(mut s) => s.flush().map_err(|e| CliError::io("stdout", &e)),
            Output::File { tmp, writer, dest } => {
                writer
                    .finish()
                    .map_err(|e| CliError::io(dest.display(), &e))?;
                if sync {
                    tmp.as_file()
                        .sync_all()
                        .map_err(|e| CliError::io(dest.display(), &e))?;
                }
                tmp.persist(&dest)
                    .map(|_| ())
                    .map_err(|e| CliError::io(dest.display(), &e.error))
            }
        }
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
/// A progress bar on standard error counting items (devices), not bytes;
/// hidden when standard error is not a terminal.
pub fn count_progress(total: u64, verb: &str, noun: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "{{msg}} {{bar:40}} {{human_pos}}/{{human_len}} {noun} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(verb.to_owned());
    bar
}

pub fn progress(total: Option<u64>, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(verb.to_owned());
    bar
}
