//! Format 4 on the memory backend: a blob's decryption proves its id, kind,
//! form, length and repository, so reads hash nothing, and a blob read under
//! any other entry does not decrypt (damage, recorded) without a hash; the
//! per-blob rule cannot be turned to skip a hash; a format-3 repository
//! upgraded in place holds both sealings until `migrate` rewrites the old,
//! and copies between format 3 (HMAC-SHA-256 ids) and format 4 (BLAKE3 ids)
//! rename every blob.

use super::backend::memory::MemoryBackend;
use super::crypto::IdFunction;
use super::crypto::tests::id_hashes_of;
use super::pack::{BlobKind, PackedBlob};
use super::trust_tests::{
    PASSPHRASE, backup, content, encrypted, open_with, read_all, restore_equals,
};
use super::*;

/// A repository as a format-3 lifeboat made and wrote it.
fn format_3() -> (Arc<MemoryBackend>, Repository) {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init_format_3(backend.clone(), PASSPHRASE).unwrap();
    let repository = Repository::open_as_format_3(backend.clone(), PASSPHRASE).unwrap();
    (backend, repository)
}

/// Every (pack, entry) of the index.
fn entries(repository: &Repository) -> Vec<(String, PackedBlob)> {
    let mut all: Vec<_> = repository
        .index()
        .by_pack()
        .into_iter()
        .flat_map(|(pack, blobs)| blobs.into_iter().map(move |b| (pack.clone(), b)))
        .collect();
    all.sort_by_key(|(pack, blob)| (pack.clone(), blob.offset));
    all
}

fn stored(backend: &MemoryBackend, pack: &str, blob: &PackedBlob) -> Vec<u8> {
    let range = u64::from(blob.offset)..u64::from(blob.offset) + u64::from(blob.length);
    backend.load(FileKind::Pack, pack, Some(range)).unwrap()
}

/// Two backups of one small file each, of equal length: two data packs
/// that each hold one blob of the same stored length at offset 0.
fn two_lone_blobs(repository: &Repository) -> [(String, PackedBlob); 2] {
    for (resource, text) in [("volume.a", "first: 7d1f9a"), ("volume.b", "other: 3c82be")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.txt"), text).unwrap();
        backup(repository, &dir, resource);
    }
    let data: Vec<_> = entries(repository)
        .into_iter()
        .filter(|(_, b)| b.kind == BlobKind::Data)
        .collect();
    assert_eq!(data.len(), 2, "{data:?}");
    assert_eq!(data[0].1.length, data[1].1.length);
    [data[0].clone(), data[1].clone()]
}

#[test]
fn a_format_4_read_is_proven_by_its_decryption_and_hashes_nothing() {
    let (backend, repository) = encrypted();
    let dir = content();
    let snapshot = backup(&repository, &dir, "volume.a");
    assert_eq!(repository.keys().id_function(), IdFunction::Blake3Keyed);
    let all = entries(&repository);
    assert!(all.iter().all(|(_, b)| b.id_bound), "{all:?}");
    let (pack, blob) = all
        .iter()
        .find(|(_, b)| b.kind == BlobKind::Data)
        .unwrap()
        .clone();
    let bytes = stored(&backend, &pack, &blob);

    let (read, hashes) = id_hashes_of(|| repository.decode_blob(&bytes, &blob));
    assert_eq!(repository.keys().blob_id(&read.unwrap()), blob.id);
    assert_eq!(hashes, 0, "the decryption proved the id");
    let (read, hashes) = id_hashes_of(|| repository.decode_blob_rehashing(&bytes, &blob, true));
    assert!(read.is_ok());
    assert_eq!(hashes, 1, "--rehash hashes");

    // Under any other entry the same bytes do not decrypt, and nothing is
    // hashed: another id, kind, form, length; or the format-3 rule.
    for (what, other) in [
        (
            "id",
            PackedBlob {
                id: [0xaa; 32],
                ..blob
            },
        ),
        (
            "kind",
            PackedBlob {
                kind: BlobKind::Tree,
                ..blob
            },
        ),
        (
            "form",
            PackedBlob {
                compressed: !blob.compressed,
                ..blob
            },
        ),
        (
            "length",
            PackedBlob {
                raw_length: blob.raw_length - 1,
                ..blob
            },
        ),
        (
            "rule",
            PackedBlob {
                id_bound: false,
                ..blob
            },
        ),
    ] {
        let (read, hashes) = id_hashes_of(|| repository.decode_blob(&bytes, &other));
        assert_eq!(read.unwrap_err(), "does not authenticate", "{what}");
        assert_eq!(hashes, 0, "{what}");
    }
    // A blob of another repository under the same keys (its directory
    // copied, then written to apart) is bound to that repository's id.
    let moved = Repository {
        config: Config {
            id: "0".repeat(32),
            ..repository.config.clone()
        },
        ..open_with(&backend, Some(PASSPHRASE)).unwrap()
    };
    assert_eq!(
        moved.decode_blob(&bytes, &blob).unwrap_err(),
        "does not authenticate"
    );

    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &snapshot, dir.path());
}

