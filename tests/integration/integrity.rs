//! Damage, locks and a full disk, through the CLI: `check` finds every kind
//! of damage and names the snapshots and resources it affects, a restore
//! that meets a bad blob fails naming the file, a held lock names its
//! holder, `unlock` removes only stale locks, and a full disk is a clear
//! error that leaves earlier snapshots intact.

use crate::harness::Workspace;
use crate::support;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Two volumes backed up in separate runs (so in separate packs): `data`
/// with one big file, `other` with a small one. Returns the short ids.
struct Damaged {
    ws: Workspace,
    data: support::TestVolume,
    _other: support::TestVolume,
    data_snapshot: String,
    other_snapshot: String,
}

fn two_snapshots(test: &str) -> Damaged {
    let data = support::TestVolume::create(&format!("{test}-d"));
    let other = support::TestVolume::create(&format!("{test}-o"));
    std::fs::write(
        data.mountpoint().join("big.bin"),
        support::random_bytes(3_000_000, 1),
    )
    .unwrap();
    std::fs::write(other.mountpoint().join("small.txt"), b"small").unwrap();
    let ws = Workspace::with_volumes(&[("data", data.name()), ("other", other.name())]);
    ws.ok(&["apply", "--auto-approve", "--target", "volume.data"]);
    ws.ok(&["apply", "--auto-approve", "--target", "volume.other"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let short = |resource: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["resource"] == resource)
            .unwrap()["short_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    Damaged {
        data_snapshot: short("volume.data"),
        other_snapshot: short("volume.other"),
        ws,
        data,
        _other: other,
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

fn biggest_pack(ws: &Workspace) -> PathBuf {
    files_in(&ws.repository().join("data"))
        .into_iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap()
}

/// `check` (with `args`) fails, names the damaged snapshot of volume.data
/// and leaves volume.other alone.
fn assert_check_blames_data(damaged: &Damaged, args: &[&str]) -> String {
    let check = damaged.ws.run(args);
    assert_eq!(check.code(), 1, "{check}");
    let out = check.stdout();
    assert!(
        out.contains(&format!(
            "affects snapshot {} of volume.data",
            damaged.data_snapshot
        )),
        "{check}"
    );
    assert!(
        !out.contains(&format!("snapshot {}", damaged.other_snapshot)),
        "{check}"
    );
    assert!(check.stderr().contains("the check found damage"), "{check}");
    out
}

#[test]
fn a_flipped_bit_is_found_by_read_data_and_restore_fails_naming_the_file() {
    let damaged = two_snapshots("bitflip");
    let pack = biggest_pack(&damaged.ws);
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&pack, bytes).unwrap();

    // Structure is intact: only re-reading the data finds it.
    damaged.ws.ok(&["check"]);
    assert_check_blames_data(&damaged, &["check", "--read-data"]);
    assert_check_blames_data(&damaged, &["check", "--read-data-subset", "100%"]);

    let restore = damaged.ws.run(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.data",
    ]);
    assert_eq!(restore.code(), 1, "{restore}");
    let text = restore.to_string();
    assert!(text.contains("big.bin"), "names the file: {restore}");
    assert!(!text.contains("Apply complete!"), "{restore}");
    // The volume.other snapshot is untouched and restores.
    damaged.ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "volume.other",
    ]);
    drop(damaged.data);
}

#[test]
fn truncated_and_deleted_packs_are_found_by_a_structure_check() {
    let damaged = two_snapshots("truncate");
    let pack = biggest_pack(&damaged.ws);
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() - 100]).unwrap();
    let out = assert_check_blames_data(&damaged, &["check"]);
    assert!(out.contains("error: pack"), "{out}");

    std::fs::remove_file(&pack).unwrap();
    let out = assert_check_blames_data(&damaged, &["check"]);
    assert!(out.contains("missing"), "{out}");
}

