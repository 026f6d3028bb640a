//! `repair`: the way back after lost or damaged metadata and damaged
//! packs, as restic's `repair index`, `repair packs` and `repair snapshots`
//! are. The index is rebuilt from the packs' own (authenticated) headers:
//! entries of packs that are gone are dropped, packs no index names are
//! added, damaged index files are replaced. A damaged pack (its header does
//! not read, a blob in it does not authenticate, or a read recorded one as
//! damaged) is salvaged: every blob in it that authenticates is copied into
//! new packs, and only then is the pack removed. With `read_data`, every
//! pack is read whole and every blob verified, which finds damage headers
//! cannot show. Then every snapshot is measured against the rebuilt index,
//! and those that need data no pack holds any more are reported by id and
//! resource; the next backup of the same data stores those blobs again (it
//! stores whatever the index does not hold), which makes them whole again.
//!
//! Repair holds the exclusive lock and writes in the order prune uses:
//! salvaged blobs into new packs, one index file superseding all others,
//! the old index files removed, then the salvaged packs. It never deletes a
//! snapshot, nor a pack it salvaged nothing from. It computes a report
//! value; the CLI renders it.

use super::archiver::with_pipeline;
use super::crypto::BlobId;
use super::index::{Index, IndexedPack};
use super::pack::{self, BlobKind, PackedBlob};
use super::{DamagedSnapshot, FileKind, RepoError, Repository, SnapshotId, short};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, Default)]
pub struct RepairOptions {
    /// Write and remove nothing; say what would be done.
    pub dry_run: bool,
    /// Read every pack whole and verify every blob in it.
    pub read_data: bool,
}

