//! status: is every resource of the spec within its RPO right now? Read
//! from the repositories alone (snapshots and run records), so a second
//! machine can watch the first and a dead host shows as resources going
//! late.
//!
//! Owns the status values (per resource, per repository), how they are
//! computed from what the repositories hold, and the verdict a monitor acts
//! on. It never touches an engine and never prints: `cli` renders the
//! values (human table, JSON, Prometheus text) and turns the verdict into
//! an exit code.

#[cfg(test)]
mod tests;

use crate::apply::{ApplyError, NamedRepository};
use crate::failure::FailureClass;
use crate::plan::{copy_targets, rpo_of};
use crate::repo::{ResourceOutcome, RunKind, RunRecord, Snapshot};
use crate::spec::{Address, Spec};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How many earlier snapshots the newest one's size is compared with.
pub const SIZE_HISTORY: usize = 10;

/// How far (a fraction of the median of the earlier snapshots) the newest
/// snapshot's size may be from it before it is flagged: a backup that
/// suddenly shrinks is the classic silent failure.
pub const SIZE_CHANGE_FLAGGED: f64 = 0.5;

/// Where a copy stands against its RPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RpoState {
    /// The newest snapshot is younger than the RPO.
    Ok,
    /// The newest snapshot is older than the RPO.
    Late,
    /// No snapshot at all.
    Missing,
    /// The repository could not be read: nothing is known.
    Unknown,
}

impl RpoState {
    pub fn keyword(self) -> &'static str {
        match self {
            RpoState::Ok => "ok",
            RpoState::Late => "late",
            RpoState::Missing => "missing",
            RpoState::Unknown => "unknown",
        }
    }
}

/// What a monitor acts on, mildest first: the verdict of a whole status is
/// the worst that holds (`Ord`), so when several hold the last listed wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every resource is within its RPO, its last backup succeeded and its
    /// size is in line with its history.
    Ok,
    /// A newest snapshot is more than 50% larger or smaller than the median
    /// of the ones before it.
    SizeChanged,
    /// A resource's last backup failed (its older copies may still be within the RPO).
    Failed,
    /// A resource's newest snapshot is older than its RPO.
    Late,
    /// A resource has no snapshot in a repository its policy copies to.
    Missing,
    /// A repository could not be read: what it holds is unknown.
    RepositoryUnreachable,
}

impl Verdict {
    pub fn keyword(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::SizeChanged => "size_changed",
            Verdict::Failed => "failed",
            Verdict::Late => "late",
            Verdict::Missing => "missing",
            Verdict::RepositoryUnreachable => "repository_unreachable",
        }
    }
}

/// The whole status: what `lifeboat status --json` prints (schemas/status.schema.json).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// When it was computed: ages are as of this moment.
    pub time: DateTime<Utc>,
    /// The worst that holds (see [`Verdict`]).
    pub verdict: Verdict,
    /// Every repository the spec declares (or the default one), in spec order.
    pub repositories: Vec<RepositoryStatus>,
    /// Every resource of the spec lifeboat backs up, in spec order.
    pub resources: Vec<ResourceStatus>,
}

/// One repository as status read it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RepositoryStatus {
    pub name: String,
    /// Its path or URL (never a secret).
    pub location: String,
    pub state: RepositoryState,
    /// Snapshots it holds.
    pub snapshots: usize,
    /// Why it could not be read (`state` unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FailureClass>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepositoryState {
    /// Opened and read.
    Ok,
    /// Not there (yet): no apply created it, or its disk is not mounted.
    Absent,
    /// It could not be opened or read (passphrase, permissions, damage).
    Unreachable,
}

impl RepositoryState {
    pub fn keyword(self) -> &'static str {
        match self {
            RepositoryState::Ok => "ok",
            RepositoryState::Absent => "absent",
            RepositoryState::Unreachable => "unreachable",
        }
    }
}

