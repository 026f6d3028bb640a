//! `restore --path`: part of a volume's snapshot restored in place (after
//! a safety snapshot of what it overwrites, nothing outside the path
//! changed) or into a host directory with its metadata.

use crate::harness::{Run, Workspace, assert_valid, schema, snapshots};
use crate::support;
use std::path::Path;

fn write(root: &Path, path: &str, content: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

fn under_config(path: &[u8]) -> bool {
    path == b"config" || path.starts_with(b"config/")
}

/// A volume with several directories (and the tricky entries of
/// [`support::fill_tricky`] outside `config/`), backed up once.
fn backed_up(test: &str) -> (support::TestVolume, Workspace, tempfile::TempDir) {
    let volume = support::TestVolume::create(test);
    let root = volume.mountpoint();
    write(&root, "config/app.conf", b"port = 80\n");
    write(&root, "config/same.conf", b"same\n");
    write(&root, "config/sub/deep.conf", b"deep\n");
    write(&root, "data/db", &support::random_bytes(200_000, 7));
    write(&root, "logs/a.log", b"started\n");
    write(&root, "top.txt", b"top\n");
    support::fill_tricky(&root.join("tricky"));
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let original = support::keep_copy(&root);
    (volume, ws, original)
}

/// Changes inside and outside `config/`.
fn change_files(root: &Path) {
    write(root, "config/app.conf", b"port = 8080 # edited badly\n");
    std::fs::remove_file(root.join("config/sub/deep.conf")).unwrap();
    write(root, "config/local.conf", b"mine\n");
    write(root, "data/db", &support::random_bytes(200_000, 8));
    write(root, "logs/b.log", b"new\n");
    write(root, "top.txt", b"top, changed\n");
}

#[test]
fn a_path_restored_in_place_changes_nothing_outside_it_and_keeps_what_it_overwrote() {
    in_place("partial-direct", "direct");
}

#[test]
fn a_path_restored_in_place_through_the_archive_api_changes_nothing_outside_it() {
    in_place("partial-api", "api");
}

/// Restores `config/` in place with `--access access`, and checks every
/// entry outside it, and the safety snapshot.
fn in_place(test: &str, access: &str) {
    let (volume, ws, _original) = backed_up(test);
    let root = volume.mountpoint();
    change_files(&root);
    let before = support::keep_copy(&root);

    let restore = ws.ok(&[
        "restore",
        "--target",
        "volume.data",
        "--path",
        "config/",
        "--access",
        access,
        "--auto-approve",
    ]);
    let text = restore.stdout();
    assert!(text.contains("restore only config of"), "{restore}");
    assert!(text.contains("+ config/sub/deep.conf"), "{restore}");
    assert!(text.contains("~ config/app.conf"), "{restore}");
    assert!(!text.contains("same.conf"), "{restore}");
    assert!(text.contains("left alone (config/local.conf)"), "{restore}");
    assert!(text.contains("safety snapshot"), "{restore}");

    // Under the path: as in the snapshot, what it lacks left alone.
    assert_eq!(read(&root, "config/app.conf"), "port = 80\n");
    assert_eq!(read(&root, "config/sub/deep.conf"), "deep\n");
    assert_eq!(read(&root, "config/same.conf"), "same\n");
    assert_eq!(read(&root, "config/local.conf"), "mine\n");
    // Outside: every entry exactly as changed (kind, mode, owner, time,
    // content hash, link target), the root's own time included.
    support::compare_trees_where(before.path(), &root, |p| !under_config(p))
        .unwrap_or_else(|d| panic!("outside config/ changed:\n{d}"));

    // The safety snapshot holds exactly what was overwritten.
    let safety = snapshots(&ws)
        .into_iter()
        .find(|s| s["tags"].to_string().contains("pre-restore"))
        .expect("a safety snapshot");
    let id = safety["short_id"].as_str().unwrap();
    let output = format!("{}{}", restore.stdout(), restore.stderr());
    assert!(output.contains(id), "the output names {id}:\n{restore}");
    let listed = ws.ok(&["ls", "--recursive", id]);
    let stdout = listed.stdout();
    let files: Vec<&str> = stdout.lines().filter(|l| !l.ends_with('/')).collect();
    assert_eq!(files, ["config/app.conf"], "{listed}");
    let kept = ws.ok(&["dump", id, "config/app.conf"]);
    assert_eq!(kept.stdout(), "port = 8080 # edited badly\n");

    // Restored again: nothing differs under the path any more.
    let again = ws.ok(&[
        "restore",
        "--target",
        "volume.data",
        "--path",
        "config",
        "--access",
        access,
        "--auto-approve",
    ]);
    assert!(
        again.stdout().contains("0 created, 0 overwritten"),
        "{again}"
    );
}

#[test]
fn a_path_is_written_into_a_new_directory_with_its_metadata_and_never_over_one() {
    let (volume, ws, original) = backed_up("partial-into");
    change_files(&volume.mountpoint());
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("recovered");
    let into_text = into.to_str().unwrap();
    let args = [
        "restore",
        "--target",
        "volume.data",
        "--path",
        "config/sub",
        "--path",
        "tricky",
        "--into",
        into_text,
        "--auto-approve",
    ];
    let restore = ws.ok(&args);
    assert!(restore.stdout().contains(into_text), "{restore}");
    let wanted = |p: &[u8]| {
        p.is_empty() || p == b"config" || p.starts_with(b"config/sub") || p.starts_with(b"tricky")
    };
    support::compare_trees_where(original.path(), &into, wanted)
        .unwrap_or_else(|d| panic!("the part differs from the snapshot:\n{d}"));
    assert!(!into.join("data").exists() && !into.join("config/app.conf").exists());
    // The live volume is not touched.
    assert_eq!(
        read(&volume.mountpoint(), "config/app.conf"),
        "port = 8080 # edited badly\n"
    );

    let again = ws.run(&args);
    assert_eq!(again.code(), 1, "{again}");
    assert!(again.stderr().contains("is not empty"), "{again}");
}

#[test]
fn a_path_is_written_into_a_directory_with_the_engine_unreachable() {
    let (volume, ws, _original) = backed_up("partial-into-no-engine");
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("recovered");
    // Only the repository is read: no engine answers at this address.
    let restore = Run(ws
        .command(&[
            "restore",
            "--target",
            "volume.data",
            "--path",
            "config/app.conf",
            "--into",
            into.to_str().unwrap(),
            "--auto-approve",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap());
    assert_eq!(restore.code(), 0, "{restore}");
    assert!(!restore.stderr().contains("Docker engine"), "{restore}");
    assert_eq!(read(&into, "config/app.conf"), "port = 80\n");
    let written: Vec<_> = walkdir::WalkDir::new(&into)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(&into).unwrap().to_path_buf())
        .collect();
    assert_eq!(written.len(), 2, "{written:?}");
    drop(volume);
}

#[test]
fn the_plan_lists_everything_in_json_and_bad_requests_are_refused() {
    let (volume, ws, _original) = backed_up("partial-refused");
    change_files(&volume.mountpoint());
    let planned = ws.ok(&[
        "restore",
        "--target",
        "volume.data",
        "--path",
        "config",
        "--json",
        "--auto-approve",
    ]);
    let lines: Vec<serde_json::Value> = planned
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events = schema("events.schema.json");
    for line in &lines {
        assert_valid(&events, line);
    }
    let partial = &lines[0]["plan"]["changes"][0]["partial"];
    // Directories count too: `config` and `config/sub` changed times.
    let overwrite = partial["overwrite"].as_array().unwrap();
    assert!(overwrite.contains(&"config/app.conf".into()), "{partial:#}");
    assert!(
        !overwrite.contains(&"config/same.conf".into()),
        "{partial:#}"
    );
    assert_eq!(partial["kept"], serde_json::json!(["config/local.conf"]));
    assert_valid(&schema("plan.schema.json"), &lines[0]["plan"]);

    for (args, says) in [
        (vec!["--path", "../etc"], "`..` is not allowed"),
        (vec!["--path", "/etc"], "not an absolute one"),
        (vec!["--path", "nope/"], "lifeboat ls"),
        (vec!["--path", "config", "--replace"], "cannot be used with"),
    ] {
        let mut all = vec!["restore", "--target", "volume.data", "--auto-approve"];
        all.extend(args);
        let refused = ws.run(&all);
        assert_eq!(refused.code(), 1, "{refused}");
        assert!(refused.stderr().contains(says), "{all:?}: {refused}");
    }
    let whole = ws.run(&["restore", "--path", "config", "--auto-approve"]);
    assert!(whole.stderr().contains("exactly one --target"), "{whole}");
    // Nothing was written by the refused requests.
    assert_eq!(read(&volume.mountpoint(), "config/local.conf"), "mine\n");
}

/// A volume whose `data/db` (96 MiB) is backed up, then changed with
/// `top.txt`; returns the snapshot's short id and the two contents of `data/db`.
fn backed_up_big(volume: &support::TestVolume, ws: &Workspace) -> (String, Vec<u8>, Vec<u8>) {
    let root = volume.mountpoint();
    let original = support::random_bytes(96 << 20, 11);
    write(&root, "data/db", &original);
    write(&root, "top.txt", b"top\n");
    ws.ok(&["apply", "--auto-approve"]);
    let first = snapshots(ws)[0]["short_id"].as_str().unwrap().to_string();
    let changed = support::random_bytes(96 << 20, 12);
    write(&root, "data/db", &changed);
    write(&root, "top.txt", b"top, changed\n");
    (first, original, changed)
}

/// Starts `restore --path data` in place, and returns once it writes
/// `data/db` again (from its start: the length is set at the end).
fn restoring_data(ws: &Workspace, root: &Path, full: usize) -> std::process::Child {
    let mut child = ws
        .process(&[
            "restore",
            "--target",
            "volume.data",
            "--path",
            "data",
            "--auto-approve",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore finished before the signal"
        );
        let replaced = std::fs::metadata(root.join("data/db")).is_ok_and(|m| m.len() < full as u64);
        if replaced {
            return child;
        }
        assert!(started.elapsed().as_secs() < 300, "never replaced");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Killed (SIGKILL) while a `restore --path` writes a big file in place:
/// the overwritten file is in the safety snapshot, the journal knows the
/// path is torn (the backup plan refuses to store it and names the
/// restore to run again, a whole restore does not empty the rest of the
/// volume for it), and that restore finishes it.
#[test]
fn a_path_restore_killed_while_writing_is_known_torn_until_it_is_run_again() {
    let volume = support::TestVolume::create("partial-killed");
    let root = volume.mountpoint();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let (first, original, changed) = backed_up_big(&volume, &ws);
    let mut child = restoring_data(&ws, &root, changed.len());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(std::fs::read(root.join("data/db")).unwrap(), original);

    // What was overwritten is in the safety snapshot.
    let safety = snapshots(&ws)
        .into_iter()
        .find(|s| s["tags"].to_string().contains("pre-restore"))
        .expect("a safety snapshot");
    let kept = ws.ok(&["dump", safety["short_id"].as_str().unwrap(), "data/db"]);
    assert!(kept.0.stdout == changed, "the safety snapshot lost data/db");

    // The next plan says the truth, and no backup stores the torn file.
    let again = format!("lifeboat restore --target volume.data --snapshot {first} --path data`");
    let plan = ws.run(&["plan"]);
    assert!(plan.to_string().contains(&again), "{plan}");
    let apply = ws.run(&["apply", "--auto-approve"]);
    assert_ne!(apply.code(), 0, "{apply}");
    assert!(apply.to_string().contains("torn copy"), "{apply}");
    // A whole restore does not replace the rest of the volume for it.
    ws.run(&["restore", "--target", "volume.data", "--auto-approve"]);
    assert_eq!(read(&root, "top.txt"), "top, changed\n");

    // The restore named finishes the path and clears the record.
    ws.ok(&[
        "restore",
        "--target",
        "volume.data",
        "--snapshot",
        &first,
        "--path",
        "data",
        "--auto-approve",
    ]);
    assert!(std::fs::read(root.join("data/db")).unwrap() == original);
    assert_eq!(read(&root, "top.txt"), "top, changed\n");
    let plan = ws.ok(&["plan"]);
    assert!(!plan.to_string().contains("torn copy"), "{plan}");
}

/// SIGTERM while a `restore --path` writes in place a volume a running
/// container uses: the container (stopped for the write) runs again, and
/// the message names the paths left torn and where to look.
#[test]
fn a_path_restore_ended_by_sigterm_starts_the_container_again_and_names_the_torn_paths() {
    let volume = support::TestVolume::create("partial-term");
    let root = volume.mountpoint();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let (first, _original, changed) = backed_up_big(&volume, &ws);
    let container = format!("lifeboat-test-partial-term-{}", std::process::id());
    let _cleanup = support::RemoveContainer(container.clone());
    let mount = format!("{}:/data", volume.name());
    let script = "trap 'exit 0' TERM; sleep 3600 & wait";
    let args = [
        "run",
        "-d",
        "--name",
        &container,
        "-v",
        &mount,
        "lifeboat-test/busybox:1",
    ];
    let started = std::process::Command::new("docker")
        .args(args)
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");

    let child = restoring_data(&ws, &root, changed.len());
    let running = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(running(&container), "false", "stopped for the write");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let ended = crate::harness::Run(child.wait_with_output().unwrap());
    assert_ne!(ended.code(), 0, "{ended}");
    let said = ended
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains("Left INCOMPLETE (a partial restore): volume.data (paths data); `lifeboat plan` names the restore that finishes it"),
        "{ended}"
    );
    assert_eq!(running(&container), "true", "started again");
    let plan = ws.run(&["plan"]);
    let again = format!("lifeboat restore --target volume.data --snapshot {first} --path data`");
    assert!(plan.to_string().contains(&again), "{plan}");
}

/// A symlink planted in the live volume where the snapshot has a
/// directory (`config -> a host directory`): the plan does not read the
/// host's files through it (it lists the path as missing, not as
/// different), and the write refuses to follow it; the host's directory
/// is untouched.
#[test]
fn a_symlink_planted_above_the_path_is_never_followed_to_the_host() {
    let (volume, ws, _original) = backed_up("partial-planted");
    let root = volume.mountpoint();
    let host = tempfile::tempdir().unwrap();
    write(host.path(), "app.conf", b"host file\n");
    std::fs::remove_dir_all(root.join("config")).unwrap();
    std::os::unix::fs::symlink(host.path(), root.join("config")).unwrap();

    let restore = ws.run(&[
        "restore",
        "--target",
        "volume.data",
        "--path",
        "config/app.conf",
        "--auto-approve",
    ]);
    assert_eq!(restore.code(), 1, "{restore}");
    let text = restore.stdout();
    assert!(text.contains("+ config/app.conf"), "{restore}");
    assert!(!text.contains("~ config/app.conf"), "{restore}");
    assert!(text.contains("✗ volume.data"), "{restore}");
    assert!(
        text.contains("_data/config: "),
        "the error names the link: {restore}"
    );
    assert_eq!(read(host.path(), "app.conf"), "host file\n");
    assert_eq!(
        crate::harness::files_in(host.path()).len(),
        1,
        "nothing written to the host"
    );
}
