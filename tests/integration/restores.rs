//! Restores that cannot destroy what they protect: an unreadable snapshot
//! is refused before the target is touched, an interrupted or failed
//! restore is restored again (and is no backup source meanwhile), a
//! damaged newest snapshot is said rather than silently skipped, a volume
//! in use is replaced with its containers stopped and started again, and
//! a restore with nothing to do says so and records nothing.

use crate::harness::{Workspace, snapshot_ids};
use crate::support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `count` files of `size` bytes of incompressible data under `root`.
fn fill_random(root: &Path, count: u64, size: usize, seed: u64) {
    for file in 0..count {
        let data = support::random_bytes(size, seed * 1000 + file);
        std::fs::write(root.join(format!("f{file:03}.bin")), data).unwrap();
    }
}

/// Every pack file of the workspace's repository.
fn packs(ws: &Workspace) -> Vec<PathBuf> {
    walkdir::WalkDir::new(ws.repository().join("data"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn largest(files: &[PathBuf]) -> PathBuf {
    files
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone()
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn replace_refuses_an_unreadable_snapshot_before_touching_the_volume() {
    let volume = support::TestVolume::create("unreadable");
    fill_random(&volume.mountpoint(), 6, 2_000_000, 1);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    std::fs::write(volume.mountpoint().join("written-since.txt"), b"keep me").unwrap();
    let live = support::keep_copy(&volume.mountpoint());
    let lost = largest(&packs(&ws));
    std::fs::remove_file(&lost).unwrap();

    let refused = ws.run(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.data",
    ]);
    assert_eq!(refused.code(), 1, "{refused}");
    let said = format!("{}{}", refused.stdout(), refused.stderr());
    assert!(said.contains("cannot be restored"), "{refused}");
    assert!(said.contains("check --read-data"), "{refused}");
    assert!(said.contains("--snapshot"), "{refused}");
    assert!(said.contains("Nothing was changed"), "{refused}");
    // The live content is as it was, and no safety snapshot was needed.
    support::compare_trees(live.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("the volume was touched:\n{diff}"));
    assert_eq!(snapshot_ids(&ws).len(), 1);
    // Nothing was begun, so nothing is marked incomplete.
    let plan = ws.ok(&["plan"]);
    assert!(!plan.stdout().contains("partial restore"), "{plan}");
}

/// Starts `args`, waits until `target` holds at least `bytes`, then sends
/// `signal`; returns the process's stderr. Panics when the restore ends first.
fn interrupt_restore(
    ws: &Workspace,
    args: &[&str],
    target: &Path,
    bytes: u64,
    signal: &str,
) -> String {
    let mut child = ws
        .process(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while support::dir_size(target) < bytes {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended before it was interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_interrupted_restore_is_restored_again_and_is_no_backup_source_meanwhile() {
    let volume = support::TestVolume::create("interrupted");
    // About 100 MB of incompressible data: a restore of it takes seconds
    // (tens of them on a busy machine), time enough to interrupt it twice.
    fill_random(&volume.mountpoint(), 10, 10_000_000, 2);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let target = support::TestVolume::create("interrupted-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    let total = support::dir_size(&volume.mountpoint());
    let restore = ["restore", "--auto-approve", "--access", "direct"];

    // SIGTERM: the message says what is left incomplete.
    let stderr = interrupt_restore(
        &restore_ws,
        &restore,
        &target.mountpoint(),
        total / 4,
        "-TERM",
    );
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
    assert!(stderr.contains("volume.data"), "{stderr}");
    assert!(support::dir_size(&target.mountpoint()) < total);
    // A backup would store a torn copy: refused, saying what to do.
    let plan = restore_ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    assert!(plan.stdout().contains("partial restore"), "{plan}");
    assert!(
        plan.stdout()
            .contains("lifeboat restore --target volume.data"),
        "{plan}"
    );

    // SIGKILL half way: nothing runs on the way out, the journal tells.
    interrupt_restore(
        &restore_ws,
        &restore,
        &target.mountpoint(),
        total / 2,
        "-KILL",
    );
    let planned = restore_ws.run(&["restore"]);
    assert!(planned.stdout().contains("is incomplete"), "{planned}");
    assert!(planned.stdout().contains("Plan: 1 to restore"), "{planned}");
    // Restored again without --replace, and with no safety snapshot of
    // the partial content.
    let done = restore_ws.ok(&restore);
    assert!(
        done.stdout().contains("Restore complete! 1 restored"),
        "{done}"
    );
    assert!(!done.stdout().contains("tag pre-restore"), "{done}");
    support::compare_trees(&volume.mountpoint(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("the restore after the kill differs:\n{diff}"));
    assert_eq!(
        snapshot_ids(&ws).len(),
        1,
        "no snapshot of a partial restore"
    );
    // Complete now: left alone, and backed up again.
    let again = restore_ws.ok(&["restore", "--auto-approve"]);
    assert!(again.stdout().contains("left alone"), "{again}");
    restore_ws.ok(&["plan"]);
}

#[test]
fn a_restore_stopped_by_a_corrupt_blob_is_restored_again_once_repaired() {
    let volume = support::TestVolume::create("corrupt-blob");
    fill_random(&volume.mountpoint(), 4, 6_000_000, 3);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let target = support::TestVolume::create("corrupt-blob-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    // One byte in the middle of the largest pack: one content blob of a
    // file the restore reaches after writing others.
    let pack = largest(&packs(&ws));
    let original = std::fs::read(&pack).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 2] ^= 0xff;
    std::fs::write(&pack, &damaged).unwrap();

    let failed = restore_ws.run(&["restore", "--auto-approve"]);
    assert_eq!(failed.code(), 1, "{failed}");
    let planned = restore_ws.run(&["restore"]);
    assert!(planned.stdout().contains("is incomplete"), "{planned}");

    // The pack put back from a good copy; the read that met the damage
    // took the blob out of the index, and `repair` (which reads the packs
    // damage was recorded in) finds it sound and takes it back.
    std::fs::write(&pack, &original).unwrap();
    restore_ws.ok(&["repair"]);
    let done = restore_ws.ok(&["restore", "--auto-approve"]);
    assert!(
        done.stdout().contains("Restore complete! 1 restored"),
        "{done}"
    );
    support::compare_trees(&volume.mountpoint(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("the restore after the repair differs:\n{diff}"));
}

#[test]
fn a_damaged_newest_snapshot_is_said_and_the_older_one_needs_snapshot() {
    let volume = support::TestVolume::create("damaged-newest");
    std::fs::write(volume.mountpoint().join("a"), b"first").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let older = snapshot_ids(&ws)[0].clone();
    std::fs::write(volume.mountpoint().join("a"), b"second").unwrap();
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    // A plan here remembers what each snapshot is of (the catalog).
    ws.ok(&["plan"]);
    let newest = snapshot_ids(&ws)
        .into_iter()
        .find(|id| *id != older)
        .unwrap();
    let file = ws.repository().join("snapshots").join(&newest);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    // Where lifeboat saw the snapshot before, it says which one it was.
    let remembered = ws.run(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.data",
    ]);
    assert_eq!(remembered.code(), 1, "{remembered}");
    assert!(
        remembered
            .stdout()
            .contains(&format!("the newest snapshot {} (", &newest[..8])),
        "{remembered}"
    );
    assert!(
        remembered.stdout().contains(&format!(
            "--snapshot {} to restore the older one",
            &older[..8]
        )),
        "{remembered}"
    );
    assert_eq!(
        std::fs::read(volume.mountpoint().join("a")).unwrap(),
        b"second"
    );

    // On a new host nothing remembers it: it may be anything's newest.
    let target = support::TestVolume::create("damaged-newest-target");
    docker(&["volume", "rm", target.name()]);
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    let refused = restore_ws.run(&["restore", "--auto-approve"]);
    assert_eq!(refused.code(), 1, "{refused}");
    let out = refused.stdout();
    assert!(out.contains("! volume.data"), "{refused}");
    assert!(
        out.contains(&format!("snapshot {}", &newest[..8])),
        "{refused}"
    );
    assert!(out.contains("is damaged"), "{refused}");
    assert!(
        out.contains(&format!("--snapshot {}", &older[..8])),
        "{refused}"
    );
    let missing = Command::new("docker")
        .args(["volume", "inspect", target.name()])
        .output()
        .unwrap();
    assert!(!missing.status.success(), "nothing was created");

    restore_ws.ok(&["restore", "--auto-approve", "--snapshot", &older[..8]]);
    assert_eq!(
        std::fs::read(target.mountpoint().join("a")).unwrap(),
        b"first"
    );
}

#[test]
fn replacing_a_volume_in_use_stops_its_container_and_starts_it_again() {
    let volume = support::TestVolume::create("in-use");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let container = format!("lifeboat-test-in-use-{}", std::process::id());
    let _remove = support::RemoveContainer(container.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "-v",
        &format!("{}:/data", volume.name()),
        "lifeboat-test/busybox:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    std::fs::write(volume.mountpoint().join("added-after-backup.txt"), b"new").unwrap();
    let started_at = docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]);

    let replaced = ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.data",
    ]);
    let out = replaced.stdout();
    assert!(
        out.contains(&format!("stops container {container}")),
        "{replaced}"
    );
    assert!(out.contains("Restore complete! 1 restored"), "{replaced}");
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("replaced tree differs:\n{diff}"));
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &container]),
        "true"
    );
    assert_ne!(
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]),
        started_at,
        "it was stopped and started again"
    );
    // The replaced content is kept in a safety snapshot, not lost.
    assert!(ws.ok(&["snapshots"]).stdout().contains("pre-restore"));
}