#[test]
fn a_format_4_blob_moved_under_another_entry_is_damage_found_without_a_hash() {
    let (backend, repository) = encrypted();
    let [(first_pack, first), (second_pack, second)] = two_lone_blobs(&repository);
    // Someone puts the first pack's bytes under the second's name: the
    // second blob's entry now reads the first blob's ciphertext, sealed by
    // the keys, of the right length, at the right place.
    let moved = backend.load(FileKind::Pack, &first_pack, None).unwrap();
    backend.tamper(FileKind::Pack, &second_pack, |bytes| *bytes = moved);
    let (read, hashes) = id_hashes_of(|| repository.read_blob(&second.id));
    assert!(read.unwrap_err().contains("does not authenticate"));
    assert_eq!(hashes, 0, "found by the decryption alone");
    // Recorded: every later load leaves that copy out.
    let reopened = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(!reopened.index().contains(&second.id));
    assert!(
        reopened
            .index()
            .damaged_blobs
            .contains_key(&(second_pack.clone(), second.id))
    );
    assert!(reopened.read_blob(&first.id).is_ok());
}

#[test]
fn a_format_3_blob_is_hashed_and_its_entry_cannot_claim_the_proof() {
    let (backend, repository) = format_3();
    let [(first_pack, first), (second_pack, second)] = two_lone_blobs(&repository);
    assert_eq!(repository.keys().id_function(), IdFunction::HmacSha256);
    assert!(!first.id_bound && !second.id_bound);
    let bytes = stored(&backend, &first_pack, &first);
    let (read, hashes) = id_hashes_of(|| repository.decode_blob(&bytes, &first));
    assert!(read.is_ok());
    assert_eq!(hashes, 1, "format 3 proves nothing: hashed");
    // Marking it bound (were an entry forged) only makes it fail.
    let claimed = PackedBlob {
        id_bound: true,
        ..first
    };
    let (read, hashes) = id_hashes_of(|| repository.decode_blob(&bytes, &claimed));
    assert_eq!(read.unwrap_err(), "does not authenticate");
    assert_eq!(hashes, 0);
    // The same move as above decrypts in format 3: only the hash finds it.
    let moved = backend.load(FileKind::Pack, &first_pack, None).unwrap();
    backend.tamper(FileKind::Pack, &second_pack, |bytes| *bytes = moved);
    let (read, hashes) = id_hashes_of(|| repository.read_blob(&second.id));
    assert!(read.unwrap_err().contains("content does not match its id"));
    assert_eq!(hashes, 1);
}

#[test]
fn an_upgraded_repository_holds_both_sealings_until_migrate_rewrites_the_old() {
    let (backend, old) = format_3();
    let dir = content();
    let first = backup(&old, &dir, "volume.a");
    let format_3_blobs = old.index().len();
    drop(old);

    // This lifeboat: the first write makes the config format 4, keeping
    // HMAC-SHA-256, so the unchanged big file deduplicates.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert_eq!(repository.format_version(), 3);
    std::fs::write(dir.path().join("small.txt"), b"small and changed").unwrap();
    let second = backup(&repository, &dir, "volume.a");
    let config: serde_json::Value =
        serde_json::from_slice(&backend.load(FileKind::Config, "config", None).unwrap()).unwrap();
    assert_eq!(config["version"], 4);
    assert_eq!(config["blob_ids"], "hmac-sha256");
    assert_eq!(second.summary.new_blobs, 2, "the changed file and the tree");
    let all = entries(&repository);
    assert_eq!(
        all.iter().filter(|(_, b)| !b.id_bound).count(),
        format_3_blobs
    );
    assert_eq!(all.iter().filter(|(_, b)| b.id_bound).count(), 2);

    let plan = repository.plan_migrate().unwrap();
    let summary = plan.summary();
    assert_eq!(summary.blobs_to_rewrite, format_3_blobs as u64);
    assert_eq!(summary.packs_kept, 2, "the new backup's packs");
    // Each old blob is read (and, format 3, hashed) once; its known id is
    // not computed again when it is sealed anew.
    let (stats, hashes) = id_hashes_of(|| repository.execute_migrate(&plan).unwrap());
    assert_eq!(stats.packs_deleted, summary.packs_to_rewrite);
    assert_eq!(hashes, format_3_blobs as u64);

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(entries(&repository).iter().all(|(_, b)| b.id_bound));
    assert_eq!(
        repository
            .plan_migrate()
            .unwrap()
            .summary()
            .packs_to_rewrite,
        0
    );
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &second, dir.path());
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&first, &out.path().join("first"), &super::tests::quiet())
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("first/small.txt")).unwrap(),
        b"small and intact"
    );
}

