//! The volumes slice end to end on the real Docker engine: plan, apply,
//! snapshots, lose the volume, restore it exactly.

use crate::harness::Workspace;
use crate::support;

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs (tests only; lifeboat itself uses the API)")
}

#[test]
fn volume_survives_backup_rm_and_restore_exactly() {
    let volume = support::TestVolume::create("roundtrip");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);

    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("+ volume.data"), "{plan}");
    assert!(plan.stdout().contains("never backed up"), "{plan}");
    assert!(
        plan.stdout().contains("Plan: 1 to back up, 0 unchanged."),
        "{plan}"
    );
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 2);

    let refused = ws.run(&["apply"]);
    assert_eq!(
        refused.code(),
        1,
        "apply without a terminal must refuse: {refused}"
    );
    assert!(refused.stderr().contains("--auto-approve"), "{refused}");

    let apply = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        apply.stdout().contains("Apply complete! 1 backed up"),
        "{apply}"
    );

    let plan = ws.ok(&["plan", "--detailed-exitcode"]);
    assert!(plan.stdout().contains("= volume.data"), "{plan}");
    assert!(
        plan.stdout().contains("Plan: 0 to back up, 1 unchanged."),
        "{plan}"
    );

    let listed = ws.ok(&["snapshots", "--json"]);
    let snapshots: serde_json::Value = serde_json::from_str(&listed.stdout()).unwrap();
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["resource"], "volume.data");
    assert!(snapshots[0]["files"].as_u64().unwrap() > 5);

    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    let restore = ws.ok(&["restore", "--auto-approve"]);
    assert!(restore.stdout().contains("< volume.data"), "{restore}");
    assert!(
        restore.stdout().contains("create Docker volume"),
        "{restore}"
    );
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
}

#[test]
fn second_backup_of_unchanged_volume_adds_almost_nothing() {
    let volume = support::TestVolume::create("dedup");
    support::fill_tricky(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let before = support::dir_size(&ws.repository());
    let again = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert!(again.stdout().contains("replacement requested"), "{again}");
    let added = support::dir_size(&ws.repository()) - before;
    assert!(added < 64 * 1024, "second backup added {added} bytes");
}

/// The file cache is written while the first backup walks (in encrypted
/// pieces to a temporary file, put in place after the snapshot), and the
/// next backup takes every unchanged file from it: nothing is read again,
/// and no temporary file is left behind.
#[test]
fn a_rerun_reads_no_unchanged_file_through_the_cache_the_first_backup_wrote() {
    let volume = support::TestVolume::create("filecache");
    let root = volume.mountpoint();
    for n in 0..2000 {
        let dir = root.join(format!("d{}", n % 20));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{n}")), format!("file {n}\n")).unwrap();
    }
    // Files changed within two seconds of a backup are not cached.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let first = ws.ok(&["apply", "--auto-approve"]);
    assert!(first.stdout().contains("2000 files; "), "{first}");
    let cache_files: Vec<String> = walkdir::WalkDir::new(ws.path().join(".cache"))
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cache_files.len(), 1, "{cache_files:?}");
    assert!(!cache_files[0].contains("tmp"), "{cache_files:?}");
    let again = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert!(again.stdout().contains("; 0 B read, "), "{again}");
}

