//! Reads the state plans are computed against: snapshots in the repositories
//! and resources on the engines. Read-only: nothing here writes.

use super::PRE_RESTORE_TAG;
use super::kinds::{self, Observer};
use super::{ApplyError, Engines, NamedRepository};
use crate::plan::{
    AppliedState, DamagedSnapshotFile, LiveResource, NewRepository, ObservedResource,
    ReadElsewhere, RepositoryBasis, RestoreObservation, SkippedRepository, SnapshotRef,
    UnreachableRepository,
};
use crate::repo::Snapshot;
use crate::spec::{Address, Spec};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub(crate) fn snapshot_ref(repository: &str, snapshot: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        id: snapshot.id.to_string(),
        repository: repository.to_string(),
        time: snapshot.time,
        bytes: snapshot.summary.bytes,
        files: snapshot.summary.files,
        run: snapshot.source.run.clone(),
        duration_seconds: Some(snapshot.summary.duration_seconds)
            .filter(|d| d.is_finite() && *d > 0.0),
        tags: snapshot.source.tags.clone(),
    }
}

use super::retention::repo_error;

/// Every snapshot of every open repository, with the repository's name.
fn all_snapshots(
    repositories: &[NamedRepository],
) -> Result<Vec<(&str, Vec<Snapshot>)>, ApplyError> {
    let mut out = Vec::new();
    for named in repositories {
        let mut snapshots = match &named.repository {
            Some(repository) => repository.snapshots().map_err(repo_error(named))?,
            None => Vec::new(),
        };
        // A block renamed with `moved` keeps its history: its snapshots
        // are read as the new address's.
        for snapshot in &mut snapshots {
            if let Some(now) = named.moved.get(&snapshot.resource) {
                snapshot.resource = now.clone();
            }
        }
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
            // A safety copy taken before a replace is the user's to forget,
            // and is not a backup the rpo is met by.
            if snapshot.source.tags.iter().any(|t| t == PRE_RESTORE_TAG) {
                continue;
            }
            latest
                .retained
                .entry(repository.to_string())
                .or_default()
                .push(snapshot_ref(repository, snapshot));
            let newer = latest
                .latest
                .get(repository)
                .is_none_or(|current| current.time <= snapshot.time);
            if newer {
                latest
                    .latest
                    .insert(repository.to_string(), snapshot_ref(repository, snapshot));
                latest
                    .latest_source
                    .insert(repository.to_string(), snapshot.source.name.clone());
                match snapshot
                    .source
                    .consistency
                    .as_deref()
                    .and_then(crate::spec::Consistency::from_keyword)
                {
                    Some(consistency) => {
                        latest
                            .latest_consistency
                            .insert(repository.to_string(), consistency);
                    }
                    None => {
                        latest.latest_consistency.remove(repository);
                    }
                }
                if snapshot.source.excludes.is_empty() {
                    latest.latest_excludes.remove(repository);
                } else {
                    latest
                        .latest_excludes
                        .insert(repository.to_string(), snapshot.source.excludes.clone());
                }
                match &snapshot.source.version {
                    Some(version) => {
                        latest
                            .latest_version
                            .insert(repository.to_string(), version.clone());
                    }
                    None => {
                        latest.latest_version.remove(repository);
                    }
                }
            }
        }
    }
    Ok(observed)
}

/// The repositories that do not exist yet: where each will be created,
/// and the directory that looks like an unmounted disk's, if any.
pub fn new_repositories(spec: &Spec, repositories: &[NamedRepository]) -> Vec<NewRepository> {
    repositories
        .iter()
        .filter(|named| named.repository.is_none() && named.unreachable.is_none())
        .map(|named| NewRepository {
            name: named.name.clone(),
            location: spec.redact(&named.location),
            looks_unmounted: named
                .looks_unmounted()
                .map(|(dir, sign)| (spec.redact(&dir.display().to_string()), sign)),
        })
        .collect()
}

/// The repositories that could not be reached, and why.
pub fn unreachable_repositories(
    spec: &Spec,
    repositories: &[NamedRepository],
) -> Vec<UnreachableRepository> {
    repositories
        .iter()
        .filter_map(|named| {
            let failure = named.unreachable.as_ref()?;
            Some(UnreachableRepository {
                name: named.name.clone(),
                message: spec.redact(&failure.message),
            })
        })
        .collect()
}

