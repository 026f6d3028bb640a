//! The mount's namespace on in-memory repositories, without FUSE: what
//! the kernel would be told, compared with the directory backed up.

use super::*;
use crate::repo::backend::memory::MemoryBackend;
use crate::repo::{RepoOptions, SnapshotSource};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn repository() -> Repository {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some("mount test")).unwrap();
    Repository::open(backend, Some("mount test"), RepoOptions::default()).unwrap()
}

fn source(resource: &str) -> SnapshotSource {
    SnapshotSource {
        resource: resource.to_string(),
        kind: "volume".into(),
        name: "test".into(),
        ..SnapshotSource::default()
    }
}

fn quiet() -> impl Fn(crate::repo::Progress) + Sync {
    |_| {}
}

fn mounted(snapshot: Snapshot) -> MountedSnapshot {
    MountedSnapshot {
        repository: 0,
        resource: snapshot.resource.clone(),
        snapshot,
        safety: false,
    }
}

/// A repository holding one snapshot of [`volume`], and the volume.
fn backed_up_volume() -> (Repository, tempfile::TempDir, Snapshot) {
    let repository = repository();
    let dir = volume();
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.data"), &quiet())
        .unwrap();
    (repository, dir, snapshot)
}

/// Files, a multi-blob file, a symlink, a hard link, modes with special bits.
fn volume() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("config/nested")).unwrap();
    std::fs::write(root.join("config/app.conf"), b"listen 80\n").unwrap();
    std::fs::write(root.join("config/nested/empty"), b"").unwrap();
    // Incompressible and several blobs long: reads cross blob boundaries.
    let mut big = vec![0u8; (3 << 20) + 12345];
    blake3::Hasher::new().finalize_xof().fill(&mut big);
    std::fs::write(root.join("big.bin"), big).unwrap();
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("config/app.conf", root.join("link")).unwrap();
    std::fs::hard_link(root.join("config/app.conf"), root.join("hard")).unwrap();
    dir
}

fn read_all(fs: &SnapshotFs, ino: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        // The kernel's piece size: reads cross blob boundaries.
        let piece = fs.read(ino, out.len() as u64, 128 << 10).unwrap();
        if piece.is_empty() {
            return out;
        }
        out.extend(piece);
    }
}

