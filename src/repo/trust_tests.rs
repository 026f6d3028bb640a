//! The repository as untrusted input (memory, local and fault-injecting
//! backends, no Docker): a swapped config is refused, out-of-range chunker
//! and key parameters fail with a message, damage to one file stays local,
//! and a lost pack is survived and repaired.

use super::backend::faulty::{Faults, FaultyBackend};
use super::backend::local::LocalBackend;
use super::backend::memory::MemoryBackend;
use super::tests::{biggest_pack, quiet, source};
use super::*;

pub(super) const PASSPHRASE: &str = "trust passphrase";

pub(super) fn open_with(
    backend: &Arc<MemoryBackend>,
    passphrase: Option<&str>,
) -> Result<Repository, RepoError> {
    Repository::open(backend.clone(), passphrase, RepoOptions::default())
}

pub(super) fn encrypted() -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some(PASSPHRASE)).unwrap();
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    (backend, repository)
}

fn plaintext() -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), None).unwrap();
    let repository = open_with(&backend, None).unwrap();
    (backend, repository)
}

/// Rewrites the stored config through its JSON.
fn edit_config(backend: &MemoryBackend, change: impl FnOnce(&mut serde_json::Value)) {
    backend.tamper(FileKind::Config, "config", |bytes| {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        change(&mut value);
        *bytes = serde_json::to_vec_pretty(&value).unwrap();
    });
}

fn config_json(backend: &MemoryBackend) -> serde_json::Value {
    serde_json::from_slice(&backend.load(FileKind::Config, "config", None).unwrap()).unwrap()
}

/// A directory with two files: one of several chunks, one small.
pub(super) fn content() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 7u64;
    let big: Vec<u8> = (0..(3 << 20))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(dir.path().join("big.bin"), big).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small and intact").unwrap();
    dir
}

pub(super) fn backup(repository: &Repository, dir: &tempfile::TempDir, resource: &str) -> Snapshot {
    repository
        .backup_dir(dir.path(), source(resource), &quiet())
        .unwrap()
}

/// An encrypted repository holding one snapshot of [`content`] (volume.a).
pub(super) fn backed_up() -> (Arc<MemoryBackend>, Repository, tempfile::TempDir, Snapshot) {
    let (backend, repository) = encrypted();
    let dir = content();
    let snapshot = backup(&repository, &dir, "volume.a");
    (backend, repository, dir, snapshot)
}

pub(super) fn restore_equals(
    repository: &Repository,
    snapshot: &Snapshot,
    expected: &std::path::Path,
) {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("restored");
    repository
        .restore_dir(snapshot, &target, &quiet())
        .unwrap_or_else(|e| panic!("restore of {}: {e}", snapshot.id.short()));
    for name in ["big.bin", "small.txt"] {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            std::fs::read(expected.join(name)).unwrap(),
            "{name}"
        );
    }
}

pub(super) fn dry_run() -> RepairOptions {
    RepairOptions {
        dry_run: true,
        ..RepairOptions::default()
    }
}

pub(super) fn read_all() -> CheckOptions {
    CheckOptions {
        read_data: Some(ReadData::All),
        ..CheckOptions::default()
    }
}

// ---- 1. No silent downgrade ------------------------------------------------

#[test]
fn a_config_swapped_to_plaintext_beside_real_keys_is_refused() {
    let (backend, _, _, _) = backed_up();
    let files_before = backend.list(FileKind::Pack).unwrap().len();
    edit_config(&backend, |config| {
        config["encryption"] = "none".into();
        config.as_object_mut().unwrap().remove("mac");
    });
    for declared in [Some(PASSPHRASE), None] {
        let error = open_with(&backend, declared).unwrap_err();
        assert!(matches!(error, RepoError::Downgraded(_)), "{error}");
        let message = error.to_string();
        assert!(message.contains("memory/config"), "{message}");
        assert!(
            message.contains("Put back the original config"),
            "{message}"
        );
    }
    assert_eq!(backend.list(FileKind::Pack).unwrap().len(), files_before);
}

