//! Damage inside packs (memory backend, no Docker): a blob any read finds
//! damaged leaves the index, so the next backup stores it again instead of
//! deduplicating against it; `repair` salvages every blob that still
//! authenticates out of a damaged pack before removing it.

use super::backend::memory::MemoryBackend;
use super::pack::{BlobKind, PackedBlob};
use super::tests::biggest_pack;
use super::trust_tests::{
    PASSPHRASE, backed_up, backup, dry_run, open_with, read_all, restore_equals,
};
use super::*;

/// The biggest data blob of `pack`, by the index.
fn data_blob(repository: &Repository, pack: &str) -> PackedBlob {
    repository
        .index()
        .by_pack()
        .remove(pack)
        .unwrap()
        .into_iter()
        .filter(|b| b.kind == BlobKind::Data)
        .max_by_key(|b| b.length)
        .unwrap()
}

/// Flips one bit in the middle of a data blob of the biggest pack: the
/// pack's name, and the blob.
pub(super) fn flip_a_bit(backend: &MemoryBackend, repository: &Repository) -> (String, PackedBlob) {
    let pack = biggest_pack(backend);
    let blob = data_blob(repository, &pack);
    backend.tamper(FileKind::Pack, &pack, |bytes| {
        bytes[(blob.offset + blob.length / 2) as usize] ^= 0x10;
    });
    (pack, blob)
}

#[test]
fn a_blob_check_finds_damaged_leaves_the_index_and_the_next_backup_stores_it_again() {
    let (backend, repository, dir, first) = backed_up();
    let (pack, blob) = flip_a_bit(&backend, &repository);
    // The headers and sizes are whole: only reading the data shows it.
    assert!(repository.check(CheckOptions::default()).unwrap().is_ok());
    let report = repository.check(read_all()).unwrap();
    let named = report
        .problems
        .iter()
        .find(|p| p.what == format!("blob {}", hex::encode(&blob.id[..4])))
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(named.detail.contains("does not authenticate"), "{named:?}");
    assert!(named.affects.iter().any(|(id, _)| id == first.id.short()));
    assert!(
        report.notes.iter().any(|n| n.contains("recorded")),
        "{report:?}"
    );

    // Recorded: every later load leaves the copy out, so a check without
    // read-data now sees it, and the next backup stores the content again.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(!repository.index().contains(&blob.id));
    let report = repository.check(CheckOptions::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("damaged in pack") && p.detail.contains("next backup")),
        "{report:?}"
    );
    let second = backup(&repository, &dir, "volume.a");
    assert!(
        second.summary.added_bytes >= blob.length as u64,
        "{:?}",
        second.summary
    );
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    restore_equals(&repository, &second, dir.path());
    // The first snapshot needed the same blob: whole again too.
    restore_equals(&repository, &first, dir.path());

    // Repair salvages the rest of the damaged pack and retires it.
    let repaired = repository
        .repair(RepairOptions {
            read_data: true,
            ..RepairOptions::default()
        })
        .unwrap();
    assert_eq!(repaired.packs_salvaged.len(), 1, "{repaired:?}");
    assert_eq!(repaired.packs_salvaged[0].id, pack);
    assert_eq!(repaired.packs_salvaged[0].lost, 1, "{repaired:?}");
    assert!(repaired.incomplete.is_empty(), "{repaired:?}");
    assert!(!backend.list(FileKind::Pack).unwrap().contains(&pack));
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &first, dir.path());
}

#[test]
fn a_restore_that_meets_a_damaged_blob_takes_it_out_of_the_index() {
    let (backend, repository, dir, first) = backed_up();
    let (_, blob) = flip_a_bit(&backend, &repository);
    let out = tempfile::tempdir().unwrap();
    let error = repository
        .restore_dir(&first, &out.path().join("r"), &super::tests::quiet())
        .unwrap_err();
    assert!(matches!(error, RepoError::BadBlob { .. }), "{error}");
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(!repository.index().contains(&blob.id));
    let second = backup(&repository, &dir, "volume.a");
    assert!(second.summary.added_bytes >= blob.length as u64);
    restore_equals(&repository, &second, dir.path());
}

