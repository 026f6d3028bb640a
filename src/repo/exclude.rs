//! Excludes: which entries of a file tree a backup leaves out, decided the
//! same way whichever path reads the tree (a directory read directly, a
//! Docker archive stream). Owns the rules as recorded in a snapshot, their
//! glob syntax and the marker files; knows nothing of Docker or the spec.
//!
//! Syntax (restic's and gitignore's habits, matched by `globset`):
//!
//! * a pattern is matched against the entry's path below the tree's root,
//!   `/` separated, without a leading `/`;
//! * a pattern without a `/` (`*.tmp`, `node_modules`) matches a name at
//!   any depth; one with a `/` (`cache/**`, `/build`) is anchored at the
//!   root (a leading `/` only anchors);
//! * `*` and `?` stay within one name, `**` spans directories, `[abc]`,
//!   `{a,b}` and `\` escapes work as in globset;
//! * a trailing `/` (`tmp/`) matches directories only;
//! * an excluded directory is not descended into: nothing below it is in
//!   the snapshot.
//!
//! `exclude_if_present` names marker files: a directory holding one is left
//! out whole (itself, the marker and everything below), as restic's
//! `--exclude-if-present` does. `CACHEDIR.TAG` counts only when it starts
//! with the signature of the Cache Directory Tagging Specification, as
//! restic's `--exclude-caches` and borg's `--exclude-caches` require. A
//! marker in the root leaves out everything below the root.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The marker name whose content must carry [`CACHEDIR_SIGNATURE`].
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// The first bytes of a real `CACHEDIR.TAG` (https://bford.info/cachedir/).
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What a volume's or bind's backups leave out, as written in the spec and
/// recorded in each snapshot (so a plan can tell when they changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExcludeRules {
    /// Glob patterns (`exclude`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Marker file names (`exclude_if_present`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_if_present: Vec<String>,
}

impl ExcludeRules {
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.exclude_if_present.is_empty()
    }

    /// Whether both leave out the same entries: the order rules are
    /// written in, and repeats, do not matter.
    pub fn same_as(&self, other: &ExcludeRules) -> bool {
        fn set(list: &[String]) -> std::collections::BTreeSet<&str> {
            list.iter().map(String::as_str).collect()
        }
        set(&self.exclude) == set(&other.exclude)
            && set(&self.exclude_if_present) == set(&other.exclude_if_present)
    }
}

/// Why one pattern or marker name cannot be used.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    compile(pattern).map(|_| ())
}

/// Whether `pattern` (a valid one) leaves out every entry at the root,
/// files and directories alike, whatever their names: a tree backed up
/// with it holds nothing. Decided on names of every shape (hidden, with
/// digits, spaces, dots, none of them), since a glob is not compared
/// with another glob.
pub fn leaves_out_everything(pattern: &str) -> bool {
    let rules = ExcludeRules {
        exclude: vec![pattern.to_string()],
        exclude_if_present: Vec::new(),
    };
    let Ok(excludes) = Excludes::new(&rules) else {
        return false;
    };
    const NAMES: [&str; 9] = [
        "a",
        "Z",
        "0",
        ".hidden",
        "data",
        "x.tmp",
        "with space",
        "~",
        "\u{e9}t\u{e9}",
    ];
    NAMES.iter().all(|name| {
        excludes.excludes_path(name.as_bytes(), false)
            && excludes.excludes_path(name.as_bytes(), true)
    })
}

/// Why a marker name cannot be used: it names a file in the directory.
pub fn check_marker(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!(
            "{name:?} is not a file name: a marker is a name looked for in each directory"
        ));
    }
    Ok(())
}

