//! `forget ID` when the id is in several repositories (a repository and its
//! copy hold the same snapshot files): the copy to forget must be named.

use super::*;
use crate::repo::backend::memory::MemoryBackend;
use crate::repo::{Backend, FileKind, Repository, SnapshotSource};
use std::sync::Arc;

fn settings() -> OpenSettings {
    OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "test".to_string(),
        cache_dir: None,
    }
}

/// Two repositories, `main` and its file-for-file copy `offsite`, holding
/// one snapshot whose file is damaged in `main` only; and its id.
fn copied_repositories() -> (Vec<NamedRepository>, String) {
    let main = Arc::new(MemoryBackend::default());
    Repository::init(main.clone(), Some("pass")).unwrap();
    let repository = Repository::open(main.clone(), Some("pass"), Default::default()).unwrap();
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("f"), b"content").unwrap();
    let source = SnapshotSource {
        resource: "volume.data".into(),
        kind: "volume".into(),
        name: "app_data".into(),
        ..SnapshotSource::default()
    };
    let snapshot = repository
        .backup_dir(content.path(), source, &|_| {})
        .unwrap();
    let offsite = Arc::new(MemoryBackend::default());
    for kind in FileKind::ALL {
        for name in main.list(kind).unwrap() {
            offsite
                .save(kind, &name, &main.load(kind, &name, None).unwrap())
                .unwrap();
        }
    }
    main.tamper(FileKind::Snapshot, &snapshot.id.0, |bytes| {
        bytes.truncate(10)
    });
    let named = [("main", main), ("offsite", offsite)]
        .into_iter()
        .map(|(name, backend)| {
            NamedRepository::on_backend(name, backend, Some("pass".into()), &settings()).unwrap()
        })
        .collect();
    (named, snapshot.id.0)
}

#[test]
fn an_id_in_two_repositories_is_refused_unless_one_is_named() {
    let (repositories, id) = copied_repositories();
    let short = id[..8].to_string();
    let error =
        find_snapshots_to_forget(&repositories, std::slice::from_ref(&short), None).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("main, offsite"), "{text}");
    assert!(text.contains("--repository NAME"), "{text}");

    // Named: the damaged file in main, or the intact snapshot in offsite.
    let (intact, damaged) =
        find_snapshots_to_forget(&repositories, std::slice::from_ref(&short), Some("main"))
            .unwrap();
    assert!(intact.is_empty());
    assert_eq!(damaged.len(), 1);
    assert_eq!(
        (damaged[0].id.as_str(), damaged[0].repository.as_str()),
        (id.as_str(), "main")
    );
    let (intact, damaged) =
        find_snapshots_to_forget(&repositories, std::slice::from_ref(&short), Some("offsite"))
            .unwrap();
    assert!(damaged.is_empty());
    assert_eq!(intact[0].1.repository, "offsite");

    let unknown = find_snapshots_to_forget(&repositories, &[short], Some("elsewhere"))
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("repository.elsewhere"), "{unknown}");
    assert!(unknown.contains("main, offsite"), "{unknown}");
}
