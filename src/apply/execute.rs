//! Runs the changes of a plan, one resource at a time in plan order.
//!
//! A failed resource is reported and the run goes on with the others (their
//! data is independent); the report says which failed so the CLI exits 1.

use super::stream;
use super::{ApplyError, Event, NamedRepository, OpenSettings, VolumeAccess};
use crate::engine::{Engine, VolumeInfo};
use crate::plan::{Action, AppliedState, Plan, ResourceChange, RestoreMeasurement, VolumeState};
use crate::repo::{Progress, PruneStats, Repository, SnapshotId, SnapshotSource};
use std::time::Instant;

/// Tag of the snapshot `restore --replace` takes of a volume's content before
/// replacing it, so a replace never loses data.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceOutcome {
    pub address: String,
    pub repository: String,
    /// Snapshot written (backup) or read (restore); `None` when it failed.
    pub snapshot: Option<String>,
    pub error: Option<String>,
    pub bytes: u64,
    pub files: u64,
    pub added_bytes: u64,
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    /// One per resource backed up or restored (per repository).
    pub outcomes: Vec<ResourceOutcome>,
    /// Snapshots retention forgot.
    pub forgotten: usize,
    /// Space prune gave back, per repository.
    pub pruned: Vec<PruneOutcome>,
    /// Failures of forget, prune or recording the settings.
    pub errors: Vec<String>,
    /// `~` changes recorded as applied.
    pub settings_recorded: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneOutcome {
    pub repository: String,
    #[serde(flatten)]
    pub stats: PruneStats,
}

impl ApplyReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count() + self.errors.len()
    }

    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_none()).count()
    }

    pub fn bytes_freed(&self) -> u64 {
        self.pruned.iter().map(|p| p.stats.bytes_freed).sum()
    }
}

type Events<'a> = &'a (dyn Fn(Event) + Sync);

fn find<'a>(
    repositories: &'a mut [NamedRepository],
    name: &str,
) -> Result<&'a mut NamedRepository, ApplyError> {
    repositories
        .iter_mut()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            ApplyError::Snapshot(format!(
                "the plan names repository.{name}, which the spec no longer declares"
            ))
        })
}

fn repo_error(named: &NamedRepository) -> impl Fn(crate::repo::RepoError) -> ApplyError + '_ {
    move |source| ApplyError::Repository {
        name: named.name.clone(),
        location: named.location.clone(),
        source: Box::new(source),
    }
}

/// Progress as events, at most five a second: enough for a bar, few enough
/// for a JSON event stream of a volume with a million files.
fn progress_events<'a>(address: &'a str, events: Events<'a>) -> impl Fn(Progress) + Sync + 'a {
    let last = std::sync::Mutex::new(Instant::now());
    move |progress: Progress| {
        let mut last = last.lock().expect("not poisoned");
        if last.elapsed() < std::time::Duration::from_millis(200) {
            return;
        }
        *last = Instant::now();
        events(Event::Progress {
            address: address.to_string(),
            files: progress.files,
            bytes: progress.bytes,
        })
    }
}

fn record(
    report: &mut ApplyReport,
    events: Events<'_>,
    change: &ResourceChange,
    repository: &str,
    started: Instant,
    result: Result<(String, u64, u64, u64), ApplyError>,
) {
    let elapsed = started.elapsed();
    let mut outcome = ResourceOutcome {
        address: change.address.clone(),
        repository: repository.to_string(),
        snapshot: None,
        error: None,
        bytes: 0,
        files: 0,
        added_bytes: 0,
        elapsed_seconds: elapsed.as_secs_f64(),
    };
    match result {
        Ok((snapshot, files, bytes, added_bytes)) => {
            events(Event::ResourceFinished {
                address: change.address.clone(),
                repository: repository.to_string(),
                snapshot: snapshot.clone(),
                files,
                bytes,
                added_bytes,
                elapsed,
            });
            outcome.snapshot = Some(snapshot);
            outcome.files = files;
            outcome.bytes = bytes;
            outcome.added_bytes = added_bytes;
        }
        Err(error) => {
            let message = error.to_string();
            events(Event::ResourceFailed {
                address: change.address.clone(),
                error: message.clone(),
            });
            outcome.error = Some(message);
        }
    }
    report.outcomes.push(outcome);
}

/// What a backup apply records and under which identity.
pub struct BackupContext<'a> {
    pub access: VolumeAccess,
    pub settings: &'a OpenSettings,
    /// Digest of the spec, stored in each snapshot.
    pub spec_digest: &'a str,
    /// What to record once everything succeeded: the spec's settings (and
    /// the restore times already known).
    pub applied: AppliedState,
}

