//! Volumes: content read through the engine's archive API (a helper
//! container) or, on the engine's host, straight from the directory that
//! holds it; restores create the volume, fill an empty one, or (with
//! `--replace`) keep a safety snapshot, recreate it the same way and fill it.

use super::{Copied, Job, KindHandler, Observer, RestoreTarget, tree};
use crate::apply::quiesce::Quiet;
use crate::apply::restoring::Target;
use crate::apply::{
    ApplyError, ExpectedBytes, PRE_RESTORE_TAG, Run, VolumeAccess, guards, partial,
};
use crate::engine::{Engine, EngineError, VolumeInfo};
use crate::plan::{
    Detail, LiveResource, ResourceChange, RestoreObservation, TargetState, VolumeDetail, VolumeUse,
    short_id,
};
use crate::repo::{Repository, SnapshotSource};
use crate::spec::{Address, Consistency, Spec};
use crate::spec::{Resource, VolumeSpec};
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) struct VolumeHandler;

/// The volume's spec and engine: what the change names, read from the spec
/// (never from the plan, whose names may be redacted).
fn resolve<'r>(
    run: &'r Run<'_>,
    change: &ResourceChange,
) -> Result<(&'r VolumeSpec, &'r Arc<dyn Engine>), ApplyError> {
    super::resolve(run, change, |r| match r {
        Resource::Volume(x) => Some(x),
        _ => None,
    })
}

/// The directory holding the volume's content, when this run reads and
/// writes it directly (see [`tree::direct_path`]).
async fn direct_path(
    run: &Run<'_>,
    engine: &dyn Engine,
    volume: &str,
) -> Result<Option<PathBuf>, ApplyError> {
    content_directory(engine, run.access, volume).await
}

/// The directory holding the volume's content when `access` lets this
/// host read and write it directly (see [`tree::direct_path`]).
pub(crate) async fn content_directory(
    engine: &dyn Engine,
    access: VolumeAccess,
    volume: &str,
) -> Result<Option<PathBuf>, ApplyError> {
    if access == VolumeAccess::Api {
        return Ok(None);
    }
    let candidate = engine
        .volume(volume)
        .await?
        .as_ref()
        .and_then(VolumeInfo::content_path);
    tree::direct_path(engine, access, candidate, volume)
}

/// Streams the volume out of the engine (or its directory) into `repository`.
async fn back_up_into(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    docker_name: &str,
    repository: &Repository,
    source: SnapshotSource,
) -> Result<Copied, ApplyError> {
    let direct = direct_path(run, engine, docker_name).await?;
    let export = engine.export_volume(docker_name);
    tree::back_up(run, change, repository, source, direct, export).await
}

fn volume_in<'s>(spec: &'s Spec, address: &Address) -> Option<&'s VolumeSpec> {
    match spec.resource(address) {
        Some(Resource::Volume(volume)) => Some(volume),
        _ => None,
    }
}

fn volume_of<'s>(observer: &Observer<'s>, address: &Address) -> Option<&'s VolumeSpec> {
    volume_in(observer.spec, address)
}

fn detail(observer: &Observer<'_>, volume: &VolumeSpec) -> Detail {
    Detail::Volume(VolumeDetail {
        docker_name: observer.spec.redact(&volume.volume_name),
        target: None,
        used_by: None,
    })
}

/// The directory a volume in use is emptied in when its content is
/// replaced (Docker will not remove it): its content's directory, when the
/// engine is on this host and lifeboat may enter it.
fn emptiable_directory(engine: &dyn Engine, info: &VolumeInfo) -> Option<PathBuf> {
    let name = info.name.as_str();
    tree::direct_path(engine, VolumeAccess::Auto, info.content_path(), name)
        .ok()
        .flatten()
}

/// The containers using the volume, and the running ones a replace stops
/// (with those of the services depending on them), in stop order.
async fn volume_use(
    spec: &Spec,
    engine_name: &str,
    engine: &dyn Engine,
    info: &VolumeInfo,
) -> Result<(Vec<String>, Vec<String>), EngineError> {
    let users = engine.volume_users(&info.name).await?;
    let running: Vec<String> = users
        .iter()
        .filter(|u| u.running)
        .map(|u| u.name.clone())
        .collect();
    let stops = super::running_in_stop_order(spec, engine_name, engine, &running).await?;
    Ok((users.into_iter().map(|u| u.name).collect(), stops))
}

