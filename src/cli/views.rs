//! Renderings of plans, snapshots and apply events for people (and JSON for
//! machines). Views format values; they decide nothing.

use crate::apply::{ApplyReport, Event};
use crate::plan::{Action, AttributeChange, Plan, PlanKind, ResourceChange, format_age};
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
            Action::Forget => self.paint("31", &symbol),
            Action::Update => self.paint("33", &symbol),
        }
    }
}

/// `before → after`, with the words that changed marked (red and green on
/// a terminal) by a word diff, so `[repository.a]` → `[repository.a,
/// repository.b]` shows what was added rather than two opaque strings.
pub fn attribute_change(change: &AttributeChange, style: Style) -> String {
    let (before, after) = match (&change.before, &change.after) {
        (None, Some(after)) => return format!("{}: (not set) → {after}", change.name),
        (Some(before), None) => return format!("{}: {before} → (not set)", change.name),
        (None, None) => return format!("{}: (not set)", change.name),
        (Some(before), Some(after)) => (before, after),
    };
    if !style.color {
        return format!("{}: {before} → {after}", change.name);
    }
    let (old_tokens, new_tokens) = (tokens(before), tokens(after));
    let (mut old, mut new) = (String::new(), String::new());
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &old_tokens, &new_tokens);
    for op in ops {
        for change in op.iter_changes(&old_tokens, &new_tokens) {
            let text = change.value();
            match change.tag() {
                similar::ChangeTag::Equal => {
                    old.push_str(text);
                    new.push_str(text);
                }
                similar::ChangeTag::Delete => old.push_str(&style.paint("31", text)),
                similar::ChangeTag::Insert => new.push_str(&style.paint("32", text)),
            }
        }
    }
    format!("{}: {old} → {new}", change.name)
}

/// Names and numbers (`repository.offsite`, `14`, `7d`) as single tokens,
/// every other character on its own, so a diff marks `, repository.offsite`
/// as added to a list rather than the whole list as changed.
fn tokens(text: &str) -> Vec<&str> {
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        let continues = chars
            .peek()
            .is_some_and(|&(_, next)| is_word(c) && is_word(next));
        if !continues {
            out.push(&text[start..end]);
            start = end;
        }
    }
    out
}

pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `Plan: 2 to back up, 3 to forget, 1 to update, 4 unchanged.`: forget and
/// update counts appear when there are any.
pub fn summary_line(plan: &Plan) -> String {
    let summary = plan.summary;
    match plan.kind {
        PlanKind::Backup => {
            let mut parts = vec![format!("{} to back up", summary.to_back_up)];
            if summary.to_forget > 0 {
                parts.push(format!("{} to forget", summary.to_forget));
            }
            if summary.to_update > 0 {
                parts.push(format!("{} to update", summary.to_update));
            }
            parts.push(format!("{} unchanged", summary.unchanged));
            format!("Plan: {}.", parts.join(", "))
        }
        PlanKind::Restore => format!("Plan: {} to restore.", summary.to_restore),
        PlanKind::Forget => format!("Plan: {} to forget.", summary.to_forget),
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
        Action::Forget => format!(
            "forget {} on {repositories}",
            plural(change.forget.len(), "snapshot")
        ),
        Action::Update => "settings changed".to_string(),
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
        out.push_str(match plan.kind {
            PlanKind::Forget => "Nothing to forget: retention keeps every snapshot.\n\n",
            _ => "The spec declares no volumes to protect (or --target matched none).\n\n",
        });
    } else {
        let heading = match plan.kind {
            PlanKind::Backup => "lifeboat will perform the following actions:",
            PlanKind::Restore => "lifeboat will restore the following:",
            PlanKind::Forget => "lifeboat will forget the following snapshots:",
        };
        let _ = writeln!(out, "{}\n", style.bold(heading));
        let width = plan
            .changes
            .iter()
            .map(|c| c.address.len())
            .max()
            .unwrap_or(0);
        for change in &plan.changes {
            if change.action == Action::Update {
                render_update(&mut out, change, width, style);
                continue;
            }
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
            for snapshot in &change.forget {
                let _ = writeln!(
                    out,
                    "    {:width$}   {} {} {} ({}, {})",
                    "",
                    style.paint("31", "-"),
                    snapshot.short_id(),
                    snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    human_bytes(snapshot.bytes),
                    plural(snapshot.files as usize, "file")
                );
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
    let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    out
}

/// `~ policy.critical   retention.keep_daily: 14 → 30`, one attribute a
/// line, as the DESIGN.md sketch shows; new and removed resources say so first.
fn render_update(out: &mut String, change: &ResourceChange, width: usize, style: Style) {
    let mut lines: Vec<String> = change
        .attributes
        .iter()
        .map(|a| attribute_change(a, style))
        .collect();
    let changed_only = change
        .reasons
        .iter()
        .all(|r| r == "changed since the last apply");
    if !changed_only || lines.is_empty() {
        lines.insert(0, change.reasons.join("; "));
    }
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(
                out,
                "  {} {:width$}   {line}",
                style.action(change.action),
                change.address
            );
        } else {
            let _ = writeln!(out, "    {:width$}   {line}", "");
        }
    }
}

pub fn render_report(kind: PlanKind, report: &ApplyReport, style: Style) -> String {
    let forgotten = || {
        format!(
            "{} forgotten ({} freed)",
            plural(report.forgotten, "snapshot"),
            human_bytes(report.bytes_freed())
        )
    };
    let (verb, details) = match kind {
        PlanKind::Backup => {
            let added: u64 = report.outcomes.iter().map(|o| o.added_bytes).sum();
            let bytes: u64 = report.outcomes.iter().map(|o| o.bytes).sum();
            let mut details = format!("{} read, {} added", human_bytes(bytes), human_bytes(added));
            if report.forgotten > 0 {
                let _ = write!(details, "; {}", forgotten());
            }
            if report.settings_recorded > 0 {
                let _ = write!(
                    details,
                    "; settings of {} recorded",
                    plural(report.settings_recorded, "resource")
                );
            }
            ("backed up", details)
        }
        PlanKind::Restore => {
            let bytes: u64 = report.outcomes.iter().map(|o| o.bytes).sum();
            ("restored", format!("{} written", human_bytes(bytes)))
        }
        PlanKind::Forget => {
            let line = if report.failed() == 0 {
                format!("Forget complete! {}.", forgotten())
            } else {
                format!(
                    "Forget finished with errors: {}, {} failed.",
                    forgotten(),
                    report.failed()
                )
            };
            return format!("\n{}\n", style.bold(&line));
        }
    };
    let line = if report.failed() == 0 {
        format!("Apply complete! {} {verb} ({details}).", report.succeeded())
    } else {
        format!(
            "Apply finished with errors: {} {verb}, {} failed ({details}).",
            report.succeeded(),
            report.failed()
        )
    };
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
            Event::Forgotten {
                address,
                repository,
                snapshots,
            } => self.line(format!(
                "{address}: forgot {} on {repository}",
                plural(snapshots.len(), "snapshot")
            )),
            Event::Pruned { repository, stats } => self.line(format!(
                "repository.{repository}: pruned {} ({} repacked), {} freed",
                plural(stats.packs_deleted as usize, "pack"),
                stats.packs_repacked,
                human_bytes(stats.bytes_freed)
            )),
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

#[cfg(test)]
mod tests {
    //! Snapshot tests of the renderings reviewers read: the human plan and
    //! the pull-request comment, for a plan with every kind of backup change.
    use super::*;
    use crate::plan::{AttributeChange, Basis, SnapshotRef, Summary};
    use chrono::TimeZone;

    fn snapshot(id: &str, day: u32, bytes: u64, files: u64) -> SnapshotRef {
        SnapshotRef {
            id: format!("{id}{}", "0".repeat(56)),
            repository: "primary".into(),
            time: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(),
            bytes,
            files,
        }
    }

    fn every_kind_of_change() -> Plan {
        let mut pgdata = ResourceChange::new("volume.pgdata", Action::BackUp);
        pgdata.reasons = vec![
            "last snapshot 3h12m ago > rpo 1h".into(),
            "never backed up to offsite".into(),
        ];
        pgdata.repositories = vec!["primary".into(), "offsite".into()];
        let mut uploads = ResourceChange::new("volume.uploads", Action::BackUp);
        uploads.reasons = vec!["replacement requested (--replace)".into()];
        uploads.repositories = vec!["primary".into()];
        let mut config = ResourceChange::new("volume.config", Action::UpToDate);
        config.reasons = vec!["snapshot 3f9a1c22, 2h ago, rpo 24h".into()];
        config.repositories = vec!["primary".into()];
        let mut forget = ResourceChange::new("volume.pgdata", Action::Forget);
        forget.reasons = vec!["retention (keep_last 7, keep_daily 14) keeps 7 of 9".into()];
        forget.repositories = vec!["primary".into()];
        forget.forget = vec![
            snapshot("8c2e41f0", 2, 1_250_000_000, 20_431),
            snapshot("1b7d9e33", 1, 1_240_000_000, 1),
        ];
        let mut policy = ResourceChange::new("policy.critical", Action::Update);
        policy.reasons = vec!["changed since the last apply".into()];
        policy.attributes = vec![
            AttributeChange {
                name: "copies".into(),
                before: Some("[repository.primary]".into()),
                after: Some("[repository.primary, repository.offsite]".into()),
            },
            AttributeChange {
                name: "retention.keep_daily".into(),
                before: Some("14".into()),
                after: Some("30".into()),
            },
            AttributeChange {
                name: "rto".into(),
                before: None,
                after: Some("15m".into()),
            },
        ];
        let mut added = ResourceChange::new("policy.archive", Action::Update);
        added.reasons = vec!["new since the last apply".into()];
        added.attributes = vec![AttributeChange {
            name: "rpo".into(),
            before: None,
            after: Some("7d".into()),
        }];
        let changes = vec![pgdata, uploads, config, forget, added, policy];
        Plan {
            format_version: crate::plan::FORMAT_VERSION.into(),
            lifeboat_version: "test".into(),
            kind: PlanKind::Backup,
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
            basis: Basis::default(),
            summary: Summary {
                to_back_up: 2,
                unchanged: 1,
                to_forget: 2,
                to_update: 2,
                ..Summary::default()
            },
            changes,
            warnings: vec![
                "image.base is validated and ordered, but this version of lifeboat backs up \
                 Docker volumes only: it is not protected yet"
                    .into(),
            ],
        }
    }

    #[test]
    fn human_plan() {
        insta::assert_snapshot!(render_plan(&every_kind_of_change(), Style { color: false }));
    }

    #[test]
    fn markdown_plan() {
        insta::assert_snapshot!(markdown::render(&every_kind_of_change()));
    }

    #[test]
    fn colored_attribute_diffs_mark_only_the_changed_words() {
        let change = AttributeChange {
            name: "copies".into(),
            before: Some("[repository.primary]".into()),
            after: Some("[repository.primary, repository.offsite]".into()),
        };
        insta::assert_snapshot!(
            attribute_change(&change, Style { color: true }).replace('\x1b', "<ESC>")
        );
    }

    #[test]
    fn forget_plans_and_reports() {
        let mut plan = every_kind_of_change();
        plan.kind = PlanKind::Forget;
        plan.changes.retain(|c| c.action == Action::Forget);
        plan.warnings.clear();
        let report = ApplyReport {
            forgotten: 2,
            pruned: vec![crate::apply::PruneOutcome {
                repository: "primary".into(),
                stats: crate::repo::PruneStats {
                    packs_deleted: 12,
                    packs_repacked: 2,
                    bytes_freed: 734_003_200,
                },
            }],
            ..ApplyReport::default()
        };
        insta::assert_snapshot!(format!(
            "{}{}",
            render_plan(&plan, Style { color: false }),
            render_report(PlanKind::Forget, &report, Style { color: false })
        ));
    }
}
