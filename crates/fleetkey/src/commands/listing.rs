//! Lists a page at a time: one page (its cursor on standard error in a table,
//! `next_after` in JSON) or, with `--all`, every page streamed — table rows
//! aligned to the first page, or JSON lines.

use crate::cli::{Format, PageArgs};
use crate::error::CliResult;
use crate::output::{cell, with_rfc3339};
use serde_json::Value;

/// What a list prints: the array field of each page, its columns (JSON field,
/// header), and what its items are called.
pub(crate) struct Listing<'a> {
    /// The page's array (`devices`, `fleets`).
    pub field: &'a str,
    /// Table columns: JSON field and header.
    pub columns: &'a [(&'a str, &'a str)],
    /// Plural noun for the hint (`devices`).
    pub noun: &'a str,
}

impl Listing<'_> {
    /// Prints one page or, with `--all`, every page from `page.after` on;
    /// `fetch(after, limit)` returns one page (`{field: [...], "next_after": …}`).
    pub async fn print<F, Fut>(
        &self,
        page: &PageArgs,
        format: Format,
        mut fetch: F,
    ) -> CliResult<()>
    where
        F: FnMut(String, u32) -> Fut,
        Fut: std::future::Future<Output = CliResult<Value>>,
    {
        let mut after = page.after.clone().unwrap_or_default();
        let mut table: Option<Vec<usize>> = None;
        loop {
            let v = fetch(after.clone(), page.limit).await?;
            let next = v["next_after"].as_str().map(str::to_owned);
            if !page.all {
                if format == Format::Json {
                    return crate::output::json(&v);
                }
                crate::output::rows(&v, self.field, self.columns, format)?;
                if let Some(next) = next {
                    eprintln!(
                        "fleetkey: more {} after this page: --after {next} (or --all)",
                        self.noun
                    );
                }
                return Ok(());
            }
            let items = v[self.field].as_array().cloned().unwrap_or_default();
            for item in items {
                match format {
                    Format::Json => crate::output::json_line(&item)?,
                    Format::Table => {
                        let item = with_rfc3339(item);
                        let cells: Vec<String> =
                            self.columns.iter().map(|(k, _)| cell(&item[*k])).collect();
                        let widths = table.get_or_insert_with(|| {
                            let widths: Vec<usize> =
                                self.columns.iter().map(|(_, h)| h.len()).collect();
                            let headers: Vec<String> =
                                self.columns.iter().map(|(_, h)| (*h).to_owned()).collect();
                            print_row(&headers, &widths);
                            widths
                        });
                        for (w, c) in widths.iter_mut().zip(&cells) {
                            *w = (*w).max(c.chars().count());
                        }
                        print_row(&cells, widths);
                    }
                }
            }
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        if table.is_none() && format == Format::Table {
            let headers: Vec<String> = self.columns.iter().map(|(_, h)| (*h).to_owned()).collect();
            let widths: Vec<usize> = headers.iter().map(String::len).collect();
            print_row(&headers, &widths);
        }
        Ok(())
    }
}

/// One streamed table row: every column but the last padded to its width and
/// two spaces.
pub(crate) fn print_row(cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(&format!("{c:<w$}  "));
        }
    }
    crate::out!("{}", line.trim_end());
}