/// One pattern as a glob over root-relative paths, and whether it matches
/// directories only.
fn compile(pattern: &str) -> Result<(globset::Glob, bool), String> {
    let mut text = pattern;
    let dirs_only = text.len() > 1 && text.ends_with('/');
    if dirs_only {
        text = &text[..text.len() - 1];
    }
    let anchored = text.contains('/');
    let text = text.strip_prefix('/').unwrap_or(text);
    if text.is_empty() {
        return Err(format!(
            "{pattern:?} matches nothing: write a name or a path below the root, e.g. \"cache/**\""
        ));
    }
    let glob = if anchored {
        text.to_string()
    } else {
        format!("**/{text}")
    };
    let glob = GlobBuilder::new(&glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid glob: {}", e.kind()))?;
    Ok((glob, dirs_only))
}

/// The compiled rules a walk asks about each entry.
#[derive(Debug, Clone)]
pub struct Excludes {
    any: GlobSet,
    dirs: GlobSet,
    markers: Vec<Vec<u8>>,
}

/// What makes a file named like a marker count as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerTest {
    /// Being there, whatever it is.
    Present,
    /// Being a regular file that starts with [`CACHEDIR_SIGNATURE`].
    CacheDirSignature,
}

impl Excludes {
    /// The rules compiled; an invalid one (from an untrusted snapshot, or
    /// a spec that was not checked) is an error naming it.
    pub fn new(rules: &ExcludeRules) -> Result<Excludes, String> {
        let mut any = GlobSetBuilder::new();
        let mut dirs = GlobSetBuilder::new();
        for pattern in &rules.exclude {
            let (glob, dirs_only) = compile(pattern)?;
            if dirs_only {
                dirs.add(glob);
            } else {
                any.add(glob);
            }
        }
        for name in &rules.exclude_if_present {
            check_marker(name)?;
        }
        let build = |set: GlobSetBuilder| set.build().map_err(|e| e.to_string());
        let mut markers: Vec<Vec<u8>> = rules
            .exclude_if_present
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        markers.sort();
        markers.dedup();
        Ok(Excludes {
            any: build(any)?,
            dirs: build(dirs)?,
            markers,
        })
    }

    pub fn has_markers(&self) -> bool {
        !self.markers.is_empty()
    }

    /// Whether the entry at `relative` (below the root, `/` separated) is
    /// left out by a pattern. The root itself never is.
    pub fn excludes_path(&self, relative: &[u8], is_dir: bool) -> bool {
        if relative.is_empty() {
            return false;
        }
        let candidate = Candidate::new(OsStr::from_bytes(relative));
        self.any.is_match_candidate(&candidate)
            || (is_dir && self.dirs.is_match_candidate(&candidate))
    }

    /// Whether a pattern leaves out the file at `relative` or one of the
    /// directories above it.
    pub fn excludes_file_or_parent(&self, relative: &[u8]) -> bool {
        self.excludes_path(relative, false)
            || relative
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .any(|(i, _)| self.excludes_path(&relative[..i], true))
    }

    /// How a file named `name` is tested as a marker; `None`: no marker has that name.
    pub(crate) fn marker_test(&self, name: &[u8]) -> Option<MarkerTest> {
        if !self.markers.iter().any(|m| m == name) {
            return None;
        }
        Some(if name == CACHEDIR_TAG.as_bytes() {
            MarkerTest::CacheDirSignature
        } else {
            MarkerTest::Present
        })
    }

    /// The marker names, for a walk that looks for them in each directory.
    pub(crate) fn marker_names(&self) -> impl Iterator<Item = &[u8]> {
        self.markers.iter().map(Vec::as_slice)
    }

    /// The greatest marker name: in a walk in name order, a directory
    /// whose entries have passed it can no longer turn out to hold one.
    fn last_marker(&self) -> Option<&[u8]> {
        self.markers.last().map(Vec::as_slice)
    }
}

/// `path`'s last name and its parent (the root is `b""`).
pub(crate) fn split_name(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// Whether `path` is `dir` or below it (everything is below the root).
fn within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// For a walk that sees a directory before its content and learns of its
/// markers only when it reaches them (an archive stream): holds back the
/// entries of directories that may still turn out to hold a marker, drops
/// them when one does, and says which entries later fall under an
/// excluded directory.
///
/// The stream is depth first in name order, as Docker writes archives and
/// the direct walk reads: a directory is decided once an entry outside it,
/// or a child named after every marker, arrives. Only entries of
/// undecided directories are held, so memory stays bounded by the names
/// that sort before the markers in the directories being read.
pub(crate) struct MarkerGate<'e, T> {
    excludes: &'e Excludes,
    /// Directories that may still hold a marker, outermost first (each
    /// below the one before it).
    undecided: Vec<Vec<u8>>,
    held: std::collections::VecDeque<(Vec<u8>, T)>,
    /// The directory being skipped (left out), if any.
    skipping: Option<Vec<u8>>,
    /// The directories a marker left out (few: one per marker found).
    marked: Vec<Vec<u8>>,
}

