//! Damage, locks and a full disk, through the CLI: `check` finds every kind
//! of damage and names the snapshots and resources it affects, a restore
//! that meets a bad blob fails naming the file, a held lock names its
//! holder, `unlock` removes only stale locks, and a full disk is a clear
//! error that leaves earlier snapshots intact.

use crate::harness::{Workspace, files_in};
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

impl Damaged {
    /// The file of the snapshot whose id starts with `short`.
    fn snapshot_file(&self, short: &str) -> PathBuf {
        files_in(&self.ws.repository().join("snapshots"))
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(short))
            .unwrap()
    }
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
    let pack = damaged.ws.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&pack, bytes).unwrap();

    // Structure is intact: only re-reading the data finds it.
    damaged.ws.ok(&["check"]);

    // First, while the damaged blob is still indexed (its safety snapshot
    // deduplicates against it): a restore fails naming the file. (After a
    // read found the blob damaged, the safety snapshot stores it again.)
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
    assert_check_blames_data(&damaged, &["check", "--read-data"]);
    assert_check_blames_data(&damaged, &["check", "--read-data-subset", "100%"]);
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
    let pack = damaged.ws.biggest_pack();
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
    let snapshot = damaged.snapshot_file(&damaged.data_snapshot);
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
    // A second run of the same spec is refused at once, naming the first
    // (the spec's run lock); another spec's backup shares the repository.
    let second = ws.run(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert_eq!(second.code(), 1, "{second}");
    assert!(
        second.stderr().contains(&format!("pid {}", holder.id())),
        "{second}"
    );
    let other_spec = ws.sharing_repository(volume.name(), volume.name());
    other_spec.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);

    let unlock = ws.ok(&["unlock"]);
    assert!(unlock.stdout().contains("removed 0 stale"), "{unlock}");
    // The holder's lock for its whole run, and maybe its copy's.
    let held = files_in(&ws.repository().join("locks")).len();
    assert!((1..=2).contains(&held), "{held} locks");

    holder.kill().unwrap();
    holder.wait().unwrap();
    let unlock = ws.ok(&["unlock"]);
    assert!(
        unlock.stdout().contains(&format!("removed {held} stale")),
        "{unlock}"
    );
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

// ---- The repository as untrusted input (issue 11) -------------------------