/// Backs up every `+` resource of the plan to each repository it names,
/// then forgets what retention lets go (`-`) and prunes the repositories
/// that lost snapshots, then records the applied settings (`~`).
pub async fn run_backup<E: Engine>(
    plan: &Plan,
    engine: &E,
    repositories: &mut [NamedRepository],
    context: BackupContext<'_>,
    events: Events<'_>,
) -> ApplyReport {
    let BackupContext {
        access,
        settings,
        spec_digest,
        applied,
    } = context;
    let mut report = ApplyReport::default();
    for change in plan.changes.iter().filter(|c| c.action == Action::BackUp) {
        for repository_name in &change.repositories {
            let started = Instant::now();
            events(Event::ResourceStarted {
                address: change.address.clone(),
                action: Action::BackUp,
                repository: repository_name.clone(),
                expected_bytes: change.snapshot.as_ref().map(|s| s.bytes),
            });
            let result = async {
                let named = find(repositories, repository_name)?;
                let repository = named.open_or_init(settings)?;
                let source = source_for(change, spec_digest, Vec::new());
                back_up_volume(engine, access, repository, change, source, events)
                    .await
                    .map_err(|e| e.in_repository(named))
            }
            .await;
            record(
                &mut report,
                events,
                change,
                repository_name,
                started,
                result,
            );
        }
    }
    forget_and_prune(plan, repositories, settings, true, &mut report, events);
    if report.failed() == 0 {
        record_state(repositories, &applied, &mut report, events);
        if report.errors.is_empty() {
            report.settings_recorded = plan
                .changes
                .iter()
                .filter(|c| c.action == Action::Update)
                .count();
        }
    }
    report
}

fn record_state(
    repositories: &[NamedRepository],
    state: &AppliedState,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    let value = serde_json::to_value(state).expect("state serialises");
    for named in repositories {
        if let Some(repository) = &named.repository
            && let Err(error) = repository.record_applied(value.clone())
        {
            fail(report, events, &named.name, repo_error(named)(error));
        }
    }
}

/// Runs a forget plan (`lifeboat forget`): its `-` changes, then, when
/// `prune` is set, a prune of each repository that lost snapshots.
pub fn run_forget(
    plan: &Plan,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    prune: bool,
    events: Events<'_>,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    forget_and_prune(plan, repositories, settings, prune, &mut report, events);
    report
}

fn forget_and_prune(
    plan: &Plan,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    prune: bool,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    let forgot_in = forget_snapshots(plan, repositories, settings, report, events);
    if !prune {
        return;
    }
    for name in forgot_in {
        let Ok(named) = find(repositories, &name) else {
            continue;
        };
        let Some(repository) = &named.repository else {
            continue;
        };
        events(Event::ResourceStep {
            address: format!("repository.{name}"),
            message: "pruning data no snapshot needs any more".to_string(),
        });
        match tokio::task::block_in_place(|| repository.prune(false)) {
            Ok(stats) => {
                events(Event::Pruned {
                    repository: name.clone(),
                    stats,
                });
                report.pruned.push(PruneOutcome {
                    repository: name,
                    stats,
                });
            }
            Err(error) => fail(report, events, &named.name, repo_error(named)(error)),
        }
    }
}

fn fail(report: &mut ApplyReport, events: Events<'_>, repository: &str, error: ApplyError) {
    let message = error.to_string();
    events(Event::ResourceFailed {
        address: format!("repository.{repository}"),
        error: message.clone(),
    });
    report.errors.push(message);
}

/// Runs the `-` changes; returns the repositories that lost snapshots. A
/// resource whose backup failed in this run keeps its snapshots: the plan
/// counted the new snapshot among those retention keeps.
fn forget_snapshots(
    plan: &Plan,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    report: &mut ApplyReport,
    events: Events<'_>,
) -> Vec<String> {
    let mut forgot_in: Vec<String> = Vec::new();
    for change in plan.changes.iter().filter(|c| c.action == Action::Forget) {
        let Some(repository_name) = change.repositories.first() else {
            continue;
        };
        let backup_failed = report.outcomes.iter().any(|o| {
            o.address == change.address && &o.repository == repository_name && o.error.is_some()
        });
        if backup_failed {
            events(Event::ResourceStep {
                address: change.address.clone(),
                message: format!(
                    "keeping its snapshots on {repository_name}: the backup retention counted on \
                     failed"
                ),
            });
            continue;
        }
        let ids: Vec<SnapshotId> = change
            .forget
            .iter()
            .map(|s| SnapshotId(s.id.clone()))
            .collect();
        let result = find(repositories, repository_name).and_then(|named| {
            let repository = named.open_or_init(settings)?;
            tokio::task::block_in_place(|| repository.forget(&ids)).map_err(repo_error(named))
        });
        match result {
            Ok(()) => {
                report.forgotten += ids.len();
                if !forgot_in.contains(repository_name) {
                    forgot_in.push(repository_name.clone());
                }
                events(Event::Forgotten {
                    address: change.address.clone(),
                    repository: repository_name.clone(),
                    snapshots: change.forget.iter().map(|s| s.id.clone()).collect(),
                });
            }
            Err(error) => {
                let message = error.to_string();
                events(Event::ResourceFailed {
                    address: change.address.clone(),
                    error: message.clone(),
                });
                report.errors.push(format!("{}: {message}", change.address));
            }
        }
    }
    forgot_in
}

