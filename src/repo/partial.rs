//! Restoring part of a tree snapshot (`restore --path`): which paths the
//! user named (checked before anything is read), what the snapshot holds
//! under them against what the live tree holds there (a directory, or an
//! archive stream of it), as create, overwrite, leave and kept, and which
//! entries a partial write or a partial safety snapshot takes. The
//! snapshot's entries come through the same guard as a whole restore; a
//! live directory is read without following any link. Knows nothing of
//! Docker or plans.

use super::archiver::{ChunkReader, tar_node};
use super::browse::{Compared, TreeMap, normalize_path};
use super::crypto::BlobId;
use super::exclude::{self, Excludes, MarkerGate, MarkerTest};
use super::tree::NodeKind;
use super::{ExcludeRules, RepoError, Repository, Snapshot};
use std::collections::BTreeSet;
use std::path::Path;

/// The paths of a partial restore, each relative to the tree's root,
/// normalized (`config/` → `config`), never empty, never escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSelection {
    paths: Vec<String>,
}

impl PathSelection {
    /// The paths as typed; an absolute path, one with `..`, or one naming
    /// the root is refused with what to type instead.
    pub fn parse(typed: &[String]) -> Result<PathSelection, String> {
        let mut paths = Vec::new();
        for text in typed {
            if text.starts_with('/') {
                return Err(format!(
                    "--path {text:?}: give a path inside the snapshot, relative to its root \
                     (`config/app.conf`, as `lifeboat ls` shows it), not an absolute one"
                ));
            }
            if text.split('/').any(|part| part == "..") {
                return Err(format!(
                    "--path {text:?}: `..` is not allowed; name the path inside the snapshot \
                     as `lifeboat ls` shows it"
                ));
            }
            let path = normalize_path(text);
            if path.is_empty() {
                return Err(format!(
                    "--path {text:?} names the whole tree: restore without --path (with \
                     --replace over live data) instead"
                ));
            }
            paths.push(path);
        }
        paths.sort();
        paths.dedup();
        Ok(PathSelection { paths })
    }

    /// The whole tree (what `diff ADDR` compares): every path is covered.
    pub fn whole() -> PathSelection {
        PathSelection {
            paths: vec![String::new()],
        }
    }

    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Whether `path` is one of the paths or lies under one.
    pub fn covers(&self, path: &str) -> bool {
        self.paths.iter().any(|p| is_under(path, p))
    }

    /// Whether `path` is a directory above one of the paths (the root included).
    pub fn is_above(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p != path && is_under(p, path))
    }
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// What a partial restore does to each entry of the snapshot under the
/// paths, and what it leaves of the live tree there. Paths are relative
/// to the tree's root, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathChanges {
    /// In the snapshot, not in the live tree (directories above the paths
    /// that the live tree lacks included).
    pub create: Vec<String>,
    /// In both, different (content, kind, link target, mode, owner, time
    /// or attributes): the live entry is replaced.
    pub overwrite: Vec<String>,
    /// In both, identical: not written.
    pub leave: Vec<String>,
    /// Under the paths in the live tree only: left alone (a partial
    /// restore removes nothing).
    pub kept: Vec<String>,
}

/// Compares the snapshot's entries (`snapshot`, as [`Repository::subtree_map`]
/// gives them) with the live ones (`live`, as [`live_tree_map`] gives them).
pub fn classify(selection: &PathSelection, snapshot: &TreeMap, live: &TreeMap) -> PathChanges {
    let mut changes = PathChanges::default();
    for (path, entry) in snapshot {
        let list = match live.get(path) {
            None => &mut changes.create,
            // Above the paths only what is missing is written.
            Some(_) if !selection.covers(path) => continue,
            Some(now) if now == entry => &mut changes.leave,
            Some(_) => &mut changes.overwrite,
        };
        list.push(path.clone());
    }
    changes.kept = live
        .keys()
        .filter(|path| selection.covers(path) && !snapshot.contains_key(*path))
        .cloned()
        .collect();
    changes
}

