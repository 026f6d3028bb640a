//! Upgrade in place: a repository written by a lifeboat of format 3
//! (tests/fixtures/format-3-repository, made by that version's binary)
//! restores, takes new backups that deduplicate against its old blobs,
//! is rewritten by `migrate` and still checks and restores the same bytes;
//! a newer format is refused; copies between format 3 (HMAC-SHA-256 ids)
//! and format 4 (BLAKE3 ids) rename the blobs.

use crate::binds::{bind_workspace, host_dir};
use crate::copies::add_repository;
use crate::harness::{Workspace, files_in};
use crate::support;
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/format-3-repository"
);

/// A workspace protecting the bind `root` in a copy of the format-3 fixture
/// (whose snapshot never becomes due: plans then copy it, not back up).
pub(crate) fn format_3_workspace(root: &Path) -> Workspace {
    let mut ws = bind_workspace(root);
    ws.passphrase = "format three fixture".to_string();
    let spec = ws.path().join("main.hcl");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("rpo = \"24h\"", "rpo = \"100000h\"")).unwrap();
    copy_dir(&Path::new(FIXTURE).join("repo"), &ws.repository());
    ws
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files_in(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

/// When the fixture's files were backed up: their mtime in its snapshot.
/// A git checkout gives files the time of the checkout instead.
const FIXTURE_MTIME: i64 = 1_796_628_526;

/// The fixture's `content/` as its snapshot holds it: a copy with the
/// mtimes it had (directories set last, as writing into them moves theirs).
pub(crate) fn fixture_content() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let from = Path::new(FIXTURE).join("content");
    copy_dir(&from, copy.path());
    let time = filetime::FileTime::from_unix_time(FIXTURE_MTIME, 0);
    let mut entries: Vec<PathBuf> = files_in(copy.path());
    let mut dirs: Vec<PathBuf> = entries
        .iter()
        .flat_map(|file| {
            (file.ancestors().skip(1))
                .take_while(|dir| dir.starts_with(copy.path()))
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    dirs.dedup();
    entries.extend(dirs);
    for entry in entries {
        filetime::set_file_times(&entry, time, time).unwrap();
    }
    copy
}

pub(crate) fn config(ws: &Workspace) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(ws.repository().join("config")).unwrap()).unwrap()
}

fn packs(ws: &Workspace) -> Vec<PathBuf> {
    let mut packs = files_in(&ws.repository().join("data"));
    packs.sort();
    packs
}

/// The number of distinct blobs `check` counts in repository `main`.
fn blobs_in_main(ws: &Workspace) -> String {
    let checked = ws.ok(&["check"]).stdout();
    let line = checked
        .lines()
        .find(|l| l.starts_with("repository.main"))
        .unwrap()
        .to_string();
    line.split(", ")
        .find(|part| part.ends_with("blobs"))
        .unwrap()
        .to_string()
}

