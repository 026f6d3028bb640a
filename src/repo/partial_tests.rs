//! Partial restores on a memory repository and a temporary directory (no
//! Docker): the lists against the live tree, the safety snapshot of what
//! is overwritten, and a write that touches nothing outside the path.

use super::backend::memory::MemoryBackend;
use super::partial::WriteSet;
use super::partial::{
    PathSelection, classify, entries_to_write, live_tree_map, live_tree_map_excluding,
};
use super::tests::{quiet, source};
use super::*;
use std::path::Path;

fn repository() -> Repository {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), None).unwrap();
    Repository::open(backend, None, RepoOptions::default()).unwrap()
}

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    // Whole seconds, far from now: a rewrite within the same second
    // still differs in time only when meant to.
    filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(1_600_000_000, 0)).unwrap();
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Every file under `root` with its content, in path order.
fn files(root: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e.path().strip_prefix(root).unwrap().display().to_string();
            (relative, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    found.sort();
    found
}

/// A tree with `config/` and other directories, backed up, then changed
/// inside and outside `config/`.
fn backed_up_then_changed(repository: &Repository, root: &Path) -> Snapshot {
    write(root, "config/app.conf", "port = 80\n");
    write(root, "config/same.conf", "same\n");
    write(root, "config/sub/deep.conf", "deep\n");
    write(root, "data/db", "rows 1\n");
    write(root, "top.txt", "top\n");
    let snapshot = repository
        .backup_dir(root, source("volume.data"), &quiet())
        .unwrap();
    write(root, "config/app.conf", "port = 8080 # edited badly\n");
    std::fs::remove_file(root.join("config/sub/deep.conf")).unwrap();
    write(root, "config/local.conf", "mine\n");
    write(root, "data/db", "rows 2\n");
    write(root, "top.txt", "top, changed\n");
    snapshot
}

fn only_files(paths: &[String]) -> Vec<&str> {
    paths
        .iter()
        .map(String::as_str)
        .filter(|p| p.ends_with(".conf"))
        .collect()
}

#[test]
fn the_lists_say_what_is_created_overwritten_left_and_kept_under_the_path_only() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = backed_up_then_changed(&repository, dir.path());
    let selection = PathSelection::parse(&["config/".to_string()]).unwrap();
    let (selection, wanted) = repository.subtree_map(&snapshot, &selection).unwrap();
    let live = live_tree_map(&repository, dir.path(), &selection).unwrap();
    let changes = classify(&selection, &wanted, &live);
    assert_eq!(only_files(&changes.create), ["config/sub/deep.conf"]);
    assert_eq!(only_files(&changes.overwrite), ["config/app.conf"]);
    assert_eq!(only_files(&changes.leave), ["config/same.conf"]);
    assert_eq!(changes.kept, ["config/local.conf"]);
    let listed = changes
        .create
        .iter()
        .chain(&changes.overwrite)
        .chain(&changes.leave)
        .chain(&changes.kept);
    for path in listed {
        assert!(path.starts_with("config"), "{path} is outside the path");
    }
}

