//! Which trees may be restored: a tree read from a repository is untrusted,
//! and one crafted to write outside the restore target (a symlink followed
//! by entries "under" it, `..`, absolute or duplicate names, a hard link to
//! something that is not a file of the tree) is refused before any entry
//! reaches a writer. Restore and `check` run every node through the same
//! [`TreeGuard`], so what `check` calls sound is what restore accepts.
//!
//! What the guard admits is a tree in which every entry's parent is a
//! directory entry seen earlier and still open in pre-order; both writers
//! (direct, tar) then only need to resolve one name relative to the
//! directory they just created.
//!
//! Its memory: a restore (nodes owned, read one at a time) keeps 16 bytes
//! per regular file of the tree, a keyed 128-bit hash of its path with a
//! key drawn per guard so that no tree can be crafted to collide, in a
//! vector ([`FileHashes`]: no hash table's slack), and the names of the
//! directories still open; `find` (nodes borrowed from tree
//! blobs it holds anyway) keeps references only.

use super::tree::{Node, NodeKind};
use std::borrow::Cow;
use std::collections::HashSet;

/// Names or paths the guard has seen (borrowed from nodes that outlive
/// the walk, owned otherwise), hashed only when a question needs it: a
/// tree as lifeboat writes it sorts each directory's names, so a name
/// after a smaller one is new without a lookup, and most trees hold no
/// hard link to look a file up for.
#[derive(Default)]
struct Names<'a> {
    listed: Vec<Cow<'a, [u8]>>,
    /// Everything seen, once a question needed it (`listed` is empty then).
    hashed: Option<HashSet<Cow<'a, [u8]>>>,
}

impl<'a> Names<'a> {
    /// Adds `name`; false when it was seen already.
    fn insert_new(&mut self, name: Cow<'a, [u8]>) -> bool {
        if self.hashed.is_none() && self.listed.last().is_none_or(|last| **last < *name) {
            self.listed.push(name);
            return true;
        }
        self.hashed().insert(name)
    }

    /// Adds `path`, which nothing asks to be new.
    fn insert(&mut self, path: Cow<'a, [u8]>) {
        match &mut self.hashed {
            Some(hashed) => {
                hashed.insert(path);
            }
            None => self.listed.push(path),
        }
    }

    fn contains(&mut self, path: &[u8]) -> bool {
        self.hashed().contains(path)
    }

    fn hashed(&mut self) -> &mut HashSet<Cow<'a, [u8]>> {
        let listed = &mut self.listed;
        self.hashed
            .get_or_insert_with(|| listed.drain(..).collect())
    }
}

pub struct TreeGuard<'a> {
    /// The directories from the root down to the last entry's parent, each
    /// with the names seen in it so far.
    open: Vec<(Cow<'a, [u8]>, Names<'a>)>,
    /// Regular files seen so far, the only things a hard link may name:
    /// borrowed paths as they are, owned ones as their keyed hashes.
    files: Names<'a>,
    file_hashes: FileHashes,
    key: [u8; 32],
    started: bool,
}

/// A path as its keyed hash: a restore of a million files keeps 16 bytes
/// each instead of the path (about 100 bytes with its allocation).
type NameHash = [u8; 16];

/// The hashes of the regular files seen, in a vector: 16 bytes a file. A
/// hash set of them took 30 to 35 bytes a file, and twice that while it
/// grew: at a million files the largest structure of a restore, beside
/// the index. Most trees hold no hard link, so nothing is ever looked up
/// and the vector is only appended to. The first lookup sorts it; the
/// files seen after that wait in a small set (at most an eighth of the
/// sorted ones) merged into the sorted run when it outgrows that, in one
/// linear pass.
#[derive(Default)]
struct FileHashes {
    /// Sorted once `looked_up`; in the order seen before.
    seen: Vec<NameHash>,
    recent: HashSet<NameHash>,
    looked_up: bool,
}

/// The files [`FileHashes::recent`] holds before an eighth of the sorted
/// run is more.
const RECENT_AT_LEAST: usize = 4096;

