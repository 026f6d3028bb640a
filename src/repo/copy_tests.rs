//! Copies between repositories (memory and fault-injecting backends, no
//! Docker): every kind of snapshot comes back from the target as it went
//! into the source, only missing blobs are sent, and an interrupted or
//! damaged copy leaves no snapshot in the target.

use super::backend::faulty::{Faults, FaultyBackend};
use super::backend::memory::MemoryBackend;
use super::tests::{self, quiet};
use super::trust_tests::{backed_up, backup, content, read_all};
use super::*;
use std::path::Path;

fn repository(passphrase: &str) -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some(passphrase)).unwrap();
    let repository =
        Repository::open(backend.clone(), Some(passphrase), RepoOptions::default()).unwrap();
    (backend, repository)
}

/// A tree snapshot's restore as a tar stream: the bytes a restore writes.
fn restored_tar(repository: &Repository, snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    repository
        .restore_tar(snapshot, "root", &mut out, &quiet())
        .unwrap();
    out
}

/// A target repository seen through a backend that injects `faults`,
/// and the backend underneath, which does not.
fn faulty_target(faults: Faults) -> (Arc<MemoryBackend>, Repository) {
    let (backend, _) = repository("target");
    let faulty = Arc::new(FaultyBackend::new(backend.clone(), faults));
    let target = Repository::open(faulty, Some("target"), RepoOptions::default()).unwrap();
    (backend, target)
}

/// Copies `snapshot`, which must fail with an error of `class`.
fn failed_copy(
    source: &Repository,
    target: &Repository,
    snapshot: &Snapshot,
    class: crate::failure::FailureClass,
) -> RepoError {
    let error = source
        .copy_snapshot(target, snapshot, &quiet())
        .unwrap_err();
    assert_eq!(error.class(), class, "{error}");
    error
}

/// What a copy must keep of the source snapshot.
fn assert_same_moment(copied: &Snapshot, original: &Snapshot) {
    assert_eq!(copied.time, original.time);
    assert_eq!(copied.resource, original.resource);
    assert_eq!(copied.hostname, original.hostname);
    assert_eq!(copied.source, original.source);
    assert_eq!(copied.content, original.content);
    assert_eq!(copied.summary.files, original.summary.files);
    assert_eq!(copied.summary.bytes, original.summary.bytes);
}

#[test]
fn a_tree_snapshot_copied_between_repositories_of_different_keys_restores_identically() {
    let (_, source) = repository("source passphrase");
    let (_, target) = repository("target passphrase");
    let dir = content();
    let mut original = backup(&source, &dir, "volume.a");
    original.source.run = Some("run-1".into());
    original.source.tags = vec!["nightly".into()];
    // Stored again with the run: copies are matched by resource, time and run.
    original.id = source.save_snapshot(&original).unwrap();

    let copied = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert!(copied.blobs_sent > 0);
    assert!(copied.bytes_sent > 3 << 20, "{}", copied.bytes_sent);
    assert_same_moment(&copied.snapshot, &original);
    assert_eq!(copied.snapshot.summary.added_bytes, copied.bytes_sent);
    assert_eq!(
        target.find_snapshot(&copied.snapshot.id.0).unwrap(),
        copied.snapshot
    );
    assert_eq!(
        restored_tar(&target, &copied.snapshot),
        restored_tar(&source, &original)
    );
    assert!(target.check(read_all()).unwrap().is_ok());

    // The target holds it: nothing is sent, the same snapshot comes back.
    let again = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert_eq!((again.blobs_sent, again.bytes_sent), (0, 0));
    assert_eq!(again.snapshot.id, copied.snapshot.id);
    assert_eq!(target.snapshots().unwrap().len(), 1);
}

/// A repository with the keys (and id) of `source`'s, but none of its
/// data: what a repository directory copied before any backup is.
fn twin(source: &MemoryBackend, passphrase: &str) -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    for kind in [FileKind::Key, FileKind::Config] {
        for name in source.list(kind).unwrap() {
            let bytes = source.load(kind, &name, None).unwrap();
            backend.save(kind, &name, &bytes).unwrap();
        }
    }
    let repository =
        Repository::open(backend.clone(), Some(passphrase), RepoOptions::default()).unwrap();
    (backend, repository)
}

