//! Copies: one snapshot from this repository into another, read from the
//! source repository alone (never from Docker), so a resource a policy keeps
//! in several repositories is read from the engine once.
//!
//! Only blobs the target's index lacks are sent. Blob ids are keyed
//! (`crypto`): when both repositories name blobs with the same id key, ids
//! and tree blobs are kept as they are, and a blob the target holds is not
//! even read from the source; when the keys differ, every data blob the
//! snapshot needs is read and named with the target's key (unless an
//! earlier copy of the same resource gives its new id), and the tree is
//! written again node by node with the new ids (a map old id → new id is
//! all that is held: ids, never content). The tree is cut by the same
//! writer as a backup's, so the copy deduplicates against backups made
//! straight into the target. Why repositories keep their own keys, and
//! what each way costs: docs/repository-format.md, "Copies between
//! repositories".
//!
//! Order, as for a backup: packs → index → snapshot. Before the snapshot
//! file is written the copy is verified in the target (its tree read back,
//! every blob it names indexed, sizes adding up to the summary), so an
//! interrupted or failed copy leaves no snapshot there, only packs the next
//! copy reuses ([`Repository::sync_index_with_packs`]) or `prune` removes.
//!
//! This module reads the source and writes the target; of the source it
//! changes only what every read may (its lock, and the record of a damaged
//! blob found), and it decides nothing about which repositories need a copy.

use super::archiver::{Submitter, TreeWriter, with_pipeline_as};
use super::coalesce::{Prefetched, ReadPlan};
use super::crypto::BlobId;
use super::pack::{BlobKind, PackedBlob};
use super::profile::ContentProfile;
use super::restorer::check_totals;
use super::tree::{Node, NodeKind};
use super::{
    FileKind, Progress, RepoError, Repository, Snapshot, SnapshotId, SnapshotSummary, TreeTotals,
    short,
};
use std::collections::HashMap;

/// A snapshot as a copy stored it in its target, and what the copy sent.
#[derive(Debug, Clone)]
pub struct CopiedSnapshot {
    /// The snapshot as stored in the target: its own id there, the
    /// source's time, resource, source fields and hostname, and a summary
    /// whose `added_bytes` and `new_blobs` say what the copy added.
    pub snapshot: Snapshot,
    /// Blobs stored in the target (0 when it held them all).
    pub blobs_sent: u64,
    /// Bytes written to the target: packs and index files.
    pub bytes_sent: u64,
}

/// Whether two snapshots are the same moment of the same resource: a copy
/// of one into a repository that holds the other has nothing to do.
fn same_moment(a: &Snapshot, b: &Snapshot) -> bool {
    a.resource == b.resource && a.time == b.time && a.source.run == b.source.run
}

impl Repository {
    /// Reads every node of `snapshot`'s tree, checked as its readers check
    /// it (a file tree through the restore's guard; the nodes of streams
    /// and images by their own readers), each node's content against the
    /// index (every blob indexed, sizes adding up). Returns the totals
    /// to hold against the summary.
    fn checked_walk(
        &self,
        snapshot: &Snapshot,
        mut visit: impl FnMut(Node) -> Result<(), RepoError>,
    ) -> Result<TreeTotals, RepoError> {
        let mut totals = TreeTotals::default();
        let mut checked = |node: Node| {
            self.check_node_content(&node)?;
            if node.kind == NodeKind::File {
                totals.files += 1;
                totals.bytes += node.size;
            }
            visit(node)
        };
        self.for_each_node_of_content(snapshot, &mut checked)?;
        Ok(totals)
    }

