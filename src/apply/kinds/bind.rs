//! Binds: directories of the engine's host (configuration directories
//! bind-mounted into services), with the same fidelity as volumes: read
//! and written through helper containers that bind-mount them (so a remote
//! engine's host works), or directly when lifeboat runs on that host.
//! Restores create a missing directory, fill an empty one, or (with
//! `--replace`) keep a safety snapshot, empty it and fill it.

use super::{Copied, Job, KindHandler, Observer, RestoreTarget, tree};
use crate::apply::quiesce::Quiet;
use crate::apply::restoring::Target;
use crate::apply::{
    ApplyError, ExpectedBytes, PRE_RESTORE_TAG, Run, VolumeAccess, guards, partial,
};
use crate::engine::{DirectoryState, Engine};
use crate::plan::{
    BindDetail, Detail, LiveResource, ResourceChange, RestoreObservation, TargetState, short_id,
};
use crate::repo::Repository;
use crate::spec::{Address, BindSpec, Resource, Spec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct BindHandler;

fn bind_of<'s>(spec: &'s Spec, address: &Address) -> Option<&'s BindSpec> {
    match spec.resource(address) {
        Some(Resource::Bind(bind)) => Some(bind),
        _ => None,
    }
}

/// The bind's spec and engine, read from the spec (never from the plan,
/// whose paths may be redacted).
fn resolve<'r>(
    run: &'r Run<'_>,
    change: &ResourceChange,
) -> Result<(&'r BindSpec, &'r Arc<dyn Engine>), ApplyError> {
    super::resolve(run, change, |r| match r {
        Resource::Bind(x) => Some(x),
        _ => None,
    })
}

fn shown(spec: &Spec, path: &Path) -> String {
    spec.redact(&path.display().to_string())
}

fn detail(spec: &Spec, bind: &BindSpec) -> Detail {
    Detail::Bind(BindDetail {
        path: shown(spec, &bind.path),
        target: None,
        stops: Vec::new(),
    })
}

/// The running containers a replace of the bind's directory stops, in
/// stop order: those of the services that mount it (the spec says which;
/// the engine does not tell who bind-mounts a path) and of the services
/// depending on theirs.
async fn stops(
    spec: &Spec,
    engine_name: &str,
    engine: &dyn Engine,
    bind: &BindSpec,
) -> Result<Vec<String>, crate::engine::EngineError> {
    let mut running = Vec::new();
    for service in spec
        .services
        .iter()
        .filter(|s| s.binds.contains(&bind.name))
    {
        let state = engine.container(&service.container).await?;
        if state.is_some_and(|s| s.running) {
            running.push(service.container.clone());
        }
    }
    super::running_in_stop_order(spec, engine_name, engine, &running).await
}

fn direct_path(
    run: &Run<'_>,
    engine: &dyn Engine,
    path: &Path,
) -> Result<Option<PathBuf>, ApplyError> {
    tree::direct_path(
        engine,
        run.access,
        Some(path.to_path_buf()),
        &shown(run.spec, path),
    )
}

/// The bind's directory when `access` lets this host read and write it
/// directly (see [`tree::direct_path`]).
pub(crate) fn content_directory(
    engine: &dyn Engine,
    access: VolumeAccess,
    path: &Path,
) -> Result<Option<PathBuf>, ApplyError> {
    tree::direct_path(
        engine,
        access,
        Some(path.to_path_buf()),
        &path.display().to_string(),
    )
}

async fn back_up_into(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    path: &Path,
    repository: &Repository,
    tags: Vec<String>,
) -> Result<Copied, ApplyError> {
    let direct = direct_path(run, engine, path)?;
    let source = run.source(change, &path.display().to_string(), tags);
    let export = engine.export_directory(path);
    tree::back_up(run, change, repository, source, direct, export).await
}