/// Runs `args` with a time limit: a hang is a failure, not a stuck suite.
fn bounded(ws: &Workspace, args: &[&str]) -> crate::harness::Run {
    let output = ws
        .command(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("lifeboat runs");
    let run = crate::harness::Run(output);
    assert!(
        run.0.status.code().is_some(),
        "killed after 120 s (a hang?): {run}"
    );
    run
}

/// `args` fails cleanly (exit 1, no panic) saying each of `expected`.
fn refused(ws: &Workspace, args: &[&str], expected: &[&str]) -> String {
    let run = bounded(ws, args);
    assert_eq!(run.code(), 1, "{args:?} exits 1 (101 is a panic): {run}");
    let text = run.to_string();
    assert!(!text.contains("panicked"), "{run}");
    for needle in expected {
        assert!(text.contains(needle), "{args:?} says {needle:?}: {run}");
    }
    text
}

fn edit_json(path: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// A workspace whose one volume holds a small file, applied once.
fn applied_once(test: &str, plaintext: bool) -> (Workspace, support::TestVolume) {
    let volume = support::TestVolume::create(test);
    std::fs::write(volume.mountpoint().join("f.txt"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    if plaintext {
        let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
        let spec = spec.replace(
            "encryption { passphrase_env = \"LIFEBOAT_TEST_PASSPHRASE\" }",
            "encryption { none = true }",
        );
        assert!(spec.contains("none = true"));
        std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    }
    ws.ok(&["apply", "--auto-approve"]);
    (ws, volume)
}

#[test]
fn a_config_swapped_to_plaintext_beside_the_real_keys_is_refused() {
    let (ws, volume) = applied_once("downgrade", false);
    let config = ws.repository().join("config");
    let original = std::fs::read(&config).unwrap();
    let packs_before = files_in(&ws.repository().join("data"));
    edit_json(&config, |c| {
        c["encryption"] = "none".into();
        c.as_object_mut().unwrap().remove("mac");
    });
    std::fs::write(
        volume.mountpoint().join("secret.txt"),
        b"PLAINTEXT-MUST-NOT-LEAK",
    )
    .unwrap();
    let expected = ["config says the repository is not encrypted", "it has keys"];
    refused(
        &ws,
        &["apply", "--auto-approve", "--replace", "volume.data"],
        &expected,
    );
    refused(&ws, &["plan"], &expected);
    refused(&ws, &["snapshots"], &expected);
    assert_eq!(files_in(&ws.repository().join("data")), packs_before);
    for file in files_in(&ws.repository()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(23).any(|w| w == b"PLAINTEXT-MUST-NOT-LEAK"),
            "{}",
            file.display()
        );
    }

    // Any other change to an encrypted config fails its MAC.
    std::fs::write(&config, &original).unwrap();
    edit_json(&config, |c| c["chunker"]["max"] = (4 << 20).into());
    refused(&ws, &["snapshots"], &["config does not authenticate"]);

    // A format-1 config (no MAC) keeps opening; reading writes nothing, the
    // next write authenticates it.
    std::fs::write(&config, &original).unwrap();
    edit_json(&config, |c| {
        c["version"] = 1.into();
        c.as_object_mut().unwrap().remove("mac");
        // Format 1 never wrote it (it named blobs with HMAC-SHA-256 only).
        c.as_object_mut().unwrap().remove("blob_ids");
    });
    let format_1 = std::fs::read(&config).unwrap();
    ws.ok(&["snapshots"]);
    ws.ok(&["check"]);
    assert_eq!(std::fs::read(&config).unwrap(), format_1);
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    let upgraded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(upgraded["version"], lifeboat::repo::FORMAT_VERSION);
    assert!(upgraded["mac"].is_string(), "{upgraded}");
    // The same id and sizes; and the format-1 id function, kept.
    let original: serde_json::Value = serde_json::from_slice(&original).unwrap();
    for field in ["id", "chunker", "encryption"] {
        assert_eq!(upgraded[field], original[field], "{field}");
    }
    assert_eq!(upgraded["blob_ids"], "hmac-sha256");
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn out_of_range_key_parameters_fail_naming_the_key_file() {
    let (ws, _volume) = applied_once("kdf", false);
    let keys = ws.repository().join("keys");
    let key = files_in(&keys).pop().unwrap();
    let original = std::fs::read(&key).unwrap();
    let cases: [(&str, serde_json::Value, &str); 9] = [
        ("parallelism", 0.into(), "parallelism 0 is outside"),
        ("iterations", 0.into(), "iterations 0 is outside"),
        (
            "iterations",
            4_000_000_000u32.into(),
            "iterations 4000000000 is outside",
        ),
        (
            "memory_kib",
            4_000_000_000u32.into(),
            "memory_kib 4000000000 is outside",
        ),
        ("salt", "".into(), "salt length"),
        ("salt", "0011".into(), "salt length"),
        ("kdf", "scrypt".into(), "\"scrypt\" is not supported"),
        ("data", "0011".into(), "data holds 2 bytes"),
        ("data", "not hex".into(), "data is not hex"),
    ];
    let replace = |bytes: &[u8]| {
        for old in files_in(&keys) {
            std::fs::remove_file(old).unwrap();
        }
        use sha2::Digest;
        let name = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(keys.join(&name), bytes).unwrap();
        name
    };
    for (field, value, expected) in cases {
        let mut file: serde_json::Value = serde_json::from_slice(&original).unwrap();
        file[field] = value;
        let name = replace(&serde_json::to_vec(&file).unwrap());
        refused(&ws, &["snapshots"], &[&format!("keys/{name}"), expected]);
    }
    let name = replace(b"{\"kdf\": ");
    refused(&ws, &["plan"], &[&format!("keys/{name}"), "not a key file"]);
    replace(&original);
    ws.ok(&["check"]);
}

#[test]
fn bad_chunker_parameters_fail_clearly() {
    let (ws, _volume) = applied_once("chunker", true);
    let config = ws.repository().join("config");
    let original = std::fs::read(&config).unwrap();
    for (min, avg, max, expected) in [
        (1, 1, 1, "chunker min 1 is outside FastCDC's bounds"),
        (16, 32, 64, "chunker min 16 is outside FastCDC's bounds"),
        (0, 0, 0, "chunker min 0 is outside FastCDC's bounds"),
        (1 << 20, 512 << 10, 8 << 20, "not in order"),
    ] {
        edit_json(&config, |c| {
            c["chunker"] = serde_json::json!({"min": min, "avg": avg, "max": max});
        });
        refused(
            &ws,
            &["apply", "--auto-approve", "--replace", "volume.data"],
            &[&format!("{}/config", ws.repository().display()), expected],
        );
        std::fs::write(&config, &original).unwrap();
    }
    ws.ok(&["check"]);
}

#[test]
fn stray_and_damaged_files_stay_local() {
    let damaged = two_snapshots("strays");
    let ws = &damaged.ws;
    let repo = ws.repository();
    let snapshot_file = damaged.snapshot_file(&damaged.data_snapshot);
    let bytes = std::fs::read(&snapshot_file).unwrap();
    std::fs::write(&snapshot_file, &bytes[..bytes.len() / 2]).unwrap();
    let fan_out = std::fs::read_dir(repo.join("data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut strays = vec![
        repo.join("snapshots/notes.txt"),
        repo.join("snapshots/.0123.tmp-77"),
        fan_out.join("notes.txt"),
        fan_out.join("ff".repeat(32)),
        repo.join("applied/notes.txt"),
        repo.join("runs/notes.txt"),
        repo.join("index/notes.txt"),
        repo.join("keys/notes.txt"),
        repo.join("locks/notes.txt"),
    ];
    if fan_out.ends_with("ff") {
        strays[3] = fan_out.join("00".repeat(32));
    }
    for stray in &strays {
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(stray, b"not lifeboat's").unwrap();
    }
    // A damaged run record beside the stray one.
    let record = files_in(&repo.join("runs"))
        .into_iter()
        .find(|p| !p.ends_with("notes.txt"))
        .unwrap();
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();

    let listed = bounded(ws, &["snapshots"]);
    assert_eq!(listed.code(), 0, "{listed}");
    assert!(
        listed.stdout().contains(&damaged.other_snapshot),
        "{listed}"
    );
    assert!(
        listed
            .stderr()
            .contains(&format!("snapshot {} is damaged", damaged.data_snapshot)),
        "{listed}"
    );
    let check = bounded(ws, &["check"]);
    assert_eq!(check.code(), 1, "{check}");
    let out = check.stdout();
    assert!(
        out.contains(&format!("snapshots/{}", damaged.data_snapshot)),
        "{check}"
    );
    assert!(
        !out.contains(&format!("snapshot {}", damaged.other_snapshot)),
        "{check}"
    );
    for path in [
        "snapshots/notes.txt",
        "applied/notes.txt",
        "runs/notes.txt",
        "index/notes.txt",
    ] {
        assert!(out.contains(path), "{path}: {check}");
    }
    for path in ["keys/notes.txt", "locks/notes.txt", ".0123.tmp-77"] {
        assert!(out.contains(path), "{path}: {check}");
    }
    assert!(out.contains("this run record is passed over"), "{check}");

    // Everything intact keeps working.
    let restore = bounded(
        ws,
        &[
            "restore",
            "--auto-approve",
            "--replace",
            "--target",
            "volume.other",
        ],
    );
    assert_eq!(restore.code(), 0, "{restore}");
    let apply = bounded(ws, &["apply", "--auto-approve"]);
    assert_eq!(apply.code(), 0, "{apply}");
    refused(
        ws,
        &["prune"],
        &["prune deletes nothing while a snapshot file is damaged"],
    );
    let forget = bounded(ws, &["forget", "--auto-approve", &damaged.data_snapshot]);
    assert_eq!(forget.code(), 0, "{forget}");
    assert!(!snapshot_file.exists());
    let prune = bounded(ws, &["prune"]);
    assert_eq!(prune.code(), 0, "{prune}");
    let check = bounded(ws, &["check", "--read-data"]);
    assert_eq!(check.code(), 0, "{check}");
    assert!(check.stdout().contains("no errors were found"), "{check}");
    assert!(
        check.stdout().contains("notes.txt is no repository file"),
        "{check}"
    );
    for stray in &strays {
        assert!(stray.exists(), "{} left alone", stray.display());
    }
    drop(damaged.data);
}

#[test]
fn after_a_deleted_pack_the_next_apply_stores_its_data_again() {
    let volume = support::TestVolume::create("lostpack");
    support::fill_tricky(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let copy = support::keep_copy(&volume.mountpoint());
    std::fs::remove_file(ws.biggest_pack()).unwrap();

    let apply = bounded(
        &ws,
        &["apply", "--auto-approve", "--replace", "volume.data"],
    );
    assert_eq!(apply.code(), 0, "{apply}");
    assert!(!apply.stdout().contains(" 0 B added"), "{apply}");
    let target = support::TestVolume::create("lostpack-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    let restore = bounded(&restore_ws, &["restore", "--auto-approve"]);
    assert_eq!(restore.code(), 0, "{restore}");
    support::compare_trees(copy.path(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("restored after a lost pack:\n{diff}"));
    // The index still names the lost pack (no snapshot needs it): repair drops it.
    let check = bounded(&ws, &["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(check.stdout().contains("lifeboat repair"), "{check}");
    assert!(!check.stdout().contains("affects snapshot"), "{check}");
    ws.ok(&["repair"]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_deleted_pack_then_repair_then_apply_then_restore_is_exact() {
    let volume = support::TestVolume::create("repair");
    support::fill_tricky(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let first = listed[0]["short_id"].as_str().unwrap().to_string();
    let copy = support::keep_copy(&volume.mountpoint());
    std::fs::remove_file(ws.biggest_pack()).unwrap();
    let check = bounded(&ws, &["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(
        check
            .stdout()
            .contains(&format!("affects snapshot {first} of volume.data")),
        "{check}"
    );

    let index_before = files_in(&ws.repository().join("index"));
    let dry = bounded(&ws, &["repair", "--dry-run"]);
    assert_eq!(dry.code(), 0, "{dry}");
    let out = dry.stdout();
    assert!(out.contains("would rebuild the index"), "{dry}");
    assert!(out.contains("would drop 1 pack that is gone"), "{dry}");
    assert!(
        out.contains(&format!("snapshot {first} of volume.data")),
        "{dry}"
    );
    assert!(out.contains("Dry run: nothing was changed."), "{dry}");
    assert_eq!(files_in(&ws.repository().join("index")), index_before);

    let repair = bounded(&ws, &["repair"]);
    assert_eq!(repair.code(), 0, "{repair}");
    assert!(
        repair.stdout().contains("dropped 1 pack that is gone"),
        "{repair}"
    );
    assert!(
        repair
            .stdout()
            .contains(&format!("snapshot {first} of volume.data")),
        "{repair}"
    );
    let again = bounded(&ws, &["repair"]);
    assert!(again.stdout().contains("nothing to rebuild"), "{again}");

    let apply = bounded(
        &ws,
        &["apply", "--auto-approve", "--replace", "volume.data"],
    );
    assert_eq!(apply.code(), 0, "{apply}");
    // The first snapshot is whole again: its data was stored again.
    let target = support::TestVolume::create("repair-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    let restore = bounded(
        &restore_ws,
        &["restore", "--auto-approve", "--snapshot", &first],
    );
    assert_eq!(restore.code(), 0, "{restore}");
    support::compare_trees(copy.path(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("first snapshot after repair and apply:\n{diff}"));
    let check = bounded(&ws, &["check", "--read-data"]);
    assert_eq!(check.code(), 0, "{check}");
    assert!(check.stdout().contains("no errors were found"), "{check}");
}
