//! Repository tests on memory, local and fault-injecting backends (no Docker).

use super::backend::faulty::{Faults, FaultyBackend};
use super::backend::local::LocalBackend;
use super::backend::memory::MemoryBackend;
use super::trust_tests::read_all;
use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PASSPHRASE: &str = "test passphrase";

pub(super) fn quiet() -> impl Fn(Progress) + Sync {
    |_| {}
}

/// `length` bytes that do not compress (xorshift from `state`).
pub(super) fn random_bytes(length: usize, state: &mut u64) -> Vec<u8> {
    (0..length)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

pub(super) fn source(resource: &str) -> SnapshotSource {
    SnapshotSource {
        resource: resource.to_string(),
        kind: "volume".into(),
        name: "test".into(),
        ..SnapshotSource::default()
    }
}

fn open(backend: Arc<dyn Backend>) -> Repository {
    Repository::init(backend.clone(), Some(PASSPHRASE)).unwrap();
    Repository::open(backend, Some(PASSPHRASE), RepoOptions::default()).unwrap()
}

fn memory() -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    let repository = open(backend.clone());
    (backend, repository)
}

/// A tree with what matters: modes with special bits, owners, links,
/// empty dirs, long and non-UTF-8 names, a multi-chunk file.
fn tricky_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let fs = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    fs("a.txt", b"SECRET-CONTENT-MARKER alpha\n", 0o644);
    fs("bin/suid", b"#!/bin/sh\n", 0o4755);
    fs("bin/sgid", b"#!/bin/sh\n", 0o2711);
    fs(&format!("long/{}", "x".repeat(240)), b"long", 0o600);
    fs("ünï/名前.txt", "ü".as_bytes(), 0o644);
    let mut big = Vec::new();
    let mut x = 1u64;
    for _ in 0..(5 << 20) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        big.push((x >> 56) as u8);
    }
    fs("big.bin", &big, 0o644);
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("a.txt"), root.join("hard")).unwrap();
    let raw = std::ffi::OsStr::from_bytes(b"not-utf8-\xff\xfe");
    std::fs::write(root.join(raw), b"raw name").unwrap();
    std::os::unix::fs::chown(root.join("a.txt"), Some(1234), Some(5678)).unwrap();
    let time = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    for p in ["bin", "empty", "sticky", "long", "ünï"] {
        filetime::set_file_times(root.join(p), time, time).unwrap();
    }
}

/// [`tricky_tree`] in a directory of its own, backed up as `volume.a`.
fn tricky_backup(repository: &Repository) -> (tempfile::TempDir, Snapshot) {
    let source_dir = tempfile::tempdir().unwrap();
    tricky_tree(source_dir.path());
    let snapshot = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    (source_dir, snapshot)
}

/// Checks every byte of the repository, then restores `snapshot` into
/// `out/` of the directory returned; both must succeed.
fn checked_and_restored(repository: &Repository, snapshot: &Snapshot) -> tempfile::TempDir {
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let target = tempfile::tempdir().unwrap();
    repository
        .restore_dir(snapshot, &target.path().join("out"), &quiet())
        .unwrap();
    target
}