/// What a partial write does with one entry of the snapshot's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Written with its metadata (a directory: made or reused, its mode,
    /// owner and times set once its entries are written).
    Write,
    /// A directory that exists and is only passed through to reach what
    /// is written below it: opened, never changed.
    Enter,
    /// Not written, nor its content read.
    Skip,
}

/// Which entries of a tree a partial restore writes: those named (`write`),
/// the directories that lead to them (entered, or written when `write`
/// names them too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    write: BTreeSet<String>,
    /// Every directory above an entry written (the root included).
    above: BTreeSet<String>,
}

impl WriteSet {
    pub fn new<'p>(paths: impl IntoIterator<Item = &'p String>) -> WriteSet {
        let mut set = WriteSet::default();
        for path in paths {
            let mut parent = path.as_str();
            while !parent.is_empty() {
                parent = parent.rsplit_once('/').map_or("", |(dir, _)| dir);
                set.above.insert(parent.to_string());
            }
            set.write.insert(path.clone());
        }
        set
    }

    /// Every entry, to write all of a tree (into a new directory).
    pub fn everything(tree: &TreeMap) -> WriteSet {
        WriteSet::new(tree.keys())
    }

    pub fn is_empty(&self) -> bool {
        self.write.is_empty()
    }

    pub fn placement(&self, path: &str) -> Placement {
        if self.write.contains(path) {
            Placement::Write
        } else if self.above.contains(path) {
            Placement::Enter
        } else {
            Placement::Skip
        }
    }

    /// Whether a walk of the live tree must visit `path`.
    pub fn admits(&self, path: &str) -> bool {
        self.placement(path) != Placement::Skip
    }
}

impl Repository {
    /// The paths as the snapshot holds them (each glob replaced by the
    /// paths it matches, as `find` matches a pattern with a `/`: against
    /// the whole path, `*` within one name), and the snapshot's entries
    /// under them and the directories above them, every one admitted by
    /// the guard. A path (or glob) the snapshot lacks is an error naming
    /// the snapshot and how to list it.
    pub fn subtree_map(
        &self,
        snapshot: &Snapshot,
        selection: &PathSelection,
    ) -> Result<(PathSelection, TreeMap), RepoError> {
        let tree = self.tree_map(snapshot)?;
        let mut paths = Vec::new();
        for path in selection.paths() {
            let found = paths.len();
            if path.contains(['*', '?', '[', '{']) {
                let glob = globset::GlobBuilder::new(path)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| RepoError::Refused(format!("--path {path:?}: {e}")))?
                    .compile_matcher();
                let matching = tree.keys().filter(|p| !p.is_empty() && glob.is_match(p));
                paths.extend(matching.cloned());
            } else if tree.contains_key(path) {
                paths.push(path.clone());
            }
            if paths.len() == found {
                return Err(super::browse::not_in(snapshot, path));
            }
        }
        paths.sort();
        paths.dedup();
        let selection = PathSelection { paths };
        let subtree = tree
            .into_iter()
            .filter(|(path, _)| selection.covers(path) || selection.is_above(path))
            .collect();
        Ok((selection, subtree))
    }
}

/// The live entries of the directory `root` under the paths and above
/// them, as a snapshot of it would record them (content identified by
/// this repository's keyed ids, so equal ids mean equal content). Links
/// are not followed; a path missing there is simply absent.
pub fn live_tree_map(
    repository: &Repository,
    root: &Path,
    selection: &PathSelection,
) -> Result<TreeMap, RepoError> {
    live_tree_map_excluding(repository, root, selection, &ExcludeRules::default())
}