#[test]
fn a_partial_restore_keeps_what_it_overwrites_and_touches_nothing_outside_the_path() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let snapshot = backed_up_then_changed(&repository, root);
    let selection = PathSelection::parse(&["config".to_string()]).unwrap();
    let (selection, wanted) = repository.subtree_map(&snapshot, &selection).unwrap();
    let live = live_tree_map(&repository, root, &selection).unwrap();
    let changes = classify(&selection, &wanted, &live);
    let outside_before: Vec<(String, String)> = files(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("config"))
        .collect();

    let safety = repository
        .backup_dir_selected(
            root,
            &WriteSet::new(changes.overwrite.iter()),
            source("volume.data"),
            &quiet(),
        )
        .unwrap();
    let kept = repository.tree_map(&safety).unwrap();
    let kept_files: Vec<&String> = kept.keys().filter(|p| p.ends_with(".conf")).collect();
    assert_eq!(kept_files, ["config/app.conf"]);
    let mut edited = Vec::new();
    repository
        .write_file(&safety, "config/app.conf", &mut edited)
        .unwrap();
    assert_eq!(edited, b"port = 8080 # edited badly\n");

    let written = changes.create.iter().chain(&changes.overwrite);
    let write = entries_to_write(&selection, written);
    repository
        .restore_dir_selected(&snapshot, root, &write, &quiet())
        .unwrap();
    assert_eq!(read(root, "config/app.conf"), "port = 80\n");
    assert_eq!(read(root, "config/sub/deep.conf"), "deep\n");
    assert_eq!(read(root, "config/same.conf"), "same\n");
    assert_eq!(read(root, "config/local.conf"), "mine\n", "kept");
    let outside_after: Vec<(String, String)> = files(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("config"))
        .collect();
    assert_eq!(outside_after, outside_before);
    // Now equal to the snapshot under the path: nothing left to write.
    let live = live_tree_map(&repository, root, &selection).unwrap();
    let again = classify(&selection, &wanted, &live);
    assert!(again.create.is_empty(), "{:?}", again.create);
    assert!(again.overwrite.is_empty(), "{:?}", again.overwrite);
}

#[test]
fn a_part_written_into_an_empty_directory_holds_only_the_path() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = backed_up_then_changed(&repository, dir.path());
    let selection = PathSelection::parse(&["config/sub".to_string()]).unwrap();
    let (selection, wanted) = repository.subtree_map(&snapshot, &selection).unwrap();
    let changes = classify(&selection, &wanted, &Default::default());
    let into = tempfile::tempdir().unwrap();
    let write = entries_to_write(&selection, &changes.create);
    repository
        .restore_dir_selected(&snapshot, into.path(), &write, &quiet())
        .unwrap();
    assert_eq!(
        files(into.path()),
        [("config/sub/deep.conf".to_string(), "deep\n".to_string())]
    );
    let mtime = std::fs::metadata(into.path().join("config/sub/deep.conf"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)
    );
}

#[test]
fn paths_that_escape_or_are_missing_are_refused_with_what_to_do() {
    for bad in ["../etc", "config/../../x", "/etc/passwd", ".", "/"] {
        let refused = PathSelection::parse(&[bad.to_string()]);
        assert!(refused.is_err(), "{bad} was accepted");
    }
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = backed_up_then_changed(&repository, dir.path());
    let selection = PathSelection::parse(&["nope/".to_string()]).unwrap();
    let message = repository
        .subtree_map(&snapshot, &selection)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(snapshot.id.short()) && message.contains("lifeboat ls"),
        "{message}"
    );
}

#[test]
fn a_glob_names_the_paths_it_matches_in_the_snapshot() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = backed_up_then_changed(&repository, dir.path());
    let globbed = PathSelection::parse(&["config/*.conf".to_string()]).unwrap();
    let (selection, wanted) = repository.subtree_map(&snapshot, &globbed).unwrap();
    assert_eq!(selection.paths(), ["config/app.conf", "config/same.conf"]);
    assert!(wanted.contains_key("config/app.conf"));
    assert!(
        !wanted.contains_key("config/sub/deep.conf"),
        "* stays in one name"
    );
    let nothing = PathSelection::parse(&["*.none".to_string()]).unwrap();
    let message = repository
        .subtree_map(&snapshot, &nothing)
        .unwrap_err()
        .to_string();
    assert!(message.contains("lifeboat ls"), "{message}");
}

