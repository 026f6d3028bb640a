//! Restores of hostile and unusual trees (no Docker): trees built node by
//! node in a plaintext repository, restored directly and as the tar stream
//! the API mode sends, and checked.

use super::backend::memory::MemoryBackend;
use super::check::{CheckOptions, ReadData};
use super::tests::{quiet, source};
use super::tree::{Node, NodeKind};
use super::*;
use std::path::Path;

fn plaintext() -> Repository {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), None).unwrap();
    Repository::open(backend, None, RepoOptions::default()).unwrap()
}

fn node(path: &[u8], kind: NodeKind) -> Node {
    let mut node = Node {
        path: String::new(),
        path_hex: None,
        kind,
        mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
        // SAFETY: plain getters.
        uid: unsafe { libc::geteuid() } as u64,
        gid: unsafe { libc::getegid() } as u64,
        mtime: 1_600_000_000,
        size: 0,
        content: Vec::new(),
        target: None,
        target_hex: None,
        device: None,
        xattrs: Vec::new(),
    };
    node.set_path(path);
    node
}

enum Entry<'a> {
    Dir(&'a [u8]),
    File(&'a [u8], &'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
}

/// A snapshot holding exactly `entries`, in this order, after a root.
fn snapshot_of(repository: &Repository, entries: &[Entry]) -> Snapshot {
    repository
        .backup_with(source("volume.hostile"), &quiet(), |builder| {
            builder.add(node(b"", NodeKind::Dir), None)?;
            for entry in entries {
                match entry {
                    Entry::Dir(path) => {
                        builder.add(node(path, NodeKind::Dir), None)?;
                    }
                    Entry::File(path, data) => {
                        let mut file = node(path, NodeKind::File);
                        file.size = data.len() as u64;
                        builder.add(file, Some(&mut &data[..]))?;
                    }
                    Entry::Symlink(path, target) | Entry::Hardlink(path, target) => {
                        let kind = if matches!(entry, Entry::Symlink(..)) {
                            NodeKind::Symlink
                        } else {
                            NodeKind::Hardlink
                        };
                        let mut link = node(path, kind);
                        link.set_target(target);
                        builder.add(link, None)?;
                    }
                }
            }
            Ok(())
        })
        .unwrap()
}

fn everything_under(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    found.sort();
    found
}

#[test]
fn hostile_trees_are_refused_in_both_modes_and_reported_by_check() {
    let hostile: Vec<(&str, Vec<Entry>)> = vec![
        (
            "a file under a symlink to a host directory",
            vec![
                Entry::Symlink(b"x", b"OUTSIDE"),
                Entry::File(b"x/passwd", b"owned"),
            ],
        ),
        (
            "a directory under a symlink",
            vec![Entry::Symlink(b"x", b"OUTSIDE"), Entry::Dir(b"x/sub")],
        ),
        ("a `..` path", vec![Entry::File(b"../escaped", b"owned")]),
        (
            "a `..` inside a path",
            vec![Entry::Dir(b"d"), Entry::File(b"d/../../escaped", b"owned")],
        ),
        (
            "an absolute path",
            vec![Entry::File(b"OUTSIDE/abs", b"owned")],
        ),
        (
            "an empty component",
            vec![Entry::Dir(b"d"), Entry::File(b"d//f", b"owned")],
        ),
        (
            "a duplicate name (a file replaced by a symlink)",
            vec![
                Entry::File(b"f", b"ok"),
                Entry::Symlink(b"f", b"OUTSIDE/dup"),
            ],
        ),
        (
            "a hard link to a path outside",
            vec![Entry::Hardlink(b"h", b"../outside/secret")],
        ),
        (
            "a hard link to an absolute path",
            vec![Entry::Hardlink(b"h", b"OUTSIDE/secret")],
        ),
        (
            "a hard link through a symlink",
            vec![
                Entry::Symlink(b"x", b"OUTSIDE"),
                Entry::Hardlink(b"h", b"x/secret"),
            ],
        ),
        (
            "a file after its directory was left",
            vec![
                Entry::Dir(b"d"),
                Entry::File(b"e", b"ok"),
                Entry::File(b"d/late", b"ok"),
            ],
        ),
    ];
    for (what, entries) in hostile {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host secret").unwrap();
        let outside_text = outside.display().to_string();
        // Entries name the real outside directory where they use OUTSIDE.
        let owned: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|e| {
                let (a, b): (&[u8], &[u8]) = match e {
                    Entry::Dir(p) => (p, b""),
                    Entry::File(p, d) | Entry::Symlink(p, d) | Entry::Hardlink(p, d) => (p, d),
                };
                let fix = |s: &[u8]| {
                    String::from_utf8_lossy(s)
                        .replace("OUTSIDE", &outside_text)
                        .into_bytes()
                };
                (fix(a), fix(b))
            })
            .collect();
        let entries: Vec<Entry> = entries
            .iter()
            .zip(&owned)
            .map(|(e, (a, b))| match e {
                Entry::Dir(_) => Entry::Dir(a),
                Entry::File(..) => Entry::File(a, b),
                Entry::Symlink(..) => Entry::Symlink(a, b),
                Entry::Hardlink(..) => Entry::Hardlink(a, b),
            })
            .collect();
        let repository = plaintext();
        let snapshot = snapshot_of(&repository, &entries);

        let target = base.path().join("volume").join("_data");
        let error = repository
            .restore_dir(&snapshot, &target, &quiet())
            .expect_err(what)
            .to_string();
        assert!(error.contains("hostile or damaged"), "{what}: {error}");
        assert_eq!(
            everything_under(&outside),
            vec!["secret".to_string()],
            "{what}: direct restore wrote outside its target"
        );
        assert_eq!(
            std::fs::read(outside.join("secret")).unwrap(),
            b"host secret"
        );
        assert_eq!(
            everything_under(base.path()),
            ["outside", "outside/secret", "volume", "volume/_data"]
                .iter()
                .map(|s| s.to_string())
                .chain(
                    everything_under(&target)
                        .into_iter()
                        .map(|p| format!("volume/_data/{p}"))
                )
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
            "{what}"
        );

        // API mode: the stream is refused before the hostile entry is sent,
        // and no entry sent leaves the root.
        let mut stream = Vec::new();
        let error = repository
            .restore_tar(&snapshot, "volume", &mut stream, &quiet())
            .expect_err(what)
            .to_string();
        assert!(error.contains("hostile or damaged"), "{what}: {error}");
        let mut archive = tar::Archive::new(stream.as_slice());
        for entry in archive.entries().unwrap().flatten() {
            let path = entry.path_bytes().into_owned();
            assert!(
                path == b"volume" || path.starts_with(b"volume/"),
                "{what}: {}",
                String::from_utf8_lossy(&path)
            );
            assert!(guard::unsafe_path(&path).is_none(), "{what}");
        }

        for options in [
            CheckOptions::default(),
            CheckOptions {
                read_data: Some(ReadData::All),
            },
        ] {
            let report = repository.check(options).unwrap();
            assert!(!report.is_ok(), "{what}: check calls it healthy");
            assert!(
                report.problems.iter().any(|p| p.detail.contains("hostile")
                    && p.affects.iter().any(|(id, _)| id == snapshot.id.short())),
                "{what}: {:?}",
                report.problems
            );
        }
    }
}

