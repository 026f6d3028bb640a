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
    let mode = if kind == NodeKind::Dir { 0o755 } else { 0o644 };
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut node = Node::new(kind, mode, uid as u64, gid as u64, 1_600_000_000);
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
        // Refused before anything is written: the tree is checked whole
        // before the target is even created.
        assert_eq!(
            everything_under(base.path()),
            ["outside", "outside/secret"],
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
                ..CheckOptions::default()
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
            // The user is running `check`: its findings do not send them to it.
            assert!(
                report
                    .problems
                    .iter()
                    .all(|p| !p.detail.contains("lifeboat check")),
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

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let c_path = std::ffi::CString::new(path.display().to_string()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid strings; the value pointer and length agree.
    let result = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        result,
        0,
        "{name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn xattrs_of(path: &Path) -> Vec<tree::Xattr> {
    super::xattr::read(path).unwrap().xattrs
}

/// Every node but those of `kind`, for comparing what two paths carried.
fn nodes_without(repository: &Repository, snapshot: &Snapshot, kind: NodeKind) -> Vec<Node> {
    let mut nodes = Vec::new();
    repository
        .for_each_node(snapshot, |node| {
            if node.kind != kind {
                nodes.push(node);
            }
            Ok(())
        })
        .unwrap();
    nodes
}

#[test]
fn attributes_and_sockets_round_trip_directly_and_attributes_through_the_archive() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let repository = plaintext();
    let source_dir = tempfile::tempdir().unwrap();
    let root = source_dir.path();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/file"), b"content").unwrap();
    set_xattr(&root.join("dir/file"), "user.origin", b"lab \x00\xff bytes");
    set_xattr(&root.join("dir/file"), "user.a", b"");
    set_xattr(&root.join("dir"), "user.dir", b"d");
    // SAFETY: a plain getter.
    let root_user = unsafe { libc::geteuid() } == 0;
    if root_user {
        set_xattr(&root.join("dir/file"), "trusted.note", b"t");
    }
    std::os::unix::fs::symlink("dir/file", root.join("link")).unwrap();
    let socket = root.join("dir/sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o640)).unwrap();
    let direct = repository
        .backup_dir(root, source("volume.meta"), &quiet())
        .unwrap();
    assert!(direct.notes.is_empty(), "{:?}", direct.notes);

    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("out");
    let stats = repository.restore_dir(&direct, &out, &quiet()).unwrap();
    assert!(stats.notes.is_empty());
    assert_eq!(
        xattrs_of(&out.join("dir/file")),
        xattrs_of(&root.join("dir/file"))
    );
    assert_eq!(xattrs_of(&out.join("dir")), xattrs_of(&root.join("dir")));
    assert_eq!(
        xattrs_of(&out.join("dir/file")).len(),
        if root_user { 3 } else { 2 }
    );
    let meta = std::fs::symlink_metadata(out.join("dir/sock")).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        meta.mtime(),
        std::fs::symlink_metadata(&socket).unwrap().mtime()
    );
    // Backing the restored tree up gives the same tree: nothing was lost.
    let again = repository
        .backup_dir(&out, source("volume.meta"), &quiet())
        .unwrap();
    assert_eq!(again.tree, direct.tree);

    // Through the archive: every attribute travels as a PAX record, the
    // socket cannot, and both ends say what they could not carry.
    let mut stream = Vec::new();
    let stats = repository
        .restore_tar(&direct, "volume", &mut stream, &quiet())
        .unwrap();
    assert_eq!(
        stats.notes,
        [TreeNote::SocketsNotRestored {
            paths: Paths {
                first: vec!["dir/sock".into()],
                count: 1
            }
        }]
    );
    let through_tar = repository
        .backup_tar(stream.as_slice(), source("volume.meta"), &quiet())
        .unwrap();
    assert_eq!(through_tar.notes, [TreeNote::ArchiveOmitsMetadata]);
    assert_eq!(
        nodes_without(&repository, &through_tar, NodeKind::Socket),
        nodes_without(&repository, &direct, NodeKind::Socket)
    );
}

#[test]
fn hostile_attributes_are_refused() {
    let repository = plaintext();
    for (xattrs, why) in [
        (
            vec![tree::Xattr {
                name: "user.a".into(),
                value: "zz".into(),
            }],
            "not hex",
        ),
        (vec![tree::Xattr::new("", b"x")], "without a usable name"),
        (
            vec![
                tree::Xattr::new("user.b", b"x"),
                tree::Xattr::new("user.a", b"x"),
            ],
            "not sorted",
        ),
    ] {
        let snapshot = repository
            .backup_with(source("volume.hostile"), &quiet(), |builder| {
                builder.add(node(b"", NodeKind::Dir), None)?;
                let mut file = node(b"f", NodeKind::File);
                file.xattrs = xattrs.clone();
                builder.add(file, Some(&mut &b""[..]))?;
                Ok(())
            })
            .unwrap();
        let target = tempfile::tempdir().unwrap();
        let error = repository
            .restore_dir(&snapshot, &target.path().join("out"), &quiet())
            .unwrap_err()
            .to_string();
        assert!(error.contains(why), "{error}");
        let error = repository
            .restore_tar(&snapshot, "volume", std::io::sink(), &quiet())
            .unwrap_err()
            .to_string();
        assert!(error.contains(why), "{error}");
    }
}

#[test]
fn an_archive_names_files_written_while_it_was_read_and_holes_it_fills() {
    // A file whose header mtime is later than the second the backup began,
    // but not in the future when read: written during the backup.
    let now = chrono::Utc::now().timestamp();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_mtime(now as u64);
    header.set_size(0);
    tar.append_data(&mut header, "volume", std::io::empty())
        .unwrap();
    for (name, mtime) in [("volume/old", now - 100), ("volume/busy", now + 2)] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(mtime as u64);
        header.set_size(8192);
        tar.append_data(&mut header, name, &[0u8; 8192][..])
            .unwrap();
    }
    let stream = tar.into_inner().unwrap();
    /// Hands the stream over 2.1 s late, as a slow engine would.
    struct Late(std::io::Cursor<Vec<u8>>, bool);
    impl std::io::Read for Late {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.1 {
                std::thread::sleep(std::time::Duration::from_millis(2100));
                self.1 = true;
            }
            self.0.read(buf)
        }
    }
    let repository = plaintext();
    let snapshot = repository
        .backup_tar(
            Late(std::io::Cursor::new(stream), false),
            source("volume.busy"),
            &quiet(),
        )
        .unwrap();
    assert_eq!(
        snapshot.notes,
        [
            TreeNote::ArchiveOmitsMetadata,
            TreeNote::ChangedWhileRead {
                paths: Paths {
                    first: vec!["busy".into()],
                    count: 1
                }
            }
        ]
    );
    let stats = repository
        .restore_tar(&snapshot, "volume", std::io::sink(), &quiet())
        .unwrap();
    assert_eq!(
        stats.notes,
        [TreeNote::HolesWrittenOut {
            paths: Paths {
                first: vec!["old".into(), "busy".into()],
                count: 2
            }
        }]
    );
}