#[test]
fn copies_between_format_3_and_format_4_rename_every_blob_both_ways() {
    let (_, old) = format_3();
    let (_, new) = encrypted();
    assert!(!old.keys().same_blob_ids(new.keys()));
    let dir = content();
    let from_old = backup(&old, &dir, "volume.a");
    let copied = old
        .copy_snapshot(&new, &from_old, &super::tests::quiet())
        .unwrap();
    assert_ne!(copied.snapshot.tree, from_old.tree, "renamed");
    restore_equals(&new, &copied.snapshot, dir.path());

    std::fs::write(dir.path().join("small.txt"), b"small, then copied back").unwrap();
    let from_new = backup(&new, &dir, "volume.b");
    let back = new
        .copy_snapshot(&old, &from_new, &super::tests::quiet())
        .unwrap();
    restore_equals(&old, &back.snapshot, dir.path());
    assert!(old.check(read_all()).unwrap().is_ok());
    assert!(new.check(read_all()).unwrap().is_ok());
}

#[test]
fn a_paper_key_restores_access_to_a_format_3_repository() {
    let (backend, repository) = format_3();
    let export = serde_json::to_vec(&repository.export_master_key().unwrap()).unwrap();
    drop(repository);
    // Its config is format 3, vouched for by its MAC: not format 1's case.
    Repository::add_key_from_export(backend.clone(), &export, "found again").unwrap();
    assert!(open_with(&backend, Some("found again")).is_ok());
}

#[test]
fn migrate_keeps_the_damage_record_of_a_pack_whose_every_blob_is_damaged() {
    let (backend, old) = format_3();
    let [(damaged_pack, damaged), _] = two_lone_blobs(&old);
    backend.tamper(FileKind::Pack, &damaged_pack, |bytes| {
        bytes[(damaged.offset + damaged.length / 2) as usize] ^= 0x10;
    });
    assert!(!old.check(read_all()).unwrap().is_ok());
    drop(old);

    // Every blob of that pack is recorded damaged, so the index offers
    // none of it; migrate rewrites the other packs.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let plan = repository.plan_migrate().unwrap();
    assert!(plan.summary().packs_to_rewrite > 0, "{:?}", plan.summary());
    repository.execute_migrate(&plan).unwrap();

    // The next backup of the same content must store it again, not adopt
    // the damaged copy back from its pack's header.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.txt"), "first: 7d1f9a").unwrap();
    let again = backup(&repository, &dir, "volume.a");
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(
        repository
            .index()
            .locations(&damaged.id)
            .iter()
            .all(|(pack, _)| *pack != damaged_pack),
        "the damaged copy is offered again"
    );
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&again, &out.path().join("r"), &super::tests::quiet())
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("r/one.txt")).unwrap(),
        b"first: 7d1f9a"
    );
}

/// Stops writing after `left` saves and removals of anything but locks:
/// what a migrate killed at that point leaves behind (a killed run's lock
/// is stale-lock detection's business, tested on its own).
struct StopsWriting {
    inner: Arc<MemoryBackend>,
    left: std::sync::atomic::AtomicI64,
}

impl StopsWriting {
    fn write(&self, kind: FileKind) -> std::io::Result<()> {
        if kind == FileKind::Lock || self.left.fetch_sub(1, Ordering::SeqCst) > 0 {
            return Ok(());
        }
        Err(std::io::Error::other("killed"))
    }
}

