//! Retention and settings in the plan workflow: a policy change shows as a
//! `~` attribute diff, what the new rules let go as `-` forgets; apply (of a
//! saved plan) forgets exactly those, prunes, records the settings; and the
//! `forget` / `prune` commands for doing the same by hand.

use crate::harness::{Workspace, assert_valid, schema, snapshot_ids};
use crate::support;

/// Three snapshots of `volume`, each holding only a file of its own, so
/// forgetting one frees its data.
fn three_snapshots(ws: &Workspace, volume: &support::TestVolume) -> Vec<String> {
    for round in 0..3u64 {
        let data = support::random_bytes(200_000, 0x9e37_79b9_7f4a_7c15 ^ round);
        if round > 0 {
            std::fs::remove_file(volume.mountpoint().join(format!("round{}", round - 1))).unwrap();
        }
        std::fs::write(volume.mountpoint().join(format!("round{round}")), data).unwrap();
        ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    }
    let ids = snapshot_ids(ws);
    assert_eq!(ids.len(), 3);
    ids
}

fn set_keep_last(ws: &Workspace, keep: u32) {
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    let changed = spec.replace("keep_last = 7", &format!("keep_last = {keep}"));
    assert_ne!(spec, changed);
    std::fs::write(file, changed).unwrap();
}

#[test]
fn a_retention_change_plans_forgets_and_an_attribute_diff_and_apply_executes_them() {
    let volume = support::TestVolume::create("retention");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let ids = three_snapshots(&ws, &volume);
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);

    set_keep_last(&ws, 2);
    let plan = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), 2, "{plan}");
    let text = plan.stdout();
    assert!(text.contains("~ policy.default"), "{plan}");
    assert!(text.contains("retention.keep_last: 7 → 2"), "{plan}");
    assert!(
        text.contains("- volume.data      forget 1 snapshot on main"),
        "{plan}"
    );
    assert!(text.contains(&ids[0][..8]), "the oldest goes: {plan}");
    assert!(
        text.contains("Plan: 0 to back up, 1 to forget, 1 to update, 1 unchanged."),
        "{plan}"
    );

    let markdown = ws.ok(&["plan", "--format", "markdown"]).stdout();
    assert!(markdown.contains("**⚠ forget 1 snapshot**"), "{markdown}");
    assert!(
        markdown.contains("retention.keep_last: 7 → 2"),
        "{markdown}"
    );

    let plan_file = ws.path().join("retention.plan");
    let plan_arg = plan_file.to_str().unwrap();
    ws.ok(&["plan", "--out", plan_arg]);
    let shown: serde_json::Value =
        serde_json::from_str(&ws.ok(&["show", "--json", plan_arg]).stdout()).unwrap();
    assert_valid(&schema("plan.schema.json"), &shown);
    assert_eq!(shown["summary"]["to_forget"], 1);
    assert_eq!(shown["summary"]["to_update"], 1);
    let forget = shown["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "forget")
        .unwrap();
    assert_eq!(forget["forget"][0]["id"], ids[0].as_str());
    let update = shown["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "update")
        .unwrap();
    assert_eq!(
        update["attributes"][0],
        serde_json::json!({"name": "retention.keep_last", "before": "7", "after": "2"})
    );

    let size_before = support::dir_size(&ws.repository());
    let events = ws.ok(&["apply", "--json", plan_arg]).stdout();
    let validator = schema("events.schema.json");
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in &events {
        assert_valid(&validator, event);
    }
    let forgotten = events.iter().find(|e| e["type"] == "forgotten").unwrap();
    assert_eq!(forgotten["snapshots"][0], ids[0].as_str());
    let pruned = events.iter().find(|e| e["type"] == "pruned").unwrap();
    assert!(
        pruned["bytes_freed"].as_u64().unwrap() > 100_000,
        "{pruned}"
    );
    assert!(support::dir_size(&ws.repository()) < size_before);

    assert_eq!(snapshot_ids(&ws), ids[1..]);
    // Settings recorded, retention satisfied: nothing left to do.
    let plan = ws.ok(&["plan", "--detailed-exitcode"]);
    assert!(
        plan.stdout().contains("Plan: 0 to back up, 1 unchanged."),
        "{plan}"
    );
    ws.ok(&["check", "--read-data"]);

    // A due backup counts itself among what is kept: after apply exactly
    // keep_last snapshots remain.
    let applied = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert!(
        applied.stdout().contains("1 snapshot forgotten"),
        "{applied}"
    );
    let now = snapshot_ids(&ws);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], ids[2]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn forget_and_prune_commands_delete_only_what_they_are_told() {
    let volume = support::TestVolume::create("forget");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let ids = three_snapshots(&ws, &volume);

    // Retention keeps all three: nothing to forget.
    let nothing = ws.ok(&["forget"]);
    assert!(nothing.stdout().contains("Nothing to forget"), "{nothing}");

    let refused = ws.run(&["forget", &ids[1][..10]]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stderr().contains("--auto-approve"), "{refused}");
    let dry = ws.ok(&["forget", "--dry-run", &ids[1][..10]]);
    assert!(dry.stdout().contains("Dry run"), "{dry}");
    assert_eq!(snapshot_ids(&ws).len(), 3);

    let unknown = ws.run(&["forget", "--auto-approve", "ffffffffffff"]);
    assert_eq!(unknown.code(), 1, "{unknown}");
    assert!(
        unknown.stderr().contains("no snapshot with id"),
        "{unknown}"
    );

    let forgot = ws.ok(&["forget", "--auto-approve", &ids[1][..10]]);
    assert!(
        forgot.stdout().contains("named on the command line"),
        "{forgot}"
    );
    assert!(forgot.stdout().contains("lifeboat prune"), "{forgot}");
    assert_eq!(snapshot_ids(&ws), [ids[0].clone(), ids[2].clone()]);

    let would = ws.ok(&["prune", "--dry-run"]);
    assert!(would.stdout().contains("would delete"), "{would}");
    let size = support::dir_size(&ws.repository());
    let pruned = ws.ok(&["prune"]);
    assert!(pruned.stdout().contains("freed"), "{pruned}");
    assert!(support::dir_size(&ws.repository()) < size);
    ws.ok(&["check", "--read-data"]);

    // By the policy: keep_last 1 forgets the older one, --prune frees its data.
    set_keep_last(&ws, 1);
    let forgot = ws.ok(&["forget", "--auto-approve", "--prune"]);
    assert!(
        forgot.stdout().contains("retention (keep_last 1)"),
        "{forgot}"
    );
    assert!(
        forgot
            .stdout()
            .contains("Forget complete! 1 snapshot forgotten"),
        "{forgot}"
    );
    assert_eq!(snapshot_ids(&ws), [ids[2].clone()]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_measured_restore_slower_than_the_rto_is_flagged_in_the_plan() {
    let volume = support::TestVolume::create("rto");
    std::fs::write(volume.mountpoint().join("f"), vec![7u8; 100_000]).unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        spec.replace("rpo = \"24h\"", "rpo = \"24h\"\n  rto = \"1ms\""),
    )
    .unwrap();
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("rto: (not set) → 1ms"), "{plan}");
    assert!(
        !plan.stdout().contains("longer than the rto"),
        "not measured yet: {plan}"
    );

    ws.ok(&["restore", "--auto-approve", "--replace"]);
    let plan = ws.ok(&["plan"]);
    let text = plan.stdout();
    assert!(
        text.contains("Warning: volume.data: the last restore"),
        "{plan}"
    );
    assert!(
        text.contains("longer than the rto 1ms of policy.default"),
        "{plan}"
    );
    assert!(
        text.contains("main.hcl:"),
        "names where the goal is set: {plan}"
    );
}

/// A block renamed with `moved` keeps its history: the plan finds its
/// snapshots (up to date, not "never backed up"), a restore takes them, and
/// retention counts them; without the block, the plan names them as
/// snapshots of a resource the spec no longer declares.
#[test]
fn a_renamed_block_keeps_its_history_through_moved() {
    let volume = support::TestVolume::create("moved");
    std::fs::write(volume.mountpoint().join("f"), b"before the rename").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let spec_path = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    std::fs::write(
        &spec_path,
        spec.replace("volume \"data\"", "volume \"app_data\""),
    )
    .unwrap();
    let orphaned = ws.ok(&["plan"]);
    let text = orphaned.stdout();
    assert!(text.contains("+ volume.app_data"), "{orphaned}");
    assert!(
        text.contains("holds 1 snapshot of volume.data, which the spec no longer declares"),
        "{orphaned}"
    );
    assert!(
        text.contains("moved { from = volume.data  to = volume.NEW_NAME }"),
        "{orphaned}"
    );
    std::fs::write(
        ws.path().join("moved.hcl"),
        "moved {\n  from = volume.data\n  to   = volume.app_data\n}\n",
    )
    .unwrap();
    let adopted = ws.ok(&["plan"]);
    assert!(adopted.stdout().contains("= volume.app_data"), "{adopted}");
    assert!(
        !adopted.stdout().contains("no longer declares"),
        "{adopted}"
    );
    std::fs::write(volume.mountpoint().join("f"), b"after").unwrap();
    ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.app_data",
    ]);
    assert_eq!(
        std::fs::read(volume.mountpoint().join("f")).unwrap(),
        b"before the rename"
    );
}

