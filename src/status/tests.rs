//! Status computed from what repositories hold: copies ok, late or
//! missing against the RPO, the last outcome from run records, the size
//! flag, the verdict when several things hold; and read from memory
//! repositories.

use super::*;
use crate::apply::OpenSettings;
use crate::repo::backend::memory::MemoryBackend;
use crate::repo::{
    ContentKind, Repository, ResourceRecord, SnapshotId, SnapshotSource, SnapshotSummary,
};
use chrono::Duration;
use std::sync::Arc;

const SPEC: &str = "repository \"primary\" {\n  path = \"/srv/a\"\n}\n\
    repository \"offsite\" {\n  path = \"/srv/b\"\n}\n\
    policy \"hourly\" {\n  rpo = \"1h\"\n}\n\
    policy \"local\" {\n  rpo = \"1h\"\n  copies = [repository.primary]\n}\n\
    volume \"data\" {\n  name = \"data\"\n  policy = policy.hourly\n}\n\
    volume \"cache\" {\n  name = \"cache\"\n  policy = policy.local\n}\n";

fn spec() -> Spec {
    crate::spec::load_sources(
        std::path::Path::new("."),
        vec![("main.hcl".into(), SPEC.as_bytes().to_vec())],
        &Default::default(),
    )
    .unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn snapshot(id: &str, resource: &str, minutes_ago: i64, bytes: u64) -> Snapshot {
    Snapshot {
        id: SnapshotId(id.repeat(64 / id.len())),
        time: now() - Duration::minutes(minutes_ago),
        resource: resource.to_string(),
        hostname: "host-a".into(),
        source: SnapshotSource {
            resource: resource.to_string(),
            ..SnapshotSource::default()
        },
        summary: SnapshotSummary {
            bytes,
            ..SnapshotSummary::default()
        },
        content: ContentKind::Tree,
        tree: Vec::new(),
        lifeboat_version: "0.0.0".into(),
        notes: Vec::new(),
    }
}

fn read(snapshots: Vec<Snapshot>, runs: Vec<RunRecord>) -> RepositoryReading {
    RepositoryReading::Read {
        location: "/srv".into(),
        snapshots,
        runs,
    }
}

fn run(id: &str, minutes_ago: i64, resources: Vec<ResourceRecord>) -> RunRecord {
    let finished = now() - Duration::minutes(minutes_ago);
    RunRecord {
        resources,
        ..crate::repo::runs_tests::record(id, RunKind::Backup, finished)
    }
}

fn outcome(address: &str, repository: &str, outcome: ResourceOutcome) -> ResourceRecord {
    ResourceRecord {
        address: address.into(),
        repository: Some(repository.into()),
        into: None,
        outcome,
    }
}

fn done() -> ResourceOutcome {
    ResourceOutcome::Done {
        snapshot: "ab".repeat(32),
        files: 1,
        bytes: 10,
        added_bytes: 10,
        seconds: 1.0,
    }
}

fn resource<'a>(status: &'a Status, address: &str) -> &'a ResourceStatus {
    status
        .resources
        .iter()
        .find(|r| r.address == address)
        .unwrap()
}

