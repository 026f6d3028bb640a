//! Renderings of plans, snapshots and apply events for people (and JSON for
//! machines). Views format values; they decide nothing.

use crate::apply::{ApplyReport, Event};
use crate::plan::{Action, Plan, PlanKind, ResourceChange, format_age};
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

pub mod markdown;

/// Colors only when asked for and on a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    fn action(&self, action: Action) -> String {
        let symbol = action.symbol().to_string();
        match action {
            Action::BackUp => self.paint("32", &symbol),
            Action::Restore => self.paint("36", &symbol),
            Action::UpToDate => self.paint("2", &symbol),
        }
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn describe(change: &ResourceChange) -> String {
    let repositories = change.repositories.join(", ");
    match change.action {
        Action::BackUp => format!("back up → {repositories}"),
        Action::UpToDate => "up to date".to_string(),
        Action::Restore => {
            let snapshot = change
                .snapshot
                .as_ref()
                .expect("restores name their snapshot");
            let age = (Utc::now() - snapshot.time).to_std().unwrap_or_default();
            format!(
                "restore snapshot {} from {} ({} ago, {}, {} files)",
                snapshot.short_id(),
                snapshot.repository,
                format_age(age),
                human_bytes(snapshot.bytes),
                snapshot.files
            )
        }
    }
}

/// The plan as the DESIGN.md sketch shows it, ending with the `Plan:` line.
pub fn render_plan(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if plan.changes.is_empty() {
        out.push_str("The spec declares no volumes to protect (or --target matched none).\n\n");
    } else {
        let heading = match plan.kind {
            PlanKind::Backup => "lifeboat will perform the following actions:",
            PlanKind::Restore => "lifeboat will restore the following:",
        };
        let _ = writeln!(out, "{}\n", style.bold(heading));
        let width = plan
            .changes
            .iter()
            .map(|c| c.address.len())
            .max()
            .unwrap_or(0);
        for change in &plan.changes {
            let mut reasons = change.reasons.iter();
            let head = describe(change);
            let first = match (change.action, reasons.next()) {
                (Action::UpToDate, Some(reason)) => format!("{head} ({reason})"),
                (_, Some(reason)) => format!("{head}   {reason}"),
                (_, None) => head,
            };
            let _ = writeln!(
                out,
                "  {} {:width$}   {first}",
                style.action(change.action),
                change.address
            );
            for reason in reasons {
                let _ = writeln!(out, "    {:width$}   {reason}", "");
            }
        }
        out.push('\n');
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "{} {warning}", style.paint("33", "Warning:"));
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let summary = plan.summary;
    let line = match plan.kind {
        PlanKind::Backup => format!(
            "Plan: {} to back up, {} unchanged.",
            summary.to_back_up, summary.unchanged
        ),
        PlanKind::Restore => format!("Plan: {} to restore.", summary.to_restore),
    };
    let _ = writeln!(out, "{}", style.bold(&line));
    out
}

pub fn render_report(kind: PlanKind, report: &ApplyReport, style: Style) -> String {
    let verb = match kind {
        PlanKind::Backup => "backed up",
        PlanKind::Restore => "restored",
    };
    let added: u64 = report.outcomes.iter().map(|o| o.added_bytes).sum();
    let bytes: u64 = report.outcomes.iter().map(|o| o.bytes).sum();
    let mut line = if report.failed() == 0 {
        format!("Apply complete! {} {verb}", report.succeeded())
    } else {
        format!(
            "Apply finished with errors: {} {verb}, {} failed",
            report.succeeded(),
            report.failed()
        )
    };
    match kind {
        PlanKind::Backup => {
            let _ = write!(
                line,
                " ({} read, {} added).",
                human_bytes(bytes),
                human_bytes(added)
            );
        }
        PlanKind::Restore => {
            let _ = write!(line, " ({} written).", human_bytes(bytes));
        }
    }
    format!("\n{}\n", style.bold(&line))
}

/// Renders apply events: progress bars on a terminal, plain lines otherwise.
pub struct ProgressView {
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl ProgressView {
    pub fn new(terminal: bool) -> Self {
        ProgressView {
            bars: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => println!("{text}"),
        }
    }

    pub fn handle(&self, event: &Event) {
        match event {
            Event::ResourceStarted {
                address,
                action,
                repository,
                expected_bytes,
            } => {
                let verb = match action {
                    Action::Restore => format!("restoring from {repository}"),
                    _ => format!("backing up → {repository}"),
                };
                match &self.bars {
                    Some(bars) => {
                        let bar = bars.add(match expected_bytes {
                            Some(total) => ProgressBar::new(*total),
                            None => ProgressBar::no_length(),
                        });
                        let template = if expected_bytes.is_some() {
                            "{prefix} {msg} [{bar:30}] {bytes}/~{total_bytes} {binary_bytes_per_sec} {elapsed}"
                        } else {
                            "{prefix} {msg} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}"
                        };
                        bar.set_style(
                            ProgressStyle::with_template(template)
                                .expect("valid template")
                                .progress_chars("=> "),
                        );
                        bar.set_prefix(address.clone());
                        bar.set_message(verb);
                        bar.enable_steady_tick(std::time::Duration::from_millis(200));
                        self.active
                            .lock()
                            .expect("not poisoned")
                            .insert(address.clone(), bar);
                    }
                    None => self.line(format!("{address}: {verb}")),
                }
            }
            Event::ResourceStep { address, message } => self.line(format!("{address}: {message}")),
            Event::Progress { address, bytes, .. } => {
                if let Some(bar) = self.active.lock().expect("not poisoned").get(address) {
                    if bar.length().is_some_and(|total| *bytes > total) {
                        bar.set_length(*bytes);
                    }
                    bar.set_position(*bytes);
                }
            }
            Event::ResourceFinished {
                address,
                snapshot,
                files,
                bytes,
                added_bytes,
                elapsed,
                ..
            } => {
                self.finish_bar(address);
                self.line(format!(
                    "{address}: done, snapshot {} ({}, {files} files, {} added) in {:.1}s",
                    &snapshot[..8.min(snapshot.len())],
                    human_bytes(*bytes),
                    human_bytes(*added_bytes),
                    elapsed.as_secs_f64()
                ));
            }
            Event::ResourceFailed { address, error } => {
                self.finish_bar(address);
                self.line(format!("{address}: FAILED: {error}"));
            }
        }
    }

    fn finish_bar(&self, address: &str) {
        if let Some(bar) = self.active.lock().expect("not poisoned").remove(address) {
            bar.finish_and_clear();
        }
    }
}