/// Compares the mounted directory `ino` with `dir`, recursively.
fn compare_with(fs: &SnapshotFs, ino: u64, dir: &Path) {
    let mut local: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    local.sort();
    let listed: Vec<String> = fs.readdir(ino).unwrap()[2..]
        .iter()
        .map(|(_, _, name)| String::from_utf8(name.clone()).unwrap())
        .collect();
    assert_eq!(listed, local, "entries of {}", dir.display());
    for name in local {
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let attr = fs.lookup(ino, name.as_bytes()).unwrap();
        assert_eq!(attr.mode, meta.mode() & 0o7777, "{name}");
        assert_eq!((attr.uid, attr.gid), (meta.uid(), meta.gid()), "{name}");
        assert_eq!(attr.mtime, meta.mtime(), "{name}");
        if meta.file_type().is_symlink() {
            assert_eq!(attr.kind, EntryKind::Symlink);
            let target = std::fs::read_link(&path).unwrap();
            assert_eq!(
                fs.readlink(attr.ino).unwrap(),
                target.as_os_str().as_encoded_bytes()
            );
        } else if meta.is_dir() {
            assert_eq!(attr.kind, EntryKind::Dir);
            compare_with(fs, attr.ino, &path);
        } else {
            assert_eq!(attr.kind, EntryKind::File);
            assert_eq!(attr.size, meta.len(), "{name}");
            assert_eq!(attr.nlink as u64, meta.nlink(), "{name}");
            assert_eq!(
                read_all(fs, attr.ino),
                std::fs::read(&path).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn a_tree_snapshot_reads_back_whole_with_its_metadata_and_stable_inodes() {
    let (repository, dir, snapshot) = backed_up_volume();
    let time = time_name(&snapshot);
    let fs = SnapshotFs::new(vec![repository], vec![mounted(snapshot)]);

    let resource = fs.lookup(ROOT, b"volume.data").unwrap();
    let names: Vec<Vec<u8>> = fs.readdir(resource.ino).unwrap()[2..]
        .iter()
        .map(|(_, _, n)| n.clone())
        .collect();
    assert_eq!(names, vec![time.clone().into_bytes(), b"latest".to_vec()]);
    let latest = fs.lookup(resource.ino, b"latest").unwrap();
    assert_eq!(fs.readlink(latest.ino).unwrap(), time.as_bytes());

    let root = fs.lookup(resource.ino, time.as_bytes()).unwrap();
    assert_eq!(
        root.mode,
        std::fs::metadata(dir.path()).unwrap().mode() & 0o7777
    );
    compare_with(&fs, root.ino, dir.path());

    // Hard links share the inode; numbers stay as first handed out.
    let config = fs.lookup(root.ino, b"config").unwrap();
    let app = fs.lookup(config.ino, b"app.conf").unwrap();
    assert_eq!(fs.lookup(root.ino, b"hard").unwrap().ino, app.ino);
    assert_eq!(fs.lookup(root.ino, b"config").unwrap(), config);
    assert_eq!(fs.readdir(config.ino).unwrap()[1].0, root.ino, "`..`");
    // Reads past the end and in the middle of a blob.
    let big = fs.lookup(root.ino, b"big.bin").unwrap();
    assert!(fs.read(big.ino, big.size + 10, 100).unwrap().is_empty());
    let whole = std::fs::read(dir.path().join("big.bin")).unwrap();
    assert_eq!(
        fs.read(big.ino, 1_500_000, 700_000).unwrap(),
        whole[1_500_000..2_200_000]
    );
    assert_eq!(fs.lookup(root.ino, b"missing"), Err(FsError::NotFound));
    assert_eq!(fs.lookup(app.ino, b"x"), Err(FsError::NotDir));
    assert_eq!(fs.problems().1, 0);
}

#[test]
fn a_stream_is_one_file_and_same_second_snapshots_are_told_apart() {
    let repository = repository();
    let dump = b"CREATE TABLE t (x int);\n".repeat(1000);
    let first = repository
        .backup_stream(&dump[..], source("dump.orders"), &quiet())
        .unwrap();
    let mut second = repository
        .backup_stream(&b"other"[..], source("dump.orders"), &quiet())
        .unwrap();
    second.time = first.time;
    let (first_name, second_id) = (time_name(&first), second.id.short().to_string());
    let fs = SnapshotFs::new(vec![repository], vec![mounted(first), mounted(second)]);
    let resource = fs.lookup(ROOT, b"dump.orders").unwrap();
    let file = fs.lookup(resource.ino, first_name.as_bytes()).unwrap();
    assert_eq!((file.kind, file.size), (EntryKind::File, dump.len() as u64));
    assert_eq!(read_all(&fs, file.ino), dump);
    let other = format!("{first_name}-{second_id}");
    assert_eq!(
        read_all(&fs, fs.lookup(resource.ino, other.as_bytes()).unwrap().ino),
        b"other"
    );
    assert_eq!(
        fs.readlink(fs.lookup(resource.ino, b"latest").unwrap().ino)
            .unwrap(),
        other.as_bytes()
    );
}

#[test]
fn a_hostile_tree_is_eio_and_recorded_and_the_others_stay_browsable() {
    let (repository, dir, good) = backed_up_volume();
    let hostile = repository
        .backup_with(source("volume.evil"), &quiet(), |builder| {
            builder.add(Node::new(NodeKind::Dir, 0o755, 0, 0, 0), None)?;
            let mut escape = Node::new(NodeKind::File, 0o644, 0, 0, 0);
            escape.set_path(b"../escaped");
            escape.size = 5;
            builder.add(escape, Some(&mut &b"owned"[..]))?;
            Ok(())
        })
        .unwrap();
    let evil_time = time_name(&hostile);
    let mut renamed = mounted(good.clone());
    renamed.resource = "../../etc".into();
    let fs = SnapshotFs::new(
        vec![repository],
        vec![mounted(good), mounted(hostile), renamed],
    );
    let evil = fs.lookup(ROOT, b"volume.evil").unwrap();
    assert_eq!(fs.lookup(evil.ino, evil_time.as_bytes()), Err(FsError::Io));
    let (problems, count) = fs.problems();
    assert_eq!(count, 2, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("`..`")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("no resource address")),
        "{problems:?}"
    );
    let names: Vec<Vec<u8>> = fs.readdir(ROOT).unwrap().into_iter().map(|e| e.2).collect();
    assert_eq!(
        names[2..],
        [b"volume.data".to_vec(), b"volume.evil".to_vec()]
    );
    let data = fs.lookup(ROOT, b"volume.data").unwrap();
    let latest = fs.lookup(data.ino, b"latest").unwrap();
    let root = fs
        .lookup(data.ino, &fs.readlink(latest.ino).unwrap())
        .unwrap();
    compare_with(&fs, root.ino, dir.path());
}