/// One resource: its copies against its RPO, its last backup, its size.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ResourceStatus {
    /// `volume.data`
    pub address: String,
    pub rpo_seconds: u64,
    /// The worst of its copies' states.
    pub state: RpoState,
    /// Age of the oldest of its newest copies: what the RPO is held against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    /// One per repository its policy copies to, in that order.
    pub copies: Vec<CopyStatus>,
    /// The last backup run that tried it; `None`: none recorded.
    pub last_outcome: Option<LastOutcome>,
    /// Its newest snapshot's size against the earlier ones; `None`: no snapshot.
    pub size: Option<SizeCheck>,
    /// Its last restore drill; `None`: never drilled.
    pub last_drill: Option<DrillStatus>,
    /// Its policy's `drill_every` asks for a drill, and the last one is
    /// older (or there is none).
    pub drill_due: bool,
    /// Its last drill measured a recovery time over its policy's `rto`.
    pub drill_rto_missed: bool,
}

impl ResourceStatus {
    /// The verdict of this resource alone.
    pub fn verdict(&self) -> Verdict {
        let by_state = match self.state {
            RpoState::Ok => Verdict::Ok,
            RpoState::Late => Verdict::Late,
            RpoState::Missing => Verdict::Missing,
            RpoState::Unknown => Verdict::RepositoryUnreachable,
        };
        let failed = self
            .last_outcome
            .as_ref()
            .is_some_and(|o| o.status == OutcomeStatus::Failed);
        let resized = self.size.as_ref().is_some_and(|s| s.changed);
        [
            Some(by_state),
            failed.then_some(Verdict::Failed),
            resized.then_some(Verdict::SizeChanged),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Verdict::Ok)
    }
}

/// A resource's newest snapshot in one repository.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CopyStatus {
    pub repository: String,
    pub state: RpoState,
    /// The newest snapshot there (short id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    /// Its logical size (file content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Done in every repository it was copied to.
    Done,
    /// Failed in at least one.
    Failed,
    /// Not attempted (a dependency failed, the run was interrupted).
    Skipped,
}

impl OutcomeStatus {
    pub fn keyword(self) -> &'static str {
        match self {
            OutcomeStatus::Done => "done",
            OutcomeStatus::Failed => "failed",
            OutcomeStatus::Skipped => "skipped",
        }
    }
}

/// How the last run that tried a resource ended for it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LastOutcome {
    pub run: String,
    pub finished: DateTime<Utc>,
    pub status: OutcomeStatus,
    /// The class of the first failure (`status` failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FailureClass>,
    /// What failed or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The newest snapshot's size against the median of the ones before it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SizeCheck {
    pub bytes: u64,
    /// Median size of the up to [`SIZE_HISTORY`] snapshots before it;
    /// `None`: it is the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_bytes: Option<u64>,
    /// How many earlier snapshots the median is of.
    pub compared_with: usize,
    /// More than 50% away from the median.
    pub changed: bool,
}

/// A resource's last restore drill (the drill's run record).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DrillStatus {
    pub run: String,
    pub finished: DateTime<Utc>,
    pub passed: bool,
    /// The measured recovery time.
    pub rto_seconds: f64,
}

/// What one repository gave status: its snapshots and run records, or why
/// it gave nothing.
pub enum RepositoryReading {
    Read {
        location: String,
        snapshots: Vec<Snapshot>,
        runs: Vec<RunRecord>,
    },
    /// Declared, but not created yet (or its disk is not mounted).
    Absent {
        location: String,
    },
    Unreachable {
        location: String,
        error: ApplyError,
    },
}

