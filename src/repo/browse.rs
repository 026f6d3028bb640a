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
        self.tree_snapshot(snapshot)?;
        let path = normalize_path(path);
        let mut file = None;
        self.for_each_admitted_node(snapshot, |node| {
            if file.is_none() && path_of(&node) == path {
                file = Some(node);
            }
            Ok(())
        })?;
        let node = file.ok_or_else(|| not_in(snapshot, &path))?;
        if node.kind != NodeKind::File {
            return Err(RepoError::Refused(format!(
                "{} in snapshot {} is a {}, not a file",
                if path.is_empty() { "/" } else { &path },
                snapshot.id.short(),
                format!("{:?}", node.kind).to_lowercase()
            )));
        }
        let mut written = 0u64;
        for id in &node.content {
            let data = self.read_blob(id).map_err(|detail| RepoError::BadBlob {
                path: path_of(&node),
                blob: hex::encode(&id[..8]),
                detail,
            })?;
            written += data.len() as u64;
            if written > node.size {
                break;
            }
            out.write_all(&data)
                .map_err(RepoError::io("writing the file's content"))?;
        }
        if written != node.size {
            return Err(RepoError::Corrupt {
                what: format!("file {}", path_of(&node)),
                detail: format!("{written} bytes of content, the tree says {}", node.size),
            });
        }
        out.flush()
            .map_err(RepoError::io("writing the file's content"))?;
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