#[test]
fn with_one_id_key_ids_and_trees_are_kept_and_held_blobs_are_not_sent() {
    let (source_backend, source) = repository("shared");
    let (_, target) = twin(&source_backend, "shared");
    let dir = content();
    let original = backup(&source, &dir, "volume.a");
    // The target already holds the big file's content (backed up into it directly).
    let direct = backup(&target, &dir, "volume.other");

    let copied = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert_eq!(copied.snapshot.tree, original.tree);
    assert_eq!(copied.blobs_sent, 0, "every blob was there already");
    assert_same_moment(&copied.snapshot, &original);
    assert_eq!(
        restored_tar(&target, &copied.snapshot),
        restored_tar(&source, &original)
    );
    assert!(target.find_snapshot(&direct.id.0).is_ok());
    assert!(target.check(read_all()).unwrap().is_ok());
}

#[test]
fn plaintext_repositories_share_ids_and_copies_to_and_from_encrypted_ones_rewrite_them() {
    let plaintext = || {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), None).unwrap();
        Repository::open(backend, None, RepoOptions::default()).unwrap()
    };
    let (source, plain_target) = (plaintext(), plaintext());
    let (_, encrypted) = repository("encrypted");
    let dir = content();
    let original = backup(&source, &dir, "volume.a");
    let expected = restored_tar(&source, &original);

    let kept = source
        .copy_snapshot(&plain_target, &original, &quiet())
        .unwrap();
    assert_eq!(kept.snapshot.tree, original.tree);
    let rewritten = source
        .copy_snapshot(&encrypted, &original, &quiet())
        .unwrap();
    assert_ne!(rewritten.snapshot.tree, original.tree);
    // And back again, into a plaintext repository that holds it already.
    let back = encrypted
        .copy_snapshot(&plain_target, &rewritten.snapshot, &quiet())
        .unwrap();
    assert_eq!(back.snapshot.id, kept.snapshot.id);
    for (repository, snapshot) in [
        (&plain_target, &kept.snapshot),
        (&encrypted, &rewritten.snapshot),
    ] {
        assert_eq!(restored_tar(repository, snapshot), expected);
        assert!(repository.check(read_all()).unwrap().is_ok());
    }
}

#[test]
fn a_stream_snapshot_is_copied_and_restores_byte_for_byte() {
    let (_, source) = repository("source");
    let (_, target) = repository("target");
    let dump = super::image::tests::noise(5 << 20, 3);
    let original = source
        .backup_stream(dump.as_slice(), tests::source("dump.orders"), &quiet())
        .unwrap();
    let copied = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert_same_moment(&copied.snapshot, &original);
    let mut out = Vec::new();
    target
        .restore_stream(&copied.snapshot, &mut out, &quiet())
        .unwrap();
    assert_eq!(out, dump);

    // The next dump shares most chunks with the copied one: only the
    // changed ones are sent.
    let mut next = dump.clone();
    next[4 << 20..(4 << 20) + 64].copy_from_slice(&[9; 64]);
    let changed = source
        .backup_stream(next.as_slice(), tests::source("dump.orders"), &quiet())
        .unwrap();
    let second = source.copy_snapshot(&target, &changed, &quiet()).unwrap();
    assert!(
        second.blobs_sent <= 3 && second.bytes_sent < copied.bytes_sent / 2,
        "{second:?}"
    );
    let mut out = Vec::new();
    target
        .restore_stream(&second.snapshot, &mut out, &quiet())
        .unwrap();
    assert_eq!(out, next);
}

