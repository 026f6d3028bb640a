//! A backend wrapper a repository handle reads through: during one run it
//! remembers the listings of snapshots, run records and legacy applied
//! records, and the snapshot and run files it loaded, so that plan and
//! apply, which each read them, make those requests once (each a round
//! trip on a remote store). Those files are named by the hash of their
//! content and never change in place, so a remembered file is the file.
//!
//! What this handle saves or removes updates what it remembers; what other
//! processes write meanwhile is not seen until [`RememberingBackend::forget`]
//! (the repository calls it when it takes the exclusive lock, after which
//! no one else writes). It remembers nothing until
//! [`RememberingBackend::start`]: long-lived readers (mount, status) always
//! see the store as it is. Locks, packs, index files, keys and the config
//! pass through untouched.

use super::{Backend, FileKind};
use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Loaded bytes kept at most: snapshot files and run records are a few
/// KiB each, so this is thousands of them; past it, loads pass through.
const MAX_REMEMBERED_BYTES: usize = 8 << 20;

pub struct RememberingBackend {
    inner: Arc<dyn Backend>,
    started: AtomicBool,
    memory: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    listings: HashMap<FileKind, Vec<String>>,
    files: HashMap<(FileKind, String), Arc<Vec<u8>>>,
    bytes: usize,
}

/// The kinds whose listings and files are remembered.
fn remembered(kind: FileKind) -> bool {
    matches!(kind, FileKind::Snapshot | FileKind::Run | FileKind::Applied)
}

impl RememberingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> RememberingBackend {
        RememberingBackend {
            inner,
            started: AtomicBool::new(false),
            memory: Mutex::default(),
        }
    }

    /// Remembers from now on (a run begins).
    pub fn start(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// Forgets what was remembered: the next reads see the store as it is.
    pub fn forget(&self) {
        *self.memory() = Remembered::default();
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remembers(&self, kind: FileKind) -> bool {
        remembered(kind) && self.started.load(Ordering::SeqCst)
    }

    /// After a save of (`kind`, `name`) through this handle: listed, and
    /// its bytes `data` (when given) served to the next load rather than
    /// read back from the store.
    fn saved(&self, kind: FileKind, name: &str, data: Option<Vec<u8>>) {
        if !remembered(kind) {
            return;
        }
        let mut memory = self.memory();
        if let Some(listing) = memory.listings.get_mut(&kind)
            && !listing.iter().any(|n| n == name)
        {
            listing.push(name.to_string());
        }
        // Only locks and a format-1 config are ever saved over; should
        // anything else be, the old bytes must not be served.
        if let Some(old) = memory.files.remove(&(kind, name.to_string())) {
            memory.bytes -= old.len();
        }
        if let Some(data) = data.filter(|_| self.started.load(Ordering::SeqCst))
            && memory.bytes + data.len() <= MAX_REMEMBERED_BYTES
        {
            memory.bytes += data.len();
            memory
                .files
                .insert((kind, name.to_string()), Arc::new(data));
        }
    }

    /// A copy of `data` for [`RememberingBackend::saved`] when it would keep it.
    fn kept(&self, kind: FileKind, data: &[u8]) -> Option<Vec<u8>> {
        (self.remembers(kind) && data.len() <= MAX_REMEMBERED_BYTES).then(|| data.to_vec())
    }
}

impl Backend for RememberingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.inner.save(kind, name, data)?;
        self.saved(kind, name, self.kept(kind, data));
        Ok(())
    }

    fn save_owned(&self, kind: FileKind, name: &str, data: Vec<u8>) -> io::Result<()> {
        let kept = self.kept(kind, &data);
        self.inner.save_owned(kind, name, data)?;
        self.saved(kind, name, kept);
        Ok(())
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        if range.is_some() || !self.remembers(kind) {
            return self.inner.load(kind, name, range);
        }
        let key = (kind, name.to_string());
        if let Some(bytes) = self.memory().files.get(&key) {
            return Ok(bytes.as_ref().clone());
        }
        let loaded = self.inner.load(kind, name, None)?;
        let mut memory = self.memory();
        if memory.bytes + loaded.len() <= MAX_REMEMBERED_BYTES && !memory.files.contains_key(&key) {
            memory.bytes += loaded.len();
            memory.files.insert(key, Arc::new(loaded.clone()));
        }
        Ok(loaded)
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        self.inner.stat(kind, name)
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        if !self.remembers(kind) {
            return self.inner.list(kind);
        }
        if let Some(listing) = self.memory().listings.get(&kind) {
            return Ok(listing.clone());
        }
        let listing = self.inner.list(kind)?;
        self.memory().listings.insert(kind, listing.clone());
        Ok(listing)
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        let removed = self.inner.remove(kind, name);
        self.removed(kind, name, &removed);
        removed
    }

    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        self.inner.stat_temporary(kind, name)
    }

    /// A remembered listing (of snapshots, runs) shows them too: it loses
    /// the name as with [`Backend::remove`].
    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        let removed = self.inner.remove_temporary(kind, name);
        self.removed(kind, name, &removed);
        removed
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }

    fn requests_in_flight(&self) -> usize {
        self.inner.requests_in_flight()
    }

    /// Packs pass through: none is remembered.
    fn create_streamed_pack(&self) -> io::Result<Option<Box<dyn super::StreamedPack>>> {
        self.inner.create_streamed_pack()
    }
}

