//! Restores: a snapshot out as a tar stream (for Docker's archive endpoint)
//! or straight into a directory.
//!
//! A decoder thread walks the tree and reads, authenticates, decompresses
//! and verifies each blob ahead of the writer (bounded channel), so reading
//! the repository and writing the output overlap. A blob that fails
//! verification stops the restore with an error naming the file: nothing is
//! silently written wrong.

use super::budget::ByteBudget;
use super::tree::{Node, NodeKind};
use super::{Progress, RepoError, Repository, Snapshot};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

enum Item {
    Node(Node),
    Data(Vec<u8>),
    Failed(RepoError),
}

/// Entries and decoded bytes the decoder may be ahead of the writer: many
/// entries keep small files flowing, the byte bound keeps memory independent
/// of the snapshot whatever its blob sizes.
const AHEAD: usize = 256;
const AHEAD_BYTES: usize = 16 << 20;

fn decode(
    repository: &Repository,
    snapshot: &Snapshot,
    out: std::sync::mpsc::SyncSender<Item>,
    budget: &ByteBudget,
) {
    let result = repository.for_each_node(snapshot, |node| {
        let ids = node.content.clone();
        let path = node.display_path();
        out.send(Item::Node(node))
            .map_err(|_| RepoError::Source("restore writer stopped".into()))?;
        for id in ids {
            let data = repository
                .read_blob(&id)
                .map_err(|detail| RepoError::BadBlob {
                    path: path.clone(),
                    blob: hex::encode(&id[..8]),
                    detail,
                })?;
            budget.acquire(data.len())?;
            out.send(Item::Data(data))
                .map_err(|_| RepoError::Source("restore writer stopped".into()))?;
        }
        Ok(())
    });
    if let Err(error) = result {
        let _ = out.send(Item::Failed(error));
    }
}

/// Runs the decoder beside `write`, which consumes the items in order.
fn with_decoder<T>(
    repository: &Repository,
    snapshot: &Snapshot,
    write: impl FnOnce(&mut Items) -> Result<T, RepoError>,
) -> Result<T, RepoError> {
    let (sender, receiver) = sync_channel(AHEAD);
    let budget = ByteBudget::new(AHEAD_BYTES);
    std::thread::scope(|scope| {
        scope.spawn(|| decode(repository, snapshot, sender, &budget));
        let mut items = Items {
            receiver,
            budget: &budget,
        };
        let result = write(&mut items);
        drop(items); // lets the decoder stop if the writer gave up early
        budget.close();
        result
    })
}

struct Items<'b> {
    receiver: Receiver<Item>,
    budget: &'b ByteBudget,
}

impl Items<'_> {
    fn next_node(&mut self) -> Result<Option<Node>, RepoError> {
        match self.receiver.recv() {
            Ok(Item::Node(node)) => Ok(Some(node)),
            Ok(Item::Failed(error)) => Err(error),
            Ok(Item::Data(_)) => Err(RepoError::Source("restore out of step".into())),
            Err(_) => Ok(None),
        }
    }

    fn next_data(&mut self) -> Result<Vec<u8>, RepoError> {
        match self.receiver.recv() {
            Ok(Item::Data(data)) => {
                self.budget.release(data.len());
                Ok(data)
            }
            Ok(Item::Failed(error)) => Err(error),
            _ => Err(RepoError::Source("restore out of step".into())),
        }
    }
}

/// Reads a file's content blobs from the decoder as one stream.
struct Content<'a, 'b> {
    items: &'a mut Items<'b>,
    remaining_blobs: usize,
    current: Vec<u8>,
    position: usize,
    failure: Option<RepoError>,
}

impl io::Read for Content<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.remaining_blobs == 0 {
                return Ok(0);
            }
            match self.items.next_data() {
                Ok(data) => {
                    self.current = data;
                    self.position = 0;
                    self.remaining_blobs -= 1;
                }
                Err(error) => {
                    let message = error.to_string();
                    self.failure = Some(error);
                    return Err(io::Error::other(message));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// `root/path`, or `root` itself for the root node.
fn prefixed(root: &str, raw: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut name = root.as_bytes().to_vec();
    if !raw.is_empty() {
        name.push(b'/');
        name.extend_from_slice(raw);
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&name))
}

fn relative_name(root: &str, node: &Node) -> PathBuf {
    prefixed(root, &node.path_bytes())
}

fn target_path(root: &str, node: &Node, hard_link: bool) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let raw = node.target_bytes().unwrap_or_default();
    if hard_link {
        prefixed(root, &raw)
    } else {
        PathBuf::from(std::ffi::OsStr::from_bytes(&raw))
    }
}

