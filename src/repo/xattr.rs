//! Extended attributes (POSIX ACLs included: they are the attributes
//! `system.posix_acl_access` and `system.posix_acl_default`) read from and
//! written to the file system in direct mode, and carried as PAX
//! `SCHILY.xattr.*` records in archive streams.

use super::tree::{Node, Xattr};
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The PAX record prefix GNU tar, Docker and the tar crate use for attributes.
pub const PAX_PREFIX: &str = "SCHILY.xattr.";

/// What a walk found on one entry: its attributes, sorted by name, and
/// whether some had names that are not UTF-8 (left out: see
/// [`super::notes::TreeNote::UnnamedAttributes`]).
pub struct Read {
    pub xattrs: Vec<Xattr>,
    pub skipped_names: bool,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// Whether the file system simply has no attributes to give.
fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::ENODATA)
    )
}

/// Calls `get(buffer)` (a size query with an empty buffer first) until the
/// value fits: it may grow between the two calls. An empty answer (most
/// entries have no attributes) is the answer: asking again would cost
/// every entry of a backup a second lookup of its path.
fn sized(mut get: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let needed = get(&mut []);
        if needed < 0 {
            return Err(io::Error::last_os_error());
        }
        if needed == 0 {
            return Ok(Vec::new());
        }
        let mut buffer = vec![0u8; needed as usize];
        let got = get(&mut buffer);
        if got >= 0 {
            buffer.truncate(got as usize);
            return Ok(buffer);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ERANGE) {
            return Err(error);
        }
    }
}

/// The attributes of `path` itself (a symlink's own, never its target's).
pub fn read(path: &Path) -> io::Result<Read> {
    let c = c_path(path)?;
    let names = sized(|buffer| {
        // SAFETY: valid path; the buffer pointer and length agree (0 asks the size).
        unsafe { libc::llistxattr(c.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) }
    });
    let names = match names {
        Ok(names) => names,
        Err(e) if unsupported(&e) => {
            return Ok(Read {
                xattrs: Vec::new(),
                skipped_names: false,
            });
        }
        Err(e) => return Err(e),
    };
    let mut read = Read {
        xattrs: Vec::new(),
        skipped_names: false,
    };
    for raw in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            read.skipped_names = true;
            continue;
        };
        let c_name = CString::new(raw).expect("split at NUL");
        let value = sized(|buffer| {
            // SAFETY: valid strings; the buffer pointer and length agree.
            unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    c_name.as_ptr(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            }
        });
        match value {
            Ok(value) => read.xattrs.push(Xattr::new(name, &value)),
            // Removed between the listing and the read.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    read.xattrs.sort();
    Ok(read)
}

/// Where attributes are written: an open file or directory, or an entry
/// that cannot be opened for that (a symlink, a device, a FIFO) named by a
/// `/proc/self/fd/<dir>/<name>` path whose last component is not followed.
pub enum Target<'a> {
    Fd(RawFd),
    Entry {
        dir: RawFd,
        name: &'a [u8],
        symlink: bool,
    },
}

fn set_error(name: &str, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("setting extended attribute {name}: {error}"),
    )
}

