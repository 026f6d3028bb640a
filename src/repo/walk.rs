//! The sorted walk of a directory tree that direct backups read: every
//! entry once, depth first, each directory's entries in byte order of
//! their names (the order of snapshot trees and of the file cache), with
//! its `lstat` and a symlink's target.
//!
//! Directories are listed relative to their open parent (`openat`,
//! `getdents64`, `fstatat` and `readlinkat` with the bare name): the
//! kernel never walks a full path again, which a re-run of many files
//! in deep trees spent most of its system time on (profiled). Listing
//! threads list the directories the walk will enter next while it visits
//! the entries before them, a bounded number ahead; the walk itself stays
//! in order on the caller's thread.
//!
//! It is the one walker of directory trees: backups walk with it, and so
//! does the measure of a tree before a first backup (`direct::tree_size`,
//! with more listing threads, as nothing waits on the visit there).
//!
//! This module reads metadata only: what a backup makes of an entry (its
//! node, cached content, attributes) is `direct`'s.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// Listing threads beside a backup's walk: the machines this runs on have
/// two cores or more, and the walk's own thread lists a directory itself
/// when it would otherwise wait for it.
pub(crate) const LISTING_THREADS: usize = 2;
/// Directories listed ahead of the walk at most (bounds the memory of
/// listings not yet visited).
const LISTED_AHEAD: usize = 64;
/// `getdents64` buffer: a directory of a few hundred entries in one call.
const DIRENT_BUFFER: usize = 32 << 10;

/// What `lstat` says of an entry: the fields a backup records or compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Stat {
    fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    fn of_stat(raw: &libc::stat) -> Stat {
        Stat {
            mode: raw.st_mode,
            uid: raw.st_uid,
            gid: raw.st_gid,
            size: raw.st_size as u64,
            mtime: raw.st_mtime,
            mtime_nsec: raw.st_mtime_nsec,
            ctime: raw.st_ctime,
            ctime_nsec: raw.st_ctime_nsec,
            dev: raw.st_dev,
            ino: raw.st_ino,
            // u32 on some targets.
            #[allow(clippy::unnecessary_cast)]
            nlink: raw.st_nlink as u64,
            rdev: raw.st_rdev,
        }
    }
}

impl From<&std::fs::Metadata> for Stat {
    fn from(meta: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
            dev: meta.dev(),
            ino: meta.ino(),
            nlink: meta.nlink(),
            rdev: meta.rdev(),
        }
    }
}

/// One entry as its directory's listing found it. `stat` fails for an
/// entry removed between the listing of its directory and its `lstat`.
pub(crate) struct Listed {
    pub name: Vec<u8>,
    pub stat: io::Result<Stat>,
    /// A symlink's target (`None` for anything else).
    pub target: Option<io::Result<Vec<u8>>>,
}

/// What the walk hands its visitor, in walk order.
pub(crate) enum Visit<'w> {
    /// An entry: the root first (relative path empty), then the tree.
    Entry {
        path: &'w Path,
        relative: &'w [u8],
        listed: Listed,
    },
    /// A directory already visited whose entries could not be listed
    /// (removed since, or unreadable): nothing below it is visited.
    Unlisted {
        path: &'w Path,
        relative: &'w [u8],
        error: io::Error,
    },
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor the kernel just returned to us alone.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// `lstat` of `name` in the directory `dir`.
fn stat_at(dir: &OwnedFd, name: &CString) -> io::Result<Stat> {
    let mut raw = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor, NUL-terminated name, a buffer of the right type.
    let done = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            raw.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat filled it.
    let raw = unsafe { raw.assume_init() };
    Ok(Stat::of_stat(&raw))
}

/// The target of the symlink `name` in `dir`.
fn link_at(dir: &OwnedFd, name: &CString) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; 256];
    loop {
        // SAFETY: valid descriptor and name; the buffer pointer and length agree.
        let got = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if (got as usize) < buffer.len() {
            buffer.truncate(got as usize);
            return Ok(buffer);
        }
        // Maybe cut short: ask again with room to spare.
        buffer.resize(buffer.len() * 4, 0);
    }
}

