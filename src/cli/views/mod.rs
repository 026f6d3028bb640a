//! Renderings of plans, reports and apply events for people (and JSON for
//! machines). Views put values into words; they decide nothing.

pub mod drill;
pub mod markdown;
mod progress;
pub mod prune;
pub mod recover;
pub mod repair;
pub mod runs;
pub mod schedule;
pub mod status;
mod words;

pub use progress::ProgressView;
pub use words::{looks_unmounted, plan_kind_name, reason, warning};

use crate::apply::{ApplyReport, Status};
use crate::plan::{
    Action, AttributeChange, Plan, PlanKind, PlannedCopy, Reason, ResourceChange, Warning,
    format_age,
};
use chrono::Utc;
use std::fmt::Write as _;

/// How output may be decorated: colors, and live progress bars (on
/// stderr). Both only when asked for and on a terminal.
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
            Action::BackUp | Action::Create => self.paint("32", &symbol),
            Action::Restore => self.paint("36", &symbol),
            Action::UpToDate => self.paint("2", &symbol),
            Action::Forget => self.paint("31", &symbol),
            Action::Update => self.paint("33", &symbol),
            Action::Problem => self.paint("31;1", &symbol),
            Action::Copy => self.paint("34", &symbol),
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

/// `Plan: 2 to back up, 1 to copy, 3 to forget, 1 to update, 4 unchanged,
/// 1 problem.`: copy, forget, update and problem counts appear when there
/// are any.
pub fn summary_line(plan: &Plan) -> String {
    let summary = plan.summary;
    let mut parts = match plan.kind {
        PlanKind::Backup => {
            let mut parts = vec![format!("{} to back up", summary.to_back_up)];
            if summary.to_copy > 0 {
                parts.push(format!("{} to copy", summary.to_copy));
            }
            if summary.to_forget > 0 {
                parts.push(format!("{} to forget", summary.to_forget));
            }
            if summary.to_update > 0 {
                parts.push(format!("{} to update", summary.to_update));
            }
            parts.push(format!("{} unchanged", summary.unchanged));
            parts
        }
        PlanKind::Restore => {
            let mut parts = vec![format!("{} to restore", summary.to_restore)];
            if summary.unchanged > 0 {
                parts.push(format!("{} left alone", summary.unchanged));
            }
            parts
        }
        PlanKind::Forget => vec![format!("{} to forget", summary.to_forget)],
    };
    if summary.problems > 0 {
        parts.push(plural(summary.problems, "problem"));
    }
    format!("Plan: {}.", parts.join(", "))
}

/// A size in SI units (powers of 1000: KB, MB, GB), the one unit system of
/// everything lifeboat shows (progress bars use indicatif's `decimal_*`
/// keys for the same); only exact limits in error messages stay binary.
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

/// Whether the snapshots of the resource at `address` hold files to count:
/// a tree's (volumes, binds) do; a stream (a dump, a service's
/// configuration) is bytes, and an image is layers.
pub fn holds_files(address: &str) -> bool {
    use crate::spec::{Address, ResourceKind};
    Address::parse(address)
        .is_some_and(|a| matches!(a.kind, ResourceKind::Volume | ResourceKind::Bind))
}

/// A snapshot's content as people read it: `24.0 MB, 2 files` for a tree,
/// its bytes alone for what holds no files (see [`holds_files`]).
pub fn content_size(address: &str, bytes: u64, files: u64) -> String {
    if holds_files(address) {
        format!("{}, {}", human_bytes(bytes), plural(files as usize, "file"))
    } else {
        human_bytes(bytes)
    }
}

fn describe(kind: PlanKind, change: &ResourceChange) -> String {
    let repositories = change.repositories.join(", ");
    match change.action {
        Action::BackUp => format!("back up → {repositories}"),
        Action::UpToDate => "up to date".to_string(),
        Action::Forget => format!(
            "forget {} on {repositories}",
            plural(change.forget.len(), "snapshot")
        ),
        Action::Update => "settings changed".to_string(),
        Action::Create => create_label(change),
        Action::Copy => format!("copy {}", plural(change.copies.len(), "snapshot")),
        Action::Problem => match kind {
            PlanKind::Restore => "cannot restore:".to_string(),
            _ => "cannot back up now:".to_string(),
        },
        Action::Restore => match &change.snapshot {
            Some(snapshot) => {
                let age = (Utc::now() - snapshot.time).to_std().unwrap_or_default();
                format!(
                    "restore snapshot {} from {} ({} ago, {})",
                    snapshot.short_id(),
                    snapshot.repository,
                    format_age(age),
                    content_size(&change.address.to_string(), snapshot.bytes, snapshot.files)
                )
            }
            None => "restore".to_string(),
        },
    }
}

