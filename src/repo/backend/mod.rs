//! Storage backends: where repository files live.
//!
//! # Contract
//!
//! Every backend stores whole, immutable files addressed by ([`FileKind`],
//! name), each kind its own namespace. lifeboat names files by the hash
//! of their content (packs, index and snapshot files), by random ids
//! (locks, keys), or `config`; only locks are ever saved again under a
//! name that exists (and the config of a format-1 repository, once).
//! [`Backend`]'s methods document what each guarantees; in short:
//!
//! * **Atomic saves.** After [`Backend::save`] returns `Ok`, the file is
//!   entirely present and durable; after an error it is absent (or, when
//!   it replaced one, the old file is). No reader ever sees a partial
//!   file: not while it is written, not after a crash. Saves of one name
//!   from several threads leave one of them, whole.
//! * **Exact reads.** [`Backend::load`] returns exactly the bytes saved, or
//!   of a range of them; a range past the end is an error, never a short
//!   read. [`Backend::stat`] gives the saved size.
//! * **Missing files are `NotFound`.** Load, stat and remove of a file that
//!   is not there fail with `io::ErrorKind::NotFound`, never an empty
//!   result or success; other errors mean "could not tell".
//! * **Listings are consistent.** [`Backend::list`] names every file of a
//!   kind saved before it was called and not removed since, each once,
//!   in no particular order.
//! * **A full disk says so**: `io::ErrorKind::StorageFull`.
//! * **Leftovers are told apart.** A save killed midway may leave a
//!   temporary file that `list` shows (local, SFTP: `.NAME.tmp-PID-N`);
//!   [`Backend::stat_temporary`] says which listed names are of that
//!   pattern and [`Backend::remove_temporary`] removes only those, never a
//!   repository file or a file put there by hand.
//!
//! Backends know nothing about encryption, packs or snapshots: they move
//! bytes. Every backend passes the [`conformance`] suite (`run` it against
//! a new backend, and against its real server in an integration test).

pub mod conformance;
pub mod counting;
pub mod faulty;
pub mod local;
pub mod memory;
pub mod remembering;
pub mod s3;
pub mod sftp;

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The kinds of files in a repository, each in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// Legacy records of the settings the last apply applied (see
    /// `repo::applied`), converted into run records.
    Applied,
    /// One record per run (see `repo::runs`).
    Run,
}

impl FileKind {
    pub const ALL: [FileKind; 8] = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Applied,
        FileKind::Run,
    ];

    /// Directory name in file-like backends.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::Applied => "applied",
            FileKind::Run => "runs",
        }
    }
}

/// The directory of file (`kind`, `name`) under `root` in file-like
/// backends (local, SFTP), one layout for all so that a repository copied
/// between them opens: packs fan out into `data/xx/` by their first two
/// hex digits so no directory grows huge.
pub fn layout_dir(root: &Path, kind: FileKind, name: &str) -> PathBuf {
    match kind {
        FileKind::Config => root.to_path_buf(),
        FileKind::Pack => root.join(kind.dir()).join(&name[..name.len().min(2)]),
        _ => root.join(kind.dir()),
    }
}

/// Where a leftover temporary file `name` of `kind` (as `list` gives it)
/// lies under `root` in file-like backends, or `None` when `name` is no
/// temporary file: `.NAME.tmp-PID-N` (what a save writes beside its
/// file), and for packs `xx/.NAME.tmp-PID-N` (a save's, in `data/xx/`) or
/// `.pack.tmp-PID-N` (a streamed pack's, in `data/` itself). No other
/// name, and nothing outside the kind's directory, is ever one.
pub fn temporary_path(root: &Path, kind: FileKind, name: &str) -> Option<PathBuf> {
    let (sub, file) = match name.split_once('/') {
        Some((sub, file)) if kind == FileKind::Pack => (Some(sub), file),
        Some(_) => return None,
        None => (None, name),
    };
    if sub.is_some_and(|sub| sub.is_empty() || sub == "." || sub == "..")
        || !is_temporary_file_name(file)
    {
        return None;
    }
    let dir = match kind {
        FileKind::Config => return None,
        _ => root.join(kind.dir()),
    };
    Some(match sub {
        Some(sub) => dir.join(sub).join(file),
        None => dir.join(file),
    })
}