#[test]
fn each_copy_is_ok_late_or_missing_against_the_rpo_and_the_resource_is_its_worst() {
    let primary = read(
        vec![
            snapshot("a1", "volume.data", 90, 100),
            snapshot("a2", "volume.data", 10, 100),
            snapshot("c1", "volume.cache", 30, 5),
        ],
        Vec::new(),
    );
    let offsite = read(vec![snapshot("b1", "volume.data", 70, 100)], Vec::new());
    let status = compute(
        &spec(),
        &[("primary".into(), primary), ("offsite".into(), offsite)],
        now(),
    );
    let data = resource(&status, "volume.data");
    assert_eq!(data.rpo_seconds, 3600);
    let states: Vec<_> = data
        .copies
        .iter()
        .map(|c| (&c.repository[..], c.state))
        .collect();
    assert_eq!(
        states,
        [("primary", RpoState::Ok), ("offsite", RpoState::Late)]
    );
    assert_eq!(
        data.copies[0].age_seconds,
        Some(600),
        "the newest copy counts"
    );
    assert_eq!(data.state, RpoState::Late);
    assert_eq!(data.age_seconds, Some(4200), "the oldest newest copy");
    // Copied to primary only: offsite holding nothing is no concern.
    let cache = resource(&status, "volume.cache");
    assert_eq!(cache.copies.len(), 1);
    assert_eq!(cache.state, RpoState::Ok);
    assert_eq!(status.verdict, Verdict::Late);

    let empty_offsite = compute(
        &spec(),
        &[
            (
                "primary".into(),
                read(vec![snapshot("a2", "volume.data", 10, 1)], vec![]),
            ),
            (
                "offsite".into(),
                RepositoryReading::Absent {
                    location: "/srv/b".into(),
                },
            ),
        ],
        now(),
    );
    let data = resource(&empty_offsite, "volume.data");
    assert_eq!(data.copies[1].state, RpoState::Missing);
    assert_eq!(data.state, RpoState::Missing);
    assert_eq!(empty_offsite.verdict, Verdict::Missing);
    assert_eq!(empty_offsite.repositories[1].state, RepositoryState::Absent);
}

#[test]
fn an_unreachable_repository_is_reported_and_the_others_still_give_status() {
    let error = ApplyError::MissingPassphrase {
        repository: "offsite".into(),
        env: "OFFSITE_PASSPHRASE".into(),
        at: "main.hcl:4:1".into(),
    };
    let status = compute(
        &spec(),
        &[
            (
                "primary".into(),
                read(vec![snapshot("a2", "volume.data", 10, 1)], vec![]),
            ),
            (
                "offsite".into(),
                RepositoryReading::Unreachable {
                    location: "/srv/b".into(),
                    error,
                },
            ),
        ],
        now(),
    );
    let offsite = &status.repositories[1];
    assert_eq!(offsite.state, RepositoryState::Unreachable);
    assert_eq!(offsite.class, Some(FailureClass::RepositoryUnavailable));
    assert!(
        offsite
            .error
            .as_deref()
            .unwrap()
            .contains("OFFSITE_PASSPHRASE")
    );
    let data = resource(&status, "volume.data");
    assert_eq!(data.copies[1].state, RpoState::Unknown);
    assert_eq!(data.state, RpoState::Ok, "what is known is ok");
    assert_eq!(status.verdict, Verdict::RepositoryUnreachable);
}

#[test]
fn the_last_outcome_is_the_newest_run_that_tried_the_resource() {
    let failed = ResourceOutcome::Failed {
        class: FailureClass::EngineUnreachable,
        message: "cannot reach the engine".into(),
    };
    let runs = vec![
        run("r1", 60, vec![outcome("volume.data", "primary", done())]),
        run(
            "r2",
            20,
            vec![
                outcome("volume.data", "primary", done()),
                outcome("volume.data", "offsite", failed),
            ],
        ),
        run("r3", 5, vec![outcome("volume.cache", "primary", done())]),
    ];
    let snapshots = vec![
        snapshot("a1", "volume.data", 10, 1),
        snapshot("c1", "volume.cache", 5, 1),
    ];
    let status = compute(
        &spec(),
        &[
            ("primary".into(), read(snapshots.clone(), runs.clone())),
            ("offsite".into(), read(snapshots, runs)),
        ],
        now(),
    );
    let last = resource(&status, "volume.data")
        .last_outcome
        .clone()
        .unwrap();
    assert_eq!(last.run, "r2");
    assert_eq!(last.status, OutcomeStatus::Failed);
    assert_eq!(last.class, Some(FailureClass::EngineUnreachable));
    let cache = resource(&status, "volume.cache")
        .last_outcome
        .clone()
        .unwrap();
    assert_eq!(
        (cache.run.as_str(), cache.status),
        ("r3", OutcomeStatus::Done)
    );
    assert_eq!(
        status.verdict,
        Verdict::Failed,
        "within the rpo, but failed"
    );
    assert!(resource(&status, "volume.data").last_drill.is_none());
}