#[async_trait::async_trait]
impl KindHandler for VolumeHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let (volume, engine) = match observer.declared(address, volume_of(observer, address)) {
            Ok(declared) => declared,
            Err(unobserved) => return *unobserved,
        };
        let redact = |e: &dyn std::fmt::Display| observer.spec.redact(&e.to_string());
        let shown = observer.spec.redact(&volume.volume_name);
        let info = match engine.volume(&volume.volume_name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                let message =
                    format!("Docker volume {shown:?} does not exist: create it, or fix `name`");
                return (LiveResource::problem(message), "(missing)".into());
            }
            Err(error) => {
                return (
                    LiveResource::problem(redact(&error)),
                    "(unreachable)".into(),
                );
            }
        };
        if let Some(problem) = guards::volume_problem(observer.spec, engine.as_ref(), &info) {
            let live = LiveResource {
                detail: detail(observer, volume),
                ..LiveResource::problem(problem)
            };
            return (live, info.created_at.unwrap_or_default());
        }
        let users = match engine.volume_users(&volume.volume_name).await {
            Ok(users) => users,
            Err(error) => {
                return (
                    LiveResource::problem(redact(&error)),
                    "(unreachable)".into(),
                );
            }
        };
        let live = LiveResource {
            problem: None,
            // With consistency set, the service is stopped or paused for the copy.
            running_users: if volume.consistency == Consistency::None {
                users
                    .into_iter()
                    .filter(|u| u.running)
                    .map(|u| u.name)
                    .collect()
            } else {
                Vec::new()
            },
            detail: detail(observer, volume),
            source: Some(volume.volume_name.clone()),
            version: None,
        };
        (live, info.created_at.unwrap_or_default())
    }

    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        _chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget {
        let unknown = RestoreTarget::unknown;
        let Some(volume) = volume_of(observer, address) else {
            return unknown("not a volume of the spec".into());
        };
        let engine = match observer.engine(address) {
            Ok(engine) => engine,
            Err(error) => return unknown(error.to_string()),
        };
        let redact = |e: &dyn std::fmt::Display| observer.spec.redact(&e.to_string());
        let name = observer.target_name(address, &volume.volume_name);
        let mut used_by = None;
        let (target, fingerprint) = match engine.volume(name).await {
            Err(error) => (Err(redact(&error)), "(unreachable)".to_string()),
            Ok(None) => (Ok(TargetState::Missing), "(missing)".to_string()),
            Ok(Some(info))
                if let Some(problem) =
                    guards::volume_problem(observer.spec, engine.as_ref(), &info) =>
            {
                (Err(problem), info.created_at.unwrap_or_default())
            }
            Ok(Some(info)) => {
                let mut state = match engine.volume_is_empty(name).await {
                    Ok(true) => Ok(TargetState::Empty),
                    Ok(false) => Ok(TargetState::NonEmpty),
                    Err(error) => Err(redact(&error)),
                };
                if state == Ok(TargetState::NonEmpty) {
                    let engine_name = observer.spec.engine_name(address);
                    match volume_use(observer.spec, engine_name, engine.as_ref(), &info).await {
                        Ok((containers, _)) if containers.is_empty() => {}
                        Ok((containers, stops)) => {
                            let shown = |names: Vec<String>| {
                                names.iter().map(|n| observer.spec.redact(n)).collect()
                            };
                            used_by = Some(VolumeUse {
                                containers: shown(containers),
                                stops: shown(stops),
                                reachable: emptiable_directory(engine.as_ref(), &info).is_some(),
                            });
                        }
                        Err(error) => state = Err(redact(&error)),
                    }
                }
                (state, info.created_at.unwrap_or_default())
            }
        };
        let mut detail = detail(observer, volume);
        if let Detail::Volume(volume) = &mut detail {
            volume.used_by = used_by;
        }
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what: format!("Docker volume {}", observer.spec.redact(name)),
                detail,
            },
            fingerprint,
        }
    }

    fn quiet<'s>(&self, spec: &'s Spec, address: &Address) -> Option<Quiet<'s>> {
        let volume = volume_in(spec, address)?;
        Quiet::of(spec, address, volume.consistency, &volume.hooks)
    }

    async fn expected_bytes(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
    ) -> Option<ExpectedBytes> {
        let (volume, engine) = resolve(run, change).ok()?;
        let mountpoint = engine
            .volume(&volume.volume_name)
            .await
            .ok()
            .flatten()
            .as_ref()
            .and_then(VolumeInfo::content_path);
        let measurable = tree::measurable(engine.as_ref(), mountpoint);
        tree::expected_bytes(change, measurable, &volume.exclude).await
    }

    async fn back_up(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        let (run, change, repository) = (job.run, job.change, job.repository);
        let (volume, engine) = resolve(run, change)?;
        let name = &volume.volume_name;
        let source = run.source(change, name, Vec::new());
        back_up_into(run, change, engine.as_ref(), name, repository, source).await
    }

    async fn restore(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        restore_volume(job).await
    }
}