/// The names in the open directory `dir`, `.` and `..` left out.
fn names_in(dir: &OwnedFd, buffer: &mut [u8]) -> io::Result<Vec<Vec<u8>>> {
    // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    const NAME_AT: usize = 19;
    let mut names = Vec::new();
    loop {
        // SAFETY: valid descriptor; the buffer pointer and length agree.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        if got == 0 {
            return Ok(names);
        }
        let filled = &buffer[..got as usize];
        let mut at = 0;
        while at + NAME_AT <= filled.len() {
            let length = u16::from_ne_bytes([filled[at + 16], filled[at + 17]]) as usize;
            if length < NAME_AT || at + length > filled.len() {
                return Err(io::Error::other("a malformed directory entry"));
            }
            let record = &filled[at + NAME_AT..at + length];
            let name = &record[..record.iter().position(|b| *b == 0).unwrap_or(record.len())];
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
            at += length;
        }
    }
}

/// Lists the open directory `dir`: its entries sorted by name, each with
/// its `lstat` (and target, for a symlink).
fn list(dir: &OwnedFd, buffer: &mut [u8]) -> io::Result<Vec<Listed>> {
    let mut names = names_in(dir, buffer)?;
    names.sort_unstable();
    Ok(names
        .into_iter()
        .map(|name| {
            let c = c_name(&name);
            let stat = c
                .as_ref()
                .map_err(clone_error)
                .and_then(|c| stat_at(dir, c));
            let target = match (&stat, &c) {
                (Ok(stat), Ok(c)) if stat.is_symlink() => Some(link_at(dir, c)),
                _ => None,
            };
            Listed { name, stat, target }
        })
        .collect())
}

