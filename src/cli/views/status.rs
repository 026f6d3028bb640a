//! `lifeboat status`: the status as a table for people and as
//! node_exporter's textfile format for Prometheus. Both render one
//! [`Status`] value; the JSON is its serialisation.

use super::{Style, human_bytes, plural};
use crate::plan::format_age;
use crate::status::{OutcomeStatus, RepositoryState, ResourceStatus, RpoState, Status, Verdict};
use std::fmt::Write as _;
use std::time::Duration;

fn age(seconds: u64) -> String {
    format_age(Duration::from_secs(seconds))
}

/// How long ago `time` was, as of `now`.
fn ago(time: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let elapsed = (now - time).to_std().unwrap_or_default();
    format!("{} ago", age(elapsed.as_secs()))
}

fn state_word(state: RpoState, style: Style) -> String {
    let word = state.keyword();
    match state {
        RpoState::Ok => style.paint("32", word),
        RpoState::Late | RpoState::Unknown => style.paint("33", word),
        RpoState::Missing => style.paint("31", word),
    }
}

/// What the last backup run did to the resource, in a few words.
fn last_backup(resource: &ResourceStatus, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(last) = &resource.last_outcome else {
        return "none recorded".to_string();
    };
    let ago = ago(last.finished, now);
    match (last.status, last.class) {
        (OutcomeStatus::Failed, Some(class)) => format!("failed ({class}) {ago}"),
        (status, _) => format!("{} {ago}", status.keyword()),
    }
}

fn size(resource: &ResourceStatus) -> String {
    match &resource.size {
        None => "-".to_string(),
        Some(size) if size.changed => format!(
            "{} (median {})",
            human_bytes(size.bytes),
            human_bytes(size.median_bytes.unwrap_or_default())
        ),
        Some(size) => human_bytes(size.bytes),
    }
}

fn drill(resource: &ResourceStatus, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut words = last_drill(resource, now);
    if resource.drill_rto_missed {
        words.push_str(" (over the rto)");
    }
    if resource.drill_due {
        words.push_str(" (drill due)");
    }
    words
}

fn last_drill(resource: &ResourceStatus, now: chrono::DateTime<chrono::Utc>) -> String {
    match &resource.last_drill {
        None => "never".to_string(),
        Some(drill) => format!(
            "{} {}, rto {}",
            if drill.passed { "passed" } else { "failed" },
            ago(drill.finished, now),
            format_age(Duration::from_secs_f64(drill.rto_seconds.max(0.0)))
        ),
    }
}

