//! Reading parts of a tree snapshot without restoring it: listing a
//! directory, finding paths by glob, one file's bytes, and what changed
//! between two trees. Every node comes through the same guard as a
//! restore (a hostile tree is refused, not listed), and every content
//! blob is authenticated and checked against its id as it is read.

use super::crypto::BlobId;
use super::guard::CheckedNode;
use super::tree::{Node, NodeKind};
use super::{ContentKind, RepoError, Repository, Snapshot};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, OnceLock};

/// One entry of a tree as `ls`, `find` and `diff` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TreeEntry {
    /// Relative to the tree's root, `/`-separated; `""` for the root. Names
    /// that are not UTF-8 are shown with their bad bytes replaced.
    pub path: String,
    pub kind: String,
    /// Permission bits (and setuid, setgid, sticky), octal in text views.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    pub size: u64,
    /// A symbolic link's target, or the path a hard link repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl TreeEntry {
    fn of(node: &Node) -> TreeEntry {
        TreeEntry {
            path: path_of(node),
            kind: format!("{:?}", node.kind).to_lowercase(),
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            size: node.size,
            target: node
                .target_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned()),
        }
    }
}

/// How an entry differs between two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Content, kind or link target differ.
    Modified,
    /// Only mode, owner, time or attributes differ.
    Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Difference {
    pub change: Change,
    pub path: String,
    /// The entry in the newer tree (the older one's for `removed`).
    pub entry: TreeEntry,
}

/// A node's path relative to the root (`""` for the root), bad UTF-8 replaced.
fn path_of(node: &Node) -> String {
    String::from_utf8_lossy(&node.path_bytes()).into_owned()
}

