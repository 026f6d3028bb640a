//! Reads the state plans are computed against: snapshots in the repositories
//! and volumes on the engine. Read-only: nothing here writes.

use super::execute::PRE_RESTORE_TAG;
use super::{ApplyError, NamedRepository};
use crate::engine::Engine;
use crate::plan::{
    AppliedState, ObservedResource, RepositoryBasis, RestoreObservation, SnapshotRef, VolumeState,
};
use crate::repo::Snapshot;
use crate::spec::{Address, ResourceKind, Spec};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub(crate) fn snapshot_ref(repository: &str, snapshot: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        id: snapshot.id.to_string(),
        repository: repository.to_string(),
        time: snapshot.time,
        bytes: snapshot.summary.bytes,
        files: snapshot.summary.files,
    }
}

fn repo_error(named: &NamedRepository) -> impl Fn(crate::repo::RepoError) -> ApplyError + '_ {
    move |source| ApplyError::Repository {
        name: named.name.clone(),
        location: named.location.clone(),
        source: Box::new(source),
    }
}

/// Every snapshot of every open repository, with the repository's name.
fn all_snapshots(
    repositories: &[NamedRepository],
) -> Result<Vec<(&str, Vec<Snapshot>)>, ApplyError> {
    let mut out = Vec::new();
    for named in repositories {
        let snapshots = match &named.repository {
            Some(repository) => repository.snapshots().map_err(repo_error(named))?,
            None => Vec::new(),
        };
        out.push((named.name.as_str(), snapshots));
    }
    Ok(out)
}

/// Latest snapshot of each resource in each repository.
pub fn backup_observations(
    repositories: &[NamedRepository],
) -> Result<BTreeMap<Address, ObservedResource>, ApplyError> {
    let mut observed: BTreeMap<Address, ObservedResource> = BTreeMap::new();
    for (repository, snapshots) in all_snapshots(repositories)? {
        for snapshot in &snapshots {
            let Some(address) = Address::parse(&snapshot.resource) else {
                continue;
            };
            let latest = observed.entry(address).or_default();
            if !snapshot.source.tags.iter().any(|t| t == PRE_RESTORE_TAG) {
                latest
                    .retained
                    .entry(repository.to_string())
                    .or_default()
                    .push(snapshot_ref(repository, snapshot));
            }
            let newer = latest
                .latest
                .get(repository)
                .is_none_or(|current| current.time <= snapshot.time);
            if newer {
                latest
                    .latest
                    .insert(repository.to_string(), snapshot_ref(repository, snapshot));
            }
        }
    }
    Ok(observed)
}

/// What the most recent apply or restore recorded in any of the repositories.
/// A record this version cannot read is treated as absent (the plan then
/// shows no `~` changes) rather than failing the plan.
pub fn last_applied_state(
    repositories: &[NamedRepository],
) -> Result<Option<AppliedState>, ApplyError> {
    let mut newest: Option<crate::repo::AppliedRecord> = None;
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        if let Some(record) = repository.last_applied().map_err(repo_error(named))?
            && newest.as_ref().is_none_or(|n| n.time < record.time)
        {
            newest = Some(record);
        }
    }
    Ok(newest.and_then(|record| serde_json::from_value(record.settings).ok()))
}

/// Identity and content digest of each repository, so a saved plan can tell
/// when a repository moved on.
pub fn repository_basis(
    repositories: &[NamedRepository],
) -> Result<Vec<RepositoryBasis>, ApplyError> {
    let mut basis = Vec::new();
    for named in repositories {
        let (id, mut ids) = match &named.repository {
            Some(repository) => (
                repository.id().to_string(),
                repository
                    .snapshots()
                    .map_err(repo_error(named))?
                    .iter()
                    .map(|s| s.id.to_string())
                    .collect::<Vec<_>>(),
            ),
            None => (String::new(), Vec::new()),
        };
        ids.sort();
        let mut hasher = Sha256::new();
        for id in &ids {
            hasher.update(id.as_bytes());
            hasher.update(b"\n");
        }
        basis.push(RepositoryBasis {
            name: named.name.clone(),
            id,
            snapshots_digest: hex::encode(hasher.finalize()),
        });
    }
    Ok(basis)
}

/// Backing up a volume that does not exist is an error, reported before anything runs.
pub async fn check_volumes_exist<E: Engine>(
    engine: &E,
    spec: &Spec,
    order: &[Address],
) -> Result<(), ApplyError> {
    for address in order.iter().filter(|a| a.kind == ResourceKind::Volume) {
        let Some(volume) = spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        if engine.volume(&volume.volume_name).await?.is_none() {
            return Err(ApplyError::VolumeMissing {
                address: address.to_string(),
                docker_name: volume.volume_name.clone(),
                at: volume.span.to_string(),
            });
        }
    }
    Ok(())
}