/// Every file of the repository with its content (directories' times
/// aside: taking a lock touches `locks/`).
fn repository_files(ws: &Workspace) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(ws.repository())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn prune_and_forget_prune_dry_runs_show_the_prune_plan_and_write_nothing() {
    let volume = support::TestVolume::create("prune-plan");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let ids = three_snapshots(&ws, &volume);
    let before = repository_files(&ws);

    set_keep_last(&ws, 1);
    let would = ws.ok(&["forget", "--prune", "--dry-run"]);
    let text = would.stdout();
    assert!(text.contains("Then prune would act on"), "{would}");
    assert!(text.contains("repository.main ("), "{would}");
    // Two snapshots alone use a data pack and a tree pack each.
    assert!(text.contains("would delete 4 packs"), "{would}");
    assert!(text.contains("no snapshot needs"), "{would}");
    assert!(text.contains("Dry run: nothing was forgotten."), "{would}");
    assert_eq!(
        repository_files(&ws),
        before,
        "forget --prune --dry-run wrote"
    );
    assert_eq!(snapshot_ids(&ws), ids);

    let nothing = ws.ok(&["prune", "--dry-run"]);
    assert!(nothing.stdout().contains("nothing to prune"), "{nothing}");
    ws.ok(&["forget", "--auto-approve", &ids[0][..10]]);
    let after_forget = repository_files(&ws);
    let would = ws.ok(&["prune", "--dry-run"]);
    // One snapshot alone uses a data pack and a tree pack.
    assert!(would.stdout().contains("would delete 2 packs,"), "{would}");
    assert!(would.stdout().contains("to free"), "{would}");
    assert_eq!(repository_files(&ws), after_forget, "prune --dry-run wrote");

    let pruned = ws.ok(&["prune"]);
    assert!(pruned.stdout().contains("deleted 2 packs,"), "{pruned}");
    assert!(pruned.stdout().contains("freed"), "{pruned}");
    ws.ok(&["check", "--read-data"]);
}