/// The previous cache is read as a stream beside the walk (both in walk
/// order): files added and removed between the runs, at places where
/// byte order and walk order differ (`d1-x/` and `d1.y` sort before
/// `d1/` by bytes, after it in the walk), cost only the new and changed
/// files' bytes.
#[test]
fn a_rerun_reads_only_added_and_changed_files_around_removed_ones() {
    let volume = support::TestVolume::create("cachemerge");
    let root = volume.mountpoint();
    for n in 0..300 {
        let dir = root.join(format!("d{}", n % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{n:03}")), format!("file {n}\n")).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    std::fs::create_dir(root.join("d1-x")).unwrap();
    std::fs::write(root.join("d1-x/new"), "new\n").unwrap();
    std::fs::write(root.join("d1.y"), "more\n").unwrap();
    std::fs::write(root.join("d1/f000a"), "added\n").unwrap();
    std::fs::write(root.join("d2/f005"), "changed 5\n").unwrap();
    for gone in ["d0/f000", "d1/f001", "d1/f298", "d2/f299"] {
        std::fs::remove_file(root.join(gone)).unwrap();
    }
    let again = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    // 4 + 5 + 6 + 10 bytes: the three new files and the changed one.
    assert!(again.stdout().contains("; 25 B read, "), "{again}");
}

#[test]
fn restore_refuses_non_empty_volume_unless_replace_and_replace_makes_it_equal() {
    let volume = support::TestVolume::create("replace");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);

    std::fs::write(volume.mountpoint().join("added-after-backup.txt"), b"new").unwrap();
    // Restoring the whole spec keeps what survived and says so.
    let kept = ws.ok(&["restore", "--auto-approve"]);
    assert!(kept.stdout().contains("left alone"), "{kept}");
    assert!(volume.mountpoint().join("added-after-backup.txt").exists());
    // Named as a target, a volume with data is refused without --replace.
    let refused = ws.run(&["restore", "--auto-approve", "--target", "volume.data"]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stdout().contains("--replace"), "{refused}");
    assert!(
        refused.stderr().contains("nothing can be restored"),
        "{refused}"
    );
    assert!(
        volume.mountpoint().join("added-after-backup.txt").exists(),
        "nothing touched"
    );

    let replaced = ws.ok(&["restore", "--auto-approve", "--replace"]);
    assert!(replaced.stdout().contains("safety snapshot"), "{replaced}");
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("replaced tree differs:\n{diff}"));
    // The replaced content is kept in a tagged snapshot, not lost.
    let listed = ws.ok(&["snapshots"]);
    assert!(listed.stdout().contains("pre-restore"), "{listed}");
}

#[test]
fn restore_by_snapshot_id_into_empty_volume() {
    let volume = support::TestVolume::create("byid");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let id = listed[0]["short_id"].as_str().unwrap().to_string();

    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    assert!(
        docker(&["volume", "create", volume.name()])
            .status
            .success()
    );
    let restored = ws.ok(&[
        "restore",
        "--auto-approve",
        "--snapshot",
        &id,
        "--target",
        "volume.data",
    ]);
    assert!(
        restored.stdout().contains("into empty Docker volume"),
        "{restored}"
    );
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
}

#[test]
fn missing_volume_wrong_passphrase_and_foreign_repository_are_clear_errors() {
    let ws = Workspace::with_volumes(&[("data", "lifeboat-test-does-not-exist")]);
    let missing = ws.run(&["plan"]);
    assert_eq!(missing.code(), 1, "{missing}");
    assert!(
        missing.stdout().contains("lifeboat-test-does-not-exist"),
        "{missing}"
    );
    assert!(missing.stdout().contains("main.hcl:"), "{missing}");
    assert!(missing.stderr().contains("cannot be acted on"), "{missing}");

    let volume = support::TestVolume::create("errors");
    std::fs::write(volume.mountpoint().join("a"), b"a").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let wrong = ws
        .command(&["snapshots"])
        .env("LIFEBOAT_TEST_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let text = String::from_utf8_lossy(&wrong.stderr);
    assert!(text.to_lowercase().contains("passphrase"), "{text}");
    assert!(
        !text.contains("not the passphrase"),
        "secrets are never printed: {text}"
    );

    let foreign = Workspace::with_volumes(&[("data", volume.name())]);
    std::fs::create_dir_all(foreign.repository()).unwrap();
    std::fs::write(foreign.repository().join("precious.txt"), b"someone's data").unwrap();
    let refused = foreign.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(
        refused.stderr().contains("not a lifeboat repository"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(foreign.repository().join("precious.txt")).unwrap(),
        b"someone's data"
    );
}

#[test]
fn direct_access_gives_the_same_snapshot_content_as_the_api() {
    let volume = support::TestVolume::create("direct");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    // Same content read the other way stores nothing new: identical trees and chunks.
    crate::harness::assert_direct_backup_adds_nothing(&ws, "volume.data");

    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    ws.ok(&["restore", "--auto-approve", "--access", "direct"]);
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("direct restore differs:\n{diff}"));
}

/// A volume in use: a busybox container appends to files, removes and
/// writes others, and remakes a directory, in a loop.
fn busy_writer(name: &str, volume: &str) -> support::RemoveContainer {
    let script = "i=0; while true; do \
                  i=$(( (i + 1) % 200 )); \
                  echo appended >> /data/log$i; \
                  rm -f /data/gone$i; echo new > /data/gone$i; \
                  if [ $i -eq 0 ]; then rm -rf /data/dir; mkdir /data/dir; \
                  for j in 1 2 3 4 5 6 7 8; do echo in > /data/dir/f$j; done; fi; \
                  done";
    let _ = docker(&["rm", "-f", name]);
    let started = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "-v",
        &format!("{volume}:/data"),
        "lifeboat-test/busybox:1",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    support::RemoveContainer(name.to_string())
}

#[test]
fn a_direct_backup_of_a_busy_volume_succeeds_and_notes_what_changed() {
    let volume = support::TestVolume::create("busy");
    let root = volume.mountpoint();
    for i in 0..200 {
        std::fs::write(root.join(format!("log{i}")), vec![b'x'; 20_000]).unwrap();
        std::fs::write(root.join(format!("gone{i}")), b"first").unwrap();
    }
    let writer = busy_writer(
        &format!("lifeboat-volumes-busy-{}", std::process::id()),
        volume.name(),
    );
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let mut ids = Vec::new();
    let mut notes = String::new();
    for _ in 0..5 {
        let applied = ws.ok(&[
            "apply",
            "--auto-approve",
            "--access",
            "direct",
            "--replace",
            "volume.data",
        ]);
        assert!(applied.stdout().contains("1 backed up"), "{applied}");
        notes.push_str(&applied.stdout());
    }
    drop(writer);
    assert!(
        notes.contains("volume.data: note: ")
            && (notes.contains("removed while the backup read the tree")
                || notes.contains("changed while the backup read them")),
        "the copies say what moved under them:\n{notes}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    for snapshot in listed.as_array().unwrap() {
        ids.push(snapshot["short_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 5, "{listed}");
    ws.ok(&["check", "--read-data"]);
    // Each snapshot restores, into a volume of its own.
    let target = support::TestVolume::create("busy-restored");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    for id in &ids {
        assert!(docker(&["volume", "rm", target.name()]).status.success());
        restore_ws.ok(&[
            "restore",
            "--auto-approve",
            "--access",
            "direct",
            "--snapshot",
            id,
        ]);
        assert!(target.mountpoint().join("log0").exists());
    }
}

/// Adds a second repository, `offsite`, to the workspace's spec (the
/// default policy keeps every repository).
fn add_offsite(ws: &Workspace) {
    let spec = ws.path().join("main.hcl");
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(&format!(
        "\nrepository \"offsite\" {{\n  path = \"{}\"\n  encryption {{ passphrase_env = \
         \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n",
        ws.path().join("offsite").display()
    ));
    std::fs::write(&spec, text).unwrap();
}

/// The workspace's first repository, `main`, is lost: its disk and its
/// block in the spec are gone.
fn lose_main(ws: &Workspace) {
    let spec = ws.path().join("main.hcl");
    let text = std::fs::read_to_string(&spec).unwrap();
    let main = format!(
        "repository \"main\" {{\n  path = \"{}\"\n  encryption {{ passphrase_env = \
         \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n",
        ws.repository().display()
    );
    assert!(text.contains(&main), "{text}");
    std::fs::write(&spec, text.replace(&main, "")).unwrap();
    std::fs::remove_dir_all(ws.repository()).unwrap();
}

#[test]
fn a_volume_kept_in_two_repositories_is_read_once_and_restores_from_the_second() {
    let volume = support::TestVolume::create("tworepos");
    support::fill_tricky(&volume.mountpoint());
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    add_offsite(&ws);
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("back up → main, offsite"), "{plan}");

    let applied = ws.ok(&["apply", "--auto-approve", "--json"]);
    let events = crate::quiesce::events(&applied.stdout());
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "resource_finished")
        .collect();
    let repositories: Vec<&str> = finished
        .iter()
        .map(|e| e["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repositories, ["main", "offsite"], "{applied}");
    // Read from Docker for the first; the second is a copy of that snapshot.
    assert!(finished[0]["read_bytes"].as_u64().unwrap() > 0, "{applied}");
    assert_eq!(finished[1]["read_bytes"], 0, "{applied}");
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let kept = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["resource"] == "volume.data")
        .count();
    assert_eq!(kept, 2, "{listed:#}");
    assert!(ws.ok(&["plan"]).stdout().contains("= volume.data"));

    lose_main(&ws);
    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    let restore = ws.ok(&["restore", "--auto-approve"]);
    assert!(restore.stdout().contains("< volume.data"), "{restore}");
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
}

/// Bytes that do not compress, the same for the same `seed`.
fn incompressible(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut data = Vec::with_capacity(length + 8);
    while data.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(length);
    data
}

/// Files larger than two of the largest chunks have their chunks hashed by
/// the backup's workers and are restored through reused buffers: read
/// through the API and then directly they give the same chunks (the
/// second backup adds nothing), and they restore byte for byte, holes
/// and a file just over that size included.
#[test]
fn large_files_restore_exactly_and_both_reading_paths_agree_on_their_chunks() {
    let volume = support::TestVolume::create("large-files");
    let mountpoint = volume.mountpoint();
    let mut table = incompressible(40 << 20, 0x2545_f491_4f6c_dd1d);
    table[8 << 20..12 << 20].fill(0);
    std::fs::write(mountpoint.join("table.db"), &table).unwrap();
    std::fs::write(
        mountpoint.join("edge.db"),
        incompressible((16 << 20) + 1, 7),
    )
    .unwrap();
    std::fs::write(mountpoint.join("small.txt"), b"small").unwrap();
    let original = support::keep_copy(&mountpoint);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    crate::harness::assert_direct_backup_adds_nothing(&ws, "volume.data");

    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    ws.ok(&["restore", "--auto-approve"]);
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
}

/// A local repository takes packs streamed to their files as their blobs
/// come (none is held whole in memory): a backup of several packs' worth
/// leaves only packs in `data/xx/`, each named by the hash of its bytes,
/// no temporary file beside them, and a repository that checks with its
/// data read and restores exactly.
#[test]
fn packs_streamed_to_a_local_repository_are_whole_and_named_by_their_content() {
    use sha2::{Digest, Sha256};
    let volume = support::TestVolume::create("streamed-packs");
    let mountpoint = volume.mountpoint();
    for n in 0..6 {
        std::fs::write(
            mountpoint.join(format!("part{n}.bin")),
            incompressible(8 << 20, n + 11),
        )
        .unwrap();
    }
    std::fs::write(mountpoint.join("small.txt"), b"small").unwrap();
    let original = support::keep_copy(&mountpoint);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);

    let data = ws.repository().join("data");
    let mut packs = 0;
    for entry in walkdir::WalkDir::new(&data).min_depth(1) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "left behind: {}",
            entry.path().display()
        );
        if entry.file_type().is_file() {
            assert_eq!(entry.depth(), 2, "{}", entry.path().display());
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), name);
            packs += 1;
        }
    }
    assert!(packs >= 3, "{packs} packs");
    ws.ok(&["check", "--read-data"]);

    assert!(docker(&["volume", "rm", volume.name()]).status.success());
    ws.ok(&["restore", "--auto-approve"]);
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
}