/// What `repair` found and did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    /// Whether every pack was read whole and every blob verified.
    pub read_data: bool,
    /// Packs read (their headers) and indexed.
    pub packs: usize,
    /// Distinct blobs the rebuilt index holds.
    pub blobs: usize,
    /// Packs that exist but no index named: now indexed.
    pub packs_added: Vec<String>,
    /// Packs the index named that are gone: dropped from it.
    pub packs_dropped: Vec<String>,
    /// Damaged packs whose intact blobs were copied into new packs before
    /// the pack was removed.
    pub packs_salvaged: Vec<SalvagedPack>,
    /// Damaged packs nothing could be salvaged from: left out of the index
    /// (`prune` removes them).
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
pub struct SalvagedPack {
    pub id: String,
    /// What is wrong with it.
    pub detail: String,
    /// Blobs that authenticated: now in new packs (or already elsewhere).
    pub salvaged: usize,
    /// Blobs the pack was known to hold that did not authenticate.
    pub lost: usize,
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

/// What reading one pack showed.
enum PackState {
    /// Its header reads (and, with read-data, every blob verifies).
    Sound(IndexedPack),
    /// It could not be read (an I/O error, not damage): the index keeps
    /// what it says about it, if anything.
    Unavailable(String),
    /// Its content is damaged: salvage it.
    Damaged(String),
}

/// The blobs of one damaged pack that authenticate, where they are in it,
/// and how many did not.
struct Salvage {
    intact: Vec<(BlobKind, Vec<u8>)>,
    located: IndexedPack,
    lost: usize,
}

impl Repository {
    /// Rebuilds the index from the packs, salvages damaged packs, and
    /// reports the snapshots that need lost data.
    pub fn repair(&self, options: RepairOptions) -> Result<RepairReport, RepoError> {
        let _lock = self.lock_exclusive()?;
        let old = Index::load(self)?;
        let mut report = RepairReport {
            dry_run: options.dry_run,
            read_data: options.read_data,
            damaged_index_files: old.damaged.len(),
            ..RepairReport::default()
        };

        let present = self.list_files(FileKind::Pack)?.files;
        let by_pack = old.by_pack();
        let recorded: HashSet<&str> = old.damaged_blobs.keys().map(|(p, _)| p.as_str()).collect();
        let mut packs = Vec::new();
        let mut damaged = Vec::new();
        let mut verified = HashSet::new();
        for name in &present {
            let verify = options.read_data || recorded.contains(name.as_str());
            match self.inspect_pack(name, verify) {
                PackState::Sound(pack) => {
                    if verify {
                        verified.insert(pack.id.clone());
                    }
                    packs.push(pack)
                }
                PackState::Unavailable(detail) => {
                    match (old.pack_sizes.get(name), by_pack.get(name)) {
                        (Some(size), Some(blobs)) => packs.push(IndexedPack {
                            id: name.clone(),
                            size: *size,
                            blobs: blobs.clone(),
                        }),
                        _ => report.packs_unreadable.push(UnreadablePack {
                            id: name.clone(),
                            detail,
                        }),
                    }
                }
                PackState::Damaged(detail) => damaged.push((name.clone(), detail)),
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

        // The rebuilt index: sound packs, less the copies recorded damaged
        // (in packs this repair did not read whole: those it read are
        // damaged and salvaged, or were wrongly recorded).
        let mut rebuilt = Index::default();
        rebuilt.damaged_blobs = old
            .damaged_blobs
            .iter()
            .filter(|((pack, _), _)| {
                !verified.contains(pack) && packs.iter().any(|p| p.id == *pack)
            })
            .map(|(key, detail)| (key.clone(), detail.clone()))
            .collect();
        for pack in &packs {
            rebuilt.add_pack(pack);
        }

        // Salvage into new packs, with the rebuilt index in force so that
        // the pipeline stores what only damaged packs hold. A dry run only reads.
        let previous = std::mem::replace(&mut *self.index_mut(), rebuilt);
        let salvaged = self.salvage(&damaged, &by_pack, options.dry_run, &mut report);
        if options.dry_run {
            // Measured as the real run leaves it: with the salvaged blobs
            // (read where they are, as the real run copies them).
            let mut index = self.index_mut();
            for pack in salvaged.iter().flatten() {
                index.add_pack(pack);
            }
        }
        let retired: Vec<String> = report.packs_salvaged.iter().map(|p| p.id.clone()).collect();
        let unreadable_indexed = report
            .packs_unreadable
            .iter()
            .any(|p| old.pack_sizes.contains_key(&p.id));
        let needed = !report.packs_added.is_empty()
            || !report.packs_dropped.is_empty()
            || !retired.is_empty()
            || unreadable_indexed
            || !old.damaged.is_empty()
            || old.damaged_blobs.len() != self.index().damaged_blobs.len();
        // Every index file, in force or not, damaged or not, and those the
        // salvage wrote: after this one, none of them is needed.
        let written = salvaged.and_then(|_| {
            let mut replaced = self.list_files(FileKind::Index)?.files;
            replaced.extend(self.index().files.iter().cloned());
            replaced.sort();
            replaced.dedup();
            if needed {
                report.index_files_replaced = replaced.len();
                if !options.dry_run {
                    self.replace_index(&replaced)?;
                    for pack in &retired {
                        self.backend()
                            .remove(FileKind::Pack, pack)
                            .map_err(RepoError::io(format!("removing pack {}", short(pack))))?;
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = written {
            *self.index_mut() = previous;
            return Err(error);
        }
        {
            let index = self.index();
            report.packs = index.pack_sizes.len();
            report.blobs = index.len();
        }

        // Measure the snapshots against the rebuilt index (this handle uses
        // it from now on; a dry run puts the old one back).
        let measured = self.incomplete_snapshots();
        if options.dry_run {
            *self.index_mut() = previous;
        }
        (report.incomplete, report.damaged_snapshots) = measured?;
        Ok(report)
    }

    /// Reads one pack: its header (ranged), or with `verify` all of it,
    /// checking every blob the header lists.
    fn inspect_pack(&self, name: &str, verify: bool) -> PackState {
        if !verify && let Ok(pack) = self.read_pack_header(name) {
            return PackState::Sound(pack);
        }
        let bytes = match self.backend().load(FileKind::Pack, name, None) {
            Ok(bytes) => bytes,
            Err(e) => return PackState::Unavailable(format!("cannot be read: {e}")),
        };
        let blobs = match pack::read_header(self.keys(), &bytes) {
            Ok(blobs) => blobs,
            Err(detail) => return PackState::Damaged(format!("header: {detail}")),
        };
        let indexed = IndexedPack {
            id: name.to_string(),
            size: bytes.len() as u64,
            blobs,
        };
        if let Err(detail) = indexed.check() {
            return PackState::Damaged(format!("header: {detail}"));
        }
        let bad = indexed
            .blobs
            .iter()
            .filter(|blob| read_packed(self, &bytes, blob).is_err())
            .count();
        if bad > 0 {
            return PackState::Damaged(format!(
                "{bad} of its {} blobs fail to authenticate",
                indexed.blobs.len()
            ));
        }
        PackState::Sound(indexed)
    }

    /// Copies the intact blobs of each damaged pack into new packs (a dry
    /// run only counts them) and reports each pack as salvaged or
    /// unreadable. Returns where the salvaged blobs are in the damaged packs.
    fn salvage(
        &self,
        damaged: &[(String, String)],
        indexed: &HashMap<String, Vec<PackedBlob>>,
        dry_run: bool,
        report: &mut RepairReport,
    ) -> Result<Vec<IndexedPack>, RepoError> {
        let mut salvaged = Vec::new();
        if damaged.is_empty() {
            return Ok(salvaged);
        }
        let mut outcome = |name: &String, detail: &String, salvage: &Salvage| {
            if salvage.intact.is_empty() {
                report.packs_unreadable.push(UnreadablePack {
                    id: name.clone(),
                    detail: detail.clone(),
                });
            } else {
                report.packs_salvaged.push(SalvagedPack {
                    id: name.clone(),
                    detail: detail.clone(),
                    salvaged: salvage.intact.len(),
                    lost: salvage.lost,
                });
                salvaged.push(salvage.located.clone());
            }
        };
        let no_entries = Vec::new();
        let read =
            |name: &String| self.salvage_pack(name, indexed.get(name).unwrap_or(&no_entries));
        if dry_run {
            for (name, detail) in damaged {
                outcome(name, detail, &read(name)?);
            }
        } else {
            with_pipeline(self, |submitter| {
                for (name, detail) in damaged {
                    let salvage = read(name)?;
                    for (kind, data) in &salvage.intact {
                        submitter.submit(*kind, data)?;
                    }
                    outcome(name, detail, &salvage);
                }
                Ok(())
            })?;
        }
        Ok(salvaged)
    }

    /// The blobs of a damaged pack that authenticate. Where they are comes
    /// from its header, or (the trailer lost) a header found by searching
    /// its end, and from the index's entries for it; each is verified, so
    /// a wrong guess salvages nothing false.
    fn salvage_pack(&self, name: &str, indexed: &[PackedBlob]) -> Result<Salvage, RepoError> {
        let bytes = self
            .backend()
            .load(FileKind::Pack, name, None)
            .map_err(RepoError::io(format!("reading pack {}", short(name))))?;
        let keys = self.keys();
        let mut candidates = pack::read_header(keys, &bytes)
            .ok()
            .or_else(|| pack::find_header(keys, &bytes))
            .unwrap_or_default();
        candidates.extend_from_slice(indexed);
        let mut intact: Vec<(BlobKind, Vec<u8>)> = Vec::new();
        let mut located = Vec::new();
        let mut found: HashSet<BlobId> = HashSet::new();
        let mut known: HashSet<BlobId> = HashSet::new();
        for blob in &candidates {
            known.insert(blob.id);
            if found.contains(&blob.id) {
                continue;
            }
            if let Ok(data) = read_packed(self, &bytes, blob) {
                found.insert(blob.id);
                intact.push((blob.kind, data));
                located.push(*blob);
            }
        }
        Ok(Salvage {
            lost: known.len() - found.len(),
            located: IndexedPack {
                id: name.to_string(),
                size: bytes.len() as u64,
                blobs: located,
            },
            intact,
        })
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

/// One blob of a pack held in memory, verified.
fn read_packed(repository: &Repository, pack: &[u8], blob: &PackedBlob) -> Result<Vec<u8>, String> {
    let end = blob.offset as usize + blob.length as usize;
    let stored = pack
        .get(blob.offset as usize..end)
        .ok_or_else(|| "past the end of the pack".to_string())?;
    repository.decode_blob(stored, blob)
}
