//! `fleetkey compliance report`: evidence from the running service
//! (`GET /v1/compliance/evidence`), evaluated against a framework's controls
//! (`fleetkey_server::compliance`), written as JSON, Markdown or PDF.

use crate::cli::ComplianceCommand;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::pdf::{self, Style};
use fleetkey_server::compliance::{
    self, Drill, Evidence, OperatorEvidence, Report, Status, frameworks, rfc3339,
};
use std::io::Write as _;
use std::path::Path;

pub fn run(cmd: ComplianceCommand) -> CliResult<()> {
    let ComplianceCommand::Report {
        framework,
        report_format,
        output,
        drill_report,
    } = cmd;
    let fw = frameworks::framework(&framework).ok_or_else(|| {
        let names: Vec<&str> = frameworks::FRAMEWORKS.iter().map(|f| f.name).collect();
        CliError::usage(format!(
            "--framework {framework}: one of {}",
            names.join(", ")
        ))
    })?;
    if !["json", "md", "pdf"].contains(&report_format.as_str()) {
        return Err(CliError::usage(format!(
            "--format {report_format}: json, md or pdf"
        )));
    }
    if report_format == "pdf" && output.is_none() {
        return Err(CliError::usage("a PDF needs -o FILE"));
    }
    let operator = OperatorEvidence {
        last_drill: drill_report.as_deref().map(read_drill).transpose()?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("async runtime", &e))?;
    let evidence: Evidence = rt.block_on(async {
        let c = Client::from_env()?.ok_or_else(|| {
            CliError::usage("a report is made from a running service: set FLEETKEY_ADDR and FLEETKEY_TOKEN (scope audit:read)")
        })?;
        c.call(reqwest::Method::GET, "/v1/compliance/evidence", None)
            .await
    })?;
    let report = compliance::report(fw, evidence, operator);
    let bytes = match report_format.as_str() {
        "json" => {
            serde_json::to_vec_pretty(&report).map_err(|e| CliError::refused(e.to_string()))?
        }
        "md" => markdown(&report).into_bytes(),
        _ => pdf::render(&pdf_lines(&report)),
    };
    match output {
        Some(path) => {
            std::fs::write(&path, &bytes).map_err(|e| CliError::io(path.display(), &e))?;
            eprintln!(
                "fleetkey: {} report written to {}: {} pass, {} attention, {} fail",
                report.framework,
                path.display(),
                report.summary.pass,
                report.summary.attention,
                report.summary.fail
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.write_all(if report_format == "json" { b"\n" } else { b"" }))
                .map_err(|e| CliError::io("standard output", &e))?;
        }
    }
    Ok(())
}

/// The drill's date (the file's modification time) and its measured figures.
fn read_drill(path: &Path) -> CliResult<Drill> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path.display(), &e))?;
    let value = |key: &str| -> CliResult<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "{}: no {key} line (the output of scripts/dr_drill.sh)",
                    path.display()
                ))
            })
    };
    let at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| CliError::io(path.display(), &e))?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    Ok(Drill {
        at,
        rto_secs: value("rto_secs=")?,
        rpo_secs: value("rpo_secs=")?,
    })
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Attention => "ATTENTION",
        Status::Fail => "FAIL",
    }
}

fn check_name(f: &compliance::Finding) -> String {
    serde_json::to_value(f.check)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn header(r: &Report) -> Vec<String> {
    let e = &r.evidence;
    vec![
        format!(
            "Collected {} from fleetkey {} (custody {}, TLS {}).",
            rfc3339(e.collected_at),
            e.fleetkey_version,
            e.custody.backend,
            if e.tls.enabled { "on" } else { "off" }
        ),
        format!(
            "Summary: {} controls pass, {} ask for attention, {} fail.",
            r.summary.pass, r.summary.attention, r.summary.fail
        ),
    ]
}

/// The report as Markdown.
fn markdown(r: &Report) -> String {
    let mut out = format!("# {} — fleetkey compliance report\n\n", r.title);
    for l in header(r) {
        out.push_str(&l);
        out.push_str("\n\n");
    }
    out.push_str("| control | title | status |\n|---|---|---|\n");
    for c in &r.controls {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.id,
            c.title,
            word(c.status)
        ));
    }
    for c in &r.controls {
        out.push_str(&format!(
            "\n## {} {} — {}\n\n",
            c.id,
            c.title,
            word(c.status)
        ));
        for f in &c.findings {
            out.push_str(&format!(
                "- **{}** ({}): {}\n  - Operator's duty: {}\n",
                check_name(f),
                word(f.status),
                f.evidence,
                f.operator_duty
            ));
        }
    }
    out
}

/// The report as the PDF's lines.
fn pdf_lines(r: &Report) -> Vec<(Style, String)> {
    let mut lines = vec![(
        Style::Title,
        format!("{} — fleetkey compliance report", r.title),
    )];
    for l in header(r) {
        lines.push((Style::Body, l));
    }
    for c in &r.controls {
        lines.push((
            Style::Heading,
            format!("{} {} — {}", c.id, c.title, word(c.status)),
        ));
        for f in &c.findings {
            lines.push((
                Style::Body,
                format!("{} ({}): {}", check_name(f), word(f.status), f.evidence),
            ));
            lines.push((Style::Body, format!("Operator's duty: {}", f.operator_duty)));
        }
    }
    lines
}