fn nodes(repository: &Repository, snapshot: &Snapshot) -> Vec<tree::Node> {
    let mut out = Vec::new();
    repository
        .for_each_node(snapshot, |n| {
            out.push(n);
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn directory_round_trip_is_exact() {
    let (_, repository) = memory();
    let (_source_dir, snapshot) = tricky_backup(&repository);
    assert_eq!(snapshot.summary.files, 7);
    let target = tempfile::tempdir().unwrap();
    let again = restored_and_backed_up(&repository, &snapshot, &target.path().join("out"));
    assert_eq!(snapshot.tree, again.tree);
}

#[test]
fn a_restore_frees_the_tree_it_walked_last_and_a_later_walk_reads_it_again() {
    let (_, repository) = memory();
    let (_source_dir, snapshot) = tricky_backup(&repository);
    let before = nodes(&repository, &snapshot);
    assert!(
        repository.tree_cache.lock().unwrap().is_some(),
        "a walk keeps its tree"
    );
    let target = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&snapshot, &target.path().join("out"), &quiet())
        .unwrap();
    assert!(
        repository.tree_cache.lock().unwrap().is_none(),
        "the restore's walk held the tree beside its buffers"
    );
    assert_eq!(nodes(&repository, &snapshot), before);
}

/// Restores `snapshot` into `restored` and backs that up again: the same
/// nodes mean the same metadata and content. Returns the new snapshot.
fn restored_and_backed_up(
    repository: &Repository,
    snapshot: &Snapshot,
    restored: &Path,
) -> Snapshot {
    repository
        .restore_dir(snapshot, restored, &quiet())
        .unwrap();
    let again = repository
        .backup_dir(restored, source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(nodes(repository, snapshot), nodes(repository, &again));
    again
}

/// A restore gives a new file its final mode when it creates it and
/// changes owner and mode only where they differ: into a setgid directory
/// (whose group new files take), with modes wider than the umask and
/// special bits, every file still ends exactly as it was backed up.
#[test]
fn a_restore_into_a_setgid_directory_ends_every_file_as_backed_up() {
    let (_, repository) = memory();
    let source_dir = tempfile::tempdir().unwrap();
    tricky_tree(source_dir.path());
    for (name, mode) in [("wide", 0o666), ("none", 0o000), ("exec", 0o755)] {
        let path = source_dir.path().join(name);
        std::fs::write(&path, name).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let snapshot = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = target.path().join("out");
    std::fs::create_dir(&restored).unwrap();
    std::os::unix::fs::chown(&restored, None, Some(4321)).unwrap();
    std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o2775)).unwrap();
    restored_and_backed_up(&repository, &snapshot, &restored);
}

#[test]
fn a_root_given_with_a_trailing_slash_gives_the_same_snapshot() {
    let (_, repository) = memory();
    let (source_dir, plain) = tricky_backup(&repository);
    let slashed = format!("{}/", source_dir.path().display());
    let with_slash = repository
        .backup_dir(std::path::Path::new(&slashed), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(plain.tree, with_slash.tree);
}

#[test]
fn tar_and_directory_backups_give_the_same_snapshot_content() {
    let (_, repository) = memory();
    let (_source_dir, direct) = tricky_backup(&repository);
    let mut stream = Vec::new();
    repository
        .restore_tar(&direct, "volume", &mut stream, &quiet())
        .unwrap();
    let through_tar = repository
        .backup_tar(stream.as_slice(), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(direct.tree, through_tar.tree);
    assert_eq!(through_tar.summary.new_blobs, 0, "nothing new to store");
}

#[test]
fn unchanged_second_backup_adds_almost_nothing() {
    let (_, repository) = memory();
    let (source_dir, first) = tricky_backup(&repository);
    assert!(first.summary.added_bytes > 5 << 20);
    let second = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(second.summary.added_bytes, 0);
    assert_eq!(repository.snapshots().unwrap().len(), 2);
}

#[test]
fn packs_of_an_interrupted_backup_are_adopted_not_stored_again() {
    let (backend, repository) = memory();
    let (source_dir, first) = tricky_backup(&repository);
    // As if killed before its index and snapshot were written: only packs.
    for name in backend.list(FileKind::Index).unwrap() {
        backend.remove(FileKind::Index, &name).unwrap();
    }
    backend.remove(FileKind::Snapshot, &first.id.0).unwrap();
    let repository =
        Repository::open(backend.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    let second = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    assert!(
        second.summary.added_bytes < 100_000,
        "stored again: {}",
        second.summary.added_bytes
    );
    assert_eq!(second.summary.new_blobs, 0);
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(nodes(&repository, &second), nodes(&repository, &first));
}

#[test]
fn wrong_passphrase_foreign_and_missing_locations_are_refused() {
    let backend = Arc::new(MemoryBackend::default());
    let _ = open(backend.clone());
    let wrong = Repository::open(backend.clone(), Some("nope"), RepoOptions::default());
    assert!(matches!(wrong, Err(RepoError::WrongPassphrase(_))));
    assert!(wrong.unwrap_err().to_string().contains("wrong passphrase"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let foreign: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    assert!(matches!(
        Repository::exists(foreign.as_ref()),
        Err(RepoError::Foreign(_))
    ));
    assert!(Repository::init(foreign, Some(PASSPHRASE)).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );

    let missing: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("new")));
    assert!(!Repository::exists(missing.as_ref()).unwrap());
    assert!(matches!(
        Repository::open(missing, Some(PASSPHRASE), RepoOptions::default()),
        Err(RepoError::NotFound(_))
    ));
}

#[test]
fn repository_files_hold_no_plaintext_of_content_or_names() {
    let dir = tempfile::tempdir().unwrap();
    let repository = open(Arc::new(LocalBackend::new(dir.path().join("repo"))));
    let (_source_dir, _) = tricky_backup(&repository);
    for entry in walkdir::WalkDir::new(dir.path())
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        for needle in [
            &b"SECRET-CONTENT-MARKER"[..],
            b"xxxxxxxxxxxxxxxxxxxx",
            "名前".as_bytes(),
            b"volume.a",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains {:?}",
                entry.path().display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Two snapshots, then damage done by `harm`; returns the check report and
/// what restoring the first snapshot gives.
fn damaged(
    harm: impl FnOnce(&MemoryBackend, &Repository),
) -> (CheckReport, Result<RestoreStats, RepoError>) {
    let (backend, repository) = memory();
    let (_source_dir, first) = tricky_backup(&repository);
    harm(&backend, &repository);
    let repository =
        match Repository::open(backend.clone(), Some(PASSPHRASE), RepoOptions::default()) {
            Ok(r) => r,
            Err(e) => {
                return (
                    CheckReport {
                        problems: vec![Problem {
                            what: "open".into(),
                            detail: e.to_string(),
                            affects: vec![],
                            advice: None,
                        }],
                        ..CheckReport::default()
                    },
                    Err(e),
                );
            }
        };
    let report = repository.check(read_all()).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = repository.restore_dir(&first, &target.path().join("out"), &quiet());
    (report, restored)
}

pub(super) fn biggest_pack(backend: &MemoryBackend) -> String {
    backend
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .max_by_key(|p| backend.stat(FileKind::Pack, p).unwrap())
        .unwrap()
}

#[test]
fn a_flipped_bit_in_a_pack_is_found_and_restore_fails_naming_the_file() {
    let (report, restored) = damaged(|backend, _| {
        let pack = biggest_pack(backend);
        backend.tamper(FileKind::Pack, &pack, |bytes| bytes[1000] ^= 0x01);
    });
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.affects.iter().any(|(_, r)| r == "volume.a")),
        "{report:?}"
    );
    let error = restored.unwrap_err().to_string();
    assert!(
        error.contains("big.bin") || error.contains("cannot restore"),
        "{error}"
    );
}

#[test]
fn truncated_and_deleted_packs_are_found() {
    let (report, restored) = damaged(|backend, _| {
        let pack = biggest_pack(backend);
        backend.tamper(FileKind::Pack, &pack, |bytes| {
            bytes.truncate(bytes.len() / 2)
        });
    });
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("truncated")),
        "{report:?}"
    );
    assert!(restored.is_err());

    let (report, restored) = damaged(|backend, _| {
        backend
            .remove(FileKind::Pack, &biggest_pack(backend))
            .unwrap();
    });
    assert!(
        report.problems.iter().any(|p| p.detail == "missing"),
        "{report:?}"
    );
    assert!(report.problems.iter().any(|p| !p.affects.is_empty()));
    assert!(restored.is_err());
}

#[test]
fn corrupt_index_and_snapshot_files_are_reported_not_trusted() {
    let (report, _) = damaged(|backend, _| {
        let index = backend.list(FileKind::Index).unwrap().remove(0);
        backend.tamper(FileKind::Index, &index, |bytes| bytes[40] ^= 0x80);
    });
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("does not match") || p.what.contains("index")),
        "{report:?}"
    );

    let (backend, repository) = memory();
    let (_source_dir, snapshot) = tricky_backup(&repository);
    backend.tamper(FileKind::Snapshot, &snapshot.id.0, |bytes| {
        bytes[20] ^= 0x01
    });
    let report = repository.check(CheckOptions::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.what.starts_with("snapshots/")),
        "{report:?}"
    );
    assert!(
        repository.snapshots().unwrap().is_empty(),
        "a corrupt snapshot is never used"
    );
    let damaged = repository.damaged_snapshots().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].id, snapshot.id);
}