impl Repository {
    /// Writes the snapshot as a tar stream whose entries are `root`,
    /// `root/…` (the root directory first, so it can carry the root's own
    /// mode, owner and mtime), with exact modes (setuid/setgid/sticky
    /// included), owners and mtimes, GNU long names, hard links as links.
    pub fn restore_tar(
        &self,
        snapshot: &Snapshot,
        root: &str,
        out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        with_decoder(self, snapshot, |items| {
            let mut tar = tar::Builder::new(out);
            let mut stats = RestoreStats::default();
            let write_error = |e: io::Error| RepoError::io("writing the restore stream")(e);
            while let Some(node) = items.next_node()? {
                let mut header = tar::Header::new_gnu();
                header.set_mode(node.mode);
                header.set_uid(node.uid);
                header.set_gid(node.gid);
                header.set_mtime(node.mtime.max(0) as u64);
                header.set_size(0);
                let name = relative_name(root, &node);
                match node.kind {
                    NodeKind::File => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(node.size);
                        let mut content = Content {
                            items,
                            remaining_blobs: node.content.len(),
                            current: Vec::new(),
                            position: 0,
                            failure: None,
                        };
                        let written = tar.append_data(&mut header, &name, &mut content);
                        if let Some(failure) = content.failure.take() {
                            return Err(failure);
                        }
                        written.map_err(write_error)?;
                        stats.files += 1;
                        stats.bytes += node.size;
                    }
                    NodeKind::Dir => {
                        header.set_entry_type(tar::EntryType::Directory);
                        tar.append_data(&mut header, &name, io::empty())
                            .map_err(write_error)?;
                        stats.dirs += 1;
                    }
                    NodeKind::Symlink | NodeKind::Hardlink => {
                        let hard = node.kind == NodeKind::Hardlink;
                        header.set_entry_type(if hard {
                            tar::EntryType::Link
                        } else {
                            tar::EntryType::Symlink
                        });
                        tar.append_link(&mut header, &name, target_path(root, &node, hard))
                            .map_err(write_error)?;
                    }
                    NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                        header.set_entry_type(match node.kind {
                            NodeKind::Fifo => tar::EntryType::Fifo,
                            NodeKind::CharDevice => tar::EntryType::Char,
                            _ => tar::EntryType::Block,
                        });
                        if let Some((major, minor)) = node.device {
                            header.set_device_major(major).map_err(write_error)?;
                            header.set_device_minor(minor).map_err(write_error)?;
                        }
                        tar.append_data(&mut header, &name, io::empty())
                            .map_err(write_error)?;
                    }
                }
                progress(Progress {
                    files: stats.files,
                    bytes: stats.bytes,
                    current: None,
                });
            }
            tar.into_inner()
                .and_then(|mut out| out.flush())
                .map_err(write_error)?;
            Ok(stats)
        })
    }

    /// Restores into `target` directly (which must be empty or missing):
    /// the same tree a tar restore gives.
    pub fn restore_dir(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        use std::os::unix::fs::PermissionsExt;
        let io_at = |path: &Path| {
            let context = format!("restoring {}", path.display());
            move |e: io::Error| RepoError::io(context)(e)
        };
        std::fs::create_dir_all(target).map_err(io_at(target))?;
        with_decoder(self, snapshot, |items| {
            let mut stats = RestoreStats::default();
            // Directory modes and times are set last, deepest first, so
            // creating their children does not change them afterwards.
            let mut directories: Vec<(PathBuf, Node)> = Vec::new();
            while let Some(node) = items.next_node()? {
                let path = target.join(relative_name(".", &node));
                match node.kind {
                    NodeKind::Dir => {
                        if !path.is_dir() {
                            std::fs::create_dir(&path).map_err(io_at(&path))?;
                        }
                        directories.push((path, node));
                        stats.dirs += 1;
                        continue;
                    }
                    NodeKind::File => {
                        let mut file = std::fs::File::create(&path).map_err(io_at(&path))?;
                        let mut content = Content {
                            items,
                            remaining_blobs: node.content.len(),
                            current: Vec::new(),
                            position: 0,
                            failure: None,
                        };
                        let copied = io::copy(&mut content, &mut file);
                        if let Some(failure) = content.failure.take() {
                            return Err(failure);
                        }
                        copied.map_err(io_at(&path))?;
                        stats.files += 1;
                        stats.bytes += node.size;
                    }
                    NodeKind::Symlink => {
                        std::os::unix::fs::symlink(target_path(".", &node, false), &path)
                            .map_err(io_at(&path))?;
                    }
                    NodeKind::Hardlink => {
                        let first = target.join(target_path(".", &node, true));
                        std::fs::hard_link(&first, &path).map_err(io_at(&path))?;
                        continue;
                    }
                    NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                        make_node(&path, &node).map_err(io_at(&path))?;
                    }
                }
                apply_metadata(&path, &node).map_err(io_at(&path))?;
                progress(Progress {
                    files: stats.files,
                    bytes: stats.bytes,
                    current: None,
                });
            }
            for (path, node) in directories.iter().rev() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))
                    .map_err(io_at(path))?;
                apply_metadata(path, node).map_err(io_at(path))?;
            }
            Ok(stats)
        })
    }
}

fn make_node(path: &Path, node: &Node) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let kind = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDevice => libc::S_IFCHR,
        _ => libc::S_IFBLK,
    };
    let (major, minor) = node.device.unwrap_or((0, 0));
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path and plain integer arguments.
    let result = unsafe {
        libc::mknod(
            c_path.as_ptr(),
            kind | (node.mode & 0o7777),
            libc::makedev(major, minor),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Owner, then mode (chown clears setuid/setgid), then mtime; symlinks get
/// owner and mtime only.
fn apply_metadata(path: &Path, node: &Node) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(node.uid as u32), Some(node.gid as u32))?;
    let time = filetime::FileTime::from_unix_time(node.mtime, 0);
    if node.kind == NodeKind::Symlink {
        return filetime::set_symlink_file_times(path, time, time);
    }
    if node.kind != NodeKind::Dir {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))?;
    }
    filetime::set_file_times(path, time, time)
}
