//! Reading parts of a tree snapshot without restoring it: listing a
//! directory, finding paths by glob, one file's bytes, and what changed
//! between two trees. Every node comes through the same guard as a
//! restore (a hostile tree is refused, not listed), and every content
//! blob is authenticated and checked against its id as it is read.

use super::tree::{Node, NodeKind};
use super::{ContentKind, RepoError, Repository, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

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
}
