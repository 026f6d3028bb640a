//! `repair`: the way back after lost or damaged metadata, as restic's
//! `repair index` and `repair snapshots` are. The index is rebuilt from the
//! packs' own (authenticated) headers: entries of packs that are gone are
//! dropped, packs no index names are added, damaged index files are
//! replaced. Then every snapshot is measured against the rebuilt index, and
//! those that need data no pack holds any more are reported by id and
//! resource; the next backup of the same data stores those blobs again (it
//! stores whatever the index does not hold), which makes them whole again.
//!
//! Repair holds the exclusive lock, writes one index file superseding all
//! others, then removes them (the order prune uses). It never deletes packs
//! or snapshots, and computes a report value; the CLI renders it.

use super::crypto::BlobId;
use super::index::{Index, IndexFile, IndexedPack};
use super::{DamagedSnapshot, FileKind, RepoError, Repository, SnapshotId};
use std::collections::HashSet;

/// What `repair` found and did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    /// Packs read (their headers) and indexed.
    pub packs: usize,
    /// Distinct blobs the rebuilt index holds.
    pub blobs: usize,
    /// Packs that exist but no index named: now indexed.
    pub packs_added: Vec<String>,
    /// Packs the index named that are gone: dropped from it.
    pub packs_dropped: Vec<String>,
    /// Packs whose header does not read and that no sound index entry
    /// describes: left out of the index (`prune` removes them).
    pub packs_unreadable: Vec<UnreadablePack>,
    /// Damaged index files replaced.
    pub damaged_index_files: usize,
    /// Index files the rebuilt one replaces (0 when the index was whole).
    pub index_files_replaced: usize,
    /// Snapshots that need data no pack holds.
    pub incomplete: Vec<IncompleteSnapshot>,
    /// Snapshot files that do not load (`forget` removes them).
    pub damaged_snapshots: Vec<DamagedSnapshot>,
}

impl RepairReport {
    /// Whether the index needed rebuilding.
    pub fn index_changed(&self) -> bool {
        self.index_files_replaced > 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnreadablePack {
    pub id: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncompleteSnapshot {
    pub id: SnapshotId,
    pub resource: String,
    /// Content blobs the snapshot needs that no pack holds.
    pub missing_blobs: usize,
    /// The tree itself is (partly) gone: which files are affected is unknown.
    pub tree_lost: bool,
}

impl Repository {
    /// Rebuilds the index from the packs and reports the snapshots that
    /// need lost data. With `dry_run`, writes and removes nothing.
    pub fn repair(&self, dry_run: bool) -> Result<RepairReport, RepoError> {
        let _lock = self.lock_exclusive()?;
        let old = Index::load(self)?;
        let mut report = RepairReport {
            dry_run,
            damaged_index_files: old.damaged.len(),
            ..RepairReport::default()
        };

        let present = self.list_files(FileKind::Pack)?.files;
        let by_pack = old.by_pack();
        let mut packs = Vec::new();
        for name in &present {
            match self.read_pack_header(name) {
                Ok(pack) => packs.push(pack),
                // The header is gone but the blobs may not be: a sound index
                // entry of the right size still describes them.
                Err(detail) => match (old.pack_sizes.get(name), by_pack.get(name)) {
                    (Some(size), Some(blobs))
                        if self.backend().stat(FileKind::Pack, name).ok() == Some(*size) =>
                    {
                        packs.push(IndexedPack {
                            id: name.clone(),
                            size: *size,
                            blobs: blobs.clone(),
                        })
                    }
                    _ => report.packs_unreadable.push(UnreadablePack {
                        id: name.clone(),
                        detail,
                    }),
                },
            }
        }
        let present: HashSet<&String> = present.iter().collect();
        report.packs_added = packs
            .iter()
            .filter(|p| !old.pack_sizes.contains_key(&p.id))
            .map(|p| p.id.clone())
            .collect();
        report.packs_dropped = old
            .pack_sizes
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        report.packs_dropped.sort();
        let unreadable_indexed = report
            .packs_unreadable
            .iter()
            .any(|p| old.pack_sizes.contains_key(&p.id));

        let mut rebuilt = Index::default();
        for pack in &packs {
            rebuilt.add_pack(pack);
        }
        report.packs = packs.len();
        report.blobs = rebuilt.len();

        let needed = !report.packs_added.is_empty()
            || !report.packs_dropped.is_empty()
            || unreadable_indexed
            || !old.damaged.is_empty();
        // Every index file, in force or not, damaged or not: after this one,
        // none of them is needed.
        let replaced = self.list_files(FileKind::Index)?.files;
        if needed {
            report.index_files_replaced = replaced.len();
            if !dry_run {
                let (name, _) = self.save_index(&IndexFile {
                    packs,
                    supersedes: replaced.clone(),
                })?;
                for old_file in replaced.iter().filter(|n| **n != name) {
                    // Another repair may have removed it; it is superseded anyway.
                    let _ = self.backend().remove(FileKind::Index, old_file);
                }
                rebuilt.files.push(name);
            }
        }

        // Measure the snapshots against the rebuilt index (this handle uses
        // it from now on; a dry run puts the old one back).
        let previous = std::mem::replace(&mut *self.index_mut(), rebuilt);
        let measured = self.incomplete_snapshots();
        if dry_run {
            *self.index_mut() = previous;
        }
        (report.incomplete, report.damaged_snapshots) = measured?;
        Ok(report)
    }

    fn incomplete_snapshots(
        &self,
    ) -> Result<(Vec<IncompleteSnapshot>, Vec<DamagedSnapshot>), RepoError> {
        let (snapshots, damaged) = self.load_snapshots()?;
        let mut incomplete = Vec::new();
        for snapshot in snapshots {
            let tree_missing = snapshot.tree.iter().any(|id| !self.index().contains(id));
            let mut missing: HashSet<BlobId> = HashSet::new();
            let walked = if tree_missing {
                Err(())
            } else {
                self.walk_content(&snapshot, |id| {
                    if !self.index().contains(id) {
                        missing.insert(*id);
                    }
                })
                .map_err(|_| ())
            };
            if walked.is_err() || !missing.is_empty() {
                incomplete.push(IncompleteSnapshot {
                    id: snapshot.id.clone(),
                    resource: snapshot.resource.clone(),
                    missing_blobs: missing.len(),
                    tree_lost: walked.is_err(),
                });
            }
        }
        Ok((incomplete, damaged))
    }
}