    /// Copies `snapshot` (of this repository) into `target`, sending only
    /// the blobs `target` lacks, and verifies the copy there before its
    /// snapshot file is written. A target that already holds the snapshot
    /// (same resource, time and run) gets nothing and its snapshot is
    /// returned. Both repositories are locked shared for the copy.
    ///
    /// Damaged data in the source is an integrity error
    /// ([`RepoError::Corrupt`], [`RepoError::BadBlob`]) naming the snapshot
    /// and what is damaged; the target then holds no snapshot of it.
    pub fn copy_snapshot(
        &self,
        target: &Repository,
        snapshot: &Snapshot,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<CopiedSnapshot, RepoError> {
        let _source_lock = self.lock_shared()?;
        let _target_lock = target.lock_shared()?;
        let held = target.snapshots()?;
        if let Some(existing) = held.iter().find(|held| same_moment(held, snapshot)) {
            return Ok(CopiedSnapshot {
                snapshot: existing.clone(),
                blobs_sent: 0,
                bytes_sent: 0,
            });
        }
        // Packs an interrupted copy (or backup) left unindexed are reused;
        // entries of packs that are gone are not trusted.
        target.sync_index_with_packs()?;
        let same_ids = self.keys().same_blob_ids(target.keys());
        let known = if same_ids {
            HashMap::new()
        } else {
            self.ids_of_an_earlier_copy(target, snapshot, &held)?
        };
        // Compressed as a backup of its kind would be: an image copied
        // off the host stays as small as on it.
        let compression = ContentProfile::of(snapshot.content, target.chunker()).compression;
        let (tree, stats) = with_pipeline_as(target, compression, |submitter| {
            let mut sender = BlobSender {
                source: self,
                target,
                snapshot,
                same_ids,
                sent: known,
                submitter,
            };
            sender.send(progress)
        })?;
        let mut copied = Snapshot {
            id: SnapshotId(String::new()),
            tree,
            summary: SnapshotSummary {
                added_bytes: stats.stored_bytes,
                new_blobs: stats.new_blobs,
                ..snapshot.summary.clone()
            },
            notes: Vec::new(),
            ..snapshot.clone()
        };
        target
            .checked_walk(&copied, |_| Ok(()))
            .and_then(|totals| check_totals(&copied, totals))
            .and_then(|()| target.packs_kept(&stats.packs))
            .map_err(|error| match error {
                // Damage, as opposed to a target that stopped answering.
                RepoError::Corrupt { .. } | RepoError::BadBlob { .. } => RepoError::Corrupt {
                    what: format!(
                        "the copy of snapshot {} ({}) in {}",
                        snapshot.id.short(),
                        snapshot.resource,
                        target.location()
                    ),
                    detail: format!(
                        "it does not verify after sending ({error}); no snapshot was written there"
                    ),
                },
                _ => error,
            })?;
        copied.id = target.save_snapshot(&copied)?;
        Ok(CopiedSnapshot {
            snapshot: copied,
            blobs_sent: stats.new_blobs,
            bytes_sent: stats.stored_bytes,
        })
    }

    /// Whether each pack just written is there with all its bytes (a
    /// storage that acknowledged a save it did not keep is found here, by
    /// one stat per pack, not by the next restore).
    fn packs_kept(&self, written: &[(String, u64)]) -> Result<(), RepoError> {
        for (name, size) in written {
            let kept = self
                .backend()
                .stat(FileKind::Pack, name)
                .map_err(RepoError::io(format!("looking at pack {}", short(name))))?;
            if kept != *size {
                return Err(RepoError::Corrupt {
                    what: format!("pack {}", short(name)),
                    detail: format!("{kept} bytes stored of the {size} written"),
                });
            }
        }
        Ok(())
    }

    /// When the keys differ, the target's id of a source blob is known
    /// without reading the blob only from an earlier copy: the newest
    /// snapshot of the same resource in `target` (`held`) that is a copy of
    /// a snapshot still in this repository has the same entries with the
    /// same number of blobs each, so its ids pair with the original's by
    /// position. Pairs are kept only where both blobs have the same length
    /// and the target still indexes its blob. Returns source id → target
    /// id (empty when there is no such copy, or the two do not match up:
    /// then every blob is read, as on a first copy). Only ids are held.
    fn ids_of_an_earlier_copy(
        &self,
        target: &Repository,
        snapshot: &Snapshot,
        held: &[Snapshot],
    ) -> Result<HashMap<BlobId, BlobId>, RepoError> {
        let originals = self.snapshots()?;
        let Some((original, copy)) = held
            .iter()
            .rev()
            .filter(|copy| copy.resource == snapshot.resource && copy.content == snapshot.content)
            .find_map(|copy| {
                let original = originals.iter().find(|o| same_moment(o, copy))?;
                Some((original, copy))
            })
        else {
            return Ok(HashMap::new());
        };
        // Damage in either tree, or trees that do not pair up, only cost
        // reads: the copy then reads every blob.
        let mismatch = || RepoError::Source("the trees do not pair up".into());
        let mut original_ids: Vec<BlobId> = Vec::new();
        let mut blobs_per_entry: Vec<usize> = Vec::new();
        let read = self.for_each_node(original, |node| {
            blobs_per_entry.push(node.content.len());
            original_ids.extend(node.content);
            Ok(())
        });
        if read.is_err() {
            return Ok(HashMap::new());
        }
        let mut pairs: HashMap<BlobId, BlobId> = HashMap::new();
        let (mut entry, mut at) = (0, 0);
        let paired = target.for_each_node(copy, |node| {
            if blobs_per_entry.get(entry) != Some(&node.content.len()) {
                return Err(mismatch());
            }
            entry += 1;
            for new in node.content {
                let old = original_ids[at];
                at += 1;
                if pairs.insert(old, new).is_some_and(|before| before != new) {
                    return Err(mismatch());
                }
            }
            Ok(())
        });
        if paired.is_err() || entry != blobs_per_entry.len() {
            return Ok(HashMap::new());
        }
        let length = |repository: &Repository, id: &BlobId| {
            let locations = repository.index().locations(id);
            locations.first().map(|(_, blob)| blob.raw_length)
        };
        pairs.retain(|old, new| {
            let target_length = length(target, new);
            target_length.is_some() && target_length == length(self, old)
        });
        Ok(pairs)
    }
}

/// Blobs are read from the source in batches of up to this many bytes or
/// entries, each batch by pack in long stretches, several at once
/// ([`Prefetched`]), then decoded on [`READERS`] threads (or as many as the
/// source takes requests in flight): authenticating, decompressing and
/// naming each blob is as much work as sealing it again, so it is not left
/// to one thread while the pipeline's workers wait. The batch bounds the
/// memory (its blobs are in flight at once), whatever the snapshot.
const BATCH_BYTES: u64 = 16 << 20;
/// A reader reads its share of a batch in stretches of at most this much,
/// and hands each stretch's blobs on before it reads the next: it holds
/// one stretch, not its whole share (the copy's peak memory was the
/// target's pipeline plus every reader's share of the batch).
pub(crate) const COPY_RUN: u64 = 4 << 20;
const BATCH_NODES: usize = 512;
const READERS: usize = 2;

/// One copy's walk over the source snapshot, handing what the target
/// lacks to the target's storage pipeline.
struct BlobSender<'a, 's, 'r> {
    source: &'a Repository,
    target: &'a Repository,
    snapshot: &'a Snapshot,
    /// Both repositories name blobs with the same key: ids stay as they are.
    same_ids: bool,
    /// Source id → target id of every data blob the target holds or was
    /// sent (ids only, never content).
    sent: HashMap<BlobId, BlobId>,
    submitter: &'s Submitter<'r>,
}