#[test]
fn backend_faults_surface_and_leave_earlier_snapshots_intact() {
    let inner = Arc::new(MemoryBackend::default());
    let repository = open(inner.clone());
    let (source_dir, first) = tricky_backup(&repository);
    std::fs::write(source_dir.path().join("new.bin"), vec![7u8; 3 << 20]).unwrap();

    for faults in [
        Faults {
            fail_saves_after: Some(0),
            ..Faults::default()
        },
        Faults {
            disk_full_after: Some(0),
            ..Faults::default()
        },
    ] {
        let faulty: Arc<dyn Backend> = Arc::new(FaultyBackend::new(inner.clone(), faults.clone()));
        let repository =
            Repository::open(faulty, Some(PASSPHRASE), RepoOptions::default()).unwrap();
        let error = repository
            .backup_dir(source_dir.path(), source("volume.a"), &quiet())
            .unwrap_err();
        if faults.disk_full_after.is_some() {
            assert!(matches!(error, RepoError::NoSpace { .. }), "{error}");
            assert!(error.to_string().contains("no space left"));
        }
    }
    let repository =
        Repository::open(inner.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    assert_eq!(repository.snapshots().unwrap().len(), 1);
    let target = checked_and_restored(&repository, &first);

    // A lying disk that stores half of each pack is caught, never restored from.
    let faulty: Arc<dyn Backend> = Arc::new(FaultyBackend::new(
        inner.clone(),
        Faults {
            short_writes: Some(FileKind::Pack),
            ..Faults::default()
        },
    ));
    let lying = Repository::open(faulty, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    let bad = lying
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    let repository = Repository::open(inner, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    assert!(!repository.check(CheckOptions::default()).unwrap().is_ok());
    assert!(
        repository
            .restore_dir(&bad, &target.path().join("bad"), &quiet())
            .is_err()
    );
}

#[test]
fn locks_share_backups_exclude_deleters_and_stale_ones_are_removed() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some(PASSPHRASE)).unwrap();
    let options = |command: &str| RepoOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        command: command.to_string(),
        cache_dir: None,
    };
    let a = Repository::open(backend.clone(), Some(PASSPHRASE), options("apply a")).unwrap();
    let b = Repository::open(backend.clone(), Some(PASSPHRASE), options("prune b")).unwrap();
    let shared_a = a.lock_shared().unwrap();
    let shared_b = b.lock_shared().unwrap();
    drop(shared_b);
    match b.lock_exclusive() {
        Err(RepoError::Locked { holder }) => {
            assert_eq!(holder.command, "apply a");
            assert_eq!(holder.pid, std::process::id());
            let message = RepoError::Locked { holder }.to_string();
            assert!(
                message.contains("apply a") && message.contains("lifeboat unlock"),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(a.unlock().unwrap(), 0, "a live lock is never removed");
    drop(shared_a);
    let exclusive = b.lock_exclusive().unwrap();
    assert!(matches!(a.lock_shared(), Err(RepoError::Locked { .. })));
    drop(exclusive);

    // A lock whose process is gone is stale: it blocks nobody and unlock removes it.
    let dead = LockInfo {
        hostname: crate::host::hostname(),
        pid: 999_999_999,
        command: "killed".into(),
        started: chrono::Utc::now(),
        refreshed: chrono::Utc::now(),
        exclusive: true,
    };
    let bytes = a.keys().encrypt(&serde_json::to_vec(&dead).unwrap());
    backend
        .save(FileKind::Lock, &"5".repeat(32), &bytes)
        .unwrap();
    assert!(a.lock_shared().is_ok());
    assert_eq!(a.unlock().unwrap(), 1);
    assert!(backend.list(FileKind::Lock).unwrap().is_empty());
}

#[test]
fn a_run_lock_excludes_other_runs_but_not_its_own_locks() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some(PASSPHRASE)).unwrap();
    let options = |command: &str| RepoOptions {
        lock_timeout: std::time::Duration::ZERO,
        command: command.to_string(),
        cache_dir: None,
    };
    let first = Repository::open(backend.clone(), Some(PASSPHRASE), options("apply")).unwrap();
    let second = Repository::open(backend.clone(), Some(PASSPHRASE), options("restore")).unwrap();
    // A backup run: shared, and its own copies and forget go through it.
    first.lock_for_run(false).unwrap();
    drop(first.lock_shared().unwrap());
    // Another run's shared lock fits beside it; an exclusive one does not.
    second.lock_for_run(false).unwrap();
    second.unlock_run();
    match second.lock_for_run(true) {
        Err(RepoError::Locked { holder }) => assert_eq!(holder.command, "apply"),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Upgraded to exclusive (the run forgets): its own locks still pass,
    // anyone else's refuse at once, naming it.
    first.lock_for_run(true).unwrap();
    drop(first.lock_shared().unwrap());
    drop(first.lock_exclusive().unwrap());
    assert_eq!(backend.list(FileKind::Lock).unwrap().len(), 1);
    match second.lock_shared() {
        Err(RepoError::Locked { holder }) => {
            assert!(holder.exclusive);
            assert_eq!(holder.command, "apply");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    first.unlock_run();
    assert!(backend.list(FileKind::Lock).unwrap().is_empty());
    drop(second.lock_shared().unwrap());
}

#[test]
fn forget_and_prune_free_space_and_keep_the_rest_restorable() {
    let (backend, repository) = memory();
    let one = tempfile::tempdir().unwrap();
    tricky_tree(one.path());
    let first = repository
        .backup_dir(one.path(), source("volume.a"), &quiet())
        .unwrap();
    std::fs::remove_file(one.path().join("big.bin")).unwrap();
    std::fs::write(one.path().join("other.bin"), vec![9u8; 2 << 20]).unwrap();
    let second = repository
        .backup_dir(one.path(), source("volume.a"), &quiet())
        .unwrap();
    let before: u64 = backend
        .list(FileKind::Pack)
        .unwrap()
        .iter()
        .map(|p| backend.stat(FileKind::Pack, p).unwrap())
        .sum();
    repository.forget(std::slice::from_ref(&first.id)).unwrap();
    let stats = repository.prune().unwrap();
    assert!(stats.packs_deleted >= 1, "{stats:?}");
    let after: u64 = backend
        .list(FileKind::Pack)
        .unwrap()
        .iter()
        .map(|p| backend.stat(FileKind::Pack, p).unwrap())
        .sum();
    assert!(after < before - (4 << 20), "{before} → {after}");
    let reopened = Repository::open(backend, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    let target = checked_and_restored(&reopened, &second);
    assert_eq!(
        std::fs::read(target.path().join("out/other.bin")).unwrap(),
        vec![9u8; 2 << 20]
    );
}

#[test]
fn plaintext_repositories_are_an_explicit_choice_and_work() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), None).unwrap();
    let repository = Repository::open(backend, None, RepoOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"plain").unwrap();
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.p"), &quiet())
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&snapshot, &out.path().join("o"), &quiet())
        .unwrap();
    assert_eq!(std::fs::read(out.path().join("o/f")).unwrap(), b"plain");
}

#[test]
fn file_cache_skips_unchanged_files_and_never_changes_the_result() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some(PASSPHRASE)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cached = || {
        let options = RepoOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RepoOptions::default()
        };
        Repository::open(backend.clone(), Some(PASSPHRASE), options).unwrap()
    };
    let source_dir = tempfile::tempdir().unwrap();
    tricky_tree(source_dir.path());
    // Files changed within the last two seconds are never cached (they could
    // change again within the same timestamp tick).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let repository = cached();
    let first = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(first.summary.bytes_read, first.summary.bytes);

    let repository = cached();
    let second = repository
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(
        second.summary.bytes_read, 0,
        "every file came from the cache"
    );
    assert_eq!(second.tree, first.tree);
    assert_eq!(second.summary.bytes, first.summary.bytes);

    // Same size, new content: the new mtime and ctime make it a miss.
    std::fs::write(
        source_dir.path().join("a.txt"),
        b"SECRET-CONTENT-MARKER omega\n",
    )
    .unwrap();
    let third = cached()
        .backup_dir(source_dir.path(), source("volume.a"), &quiet())
        .unwrap();
    assert_eq!(third.summary.bytes_read, 28);
    let plain = open(backend.clone());
    let target = tempfile::tempdir().unwrap();
    plain
        .restore_dir(&third, &target.path().join("out"), &quiet())
        .unwrap();
    assert_eq!(
        std::fs::read(target.path().join("out/a.txt")).unwrap(),
        b"SECRET-CONTENT-MARKER omega\n"
    );
    // A cache from another source, or blobs gone from the index, only cost a read.
    let other = cached()
        .backup_dir(source_dir.path(), source("volume.b"), &quiet())
        .unwrap();
    assert_eq!(other.summary.bytes_read, other.summary.bytes);
    assert_eq!(other.tree, third.tree);
}

