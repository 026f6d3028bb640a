//! Several pack saves and loads in flight (issue 23): what the backend's
//! `requests_in_flight` allows overlaps, never more, and a save that fails
//! among others fails the backup without an index naming a missing pack.

use super::backend::faulty::{Faults, FaultyBackend};
use super::backend::memory::MemoryBackend;
use super::image::tests::noise;
use super::tests::{quiet, source};
use super::trust_tests::read_all;
use super::*;
use std::collections::HashSet;
use std::time::Duration;

const PASSPHRASE: &str = "uploads";

/// A directory holding one file of incompressible content that fills
/// `packs` packs and part of one more, and that content.
fn packs_of_noise(packs: usize) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let content = noise(packs * pack::TARGET_SIZE + pack::TARGET_SIZE / 2, 23);
    std::fs::write(dir.path().join("big.bin"), &content).unwrap();
    (dir, content)
}

/// Restores `snapshot` and says whether its file holds `content`.
fn restores_as(repository: &Repository, snapshot: &Snapshot, content: &[u8]) -> bool {
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(snapshot, &out.path().join("out"), &quiet())
        .unwrap();
    std::fs::read(out.path().join("out/big.bin")).unwrap() == content
}

/// A fresh repository in memory, and a handle on it that keeps three pack
/// saves in flight, the first three waiting for each other (slow uploads),
/// and fails pack save number `fail_pack_save` if one is given.
fn three_uploads_at_once(
    fail_pack_save: Option<u64>,
) -> (Arc<MemoryBackend>, Arc<FaultyBackend>, Repository) {
    let inner = Arc::new(MemoryBackend::default());
    Repository::init(inner.clone(), Some(PASSPHRASE)).unwrap();
    let faults = Faults {
        hold_pack_saves: Some(3),
        fail_pack_save,
        requests_in_flight: Some(3),
        ..Faults::default()
    };
    let faulty = Arc::new(FaultyBackend::new(inner.clone(), faults));
    let repository =
        Repository::open(faulty.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    (inner, faulty, repository)
}

#[test]
fn pack_saves_overlap_up_to_what_the_backend_takes_and_the_backup_restores() {
    let (_, faulty, repository) = three_uploads_at_once(None);
    let (dir, data) = packs_of_noise(3);
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.big"), &quiet())
        .unwrap();
    assert!(
        snapshot.summary.added_bytes > data.len() as u64,
        "{:?}",
        snapshot.summary
    );
    // Three packs uploading at once (the first three saves wait for each
    // other) and never more (memory stays bounded).
    assert_eq!(faulty.most_pack_saves_at_once(), 3);
    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(restores_as(&repository, &snapshot, &data));
}

#[test]
fn a_pack_save_failing_among_others_fails_the_backup_and_no_index_names_a_missing_pack() {
    // The second pack's upload fails while the first and third are in flight.
    let (inner, faulty, repository) = three_uploads_at_once(Some(1));
    let (dir, data) = packs_of_noise(3);
    let error = repository
        .backup_dir(dir.path(), source("volume.big"), &quiet())
        .unwrap_err();
    assert!(
        error.to_string().contains("writing pack")
            && error.to_string().contains("this pack's upload failed"),
        "{error}"
    );
    assert_eq!(faulty.most_pack_saves_at_once(), 3);

    // Seen afresh: no snapshot, and every pack an index names is there whole.
    let after = Repository::open(inner.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    assert!(after.snapshots().unwrap().is_empty());
    let present: HashSet<String> = inner.list(FileKind::Pack).unwrap().into_iter().collect();
    let indexed: HashSet<String> = after.index().pack_sizes.keys().cloned().collect();
    assert!(
        indexed.is_subset(&present),
        "indexed {indexed:?}, present {present:?}"
    );
    // The uploads that were in flight beside the failed one finished and
    // were indexed, so the next backup reuses them.
    assert!(!indexed.is_empty());
    let report = after.check(read_all()).unwrap();
    assert!(report.is_ok(), "{report:?}");

    // The next backup, on a store that works again, completes and restores.
    let snapshot = after
        .backup_dir(dir.path(), source("volume.big"), &quiet())
        .unwrap();
    assert!(restores_as(&after, &snapshot, &data));
    assert!(after.check(read_all()).unwrap().is_ok());
}

#[test]
fn a_restore_reads_as_many_ranges_at_once_as_the_backend_takes() {
    let inner = Arc::new(MemoryBackend::default());
    Repository::init(inner.clone(), Some(PASSPHRASE)).unwrap();
    let writer = Repository::open(inner.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    let (dir, content) = packs_of_noise(1);
    let snapshot = writer
        .backup_dir(dir.path(), source("volume.big"), &quiet())
        .unwrap();

    let faulty = Arc::new(FaultyBackend::new(
        inner,
        Faults {
            delay: Some(Duration::from_millis(40)),
            requests_in_flight: Some(4),
            ..Faults::default()
        },
    ));
    let reader =
        Repository::open(faulty.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    assert!(restores_as(&reader, &snapshot, &content));
    let most = faulty.most_pack_loads_at_once();
    assert!((2..=4).contains(&most), "{most} pack loads at once");
}
