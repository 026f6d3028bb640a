//! Direct mode: backing up a directory lifeboat can read itself (a volume's
//! mountpoint), with the same snapshot content a Docker archive of it gives.
//!
//! ```text
//! walker thread:     sorted walk → stat → node; cache hit? reuse blobs : must read
//!        │ files to read                       │ every entry, in order
//! 2 prefetch threads: ask the kernel to read    ▼
//!   them, a bounded window ahead        caller's thread: read → chunk → submit
//! ```
//!
//! A volume of many small files is bound by disk latency when read one file
//! after the other; the prefetchers keep many reads in flight through the
//! page cache (`posix_fadvise(WILLNEED)`), so lifeboat's own memory does not
//! grow with the window. Unchanged files (same size, mtime, ctime, inode as
//! in the file-metadata cache, blobs still indexed) are not read at all.

use super::cache::{self, CachedFile, FileCache, FileStamp};
use super::crypto::BlobId;
use super::notes::{Paths, TreeNote};
use super::tree::{Node, NodeKind};
use super::xattr;
use super::{Progress, RepoError, Repository, Snapshot, SnapshotSource};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How far (in file bytes) prefetching may run ahead of the chunker. Lives in
/// the page cache, not in lifeboat's memory.
const PREFETCH_WINDOW: u64 = 96 << 20;
/// Large files are prefetched in pieces so the window holds.
const PREFETCH_PIECE: u64 = 8 << 20;
const PREFETCH_THREADS: usize = 2;
/// Entries the walker may be ahead of the chunker (bounds its memory).
const WALK_AHEAD: usize = 4096;
/// Entries per hand-over from the walker, and the bytes to read that end a
/// batch early.
const WALK_BATCH: usize = 128;
const WALK_BATCH_BYTES: u64 = 1 << 20;

enum Content {
    None,
    Read {
        path: PathBuf,
        stamp: FileStamp,
    },
    Known {
        content: Vec<BlobId>,
        stamp: FileStamp,
    },
}

struct Walked {
    relative: Vec<u8>,
    node: Node,
    content: Content,
    /// Some of its extended attributes have names that are not UTF-8.
    unnamed_attributes: bool,
}

struct PrefetchJob {
    path: PathBuf,
    /// Bytes of files to read that come before this one in the walk.
    start: u64,
    size: u64,
}

/// Shared between the walker, the prefetchers and the chunker.
struct Window {
    consumed: AtomicU64,
    stop: AtomicBool,
}

impl Window {
    /// Waits until `end` is within the window; false when the backup stopped.
    fn wait_for(&self, end: u64) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            if end <= self.consumed.load(Ordering::Relaxed) + PREFETCH_WINDOW {
                return true;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// Counts bytes as the chunker reads them, which moves the window.
struct Counted<'w> {
    file: std::fs::File,
    window: &'w Window,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.window.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn source_error(path: &Path, e: impl std::fmt::Display) -> RepoError {
    RepoError::Source(format!("{}: {e}", path.display()))
}

fn prefetch(jobs: &Mutex<Receiver<PrefetchJob>>, window: &Window) {
    use std::os::unix::io::AsRawFd;
    loop {
        let job = match jobs.lock().expect("not poisoned").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if job.start + job.size <= window.consumed.load(Ordering::Relaxed) {
            continue; // the chunker got there first
        }
        let Ok(file) = std::fs::File::open(&job.path) else {
            continue; // the chunker reports it
        };
        let mut offset = 0;
        while offset < job.size {
            let piece = PREFETCH_PIECE.min(job.size - offset);
            if !window.wait_for(job.start + offset + piece) {
                return;
            }
            // SAFETY: plain syscall on an open descriptor; advice only.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    offset as libc::off_t,
                    piece as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
            offset += piece;
        }
    }
}

struct Walker<'c> {
    root: &'c Path,
    cache: &'c FileCache,
    repository: &'c Repository,
    first_names: HashMap<(u64, u64), Vec<u8>>,
    to_read: u64,
}