#[test]
fn a_symlink_planted_in_the_target_is_not_followed() {
    let repository = plaintext();
    let snapshot = snapshot_of(
        &repository,
        &[
            Entry::Dir(b"d"),
            Entry::File(b"d/f", b"data"),
            Entry::File(b"g", b"data"),
        ],
    );
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = base.path().join("target");
    std::fs::create_dir(&target).unwrap();
    // What a restore over existing content might meet.
    std::os::unix::fs::symlink(&outside, target.join("d")).unwrap();
    std::os::unix::fs::symlink(outside.join("g"), target.join("g")).unwrap();
    let result = repository.restore_dir(&snapshot, &target, &quiet());
    assert!(
        result.is_err(),
        "a symlink where a directory goes is refused"
    );
    assert!(everything_under(&outside).is_empty());
}

#[test]
fn legitimate_links_restore_in_both_modes() {
    let repository = plaintext();
    let snapshot = snapshot_of(
        &repository,
        &[
            Entry::Symlink(b"abs", b"/etc/passwd"),
            Entry::Dir(b"d"),
            Entry::File(b"d/f", b"data"),
            Entry::Hardlink(b"d/g", b"d/f"),
            Entry::Symlink(b"d/up", b"../d/f"),
            Entry::Hardlink(b"top", b"d/f"),
        ],
    );
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("out");
    repository.restore_dir(&snapshot, &out, &quiet()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::read(out.join("top")).unwrap(), b"data");
    assert_eq!(std::fs::metadata(out.join("d/f")).unwrap().nlink(), 3);
    assert_eq!(
        std::fs::read_link(out.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let mut stream = Vec::new();
    repository
        .restore_tar(&snapshot, "volume", &mut stream, &quiet())
        .unwrap();
    assert!(repository.check(CheckOptions::default()).unwrap().is_ok());
}

#[test]
fn a_fifo_restores_directly_without_blocking() {
    let repository = plaintext();
    let source_dir = tempfile::tempdir().unwrap();
    let fifo = source_dir.path().join("pipe");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o640) }, 0);
    std::fs::write(source_dir.path().join("file"), b"x").unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("out");
    let out2 = out.clone();
    let root = source_dir.path().to_path_buf();
    std::thread::spawn(move || {
        let snapshot = repository
            .backup_dir(&root, source("volume.fifo"), &quiet())
            .unwrap();
        repository.restore_dir(&snapshot, &out2, &quiet()).unwrap();
        // Over an existing FIFO too (a restore into a non-empty target).
        repository.restore_dir(&snapshot, &out2, &quiet()).unwrap();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("restore of a FIFO blocked");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
}

#[test]
fn holes_stay_holes_in_a_direct_restore() {
    use std::os::unix::fs::MetadataExt;
    let repository = plaintext();
    let source_dir = tempfile::tempdir().unwrap();
    let path = source_dir.path().join("sparse");
    let file = std::fs::File::create(&path).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(b"head", 0).unwrap();
    file.write_all_at(b"middle", 100 << 20).unwrap();
    file.set_len(256 << 20).unwrap();
    drop(file);
    let snapshot = repository
        .backup_dir(source_dir.path(), source("volume.sparse"), &quiet())
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("out");
    repository.restore_dir(&snapshot, &out, &quiet()).unwrap();
    let meta = std::fs::metadata(out.join("sparse")).unwrap();
    assert_eq!(meta.len(), 256 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    let restored = std::fs::File::open(out.join("sparse")).unwrap();
    let mut buf = [0u8; 6];
    restored.read_exact_at(&mut buf, 100 << 20).unwrap();
    assert_eq!(&buf, b"middle");
}