#[test]
fn a_format_3_repository_restores_deduplicates_migrates_and_restores_the_same_bytes() {
    let dir = host_dir("format3");
    let root = dir.path().join("conf");
    let ws = format_3_workspace(&root);
    let content = fixture_content();
    let content = content.path();

    // Read as it is: the fixture's snapshot restores exactly.
    ws.ok(&["restore", "--auto-approve", "--access", "direct"]);
    support::compare_trees(content, &root).unwrap();
    // Its first write made the config format 4, keeping HMAC-SHA-256 ids.
    let upgraded = config(&ws);
    assert_eq!(upgraded["version"], 4, "{upgraded:#}");
    assert_eq!(upgraded["blob_ids"], "hmac-sha256", "{upgraded:#}");

    // A backup of the same files plus one deduplicates against format 3's
    // blobs: the new file and the new tree are all it stores.
    std::fs::write(root.join("added.txt"), b"written by format 4").unwrap();
    let before = packs(&ws);
    assert_eq!(blobs_in_main(&ws), "4 blobs", "3 files and a tree");
    ws.ok(&[
        "apply",
        "--auto-approve",
        "--access",
        "direct",
        "--replace",
        "bind.config",
    ]);
    // Ids named alike (else 3 more data blobs): one data blob and one tree blob.
    assert_eq!(blobs_in_main(&ws), "6 blobs");
    let expected = support::keep_copy(&root);

    // migrate: the plan first, and a dry run changes nothing.
    let dry = ws.ok(&["migrate", "--dry-run"]);
    assert!(
        dry.stdout()
            .contains("would rewrite 4 blobs of 2 packs (12.7 KB) sealed by format 3"),
        "{dry}"
    );
    assert!(
        before.iter().all(|p| p.exists()),
        "the dry run deleted a pack"
    );
    let migrated = ws.ok(&["migrate", "--repository", "main"]);
    assert!(
        migrated
            .stdout()
            .contains("rewrote 2 packs, deleted 2 old packs"),
        "{migrated}"
    );
    assert!(
        before.iter().all(|p| !p.exists()),
        "format 3's packs are gone"
    );
    let again = ws.ok(&["migrate"]);
    assert!(again.stdout().contains("nothing to migrate"), "{again}");

    for check in [
        &["check", "--read-data"][..],
        &["check", "--read-data", "--rehash"],
    ] {
        let checked = ws.ok(check);
        assert!(
            checked.stdout().contains("no errors were found"),
            "{checked}"
        );
    }
    let refused = ws.run(&["check", "--rehash"]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stderr().contains("--read-data"), "{refused}");

    std::fs::remove_dir_all(&root).unwrap();
    ws.ok(&["restore", "--auto-approve", "--access", "direct"]);
    support::compare_trees(expected.path(), &root).unwrap();
}

#[test]
fn a_newer_format_is_refused_naming_the_repository_the_version_and_the_way_out() {
    let dir = host_dir("format5");
    let ws = format_3_workspace(&dir.path().join("conf"));
    let mut newer = config(&ws);
    newer["version"] = 5.into();
    let said = format!(
        "the repository at {} has format version 5; this lifeboat reads up to 4: upgrade lifeboat",
        ws.repository().display()
    );
    refused_with_config(&ws, &newer, &said);
}

/// Writes `changed` as the repository's config: `snapshots` is then
/// refused, saying `said`.
pub(crate) fn refused_with_config(ws: &Workspace, changed: &serde_json::Value, said: &str) {
    std::fs::write(
        ws.repository().join("config"),
        serde_json::to_vec_pretty(changed).unwrap(),
    )
    .unwrap();
    let refused = ws.run(&["snapshots"]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stderr().contains(said), "{said:?} in\n{refused}");
}

#[test]
fn a_copy_from_format_3_into_format_4_renames_every_blob_and_restores_the_same_bytes() {
    let dir = host_dir("copy34");
    let root = dir.path().join("conf");
    let ws = format_3_workspace(&root);
    copy_dir(&Path::new(FIXTURE).join("content"), &root);
    let expected = support::keep_copy(&root);
    // A snapshot of this path, made of format 3's blobs (nothing new but the tree);
    // the copy below takes it and the fixture's own.
    ws.ok(&["apply", "--auto-approve", "--access", "direct"]);
    assert_eq!(blobs_in_main(&ws), "5 blobs");

    let offsite = ws.path().join("offsite");
    add_repository(&ws, "offsite", &offsite);
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(applied.stdout().contains("copy"), "{applied}");
    let created: serde_json::Value =
        serde_json::from_slice(&std::fs::read(offsite.join("config")).unwrap()).unwrap();
    assert_eq!(created["blob_ids"], "blake3", "{created:#}");
    let checked = ws.ok(&["check", "--read-data"]);
    assert!(!checked.stdout().contains("error:"), "{checked}");
    assert!(
        checked.stdout().contains(&format!(
            "repository.offsite ({}): 2 snapshots",
            offsite.display()
        )),
        "{checked}"
    );

    // From the copy alone: the same bytes.
    std::fs::remove_dir_all(ws.repository()).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    ws.ok(&["restore", "--auto-approve", "--access", "direct"]);
    support::compare_trees(expected.path(), &root).unwrap();
}