/// `copy 8c2e41f0 main → offsite`: one `>` line.
pub(crate) fn copy_label(copy: &PlannedCopy) -> String {
    let what = match &copy.snapshot {
        Some(snapshot) => snapshot.short_id(),
        None => "the new snapshot".to_string(),
    };
    format!("copy {what} {} → {}", copy.from, copy.to)
}

/// `create at PATH`: what a `+ repository.NAME` change does.
fn create_label(change: &ResourceChange) -> String {
    match &change.detail {
        crate::plan::Detail::Repository(repository) => {
            format!("create at {}", repository.location)
        }
        _ => "create".to_string(),
    }
}

/// "Snapshots of one moment: apply run …": when every snapshot a restore
/// plan uses comes from the same apply run.
fn one_moment(plan: &Plan) -> Option<String> {
    if plan.kind != PlanKind::Restore {
        return None;
    }
    let snapshots: Vec<_> = plan
        .changes
        .iter()
        .filter_map(|c| c.snapshot.as_ref())
        .collect();
    let run = snapshots.first()?.run.as_deref()?;
    if snapshots.iter().any(|s| s.run.as_deref() != Some(run)) {
        return None;
    }
    let time = snapshots.iter().map(|s| s.time).max()?;
    // The release tags (`apply --tag`) that run gave every snapshot.
    let tags: Vec<&str> = snapshots[0]
        .tags
        .iter()
        .filter(|t| t.contains('=') && snapshots.iter().all(|s| s.tags.contains(t)))
        .map(String::as_str)
        .collect();
    let tagged = if tags.is_empty() {
        String::new()
    } else {
        format!(", tagged {}", tags.join(", "))
    };
    Some(format!(
        "All from one moment: apply run {run} ({}){tagged}.",
        time.format("%Y-%m-%d %H:%M:%S UTC")
    ))
}

/// A change's resource as plans name it: its address, and its engine when
/// that is not the default one (the same volume name on two engines is two
/// resources, and the reader must see which is which).
pub(crate) fn resource_label(change: &ResourceChange) -> String {
    let label = match change.engine.as_deref() {
        Some(engine) if engine != crate::spec::DEFAULT_ENGINE => {
            format!("{} (engine.{engine})", change.address)
        }
        _ => change.address.to_string(),
    };
    match &change.into {
        Some(into) => format!("{label} → {}", words::into_target(change.kind(), into)),
        None => label,
    }
}

/// The warnings block, one `Warning:` line each.
pub fn render_warnings(warnings: &[Warning], style: Style) -> String {
    let mut out = String::new();
    for item in warnings {
        let _ = writeln!(out, "{} {}", style.paint("33", "Warning:"), warning(item));
    }
    out
}

/// The plan as the DESIGN.md sketch shows it, ending with the `Plan:` line.
pub fn render_plan(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if plan.changes.is_empty() {
        out.push_str(match plan.kind {
            PlanKind::Forget => "Nothing to forget: retention keeps every snapshot.\n\n",
            _ => "The spec declares nothing this version protects (or --target matched none).\n\n",
        });
    } else {
        let heading = match plan.kind {
            PlanKind::Backup => "lifeboat will perform the following actions:",
            PlanKind::Restore => "lifeboat will restore the following, in this order:",
            PlanKind::Forget => "lifeboat will forget the following snapshots:",
        };
        let _ = writeln!(out, "{}\n", style.bold(heading));
        if let Some(moment) = one_moment(plan) {
            let _ = writeln!(out, "{moment}\n");
        }
        let width = plan
            .changes
            .iter()
            .map(|c| resource_label(c).chars().count())
            .max()
            .unwrap_or(0);
        for change in &plan.changes {
            if change.action == Action::Update {
                render_update(&mut out, change, width, style);
                continue;
            }
            let address = resource_label(change);
            if change.action == Action::Copy {
                render_copies(&mut out, change, width, style);
                for reason in change.reasons.iter().map(reason) {
                    let _ = writeln!(out, "    {:width$}   {reason}", "");
                }
                continue;
            }
            let mut reasons = change.reasons.iter().map(reason);
            let head = describe(plan.kind, change);
            let first = match (change.action, reasons.next()) {
                (Action::UpToDate, Some(reason)) => format!("{head} ({reason})"),
                (Action::Problem, Some(reason)) => format!("{head} {reason}"),
                (_, Some(reason)) => format!("{head}   {reason}"),
                (_, None) => head,
            };
            let _ = writeln!(
                out,
                "  {} {address:width$}   {first}",
                style.action(change.action),
            );
            for reason in reasons {
                let _ = writeln!(out, "    {:width$}   {reason}", "");
            }
            for snapshot in &change.forget {
                let _ = writeln!(
                    out,
                    "    {:width$}   {} {} {} ({})",
                    "",
                    style.paint("31", "-"),
                    snapshot.short_id(),
                    snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    content_size(&change.address.to_string(), snapshot.bytes, snapshot.files)
                );
            }
            if let Some(partial) = &change.partial {
                for line in partial_lines(partial, style) {
                    let _ = writeln!(out, "    {:width$}   {line}", "");
                }
            }
            render_copies(&mut out, change, width, style);
        }
        out.push('\n');
    }
    out.push_str(&render_warnings(&plan.warnings, style));
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    out
}