impl Walker<'_> {
    fn run(
        mut self,
        entries: SyncSender<Result<Vec<Walked>, RepoError>>,
        prefetch: SyncSender<PrefetchJob>,
    ) {
        let walk = walkdir::WalkDir::new(self.root)
            .follow_links(false)
            .sort_by(|a, b| {
                use std::os::unix::ffi::OsStrExt;
                a.file_name().as_bytes().cmp(b.file_name().as_bytes())
            });
        // Entries travel in batches: one hand-over per entry cost a thread
        // wake-up each, most of a re-run of many small files (profiled).
        let mut batch = Vec::with_capacity(WALK_BATCH);
        let mut batch_bytes = 0u64;
        for entry in walk {
            let walked = entry
                .map_err(|e| RepoError::Source(e.to_string()))
                .and_then(|entry| self.visit(entry.path()));
            let walked = match walked {
                Ok(Some(walked)) => walked,
                Ok(None) => continue,
                Err(e) => {
                    let _ = entries.send(Ok(std::mem::take(&mut batch)));
                    let _ = entries.send(Err(e));
                    return;
                }
            };
            if let Content::Read { path, stamp } = &walked.content {
                let job = PrefetchJob {
                    path: path.clone(),
                    start: self.to_read,
                    size: stamp.size,
                };
                self.to_read += stamp.size;
                batch_bytes += stamp.size;
                let _ = prefetch.send(job);
            }
            batch.push(walked);
            // Files to read go out soon, so the reader never waits on the walk.
            if batch.len() == WALK_BATCH || batch_bytes >= WALK_BATCH_BYTES {
                batch_bytes = 0;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(WALK_BATCH));
                if entries.send(Ok(full)).is_err() {
                    return; // the backup stopped
                }
            }
        }
        if !batch.is_empty() {
            let _ = entries.send(Ok(batch));
        }
    }

    fn visit(&mut self, path: &Path) -> Result<Option<Walked>, RepoError> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        // The walk joins names onto the root, so the root is a byte prefix
        // (cheaper than Path::strip_prefix's component parsing, per entry).
        // A root given with a trailing slash leaves no slash to cut.
        let below = &path.as_os_str().as_bytes()[self.root.as_os_str().len()..];
        let relative = below.strip_prefix(b"/").unwrap_or(below).to_vec();
        let meta = path.symlink_metadata().map_err(|e| source_error(path, e))?;
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            NodeKind::Dir
        } else if file_type.is_symlink() {
            NodeKind::Symlink
        } else if file_type.is_file() {
            NodeKind::File
        } else if file_type.is_fifo() {
            NodeKind::Fifo
        } else if file_type.is_char_device() {
            NodeKind::CharDevice
        } else if file_type.is_block_device() {
            NodeKind::BlockDevice
        } else if file_type.is_socket() {
            NodeKind::Socket
        } else {
            return Err(source_error(
                path,
                "a file of a type lifeboat does not know",
            ));
        };
        let mut node = Node::new(
            kind,
            meta.mode() & 0o7777,
            meta.uid() as u64,
            meta.gid() as u64,
            meta.mtime(),
        );
        node.set_path(&relative);
        let mut content = Content::None;
        let mut attributes_unchanged = false;
        match kind {
            NodeKind::File => {
                let link = (meta.dev(), meta.ino());
                if let Some(first) = self.first_names.get(&link) {
                    node.kind = NodeKind::Hardlink;
                    node.set_target(&first.clone());
                } else {
                    if meta.nlink() > 1 {
                        self.first_names.insert(link, relative.clone());
                    }
                    node.size = meta.len();
                    let stamp = FileStamp::of(&meta);
                    content = match self.cached(&relative, &stamp) {
                        Some((blobs, had_attributes)) => {
                            attributes_unchanged = !had_attributes;
                            Content::Known {
                                content: blobs,
                                stamp,
                            }
                        }
                        None => Content::Read {
                            path: path.to_path_buf(),
                            stamp,
                        },
                    };
                }
            }
            NodeKind::Symlink => {
                let target = std::fs::read_link(path).map_err(|e| source_error(path, e))?;
                node.set_target(target.as_os_str().as_bytes());
            }
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                let rdev = meta.rdev();
                node.device = Some((libc::major(rdev), libc::minor(rdev)));
            }
            _ => {}
        }
        let mut unnamed_attributes = false;
        if !attributes_unchanged {
            let attributes = xattr::read(path).map_err(|e| source_error(path, e))?;
            node.xattrs = attributes.xattrs;
            unnamed_attributes = attributes.skipped_names;
        }
        Ok(Some(Walked {
            relative,
            node,
            content,
            unnamed_attributes,
        }))
    }

    /// The cached content of an unchanged file, and whether it had
    /// extended attributes.
    fn cached(&self, relative: &[u8], stamp: &FileStamp) -> Option<(Vec<BlobId>, bool)> {
        let entry = self.cache.get(relative)?;
        if entry.stamp != *stamp {
            return None;
        }
        let index = self.repository.index();
        entry
            .content
            .iter()
            .all(|id| index.contains(id))
            .then(|| (entry.content.clone(), entry.xattrs))
    }
}