impl FileHashes {
    fn push(&mut self, hash: NameHash) {
        if !self.looked_up {
            self.seen.push(hash);
            return;
        }
        self.recent.insert(hash);
        if self.recent.len() > (self.seen.len() / 8).max(RECENT_AT_LEAST) {
            self.merge_recent();
        }
    }

    fn contains(&mut self, hash: NameHash) -> bool {
        if !self.looked_up {
            self.seen.sort_unstable();
            self.looked_up = true;
        }
        self.recent.contains(&hash) || self.seen.binary_search(&hash).is_ok()
    }

    fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.recent.is_empty()
    }

    /// Merges the recent hashes into the sorted run from its end, in place.
    fn merge_recent(&mut self) {
        let mut recent: Vec<NameHash> = self.recent.drain().collect();
        recent.sort_unstable();
        let (mut old, mut new) = (self.seen.len(), recent.len());
        self.seen.resize(old + new, [0; 16]);
        for at in (0..self.seen.len()).rev() {
            if new == 0 {
                break;
            }
            if old > 0 && self.seen[old - 1] > recent[new - 1] {
                self.seen[at] = self.seen[old - 1];
                old -= 1;
            } else {
                self.seen[at] = recent[new - 1];
                new -= 1;
            }
        }
    }
}

impl Default for TreeGuard<'_> {
    fn default() -> Self {
        TreeGuard {
            open: Vec::new(),
            files: Names::default(),
            file_hashes: FileHashes::default(),
            key: rand::random(),
            started: false,
        }
    }
}

/// A node with the checks that need nothing but the node itself (its
/// name, its link target, its attributes) already made: a tree blob that
/// many snapshots share is checked once, and each tree then only places
/// its nodes ([`TreeGuard::admit_checked`]), which borrows them.
#[derive(Debug, Clone)]
pub struct CheckedNode {
    path: Vec<u8>,
    kind: NodeKind,
    /// A hard link's target (empty for other kinds).
    link: Vec<u8>,
    /// Why its name is refused (undecodable or unsafe), checked before its place.
    bad_name: Option<String>,
    /// Why its target or attributes are refused, checked after its place.
    bad_rest: Option<String>,
}

impl CheckedNode {
    pub fn of(node: &Node) -> CheckedNode {
        let path = node.path_bytes();
        let shown = node.display_path();
        let bad_name = if node.path_hex.is_some()
            && hex::decode(node.path_hex.as_deref().unwrap_or("")).is_err()
        {
            Some(format!("entry `{shown}` has an undecodable name"))
        } else {
            unsafe_path(&path).map(|why| format!("entry `{shown}`: its path {why}"))
        };
        let bad_target = node.kind == NodeKind::Symlink
            && node
                .target_bytes()
                .is_none_or(|t| t.is_empty() || t.contains(&0));
        let bad_rest = if bad_target {
            Some(format!("symlink `{shown}` has no usable target"))
        } else {
            check_xattrs(node, &shown).err()
        };
        let link = match node.kind {
            NodeKind::Hardlink => node.target_bytes().unwrap_or_default(),
            _ => Vec::new(),
        };
        CheckedNode {
            path,
            kind: node.kind,
            link,
            bad_name,
            bad_rest,
        }
    }

    /// Its path relative to the root (empty for the root).
    pub fn path(&self) -> &[u8] {
        &self.path
    }
}

/// Why a path is not a plain relative name inside the tree, if it is not.
pub fn unsafe_path(raw: &[u8]) -> Option<&'static str> {
    if raw.is_empty() {
        return Some("is empty");
    }
    if raw.starts_with(b"/") {
        return Some("is absolute");
    }
    if raw.contains(&0) {
        return Some("holds a NUL byte");
    }
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" => return Some("has an empty component"),
            b"." => return Some("has a `.` component"),
            b".." => return Some("has a `..` component"),
            _ => {}
        }
    }
    None
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (b"", path),
    }
}