#[test]
fn corrupt_index_and_snapshot_files_are_reported() {
    let damaged = two_snapshots("meta");
    let index = files_in(&damaged.ws.repository().join("index"));
    let first = &index[0];
    let files_before = files_in(&damaged.ws.repository().join("data")).len();
    let mut bytes = std::fs::read(first).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(first, bytes).unwrap();
    let check = damaged.ws.run(&["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(check.stdout().contains("index/"), "{check}");
    // Nothing may be deleted on the strength of a damaged index.
    let prune = damaged.ws.run(&["prune"]);
    assert_eq!(prune.code(), 1, "{prune}");
    assert!(prune.stderr().contains("prune deletes nothing"), "{prune}");
    assert_eq!(
        files_in(&damaged.ws.repository().join("data")).len(),
        files_before,
        "no pack deleted"
    );

    let damaged = two_snapshots("snapfile");
    let snapshot = files_in(&damaged.ws.repository().join("snapshots"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&damaged.data_snapshot)
        })
        .unwrap();
    let bytes = std::fs::read(&snapshot).unwrap();
    std::fs::write(&snapshot, &bytes[..bytes.len() / 2]).unwrap();
    let check = damaged.ws.run(&["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(
        check
            .stdout()
            .contains(&format!("snapshots/{}", damaged.data_snapshot)),
        "{check}"
    );
}

/// Starts `args`, waits until it holds a lock, and freezes it (SIGSTOP):
/// a live holder that does not finish.
fn frozen_holder(ws: &Workspace, args: &[&str]) -> std::process::Child {
    let child = ws
        .process(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locks = ws.repository().join("locks");
    let started = Instant::now();
    let held = || {
        files_in(&locks)
            .iter()
            .any(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
    };
    while !held() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no lock appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: plain signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
    child
}

#[test]
fn a_held_lock_names_its_holder_and_only_stale_locks_are_removed() {
    let volume = support::TestVolume::create("lock");
    for i in 0..4 {
        std::fs::write(
            volume.mountpoint().join(format!("f{i}")),
            support::random_bytes(8_000_000, i),
        )
        .unwrap();
    }
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    std::fs::write(
        volume.mountpoint().join("new"),
        support::random_bytes(8_000_000, 9),
    )
    .unwrap();

    let mut holder = frozen_holder(
        &ws,
        &["apply", "--auto-approve", "--replace", "volume.data"],
    );
    let started = Instant::now();
    let blocked = ws.run(&["prune", "--lock-timeout", "1s"]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited: {blocked}"
    );
    assert_eq!(blocked.code(), 1, "{blocked}");
    let message = blocked.stderr();
    assert!(message.contains("locked by `apply`"), "{blocked}");
    assert!(
        message.contains(&format!("pid {}", holder.id())),
        "{blocked}"
    );
    assert!(message.contains("since"), "{blocked}");
    assert!(message.contains(&lifeboat_hostname()), "{blocked}");
    // Backups share: a second backup is not blocked by the first.
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);

    let unlock = ws.ok(&["unlock"]);
    assert!(unlock.stdout().contains("removed 0 stale"), "{unlock}");
    assert_eq!(files_in(&ws.repository().join("locks")).len(), 1);

    holder.kill().unwrap();
    holder.wait().unwrap();
    let unlock = ws.ok(&["unlock"]);
    assert!(unlock.stdout().contains("removed 1 stale"), "{unlock}");
    assert!(files_in(&ws.repository().join("locks")).is_empty());
    ws.ok(&["prune", "--lock-timeout", "1s"]);
    ws.ok(&["check", "--read-data"]);
}

fn lifeboat_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A tmpfs mounted at `path`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_earlier_snapshots_stay_intact() {
    let volume = support::TestVolume::create("diskfull");
    std::fs::write(
        volume.mountpoint().join("first.bin"),
        support::random_bytes(200_000, 3),
    )
    .unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let _disk = SmallDisk::mount(ws.repository(), "3m");
    ws.ok(&["apply", "--auto-approve"]);
    let first = support::keep_copy(&volume.mountpoint());

    std::fs::write(
        volume.mountpoint().join("big.bin"),
        support::random_bytes(10_000_000, 4),
    )
    .unwrap();
    let full = ws.run(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert_eq!(full.code(), 1, "{full}");
    let text = full.to_string();
    assert!(text.contains("no space left"), "{full}");
    assert!(!text.contains("panicked"), "{full}");

    let check = ws.ok(&["check", "--read-data"]);
    assert!(check.stdout().contains("1 snapshots"), "{check}");
    let target = support::TestVolume::create("diskfull-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    restore_ws.ok(&["restore", "--auto-approve"]);
    support::compare_trees(first.path(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("first snapshot after the full disk:\n{diff}"));
}
