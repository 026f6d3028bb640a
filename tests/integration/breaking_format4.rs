//! Trying to break `migrate` and format 4 from the command line, on copies
//! of the format-3 fixture: a dry run writes no file, a migrate killed
//! (SIGKILL) or stopped (SIGTERM) at any moment leaves a repository that
//! checks and whose snapshot restores the same bytes once a migrate
//! finishes, and a config naming an id function this lifeboat does not
//! know asks for a newer lifeboat.

use crate::binds::host_dir;
use crate::harness::{Workspace, files_in};
use crate::support;
use crate::upgrade::{config, fixture_content, format_3_workspace};
use std::time::{Duration, Instant};

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

/// Starts `args`, sends `signal` after `delay`; whether it was still running.
fn signal_after(ws: &Workspace, args: &[&str], signal: libc::c_int, delay: Duration) -> bool {
    let mut child = ws
        .process(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: the pid is our own child's, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    child.wait().unwrap();
    true
}

#[test]
fn a_migrate_killed_or_stopped_at_any_moment_is_finished_by_the_next_and_restores_the_same_bytes() {
    let content = fixture_content();
    let mut interrupted = 0;
    for (signal, delay) in [
        (libc::SIGKILL, 150),
        (libc::SIGKILL, 600),
        (libc::SIGTERM, 300),
        (libc::SIGKILL, 1000),
    ] {
        let dir = host_dir("kill-migrate");
        let root = dir.path().join("conf");
        let ws = format_3_workspace(&root);
        if signal_after(&ws, &["migrate"], signal, Duration::from_millis(delay)) {
            interrupted += 1;
        }
        let check = ws.run(&["check"]);
        assert_eq!(
            check.code(),
            0,
            "check after signal {signal} at {delay} ms:\n{check}"
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
            .unwrap_or_else(|diff| panic!("after signal {signal} at {delay} ms:\n{diff}"));
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
    std::fs::write(
        ws.repository().join("config"),
        serde_json::to_vec_pretty(&newer).unwrap(),
    )
    .unwrap();
    let refused = ws.run(&["snapshots"]);
    assert_eq!(refused.code(), 1, "{refused}");
    let said = format!(
        "the repository at {} names its blobs with \"sha3-256\"",
        ws.repository().display()
    );
    assert!(refused.stderr().contains(&said), "{said:?} in\n{refused}");
    assert!(refused.stderr().contains("upgrade lifeboat"), "{refused}");
}
