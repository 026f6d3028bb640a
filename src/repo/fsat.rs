//! File operations relative to an open directory, never following a
//! symlink: what a direct restore writes with, so that no name in a tree
//! (nor a link someone plants in the target while it runs) can lead it
//! outside the directory it restores into.

use super::tree::Xattr;
use super::xattr;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn c_name(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor the kernel just returned to us alone.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// What a write does when its name exists already (and is no directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Unlinked (never followed) and written again: a restore in place.
    Replace,
    /// Left as it is, and the write fails: a restore into a new directory,
    /// which never overwrites what appears there while it runs.
    Refuse,
}

/// The error of a write `Existing::Refuse` stopped.
fn appeared() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "it appeared in the directory while the restore ran, and a restore into a new \
         directory never overwrites anything: it is left as it is",
    )
}

/// An open directory.
pub struct Dir(OwnedFd);

impl Dir {
    /// Opens the restore target itself (a path the user or engine chose).
    pub fn open_root(path: &std::path::Path) -> io::Result<Dir> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = c_name(path.as_os_str().as_bytes())?;
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        owned(fd).map(Dir)
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Opens the subdirectory `name`; fails on anything that is not a
    /// directory, a symlink to one included.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        owned(fd).map(Dir)
    }

    /// Creates (or reuses an existing real directory) `name` and opens it.
    pub fn make_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        let made = unsafe { libc::mkdirat(self.fd(), c.as_ptr(), 0o700) };
        if made != 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::AlreadyExists {
                return Err(error);
            }
        }
        self.open_dir(name)
    }

    /// Creates the regular file `name` for writing. Something already there
    /// that is not a directory is replaced (unlinked, never followed), or
    /// refused, as `existing` says. It gets the permission bits `mode`, less the umask: the owner's
    /// alone, or its final ones when that spares a chmod ([`creation_mode`]).
    pub fn create_file(
        &self,
        name: &[u8],
        existing: Existing,
        mode: libc::mode_t,
    ) -> io::Result<std::fs::File> {
        let c = c_name(name)?;
        let open = || {
            // SAFETY: valid descriptor and NUL-terminated name.
            owned(unsafe {
                libc::openat(
                    self.fd(),
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                )
            })
        };
        match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && existing == Existing::Refuse => {
                Err(appeared())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(name)?;
                open().map(std::fs::File::from)
            }
            other => other.map(std::fs::File::from),
        }
    }

    fn remove(&self, name: &[u8]) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd(), c.as_ptr(), 0) })
    }

    /// Runs `make`, and when `name` exists already, unlinks it and retries
    /// (or fails, as `existing` says).
    fn replacing(
        &self,
        name: &[u8],
        existing: Existing,
        make: impl Fn() -> libc::c_int,
    ) -> io::Result<()> {
        match check(make()) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && existing == Existing::Refuse => {
                Err(appeared())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(name)?;
                check(make())
            }
            other => other,
        }
    }

    pub fn symlink(&self, target: &[u8], name: &[u8], existing: Existing) -> io::Result<()> {
        let c = c_name(name)?;
        let t = c_name(target)?;
        // SAFETY: valid descriptor and NUL-terminated strings.
        self.replacing(name, existing, || unsafe {
            libc::symlinkat(t.as_ptr(), self.fd(), c.as_ptr())
        })
    }

    /// Links `name` here to `first` in `from` (itself, not what it may
    /// point to: flags 0 never follows).
    pub fn hard_link(
        &self,
        from: &Dir,
        first: &[u8],
        name: &[u8],
        existing: Existing,
    ) -> io::Result<()> {
        let c = c_name(name)?;
        let e = c_name(first)?;
        // SAFETY: valid descriptors and NUL-terminated names.
        self.replacing(name, existing, || unsafe {
            libc::linkat(from.fd(), e.as_ptr(), self.fd(), c.as_ptr(), 0)
        })
    }

    /// Makes a FIFO or device node (never opened).
    pub fn make_node(
        &self,
        name: &[u8],
        kind: libc::mode_t,
        device: libc::dev_t,
        existing: Existing,
    ) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid descriptor, NUL-terminated name, plain integers.
        self.replacing(name, existing, || unsafe {
            libc::mknodat(self.fd(), c.as_ptr(), kind | 0o600, device)
        })
    }

    /// Owner, mtime and extended attributes of `name` itself (symlinks
    /// included), and its mode unless it is a symlink, without following it.
    pub fn set_metadata_of(&self, name: &[u8], meta: &Metadata, symlink: bool) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid descriptor and NUL-terminated name.
        check(unsafe {
            libc::fchownat(
                self.fd(),
                c.as_ptr(),
                meta.uid,
                meta.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        if !symlink {
            // fchmodat cannot refuse to follow on Linux: change the mode
            // through a handle on the entry itself, checked to be no link.
            // SAFETY: valid descriptor and NUL-terminated name.
            let handle = owned(unsafe {
                libc::openat(
                    self.fd(),
                    c.as_ptr(),
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })?;
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid descriptor and a stat buffer of the right type.
            check(unsafe { libc::fstat(handle.as_raw_fd(), &mut stat) })?;
            if stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(io::Error::other("replaced by a symlink while restoring"));
            }
            let proc_path = c_name(format!("/proc/self/fd/{}", handle.as_raw_fd()).as_bytes())?;
            // SAFETY: NUL-terminated path naming our own O_PATH handle.
            check(unsafe { libc::chmod(proc_path.as_ptr(), meta.mode) })?;
        }
        let times = [meta.timespec(), meta.timespec()];
        // SAFETY: valid descriptor, name and two timespecs.
        check(unsafe {
            libc::utimensat(
                self.fd(),
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        let entry = xattr::Target::Entry {
            dir: self.fd(),
            name,
            symlink,
        };
        xattr::apply(entry, &meta.xattrs)
    }

    /// Removes this directory's own extended attributes (see [`xattr::clear_fd`]).
    pub fn clear_xattrs(&self) -> io::Result<()> {
        xattr::clear_fd(self.fd())
    }

    /// Owner, then mode (chown clears setuid/setgid), then mtime of this
    /// directory.
    pub fn set_metadata(&self, meta: &Metadata) -> io::Result<()> {
        set_fd_metadata(self.fd(), meta)
    }

    /// The owner a file this process creates here gets, and whether its
    /// permission bits are the umask's doing alone; `None` when a default
    /// ACL decides them, or when the directory is someone else's (its
    /// owner could make it setgid or give it a default ACL after this
    /// look, and so a group or bits to files created with their final
    /// mode): such files take every change, from private bits, as before.
    pub fn new_files(&self, creator: &Creator) -> io::Result<Option<Created>> {
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and a stat buffer of the right type.
        check(unsafe { libc::fstat(self.fd(), &mut stat) })?;
        if stat.st_uid != creator.uid || xattr::has_default_acl(self.fd())? {
            return Ok(None);
        }
        // A setgid directory gives its group to what is created in it.
        let gid = if stat.st_mode & libc::S_ISGID != 0 {
            stat.st_gid
        } else {
            creator.gid
        };
        Ok(Some(Created {
            uid: creator.uid,
            gid,
            umask: creator.umask,
        }))
    }
}

/// Who creates the files of a restore: this process's effective owner and
/// its umask (read once, from `/proc/self/status`: setting the umask to
/// read it would change it for every thread meanwhile).
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    uid: libc::uid_t,
    gid: libc::gid_t,
    umask: libc::mode_t,
}

impl Creator {
    /// `None` when the umask cannot be read (every file then takes every change).
    pub fn of_this_process() -> Option<Creator> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let umask = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .and_then(|octal| libc::mode_t::from_str_radix(octal.trim(), 8).ok())?;
        // SAFETY: plain syscalls without arguments.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Some(Creator { uid, gid, umask })
    }
}

/// What a new file in a directory has before any change (see
/// [`Dir::new_files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    uid: libc::uid_t,
    gid: libc::gid_t,
    umask: libc::mode_t,
}

/// The mode to create a file that is to end with `meta`'s in a directory
/// whose new files get `created`: its final permission bits when nothing
/// else decides them (no setuid, setgid or sticky bit, which only a chmod
/// after the chown keeps), the owner's alone otherwise.
pub fn creation_mode(meta: &Metadata, created: Option<Created>) -> libc::mode_t {
    if created.is_some() && meta.mode & 0o7000 == 0 {
        meta.mode & 0o777
    } else {
        0o600
    }
}

/// [`set_fd_metadata`] of a file just created with [`creation_mode`] in a
/// directory whose new files get `created`: the owner and mode are only
/// changed where they differ from what the file has (most files of a
/// restore by root are root's, with the mode they were created with:
/// two system calls of six per small file, spared).
pub fn set_new_file_metadata(
    fd: RawFd,
    meta: &Metadata,
    created: Option<Created>,
) -> io::Result<()> {
    let Some(created) = created else {
        return set_fd_metadata(fd, meta);
    };
    let Changes { owner, mode } = Changes::of_new_file(meta, created);
    if owner {
        // SAFETY: plain syscall on an open descriptor.
        check(unsafe { libc::fchown(fd, meta.uid, meta.gid) })?;
    }
    if mode {
        // SAFETY: plain syscall on an open descriptor.
        check(unsafe { libc::fchmod(fd, meta.mode) })?;
    }
    set_times_and_xattrs(fd, meta)
}

/// Which of its owner and mode a file created with [`creation_mode`]
/// must still change to end with `meta`'s.
#[derive(Debug, PartialEq, Eq)]
struct Changes {
    owner: bool,
    mode: bool,
}

impl Changes {
    fn of_new_file(meta: &Metadata, created: Created) -> Changes {
        Changes {
            owner: (meta.uid, meta.gid) != (created.uid, created.gid),
            // Without special bits a chown leaves the mode as it is.
            mode: creation_mode(meta, Some(created)) & !created.umask != meta.mode,
        }
    }
}

/// What a restored entry gets.
pub struct Metadata {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub mode: libc::mode_t,
    pub mtime: i64,
    /// Set last: chown clears `security.capability`.
    pub xattrs: Vec<Xattr>,
}

impl Metadata {
    fn timespec(&self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.mtime as libc::time_t,
            tv_nsec: 0,
        }
    }
}

