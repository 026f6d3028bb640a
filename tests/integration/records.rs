//! Run records against the real engine and repository: every apply and
//! restore appends one, also when a resource failed, and `lifeboat runs`
//! reads them with the Docker engine unreachable.

use crate::harness::{Run, Workspace, assert_valid, schema};
use crate::quiesce::{TestContainer, workspace};
use crate::support;

/// `lifeboat ARGS` with no Docker engine to reach; insists on exit code 0.
fn without_docker(ws: &Workspace, args: &[&str]) -> Run {
    let output = ws
        .process(args)
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/lifeboat-test/docker.sock",
        )
        .output()
        .unwrap();
    let run = Run(output);
    assert_eq!(run.code(), 0, "{run}");
    run
}

/// `lifeboat runs --json ARGS` with no Docker engine to reach, checked
/// against its schema.
fn runs_without_docker(ws: &Workspace, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["runs", "--json"];
    all.extend_from_slice(args);
    let run = without_docker(ws, &all);
    let value: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_valid(&schema("runs.schema.json"), &value);
    value.as_array().unwrap().clone()
}

/// The entries of `address` in a run record.
fn entries<'a>(record: &'a serde_json::Value, address: &str) -> Vec<&'a serde_json::Value> {
    record["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["address"] == address)
        .collect()
}

#[test]
fn an_apply_with_a_failing_hook_records_it_failed_and_the_rest_done() {
    let volume = support::TestVolume::create("records-hook");
    std::fs::write(volume.mountpoint().join("db.txt"), b"rows").unwrap();
    let other = support::TestVolume::create("records-other");
    std::fs::write(other.mountpoint().join("conf"), b"x = 1").unwrap();
    let container = TestContainer::start("records", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "consistency = \"stop\"\n  pre = [\"sh\", \"-c\", \"exit 1\"]",
    );
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nvolume \"other\" {{\n  name   = \"{}\"\n  policy = policy.default\n}}\n",
            other.name()
        ),
    )
    .unwrap();
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code(), 1, "{applied}");

    let records = runs_without_docker(&ws, &[]);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["kind"], "backup");
    assert_eq!(record["repositories"], serde_json::json!(["main"]));
    assert!(
        record.get("applied").is_none(),
        "settings only when all succeeded"
    );
    let failed = entries(record, "volume.data");
    assert_eq!(failed.len(), 1, "{record:#}");
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["class"], "command_failed");
    assert!(failed[0]["message"].as_str().unwrap().contains("exit"));
    let done = entries(record, "volume.other");
    assert_eq!(done[0]["status"], "done", "{record:#}");
    assert_eq!(done[0]["repository"], "main");
    assert_eq!(done[0]["bytes"], 5);
    assert_eq!(done[0]["snapshot"].as_str().unwrap().len(), 64);

    // The human listing names the failure and its class, still without Docker.
    let listing = without_docker(&ws, &["runs"]);
    assert!(
        listing
            .stdout()
            .contains("failed: volume.data (command_failed)"),
        "{listing}"
    );

    // Without the hook the next run succeeds: a second record beside the first.
    std::fs::write(
        ws.path().join("main.hcl"),
        std::fs::read_to_string(ws.path().join("main.hcl"))
            .unwrap()
            .replace("pre = [\"sh\", \"-c\", \"exit 1\"]", ""),
    )
    .unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    let records = runs_without_docker(&ws, &[]);
    assert_eq!(records.len(), 2);
    assert_eq!(entries(&records[0], "volume.data")[0]["status"], "done");
    assert!(records[0].get("applied").is_some());
    // One resource's history: only its outcomes.
    let history = runs_without_docker(&ws, &["--target", "volume.data", "--limit", "5"]);
    let statuses: Vec<&serde_json::Value> = history
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, ["done", "failed"]);
    assert_eq!(runs_without_docker(&ws, &["--limit", "1"]).len(), 1);
    let unknown = ws.run(&["runs", "--repository", "elsewhere"]);
    assert_eq!(unknown.code(), 1, "{unknown}");
    assert!(
        unknown.stderr().contains("repository.elsewhere"),
        "{unknown}"
    );
}

/// A volume holding `a.txt` (`alpha`) as volume.data, backed up once.
fn backed_up(test: &str) -> (support::TestVolume, Workspace) {
    let volume = support::TestVolume::create(test);
    std::fs::write(volume.mountpoint().join("a.txt"), b"alpha").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    (volume, ws)
}