/// Entries of a partial restore listed one a line before the rest is
/// only counted (`restore --json` lists them all).
const PARTIAL_LISTED: usize = 20;

/// What a partial restore does under its paths: `+` created, `~`
/// overwritten, one a line up to [`PARTIAL_LISTED`], then counts.
fn partial_lines(partial: &crate::plan::PartialRestore, style: Style) -> Vec<String> {
    let marked = partial
        .create
        .iter()
        .map(|p| (style.paint("32", "+"), p))
        .chain(
            partial
                .overwrite
                .iter()
                .map(|p| (style.paint("33", "~"), p)),
        );
    let total = partial.create.len() + partial.overwrite.len();
    let mut lines: Vec<String> = marked
        .take(PARTIAL_LISTED)
        .map(|(sign, path)| format!("{sign} {}", if path.is_empty() { "/" } else { path }))
        .collect();
    if total > PARTIAL_LISTED {
        lines.push(format!(
            "… and {} more (restore --json lists them all)",
            total - PARTIAL_LISTED
        ));
    }
    let safety = match &partial.into {
        Some(_) => String::new(),
        None if partial.overwrite.is_empty() => "; nothing is overwritten".to_string(),
        None => format!(
            "; the {} overwritten go{} into a safety snapshot first",
            entries(partial.overwrite.len()),
            if partial.overwrite.len() == 1 {
                "es"
            } else {
                ""
            }
        ),
    };
    lines.push(format!(
        "{} created, {} overwritten, {} identical left as they are{safety}",
        partial.create.len(),
        partial.overwrite.len(),
        partial.leave.len(),
    ));
    if !partial.kept.is_empty() {
        lines.push(format!(
            "{} under the path{} that the snapshot lacks {} left alone{}",
            entries(partial.kept.len()),
            if partial.paths.len() == 1 { "" } else { "s" },
            if partial.kept.len() == 1 { "is" } else { "are" },
            match partial.kept.as_slice() {
                [one] => format!(" ({one})"),
                _ => String::new(),
            }
        ));
    }
    lines
}

fn entries(n: usize) -> String {
    match n {
        1 => "1 entry".to_string(),
        n => format!("{n} entries"),
    }
}

/// One `> volume.data   copy 8c2e41f0 main → offsite` line per copy, as
/// the DESIGN.md sketch shows.
fn render_copies(out: &mut String, change: &ResourceChange, width: usize, style: Style) {
    let address = resource_label(change);
    for copy in &change.copies {
        let _ = writeln!(
            out,
            "  {} {address:width$}   {}",
            style.action(Action::Copy),
            copy_label(copy)
        );
    }
}

/// `~ policy.critical   retention.keep_daily: 14 → 30`, one attribute a
/// line, as the DESIGN.md sketch shows; new and removed resources say so first.
fn render_update(out: &mut String, change: &ResourceChange, width: usize, style: Style) {
    let mut lines: Vec<String> = change
        .attributes
        .iter()
        .map(|a| attribute_change(a, style))
        .collect();
    let changed_only = change.reasons.iter().all(|r| *r == Reason::SettingsChanged);
    if !changed_only || lines.is_empty() {
        let said: Vec<String> = change.reasons.iter().map(reason).collect();
        lines.insert(0, said.join("; "));
    }
    let address = resource_label(change);
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(
                out,
                "  {} {address:width$}   {line}",
                style.action(change.action),
            );
        } else {
            let _ = writeln!(out, "    {:width$}   {line}", "");
        }
    }
}

