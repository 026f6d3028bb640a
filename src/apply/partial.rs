//! Restores of part of a tree (`restore --path`), where the snapshot and
//! the live tree meet: the lists the plan shows (the snapshot's subtree
//! against the live one, or against an empty `--into` directory), and the
//! write itself (a safety snapshot of exactly what is overwritten, then
//! only the entries the plan lists). The live tree is read and written
//! directly when this host can, else through the engine's archive API
//! (the same two ways a whole restore has). `diff ADDR` reads the live
//! tree the same way, to compare it with a snapshot.

use super::kinds::{Copied, Job, bind, volume};
use super::restoring::Target;
use super::stream::{self, ChannelReader};
use super::{ApplyError, Engines, NamedRepository, PRE_RESTORE_TAG, Run, VolumeAccess};
use crate::engine::{ARCHIVE_ROOT, ByteStream, Engine, EngineError, ExportStream};
use crate::plan::{PartialRestore, ResourceChange};
use crate::repo::RepoError;
use crate::repo::browse::{Difference, TreeMap};
use crate::repo::partial::{self, PathSelection, WriteSet};
use crate::repo::{ExcludeRules, Repository, Snapshot};
use crate::spec::{Address, Resource, Spec};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What `restore --path` asked for, checked.
#[derive(Debug, Clone)]
pub struct PartialRequest {
    pub selection: PathSelection,
    /// `--into DIR`: a host directory, new or empty, instead of the live tree.
    pub into: Option<PathBuf>,
    /// How the live tree is reached (`--access`): directly or through the API.
    pub access: VolumeAccess,
}

/// Where a restore in place reads and writes a live tree.
pub(crate) enum LiveTree<'a> {
    /// The directory that holds it, on this host.
    Directory(PathBuf),
    /// Through the engine's archive API.
    Engine {
        engine: &'a Arc<dyn Engine>,
        tree: EngineTree<'a>,
    },
}

/// A tree the engine exports and imports.
pub(crate) enum EngineTree<'a> {
    Volume(&'a str),
    Directory(&'a Path),
}

impl EngineTree<'_> {
    /// The kind and name the restore journal knows this tree by (those
    /// of a whole restore of it).
    fn journaled(&self) -> (&'static str, String) {
        match self {
            EngineTree::Volume(name) => ("volume", name.to_string()),
            EngineTree::Directory(path) => ("bind", path.display().to_string()),
        }
    }

    async fn export(&self, engine: &dyn Engine) -> Result<ExportStream, EngineError> {
        match self {
            EngineTree::Volume(name) => engine.export_volume(name).await,
            EngineTree::Directory(path) => engine.export_directory(path).await,
        }
    }

    async fn import(&self, engine: &dyn Engine, tar: ByteStream) -> Result<(), EngineError> {
        match self {
            EngineTree::Volume(name) => engine.import_volume(name, tar).await,
            EngineTree::Directory(path) => engine.import_directory(path, tar).await,
        }
    }
}

/// How this run reaches `address`'s live tree (`access` as `--access`
/// says; `direct` that cannot be honoured is an error).
async fn live_tree<'e>(
    spec: &'e Spec,
    engines: &'e Engines,
    address: &Address,
    access: VolumeAccess,
) -> Result<LiveTree<'e>, ApplyError> {
    let engine = engines.get(spec.engine_name(address))?;
    let (found, tree) = match spec.resource(address) {
        Some(Resource::Volume(spec_volume)) => (
            volume::content_directory(engine.as_ref(), access, &spec_volume.volume_name).await?,
            EngineTree::Volume(&spec_volume.volume_name),
        ),
        Some(Resource::Bind(spec_bind)) => (
            bind::content_directory(engine.as_ref(), access, &spec_bind.path)?,
            EngineTree::Directory(&spec_bind.path),
        ),
        _ => {
            return Err(ApplyError::Unsupported {
                what: address.to_string(),
                message: "only a volume or a bind has a tree to restore part of".to_string(),
            });
        }
    };
    Ok(match found {
        Some(directory) => LiveTree::Directory(directory),
        None => LiveTree::Engine { engine, tree },
    })
}

