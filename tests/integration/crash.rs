//! Killed with SIGKILL at many points of a backup, a restore and a prune:
//! the repository stays consistent, earlier snapshots restore exactly, and
//! the next run finishes (a backup reusing what was already written).

use crate::harness::Workspace;
use crate::support;
use std::time::{Duration, Instant};

fn fill(root: &std::path::Path, seed: u64) {
    for dir in 0..8 {
        fill_dir(&root.join(format!("d{dir}")), seed * 8 + dir);
    }
}

/// 40 files of incompressible data, 20 to 320 KB each.
fn fill_dir(path: &std::path::Path, seed: u64) {
    std::fs::create_dir_all(path).unwrap();
    for file in 0..40u64 {
        let size = 20_000 + (file as usize * 7919 % 300_000);
        let data = support::random_bytes(size, seed * 64 + file);
        std::fs::write(path.join(format!("f{file}.bin")), data).unwrap();
    }
}

/// Starts `args` and kills it (SIGKILL) after `delay`; false when it
/// finished first.
pub(crate) fn kill_after(ws: &Workspace, args: &[&str], delay: Duration) -> bool {
    signal_after(ws, args, libc::SIGKILL, delay)
}

/// Starts `args` and sends it `signal` after `delay`; false when it
/// finished first.
pub(crate) fn signal_after(
    ws: &Workspace,
    args: &[&str],
    signal: libc::c_int,
    delay: Duration,
) -> bool {
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
    // SAFETY: the pid is this test's own child, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    child.wait().unwrap();
    true
}

/// Runs `args` at 20 points: before each, `prepare(point)`; then the run is
/// killed after `delay(point)` and `check` must pass. At least 15 of the
/// runs must have been killed before finishing. Returns how many were.
fn kill_at_twenty_points(
    ws: &Workspace,
    args: &[&str],
    mut prepare: impl FnMut(u32),
    delay: impl Fn(u32) -> Duration,
) -> u32 {
    let mut kills = 0;
    // The machine may get faster than when the delays were measured (it is
    // shared): a run that finishes before its kill shortens the later delays.
    let mut scale = 1.0;
    // Runs that finish first do not count: up to 40 tries for 20 kills.
    for point in 0..40 {
        if kills == 20 {
            break;
        }
        prepare(point);
        // Extra tries repeat the latest point: the last kill stays late in
        // the run (what the pack-adoption check after this relies on).
        let delay = delay(point.min(19)).mul_f64(scale);
        if kill_after(ws, args, delay) {
            kills += 1;
        } else {
            scale *= 0.7;
        }
        let check = ws.run(&["check"]);
        assert_eq!(check.code(), 0, "check after a kill at {delay:?}:\n{check}");
    }
    assert!(
        kills >= 15,
        "only {kills} of 40 runs of {args:?} were killed before finishing"
    );
    kills
}

fn added_bytes(events: &str) -> u64 {
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "resource_finished")
        .and_then(|e| e["added_bytes"].as_u64())
        .expect("a finished backup")
}

