//! SIGINT and SIGTERM: before lifeboat exits, it starts (or unpauses) again
//! the services it stopped for a copy, runs the `post` hooks still due
//! (within their timeouts), and removes the helper containers of
//! this process from every engine it connected to, so no interrupted run
//! leaves services down or containers holding volumes. (A SIGKILL cannot be
//! caught: the next run undoes what the killed one left, see
//! `apply::recover` and `Helpers::remove_leftover_helpers`.) Repositories need nothing here:
//! every write is crash-safe and the next run reuses what was stored. The
//! run itself ends early (its transfers stop, the changes not begun are
//! skipped) and writes its run record; the cleanup waits for that a while
//! ([`RECORD_WAIT`]) before it exits, unless a restore is writing a target
//! (which must stay marked incomplete): then it exits at once, and that
//! run has no record.

use crate::apply::drill::Scratch;
use crate::apply::{Engines, Quiescer, RestoreJournal};
use crate::engine::Engine;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

static ENGINES: Mutex<Vec<Arc<dyn Engine>>> = Mutex::new(Vec::new());
static QUIESCERS: Mutex<Vec<Arc<Quiescer>>> = Mutex::new(Vec::new());
static RESTORES: Mutex<Vec<Arc<RestoreJournal>>> = Mutex::new(Vec::new());
static RUN_LOCKS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
/// Mounts of this process: where, and how to unmount.
type Unmount = Box<dyn Fn() -> Result<(), String> + Send>;
static MOUNTS: Mutex<Vec<(String, Unmount)>> = Mutex::new(Vec::new());
/// Drills under way: their scratch objects, the engines and state directory.
type DrillUnderWay = (Scratch, Engines, std::path::PathBuf);
static DRILLS: Mutex<Vec<DrillUnderWay>> = Mutex::new(Vec::new());
static CANCEL: std::sync::LazyLock<CancellationToken> =
    std::sync::LazyLock::new(CancellationToken::new);

/// The token a run's transfers stop on when a signal arrives.
pub fn cancellation() -> CancellationToken {
    CANCEL.clone()
}
/// Set as soon as a signal arrives: from then on the cleanup owns the exit.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a signal arrived; the command's own result must then wait for
/// the cleanup, which exits with the signal's code.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Remembers the engines of this run, for the cleanup on a signal.
pub fn register(engines: &Engines) {
    let mut registered = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    for (_, engine) in engines.connected() {
        registered.push(engine.clone());
    }
}

/// Remembers this run's quiescer: on a signal, what it holds runs again.
pub fn register_quiescer(quiescer: Arc<Quiescer>) {
    QUIESCERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(quiescer);
}

/// Remembers this run's restore journal: on a signal, the message names
/// the targets it leaves incomplete.
pub fn register_restores(journal: Arc<RestoreJournal>) {
    RESTORES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(journal);
}

/// Remembers a drill under way: on a signal, its scratch objects are
/// removed (after its run record is written).
pub fn register_drill(scratch: Scratch, engines: Engines, state_dir: &std::path::Path) {
    DRILLS.lock().unwrap_or_else(|p| p.into_inner()).push((
        scratch,
        engines,
        state_dir.to_path_buf(),
    ));
}

/// Remembers a mount: on a signal it is unmounted before lifeboat exits,
/// so no mountpoint is left answering "transport endpoint is not connected".
pub fn register_mount(mountpoint: String, unmount: Unmount) {
    MOUNTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((mountpoint, unmount));
}

/// Unmounts this process's mounts; says what it did.
fn unmount_all() -> String {
    let mut words = String::new();
    for (mountpoint, unmount) in MOUNTS.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        match unmount() {
            Ok(()) => words.push_str(&format!(" unmounted {mountpoint};")),
            Err(e) => words.push_str(&format!(
                " could NOT unmount {mountpoint} ({e}): `fusermount3 -u {mountpoint}` releases it;"
            )),
        }
    }
    words
}

/// Removes the scratch objects of the drills under way; says what is left.
async fn remove_drill_scratch() -> String {
    let drills: Vec<DrillUnderWay> = DRILLS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut words = String::new();
    for (scratch, engines, state_dir) in drills {
        let cleanup = scratch.remove(&state_dir, &engines).await;
        words.push_str(&format!(
            " removed {} scratch object(s) of drill {};",
            cleanup.removed.len(),
            scratch.run
        ));
        if !cleanup.errors.is_empty() {
            words.push_str(&format!(
                " could NOT remove {} (the next drill, or `lifeboat recover`, tries again);",
                cleanup.errors.join("; ")
            ));
        }
    }
    words
}

