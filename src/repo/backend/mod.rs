//! Storage backends: where repository files live.
//!
//! # Contract
//!
//! Every backend stores whole, immutable files addressed by ([`FileKind`], name):
//!
//! * [`Backend::save`] is atomic: afterwards the file is either entirely
//!   present and durable (written, flushed to stable storage, then made visible
//!   under its name, e.g. temp file + fsync + rename + directory fsync) or, if
//!   it returned an error, absent. Readers never see a partial file. Saving a
//!   name that exists replaces it atomically (only locks are rewritten, and
//!   the config of a format-1 repository, once).
//! * [`Backend::load`] returns the bytes of a file, or of `range` of it; a
//!   missing file is `io::ErrorKind::NotFound`, never an empty result. A range
//!   past the end is an error (`UnexpectedEof`), never a short read.
//! * [`Backend::stat`] returns the size, or `NotFound`.
//! * [`Backend::list`] returns the names of one kind, in no particular order;
//!   a missing kind directory is an empty list. It lists whatever the
//!   namespace holds, including entries that are no name lifeboat gives
//!   (temporary files of interrupted saves, files put there by hand, shown
//!   so that no valid name can be mistaken for them): which names are files
//!   is the repository's call (`repo::is_file_name`), and it never loads or
//!   removes the others.
//! * [`Backend::remove`] deletes; removing a missing file is `NotFound`.
//! * A full disk surfaces as `io::ErrorKind::StorageFull` so callers can say so.
//!
//! Backends know nothing about encryption, packs or snapshots. The shared
//! conformance suite in `tests` runs against every backend.

pub mod faulty;
pub mod local;
pub mod memory;

use std::io;
use std::ops::Range;

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

pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()>;
    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>>;
    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64>;
    fn list(&self, kind: FileKind) -> io::Result<Vec<String>>;
    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()>;
    /// Whether the location holds anything at all (to tell an empty place from a foreign one).
    fn is_empty(&self) -> io::Result<bool>;
}

#[cfg(test)]
pub(crate) mod tests {
    //! The conformance suite every backend passes.
    use super::*;

    pub fn conformance(backend: &dyn Backend) {
        assert!(backend.is_empty().unwrap());
        for kind in FileKind::ALL {
            assert_eq!(backend.list(kind).unwrap(), Vec::<String>::new());
        }
        let err = backend.load(FileKind::Pack, "ab12", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            backend.stat(FileKind::Index, "x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            backend.remove(FileKind::Index, "x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );

        backend
            .save(FileKind::Pack, "ab12", b"hello world")
            .unwrap();
        backend.save(FileKind::Pack, "cd34", b"").unwrap();
        backend.save(FileKind::Config, "config", b"{}").unwrap();
        assert!(!backend.is_empty().unwrap());
        assert_eq!(
            backend.load(FileKind::Pack, "ab12", None).unwrap(),
            b"hello world"
        );
        assert_eq!(
            backend.load(FileKind::Pack, "ab12", Some(6..11)).unwrap(),
            b"world"
        );
        assert_eq!(backend.load(FileKind::Pack, "cd34", None).unwrap(), b"");
        assert!(
            backend.load(FileKind::Pack, "ab12", Some(6..12)).is_err(),
            "no short reads"
        );
        assert_eq!(backend.stat(FileKind::Pack, "ab12").unwrap(), 11);
        let mut names = backend.list(FileKind::Pack).unwrap();
        names.sort();
        assert_eq!(names, ["ab12", "cd34"]);
        assert_eq!(backend.list(FileKind::Config).unwrap(), ["config"]);
        assert!(
            backend.list(FileKind::Index).unwrap().is_empty(),
            "kinds are separate"
        );

        backend.save(FileKind::Lock, "l1", b"one").unwrap();
        backend.save(FileKind::Lock, "l1", b"two").unwrap();
        assert_eq!(backend.load(FileKind::Lock, "l1", None).unwrap(), b"two");

        backend.remove(FileKind::Pack, "ab12").unwrap();
        assert_eq!(
            backend
                .load(FileKind::Pack, "ab12", None)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(backend.list(FileKind::Pack).unwrap(), ["cd34"]);
    }

    #[test]
    fn memory_backend_conforms() {
        conformance(&memory::MemoryBackend::default());
    }

    #[test]
    fn local_backend_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&local::LocalBackend::new(dir.path().join("repo")));
    }

    #[test]
    fn faulty_backend_without_faults_conforms() {
        let inner = std::sync::Arc::new(memory::MemoryBackend::default());
        conformance(&faulty::FaultyBackend::new(
            inner,
            faulty::Faults::default(),
        ));
    }
}
