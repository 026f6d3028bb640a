//! Run records on memory backends: appends never lose each other, damaged
//! and future records do not block reading, retention keeps what `plan`
//! needs.

use super::backend::memory::MemoryBackend;
use super::trust_tests::{encrypted, read_all};
use super::*;
use chrono::{DateTime, Duration, Utc};

/// A record of `run` with no resources (other tests build on it).
pub(crate) fn record(run: &str, kind: RunKind, finished: DateTime<Utc>) -> RunRecord {
    RunRecord {
        format: RUN_RECORD_FORMAT,
        run: run.to_string(),
        kind,
        tags: Vec::new(),
        host: "host-a".into(),
        lifeboat: "0.0.0".into(),
        spec_digest: None,
        started: finished,
        finished,
        changes_seconds: 1.0,
        whole_stack: false,
        into_other_names: false,
        interrupted: false,
        resources: Vec::new(),
        forgotten: 0,
        pruned: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        applied: None,
        drill: None,
    }
}

fn done(address: &str) -> ResourceRecord {
    ResourceRecord {
        address: address.into(),
        repository: Some("main".into()),
        into: None,
        outcome: ResourceOutcome::Done {
            snapshot: "ab".repeat(32),
            files: 1,
            bytes: 10,
            added_bytes: 10,
            seconds: 2.5,
        },
    }
}

fn stored(name: &str, record: RunRecord) -> StoredRun {
    StoredRun {
        name: name.to_string(),
        record,
    }
}

#[test]
fn two_runs_appending_at_once_both_find_their_record() {
    let (_backend, repository) = encrypted();
    let repository = Arc::new(repository);
    let now = Utc::now();
    let threads: Vec<_> = ["run-a", "run-b"]
        .into_iter()
        .map(|run| {
            let repository = repository.clone();
            std::thread::spawn(move || {
                let mut record = record(run, RunKind::Backup, now);
                record.resources.push(done("volume.data"));
                repository.append_run(&record).unwrap()
            })
        })
        .collect();
    let names: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(names[0], names[1]);
    let (runs, damaged) = repository.runs().unwrap();
    assert!(damaged.is_empty());
    let mut ids: Vec<&str> = runs.iter().map(|r| r.record.run.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["run-a", "run-b"]);
    assert_eq!(runs[0].record.counts(), (1, 0, 0));
}

#[test]
fn a_damaged_record_is_passed_over_and_noted_by_check() {
    let (backend, repository) = encrypted();
    let now = Utc::now();
    repository
        .append_run(&record("old", RunKind::Backup, now - Duration::hours(1)))
        .unwrap();
    let newest = repository
        .append_run(&record("new", RunKind::Restore, now))
        .unwrap();
    backend.tamper(FileKind::Run, &newest, |bytes| bytes[40] ^= 1);
    let (runs, damaged) = repository.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].record.run, "old");
    assert_eq!(damaged.len(), 1);
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "a damaged record loses no data: {report:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with(&format!("runs/{}", short(&newest)))),
        "{report:?}"
    );
}

#[test]
fn a_record_of_a_newer_version_reads_as_far_as_it_is_understood() {
    let (_backend, repository) = encrypted();
    let future = serde_json::json!({
        "format": 7,
        "run": "20991231T000000Z-0000",
        "kind": "audit",
        "host": "h",
        "lifeboat": "9.0.0",
        "started": "2099-12-31T00:00:00Z",
        "finished": "2099-12-31T00:01:00Z",
        "verified_by": "someone",
        "resources": [
            {"address": "volume.a", "status": "failed", "class": "quota_exceeded", "message": "m"},
            {"address": "volume.b", "status": "verified", "checks": 3},
        ],
    });
    let (name, _) = repository
        .save_file(FileKind::Run, &serde_json::to_vec(&future).unwrap())
        .unwrap();
    let (runs, damaged) = repository.runs().unwrap();
    assert!(damaged.is_empty(), "{damaged:?}");
    let read = &runs[0];
    assert_eq!(read.name, name);
    assert_eq!(read.record.kind, RunKind::Other);
    assert_eq!(
        read.record.resources[0].outcome,
        ResourceOutcome::Failed {
            class: crate::failure::FailureClass::Other,
            message: "m".into()
        }
    );
    assert_eq!(read.record.resources[1].outcome, ResourceOutcome::Other);
}

#[test]
fn a_record_that_decompresses_to_more_than_a_record_holds_is_damaged() {
    let (_backend, repository) = encrypted();
    let mut huge = record("huge", RunKind::Backup, Utc::now());
    huge.errors.push("x".repeat(17 << 20));
    repository.append_run(&huge).unwrap();
    let (runs, damaged) = repository.runs().unwrap();
    assert!(runs.is_empty());
    assert!(
        damaged[0].detail.contains("more than a run record"),
        "{damaged:?}"
    );
}

