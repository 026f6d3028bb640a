//! Volumes: content read through the engine's archive API (a helper
//! container) or, on the engine's host, straight from the directory that
//! holds it; restores create the volume, fill an empty one, or (with
//! `--replace`) keep a safety snapshot, recreate it the same way and fill it.

use super::{Copied, KindHandler, Observer, RestoreTarget};
use crate::apply::report::CopyOutcome;
use crate::apply::run::PRE_RESTORE_TAG;
use crate::apply::{ApplyError, Run, VolumeAccess, stream};
use crate::engine::{ARCHIVE_ROOT, Engine, EngineError, VolumeInfo};
use crate::plan::{
    Detail, LiveResource, ResourceChange, RestoreObservation, TargetState, VolumeDetail, short_id,
};
use crate::repo::{Repository, SnapshotSource};
use crate::spec::{Address, Consistency};
use crate::spec::{Resource, VolumeSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) struct VolumeHandler;

/// The volume's spec and engine: what the change names, read from the spec
/// (never from the plan, whose names may be redacted).
fn resolve<'r>(
    run: &'r Run<'_>,
    change: &ResourceChange,
) -> Result<(&'r VolumeSpec, &'r Arc<dyn Engine>), ApplyError> {
    let Some(Resource::Volume(volume)) = run.spec.resource(&change.address) else {
        return Err(ApplyError::Snapshot(format!(
            "the plan names {}, which the spec no longer declares",
            change.address
        )));
    };
    let engine = run.engines.get(
        change
            .engine
            .as_deref()
            .unwrap_or(crate::plan::DEFAULT_ENGINE),
    )?;
    Ok((volume, engine))
}

/// The directory holding the volume's content when `access` allows and
/// this host can read it.
async fn direct_path(
    engine: &dyn Engine,
    access: VolumeAccess,
    volume: &str,
) -> Result<Option<PathBuf>, ApplyError> {
    if access == VolumeAccess::Api {
        return Ok(None);
    }
    let info = engine.volume(volume).await?;
    let path = info
        .as_ref()
        .and_then(VolumeInfo::content_path)
        .filter(|path| std::fs::read_dir(path).is_ok());
    match (access, path) {
        (_, Some(path)) => Ok(Some(path)),
        (VolumeAccess::Direct, None) => Err(ApplyError::NoDirectAccess {
            volume: volume.to_string(),
            mountpoint: match info.and_then(|i| i.mountpoint) {
                Some(mountpoint) => format!("{} is not readable here", mountpoint.display()),
                None => "the engine gives none".to_string(),
            },
        }),
        _ => Ok(None),
    }
}

/// Bytes of file content under `root` (the total a progress bar counts to).
fn tree_bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
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
    let _lock = repository.lock_shared().map_err(ApplyError::from)?;
    let progress = run.progress(change);
    let snapshot = match direct_path(engine, run.access, docker_name).await? {
        Some(path) => {
            tokio::task::block_in_place(|| repository.backup_dir(&path, source, &progress))
        }
        None => {
            let (stream, release) = engine.export_volume(docker_name).await?.into_parts();
            let reader = stream::read_ahead(stream, run.cancel.clone());
            let snapshot =
                tokio::task::block_in_place(|| repository.backup_tar(reader, source, &progress));
            release.release().await;
            snapshot
        }
    }
    .map_err(ApplyError::from)?;
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: snapshot.summary.files,
        bytes: snapshot.summary.bytes,
        read_bytes: snapshot.summary.bytes_read,
        added_bytes: snapshot.summary.added_bytes,
    })
}

/// What a progress bar of a backup counts to: the previous snapshot's
/// size, or, on a first backup read directly, the tree's.
async fn expected_bytes(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    docker_name: &str,
) -> Option<u64> {
    if let Some(previous) = &change.snapshot {
        return Some(previous.bytes);
    }
    let path = direct_path(engine, run.access, docker_name).await.ok()??;
    tokio::task::spawn_blocking(move || tree_bytes(&path))
        .await
        .ok()
}

/// Removes everything inside `dir`, never following a symlink.
fn empty_directory(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.symlink_metadata()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
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

    async fn observe_target(&self, observer: &Observer<'_>, address: &Address) -> RestoreTarget {
        let unknown = |message: String| RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target: Err(message),
                what: String::new(),
                detail: Detail::None,
            },
            fingerprint: "(unreachable)".into(),
        };
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
            Err(error) => {
                let mut outcomes = Vec::new();
                for (name, _) in repositories {
                    let error = ApplyError::Snapshot(error.to_string());
                    outcomes.push(run.copy(change, name, None, async { Err(error) }).await);
                }
                return outcomes;
            }
        };
        let expected = expected_bytes(run, change, engine.as_ref(), &volume.volume_name).await;
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
    }

    async fn restore(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
        repository_name: &str,
        repository: &Repository,
    ) -> CopyOutcome {
        let expected = change.snapshot.as_ref().map(|s| s.bytes);
        run.copy(
            change,
            repository_name,
            expected,
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
    let snapshot_id = change
        .snapshot
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let _lock = repository.lock_shared().map_err(ApplyError::from)?;
    let snapshot = repository
        .find_snapshot(&snapshot_id)
        .map_err(ApplyError::from)?;
    if snapshot.content != crate::repo::ContentKind::Tree {
        return Err(ApplyError::Snapshot(format!(
            "snapshot {} holds no file tree: it cannot be restored into a volume",
            snapshot.id.short()
        )));
    }
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
    let progress = run.progress(change);
    if let Some(path) = direct_path(engine, run.access, volume).await? {
        let stats =
            tokio::task::block_in_place(|| repository.restore_dir(&snapshot, &path, &progress))
                .map_err(ApplyError::from)?;
        return Ok(Copied {
            snapshot: snapshot.id.to_string(),
            files: stats.files,
            bytes: stats.bytes,
            ..Copied::default()
        });
    }
    let (mut writer, upload) = stream::channel(run.cancel.clone());
    let handle = tokio::runtime::Handle::current();
    let (restored, uploaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let restorer = scope.spawn(|| {
                match repository.restore_tar(&snapshot, ARCHIVE_ROOT, &mut writer, &progress) {
                    Ok(stats) => {
                        writer
                            .finish()
                            .map(|_| stats)
                            .map_err(|e| crate::repo::RepoError::Io {
                                context: "handing the restore stream to Docker".to_string(),
                                source: e,
                            })
                    }
                    Err(error) => {
                        writer.abort(error.to_string());
                        Err(error)
                    }
                }
            });
            let uploaded = handle.block_on(engine.import_volume(volume, Box::pin(upload)));
            (restorer.join(), uploaded)
        })
    });
    let stats = match restored {
        Ok(result) => result.map_err(ApplyError::from)?,
        Err(_) => {
            return Err(ApplyError::Snapshot(
                "the restore worker panicked".to_string(),
            ));
        }
    };
    uploaded?;
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: stats.files,
        bytes: stats.bytes,
        ..Copied::default()
    })
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
        empty_directory(device).map_err(|source| ApplyError::Io {
            context: format!("emptying {}", device.display()),
            source,
        })?;
    }
    Ok(())
}