fn source_for(change: &ResourceChange, spec_digest: &str, tags: Vec<String>) -> SnapshotSource {
    SnapshotSource {
        resource: change.address.clone(),
        kind: "volume".to_string(),
        name: change.docker_name.clone(),
        tags,
        spec_digest: Some(spec_digest.to_string()),
    }
}

/// Errors of one step, before the repository's name is attached.
enum StepError {
    Repo(crate::repo::RepoError),
    Other(ApplyError),
}

impl From<crate::engine::EngineError> for StepError {
    fn from(error: crate::engine::EngineError) -> Self {
        StepError::Other(error.into())
    }
}

impl StepError {
    fn in_repository(self, named: &NamedRepository) -> ApplyError {
        match self {
            StepError::Repo(e) => repo_error(named)(e),
            StepError::Other(e) => e,
        }
    }
}

/// Streams the volume out of Docker into the repository; returns (snapshot id, files, bytes, added).
/// The volume's mountpoint when `access` allows and this host can reach it.
async fn direct_path<E: Engine>(
    engine: &E,
    access: VolumeAccess,
    volume: &str,
) -> Result<Option<std::path::PathBuf>, StepError> {
    if access == VolumeAccess::Api {
        return Ok(None);
    }
    let mountpoint = engine
        .volume(volume)
        .await?
        .and_then(|info| info.mountpoint)
        .filter(|path| std::fs::read_dir(path).is_ok());
    match (access, mountpoint) {
        (_, Some(path)) => Ok(Some(path)),
        (VolumeAccess::Direct, None) => Err(StepError::Other(ApplyError::NoDirectAccess {
            volume: volume.to_string(),
            mountpoint: "not readable here".to_string(),
        })),
        _ => Ok(None),
    }
}

async fn back_up_volume<E: Engine>(
    engine: &E,
    access: VolumeAccess,
    repository: &Repository,
    change: &ResourceChange,
    source: SnapshotSource,
    events: Events<'_>,
) -> Result<(String, u64, u64, u64), StepError> {
    let _lock = repository.lock_shared().map_err(StepError::Repo)?;
    let progress = progress_events(&change.address, events);
    let snapshot = match direct_path(engine, access, &change.docker_name).await? {
        Some(path) => {
            tokio::task::block_in_place(|| repository.backup_dir(&path, source, &progress))
        }
        None => {
            let (stream, release) = engine
                .export_volume(&change.docker_name)
                .await?
                .into_parts();
            let reader = stream::read_ahead(stream);
            let snapshot =
                tokio::task::block_in_place(|| repository.backup_tar(reader, source, &progress));
            release.release().await;
            snapshot
        }
    };
    let snapshot = snapshot.map_err(StepError::Repo)?;
    Ok((
        snapshot.id.to_string(),
        snapshot.summary.files,
        snapshot.summary.bytes,
        snapshot.summary.added_bytes,
    ))
}