#[async_trait::async_trait]
impl KindHandler for BindHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let (bind, engine) = match observer.declared(address, bind_of(observer.spec, address)) {
            Ok(declared) => declared,
            Err(unobserved) => return *unobserved,
        };
        let path = shown(observer.spec, &bind.path);
        let problem = match engine.directory(&bind.path).await {
            Ok(DirectoryState::Empty | DirectoryState::NonEmpty) => None,
            Ok(DirectoryState::Missing) => Some(format!(
                "{path} does not exist on the engine's host: create it, or fix `path`"
            )),
            Ok(DirectoryState::NotADirectory) => Some(format!(
                "{path} is not a directory on the engine's host: a bind protects a directory"
            )),
            Err(error) => Some(observer.spec.redact(&error.to_string())),
        };
        if let Some(problem) = problem {
            return (LiveResource::problem(problem), "(missing)".into());
        }
        if let Some(problem) =
            guards::bind_problem(observer.spec, engine.as_ref(), &bind.path).await
        {
            let live = LiveResource {
                detail: detail(observer.spec, bind),
                ..LiveResource::problem(problem)
            };
            return (live, "present".into());
        }
        let live = LiveResource {
            problem: None,
            running_users: Vec::new(),
            detail: detail(observer.spec, bind),
            source: Some(bind.path.display().to_string()),
            version: None,
        };
        (live, "present".into())
    }

    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        _chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget {
        let Some(bind) = bind_of(observer.spec, address) else {
            return RestoreTarget::unknown("not a bind of the spec".into());
        };
        let engine = match observer.engine(address) {
            Ok(engine) => engine,
            Err(error) => return RestoreTarget::unknown(error.to_string()),
        };
        let written = match observer.into.names.get(address) {
            Some(mapped) => std::path::PathBuf::from(mapped),
            None => bind.path.clone(),
        };
        let path = shown(observer.spec, &written);
        let guarded = guards::bind_problem(observer.spec, engine.as_ref(), &written).await;
        let (mut target, fingerprint) = match engine.directory(&written).await {
            Ok(DirectoryState::Missing) => (Ok(TargetState::Missing), "(missing)"),
            Ok(DirectoryState::Empty) => (Ok(TargetState::Empty), "present"),
            Ok(DirectoryState::NonEmpty) => (Ok(TargetState::NonEmpty), "present"),
            Ok(DirectoryState::NotADirectory) => (
                Err(format!(
                    "{path} is not a directory on the engine's host: move it away first"
                )),
                "present",
            ),
            Err(error) => (
                Err(observer.spec.redact(&error.to_string())),
                "(unreachable)",
            ),
        };
        // Whatever is there, a guarded directory is never restored into.
        if let Some(problem) = guarded
            && target.is_ok()
        {
            target = Err(problem);
        }
        let mut detail = detail(observer.spec, bind);
        if target == Ok(TargetState::NonEmpty)
            && let Detail::Bind(detail) = &mut detail
        {
            let engine_name = observer.spec.engine_name(address);
            match stops(observer.spec, engine_name, engine.as_ref(), bind).await {
                Ok(stops) => detail.stops = stops.iter().map(|c| observer.spec.redact(c)).collect(),
                Err(error) => target = Err(observer.spec.redact(&error.to_string())),
            }
        }
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what: format!("directory {path}"),
                detail,
            },
            fingerprint: fingerprint.to_string(),
        }
    }

    fn quiet<'s>(&self, spec: &'s Spec, address: &Address) -> Option<Quiet<'s>> {
        let bind = bind_of(spec, address)?;
        Quiet::of(spec, address, bind.consistency, &bind.hooks)
    }

    async fn expected_bytes(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
    ) -> Option<ExpectedBytes> {
        let (bind, engine) = resolve(run, change).ok()?;
        let directory = tree::measurable(engine.as_ref(), Some(bind.path.clone()));
        tree::expected_bytes(change, directory, &bind.exclude).await
    }

    async fn back_up(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        let (run, change, repository) = (job.run, job.change, job.repository);
        let (bind, engine) = resolve(run, change)?;
        back_up_into(
            run,
            change,
            engine.as_ref(),
            &bind.path,
            repository,
            Vec::new(),
        )
        .await
    }

    async fn restore(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        restore_bind(job).await
    }
}

