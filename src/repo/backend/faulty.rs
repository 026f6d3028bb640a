//! A backend wrapper that injects faults: failing or short writes, failing
//! reads, slow calls. Tests use it to prove that faults surface as errors
//! and never as silently stored bad data.

use super::{Backend, FileKind};
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which faults to inject; counters are per call of that operation.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail every save after this many succeeded.
    pub fail_saves_after: Option<u64>,
    /// Store only the first half of the data for saves of this kind, and
    /// report success (a lying disk): readers must detect it.
    pub short_writes: Option<FileKind>,
    /// Fail loads of this kind.
    pub fail_loads: Option<FileKind>,
    /// Report a full disk instead of saving, after this many saves.
    pub disk_full_after: Option<u64>,
    /// Sleep this long in every call.
    pub delay: Option<Duration>,
}

pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: Faults,
    saves: AtomicU64,
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>, faults: Faults) -> Self {
        FaultyBackend {
            inner,
            faults,
            saves: AtomicU64::new(0),
        }
    }

    fn pause(&self) {
        if let Some(delay) = self.faults.delay {
            std::thread::sleep(delay);
        }
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        format!("faulty({})", self.inner.location())
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.pause();
        let count = self.saves.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_saves_after.is_some_and(|n| count >= n) {
            return Err(io::Error::other("injected fault: save failed"));
        }
        if self.faults.disk_full_after.is_some_and(|n| count >= n) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected fault: no space left",
            ));
        }
        if self.faults.short_writes == Some(kind) {
            return self.inner.save(kind, name, &data[..data.len() / 2]);
        }
        self.inner.save(kind, name, data)
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        self.pause();
        if self.faults.fail_loads == Some(kind) {
            return Err(io::Error::other("injected fault: load failed"));
        }
        self.inner.load(kind, name, range)
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        self.pause();
        self.inner.stat(kind, name)
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        self.pause();
        self.inner.list(kind)
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.pause();
        self.inner.remove(kind, name)
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }
}
