//! `lifeboat mount`: the snapshots of the spec's repositories as a
//! read-only file system. This module owns the namespace and the reads,
//! with no FUSE in it (`fuse` adapts it to the kernel, and the unit tests
//! walk it directly); it never writes to a repository.
//!
//! ```text
//! /volume.data/2026-12-06T02:00:00Z/…   a volume or bind snapshot: its tree
//! /volume.data/latest -> 2026-12-06T02:00:00Z
//! /dump.orders/2026-12-06T02:00:00Z      a dump or service snapshot: one file, the stream
//! /image.api/2026-12-06T02:00:00Z        an image snapshot: a text file naming its id,
//!                                        tags, platform and layers (DiffIDs, bottom first)
//! ```
//!
//! Two snapshots of one resource taken in the same second are told apart
//! by their short id (`…T02:00:00Z-8c2e41f0`). A snapshot's tree is read
//! when its directory is first looked up, through the same guard as a
//! restore (a hostile tree is refused whole: EIO, and recorded); file
//! content is read blob by blob when it is read, each blob authenticated
//! and checked, the recent ones kept in a [`cache::BlobCache`]. Inode
//! numbers are handed out once and never reused while mounted.

pub mod cache;
pub mod fuse;

use crate::repo::crypto::BlobId;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::{ContentKind, RepoError, Repository, Snapshot};
use cache::BlobCache;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// Bytes of content blobs kept in memory (a few blobs of the chunker's
/// 1 MiB average, so a file read in the kernel's 128 KiB pieces reads each
/// blob once, and a handful of files can be read side by side).
pub const CACHE_BYTES: usize = 32 << 20;
/// Problems kept for the report at unmount (more are counted).
const PROBLEMS_KEPT: usize = 100;
pub const ROOT: u64 = 1;

/// One snapshot to show, with the repository (an index into the
/// repositories given to [`SnapshotFs::new`]) that holds it.
pub struct MountedSnapshot {
    pub repository: usize,
    /// The address it is shown under (after `moved` renames).
    pub resource: String,
    pub snapshot: Snapshot,
    /// A safety snapshot taken before a `--replace`: shown, never `latest`.
    pub safety: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

/// What `stat` shows of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub ino: u64,
    pub kind: EntryKind,
    /// Permission bits plus setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub size: u64,
    pub nlink: u32,
    /// Device numbers of a device node (`makedev`).
    pub rdev: u32,
}

/// Why an operation has no answer (the adapter turns these into errnos).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    NotDir,
    IsDir,
    NotLink,
    /// Damaged or hostile repository data, or a repository out of reach:
    /// recorded in [`SnapshotFs::problems`].
    Io,
}

/// One content blob of a file: where it starts in the file, how long it is.
#[derive(Debug, Clone)]
struct Extent {
    id: BlobId,
    start: u64,
    len: u64,
}

#[derive(Debug, Clone)]
enum Body {
    /// Entries sorted by name.
    Dir(Vec<(Vec<u8>, u64)>),
    /// A snapshot whose tree is read on first use.
    Unloaded(usize),
    File {
        repository: usize,
        extents: Arc<[Extent]>,
        /// For problem reports: `volume.data/TIME/path`.
        shown: Arc<str>,
    },
    Text(Arc<[u8]>),
    Symlink(Vec<u8>),
    Special,
}

#[derive(Debug, Clone)]
struct Inode {
    parent: u64,
    attr: Attributes,
    body: Body,
}

/// Told each problem as it is recorded.
pub type Report = Box<dyn Fn(&str) + Send + Sync>;

pub struct SnapshotFs {
    repositories: Vec<Repository>,
    snapshots: Vec<MountedSnapshot>,
    inodes: RwLock<Vec<Inode>>,
    cache: Mutex<BlobCache>,
    /// Held while a blob is read from a repository: the kernel's
    /// read-ahead asks for several pieces of one blob at once, and each
    /// would otherwise read and decrypt the whole blob again.
    fetching: Mutex<()>,
    problems: Mutex<(Vec<String>, usize)>,
    /// Told each new problem as it happens (the CLI prints it).
    report: Option<Report>,
}

