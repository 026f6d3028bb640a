//! A backend wrapper that counts what goes through it: requests of each
//! operation, bytes each way, and the most loads running at once. What a
//! restore or a copy costs a remote store in round trips, measured on any
//! backend (tests wrap the in-memory one). It changes nothing it passes on.

use super::{Backend, FileKind};
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Calls running now, and the most that ever ran at once.
#[derive(Default)]
pub(crate) struct Gauge {
    pub(crate) now: AtomicU64,
    pub(crate) most: AtomicU64,
}

impl Gauge {
    pub(crate) fn during<T>(&self, call: impl FnOnce() -> T) -> T {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(running, Ordering::SeqCst);
        let result = call();
        self.now.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// What went through a [`CountingBackend`] so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Loads of packs (whole or ranges), failed ones included.
    pub pack_loads: u64,
    /// Loads of every other kind (config, keys, index, snapshots, locks).
    pub other_loads: u64,
    /// Bytes the loads that succeeded returned.
    pub bytes_loaded: u64,
    pub saves: u64,
    pub bytes_saved: u64,
    pub lists: u64,
    pub stats: u64,
    pub removes: u64,
    /// The most loads that were running at the same moment.
    pub most_loads_at_once: u64,
}

impl Counts {
    /// Every request made, of whatever kind.
    pub fn requests(&self) -> u64 {
        self.pack_loads + self.other_loads + self.saves + self.lists + self.stats + self.removes
    }
}

/// The operations of the backend contract, for [`CountingBackend::tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    List,
    Stat,
    Load,
    Save,
    Remove,
}

pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    /// Requests by operation and file kind: which files a run reads again.
    tally: Mutex<BTreeMap<(Operation, FileKind), u64>>,
    pack_loads: AtomicU64,
    other_loads: AtomicU64,
    bytes_loaded: AtomicU64,
    saves: AtomicU64,
    bytes_saved: AtomicU64,
    lists: AtomicU64,
    stats: AtomicU64,
    removes: AtomicU64,
    loads_running: Gauge,
}

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::SeqCst);
}

impl CountingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> CountingBackend {
        CountingBackend {
            inner,
            tally: Mutex::default(),
            pack_loads: AtomicU64::new(0),
            other_loads: AtomicU64::new(0),
            bytes_loaded: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            bytes_saved: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            stats: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            loads_running: Gauge::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        let read = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        Counts {
            pack_loads: read(&self.pack_loads),
            other_loads: read(&self.other_loads),
            bytes_loaded: read(&self.bytes_loaded),
            saves: read(&self.saves),
            bytes_saved: read(&self.bytes_saved),
            lists: read(&self.lists),
            stats: read(&self.stats),
            removes: read(&self.removes),
            most_loads_at_once: read(&self.loads_running.most),
        }
    }

    /// Requests so far by operation and file kind.
    pub fn tally(&self) -> BTreeMap<(Operation, FileKind), u64> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests of one operation on one kind of file so far.
    pub fn requests_of(&self, operation: Operation, kind: FileKind) -> u64 {
        self.tally().get(&(operation, kind)).copied().unwrap_or(0)
    }

    fn note(&self, operation: Operation, kind: FileKind) {
        *self
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((operation, kind))
            .or_default() += 1;
    }

    /// Starts the high-water mark of loads at once again (counts go on).
    pub fn reset_most_loads_at_once(&self) {
        self.loads_running.most.store(0, Ordering::SeqCst);
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.note(Operation::Save, kind);
        count(&self.saves, 1);
        count(&self.bytes_saved, data.len() as u64);
        self.inner.save(kind, name, data)
    }

    fn save_owned(&self, kind: FileKind, name: &str, data: Vec<u8>) -> io::Result<()> {
        self.note(Operation::Save, kind);
        count(&self.saves, 1);
        count(&self.bytes_saved, data.len() as u64);
        self.inner.save_owned(kind, name, data)
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        self.note(Operation::Load, kind);
        match kind {
            FileKind::Pack => count(&self.pack_loads, 1),
            _ => count(&self.other_loads, 1),
        }
        let loaded = self
            .loads_running
            .during(|| self.inner.load(kind, name, range))?;
        count(&self.bytes_loaded, loaded.len() as u64);
        Ok(loaded)
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        self.note(Operation::Stat, kind);
        count(&self.stats, 1);
        self.inner.stat(kind, name)
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        self.note(Operation::List, kind);
        count(&self.lists, 1);
        self.inner.list(kind)
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.note(Operation::Remove, kind);
        count(&self.removes, 1);
        self.inner.remove(kind, name)
    }

    /// A stat when it asked the store (a name of the temporary pattern).
    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        let stat = self.inner.stat_temporary(kind, name);
        if !matches!(stat, Ok(None)) {
            self.note(Operation::Stat, kind);
            count(&self.stats, 1);
        }
        stat
    }

    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.note(Operation::Remove, kind);
        count(&self.removes, 1);
        self.inner.remove_temporary(kind, name)
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }

    fn requests_in_flight(&self) -> usize {
        self.inner.requests_in_flight()
    }
}