/// Reads the snapshots and run records of one opened repository (or says
/// why it cannot); damaged files are passed over, as everywhere.
pub fn read_repository(opened: Result<&NamedRepository, ApplyError>) -> RepositoryReading {
    let named = match opened {
        Ok(named) => named,
        Err(error) => {
            let location = match &error {
                ApplyError::Repository { location, .. } => location.clone(),
                _ => String::new(),
            };
            return RepositoryReading::Unreachable { location, error };
        }
    };
    let location = named.location.clone();
    let Some(repository) = &named.repository else {
        return RepositoryReading::Absent { location };
    };
    let read = repository
        .snapshots()
        .and_then(|snapshots| Ok((snapshots, repository.runs()?.0)));
    match read {
        Ok((snapshots, runs)) => RepositoryReading::Read {
            location,
            snapshots,
            runs: runs.into_iter().map(|stored| stored.record).collect(),
        },
        Err(source) => RepositoryReading::Unreachable {
            location,
            error: named.error(source),
        },
    }
}

/// The status of `spec`'s resources at `now` from what each repository
/// (by name, in spec order) gave.
pub fn compute(
    spec: &Spec,
    readings: &[(String, RepositoryReading)],
    now: DateTime<Utc>,
) -> Status {
    let names: Vec<String> = readings.iter().map(|(name, _)| name.clone()).collect();
    let repositories: Vec<RepositoryStatus> = readings
        .iter()
        .map(|(name, reading)| repository_status(name, reading))
        .collect();
    let runs = runs_of(readings, RunKind::Backup);
    let drills = runs_of(readings, RunKind::Drill);
    let unreachable: BTreeSet<&str> = readings
        .iter()
        .filter(|(_, r)| matches!(r, RepositoryReading::Unreachable { .. }))
        .map(|(name, _)| name.as_str())
        .collect();
    let resources: Vec<ResourceStatus> = spec
        .addresses()
        .into_iter()
        .filter(|address| crate::plan::backs_up(address.kind))
        .map(|address| {
            let known = Known {
                targets: copy_targets(spec, &address, &names),
                snapshots: snapshots_of(spec, &address, readings),
            };
            let drilled = last_drill(&drills, &address.to_string());
            let policy = spec.policy_of(&address);
            let every = policy.and_then(|p| p.drill_every);
            let rto = policy.and_then(|p| p.rto);
            ResourceStatus {
                drill_due: every.is_some_and(|every| {
                    crate::plan::drill_is_due(every, drilled.as_ref().map(|d| d.finished), now)
                }),
                drill_rto_missed: (drilled.as_ref().zip(rto))
                    .is_some_and(|(d, rto)| d.rto_seconds > rto.as_secs_f64()),
                last_drill: drilled,
                ..resource_status(spec, &address, &known, &unreachable, &runs, now)
            }
        })
        .collect();
    let unreachable = repositories
        .iter()
        .any(|r| r.state == RepositoryState::Unreachable)
        .then_some(Verdict::RepositoryUnreachable);
    let verdict = resources
        .iter()
        .map(ResourceStatus::verdict)
        .chain(unreachable)
        .max()
        .unwrap_or(Verdict::Ok);
    Status {
        time: now,
        verdict,
        repositories,
        resources,
    }
}

fn repository_status(name: &str, reading: &RepositoryReading) -> RepositoryStatus {
    let status = |location: &str, state, snapshots| RepositoryStatus {
        name: name.to_string(),
        location: location.to_string(),
        state,
        snapshots,
        error: None,
        class: None,
    };
    match reading {
        RepositoryReading::Read {
            location,
            snapshots,
            ..
        } => status(location, RepositoryState::Ok, snapshots.len()),
        RepositoryReading::Absent { location } => status(location, RepositoryState::Absent, 0),
        RepositoryReading::Unreachable { location, error } => RepositoryStatus {
            error: Some(error.to_string()),
            class: Some(error.class()),
            ..status(location, RepositoryState::Unreachable, 0)
        },
    }
}

/// A snapshot of one resource, with the repository holding it.
struct Held<'a> {
    repository: &'a str,
    snapshot: &'a Snapshot,
}