/// Owner, then mode (chown clears setuid/setgid), then mtime, then
/// extended attributes (chown clears `security.capability`).
pub fn set_fd_metadata(fd: RawFd, meta: &Metadata) -> io::Result<()> {
    // SAFETY: plain syscalls on an open descriptor.
    check(unsafe { libc::fchown(fd, meta.uid, meta.gid) })?;
    check(unsafe { libc::fchmod(fd, meta.mode) })?;
    set_times_and_xattrs(fd, meta)
}

/// The mtime, then the extended attributes (after any chown, which clears
/// `security.capability`).
fn set_times_and_xattrs(fd: RawFd, meta: &Metadata) -> io::Result<()> {
    let times = [meta.timespec(), meta.timespec()];
    // SAFETY: open descriptor and two timespecs.
    check(unsafe { libc::futimens(fd, times.as_ptr()) })?;
    xattr::apply(xattr::Target::Fd(fd), &meta.xattrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, gid: u32, mode: libc::mode_t) -> Metadata {
        Metadata {
            uid,
            gid,
            mode,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    /// A restore by root of root's files with ordinary modes changes
    /// neither owner nor mode of a file it creates; anything else that
    /// differs, a special bit, a mode wider than the umask or a default
    /// ACL (no `Created`) still takes its change.
    #[test]
    fn a_new_file_changes_only_what_it_was_not_created_with() {
        let root = Created {
            uid: 0,
            gid: 0,
            umask: 0o022,
        };
        let changes = |uid, gid, mode| Changes::of_new_file(&meta(uid, gid, mode), root);
        let none = Changes {
            owner: false,
            mode: false,
        };
        assert_eq!(changes(0, 0, 0o644), none);
        assert_eq!(changes(0, 0, 0o755), none);
        assert_eq!(changes(0, 0, 0o600), none);
        assert_eq!(changes(0, 0, 0o000), none);
        // Wider than the umask lets through: the mode is changed.
        assert!(changes(0, 0, 0o666).mode);
        // Special bits are never created: chmod after the chown.
        for special in [0o4755, 0o2711, 0o1777] {
            assert_eq!(creation_mode(&meta(0, 0, special), Some(root)), 0o600);
            assert!(changes(0, 0, special).mode);
        }
        // Another owner or group (a setgid directory's group is in `Created`).
        assert!(changes(1234, 0, 0o644).owner);
        assert!(changes(0, 5678, 0o644).owner);
        let setgid_dir = Created { gid: 5678, ..root };
        assert_eq!(
            Changes::of_new_file(&meta(0, 5678, 0o644), setgid_dir),
            none
        );
        // A default ACL decides the bits: created private, every change made.
        assert_eq!(creation_mode(&meta(0, 0, 0o644), None), 0o600);
    }

    /// What a directory gives its new files is trusted only from a
    /// directory of the restoring user's own: another owner could make it
    /// setgid after the look.
    #[test]
    fn a_directory_tells_what_its_new_files_get_only_when_it_is_ours() {
        use std::os::unix::fs::PermissionsExt;
        let creator = Creator::of_this_process().expect("Linux gives the umask");
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(creator.uid), Some(4321)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o2755)).unwrap();
        let open = || Dir::open_root(dir.path()).unwrap();
        let created = open()
            .new_files(&creator)
            .unwrap()
            .expect("our own directory");
        assert_eq!((created.uid, created.gid), (creator.uid, 4321));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let created = open()
            .new_files(&creator)
            .unwrap()
            .expect("our own directory");
        assert_eq!(created.gid, creator.gid);
        std::os::unix::fs::chown(dir.path(), Some(creator.uid + 1), None).unwrap();
        assert_eq!(open().new_files(&creator).unwrap(), None);
    }
}