/// The closing lines of an apply, restore or forget.
pub fn render_report(kind: PlanKind, report: &ApplyReport, style: Style) -> String {
    let forgotten = || {
        format!(
            "{} forgotten ({} freed)",
            plural(report.forgotten, "snapshot"),
            human_bytes(report.bytes_freed())
        )
    };
    let mut out = String::new();
    for change in &report.changes {
        match &change.status {
            Status::Failed { error, .. } => {
                let _ = writeln!(
                    out,
                    "  {} {}: {error}",
                    style.paint("31;1", "✗"),
                    change.address
                );
            }
            Status::Skipped { because } => {
                let _ = writeln!(
                    out,
                    "  {} {}: skipped, {because}",
                    style.paint("33", "-"),
                    change.address
                );
            }
            Status::Succeeded => {}
        }
    }
    for error in &report.errors {
        let _ = writeln!(out, "  {} {error}", style.paint("31;1", "✗"));
    }
    let (noun, verb, details) = match kind {
        PlanKind::Backup => {
            let mut details = format!(
                "{} read, {} added",
                human_bytes(report.read_bytes()),
                human_bytes(report.added_bytes())
            );
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
            ("Apply", "backed up", details)
        }
        PlanKind::Restore => (
            "Restore",
            "restored",
            format!(
                "{}{} written",
                if report.whole_stack {
                    "whole stack, "
                } else {
                    ""
                },
                human_bytes(report.content_bytes())
            ),
        ),
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
            return format!("{out}\n{}\n", style.bold(&line));
        }
    };
    // Copies of existing snapshots are counted apart from backups.
    let copied = report
        .changes
        .iter()
        .filter(|c| c.action == Action::Copy && c.status == crate::apply::Status::Succeeded)
        .count();
    let mut done = format!("{} {verb}", report.succeeded() - copied);
    if copied > 0 {
        let _ = write!(done, ", {copied} copied");
    }
    let mut line = if report.is_complete() {
        format!("{noun} complete! {done}")
    } else {
        format!(
            "{noun} finished with errors: {done}, {} failed",
            report.failed()
        )
    };
    if report.skipped() > 0 {
        let _ = write!(line, ", {} skipped", report.skipped());
    }
    if kind == PlanKind::Restore {
        let _ = write!(line, " in {}", words::took(report.elapsed_seconds));
    }
    let _ = write!(line, " ({details}).");
    format!("{out}\n{}\n", style.bold(&line))
}

#[cfg(test)]
mod tests {
    //! Snapshot tests of the renderings reviewers read: the human plan and
    //! the pull-request comment, for a plan with every kind of backup change.
    use super::*;
    use crate::plan::{AttributeChange, Basis, SnapshotRef, Summary};
    use crate::spec::{Address, ResourceKind};
    use chrono::TimeZone;

    fn volume(name: &str) -> Address {
        Address::new(ResourceKind::Volume, name)
    }

    fn policy(name: &str) -> Address {
        Address::new(ResourceKind::Policy, name)
    }

    fn snapshot(id: &str, day: u32, bytes: u64, files: u64) -> SnapshotRef {
        SnapshotRef {
            id: format!("{id}{}", "0".repeat(56)),
            repository: "primary".into(),
            time: Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap(),
            bytes,
            files,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        }
    }

