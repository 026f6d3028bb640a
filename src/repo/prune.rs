//! Deleting data: `forget` removes snapshot files; `prune` removes the
//! packs no snapshot needs, repacking partly used ones. Both hold the
//! exclusive lock.
//!
//! Prune is crash-safe by ordering: new packs, then one new index file that
//! lists every pack kept and supersedes all older index files, then the old
//! index files are deleted, then the unused packs. Interrupted anywhere, the
//! index in force still describes packs that exist.
//!
//! Prune deletes only what it can prove unused: it refuses while an index
//! file or a snapshot file is damaged, or while a snapshot needs a blob no
//! existing pack holds (then `repair` is the way). Files that are no pack
//! (by their name) are never deleted.

use super::archiver::with_pipeline;
use super::crypto::BlobId;
use super::index::{IndexFile, IndexedPack};
use super::pack::BlobKind;
use super::{FileKind, RepoError, Repository, SnapshotId, is_file_name, short};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PruneStats {
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    /// Size of the packs deleted less what their still-needed blobs take
    /// in new packs.
    pub bytes_freed: u64,
}

impl Repository {
    /// Removes snapshot files by id, damaged ones included.
    pub fn forget(&self, ids: &[SnapshotId]) -> Result<(), RepoError> {
        // An id becomes a path: only a snapshot file's name is one.
        if let Some(id) = ids
            .iter()
            .find(|id| !is_file_name(FileKind::Snapshot, &id.0))
        {
            return Err(RepoError::SnapshotNotFound(id.0.clone()));
        }
        let _lock = self.lock_exclusive()?;
        for id in ids {
            self.backend()
                .remove(FileKind::Snapshot, &id.0)
                .map_err(RepoError::io(format!("removing snapshot {}", id.short())))?;
        }
        Ok(())
    }