/// A writer busy in the tree while it is backed up directly: files removed,
/// recreated, appended to, hard links remade, a directory removed and made
/// again, in a loop until stopped.
fn churn(root: &Path, files: usize, stop: &std::sync::atomic::AtomicBool) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..files {
            let file = root.join(format!("f{i:04}"));
            match (i + round) % 3 {
                0 => {
                    let _ = std::fs::remove_file(&file);
                }
                1 => {
                    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&file) {
                        let _ = f.write_all(&vec![b'a'; 1 + i % 5000]);
                    }
                }
                _ => {
                    let _ = std::fs::write(&file, vec![b'w'; (round * 7 + i) % 9000]);
                    let link = root.join(format!("link{i:04}"));
                    let _ = std::fs::remove_file(&link);
                    let _ = std::fs::hard_link(&file, &link);
                }
            }
        }
        let dir = root.join("dir");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir(&dir);
        for i in 0..50 {
            let _ = std::fs::write(
                dir.join(format!("g{i}")),
                b"in a directory that comes and goes",
            );
        }
        round += 1;
    }
}

#[test]
fn a_tree_changing_under_a_direct_backup_is_stored_as_read_with_notes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_, repository) = memory();
    let source_dir = tempfile::tempdir().unwrap();
    let root = source_dir.path().to_path_buf();
    const FILES: usize = 600;
    for i in 0..FILES {
        std::fs::write(root.join(format!("f{i:04}")), vec![b'x'; 3000 + i]).unwrap();
    }
    let stop = AtomicBool::new(false);
    let mut notes = Vec::new();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| churn(&root, FILES, &stop));
        for _ in 0..5 {
            let snapshot = repository
                .backup_dir(&root, source("volume.a"), &quiet())
                .expect("a tree in use is copied, not refused");
            // What the snapshot records is what it restores: each file
            // holds the size recorded (stored as read).
            let target = tempfile::tempdir().unwrap();
            let restored = target.path().join("out");
            repository
                .restore_dir(&snapshot, &restored, &quiet())
                .unwrap();
            for node in nodes(&repository, &snapshot) {
                if node.kind == tree::NodeKind::File {
                    let path = restored.join(&node.path);
                    assert_eq!(
                        std::fs::metadata(&path).unwrap().len(),
                        node.size,
                        "{}",
                        node.path
                    );
                }
            }
            notes.extend(snapshot.notes);
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    });
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(
        notes
            .iter()
            .any(|n| matches!(n, TreeNote::VanishedWhileRead { .. })),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| matches!(n, TreeNote::ChangedWhileRead { .. })),
        "{notes:?}"
    );
}

