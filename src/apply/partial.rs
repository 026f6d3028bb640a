//! Restores of part of a tree (`restore --path`), where the snapshot and
//! the live tree meet: the lists the plan shows (the snapshot's subtree
//! against the live one, or against an empty `--into` directory), and the
//! write itself (a safety snapshot of exactly what is overwritten, then
//! only the entries the plan lists). The live tree is read and written
//! directly, never through the archive API: Docker's archive endpoint
//! replaces whole directories' metadata and cannot say what it would
//! overwrite.

use super::kinds::{Copied, bind, volume};
use super::{ApplyError, Engines, NamedRepository, PRE_RESTORE_TAG, Run, VolumeAccess};
use crate::plan::{PartialRestore, ResourceChange};
use crate::repo::partial::{self, PathSelection, WriteSet};
use crate::repo::{Repository, Snapshot};
use crate::spec::{Address, Resource, Spec};
use std::path::{Path, PathBuf};

/// What `restore --path` asked for, checked.
#[derive(Debug, Clone)]
pub struct PartialRequest {
    pub selection: PathSelection,
    /// `--into DIR`: a host directory, new or empty, instead of the live tree.
    pub into: Option<PathBuf>,
    /// How the live tree may be reached (`--access`): in place needs it directly.
    pub access: VolumeAccess,
}

/// The directory that holds `address`'s live tree on this host, when this
/// run may read and write it directly; else why not, in the user's words.
pub(crate) async fn live_directory(
    spec: &Spec,
    engines: &Engines,
    address: &Address,
    access: VolumeAccess,
) -> Result<PathBuf, ApplyError> {
    let engine = engines.get(spec.engine_name(address))?;
    let found = match spec.resource(address) {
        Some(Resource::Volume(spec_volume)) => {
            volume::content_directory(engine.as_ref(), access, &spec_volume.volume_name).await?
        }
        Some(Resource::Bind(spec_bind)) => {
            bind::content_directory(engine.as_ref(), access, &spec_bind.path)?
        }
        _ => None,
    };
    found.ok_or_else(|| no_direct_access(address))
}

/// Why a partial restore in place cannot be made here, and what to do.
pub(crate) fn no_direct_access(address: &Address) -> ApplyError {
    ApplyError::Unsupported {
        what: address.to_string(),
        message: "restore --path in place reads and writes the tree directly, which needs \
                  lifeboat on the engine's host with access to its directory (as root, \
                  without --access api). Write the part into a directory with --into DIR \
                  instead, and copy what you need from there"
            .to_string(),
    }
}

/// The repository the change reads and its snapshot.
fn snapshot_of<'r>(
    change: &ResourceChange,
    repositories: &'r [NamedRepository],
) -> Result<(&'r Repository, Snapshot), ApplyError> {
    let chosen = change.snapshot.as_ref().ok_or_else(|| {
        ApplyError::ResourceMissing(format!("no snapshot of {} to restore", change.address))
    })?;
    let repository = repositories
        .iter()
        .find(|r| r.name == chosen.repository)
        .and_then(|r| r.repository.as_ref())
        .ok_or_else(|| {
            ApplyError::ResourceMissing(format!("repository.{} is gone", chosen.repository))
        })?;
    let snapshot = super::kinds::chosen_snapshot(change, repository)?;
    Ok((repository, snapshot))
}

/// Whether `dir` is missing or empty (what `--into` writes into).
fn is_new_or_empty(dir: &Path) -> Result<bool, ApplyError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(ApplyError::Io {
            context: format!("reading {}", dir.display()),
            source,
        }),
    }
}

fn refuse_non_empty(dir: &Path) -> Result<(), ApplyError> {
    if is_new_or_empty(dir)? {
        return Ok(());
    }
    Err(ApplyError::Unsupported {
        what: dir.display().to_string(),
        message: format!(
            "--into {} is not empty: a restore into a directory never overwrites anything. \
             Name a new or empty directory (it is created), or restore in place without --into",
            dir.display()
        ),
    })
}

/// The plan's lists for the restore `change` (made for `request`'s one
/// target): the snapshot's entries under the paths (refused when a path is
/// not there) against the live tree read directly, or against the empty
/// `--into` directory.
pub async fn observe_partial(
    spec: &Spec,
    engines: &Engines,
    repositories: &[NamedRepository],
    change: &ResourceChange,
    request: &PartialRequest,
) -> Result<PartialRestore, ApplyError> {
    let (repository, snapshot) = snapshot_of(change, repositories)?;
    let selection = &request.selection;
    let wanted = repository.subtree_map(&snapshot, selection)?;
    let live = match &request.into {
        Some(dir) => {
            refuse_non_empty(dir)?;
            Default::default()
        }
        None => {
            let root = live_directory(spec, engines, &change.address, request.access).await?;
            tokio::task::block_in_place(|| partial::live_tree_map(repository, &root, selection))?
        }
    };
    let changes = partial::classify(selection, &wanted, &live);
    Ok(PartialRestore {
        paths: selection.paths().to_vec(),
        into: request.into.as_ref().map(|d| d.display().to_string()),
        create: changes.create,
        overwrite: changes.overwrite,
        leave: changes.leave,
        kept: changes.kept,
    })
}

/// Writes the part of the tree `partial` lists into `directory` (the live
/// tree's, or the `--into` one): in place, a safety snapshot of what it
/// overwrites first, named in a step; then only the created and
/// overwritten entries, and the directories above them under the paths
/// (so their times end as the snapshot's).
pub(crate) fn write_part(
    run: &Run<'_>,
    change: &ResourceChange,
    repository: &Repository,
    snapshot: &Snapshot,
    partial: &PartialRestore,
    directory: &Path,
) -> Result<Copied, ApplyError> {
    let selection =
        PathSelection::parse(&partial.paths).map_err(|message| ApplyError::Unsupported {
            what: change.address.to_string(),
            message,
        })?;
    if partial.into.is_some() {
        // Checked again: it may have been written to since the plan.
        refuse_non_empty(directory)?;
    } else if !partial.overwrite.is_empty() {
        let shown = run.spec.redact(&directory.display().to_string());
        run.step(
            change,
            format!(
                "safety snapshot (tag {PRE_RESTORE_TAG}) of what is about to be overwritten in \
                 {shown}: {}",
                match partial.overwrite.len() {
                    1 => "1 entry".to_string(),
                    n => format!("{n} entries"),
                }
            ),
        );
        let source = run.source(change, &shown, vec![PRE_RESTORE_TAG.to_string()]);
        let only = WriteSet::new(partial.overwrite.iter());
        let safety =
            repository.backup_dir_selected(directory, &only, source, &run.progress(change))?;
        run.step(
            change,
            format!(
                "the overwritten entries are in snapshot {} (`lifeboat restore --snapshot {} \
                 --target {} --path …` puts them back)",
                safety.id.short(),
                safety.id.short(),
                change.address
            ),
        );
    }
    let written: Vec<&String> = partial.create.iter().chain(&partial.overwrite).collect();
    let write = partial::entries_to_write(&selection, written);
    let stats =
        repository.restore_dir_selected(snapshot, directory, &write, &run.progress(change))?;
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: stats.files,
        bytes: stats.bytes,
        notes: stats.notes,
        ..Copied::default()
    })
}
