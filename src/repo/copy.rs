//! Copies: one snapshot from this repository into another, read from the
//! source repository alone (never from Docker), so a resource a policy keeps
//! in several repositories is read from the engine once.
//!
//! Only blobs the target's index lacks are sent. Blob ids are keyed
//! (`crypto`): when both repositories name blobs with the same id key, ids
//! and tree blobs are kept as they are, and a blob the target holds is not
//! even read from the source; when the keys differ, every data blob the
//! snapshot needs is read and named with the target's key, and the tree is
//! written again node by node with the new ids (a map old id → new id is
//! all that is held: ids, never content). The tree is cut by the same
//! writer as a backup's, so the copy deduplicates against backups made
//! straight into the target.
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

use super::archiver::{Submitter, TreeWriter, with_pipeline};
use super::crypto::BlobId;
use super::pack::BlobKind;
use super::restorer::check_totals;
use super::tree::{Node, NodeKind};
use super::{
    ContentKind, Progress, RepoError, Repository, Snapshot, SnapshotId, SnapshotSummary, TreeTotals,
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
        match snapshot.content {
            ContentKind::Tree => self.for_each_admitted_node(snapshot, &mut checked)?,
            ContentKind::Stream | ContentKind::Image => {
                self.for_each_node(snapshot, &mut checked)?
            }
        }
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
        if let Some(existing) = target
            .snapshots()?
            .into_iter()
            .find(|held| same_moment(held, snapshot))
        {
            return Ok(CopiedSnapshot {
                snapshot: existing,
                blobs_sent: 0,
                bytes_sent: 0,
            });
        }
        // Packs an interrupted copy (or backup) left unindexed are reused;
        // entries of packs that are gone are not trusted.
        target.sync_index_with_packs()?;
        let (tree, stats) = with_pipeline(target, |submitter| {
            let mut sender = BlobSender {
                source: self,
                target,
                snapshot,
                same_ids: self.keys().same_blob_ids(target.keys()),
                sent: HashMap::new(),
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
            .map_err(|error| RepoError::Corrupt {
                what: format!(
                    "the copy of snapshot {} ({}) in {}",
                    snapshot.id.short(),
                    snapshot.resource,
                    target.location()
                ),
                detail: format!(
                    "it does not verify after sending ({error}); no snapshot was written there"
                ),
            })?;
        copied.id = target.save_snapshot(&copied)?;
        Ok(CopiedSnapshot {
            snapshot: copied,
            blobs_sent: stats.new_blobs,
            bytes_sent: stats.stored_bytes,
        })
    }
}

/// One copy's walk over the source snapshot, handing what the target
/// lacks to the target's storage pipeline.
struct BlobSender<'a, 's, 'r> {
    source: &'a Repository,
    target: &'a Repository,
    snapshot: &'a Snapshot,
    /// Both repositories name blobs with the same key: ids stay as they are.
    same_ids: bool,
    /// Source id → target id of every data blob handled so far.
    sent: HashMap<BlobId, BlobId>,
    submitter: &'s Submitter<'r>,
}

impl BlobSender<'_, '_, '_> {
    /// Sends every blob of the snapshot the target lacks; returns the
    /// target's tree blobs, in order.
    fn send(&mut self, progress: &(dyn Fn(Progress) + Sync)) -> Result<Vec<BlobId>, RepoError> {
        let mut rewritten = (!self.same_ids).then(TreeWriter::default);
        let mut shown = Progress::default();
        self.source.checked_walk(self.snapshot, |mut node| {
            let mut content = Vec::with_capacity(node.content.len());
            for id in &node.content {
                content.push(self.send_data(id, &node.display_path())?);
            }
            if node.kind == NodeKind::File {
                shown.files += 1;
                shown.bytes += node.size;
                progress(shown.clone());
            }
            if let Some(writer) = rewritten.as_mut() {
                node.content = content;
                writer.push(&node, self.submitter)?;
            }
            Ok(())
        })?;
        match rewritten {
            Some(writer) => writer.finish(self.submitter),
            None => {
                for id in &self.snapshot.tree {
                    if !self.target.index().contains(id) {
                        let data = self.read(id, "its tree")?;
                        self.submitter.submit(BlobKind::Tree, &data)?;
                    }
                }
                Ok(self.snapshot.tree.clone())
            }
        }
    }

    /// The target's id of one data blob, sent when the target lacks it.
    fn send_data(&mut self, id: &BlobId, path: &str) -> Result<BlobId, RepoError> {
        if let Some(known) = self.sent.get(id) {
            return Ok(*known);
        }
        let target_id = if self.same_ids && self.target.index().contains(id) {
            *id
        } else {
            let data = self.read(id, path)?;
            self.submitter.submit(BlobKind::Data, &data)?
        };
        self.sent.insert(*id, target_id);
        Ok(target_id)
    }

    /// One blob of the source, verified; damage is an integrity error
    /// naming the snapshot and the file (or tree) that needs the blob.
    fn read(&self, id: &BlobId, needed_by: &str) -> Result<Vec<u8>, RepoError> {
        self.source
            .read_blob(id)
            .map_err(|detail| RepoError::Corrupt {
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
            })
    }
}