/// The snapshots of `address` in every repository read (under the names
/// `moved` blocks gave it before), oldest first; the safety copies a
/// restore takes are no backups and left out.
fn snapshots_of<'a>(
    spec: &Spec,
    address: &Address,
    readings: &'a [(String, RepositoryReading)],
) -> Vec<Held<'a>> {
    let wanted = address.to_string();
    let mut held: Vec<Held<'a>> = readings
        .iter()
        .filter_map(|(name, reading)| match reading {
            RepositoryReading::Read { snapshots, .. } => Some((name, snapshots)),
            _ => None,
        })
        .flat_map(|(name, snapshots)| {
            snapshots.iter().map(move |snapshot| Held {
                repository: name,
                snapshot,
            })
        })
        .filter(|h| spec.current_address(&h.snapshot.resource) == wanted)
        .filter(|h| {
            !h.snapshot
                .source
                .tags
                .iter()
                .any(|t| t == crate::apply::PRE_RESTORE_TAG)
        })
        .collect();
    held.sort_by_key(|h| h.snapshot.time);
    held
}

/// The run records of `kind` of every repository read, each run once,
/// newest first.
fn runs_of(readings: &[(String, RepositoryReading)], kind: RunKind) -> Vec<&RunRecord> {
    let mut seen = BTreeSet::new();
    let mut runs: Vec<&RunRecord> = readings
        .iter()
        .filter_map(|(_, reading)| match reading {
            RepositoryReading::Read { runs, .. } => Some(runs),
            _ => None,
        })
        .flatten()
        .filter(|record| record.kind == kind)
        .filter(|record| seen.insert(record.run.as_str()))
        .collect();
    runs.sort_by(|a, b| b.finished.cmp(&a.finished).then(b.run.cmp(&a.run)));
    runs
}

/// What status knows of one resource.
struct Known<'a> {
    targets: Vec<String>,
    snapshots: Vec<Held<'a>>,
}

fn resource_status(
    spec: &Spec,
    address: &Address,
    known: &Known<'_>,
    unreachable: &BTreeSet<&str>,
    runs: &[&RunRecord],
    now: DateTime<Utc>,
) -> ResourceStatus {
    let Known { targets, snapshots } = known;
    let rpo = rpo_of(spec, address);
    let elapsed = |time: DateTime<Utc>| (now - time).to_std().unwrap_or_default();
    let age = |time: DateTime<Utc>| elapsed(time).as_secs();
    let copies: Vec<CopyStatus> = targets
        .iter()
        .map(|repository| {
            let newest = snapshots
                .iter()
                .rev()
                .find(|h| h.repository == repository)
                .map(|h| h.snapshot);
            let state = match newest {
                Some(s) if elapsed(s.time) > rpo => RpoState::Late,
                Some(_) => RpoState::Ok,
                None if unreachable.contains(repository.as_str()) => RpoState::Unknown,
                None => RpoState::Missing,
            };
            CopyStatus {
                repository: repository.clone(),
                state,
                snapshot: newest.map(|s| s.id.short().to_string()),
                time: newest.map(|s| s.time),
                age_seconds: newest.map(|s| age(s.time)),
                bytes: newest.map(|s| s.summary.bytes),
            }
        })
        .collect();
    ResourceStatus {
        address: address.to_string(),
        rpo_seconds: rpo.as_secs(),
        state: worst_known(&copies),
        age_seconds: copies.iter().filter_map(|c| c.age_seconds).max(),
        copies,
        last_outcome: last_outcome(runs, &address.to_string()),
        size: size_check(snapshots),
        // From the drill records: the caller's (`last_drill`).
        last_drill: None,
        drill_due: false,
        drill_rto_missed: false,
    }
}

/// The newest drill of `address` among `drills` (newest first): when it
/// finished, whether the resource passed, the recovery time it measured.
fn last_drill(drills: &[&RunRecord], address: &str) -> Option<DrillStatus> {
    drills.iter().find_map(|record| {
        let drilled = (record.drill.as_ref()?.resources.iter()).find(|r| r.address == address)?;
        Some(DrillStatus {
            run: record.run.clone(),
            finished: record.finished,
            passed: drilled.passed,
            rto_seconds: drilled.rto_seconds,
        })
    })
}