#[test]
fn repair_with_read_data_salvages_the_intact_blobs_of_a_pack_with_a_flipped_bit() {
    let (backend, repository, dir, first) = backed_up();
    let (pack, blob) = flip_a_bit(&backend, &repository);
    let blobs_before = repository.index().by_pack()[&pack].len();
    // Headers only: the damage does not show.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let headers_only = repository.repair(dry_run()).unwrap();
    assert!(headers_only.packs_salvaged.is_empty(), "{headers_only:?}");

    let dry = repository
        .repair(RepairOptions {
            dry_run: true,
            read_data: true,
        })
        .unwrap();
    assert_eq!(dry.packs_salvaged.len(), 1, "{dry:?}");
    assert!(
        backend.list(FileKind::Pack).unwrap().contains(&pack),
        "dry run"
    );

    let repaired = repository
        .repair(RepairOptions {
            read_data: true,
            ..RepairOptions::default()
        })
        .unwrap();
    let salvaged = &repaired.packs_salvaged[0];
    assert_eq!(
        (salvaged.salvaged, salvaged.lost),
        (blobs_before - 1, 1),
        "{repaired:?}"
    );
    assert!(!backend.list(FileKind::Pack).unwrap().contains(&pack));
    // The snapshot lacks that one blob, and says a backup stores it again.
    assert_eq!(repaired.incomplete.len(), 1, "{repaired:?}");
    assert_eq!(repaired.incomplete[0].id, first.id);
    assert_eq!(repaired.incomplete[0].missing_blobs, 1);

    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(!repository.index().contains(&blob.id));
    backup(&repository, &dir, "volume.a");
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.repair(dry_run()).unwrap().incomplete.is_empty());
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &first, dir.path());
}

#[test]
fn repair_salvages_a_pack_that_lost_its_trailer_before_anything_is_deleted() {
    let (backend, repository, dir, first) = backed_up();
    let pack = biggest_pack(&backend);
    let blobs_before = repository.index().by_pack()[&pack].len();
    backend.tamper(FileKind::Pack, &pack, |bytes| {
        bytes.truncate(bytes.len() - 4);
    });
    // The blobs are intact: a restore still reads them.
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    restore_equals(&repository, &first, dir.path());

    // A dry run says what would be salvaged, and counts it as present.
    let dry = repository.repair(dry_run()).unwrap();
    assert_eq!(dry.packs_salvaged.len(), 1, "{dry:?}");
    assert!(dry.incomplete.is_empty(), "{dry:?}");
    assert!(backend.list(FileKind::Pack).unwrap().contains(&pack));

    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert!(repaired.packs_unreadable.is_empty(), "{repaired:?}");
    assert_eq!(repaired.packs_salvaged.len(), 1, "{repaired:?}");
    assert_eq!(
        (
            repaired.packs_salvaged[0].salvaged,
            repaired.packs_salvaged[0].lost
        ),
        (blobs_before, 0)
    );
    assert!(repaired.incomplete.is_empty(), "{repaired:?}");
    assert!(!backend.list(FileKind::Pack).unwrap().contains(&pack));
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    repository.prune().unwrap();
    restore_equals(&repository, &first, dir.path());
}

#[test]
fn repair_finds_the_header_of_a_pack_without_trailer_or_index() {
    let (backend, repository, dir, first) = backed_up();
    let pack = biggest_pack(&backend);
    let blobs_before = repository.index().by_pack()[&pack].len();
    backend.tamper(FileKind::Pack, &pack, |bytes| {
        bytes.truncate(bytes.len() - 3);
    });
    for name in backend.list(FileKind::Index).unwrap() {
        backend.remove(FileKind::Index, &name).unwrap();
    }
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.packs_salvaged.len(), 1, "{repaired:?}");
    assert_eq!(repaired.packs_salvaged[0].salvaged, blobs_before);
    assert!(repaired.incomplete.is_empty(), "{repaired:?}");
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &first, dir.path());
}

#[test]
fn damage_records_survive_prune_and_a_repair_that_reads_headers_only() {
    let (backend, repository, dir, _) = backed_up();
    let (pack, blob) = flip_a_bit(&backend, &repository);
    assert!(!repository.check(read_all()).unwrap().is_ok());
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    let second = backup(&repository, &dir, "volume.a");
    // A snapshot of content nothing else has, forgotten: prune then
    // rewrites the whole index in one file, and the record goes with it.
    std::fs::write(dir.path().join("extra.bin"), vec![9u8; 700_000]).unwrap();
    let third = backup(&repository, &dir, "volume.a");
    std::fs::remove_file(dir.path().join("extra.bin")).unwrap();
    repository.forget(std::slice::from_ref(&third.id)).unwrap();
    let stats = repository.prune().unwrap();
    assert!(stats.packs_deleted > 0, "{stats:?}");
    assert_eq!(backend.list(FileKind::Index).unwrap().len(), 1);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(
        repository
            .index()
            .locations(&blob.id)
            .iter()
            .all(|(p, _)| *p != pack),
        "the damaged copy stays out"
    );
    // A repair reading headers only knows the pack is damaged from the
    // record, and salvages it.
    let repaired = repository.repair(RepairOptions::default()).unwrap();
    assert_eq!(repaired.packs_salvaged.len(), 1, "{repaired:?}");
    assert_eq!(repaired.packs_salvaged[0].id, pack);
    let repository = open_with(&backend, Some(PASSPHRASE)).unwrap();
    assert!(repository.check(read_all()).unwrap().is_ok());
    restore_equals(&repository, &second, dir.path());
}