/// `.NAME.tmp-PID-N`: a leading dot, a name, `.tmp-`, two numbers.
fn is_temporary_file_name(file: &str) -> bool {
    let Some(rest) = file.strip_prefix('.') else {
        return false;
    };
    let Some((stem, numbers)) = rest.rsplit_once(".tmp-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !stem.is_empty()
        && !stem.contains('/')
        && numbers
            .split_once('-')
            .is_some_and(|(pid, n)| digits(pid) && digits(n))
}

/// The refusal of [`Backend::remove_temporary`] for a name that is no
/// temporary file of the backend.
pub fn not_temporary(kind: FileKind, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}/{name} is no temporary file of an interrupted save: not removed",
            kind.dir()
        ),
    )
}

/// Where a repository's files live: the contract is in the module doc.
/// Implementations are shared between threads (pack writers, lock
/// refreshers), so every method takes `&self`.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages. Never holds a secret.
    fn location(&self) -> String;

    /// Stores `data` as (`kind`, `name`), atomically and durably: written,
    /// flushed to stable storage, then made visible under its name (for
    /// files: temp file + fsync + rename + directory fsync). Replaces an
    /// existing file of that name whole. On error nothing new is visible.
    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()>;

    /// [`Backend::save`] of bytes the caller gives up, for a backend that
    /// would otherwise copy them (an upload's body): several packs in
    /// flight must not each be held twice.
    fn save_owned(&self, kind: FileKind, name: &str, data: Vec<u8>) -> io::Result<()> {
        self.save(kind, name, &data)
    }

    /// The whole file, or the bytes of `range` of it (`start..end`, end
    /// exclusive; an empty range at or before the end is an empty result).
    /// A missing file is `NotFound`; a range reaching past the end is
    /// `UnexpectedEof`, never fewer bytes.
    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>>;

    /// The size in bytes of a file, or `NotFound`.
    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64>;

    /// The names of every file of `kind`, each once, in no particular
    /// order; a kind nothing was saved in yet is an empty list. It lists
    /// whatever the namespace holds, including entries that are no name
    /// lifeboat gives (temporary files of interrupted saves, files put
    /// there by hand, shown so that no valid name can be mistaken for
    /// them): which names are files is the repository's call
    /// (`repo::is_file_name`), and it never loads or removes the others.
    fn list(&self, kind: FileKind) -> io::Result<Vec<String>>;

    /// Deletes a file: afterwards load and stat say `NotFound` and list
    /// leaves it out. Removing a missing file is `NotFound`.
    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()>;

    /// The size of `name` (as [`Backend::list`] gave it) when it is a
    /// temporary file of this backend's own pattern, one that a save or a
    /// streamed pack killed midway leaves; `None`, without asking the
    /// store, for any other name (a repository file, a file put there by
    /// hand). A temporary file that is gone is `NotFound`. A backend whose
    /// saves leave nothing behind (an object store, memory) has none.
    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        let _ = (kind, name);
        Ok(None)
    }

    /// Removes the temporary file `name` (as [`Backend::list`] gave it) that
    /// an interrupted save left; any name [`Backend::stat_temporary`] does
    /// not call temporary is refused with `InvalidInput` and nothing is
    /// removed. A missing one is `NotFound`. A save in progress writes such
    /// a file too: the caller makes sure none is (`prune` holds the
    /// exclusive lock, and leaves the temporary files of lock files alone).
    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        Err(not_temporary(kind, name))
    }

    /// Whether the location holds anything at all (to tell an empty place
    /// from a foreign one): true for a location that does not exist yet.
    fn is_empty(&self) -> io::Result<bool>;

    /// How many saves (and, separately, loads) the repository keeps going
    /// at once: each waits a whole round trip, which on a remote store
    /// costs far more than the bytes, so several in flight keep its link
    /// busy. Every method must be safe to call this many times at once
    /// (the contract holds per call whatever runs beside it). It also
    /// bounds memory: a pack in flight is held whole until its save returns
    /// (unless streamed, [`Backend::create_streamed_pack`]).
    fn requests_in_flight(&self) -> usize {
        DEFAULT_REQUESTS_IN_FLIGHT
    }

    /// A pack file written piece by piece as its blobs come, for a backend
    /// that can (a local directory): a backup then holds no whole pack in
    /// memory (three packs, 51 MB, were half of a real tree's first-backup
    /// peak, heaptrack). Its name, the hash of its content, is known only
    /// at the end: [`StreamedPack::commit`] gives it, with the guarantees
    /// of [`Backend::save`]. `None`: the backend saves whole files only.
    fn create_streamed_pack(&self) -> io::Result<Option<Box<dyn StreamedPack>>> {
        Ok(None)
    }
}

