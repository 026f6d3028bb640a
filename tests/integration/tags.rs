//! Release tags end to end on a real volume and repository: `apply --tag`
//! takes a tagged snapshot of every resource (also when nothing is due),
//! `snapshots --tag` and `runs` show them, `restore --snapshot tag:…` brings
//! the volume back to the tagged moment after it changed, and retention
//! (`keep_tagged`, a tag's last snapshot) keeps tagged snapshots until one is
//! forgotten by id.

use crate::harness::{Workspace, assert_valid, schema, snapshots};
use crate::support;

fn write(volume: &support::TestVolume, text: &str) {
    std::fs::write(volume.mountpoint().join("app.txt"), text).unwrap();
}

/// The ids of the snapshots `snapshots --tag FILTER --json` lists.
fn tagged(ws: &Workspace, filter: &str) -> Vec<String> {
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json", "--tag", filter]).stdout()).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_release_tag_marks_the_stack_and_restores_it_after_a_change() {
    let volume = support::TestVolume::create("tags-release");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    write(&volume, "before the release");
    ws.ok(&["apply", "--auto-approve"]);

    // Within its rpo, nothing is due; the tag still takes a snapshot.
    let refused = ws.run(&["apply", "--auto-approve", "--tag", "release"]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(
        refused.stderr().contains("has no value: write KEY=VALUE"),
        "{refused}"
    );
    let applied = ws.ok(&["apply", "--auto-approve", "--tag", "release=v1.4.2"]);
    assert!(
        applied.stdout().contains("tagged release=v1.4.2 (--tag)"),
        "{applied}"
    );
    let all = snapshots(&ws);
    assert_eq!(all.len(), 2);
    assert_valid(&schema("snapshots.schema.json"), &serde_json::json!(all));
    assert_eq!(all[1]["tags"], serde_json::json!(["release=v1.4.2"]));
    let release = tagged(&ws, "release");
    assert_eq!(release, [all[1]["id"].as_str().unwrap()]);
    assert_eq!(tagged(&ws, "release=v1.4.2"), release);
    assert!(tagged(&ws, "release=v1.4.3").is_empty());
    let table = ws.ok(&["snapshots", "--tag", "release"]).stdout();
    assert!(table.contains("[release=v1.4.2]"), "{table}");
    assert!(table.contains("1 snapshot"), "{table}");
    let none = ws.ok(&["snapshots", "--tag", "release=v9"]).stdout();
    assert!(
        none.contains("No snapshot has the tag release=v9."),
        "{none}"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout()).unwrap();
    assert_valid(&schema("runs.schema.json"), &runs);
    assert_eq!(runs[0]["tags"], serde_json::json!(["release=v1.4.2"]));
    assert!(
        ws.ok(&["runs"]).stdout().contains("tags: release=v1.4.2"),
        "the run's tags are shown"
    );

    // The deploy changes the data, and a later backup records that.
    write(&volume, "after the release");
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);

    let unknown = ws.run(&["restore", "--auto-approve", "--snapshot", "tag:release=v9"]);
    assert_eq!(unknown.code(), 1, "{unknown}");
    assert!(
        unknown
            .stderr()
            .contains("no snapshot of volume.data has the tag release=v9, so the stack cannot be brought back to that moment: restore the others with --target"),
        "{unknown}"
    );
    let restored = ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--snapshot",
        "tag:release=v1.4.2",
    ]);
    assert!(
        restored.stdout().contains(&release[0][..8]),
        "the tagged snapshot is the one restored: {restored}"
    );
    assert!(
        restored.stdout().contains("UTC), tagged release=v1.4.2."),
        "{restored}"
    );
    assert_eq!(
        std::fs::read_to_string(volume.mountpoint().join("app.txt")).unwrap(),
        "before the release"
    );

    // A reviewed plan carries its tags; apply FILE takes no others.
    let plan_file = ws.path().join("release.plan");
    let plan_arg = plan_file.to_str().unwrap();
    ws.ok(&["plan", "--tag", "release=v1.5.0", "--out", plan_arg]);
    let other = ws.run(&["apply", plan_arg, "--tag", "release=v9"]);
    assert_ne!(other.code(), 0, "{other}");
    assert!(other.stderr().contains("cannot be used with"), "{other}");
    ws.ok(&["apply", plan_arg]);
    assert_eq!(tagged(&ws, "release=v1.5.0").len(), 1);
}

#[test]
fn retention_keeps_tagged_snapshots_until_one_is_forgotten_by_id() {
    let volume = support::TestVolume::create("tags-retention");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let mut ids = Vec::new();
    for (round, tag) in [
        Some("release=v1"),
        Some("release=v2"),
        None,
        Some("ticket=7"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        write(&volume, &format!("round {round}"));
        let mut args = vec!["apply", "--auto-approve", "--replace", "volume.data"];
        if let Some(tag) = tag {
            args.extend(["--tag", tag]);
        }
        ws.ok(&args);
        ids.push(
            snapshots(&ws).last().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    let changed = spec.replace(
        "retention { keep_last = 7 }",
        "retention {\n    keep_last   = 1\n    keep_tagged = [\"release\"]\n  }",
    );
    assert_ne!(spec, changed);
    std::fs::write(&file, changed).unwrap();

    // keep_last 1 keeps the newest, keep_tagged both releases, and
    // ticket=7's only snapshot stays as that tag's last one.
    let forget = ws.ok(&["forget", "--auto-approve"]);
    assert!(forget.stdout().contains(&ids[2][..8]), "{forget}");
    let left: Vec<String> = snapshots(&ws)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        [
            ids[0].clone(),
            ids[1].clone(),
            ids[3].clone(),
            ids[4].clone()
        ]
    );
    let dry = ws.ok(&["forget", "--dry-run"]).stdout();
    assert!(!dry.contains(&ids[3][..8]), "{dry}");

    // Named by id, a tag's last snapshot goes.
    ws.ok(&["forget", "--auto-approve", &ids[3]]);
    assert!(tagged(&ws, "ticket").is_empty());
    assert_eq!(tagged(&ws, "release"), ids[..2]);
}