#[test]
fn a_target_root_keeps_none_of_its_own_attributes_and_passes_no_acl_on() {
    let repository = plaintext();
    let source_dir = tempfile::tempdir().unwrap();
    std::fs::write(source_dir.path().join("file"), b"x").unwrap();
    set_xattr(source_dir.path(), "user.kept", b"from the snapshot");
    let snapshot = repository
        .backup_dir(source_dir.path(), source("volume.root"), &quiet())
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // user 1234 rwx by default, as getfattr shows such an ACL.
    let default_acl = hex::decode(
        "0200000001000700ffffffff02000700d204000004000500ffffffff10000700ffffffff20000500ffffffff",
    )
    .unwrap();
    set_xattr(&out, "system.posix_acl_default", &default_acl);
    set_xattr(&out, "user.stale", b"not in the snapshot");
    repository.restore_dir(&snapshot, &out, &quiet()).unwrap();
    assert_eq!(xattrs_of(&out), xattrs_of(source_dir.path()));
    assert!(xattrs_of(&out.join("file")).is_empty());
}

/// A tree whose entries' content disagrees with their sizes, or whose
/// sizes disagree with its summary, is refused before anything is written
/// or streamed, the same way in both modes (the API mode used to send such
/// a file truncated or padded with NUL bytes).
#[test]
fn content_that_disagrees_with_recorded_sizes_is_refused_before_writing() {
    let cases: Vec<(&str, u64, NodeKind)> = vec![
        ("file shorter than its size", 1 << 20, NodeKind::File),
        ("file longer than its size", 3, NodeKind::File),
        ("fifo carrying content", 0, NodeKind::Fifo),
    ];
    for (what, claimed, kind) in cases {
        let repository = plaintext();
        let snapshot = repository
            .backup_with(source("volume.hostile"), &quiet(), |builder| {
                builder.add(node(b"", NodeKind::Dir), None)?;
                let mut seed = node(b"seed", NodeKind::File);
                let data = b"twelve bytes";
                seed.size = data.len() as u64;
                let ids = builder.add(seed, Some(&mut &data[..]))?;
                let mut lying = node(b"lying", kind);
                lying.size = claimed;
                builder.add_known(lying, ids)
            })
            .unwrap();
        let error = repository
            .tree_totals(&snapshot)
            .expect_err(what)
            .to_string();
        assert!(error.contains("lying"), "{what}: {error}");
        // `check` reports what a restore would refuse.
        let report = repository.check(CheckOptions::default()).unwrap();
        assert!(
            report.problems.iter().any(|p| p.what.contains("lying")),
            "{what}: {:?}",
            report.problems
        );
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("out");
        let error = repository
            .restore_dir(&snapshot, &target, &quiet())
            .expect_err(what)
            .to_string();
        assert!(
            error.contains("lying") || error.contains("content"),
            "{what}: {error}"
        );
        if kind == NodeKind::File {
            let mut stream = Vec::new();
            let error = repository
                .restore_tar(&snapshot, "volume", &mut stream, &quiet())
                .expect_err(what)
                .to_string();
            assert!(
                error.contains("bytes of content, the tree says"),
                "{what}: {error}"
            );
        }
    }
    // Sizes that add up to another total than the summary claims (a tree
    // claiming 10 B that holds far more).
    let repository = plaintext();
    let mut snapshot = snapshot_of(&repository, &[Entry::File(b"f", b"0123456789abcdef")]);
    assert_eq!(
        repository.tree_totals(&snapshot).unwrap(),
        TreeTotals {
            files: 1,
            bytes: 16
        }
    );
    snapshot.summary.bytes = 10;
    let error = repository.tree_totals(&snapshot).unwrap_err().to_string();
    assert!(
        error.contains("its tree holds 16 bytes in 1 files, its summary claims 10 bytes"),
        "{error}"
    );
}