#[test]
fn encryption_is_what_the_caller_declares_or_nothing() {
    let (backend, _) = plaintext();
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(matches!(error, RepoError::NotEncrypted(_)), "{error}");
    assert!(error.to_string().contains("encryption { none = true }"));

    let (backend, _) = encrypted();
    let error = open_with(&backend, None).unwrap_err();
    assert!(matches!(error, RepoError::PassphraseRequired(_)), "{error}");
    // A plaintext config with a MAC, or an encrypted one without, is not believed.
    edit_config(&backend, |config| {
        config.as_object_mut().unwrap().remove("mac");
    });
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(
        matches!(error, RepoError::ConfigNotAuthentic { .. }),
        "{error}"
    );
}

#[test]
fn every_field_of_an_encrypted_config_is_authenticated() {
    for (field, value) in [
        ("id", serde_json::Value::from("0".repeat(32))),
        (
            "chunker",
            serde_json::json!({"min": 262144, "avg": 524288, "max": 4194304}),
        ),
        ("version", 1.into()),
    ] {
        let (backend, _) = encrypted();
        edit_config(&backend, |config| config[field] = value.clone());
        let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
        assert!(
            matches!(error, RepoError::ConfigNotAuthentic { .. }),
            "{field}: {error}"
        );
        assert!(
            error.to_string().contains("does not authenticate"),
            "{error}"
        );
    }
}

#[test]
fn a_format_1_config_opens_and_is_authenticated_at_the_next_write() {
    let (backend, _) = encrypted();
    edit_config(&backend, |config| {
        config["version"] = 1.into();
        config.as_object_mut().unwrap().remove("mac");
        config.as_object_mut().unwrap().remove("blob_ids");
    });
    let format_1 = config_json(&backend);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    repository.snapshots().unwrap();
    assert_eq!(config_json(&backend), format_1, "reading writes nothing");
    drop(repository.lock_shared().unwrap());
    let upgraded = config_json(&backend);
    assert_eq!(upgraded["version"], FORMAT_VERSION);
    assert!(upgraded["mac"].is_string());
    assert_eq!(upgraded["id"], format_1["id"]);
    open_with(&backend, Some(PASSPHRASE)).unwrap();

    // Format 1 never wrote other chunker sizes: such a config was forged.
    let (backend, _) = encrypted();
    edit_config(&backend, |config| {
        config["version"] = 1.into();
        config.as_object_mut().unwrap().remove("mac");
        config.as_object_mut().unwrap().remove("blob_ids");
        config["chunker"]["max"] = (4 << 20).into();
    });
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(
        error.to_string().contains("format 1 never wrote"),
        "{error}"
    );
}

// ---- 2. Chunker parameters ---------------------------------------------------