/// A dump or a service's configuration is one file node at the root, not a
/// directory tree: `check` reads it as restores do, not through the tree
/// guard (which would call every stream snapshot damaged).
#[test]
fn check_passes_a_repository_holding_stream_snapshots() {
    let (_, repository) = memory();
    repository
        .backup_stream(
            &b"-- a dump\nCOPY t FROM stdin;\n"[..],
            source("dump.db"),
            &quiet(),
        )
        .unwrap();
    for options in [CheckOptions::default(), super::trust_tests::read_all()] {
        let report = repository.check(options).unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
}

/// A Docker-like archive of `root`: entries `volume/…`, the root first,
/// depth first in name order (as Docker writes them).
fn sorted_archive(root: &Path) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    let walk = walkdir::WalkDir::new(root).sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for entry in walk {
        let entry = entry.unwrap();
        let below = entry.path().strip_prefix(root).unwrap();
        let name = Path::new("volume").join(below);
        archive.append_path_with_name(entry.path(), name).unwrap();
    }
    archive.into_inner().unwrap()
}

/// Volume content with what excludes must leave out and what they must keep.
fn tree_with_excludable_content(root: &Path) {
    let fs = |p: &str, data: &[u8]| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
    };
    let signature = [exclude::CACHEDIR_SIGNATURE, b"\n# a cache\n"].concat();
    fs("cache/a", b"cached");
    fs("cache/sub/b", b"cached deeper");
    fs("x.tmp", b"scratch");
    fs("deep/er/y.tmp", b"scratch deeper");
    fs("deep/er/keep.txt", b"kept");
    fs("keep/file", b"kept");
    fs("sub/cache/z", b"kept: cache/** is anchored at the root");
    fs("tagged/.early", b"sorts before the marker");
    fs("tagged/0data", b"sorts before the marker");
    fs("tagged/CACHEDIR.TAG", &signature);
    fs("tagged/data/deep", b"sorts after the marker");
    fs("fake/CACHEDIR.TAG", b"no signature: an ordinary file");
    fs("fake/data", b"kept");
    fs("marked/.lifeboat-exclude", b"");
    fs("marked/stuff", b"left out");
    fs("logs/today", b"logs/ matches the directory only");
    fs("notes/logs", b"a file named logs is kept");
}