/// Runs `read` on the tree the engine exports, then releases the export.
async fn read_export<T: Send>(
    engine: &dyn Engine,
    tree: &EngineTree<'_>,
    read: impl FnOnce(ChannelReader) -> Result<T, RepoError> + Send,
) -> Result<T, ApplyError> {
    let (stream, release) = tree.export(engine).await?.into_parts();
    let reader = stream::read_ahead(stream, CancellationToken::new());
    let read = tokio::task::block_in_place(|| read(reader));
    release.release().await;
    Ok(read?)
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
    let (selection, wanted) = repository.subtree_map(&snapshot, &request.selection)?;
    let selection = &selection;
    let live = match &request.into {
        Some(dir) => {
            refuse_non_empty(dir)?;
            // The target was not observed (the engine is not asked for a
            // restore into a directory): the tree's own claims are
            // checked here instead.
            super::observe::true_tree_totals(spec, repository, &snapshot).map_err(|message| {
                ApplyError::Guarded {
                    what: change.address.to_string(),
                    message,
                }
            })?;
            Default::default()
        }
        None => {
            let live = LiveRead {
                spec,
                engines,
                access: request.access,
            };
            live.tree_map(
                repository,
                &change.address,
                selection,
                &ExcludeRules::default(),
            )
            .await?
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

/// How a command reads live trees: the spec's engines, and `--access`.
pub struct LiveRead<'a> {
    pub spec: &'a Spec,
    pub engines: &'a Engines,
    pub access: VolumeAccess,
}

impl LiveRead<'_> {
    /// The live entries of `address`'s tree under `selection` (content
    /// as `repository`'s chunk ids, nothing written to it), leaving out
    /// what `rules` leave out; read directly when this host can, else
    /// through the engine's archive export.
    async fn tree_map(
        &self,
        repository: &Repository,
        address: &Address,
        selection: &PathSelection,
        rules: &ExcludeRules,
    ) -> Result<TreeMap, ApplyError> {
        Ok(
            match live_tree(self.spec, self.engines, address, self.access).await? {
                LiveTree::Directory(root) => tokio::task::block_in_place(|| {
                    partial::live_tree_map_excluding(repository, &root, selection, rules)
                })?,
                LiveTree::Engine { engine, tree } => {
                    read_export(engine.as_ref(), &tree, |reader| {
                        partial::live_tree_map_tar_excluding(repository, reader, selection, rules)
                    })
                    .await?
                }
            },
        )
    }

    /// What changed from the tree snapshot `snapshot` of `address` (a
    /// volume or bind of the spec) to its live tree, as `diff A B` says
    /// it between two snapshots. The snapshot's excludes apply to the live
    /// side (what it left out is not "added"). Reads only: nothing is
    /// written to the repository, no container is stopped.
    pub async fn diff(
        &self,
        repository: &Repository,
        snapshot: &Snapshot,
        address: &Address,
    ) -> Result<Vec<Difference>, ApplyError> {
        let before = repository.tree_map(snapshot)?;
        let live = self
            .tree_map(
                repository,
                address,
                &PathSelection::whole(),
                &snapshot.source.excludes,
            )
            .await?;
        Ok(crate::repo::browse::compare(&before, &live))
    }
}

/// Where a partial restore writes: a new or empty host directory
/// (`--into`), or the live tree.
pub(crate) enum PartTarget<'a> {
    Into(PathBuf),
    Live(LiveTree<'a>),
}

impl<'a> PartTarget<'a> {
    /// The target of `partial`: its `--into` directory, else the live tree
    /// (its directory when `directory` gives one, else through `engine`).
    pub(crate) fn of(
        partial: &PartialRestore,
        directory: Option<PathBuf>,
        engine: &'a Arc<dyn Engine>,
        tree: EngineTree<'a>,
    ) -> PartTarget<'a> {
        match (&partial.into, directory) {
            (Some(into), _) => PartTarget::Into(PathBuf::from(into)),
            (None, Some(directory)) => PartTarget::Live(LiveTree::Directory(directory)),
            (None, None) => PartTarget::Live(LiveTree::Engine { engine, tree }),
        }
    }
}

