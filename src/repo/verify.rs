//! Proving a snapshot restorable before a restore destroys what is there
//! (`restore --replace` empties its target): the snapshot's tree reads and
//! passes the restore's guard, every content blob it needs is in the index,
//! and each one reads back from its pack, authenticated and matching its id.
//! Every needed blob is read once, whatever number of files share it.
//! Nothing here writes.

use super::crypto::BlobId;
use super::{RepoError, Repository, Snapshot};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Threads reading blobs: as many as the restore's decoders, so proving a
/// snapshot costs about what restoring it does on the reading side.
const READERS: usize = 2;

/// What proving a snapshot read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    pub blobs: u64,
    /// Bytes of content the blobs hold (decoded).
    pub bytes: u64,
}

impl Repository {
    /// Reads every blob `snapshot` needs, once, and checks it: an error
    /// ([`RepoError::Unrestorable`]) names the first missing or damaged
    /// blob and a file that needs it.
    pub fn verify_restorable(&self, snapshot: &Snapshot) -> Result<Verified, RepoError> {
        let unrestorable = |detail: String| RepoError::Unrestorable {
            snapshot: snapshot.id.short().to_string(),
            detail,
        };
        // The tree first: reading it reads and authenticates its blobs.
        let mut needed: Vec<(BlobId, String)> = Vec::new();
        let mut seen: HashSet<BlobId> = HashSet::new();
        self.for_each_admitted_node(snapshot, |node| {
            for id in &node.content {
                if seen.insert(*id) {
                    needed.push((*id, node.display_path()));
                }
            }
            Ok(())
        })
        .map_err(|error| match error {
            RepoError::Corrupt { what, detail } => unrestorable(format!("{what}: {detail}")),
            other => other,
        })?;
        // What the index lacks is known without reading a byte.
        if let Some((id, path)) = needed.iter().find(|(id, _)| !self.index().contains(id)) {
            return Err(unrestorable(format!(
                "blob {} of {path} is in no index (its pack is lost)",
                hex::encode(&id[..8])
            )));
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<(usize, String)>> = Mutex::new(None);
        let (blobs, bytes) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..READERS {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some((id, _)) = needed.get(at) else {
                            return;
                        };
                        match self.read_blob(id) {
                            Ok(data) => {
                                blobs.fetch_add(1, Ordering::Relaxed);
                                bytes.fetch_add(data.len(), Ordering::Relaxed);
                            }
                            Err(detail) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut first =
                                    first_error.lock().unwrap_or_else(|p| p.into_inner());
                                // The error of the earliest file in the tree, whichever reader saw it.
                                if first.as_ref().is_none_or(|(other, _)| at < *other) {
                                    *first = Some((at, detail));
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some((at, detail)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            let (id, path) = &needed[at];
            return Err(unrestorable(format!(
                "blob {} of {path}: {detail}",
                hex::encode(&id[..8])
            )));
        }
        Ok(Verified {
            blobs: blobs.into_inner() as u64,
            bytes: bytes.into_inner() as u64,
        })
    }
}

impl Repository {
    /// What can be known of `snapshot`'s health without reading its
    /// content, before a restore chooses the repository it reads: the tree
    /// reads and passes the restore's guard, every content blob is offered
    /// by the index (a copy found damaged is not), and for each, one pack
    /// holding it is there and long enough to hold it. Reads the tree and
    /// stats the packs; [`Repository::verify_restorable`] reads it all.
    pub fn probe_restorable(&self, snapshot: &Snapshot) -> Result<(), RepoError> {
        let unrestorable = |detail: String| RepoError::Unrestorable {
            snapshot: snapshot.id.short().to_string(),
            detail,
        };
        // Each pack's size, stat'ed once (`Err`: why it cannot be read).
        let mut sizes: std::collections::HashMap<String, Result<u64, String>> =
            std::collections::HashMap::new();
        let mut trouble: Option<String> = None;
        let mut visit = |node: super::tree::Node| {
            for id in &node.content {
                if trouble.is_some() {
                    break;
                }
                let locations = self.index().locations(id);
                if locations.is_empty() {
                    trouble = Some(format!(
                        "blob {} of {} is in no index (its pack is lost or the blob was found \
                         damaged)",
                        hex::encode(&id[..8]),
                        node.display_path()
                    ));
                    break;
                }
                // Sound when one copy is: a pack there, long enough to hold
                // it (a pack cut after its blobs, a lost trailer, restores).
                let mut why = String::new();
                let held = locations.iter().any(|(pack, blob)| {
                    let size = sizes.entry(pack.clone()).or_insert_with(|| {
                        self.backend()
                            .stat(super::FileKind::Pack, pack)
                            .map_err(|error| format!("unreadable: {error}"))
                    });
                    let end = u64::from(blob.offset) + u64::from(blob.length);
                    match size {
                        Ok(size) if *size >= end => true,
                        Ok(size) => {
                            why = format!(
                                "pack {} is {size} bytes, the blob ends at byte {end} \
                                 (truncated or overwritten)",
                                super::short(pack)
                            );
                            false
                        }
                        Err(error) => {
                            why = format!("pack {}: {error}", super::short(pack));
                            false
                        }
                    }
                });
                if !held {
                    trouble = Some(format!(
                        "blob {} of {}: {why}",
                        hex::encode(&id[..8]),
                        node.display_path()
                    ));
                }
            }
            Ok(())
        };
        // Streams and images have nodes of their own kinds, which the
        // guard of file trees does not admit.
        match snapshot.content {
            super::ContentKind::Tree => self.for_each_admitted_node(snapshot, &mut visit),
            super::ContentKind::Stream | super::ContentKind::Image => {
                self.for_each_node(snapshot, &mut visit)
            }
        }
        .map_err(|error| match error {
            RepoError::Corrupt { what, detail } => unrestorable(format!("{what}: {detail}")),
            other => other,
        })?;
        if let Some(detail) = trouble {
            return Err(unrestorable(detail));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::memory::MemoryBackend;
    use super::super::tests::{biggest_pack, quiet, source};
    use super::super::{Backend, FileKind, RepoOptions};
    use super::*;
    use std::sync::Arc;

    /// A repository with one snapshot of two files, one of several chunks.
    fn backed_up() -> (Arc<MemoryBackend>, Repository, Snapshot) {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("pass")).unwrap();
        let repository =
            Repository::open(backend.clone(), Some("pass"), RepoOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let big: Vec<u8> = (0..6_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        // The same content twice: its blobs are read once.
        std::fs::write(dir.path().join("copy.bin"), &big).unwrap();
        std::fs::write(dir.path().join("small.txt"), b"small").unwrap();
        let snapshot = repository
            .backup_dir(dir.path(), source("volume.a"), &quiet())
            .unwrap();
        (backend, repository, snapshot)
    }

    fn reopened(backend: Arc<MemoryBackend>) -> Repository {
        Repository::open(backend, Some("pass"), RepoOptions::default()).unwrap()
    }

    #[test]
    fn an_intact_snapshot_is_read_once_whole() {
        let (_, repository, snapshot) = backed_up();
        let verified = repository.verify_restorable(&snapshot).unwrap();
        assert_eq!(verified.bytes, 6_000_000 + 5);
        assert!(verified.blobs > 2, "{verified:?}");
    }

    #[test]
    fn a_damaged_or_lost_pack_makes_the_snapshot_unrestorable() {
        let (backend, _, snapshot) = backed_up();
        let pack = biggest_pack(&backend);
        backend.tamper(FileKind::Pack, &pack, |bytes| bytes[1000] ^= 0x01);
        let error = reopened(backend.clone())
            .verify_restorable(&snapshot)
            .unwrap_err();
        assert!(matches!(error, RepoError::Unrestorable { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("big.bin"), "{message}");
        assert!(message.contains("does not authenticate"), "{message}");

        backend.remove(FileKind::Pack, &pack).unwrap();
        let message = reopened(backend)
            .verify_restorable(&snapshot)
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot be restored"), "{message}");
        assert!(message.contains("check --read-data"), "{message}");
    }

    #[test]
    fn the_probe_sees_a_cut_or_lost_pack_without_reading_content() {
        let (backend, repository, snapshot) = backed_up();
        repository.probe_restorable(&snapshot).unwrap();
        let pack = biggest_pack(&backend);
        backend.tamper(FileKind::Pack, &pack, |bytes| {
            bytes.truncate(bytes.len() / 2)
        });
        let message = reopened(backend.clone())
            .probe_restorable(&snapshot)
            .unwrap_err()
            .to_string();
        // The cut takes the tree with it here (written last, in the same pack).
        assert!(message.contains("cannot be restored"), "{message}");
        backend.remove(FileKind::Pack, &pack).unwrap();
        let message = reopened(backend)
            .probe_restorable(&snapshot)
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot be restored"), "{message}");
    }
}