#[test]
fn bad_chunker_parameters_are_a_message_not_a_panic_or_a_hang() {
    for (min, avg, max, expected) in [
        (1, 1, 1, "outside FastCDC's bounds"),
        (16, 32, 64, "outside FastCDC's bounds"),
        (0, 0, 0, "outside FastCDC's bounds"),
        (8 << 20, 1 << 20, 512 << 10, "outside FastCDC's bounds"),
        (1 << 20, 512 << 10, 8 << 20, "not in order"),
    ] {
        let (backend, _) = plaintext();
        edit_config(&backend, |config| {
            config["chunker"] = serde_json::json!({"min": min, "avg": avg, "max": max});
        });
        let error = open_with(&backend, None).unwrap_err();
        assert!(matches!(error, RepoError::BadConfig { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("memory/config"), "{message}");
        assert!(message.contains(expected), "{min}/{avg}/{max}: {message}");
    }
}

// ---- 3. KDF parameters and key files -----------------------------------------

fn only_key(backend: &MemoryBackend) -> String {
    let keys = backend.list(FileKind::Key).unwrap();
    assert_eq!(keys.len(), 1);
    keys[0].clone()
}

/// Replaces the one key file with `bytes`, under its SHA-256 name.
fn replace_key(backend: &MemoryBackend, bytes: &[u8]) -> String {
    backend.remove(FileKind::Key, &only_key(backend)).unwrap();
    let name = sha256_hex(bytes);
    backend.save(FileKind::Key, &name, bytes).unwrap();
    name
}

#[test]
fn out_of_range_key_parameters_fail_naming_the_key_file() {
    let cases: [(&str, serde_json::Value, &str); 8] = [
        ("parallelism", 0.into(), "parallelism 0"),
        ("iterations", 0.into(), "iterations 0"),
        (
            "iterations",
            4_000_000_000u32.into(),
            "iterations 4000000000",
        ),
        (
            "memory_kib",
            4_000_000_000u32.into(),
            "memory_kib 4000000000",
        ),
        ("salt", "".into(), "salt length"),
        ("salt", "00ff".into(), "salt length"),
        ("kdf", "scrypt".into(), "\"scrypt\" is not supported"),
        ("data", "zz".into(), "data is not hex"),
    ];
    for (field, value, expected) in cases {
        let (backend, _) = encrypted();
        let mut file: serde_json::Value = serde_json::from_slice(
            &backend
                .load(FileKind::Key, &only_key(&backend), None)
                .unwrap(),
        )
        .unwrap();
        file[field] = value;
        let name = replace_key(&backend, &serde_json::to_vec(&file).unwrap());
        let started = std::time::Instant::now();
        let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{field}"
        );
        assert!(
            matches!(error, RepoError::BadKeyFile { .. }),
            "{field}: {error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("memory/keys/{name}")),
            "{message}"
        );
        assert!(message.contains(expected), "{field}: {message}");
    }
}

#[test]
fn an_unusable_key_file_is_an_error_when_it_is_the_only_one_and_reported_beside_a_good_one() {
    let (backend, _) = encrypted();
    let good = backend
        .load(FileKind::Key, &only_key(&backend), None)
        .unwrap();
    let name = replace_key(&backend, b"{ this is not json");
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(
        error.to_string().contains(&format!("keys/{name}")),
        "{error}"
    );
    assert!(error.to_string().contains("not a key file"), "{error}");

    // Beside a key that opens, it is passed over, and `check` reports it.
    backend
        .save(FileKind::Key, &sha256_hex(&good), &good)
        .unwrap();
    // A file not named like a key is no key at all: skipped, noted.
    backend.save(FileKind::Key, "README", b"hello").unwrap();
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let report = repository.check(CheckOptions::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.what == format!("keys/{}", short(&name))),
        "{report:?}"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("keys/README")),
        "{report:?}"
    );

    // A truncated key file is damaged too (its name no longer matches).
    let (backend, _) = encrypted();
    backend.tamper(FileKind::Key, &only_key(&backend), |bytes| {
        bytes.truncate(bytes.len() / 2)
    });
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(
        error.to_string().contains("does not match its name"),
        "{error}"
    );
    // And no key file at all is said so.
    backend.remove(FileKind::Key, &only_key(&backend)).unwrap();
    let error = open_with(&backend, Some(PASSPHRASE)).unwrap_err();
    assert!(matches!(error, RepoError::NoKeys(_)), "{error}");
}

// ---- 4. Damage stays local -----------------------------------------------------