impl<'e, T> MarkerGate<'e, T> {
    pub fn new(excludes: &'e Excludes) -> Self {
        MarkerGate {
            excludes,
            undecided: Vec::new(),
            held: std::collections::VecDeque::new(),
            skipping: None,
            marked: Vec::new(),
        }
    }

    /// Whether `path` is below a directory left out (its entry is dropped
    /// unread).
    pub fn skips(&mut self, path: &[u8]) -> bool {
        match &self.skipping {
            Some(dir) if within(path, dir) && path != dir.as_slice() => true,
            Some(_) => {
                self.skipping = None;
                false
            }
            None => false,
        }
    }

    /// Whether a marker left out the entry at `path` (the root itself
    /// never is).
    pub fn marked_out(&self, path: &[u8]) -> bool {
        !path.is_empty() && self.marked.iter().any(|dir| within(path, dir))
    }

    /// Leaves out everything below `dir` (a directory a pattern excludes).
    pub fn skip_below(&mut self, dir: &[u8]) {
        self.skipping = Some(dir.to_vec());
    }

    /// Takes the next entry of the walk (`is_marker`: it is a marker that
    /// counts, for its directory). Returns the entries now decided, in walk
    /// order; an error when the stream is not in the order this needs.
    pub fn arrive(
        &mut self,
        path: &[u8],
        is_dir: bool,
        is_marker: bool,
        item: T,
    ) -> Result<Vec<T>, String> {
        // Directories the walk has left are decided: they held no marker.
        while self.undecided.last().is_some_and(|d| !within(path, d)) {
            self.undecided.pop();
        }
        let (parent, name) = split_name(path);
        let parent_open = !path.is_empty() && self.undecided.last().is_some_and(|d| d == parent);
        if is_marker {
            if !parent_open {
                return Err(format!(
                    "the archive lists {} after entries of its directory that sort after it: \
                     exclude_if_present needs the entries in name order",
                    String::from_utf8_lossy(path)
                ));
            }
            self.undecided.pop();
            let keep_root = parent.is_empty();
            self.held
                .retain(|(held, _)| !within(held, parent) || (keep_root && held.is_empty()));
            self.skipping = Some(parent.to_vec());
            self.marked.push(parent.to_vec());
            return Ok(self.release());
        }
        if parent_open && self.excludes.last_marker().is_some_and(|last| name > last) {
            self.undecided.pop();
        }
        let decided_now = self.undecided.is_empty() && self.held.is_empty();
        if is_dir && self.excludes.has_markers() {
            self.undecided.push(path.to_vec());
        }
        if decided_now && !(is_dir && self.excludes.has_markers()) {
            return Ok(vec![item]);
        }
        self.held.push_back((path.to_vec(), item));
        Ok(self.release())
    }

    /// The held entries no undecided directory contains, from the front.
    fn release(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((path, _)) = self.held.front() {
            if self.undecided.first().is_some_and(|d| within(path, d)) {
                break;
            }
            out.push(self.held.pop_front().expect("front exists").1);
        }
        out
    }