impl Backend for StopsWriting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> std::io::Result<()> {
        self.write(kind)?;
        self.inner.save(kind, name, data)
    }
    fn load(
        &self,
        kind: FileKind,
        name: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> std::io::Result<Vec<u8>> {
        self.inner.load(kind, name, range)
    }
    fn stat(&self, kind: FileKind, name: &str) -> std::io::Result<u64> {
        self.inner.stat(kind, name)
    }
    fn list(&self, kind: FileKind) -> std::io::Result<Vec<String>> {
        self.inner.list(kind)
    }
    fn remove(&self, kind: FileKind, name: &str) -> std::io::Result<()> {
        self.write(kind)?;
        self.inner.remove(kind, name)
    }
    fn is_empty(&self) -> std::io::Result<bool> {
        self.inner.is_empty()
    }
}

/// As [`content`], smaller (a few blobs): the tests that stop a run at
/// each of its writes run it many times.
fn small_content(seed: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("big.bin"), big).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small and intact").unwrap();
    dir
}

/// Every file of `backend`, in a backend of its own.
fn duplicate(backend: &MemoryBackend) -> Arc<MemoryBackend> {
    let copy = Arc::new(MemoryBackend::default());
    for kind in [
        FileKind::Config,
        FileKind::Key,
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Run,
    ] {
        for name in backend.list(kind).unwrap() {
            let bytes = backend.load(kind, &name, None).unwrap();
            copy.save(kind, &name, &bytes).unwrap();
        }
    }
    copy
}

/// A copy of `backend`'s files, and a repository on it that stops
/// writing after `writes` writes.
fn stopping_after(backend: &MemoryBackend, writes: i64) -> (Arc<MemoryBackend>, Repository) {
    let files = duplicate(backend);
    let stopping = Arc::new(StopsWriting {
        inner: files.clone(),
        left: std::sync::atomic::AtomicI64::new(writes),
    });
    let repository = Repository::open(stopping, Some(PASSPHRASE), RepoOptions::default()).unwrap();
    (files, repository)
}

#[test]
fn a_migrate_stopped_at_any_write_leaves_every_snapshot_whole_and_the_next_one_finishes() {
    // Two format-3 snapshots, then one of this lifeboat (bound blobs).
    let (backend, old) = format_3();
    let dir = small_content(1);
    let first = backup(&old, &dir, "volume.a");
    std::fs::write(dir.path().join("small.txt"), b"small, second").unwrap();
    let second = backup(&old, &dir, "volume.b");
    drop(old);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"small, third").unwrap();
    let third = backup(&repository, &dir, "volume.a");
    drop(repository);
    let expected = |snapshot: &Snapshot| match snapshot.id {
        ref id if *id == first.id => "small and intact",
        ref id if *id == second.id => "small, second",
        _ => "small, third",
    };
    let whole = |backend: &Arc<MemoryBackend>| {
        let repository = open_with(backend, Some(PASSPHRASE)).unwrap();
        let report = repository.check(read_all()).unwrap();
        assert!(report.is_ok(), "{report:?}");
        for snapshot in [&first, &second, &third] {
            let out = tempfile::tempdir().unwrap();
            repository
                .restore_dir(snapshot, &out.path().join("r"), &super::tests::quiet())
                .unwrap();
            assert_eq!(
                std::fs::read(out.path().join("r/small.txt")).unwrap(),
                expected(snapshot).as_bytes()
            );
            assert_eq!(
                std::fs::read(out.path().join("r/big.bin")).unwrap(),
                std::fs::read(dir.path().join("big.bin")).unwrap()
            );
        }
    };

    let mut stops = 0;
    for writes in 0.. {
        let (stopped, repository) = stopping_after(&backend, writes);
        let migrated = repository
            .plan_migrate()
            .and_then(|plan| repository.execute_migrate(&plan));
        drop(repository);
        if migrated.is_ok() {
            break;
        }
        stops += 1;
        whole(&stopped);
        // A backup beside what was left (it adopts unindexed packs), then
        // migrate again: it finishes, and everything is bound and whole.
        let repository = open_with(&stopped, Some(PASSPHRASE)).unwrap();
        backup(&repository, &dir, "volume.c");
        let plan = repository.plan_migrate().unwrap();
        repository.execute_migrate(&plan).unwrap();
        let repository = open_with(&stopped, Some(PASSPHRASE)).unwrap();
        assert!(
            entries(&repository).iter().all(|(_, b)| b.id_bound),
            "stopped after {writes} writes: a format-3 blob is left"
        );
        whole(&stopped);
    }
    assert!(stops >= 4, "only {stops} points of the migrate were tried");
}