async fn restore_volume(job: Job<'_>) -> Result<Copied, ApplyError> {
    if let Some(part) = &job.change.partial
        && let Some(directory) = &part.into
    {
        return partial::restore_part_into(job, part, directory).await;
    }
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (volume_spec, engine) = resolve(run, change)?;
    let volume = change
        .into
        .as_ref()
        .map_or(&volume_spec.volume_name, |i| &i.name);
    let _lock = repository.lock_shared()?;
    let snapshot = tree::snapshot_of(change, repository)?;
    if let Some(part) = &change.partial {
        return restore_part(job, engine, volume, &snapshot, part).await;
    }
    let target = match &change.detail {
        Detail::Volume(detail) => detail.target,
        _ => None,
    };
    let journal = Target {
        engine: change.engine_name(),
        kind: "volume",
        name: volume,
    };
    let begin = || {
        run.restores
            .begin(&change.address, &journal, &snapshot.id.0)
    };
    let fill = async {
        let direct = direct_path(run, engine.as_ref(), volume).await?;
        tree::restore(run, change, repository, &snapshot, direct, |tar| {
            engine.import_volume(volume, tar)
        })
        .await
    };
    let copied = match target {
        Some(TargetState::Missing) | None => {
            // Docker "creates" a volume that exists by handing it back: a
            // new name must still be free, or another's volume is filled.
            if change.into.is_some() && engine.volume(volume).await?.is_some() {
                return Err(super::exists_now(
                    change,
                    &format!("Docker volume {volume}"),
                ));
            }
            begin()?;
            run.step(
                change,
                format!("creating Docker volume {}", run.spec.redact(volume)),
            );
            engine
                .create_volume(&VolumeInfo {
                    name: volume.clone(),
                    driver: "local".to_string(),
                    ..VolumeInfo::default()
                })
                .await?;
            fill.await?
        }
        Some(TargetState::Empty) => {
            begin()?;
            fill.await?
        }
        Some(TargetState::NonEmpty) => {
            tree::prove_restorable(run, change, repository, &snapshot)?;
            let info = engine.volume(volume).await?.ok_or_else(|| {
                ApplyError::ResourceMissing(format!(
                    "Docker volume {} disappeared during the restore",
                    run.spec.redact(volume)
                ))
            })?;
            // Checked again: containers may have come or gone since the plan.
            let (users, stops) =
                volume_use(run.spec, journal.engine, engine.as_ref(), &info).await?;
            let replace = async {
                replace_volume(run, change, engine, &info, repository, &users, begin).await?;
                fill.await
            };
            crate::apply::quiesce::stopped_during(run, change, engine, &stops, replace).await?
        }
    };
    run.restores.finish(&change.address, &journal)?;
    Ok(copied)
}