#[test]
fn a_tree_measured_many_directories_at_once_counts_what_the_backup_reads() {
    let (_, repository) = memory();
    let dir = tempfile::tempdir().unwrap();
    // Wide and deep, so the measuring threads share the directories.
    for a in 0..6 {
        for b in 0..5 {
            let deeper = dir.path().join(format!("d{a}/e{b}/f"));
            std::fs::create_dir_all(&deeper).unwrap();
            for f in 0..4 {
                let bytes = vec![b'x'; a * 100 + b * 10 + f];
                std::fs::write(deeper.join(format!("{f}")), &bytes).unwrap();
                std::fs::write(deeper.with_file_name(format!("g{f}")), &bytes).unwrap();
            }
        }
    }
    // Links are not followed: neither the directory nor the file counts twice.
    std::os::unix::fs::symlink(dir.path().join("d5"), dir.path().join("d5-link")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("d5/e4/g3"), dir.path().join("g3-link")).unwrap();
    tree_with_excludable_content(&dir.path().join("mixed"));
    let mut excluding = source("volume.a");
    excluding.excludes = ExcludeRules {
        exclude: vec!["mixed/cache/**".into(), "*.tmp".into(), "d2/".into()],
        exclude_if_present: vec![".lifeboat-exclude".into(), "CACHEDIR.TAG".into()],
    };
    for source in [source("volume.a"), excluding] {
        let snapshot = repository
            .backup_dir(dir.path(), source.clone(), &quiet())
            .unwrap();
        assert_eq!(
            tree_size(dir.path(), &source.excludes).unwrap(),
            snapshot.summary.bytes,
            "{:?}",
            source.excludes
        );
    }
    // A marker in the root leaves nothing to count.
    std::fs::write(dir.path().join(".lifeboat-exclude"), b"").unwrap();
    let marked = ExcludeRules {
        exclude: Vec::new(),
        exclude_if_present: vec![".lifeboat-exclude".into()],
    };
    assert_eq!(tree_size(dir.path(), &marked).unwrap(), 0);
}

