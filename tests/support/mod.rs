//! Shared helpers for integration tests against the real Docker engine:
//! test volumes filled with tricky content, and exact tree comparison.
//!
//! Tests run as root on the engine's host (scripts/test.sh makes it so), so
//! they write into a volume's mountpoint directly to prepare content and read
//! it back to compare. lifeboat itself only ever goes through the API.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Names of lifeboat's helper containers that mount `volume`.
pub fn helpers_of(volume: &str) -> Vec<String> {
    let listed = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.lifeboat.helper={volume}"),
        "--format",
        "{{.Names}}",
    ]);
    listed
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A Docker volume named for its test, removed when dropped.
pub struct TestVolume {
    name: String,
}

impl TestVolume {
    pub fn create(test: &str) -> TestVolume {
        let name = format!("lifeboat-test-{test}-{}", std::process::id());
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &name])
            .output();
        docker(&["volume", "create", &name]);
        TestVolume { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mountpoint(&self) -> PathBuf {
        PathBuf::from(docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &self.name,
        ]))
    }
}

impl Drop for TestVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.name])
            .output();
    }
}

/// A Docker container, removed (forced) when dropped.
pub struct RemoveContainer(pub String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A busybox container sleeping (a dump's service), named for its test and
/// removed when dropped. Its shell ends on SIGTERM at once.
pub struct SleepingContainer {
    pub name: String,
}

impl SleepingContainer {
    pub fn start(test: &str) -> SleepingContainer {
        let name = format!("lifeboat-test-{test}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ]);
        SleepingContainer { name }
    }
}

impl Drop for SleepingContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn set_times(path: &Path, seconds: i64) {
    let time = filetime::FileTime::from_unix_time(seconds, 0);
    filetime::set_symlink_file_times(path, time, time).unwrap();
}

/// Fills `root` with what breaks naive backups: empty directories, symlinks
/// (dangling too), hard links, setuid/setgid/sticky bits, other owners, old
/// mtimes, long and non-ASCII names, a file larger than one chunk.
pub fn fill_tricky(root: &Path) {
    use std::fs;
    let write = |relative: &str, data: &[u8], mode: u32, owner: (u32, u32), mtime: i64| {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        set_times(&path, mtime);
    };
    write(
        "plain.txt",
        b"hello lifeboat\n",
        0o644,
        (0, 0),
        1_600_000_000,
    );
    write("empty-file", b"", 0o600, (1000, 1000), 1_500_000_000);
    write(
        "bin/setuid-tool",
        b"#!/bin/sh\necho hi\n",
        0o4755,
        (0, 0),
        1_600_000_001,
    );
    write(
        "bin/setgid-tool",
        b"#!/bin/sh\n",
        0o2750,
        (0, 50),
        1_600_000_002,
    );
    write(
        "owned/by-postgres",
        b"pg data",
        0o600,
        (999, 999),
        1_600_000_003,
    );
    write(
        "ünïcödé/日本語 ファイル.txt",
        "non-ASCII ✓\n".as_bytes(),
        0o644,
        (0, 0),
        1_600_000_004,
    );
    let long_name = "n".repeat(250);
    write(
        &format!("long/{long_name}"),
        b"long name",
        0o644,
        (0, 0),
        1_600_000_005,
    );
    let deep = (0..12)
        .map(|i| format!("directory-level-{i:02}"))
        .collect::<Vec<_>>()
        .join("/");
    write(
        &format!("{deep}/deep.txt"),
        b"deep path over 255 bytes",
        0o640,
        (0, 0),
        1_600_000_006,
    );
    // Larger than one chunk, incompressible, so several blobs and packs.
    let big = random_bytes(3 * 1024 * 1024 + 12345, 0x2545F4914F6CDD1D);
    write("data/big.bin", &big, 0o644, (0, 0), 1_600_000_007);
    write(
        "data/compressible.log",
        &b"GET /index.html 200\n".repeat(100_000),
        0o644,
        (33, 33),
        1_600_000_008,
    );
    // Hard links: three names, one inode.
    fs::hard_link(root.join("plain.txt"), root.join("hardlink-1")).unwrap();
    fs::create_dir_all(root.join("links")).unwrap();
    fs::hard_link(root.join("plain.txt"), root.join("links/hardlink-2")).unwrap();
    // Symlinks: relative, absolute, dangling, to a directory.
    std::os::unix::fs::symlink("plain.txt", root.join("links/relative")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("links/absolute")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("links/dangling")).unwrap();
    std::os::unix::fs::symlink("../data", root.join("links/to-dir")).unwrap();
    std::os::unix::fs::lchown(root.join("links/dangling"), Some(1000), Some(1000)).unwrap();
    // Directories: empty, sticky, restrictive, with old mtimes (set last).
    for (dir, mode, owner) in [
        ("empty-dir", 0o755, (0, 0)),
        ("tmp-sticky", 0o1777, (0, 0)),
        ("private", 0o700, (1000, 1000)),
        ("shared-group", 0o2775, (0, 100)),
    ] {
        let path = root.join(dir);
        fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    write(
        "private/secret",
        b"s3cr3t",
        0o400,
        (1000, 1000),
        1_600_000_009,
    );
    for (i, dir) in [
        "empty-dir",
        "tmp-sticky",
        "private",
        "shared-group",
        "links",
        "data",
        "bin",
    ]
    .iter()
    .enumerate()
    {
        set_times(&root.join(dir), 1_550_000_000 + i as i64);
    }
    std::os::unix::fs::chown(root, Some(0), Some(0)).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
}

/// One entry's comparable facts.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    content: Option<[u8; 32]>,
    link: Option<Vec<u8>>,
    /// Index of the first path with the same inode (hard link groups).
    inode_group: Option<Vec<u8>>,
}

fn facts(root: &Path) -> BTreeMap<Vec<u8>, Facts> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut entries: Vec<_> = walkdir::WalkDir::new(root)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()))
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    for entry in entries {
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let meta = entry.path().symlink_metadata().unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let content = ft
            .is_file()
            .then(|| Sha256::digest(std::fs::read(entry.path()).unwrap()).into());
        let link = ft.is_symlink().then(|| {
            std::fs::read_link(entry.path())
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        });
        let inode_group = (ft.is_file() && meta.nlink() > 1).then(|| {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| relative.clone())
                .clone()
        });
        out.insert(
            relative,
            Facts {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                content,
                link,
                inode_group,
            },
        );
    }
    out
}