/// What the interrupted restores leave behind, in words (empty when none).
fn incomplete_restores() -> String {
    let unfinished: Vec<String> = RESTORES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flat_map(|journal| journal.unfinished())
        .collect();
    if unfinished.is_empty() {
        return String::new();
    }
    format!(
        " Left INCOMPLETE (a partial restore): {}; `lifeboat plan` names the restore that \
         finishes {}, and backups refuse {} until then.",
        unfinished.join(", "),
        if unfinished.len() == 1 { "it" } else { "them" },
        if unfinished.len() == 1 { "it" } else { "them" },
    )
}

/// Runs that have not written their run record yet.
static RECORDS_DUE: AtomicUsize = AtomicUsize::new(0);
/// How long the cleanup waits for an interrupted run to write its record:
/// long enough for a copy to stop at the signal and for the record, short
/// enough that an interrupted lifeboat ends soon (a copy that does not
/// stop at the signal, as a direct read, is then cut off as before).
pub const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Held while a run executes, until its run record is written: a signal's
/// cleanup waits for it to be dropped (at most [`RECORD_WAIT`]).
pub struct RecordDue(());

/// Notes that a run is under way whose record the cleanup must wait for.
pub fn record_due() -> RecordDue {
    RECORDS_DUE.fetch_add(1, Ordering::SeqCst);
    RecordDue(())
}

impl Drop for RecordDue {
    fn drop(&mut self) {
        RECORDS_DUE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Remembers this run's lock file: emptied on a signal, so the next run
/// does not take this cleanly ended run for a killed one. (The lock itself
/// goes with the process.)
pub fn register_run_lock(path: &std::path::Path) {
    RUN_LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.to_path_buf());
}

/// Starts the task that waits for SIGINT or SIGTERM (must be called inside
/// the runtime). On either, it cleans up and exits 130 or 143, as shells
/// expect of a process ended by those signals.
pub fn install() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let (name, code) = tokio::select! {
            _ = interrupt.recv() => ("SIGINT", 130),
            _ = terminate.recv() => ("SIGTERM", 143),
        };
        INTERRUPTED.store(true, Ordering::SeqCst);
        CANCEL.cancel();
        let quiescers: Vec<Arc<Quiescer>> =
            QUIESCERS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (mut resumed, mut posts, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for quiescer in quiescers {
            let released = quiescer.release_all().await;
            resumed.extend(released.resumed);
            posts.extend(released.posts);
            failed.extend(released.errors);
        }
        let unmounted = unmount_all();
        let engines: Vec<Arc<dyn Engine>> =
            ENGINES.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // A mount is all that ran: no run, so nothing else to report.
        if engines.is_empty() && !unmounted.is_empty() {
            eprintln!(
                "\nInterrupted by {name}:{}.",
                unmounted.trim_end_matches(';')
            );
            std::process::exit(code);
        }
        let mut removed = 0;
        for engine in engines {
            removed += engine.remove_own_helpers().await.unwrap_or(0);
        }
        let mut services = unmounted;
        if !resumed.is_empty() {
            services.push_str(&format!(" started {} again;", resumed.join(", ")));
        }
        if !posts.is_empty() {
            services.push_str(&format!(" ran the post hook(s) {};", posts.join(", ")));
        }
        if !failed.is_empty() {
            services.push_str(&format!(
                " could NOT start or run {} (the next run, or `lifeboat recover`, starts what \
                 is still stopped);",
                failed.join("; ")
            ));
        }
        let incomplete = incomplete_restores();
        // A restore writing its target now may not stop at the signal: it
        // must not finish (and clear its journal) behind the user's back,
        // so then lifeboat exits at once, without the run's record.
        if incomplete.is_empty() {
            let deadline = tokio::time::Instant::now() + RECORD_WAIT;
            while RECORDS_DUE.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        services.push_str(&remove_drill_scratch().await);
        eprintln!(
            "\nInterrupted by {name}:{services} removed {removed} helper container(s) of this \
             run. What was stored in the repositories so far is kept, and the next run reuses \
             it.{incomplete}"
        );
        for path in RUN_LOCKS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(0));
        }
        std::process::exit(code);
    });
}
