//! The kernel side of a mount: [`SnapshotFs`] behind the `fuser` crate
//! (its pure-Rust mount: the `mount` system call as root, `fusermount3`
//! from Debian's `fuse3` otherwise; no libfuse). Mounted read-only, so the
//! kernel refuses every write with EROFS before it reaches us; nodev and
//! nosuid, so a snapshot's device nodes and setuid bits are shown, never
//! honoured. Owns the mount's life: checking the mountpoint, the session
//! thread, unmounting.

use super::{Attributes, EntryKind, FsError, SnapshotFs};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, ReplyStatfs, Request, Session, SessionUnmounter,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Snapshots never change while mounted: the kernel may keep what it saw.
const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "{0} is a mount whose file system is gone (what a `lifeboat mount` ended by SIGKILL \
         leaves behind): `fusermount3 -u {0}` (or `umount -l {0}`) releases it; then mount again"
    )]
    Stale(String),
    #[error("{0} is not a directory: make an empty directory to mount on")]
    NotDir(String),
    #[error("cannot use {path} as a mountpoint: {error}")]
    Mountpoint { path: String, error: std::io::Error },
    #[error(
        "cannot mount on {path}: {error} (a mount needs /dev/fuse and the kernel's fuse module; \
         as a user other than root, also `fusermount3` from Debian's fuse3 package)"
    )]
    Mount { path: String, error: std::io::Error },
}

/// Refuses a mountpoint that cannot take the mount, and explains the one
/// a killed mount left behind (every access to it fails with ENOTCONN).
pub fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    let shown = path.display().to_string();
    // Listing, not only stat: the kernel may answer a stat of a dead mount
    // from its attribute cache.
    match std::fs::metadata(path).and_then(|meta| {
        if meta.is_dir() {
            std::fs::read_dir(path).map(|_| true)
        } else {
            Ok(false)
        }
    }) {
        Ok(true) => Ok(()),
        Ok(false) => Err(MountError::NotDir(shown)),
        Err(error) => Err(mountpoint_error(path, error)),
    }
}

fn mountpoint_error(path: &Path, error: std::io::Error) -> MountError {
    let shown = path.display().to_string();
    if error.raw_os_error() == Some(libc::ENOTCONN) {
        MountError::Stale(shown)
    } else {
        MountError::Mountpoint { path: shown, error }
    }
}

/// A live mount: the thread that answers the kernel, and how to end it.
pub struct Mounted {
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    unmount: Unmount,
}

/// Ends a mount from anywhere (a signal handler included); idempotent.
#[derive(Clone)]
pub struct Unmount {
    unmounter: Arc<Mutex<SessionUnmounter>>,
    mountpoint: PathBuf,
}

impl Unmount {
    /// Unmounts; a mount still in use (a shell inside it) is detached
    /// lazily instead, so it is gone from the namespace either way.
    pub fn unmount(&self) -> Result<(), String> {
        let unmounted = self
            .unmounter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unmount();
        match unmounted {
            Ok(()) => Ok(()),
            Err(error) => {
                let path = std::ffi::CString::new(self.mountpoint.as_os_str().as_bytes())
                    .map_err(|e| e.to_string())?;
                // SAFETY: a valid NUL-terminated path; umount2 reads it only.
                if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
                    Ok(())
                } else {
                    Err(format!("{}: {error}", self.mountpoint.display()))
                }
            }
        }
    }
}

impl Mounted {
    pub fn unmounter(&self) -> Unmount {
        self.unmount.clone()
    }

    /// Blocks until the mount ends (an unmount from here or from outside,
    /// as `fusermount3 -u`).
    pub fn wait(self) -> std::io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the mount's thread panicked")))
    }
}

/// Mounts `fs` read-only on `mountpoint` and answers the kernel on a
/// thread of its own until unmounted.
pub fn mount(fs: Arc<SnapshotFs>, mountpoint: &Path) -> Result<Mounted, MountError> {
    check_mountpoint(mountpoint)?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
        MountOption::FSName("lifeboat".into()),
        MountOption::Subtype("lifeboat".into()),
    ];
    // Two threads: one reading a large snapshot's tree does not stall
    // every other lookup.
    config.n_threads = Some(2);
    let mut session = Session::new(Kernel(fs), mountpoint, &config).map_err(|error| {
        match mountpoint_error(mountpoint, error) {
            MountError::Mountpoint { path, error } => MountError::Mount { path, error },
            stale => stale,
        }
    })?;
    let unmount = Unmount {
        unmounter: Arc::new(Mutex::new(session.unmount_callable())),
        mountpoint: mountpoint
            .canonicalize()
            .unwrap_or(mountpoint.to_path_buf()),
    };
    let thread = std::thread::Builder::new()
        .name("lifeboat-mount".into())
        .spawn(move || session.run())
        .map_err(|error| MountError::Mount {
            path: mountpoint.display().to_string(),
            error,
        })?;
    Ok(Mounted { thread, unmount })
}

struct Kernel(Arc<SnapshotFs>);

fn errno(error: FsError) -> Errno {
    match error {
        FsError::NotFound => Errno::ENOENT,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotLink => Errno::EINVAL,
        FsError::Io => Errno::EIO,
    }
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File => FileType::RegularFile,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

fn file_attr(attr: &Attributes) -> FileAttr {
    // A tree's mtime is untrusted: one no system time can hold is shown
    // as the epoch rather than overflowing.
    let time = if attr.mtime >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(attr.mtime as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(attr.mtime.unsigned_abs()))
    }
    .unwrap_or(UNIX_EPOCH);
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: file_type(attr.kind),
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for Kernel {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.0.lookup(parent.0, name.as_bytes()) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.0.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.0.getattr(ino.0) {
            // Content never changes while mounted: the page cache may keep it.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.0.read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.0.readdir(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        for (i, (child, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            let full = reply.add(
                INodeNo(*child),
                i as u64 + 1,
                file_type(*kind),
                OsStr::from_bytes(name),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_recorded_time_or_mode_gives_attributes_without_a_panic() {
        for mtime in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
            let attr = Attributes {
                ino: 7,
                kind: EntryKind::File,
                mode: u32::MAX,
                uid: 1,
                gid: 2,
                mtime,
                size: u64::MAX,
                nlink: 1,
                rdev: 0,
            };
            let shown = file_attr(&attr);
            assert_eq!((shown.ino, shown.perm, shown.uid), (INodeNo(7), 0o7777, 1));
        }
    }
}