/// [`live_tree_map`] leaving out what `rules` leave out, decided as a
/// backup of the directory decides it (so a snapshot taken with `rules`
/// and this map hold the same paths when nothing changed).
pub fn live_tree_map_excluding(
    repository: &Repository,
    root: &Path,
    selection: &PathSelection,
    rules: &ExcludeRules,
) -> Result<TreeMap, RepoError> {
    let excludes = Excludes::new(rules).map_err(RepoError::Source)?;
    let mut map = TreeMap::new();
    let mut content = ContentIds::new(repository);
    let mut add = |relative: &str, path: &Path| -> Result<bool, RepoError> {
        let meta = match path.symlink_metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(live_error(path, e)),
        };
        let mut node = super::direct::node_of(path, relative.as_bytes(), &meta)
            .map_err(|e| live_error(path, e))?;
        if node.kind == NodeKind::File {
            let file = std::fs::File::open(path).map_err(|e| live_error(path, e))?;
            node.content = content.of(file)?;
        }
        node.xattrs = super::xattr::read(path)
            .map_err(|e| live_error(path, e))?
            .xattrs;
        let is_dir = node.kind == NodeKind::Dir;
        map.insert(relative.to_string(), Compared::of(&node));
        Ok(is_dir)
    };
    // The directories above the paths (parents first), then each path's
    // own subtree. A name is looked up only below a real directory: a
    // symlink the live tree holds (its users may plant one) is recorded,
    // never followed to the host's files.
    let mut above: BTreeSet<String> = BTreeSet::new();
    for path in selection.paths() {
        let mut parent = path.as_str();
        while !parent.is_empty() {
            parent = parent.rsplit_once('/').map_or("", |(dir, _)| dir);
            above.insert(parent.to_string());
        }
    }
    // The root is the volume's or bind's own path (the engine's, the
    // spec's), followed as a whole restore's writer follows it.
    let mut real_dirs: BTreeSet<&str> = BTreeSet::from([""]);
    let below_real_dir = |path: &str, real_dirs: &BTreeSet<&str>| {
        path.is_empty() || real_dirs.contains(path.rsplit_once('/').map_or("", |(dir, _)| dir))
    };
    for dir in &above {
        if below_real_dir(dir, &real_dirs) && add(dir, &root.join(dir))? {
            real_dirs.insert(dir);
        }
    }
    for path in selection.paths() {
        if !below_real_dir(path, &real_dirs) {
            continue;
        }
        let start = if path.is_empty() {
            root.to_path_buf()
        } else {
            root.join(path)
        };
        if !add(path, &start)? {
            continue;
        }
        let walk = walkdir::WalkDir::new(&start)
            .min_depth(1)
            .follow_links(false)
            .into_iter()
            .filter_entry(super::direct::kept_by(&excludes, root));
        for entry in walk {
            let entry = entry.map_err(|e| RepoError::Source(e.to_string()))?;
            let below = entry
                .path()
                .strip_prefix(&start)
                .map_err(|e| RepoError::Source(e.to_string()))?
                .to_string_lossy();
            let relative = if path.is_empty() {
                below.into_owned()
            } else {
                format!("{path}/{below}")
            };
            add(&relative, entry.path())?;
        }
    }
    Ok(map)
}

/// [`live_tree_map`] of a live tree read as a Docker archive stream
/// (entries `<root>/…`, the root first), for a tree this host cannot read
/// directly. The stream carries only what the archive does (among the
/// attributes, `security.capability`).
pub fn live_tree_map_tar(
    repository: &Repository,
    tar: impl std::io::Read,
    selection: &PathSelection,
) -> Result<TreeMap, RepoError> {
    live_tree_map_tar_excluding(repository, tar, selection, &ExcludeRules::default())
}

