//! Deleting data: `forget` removes snapshot files; `prune` removes the
//! packs no snapshot needs, repacking partly used ones. Both hold the
//! exclusive lock.
//!
//! Prune is two steps, as a plan is in the rest of lifeboat:
//! [`Repository::plan_prune`] computes a [`PrunePlan`] (which packs go,
//! which are repacked with which blobs, what stays, how many bytes are
//! freed) and changes nothing; [`Repository::execute_prune`] carries one
//! out. A plan names the repository state it was computed from (every
//! index, snapshot and pack file name, all content-addressed or
//! immutable), and execute re-checks that under the exclusive lock:
//! when anything changed since (another backup, a forget, another
//! prune) it refuses and deletes nothing.
//!
//! Execute is crash-safe by ordering: new packs, then one new index file
//! that lists every pack kept and supersedes all older index files, then
//! the old index files are deleted, then the unused packs. Interrupted
//! anywhere, the index in force still describes packs that exist.
//!
//! Prune deletes only what it can prove unused: planning refuses while an
//! index file or a snapshot file is damaged, or while a snapshot needs a
//! blob no existing pack holds (then `repair` is the way). Files that are
//! no pack (by their name) are never deleted as packs.
//!
//! Prune also removes the temporary files that saves killed midway left
//! (a streamed pack's in `data/` is up to 16 MiB): under the exclusive lock
//! no backup is writing, so every one is a leftover. Only names the backend
//! calls its own temporary files go ([`Backend::remove_temporary`]); other
//! files that are no repository file stay for `check` to report. The
//! temporary files of lock files stay too: a lock is written by a process
//! that holds no lock yet.
//!
//! `migrate` is the same execution with another plan
//! ([`Repository::plan_migrate`]): every pack holding a blob sealed as
//! format 3 did (not bound to its id) is repacked whole, which seals its
//! blobs bound; nothing else is deleted. A prune seals bound only the
//! blobs it repacks anyway.

use super::archiver::with_pipeline;
use super::backend::Backend;
use super::crypto::BlobId;
use super::index::IndexedPack;
use super::pack::BlobKind;
use super::profile::{Compression, ContentProfile, FILE_COMPRESSION, TREE_COMPRESSION};
use super::{FileKind, RepoError, Repository, SnapshotId, is_file_name, short};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What an executed prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PruneStats {
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    /// Size of the packs deleted less what their still-needed blobs take
    /// in new packs.
    pub bytes_freed: u64,
    /// Temporary files left by interrupted writes, removed.
    pub leftovers_removed: u64,
    /// Bytes of the temporary files removed.
    pub leftover_bytes_removed: u64,
}

/// What a prune would do, computed by [`Repository::plan_prune`] without
/// changing anything; [`Repository::execute_prune`] carries it out while
/// the repository is still as the plan saw it. The CLI renders its
/// [`PruneSummary`] (`prune --dry-run`).
#[derive(Debug, Clone)]
pub struct PrunePlan {
    basis: PruneBasis,
    /// Packs every blob of which is needed: the new index names them again.
    keep: Vec<IndexedPack>,
    /// Packs only some blobs of which are needed: those are copied into
    /// new packs, then the pack is deleted.
    repack: Vec<String>,
    /// Packs nothing of which is needed, or that no index names (left by
    /// interrupted backups): deleted.
    delete: Vec<String>,
    /// The needed blobs of repacked packs that no kept pack holds too, with
    /// how to compress them again (their content's profile).
    copy: Vec<(BlobId, BlobKind, Compression)>,
    /// Temporary files interrupted writes left: removed.
    leftovers: Vec<Leftover>,
    summary: PruneSummary,
}

/// A temporary file a save killed midway left (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    kind: FileKind,
    /// As the backend lists it.
    name: String,
    /// Its size in bytes when planned.
    pub size: u64,
}

impl Leftover {
    /// Where it is in the repository, as `check` names it: `dir/name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.name)
    }
}

/// What listings held that is no repository file (`dir/name`), by kind.
type NoFiles = Vec<(FileKind, Vec<String>)>;

/// The namespaces whose temporary files prune removes: all but locks
/// (written by processes that hold no lock yet) and the config (its
/// namespace lists only `config`).
const LEFTOVER_KINDS: [FileKind; 6] = [
    FileKind::Key,
    FileKind::Pack,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::Applied,
    FileKind::Run,
];