fn clone_error(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

/// A directory to list: `name` in its parent's open directory.
struct Job {
    parent: Arc<OwnedFd>,
    name: Vec<u8>,
}

/// A listed directory: open (its entries are listed relative to it), and
/// its entries.
type Listing = io::Result<(Arc<OwnedFd>, Vec<Listed>)>;

fn run(job: &Job, buffer: &mut [u8]) -> Listing {
    let c = c_name(&job.name)?;
    // O_NOFOLLOW: a directory replaced by a symlink since its lstat is
    // never followed out of the tree.
    // SAFETY: valid descriptor and NUL-terminated name.
    let fd = owned(unsafe {
        libc::openat(
            job.parent.as_raw_fd(),
            c.as_ptr(),
            DIR_FLAGS | libc::O_NOFOLLOW,
        )
    })?;
    let entries = list(&fd, buffer)?;
    Ok((Arc::new(fd), entries))
}

enum Slot {
    Queued(Job),
    Listing,
    Listed(Listing),
}

#[derive(Default)]
struct Board {
    slots: HashMap<u64, Slot>,
    /// Queued jobs, the one the walk needs soonest first.
    queue: VecDeque<u64>,
    next_id: u64,
    /// Jobs being listed or listed and not yet taken by the walk.
    ahead: usize,
    stop: bool,
}

/// The directories the walk asked for, shared with the listing threads.
#[derive(Default)]
struct Listings {
    board: Mutex<Board>,
    changed: Condvar,
}

impl Listings {
    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `jobs`, in walk order; they come before every job asked
    /// for earlier (the walk is depth first). Returns their ids.
    fn ask(&self, jobs: Vec<Job>) -> Vec<u64> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let count = jobs.len() as u64;
        let mut board = self.board();
        let first = board.next_id;
        board.next_id += count;
        let ids: Vec<u64> = (first..first + count).collect();
        for (id, job) in ids.iter().zip(jobs).rev() {
            board.slots.insert(*id, Slot::Queued(job));
            board.queue.push_front(*id);
        }
        drop(board);
        self.changed.notify_all();
        ids
    }

    /// The listing of job `id`: listed by a listing thread, or here when
    /// none has begun it.
    fn take(&self, id: u64, buffer: &mut [u8]) -> Listing {
        let mut board = self.board();
        loop {
            match board.slots.remove(&id) {
                Some(Slot::Listed(listing)) => {
                    board.ahead -= 1;
                    drop(board);
                    self.changed.notify_all();
                    return listing;
                }
                Some(Slot::Queued(job)) => {
                    board.queue.retain(|queued| *queued != id);
                    drop(board);
                    return run(&job, buffer);
                }
                Some(Slot::Listing) => {
                    board.slots.insert(id, Slot::Listing);
                    board = self.changed.wait(board).unwrap_or_else(|p| p.into_inner());
                }
                None => return Err(io::Error::other("a directory listing was taken twice")),
            }
        }
    }

    /// A listing thread: lists the job the walk needs soonest while fewer
    /// than [`LISTED_AHEAD`] wait for it, until the walk ends.
    fn serve(&self) {
        let mut buffer = vec![0u8; DIRENT_BUFFER];
        let mut board = self.board();
        loop {
            if board.stop {
                return;
            }
            let next = (board.ahead < LISTED_AHEAD)
                .then(|| board.queue.pop_front())
                .flatten();
            let Some(id) = next else {
                board = self.changed.wait(board).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let Some(Slot::Queued(job)) = board.slots.insert(id, Slot::Listing) else {
                continue; // only queued jobs are in the queue
            };
            board.ahead += 1;
            drop(board);
            let listing = run(&job, &mut buffer);
            drop(job);
            board = self.board();
            board.slots.insert(id, Slot::Listed(listing));
            self.changed.notify_all();
        }
    }

    fn stop(&self) {
        self.board().stop = true;
        self.changed.notify_all();
    }
}

/// A directory the walk is inside: its entries still to visit, and the
/// listings asked for its subdirectories, in order.
struct Frame {
    entries: std::vec::IntoIter<Listed>,
    subdirectories: VecDeque<u64>,
    /// Length of its relative path (the walk's path buffer is cut back to it).
    relative_len: usize,
}

/// Walks the tree at `root` (followed if it is a symlink, as the root of
/// a backup is), visiting every entry `keep` keeps in order; a directory
/// `keep` leaves out is not entered. `keep` gets each entry's path below
/// the root, whether it is a directory, and its full path. Stops when
/// `visit` breaks; fails only when the root cannot be listed.
pub(crate) fn walk(
    root: &Path,
    keep: impl FnMut(&[u8], bool, &Path) -> bool,
    visit: impl FnMut(Visit<'_>) -> ControlFlow<()>,
) -> io::Result<()> {
    walk_listing_with(LISTING_THREADS, root, keep, visit)
}

/// [`walk`] with `listing_threads` listing directories ahead of the
/// visit (one at least).
pub(crate) fn walk_listing_with(
    listing_threads: usize,
    root: &Path,
    mut keep: impl FnMut(&[u8], bool, &Path) -> bool,
    mut visit: impl FnMut(Visit<'_>) -> ControlFlow<()>,
) -> io::Result<()> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let root_bytes = root.as_os_str().as_bytes();
    let root_meta = root.symlink_metadata().map(|m| Stat::from(&m));
    let root_target = match &root_meta {
        Ok(stat) if stat.is_symlink() => {
            Some(std::fs::read_link(root).map(|t| t.into_os_string().into_vec()))
        }
        _ => None,
    };
    let root_is_dir = root.metadata().map(|m| m.is_dir());
    let root_listed = Listed {
        name: Vec::new(),
        stat: root_meta,
        target: root_target,
    };
    if visit(Visit::Entry {
        path: root,
        relative: b"",
        listed: root_listed,
    })
    .is_break()
        || !root_is_dir?
    {
        return Ok(());
    }
    let c_root = c_name(root_bytes)?;
    // SAFETY: a valid NUL-terminated path.
    let root_fd = owned(unsafe { libc::open(c_root.as_ptr(), DIR_FLAGS) })?;
    let mut buffer = vec![0u8; DIRENT_BUFFER];
    let root_entries = list(&root_fd, &mut buffer)?;

    let listings = Listings::default();
    std::thread::scope(|scope| {
        for _ in 0..listing_threads.max(1) {
            scope.spawn(|| listings.serve());
        }
        // Stops the listing threads however the walk ends.
        struct StopOnDrop<'l>(&'l Listings);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _stop = StopOnDrop(&listings);
        let mut relative: Vec<u8> = Vec::new();
        let mut path_bytes: Vec<u8> = root_bytes.to_vec();
        let mut stack = vec![enter(
            &listings,
            Arc::new(root_fd),
            root_entries,
            0,
            &mut relative,
            root_bytes,
            &mut keep,
        )];
        while let Some(frame) = stack.last_mut() {
            let Some(listed) = frame.entries.next() else {
                stack.pop();
                continue;
            };
            relative.truncate(frame.relative_len);
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(&listed.name);
            path_bytes.truncate(root_bytes.len());
            if !root_bytes.ends_with(b"/") {
                path_bytes.push(b'/');
            }
            path_bytes.extend_from_slice(&relative);
            let path = PathBuf::from(std::ffi::OsString::from_vec(path_bytes.clone()));
            let is_dir = listed.stat.as_ref().is_ok_and(Stat::is_dir);
            let subdirectory = is_dir.then(|| frame.subdirectories.pop_front()).flatten();
            if visit(Visit::Entry {
                path: &path,
                relative: &relative,
                listed,
            })
            .is_break()
            {
                return Ok(());
            }
            let Some(id) = subdirectory else {
                continue;
            };
            match listings.take(id, &mut buffer) {
                Ok((fd, entries)) => {
                    let relative_len = relative.len();
                    stack.push(enter(
                        &listings,
                        fd,
                        entries,
                        relative_len,
                        &mut relative,
                        root_bytes,
                        &mut keep,
                    ))
                }
                Err(error) => {
                    if visit(Visit::Unlisted {
                        path: &path,
                        relative: &relative,
                        error,
                    })
                    .is_break()
                    {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    })
}

/// A frame for a listed directory (`relative` below the root): its
/// entries `keep` keeps, and its kept subdirectories asked for listing.
fn enter(
    listings: &Listings,
    fd: Arc<OwnedFd>,
    entries: Vec<Listed>,
    relative_len: usize,
    relative: &mut Vec<u8>,
    root: &[u8],
    keep: &mut impl FnMut(&[u8], bool, &Path) -> bool,
) -> Frame {
    use std::os::unix::ffi::OsStrExt;
    let mut kept = Vec::with_capacity(entries.len());
    let mut jobs = Vec::new();
    let mut path = root.to_vec();
    for listed in entries {
        relative.truncate(relative_len);
        if !relative.is_empty() {
            relative.push(b'/');
        }
        relative.extend_from_slice(&listed.name);
        let is_dir = listed.stat.as_ref().is_ok_and(Stat::is_dir);
        path.truncate(root.len());
        if !root.ends_with(b"/") {
            path.push(b'/');
        }
        path.extend_from_slice(relative);
        if !keep(
            relative,
            is_dir,
            Path::new(std::ffi::OsStr::from_bytes(&path)),
        ) {
            continue;
        }
        if is_dir {
            jobs.push(Job {
                parent: fd.clone(),
                name: listed.name.clone(),
            });
        }
        kept.push(listed);
    }
    relative.truncate(relative_len);
    Frame {
        entries: kept.into_iter(),
        subdirectories: listings.ask(jobs).into(),
        relative_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// What a walk saw of one entry: its path below the root, `lstat`,
    /// and a symlink's target.
    type Seen = (Vec<u8>, Stat, Option<Vec<u8>>);

    /// The entries of `root` as the walk gives them.
    fn walked(root: &Path, mut keep: impl FnMut(&[u8], bool, &Path) -> bool) -> Vec<Seen> {
        let mut seen = Vec::new();
        walk(root, &mut keep, |visit| {
            match visit {
                Visit::Entry {
                    path,
                    relative,
                    listed,
                } => {
                    assert_eq!(path, root.join(std::ffi::OsStr::from_bytes(relative)));
                    let target = listed.target.map(|t| t.unwrap());
                    seen.push((relative.to_vec(), listed.stat.unwrap(), target));
                }
                Visit::Unlisted { path, error, .. } => panic!("{}: {error}", path.display()),
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        seen
    }

    /// The same through walkdir sorted by name and `lstat` of full paths:
    /// what direct backups walked with before.
    fn walked_by_path(root: &Path, skip: &[&str]) -> Vec<Seen> {
        use std::os::unix::ffi::OsStringExt;
        walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()))
            .into_iter()
            .filter_entry(|e| {
                let below = e.path().strip_prefix(root).unwrap().as_os_str().as_bytes();
                !skip.iter().any(|s| s.as_bytes() == below)
            })
            .map(|entry| {
                let entry = entry.unwrap();
                let below = entry.path().strip_prefix(root).unwrap();
                let meta = entry.path().symlink_metadata().unwrap();
                let target = meta.is_symlink().then(|| {
                    std::fs::read_link(entry.path())
                        .unwrap()
                        .into_os_string()
                        .into_vec()
                });
                (
                    below.as_os_str().as_bytes().to_vec(),
                    Stat::from(&meta),
                    target,
                )
            })
            .collect()
    }

    /// Links, special files, odd names and modes, and more directories
    /// than the listing threads run ahead, in several depths.
    fn tree(root: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let file = |p: &str, data: &[u8]| {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        };
        for i in 0..30 {
            for j in 0..4 {
                file(&format!("d{i:02}/e{j}/f"), format!("{i} {j}").as_bytes());
                file(&format!("d{i:02}/e{j}/deeper/g"), b"g");
            }
            file(&format!("d{i:02}/z"), b"after the subdirectories");
        }
        file("a.txt", b"alpha");
        std::fs::hard_link(root.join("a.txt"), root.join("hard")).unwrap();
        std::fs::hard_link(root.join("a.txt"), root.join("d03/hard")).unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        std::os::unix::fs::symlink("d01", root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("x".repeat(1000), root.join("longlink")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("d02/dangling")).unwrap();
        std::fs::write(
            root.join(std::ffi::OsStr::from_bytes(b"raw-\xff\xfe")),
            b"raw",
        )
        .unwrap();
        file(&format!("long/{}", "n".repeat(250)), b"long");
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
        // A character device where the tests may make one (root).
        let null = CString::new(root.join("null").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::create_dir_all(root.join("closed/inside")).unwrap();
        std::fs::write(root.join("closed/inside/file"), b"x").unwrap();
        std::fs::set_permissions(root.join("closed"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
    }

    fn can_read_closed_directories() -> bool {
        // SAFETY: no arguments, no memory.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn the_walk_gives_what_a_walk_by_full_paths_gives_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let skip: &[&str] = if can_read_closed_directories() {
            &[]
        } else {
            &["closed"]
        };
        let expected = walked_by_path(dir.path(), skip);
        let got = walked(dir.path(), |relative, _, _| {
            !skip.iter().any(|s| s.as_bytes() == relative)
        });
        assert_eq!(got.len(), expected.len());
        for (got, expected) in got.iter().zip(&expected) {
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(&expected.0));
        }
        // Symlinks are entries, never followed; a hard link is each name.
        assert!(
            got.iter()
                .any(|(p, _, t)| p == b"dirlink" && t.as_deref() == Some(b"d01"))
        );
        assert!(!got.iter().any(|(p, ..)| p.starts_with(b"dirlink/")));
        assert!(
            got.iter()
                .any(|(p, _, t)| p == b"longlink" && t.as_ref().unwrap().len() == 1000)
        );
        // A root given with a trailing slash walks the same.
        let mut slashed = dir.path().as_os_str().to_owned();
        slashed.push("/");
        let again = walked(Path::new(&slashed), |relative, _, _| {
            !skip.iter().any(|s| s.as_bytes() == relative)
        });
        assert_eq!(again, got);
        std::fs::set_permissions(
            dir.path().join("closed"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }

    #[test]
    fn a_directory_left_out_is_not_entered_and_one_removed_before_its_listing_is_named() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        std::fs::set_permissions(
            dir.path().join("closed"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let mut asked = Vec::new();
        let mut entries = Vec::new();
        let mut unlisted = Vec::new();
        walk(
            dir.path(),
            |relative, is_dir, path| {
                asked.push((relative.to_vec(), is_dir));
                if relative == b"d05" {
                    // Removed after its parent was listed, kept all the same.
                    std::fs::remove_dir_all(path).unwrap();
                }
                relative != b"d07"
            },
            |visit| {
                match visit {
                    Visit::Entry { relative, .. } => entries.push(relative.to_vec()),
                    Visit::Unlisted {
                        relative, error, ..
                    } => unlisted.push((relative.to_vec(), error.kind())),
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert!(entries.contains(&b"d05".to_vec()));
        assert_eq!(unlisted, [(b"d05".to_vec(), io::ErrorKind::NotFound)]);
        assert!(
            !entries
                .iter()
                .any(|e| e.starts_with(b"d05/") || e.starts_with(b"d07"))
        );
        assert!(!asked.iter().any(|(e, _)| e.starts_with(b"d07/")));
        assert!(asked.contains(&(b"d06".to_vec(), true)));
        assert!(asked.contains(&(b"a.txt".to_vec(), false)));
        assert!(entries.contains(&b"d08/e3/deeper/g".to_vec()));
    }

    #[test]
    fn a_walk_stopped_early_ends_its_listing_threads() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let mut seen = 0;
        walk(
            dir.path(),
            |_, _, _| true,
            |_| {
                seen += 1;
                if seen == 10 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!(seen, 10);
        std::fs::set_permissions(
            dir.path().join("closed"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }

    #[test]
    fn a_root_that_cannot_be_listed_is_an_error_after_its_own_entry() {
        let mut seen = Vec::new();
        let error = walk(
            Path::new("/nonexistent-lifeboat-walk-root"),
            |_, _, _| true,
            |visit| {
                if let Visit::Entry { listed, .. } = visit {
                    seen.push(listed.stat.is_err());
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(seen, [true]);
    }
}
