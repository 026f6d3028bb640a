//! Volumes: content read through the engine's archive API (a helper
//! container) or, on the engine's host, straight from the directory that
//! holds it; restores create the volume, fill an empty one, or (with
//! `--replace`) keep a safety snapshot, recreate it the same way and fill it.

use super::{Copied, KindHandler, Observer, RestoreTarget, tree};
use crate::apply::report::CopyOutcome;
use crate::apply::run::PRE_RESTORE_TAG;
use crate::apply::{ApplyError, Run, VolumeAccess, guards};
use crate::engine::{Engine, EngineError, VolumeInfo};
use crate::plan::{
    Detail, LiveResource, ResourceChange, RestoreObservation, TargetState, VolumeDetail, short_id,
};
use crate::repo::{Repository, SnapshotSource};
use crate::spec::{Address, Consistency};
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
    if run.access == VolumeAccess::Api {
        return Ok(None);
    }
    let candidate = engine
        .volume(volume)
        .await?
        .as_ref()
        .and_then(VolumeInfo::content_path);
    tree::direct_path(engine, run.access, candidate, volume)
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

fn volume_of<'s>(observer: &Observer<'s>, address: &Address) -> Option<&'s VolumeSpec> {
    match observer.spec.resource(address) {
        Some(Resource::Volume(volume)) => Some(volume),
        _ => None,
    }
}

fn detail(observer: &Observer<'_>, volume: &VolumeSpec) -> Detail {
    Detail::Volume(VolumeDetail {
        docker_name: observer.spec.redact(&volume.volume_name),
        target: None,
    })
}

#[async_trait::async_trait]
impl KindHandler for VolumeHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let Some(volume) = volume_of(observer, address) else {
            return (
                LiveResource::problem("not a volume of the spec".into()),
                String::new(),
            );
        };
        let engine = match observer.engine(address) {
            Ok(engine) => engine,
            Err(error) => {
                return (
                    LiveResource::problem(error.to_string()),
                    "(unreachable)".into(),
                );
            }
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
        let name = &volume.volume_name;
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
                let state = match engine.volume_is_empty(name).await {
                    Ok(true) => Ok(TargetState::Empty),
                    Ok(false) => Ok(TargetState::NonEmpty),
                    Err(error) => Err(redact(&error)),
                };
                (state, info.created_at.unwrap_or_default())
            }
        };
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what: format!("Docker volume {}", observer.spec.redact(name)),
                detail: detail(observer, volume),
            },
            fingerprint,
        }
    }

    async fn back_up(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
        repositories: &[(String, &Repository)],
    ) -> Vec<CopyOutcome> {
        let (volume, engine) = match resolve(run, change) {
            Ok(resolved) => resolved,
            Err(error) => return super::failed_copies(run, change, repositories, &error).await,
        };
        let direct = direct_path(run, engine.as_ref(), &volume.volume_name)
            .await
            .ok()
            .flatten();
        let expected = tree::expected_bytes(change, direct).await;
        let copies = async {
            let mut outcomes = Vec::new();
            for (name, repository) in repositories {
                let source = run.source(change, &volume.volume_name, Vec::new());
                let copy = back_up_into(
                    run,
                    change,
                    engine.as_ref(),
                    &volume.volume_name,
                    repository,
                    source,
                );
                outcomes.push(run.copy(change, name, expected, copy).await);
            }
            outcomes
        };
        crate::apply::quiesce::around(run, change, engine, repositories, copies).await
    }

    async fn restore(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
        repository_name: &str,
        repository: &Repository,
    ) -> CopyOutcome {
        run.restore_copy(
            change,
            repository_name,
            restore_volume(run, change, repository),
        )
        .await
    }
}

async fn restore_volume(
    run: &Run<'_>,
    change: &ResourceChange,
    repository: &Repository,
) -> Result<Copied, ApplyError> {
    let (volume_spec, engine) = resolve(run, change)?;
    let engine = engine.as_ref();
    let volume = &volume_spec.volume_name;
    let _lock = repository.lock_shared()?;
    let snapshot = tree::snapshot_of(change, repository)?;
    let target = match &change.detail {
        Detail::Volume(detail) => detail.target,
        _ => None,
    };
    match target {
        Some(TargetState::Missing) | None => {
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
        }
        Some(TargetState::Empty) => {}
        Some(TargetState::NonEmpty) => {
            replace_volume(run, change, engine, volume, repository).await?;
        }
    }
    let direct = direct_path(run, engine, volume).await?;
    tree::restore(run, change, repository, &snapshot, direct, |tar| {
        engine.import_volume(volume, tar)
    })
    .await
}

/// `--replace` of a non-empty volume: a safety snapshot of what is there,
/// then the volume recreated the same way (driver, options, labels) and
/// emptied, so the restore makes it equal to the snapshot.
async fn replace_volume(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    volume: &str,
    repository: &Repository,
) -> Result<(), ApplyError> {
    let shown = run.spec.redact(volume);
    let info = engine.volume(volume).await?.ok_or_else(|| {
        ApplyError::Snapshot(format!(
            "Docker volume {shown} disappeared during the restore"
        ))
    })?;
    // The plan refused this already; checked again just before emptying, as
    // the volume may have been recreated elsewhere since the plan was made.
    if let Some(message) = guards::volume_problem(run.spec, engine, &info) {
        return Err(ApplyError::Guarded {
            what: change.address.to_string(),
            message,
        });
    }
    let users = engine.volume_users(volume).await?;
    if !users.is_empty() {
        return Err(EngineError::VolumeInUse {
            name: shown,
            containers: users.into_iter().map(|u| u.name).collect(),
        }
        .into());
    }
    // Recreating a bind-backed volume keeps its directory's content: that
    // directory must be emptied here, so check it can be before anything changes.
    let device = info.bind_device();
    if let Some(device) = &device
        && std::fs::read_dir(device).is_err()
    {
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
    run.step(
        change,
        format!("safety snapshot of the current content of {shown} (tag {PRE_RESTORE_TAG})"),
    );
    let source = run.source(change, volume, vec![PRE_RESTORE_TAG.to_string()]);
    let safety = back_up_into(run, change, engine, volume, repository, source).await?;
    run.step(
        change,
        format!(
            "recreating Docker volume {shown} (driver {}); the previous content is in snapshot {}",
            info.driver,
            short_id(&safety.snapshot)
        ),
    );
    engine.remove_volume(volume).await?;
    engine.create_volume(&info).await?;
    if let Some(device) = &device {
        run.step(
            change,
            format!(
                "emptying {} (the directory behind {shown})",
                device.display()
            ),
        );
        tree::empty_directory(device)?;
    }
    Ok(())
}