    /// The end of the walk: every directory is decided.
    pub fn finish(mut self) -> Vec<T> {
        self.undecided.clear();
        self.release()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(exclude: &[&str], markers: &[&str]) -> Excludes {
        Excludes::new(&ExcludeRules {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            exclude_if_present: markers.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn names_match_at_any_depth_and_paths_from_the_root() {
        let e = rules(&["*.tmp", "cache/**", "/build", "logs/"], &[]);
        assert!(e.excludes_path(b"a.tmp", false));
        assert!(e.excludes_path(b"deep/er/a.tmp", false));
        assert!(!e.excludes_path(b"a.tmpx", false));
        assert!(e.excludes_path(b"cache/x", false));
        assert!(e.excludes_path(b"cache/x/y", true));
        assert!(
            !e.excludes_path(b"cache", true),
            "cache/** keeps the directory"
        );
        assert!(
            !e.excludes_path(b"sub/cache/x", false),
            "anchored at the root"
        );
        assert!(e.excludes_path(b"build", true));
        assert!(!e.excludes_path(b"src/build", true));
        assert!(e.excludes_path(b"logs", true));
        assert!(e.excludes_path(b"x/logs", true));
        assert!(
            !e.excludes_path(b"logs", false),
            "a trailing / matches directories only"
        );
        assert!(!e.excludes_path(b"", true), "never the root");
    }

    #[test]
    fn bad_patterns_and_markers_are_refused_with_why() {
        assert!(
            check_pattern("a[")
                .unwrap_err()
                .contains("not a valid glob")
        );
        assert!(check_pattern("/").unwrap_err().contains("matches nothing"));
        assert!(check_pattern("").unwrap_err().contains("matches nothing"));
        assert!(check_marker("a/b").is_err());
        assert!(check_marker("..").is_err());
        assert!(check_marker(".lifeboat-exclude").is_ok());
    }

    #[test]
    fn rules_compare_as_sets() {
        let a = ExcludeRules {
            exclude: vec!["a".into(), "b".into()],
            exclude_if_present: vec![],
        };
        let b = ExcludeRules {
            exclude: vec!["b".into(), "a".into(), "a".into()],
            exclude_if_present: vec![],
        };
        assert!(a.same_as(&b));
        assert!(!a.same_as(&ExcludeRules::default()));
    }

    /// Runs a name-ordered walk through the gate: the paths kept.
    fn gate_walk(excludes: &Excludes, walk: &[(&str, bool, bool)]) -> Result<Vec<String>, String> {
        let mut gate = MarkerGate::new(excludes);
        let mut kept = Vec::new();
        for (path, is_dir, is_marker) in walk {
            if gate.skips(path.as_bytes()) {
                continue;
            }
            kept.extend(gate.arrive(path.as_bytes(), *is_dir, *is_marker, path.to_string())?);
        }
        kept.extend(gate.finish());
        Ok(kept)
    }

    #[test]
    fn a_marker_drops_its_directory_and_what_came_before_it() {
        let e = rules(&[], &["CACHEDIR.TAG"]);
        let walk = [
            ("", true, false),
            ("a", true, false),
            ("a/.x", false, false),
            ("a/CACHEDIR.TAG", false, true),
            ("a/z", false, false),
            ("a/zz", true, false),
            ("a/zz/q", false, false),
            ("b", true, false),
            ("b/.x", false, false),
            ("b/z", false, false),
            ("c", false, false),
        ];
        assert_eq!(gate_walk(&e, &walk).unwrap(), ["", "b", "b/.x", "b/z", "c"]);
    }

    #[test]
    fn a_marker_in_the_root_keeps_only_the_root() {
        let e = rules(&[], &[".lifeboat-exclude"]);
        let walk = [
            ("", true, false),
            (".a", false, false),
            (".lifeboat-exclude", false, true),
            ("b", false, false),
        ];
        assert_eq!(gate_walk(&e, &walk).unwrap(), [""]);
    }

    #[test]
    fn a_marker_after_its_directory_was_decided_is_an_error() {
        let e = rules(&[], &["CACHEDIR.TAG"]);
        let walk = [
            ("", true, false),
            ("a", true, false),
            ("a/z", false, false),
            ("a/CACHEDIR.TAG", false, true),
        ];
        assert!(gate_walk(&e, &walk).unwrap_err().contains("name order"));
    }

    #[test]
    fn without_markers_nothing_is_held() {
        let e = rules(&["*.tmp"], &[]);
        let mut gate = MarkerGate::new(&e);
        assert_eq!(gate.arrive(b"", true, false, 1).unwrap(), [1]);
        assert_eq!(gate.arrive(b"a", true, false, 2).unwrap(), [2]);
        assert_eq!(gate.arrive(b"a/b", false, false, 3).unwrap(), [3]);
    }
}