#[test]
fn the_whole_live_tree_leaves_out_what_the_snapshots_excludes_left_out() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "app.conf", "port = 80\n");
    write(root, "scratch/x.tmp", "tmp\n");
    write(root, "build/out", "built\n");
    write(root, "build/.nobackup", "");
    let scratch_time = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(root.join("scratch"), scratch_time).unwrap();
    let mut excluding = source("volume.data");
    excluding.excludes = crate::repo::ExcludeRules {
        exclude: vec!["*.tmp".into()],
        exclude_if_present: vec![".nobackup".into()],
    };
    let snapshot = repository.backup_dir(root, excluding, &quiet()).unwrap();
    // New entries only where the excludes leave them out.
    write(root, "scratch/y.tmp", "tmp too\n");
    write(root, "build/more", "built too\n");
    // A directory's time changes with what it holds: kept as it was, so
    // only what the excludes leave out is new.
    filetime::set_file_mtime(root.join("scratch"), scratch_time).unwrap();
    let whole = PathSelection::whole();
    let excluded = &snapshot.source.excludes;
    let live = live_tree_map_excluding(&repository, root, &whole, excluded).unwrap();
    let differences = super::browse::compare(&repository.tree_map(&snapshot).unwrap(), &live);
    assert_eq!(differences, [], "nothing the snapshot would hold changed");
    assert!(
        !live.contains_key("build"),
        "a marked directory is left out"
    );

    write(root, "app.conf", "port = 8080\n");
    let live = live_tree_map_excluding(&repository, root, &whole, excluded).unwrap();
    let differences = super::browse::compare(&repository.tree_map(&snapshot).unwrap(), &live);
    let changed: Vec<&str> = differences.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(changed, ["app.conf"]);
    assert_eq!(differences[0].change, super::browse::Change::Modified);
}

#[test]
fn a_part_written_into_a_new_directory_never_replaces_what_appears_there_meanwhile() {
    let repository = repository();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part/a.txt", "a\n");
    write(dir.path(), "part/b.txt", "b\n");
    let snapshot = repository
        .backup_dir(dir.path(), source("volume.data"), &quiet())
        .unwrap();
    let selection = PathSelection::parse(&["part".to_string()]).unwrap();
    let (selection, wanted) = repository.subtree_map(&snapshot, &selection).unwrap();
    let changes = classify(&selection, &wanted, &Default::default());
    let write_set = entries_to_write(&selection, &changes.create);
    let into = tempfile::tempdir().unwrap();
    let target = into.path().join("recovered");
    // Someone writes `part/b.txt` there once `part/a.txt` is written.
    let planted = target.join("part/b.txt");
    let plant = |_: Progress| {
        if target.join("part/a.txt").exists() && !planted.exists() {
            std::fs::write(&planted, "mine\n").unwrap();
        }
    };
    let refused = repository
        .restore_dir_selected_new(&snapshot, &target, &write_set, &plant)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("part/b.txt"), "{refused}");
    assert!(refused.contains("appeared"), "{refused}");
    assert_eq!(read(&target, "part/b.txt"), "mine\n");
}

#[test]
fn the_live_tree_is_never_read_through_a_symlink_above_the_path() {
    let repository = repository();
    let base = tempfile::tempdir().unwrap();
    // Outside the volume: what a container could point a link at.
    let outside = base.path().join("host");
    write(&outside, "secret", "host secret\n");
    write(&outside, "sub/deep", "host deep\n");
    let live = base.path().join("volume");
    std::fs::create_dir(&live).unwrap();
    std::os::unix::fs::symlink(&outside, live.join("config")).unwrap();
    let selection =
        PathSelection::parse(&["config/secret".to_string(), "config/sub".to_string()]).unwrap();
    let map = live_tree_map(&repository, &live, &selection).unwrap();
    // `config` is the link itself; nothing is read below it.
    assert_eq!(map.keys().collect::<Vec<_>>(), ["", "config"], "{map:?}");
    // The root itself may be a link (a bind's path): it is the tree.
    let linked_root = base.path().join("bind");
    std::os::unix::fs::symlink(&outside, &linked_root).unwrap();
    let selection = PathSelection::parse(&["secret".to_string()]).unwrap();
    let map = live_tree_map(&repository, &linked_root, &selection).unwrap();
    assert!(map.contains_key("secret"), "{map:?}");
}