/// `restore --path` (in place or `--into`), `diff` and `dump` read a tree
/// through the same guard as a whole restore: a hostile tree is refused
/// by each, whatever path is asked for, before anything is written.
#[test]
fn hostile_trees_are_refused_by_a_partial_restore_diff_and_dump() {
    let hostile: Vec<(&str, Vec<Entry>)> = vec![
        (
            "a file under a symlink",
            vec![
                Entry::Symlink(b"x", b"/etc"),
                Entry::File(b"x/passwd", b"owned"),
            ],
        ),
        (
            "a `..` path",
            vec![Entry::File(b"x/../../escaped", b"owned")],
        ),
        (
            "a duplicate name",
            vec![Entry::Dir(b"x"), Entry::Symlink(b"x", b"/etc")],
        ),
    ];
    for (what, entries) in hostile {
        let repository = plaintext();
        let snapshot = snapshot_of(&repository, &entries);
        let refused = |result: Result<(), RepoError>| {
            let error = result.expect_err(what).to_string();
            assert!(error.contains("hostile or damaged"), "{what}: {error}");
        };
        let selection = partial::PathSelection::parse(&["x".to_string()]).unwrap();
        refused(repository.subtree_map(&snapshot, &selection).map(|_| ()));
        refused(repository.tree_map(&snapshot).map(|_| ()));
        let mut out = Vec::new();
        refused(
            repository
                .write_path(&snapshot, "", true, &mut out)
                .map(|_| ()),
        );
        let into = tempfile::tempdir().unwrap();
        let target = into.path().join("recovered");
        let write = partial::WriteSet::new(&["x".to_string()]);
        refused(
            repository
                .restore_dir_selected_new(&snapshot, &target, &write, &quiet())
                .map(|_| ()),
        );
        assert!(everything_under(into.path()).is_empty(), "{what}");
    }
}

