//! Prune as a plan (memory backend, no Docker): planning writes nothing,
//! the plan's numbers are what execute does, and a plan the repository
//! moved away from is refused without deleting anything.

use super::backend::memory::MemoryBackend;
use super::tests::{quiet, source};
use super::trust_tests::{encrypted, read_all};
use super::*;
use std::collections::BTreeMap;

/// Every file of the repository, locks included, with its bytes.
fn files(backend: &MemoryBackend) -> BTreeMap<(FileKind, String), Vec<u8>> {
    let mut files = BTreeMap::new();
    for kind in FileKind::ALL {
        for name in backend.list(kind).unwrap() {
            let data = backend.load(kind, &name, None).unwrap();
            files.insert((kind, name), data);
        }
    }
    files
}

/// Bytes that do not compress (packs store content compressed).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Two snapshots of one directory that share part of their content; the
/// first is forgotten, so its own data is garbage beside data still needed.
fn with_garbage() -> (Arc<MemoryBackend>, Repository, tempfile::TempDir) {
    let (backend, repository) = encrypted();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kept.bin"), noise(1, 3 << 20)).unwrap();
    std::fs::write(dir.path().join("gone.bin"), noise(2, 3 << 20)).unwrap();
    let first = repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();
    std::fs::remove_file(dir.path().join("gone.bin")).unwrap();
    std::fs::write(dir.path().join("new.bin"), noise(3, 1 << 20)).unwrap();
    repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();
    repository.forget(&[first.id]).unwrap();
    (backend, repository, dir)
}

#[test]
fn planning_a_prune_writes_nothing_and_execute_does_what_it_said() {
    let (backend, repository, _dir) = with_garbage();
    let before = files(&backend);
    let plan = repository.plan_prune().unwrap();
    assert_eq!(files(&backend), before, "planning changed the repository");
    let summary = plan.summary();
    assert!(summary.packs_to_delete >= 1, "{summary:?}");
    assert!(summary.blobs_removed >= 1, "{summary:?}");
    assert!(summary.bytes_to_free >= 3 << 20, "{summary:?}");
    assert!(!plan.is_empty());

    let stats = repository.execute_prune(&plan).unwrap();
    assert_eq!(stats.packs_deleted, summary.packs_to_delete);
    assert_eq!(stats.packs_repacked, summary.packs_to_repack);
    assert!(stats.bytes_freed >= 3 << 20, "{stats:?}");
    assert_eq!(backend.list(FileKind::Index).unwrap().len(), 1);
    let again = repository.plan_prune().unwrap();
    assert!(again.is_empty(), "{:?}", again.summary());
    // The blobs copied out of repacked packs live in new packs now.
    assert!(again.summary().packs_kept > summary.packs_kept);
    assert!(repository.check(read_all()).unwrap().is_ok());
}

