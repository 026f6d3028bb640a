//! `lifeboat drill`: the drill's run record as a report a team can attach
//! to an audit (Markdown, `--report FILE.md`) and as a short summary on the
//! terminal. The JSON report is the run record itself.

use crate::plan::format_age;
use crate::repo::{DrillRecord, DrillResource, RunRecord};
use std::time::Duration;

fn verdict(passed: bool) -> &'static str {
    if passed { "PASSED" } else { "FAILED" }
}

fn seconds(value: f64) -> String {
    if value < 1.0 {
        return format!("{value:.2}s");
    }
    format_age(Duration::from_secs(value.round() as u64))
}

fn goal(measured: Option<f64>, goal: Option<f64>) -> String {
    match (measured, goal) {
        (None, _) => "unknown".to_string(),
        (Some(value), None) => format!("{} (no goal)", seconds(value)),
        (Some(value), Some(goal)) => format!(
            "{} (goal {}: {})",
            seconds(value),
            seconds(goal),
            if value <= goal { "met" } else { "MISSED" }
        ),
    }
}

fn drill_of(record: &RunRecord) -> DrillRecord {
    record.drill.clone().unwrap_or_default()
}

/// The Markdown report: what was restored from which snapshot and
/// repository, each check and its result, RTO and RPO against the goals,
/// what was removed, and the verdict.
pub fn render_markdown(record: &RunRecord) -> String {
    let drill = drill_of(record);
    let mut out = format!(
        "# Restore drill {}: {}\n\n\
         | | |\n|---|---|\n\
         | Run | `{}` |\n| Host | {} |\n| lifeboat | {} |\n\
         | Started (UTC) | {} |\n| Finished (UTC) | {} |\n\
         | Spec digest | `{}` |\n| Scratch network | `{}` |\n\
         | Stack RTO | {} |\n\n",
        record.run,
        verdict(drill.passed),
        record.run,
        record.host,
        record.lifeboat,
        record.started.format("%Y-%m-%d %H:%M:%S"),
        record.finished.format("%Y-%m-%d %H:%M:%S"),
        record.spec_digest.as_deref().unwrap_or("-"),
        drill.network,
        goal(Some(drill.rto_seconds), drill.rto_goal_seconds),
    );
    out.push_str(
        "## Resources\n\n\
         | Resource | Restored into | Repository | Snapshot | Snapshot time (UTC) | RTO | RPO | Result |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for resource in &drill.resources {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | `{}` | {} | {} | {} | {} |\n",
            resource.address,
            resource.into,
            resource.repository,
            resource.snapshot,
            resource.snapshot_time.map_or("-".to_string(), |t| t
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()),
            goal(Some(resource.rto_seconds), resource.rto_goal_seconds),
            goal(resource.rpo_seconds, resource.rpo_goal_seconds),
            verdict(resource.passed),
        ));
    }
    out.push_str("\n## Checks\n\n| Resource | Check | Result | Detail |\n|---|---|---|---|\n");
    for resource in &drill.resources {
        for check in &resource.checks {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                resource.address,
                check.name,
                verdict(check.passed),
                check.detail.replace('|', "\\|").replace('\n', " ")
            ));
        }
    }
    out.push_str("\n## Cleanup\n\n");
    if drill.removed.is_empty() && drill.cleanup_errors.is_empty() {
        out.push_str("Nothing was created, nothing to remove.\n");
    }
    for removed in &drill.removed {
        out.push_str(&format!("- removed {removed}\n"));
    }
    for error in drill.cleanup_errors.iter().chain(&record.errors) {
        out.push_str(&format!("- NOT removed or failed: {error}\n"));
    }
    out
}

/// The terminal summary: one line per resource and the verdict.
pub fn render_summary(record: &RunRecord) -> String {
    let drill = drill_of(record);
    let mut out = String::from("\nDrill results:\n");
    for resource in &drill.resources {
        out.push_str(&resource_line(resource));
        for check in resource.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!("      {} failed: {}\n", check.name, check.detail));
        }
    }
    if !drill.removed.is_empty() {
        out.push_str(&format!(
            "\nRemoved {} scratch object(s).\n",
            drill.removed.len()
        ));
    }
    for error in &drill.cleanup_errors {
        out.push_str(&format!("NOT removed: {error}\n"));
    }
    out.push_str(&format!(
        "\nDrill {}: stack RTO {}. Recorded as run {} (`lifeboat runs`).\n",
        verdict(drill.passed),
        goal(Some(drill.rto_seconds), drill.rto_goal_seconds),
        record.run
    ));
    out
}

fn resource_line(resource: &DrillResource) -> String {
    format!(
        "  {} {:<20} rto {}, rpo {}\n",
        if resource.passed { "✓" } else { "✗" },
        resource.address,
        goal(Some(resource.rto_seconds), resource.rto_goal_seconds),
        goal(resource.rpo_seconds, resource.rpo_goal_seconds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{DrillCheck, RunKind};
    use chrono::TimeZone;

    fn record() -> RunRecord {
        let time = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap();
        let check = |name: &str, passed, detail: &str| DrillCheck {
            name: name.into(),
            passed,
            detail: detail.into(),
        };
        RunRecord {
            host: "db-host".into(),
            lifeboat: "0.1.0".into(),
            spec_digest: Some("5e1f".into()),
            started: time,
            into_other_names: true,
            drill: Some(DrillRecord {
                passed: false,
                rto_seconds: 40.0,
                rto_goal_seconds: Some(900.0),
                network: "lifeboat-drill-20261207T030000Z-0a1b2c3d".into(),
                removed: vec!["container shop-db-1-drill-20261207T030000Z-0a1b2c3d".into()],
                cleanup_errors: Vec::new(),
                resources: vec![
                    DrillResource {
                        address: "volume.pgdata".into(),
                        into: "shop_pgdata-drill-20261207T030000Z-0a1b2c3d".into(),
                        repository: "primary".into(),
                        snapshot: "8c2e41f0".into(),
                        snapshot_time: Some(time - chrono::Duration::minutes(30)),
                        rto_seconds: 12.0,
                        rto_goal_seconds: Some(900.0),
                        rpo_seconds: Some(1800.0),
                        rpo_goal_seconds: Some(3600.0),
                        checks: vec![
                            check("restore", true, "restored from snapshot 8c2e41f0"),
                            check("content", true, "3 files equal"),
                        ],
                        passed: true,
                    },
                    DrillResource {
                        address: "service.db".into(),
                        into: "shop-db-1-drill-20261207T030000Z-0a1b2c3d".into(),
                        repository: "primary".into(),
                        snapshot: "77aa0012".into(),
                        snapshot_time: Some(time - chrono::Duration::minutes(30)),
                        rto_seconds: 40.0,
                        rto_goal_seconds: Some(900.0),
                        rpo_seconds: Some(1800.0),
                        rpo_goal_seconds: None,
                        checks: vec![
                            check("restore", false, "`pg_isready` exited 2 | twice"),
                            check("verify", false, "`pg_isready` did not pass"),
                        ],
                        passed: false,
                    },
                ],
            }),
            ..crate::repo::runs_tests::record(
                "20261207T030000Z-0a1b2c3d",
                RunKind::Drill,
                time + chrono::Duration::seconds(42),
            )
        }
    }

    #[test]
    fn the_report_names_sources_checks_goals_and_cleanup() {
        insta::assert_snapshot!(render_markdown(&record()));
        insta::assert_snapshot!(render_summary(&record()));
    }
}
