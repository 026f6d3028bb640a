//! Excludes on the real engine: a volume with a cache, temporary files and
//! tagged directories, backed up through the Docker archive API and read
//! directly, restored each way; the plan shows the excludes, a changed
//! list makes the volume due, and a replacing restore says what it removes.

use crate::harness::Workspace;
use crate::support;
use std::path::Path;

const SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n";

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs (tests only; lifeboat itself uses the API)")
}

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Paths left out by the rules [`spec_with_excludes`] writes.
const LEFT_OUT: &[&str] = &[
    "cache/a",
    "cache/sub/b",
    "x.tmp",
    "deep/y.tmp",
    "tagged",
    "marked",
];
/// Paths kept.
const KEPT: &[&str] = &[
    "cache",
    "deep/keep.txt",
    "keep/file",
    "sub/cache/z",
    "fake/CACHEDIR.TAG",
    "fake/data",
];

fn fill(root: &Path) {
    write(root, "cache/a", "cached");
    write(root, "cache/sub/b", "cached deeper");
    write(root, "x.tmp", "scratch");
    write(root, "deep/y.tmp", "scratch deeper");
    write(root, "deep/keep.txt", "kept");
    write(root, "keep/file", "kept");
    write(
        root,
        "sub/cache/z",
        "kept: cache/** is anchored at the root",
    );
    write(root, "tagged/0first", "sorts before the tag");
    write(root, "tagged/CACHEDIR.TAG", SIGNATURE);
    write(root, "tagged/data", "left out with its directory");
    write(root, "fake/CACHEDIR.TAG", "no signature: an ordinary file");
    write(root, "fake/data", "kept");
    write(root, "marked/.lifeboat-exclude", "");
    write(root, "marked/stuff", "left out");
}

/// The workspace's (one) volume or bind block with `rules` added (to what it has).
fn spec_with_excludes(ws: &Workspace, rules: &str) {
    let spec = ws.path().join("main.hcl");
    let text = std::fs::read_to_string(&spec).unwrap();
    let text = text.replace(
        "  policy = policy.default\n",
        &format!("  policy = policy.default\n{rules}"),
    );
    std::fs::write(spec, text).unwrap();
}

const RULES: &str = "  exclude            = [\"cache/**\", \"*.tmp\"]\n  \
                     exclude_if_present = [\".lifeboat-exclude\", \"CACHEDIR.TAG\"]\n";

fn assert_restored_without_excluded(root: &Path, how: &str) {
    for path in LEFT_OUT {
        assert!(!root.join(path).exists(), "{how}: {path} was excluded");
    }
    for path in KEPT {
        assert!(root.join(path).exists(), "{how}: {path} is missing");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("fake/data")).unwrap(),
        "kept"
    );
}

#[test]
fn excludes_apply_the_same_through_the_api_and_directly() {
    let volume = support::TestVolume::create("excludes");
    fill(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    spec_with_excludes(&ws, RULES);

    let plan = ws.ok(&["plan"]);
    assert!(
        plan.stdout().contains(
            "leaves out cache/**, *.tmp and directories holding .lifeboat-exclude or CACHEDIR.TAG"
        ),
        "{plan}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json"]).stdout()).unwrap();
    let volume_change = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "volume.data")
        .expect("a change of volume.data");
    let reasons = volume_change["reasons"].to_string();
    assert!(
        reasons.contains("\"reason\":\"excludes\"") && reasons.contains("cache/**"),
        "{reasons}"
    );

    back_up_both_ways(&ws, "volume.data");
    restore_both_ways(&ws, &volume.mountpoint(), || {
        assert!(docker(&["volume", "rm", volume.name()]).status.success());
    });
}

/// Backs `address` up through the API, then reads it directly: the second
/// stores nothing new, so both snapshots are the same tree.
fn back_up_both_ways(ws: &Workspace, address: &str) {
    ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    crate::harness::assert_direct_backup_adds_nothing(ws, address);
}

/// Restores the API's snapshot through the API and the direct one
/// directly, each after `lose` removed the content at `root`, and checks
/// what came back.
fn restore_both_ways(ws: &Workspace, root: &Path, lose: impl Fn()) {
    let ids = crate::harness::snapshot_ids(ws);
    assert_eq!(ids.len(), 2);
    for (id, access) in ids.iter().zip(["api", "direct"]) {
        lose();
        ws.ok(&[
            "restore",
            "--auto-approve",
            "--access",
            access,
            "--snapshot",
            id,
        ]);
        assert_restored_without_excluded(root, access);
    }
}

#[test]
fn a_changed_exclude_makes_the_volume_due_and_a_replace_says_what_it_removes() {
    let volume = support::TestVolume::create("exclude-changed");
    fill(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    spec_with_excludes(&ws, "  exclude = [\"cache/**\"]\n");
    ws.ok(&["apply", "--auto-approve"]);
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);

    spec_with_excludes(&ws, "  exclude_if_present = [\"CACHEDIR.TAG\"]\n");
    let plan = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), 2, "{plan}");
    assert!(
        plan.stdout().contains(
            "exclude changed since its latest snapshot (then: cache/**; now: cache/** and \
             directories holding CACHEDIR.TAG)"
        ),
        "{plan}"
    );
    ws.ok(&["apply", "--auto-approve"]);
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 0);

    // A replace would remove the live files the snapshot left out: said.
    let planned = ws.run(&["restore", "--replace"]);
    assert!(
        planned.stdout().contains(
            "not in the snapshot: cache/** and directories holding CACHEDIR.TAG (left out by \
             its backup); the replace removes such files from the target too, and the safety \
             snapshot taken first (which leaves out nothing) keeps them"
        ),
        "{planned}"
    );
    ws.ok(&["restore", "--auto-approve", "--replace"]);
    assert!(!volume.mountpoint().join("cache/a").exists());
    assert!(volume.mountpoint().join("keep/file").exists());
    // The safety snapshot kept what the replace removed.
    let safety = crate::harness::snapshots(&ws)
        .into_iter()
        .find(|s| s.to_string().contains("pre-restore"))
        .expect("a safety snapshot");
    let id = safety["short_id"].as_str().unwrap().to_string();
    let restored = support::TestVolume::create("exclude-safety");
    let other = ws.sharing_repository(volume.name(), restored.name());
    assert!(docker(&["volume", "rm", restored.name()]).status.success());
    other.ok(&["restore", "--auto-approve", "--snapshot", &id]);
    assert_eq!(
        std::fs::read_to_string(restored.mountpoint().join("cache/a")).unwrap(),
        "cached"
    );
    assert!(restored.mountpoint().join("tagged/data").exists());
}

#[test]
fn a_binds_excludes_apply_the_same_through_the_api_and_directly() {
    let dir = crate::binds::host_dir("excludes");
    let root = dir.path().join("conf");
    fill(&root);
    let ws = crate::binds::bind_workspace(&root);
    spec_with_excludes(&ws, RULES);
    back_up_both_ways(&ws, "bind.config");
    restore_both_ways(&ws, &root, || std::fs::remove_dir_all(&root).unwrap());
}