/// Sets `xattrs` on `target`. Called after owner and mode are set: chown
/// clears `security.capability`, and a mode change rewrites the access ACL.
pub fn apply(target: Target, xattrs: &[Xattr]) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let (fd, entry, symlink) = match target {
        Target::Fd(fd) => (fd, None, false),
        Target::Entry { dir, name, symlink } => {
            let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
            path.extend_from_slice(name);
            let path = CString::new(path)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))?;
            (dir, Some(path), symlink)
        }
    };
    for xattr in xattrs {
        // Linux allows user.* attributes on regular files and directories
        // only; a symlink cannot have one, so the tree cannot either.
        if symlink && xattr.name.starts_with("user.") {
            continue;
        }
        let value = xattr.value_bytes().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "extended attribute {} has a value that is not hex",
                    xattr.name
                ),
            )
        })?;
        let name = CString::new(xattr.name.as_bytes())
            .map_err(|_| set_error(&xattr.name, io::ErrorKind::InvalidInput.into()))?;
        let (value_ptr, length) = (value.as_ptr().cast(), value.len());
        // SAFETY: a valid descriptor or NUL-terminated path, a NUL-terminated
        // name, and a value pointer and length that agree.
        let result = unsafe {
            match &entry {
                None => libc::fsetxattr(fd, name.as_ptr(), value_ptr, length, 0),
                Some(path) => libc::lsetxattr(path.as_ptr(), name.as_ptr(), value_ptr, length, 0),
            }
        };
        if result != 0 {
            return Err(set_error(&xattr.name, io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Whether the directory `fd` has a default ACL, which then decides the
/// permission bits of what is created in it (not the umask alone).
pub fn has_default_acl(fd: RawFd) -> io::Result<bool> {
    let name = c"system.posix_acl_default";
    // SAFETY: valid descriptor and NUL-terminated name; a null buffer of
    // length 0 asks for the value's size only.
    let size = unsafe { libc::fgetxattr(fd, name.as_ptr(), std::ptr::null_mut(), 0) };
    if size >= 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if unsupported(&error) {
        return Ok(false);
    }
    Err(error)
}

/// Removes the attributes of an existing directory a restore writes into
/// (the target's root) before its entries are made, so none of them
/// inherits a default ACL the snapshot's root does not hold at that moment
/// (the root's own are set last) and none the snapshot lacks stays.
/// `security.*` ones (an SELinux label) belong to the host: kept.
pub fn clear_fd(fd: RawFd) -> io::Result<()> {
    let names = sized(|buffer| {
        // SAFETY: valid descriptor; the buffer pointer and length agree.
        unsafe { libc::flistxattr(fd, buffer.as_mut_ptr().cast(), buffer.len()) }
    });
    let names = match names {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for raw in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if raw.starts_with(b"security.") {
            continue;
        }
        let name = CString::new(raw).expect("split at NUL");
        // SAFETY: valid descriptor and NUL-terminated name.
        if unsafe { libc::fremovexattr(fd, name.as_ptr()) } != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ENODATA) {
                let name = String::from_utf8_lossy(raw);
                return Err(io::Error::new(
                    error.kind(),
                    format!("removing extended attribute {name} of the target: {error}"),
                ));
            }
        }
    }
    Ok(())
}

/// The PAX records that carry `node`'s attributes in an archive stream.
pub fn pax_records(node: &Node) -> Vec<(String, Vec<u8>)> {
    node.xattrs
        .iter()
        .filter_map(|x| Some((format!("{PAX_PREFIX}{}", x.name), x.value_bytes()?)))
        .collect()
}

/// The attributes among an archive entry's PAX records, sorted by name
/// (the order a direct walk records them in).
pub fn from_pax<'a>(records: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<Xattr> {
    let mut xattrs: Vec<Xattr> = records
        .filter_map(|(key, value)| Some(Xattr::new(key.strip_prefix(PAX_PREFIX)?, value)))
        .filter(|x| !x.name.is_empty())
        .collect();
    xattrs.sort();
    xattrs.dedup_by(|a, b| a.name == b.name);
    xattrs
}

#[cfg(test)]
mod tests {
    use super::sized;

    #[test]
    fn an_empty_list_is_asked_for_once() {
        let mut calls = 0;
        let got = sized(|_| {
            calls += 1;
            0
        })
        .unwrap();
        assert!(got.is_empty());
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_value_that_grew_after_the_size_query_is_asked_for_again() {
        let values: [&[u8]; 2] = [b"ab", b"abcd"];
        let mut calls = 0;
        let got = sized(|buffer| {
            // The value grows once, between the first size query and its read.
            let value = values[usize::from(calls > 0)];
            calls += 1;
            if buffer.is_empty() {
                return value.len() as libc::ssize_t;
            }
            if buffer.len() < value.len() {
                // SAFETY: sets this thread's errno, as the system call would.
                unsafe { *libc::__errno_location() = libc::ERANGE };
                return -1;
            }
            buffer[..value.len()].copy_from_slice(value);
            value.len() as libc::ssize_t
        })
        .unwrap();
        assert_eq!(got, b"abcd");
        assert_eq!(calls, 4);
    }
}