#[test]
fn a_damaged_or_stray_snapshot_file_hides_nothing_and_can_be_forgotten() {
    let (backend, repository, dir, intact) = backed_up();
    let doomed = backup(&repository, &dir, "volume.b");
    backend.tamper(FileKind::Snapshot, &doomed.id.0, |bytes| {
        bytes.truncate(bytes.len() / 2)
    });
    backend
        .save(FileKind::Snapshot, "notes.txt", b"mine")
        .unwrap();
    backend
        .save(
            FileKind::Snapshot,
            &format!(".{}.tmp-1", intact.id.0),
            b"partial",
        )
        .unwrap();

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let snapshots = repository.snapshots().unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].id, intact.id);
    let damaged = repository.damaged_snapshots().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].id, doomed.id);
    let found = repository.find_snapshot(intact.id.short()).unwrap();
    restore_equals(&repository, &found, dir.path());
    let error = repository.find_snapshot(doomed.id.short()).unwrap_err();
    assert!(error.to_string().contains("snapshots/"), "{error}");

    let report = repository.check(CheckOptions::default()).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(
        report.problems[0].advice,
        Some(Advice::Forget {
            snapshot: doomed.id.short().to_string()
        })
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("snapshots/notes.txt"))
    );
    assert!(report.notes.iter().any(|n| n.contains(".tmp-1")));

    // Prune will not delete on the strength of a snapshot it cannot read.
    let error = repository.prune().unwrap_err();
    assert!(
        error.to_string().contains("prune deletes nothing"),
        "{error}"
    );
    repository.forget(std::slice::from_ref(&doomed.id)).unwrap();
    repository.prune().unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    // Stray files are never removed, and ids that are no file name are refused.
    assert!(backend.load(FileKind::Snapshot, "notes.txt", None).is_ok());
    let error = repository
        .forget(&[SnapshotId("../config".into())])
        .unwrap_err();
    assert!(matches!(error, RepoError::SnapshotNotFound(_)), "{error}");
    assert!(backend.load(FileKind::Config, "config", None).is_ok());
}

#[test]
fn stray_files_in_data_index_applied_and_locks_are_noted_and_left_alone() {
    let (backend, repository, dir, snapshot) = backed_up();
    repository
        .record_applied(serde_json::json!({"k": "v"}))
        .unwrap();
    let strays = [
        (FileKind::Pack, "notes.txt"),
        (FileKind::Index, "notes.txt"),
        (FileKind::Applied, "notes.txt"),
        (FileKind::Lock, "notes.txt"),
    ];
    for (kind, name) in strays {
        backend.save(kind, name, b"not lifeboat's").unwrap();
    }
    // A damaged applied record beside the intact one.
    let fake = b"garbage";
    backend
        .save(FileKind::Applied, &sha256_hex(fake), fake)
        .unwrap();

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.index().damaged.is_empty());
    let applied = repository
        .last_applied()
        .unwrap()
        .expect("the intact record");
    assert_eq!(applied.settings, serde_json::json!({"k": "v"}));
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    for dir_name in ["data", "index", "applied", "locks"] {
        let path = format!("{dir_name}/notes.txt");
        assert!(
            report.notes.iter().any(|n| n.contains(&path)),
            "{path}: {report:?}"
        );
    }
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("applied/") && n.contains("next apply"))
    );

    drop(repository.lock_shared().unwrap());
    assert_eq!(repository.unlock().unwrap(), 0);
    repository.prune().unwrap();
    repository
        .record_applied(serde_json::json!({"k": "w"}))
        .unwrap();
    restore_equals(&repository, &snapshot, dir.path());
    for (kind, name) in strays {
        assert!(
            backend.load(kind, name, None).is_ok(),
            "{kind:?} {name} kept"
        );
    }
    assert!(repository.check(read_all()).unwrap().is_ok());
}

#[test]
fn local_listings_show_misplaced_and_temporary_files_under_no_valid_name() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    Repository::init(backend.clone(), None).unwrap();
    let repository = Repository::open(backend.clone(), None, RepoOptions::default()).unwrap();
    let files = content();
    let snapshot = backup(&repository, &files, "volume.a");
    let pack = backend.list(FileKind::Pack).unwrap().remove(0);
    let misplaced = dir.path().join("data/00").join("f".repeat(64));
    std::fs::create_dir_all(misplaced.parent().unwrap()).unwrap();
    std::fs::write(&misplaced, b"where its name does not belong").unwrap();
    std::fs::write(
        dir.path()
            .join(format!("data/{}/.{pack}.tmp-9", &pack[..2])),
        b"x",
    )
    .unwrap();
    std::fs::write(dir.path().join("snapshots/.x.tmp-9"), b"x").unwrap();

    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let noted = |what: &str| report.notes.iter().any(|n| n.contains(what));
    assert!(noted(&format!("data/00/{}", "f".repeat(64))), "{report:?}");
    assert!(noted(".tmp-9"), "{report:?}");
    repository.prune().unwrap();
    assert!(misplaced.exists());
    restore_equals(&repository, &snapshot, files.path());
}