/// What the runs recorded in any of the repositories: the settings of the
/// most recent apply that recorded them, and the measured restores (see
/// `records`). A record this version cannot read is treated as absent (the
/// plan then shows no `~` changes) rather than failing the plan.
pub fn last_applied_state(
    repositories: &[NamedRepository],
) -> Result<Option<AppliedState>, ApplyError> {
    super::records::applied_state(repositories)
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

/// What the engines say about each resource to back up (each kind's
/// handler observes its own), and the digest of what they hold for them:
/// a saved plan is stale once that digest changed.
pub async fn backup_live(
    engines: &Engines,
    spec: &Spec,
    order: &[Address],
) -> (BTreeMap<Address, LiveResource>, String) {
    let observer = Observer {
        spec,
        engines,
        restoring: &[],
        into: &crate::plan::RestoreMapping::default(),
    };
    let mut live = BTreeMap::new();
    let mut digest = Sha256::new();
    for address in order {
        let Some(handler) = kinds::handler(address.kind) else {
            continue;
        };
        let (observed, fingerprint) = handler.observe(&observer, address).await;
        fingerprint_into(&mut digest, address, &fingerprint);
        live.insert(address.clone(), observed);
    }
    (live, hex::encode(digest.finalize()))
}

fn fingerprint_into(digest: &mut Sha256, address: &Address, fingerprint: &str) {
    digest.update(address.to_string().as_bytes());
    digest.update(b"\0");
    digest.update(fingerprint.as_bytes());
    digest.update(b"\n");
}

/// The snapshots named by id or unique id prefix, with the resource each
/// belongs to, in the order named. Unknown and ambiguous ids are errors.
pub fn find_snapshots(
    repositories: &[NamedRepository],
    ids: &[String],
) -> Result<Vec<(Address, SnapshotRef)>, ApplyError> {
    Ok(find(repositories, ids, None)?.0)
}

/// [`find_snapshots`] for `forget`: damaged snapshot files too (they can
/// only be forgotten; their resource is unknown), `(intact, damaged)`, in
/// the repository named `only` or anywhere. An id found in several
/// repositories (a snapshot and its copies, one of them perhaps damaged)
/// is refused without `only`: forgetting one copy must not take the others.
pub fn find_snapshots_to_forget(
    repositories: &[NamedRepository],
    ids: &[String],
    only: Option<&str>,
) -> Result<Found, ApplyError> {
    declared_repository(repositories, only)?;
    find(repositories, ids, Some(only))
}

/// `Ok` when `--repository NAME` (if given) names a repository of the spec.
pub(crate) fn declared_repository(
    repositories: &[NamedRepository],
    name: Option<&str>,
) -> Result<(), ApplyError> {
    if let Some(name) = name
        && !repositories.iter().any(|r| r.name == name)
    {
        let declared: Vec<_> = repositories.iter().map(|r| r.name.as_str()).collect();
        return Err(ApplyError::ResourceMissing(format!(
            "--repository {name}: the spec declares no repository.{name} (it declares {})",
            declared.join(", ")
        )));
    }
    Ok(())
}

/// Snapshots found by id: the intact ones with their resource, and the
/// damaged ones (id and repository only).
pub type Found = (Vec<(Address, SnapshotRef)>, Vec<SnapshotRef>);

/// `forget`: `Some(scope)`, damaged files included, in the one repository
/// `scope` names or anywhere; else intact snapshots anywhere.
fn find(
    repositories: &[NamedRepository],
    ids: &[String],
    forget: Option<Option<&str>>,
) -> Result<Found, ApplyError> {
    let in_scope = |repository: &str| forget.flatten().is_none_or(|only| only == repository);
    let snapshots = all_snapshots(repositories)?;
    let mut found = Vec::new();
    let mut damaged = Vec::new();
    for id in ids {
        let matches: Vec<_> = snapshots
            .iter()
            .filter(|(repo, _)| in_scope(repo))
            .flat_map(|(repo, list)| list.iter().map(move |s| (*repo, s)))
            .filter(|(_, s)| s.id.to_string().starts_with(id.as_str()))
            .collect();
        let damaged_matches = match forget {
            Some(_) => find_damaged(repositories, id, &in_scope)?,
            None => Vec::new(),
        };
        if forget == Some(None) {
            let mut places: Vec<&str> = matches
                .iter()
                .map(|(repo, _)| *repo)
                .chain(damaged_matches.iter().map(|s| s.repository.as_str()))
                .collect();
            places.sort();
            places.dedup();
            if places.len() > 1 {
                return Err(ApplyError::Refused(format!(
                    "snapshot {id} is in {} repositories ({}): forgetting it everywhere would \
                     take every copy. Say where with `lifeboat forget --repository NAME {id}`",
                    places.len(),
                    places.join(", ")
                )));
            }
        }
        match (matches.as_slice(), damaged_matches.as_slice()) {
            ([(repo, snapshot)], []) => {
                let resource = Address::parse(&snapshot.resource).ok_or_else(|| {
                    ApplyError::Integrity(format!(
                        "snapshot {id} names {:?}, which is not a resource address",
                        snapshot.resource
                    ))
                })?;
                found.push((resource, snapshot_ref(repo, snapshot)))
            }
            ([], [file]) => damaged.push(file.clone()),
            ([], []) => {
                return Err(ApplyError::ResourceMissing(format!(
                    "no snapshot with id {id}{}: `lifeboat snapshots` lists them",
                    forget
                        .flatten()
                        .map(|name| format!(" in repository.{name}"))
                        .unwrap_or_default()
                )));
            }
            _ => {
                return Err(ApplyError::ResourceMissing(format!(
                    "snapshot id prefix {id} is ambiguous ({} snapshots): give more characters",
                    matches.len() + damaged_matches.len()
                )));
            }
        }
    }
    Ok((found, damaged))
}

/// The damaged snapshot files whose id starts with `id`, in the
/// repositories `in_scope` accepts (their content does not load, so only
/// their id and repository are known).
fn find_damaged(
    repositories: &[NamedRepository],
    id: &str,
    in_scope: &dyn Fn(&str) -> bool,
) -> Result<Vec<SnapshotRef>, ApplyError> {
    let mut matches = Vec::new();
    for named in repositories.iter().filter(|r| in_scope(&r.name)) {
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
                    run: None,
                    duration_seconds: None,
                    tags: Vec::new(),
                });
            }
        }
    }
    Ok(matches)
}