/// `path` as the tree stores it: no leading or trailing `/`, no `.`.
pub fn normalize_path(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

impl Repository {
    fn tree_snapshot(&self, snapshot: &Snapshot) -> Result<(), RepoError> {
        if snapshot.content != ContentKind::Tree {
            return Err(RepoError::Refused(format!(
                "snapshot {} holds {}, not a file tree",
                snapshot.id.short(),
                match snapshot.content {
                    ContentKind::Stream => "a byte stream (a dump or a service's configuration)",
                    _ => "an image",
                }
            )));
        }
        Ok(())
    }

    /// The entries under `dir` (normalized; `""` for the root), in tree
    /// order; `recursive: false` keeps only its children; a file named as
    /// `dir` is listed alone. Errors when nothing is at `dir`.
    pub fn list_tree(
        &self,
        snapshot: &Snapshot,
        dir: &str,
        recursive: bool,
        mut visit: impl FnMut(TreeEntry),
    ) -> Result<(), RepoError> {
        self.tree_snapshot(snapshot)?;
        let dir = normalize_path(dir);
        let depth = |p: &str| {
            if p.is_empty() {
                0
            } else {
                p.split('/').count()
            }
        };
        let base = depth(&dir);
        let mut found = false;
        self.for_each_admitted_node(snapshot, |node| {
            let path = path_of(&node);
            if !is_under(&path, &dir) {
                return Ok(());
            }
            found = true;
            // A directory's listing is its entries (as `ls` shows it); a
            // file named alone is listed itself.
            let itself = path == dir && node.kind == NodeKind::Dir;
            if !itself && (recursive || depth(&path) <= base + 1) {
                visit(TreeEntry::of(&node));
            }
            Ok(())
        })?;
        if !found {
            return Err(not_in(snapshot, &dir));
        }
        Ok(())
    }

    /// Entries whose path matches `pattern` (a glob matched against the
    /// whole path when it holds a `/`, else against the last name, as
    /// `restic find` does).
    pub fn find_in_tree(
        &self,
        snapshot: &Snapshot,
        pattern: &globset::GlobMatcher,
        whole_path: bool,
        mut visit: impl FnMut(TreeEntry),
    ) -> Result<(), RepoError> {
        self.tree_snapshot(snapshot)?;
        self.for_each_admitted_node(snapshot, |node| {
            let path = path_of(&node);
            let name = path.rsplit('/').next().unwrap_or_default();
            let subject = if whole_path { path.as_str() } else { name };
            if !path.is_empty() && pattern.is_match(subject) {
                visit(TreeEntry::of(&node));
            }
            Ok(())
        })
    }

    /// Writes the content of the regular file at `path` to `out`, each
    /// blob authenticated and checked; returns the bytes written.
    pub fn write_file(
        &self,
        snapshot: &Snapshot,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<u64, RepoError> {
        match self.write_path(snapshot, path, false, out)? {
            Written::File { bytes } => Ok(bytes),
            Written::Tar { .. } => Err(not_a(snapshot, path, NodeKind::Dir, "file")),
        }
    }

    /// Writes what is at `path` to `out`: a regular file's content, or
    /// (when `dirs`) a directory and everything under it as a tar stream
    /// with its metadata (modes, owners, times, links, attributes; sockets
    /// have no tar type and are left out). Tar entries are named as `tar
    /// -C PARENT -c NAME` names them (`config/app.conf` for `config`; for
    /// the root, `.` and then names relative to it); a hard link to a file outside the directory
    /// carries that file's content instead. Every blob is authenticated
    /// and checked as it is read.
    pub fn write_path(
        &self,
        snapshot: &Snapshot,
        path: &str,
        dirs: bool,
        out: &mut dyn Write,
    ) -> Result<Written, RepoError> {
        use std::path::PathBuf;
        self.tree_snapshot(snapshot)?;
        let dir = normalize_path(path);
        let prefix = match dir.rsplit('/').next() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => ".".to_string(),
        };
        // Under the root, plain relative names: the tar crate writes a
        // short `./a` as `a` but a GNU long name as given, and GNU tar then
        // takes `./a/…` for another directory than `a` (it left that
        // directory's mtime at the time of extraction).
        let named = |path: &str| -> PathBuf {
            let inside = path[dir.len()..].trim_start_matches('/');
            match (inside.is_empty(), dir.is_empty()) {
                (true, _) => PathBuf::from(&prefix),
                (false, true) => PathBuf::from(inside),
                (false, false) => PathBuf::from(format!("{prefix}/{inside}")),
            }
        };
        let write_error = |e: std::io::Error| RepoError::io("writing to the output")(e);
        // Moved into the tar writer once the directory is found.
        let mut out = Some(out);
        let mut tar = None;
        // Files seen so far, for hard links (the guard makes them name an
        // earlier file).
        let mut files: std::collections::HashMap<String, Node> = Default::default();
        let (mut written, mut entries) = (None, 0u64);
        self.for_each_admitted_node(snapshot, |node| {
            let path = path_of(&node);
            if node.kind == NodeKind::File {
                files.insert(path.clone(), node.clone());
            }
            if !is_under(&path, &dir) || written.is_some() {
                return Ok(());
            }
            if path == dir {
                // A further name of a file is that file (which name the
                // tree records as the file is the walk's order).
                let linked = match node.kind {
                    NodeKind::Hardlink => node
                        .target_bytes()
                        .and_then(|t| files.get(String::from_utf8_lossy(&t).as_ref()).cloned()),
                    _ => None,
                };
                let node = linked.unwrap_or(node.clone());
                match node.kind {
                    NodeKind::File => {
                        let mut content = BlobReader::new(self, &node);
                        let Some(out) = out.as_deref_mut() else {
                            return Ok(());
                        };
                        let copied = std::io::copy(&mut content, out);
                        if let Some(failure) = content.failure.take() {
                            return Err(failure);
                        }
                        let bytes = copied.map_err(&write_error)?;
                        written = Some(Written::File { bytes });
                        return Ok(());
                    }
                    NodeKind::Dir if dirs => tar = out.take().map(tar::Builder::new),
                    kind => {
                        let wanted = if dirs { "file or directory" } else { "file" };
                        return Err(not_a(snapshot, &dir, kind, wanted));
                    }
                }
            }
            let Some(tar) = tar.as_mut() else {
                return Ok(());
            };
            if node.kind == NodeKind::Socket {
                return Ok(());
            }
            let target = node.target_bytes().unwrap_or_default();
            let target = String::from_utf8_lossy(&target).into_owned();
            let linked = files
                .get(&target)
                .filter(|_| node.kind == NodeKind::Hardlink);
            let (entry, link) = match linked {
                Some(file) if !is_under(&target, &dir) => (file.clone(), PathBuf::new()),
                Some(_) => (node.clone(), named(&target)),
                None => (node.clone(), PathBuf::from(&target)),
            };
            let mut content = BlobReader::new(self, &entry);
            let appended =
                super::restorer::append_tar_entry(tar, &entry, &named(&path), &link, &mut content);
            if let Some(failure) = content.failure.take() {
                return Err(failure);
            }
            appended.map_err(&write_error)?;
            entries += 1;
            Ok(())
        })?;
        let (written, out) = match (written, tar, out) {
            (Some(file), _, Some(out)) => (file, out),
            (None, Some(tar), _) => (
                Written::Tar { entries },
                tar.into_inner().map_err(write_error)?,
            ),
            _ => return Err(not_in(snapshot, &dir)),
        };
        out.flush().map_err(write_error)?;
        Ok(written)
    }

    /// Every entry of a tree by path, with what content comparison needs.
    pub fn tree_map(&self, snapshot: &Snapshot) -> Result<TreeMap, RepoError> {
        self.tree_snapshot(snapshot)?;
        let mut map = BTreeMap::new();
        self.for_each_admitted_node(snapshot, |node| {
            map.insert(path_of(&node), Compared::of(&node));
            Ok(())
        })?;
        Ok(map)
    }
}

/// `find` over many trees of one repository. The snapshots of a volume
/// share most of their tree blobs, and a blob's lines carry whole paths,
/// so what a blob's nodes are, what the guard can say of each alone, and
/// which match the pattern depend on its bytes only: each distinct blob
/// is read, decoded, checked and matched once ([`SearchedBlob`]), and each
/// tree then only runs the guard's checks of where its nodes stand (their
/// parent, duplicates, hard links), which depend on the blobs before.
/// The results are those of [`Repository::find_in_tree`] tree by tree,
/// errors included; a tree whose blobs are not cut at line ends (not as
/// lifeboat writes them) is walked that way. Shared by the threads of one
/// search: a blob two walks want at once is decoded by one of them. A
/// blob is kept while walks announced ([`TreeSearch::expect`]) still need
/// it, so memory holds the trees being walked and what later walks share.
pub struct TreeSearch<'r> {
    repository: &'r Repository,
    pattern: &'r globset::GlobMatcher,
    whole_path: bool,
    blobs: std::sync::Mutex<HashMap<BlobId, Kept>>,
    /// Blobs decoded so far (each distinct blob once, when announced).
    decoded: std::sync::atomic::AtomicUsize,
}