#[test]
fn a_copy_between_formats_stopped_at_any_write_is_finished_by_the_next_once_and_then_sends_nothing()
{
    // Content each side lacks (else the copy deduplicates everything),
    // in snapshots of their own resources (one moment each).
    let (format_3_backend, old) = format_3();
    let dir = small_content(1);
    backup(&old, &dir, "volume.a");
    std::fs::write(dir.path().join("small.txt"), b"small, second").unwrap();
    backup(&old, &dir, "volume.b");
    drop(old);
    let (format_4_backend, new) = encrypted();
    backup(&new, &small_content(2), "volume.c");
    drop(new);
    let nothing = |_: Progress| {};

    for (from, to) in [
        (&format_3_backend, &format_4_backend),
        (&format_4_backend, &format_3_backend),
    ] {
        let source = open_with(from, Some(PASSPHRASE)).unwrap();
        let originals = source.snapshots().unwrap();
        let held_before = open_with(to, Some(PASSPHRASE))
            .unwrap()
            .snapshots()
            .unwrap();
        let mut stops = 0;
        for writes in 0.. {
            let (target_files, target) = stopping_after(to, writes);
            let copied = originals
                .iter()
                .try_for_each(|s| source.copy_snapshot(&target, s, &nothing).map(drop));
            drop(target);
            if copied.is_ok() {
                break;
            }
            stops += 1;
            // Run again: each snapshot once, the same bytes, then nothing new.
            let target = open_with(&target_files, Some(PASSPHRASE)).unwrap();
            for snapshot in &originals {
                source.copy_snapshot(&target, snapshot, &nothing).unwrap();
            }
            let held = target.snapshots().unwrap();
            assert_eq!(
                held.len(),
                held_before.len() + originals.len(),
                "stopped after {writes} writes: {held:?}"
            );
            for snapshot in &originals {
                let again = source.copy_snapshot(&target, snapshot, &nothing).unwrap();
                assert_eq!(again.blobs_sent, 0);
                let out = tempfile::tempdir().unwrap();
                target
                    .restore_dir(
                        &again.snapshot,
                        &out.path().join("r"),
                        &super::tests::quiet(),
                    )
                    .unwrap();
                let want = tempfile::tempdir().unwrap();
                source
                    .restore_dir(snapshot, &want.path().join("r"), &super::tests::quiet())
                    .unwrap();
                for name in ["big.bin", "small.txt"] {
                    assert_eq!(
                        std::fs::read(out.path().join("r").join(name)).unwrap(),
                        std::fs::read(want.path().join("r").join(name)).unwrap(),
                        "{name}, stopped after {writes} writes"
                    );
                }
            }
            let report = target.check(read_all()).unwrap();
            assert!(report.is_ok(), "{report:?}");
        }
        assert!(stops >= 3, "only {stops} points of the copy were tried");
    }
}

#[test]
fn a_migrate_refused_because_a_backup_came_between_says_migrate_not_prune() {
    let (backend, old) = format_3();
    let dir = small_content(3);
    backup(&old, &dir, "volume.a");
    drop(old);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let plan = repository.plan_migrate().unwrap();
    backup(&repository, &small_content(4), "volume.b");
    let packs = backend.list(FileKind::Pack).unwrap();
    let refused = repository.execute_migrate(&plan).unwrap_err().to_string();
    assert!(
        refused.contains("changed since the migrate was planned")
            && refused.contains("plan the migrate again")
            && !refused.contains("prune"),
        "{refused}"
    );
    assert_eq!(
        backend.list(FileKind::Pack).unwrap(),
        packs,
        "nothing deleted"
    );
}

#[test]
fn a_migrate_dry_run_takes_no_lock_so_a_backup_beside_it_never_fails_on_one() {
    let (backend, old) = format_3();
    backup(&old, &small_content(5), "volume.a");
    drop(old);
    let running = open_with(&backend, Some(PASSPHRASE)).unwrap();
    running.lock_for_run(false).unwrap();
    let config = backend.load(FileKind::Config, "config", None).unwrap();
    let before = backend.list(FileKind::Lock).unwrap();

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let summary = repository.preview_migrate().unwrap();
    assert!(summary.packs_to_rewrite > 0, "{summary:?}");
    assert_eq!(backend.list(FileKind::Lock).unwrap(), before);
    assert_eq!(
        backend.load(FileKind::Config, "config", None).unwrap(),
        config,
        "not even upgraded"
    );
    // The real plan waits for the exclusive lock, as it must.
    assert!(matches!(
        repository.plan_migrate(),
        Err(RepoError::Locked { .. })
    ));
}