// ---- 5. Lost packs and repair ---------------------------------------------------

#[test]
fn a_backup_after_a_lost_pack_stores_its_blobs_again() {
    let (backend, repository, dir, first) = backed_up();
    backend
        .remove(FileKind::Pack, &biggest_pack(&backend))
        .unwrap();

    // The same handle, its index still naming the lost pack: the backup
    // lists the packs and stores the lost blobs again.
    let second = backup(&repository, &dir, "volume.a");
    assert!(second.summary.added_bytes > 3 << 20, "{:?}", second.summary);
    restore_equals(&repository, &second, dir.path());
    // A fresh handle finds the blobs in their new pack, for both snapshots
    // (the first one needed exactly the data stored again).
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    restore_equals(&repository, &first, dir.path());
    restore_equals(&repository, &second, dir.path());
    let report = repository.check(read_all()).unwrap();
    let missing: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.detail.contains("missing"))
        .collect();
    assert_eq!(missing.len(), 1, "{report:?}");
    assert!(
        missing[0].affects.is_empty(),
        "no snapshot is affected: {report:?}"
    );
    assert!(missing[0].detail.contains("lifeboat repair"));

    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.packs_dropped.len(), 1, "{repaired:?}");
    assert!(repaired.incomplete.is_empty(), "{repaired:?}");
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn repair_rebuilds_the_index_and_names_the_snapshots_that_lost_data() {
    let (backend, repository, dir, first) = backed_up();
    let lost = biggest_pack(&backend);
    // Trees are packed apart from data: the first backup wrote the data
    // pack (the content of big.bin) and its tree's pack.
    let first_packs = backend.list(FileKind::Pack).unwrap();
    assert_eq!(first_packs.len(), 2, "{first_packs:?}");
    let first_tree_pack = first_packs.into_iter().find(|p| *p != lost).unwrap();
    // A second snapshot whose tree (in a pack of its own) survives the loss
    // of both packs of the first backup.
    std::fs::write(dir.path().join("extra.txt"), b"extra").unwrap();
    let second = backup(&repository, &dir, "volume.a");
    backend.remove(FileKind::Pack, &lost).unwrap();
    backend.remove(FileKind::Pack, &first_tree_pack).unwrap();
    let index_before = backend.list(FileKind::Index).unwrap();

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let dry = repository.repair(dry_run()).unwrap();
    assert!(dry.dry_run && dry.index_changed());
    let mut dropped = dry.packs_dropped.clone();
    dropped.sort();
    let mut expected = vec![lost.clone(), first_tree_pack.clone()];
    expected.sort();
    assert_eq!(dropped, expected);
    let incomplete = |id: &SnapshotId| {
        dry.incomplete
            .iter()
            .find(|s| s.id == *id)
            .unwrap_or_else(|| panic!("{} incomplete: {dry:?}", id.short()))
            .clone()
    };
    assert!(incomplete(&first.id).tree_lost, "{dry:?}");
    let second_missing = incomplete(&second.id);
    assert_eq!(second_missing.resource, "volume.a");
    assert!(!second_missing.tree_lost);
    assert!(second_missing.missing_blobs >= 3, "{dry:?}");
    assert_eq!(
        backend.list(FileKind::Index).unwrap(),
        index_before,
        "dry run"
    );

    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.incomplete, dry.incomplete);
    assert_eq!(backend.list(FileKind::Index).unwrap().len(), 1);
    assert!(
        !repository
            .repair(RepairOptions::default())
            .unwrap()
            .index_changed(),
        "idempotent"
    );

    // The next backup of the same data stores the lost blobs again: the
    // second snapshot is whole again; the first, whose tree is gone, is
    // forgotten, and the repository is clean.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let third = backup(&repository, &dir, "volume.a");
    assert!(third.summary.added_bytes > 3 << 20, "{:?}", third.summary);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let after = repository.repair(dry_run()).unwrap();
    assert_eq!(after.incomplete.len(), 1, "{after:?}");
    assert_eq!(after.incomplete[0].id, first.id);
    repository.forget(std::slice::from_ref(&first.id)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &second, dir.path());
    restore_equals(&repository, &third, dir.path());
}