    /// Removes the packs no snapshot needs, repacking the blobs still needed
    /// out of partly used ones. With `dry_run`, only counts what it would do.
    pub fn prune(&self, dry_run: bool) -> Result<PruneStats, RepoError> {
        let _lock = self.lock_exclusive()?;
        self.reload_index()?;
        // Deleting "unused" data is only sound when the index is whole and
        // knows every blob the snapshots need: otherwise packs it cannot
        // see would look unused, and a repair could no longer save them.
        if let Some((name, detail)) = self.index().damaged.first() {
            return Err(RepoError::Corrupt {
                what: format!("index/{name}"),
                detail: format!(
                    "{detail}; prune deletes nothing while the index is damaged (`lifeboat \
                     repair` rebuilds it)"
                ),
            });
        }
        // A damaged snapshot's blobs are unknown, so they would look unused.
        let (snapshots, damaged) = self.load_snapshots()?;
        if let Some(snapshot) = damaged.first() {
            return Err(RepoError::Corrupt {
                what: format!("snapshots/{}", snapshot.id.short()),
                detail: format!(
                    "{}; prune deletes nothing while a snapshot file is damaged (the data it \
                     needs would look unused): forget it (`lifeboat check` gives the command, with \
                     the repository it is in), or put the file back",
                    snapshot.detail,
                ),
            });
        }
        // Packs the index names but that are gone are neither kept nor
        // deleted: the new index simply no longer names them.
        let listing = self.list_files(FileKind::Pack)?;
        let present: HashSet<String> = listing.files.iter().cloned().collect();
        self.index_mut().retain_packs(&present);
        let mut used: HashSet<BlobId> = HashSet::new();
        for snapshot in &snapshots {
            used.extend(snapshot.tree.iter().copied());
            self.walk_content(snapshot, |id| {
                used.insert(*id);
            })?;
        }
        // ...and every blob the snapshots need must be in a pack that
        // exists, see above.
        if let Some(missing) = used.iter().find(|id| !self.index().contains(id)) {
            return Err(RepoError::Corrupt {
                what: format!("blob {}", hex::encode(&missing[..4])),
                detail: "a snapshot needs it but no existing pack holds it; prune deletes \
                         nothing while snapshots are incomplete (`lifeboat repair` says which)"
                    .to_string(),
            });
        }
        let by_pack = self.index().by_pack();
        let old_index_files = self.index().files.clone();
        let sizes = self.index().pack_sizes.clone();
        let mut stats = PruneStats::default();
        let mut keep: Vec<IndexedPack> = Vec::new();
        let mut delete: Vec<String> = Vec::new();
        let mut repack: Vec<(BlobId, BlobKind)> = Vec::new();
        // Bytes of the blobs that move to new packs: freed space is net of them.
        let mut repack_bytes = 0u64;
        for (pack, blobs) in &by_pack {
            let used_count = blobs.iter().filter(|b| used.contains(&b.id)).count();
            if used_count == blobs.len() {
                keep.push(IndexedPack {
                    id: pack.clone(),
                    size: sizes.get(pack).copied().unwrap_or_default(),
                    blobs: blobs.clone(),
                });
            } else {
                if used_count > 0 {
                    stats.packs_repacked += 1;
                    repack_bytes += blobs
                        .iter()
                        .filter(|b| used.contains(&b.id))
                        .map(|b| b.length as u64)
                        .sum::<u64>();
                    repack.extend(
                        blobs
                            .iter()
                            .filter(|b| used.contains(&b.id))
                            .map(|b| (b.id, b.kind)),
                    );
                }
                delete.push(pack.clone());
            }
        }
        // Unindexed packs (from interrupted backups) go too.
        let indexed: HashSet<&String> = by_pack.keys().collect();
        for pack in listing.files {
            if !indexed.contains(&pack) {
                delete.push(pack);
            }
        }
        if delete.is_empty() {
            return Ok(stats);
        }
        if dry_run {
            stats.packs_deleted = delete.len() as u64;
            let deleted: u64 = delete
                .iter()
                .map(|pack| self.backend().stat(FileKind::Pack, pack).unwrap_or(0))
                .sum();
            stats.bytes_freed = deleted.saturating_sub(repack_bytes);
            return Ok(stats);
        }
        // Copy the blobs still needed out of packs about to go. The pipeline
        // skips blobs already indexed, so forget the doomed packs' entries first.
        {
            let mut fresh = self.index().empty_like();
            for pack in &keep {
                fresh.add_pack(pack);
            }
            let old = std::mem::replace(&mut *self.index_mut(), fresh);
            let (_, written) = with_pipeline(self, |submitter| {
                for (id, kind) in &repack {
                    // Also stored in a pack that stays: nothing to copy.
                    if self.index().contains(id) {
                        continue;
                    }
                    let data = self.read_copies(&old.locations(id)).map_err(|detail| {
                        RepoError::Corrupt {
                            what: format!("blob {}", hex::encode(&id[..4])),
                            detail,
                        }
                    })?;
                    submitter.submit(*kind, &data)?;
                }
                Ok(())
            })?;
            repack_bytes = written.stored_bytes;
        }
        // The index now holds kept + repacked packs; write it as one file
        // superseding every older one, then delete.
        let packs: Vec<IndexedPack> = {
            let index = self.index();
            let sizes = index.pack_sizes.clone();
            index
                .by_pack()
                .into_iter()
                .map(|(id, blobs)| IndexedPack {
                    size: sizes.get(&id).copied().unwrap_or_default(),
                    id,
                    blobs,
                })
                .collect()
        };
        let current_files = self.index().files.clone();
        let mut supersedes = old_index_files.clone();
        supersedes.extend(current_files);
        // Damaged copies in packs that stay must stay out of the index.
        let damaged_blobs = self
            .index()
            .damaged_records(|pack| packs.iter().any(|p| p.id == pack));
        let (new_index, _) = self.save_index(&IndexFile {
            packs,
            supersedes: supersedes.clone(),
            damaged_blobs,
        })?;
        for name in supersedes.iter().filter(|n| **n != new_index) {
            let _ = self.backend().remove(FileKind::Index, name);
        }
        for pack in &delete {
            stats.bytes_freed += self.backend().stat(FileKind::Pack, pack).unwrap_or(0);
            self.backend()
                .remove(FileKind::Pack, pack)
                .map_err(RepoError::io(format!("removing pack {}", short(pack))))?;
            stats.packs_deleted += 1;
        }
        stats.bytes_freed = stats.bytes_freed.saturating_sub(repack_bytes);
        self.reload_index()?;
        Ok(stats)
    }
}