/// Writes the part of the tree `partial` lists into `target`: in place, a
/// safety snapshot of what it overwrites first, named in a step, and the
/// paths recorded in the restore journal (`journal`: a killed run leaves
/// them torn, and the next plans say so); then only the created and
/// overwritten entries, and the directories above them under the paths
/// (so their times end as the snapshot's).
pub(crate) async fn write_part(
    run: &Run<'_>,
    change: &ResourceChange,
    repository: &Repository,
    snapshot: &Snapshot,
    partial: &PartialRestore,
    target: &PartTarget<'_>,
    journal: Option<&Target<'_>>,
) -> Result<Copied, ApplyError> {
    let selection =
        PathSelection::parse(&partial.paths).map_err(|message| ApplyError::Unsupported {
            what: change.address.to_string(),
            message,
        })?;
    match target {
        // Checked again: it may have been written to since the plan.
        PartTarget::Into(directory) => refuse_non_empty(directory)?,
        PartTarget::Live(live) if !partial.overwrite.is_empty() => {
            keep_overwritten(run, change, repository, partial, live).await?;
        }
        PartTarget::Live(_) => {}
    }
    // Only a write into the live tree can leave it torn; `--into` writes a
    // new directory and has no journal.
    let journal = journal.filter(|_| matches!(target, PartTarget::Live(_)) && partial.writes());
    if let Some(journal) = journal {
        run.restores
            .begin_paths(&change.address, journal, &snapshot.id.0, &selection)?;
    }
    let written: Vec<&String> = partial.create.iter().chain(&partial.overwrite).collect();
    let write = partial::entries_to_write(&selection, written);
    let progress = run.progress(change);
    let stats = match target {
        PartTarget::Into(directory) => tokio::task::block_in_place(|| {
            repository.restore_dir_selected_new(snapshot, directory, &write, &progress)
        })?,
        PartTarget::Live(LiveTree::Directory(directory)) => tokio::task::block_in_place(|| {
            repository.restore_dir_selected(snapshot, directory, &write, &progress)
        })?,
        PartTarget::Live(LiveTree::Engine { engine, tree }) => stream::feed_engine(
            run.cancel.clone(),
            "handing the restore stream to Docker",
            |writer| {
                repository.restore_tar_selected(snapshot, ARCHIVE_ROOT, &write, writer, &progress)
            },
            |tar| tree.import(engine.as_ref(), tar),
        )?,
    };
    if let Some(journal) = journal {
        // A signal that came while the write could not stop (a direct write
        // of one big file) leaves the record: the handler is telling the
        // user these paths are torn, and the next run writes them again.
        if run.cancel.is_cancelled() {
            return Err(ApplyError::Io {
                context: format!("restoring paths of {}", change.address),
                source: std::io::Error::other("interrupted: the run was cancelled"),
            });
        }
        run.restores
            .finish_paths(&change.address, journal, &selection)?;
    }
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: stats.files,
        bytes: stats.bytes,
        notes: stats.notes,
        ..Copied::default()
    })
}

/// The safety snapshot (tag [`PRE_RESTORE_TAG`]) of exactly the live
/// entries `partial` overwrites, named in a step with how to put them back.
async fn keep_overwritten(
    run: &Run<'_>,
    change: &ResourceChange,
    repository: &Repository,
    partial: &PartialRestore,
    live: &LiveTree<'_>,
) -> Result<(), ApplyError> {
    let shown = change.address.to_string();
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
    let only = WriteSet::new(partial.overwrite.iter());
    let progress = run.progress(change);
    let safety = match live {
        LiveTree::Directory(directory) => {
            let source = run.source(
                change,
                &run.spec.redact(&directory.display().to_string()),
                vec![PRE_RESTORE_TAG.to_string()],
            );
            tokio::task::block_in_place(|| {
                repository.backup_dir_selected(directory, &only, source, &progress)
            })?
        }
        LiveTree::Engine { engine, tree } => {
            let name = match tree {
                EngineTree::Volume(name) => name.to_string(),
                EngineTree::Directory(path) => path.display().to_string(),
            };
            let source = run.source(change, &name, vec![PRE_RESTORE_TAG.to_string()]);
            read_export(engine.as_ref(), tree, |reader| {
                repository.backup_tar_selected(reader, &only, source, &progress)
            })
            .await?
        }
    };
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
    Ok(())
}

/// `restore --path … --into DIR` of a volume or bind (`job`): the part
/// written into that host directory from the repository alone. The
/// engine is not asked (it may be unreachable): the live tree is neither
/// read nor written.
pub(crate) async fn restore_part_into(
    job: Job<'_>,
    part: &PartialRestore,
    directory: &str,
) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let _lock = repository.lock_shared()?;
    let snapshot = super::kinds::tree::snapshot_of(change, repository)?;
    let target = PartTarget::Into(PathBuf::from(directory));
    write_part(run, change, repository, &snapshot, part, &target, None).await
}

/// `restore --path` of a volume or bind (`job`) in place: into `directory`
/// when this host reaches the live tree, else through `engine` as `tree`
/// (`--into` is [`restore_part_into`], which the kinds call first), with the running
/// containers `stops` finds just before writing (those a replace of the
/// tree would stop; an error refuses) stopped meanwhile. In place, the
/// paths are in the restore journal while they are written.
pub(crate) async fn restore_part(
    job: Job<'_>,
    engine: &Arc<dyn Engine>,
    snapshot: &Snapshot,
    part: &PartialRestore,
    directory: Option<PathBuf>,
    tree: EngineTree<'_>,
    stops: impl Future<Output = Result<Vec<String>, ApplyError>>,
) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (kind, name) = tree.journaled();
    let journal = Target {
        engine: change.engine_name(),
        kind,
        name: &name,
    };
    let target = PartTarget::of(part, directory, engine, tree);
    let write = write_part(
        run,
        change,
        repository,
        snapshot,
        part,
        &target,
        Some(&journal),
    );
    let stops = stops.await?;
    super::quiesce::stopped_during(run, change, engine, &stops, write).await
}
