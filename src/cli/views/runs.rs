//! `lifeboat runs`: one line per recorded run, newest first, and under it
//! the resources that failed, with their class.

use super::{Style, plural};
use crate::apply::RunRow;
use crate::plan::format_age;
use crate::repo::{KEEP_RUN_DAYS, KEEP_RUNS};

pub fn render(rows: &[RunRow], style: Style) -> String {
    if rows.is_empty() {
        return "No runs recorded yet: each `lifeboat apply` and `lifeboat restore` records one.\n"
            .to_string();
    }
    let host_width = rows
        .iter()
        .map(|r| r.record.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<25}  {:<8}  {:<host_width$}  {:<19}  {:>8}  {:>4}  {:>6}  {:>7}  REPOSITORY\n",
        "RUN", "KIND", "HOST", "STARTED (UTC)", "DURATION", "DONE", "FAILED", "SKIPPED"
    );
    for row in rows {
        let record = &row.record;
        let (done, failed, skipped) = record.counts();
        let duration = (record.finished - record.started)
            .to_std()
            .map(format_age)
            .unwrap_or_else(|_| "?".to_string());
        let mut kind = record.kind.keyword().to_string();
        if record.interrupted {
            kind.push('!');
        }
        out.push_str(&format!(
            "{:<25}  {:<8}  {:<host_width$}  {:<19}  {:>8}  {:>4}  {:>6}  {:>7}  {}\n",
            record.run,
            kind,
            record.host,
            record.started.format("%Y-%m-%d %H:%M:%S"),
            duration,
            done,
            failed,
            skipped,
            row.repositories.join(", ")
        ));
        if !record.tags.is_empty() {
            out.push_str(&format!(
                "  {} {}\n",
                style.bold("tags:"),
                record.tags.join(", ")
            ));
        }
        for (address, class) in record.failed() {
            out.push_str(&format!(
                "  {} {address} ({})\n",
                style.bold("failed:"),
                class.keyword()
            ));
        }
        for error in &record.errors {
            out.push_str(&format!("  {} {error}\n", style.bold("error:")));
        }
    }
    out.push_str(&format!(
        "\n{}{}. Kept: the newest {KEEP_RUNS}, none older than {KEEP_RUN_DAYS} days.\n",
        plural(rows.len(), "run"),
        if rows.iter().any(|r| r.record.interrupted) {
            " (kind! = interrupted)"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureClass;
    use crate::repo::{RUN_RECORD_FORMAT, ResourceOutcome, ResourceRecord, RunKind, RunRecord};

    fn row(run: &str, kind: RunKind, resources: Vec<ResourceRecord>) -> RunRow {
        let started = chrono::DateTime::parse_from_rfc3339("2026-12-06T22:40:00Z")
            .unwrap()
            .to_utc();
        RunRow {
            repositories: vec!["main".into(), "offsite".into()],
            record: RunRecord {
                format: RUN_RECORD_FORMAT,
                run: run.into(),
                kind,
                tags: Vec::new(),
                host: "web-1".into(),
                lifeboat: "0.1.0".into(),
                spec_digest: None,
                started,
                finished: started + chrono::Duration::seconds(75),
                changes_seconds: 70.0,
                whole_stack: false,
                into_other_names: false,
                interrupted: kind == RunKind::Restore,
                resources,
                forgotten: 0,
                pruned: Vec::new(),
                errors: Vec::new(),
                warnings: Vec::new(),
                applied: None,
                drill: None,
            },
        }
    }

    fn resource(address: &str, outcome: ResourceOutcome) -> ResourceRecord {
        ResourceRecord {
            address: address.into(),
            repository: Some("main".into()),
            into: None,
            outcome,
        }
    }

    #[test]
    fn a_run_per_line_with_its_failed_resources_under_it() {
        let done = ResourceOutcome::Done {
            snapshot: "ab".repeat(32),
            files: 3,
            bytes: 100,
            added_bytes: 10,
            seconds: 1.5,
        };
        let failed = ResourceOutcome::Failed {
            class: FailureClass::CommandFailed,
            message: "pre hook exited 1".into(),
        };
        let rows = [
            row(
                "20261206T224000Z-0badf00d",
                RunKind::Backup,
                vec![
                    resource("volume.data", done.clone()),
                    resource("volume.db", failed),
                    resource(
                        "service.db",
                        ResourceOutcome::Skipped {
                            because: "volume.db did not succeed".into(),
                        },
                    ),
                ],
            ),
            row(
                "20261206T214000Z-cafe0001",
                RunKind::Restore,
                vec![resource("volume.data", done)],
            ),
        ];
        insta::assert_snapshot!(render(&rows, Style { color: false }));
        assert!(render(&[], Style { color: false }).starts_with("No runs recorded yet"));
    }

    #[test]
    fn the_retention_in_the_help_texts_is_the_one_applied() {
        use clap::CommandFactory;
        let mut cli = crate::cli::args::Cli::command();
        for name in ["runs", "forget", "prune"] {
            let help = cli
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(
                help.contains(&format!("newest {KEEP_RUNS} runs"))
                    && help.contains(&format!("{KEEP_RUN_DAYS} days")),
                "{name}: {help}"
            );
        }
    }
}
