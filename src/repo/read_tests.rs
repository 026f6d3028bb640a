//! Reads planned by pack (issue 23): restores and copies read what they
//! need in a few long ranged requests, several at once, and fall back to
//! reading a blob alone when a long read fails, as before.

use super::backend::faulty::{Faults, FaultyBackend};
use super::backend::memory::MemoryBackend;
use super::image::tests::noise;
use super::tests::{quiet, source};
use super::*;

const PASSPHRASE: &str = "reads";

/// A directory of `files` files of `size` incompressible bytes each.
fn small_files(files: usize, size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..files {
        let sub = dir.path().join(format!("d{}", n / 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{n}")), noise(size, n as u64)).unwrap();
    }
    dir
}

/// A repository in memory, seen through a faulty backend that counts pack
/// loads and answers `requests_in_flight` as a remote store does.
pub(super) fn remote_like(faults: Faults) -> (Arc<MemoryBackend>, Arc<FaultyBackend>, Repository) {
    let inner = Arc::new(MemoryBackend::default());
    Repository::init(inner.clone(), Some(PASSPHRASE)).unwrap();
    let faults = Faults {
        requests_in_flight: Some(backend::REMOTE_REQUESTS_IN_FLIGHT),
        ..faults
    };
    let faulty = Arc::new(FaultyBackend::new(inner.clone(), faults));
    let repository =
        Repository::open(faulty.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    (inner, faulty, repository)
}

/// [`remote_like`] holding a snapshot of `files` small files (20 KiB of
/// noise each), and the directory they came from.
fn backed_up(
    faults: Faults,
    files: usize,
) -> (
    Arc<MemoryBackend>,
    Arc<FaultyBackend>,
    Repository,
    tempfile::TempDir,
    Snapshot,
) {
    let (inner, faulty, repository) = remote_like(faults);
    let dir = small_files(files, 20 << 10);
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.small"), &quiet())
        .unwrap();
    (inner, faulty, repository, dir, snapshot)
}

fn same_tree(a: &std::path::Path, b: &std::path::Path) {
    let listing = |root: &std::path::Path| {
        let mut found: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let name = e.path().strip_prefix(root).unwrap().display().to_string();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        found.sort();
        found
    };
    assert!(
        listing(a) == listing(b),
        "the restore differs from the source"
    );
}

/// Restores `snapshot` into a fresh directory; the pack loads and bytes
/// it took, and the directory.
fn counted_restore(
    faulty: &FaultyBackend,
    repository: &Repository,
    snapshot: &Snapshot,
) -> (u64, u64, tempfile::TempDir) {
    let (loads, bytes) = (faulty.pack_loads(), faulty.pack_bytes_loaded());
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(snapshot, &out.path().join("out"), &quiet())
        .unwrap();
    let loads = faulty.pack_loads() - loads;
    (loads, faulty.pack_bytes_loaded() - bytes, out)
}

/// Before reads were planned by pack this restore made 114 pack loads
/// (a request per batch of 256 KiB, tree blobs one at a time, twice).
#[test]
fn a_restore_of_a_thousand_small_files_makes_a_few_dozen_requests() {
    // Each call takes a moment, as a round trip does: reads that can
    // overlap do.
    let faults = Faults {
        delay: Some(std::time::Duration::from_millis(3)),
        ..Faults::default()
    };
    let (_, faulty, repository, dir, snapshot) = backed_up(faults, 1000);
    let packs = repository.list_files(FileKind::Pack).unwrap().files;
    assert!(packs.len() <= 3, "{} packs", packs.len());
    let (loads, bytes, out) = counted_restore(&faulty, &repository, &snapshot);
    same_tree(dir.path(), &out.path().join("out"));
    eprintln!("restore: {loads} pack loads, {bytes} bytes");
    assert!(loads <= 30, "{loads} pack loads");
    // Every stored byte about once (tree blobs twice: the restore checks
    // the tree before it writes), not whole packs per batch.
    let stored: u64 = packs
        .iter()
        .map(|p| faulty.stat(FileKind::Pack, p).unwrap())
        .sum();
    assert!(
        bytes <= stored + stored / 4,
        "{bytes} bytes read of {stored}"
    );
    // Reads went on at once, as many as the backend takes.
    assert!(faulty.most_pack_loads_at_once() >= 2);
    assert!(faulty.most_pack_loads_at_once() <= backend::REMOTE_REQUESTS_IN_FLIGHT as u64);
}

/// A long read that fails costs requests, never the restore: each of its
/// blobs is read alone, and a failed read is not damage.
#[test]
fn when_long_reads_fail_each_blob_is_read_alone_and_nothing_is_marked_damaged() {
    let faults = Faults {
        fail_pack_ranges_longer_than: Some(64 << 10),
        ..Faults::default()
    };
    let (_, faulty, repository, dir, snapshot) = backed_up(faults, 200);
    let (loads, _, out) = counted_restore(&faulty, &repository, &snapshot);
    same_tree(dir.path(), &out.path().join("out"));
    assert!(loads > 200, "{loads} pack loads: the blobs were read alone");
    let report = repository.check(check::CheckOptions::default()).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// A blob that does not decode from a long read is read alone, found
/// damaged, named, and leaves the index, as without read planning.
#[test]
fn a_damaged_blob_in_a_long_read_fails_the_restore_naming_the_file() {
    let (inner, faulty, repository, _dir, snapshot) = backed_up(Faults::default(), 200);
    let (_, blob) = super::damage_tests::flip_a_bit(&inner, &repository);
    let out = tempfile::tempdir().unwrap();
    let loads = faulty.pack_loads();
    let error = repository
        .restore_dir(&snapshot, &out.path().join("out"), &quiet())
        .unwrap_err();
    assert!(
        matches!(&error, RepoError::BadBlob { path, .. } if path.starts_with("d")),
        "{error}"
    );
    assert_eq!(error.class(), crate::failure::FailureClass::Integrity);
    assert!(faulty.pack_loads() - loads < 40);
    assert!(repository.index().locations(&blob.id).is_empty());
}

/// Copies a snapshot of 1000 small files from a remote-like repository
/// with `faults` into a fresh one, checks it restores to the source
/// directory; the pack loads of the source the copy made.
fn copied_and_restored(faults: Faults) -> u64 {
    let (_, faulty, source_repository, dir, snapshot) = backed_up(faults, 1000);
    let target_backend = Arc::new(MemoryBackend::default());
    Repository::init(target_backend.clone(), Some("target")).unwrap();
    let target = Repository::open(target_backend, Some("target"), RepoOptions::default()).unwrap();
    let loads = faulty.pack_loads();
    let copied = source_repository
        .copy_snapshot(&target, &snapshot, &quiet())
        .unwrap();
    let loads = faulty.pack_loads() - loads;
    let out = tempfile::tempdir().unwrap();
    target
        .restore_dir(&copied.snapshot, &out.path().join("out"), &quiet())
        .unwrap();
    same_tree(dir.path(), &out.path().join("out"));
    loads
}

/// A copy reads the source by pack too: a few dozen requests for a
/// thousand files, not one per blob.
#[test]
fn a_copy_reads_its_source_in_a_few_dozen_requests() {
    let loads = copied_and_restored(Faults::default());
    eprintln!("copy: {loads} pack loads of the source");
    assert!(loads <= 40, "{loads} pack loads");
}

/// Places read from the index are untrusted: a blob said to lie past its
/// pack's end is refused as the index loads, and a pack said to be larger
/// than it is gives a failed read (never a read of what the entry claims):
/// either way the restore fails naming what is wrong, and nothing panics.
#[test]
fn hostile_places_in_the_index_fail_the_restore_and_are_never_read() {
    type Change = fn(&mut index::IndexedPack);
    let past_the_end: Change = |pack| {
        let blob = &mut pack.blobs[0];
        blob.length = pack::MAX_BLOB;
    };
    let beyond_the_pack: Change = |pack| {
        pack.size = 1 << 40;
        let blob = &mut pack.blobs[0];
        blob.offset = u32::MAX - pack::MAX_BLOB;
        blob.length = pack::MAX_BLOB;
    };
    for change in [past_the_end, beyond_the_pack] {
        let (_, faulty, repository, _dir, snapshot) = backed_up(Faults::default(), 50);
        let names = repository.list_files(FileKind::Index).unwrap().files;
        let mut file =
            index::IndexFile::parse(&repository.load_file(FileKind::Index, &names[0]).unwrap())
                .unwrap();
        let pack = file
            .packs
            .iter_mut()
            .find(|p| p.blobs.iter().any(|b| b.kind == pack::BlobKind::Data))
            .unwrap();
        pack.blobs.sort_by_key(|b| b.kind == pack::BlobKind::Tree);
        change(pack);
        repository.save_index(&file).unwrap();
        for name in &names {
            faulty.remove(FileKind::Index, name).unwrap();
        }
        repository.reload_index().unwrap();
        let bytes = faulty.pack_bytes_loaded();
        let out = tempfile::tempdir().unwrap();
        let error = repository
            .restore_dir(&snapshot, &out.path().join("out"), &quiet())
            .unwrap_err();
        assert_eq!(
            error.class(),
            crate::failure::FailureClass::Integrity,
            "{error}"
        );
        assert!(
            faulty.pack_bytes_loaded() - bytes < 8 << 20,
            "{} bytes read",
            faulty.pack_bytes_loaded() - bytes
        );
    }
}

/// A repository in memory seen through the counting wrapper, as a remote
/// store: each call takes a moment, as a round trip does (calls that can
/// overlap do), and it takes a remote store's requests in flight.
pub(super) fn counted_remote() -> (
    Arc<MemoryBackend>,
    Arc<backend::counting::CountingBackend>,
    Repository,
) {
    let inner = Arc::new(MemoryBackend::default());
    Repository::init(inner.clone(), Some(PASSPHRASE)).unwrap();
    let faulty = Arc::new(FaultyBackend::new(
        inner.clone(),
        Faults {
            requests_in_flight: Some(backend::REMOTE_REQUESTS_IN_FLIGHT),
            delay: Some(std::time::Duration::from_millis(20)),
            ..Faults::default()
        },
    ));
    let counting = Arc::new(backend::counting::CountingBackend::new(faulty));
    let repository =
        Repository::open(counting.clone(), Some(PASSPHRASE), RepoOptions::default()).unwrap();
    (inner, counting, repository)
}

/// A tree like the reference volume's, small: many small files (text
/// that compresses, and noise) beside a few large ones, in directories.
fn reference_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..1200usize {
        let sub = dir.path().join(format!("d{}", n / 60));
        std::fs::create_dir_all(&sub).unwrap();
        let size = 1_000 + n * 7919 % 30_000;
        let data = if n % 3 == 0 {
            noise(size, n as u64)
        } else {
            format!("line {n} of a log file, status ok\n")
                .repeat(size / 30)
                .into_bytes()
        };
        std::fs::write(sub.join(format!("f{n}")), data).unwrap();
        if n % 300 == 150 {
            std::fs::write(sub.join("large.bin"), noise(6 << 20, n as u64)).unwrap();
        }
    }
    dir
}

/// Issue 23: a restore from a remote store reads each pack by the regions
/// the whole restore needs (not a batch's stretches), several at once:
/// counted on the in-memory backend through the counting wrapper, every
/// stored byte is read about once, in few requests per pack.
#[test]
fn a_remote_restore_reads_each_pack_region_once_with_several_reads_at_once() {
    let (_, counting, repository) = counted_remote();
    let dir = reference_like();
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.reference"), &quiet())
        .unwrap();
    let packs = repository.list_files(FileKind::Pack).unwrap().files;
    let stored: u64 = packs
        .iter()
        .map(|p| counting.stat(FileKind::Pack, p).unwrap())
        .sum();
    let before = counting.counts();
    counting.reset_most_loads_at_once();
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&snapshot, &out.path().join("out"), &quiet())
        .unwrap();
    let after = counting.counts();
    same_tree(dir.path(), &out.path().join("out"));
    let (loads, bytes) = (
        after.pack_loads - before.pack_loads,
        after.bytes_loaded - before.bytes_loaded,
    );
    eprintln!(
        "restore of {} packs ({stored} bytes): {loads} pack loads, {bytes} bytes, {} requests in all, \
         at most {} loads at once",
        packs.len(),
        after.requests() - before.requests(),
        after.most_loads_at_once
    );
    // A region is at most half a pack: two or three reads a pack.
    assert!(
        loads <= 3 * packs.len() as u64,
        "{loads} pack loads for {} packs",
        packs.len()
    );
    assert!(
        bytes <= stored + stored / 4,
        "{bytes} bytes read of {stored}"
    );
    // Reads overlap (how many depends on the scheduler of a busy machine:
    // four reader threads, each load taking the backend's delay).
    assert!(
        after.most_loads_at_once >= 2,
        "at most {} loads at once",
        after.most_loads_at_once
    );
}

/// A copy's reader holds one stretch of a pack at a time, never its whole
/// share of a batch: reads longer than [`copy::COPY_RUN`] fail here, and
/// the copy still makes a few dozen requests (none read a blob alone).
#[test]
fn a_copy_reads_and_hands_on_one_short_stretch_at_a_time() {
    let loads = copied_and_restored(Faults {
        fail_pack_ranges_longer_than: Some(copy::COPY_RUN),
        ..Faults::default()
    });
    assert!(loads <= 40, "{loads} pack loads: blobs were read alone");
}

/// An unchanged re-run reads the repository's run records and snapshots:
/// on a remote store several at once (each a round trip), in order, the
/// same records as one after the other.
#[test]
fn run_records_and_snapshots_load_several_at_once_from_a_remote_store() {
    let (inner, counting, repository) = counted_remote();
    let now = chrono::Utc::now();
    for n in 0..12 {
        let finished = now - chrono::Duration::minutes(n);
        let record = super::runs_tests::record(&format!("run{n}"), RunKind::Backup, finished);
        repository.append_run(&record).unwrap();
    }
    let dir = small_files(3, 100);
    for _ in 0..6 {
        repository
            .backup_dir(dir.path(), source("volume.small"), &quiet())
            .unwrap();
    }
    counting.reset_most_loads_at_once();
    let (runs, damaged) = repository.runs().unwrap();
    assert!(damaged.is_empty());
    let names: Vec<&str> = runs.iter().map(|r| r.record.run.as_str()).collect();
    let expected: Vec<String> = (0..12).map(|n| format!("run{n}")).collect();
    assert_eq!(names, expected, "newest first");
    assert!(counting.counts().most_loads_at_once >= 4);
    counting.reset_most_loads_at_once();
    let snapshots = repository.snapshots().unwrap();
    assert_eq!(snapshots.len(), 6);
    assert!(snapshots.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(counting.counts().most_loads_at_once >= 4);
    // A local disk loads them one after the other, as before.
    let local = Repository::open(inner, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    assert_eq!(local.snapshots().unwrap(), snapshots);
}