/// A blob to read from the source: its id, the file that needs it, and
/// where the source holds it.
type BlobRead<'p> = (BlobId, &'p str, Vec<(String, PackedBlob)>);

/// Entries waiting for the blobs they need to be read and sent.
#[derive(Default)]
struct Batch {
    nodes: Vec<Node>,
    /// Blobs to read from the source, with the file that needs each.
    reads: Vec<(BlobId, String)>,
    bytes: u64,
}

impl BlobSender<'_, '_, '_> {
    /// Sends every blob of the snapshot the target lacks; returns the
    /// target's tree blobs, in order.
    fn send(&mut self, progress: &(dyn Fn(Progress) + Sync)) -> Result<Vec<BlobId>, RepoError> {
        let mut rewritten = (!self.same_ids).then(TreeWriter::default);
        let mut shown = Progress::default();
        let mut batch = Batch::default();
        let mut queued = std::collections::HashSet::new();
        self.source.checked_walk(self.snapshot, |node| {
            for id in &node.content {
                if self.sent.contains_key(id) || !queued.insert(*id) {
                    continue;
                }
                if self.same_ids && self.target.index().contains(id) {
                    self.sent.insert(*id, *id);
                    continue;
                }
                batch.bytes += self
                    .source
                    .index()
                    .locations(id)
                    .first()
                    .map_or(0, |(_, blob)| u64::from(blob.raw_length));
                batch.reads.push((*id, node.display_path()));
            }
            batch.nodes.push(node);
            if batch.bytes >= BATCH_BYTES || batch.nodes.len() >= BATCH_NODES {
                self.flush(
                    std::mem::take(&mut batch),
                    rewritten.as_mut(),
                    &mut shown,
                    progress,
                )?;
                queued.clear();
            }
            Ok(())
        })?;
        self.flush(batch, rewritten.as_mut(), &mut shown, progress)?;
        match rewritten {
            Some(writer) => writer.finish(self.submitter),
            None => {
                for id in &self.snapshot.tree {
                    if !self.target.index().contains(id) {
                        let data = self.read(id, "its tree")?;
                        self.submitter
                            .submit_identified(BlobKind::Tree, *id, &data)?;
                    }
                }
                Ok(self.snapshot.tree.clone())
            }
        }
    }

    /// Reads and sends the batch's blobs, then records its entries (with
    /// the target's ids) in the rewritten tree.
    fn flush(
        &mut self,
        batch: Batch,
        rewritten: Option<&mut TreeWriter>,
        shown: &mut Progress,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), RepoError> {
        let plan = ReadPlan::for_backend(self.source.backend());
        let readers = READERS.max(plan.in_flight);
        let reads: Vec<BlobRead> = batch
            .reads
            .iter()
            .map(|(id, path)| (*id, path.as_str(), self.source.index().locations(id)))
            .collect();
        // Each reader reads its share (neighbours in the walk's order, so
        // mostly neighbours in a pack) by pack, one request at a time: the
        // readers together keep `in_flight` going, and decode while the
        // others wait for theirs.
        let plan = ReadPlan {
            in_flight: 1,
            max_span: plan.max_span.min(COPY_RUN),
            ..plan
        };
        let per_reader = reads.len().div_ceil(readers).max(1);
        let this = &*self;
        let sent: Vec<Result<Vec<(BlobId, BlobId)>, RepoError>> = std::thread::scope(|scope| {
            let readers: Vec<_> = reads
                .chunks(per_reader)
                .map(|reads| {
                    scope.spawn(move || {
                        let blobs: Vec<_> = reads.iter().map(|(_, _, l)| l.as_slice()).collect();
                        let mut sent = Vec::with_capacity(reads.len());
                        Prefetched::read_by_run(this.source, &blobs, plan, |i, run| {
                            let (id, path, locations) = &reads[i];
                            let data = run
                                .blob(this.source, locations)
                                .map_err(|detail| this.damaged(id, path, detail))?;
                            sent.push((*id, this.send_data(id, data)?));
                            Ok(())
                        })
                        .map(|()| sent)
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|reader| {
                    reader
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))
                })
                .collect()
        });
        for pairs in sent {
            self.sent.extend(pairs?);
        }
        let mut rewritten = rewritten;
        for mut node in batch.nodes {
            if node.kind == NodeKind::File {
                shown.files += 1;
                shown.bytes += node.size;
                progress(shown.clone());
            }
            if let Some(writer) = rewritten.as_deref_mut() {
                for id in &mut node.content {
                    *id = *self
                        .sent
                        .get(id)
                        .ok_or_else(|| RepoError::Source("copy out of step".into()))?;
                }
                writer.push(&node, self.submitter)?;
            }
        }
        Ok(())
    }

    /// Hands one data blob read from the source to the target's pipeline;
    /// returns its id in the target.
    fn send_data(&self, id: &BlobId, data: Vec<u8>) -> Result<BlobId, RepoError> {
        if self.same_ids {
            // Reading verified the id, and the target names blobs alike.
            self.submitter
                .submit_identified(BlobKind::Data, *id, &data)?;
            Ok(*id)
        } else {
            self.submitter.submit(BlobKind::Data, &data)
        }
    }

    /// One blob of the source, verified; damage is an integrity error
    /// naming the snapshot and the file (or tree) that needs the blob.
    fn read(&self, id: &BlobId, needed_by: &str) -> Result<Vec<u8>, RepoError> {
        self.source
            .read_blob(id)
            .map_err(|detail| self.damaged(id, needed_by, detail))
    }

    /// The integrity error of a source blob that does not read.
    fn damaged(&self, id: &BlobId, needed_by: &str, detail: String) -> RepoError {
        RepoError::Corrupt {
            what: format!(
                "snapshot {} ({}) in {}",
                self.snapshot.id.short(),
                self.snapshot.resource,
                self.source.location()
            ),
            detail: format!(
                "blob {} of {needed_by} cannot be copied: {detail}; nothing of it became a \
                 snapshot in the target",
                hex::encode(&id[..8])
            ),
        }
    }
}
