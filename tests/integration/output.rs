//! What users read while lifeboat works (#25, honest progress and output):
//! progress by bytes inside large files with the total each copy knows
//! (exact, or an estimate marked so) in the JSON event stream, in both
//! access modes; paths shown without `./` parts, also for a relative
//! `--chdir`; help texts that name every kind; durations in months.

use crate::harness::{Workspace, assert_valid, schema};
use crate::support::{self, TestVolume};

const SIZE: u64 = 40 << 20;

/// The JSON events of `stdout` about `address`: the expected bytes and
/// estimate flag of its started event, and its progress events' bytes.
fn progress_of(stdout: &str, address: &str) -> ((Option<u64>, bool), Vec<u64>) {
    let validator = schema("events.schema.json");
    let mut started = None;
    let mut bytes = Vec::new();
    for event in stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        assert_valid(&validator, &event);
        if event["address"] != address {
            continue;
        }
        match event["type"].as_str() {
            Some("resource_started") => {
                started = Some((
                    event["expected_bytes"].as_u64(),
                    event["expected_is_estimate"] == true,
                ))
            }
            Some("progress") => bytes.push(event["bytes"].as_u64().unwrap()),
            _ => {}
        }
    }
    (started.expect("a started event"), bytes)
}

/// Several progress events fell inside the one large file, in order.
fn moved_inside(bytes: &[u64], what: &str) {
    let inside = bytes.iter().filter(|b| **b > 0 && **b < SIZE).count();
    assert!(inside >= 3, "{what}: progress inside the file: {bytes:?}");
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{what}: {bytes:?}");
}

#[test]
fn progress_counts_bytes_inside_one_large_file_in_both_access_modes() {
    let volume = TestVolume::create("progress");
    std::fs::write(
        volume.mountpoint().join("big.bin"),
        support::random_bytes(SIZE as usize, 25),
    )
    .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-output-progress-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(
        dir.path().join("big.bin"),
        support::random_bytes(SIZE as usize, 26),
    )
    .unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nbind \"conf\" {{\n  path   = \"{}\"\n  policy = policy.default\n}}\n",
            dir.path().display()
        ),
    )
    .unwrap();

    // A first backup knows each tree's size exactly (its directory is
    // readable on this host), also read through the engine's archive stream.
    let first = ws.ok(&["apply", "--auto-approve", "--json", "--access", "api"]);
    for address in ["volume.data", "bind.conf"] {
        let (started, bytes) = progress_of(&first.stdout(), address);
        assert_eq!(started, (Some(SIZE), false), "{address}");
        moved_inside(&bytes, address);
    }
    // Later, read directly, the previous snapshot's size is the estimate.
    let again = ws.ok(&[
        "apply",
        "--auto-approve",
        "--json",
        "--access",
        "direct",
        "--replace",
        "volume.data",
        "--replace",
        "bind.conf",
    ]);
    for address in ["volume.data", "bind.conf"] {
        let (started, bytes) = progress_of(&again.stdout(), address);
        assert_eq!(started, (Some(SIZE), true), "{address}");
        moved_inside(&bytes, address);
    }
    // A restore (its total, exact, is unit-tested on the memory engine)
    // says what it wrote in the same words.
    let restored = ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.data",
    ]);
    assert!(
        restored.stdout().contains("(41.9 MB, 1 file)"),
        "{restored}"
    );
    // People read SI units, as everywhere else.
    let text = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert!(text.stdout().contains("41.9 MB, 1 file;"), "{text}");
    assert!(!text.stdout().contains("MiB"), "{text}");
}

/// A spec of one bind of `dir` in the default repository (no repository
/// block: it lives in `.lifeboat/` beside the spec).
fn default_repository_spec(spec_dir: &std::path::Path, dir: &std::path::Path) {
    std::fs::write(
        spec_dir.join("main.hcl"),
        format!(
            "policy \"default\" {{\n  rpo = \"1mo\"\n}}\n\nbind \"conf\" {{\n  path   = \"{}\"\n  \
             policy = policy.default\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
}

#[test]
fn paths_are_shown_without_dots_and_a_relative_chdir_is_taken_once() {
    let parent = tempfile::tempdir().unwrap();
    let spec_dir = parent.path().join("shop");
    std::fs::create_dir(&spec_dir).unwrap();
    let data = parent.path().join("conf");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("app.conf"), "port = 80\n").unwrap();
    default_repository_spec(&spec_dir, &data);
    let lifeboat = |cwd: &std::path::Path, args: &[&str]| {
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
            .current_dir(cwd)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("LIFEBOAT_PASSPHRASE")
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "lifeboat {args:?}:\n{text}");
        text
    };
    // "1mo" is a duration, as the error message for durations says.
    lifeboat(&spec_dir, &["validate"]);
    let plan = lifeboat(parent.path(), &["--chdir", "shop", "plan"]);
    assert!(
        plan.contains("create at shop/.lifeboat/repository"),
        "{plan}"
    );
    let applied = lifeboat(
        parent.path(),
        &["--chdir", "./shop/", "apply", "--auto-approve"],
    );
    assert!(
        applied.contains("into shop/.lifeboat/passphrase"),
        "{applied}"
    );
    assert!(spec_dir.join(".lifeboat/passphrase").is_file());
    assert!(!spec_dir.join("shop").exists(), "taken twice: {applied}");
    // From the spec directory itself: no `./` in front.
    let again = lifeboat(
        &spec_dir,
        &["apply", "--auto-approve", "--replace", "bind.conf"],
    );
    assert!(!again.contains("./"), "{again}");
    let snapshots = lifeboat(&spec_dir, &["--chdir", ".", "snapshots"]);
    assert_eq!(snapshots.matches("bind.conf").count(), 2, "{snapshots}");
}

#[test]
fn help_names_every_kind_and_says_a_backup_target_is_alone() {
    let help = |args: &[&str]| {
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let top = help(&["--help"]);
    for kind in [
        "volumes",
        "bind-mounted directories",
        "images",
        "services",
        "dumps",
    ] {
        assert!(top.contains(kind), "{kind}: {top}");
    }
    let restore = help(&["restore", "--help"]);
    assert!(!restore.contains("Restore volumes"), "{restore}");
    assert!(
        restore.contains("images, volumes, binds, services, dumps"),
        "{restore}"
    );
    assert!(restore.contains("dumps are loaded over"), "{restore}");
    for command in ["plan", "apply"] {
        let text = help(&[command, "--help"]);
        assert!(text.contains("backed up alone"), "{command}: {text}");
    }
}
