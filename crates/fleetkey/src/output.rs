//! Standard output for the commands' results. Like ripgrep, a closed pipe
//! (`fleetkey devices list | head`) ends the program quietly with exit 0, and any
//! other failure to write is one line on standard error with exit 1; `println!`
//! would panic instead.

use std::io::Write as _;

/// Writes one line to standard output (see the module doc for failures).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        failed(&e);
    }
}

/// Ends the program for a failed write to standard output.
pub fn failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("fleetkey: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// Installs a panic hook that turns a panic into one line and exit code 101 (and
/// a panic from a closed pipe into a quiet exit 0), never a backtrace dump.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("fleetkey: internal error{at}: {msg} (this is a bug; please report it)");
        std::process::exit(101);
    }));
}

/// `println!` that never panics: [`line()`].
#[macro_export]
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// A table for the terminal: the header row, then aligned columns without
/// borders. Columns named in `right` (numbers) are right-aligned. Print it with
/// `out!("{}", table.trim_fmt())`.
pub fn table(header: &[&str], right: &[usize]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    for &i in right {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    t
}