/// Whether prune removes `path` (`dir/name`, as a [`super::Listing`]
/// shows what is no repository file): a temporary file of `backend`'s
/// own pattern in a namespace prune cleans. Asks the store only about
/// names of that pattern.
pub(crate) fn is_leftover(backend: &dyn Backend, path: &str) -> bool {
    let Some((dir, name)) = path.split_once('/') else {
        return false;
    };
    LEFTOVER_KINDS
        .iter()
        .find(|kind| kind.dir() == dir)
        .is_some_and(|kind| matches!(backend.stat_temporary(*kind, name), Ok(Some(_))))
}

/// The names a plan was computed from. Index and snapshot files are named
/// by the hash of their content and packs are never rewritten, so equal
/// names mean the plan still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PruneBasis {
    /// Every index file: one new file supersedes them all.
    index_files: Vec<String>,
    snapshots: Vec<String>,
    packs: Vec<String>,
}

/// The numbers of a [`PrunePlan`], for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PruneSummary {
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Partly used packs whose needed blobs move to new packs.
    pub packs_to_repack: u64,
    /// Packs deleted, the repacked ones included.
    pub packs_to_delete: u64,
    /// Of the packs deleted, those no index names (left by interrupted backups).
    pub unindexed_packs: u64,
    /// Packs the index names but that are gone: the new index forgets them.
    pub missing_packs: u64,
    /// Distinct blobs the snapshots need.
    pub blobs_kept: u64,
    /// Distinct blobs no snapshot needs, removed with their packs.
    pub blobs_removed: u64,
    /// Needed blobs copied out of repacked packs.
    pub blobs_to_copy: u64,
    /// Bytes of the packs deleted less the blobs copied out of them (before
    /// compression into the new packs, so a close estimate).
    pub bytes_to_free: u64,
    /// Index files replaced by one new index file.
    pub index_files_to_rewrite: u64,
    /// Temporary files left by interrupted writes, to remove.
    pub leftovers: u64,
    /// Bytes of those temporary files.
    pub leftover_bytes: u64,
}

/// What `migrate` would rewrite, computed by [`Repository::plan_migrate`]
/// without changing anything; [`Repository::execute_migrate`] carries it
/// out by prune's crash-safe path.
#[derive(Debug, Clone)]
pub struct MigratePlan {
    rewrite: PrunePlan,
    summary: MigrateSummary,
}

/// The numbers of a [`MigratePlan`], for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct MigrateSummary {
    /// Packs holding blobs sealed as format 3 (not bound to their ids):
    /// their blobs move to new packs, then they are deleted.
    pub packs_to_rewrite: u64,
    /// The blobs sealed again, bound to their ids.
    pub blobs_to_rewrite: u64,
    /// Stored bytes of the packs rewritten.
    pub bytes_to_rewrite: u64,
    /// Packs whose every blob is bound already: kept as they are.
    pub packs_kept: u64,
    /// The repository is plaintext: there is no encryption to bind ids
    /// to, so there is nothing to rewrite (its reads always hash).
    pub plaintext: bool,
}

impl MigratePlan {
    pub fn summary(&self) -> MigrateSummary {
        self.summary
    }
}

impl PrunePlan {
    pub fn summary(&self) -> PruneSummary {
        self.summary
    }

