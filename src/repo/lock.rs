//! Repository locks: backups and restores share the repository; anything
//! that deletes data holds it alone.
//!
//! A lock is an encrypted file in `locks/` naming its holder (host, pid,
//! command, start time), rewritten every few minutes while held. The taker
//! writes its own lock first and then looks for conflicting ones, so two
//! racing takers both see each other and back off. A lock whose process is
//! gone (same host) or that was not refreshed for [`STALE_AFTER`] is stale:
//! it never blocks anyone and `unlock` removes it.

use super::backend::{Backend, FileKind};
use super::crypto::Keys;
use super::{RepoError, Repository};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub hostname: String,
    pub pid: u32,
    pub command: String,
    pub started: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
    pub exclusive: bool,
}

use crate::host::hostname;

pub(crate) fn describe_locked(holder: &LockInfo) -> String {
    format!(
        "the repository is locked{} by `{}` (pid {} on {}, since {}): wait for it to finish \
         (--lock-timeout), or if that process is gone, run `lifeboat unlock`",
        if holder.exclusive { " exclusively" } else { "" },
        holder.command,
        holder.pid,
        holder.hostname,
        holder.started.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

impl LockInfo {
    pub fn is_stale(&self) -> bool {
        let silent = (Utc::now() - self.refreshed).to_std().unwrap_or_default();
        silent > STALE_AFTER || (self.hostname == hostname() && !process_alive(self.pid))
    }
}

/// A held lock; released when dropped.
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    name: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<std::thread::JoinHandle<()>>,
    released: AtomicBool,
    exclusive: bool,
}

impl std::fmt::Debug for RepoLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RepoLock({})", self.name)
    }
}

impl RepoLock {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this lock excludes everyone else.
    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// A lock that `run` (the lock a whole run holds, at least as strong)
    /// already gives: no file of its own to write, list against, refresh or
    /// remove. `run` is refreshed by its own thread and removed when the
    /// run ends, on every exit path, so dropping this one does nothing.
    pub(crate) fn covered_by(run: &RepoLock) -> RepoLock {
        RepoLock {
            backend: run.backend.clone(),
            name: run.name.clone(),
            stop: Arc::new((Mutex::new(true), Condvar::new())),
            refresher: None,
            released: AtomicBool::new(true),
            exclusive: run.exclusive,
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let (stopped, wake) = &*self.stop;
            *stopped.lock().expect("not poisoned") = true;
            wake.notify_all();
        }
        if let Some(thread) = self.refresher.take() {
            let _ = thread.join();
        }
        let _ = self.backend.remove(FileKind::Lock, &self.name);
    }
}

fn write(backend: &dyn Backend, keys: &Keys, name: &str, info: &LockInfo) -> Result<(), RepoError> {
    let bytes = keys.encrypt(&serde_json::to_vec(info).expect("locks serialise"));
    backend
        .save(FileKind::Lock, name, &bytes)
        .map_err(RepoError::io("writing a lock"))
}

/// Every lock but `except`: Ok(info) when readable, Err(name) when not.
fn others(
    repository: &Repository,
    except: &str,
) -> Result<Vec<(String, Option<LockInfo>)>, RepoError> {
    // Files that are no lock (not named like one) are no one's lock: they
    // block nobody and `unlock` leaves them alone (`check` notes them).
    let names = repository.list_files(FileKind::Lock)?.files;
    let mut locks = Vec::new();
    for name in names.into_iter().filter(|n| n != except) {
        let info = match repository.backend().load(FileKind::Lock, &name, None) {
            Ok(bytes) => repository
                .keys()
                .decrypt(&bytes)
                .ok()
                .and_then(|plain| serde_json::from_slice(&plain).ok()),
            // Released between listing and reading.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RepoError::io("reading a lock")(e)),
        };
        locks.push((name, info));
    }
    Ok(locks)
}

pub(crate) fn acquire(repository: &Repository, exclusive: bool) -> Result<RepoLock, RepoError> {
    let backend: Arc<dyn Backend> = repository.backend.clone();
    let keys = repository.keys().clone();
    let now = Utc::now();
    let info = LockInfo {
        hostname: hostname(),
        pid: std::process::id(),
        command: repository.options().command.clone(),
        started: now,
        refreshed: now,
        exclusive,
    };
    let name = hex::encode(rand::random::<[u8; 16]>());
    let deadline = Instant::now() + repository.options().lock_timeout;
    // The run's own lock (this process, this handle) is not a conflict.
    let own = repository.run_lock_name();
    loop {
        write(backend.as_ref(), &keys, &name, &info)?;
        let conflict = others(repository, &name)?
            .into_iter()
            .filter(|(other, _)| own.as_ref() != Some(other))
            .filter_map(|(_, info)| info)
            .filter(|other| !other.is_stale())
            .find(|other| exclusive || other.exclusive);
        let Some(holder) = conflict else {
            break;
        };
        let _ = backend.remove(FileKind::Lock, &name);
        if Instant::now() >= deadline {
            return Err(RepoError::Locked {
                holder: Box::new(holder),
            });
        }
        std::thread::sleep(Duration::from_millis(500).min(deadline - Instant::now()));
    }
    if exclusive {
        repository.forget_remembered();
    }
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let refresher = {
        let (backend, keys, name, stop, mut info) = (
            backend.clone(),
            keys.clone(),
            name.clone(),
            stop.clone(),
            info.clone(),
        );
        std::thread::spawn(move || {
            let (stopped, wake) = &*stop;
            let mut guard = stopped.lock().expect("not poisoned");
            loop {
                if *guard {
                    return;
                }
                let (next, timeout) = wake
                    .wait_timeout(guard, REFRESH_EVERY)
                    .expect("not poisoned");
                guard = next;
                if *guard || !timeout.timed_out() {
                    continue;
                }
                info.refreshed = Utc::now();
                let _ = write(backend.as_ref(), &keys, &name, &info);
            }
        })
    };
    Ok(RepoLock {
        backend,
        name,
        stop,
        refresher: Some(refresher),
        released: AtomicBool::new(false),
        exclusive,
    })
}

/// Removes stale and unreadable locks, never a live one.
pub(crate) fn remove_stale(repository: &Repository) -> Result<usize, RepoError> {
    let mut removed = 0;
    for (name, info) in others(repository, "")? {
        if info.is_none_or(|i| i.is_stale()) {
            repository
                .backend()
                .remove(FileKind::Lock, &name)
                .map_err(RepoError::io("removing a stale lock"))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The locks currently held (for `check` and messages).
pub(crate) fn list(repository: &Repository) -> Result<Vec<LockInfo>, RepoError> {
    Ok(others(repository, "")?
        .into_iter()
        .filter_map(|(_, i)| i)
        .collect())
}