#[test]
fn retention_keeps_the_newest_runs_and_days_and_what_plan_needs() {
    let now = Utc::now();
    let mut runs = Vec::new();
    // The oldest record carries the only applied settings; the next the
    // only restore of volume.a.
    let mut settings = record("settings", RunKind::Backup, now - Duration::days(900));
    settings.applied = Some(serde_json::json!({"settings": {}}));
    runs.push(stored("s", settings));
    let mut restore = record("restore", RunKind::Restore, now - Duration::days(800));
    restore.resources.push(done("volume.a"));
    runs.push(stored("r", restore));
    // A failed restore measures nothing.
    let mut failed = record("failed", RunKind::Restore, now - Duration::days(700));
    failed.resources.push(ResourceRecord {
        address: "volume.b".into(),
        repository: None,
        into: None,
        outcome: ResourceOutcome::Skipped {
            because: "x".into(),
        },
    });
    runs.push(stored("f", failed));
    for day in 0..KEEP_RUNS + 5 {
        let finished = now - Duration::hours(day as i64);
        runs.push(stored(
            &format!("b{day:05}"),
            record("backup", RunKind::Backup, finished),
        ));
    }
    let forget = runs_to_forget(&runs, now);
    assert!(!forget.contains(&"s".to_string()));
    assert!(!forget.contains(&"r".to_string()));
    assert!(forget.contains(&"f".to_string()));
    // The newest KEEP_RUNS backups are kept, the five older ones go.
    let backups_forgotten: Vec<_> = forget.iter().filter(|n| n.starts_with('b')).collect();
    assert_eq!(backups_forgotten.len(), 5, "{backups_forgotten:?}");
    assert!(!forget.contains(&"b00000".to_string()));

    // By age: a record older than KEEP_RUN_DAYS goes even among few.
    let mut young_settings = record("young", RunKind::Backup, now);
    young_settings.applied = Some(serde_json::json!({}));
    let few = vec![
        stored(
            "old",
            record("old", RunKind::Backup, now - Duration::days(401)),
        ),
        stored("new", young_settings),
    ];
    assert_eq!(runs_to_forget(&few, now), ["old"]);

    // A restore into other names measured no live resource: not kept for it.
    let mut drill = record("drill", RunKind::Restore, now - Duration::days(401));
    drill.into_other_names = true;
    drill.resources.push(done("volume.a"));
    assert_eq!(runs_to_forget(&[stored("d", drill)], now), ["d"]);
}

#[test]
fn retention_keeps_the_last_drill_of_each_resource() {
    let now = Utc::now();
    let drilled = |address: &str| DrillResource {
        address: address.into(),
        ..DrillResource::default()
    };
    let drill = |run: &str, days: i64, addresses: &[&str]| {
        let mut record = record(run, RunKind::Drill, now - Duration::days(days));
        record.drill = Some(DrillRecord {
            resources: addresses.iter().map(|a| drilled(a)).collect(),
            ..DrillRecord::default()
        });
        stored(run, record)
    };
    let runs = vec![
        drill("new", 500, &["volume.a"]),
        drill("old", 600, &["volume.a", "volume.b"]),
        drill("oldest", 700, &["volume.b"]),
    ];
    // volume.a's last drill is "new", volume.b's is "old".
    assert_eq!(runs_to_forget(&runs, now), ["oldest"]);
}

#[test]
fn forget_runs_removes_what_retention_lets_go_and_a_dry_run_only_counts() {
    let (backend, repository) = encrypted();
    let now = Utc::now();
    repository
        .append_run(&record(
            "ancient",
            RunKind::Backup,
            now - Duration::days(500),
        ))
        .unwrap();
    repository
        .append_run(&record("recent", RunKind::Backup, now))
        .unwrap();
    assert_eq!(repository.forget_runs(now, true).unwrap(), 1);
    assert_eq!(backend.list(FileKind::Run).unwrap().len(), 2);
    assert_eq!(repository.forget_runs(now, false).unwrap(), 1);
    let (runs, _) = repository.runs().unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.record.run.as_str()).collect();
    assert_eq!(names, ["recent"]);
}

#[test]
fn legacy_applied_records_are_removed_and_stray_run_files_left_alone() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), None).unwrap();
    let repository = Repository::open(backend.clone(), None, RepoOptions::default()).unwrap();
    repository
        .record_applied(serde_json::json!({"settings": null}))
        .unwrap();
    backend.save(FileKind::Run, "notes.txt", b"mine").unwrap();
    assert!(repository.last_applied().unwrap().is_some());
    repository.remove_legacy_applied().unwrap();
    assert!(repository.last_applied().unwrap().is_none());
    assert!(repository.runs().unwrap().0.is_empty());
    let report = repository.check(read_all()).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("runs/notes.txt")),
        "{report:?}"
    );
    assert!(backend.load(FileKind::Run, "notes.txt", None).is_ok());
}