    /// Whether executing it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.leftovers.is_empty()
    }

    /// The temporary files it removes, by path (`--dry-run` shows them).
    pub fn leftovers(&self) -> &[Leftover] {
        &self.leftovers
    }
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

    /// Plans then executes a prune (see [`Repository::plan_prune`]).
    pub fn prune(&self) -> Result<PruneStats, RepoError> {
        let plan = self.plan_prune()?;
        self.execute_prune(&plan)
    }

    /// Computes which packs no snapshot needs, and which blobs of partly
    /// used packs must be copied before those go. Changes nothing: it
    /// holds the exclusive lock while it reads, so that no backup adds
    /// packs meanwhile, and that lock file is gone when it returns.
    pub fn plan_prune(&self) -> Result<PrunePlan, RepoError> {
        self.plan_prune_forgetting(&[])
    }

    /// The prune that would follow forgetting `forget` (which are still
    /// there): what `forget --prune --dry-run` shows. Executed before
    /// those snapshots are forgotten, it is refused as out of date.
    pub fn plan_prune_forgetting(&self, forget: &[SnapshotId]) -> Result<PrunePlan, RepoError> {
        // Not `lock_exclusive`: that also upgrades a format-1 config for
        // the writes that follow, and planning writes nothing.
        let _lock = super::lock::acquire(self, true)?;
        let forget: HashSet<&str> = forget.iter().map(|id| id.0.as_str()).collect();
        let (mut basis, unknown) = self.read_basis()?;
        basis
            .snapshots
            .retain(|name| !forget.contains(name.as_str()));
        self.reload_index()?;
        let index = self.index();
        // Deleting "unused" data is only sound when the index is whole and
        // knows every blob the snapshots need: otherwise packs it cannot
        // see would look unused, and a repair could no longer save them.
        refuse_damaged_index(&index, "prune")?;
        // A damaged snapshot's blobs are unknown, so they would look unused.
        let (mut snapshots, mut damaged) = self.load_snapshots()?;
        snapshots.retain(|s| !forget.contains(s.id.0.as_str()));
        damaged.retain(|s| !forget.contains(s.id.0.as_str()));
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
        let present: HashSet<&String> = basis.packs.iter().collect();
        let by_pack: BTreeMap<String, Vec<_>> = index.by_pack().into_iter().collect();
        let missing_packs = by_pack.keys().filter(|p| !present.contains(p)).count();
        let available: HashSet<BlobId> = by_pack
            .iter()
            .filter(|(pack, _)| present.contains(pack))
            .flat_map(|(_, blobs)| blobs.iter().map(|b| b.id))
            .collect();
        drop(index);
        let mut used: HashSet<BlobId> = HashSet::new();
        // Blobs of content compressed harder than files (image layers):
        // repacked, they keep their level. Few, so only they are held.
        let mut tighter: HashMap<BlobId, Compression> = HashMap::new();
        for snapshot in &snapshots {
            used.extend(snapshot.tree.iter().copied());
            let compression = ContentProfile::of(snapshot.content, self.chunker()).compression;
            self.walk_content(snapshot, |id| {
                used.insert(*id);
                note_tighter(&mut tighter, id, compression);
            })?;
        }
        // ...and every blob the snapshots need must be in a pack that
        // exists, see above.
        if let Some(missing) = used.iter().find(|id| !available.contains(*id)) {
            return Err(RepoError::Corrupt {
                what: format!("blob {}", hex::encode(&missing[..4])),
                detail: "a snapshot needs it but no existing pack holds it; prune deletes \
                         nothing while snapshots are incomplete (`lifeboat repair` says which)"
                    .to_string(),
            });
        }
        let sizes = self.index().pack_sizes.clone();
        let pack_size = |pack: &String| match sizes.get(pack) {
            Some(size) => *size,
            // An unindexed pack: only the backend knows its size.
            None => self.backend().stat(FileKind::Pack, pack).unwrap_or(0),
        };
        let mut keep = Vec::new();
        let (mut repack, mut delete) = (Vec::new(), Vec::new());
        let mut to_copy: BTreeMap<BlobId, BlobKind> = BTreeMap::new();
        for (pack, blobs) in by_pack.iter().filter(|(pack, _)| present.contains(pack)) {
            let needed: Vec<_> = blobs.iter().filter(|b| used.contains(&b.id)).collect();
            if needed.len() == blobs.len() {
                keep.push(IndexedPack {
                    id: pack.clone(),
                    size: pack_size(pack),
                    blobs: blobs.clone(),
                });
                continue;
            }
            if !needed.is_empty() {
                repack.push(pack.clone());
                to_copy.extend(needed.iter().map(|b| (b.id, b.kind)));
            }
            delete.push(pack.clone());
        }
        // Unindexed packs (from interrupted backups) go too.
        let unindexed: Vec<String> = basis
            .packs
            .iter()
            .filter(|pack| !by_pack.contains_key(*pack))
            .cloned()
            .collect();
        let unindexed_packs = unindexed.len() as u64;
        delete.extend(unindexed);
        // Also stored in a pack that stays: nothing to copy.
        let kept: HashSet<BlobId> = keep
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        to_copy.retain(|id, _| !kept.contains(id));
        let lengths: BTreeMap<BlobId, u64> = by_pack
            .values()
            .flatten()
            .map(|b| (b.id, b.length as u64))
            .collect();
        let copied_bytes: u64 = to_copy.keys().filter_map(|id| lengths.get(id)).sum();
        let deleted_bytes: u64 = delete.iter().map(pack_size).sum();
        let known: HashSet<BlobId> = by_pack.values().flatten().map(|b| b.id).collect();
        let leftovers = self.find_leftovers(unknown)?;
        let summary = PruneSummary {
            packs_kept: keep.len() as u64,
            packs_to_repack: repack.len() as u64,
            packs_to_delete: delete.len() as u64,
            unindexed_packs,
            missing_packs: missing_packs as u64,
            blobs_kept: used.len() as u64,
            blobs_removed: known.difference(&used).count() as u64,
            blobs_to_copy: to_copy.len() as u64,
            bytes_to_free: deleted_bytes.saturating_sub(copied_bytes),
            index_files_to_rewrite: basis.index_files.len() as u64,
            leftovers: leftovers.len() as u64,
            leftover_bytes: leftovers.iter().map(|l| l.size).sum(),
        };
        Ok(PrunePlan {
            basis,
            keep,
            repack,
            delete,
            leftovers,
            copy: to_copy
                .into_iter()
                .map(|(id, kind)| (id, kind, compression_of(&tighter, &id, kind)))
                .collect(),
            summary,
        })
    }

    /// Carries out `plan`: copies the blobs still needed out of the packs
    /// to repack, writes one index file naming every pack kept, then
    /// deletes the old index files and the unused packs. Refuses, deleting
    /// nothing, when the repository is no longer as the plan saw it.
    pub fn execute_prune(&self, plan: &PrunePlan) -> Result<PruneStats, RepoError> {
        self.execute_rewrite(plan, "prune")
    }

    /// [`Repository::execute_prune`] for `command` (`prune` or `migrate`),
    /// which a refusal names.
    fn execute_rewrite(&self, plan: &PrunePlan, command: &str) -> Result<PruneStats, RepoError> {
        let _lock = self.lock_exclusive()?;
        let now = self.prune_basis()?;
        if now != plan.basis {
            return Err(RepoError::Refused(format!(
                "the repository at {} changed since the {command} was planned ({}): nothing was \
                 deleted; plan the {command} again",
                self.location(),
                describe_change(&plan.basis, &now),
            )));
        }
        let mut stats = if plan.delete.is_empty() {
            PruneStats::default()
        } else {
            self.rewrite_packs(plan)?
        };
        // Last: they hold nothing the repository needs, so an error here
        // leaves a complete prune of the packs.
        for leftover in &plan.leftovers {
            match self
                .backend()
                .remove_temporary(leftover.kind, &leftover.name)
            {
                Ok(()) => {
                    stats.leftovers_removed += 1;
                    stats.leftover_bytes_removed += leftover.size;
                }
                // Gone since the plan (another prune): nothing to do.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RepoError::io(format!("removing {}", leftover.path()))(e)),
            }
        }
        Ok(stats)
    }

    /// The pack part of [`Repository::execute_rewrite`], under its lock and
    /// once the basis is checked.
    fn rewrite_packs(&self, plan: &PrunePlan) -> Result<PruneStats, RepoError> {
        self.reload_index()?;
        // The packs there now, which are the plan's (checked).
        let present: HashSet<String> = plan.basis.packs.iter().cloned().collect();
        self.index_mut().retain_packs(&present);
        // Copy the blobs still needed out of packs about to go. The
        // pipeline skips blobs already indexed, so the index it sees holds
        // the kept packs only.
        let mut fresh = self.index().empty_like();
        for pack in &plan.keep {
            fresh.add_pack(pack);
        }
        let old = std::mem::replace(&mut *self.index_mut(), fresh);
        let (_, written) = with_pipeline(self, |submitter| {
            for (id, kind, compression) in &plan.copy {
                let data =
                    self.read_copies(&old.locations(id))
                        .map_err(|detail| RepoError::Corrupt {
                            what: format!("blob {}", hex::encode(&id[..4])),
                            detail,
                        })?;
                // Reading proved the id (its sealing, or a hash): not hashed again.
                submitter.submit_identified_as(*kind, *id, &data, *compression)?;
            }
            Ok(())
        })?;
        // The index now holds kept + repacked packs; write it as one file
        // superseding every older one (and the pipeline's), then delete.
        let mut supersedes = plan.basis.index_files.clone();
        supersedes.extend(self.index().files.iter().cloned());
        self.replace_index(&supersedes)?;
        let mut stats = PruneStats {
            packs_repacked: plan.repack.len() as u64,
            ..PruneStats::default()
        };
        let mut deleted_bytes = 0u64;
        for pack in &plan.delete {
            deleted_bytes += self.backend().stat(FileKind::Pack, pack).unwrap_or(0);
            self.backend()
                .remove(FileKind::Pack, pack)
                .map_err(RepoError::io(format!("removing pack {}", short(pack))))?;
            stats.packs_deleted += 1;
        }
        stats.bytes_freed = deleted_bytes.saturating_sub(written.stored_bytes);
        self.reload_index()?;
        Ok(stats)
    }

    /// Plans the rewrite of every blob sealed as format 3 did (not bound to
    /// its id) into format-4 sealing: each pack holding one is repacked
    /// whole (its blobs the snapshots no longer need included: this is no
    /// prune) and deleted. Changes nothing; holds the exclusive lock while
    /// it reads, as [`Repository::plan_prune`] does. Packs no index names
    /// are left alone (`prune` removes them).
    pub fn plan_migrate(&self) -> Result<MigratePlan, RepoError> {
        let _lock = super::lock::acquire(self, true)?;
        self.plan_migrate_as_it_is()
    }

    /// What `migrate --dry-run` shows: [`Repository::plan_migrate`] read
    /// as `check` reads, without a lock, so that it writes nothing (not
    /// even a lock file) and never makes a backup starting meanwhile fail
    /// on its lock. A prune or migrate running at the same moment may make
    /// it fail to read; it is then run again.
    pub fn preview_migrate(&self) -> Result<MigrateSummary, RepoError> {
        Ok(self.plan_migrate_as_it_is()?.summary)
    }

    /// [`Repository::plan_migrate`]'s reading, under whatever lock the
    /// caller holds.
    fn plan_migrate_as_it_is(&self) -> Result<MigratePlan, RepoError> {
        let basis = self.prune_basis()?;
        self.reload_index()?;
        let index = self.index();
        // The new index file supersedes every other: entries only a damaged
        // file holds would be lost with it.
        refuse_damaged_index(&index, "migrate")?;
        let present: HashSet<&String> = basis.packs.iter().collect();
        let mut by_pack: BTreeMap<String, Vec<_>> = index.by_pack().into_iter().collect();
        // A pack whose every blob is recorded damaged has no entries left:
        // kept (migrate deletes nothing), so that the new index still names
        // it with its records, and no backup adopts its damaged copies.
        for pack in index.pack_sizes.keys() {
            by_pack.entry(pack.clone()).or_default();
        }
        let sizes = index.pack_sizes.clone();
        drop(index);
        let bound = self.seals_blobs_bound();
        // Image layers keep their level when rewritten (see plan_prune);
        // only image snapshots are walked, a few nodes each.
        let mut tighter: HashMap<BlobId, Compression> = HashMap::new();
        for snapshot in self.snapshots()? {
            let compression = ContentProfile::of(snapshot.content, self.chunker()).compression;
            if compression.level > FILE_COMPRESSION.level {
                self.walk_content(&snapshot, |id| note_tighter(&mut tighter, id, compression))?;
            }
        }
        let (mut keep, mut rewrite) = (Vec::new(), Vec::new());
        for (pack, blobs) in by_pack.iter().filter(|(pack, _)| present.contains(pack)) {
            let size = sizes.get(pack).copied().unwrap_or_default();
            if !bound || blobs.iter().all(|b| b.id_bound) {
                keep.push(IndexedPack {
                    id: pack.clone(),
                    size,
                    blobs: blobs.clone(),
                });
            } else {
                rewrite.push((pack.clone(), size));
            }
        }
        let kept: HashSet<BlobId> = keep
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        let copy: BTreeMap<BlobId, BlobKind> = rewrite
            .iter()
            .flat_map(|(pack, _)| &by_pack[pack])
            .filter(|b| !kept.contains(&b.id))
            .map(|b| (b.id, b.kind))
            .collect();
        let summary = MigrateSummary {
            packs_to_rewrite: rewrite.len() as u64,
            blobs_to_rewrite: copy.len() as u64,
            bytes_to_rewrite: rewrite.iter().map(|(_, size)| size).sum(),
            packs_kept: keep.len() as u64,
            plaintext: !self.keys().is_encrypted(),
        };
        let packs: Vec<String> = rewrite.into_iter().map(|(pack, _)| pack).collect();
        let rewrite = PrunePlan {
            summary: PruneSummary {
                packs_kept: summary.packs_kept,
                packs_to_repack: summary.packs_to_rewrite,
                packs_to_delete: summary.packs_to_rewrite,
                blobs_to_copy: summary.blobs_to_rewrite,
                index_files_to_rewrite: basis.index_files.len() as u64,
                ..PruneSummary::default()
            },
            basis,
            keep,
            repack: packs.clone(),
            delete: packs,
            copy: copy
                .into_iter()
                .map(|(id, kind)| (id, kind, compression_of(&tighter, &id, kind)))
                .collect(),
            leftovers: Vec::new(),
        };
        Ok(MigratePlan { rewrite, summary })
    }

    /// Carries out `plan` by prune's path (new packs, one index file
    /// superseding all, then the old packs deleted), under the exclusive
    /// lock; refused, deleting nothing, when the repository changed since.
    pub fn execute_migrate(&self, plan: &MigratePlan) -> Result<PruneStats, RepoError> {
        self.execute_rewrite(&plan.rewrite, "migrate")
    }

    /// Every temporary file interrupted writes left in the namespaces
    /// prune cleans, with its size, sorted by path; `listed` holds what is
    /// no repository file in the namespaces listed already.
    fn find_leftovers(&self, mut listed: NoFiles) -> Result<Vec<Leftover>, RepoError> {
        let backend = self.backend();
        for kind in LEFTOVER_KINDS {
            if !listed.iter().any(|(k, _)| *k == kind) {
                listed.push((kind, self.list_files(kind)?.unknown));
            }
        }
        let mut leftovers = Vec::new();
        for (kind, unknown) in listed {
            if !LEFTOVER_KINDS.contains(&kind) {
                continue;
            }
            let prefix = format!("{}/", kind.dir());
            for path in &unknown {
                let name = path.strip_prefix(&prefix).unwrap_or(path);
                match backend.stat_temporary(kind, name) {
                    Ok(Some(size)) => leftovers.push(Leftover {
                        kind,
                        name: name.to_string(),
                        size,
                    }),
                    Ok(None) => {}
                    // Removed since it was listed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(RepoError::io(format!("reading {path}"))(e)),
                }
            }
        }
        leftovers.sort_by_key(Leftover::path);
        Ok(leftovers)
    }

    /// The names a prune plan depends on, each list sorted.
    fn prune_basis(&self) -> Result<PruneBasis, RepoError> {
        Ok(self.read_basis()?.0)
    }

    /// [`Repository::prune_basis`], and the listings' entries that are no
    /// repository file (`dir/name`) by kind, so that looking for leftovers
    /// lists those namespaces (packs: the biggest) no second time.
    fn read_basis(&self) -> Result<(PruneBasis, NoFiles), RepoError> {
        let mut unknown = Vec::new();
        let mut sorted = |kind| -> Result<Vec<String>, RepoError> {
            let listing = self.list_files(kind)?;
            unknown.push((kind, listing.unknown));
            // Sorted already.
            Ok(listing.files)
        };
        let basis = PruneBasis {
            index_files: sorted(FileKind::Index)?,
            snapshots: sorted(FileKind::Snapshot)?,
            packs: sorted(FileKind::Pack)?,
        };
        Ok((basis, unknown))
    }
}