    fn every_kind_of_change() -> Plan {
        let mut pgdata = ResourceChange::new(volume("pgdata"), Action::BackUp);
        pgdata.reasons = vec![
            Reason::RpoExceeded {
                age_seconds: 3 * 3600 + 12 * 60,
                rpo_seconds: 3600,
            },
            Reason::NeverBackedUp {
                repository: Some("offsite".into()),
            },
        ];
        pgdata.repositories = vec!["primary".into(), "offsite".into()];
        let mut uploads = ResourceChange::new(volume("uploads"), Action::BackUp);
        uploads.reasons = vec![Reason::ReplaceRequested];
        uploads.repositories = vec!["primary".into()];
        let mut config = ResourceChange::new(volume("config"), Action::UpToDate);
        config.reasons = vec![Reason::WithinRpo {
            snapshot: "3f9a1c22".into(),
            age_seconds: 7200,
            rpo_seconds: 24 * 3600,
        }];
        config.repositories = vec!["primary".into()];
        let mut forget = ResourceChange::new(volume("pgdata"), Action::Forget);
        forget.reasons = vec![Reason::Retention {
            rules: "keep_last 7, keep_daily 14".into(),
            keep: 7,
            of: 9,
            counting_new: false,
        }];
        forget.repositories = vec!["primary".into()];
        forget.forget = vec![
            snapshot("8c2e41f0", 2, 1_250_000_000, 20_431),
            snapshot("1b7d9e33", 1, 1_240_000_000, 1),
        ];
        let mut critical = ResourceChange::new(policy("critical"), Action::Update);
        critical.reasons = vec![Reason::SettingsChanged];
        critical.attributes = vec![
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
        let mut added = ResourceChange::new(policy("archive"), Action::Update);
        added.reasons = vec![Reason::NewSinceLastApply];
        added.attributes = vec![AttributeChange {
            name: "rpo".into(),
            before: None,
            after: Some("7d".into()),
        }];
        let mut gone = ResourceChange::new(volume("gone"), Action::Problem);
        gone.reasons = vec![Reason::Problem {
            message: "Docker volume \"shop_gone\" does not exist: create it, or fix `name`".into(),
            at: Some("main.hcl:21:1".into()),
        }];
        gone.repositories = vec!["primary".into()];
        let changes = vec![pgdata, uploads, config, gone, forget, added, critical];
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
                problems: 1,
                ..Summary::default()
            },
            changes,
            warnings: vec![Warning::NotActedOn {
                address: "image.base".into(),
                attribute: None,
                at: "main.hcl:3:1".into(),
            }],
            tags: Vec::new(),
        }
    }

    #[test]
    fn sizes_are_si_and_only_trees_count_files() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(41_943_040), "41.9 MB");
        assert_eq!(
            content_size("volume.data", 41_943_040, 2),
            "41.9 MB, 2 files"
        );
        assert_eq!(content_size("bind.conf", 10, 1), "10 B, 1 file");
        // A stream is bytes: a dump had "0 files" at backup, "1 file" listed.
        assert_eq!(content_size("dump.orders", 3_000_000, 0), "3.0 MB");
        assert_eq!(content_size("service.db", 966, 1), "966 B");
        assert_eq!(content_size("image.app", 203_800_000, 3), "203.8 MB");
    }

    #[test]
    fn a_restore_into_other_names_shows_the_new_names_and_the_isolation() {
        let into = |name: &str, network: Option<&str>| crate::plan::RestoreInto {
            name: name.into(),
            network: network.map(str::to_string),
            ..Default::default()
        };
        let mut data = ResourceChange::new(volume("data"), Action::Restore);
        data.into = Some(into("data_copy", None));
        data.reasons = vec![Reason::CreateTarget {
            what: "Docker volume data_copy".into(),
        }];
        let mut api =
            ResourceChange::new(Address::new(ResourceKind::Service, "api"), Action::Restore);
        api.into = Some(into("api_drill", Some("lifeboat_drill")));
        let mut sql = ResourceChange::new(Address::new(ResourceKind::Dump, "sql"), Action::Restore);
        sql.into = Some(into("scratch-pg", None));
        let mut base =
            ResourceChange::new(Address::new(ResourceKind::Image, "base"), Action::Restore);
        base.into = Some(into("", None));
        let mut live = ResourceChange::new(volume("logs"), Action::UpToDate);
        live.reasons = vec![Reason::NotMapped {
            what: "Docker volume shop_logs".into(),
        }];
        let plan = Plan {
            kind: PlanKind::Restore,
            changes: vec![data, api, sql, base, live],
            ..every_kind_of_change()
        };
        let human = render_plan(&plan, Style { color: false });
        for expected in [
            "< volume.data → data_copy",
            "< service.api → api_drill (network lifeboat_drill, no published ports)",
            "< dump.sql → container scratch-pg",
            "< image.base → by id, live tags left alone",
            "left alone: Docker volume shop_logs is live, and this restore writes only new names",
        ] {
            assert!(human.contains(expected), "{expected:?} in\n{human}");
        }
        let comment = markdown::render(&plan);
        assert!(
            comment.contains("| `<` | volume.data → data_copy |"),
            "{comment}"
        );
    }

    #[test]
    fn each_copy_is_its_own_line_in_every_view() {
        let mut backup = ResourceChange::new(volume("uploads"), Action::BackUp);
        backup.repositories = vec!["main".into(), "offsite".into()];
        backup.copies = vec![crate::plan::PlannedCopy {
            from: "main".into(),
            to: "offsite".into(),
            snapshot: None,
        }];
        let mut copy = ResourceChange::new(volume("data"), Action::Copy);
        copy.repositories = vec!["main".into(), "offsite".into()];
        copy.reasons = vec![Reason::Lacks {
            repository: "offsite".into(),
            snapshots: 2,
        }];
        copy.copies = ["8c2e41f0aa", "9d3f52a1bb"]
            .iter()
            .map(|id| crate::plan::PlannedCopy {
                from: "main".into(),
                to: "offsite".into(),
                snapshot: Some(SnapshotRef {
                    repository: "main".into(),
                    ..snapshot(id, 3, 10, 1)
                }),
            })
            .collect();
        let plan = Plan {
            summary: Summary::of(&[backup.clone(), copy.clone()]),
            changes: vec![backup, copy],
            warnings: vec![],
            ..every_kind_of_change()
        };
        let human = render_plan(&plan, Style { color: false });
        for expected in [
            "+ volume.uploads   back up → main, offsite",
            "> volume.uploads   copy the new snapshot main → offsite",
            "> volume.data      copy 8c2e41f0 main → offsite",
            "> volume.data      copy 9d3f52a1 main → offsite",
            "offsite lacks 2 snapshots the others hold",
            "Plan: 1 to back up, 3 to copy, 0 unchanged.",
        ] {
            assert!(human.contains(expected), "{expected:?} in\n{human}");
        }
        let comment = markdown::render(&plan);
        assert!(
            comment.contains(
                "| `>` | volume.data | copy 8c2e41f0 main → offsite | main → offsite | |"
            ),
            "{comment}"
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["changes"][1]["action"], "copy");
        assert_eq!(json["changes"][1]["copies"][0]["to"], "offsite");
        assert_eq!(json["summary"]["to_copy"], 3);
        // The report counts copies of existing snapshots apart.
        let outcome = |address: Address, action| crate::apply::ChangeOutcome {
            address,
            action,
            status: crate::apply::Status::Succeeded,
            copies: vec![],
            elapsed_seconds: 0.0,
        };
        let report = ApplyReport {
            changes: vec![
                outcome(volume("uploads"), Action::BackUp),
                outcome(volume("data"), Action::Copy),
            ],
            ..ApplyReport::default()
        };
        let said = render_report(PlanKind::Backup, &report, Style { color: false });
        assert!(
            said.contains("Apply complete! 1 backed up, 1 copied ("),
            "{said}"
        );
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
        plan.summary = Summary {
            to_forget: 2,
            ..Summary::default()
        };
        plan.warnings.clear();
        let report = ApplyReport {
            forgotten: 2,
            pruned: vec![crate::apply::PruneOutcome {
                repository: "primary".into(),
                stats: crate::repo::PruneStats {
                    packs_deleted: 12,
                    packs_repacked: 2,
                    bytes_freed: 734_003_200,
                    ..crate::repo::PruneStats::default()
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

    #[test]
    fn a_partial_restore_lists_twenty_entries_then_counts_the_rest() {
        let partial = crate::plan::PartialRestore {
            paths: vec!["uploads".into()],
            create: (0..25).map(|i| format!("uploads/{i:02}.jpg")).collect(),
            overwrite: vec!["uploads".into()],
            leave: vec!["uploads/old.jpg".into()],
            kept: vec!["uploads/mine.jpg".into()],
            into: None,
        };
        let lines = partial_lines(&partial, Style { color: false });
        assert_eq!(lines[0], "+ uploads/00.jpg");
        assert_eq!(lines[19], "+ uploads/19.jpg");
        assert_eq!(lines[20], "… and 6 more (restore --json lists them all)");
        assert_eq!(
            lines[21],
            "25 created, 1 overwritten, 1 identical left as they are; the 1 entry overwritten \
             goes into a safety snapshot first"
        );
        assert_eq!(
            lines[22],
            "1 entry under the path that the snapshot lacks is left alone (uploads/mine.jpg)"
        );
        assert_eq!(lines.len(), 23);
    }
}