#[test]
fn an_image_snapshot_is_copied_and_comes_back_as_the_same_archive() {
    let (_, source) = repository("source");
    let (_, target) = repository("target");
    let layer = super::image::tests::noise(2 << 20, 4);
    let (archive, image_id) = super::image::tests::archive(&[&layer], "app:1");
    let image_source = SnapshotSource {
        resource: "image.app".into(),
        kind: "image".into(),
        version: Some(image_id.clone()),
        ..SnapshotSource::default()
    };
    let original = source
        .backup_image(
            archive.as_slice(),
            &image_id,
            &["app:1".into()],
            image_source,
            &quiet(),
        )
        .unwrap();
    let copied = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert_same_moment(&copied.snapshot, &original);
    assert_eq!(
        target.stored_image(&copied.snapshot).unwrap(),
        source.stored_image(&original).unwrap()
    );
    let restore = |repository: &Repository, snapshot: &Snapshot| {
        let mut out = Vec::new();
        repository
            .restore_image(snapshot, &["app:1".into()], &mut out, &quiet())
            .unwrap();
        out
    };
    assert_eq!(
        restore(&target, &copied.snapshot),
        restore(&source, &original)
    );
}

#[test]
fn an_interrupted_copy_leaves_no_snapshot_and_the_next_one_reuses_what_it_sent() {
    let (_, source, _dir, original) = backed_up();
    // Saves: the lock, then the data and tree packs; the index file after
    // them fails.
    let (target_backend, target) = faulty_target(Faults {
        fail_saves_after: Some(3),
        ..Faults::default()
    });
    failed_copy(
        &source,
        &target,
        &original,
        crate::failure::FailureClass::RepositoryUnavailable,
    );
    drop(target);
    assert!(target_backend.list(FileKind::Snapshot).unwrap().is_empty());
    assert_eq!(target_backend.list(FileKind::Pack).unwrap().len(), 2);

    let target = Repository::open(
        target_backend.clone(),
        Some("target"),
        RepoOptions::default(),
    )
    .unwrap();
    let copied = source.copy_snapshot(&target, &original, &quiet()).unwrap();
    assert_eq!(copied.blobs_sent, 0, "the pack already sent is reused");
    assert_eq!(
        restored_tar(&target, &copied.snapshot),
        restored_tar(&source, &original)
    );
    assert!(target.check(read_all()).unwrap().is_ok());
}

#[test]
fn a_copy_the_target_does_not_read_back_writes_no_snapshot() {
    let (_, source, _dir, original) = backed_up();
    // A lying disk: packs are stored cut in half, and the save says done.
    let (target_backend, target) = faulty_target(Faults {
        short_writes: Some(FileKind::Pack),
        ..Faults::default()
    });
    let error = failed_copy(
        &source,
        &target,
        &original,
        crate::failure::FailureClass::Integrity,
    );
    assert!(error.to_string().contains("does not verify"), "{error}");
    assert!(target_backend.list(FileKind::Snapshot).unwrap().is_empty());
}

#[test]
fn a_damaged_source_blob_is_an_integrity_error_and_the_target_gets_no_snapshot() {
    let (source_backend, source, _dir, original) = backed_up();
    let (target_backend, target) = repository("target");
    super::damage_tests::flip_a_bit(&source_backend, &source);

    let error = failed_copy(
        &source,
        &target,
        &original,
        crate::failure::FailureClass::Integrity,
    );
    let message = error.to_string();
    assert!(message.contains(original.id.short()), "{message}");
    assert!(message.contains("volume.a"), "{message}");
    assert!(message.contains("big.bin"), "{message}");
    assert!(target_backend.list(FileKind::Snapshot).unwrap().is_empty());
    assert!(target.snapshots().unwrap().is_empty());
}

#[test]
fn with_different_keys_the_next_copy_takes_ids_from_the_earlier_one_and_reads_no_data() {
    let (source_backend, source) = repository("source");
    let (_, target) = repository("target");
    let dir = content();
    let first = backup(&source, &dir, "volume.a");
    source.copy_snapshot(&target, &first, &quiet()).unwrap();
    let next = backup(&source, &dir, "volume.a");
    // Were the copy to read the big file's data, it would find it damaged.
    super::damage_tests::flip_a_bit(&source_backend, &source);

    let copied = source.copy_snapshot(&target, &next, &quiet()).unwrap();
    assert_eq!((copied.blobs_sent, copied.bytes_sent), (0, 0));
    assert_same_moment(&copied.snapshot, &next);
    super::trust_tests::restore_equals(&target, &copied.snapshot, dir.path());
    assert!(target.check(read_all()).unwrap().is_ok());
}