#[test]
fn a_restore_with_nothing_to_do_says_no_changes_and_records_nothing() {
    let volume = support::TestVolume::create("no-op");
    std::fs::write(volume.mountpoint().join("a"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let spec = ws.path().join("main.hcl");
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(
        "\nimage \"box\" {\n  ref    = \"lifeboat-test/busybox:1\"\n  policy = policy.default\n}\n",
    );
    std::fs::write(&spec, text).unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    let records = || {
        let mut names: Vec<_> = std::fs::read_dir(ws.repository().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = records();

    let nothing = ws.ok(&["restore", "--auto-approve"]);
    let out = nothing.stdout();
    assert!(out.contains("No changes"), "{nothing}");
    assert!(
        out.contains("Plan: 0 to restore, 2 left alone"),
        "{nothing}"
    );
    assert!(!out.contains("restored"), "{nothing}");
    assert_eq!(
        records(),
        before,
        "a restore that did nothing records nothing"
    );
}

#[test]
fn replacing_a_bind_stops_its_services_dependents_first_and_starts_them_again() {
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-bind-in-use-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path().join("conf");
    std::fs::create_dir(&root).unwrap();
    support::fill_tricky(&root);
    let original = support::keep_copy(&root);
    let pid = std::process::id();
    let (app, web) = (
        format!("lifeboat-test-bind-app-{pid}"),
        format!("lifeboat-test-bind-web-{pid}"),
    );
    let _remove = [
        support::RemoveContainer(app.clone()),
        support::RemoveContainer(web.clone()),
    ];
    for (name, mount) in [(&app, Some(&root)), (&web, None)] {
        let mut args = vec!["run", "-d", "--name", name];
        let volume = mount.map(|m| format!("{}:/conf", m.display()));
        if let Some(volume) = &volume {
            args.extend(["-v", volume]);
        }
        args.extend([
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ]);
        docker(&args);
    }
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nbind \"config\" {{\n  path   = \"{}\"\n  policy = policy.default\n}}\n\
             service \"app\" {{\n  container = \"{app}\"\n  binds     = [bind.config]\n}}\n\
             service \"web\" {{\n  container  = \"{web}\"\n  depends_on = [service.app]\n}}\n",
            root.display()
        ),
    )
    .unwrap();
    ws.ok(&["apply", "--auto-approve", "--target", "bind.config"]);
    std::fs::write(root.join("added-after-backup.txt"), b"new").unwrap();

    let replaced = ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "bind.config",
    ]);
    let out = replaced.stdout();
    assert!(
        out.contains(&format!("stops containers {web}, {app} (in this order)")),
        "{replaced}"
    );
    assert!(
        out.find(&format!("started container {app} again")).unwrap()
            < out.find(&format!("started container {web} again")).unwrap(),
        "{replaced}"
    );
    support::compare_trees(original.path(), &root)
        .unwrap_or_else(|diff| panic!("replaced tree differs:\n{diff}"));
    for container in [&app, &web] {
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Running}}", container]),
            "true"
        );
    }
}