/// Makes a non-empty volume empty for the restore: a safety snapshot of
/// what is there (unless it is a partial restore), the restore journal's
/// record (`begin`), then the volume recreated the same way (driver,
/// options, labels), or emptied in place when containers use it (Docker
/// removes no volume in use).
async fn replace_volume(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &Arc<dyn Engine>,
    info: &VolumeInfo,
    repository: &Repository,
    users: &[String],
    begin: impl FnOnce() -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let engine = engine.as_ref();
    let volume = info.name.as_str();
    let shown = run.spec.redact(volume);
    // The plan refused this already; checked again just before emptying, as
    // the volume may have been recreated elsewhere since the plan was made.
    if let Some(message) = guards::volume_problem(run.spec, engine, info) {
        return Err(ApplyError::Guarded {
            what: change.address.to_string(),
            message,
        });
    }
    // Recreating a bind-backed volume keeps its directory's content, and a
    // volume in use is not recreated at all: that directory is emptied
    // here, so check it can be before anything changes.
    let in_place =
        match (users.is_empty(), info.bind_device()) {
            (true, None) => None,
            (true, Some(device)) if std::fs::read_dir(&device).is_ok() => Some(device),
            (true, Some(device)) => {
                return Err(ApplyError::Unsupported {
                    what: change.address.to_string(),
                    message: format!(
                        "Docker volume {shown} is backed by the host directory {} (local driver, \
                     o=bind), which recreating the volume does not empty; run lifeboat on the \
                     engine's host as root so it can empty that directory, or remove the files \
                     yourself and restore into the empty volume",
                        device.display()
                    ),
                });
            }
            (false, _) => Some(emptiable_directory(engine, info).ok_or_else(|| {
                ApplyError::Unsupported {
                    what: change.address.to_string(),
                    message: format!(
                        "Docker volume {shown} is used by container(s) {}, and Docker removes no \
                     volume a container uses: its content can only be emptied in place, which \
                     needs lifeboat on the engine's host as root. Run it there, or remove those \
                     containers and restore again",
                        users
                            .iter()
                            .map(|u| run.spec.redact(u))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            })?),
        };
    let kept = if tree::over_partial_restore(change) {
        run.step(
            change,
            format!("{shown} holds a partial restore: replaced without a safety snapshot"),
        );
        None
    } else {
        run.step(
            change,
            format!("safety snapshot of the current content of {shown} (tag {PRE_RESTORE_TAG})"),
        );
        let source = run.source(change, volume, vec![PRE_RESTORE_TAG.to_string()]);
        let safety = back_up_into(run, change, engine, volume, repository, source).await?;
        Some(short_id(&safety.snapshot))
    };
    let previous = match &kept {
        Some(id) => format!("; the previous content is in snapshot {id}"),
        None => String::new(),
    };
    begin()?;
    if users.is_empty() {
        run.step(
            change,
            format!(
                "recreating Docker volume {shown} (driver {}){previous}",
                info.driver
            ),
        );
        engine.remove_volume(volume).await?;
        engine.create_volume(info).await?;
    }
    if let Some(directory) = &in_place {
        run.step(
            change,
            format!(
                "emptying {} (the directory behind {shown}){previous}",
                directory.display()
            ),
        );
        tree::empty_directory(directory)?;
    }
    Ok(())
}

/// `restore --path` of the volume: see [`partial::restore_part`].
async fn restore_part(
    job: Job<'_>,
    engine: &Arc<dyn Engine>,
    volume: &str,
    snapshot: &crate::repo::Snapshot,
    part: &crate::plan::PartialRestore,
) -> Result<Copied, ApplyError> {
    let run = job.run;
    let directory = match &part.into {
        Some(_) => None,
        None => content_directory(engine.as_ref(), run.access, volume).await?,
    };
    let stops = async {
        let info = engine.volume(volume).await?.ok_or_else(|| {
            ApplyError::ResourceMissing(format!(
                "Docker volume {} disappeared before the restore",
                run.spec.redact(volume)
            ))
        })?;
        // As for a replace: checked again just before anything is written.
        if let Some(message) = guards::volume_problem(run.spec, engine.as_ref(), &info) {
            return Err(ApplyError::Guarded {
                what: job.change.address.to_string(),
                message,
            });
        }
        let engine_name = job.change.engine_name();
        let (_, stops) = volume_use(run.spec, engine_name, engine.as_ref(), &info).await?;
        Ok(stops)
    };
    let tree = partial::EngineTree::Volume(volume);
    partial::restore_part(job, engine, snapshot, part, directory, tree, stops).await
}