#[test]
fn repair_indexes_packs_no_index_names_and_replaces_damaged_index_files() {
    let (backend, _, dir, snapshot) = backed_up();
    let index = backend.list(FileKind::Index).unwrap();
    backend.tamper(FileKind::Index, &index[0], |bytes| bytes[30] ^= 1);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(!repository.check(CheckOptions::default()).unwrap().is_ok());
    assert!(repository.prune().is_err());

    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.damaged_index_files, 1);
    assert!(!repaired.packs_added.is_empty(), "{repaired:?}");
    assert!(repaired.incomplete.is_empty(), "{repaired:?}");
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    repository.prune().unwrap();
    restore_equals(&repository, &snapshot, dir.path());
}

#[test]
fn repair_does_not_drop_what_it_could_not_read() {
    let (backend, repository, dir, snapshot) = backed_up();
    // Every pack read fails (a flaky disk): the packs are there, their
    // headers unreadable; the index's entries for them stand.
    let flaky: Arc<dyn Backend> = Arc::new(FaultyBackend::new(
        backend.clone(),
        Faults {
            fail_loads: Some(FileKind::Pack),
            ..Faults::default()
        },
    ));
    let repository_on_flaky =
        Repository::open(flaky, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    let repaired = repository_on_flaky
        .repair(RepairOptions::default())
        .unwrap();
    assert!(repaired.packs_unreadable.is_empty(), "{repaired:?}");
    assert!(!repaired.index_changed(), "{repaired:?}");
    drop(repository);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &snapshot, dir.path());

    // A pack whose header is destroyed and that no index describes is
    // reported, and left for prune.
    let pack = biggest_pack(&backend);
    backend.tamper(FileKind::Pack, &pack, |bytes| {
        let n = bytes.len();
        bytes[n - 10] ^= 1;
    });
    for name in backend.list(FileKind::Index).unwrap() {
        backend.remove(FileKind::Index, &name).unwrap();
    }
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.packs_unreadable.len(), 1, "{repaired:?}");
    assert_eq!(repaired.packs_unreadable[0].id, pack);
    assert_eq!(repaired.incomplete.len(), 1, "{repaired:?}");
}

#[test]
fn a_snapshot_whose_tags_lifeboat_never_writes_is_damaged_and_the_others_are_read() {
    let (_, repository, dir, _) = backed_up();
    let mut tagged = backup(&repository, &dir, "volume.b");
    tagged.source.tags = vec!["release=v1.4.2".into()];
    tagged.id = repository.save_snapshot(&tagged).unwrap();
    let mut hostile = tagged.clone();
    hostile.source.tags = vec!["release=v1\u{1b}[2J".into()];
    hostile.id = repository.save_snapshot(&hostile).unwrap();

    let read = repository.snapshots().unwrap();
    assert!(read.contains(&tagged));
    assert!(!read.iter().any(|s| s.id == hostile.id));
    let damaged = repository.damaged_snapshots().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].id, hostile.id);
    assert!(
        damaged[0].detail.contains("a value holds only"),
        "{}",
        damaged[0].detail
    );
}