#[test]
fn sigkill_during_backups_never_breaks_the_repository() {
    let volume = support::TestVolume::create("crash");
    fill(&volume.mountpoint(), 7);
    let first_copy = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let backup = [
        "apply",
        "--auto-approve",
        "--replace",
        "volume.data",
        "--access",
        "direct",
    ];
    // How long a whole backup of this much new content takes here and now
    // (machines and load differ): the kill points are spread over it.
    let started = Instant::now();
    ws.ok(&backup);
    let whole = started.elapsed();

    // New content for every run, so each has a whole backup's work to be
    // killed in, and nothing it writes is already stored by a run that
    // finished. Kill points go from planning and lock taking, through pack
    // and index writes, to late in the run.
    let kills = kill_at_twenty_points(
        &ws,
        &backup,
        |point| fill(&volume.mountpoint(), 100 + u64::from(point)),
        |point| whole.mul_f64(0.03 + 0.77 * f64::from(point) / 19.0),
    );
    // One more kill, timed by what it wrote rather than by the clock (a
    // loaded machine made the clock's late kill land before any pack):
    // once this run has written two packs of new content.
    fill(&volume.mountpoint(), 999);
    let packs = || {
        walkdir::WalkDir::new(ws.repository().join("data"))
            .into_iter()
            .filter_map(Result::ok)
            // Whole packs only: a save writes a hidden temporary first.
            .filter(|e| {
                e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with('.')
            })
            .count()
    };
    let before = packs();
    let mut child = ws
        .process(&backup)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while packs() < before + 2 && started.elapsed() < Duration::from_secs(120) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing two packs"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let content = support::dir_size(&volume.mountpoint());
    // Locks of killed processes are stale: nothing waits for them.
    let events = ws
        .ok(&[
            "apply",
            "--auto-approve",
            "--json",
            "--replace",
            "volume.data",
            "--access",
            "direct",
        ])
        .stdout();
    let reused_run_added = added_bytes(&events);
    // The packs the last killed run wrote (late in its run, and never
    // indexed by a finished run) are adopted, not stored again.
    assert!(
        reused_run_added < content * 85 / 100,
        "the completing run stored {reused_run_added} of {content} bytes again"
    );

    let snapshots: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    assert!(snapshots.as_array().unwrap().len() >= 2);
    let full = ws.ok(&["check", "--read-data"]);
    assert!(full.stdout().contains("no errors were found"), "{full}");

    // The first snapshot still restores exactly.
    let first_id = snapshots[0]["id"].as_str().unwrap().to_string();
    let restored = support::TestVolume::create("crash-restore");
    let restore_ws = ws.sharing_repository(volume.name(), restored.name());
    restore_ws.ok(&["restore", "--auto-approve", "--snapshot", &first_id]);
    support::compare_trees(first_copy.path(), &restored.mountpoint())
        .unwrap_or_else(|diff| panic!("first snapshot after the kills:\n{diff}"));

    eprintln!(
        "{kills} backups killed (a whole backup took {whole:?}); the completing run stored \
         {reused_run_added} of {content} bytes of new content"
    );
}