/// Unmounts a test's mount however the test ends.
struct Mounted(std::ffi::CString);

impl Drop for Mounted {
    fn drop(&mut self) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_tree_is_measured_across_mounts_and_around_what_cannot_be_listed_as_the_backup_reads_it() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let (_, repository) = memory();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("top"), b"top file").unwrap();
    std::fs::create_dir_all(dir.path().join("closed/inside")).unwrap();
    std::fs::write(
        dir.path().join("closed/inside/file"),
        b"behind a closed door",
    )
    .unwrap();
    // A file system mounted inside the tree (where the tests may mount:
    // root): both walks go into it, as neither stops at mount boundaries.
    let mountpoint = dir.path().join("mounted");
    std::fs::create_dir(&mountpoint).unwrap();
    let target = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()).unwrap();
    let tmpfs = c"tmpfs";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let mounted = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    } == 0;
    let _unmount = mounted.then(|| Mounted(target.clone()));
    if mounted {
        std::fs::write(mountpoint.join("on another device"), b"mounted bytes").unwrap();
        assert_ne!(
            std::fs::metadata(&mountpoint).unwrap().dev(),
            std::fs::metadata(dir.path()).unwrap().dev()
        );
    }
    std::fs::set_permissions(dir.path().join("closed"), PermissionsExt::from_mode(0o000)).unwrap();
    let source = source("volume.a");
    // A directory the backup cannot list fails it (root lists it anyway);
    // the measure counts nothing there and goes on.
    let backed_up = repository.backup_dir(dir.path(), source.clone(), &quiet());
    let measured = tree_size(dir.path(), &source.excludes).unwrap();
    std::fs::set_permissions(dir.path().join("closed"), PermissionsExt::from_mode(0o700)).unwrap();
    let readable = b"top file".len() as u64 + if mounted { 13 } else { 0 };
    match backed_up {
        Ok(snapshot) => {
            assert_eq!(measured, snapshot.summary.bytes);
            assert_eq!(measured, readable + b"behind a closed door".len() as u64);
        }
        Err(error) => {
            assert!(error.to_string().contains("closed"), "{error}");
            assert_eq!(measured, readable);
        }
    }
    // A root that cannot be listed measures nothing, as before.
    assert_eq!(
        tree_size(&dir.path().join("nonexistent"), &source.excludes).unwrap(),
        0
    );
}

fn paths_of(repository: &Repository, snapshot: &Snapshot) -> Vec<String> {
    let mut paths = Vec::new();
    repository
        .list_tree(snapshot, "", true, |entry| paths.push(entry.path))
        .unwrap();
    paths
}