impl TreeGuard<'static> {
    /// Admits the next node in tree order, or says why it would not stay
    /// inside the restore target (a message naming the entry).
    pub fn admit(&mut self, node: &Node) -> Result<(), String> {
        let mut checked = CheckedNode::of(node);
        let path = std::mem::take(&mut checked.path);
        self.place(&checked, Cow::Owned(path))
    }
}

impl<'a> TreeGuard<'a> {
    /// [`TreeGuard::admit`] for a node checked by itself before: the same
    /// checks, in the same order, with the same messages.
    pub fn admit_checked(&mut self, node: &'a CheckedNode) -> Result<(), String> {
        self.place(node, Cow::Borrowed(&node.path))
    }

    /// The checks of a node's place in the tree, between those of its
    /// name and those of its target and attributes. `path` is the node's
    /// (taken out of `node` when owned).
    fn place(&mut self, node: &CheckedNode, path: Cow<'a, [u8]>) -> Result<(), String> {
        let shown = || String::from_utf8_lossy(&path).into_owned();
        if !self.started {
            self.started = true;
            if !path.is_empty() || node.kind != NodeKind::Dir {
                return Err(format!(
                    "the first entry `{}` is not the root directory",
                    if path.is_empty() { "/".into() } else { shown() }
                ));
            }
            self.open.push((path, Names::default()));
            return node.bad_rest.clone().map_or(Ok(()), Err);
        }
        if let Some(why) = &node.bad_name {
            return Err(why.clone());
        }
        let (parent, name) = split_parent(&path);
        while self.open.last().is_some_and(|(dir, _)| **dir != *parent) {
            self.open.pop();
        }
        let Some((_, names)) = self.open.last_mut() else {
            return Err(format!(
                "entry `{}`: its parent is not a directory earlier in the tree \
                 (restoring it would follow a link or write outside the target)",
                shown()
            ));
        };
        let name = match &path {
            Cow::Borrowed(whole) => Cow::Borrowed(&whole[whole.len() - name.len()..]),
            Cow::Owned(_) => Cow::Owned(name.to_vec()),
        };
        if !names.insert_new(name) {
            return Err(format!("entry `{}` appears twice", shown()));
        }
        match node.kind {
            NodeKind::Dir => self.open.push((path, Names::default())),
            NodeKind::File => match path {
                Cow::Borrowed(_) => self.files.insert(path),
                Cow::Owned(path) => {
                    let hash = self.hash(&path);
                    self.file_hashes.push(hash);
                }
            },
            NodeKind::Hardlink if !self.has_file(node.link.as_slice()) => {
                return Err(format!(
                    "hard link `{}` does not name a file earlier in the tree",
                    shown()
                ));
            }
            _ => {}
        }
        node.bad_rest.clone().map_or(Ok(()), Err)
    }

    fn has_file(&mut self, path: &[u8]) -> bool {
        (!self.file_hashes.is_empty() && self.file_hashes.contains(self.hash(path)))
            || self.files.contains(path)
    }

    fn hash(&self, bytes: &[u8]) -> NameHash {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(bytes);
        hasher.finalize()[..16].try_into().expect("16 of 32 bytes")
    }
}