/// Peak resident memory since the last reset, in MiB (Linux).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        >> 10
}

/// CPU seconds this process has used (user and system): on a machine
/// shared with other work, a steadier measure than the wall clock.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; nothing else is touched.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Starts a new peak for [`peak_rss_mib`].
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// The figures of docs/repository-format.md, "Copies between
/// repositories": a backup of the directory `LIFEBOAT_COPY_FIGURES` names
/// (the benchmark's reference volume: `../shared/bench/gen.py DIR`) into a
/// local repository, then copies of it into local repositories with
/// another key and with the same id key, first and again. Run with
/// `LIFEBOAT_COPY_FIGURES=DIR cargo test --lib copy_figures -- --ignored --nocapture`.
#[test]
#[ignore = "figures: needs a dataset directory in LIFEBOAT_COPY_FIGURES"]
fn copy_figures() {
    use super::backend::local::LocalBackend;
    let data = std::env::var("LIFEBOAT_COPY_FIGURES").expect("LIFEBOAT_COPY_FIGURES=DIR");
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let local = |name: &str, passphrase: &str| {
        let backend = Arc::new(LocalBackend::new(work.path().join(name)));
        Repository::init(backend.clone(), Some(passphrase)).unwrap();
        (
            backend.clone(),
            Repository::open(backend, Some(passphrase), RepoOptions::default()).unwrap(),
        )
    };
    let (_, source) = local("source", "source");
    let (started, cpu) = (std::time::Instant::now(), cpu_seconds());
    let snapshot = source
        .backup_dir(Path::new(&data), tests::source("volume.data"), &quiet())
        .unwrap();
    eprintln!(
        "backup: {} files, {} bytes in {:.1}s, {:.1} CPU s",
        snapshot.summary.files,
        snapshot.summary.bytes,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
    let (_, other) = local("other-key", "other");
    // The same id key: a repository set up from the source's keys and config.
    let same_dir = work.path().join("same-key");
    for dir in ["keys", ""] {
        std::fs::create_dir_all(same_dir.join(dir)).unwrap();
    }
    for entry in std::fs::read_dir(work.path().join("source/keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), same_dir.join("keys").join(entry.file_name())).unwrap();
    }
    std::fs::copy(work.path().join("source/config"), same_dir.join("config")).unwrap();
    let same = Repository::open(
        Arc::new(LocalBackend::new(&same_dir)),
        Some("source"),
        RepoOptions::default(),
    )
    .unwrap();
    for (label, target) in [("another key", &other), ("the same id key", &same)] {
        for run in ["first", "again"] {
            reset_peak_rss();
            let (started, cpu) = (std::time::Instant::now(), cpu_seconds());
            let copied = source.copy_snapshot(target, &snapshot, &quiet()).unwrap();
            eprintln!(
                "copy into a repository with {label}, {run}: {:.1}s, {:.1} CPU s, {} blobs, {} \
                 bytes sent, peak {} MiB",
                started.elapsed().as_secs_f64(),
                cpu_seconds() - cpu,
                copied.blobs_sent,
                copied.bytes_sent,
                peak_rss_mib()
            );
            if run == "first" {
                // A new snapshot of the same content: what a daily copy of
                // an unchanged volume costs.
                let mut next = snapshot.clone();
                next.time += chrono::Duration::seconds(1);
                next.id = source.save_snapshot(&next).unwrap();
                reset_peak_rss();
                let (started, cpu) = (std::time::Instant::now(), cpu_seconds());
                let copied = source.copy_snapshot(target, &next, &quiet()).unwrap();
                eprintln!(
                    "copy into a repository with {label}, next snapshot of unchanged content: \
                     {:.1}s, {:.1} CPU s, {} blobs, {} bytes sent, peak {} MiB",
                    started.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu,
                    copied.blobs_sent,
                    copied.bytes_sent,
                    peak_rss_mib()
                );
            }
        }
    }
}