#[test]
fn a_restore_appends_a_restore_record_beside_the_backups() {
    let (volume, ws) = backed_up("records-restore");
    std::fs::remove_file(volume.mountpoint().join("a.txt")).unwrap();
    ws.ok(&[
        "restore",
        "--auto-approve",
        "--target",
        "volume.data",
        "--replace",
    ]);
    assert_eq!(
        std::fs::read(volume.mountpoint().join("a.txt")).unwrap(),
        b"alpha"
    );
    let records = runs_without_docker(&ws, &[]);
    let kinds: Vec<&serde_json::Value> = records.iter().map(|r| &r["kind"]).collect();
    assert_eq!(kinds, ["restore", "backup"], "{records:#?}");
    let restored = entries(&records[0], "volume.data");
    assert_eq!(restored[0]["status"], "done");
    assert_eq!(restored[0]["bytes"], 5);
    assert!(restored[0]["seconds"].as_f64().unwrap() > 0.0);
    // The restore record is in the repository itself, one file per run.
    let files = std::fs::read_dir(ws.repository().join("runs"))
        .unwrap()
        .count();
    assert!(files >= 2, "{files}");
    assert!(
        !ws.repository().join("applied").exists() || {
            std::fs::read_dir(ws.repository().join("applied"))
                .unwrap()
                .next()
                .is_none()
        }
    );
}

#[test]
fn a_run_ended_by_sigterm_mid_copy_records_itself_interrupted() {
    let volume = crate::runs::big_volume("records-term", 7300);
    let container = TestContainer::start("records-term", volume.name());
    let ws = workspace(volume.name(), &container.name, "consistency = \"stop\"");
    crate::quiesce::signal_while_stopped(&ws, &container, "TERM", &[]);
    let records = runs_without_docker(&ws, &[]);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record["interrupted"], true, "{record:#}");
    let data = entries(record, "volume.data");
    assert_ne!(data[0]["status"], "done", "{record:#}");
    assert!(record.get("applied").is_none());
    let listing = without_docker(&ws, &["runs"]);
    assert!(listing.stdout().contains("backup!"), "{listing}");
}

/// The repository of `ws`, opened by the library (as an older lifeboat
/// would have written it).
fn open_repository(ws: &Workspace) -> lifeboat::repo::Repository {
    let backend = std::sync::Arc::new(lifeboat::repo::backend::local::LocalBackend::new(
        ws.repository(),
    ));
    lifeboat::repo::Repository::open(backend, Some(&ws.passphrase), Default::default()).unwrap()
}

#[test]
fn a_repository_with_only_a_legacy_applied_record_plans_the_same_until_a_run_converts_it() {
    let (_volume, ws) = backed_up("records-legacy");
    // What an older lifeboat left: the settings and a restore time in
    // `applied/`, no run records.
    let settings = runs_without_docker(&ws, &[])[0]["applied"]["settings"].clone();
    assert!(settings.is_object(), "{settings}");
    let measured = chrono::Utc::now() - chrono::Duration::hours(1);
    let legacy = serde_json::json!({
        "settings": settings,
        "restores": {"volume.data": {
            "seconds": 7.5, "bytes": 5, "snapshot": "0".repeat(64), "time": measured,
        }},
    });
    let repository = open_repository(&ws);
    repository.record_applied(legacy.clone()).unwrap();
    for file in std::fs::read_dir(ws.repository().join("runs")).unwrap() {
        std::fs::remove_file(file.unwrap().path()).unwrap();
    }
    assert!(runs_without_docker(&ws, &[]).is_empty());

    // It plans as before: nothing changed, and a changed setting is a `~`.
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, spec.replace("keep_last = 7", "keep_last = 6")).unwrap();
    let plan = ws.run(&["plan"]);
    assert!(
        plan.stdout().contains("retention.keep_last: 7 → 6"),
        "{plan}"
    );

    // The next run converts it: a `migrated` record, then `applied/` emptied.
    ws.ok(&["apply", "--auto-approve"]);
    assert!(repository.last_applied().unwrap().is_none());
    let records = runs_without_docker(&ws, &[]);
    let kinds: Vec<&serde_json::Value> = records.iter().map(|r| &r["kind"]).collect();
    assert_eq!(kinds, ["backup", "migrated"], "{records:#?}");
    assert_eq!(records[1]["applied"], legacy);
    assert_eq!(entries(&records[1], "volume.data")[0]["seconds"], 7.5);
    // The settings the conversion applied are in force.
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);
}