/// Where, under the spec directory's state directory, lifeboat remembers
/// what each snapshot it saw is of: a damaged snapshot file tells neither.
pub const CATALOG_DIR: &str = "catalog";

/// One remembered snapshot: its resource and time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Remembered {
    resource: String,
    time: chrono::DateTime<chrono::Utc>,
}

/// The catalog of one repository: what each snapshot it held was of. A
/// hint, never the truth: written from authenticated snapshots, read as
/// untrusted (a file that does not read is an empty catalog).
fn catalog_path(
    state_dir: &std::path::Path,
    repository: &crate::repo::Repository,
) -> std::path::PathBuf {
    let id: String = repository
        .id()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    state_dir.join(CATALOG_DIR).join(format!("{id}.json"))
}

fn read_catalog(path: &std::path::Path) -> BTreeMap<String, Remembered> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Adds the intact snapshots of every open repository to its catalog in
/// `state_dir` (best effort: a catalog is only a hint).
pub fn remember_snapshots(
    state_dir: &std::path::Path,
    repositories: &[NamedRepository],
) -> Result<(), ApplyError> {
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        let path = catalog_path(state_dir, repository);
        let mut catalog = read_catalog(&path);
        let before = catalog.len();
        for snapshot in repository.snapshots().map_err(repo_error(named))? {
            catalog.entry(snapshot.id.0.clone()).or_insert(Remembered {
                resource: snapshot.resource.clone(),
                time: snapshot.time,
            });
        }
        if catalog.len() != before {
            let json = serde_json::to_vec(&catalog).unwrap_or_default();
            let dir = state_dir.join(CATALOG_DIR);
            let _ = super::quiesce::write_record(&dir, &path, &json, "remembering snapshots");
        }
    }
    Ok(())
}