/// Restores every `<` resource of the plan from its snapshot.
pub async fn run_restore<E: Engine>(
    plan: &Plan,
    engine: &E,
    access: VolumeAccess,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    spec_digest: &str,
    events: Events<'_>,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    for change in plan.changes.iter().filter(|c| c.action == Action::Restore) {
        let Some(snapshot_ref) = &change.snapshot else {
            continue;
        };
        let started = Instant::now();
        events(Event::ResourceStarted {
            address: change.address.clone(),
            action: Action::Restore,
            repository: snapshot_ref.repository.clone(),
            expected_bytes: Some(snapshot_ref.bytes),
        });
        let result = async {
            let named = find(repositories, &snapshot_ref.repository)?;
            let repository = named.open_or_init(settings)?;
            restore_volume(
                engine,
                access,
                repository,
                change,
                &snapshot_ref.id,
                spec_digest,
                events,
            )
            .await
            .map_err(|e| e.in_repository(named))
        }
        .await;
        record(
            &mut report,
            events,
            change,
            &snapshot_ref.repository,
            started,
            result,
        );
    }
    // Measured restore times are what `rto` goals are held against.
    let mut state = match super::last_applied_state(repositories) {
        Ok(state) => state.unwrap_or_default(),
        Err(error) => {
            report.errors.push(error.to_string());
            return report;
        }
    };
    let mut measured = false;
    for outcome in report.outcomes.iter().filter(|o| o.error.is_none()) {
        let Some(snapshot) = &outcome.snapshot else {
            continue;
        };
        state.restores.insert(
            outcome.address.clone(),
            RestoreMeasurement {
                seconds: outcome.elapsed_seconds,
                bytes: outcome.bytes,
                snapshot: snapshot.clone(),
                time: chrono::Utc::now(),
            },
        );
        measured = true;
    }
    if measured {
        record_state(repositories, &state, &mut report, events);
    }
    report
}

async fn restore_volume<E: Engine>(
    engine: &E,
    access: VolumeAccess,
    repository: &Repository,
    change: &ResourceChange,
    snapshot_id: &str,
    spec_digest: &str,
    events: Events<'_>,
) -> Result<(String, u64, u64, u64), StepError> {
    let _lock = repository.lock_shared().map_err(StepError::Repo)?;
    let snapshot = repository
        .find_snapshot(snapshot_id)
        .map_err(StepError::Repo)?;
    let volume = &change.docker_name;
    let step = |message: String| {
        events(Event::ResourceStep {
            address: change.address.clone(),
            message,
        })
    };
    match change.volume {
        Some(VolumeState::Missing) | None => {
            step(format!("creating Docker volume {volume}"));
            engine
                .create_volume(&VolumeInfo {
                    name: volume.clone(),
                    driver: "local".to_string(),
                    ..VolumeInfo::default()
                })
                .await?;
        }
        Some(VolumeState::Empty) => {}
        Some(VolumeState::NonEmpty) => {
            let info = engine.volume(volume).await?.ok_or_else(|| {
                StepError::Other(ApplyError::Snapshot(format!(
                    "Docker volume {volume} disappeared during the restore"
                )))
            })?;
            let users = engine.volume_users(volume).await?;
            if !users.is_empty() {
                return Err(crate::engine::EngineError::VolumeInUse {
                    name: volume.clone(),
                    containers: users,
                }
                .into());
            }
            step(format!(
                "safety snapshot of the current content of {volume} (tag {PRE_RESTORE_TAG})"
            ));
            let source = source_for(change, spec_digest, vec![PRE_RESTORE_TAG.to_string()]);
            let (safety, ..) =
                back_up_volume(engine, access, repository, change, source, events).await?;
            step(format!(
                "recreating Docker volume {volume} (driver {}); the previous content is in snapshot {}",
                info.driver,
                &safety[..8.min(safety.len())]
            ));
            engine.remove_volume(volume).await?;
            engine.create_volume(&info).await?;
        }
    }
    let progress = progress_events(&change.address, events);
    if let Some(path) = direct_path(engine, access, volume).await? {
        let stats =
            tokio::task::block_in_place(|| repository.restore_dir(&snapshot, &path, &progress))
                .map_err(StepError::Repo)?;
        return Ok((snapshot.id.to_string(), stats.files, stats.bytes, 0));
    }
    let (mut writer, upload) = stream::channel();
    let handle = tokio::runtime::Handle::current();
    let (restored, uploaded) =
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let restorer =
                    scope.spawn(|| {
                        match repository.restore_tar(
                            &snapshot,
                            crate::engine::ARCHIVE_ROOT,
                            &mut writer,
                            &progress,
                        ) {
                            Ok(stats) => writer.finish().map(|_| stats).map_err(|e| {
                                crate::repo::RepoError::Io {
                                    context: "handing the restore stream to Docker".to_string(),
                                    source: e,
                                }
                            }),
                            Err(error) => {
                                writer.abort(error.to_string());
                                Err(error)
                            }
                        }
                    });
                let uploaded = handle.block_on(engine.import_volume(volume, upload));
                (restorer.join(), uploaded)
            })
        });
    let stats = match restored {
        Ok(result) => result.map_err(StepError::Repo)?,
        Err(_) => {
            return Err(StepError::Other(ApplyError::Snapshot(
                "the restore worker panicked".to_string(),
            )));
        }
    };
    uploaded?;
    Ok((snapshot.id.to_string(), stats.files, stats.bytes, 0))
}