/// `2026-12-06T02:00:00Z`: a snapshot's name in its resource's directory.
pub fn time_name(snapshot: &Snapshot) -> String {
    snapshot.time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether a resource address read from a repository can name a directory.
fn usable_address(resource: &str) -> bool {
    crate::spec::Address::parse(resource).is_some()
        && !resource.contains('/')
        && !resource.contains('\0')
}

fn synthetic(ino: u64, kind: EntryKind, mtime: i64, size: u64) -> Attributes {
    Attributes {
        ino,
        kind,
        mode: if kind == EntryKind::Dir { 0o555 } else { 0o444 },
        uid: 0,
        gid: 0,
        mtime,
        size,
        nlink: if kind == EntryKind::Dir { 2 } else { 1 },
        rdev: 0,
    }
}

/// Owners beyond 32 bits (a damaged tree) show as `nobody`.
fn owner(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(65534)
}

fn node_attributes(node: &Node) -> Attributes {
    let kind = match node.kind {
        NodeKind::Dir => EntryKind::Dir,
        NodeKind::File | NodeKind::Hardlink => EntryKind::File,
        NodeKind::Symlink => EntryKind::Symlink,
        NodeKind::Fifo => EntryKind::Fifo,
        NodeKind::CharDevice => EntryKind::CharDevice,
        NodeKind::BlockDevice => EntryKind::BlockDevice,
        NodeKind::Socket => EntryKind::Socket,
    };
    let size = match node.kind {
        NodeKind::File => node.size,
        NodeKind::Symlink => node.target_bytes().map_or(0, |t| t.len() as u64),
        _ => 0,
    };
    Attributes {
        ino: 0,
        kind,
        mode: node.mode & 0o7777,
        uid: owner(node.uid),
        gid: owner(node.gid),
        mtime: node.mtime,
        size,
        nlink: if kind == EntryKind::Dir { 2 } else { 1 },
        rdev: node
            .device
            .map_or(0, |(major, minor)| libc::makedev(major, minor) as u32),
    }
}

/// A snapshot's content as fresh inodes: local number 0 is the snapshot's
/// own entry, `k ≥ 1` becomes inode `base + k - 1` when they are added.
struct Built {
    inodes: Vec<Inode>,
}

impl SnapshotFs {
    /// The namespace of `snapshots`: one directory per resource, one entry
    /// per snapshot; nothing is read from the repositories yet. Snapshots
    /// whose recorded address cannot be a directory name are left out and
    /// recorded as problems.
    pub fn new(repositories: Vec<Repository>, snapshots: Vec<MountedSnapshot>) -> SnapshotFs {
        let fs = SnapshotFs {
            repositories,
            snapshots: Vec::new(),
            inodes: RwLock::new(Vec::new()),
            cache: Mutex::new(BlobCache::new(CACHE_BYTES)),
            fetching: Mutex::new(()),
            problems: Mutex::new((Vec::new(), 0)),
            report: None,
        };
        let mut by_resource: BTreeMap<String, Vec<MountedSnapshot>> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for mounted in snapshots {
            if !usable_address(&mounted.resource) {
                fs.record(format!(
                    "snapshot {} is recorded for {:?}, which is no resource address: left out",
                    mounted.snapshot.id.short(),
                    mounted.resource
                ));
                continue;
            }
            // A copy in a second repository is the same snapshot.
            if seen.insert(mounted.snapshot.id.0.clone()) {
                by_resource
                    .entry(mounted.resource.clone())
                    .or_default()
                    .push(mounted);
            }
        }
        let newest = by_resource
            .values()
            .flatten()
            .map(|m| m.snapshot.time.timestamp())
            .max()
            .unwrap_or(0);
        let mut inodes = vec![Inode {
            parent: ROOT,
            attr: synthetic(ROOT, EntryKind::Dir, newest, 0),
            body: Body::Dir(Vec::new()),
        }];
        let mut root_entries = Vec::new();
        let mut all = Vec::new();
        for (resource, mut list) in by_resource {
            list.sort_by_key(|m| m.snapshot.time);
            let dir_ino = inodes.len() as u64 + 1;
            let dir_mtime = list.last().map_or(0, |m| m.snapshot.time.timestamp());
            inodes.push(Inode {
                parent: ROOT,
                attr: synthetic(dir_ino, EntryKind::Dir, dir_mtime, 0),
                body: Body::Dir(Vec::new()),
            });
            root_entries.push((resource.into_bytes(), dir_ino));
            let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
            let mut latest = None;
            for mounted in list {
                let mut name = time_name(&mounted.snapshot);
                if entries.iter().any(|(n, _)| *n == name.as_bytes()) {
                    name = format!("{name}-{}", mounted.snapshot.id.short());
                }
                let ino = inodes.len() as u64 + 1;
                let kind = match mounted.snapshot.content {
                    ContentKind::Tree => EntryKind::Dir,
                    ContentKind::Stream | ContentKind::Image => EntryKind::File,
                };
                let mtime = mounted.snapshot.time.timestamp();
                inodes.push(Inode {
                    parent: dir_ino,
                    attr: synthetic(ino, kind, mtime, 0),
                    body: Body::Unloaded(all.len()),
                });
                if !mounted.safety {
                    latest = Some(name.clone());
                }
                entries.push((name.into_bytes(), ino));
                all.push(mounted);
            }
            if let Some(latest) = latest {
                let ino = inodes.len() as u64 + 1;
                let mut attr = synthetic(ino, EntryKind::Symlink, dir_mtime, latest.len() as u64);
                attr.mode = 0o777;
                inodes.push(Inode {
                    parent: dir_ino,
                    attr,
                    body: Body::Symlink(latest.into_bytes()),
                });
                entries.push((b"latest".to_vec(), ino));
            }
            entries.sort();
            inodes[dir_ino as usize - 1].body = Body::Dir(entries);
        }
        root_entries.sort();
        inodes[0].body = Body::Dir(root_entries);
        SnapshotFs {
            snapshots: all,
            inodes: RwLock::new(inodes),
            ..fs
        }
    }

    /// Tells `report` of each problem as it is recorded.
    pub fn reporting(mut self, report: Report) -> SnapshotFs {
        for problem in &self.problems().0 {
            report(problem);
        }
        self.report = Some(report);
        self
    }

    /// What went wrong while mounted (damaged blobs, refused trees,
    /// unreachable repositories), the first ones, and how many in all.
    pub fn problems(&self) -> (Vec<String>, usize) {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, problem: String) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.1 += 1;
        if problems.0.len() < PROBLEMS_KEPT && !problems.0.contains(&problem) {
            if let Some(report) = &self.report {
                report(&problem);
            }
            problems.0.push(problem);
        }
    }

    /// How many snapshots and resources are shown.
    pub fn counts(&self) -> (usize, usize) {
        let resources: std::collections::BTreeSet<&str> =
            self.snapshots.iter().map(|m| m.resource.as_str()).collect();
        (self.snapshots.len(), resources.len())
    }

    /// `look` at the inode, its snapshot read first if need be (no copy
    /// of a large directory's entries per lookup).
    fn with_inode<T>(&self, ino: u64, look: impl FnOnce(&Inode) -> T) -> Result<T, FsError> {
        self.loaded(ino)?;
        self.inodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get((ino as usize).wrapping_sub(1))
            .map(look)
            .ok_or(FsError::NotFound)
    }

    /// Reads the snapshot behind `ino` if it has not been read yet.
    fn loaded(&self, ino: u64) -> Result<(), FsError> {
        let index = match self
            .inodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get((ino as usize).wrapping_sub(1))
        {
            Some(Inode {
                body: Body::Unloaded(index),
                ..
            }) => *index,
            Some(_) => return Ok(()),
            None => return Err(FsError::NotFound),
        };
        let mounted = &self.snapshots[index];
        let shown = format!("{}/{}", mounted.resource, time_name(&mounted.snapshot));
        // Read outside the lock: other snapshots stay browsable meanwhile.
        let built = self.build(mounted, &shown).map_err(|e| {
            self.record(format!(
                "{shown} (snapshot {}): {e}",
                mounted.snapshot.id.short()
            ));
            FsError::Io
        })?;
        let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        if !matches!(inodes[ino as usize - 1].body, Body::Unloaded(_)) {
            return Ok(()); // another thread read it first
        }
        let base = inodes.len() as u64 + 1;
        let global = |local: u64| if local == 0 { ino } else { base + local - 1 };
        for (local, mut inode) in built.inodes.into_iter().enumerate() {
            let local = local as u64;
            inode.attr.ino = global(local);
            inode.parent = if local == 0 {
                inodes[ino as usize - 1].parent
            } else {
                global(inode.parent)
            };
            if let Body::Dir(entries) = &mut inode.body {
                for (_, child) in entries.iter_mut() {
                    *child = global(*child);
                }
            }
            if local == 0 {
                inodes[ino as usize - 1] = inode;
            } else {
                inodes.push(inode);
            }
        }
        Ok(())
    }

    fn build(&self, mounted: &MountedSnapshot, shown: &str) -> Result<Built, RepoError> {
        let repository = &self.repositories[mounted.repository];
        let snapshot = &mounted.snapshot;
        match snapshot.content {
            ContentKind::Tree => self.build_tree(mounted, shown),
            ContentKind::Stream => {
                let mut root = None;
                let mut nodes = 0;
                repository.for_each_node(snapshot, |node| {
                    nodes += 1;
                    root = Some(node);
                    Ok(())
                })?;
                let node = root.filter(|n| {
                    nodes == 1 && n.kind == NodeKind::File && n.path_bytes().is_empty()
                });
                let Some(node) = node else {
                    return Err(RepoError::Corrupt {
                        what: format!("snapshot {}", snapshot.id.short()),
                        detail: "a stream snapshot holds exactly one file node".into(),
                    });
                };
                let body = self.file_body(mounted.repository, &node, shown.into())?;
                Ok(Built {
                    inodes: vec![Inode {
                        parent: 0,
                        attr: node_attributes(&node),
                        body,
                    }],
                })
            }
            ContentKind::Image => {
                let text = repository.stored_image(snapshot)?.describe();
                let mtime = snapshot.time.timestamp();
                Ok(Built {
                    inodes: vec![Inode {
                        parent: 0,
                        attr: synthetic(0, EntryKind::File, mtime, text.len() as u64),
                        body: Body::Text(text.into_bytes().into()),
                    }],
                })
            }
        }
    }

    fn build_tree(&self, mounted: &MountedSnapshot, shown: &str) -> Result<Built, RepoError> {
        let repository = &self.repositories[mounted.repository];
        let mut inodes: Vec<Inode> = Vec::new();
        // Directories (to find parents) and files (hard links name them).
        let mut by_path: HashMap<Vec<u8>, u64> = HashMap::new();
        let unexpected = |detail: String| RepoError::Corrupt {
            what: format!("the tree of snapshot {}", mounted.snapshot.id.short()),
            detail,
        };
        repository.for_each_admitted_node(&mounted.snapshot, |node| {
            let path = node.path_bytes();
            let attr = node_attributes(&node);
            if path.is_empty() {
                by_path.insert(Vec::new(), 0);
                inodes.push(Inode {
                    parent: 0,
                    attr,
                    body: Body::Dir(Vec::new()),
                });
                return Ok(());
            }
            let (parent_path, name) = match path.iter().rposition(|b| *b == b'/') {
                Some(slash) => (&path[..slash], &path[slash + 1..]),
                None => (&path[..0], &path[..]),
            };
            // The guard admitted the node: its parent is a directory seen
            // earlier, and a hard link names a file seen earlier.
            let parent = *by_path
                .get(parent_path)
                .ok_or_else(|| unexpected(format!("{} has no parent", node.display_path())))?;
            let local = if node.kind == NodeKind::Hardlink {
                let target = node.target_bytes().unwrap_or_default();
                let local = *by_path
                    .get(&target)
                    .ok_or_else(|| unexpected(format!("{} links nowhere", node.display_path())))?;
                inodes[local as usize].attr.nlink += 1;
                local
            } else {
                let body = match node.kind {
                    NodeKind::Dir => Body::Dir(Vec::new()),
                    NodeKind::File => self.file_body(
                        mounted.repository,
                        &node,
                        format!("{shown}/{}", node.display_path()).into(),
                    )?,
                    NodeKind::Symlink => Body::Symlink(node.target_bytes().unwrap_or_default()),
                    _ => Body::Special,
                };
                inodes.push(Inode { parent, attr, body });
                let local = inodes.len() as u64 - 1;
                if matches!(node.kind, NodeKind::Dir | NodeKind::File) {
                    by_path.insert(path.clone(), local);
                }
                local
            };
            if let Body::Dir(entries) = &mut inodes[parent as usize].body {
                entries.push((name.to_vec(), local));
            }
            Ok(())
        })?;
        if inodes.is_empty() {
            return Err(unexpected("the tree is empty".into()));
        }
        for inode in &mut inodes {
            if let Body::Dir(entries) = &mut inode.body {
                entries.sort();
            }
        }
        Ok(Built { inodes })
    }

    /// A file's blobs with their offsets, from the sizes the index records
    /// (checked again as each blob is read); a blob the index does not
    /// know, or sizes that do not add up to the file's, refuse the tree.
    fn file_body(
        &self,
        repository: usize,
        node: &Node,
        shown: Arc<str>,
    ) -> Result<Body, RepoError> {
        let index = self.repositories[repository].index();
        let mut extents = Vec::with_capacity(node.content.len());
        let mut start = 0u64;
        for id in &node.content {
            let len = index
                .locations(id)
                .first()
                .map(|(_, blob)| u64::from(blob.raw_length))
                .ok_or_else(|| RepoError::BadBlob {
                    path: shown.to_string(),
                    blob: hex::encode(&id[..8]),
                    detail: "no pack holds it (`lifeboat check` says more)".into(),
                })?;
            extents.push(Extent {
                id: *id,
                start,
                len,
            });
            start += len;
        }
        if start != node.size {
            return Err(RepoError::Corrupt {
                what: format!("file {shown}"),
                detail: format!("{start} bytes of content, the tree says {}", node.size),
            });
        }
        Ok(Body::File {
            repository,
            extents: extents.into(),
            shown,
        })
    }

    pub fn getattr(&self, ino: u64) -> Result<Attributes, FsError> {
        self.with_inode(ino, |inode| inode.attr.clone())
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attributes, FsError> {
        let ino = self.with_inode(parent, |inode| match &inode.body {
            Body::Dir(entries) => entries
                .binary_search_by(|(n, _)| n.as_slice().cmp(name))
                .map(|i| entries[i].1)
                .map_err(|_| FsError::NotFound),
            _ => Err(FsError::NotDir),
        })??;
        self.getattr(ino)
    }

    /// A directory's entries after `.` and `..`: (inode, kind, name).
    pub fn readdir(&self, ino: u64) -> Result<Vec<(u64, EntryKind, Vec<u8>)>, FsError> {
        self.loaded(ino)?;
        let inodes = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        let inode = inodes
            .get((ino as usize).wrapping_sub(1))
            .ok_or(FsError::NotFound)?;
        let Body::Dir(entries) = &inode.body else {
            return Err(FsError::NotDir);
        };
        let kind = |ino: u64| inodes[ino as usize - 1].attr.kind;
        let mut out = vec![
            (ino, EntryKind::Dir, b".".to_vec()),
            (inode.parent, EntryKind::Dir, b"..".to_vec()),
        ];
        out.extend(entries.iter().map(|(name, i)| (*i, kind(*i), name.clone())));
        Ok(out)
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        self.with_inode(ino, |inode| match &inode.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(FsError::NotLink),
        })?
    }

    /// Up to `size` bytes of a file from `offset` (fewer at its end).
    pub fn read(&self, ino: u64, offset: u64, size: usize) -> Result<Vec<u8>, FsError> {
        let body = self.with_inode(ino, |inode| match &inode.body {
            Body::File { .. } | Body::Text(_) => Some(inode.body.clone()),
            _ => None,
        })?;
        let (repository, extents, shown) = match body {
            Some(Body::File {
                repository,
                extents,
                shown,
            }) => (repository, extents, shown),
            Some(Body::Text(text)) => {
                let start = (offset as usize).min(text.len());
                let end = start.saturating_add(size).min(text.len());
                return Ok(text[start..end].to_vec());
            }
            _ => return Err(FsError::IsDir),
        };
        let mut out = Vec::with_capacity(size);
        let first = extents.partition_point(|e| e.start + e.len <= offset);
        for extent in &extents[first..] {
            if out.len() >= size {
                break;
            }
            let data = self.blob(repository, extent, &shown)?;
            let from = (offset + out.len() as u64 - extent.start) as usize;
            let take = (size - out.len()).min(data.len() - from);
            out.extend_from_slice(&data[from..from + take]);
        }
        Ok(out)
    }

    fn blob(
        &self,
        repository: usize,
        extent: &Extent,
        shown: &str,
    ) -> Result<Arc<Vec<u8>>, FsError> {
        let cached = || {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&extent.id)
        };
        if let Some(data) = cached() {
            return Ok(data);
        }
        let _fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(data) = cached() {
            return Ok(data); // read by another request meanwhile
        }
        let data = self.repositories[repository]
            .read_blob(&extent.id)
            .and_then(|data| {
                if data.len() as u64 == extent.len {
                    Ok(data)
                } else {
                    Err(format!(
                        "{} bytes, the index says {}",
                        data.len(),
                        extent.len
                    ))
                }
            })
            .map_err(|detail| {
                self.record(format!(
                    "{shown}: blob {}: {detail}",
                    hex::encode(&extent.id[..8])
                ));
                FsError::Io
            })?;
        let data = Arc::new(data);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(extent.id, data.clone());
        Ok(data)
    }
}

#[cfg(test)]
mod tests;