#[test]
fn sigkill_during_restores_leaves_a_repository_that_restores_exactly() {
    let volume = support::TestVolume::create("crash-rs");
    fill(&volume.mountpoint(), 11);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let target = support::TestVolume::create("crash-rs-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());

    // Through the API: kills land in helper containers' uploads, volume
    // recreation and the safety snapshot of a half-restored volume.
    let restore = ["restore", "--auto-approve", "--replace", "--access", "api"];
    let kills = kill_at_twenty_points(
        &restore_ws,
        &restore,
        |_| {},
        |point| Duration::from_millis(20 + u64::from(point * point) * 3),
    );
    // The next restore finishes and the volume equals the snapshot; it
    // removed the helper containers the killed runs left holding the volume.
    let done = restore_ws.ok(&["restore", "--auto-approve", "--replace", "--access", "api"]);
    assert!(
        done.stdout().contains("Restore complete! 1 restored"),
        "{done}"
    );
    assert_eq!(
        support::helpers_of(target.name()),
        Vec::<String>::new(),
        "{done}"
    );
    support::compare_trees(&volume.mountpoint(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("restore after the kills:\n{diff}"));
    let full = restore_ws.ok(&["check", "--read-data"]);
    assert!(full.stdout().contains("no errors were found"), "{full}");
    eprintln!("{kills} restores killed");
}

#[test]
fn sigkill_during_prunes_never_loses_a_kept_snapshot() {
    let volume = support::TestVolume::create("crash-pr");
    fill(&volume.mountpoint(), 5);
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let direct = [
        "apply",
        "--auto-approve",
        "--replace",
        "volume.data",
        "--access",
        "direct",
    ];
    // Before each prune: garbage for it to collect, next to data it must
    // keep (part of the volume changes, the older snapshot is forgotten).
    let prepare = |point: u32| {
        let dir = volume.mountpoint().join(format!("d{}", point % 8));
        std::fs::remove_dir_all(&dir).unwrap();
        fill_dir(&dir, 1000 + u64::from(point));
        ws.ok(&direct);
        let snapshots: serde_json::Value =
            serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
        let oldest = snapshots[0]["id"].as_str().unwrap().to_string();
        ws.ok(&["forget", "--auto-approve", &oldest]);
    };
    let kills = kill_at_twenty_points(&ws, &["prune"], prepare, |point| {
        Duration::from_millis(10 + u64::from(point * point))
    });
    let started = Instant::now();
    let pruned = ws.ok(&["prune"]);
    let full_prune = started.elapsed();
    assert!(pruned.stdout().contains("freed"), "{pruned}");
    let full = ws.ok(&["check", "--read-data"]);
    assert!(full.stdout().contains("no errors were found"), "{full}");

    // The kept snapshot (the latest) restores to the volume's content.
    let target = support::TestVolume::create("crash-pr-target");
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    restore_ws.ok(&["restore", "--auto-approve"]);
    support::compare_trees(&volume.mountpoint(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("kept snapshot after the kills:\n{diff}"));
    eprintln!("{kills} prunes killed; the completing prune took {full_prune:?}: {pruned}");
}

/// What a backup killed while writing leaves (a streamed pack's temporary
/// file in `data/`, a save's beside its index file; made by hand here, as
/// a SIGKILL at that moment leaves them) is noted by `check` as prune's to
/// remove, shown by `prune --dry-run`, and removed by `prune`; a file put
/// there by hand stays.
#[test]
fn the_temporary_files_of_a_killed_backup_are_removed_by_prune() {
    let volume = support::TestVolume::create("crash-leftovers");
    std::fs::write(
        volume.mountpoint().join("a.bin"),
        support::random_bytes(200_000, 5),
    )
    .unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let repo = ws.repository();
    let pack = repo.join("data/.pack.tmp-999999-0");
    let index = repo.join(format!("index/.{}.tmp-999999-1", "e".repeat(64)));
    std::fs::write(&pack, support::random_bytes(1 << 20, 6)).unwrap();
    std::fs::write(&index, b"half an index").unwrap();
    let mine = repo.join("data/notes.txt");
    std::fs::write(&mine, b"mine").unwrap();

    let check = ws.ok(&["check"]);
    let out = check.stdout();
    assert_eq!(
        out.matches("`lifeboat prune` removes it").count(),
        2,
        "{check}"
    );
    assert!(
        out.contains("data/.pack.tmp-999999-0 is no repository file"),
        "{check}"
    );
    assert!(
        out.contains("data/notes.txt is no repository file (a temporary file of an interrupted write, or put there by hand)"),
        "{check}"
    );

    let dry = ws.ok(&["prune", "--dry-run"]);
    let out = dry.stdout();
    assert!(
        out.contains("removes 2 temporary files interrupted writes left (1.0 MB)"),
        "{dry}"
    );
    assert!(out.contains("    data/.pack.tmp-999999-0\n"), "{dry}");
    assert!(pack.exists() && index.exists(), "a dry run removes nothing");

    let pruned = ws.ok(&["prune"]);
    assert!(
        pruned
            .stdout()
            .contains("removed 2 temporary files interrupted writes left (1.0 MB)"),
        "{pruned}"
    );
    assert!(!pack.exists() && !index.exists());
    assert!(mine.exists(), "a file put there by hand stays");
    let check = ws.ok(&["check", "--read-data"]);
    assert!(!check.stdout().contains("lifeboat prune"), "{check}");
    assert!(check.stdout().contains("no errors were found"), "{check}");
}