/// A pack being written by [`Backend::create_streamed_pack`]. Nothing of
/// it is visible before [`commit`](StreamedPack::commit) returns `Ok`;
/// dropped without, it is removed.
pub trait StreamedPack: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes what was written the pack `name`, atomically and durably.
    fn commit(self: Box<Self>, name: &str) -> io::Result<()>;
}

/// [`Backend::requests_in_flight`] of a backend that does not say:
/// what a local disk measured best with (a save is write + fsync, and two
/// overlap the fsync of one with the writing of the next).
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 2;

/// [`Backend::requests_in_flight`] of a remote store (S3, SFTP): restic's
/// default of five connections is about where more stop paying; four
/// packs of 16 MiB in flight keep memory well under the 150 MB a backup
/// may take.
pub const REMOTE_REQUESTS_IN_FLIGHT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn memory_backend_conforms() {
        conformance::assert_conforms(&|| Arc::new(memory::MemoryBackend::default()));
    }

    #[test]
    fn local_backend_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = std::sync::atomic::AtomicU32::new(0);
        conformance::assert_conforms(&|| {
            let n = fresh.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Arc::new(local::LocalBackend::new(
                dir.path().join(format!("repo{n}")),
            ))
        });
    }

    #[test]
    fn remembering_backend_conforms_while_remembering() {
        conformance::assert_conforms(&|| {
            let remembering =
                remembering::RememberingBackend::new(Arc::new(memory::MemoryBackend::default()));
            remembering.start();
            Arc::new(remembering)
        });
    }

    #[test]
    fn counting_backend_conforms() {
        conformance::assert_conforms(&|| {
            Arc::new(counting::CountingBackend::new(Arc::new(
                memory::MemoryBackend::default(),
            )))
        });
    }

    #[test]
    fn faulty_backend_without_faults_conforms() {
        conformance::assert_conforms(&|| {
            let inner = Arc::new(memory::MemoryBackend::default());
            Arc::new(faulty::FaultyBackend::new(inner, faulty::Faults::default()))
        });
    }

    /// The suite is worth running: a backend that shows files while they
    /// are written, or lists removed ones, is caught and named.
    #[test]
    fn the_suite_finds_a_backend_that_breaks_the_contract() {
        struct Careless(memory::MemoryBackend);
        impl Backend for Careless {
            fn location(&self) -> String {
                "careless".into()
            }
            fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
                // Visible half-written for a moment, as a non-atomic write is.
                self.0.save(kind, name, &data[..data.len() / 2])?;
                std::thread::sleep(std::time::Duration::from_millis(20));
                self.0.save(kind, name, data)
            }
            fn load(
                &self,
                kind: FileKind,
                name: &str,
                range: Option<Range<u64>>,
            ) -> io::Result<Vec<u8>> {
                self.0.load(kind, name, range)
            }
            fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
                self.0.stat(kind, name)
            }
            fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
                self.0.list(kind)
            }
            fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
                // A missing file is no error here: the contract says NotFound.
                match self.0.remove(kind, name) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
            fn is_empty(&self) -> io::Result<bool> {
                self.0.is_empty()
            }
        }
        let violations = conformance::run(&|| Arc::new(Careless(memory::MemoryBackend::default())));
        let checks: Vec<&str> = violations.iter().map(|v| v.check).collect();
        assert!(checks.contains(&"missing files"), "{violations:?}");
        assert!(checks.contains(&"remove"), "{violations:?}");
        assert!(checks.contains(&"atomic saves"), "{violations:?}");
        assert!(
            violations
                .iter()
                .all(|v| v.detail.starts_with("careless: ")),
            "{violations:?}"
        );
    }
}