#[test]
fn the_last_drill_of_a_resource_comes_from_the_newest_drill_record_naming_it() {
    let drill = |id: &str, minutes_ago: i64, address: &str, passed: bool, rto: f64| RunRecord {
        drill: Some(crate::repo::DrillRecord {
            resources: vec![crate::repo::DrillResource {
                address: address.into(),
                passed,
                rto_seconds: rto,
                ..crate::repo::DrillResource::default()
            }],
            ..crate::repo::DrillRecord::default()
        }),
        ..crate::repo::runs_tests::record(
            id,
            RunKind::Drill,
            now() - Duration::minutes(minutes_ago),
        )
    };
    let runs = vec![
        drill("d1", 60, "volume.data", true, 12.0),
        drill("d2", 30, "volume.data", false, 95.5),
        drill("d3", 10, "volume.cache", true, 1.0),
    ];
    let snapshots = vec![snapshot("a1", "volume.data", 10, 1)];
    let status = compute(&spec(), &[("primary".into(), read(snapshots, runs))], now());
    let data = resource(&status, "volume.data").last_drill.clone().unwrap();
    assert_eq!(
        (data.run.as_str(), data.passed, data.rto_seconds),
        ("d2", false, 95.5)
    );
    assert_eq!(data.finished, now() - Duration::minutes(30));
    assert_eq!(
        resource(&status, "volume.cache")
            .last_drill
            .clone()
            .unwrap()
            .run,
        "d3"
    );
    assert!(
        resource(&status, "volume.data").last_outcome.is_none(),
        "a drill is no backup"
    );
    assert!(
        !resource(&status, "volume.data").drill_due,
        "no drill_every"
    );

    // Under drill_every and an rto: due when older or never, over the rto.
    let mut spec = spec();
    for policy in &mut spec.policies {
        policy.drill_every = Some(std::time::Duration::from_secs(20 * 60));
        policy.rto = Some(std::time::Duration::from_secs(60));
    }
    let runs = vec![
        drill("d2", 30, "volume.data", false, 95.5),
        drill("d3", 10, "volume.cache", true, 1.0),
    ];
    let status = compute(&spec, &[("primary".into(), read(Vec::new(), runs))], now());
    let data = resource(&status, "volume.data");
    assert!(
        data.drill_due && data.drill_rto_missed,
        "30m ago > 20m; 95.5s > 60s"
    );
    let cache = resource(&status, "volume.cache");
    assert!(!cache.drill_due && !cache.drill_rto_missed);
}

#[test]
fn a_newest_snapshot_more_than_half_away_from_the_median_is_flagged() {
    let sized = |sizes: &[u64]| {
        let snapshots: Vec<Snapshot> = sizes
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let id = format!("{:02x}", i);
                snapshot(&id, "volume.data", (sizes.len() - i) as i64, *bytes)
            })
            .collect();
        let status = compute(
            &spec(),
            &[
                ("primary".into(), read(snapshots.clone(), vec![])),
                ("offsite".into(), read(snapshots, vec![])),
            ],
            now(),
        );
        resource(&status, "volume.data").size.clone().unwrap()
    };
    let shrunk = sized(&[1000, 1100, 900, 400]);
    assert_eq!(shrunk.median_bytes, Some(1000));
    assert_eq!(
        shrunk.compared_with, 3,
        "copies in two repositories count once"
    );
    assert!(shrunk.changed);
    assert!(sized(&[1000, 1100, 900, 1600]).changed);
    assert!(!sized(&[1000, 1100, 900, 1450]).changed);
    assert!(!sized(&[1000, 1000, 510]).changed, "49% smaller");
    let first = sized(&[5]);
    assert_eq!((first.median_bytes, first.changed), (None, false));
    // Only the last SIZE_HISTORY snapshots before the newest count.
    let mut long = vec![1u64; 5];
    long.extend([1000; SIZE_HISTORY]);
    long.push(1000);
    assert_eq!(sized(&long).median_bytes, Some(1000));
    assert!(size_changed(1, 0));
    assert!(!size_changed(0, 0));
}