#[test]
fn excludes_leave_out_the_same_entries_read_directly_and_from_an_archive() {
    let (_, repository) = memory();
    let dir = tempfile::tempdir().unwrap();
    tree_with_excludable_content(dir.path());
    let mut excluding = source("volume.a");
    excluding.excludes = ExcludeRules {
        exclude: vec!["cache/**".into(), "*.tmp".into(), "logs/".into()],
        exclude_if_present: vec![".lifeboat-exclude".into(), "CACHEDIR.TAG".into()],
    };
    let direct = repository
        .backup_dir(dir.path(), excluding.clone(), &quiet())
        .unwrap();
    let archive = sorted_archive(dir.path());
    let through_tar = repository
        .backup_tar(archive.as_slice(), excluding.clone(), &quiet())
        .unwrap();
    assert_eq!(direct.tree, through_tar.tree, "the same tree either way");
    assert_eq!(
        tree_size(dir.path(), &excluding.excludes).unwrap(),
        direct.summary.bytes,
        "a progress total counts what the backup reads"
    );
    assert_eq!(direct.summary.files, through_tar.summary.files);
    assert_eq!(direct.summary.dirs, through_tar.summary.dirs);
    assert_eq!(direct.summary.bytes, through_tar.summary.bytes);
    assert_eq!(
        paths_of(&repository, &direct),
        [
            "cache",
            "deep",
            "deep/er",
            "deep/er/keep.txt",
            "fake",
            "fake/CACHEDIR.TAG",
            "fake/data",
            "keep",
            "keep/file",
            "notes",
            "notes/logs",
            "sub",
            "sub/cache",
            "sub/cache/z",
        ]
    );
    // Without rules, everything is there, and the archive gives it too.
    let whole = repository
        .backup_tar(archive.as_slice(), source("volume.a"), &quiet())
        .unwrap();
    assert!(paths_of(&repository, &whole).contains(&"tagged/data/deep".to_string()));
    assert_eq!(whole.summary.files, 17);
}

#[test]
fn a_marker_in_the_root_leaves_only_the_root_either_way() {
    let (_, repository) = memory();
    let dir = tempfile::tempdir().unwrap();
    tree_with_excludable_content(dir.path());
    std::fs::write(dir.path().join(".lifeboat-exclude"), b"").unwrap();
    let mut excluding = source("volume.a");
    excluding.excludes.exclude_if_present = vec![".lifeboat-exclude".into()];
    let direct = repository
        .backup_dir(dir.path(), excluding.clone(), &quiet())
        .unwrap();
    let through_tar = repository
        .backup_tar(sorted_archive(dir.path()).as_slice(), excluding, &quiet())
        .unwrap();
    assert_eq!(direct.tree, through_tar.tree);
    assert!(paths_of(&repository, &direct).is_empty());
    assert_eq!(direct.summary.dirs, 1, "the root alone");
}

#[test]
fn rules_recorded_in_a_snapshot_that_do_not_compile_fail_the_backup() {
    let (_, repository) = memory();
    let dir = tempfile::tempdir().unwrap();
    let mut bad = source("volume.a");
    bad.excludes.exclude = vec!["a[".into()];
    let error = repository
        .backup_dir(dir.path(), bad, &quiet())
        .unwrap_err();
    assert!(error.to_string().contains("not a valid glob"), "{error}");
}

#[test]
fn an_archives_hard_link_to_an_excluded_file_is_left_out_and_noted() {
    let (_, repository) = memory();
    let mut archive = tar::Builder::new(Vec::new());
    let mut entry = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        archive.append_data(&mut header, name, data).unwrap();
    };
    entry("volume/", tar::EntryType::Directory, None, b"");
    entry("volume/a.tmp", tar::EntryType::Regular, None, b"scratch");
    entry("volume/b", tar::EntryType::Link, Some("volume/a.tmp"), b"");
    entry("volume/c", tar::EntryType::Regular, None, b"kept");
    let stream = archive.into_inner().unwrap();
    let mut excluding = source("volume.a");
    excluding.excludes.exclude = vec!["*.tmp".into()];
    let snapshot = repository
        .backup_tar(stream.as_slice(), excluding, &quiet())
        .unwrap();
    assert_eq!(paths_of(&repository, &snapshot), ["c"]);
    assert!(
        snapshot
            .notes
            .iter()
            .any(|n| matches!(n, TreeNote::LinksToExcluded { paths } if paths.count == 1)),
        "{:?}",
        snapshot.notes
    );
}