/// A blob's decoded form (once a walk has read it) and how many of the
/// announced walks have yet to use it.
#[derive(Default)]
struct Kept {
    searched: Arc<OnceLock<Arc<SearchedBlob>>>,
    walks_left: usize,
}

/// One tree blob as every tree holding it sees it.
struct SearchedBlob {
    /// Its nodes (whole lines) in order, checked by themselves.
    nodes: Vec<CheckedNode>,
    /// The nodes among them that match the pattern, in order.
    matches: Vec<TreeEntry>,
    end: BlobEnd,
}

enum BlobEnd {
    /// After its last line, the next blob.
    Lines,
    /// It ends within a line (the next blob goes on with it).
    WithinLine,
    /// A walk stops after its nodes: a line that is not a node, or bytes
    /// that did not read (the detail of the tree's damage).
    Broken(String),
}

impl<'r> TreeSearch<'r> {
    /// A search for `pattern` (see [`Repository::find_in_tree`]).
    pub fn new(
        repository: &'r Repository,
        pattern: &'r globset::GlobMatcher,
        whole_path: bool,
    ) -> TreeSearch<'r> {
        TreeSearch {
            repository,
            pattern,
            whole_path,
            blobs: Default::default(),
            decoded: Default::default(),
        }
    }

    /// Announces a walk of `snapshot` (call once per [`TreeSearch::find`]
    /// to come): its blobs are kept until it is done. Without it, a walk
    /// still finds the same, but shares only what walks at the same time
    /// share.
    pub fn expect(&self, snapshot: &Snapshot) {
        let mut blobs = self.blobs.lock().expect("not poisoned");
        for id in &snapshot.tree {
            blobs.entry(*id).or_default().walks_left += 1;
        }
    }

    /// Whether this search reads `repository` (the same handle).
    pub fn reads(&self, repository: &Repository) -> bool {
        std::ptr::eq(self.repository, repository)
    }

    /// The entries of `snapshot`'s tree that match, in tree order.
    pub fn find(&self, snapshot: &Snapshot) -> Result<Vec<TreeEntry>, RepoError> {
        self.repository.tree_snapshot(snapshot)?;
        let slots: Vec<_> = {
            let mut blobs = self.blobs.lock().expect("not poisoned");
            (snapshot.tree.iter())
                .map(|id| blobs.entry(*id).or_default().searched.clone())
                .collect()
        };
        let found = self.walk(snapshot, &slots);
        let mut blobs = self.blobs.lock().expect("not poisoned");
        for id in &snapshot.tree {
            if let Some(kept) = blobs.get_mut(id) {
                kept.walks_left = kept.walks_left.saturating_sub(1);
                if kept.walks_left == 0 {
                    blobs.remove(id);
                }
            }
        }
        found
    }

    /// [`TreeSearch::find`] with the blobs' slots, filled as they are read.
    fn walk(
        &self,
        snapshot: &Snapshot,
        slots: &[Arc<OnceLock<Arc<SearchedBlob>>>],
    ) -> Result<Vec<TreeEntry>, RepoError> {
        let repository = self.repository;
        let unread: Vec<&BlobId> = (snapshot.tree.iter().zip(slots))
            .filter(|(_, slot)| slot.get().is_none())
            .map(|(id, _)| id)
            .collect();
        let mut slot_of: HashMap<&BlobId, &OnceLock<Arc<SearchedBlob>>> = snapshot
            .tree
            .iter()
            .zip(slots.iter().map(|s| &**s))
            .collect();
        repository.read_tree_blobs(unread.into_iter(), |id, read| {
            if let Some(slot) = slot_of.remove(id) {
                slot.get_or_init(|| Arc::new(self.searched(id, read)));
            }
            Ok(())
        })?;
        let blobs: Vec<&SearchedBlob> = slots
            .iter()
            .map(|slot| &**slot.get().expect("every blob was read"))
            .collect();
        if blobs.iter().any(|b| matches!(b.end, BlobEnd::WithinLine)) {
            let mut matches = Vec::new();
            repository
                .find_in_tree(snapshot, self.pattern, self.whole_path, |e| matches.push(e))?;
            return Ok(matches);
        }
        let mut guard = super::guard::TreeGuard::default();
        for blob in &blobs {
            for node in &blob.nodes {
                guard
                    .admit_checked(node)
                    .map_err(|detail| super::refused_tree(snapshot, detail))?;
            }
            if let BlobEnd::Broken(detail) = &blob.end {
                return Err(super::damaged_tree(snapshot, detail.clone()));
            }
        }
        Ok(blobs
            .iter()
            .flat_map(|b| b.matches.iter().cloned())
            .collect())
    }

    /// A blob decoded, its nodes checked by themselves and matched.
    fn searched(&self, id: &BlobId, read: Result<Vec<u8>, String>) -> SearchedBlob {
        (self.decoded).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nodes = Vec::new();
        let (end, bytes) = match read {
            Ok(bytes) => (BlobEnd::Lines, bytes),
            Err(e) => (
                BlobEnd::Broken(format!("tree blob {}: {e}", hex::encode(&id[..4]))),
                Vec::new(),
            ),
        };
        let mut reader = super::tree::NodeReader::default();
        let end = match (end, reader.feed(&bytes, &mut nodes)) {
            (BlobEnd::Lines, Err(e)) => BlobEnd::Broken(e),
            (BlobEnd::Lines, Ok(())) if reader.finish().is_err() => BlobEnd::WithinLine,
            (end, _) => end,
        };
        let mut matches = Vec::new();
        let checked = nodes
            .iter()
            .map(|node| {
                let checked = CheckedNode::of(node);
                let path = String::from_utf8_lossy(checked.path());
                let subject = match self.whole_path {
                    true => &path[..],
                    false => path.rsplit('/').next().unwrap_or_default(),
                };
                if !path.is_empty() && self.pattern.is_match(subject) {
                    matches.push(TreeEntry::of(node));
                }
                checked
            })
            .collect();
        SearchedBlob {
            nodes: checked,
            matches,
            end,
        }
    }
}