/// The worst state of the copies whose repositories could be read;
/// unknown only when none could.
fn worst_known(copies: &[CopyStatus]) -> RpoState {
    let known = copies
        .iter()
        .map(|c| c.state)
        .filter(|s| *s != RpoState::Unknown);
    match known.max() {
        Some(state) => state,
        None if copies.is_empty() => RpoState::Missing,
        None => RpoState::Unknown,
    }
}

/// The resources past their RPO (late, or with no copy in a repository
/// their policy copies to), as a notice lists them.
pub fn late_resources(status: &Status) -> Vec<crate::notify::NoticeResource> {
    status
        .resources
        .iter()
        .filter(|r| matches!(r.state, RpoState::Late | RpoState::Missing))
        .map(|r| crate::notify::NoticeResource {
            address: r.address.clone(),
            status: r.state.keyword().to_string(),
            class: None,
            message: None,
            age_seconds: r.age_seconds,
            rpo_seconds: Some(r.rpo_seconds),
        })
        .collect()
}

/// How the newest run that tried `address` ended for it.
fn last_outcome(runs: &[&RunRecord], address: &str) -> Option<LastOutcome> {
    let (record, entries) = newest_run_naming(runs, address)?;
    let failure = entries.iter().find_map(|r| match &r.outcome {
        ResourceOutcome::Failed { class, message } => Some((*class, message.clone())),
        _ => None,
    });
    let skipped = entries.iter().find_map(|r| match &r.outcome {
        ResourceOutcome::Skipped { because } => Some(because.clone()),
        _ => None,
    });
    let (status, class, message) = match (failure, skipped) {
        (Some((class, message)), _) => (OutcomeStatus::Failed, Some(class), Some(message)),
        (None, Some(because)) => (OutcomeStatus::Skipped, None, Some(because)),
        (None, None) => (OutcomeStatus::Done, None, None),
    };
    Some(LastOutcome {
        run: record.run.clone(),
        finished: record.finished,
        status,
        class,
        message,
    })
}

/// The newest of `runs` (newest first) with an outcome for `address`, and
/// its outcomes for it (one per repository).
fn newest_run_naming<'a>(
    runs: &[&'a RunRecord],
    address: &str,
) -> Option<(&'a RunRecord, Vec<&'a crate::repo::ResourceRecord>)> {
    runs.iter().find_map(|record| {
        let entries: Vec<_> = record
            .resources
            .iter()
            .filter(|r| r.address == address)
            .collect();
        (!entries.is_empty()).then_some((*record, entries))
    })
}

/// The newest snapshot's size against the median of the up to
/// [`SIZE_HISTORY`] distinct snapshots before it (a snapshot copied to two
/// repositories counts once).
fn size_check(snapshots: &[Held<'_>]) -> Option<SizeCheck> {
    let mut distinct: BTreeMap<&str, (DateTime<Utc>, u64)> = BTreeMap::new();
    for held in snapshots {
        distinct.insert(
            &held.snapshot.id.0,
            (held.snapshot.time, held.snapshot.summary.bytes),
        );
    }
    let mut by_time: Vec<(DateTime<Utc>, u64)> = distinct.into_values().collect();
    by_time.sort();
    let (_, bytes) = by_time.pop()?;
    let earlier: Vec<u64> = by_time
        .iter()
        .rev()
        .take(SIZE_HISTORY)
        .map(|(_, b)| *b)
        .collect();
    let median = median(&earlier);
    Some(SizeCheck {
        bytes,
        median_bytes: median,
        compared_with: earlier.len(),
        changed: median.is_some_and(|m| size_changed(bytes, m)),
    })
}

/// Whether `bytes` is more than [`SIZE_CHANGE_FLAGGED`] of `median` away from it.
pub fn size_changed(bytes: u64, median: u64) -> bool {
    (bytes as f64 - median as f64).abs() > median as f64 * SIZE_CHANGE_FLAGGED
}

/// The median (the lower middle of an even count); `None` for no values.
fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}