/// The snapshot files of every open repository that do not load, with
/// what the catalog in `state_dir` remembers of each (resource and time),
/// when it does; having read them, the catalog remembers the intact ones.
pub fn damaged_snapshot_files(
    state_dir: &std::path::Path,
    repositories: &[NamedRepository],
) -> Result<Vec<DamagedSnapshotFile>, ApplyError> {
    let mut damaged = Vec::new();
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        let catalog = read_catalog(&catalog_path(state_dir, repository));
        for file in repository.damaged_snapshots().map_err(repo_error(named))? {
            let remembered = catalog.get(&file.id.0);
            damaged.push(DamagedSnapshotFile {
                resource: remembered.and_then(|r| Address::parse(&r.resource)),
                time: remembered.map(|r| r.time),
                id: file.id.0,
                repository: named.name.clone(),
                detail: file.detail,
            });
        }
    }
    remember_snapshots(state_dir, repositories)?;
    Ok(damaged)
}

/// Which snapshot a restore uses: the latest of each resource, or one by id.
#[derive(Debug, Clone)]
pub enum RestoreSelection {
    /// The newest apply run that holds a snapshot of every resource restored
    /// (one moment); each resource's latest when no run holds them all.
    Latest,
    /// Each resource's own latest snapshot, whichever run took it.
    LatestEach,
    Id(String),
    /// Each resource's newest snapshot carrying this tag (`tag:KEY=VALUE`):
    /// the stack as an `apply --tag` run took it. Refused when a resource
    /// to restore has none.
    Tagged(crate::repo::Tag),
}

/// For each resource to restore: the chosen snapshot and what the target
/// holds (each kind's handler observes its own); and the digest of what the
/// engines hold for them (the plan's basis).
pub async fn restore_observations(
    engines: &Engines,
    spec: &Spec,
    order: &[Address],
    repositories: &[NamedRepository],
    selection: &RestoreSelection,
) -> Result<(BTreeMap<Address, RestoreObservation>, String), ApplyError> {
    let live = crate::plan::RestoreMapping::default();
    let observed =
        observe_restores(engines, spec, order, repositories, selection, &live, None).await?;
    Ok((observed.resources, observed.engine_digest))
}

/// What a restore plan is made from: each resource's chosen snapshot and
/// target, the engines' digest, and the resources read from another
/// repository than the one they would be read from, and why.
pub struct RestoreObserved {
    pub resources: BTreeMap<Address, RestoreObservation>,
    pub engine_digest: String,
    pub read_elsewhere: BTreeMap<Address, ReadElsewhere>,
    /// What the backups of the chosen snapshots left out, for those that
    /// left out anything (see [`crate::plan::with_snapshot_excludes`]).
    pub snapshot_excludes: BTreeMap<Address, crate::repo::ExcludeRules>,
}