impl RememberingBackend {
    /// Forgets (`kind`, `name`) once a removal says it is gone.
    fn removed(&self, kind: FileKind, name: &str, removed: &io::Result<()>) {
        let gone = match removed {
            Ok(()) => true,
            // Removed by someone else before.
            Err(error) => error.kind() == io::ErrorKind::NotFound,
        };
        if gone && remembered(kind) {
            let mut memory = self.memory();
            if let Some(listing) = memory.listings.get_mut(&kind) {
                listing.retain(|n| n != name);
            }
            if let Some(old) = memory.files.remove(&(kind, name.to_string())) {
                memory.bytes -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::counting::{CountingBackend, Operation};
    use crate::repo::backend::memory::MemoryBackend;

    #[test]
    fn a_run_lists_and_loads_once_and_sees_its_own_writes_but_not_others_until_it_forgets() {
        let store: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let counting = Arc::new(CountingBackend::new(store.clone()));
        let remembering = RememberingBackend::new(counting.clone());
        store.save(FileKind::Snapshot, "a", b"one").unwrap();
        // Not started: every read goes to the store.
        remembering.list(FileKind::Snapshot).unwrap();
        remembering.start();
        for _ in 0..3 {
            assert_eq!(remembering.list(FileKind::Snapshot).unwrap(), ["a"]);
            assert_eq!(
                remembering.load(FileKind::Snapshot, "a", None).unwrap(),
                b"one"
            );
        }
        assert_eq!(counting.requests_of(Operation::List, FileKind::Snapshot), 2);
        assert_eq!(counting.requests_of(Operation::Load, FileKind::Snapshot), 1);
        // Its own writes and removals show; another writer's wait for `forget`.
        remembering.save(FileKind::Snapshot, "b", b"two").unwrap();
        store.save(FileKind::Snapshot, "c", b"three").unwrap();
        remembering.remove(FileKind::Snapshot, "a").unwrap();
        assert_eq!(remembering.list(FileKind::Snapshot).unwrap(), ["b"]);
        assert!(remembering.load(FileKind::Snapshot, "a", None).is_err());
        remembering.forget();
        let mut listed = remembering.list(FileKind::Snapshot).unwrap();
        listed.sort();
        assert_eq!(listed, ["b", "c"]);
        // Locks always go to the store.
        remembering.list(FileKind::Lock).unwrap();
        remembering.list(FileKind::Lock).unwrap();
        assert_eq!(counting.requests_of(Operation::List, FileKind::Lock), 2);
    }

    #[test]
    fn a_file_this_handle_saved_during_a_run_is_not_read_back() {
        let store: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let counting = Arc::new(CountingBackend::new(store));
        let remembering = RememberingBackend::new(counting.clone());
        // Before the run: saved, and read from the store.
        remembering.save(FileKind::Run, "before", b"zero").unwrap();
        assert_eq!(
            remembering.load(FileKind::Run, "before", None).unwrap(),
            b"zero"
        );
        assert_eq!(counting.requests_of(Operation::Load, FileKind::Run), 1);
        remembering.start();
        remembering.save(FileKind::Run, "a", b"one").unwrap();
        remembering
            .save_owned(FileKind::Snapshot, "b", b"two".to_vec())
            .unwrap();
        assert_eq!(remembering.load(FileKind::Run, "a", None).unwrap(), b"one");
        assert_eq!(
            remembering.load(FileKind::Snapshot, "b", None).unwrap(),
            b"two"
        );
        assert_eq!(counting.requests_of(Operation::Load, FileKind::Run), 1);
        assert_eq!(counting.requests_of(Operation::Load, FileKind::Snapshot), 0);
        // A range, or a kind never remembered, still goes to the store.
        remembering.save(FileKind::Lock, "l", b"lock").unwrap();
        assert_eq!(
            remembering.load(FileKind::Lock, "l", None).unwrap(),
            b"lock"
        );
        assert_eq!(counting.requests_of(Operation::Load, FileKind::Lock), 1);
    }
}