/// [`live_tree_map_tar`] leaving out what `rules` leave out, decided as a
/// backup of the same stream decides it (patterns, markers met in name
/// order, hard links to what is left out).
pub fn live_tree_map_tar_excluding(
    repository: &Repository,
    tar: impl std::io::Read,
    selection: &PathSelection,
    rules: &ExcludeRules,
) -> Result<TreeMap, RepoError> {
    let excludes = Excludes::new(rules).map_err(RepoError::Source)?;
    let mut gate = MarkerGate::new(&excludes);
    let mut map = TreeMap::new();
    let mut content = ContentIds::new(repository);
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| RepoError::Source(format!("not a tar stream: {e}")))?;
    let mut root: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| RepoError::Source(format!("tar stream: {e}")))?;
        let raw_path = entry.path_bytes().into_owned();
        let root_name =
            root.get_or_insert_with(|| raw_path.strip_suffix(b"/").unwrap_or(&raw_path).to_vec());
        let Some(mut node) = tar_node(&mut entry, &raw_path, root_name)? else {
            continue;
        };
        let relative = node.path_bytes();
        let path = String::from_utf8_lossy(&relative).into_owned();
        if gate.skips(&relative) || (!selection.covers(&path) && !selection.is_above(&path)) {
            continue;
        }
        let is_dir = node.kind == NodeKind::Dir;
        if excludes.excludes_path(&relative, is_dir) {
            if is_dir {
                gate.skip_below(&relative);
            }
            continue;
        }
        if node.kind == NodeKind::Hardlink {
            let target = node.target_bytes().unwrap_or_default();
            if excludes.excludes_file_or_parent(&target) || gate.marked_out(&target) {
                continue;
            }
        }
        let is_file = node.kind == NodeKind::File;
        let is_marker = match excludes.marker_test(exclude::split_name(&relative).1) {
            Some(MarkerTest::Present) => true,
            // A file named CACHEDIR.TAG is a marker only with the signature.
            Some(MarkerTest::CacheDirSignature) if is_file => {
                let mut head = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut entry, exclude::CACHEDIR_SIGNATURE.len() as u64),
                    &mut head,
                )
                .map_err(|e| RepoError::Source(format!("tar stream: {e}")))?;
                let tagged = head == exclude::CACHEDIR_SIGNATURE;
                if !tagged {
                    node.content =
                        content.of(std::io::Read::chain(std::io::Cursor::new(head), &mut entry))?;
                }
                tagged
            }
            _ => {
                if is_file {
                    node.content = content.of(&mut entry)?;
                }
                false
            }
        };
        let decided = gate
            .arrive(&relative, is_dir, is_marker, (path, Compared::of(&node)))
            .map_err(RepoError::Source)?;
        map.extend(decided);
    }
    map.extend(gate.finish());
    Ok(map)
}

/// A file's content as this repository's chunk ids, computed without
/// writing anything to the repository.
struct ContentIds<'r> {
    repository: &'r Repository,
    chunks: ChunkReader,
}

impl<'r> ContentIds<'r> {
    fn new(repository: &'r Repository) -> Self {
        ContentIds {
            repository,
            chunks: ChunkReader::new(repository.chunker()),
        }
    }

    fn of(&mut self, content: impl std::io::Read) -> Result<Vec<BlobId>, RepoError> {
        let keys = self.repository.keys();
        let mut ids = Vec::new();
        self.chunks.chunks(content, |chunk| {
            ids.push(keys.blob_id(chunk));
            Ok(())
        })?;
        Ok(ids)
    }
}

fn live_error(path: &Path, error: impl std::fmt::Display) -> RepoError {
    RepoError::Source(format!("{}: {error}", path.display()))
}

/// What a partial restore writes: `written` (the entries created or
/// overwritten) and the directories under the paths above them, so that
/// their times end as the snapshot's once their entries are written; the
/// directories above the paths are only entered.
pub fn entries_to_write<'p>(
    selection: &PathSelection,
    written: impl IntoIterator<Item = &'p String>,
) -> WriteSet {
    let named = WriteSet::new(written);
    let under: Vec<&String> = named
        .above
        .iter()
        .filter(|dir| selection.covers(dir))
        .collect();
    WriteSet::new(named.write.iter().chain(under))
}