async fn restore_bind(job: Job<'_>) -> Result<Copied, ApplyError> {
    if let Some(part) = &job.change.partial
        && let Some(directory) = &part.into
    {
        return partial::restore_part_into(job, part, directory).await;
    }
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (bind, engine_arc) = resolve(run, change)?;
    let engine = engine_arc.as_ref();
    let mapped = change
        .into
        .as_ref()
        .map(|i| std::path::PathBuf::from(&i.name));
    let path = mapped.as_ref().unwrap_or(&bind.path);
    if mapped.is_some() && engine.directory(path).await? == DirectoryState::NonEmpty {
        let what = format!("directory {}", shown(run.spec, path));
        return Err(super::exists_now(change, &what));
    }
    let _lock = repository.lock_shared()?;
    let snapshot = tree::snapshot_of(change, repository)?;
    let target = match &change.detail {
        Detail::Bind(detail) => detail.target,
        _ => None,
    };
    // The plan refused this already; checked again before anything is
    // written, as the directory may have changed since the plan was made.
    if let Some(message) = guards::bind_problem(run.spec, engine, path).await {
        return Err(ApplyError::Guarded {
            what: change.address.to_string(),
            message,
        });
    }
    if let Some(part) = &change.partial {
        return restore_part(job, bind, engine_arc, &snapshot, part).await;
    }
    let name = path.display().to_string();
    let journal = Target {
        engine: change.engine_name(),
        kind: "bind",
        name: &name,
    };
    let fill = async {
        // A missing directory is created here when lifeboat writes it itself;
        // through the API, the helper's bind mount creates it.
        if target == Some(TargetState::Missing)
            && run.access != VolumeAccess::Api
            && engine.is_local()
        {
            std::fs::create_dir_all(path).map_err(|source| ApplyError::Io {
                context: format!("creating {}", shown(run.spec, path)),
                source,
            })?;
        }
        let direct = direct_path(run, engine, path)?;
        tree::restore(run, change, repository, &snapshot, direct, |tar| {
            engine.import_directory(path, tar)
        })
        .await
    };
    let copied = if target == Some(TargetState::NonEmpty) {
        // Nothing in the archive API deletes files: making the directory
        // equal to the snapshot needs it here, so check before anything changes.
        if !engine.is_local() || std::fs::read_dir(path).is_err() {
            return Err(ApplyError::Unsupported {
                what: change.address.to_string(),
                message: format!(
                    "--replace must empty {} first, which only works where lifeboat runs on the \
                     engine's host as root; empty it yourself and restore into the empty directory",
                    shown(run.spec, path)
                ),
            });
        }
        tree::prove_restorable(run, change, repository, &snapshot)?;
        // Checked again: services may have started or stopped since the plan.
        let stopping = stops(run.spec, journal.engine, engine, bind).await?;
        let replace = async {
            let previous = if tree::over_partial_restore(change) {
                String::from(" (a partial restore: no safety snapshot of it)")
            } else {
                run.step(
                    change,
                    format!(
                        "safety snapshot of the current content of {} (tag {PRE_RESTORE_TAG})",
                        shown(run.spec, path)
                    ),
                );
                let tags = vec![PRE_RESTORE_TAG.to_string()];
                let safety = back_up_into(run, change, engine, path, repository, tags).await?;
                format!(
                    "; its previous content is in snapshot {}",
                    short_id(&safety.snapshot)
                )
            };
            run.restores
                .begin(&change.address, &journal, &snapshot.id.0)?;
            run.step(
                change,
                format!("emptying {}{previous}", shown(run.spec, path)),
            );
            tree::empty_directory(path)?;
            fill.await
        };
        crate::apply::quiesce::stopped_during(run, change, engine_arc, &stopping, replace).await?
    } else {
        run.restores
            .begin(&change.address, &journal, &snapshot.id.0)?;
        fill.await?
    };
    run.restores.finish(&change.address, &journal)?;
    Ok(copied)
}

/// `restore --path` of the bind: see [`partial::restore_part`]; the
/// services that mount it (and their dependents) are stopped meanwhile.
async fn restore_part(
    job: Job<'_>,
    bind: &BindSpec,
    engine: &Arc<dyn Engine>,
    snapshot: &crate::repo::Snapshot,
    part: &crate::plan::PartialRestore,
) -> Result<Copied, ApplyError> {
    let directory = match &part.into {
        Some(_) => None,
        None => content_directory(engine.as_ref(), job.run.access, &bind.path)?,
    };
    let stops = stops(
        job.run.spec,
        job.change.engine_name(),
        engine.as_ref(),
        bind,
    );
    let stops = async { Ok(stops.await?) };
    let tree = partial::EngineTree::Directory(&bind.path);
    partial::restore_part(job, engine, snapshot, part, directory, tree, stops).await
}
