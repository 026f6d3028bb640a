//! `lifeboat mount` through the kernel's FUSE: a real volume's snapshot
//! walked and compared with the volume, writes refused, SIGTERM and
//! `fusermount3 -u` unmounting, and the mountpoint a SIGKILL leaves
//! explained. Also `dump` of a directory as a tar stream.

use crate::harness::Workspace;
use crate::support;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Whether `path` is a mountpoint now (as /proc/self/mountinfo lists it).
fn is_mounted(path: &Path) -> bool {
    let path = path.canonicalize().unwrap_or(path.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

/// Starts `lifeboat mount` on `mountpoint` and waits until the tree shows.
fn mount(ws: &Workspace, mountpoint: &Path) -> Child {
    let mut child = ws
        .process(&["mount", mountpoint.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mountpoint.join("volume.data").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "mount ended with {status}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the mount did not appear");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Unmounts whatever is left on `mountpoint` when a test fails midway.
struct Mountpoint(tempfile::TempDir);

impl Mountpoint {
    fn new() -> Mountpoint {
        Mountpoint(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

impl Drop for Mountpoint {
    fn drop(&mut self) {
        if is_mounted(self.0.path()) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0.path())
                .status();
        }
    }
}

/// A volume filled with `support::fill_tricky`, backed up once.
fn backed_up_tricky_volume(test: &str) -> (support::TestVolume, Workspace) {
    let volume = support::TestVolume::create(test);
    support::fill_tricky(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    (volume, ws)
}

/// `fusermount3 -u PATH`, as a user unmounts.
fn fusermount_unmount(path: &Path) {
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "fusermount3 -u {}", path.display());
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

#[test]
fn a_mounted_snapshot_is_the_volume_read_only_and_sigterm_unmounts_it() {
    let (volume, ws) = backed_up_tricky_volume("mount");
    let mountpoint = Mountpoint::new();
    let path = mountpoint.path();
    let child = mount(&ws, &path);

    let data = path.join("volume.data");
    let latest = std::fs::read_link(data.join("latest")).unwrap();
    let time = latest.to_str().unwrap().to_string();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    // Every file's content and metadata as in the volume, through FUSE.
    let snapshot = data.join(&time);
    if let Err(differences) = support::compare_trees(&volume.mountpoint(), &snapshot) {
        panic!("the mounted snapshot differs from the volume:\n{differences}");
    }
    // Inode numbers stay as they were within the mount.
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(snapshot.join("plain.txt")).unwrap().ino();
    assert_eq!(
        std::fs::metadata(data.join("latest/plain.txt"))
            .unwrap()
            .ino(),
        before
    );
    // Read-only: writes are refused by the kernel with EROFS.
    for attempt in [
        std::fs::write(snapshot.join("plain.txt"), b"x"),
        std::fs::write(snapshot.join("new-file"), b"x"),
        std::fs::create_dir(snapshot.join("new-dir")),
        std::fs::remove_file(snapshot.join("plain.txt")),
    ] {
        let error = attempt.expect_err("a write through the mount");
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
    }

    signal(&child, libc::SIGTERM);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("unmounted"), "{stderr}");
    assert!(!is_mounted(&path), "still mounted after SIGTERM");
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
}

#[test]
fn fusermount_unmounts_and_a_mount_killed_by_sigkill_is_explained_next_time() {
    let (_volume, ws) = backed_up_tricky_volume("mount-kill");
    let mountpoint = Mountpoint::new();
    let path = mountpoint.path();

    let child = mount(&ws, &path);
    fusermount_unmount(&path);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("Unmounted"));
    assert!(!is_mounted(&path));

    let child = mount(&ws, &path);
    signal(&child, libc::SIGKILL);
    let _ = child.wait_with_output();
    let stale = ws.run(&["mount", path.to_str().unwrap()]);
    assert_eq!(stale.code(), 1, "{stale}");
    assert!(stale.stderr().contains("fusermount3 -u"), "{stale}");
    assert!(stale.stderr().contains("SIGKILL"), "{stale}");
    // What the message says releases it.
    fusermount_unmount(&path);
    assert!(!is_mounted(&path));
}

#[test]
fn dump_of_a_directory_is_a_tar_stream_with_its_metadata() {
    let (volume, ws) = backed_up_tricky_volume("dump-dir");

    let dumped = ws
        .process(&["dump", "volume.data", "links"])
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let listing = std::process::Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut tar| {
            use std::io::Write;
            tar.stdin.take().unwrap().write_all(&dumped.stdout)?;
            tar.wait_with_output()
        })
        .unwrap();
    let listed = String::from_utf8_lossy(&listing.stdout);
    let names: Vec<&str> = listed
        .lines()
        .map(|l| {
            let name = l.split(" -> ").next().unwrap().rsplit(' ').next().unwrap();
            name.trim_end_matches('/')
        })
        .collect();
    assert_eq!(
        names,
        [
            "links",
            "links/absolute",
            "links/dangling",
            "links/hardlink-2",
            "links/relative",
            "links/to-dir"
        ],
        "{listed}"
    );
    assert!(listed.contains("1000/1000"), "owners kept: {listed}");

    // The whole tree, extracted, is the volume (the hard link to a file
    // outside `links` above came as a file of its own).
    let whole = ws.process(&["dump", "volume.data", "/"]).output().unwrap();
    assert!(whole.status.success());
    let into = tempfile::tempdir().unwrap();
    let mut tar = std::process::Command::new("tar")
        .args(["-x", "--same-owner", "-p", "--xattrs", "-C"])
        .arg(into.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    tar.stdin.take().unwrap().write_all(&whole.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    if let Err(differences) = support::compare_trees(&volume.mountpoint(), into.path()) {
        panic!("the extracted dump differs from the volume:\n{differences}");
    }
    // A file is still its bytes.
    let file = ws.ok(&["dump", "volume.data", "plain.txt"]);
    assert_eq!(file.stdout(), "hello lifeboat\n");
}