/// A file's content, blob by blob, each authenticated and checked as it
/// is read, and exactly as long as the tree says (a tar header announced
/// that size: more or fewer bytes would break the stream); a failure is
/// kept for the caller (the tar writer sees only an I/O error).
struct BlobReader<'a> {
    repository: &'a Repository,
    node: &'a Node,
    next: usize,
    delivered: u64,
    current: Vec<u8>,
    position: usize,
    failure: Option<RepoError>,
}

impl std::io::Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.current.len() {
            let Some(id) = self.node.content.get(self.next) else {
                if self.delivered != self.node.size {
                    return Err(self.size_mismatch());
                }
                return Ok(0);
            };
            match self.repository.read_blob(id) {
                Ok(data) => {
                    self.delivered += data.len() as u64;
                    if self.delivered > self.node.size {
                        return Err(self.size_mismatch());
                    }
                    self.current = data;
                    self.position = 0;
                    self.next += 1;
                }
                Err(detail) => {
                    self.failure = Some(RepoError::BadBlob {
                        path: path_of(self.node),
                        blob: hex::encode(&id[..8]),
                        detail,
                    });
                    return Err(std::io::Error::other("a blob did not read"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

impl<'a> BlobReader<'a> {
    fn new(repository: &'a Repository, node: &'a Node) -> BlobReader<'a> {
        BlobReader {
            repository,
            node,
            next: 0,
            delivered: 0,
            current: Vec::new(),
            position: 0,
            failure: None,
        }
    }

    fn size_mismatch(&mut self) -> std::io::Error {
        self.failure = Some(RepoError::Corrupt {
            what: format!("file {}", path_of(self.node)),
            detail: format!(
                "{} bytes of content, the tree says {}",
                self.delivered, self.node.size
            ),
        });
        std::io::Error::other("the content is not as long as the tree says")
    }
}

/// What [`Repository::write_path`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    File { bytes: u64 },
    Tar { entries: u64 },
}

fn not_a(snapshot: &Snapshot, path: &str, kind: NodeKind, wanted: &str) -> RepoError {
    RepoError::Refused(format!(
        "{} in snapshot {} is a {}, not a {wanted}",
        if path.is_empty() { "/" } else { path },
        snapshot.id.short(),
        format!("{kind:?}").to_lowercase()
    ))
}

pub(crate) fn not_in(snapshot: &Snapshot, path: &str) -> RepoError {
    RepoError::Refused(format!(
        "snapshot {} has nothing at {}: `lifeboat ls {}` shows what it holds",
        snapshot.id.short(),
        if path.is_empty() { "/" } else { path },
        snapshot.id.short()
    ))
}

/// A tree by path: each entry and what decides "modified".
pub type TreeMap = BTreeMap<String, Compared>;

/// An entry with the identity of its content (blob ids, which are keyed
/// hashes of the content: equal ids, equal content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub entry: TreeEntry,
    content: Vec<[u8; 32]>,
    xattrs: Vec<super::tree::Xattr>,
}

impl Compared {
    pub(crate) fn of(node: &Node) -> Compared {
        Compared {
            entry: TreeEntry::of(node),
            content: node.content.clone(),
            xattrs: node.xattrs.clone(),
        }
    }
}

/// The differences from `before` to `after`, in path order.
pub fn compare(before: &TreeMap, after: &TreeMap) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, old) in before {
        match after.get(path) {
            None => out.push(Difference {
                change: Change::Removed,
                path: path.clone(),
                entry: old.entry.clone(),
            }),
            Some(new) if new == old => {}
            Some(new) => {
                let modified = new.entry.kind != old.entry.kind
                    || new.entry.size != old.entry.size
                    || new.entry.target != old.entry.target
                    || new.content != old.content;
                out.push(Difference {
                    change: if modified {
                        Change::Modified
                    } else {
                        Change::Metadata
                    },
                    path: path.clone(),
                    entry: new.entry.clone(),
                });
            }
        }
    }
    for (path, new) in after {
        if !before.contains_key(path) {
            out.push(Difference {
                change: Change::Added,
                path: path.clone(),
                entry: new.entry.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::memory::MemoryBackend;
    use crate::repo::{RepoOptions, SnapshotSource};
    use std::sync::Arc;

    fn backed_up(dir: &std::path::Path) -> (Repository, Snapshot) {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), None).unwrap();
        let repository = Repository::open(backend, None, RepoOptions::default()).unwrap();
        let source = SnapshotSource {
            resource: "volume.data".into(),
            kind: "volume".into(),
            name: "data".into(),
            ..SnapshotSource::default()
        };
        let snapshot = repository.backup_dir(dir, source, &|_| {}).unwrap();
        (repository, snapshot)
    }

    #[test]
    fn a_directory_is_written_as_tar_and_a_file_or_its_hard_link_as_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("config/nested")).unwrap();
        std::fs::write(root.join("a-outside"), b"outside\n").unwrap();
        std::fs::write(root.join("config/app.conf"), b"port = 80\n").unwrap();
        std::fs::write(root.join("config/nested/x"), b"x").unwrap();
        // The tree records `a-outside` as the file, these as links to it.
        std::fs::hard_link(root.join("a-outside"), root.join("config/linked")).unwrap();
        std::fs::hard_link(root.join("a-outside"), root.join("z-link")).unwrap();
        std::os::unix::fs::symlink("app.conf", root.join("config/sym")).unwrap();
        let (repository, snapshot) = backed_up(root);

        let mut tar_bytes = Vec::new();
        let written = repository
            .write_path(&snapshot, "/config/", true, &mut tar_bytes)
            .unwrap();
        assert_eq!(written, Written::Tar { entries: 6 });
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            seen.push((name, entry.header().entry_type(), content, link));
        }
        use tar::EntryType::{Directory, Regular, Symlink};
        let expected = [
            ("config", Directory, "", None),
            ("config/app.conf", Regular, "port = 80\n", None),
            // Its file is outside `config`: it carries the content.
            ("config/linked", Regular, "outside\n", None),
            ("config/nested", Directory, "", None),
            ("config/nested/x", Regular, "x", None),
            ("config/sym", Symlink, "", Some("app.conf")),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, t, c, l)| (n.to_string(), *t, c.to_string(), l.map(String::from)))
            .collect();
        assert_eq!(seen, expected);

        let mut bytes = Vec::new();
        let file = repository.write_path(&snapshot, "z-link", true, &mut bytes);
        assert_eq!(file.unwrap(), Written::File { bytes: 8 });
        assert_eq!(bytes, b"outside\n");
        let refused = repository.write_file(&snapshot, "config", &mut Vec::new());
        assert!(refused.unwrap_err().to_string().contains("not a file"));
        let missing = repository.write_path(&snapshot, "nope", true, &mut Vec::new());
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("has nothing at nope")
        );
    }

    /// A tree of 20 directories of 150 files (`app.conf*` among them;
    /// `d05/f01*` with `mtime`), plus `extra` entries where their names
    /// sort.
    fn tree_of(repository: &Repository, mtime: i64, extra: &[(&str, NodeKind)]) -> Snapshot {
        let mut entries: Vec<(String, NodeKind)> = Vec::new();
        for d in 0..20 {
            entries.push((format!("d{d:02}"), NodeKind::Dir));
            for f in 0..150 {
                let name = if f % 50 == 7 {
                    "app.conf".to_string()
                } else {
                    format!("f{f:03}.txt")
                };
                entries.push((
                    format!(
                        "d{d:02}/{name}{}",
                        if f % 50 == 7 {
                            format!("{f}")
                        } else {
                            String::new()
                        }
                    ),
                    NodeKind::File,
                ));
            }
        }
        entries.extend(extra.iter().map(|(p, k)| (p.to_string(), *k)));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        repository
            .backup_with(
                crate::repo::tests::source("volume.data"),
                &|_| {},
                |builder| {
                    builder.add(Node::new(NodeKind::Dir, 0o755, 0, 0, 1_600_000_000), None)?;
                    for (path, kind) in &entries {
                        let stamp = if path.starts_with("d05/f01") {
                            mtime
                        } else {
                            1_600_000_000
                        };
                        let mut node = Node::new(*kind, 0o644, 0, 0, stamp);
                        node.set_path(path.as_bytes());
                        match kind {
                            NodeKind::File => {
                                node.size = 1;
                                builder.add(node, Some(&mut &b"x"[..]))?;
                            }
                            NodeKind::Hardlink => {
                                node.set_target(b"d00/f000.txt");
                                builder.add(node, None)?;
                            }
                            NodeKind::Symlink => {
                                node.set_target(b"../f000.txt");
                                builder.add(node, None)?;
                            }
                            _ => {
                                builder.add(node, None)?;
                            }
                        }
                    }
                    Ok(())
                },
            )
            .unwrap()
    }

    #[test]
    fn a_search_over_trees_sharing_blobs_finds_what_each_walk_finds_errors_included() {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), None).unwrap();
        let repository = Repository::open(backend, None, RepoOptions::default()).unwrap();
        let base = tree_of(&repository, 1_600_000_000, &[]);
        // A changed file, an added one, and links: the other blobs shared.
        let changed = tree_of(
            &repository,
            1_700_000_000,
            &[("d10/added.conf", NodeKind::File)],
        );
        let linked = tree_of(
            &repository,
            1_600_000_000,
            &[
                ("d19/hard.conf", NodeKind::Hardlink),
                ("d19/sym.txt", NodeKind::Symlink),
            ],
        );
        assert!(base.tree.len() > 8, "several blobs: {}", base.tree.len());
        let shared = changed
            .tree
            .iter()
            .filter(|id| base.tree.contains(id))
            .count();
        assert!(shared > base.tree.len() / 2 && shared < changed.tree.len());
        // Shared blobs in another place: the guard still refuses what
        // stands wrongly there (a first entry that is not the root, a
        // directory's names again, entries after their directory ended).
        let spliced = |tree: Vec<[u8; 32]>| Snapshot {
            tree,
            ..base.clone()
        };
        let n = base.tree.len();
        let hostile = [
            spliced(base.tree[1..].to_vec()),
            spliced([&base.tree[..], &base.tree[n - 2..]].concat()),
            spliced(
                [
                    &base.tree[..n / 2],
                    &base.tree[n / 2 + 1..n - 3],
                    &changed.tree[n / 2..n / 2 + 2],
                ]
                .concat(),
            ),
        ];
        let mut snapshots = vec![base.clone(), changed, linked];
        snapshots.extend(hostile);
        let patterns = [
            ("*.conf*", false),
            ("f01*", false),
            ("d1?/*.conf", true),
            ("*", false),
            ("nothing", false),
        ];
        for (pattern, whole_path) in patterns {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher();
            let walked: Vec<Result<Vec<TreeEntry>, String>> = snapshots
                .iter()
                .map(|snapshot| {
                    let mut found = Vec::new();
                    repository
                        .find_in_tree(snapshot, &glob, whole_path, |e| found.push(e))
                        .map(|()| found)
                        .map_err(|e| e.to_string())
                })
                .collect();
            let search = TreeSearch::new(&repository, &glob, whole_path);
            for snapshot in snapshots.iter().chain(&snapshots) {
                search.expect(snapshot);
            }
            // Two walkers at once, in opposite orders, share the search.
            let searched: Vec<Vec<Result<Vec<TreeEntry>, String>>> = std::thread::scope(|scope| {
                let forward = scope.spawn(|| {
                    snapshots
                        .iter()
                        .map(|s| search.find(s).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                });
                let backward = scope.spawn(|| {
                    let mut found: Vec<_> = snapshots
                        .iter()
                        .rev()
                        .map(|s| search.find(s).map_err(|e| e.to_string()))
                        .collect();
                    found.reverse();
                    found
                });
                vec![forward.join().unwrap(), backward.join().unwrap()]
            });
            for found in searched {
                assert_eq!(found, walked, "{pattern}");
            }
            let distinct: std::collections::HashSet<_> =
                snapshots.iter().flat_map(|s| s.tree.iter()).collect();
            // Each distinct blob decoded once, and nothing kept after the
            // walks announced.
            let decoded = search.decoded.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(decoded, distinct.len());
            assert!(search.blobs.lock().unwrap().is_empty());
            if pattern == "*" {
                assert!(
                    walked[..3]
                        .iter()
                        .all(|w| w.as_ref().is_ok_and(|e| e.len() > 3000))
                );
                let errors: Vec<_> = walked[3..].iter().map(|w| w.clone().unwrap_err()).collect();
                assert!(
                    errors[0].contains("is not the root directory"),
                    "{}",
                    errors[0]
                );
                assert!(
                    errors.iter().all(|e| e.contains("hostile or damaged")),
                    "{errors:?}"
                );
            }
        }
    }
}