/// Refuses a `command` that writes one index file superseding every other
/// while an index file is damaged (what only it lists would be lost).
fn refuse_damaged_index(index: &super::index::Index, command: &str) -> Result<(), RepoError> {
    match index.damaged.first() {
        Some((name, detail)) => Err(RepoError::Corrupt {
            what: format!("index/{name}"),
            detail: format!(
                "{detail}; {command} deletes nothing while the index is damaged (`lifeboat \
                 repair` rebuilds it)"
            ),
        }),
        None => Ok(()),
    }
}

/// Says what moved on between two bases, in a few words.
fn describe_change(planned: &PruneBasis, now: &PruneBasis) -> String {
    let what = [
        (
            planned.snapshots != now.snapshots,
            "snapshots were added or forgotten",
        ),
        (
            planned.index_files != now.index_files,
            "the index was rewritten or extended",
        ),
        (planned.packs != now.packs, "packs were added or removed"),
    ];
    what.iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, said)| *said)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Notes that `id` belongs to content compressed as `compression` when
/// that is harder than files' (the hardest such content wins).
fn note_tighter(tighter: &mut HashMap<BlobId, Compression>, id: &BlobId, compression: Compression) {
    if compression.level > FILE_COMPRESSION.level {
        let held = tighter.entry(*id).or_insert(compression);
        if compression.level > held.level {
            *held = compression;
        }
    }
}

/// How a rewritten blob of `kind` is compressed again: as the content
/// that needs it, or as a backup writes a tree.
fn compression_of(
    tighter: &HashMap<BlobId, Compression>,
    id: &BlobId,
    kind: BlobKind,
) -> Compression {
    match kind {
        BlobKind::Tree => TREE_COMPRESSION,
        BlobKind::Data => tighter.get(id).copied().unwrap_or(FILE_COMPRESSION),
    }
}
