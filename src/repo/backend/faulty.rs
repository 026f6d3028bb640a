//! A backend wrapper that injects faults: failing or short writes, failing
//! reads, slow calls. Tests use it to prove that faults surface as errors
//! and never as silently stored bad data.

use super::counting::Gauge;
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
    /// Hold the first this many pack saves until they all run at once (at
    /// most [`HOLD_AT_MOST`]): slow uploads that overlap however fast or
    /// slowly the machine fills packs.
    pub hold_pack_saves: Option<u64>,
    /// Fail only the pack save with this number (0: the first), after its
    /// delay, while the others go on: an upload lost among several in flight.
    pub fail_pack_save: Option<u64>,
    /// What [`Backend::requests_in_flight`] answers (default: the inner backend's).
    pub requests_in_flight: Option<usize>,
    /// Fail ranged pack loads longer than this many bytes (merged reads of
    /// several blobs), while shorter ones (a blob alone) go on.
    pub fail_pack_ranges_longer_than: Option<u64>,
}

/// How long [`Faults::hold_pack_saves`] holds a save at most (a backup
/// of fewer packs never reaches the number).
pub const HOLD_AT_MOST: Duration = Duration::from_secs(30);

pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: Faults,
    saves: AtomicU64,
    pack_saves: AtomicU64,
    pack_saves_running: Gauge,
    pack_loads_running: Gauge,
    pack_loads: AtomicU64,
    pack_bytes_loaded: AtomicU64,
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>, faults: Faults) -> Self {
        FaultyBackend {
            inner,
            faults,
            saves: AtomicU64::new(0),
            pack_saves: AtomicU64::new(0),
            pack_saves_running: Gauge::default(),
            pack_loads_running: Gauge::default(),
            pack_loads: AtomicU64::new(0),
            pack_bytes_loaded: AtomicU64::new(0),
        }
    }

    /// Pack loads (whole or ranges) so far, failed ones included: the
    /// round trips a remote store would have made.
    pub fn pack_loads(&self) -> u64 {
        self.pack_loads.load(Ordering::SeqCst)
    }

    /// Bytes the pack loads that succeeded returned.
    pub fn pack_bytes_loaded(&self) -> u64 {
        self.pack_bytes_loaded.load(Ordering::SeqCst)
    }

    /// The most pack saves that were running at the same moment.
    pub fn most_pack_saves_at_once(&self) -> u64 {
        self.pack_saves_running.most.load(Ordering::SeqCst)
    }

    /// The most pack loads (whole or ranges) that were running at the same moment.
    pub fn most_pack_loads_at_once(&self) -> u64 {
        self.pack_loads_running.most.load(Ordering::SeqCst)
    }

    fn save_pack(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let number = self.pack_saves.fetch_add(1, Ordering::SeqCst);
        self.pack_saves_running.during(|| {
            if let Some(wanted) = self.faults.hold_pack_saves.filter(|n| number < *n) {
                let since = std::time::Instant::now();
                while self.pack_saves_running.now.load(Ordering::SeqCst) < wanted
                    && since.elapsed() < HOLD_AT_MOST
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if self.faults.fail_pack_save == Some(number) {
                return Err(io::Error::other(
                    "injected fault: this pack's upload failed",
                ));
            }
            self.save_as_told(FileKind::Pack, name, data)
        })
    }

    fn save_as_told(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        if self.faults.short_writes == Some(kind) {
            return self.inner.save(kind, name, &data[..data.len() / 2]);
        }
        self.inner.save(kind, name, data)
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
        if kind == FileKind::Pack {
            return self.save_pack(name, data);
        }
        self.save_as_told(kind, name, data)
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        let long = match (&range, self.faults.fail_pack_ranges_longer_than) {
            (Some(range), Some(limit)) => range.end.saturating_sub(range.start) > limit,
            _ => false,
        };
        let load = || {
            self.pause();
            if self.faults.fail_loads == Some(kind) {
                return Err(io::Error::other("injected fault: load failed"));
            }
            self.inner.load(kind, name, range)
        };
        if kind != FileKind::Pack {
            return load();
        }
        self.pack_loads.fetch_add(1, Ordering::SeqCst);
        let loaded = self.pack_loads_running.during(|| {
            if long {
                return Err(io::Error::other("injected fault: this ranged read failed"));
            }
            load()
        })?;
        self.pack_bytes_loaded
            .fetch_add(loaded.len() as u64, Ordering::SeqCst);
        Ok(loaded)
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

    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        self.pause();
        self.inner.stat_temporary(kind, name)
    }

    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.pause();
        self.inner.remove_temporary(kind, name)
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }

    fn requests_in_flight(&self) -> usize {
        self.faults
            .requests_in_flight
            .unwrap_or_else(|| self.inner.requests_in_flight())
    }
}