fn copies(resource: &ResourceStatus) -> String {
    resource
        .copies
        .iter()
        .map(|copy| match copy.age_seconds {
            Some(seconds) => format!(
                "{} {} {}",
                copy.repository,
                copy.state.keyword(),
                age(seconds)
            ),
            None => format!("{} {}", copy.repository, copy.state.keyword()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table: one line per resource, then what needs attention, then the verdict.
pub fn render(status: &Status, style: Style) -> String {
    let mut out = String::new();
    for repository in &status.repositories {
        match repository.state {
            RepositoryState::Ok => {}
            RepositoryState::Absent => {
                let _ = writeln!(
                    out,
                    "{} repository.{} ({}) does not exist: `lifeboat apply` creates it; if it \
                     is on a disk, is the disk mounted?",
                    style.bold("warning:"),
                    repository.name,
                    repository.location
                );
            }
            RepositoryState::Unreachable => {
                let _ = writeln!(
                    out,
                    "{} repository.{} cannot be read ({}): {}",
                    style.bold("error:"),
                    repository.name,
                    repository.class.map(|c| c.keyword()).unwrap_or("other"),
                    repository.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    if status.resources.is_empty() {
        out.push_str("The spec declares no resource to back up.\n");
        return out;
    }
    let rows: Vec<[String; 7]> = status
        .resources
        .iter()
        .map(|r| {
            [
                r.address.clone(),
                r.state.keyword().to_string(),
                r.age_seconds.map(age).unwrap_or_else(|| "-".to_string()),
                format_age(Duration::from_secs(r.rpo_seconds)),
                last_backup(r, status.time),
                size(r),
                drill(r, status.time),
            ]
        })
        .collect();
    let headers = [
        "RESOURCE",
        "STATE",
        "AGE",
        "RPO",
        "LAST BACKUP",
        "SIZE",
        "DRILL",
    ];
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, header) in headers.iter().enumerate() {
        let _ = write!(out, "{header:<width$}  ", width = widths[i]);
    }
    out.push_str("COPIES\n");
    for (row, resource) in rows.iter().zip(&status.resources) {
        for (i, cell) in row.iter().enumerate() {
            let padding = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            let cell = if i == 1 {
                state_word(resource.state, style)
            } else {
                cell.clone()
            };
            let _ = write!(out, "{cell}{padding}  ");
        }
        let _ = writeln!(out, "{}", copies(resource));
    }
    let attention = attention(status, style);
    if !attention.is_empty() {
        out.push('\n');
        out.push_str(&attention);
    }
    let _ = writeln!(out, "\n{}", summary(status));
    out
}

/// Why resources are not ok, one line each.
fn attention(status: &Status, style: Style) -> String {
    let mut out = String::new();
    for resource in &status.resources {
        if let Some(last) = &resource.last_outcome
            && last.status == OutcomeStatus::Failed
        {
            let _ = writeln!(
                out,
                "{} {}: the last backup failed ({}): {}",
                style.bold("failed:"),
                resource.address,
                last.class.map(|c| c.keyword()).unwrap_or("other"),
                last.message.as_deref().unwrap_or("")
            );
        }
        if let Some(size) = &resource.size
            && size.changed
        {
            let _ = writeln!(
                out,
                "{} {}: the newest snapshot holds {}, more than 50% away from the median of \
                 the {} before it ({}): check what it holds",
                style.bold("size:"),
                resource.address,
                human_bytes(size.bytes),
                plural(size.compared_with, "snapshot"),
                human_bytes(size.median_bytes.unwrap_or_default())
            );
        }
    }
    out
}

fn summary(status: &Status) -> String {
    let count = |state: RpoState| status.resources.iter().filter(|r| r.state == state).count();
    let mut parts = vec![format!("{} ok", count(RpoState::Ok))];
    for state in [RpoState::Late, RpoState::Missing, RpoState::Unknown] {
        let n = count(state);
        if n > 0 {
            parts.push(format!("{n} {}", state.keyword()));
        }
    }
    let verdict = match status.verdict {
        Verdict::Ok => "all ok".to_string(),
        other => other.keyword().replace('_', " "),
    };
    format!(
        "Status: {verdict}. {}: {}.",
        plural(status.resources.len(), "resource"),
        parts.join(", ")
    )
}

/// One metric family: its HELP and TYPE lines, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }

    /// Nothing when it has no samples (a metric absent, not zero).
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(out, "{}{labels} {value}", self.name);
        }
    }
}

/// A label value as the text format writes it: backslash, double quote
/// and line feed escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(time: chrono::DateTime<chrono::Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

/// The status in node_exporter's textfile format (gauges labelled by
/// resource and repository; docs/monitoring.md lists them).
pub fn prometheus(status: &Status) -> String {
    let resource = |r: &ResourceStatus| vec![("resource", r.address.clone())];
    let mut generated = Family::new(
        "lifeboat_status_timestamp_seconds",
        "When lifeboat status read the repositories.",
    );
    generated.sample(Vec::new(), seconds(status.time));
    let mut up = Family::new(
        "lifeboat_repository_up",
        "1 when the repository could be read (or does not exist yet), 0 when it could not.",
    );
    let mut verdict = Family::new(
        "lifeboat_status_exit_code",
        "The exit code of lifeboat status: 0 ok, 2 size changed, 3 failed, 4 late, 5 missing, \
         6 repository unreachable.",
    );
    verdict.sample(
        Vec::new(),
        f64::from(crate::cli::Exit::Status(status.verdict).code()),
    );
    for repository in &status.repositories {
        let readable = repository.state != RepositoryState::Unreachable;
        up.sample(
            vec![("repository", repository.name.clone())],
            if readable { 1.0 } else { 0.0 },
        );
    }
    let mut rpo = Family::new(
        "lifeboat_rpo_seconds",
        "The recovery point objective of the resource's policy.",
    );
    let mut within = Family::new(
        "lifeboat_rpo_ok",
        "1 when every copy of the resource is within its RPO, 0 when one is late or missing.",
    );
    let mut success = Family::new(
        "lifeboat_last_success_timestamp_seconds",
        "When the newest snapshot of the resource in the repository was taken.",
    );
    let mut bytes = Family::new(
        "lifeboat_snapshot_bytes",
        "Logical size of the newest snapshot of the resource in the repository.",
    );
    let mut resized = Family::new(
        "lifeboat_snapshot_size_changed",
        "1 when the newest snapshot is more than 50% away from the median of the ones before it.",
    );
    let mut outcome = Family::new(
        "lifeboat_last_outcome",
        "1 when the last backup run that tried the resource did it, 0 when it failed or skipped \
         it (labels: outcome, and the failure class).",
    );
    let mut run_time = Family::new(
        "lifeboat_last_run_timestamp_seconds",
        "When the last backup run that tried the resource finished.",
    );
    let mut drill_time = Family::new(
        "lifeboat_drill_timestamp_seconds",
        "When the last restore drill of the resource finished.",
    );
    let mut drill_passed = Family::new(
        "lifeboat_drill_passed",
        "1 when the last restore drill of the resource passed, 0 when it failed.",
    );
    let mut drill_rto = Family::new(
        "lifeboat_drill_rto_seconds",
        "The recovery time the last restore drill of the resource measured.",
    );
    for r in &status.resources {
        rpo.sample(resource(r), r.rpo_seconds as f64);
        within.sample(resource(r), if r.state == RpoState::Ok { 1.0 } else { 0.0 });
        for copy in &r.copies {
            let labels = vec![
                ("resource", r.address.clone()),
                ("repository", copy.repository.clone()),
            ];
            if let Some(time) = copy.time {
                success.sample(labels.clone(), seconds(time));
            }
            if let Some(size) = copy.bytes {
                bytes.sample(labels, size as f64);
            }
        }
        if let Some(size) = &r.size {
            resized.sample(resource(r), if size.changed { 1.0 } else { 0.0 });
        }
        if let Some(last) = &r.last_outcome {
            let mut labels = resource(r);
            labels.push(("outcome", last.status.keyword().to_string()));
            if let Some(class) = last.class {
                labels.push(("class", class.keyword().to_string()));
            }
            let done = last.status == OutcomeStatus::Done;
            outcome.sample(labels, if done { 1.0 } else { 0.0 });
            run_time.sample(resource(r), seconds(last.finished));
        }
        if let Some(drill) = &r.last_drill {
            drill_time.sample(resource(r), seconds(drill.finished));
            drill_passed.sample(resource(r), if drill.passed { 1.0 } else { 0.0 });
            drill_rto.sample(resource(r), drill.rto_seconds);
        }
    }
    let mut out = String::new();
    for family in [
        generated,
        verdict,
        up,
        rpo,
        within,
        success,
        bytes,
        resized,
        outcome,
        run_time,
        drill_time,
        drill_passed,
        drill_rto,
    ] {
        family.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_has_its_own_exit_code_the_worse_the_higher() {
        use crate::cli::Exit;
        let codes: Vec<i32> = [
            Verdict::Ok,
            Verdict::SizeChanged,
            Verdict::Failed,
            Verdict::Late,
            Verdict::Missing,
            Verdict::RepositoryUnreachable,
        ]
        .into_iter()
        .map(|verdict| Exit::Status(verdict).code())
        .collect();
        assert_eq!(codes, [0, 2, 3, 4, 5, 6]);
        assert_eq!(
            Exit::Error.code(),
            1,
            "1 stays an error, as for every command"
        );
    }

    #[test]
    fn label_values_are_escaped_as_the_text_format_says() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut family = Family::new("lifeboat_x", "X.");
        family.sample(vec![("resource", "volume.\"q\"".to_string())], 1.5);
        let mut out = String::new();
        family.write(&mut out);
        assert_eq!(
            out,
            "# HELP lifeboat_x X.\n# TYPE lifeboat_x gauge\nlifeboat_x{resource=\"volume.\\\"q\\\"\"} 1.5\n"
        );
        let mut empty = String::new();
        Family::new("lifeboat_y", "Y.").write(&mut empty);
        assert!(empty.is_empty(), "a family without samples is absent");
    }
}
