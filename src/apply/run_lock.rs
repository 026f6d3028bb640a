//! The run lock: one run at a time acts on a spec's state directory
//! (`.lifeboat/`) and its services. `apply`, `restore`, `forget` and
//! `recover` take it before they touch anything; `plan` needs none.
//!
//! It is an exclusive flock(2) on `.lifeboat/run.lock`: the kernel releases
//! it when its process ends, however it ends, so a killed run never blocks
//! the next one. The file also names the holder (host, pid, command, start
//! time) for whoever has to wait. A holder recorded by a process that is
//! gone is a stale lock: broken, and said so.

use super::ApplyError;
use crate::host::ProcessId;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file, in the state directory.
pub const RUN_LOCK_FILE: &str = "run.lock";

/// How often a waiting run tries again.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Who holds a run lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHolder {
    pub host: String,
    pub pid: u32,
    /// The process, as [`ProcessId::token`] writes it.
    pub process: String,
    pub command: String,
    pub started: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Display for RunHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`lifeboat {}` (pid {} on {}, since {})",
            self.command,
            self.pid,
            self.host,
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held run lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    path: PathBuf,
    /// A stale lock this one replaced: its holder, whose process is gone.
    pub broken: Option<RunHolder>,
}

impl RunLock {
    /// The lock file (a signal's cleanup empties it before the process
    /// exits without dropping this).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty file after a clean exit: nothing stale to report next time.
        let _ = self.file.set_len(0);
        // Closing the file releases the flock.
    }
}

fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> ApplyError {
    let context = format!("{what} {}", path.display());
    move |source| ApplyError::Io { context, source }
}

/// Tries the flock without waiting: `Ok(false)` when someone holds it.
fn try_flock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this function borrows.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(error),
    }
}

/// The holder the file names; `None` when it names none (empty after a
/// clean exit, or not one of ours: the file is untrusted).
fn read_holder(file: &mut std::fs::File) -> Option<RunHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Takes the run lock of the spec whose state directory is `state_dir`
/// for `command`, waiting up to `timeout` for another run to finish; then
/// refuses, naming the holder.
pub fn lock_run(state_dir: &Path, command: &str, timeout: Duration) -> Result<RunLock, ApplyError> {
    std::fs::create_dir_all(state_dir).map_err(io(state_dir, "creating"))?;
    let path: PathBuf = state_dir.join(RUN_LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path, "opening"))?;
    let deadline = Instant::now() + timeout;
    while !try_flock(&file).map_err(io(&path, "locking"))? {
        if Instant::now() >= deadline {
            return Err(ApplyError::RunLocked {
                holder: read_holder(&mut file)
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "another lifeboat that has not said who it is yet".into()),
                path: path.display().to_string(),
            });
        }
        std::thread::sleep(RETRY_EVERY.min(deadline - Instant::now()));
    }
    // Held: whoever the file still names ended without releasing it.
    let broken = read_holder(&mut file);
    let me = ProcessId::current();
    let holder = RunHolder {
        host: me.host.clone(),
        pid: me.pid,
        process: me.token(),
        command: command.to_string(),
        started: chrono::Utc::now(),
    };
    let json = serde_json::to_vec(&holder).unwrap_or_default();
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(&json))
        .and_then(|_| file.sync_all())
        .map_err(io(&path, "writing"))?;
    Ok(RunLock { file, path, broken })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_waits_then_refuses_naming_the_first_and_a_dead_holder_is_broken() {
        let state = tempfile::tempdir().unwrap();
        let first = lock_run(state.path(), "apply", Duration::ZERO).unwrap();
        assert_eq!(first.broken, None);
        let started = Instant::now();
        let refused = lock_run(state.path(), "restore", Duration::from_millis(500)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(500), "it waited");
        let message = refused.to_string();
        assert!(
            message.contains("`lifeboat apply`")
                && message.contains(&format!("pid {}", std::process::id()))
                && message.contains("--lock-timeout"),
            "{message}"
        );
        drop(first);
        // Released cleanly: the next one notes nothing.
        let second = lock_run(state.path(), "restore", Duration::ZERO).unwrap();
        assert_eq!(second.broken, None);
        drop(second);

        // What a killed run leaves: its holder in the file, no flock.
        let dead = RunHolder {
            host: crate::host::hostname(),
            pid: 999_999_999,
            process: "999999999:1:boot".into(),
            command: "apply".into(),
            started: chrono::Utc::now(),
        };
        std::fs::write(
            state.path().join(RUN_LOCK_FILE),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let third = lock_run(state.path(), "recover", Duration::ZERO).unwrap();
        assert_eq!(third.broken, Some(dead));
    }
}