#[test]
fn a_prune_plan_older_than_the_repository_is_refused_and_deletes_nothing() {
    let (backend, repository, dir) = with_garbage();
    let plan = repository.plan_prune().unwrap();
    // Another backup lands between plan and execute: it may have stored
    // blobs the plan counted as garbage, and its packs the plan never saw.
    std::fs::write(dir.path().join("gone.bin"), noise(2, 3 << 20)).unwrap();
    let third = repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();
    let before = files(&backend);
    match repository.execute_prune(&plan) {
        Err(RepoError::Refused(message)) => {
            assert!(
                message.contains("changed since the prune was planned"),
                "{message}"
            );
            assert!(
                message.contains("snapshots were added or forgotten"),
                "{message}"
            );
            assert!(message.contains("plan the prune again"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        files(&backend),
        before,
        "a refused prune changed the repository"
    );

    // Planned again, the prune keeps what the new snapshot needs.
    repository.prune().unwrap();
    let restored = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&third, restored.path(), &quiet())
        .unwrap();
    for name in ["kept.bin", "gone.bin", "new.bin"] {
        let (backed_up, back) = (dir.path().join(name), restored.path().join(name));
        assert!(
            std::fs::read(backed_up).unwrap() == std::fs::read(back).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_prune_planned_for_a_forget_runs_only_after_that_forget() {
    let (backend, repository) = encrypted();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.bin"), noise(4, 2 << 20)).unwrap();
    let old = repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();
    std::fs::write(dir.path().join("old.bin"), noise(5, 2 << 20)).unwrap();
    repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();
    let before = files(&backend);
    let plan = repository
        .plan_prune_forgetting(std::slice::from_ref(&old.id))
        .unwrap();
    assert_eq!(files(&backend), before);
    assert!(
        plan.summary().bytes_to_free >= 2 << 20,
        "{:?}",
        plan.summary()
    );
    assert!(matches!(
        repository.execute_prune(&plan),
        Err(RepoError::Refused(_))
    ));
    repository.forget(&[old.id]).unwrap();
    let stats = repository.execute_prune(&plan).unwrap();
    assert_eq!(stats.packs_deleted, plan.summary().packs_to_delete);
}

#[test]
fn a_repacked_image_layer_keeps_its_tighter_compression() {
    use super::image::tests::{archive, text};
    let (_backend, repository) = encrypted();
    let (kept, gone) = (text(2 << 20, 21), text(2 << 20, 22));
    let (both, both_id) = archive(&[&kept, &gone], "both:1");
    let (one, one_id) = archive(&[&kept], "one:1");
    let first = repository
        .backup_image(
            both.as_slice(),
            &both_id,
            &[],
            source("image.both"),
            &quiet(),
        )
        .unwrap();
    let second = repository
        .backup_image(one.as_slice(), &one_id, &[], source("image.one"), &quiet())
        .unwrap();
    let mut layer_blobs = Vec::new();
    repository
        .walk_content(&second, |id| layer_blobs.push(*id))
        .unwrap();
    let stored_lengths = |repository: &Repository| -> Vec<(String, u32)> {
        let index = repository.index();
        layer_blobs
            .iter()
            .map(|id| {
                let (pack, blob) = index.locations(id)[0].clone();
                (pack, blob.length)
            })
            .collect()
    };
    let before = stored_lengths(&repository);
    // The gone layer shares the kept one's pack: the kept blobs move.
    repository.forget(&[first.id]).unwrap();
    let plan = repository.plan_prune().unwrap();
    assert!(plan.summary().packs_to_repack > 0, "{:?}", plan.summary());
    repository.execute_prune(&plan).unwrap();
    let after = stored_lengths(&repository);
    assert_ne!(before[0].0, after[0].0, "the blobs did not move");
    let lengths = |held: &[(String, u32)]| held.iter().map(|(_, l)| *l).collect::<Vec<_>>();
    assert_eq!(lengths(&before), lengths(&after));
    assert!(repository.check(read_all()).unwrap().is_ok());
    let mut out = Vec::new();
    repository
        .restore_image(&second, &[], &mut out, &quiet())
        .unwrap();
}

/// What a killed backup leaves on disk (a streamed pack's temporary file in
/// `data/`, a save's beside its pack and its index file) is planned,
/// shown, and removed by prune, after which check notes none of it; a
/// file put there by hand and a lock's temporary file stay.
#[test]
fn prune_removes_the_temporary_files_interrupted_writes_left() {
    use super::backend::local::LocalBackend;
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("repo");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
    Repository::init(backend.clone(), Some("prune leftovers")).unwrap();
    let repository = Repository::open(
        backend.clone(),
        Some("prune leftovers"),
        RepoOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), noise(4, 1 << 20)).unwrap();
    repository
        .backup_dir(dir.path(), source("volume.a"), &quiet())
        .unwrap();

    let pack = backend.list(FileKind::Pack).unwrap()[0].clone();
    let sub = root.join("data").join(&pack[..2]);
    let leftovers = [
        (root.join("data/.pack.tmp-4242-0"), 3000),
        (sub.join(format!(".{pack}.tmp-4242-1")), 200),
        (
            root.join(format!("index/.{}.tmp-4242-2", "e".repeat(64))),
            40,
        ),
        (
            root.join(format!("snapshots/.{}.tmp-4242-3", "f".repeat(64))),
            5,
        ),
    ];
    for (path, size) in &leftovers {
        std::fs::write(path, vec![0u8; *size]).unwrap();
    }
    let mine = [
        sub.join("notes.txt"),
        root.join("index/README"),
        root.join(format!("locks/.{}.tmp-4242-4", "a".repeat(32))),
    ];
    for path in &mine {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"mine").unwrap();
    }

    let report = repository.check(CheckOptions::default()).unwrap();
    let by_prune = |report: &CheckReport| {
        report
            .notes
            .iter()
            .filter(|n| n.contains("`lifeboat prune` removes it"))
            .count()
    };
    assert_eq!(by_prune(&report), leftovers.len(), "{:?}", report.notes);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("notes.txt is no repository file") && n.contains("by hand")),
        "{:?}",
        report.notes
    );

    // Planned (what --dry-run shows), removing nothing.
    let plan = repository.plan_prune().unwrap();
    let summary = plan.summary();
    assert_eq!(summary.packs_to_delete, 0, "{summary:?}");
    assert_eq!(summary.leftovers, leftovers.len() as u64);
    assert_eq!(summary.leftover_bytes, 3245);
    let paths: Vec<String> = plan.leftovers().iter().map(Leftover::path).collect();
    assert_eq!(
        paths,
        vec![
            "data/.pack.tmp-4242-0".to_string(),
            format!("data/{}/.{pack}.tmp-4242-1", &pack[..2]),
            format!("index/.{}.tmp-4242-2", "e".repeat(64)),
            format!("snapshots/.{}.tmp-4242-3", "f".repeat(64)),
        ]
    );
    assert!(!plan.is_empty());
    assert!(leftovers.iter().all(|(path, _)| path.exists()));

    let stats = repository.execute_prune(&plan).unwrap();
    assert_eq!(stats.leftovers_removed, leftovers.len() as u64);
    assert_eq!(stats.leftover_bytes_removed, 3245);
    assert_eq!(stats.packs_deleted, 0);
    assert!(leftovers.iter().all(|(path, _)| !path.exists()));
    assert!(mine.iter().all(|path| path.exists()));

    let report = repository.check(read_all()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(by_prune(&report), 0, "{:?}", report.notes);
    assert_eq!(report.notes.len(), mine.len(), "{:?}", report.notes);
    assert!(repository.plan_prune().unwrap().is_empty());
    for path in &mine {
        std::fs::remove_file(path).unwrap();
    }
    assert!(repository.check(read_all()).unwrap().notes.is_empty());
}