/// A file larger than two of the largest chunks: its ids are computed by
/// the backup's workers and its blobs restored through reused buffers. It
/// comes back byte for byte (holes included) in both modes; a damaged blob
/// in its middle fails the restore naming it, and leaves no file of the
/// full size behind, nor sends a whole entry in an archive.
#[test]
fn a_large_file_restores_exactly_and_a_damaged_middle_leaves_it_short() {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), Some("large")).unwrap();
    let repository =
        Repository::open(backend.clone(), Some("large"), RepoOptions::default()).unwrap();
    let length = 2 * CHUNKER.max as usize + 3 * 1024 * 1024 + 12_345;
    let mut data = super::tests::random_bytes(length, &mut 0x9e37_79b9_7f4a_7c15);
    data[5 << 20..7 << 20].fill(0);
    let snapshot = snapshot_of(&repository, &[Entry::File(b"large", &data)]);
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&snapshot, &out.path().join("whole"), &quiet())
        .unwrap();
    assert!(std::fs::read(out.path().join("whole/large")).unwrap() == data);
    let mut stream = Vec::new();
    repository
        .restore_tar(&snapshot, "volume", &mut stream, &quiet())
        .unwrap();
    let mut archive = tar::Archive::new(stream.as_slice());
    let mut entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|entry| entry.path_bytes().as_ref() == b"volume/large")
        .unwrap();
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut streamed).unwrap();
    assert!(streamed == data);

    let file = nodes_without(&repository, &snapshot, NodeKind::Dir)
        .into_iter()
        .find(|node| node.path_bytes() == b"large")
        .unwrap();
    assert!(file.content.len() > 3, "{} blobs", file.content.len());
    let middle = file.content[file.content.len() / 2];
    let (pack, blob) = repository.index().locations(&middle).remove(0);
    backend.tamper(FileKind::Pack, &pack, |bytes| {
        bytes[(blob.offset + blob.length / 2) as usize] ^= 0x10;
    });
    let error = repository
        .restore_dir(&snapshot, &out.path().join("damaged"), &quiet())
        .unwrap_err();
    assert!(
        matches!(&error, RepoError::BadBlob { path, .. } if path == "large"),
        "{error}"
    );
    let left = std::fs::metadata(out.path().join("damaged/large")).map_or(0, |m| m.len());
    assert!(left < data.len() as u64, "{left} bytes left");
    let mut stream = Vec::new();
    repository
        .restore_tar(&snapshot, "volume", &mut stream, &quiet())
        .unwrap_err();
    // Cut short: the archive cannot hold the whole file.
    assert!(stream.len() < data.len(), "{} bytes sent", stream.len());
}

#[test]
fn zeros_among_data_are_allocated_and_long_runs_of_zeros_stay_holes() {
    use std::os::unix::fs::MetadataExt;
    let repository = plaintext();
    let mut seed = 0x2545_f491_4f6c_dd1d;
    // A database's shape in small: pages of data with a zero page among
    // them (written data in the source, not a hole), then a run of zeros
    // longer than the largest chunk (whole blobs of zeros, as a sparse
    // region gives), then data again.
    let mut data = super::tests::random_bytes(3 << 20, &mut seed);
    data[1 << 20..(1 << 20) + (64 << 10)].fill(0);
    data.extend(std::iter::repeat_n(
        0u8,
        2 * CHUNKER.max as usize + (1 << 20),
    ));
    data.extend(super::tests::random_bytes(1 << 20, &mut seed));
    let snapshot = snapshot_of(&repository, &[Entry::File(b"table", &data)]);
    let out = tempfile::tempdir().unwrap();
    repository
        .restore_dir(&snapshot, &out.path().join("out"), &quiet())
        .unwrap();
    let restored = out.path().join("out/table");
    assert!(std::fs::read(&restored).unwrap() == data);
    let allocated = std::fs::metadata(&restored).unwrap().blocks() * 512;
    // Every block of data, the zero pages among them included (a hole
    // there made it 64 KiB less)...
    assert!(allocated >= 4 << 20, "{allocated} bytes allocated");
    // ...and nothing of the long run of zeros (17 MiB).
    assert!(
        allocated < (4 << 20) + (1 << 20),
        "{allocated} bytes allocated of {}",
        data.len()
    );
}