/// Compares two trees entry by entry; the error lists every difference.
/// `len` incompressible bytes, the same for the same `seed` (xorshift).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // Odd (xorshift needs a non-zero state) and distinct for distinct seeds.
    let mut state = seed.wrapping_mul(2).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An exact copy (`cp -a`) of the tree at `root`, to compare with later.
pub fn keep_copy(root: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", root.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {}", root.display());
    copy
}

pub fn compare_trees(expected: &Path, actual: &Path) -> Result<(), String> {
    compare_trees_where(expected, actual, |_| true)
}

/// [`compare_trees`] on the entries whose relative path `keep` admits.
pub fn compare_trees_where(
    expected: &Path,
    actual: &Path,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<(), String> {
    let kept = |root: &Path| {
        let mut all = facts(root);
        all.retain(|path, _| keep(path));
        all
    };
    let a = kept(expected);
    let b = kept(actual);
    let mut differences = Vec::new();
    for (path, fa) in &a {
        let shown = String::from_utf8_lossy(path);
        match b.get(path) {
            None => differences.push(format!("missing: {shown}")),
            Some(fb) if fa != fb => differences.push(format!(
                "differs: {shown}\n  expected {fa:?}\n  actual   {fb:?}"
            )),
            Some(_) => {}
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        differences.push(format!("unexpected: {}", String::from_utf8_lossy(path)));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("\n"))
    }
}

/// Bytes of all files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}