/// [`restore_observations`] of the targets a restore into other names
/// writes (each mapped resource observed under its new name), reading only
/// repository `only` when given (`restore --repository NAME`), else the
/// first repository, in the order of the resource's copies, whose copy of
/// the snapshot is there and sound as far as can be known before reading
/// it ([`crate::repo::Repository::probe_restorable`]).
pub async fn observe_restores(
    engines: &Engines,
    spec: &Spec,
    order: &[Address],
    repositories: &[NamedRepository],
    selection: &RestoreSelection,
    mapping: &crate::plan::RestoreMapping,
    only: Option<&str>,
) -> Result<RestoreObserved, ApplyError> {
    declared_repository(repositories, only)?;
    let mut snapshots = all_snapshots(repositories)?;
    snapshots.retain(|(repo, _)| only.is_none_or(|only| only == *repo));
    let all = || {
        snapshots
            .iter()
            .flat_map(|(repo, list)| list.iter().map(move |s| (*repo, s)))
    };
    let mut read_elsewhere = BTreeMap::new();
    // A snapshot id names one resource: the restore is narrowed to it.
    let by_id = match selection {
        RestoreSelection::Latest | RestoreSelection::LatestEach | RestoreSelection::Tagged(_) => {
            None
        }
        RestoreSelection::Id(id) => {
            let found = find_snapshots(repositories, std::slice::from_ref(id))?;
            let Some((resource, chosen)) = found.into_iter().next() else {
                return Err(ApplyError::ResourceMissing(format!(
                    "no snapshot with id {id}"
                )));
            };
            if !order.contains(&resource) {
                return Err(ApplyError::Refused(format!(
                    "snapshot {id} belongs to {resource}, which is not among the resources to \
                     restore (check --target and the spec)"
                )));
            }
            Some((resource, chosen))
        }
    };
    // A safety copy taken before a replace is not what "latest" means to a
    // restore; with a tag, only the snapshots carrying it are.
    let tagged = match selection {
        RestoreSelection::Tagged(tag) => Some(crate::repo::TagFilter {
            key: tag.key.clone(),
            value: Some(tag.value.clone()),
        }),
        _ => None,
    };
    let candidates = |address: &str| {
        let address = address.to_string();
        let tagged = tagged.clone();
        all().filter(move |(_, s)| {
            s.resource == address
                && !s.source.tags.iter().any(|t| t == PRE_RESTORE_TAG)
                && tagged
                    .as_ref()
                    .is_none_or(|f| f.matches_any(&s.source.tags))
        })
    };
    let (restored, without): (Vec<String>, Vec<String>) = order
        .iter()
        .filter(|a| kinds::handler(a.kind).is_some())
        .map(|a| a.to_string())
        .partition(|a| candidates(a).next().is_some());
    if let RestoreSelection::Tagged(tag) = selection
        && !without.is_empty()
    {
        return Err(ApplyError::Refused(format!(
            "no snapshot of {} has the tag {tag}, so the stack cannot be brought back to \
             that moment: restore the others with --target, or see which resources the tag \
             names with `lifeboat snapshots --tag {tag}`. Nothing was changed",
            without.join(", ")
        )));
    }
    let moment = match selection {
        RestoreSelection::Latest => one_moment(&restored, |a| candidates(a).map(|(_, s)| s)),
        _ => None,
    };
    let latest = |address: &str| {
        candidates(address)
            .filter(|(_, s)| moment.is_none() || s.source.run == moment)
            .max_by_key(|(_, s)| s.time)
            .map(|(repo, s)| snapshot_ref(repo, s))
    };
    let observer = Observer {
        spec,
        engines,
        restoring: order,
        into: mapping,
    };
    let mut observed = BTreeMap::new();
    let mut snapshot_excludes = BTreeMap::new();
    let mut digest = Sha256::new();
    for address in order {
        let Some(handler) = kinds::handler(address.kind) else {
            continue;
        };
        let snapshot = match &by_id {
            Some((owner, chosen)) if owner == address => Some(chosen.clone()),
            Some(_) => continue,
            None => latest(&address.to_string()),
        };
        let mut unsound = None;
        let snapshot = match snapshot {
            Some(chosen) => {
                let sound = sound_copy(spec, repositories, &snapshots, address, &chosen);
                match sound {
                    SoundCopy::Found { snapshot, skipped } => {
                        if !skipped.is_empty() {
                            let elsewhere = ReadElsewhere {
                                repository: snapshot.repository.clone(),
                                skipped,
                            };
                            read_elsewhere.insert(address.clone(), elsewhere);
                        }
                        Some(snapshot)
                    }
                    SoundCopy::None { why } => {
                        unsound = why;
                        Some(chosen)
                    }
                }
            }
            None => None,
        };
        let chosen = snapshot.as_ref().and_then(|chosen| {
            let repository = repositories
                .iter()
                .find(|r| r.name == chosen.repository)?
                .repository
                .as_ref()?;
            let full = all()
                .find(|(repo, s)| *repo == chosen.repository && s.id.to_string() == chosen.id)?;
            Some((repository, full.1))
        });
        if let Some((_, chosen)) = chosen
            && !chosen.source.excludes.is_empty()
        {
            snapshot_excludes.insert(address.clone(), chosen.source.excludes.clone());
        }
        let mut target = handler.observe_target(&observer, address, chosen).await;
        // A tree is checked against its own claims before the plan shows
        // its size: a tree whose files add up to more than its summary says
        // (a crafted 1 TB sparse file in a "10 B" snapshot) is refused here,
        // not written for minutes.
        if let Some((repository, chosen)) = chosen
            && chosen.content == crate::repo::ContentKind::Tree
            && target.observation.target.is_ok()
            && let Err(problem) = true_tree_totals(spec, repository, chosen)
        {
            target.observation.target = Err(problem);
        }
        // No copy anywhere looks sound: refused before anything is written.
        if let Some(why) = unsound
            && target.observation.target.is_ok()
        {
            target.observation.target = Err(format!(
                "{}. Nothing was changed: `lifeboat check --read-data` says what is lost, \
                 `--snapshot ID` restores an older snapshot",
                spec.redact(&why)
            ));
        }
        fingerprint_into(&mut digest, address, &target.fingerprint);
        observed.insert(
            address.clone(),
            RestoreObservation {
                snapshot,
                ..target.observation
            },
        );
    }
    Ok(RestoreObserved {
        resources: observed,
        engine_digest: hex::encode(digest.finalize()),
        read_elsewhere,
        snapshot_excludes,
    })
}

