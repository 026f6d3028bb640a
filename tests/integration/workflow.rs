//! The Terraform-style workflow: saved plans, stale-plan refusal, JSON and
//! Markdown renderings validated against the schemas, fmt, graph.

use crate::harness::{Workspace, assert_valid, schema};
use crate::support;
use std::path::Path;

/// The schema in schemas/ is the one generated from the type that makes the JSON.
fn schema_matches<T: schemars::JsonSchema>(file: &str) {
    let generated = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "run with UPDATE_SCHEMAS=1 to regenerate schemas/{file}"
    );
}

#[test]
fn schemas_match_the_types_that_produce_the_json() {
    schema_matches::<lifeboat::plan::Plan>("plan.schema.json");
    schema_matches::<lifeboat::apply::JsonLine>("events.schema.json");
    schema_matches::<Vec<lifeboat::apply::SnapshotRow>>("snapshots.schema.json");
    schema_matches::<Vec<lifeboat::apply::RunRow>>("runs.schema.json");
    schema_matches::<lifeboat::status::Status>("status.schema.json");
    schema_matches::<lifeboat::notify::Notice>("notify.schema.json");
}

#[test]
fn saved_plan_applies_exactly_and_stale_plans_are_refused() {
    let volume = support::TestVolume::create("saved");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let plan_file = ws.path().join("backup.plan");
    let plan_arg = plan_file.to_str().unwrap();

    let planned = ws.ok(&["plan", "--out", plan_arg]);
    assert!(planned.stdout().contains("lifeboat apply"), "{planned}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_valid(&schema("plan.schema.json"), &saved);
    assert_eq!(saved["format_version"], "2.3");
    let text = std::fs::read_to_string(&plan_file).unwrap();
    assert!(!text.contains(&ws.passphrase), "plans hold no secrets");

    let shown = ws.ok(&["show", plan_arg]);
    assert!(shown.stdout().contains("+ volume.data"), "{shown}");

    // Applying a reviewed plan file needs no prompt.
    let applied = ws.ok(&["apply", plan_arg]);
    assert!(
        applied.stdout().contains("Apply complete! 1 backed up"),
        "{applied}"
    );

    // The repository moved on: the same plan is now stale.
    let stale = ws.run(&["apply", plan_arg]);
    assert_eq!(stale.code(), 1, "{stale}");
    assert!(stale.stderr().contains("stale"), "{stale}");
    assert!(stale.stderr().contains("repository.main"), "{stale}");
}

#[test]
fn json_and_markdown_plans_and_the_event_stream_follow_their_schemas() {
    let volume = support::TestVolume::create("json");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);

    let plan: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json"]).stdout()).unwrap();
    assert_valid(&schema("plan.schema.json"), &plan);
    // The repository is created first (it does not exist yet), then the volume backed up.
    assert_eq!(plan["changes"][0]["action"], "create");
    assert_eq!(plan["changes"][1]["action"], "back_up");
    assert_eq!(plan["summary"]["to_back_up"], 1);

    let markdown = ws.ok(&["plan", "--format", "markdown"]).stdout();
    assert!(markdown.starts_with("### lifeboat plan"), "{markdown}");
    assert!(
        markdown.contains("| `+` | volume.data | back up |"),
        "{markdown}"
    );
    assert!(markdown.contains("<details>"), "{markdown}");

    let events = ws.ok(&["apply", "--auto-approve", "--json"]).stdout();
    let validator = schema("events.schema.json");
    let lines: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for line in &lines {
        assert_valid(&validator, line);
    }
    assert_eq!(lines.first().unwrap()["type"], "plan");
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert!(lines.iter().any(|l| l["type"] == "resource_finished"));

    let invalid = Workspace::with_volumes(&[("data", volume.name())]);
    std::fs::write(
        invalid.path().join("extra.hcl"),
        "volume \"x\" {\n  nme = \"y\"\n}\n",
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&invalid.run(&["validate", "--json"]).stdout()).unwrap();
    assert_valid(&schema("validate.schema.json"), &report);
    assert_eq!(report["valid"], false);
}

#[test]
fn detailed_exit_codes_follow_terraform() {
    let volume = support::TestVolume::create("exitcodes");
    std::fs::write(volume.mountpoint().join("f"), b"x").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 2);
    ws.ok(&["apply", "--auto-approve"]);
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);
    assert_eq!(
        ws.run(&["plan", "--detailed-exitcode", "--replace", "volume.data"])
            .code(),
        2
    );
    let bad_target = ws.run(&["plan", "--target", "volume.nope"]);
    assert_eq!(bad_target.code(), 1);
    assert!(bad_target.stderr().contains("volume.data"), "{bad_target}");
}

#[test]
fn fmt_check_exits_3_and_fmt_rewrites_keeping_comments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.hcl");
    std::fs::write(
        &file,
        "# keep me\nvolume \"data\" {\n      name = \"x\" # the volume\n}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("lifeboat")
            .unwrap()
            .arg("--chdir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["fmt", "--check"]).status.code(), Some(3));
    let diff = run(&["fmt", "--check", "--diff"]);
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+  name = \"x\" # the volume"));
    assert_eq!(run(&["fmt"]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# keep me\nvolume \"data\" {\n  name = \"x\" # the volume\n}\n"
    );
    assert_eq!(run(&["fmt", "--check"]).status.code(), Some(0));
}

#[test]
fn graph_orders_the_stack_and_reports_cycles_with_their_path() {
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stack");
    let dot = assert_cmd::Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(&stack)
        .args(["graph", "--restore"])
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&dot.stdout).into_owned();
    let position = |name: &str| {
        dot.find(&format!("\"{name}\" [label"))
            .unwrap_or_else(|| panic!("{name} in {dot}"))
    };
    assert!(position("image.pg") < position("volume.pgdata"));
    assert!(position("volume.pgdata") < position("service.db"));
    assert!(position("service.db") < position("service.api"));
    assert!(position("service.api") < position("service.web"));
    assert!(position("service.db") < position("dump.orders"));
    assert!(dot.contains("\"service.db\" -> \"service.api\" [label = \"depends_on\"]"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        "service \"a\" {\n  container = \"app-a\"\n  depends_on = [service.b]\n}\nservice \"b\" {\n  container = \"app-b\"\n  depends_on = [service.a]\n}\n",
    )
    .unwrap();
    let cycle = assert_cmd::Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir.path())
        .arg("validate")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(cycle.status.code(), Some(1));
    let text = String::from_utf8_lossy(&cycle.stderr);
    assert!(text.contains("service.a → service.b → service.a"), "{text}");
    assert!(text.contains("main.hcl:1:"), "{text}");
}