/// Tells the helper threads to stop however the chunker's loop ends.
struct StopOnDrop<'w>(&'w Window);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

impl Repository {
    /// Backs up a directory read directly; gives the same snapshot content
    /// as [`Repository::backup_tar`] of the same tree.
    pub fn backup_dir(
        &self,
        root: &Path,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        let cache_file = self
            .options
            .cache_dir
            .as_ref()
            .map(|dir| cache::cache_path(dir, self.id(), self.keys(), &source.resource));
        let old_cache = cache_file
            .as_deref()
            .map(|path| cache::load(path, self.keys()))
            .unwrap_or_default();
        let started_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let mut new_cache = cache::NewCache::new();
        let snapshot = self.backup_with(source, progress, |builder| {
            let window = Window {
                consumed: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            };
            let (entries_tx, entries) = sync_channel(WALK_AHEAD / WALK_BATCH);
            let (prefetch_tx, prefetch_jobs) = sync_channel(WALK_AHEAD);
            std::thread::scope(|scope| {
                // Only the prefetchers hold the receiver: when they stop, a
                // walker waiting to hand them a file is released.
                let prefetch_jobs = Arc::new(Mutex::new(prefetch_jobs));
                let _stop = StopOnDrop(&window);
                let walker = Walker {
                    root,
                    cache: &old_cache,
                    repository: self,
                    first_names: HashMap::new(),
                    to_read: 0,
                };
                scope.spawn(move || walker.run(entries_tx, prefetch_tx));
                for _ in 0..PREFETCH_THREADS {
                    let jobs = prefetch_jobs.clone();
                    let window = &window;
                    scope.spawn(move || prefetch(&jobs, window));
                }
                drop(prefetch_jobs);
                let mut unnamed = Paths::default();
                for walked in entries.into_iter().flat_map(|batch| match batch {
                    Ok(batch) => batch.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                }) {
                    let Walked {
                        relative,
                        node,
                        content,
                        unnamed_attributes,
                    } = walked?;
                    if unnamed_attributes {
                        unnamed.push(node.display_path());
                    }
                    let xattrs = unnamed_attributes || !node.xattrs.is_empty();
                    let mut remember = |stamp, content| {
                        new_cache.push(
                            &relative,
                            &CachedFile {
                                stamp,
                                content,
                                xattrs,
                            },
                        )
                    };
                    match content {
                        Content::None => {
                            builder.add(node, None)?;
                        }
                        Content::Known { content, stamp } => {
                            builder.add_known(node, content.clone())?;
                            remember(stamp, content);
                        }
                        Content::Read { path, stamp } => {
                            let file =
                                std::fs::File::open(&path).map_err(|e| source_error(&path, e))?;
                            let mut counted = Counted {
                                file,
                                window: &window,
                            };
                            let content = builder.add(node, Some(&mut counted))?;
                            if stamp.is_settled(started_ns) {
                                remember(stamp, content);
                            }
                        }
                    }
                }
                if !unnamed.is_empty() {
                    builder
                        .notes
                        .push(TreeNote::UnnamedAttributes { paths: unnamed });
                }
                Ok(())
            })
        })?;
        drop(old_cache);
        if let Some(path) = cache_file {
            // Only after the snapshot is saved: the cached blobs are then
            // referenced, and a failed write only costs a re-read.
            let _ = cache::save(&path, self.keys(), new_cache);
        }
        Ok(snapshot)
    }
}