/// Which copy of a snapshot a restore reads.
enum SoundCopy {
    /// The first sound one, and why each repository before it was passed over.
    Found {
        snapshot: SnapshotRef,
        skipped: Vec<SkippedRepository>,
    },
    /// None looks sound: why the first one does not (`None` when the
    /// snapshot's own repository could not be looked into).
    None { why: Option<String> },
}

/// The repositories a restore of `address` may read, in the order it
/// prefers them: its policy's copies (every repository by default), then
/// any other that holds its snapshots.
fn preferred_repositories<'r>(
    spec: &Spec,
    repositories: &'r [NamedRepository],
    address: &Address,
) -> Vec<&'r NamedRepository> {
    let copies: Vec<String> = spec
        .policy_of(address)
        .map(|p| p.copies.clone())
        .unwrap_or_default();
    let mut ordered: Vec<&NamedRepository> = copies
        .iter()
        .filter_map(|name| repositories.iter().find(|r| &r.name == name))
        .collect();
    for named in repositories {
        if !ordered.iter().any(|r| r.name == named.name) {
            ordered.push(named);
        }
    }
    ordered
}

/// The first copy of `chosen`'s moment (same resource, time and run: a
/// copy keeps them) that is there and passes the probe, in the order of
/// [`preferred_repositories`] among those `snapshots` lists.
fn sound_copy(
    spec: &Spec,
    repositories: &[NamedRepository],
    snapshots: &[(&str, Vec<Snapshot>)],
    address: &Address,
    chosen: &SnapshotRef,
) -> SoundCopy {
    let mut skipped = Vec::new();
    let mut first_trouble = None;
    let resource = address.to_string();
    for named in preferred_repositories(spec, repositories, address) {
        let Some((_, held)) = snapshots.iter().find(|(repo, _)| *repo == named.name) else {
            continue;
        };
        let Some(repository) = &named.repository else {
            let why = match &named.unreachable {
                Some(failure) => format!("it cannot be reached: {}", failure.message),
                None => format!("it does not exist at {}", named.location),
            };
            skipped.push(SkippedRepository {
                repository: named.name.clone(),
                why: spec.redact(&why),
            });
            continue;
        };
        let Some(copy) = held.iter().find(|s| {
            s.resource == resource && s.time == chosen.time && s.source.run == chosen.run
        }) else {
            continue;
        };
        match tokio::task::block_in_place(|| repository.probe_restorable(copy)) {
            Ok(()) => {
                return SoundCopy::Found {
                    snapshot: snapshot_ref(&named.name, copy),
                    skipped,
                };
            }
            Err(error) => {
                let why = spec.redact(&error.to_string());
                first_trouble.get_or_insert_with(|| why.clone());
                skipped.push(SkippedRepository {
                    repository: named.name.clone(),
                    why: format!("its copy, snapshot {}, is damaged: {why}", copy.id.short()),
                });
            }
        }
    }
    SoundCopy::None { why: first_trouble }
}

