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
//! Its memory is 16 bytes per regular file of the tree (and per name of each
//! directory still open), not the paths themselves: names are remembered as
//! keyed 128-bit hashes, with a key drawn per guard so that no tree can be
//! crafted to collide.

use super::tree::{Node, NodeKind};
use std::collections::HashSet;

pub struct TreeGuard {
    /// The directories from the root down to the last entry's parent, each
    /// with the names seen in it so far.
    open: Vec<(Vec<u8>, HashSet<NameHash>)>,
    /// Regular files seen so far: the only things a hard link may name.
    files: HashSet<NameHash>,
    started: bool,
    key: [u8; 32],
}

/// A name or path as its keyed hash: a restore of a million files keeps
/// 16 bytes each instead of the path (about 100 bytes with its allocation).
type NameHash = [u8; 16];

impl Default for TreeGuard {
    fn default() -> Self {
        TreeGuard {
            open: Vec::new(),
            files: HashSet::new(),
            started: false,
            key: rand::random(),
        }
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

impl TreeGuard {
    /// Admits the next node in tree order, or says why it would not stay
    /// inside the restore target (a message naming the entry).
    pub fn admit(&mut self, node: &Node) -> Result<(), String> {
        let key = self.key;
        let hash = |bytes: &[u8]| -> NameHash {
            use sha2::{Digest, Sha256};
            let mut hasher = Sha256::new();
            hasher.update(key);
            hasher.update(bytes);
            hasher.finalize()[..16].try_into().expect("16 of 32 bytes")
        };
        let path = node.path_bytes();
        let shown = node.display_path();
        if !self.started {
            self.started = true;
            if !path.is_empty() || node.kind != NodeKind::Dir {
                return Err(format!(
                    "the first entry `{shown}` is not the root directory"
                ));
            }
            self.open.push((Vec::new(), HashSet::new()));
            return check_xattrs(node, &shown);
        }
        if node.path_hex.is_some() && hex::decode(node.path_hex.as_deref().unwrap_or("")).is_err() {
            return Err(format!("entry `{shown}` has an undecodable name"));
        }
        if let Some(why) = unsafe_path(&path) {
            return Err(format!("entry `{shown}`: its path {why}"));
        }
        let (parent, name) = split_parent(&path);
        while self.open.last().is_some_and(|(dir, _)| dir != parent) {
            self.open.pop();
        }
        let Some((_, names)) = self.open.last_mut() else {
            return Err(format!(
                "entry `{shown}`: its parent is not a directory earlier in the tree \
                 (restoring it would follow a link or write outside the target)"
            ));
        };
        if !names.insert(hash(name)) {
            return Err(format!("entry `{shown}` appears twice"));
        }
        match node.kind {
            NodeKind::Dir => self.open.push((path, HashSet::new())),
            NodeKind::File => {
                self.files.insert(hash(&path));
            }
            NodeKind::Hardlink => {
                let target = node.target_bytes().unwrap_or_default();
                if !self.files.contains(&hash(&target)) {
                    return Err(format!(
                        "hard link `{shown}` does not name a file earlier in the tree"
                    ));
                }
            }
            NodeKind::Symlink => {
                if node
                    .target_bytes()
                    .is_none_or(|t| t.is_empty() || t.contains(&0))
                {
                    return Err(format!("symlink `{shown}` has no usable target"));
                }
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice | NodeKind::Socket => {}
        }
        check_xattrs(node, &shown)
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
