//! Trying to break `migrate` and format 4 from the command line, on copies
//! of the format-3 fixture: a dry run writes no file, a migrate killed
//! (SIGKILL) or stopped (SIGTERM) at any moment leaves a repository that
//! checks and whose snapshot restores the same bytes once a migrate
//! finishes, and a config naming an id function this lifeboat does not
//! know asks for a newer lifeboat.

use crate::binds::host_dir;
use crate::crash::signal_after;
use crate::harness::{Workspace, files_in};
use crate::support;
use crate::upgrade::{config, fixture_content, format_3_workspace, refused_with_config};
use std::time::Instant;

/// Every file of the repository with its size and modification time.
fn files_as_they_are(ws: &Workspace) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    files_in(&ws.repository())
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).unwrap();
            (file, meta.len(), meta.modified().unwrap())
        })
        .collect()
}

#[test]
fn a_dry_run_migrate_of_an_untouched_format_3_repository_writes_no_file() {
    let dir = host_dir("dry-migrate");
    let ws = format_3_workspace(&dir.path().join("conf"));
    let before = files_as_they_are(&ws);
    let dry = ws.ok(&["migrate", "--dry-run"]);
    assert!(
        dry.stdout().contains("would rewrite 4 blobs of 2 packs"),
        "{dry}"
    );
    assert_eq!(files_as_they_are(&ws), before, "{dry}");
    // No lock either: it never makes a backup starting beside it fail.
    assert!(!ws.repository().join("locks").exists(), "{dry}");
    // Not even upgraded: an older lifeboat still opens it.
    assert_eq!(config(&ws)["version"], 3);
}

#[test]
fn a_migrate_killed_or_stopped_at_any_moment_is_finished_by_the_next_and_restores_the_same_bytes() {
    let content = fixture_content();
    // The moments are parts of a whole migrate's time on this machine now
    // (it is shared: fixed delays either all came too late or all too early).
    let whole = {
        let dir = host_dir("kill-migrate");
        let ws = format_3_workspace(&dir.path().join("conf"));
        let started = Instant::now();
        ws.ok(&["migrate"]);
        started.elapsed()
    };
    let mut interrupted = 0;
    for (signal, part) in [
        (libc::SIGKILL, 0.2),
        (libc::SIGKILL, 0.6),
        (libc::SIGTERM, 0.4),
        (libc::SIGKILL, 0.8),
    ] {
        let dir = host_dir("kill-migrate");
        let root = dir.path().join("conf");
        let ws = format_3_workspace(&root);
        let delay = whole.mul_f64(part);
        if signal_after(&ws, &["migrate"], signal, delay) {
            interrupted += 1;
        }
        let check = ws.run(&["check"]);
        assert_eq!(
            check.code(),
            0,
            "check after signal {signal} at {delay:?}:\n{check}"
        );
        ws.ok(&["migrate"]);
        let again = ws.ok(&["migrate", "--dry-run"]);
        assert!(again.stdout().contains("nothing to migrate"), "{again}");
        let checked = ws.ok(&["check", "--read-data"]);
        assert!(
            checked.stdout().contains("no errors were found"),
            "{checked}"
        );
        ws.ok(&["restore", "--auto-approve", "--access", "direct"]);
        support::compare_trees(content.path(), &root)
            .unwrap_or_else(|diff| panic!("after signal {signal} at {delay:?}:\n{diff}"));
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} migrates were interrupted"
    );
}

#[test]
fn a_config_naming_an_unknown_id_function_asks_for_a_newer_lifeboat() {
    let dir = host_dir("id-function");
    let ws = format_3_workspace(&dir.path().join("conf"));
    // A write makes it format 4, naming its function; a newer lifeboat
    // could name one this lifeboat does not know.
    ws.ok(&["migrate"]);
    let mut newer = config(&ws);
    assert_eq!(newer["blob_ids"], "hmac-sha256");
    newer["blob_ids"] = "sha3-256".into();
    let said = format!(
        "the repository at {} names its blobs with \"sha3-256\", an id function this lifeboat \
         does not know (it knows \"hmac-sha256\" and \"blake3\"): upgrade lifeboat",
        ws.repository().display()
    );
    refused_with_config(&ws, &newer, &said);
}