#[test]
fn the_verdict_is_the_worst_that_holds() {
    use Verdict::*;
    let mut order = vec![
        RepositoryUnreachable,
        Missing,
        Late,
        Failed,
        SizeChanged,
        Ok,
    ];
    order.sort();
    assert_eq!(
        order,
        [
            Ok,
            SizeChanged,
            Failed,
            Late,
            Missing,
            RepositoryUnreachable
        ]
    );
    let status = compute(
        &spec(),
        &[
            (
                "primary".into(),
                read(
                    vec![
                        snapshot("a1", "volume.data", 200, 100),
                        snapshot("a2", "volume.data", 120, 10),
                    ],
                    vec![run(
                        "r1",
                        120,
                        vec![outcome(
                            "volume.cache",
                            "primary",
                            ResourceOutcome::Failed {
                                class: FailureClass::CommandFailed,
                                message: "hook".into(),
                            },
                        )],
                    )],
                ),
            ),
            (
                "offsite".into(),
                read(vec![snapshot("a2", "volume.data", 120, 10)], vec![]),
            ),
        ],
        now(),
    );
    let data = resource(&status, "volume.data");
    assert_eq!(data.verdict(), Late, "late and shrunk: late wins");
    assert!(data.size.as_ref().unwrap().changed);
    let cache = resource(&status, "volume.cache");
    assert_eq!(cache.verdict(), Missing, "missing and failed: missing wins");
    assert_eq!(status.verdict, Missing);
}

#[test]
fn status_reads_snapshots_and_run_records_from_memory_repositories() {
    let settings = OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "status".into(),
        cache_dir: None,
    };
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some("secret")).unwrap();
    let named =
        NamedRepository::on_backend("primary", backend, Some("secret".into()), &settings).unwrap();
    let repository = named.repository.as_ref().unwrap();
    for size in [1000usize, 1000, 100] {
        let source = SnapshotSource {
            resource: "volume.data".into(),
            kind: "volume".into(),
            name: "data".into(),
            ..SnapshotSource::default()
        };
        repository
            .backup_stream(&vec![7u8; size][..], source, &|_| {})
            .unwrap();
    }
    let failed = ResourceOutcome::Failed {
        class: FailureClass::ResourceMissing,
        message: "volume gone".into(),
    };
    let mut record = run("r1", 0, vec![outcome("volume.cache", "primary", failed)]);
    record.finished = Utc::now();
    repository.append_run(&record).unwrap();
    let wrong = NamedRepository::on_backend(
        "offsite",
        Arc::new(MemoryBackend::default()),
        None,
        &settings,
    )
    .unwrap();
    let readings = vec![
        ("primary".to_string(), read_repository(Ok(&named))),
        ("offsite".to_string(), read_repository(Ok(&wrong))),
    ];
    let status = compute(&spec(), &readings, Utc::now());
    assert_eq!(status.repositories[0].snapshots, 3);
    assert_eq!(status.repositories[1].state, RepositoryState::Absent);
    let data = resource(&status, "volume.data");
    assert_eq!(data.copies[0].state, RpoState::Ok);
    assert_eq!(data.copies[0].bytes, Some(100));
    assert!(data.size.as_ref().unwrap().changed, "1000, 1000, then 100");
    let cache = resource(&status, "volume.cache");
    assert_eq!(
        cache.last_outcome.as_ref().unwrap().class,
        Some(FailureClass::ResourceMissing)
    );
    assert_eq!(cache.state, RpoState::Missing);
}