/// Attributes must be usable as they are written: named, hex values, sorted
/// by name without repeats (what both reading paths record).
fn check_xattrs(node: &Node, shown: &str) -> Result<(), String> {
    for (i, xattr) in node.xattrs.iter().enumerate() {
        if xattr.name.is_empty() || xattr.name.contains('\0') {
            return Err(format!(
                "entry `{shown}` has an extended attribute without a usable name"
            ));
        }
        if xattr.value_bytes().is_none() {
            return Err(format!(
                "entry `{shown}`: extended attribute {} has a value that is not hex",
                xattr.name
            ));
        }
        if i > 0 && node.xattrs[i - 1].name >= xattr.name {
            return Err(format!(
                "entry `{shown}`: its extended attributes are not sorted by name, or repeat one"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(entries: &[(&str, NodeKind)]) -> Result<(), String> {
        let mut guard = TreeGuard::default();
        guard.admit(&Node::new(NodeKind::Dir, 0o755, 0, 0, 0))?;
        for (path, kind) in entries {
            let mut node = Node::new(*kind, 0o644, 0, 0, 0);
            node.set_path(path.as_bytes());
            if *kind == NodeKind::Hardlink {
                node.set_target(b"d/f");
            }
            guard.admit(&node)?;
        }
        Ok(())
    }

    #[test]
    fn names_out_of_order_are_still_checked_for_repeats_and_links_for_their_file() {
        use NodeKind::{Dir, File, Hardlink};
        assert!(admitted(&[("b", File), ("a", File), ("c", File)]).is_ok());
        let again = admitted(&[("b", File), ("a", File), ("b", Dir)]).unwrap_err();
        assert!(again.contains("`b` appears twice"), "{again}");
        let sorted_again = admitted(&[("a", File), ("b", File), ("b", File)]).unwrap_err();
        assert!(sorted_again.contains("`b` appears twice"), "{sorted_again}");
        assert!(admitted(&[("d", Dir), ("d/f", File), ("e", File), ("h", Hardlink)]).is_ok());
        // After the first link the files are looked up; later ones count too.
        let linked = [("d", Dir), ("d/e", File), ("h1", Hardlink), ("x", Hardlink)];
        let unlinked = admitted(&linked).unwrap_err();
        assert!(unlinked.contains("hard link `h1`"), "{unlinked}");
        let dir_link = admitted(&[("d", Dir), ("d/f", Dir), ("h", Hardlink)]).unwrap_err();
        assert!(dir_link.contains("does not name a file"), "{dir_link}");
    }

    /// A restore's guard keeps 16 bytes a file in a vector, and no hash
    /// table of them: without hard links nothing else; with links among
    /// the files, at most an eighth of them wait in a set, and every file
    /// seen before a link is still found, however the sorted run was merged.
    #[test]
    fn files_are_kept_as_sixteen_byte_hashes_in_a_vector() {
        let files = 50_000;
        let file = |n: usize| {
            let mut node = Node::new(NodeKind::File, 0o644, 0, 0, 0);
            node.set_path(format!("d/f{n:06}").as_bytes());
            node
        };
        let link_to = |n: usize, to: usize| {
            let mut node = Node::new(NodeKind::Hardlink, 0o644, 0, 0, 0);
            node.set_path(format!("d/l{n:06}").as_bytes());
            node.set_target(format!("d/f{to:06}").as_bytes());
            node
        };
        let mut dir = Node::new(NodeKind::Dir, 0o755, 0, 0, 0);
        let mut guard = TreeGuard::default();
        guard.admit(&dir).unwrap();
        dir.set_path(b"d");
        guard.admit(&dir).unwrap();
        for n in 0..files {
            guard.admit(&file(n)).unwrap();
        }
        assert_eq!(guard.file_hashes.seen.len(), files);
        assert!(guard.file_hashes.recent.is_empty() && !guard.file_hashes.looked_up);

        // Names sort after every file's, so the guard checks links by lookup.
        let mut guard = TreeGuard::default();
        dir.set_path(b"");
        guard.admit(&dir).unwrap();
        dir.set_path(b"d");
        guard.admit(&dir).unwrap();
        let mut most_recent = 0;
        for n in 0..files {
            guard.admit(&file(n)).unwrap();
            if n % 1000 == 999 {
                let mut link = link_to(n, n / 2);
                link.set_path(format!("d/g{n:06}").as_bytes());
                guard.admit(&link).unwrap();
            }
            let held = &guard.file_hashes;
            most_recent = most_recent.max(held.recent.len());
            assert!(held.recent.len() <= (held.seen.len() / 8).max(RECENT_AT_LEAST) + 1);
        }
        assert!(most_recent > 0);
        let held = &guard.file_hashes;
        assert_eq!(held.seen.len() + held.recent.len(), files);
        assert!(held.seen.windows(2).all(|w| w[0] < w[1]));
        for n in (0..files).step_by(997) {
            guard.admit(&link_to(n, n)).unwrap();
        }
        let missing = guard.admit(&link_to(files + 1, files)).unwrap_err();
        assert!(missing.contains("does not name a file"), "{missing}");
    }
}