/// Digest of which planned Docker volumes exist, and since when: a saved plan
/// is stale once one was created or removed.
pub async fn volumes_digest<E: Engine>(
    engine: &E,
    spec: &Spec,
    order: &[Address],
) -> Result<String, ApplyError> {
    let mut hasher = Sha256::new();
    for address in order.iter().filter(|a| a.kind == ResourceKind::Volume) {
        let Some(volume) = spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        let state = engine.volume(&volume.volume_name).await?;
        hasher.update(volume.volume_name.as_bytes());
        hasher.update(b"\0");
        match state {
            Some(info) => hasher.update(info.created_at.unwrap_or_default().as_bytes()),
            None => hasher.update(b"(missing)"),
        }
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The snapshots named by id or unique id prefix, with the resource each
/// belongs to, in the order named. Unknown and ambiguous ids are errors.
pub fn find_snapshots(
    repositories: &[NamedRepository],
    ids: &[String],
) -> Result<Vec<(String, SnapshotRef)>, ApplyError> {
    find(repositories, ids, false)
}

/// [`find_snapshots`], and damaged snapshot files too (they can only be
/// forgotten), as snapshots of no known resource.
pub fn find_snapshots_to_forget(
    repositories: &[NamedRepository],
    ids: &[String],
) -> Result<Vec<(String, SnapshotRef)>, ApplyError> {
    find(repositories, ids, true)
}

fn find(
    repositories: &[NamedRepository],
    ids: &[String],
    damaged_too: bool,
) -> Result<Vec<(String, SnapshotRef)>, ApplyError> {
    let snapshots = all_snapshots(repositories)?;
    let mut found = Vec::new();
    for id in ids {
        let matches: Vec<_> = snapshots
            .iter()
            .flat_map(|(repo, list)| list.iter().map(move |s| (*repo, s)))
            .filter(|(_, s)| s.id.to_string().starts_with(id.as_str()))
            .collect();
        match matches.as_slice() {
            [(repo, snapshot)] => {
                found.push((snapshot.resource.clone(), snapshot_ref(repo, snapshot)))
            }
            [] if damaged_too && let Some(damaged) = find_damaged(repositories, id)? => {
                found.push(damaged)
            }
            [] => {
                return Err(ApplyError::Snapshot(format!(
                    "no snapshot with id {id}: `lifeboat snapshots` lists them"
                )));
            }
            _ => {
                return Err(ApplyError::Snapshot(format!(
                    "snapshot id prefix {id} is ambiguous ({} snapshots): give more characters",
                    matches.len()
                )));
            }
        }
    }
    Ok(found)
}

/// The one damaged snapshot file whose id starts with `id`, as a snapshot of
/// no known resource (its content does not load).
fn find_damaged(
    repositories: &[NamedRepository],
    id: &str,
) -> Result<Option<(String, SnapshotRef)>, ApplyError> {
    let mut matches = Vec::new();
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        for damaged in repository.damaged_snapshots().map_err(repo_error(named))? {
            if damaged.id.0.starts_with(id) {
                matches.push(SnapshotRef {
                    id: damaged.id.0,
                    repository: named.name.clone(),
                    time: chrono::DateTime::UNIX_EPOCH,
                    bytes: 0,
                    files: 0,
                });
            }
        }
    }
    Ok(match <[SnapshotRef; 1]>::try_from(matches) {
        Ok([one]) => Some(("(damaged snapshot)".to_string(), one)),
        Err(_) => None,
    })
}

/// Which snapshot a restore uses: the latest of each resource, or one by id.
#[derive(Debug, Clone)]
pub enum RestoreSelection {
    Latest,
    Id(String),
}

/// For each volume to restore: the chosen snapshot and what the target volume holds.
pub async fn restore_observations<E: Engine>(
    engine: &E,
    spec: &Spec,
    order: &[Address],
    repositories: &[NamedRepository],
    selection: &RestoreSelection,
) -> Result<BTreeMap<Address, RestoreObservation>, ApplyError> {
    let snapshots = all_snapshots(repositories)?;
    let all = || {
        snapshots
            .iter()
            .flat_map(|(repo, list)| list.iter().map(move |s| (*repo, s)))
    };
    // A snapshot id names one resource: the restore is narrowed to it.
    let by_id = match selection {
        RestoreSelection::Latest => None,
        RestoreSelection::Id(id) => {
            let found = find_snapshots(repositories, std::slice::from_ref(id))?;
            let Some((resource, chosen)) = found.into_iter().next() else {
                return Err(ApplyError::Snapshot(format!("no snapshot with id {id}")));
            };
            if !order.iter().any(|a| a.to_string() == resource) {
                return Err(ApplyError::Snapshot(format!(
                    "snapshot {id} belongs to {resource}, which is not among the resources to \
                     restore (check --target and the spec)"
                )));
            }
            Some(chosen)
        }
    };
    let latest = |address: &str| {
        all()
            // A safety copy taken before a replace is not what "latest" means to a restore.
            .filter(|(_, s)| {
                s.resource == address && !s.source.tags.iter().any(|t| t == PRE_RESTORE_TAG)
            })
            .max_by_key(|(_, s)| s.time)
            .map(|(repo, s)| snapshot_ref(repo, s))
    };
    let mut observed = BTreeMap::new();
    for address in order.iter().filter(|a| a.kind == ResourceKind::Volume) {
        let Some(volume) = spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        let snapshot = match (&by_id, selection) {
            (Some(chosen), _) => {
                let owner = all().find(|(_, s)| s.id.to_string() == chosen.id);
                if owner.is_none_or(|(_, s)| s.resource != address.to_string()) {
                    continue;
                }
                Some(chosen.clone())
            }
            _ => latest(&address.to_string()),
        };
        let state = match engine.volume(&volume.volume_name).await? {
            None => VolumeState::Missing,
            Some(_) if engine.volume_is_empty(&volume.volume_name).await? => VolumeState::Empty,
            Some(_) => VolumeState::NonEmpty,
        };
        observed.insert(
            address.clone(),
            RestoreObservation {
                snapshot,
                volume: state,
            },
        );
    }
    Ok(observed)
}
