//! Copies between repositories (memory and fault-injecting backends, no
//! Docker): every kind of snapshot comes back from the target as it went
//! into the source, only missing blobs are sent, and an interrupted or
//! damaged copy leaves no snapshot in the target.

use super::backend::memory::MemoryBackend;
use super::tests::quiet;
use super::trust_tests::{backup, content, read_all};
use super::*;

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
