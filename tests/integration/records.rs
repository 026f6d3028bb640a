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

#[test]
fn a_restore_appends_a_restore_record_beside_the_backups() {
    let volume = support::TestVolume::create("records-restore");
    std::fs::write(volume.mountpoint().join("a.txt"), b"alpha").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
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