/// The newest apply run that took a snapshot of every one of `resources`.
fn one_moment<'s, I>(resources: &[String], snapshots_of: impl Fn(&str) -> I) -> Option<String>
where
    I: Iterator<Item = &'s Snapshot>,
{
    let mut runs: BTreeMap<&str, (usize, chrono::DateTime<chrono::Utc>)> = BTreeMap::new();
    for resource in resources {
        let mut seen = std::collections::BTreeSet::new();
        for snapshot in snapshots_of(resource) {
            let Some(run) = snapshot.source.run.as_deref() else {
                continue;
            };
            let entry = runs.entry(run).or_insert((0, snapshot.time));
            entry.1 = entry.1.max(snapshot.time);
            // Copies in several repositories count once.
            if seen.insert(run) {
                entry.0 += 1;
            }
        }
    }
    runs.into_iter()
        .filter(|(_, (count, _))| *count == resources.len())
        .max_by_key(|(_, (_, time))| *time)
        .map(|(run, _)| run.to_string())
}

/// One snapshot as `lifeboat snapshots` lists it (and its `--json` gives it).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SnapshotRow {
    pub id: String,
    pub short_id: String,
    /// The resource address it is a snapshot of, as recorded.
    pub resource: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub bytes: u64,
    pub files: u64,
    pub repository: String,
    pub hostname: String,
    pub tags: Vec<String>,
    /// The apply run that took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// Every snapshot of every repository that exists, oldest first.
pub fn list_snapshots(repositories: &[NamedRepository]) -> Result<Vec<SnapshotRow>, ApplyError> {
    let mut rows = Vec::new();
    for (repository, snapshots) in all_snapshots(repositories)? {
        for snapshot in snapshots {
            let id = snapshot.id.to_string();
            rows.push(SnapshotRow {
                short_id: crate::plan::short_id(&id),
                id,
                resource: snapshot.resource.clone(),
                time: snapshot.time,
                bytes: snapshot.summary.bytes,
                files: snapshot.summary.files,
                repository: repository.to_string(),
                hostname: snapshot.hostname.clone(),
                tags: snapshot.source.tags.clone(),
                run: snapshot.source.run.clone(),
            });
        }
    }
    rows.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    Ok(rows)
}

/// Whether `snapshot`'s tree adds up to what its summary says (a crafted
/// 1 TB sparse file in a "10 B" snapshot is refused before anything is
/// written); the problem as the restore plan says it.
pub(crate) fn true_tree_totals(
    spec: &Spec,
    repository: &crate::repo::Repository,
    snapshot: &crate::repo::Snapshot,
) -> Result<(), String> {
    tokio::task::block_in_place(|| repository.tree_totals(snapshot))
        .map(|_| ())
        .map_err(|error| {
            format!(
                "snapshot {} cannot be restored as it is: {}. Nothing was changed: `lifeboat \
                 check --read-data` says what is lost, `--snapshot ID` restores an older \
                 snapshot",
                snapshot.id.short(),
                spec.redact(&error.to_string())
            )
        })
}

/// Each image's layer DiffIDs, bottom first, for ordering images after
/// their bases: the engine's when it has the image, else what its latest
/// image snapshot recorded (a restore after the images were removed). Images
/// neither knows are left out.
pub async fn image_layers(
    engines: &Engines,
    spec: &Spec,
    repositories: &[NamedRepository],
) -> Result<BTreeMap<String, Vec<String>>, ApplyError> {
    let observer = Observer {
        spec,
        engines,
        restoring: &[],
        into: &crate::plan::RestoreMapping::default(),
    };
    let snapshots = all_snapshots(repositories)?;
    let mut layers = BTreeMap::new();
    for image in &spec.images {
        let address = Address::new(crate::spec::ResourceKind::Image, image.name.clone());
        if let Ok(engine) = observer.engine(&address)
            && let Ok(Some(info)) = engine.image(&image.reference).await
        {
            layers.insert(image.name.clone(), info.layers);
            continue;
        }
        let resource = address.to_string();
        let latest = snapshots
            .iter()
            .flat_map(|(repo, list)| list.iter().map(move |s| (*repo, s)))
            .filter(|(_, s)| s.resource == resource && s.content == crate::repo::ContentKind::Image)
            .max_by_key(|(_, s)| s.time);
        let Some((repo, snapshot)) = latest else {
            continue;
        };
        let repository = repositories
            .iter()
            .find(|r| r.name == repo)
            .and_then(|r| r.repository.as_ref());
        if let Some(repository) = repository
            && let Ok(stored) = repository.stored_image(snapshot)
        {
            layers.insert(image.name.clone(), stored.layers);
        }
    }
    Ok(layers)
}
