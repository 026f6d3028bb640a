//! Bind blocks: host directories backed up and restored exactly, through
//! the engine (helper containers with bind mounts) and directly; and the
//! volumes whose content is a host directory (`-o o=bind`).

use crate::harness::Workspace;
use crate::support;

/// A spec protecting one bind of `dir` in a repository inside the workspace.
pub(crate) fn bind_workspace(dir: &std::path::Path) -> Workspace {
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nbind \"config\" {{\n  path   = \"{}\"\n  policy = policy.default\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
    ws
}

/// A directory of its own under /var/tmp (the engine's host is this one).
pub(crate) fn host_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("lifeboat-bind-{test}-"))
        .tempdir_in("/var/tmp")
        .unwrap()
}

#[test]
fn a_bind_round_trips_exactly_through_the_api_and_directly() {
    for access in ["api", "direct"] {
        let dir = host_dir(access);
        let root = dir.path().join("conf");
        std::fs::create_dir(&root).unwrap();
        support::fill_tricky(&root);
        let original = support::keep_copy(&root);
        let ws = bind_workspace(&root);

        let plan = ws.ok(&["plan"]);
        assert!(plan.stdout().contains("+ bind.config"), "{plan}");
        assert!(!plan.stdout().contains("Warning: bind"), "{plan}");
        let applied = ws.ok(&["apply", "--auto-approve", "--access", access]);
        assert!(
            applied.stdout().contains("Apply complete! 1 backed up"),
            "{applied}"
        );
        assert!(ws.ok(&["plan"]).stdout().contains("= bind.config"));

        // The directory is gone: the restore creates it.
        std::fs::remove_dir_all(&root).unwrap();
        let restored = ws.ok(&["restore", "--auto-approve", "--access", access]);
        assert!(restored.stdout().contains("create directory"), "{restored}");
        support::compare_trees(original.path(), &root)
            .unwrap_or_else(|diff| panic!("{access}: restored directory differs:\n{diff}"));

        // Non-empty: kept in a whole restore, refused as a target without
        // --replace, made equal with it.
        std::fs::write(root.join("added-later.txt"), b"new").unwrap();
        let kept = ws.ok(&["restore", "--auto-approve", "--access", access]);
        assert!(kept.stdout().contains("left alone"), "{kept}");
        let refused = ws.run(&[
            "restore",
            "--auto-approve",
            "--target",
            "bind.config",
            "--access",
            access,
        ]);
        assert_eq!(refused.code(), 1, "{refused}");
        assert!(refused.stdout().contains("--replace"), "{refused}");
        ws.ok(&["restore", "--auto-approve", "--replace", "--access", access]);
        assert!(!root.join("added-later.txt").exists());
        support::compare_trees(original.path(), &root)
            .unwrap_or_else(|diff| panic!("{access}: replaced directory differs:\n{diff}"));
        assert!(support::helpers_of(&format!("bind:{}", root.display())).is_empty());
    }
}

#[test]
fn a_missing_bind_directory_is_a_problem_with_its_location() {
    let dir = host_dir("missing");
    let ws = bind_workspace(&dir.path().join("not-there"));
    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    assert!(plan.stdout().contains("! bind.config"), "{plan}");
    assert!(plan.stdout().contains("does not exist"), "{plan}");
    assert!(plan.stdout().contains("main.hcl:"), "{plan}");
}

#[test]
fn replacing_a_volume_backed_by_a_host_directory_leaves_only_the_snapshot() {
    let dir = host_dir("device");
    let device = dir.path().join("data");
    std::fs::create_dir(&device).unwrap();
    support::fill_tricky(&device);
    let original = support::keep_copy(&device);
    let name = format!("lifeboat-test-device-{}", std::process::id());
    let created = std::process::Command::new("docker")
        .args(["volume", "create", "--driver", "local"])
        .args(["--opt", "type=none", "--opt", "o=bind", "--opt"])
        .arg(format!("device={}", device.display()))
        .arg(&name)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let ws = Workspace::with_volumes(&[("data", &name)]);
    for access in ["api", "direct"] {
        ws.ok(&[
            "apply",
            "--auto-approve",
            "--replace",
            "volume.data",
            "--access",
            access,
        ]);
        std::fs::write(device.join("not-in-the-snapshot"), b"x").unwrap();
        ws.ok(&["restore", "--auto-approve", "--replace", "--access", access]);
        assert!(
            !device.join("not-in-the-snapshot").exists(),
            "{access}: the replace left a file that is not in the snapshot"
        );
        support::compare_trees(original.path(), &device)
            .unwrap_or_else(|diff| panic!("{access}: replaced volume differs:\n{diff}"));
    }
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", &name])
        .output();
}
