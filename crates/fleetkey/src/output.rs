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

/// Whether a JSON field holds a time: `…_at` and `last_seen` (Unix seconds in
/// the API; RFC 3339 in everything the CLI prints).
fn is_time_field(key: &str) -> bool {
    key.ends_with("_at") || key == "last_seen"
}

/// The value with every time field (see [`is_time_field`]) that holds Unix
/// seconds turned into RFC 3339 text, at any depth.
pub fn with_rfc3339(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v.as_i64() {
                        Some(t) if is_time_field(&k) => Value::String(crate::local::format_time(t)),
                        _ => with_rfc3339(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(with_rfc3339).collect()),
        other => other,
    }
}

fn to_value(v: &impl serde::Serialize) -> crate::error::CliResult<serde_json::Value> {
    serde_json::to_value(v)
        .map(with_rfc3339)
        .map_err(|e| crate::error::CliError::refused(e.to_string()))
}

/// Prints a result as indented JSON (times as RFC 3339).
pub fn json(v: &impl serde::Serialize) -> crate::error::CliResult<()> {
    let text = serde_json::to_string_pretty(&to_value(v)?)
        .map_err(|e| crate::error::CliError::refused(e.to_string()))?;
    crate::out!("{text}");
    Ok(())
}

/// Prints one item of a stream as one line of JSON (times as RFC 3339).
pub fn json_line(v: &impl serde::Serialize) -> crate::error::CliResult<()> {
    let text = zeroize::Zeroizing::new(
        serde_json::to_string(&to_value(v)?)
            .map_err(|e| crate::error::CliError::refused(e.to_string()))?,
    );
    crate::out!("{}", text.as_str());
    Ok(())
}

/// A JSON value as one table cell: text as itself, null as `-`, times as RFC
/// 3339 (already, through [`with_rfc3339`]), anything else as compact JSON.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Prints one result in the chosen form: JSON, or a FIELD VALUE table (the
/// object's fields in order; nested values as compact JSON).
pub fn show(v: &impl serde::Serialize, format: crate::cli::Format) -> crate::error::CliResult<()> {
    if format == crate::cli::Format::Json {
        return json(v);
    }
    let v = to_value(v)?;
    let serde_json::Value::Object(map) = &v else {
        crate::out!("{}", cell(&v));
        return Ok(());
    };
    let mut t = table(&["FIELD", "VALUE"], &[]);
    for (k, v) in map {
        t.add_row(vec![k.clone(), cell(v)]);
    }
    crate::out!("{}", t.trim_fmt());
    Ok(())
}

/// Prints rows of objects in the chosen form: JSON (the whole `v`), or a table
/// of `columns` (JSON field, header) of every object in `v[field]`.
pub fn rows(
    v: &serde_json::Value,
    field: &str,
    columns: &[(&str, &str)],
    format: crate::cli::Format,
) -> crate::error::CliResult<()> {
    if format == crate::cli::Format::Json {
        return json(v);
    }
    let v = with_rfc3339(v.clone());
    let headers: Vec<&str> = columns.iter().map(|(_, h)| *h).collect();
    let mut t = table(&headers, &[]);
    for item in v[field].as_array().into_iter().flatten() {
        t.add_row(
            columns
                .iter()
                .map(|(k, _)| cell(&item[*k]))
                .collect::<Vec<_>>(),
        );
    }
    crate::out!("{}", t.trim_fmt());
    Ok(())
}
