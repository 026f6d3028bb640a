//! Run records: what each apply, restore (and later drill) did, one file per
//! run in `runs/`, appended and never rewritten, so two runs or two hosts at
//! once never lose each other's record. Stored like snapshots (compressed,
//! encrypted, named by content hash). The history status and alerts read,
//! and where `plan` finds the settings last applied (`~` lines) and the
//! measured restore times (`rto`).
//!
//! Owns the record's format, reading it back (bounded, damaged files passed
//! over: losing a record loses no data, so it never blocks a run), the
//! retention that keeps `runs/` bounded, and the legacy `applied/` record it
//! replaces. It does not interpret the applied settings (an opaque value
//! from `apply`), and knows nothing of Docker or plans.

use super::backend::FileKind;
use super::{PruneStats, RepoError, Repository};
use crate::failure::FailureClass;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Version of the run record format this lifeboat writes. Readers accept
/// records of newer versions as far as they understand them (unknown
/// fields are ignored, unknown kinds, statuses and classes read as `other`).
pub const RUN_RECORD_FORMAT: u32 = 1;

/// Run records kept at most: the newest this many (see [`runs_to_forget`]).
pub const KEEP_RUNS: usize = 1000;
/// Run records older than this many days are forgotten (see [`runs_to_forget`]).
pub const KEEP_RUN_DAYS: i64 = 400;

/// A run record is small (one entry per resource and repository); a file
/// that decompresses to more than this is not one lifeboat wrote.
const MAX_RUN_RECORD: usize = 16 << 20;
/// Runs read at most by one listing: retention keeps about a thousand, so
/// far more means files put there by someone else; the newest names win.
const MAX_RUNS_READ: usize = 20 * KEEP_RUNS;

/// What kind of run a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `apply`: backups, retention, prune, settings.
    Backup,
    /// `restore`.
    Restore,
    /// `drill`: a restore into scratch names, checked, measured and
    /// removed again; its record carries the [`DrillRecord`].
    Drill,
    /// What a repository's legacy `applied/` record held, converted when the
    /// first run record was written into it.
    Migrated,
    /// A kind a newer lifeboat writes (a drill, say).
    #[serde(other)]
    Other,
}

impl RunKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Restore => "restore",
            RunKind::Drill => "drill",
            RunKind::Migrated => "migrated",
            RunKind::Other => "other",
        }
    }
}

/// How one resource ended in one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ResourceOutcome {
    /// Backed up into, or restored from, `repository`.
    Done {
        snapshot: String,
        files: u64,
        bytes: u64,
        /// Bytes the copy added to the repository (backups).
        added_bytes: u64,
        /// How long it took (a restore: the whole restore of the resource,
        /// what its `rto` is held against).
        seconds: f64,
    },
    /// Copied into `repository` from repository `from` (the engine was
    /// not read).
    Copied {
        from: String,
        snapshot: String,
        bytes: u64,
        /// Bytes the copy added to the repository.
        added_bytes: u64,
        seconds: f64,
    },
    Failed {
        class: FailureClass,
        message: String,
    },
    /// Not attempted.
    Skipped { because: String },
    /// A status a newer lifeboat writes.
    #[serde(other)]
    Other,
}

/// One resource's outcome in one repository (`None`: it failed or was
/// skipped before any repository was involved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResourceRecord {
    /// The resource's address (`volume.data`).
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// A restore into another name (`restore --into`): the Docker object
    /// or directory it wrote instead of the live one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    #[serde(flatten)]
    pub outcome: ResourceOutcome,
}

/// What a repository's prune gave back during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PruneRecord {
    pub repository: String,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub bytes_freed: u64,
}

impl PruneRecord {
    pub fn of(repository: &str, stats: PruneStats) -> PruneRecord {
        PruneRecord {
            repository: repository.to_string(),
            packs_deleted: stats.packs_deleted,
            packs_repacked: stats.packs_repacked,
            bytes_freed: stats.bytes_freed,
        }
    }
}

/// One run, as stored in `runs/` (docs/repository-format.md, "Run records").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    /// [`RUN_RECORD_FORMAT`] of the lifeboat that wrote it.
    pub format: u32,
    /// The run id, also stored in every snapshot the run wrote.
    pub run: String,
    pub kind: RunKind,
    /// The run's `KEY=VALUE` tags (`apply --tag`), as its snapshots hold them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub host: String,
    /// Version of the lifeboat that ran.
    pub lifeboat: String,
    /// Digest of the spec the run applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Wall time of the changes, first to last (a whole-stack restore:
    /// the stack's recovery time).
    #[serde(default)]
    pub changes_seconds: f64,
    /// A restore of everything the spec names (no `--target`).
    #[serde(default)]
    pub whole_stack: bool,
    /// A restore into other names (`restore --into`, a drill): it restored
    /// no live resource, so it measures none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub into_other_names: bool,
    /// The run was interrupted (SIGINT, SIGTERM): what is `skipped` was not tried.
    #[serde(default)]
    pub interrupted: bool,
    /// Per resource and repository, in plan order.
    #[serde(default)]
    pub resources: Vec<ResourceRecord>,
    /// Snapshots retention forgot.
    #[serde(default)]
    pub forgotten: usize,
    #[serde(default)]
    pub pruned: Vec<PruneRecord>,
    /// Failures outside the resources: forget, prune.
    #[serde(default)]
    pub errors: Vec<String>,
    /// What went wrong without failing the run: a notification that was
    /// not delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The settings the run applied, only when everything succeeded (what
    /// `plan` compares the spec with for `~` lines). Opaque here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<serde_json::Value>,
    /// A drill's checks and measurements (kind `drill` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillRecord>,
}

/// What a drill found: per resource, what was restored from where, the
/// checks run, and the recovery times and data age against the goals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillRecord {
    /// Every check passed, every goal was met and every scratch object was
    /// removed.
    pub passed: bool,
    /// Wall time from the start of the restore to the last resource
    /// restored and verified: the stack's recovery time.
    pub rto_seconds: f64,
    /// The largest `rto` of the resources drilled (the stack is back when
    /// the last of them is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_goal_seconds: Option<f64>,
    #[serde(default)]
    pub resources: Vec<DrillResource>,
    /// The scratch network the drill's containers were attached to.
    #[serde(default)]
    pub network: String,
    /// Scratch objects removed at the end (`volume shop_data-drill-…`).
    #[serde(default)]
    pub removed: Vec<String>,
    /// Scratch objects that could not be removed, with why.
    #[serde(default)]
    pub cleanup_errors: Vec<String>,
}

/// One drilled resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillResource {
    pub address: String,
    /// The scratch object it was restored into.
    #[serde(default)]
    pub into: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<DateTime<Utc>>,
    /// From the start of the restore to this resource restored and verified.
    pub rto_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_goal_seconds: Option<f64>,
    /// Age of the data restored when the drill began (now − snapshot time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_goal_seconds: Option<f64>,
    #[serde(default)]
    pub checks: Vec<DrillCheck>,
    /// Every check passed and both goals were met.
    pub passed: bool,
}

/// One check of a drilled resource: restored, verified, content compared,
/// goals met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillCheck {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl RunRecord {
    /// Resources that failed, in order (each address once).
    pub fn failed(&self) -> Vec<(&str, FailureClass)> {
        let mut seen = BTreeSet::new();
        self.resources
            .iter()
            .filter_map(|r| match &r.outcome {
                ResourceOutcome::Failed { class, .. } => Some((r.address.as_str(), *class)),
                _ => None,
            })
            .filter(|(address, _)| seen.insert(*address))
            .collect()
    }

    /// How many resources ended each way: (done, failed, skipped). A
    /// resource counts as failed when any of its repositories failed.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut by_address: BTreeMap<&str, u8> = BTreeMap::new();
        for record in &self.resources {
            let rank = match record.outcome {
                ResourceOutcome::Done { .. } | ResourceOutcome::Copied { .. } => 0,
                ResourceOutcome::Skipped { .. } | ResourceOutcome::Other => 1,
                ResourceOutcome::Failed { .. } => 2,
            };
            let entry = by_address.entry(&record.address).or_insert(rank);
            *entry = (*entry).max(rank);
        }
        let count = |rank| by_address.values().filter(|r| **r == rank).count();
        (count(0), count(2), count(1))
    }

    /// Whether everything the run tried was done.
    pub fn is_complete(&self) -> bool {
        !self.interrupted
            && self.errors.is_empty()
            && self.resources.iter().all(|r| {
                matches!(
                    r.outcome,
                    ResourceOutcome::Done { .. } | ResourceOutcome::Copied { .. }
                )
            })
    }

    /// The resources this record holds a restore measurement of.
    pub fn restores_measured(&self) -> impl Iterator<Item = &str> {
        let measures =
            matches!(self.kind, RunKind::Restore | RunKind::Migrated) && !self.into_other_names;
        self.resources
            .iter()
            .filter(move |r| measures && matches!(r.outcome, ResourceOutcome::Done { .. }))
            .map(|r| r.address.as_str())
    }
}

/// A record as read from one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// Its file name in `runs/`.
    pub name: String,
    pub record: RunRecord,
}

/// A file in `runs/` that does not load: passed over, noted by `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedRun {
    pub name: String,
    pub detail: String,
}

/// The records retention lets go, by file name: all but the newest
/// [`KEEP_RUNS`] and those finished more than [`KEEP_RUN_DAYS`] days before
/// `now`, except the newest record carrying applied settings and, for each
/// resource, the newest record measuring its restore and the newest drill
/// of it (what `plan` needs).
pub fn runs_to_forget(runs: &[StoredRun], now: DateTime<Utc>) -> Vec<String> {
    let mut newest_first: Vec<&StoredRun> = runs.iter().collect();
    newest_first.sort_by(|a, b| newest(a, b));
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    if let Some(settings) = newest_first.iter().find(|r| r.record.applied.is_some()) {
        kept.insert(&settings.name);
    }
    let mut measured: BTreeSet<&str> = BTreeSet::new();
    let mut drilled: BTreeSet<&str> = BTreeSet::new();
    for run in &newest_first {
        for address in run.record.restores_measured() {
            if measured.insert(address) {
                kept.insert(&run.name);
            }
        }
        // The last drill of each resource: what `drill_every` is held against.
        let drill = run
            .record
            .drill
            .as_ref()
            .filter(|_| run.record.kind == RunKind::Drill);
        for resource in drill.iter().flat_map(|d| &d.resources) {
            if drilled.insert(&resource.address) {
                kept.insert(&run.name);
            }
        }
    }
    let oldest_kept = now - Duration::days(KEEP_RUN_DAYS);
    newest_first
        .iter()
        .enumerate()
        .filter(|(position, run)| {
            (*position >= KEEP_RUNS || run.record.finished < oldest_kept)
                && !kept.contains(run.name.as_str())
        })
        .map(|(_, run)| run.name.clone())
        .collect()
}

/// Newest first: by finish time, then by name so the order is total.
fn newest(a: &StoredRun, b: &StoredRun) -> std::cmp::Ordering {
    b.record
        .finished
        .cmp(&a.record.finished)
        .then_with(|| b.name.cmp(&a.name))
}

impl Repository {
    /// Appends `record` as a new file of `runs/`; returns its name. Never
    /// rewrites or removes another record.
    pub fn append_run(&self, record: &RunRecord) -> Result<String, RepoError> {
        let bytes = serde_json::to_vec(record).expect("run records serialise");
        let (name, _) = self.save_file(FileKind::Run, &bytes)?;
        Ok(name)
    }

    /// The intact run records, newest first, and the files that do not load.
    pub fn runs(&self) -> Result<(Vec<StoredRun>, Vec<DamagedRun>), RepoError> {
        let mut names = self.list_files(FileKind::Run)?.files;
        // Names are content hashes, so which ones are left out past the
        // bound is arbitrary but stable; retention keeps far fewer.
        names.truncate(MAX_RUNS_READ);
        let mut runs = Vec::new();
        let mut damaged = Vec::new();
        let loaded = self.load_each(&names, |name| self.load_run(name));
        for (name, loaded) in names.into_iter().zip(loaded) {
            match loaded {
                Ok(record) => runs.push(StoredRun { name, record }),
                Err(RepoError::Corrupt { detail, .. }) => damaged.push(DamagedRun { name, detail }),
                // Forgotten by a concurrent run between listing and loading.
                Err(RepoError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        runs.sort_by(newest);
        Ok((runs, damaged))
    }

    pub(crate) fn load_run(&self, name: &str) -> Result<RunRecord, RepoError> {
        let bytes = self.load_file(FileKind::Run, name)?;
        let corrupt = |detail: String| RepoError::Corrupt {
            what: format!("runs/{name}"),
            detail,
        };
        if bytes.len() > MAX_RUN_RECORD {
            return Err(corrupt(format!(
                "{} bytes, more than a run record ever holds",
                bytes.len()
            )));
        }
        let record: RunRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        super::tags::check_stored(&record.tags).map_err(corrupt)?;
        Ok(record)
    }

    /// Removes the records [`runs_to_forget`] lets go (with `dry_run`, only
    /// counts them); returns how many. Records are never rewritten and
    /// nothing refers to them, so this needs no exclusive lock: a record
    /// removed by a concurrent run too is simply gone.
    pub fn forget_runs(&self, now: DateTime<Utc>, dry_run: bool) -> Result<usize, RepoError> {
        let (runs, _) = self.runs()?;
        let forget = runs_to_forget(&runs, now);
        if dry_run {
            return Ok(forget.len());
        }
        for name in &forget {
            self.remove_if_present(FileKind::Run, name)?;
        }
        Ok(forget.len())
    }

    /// Removes the legacy `applied/` records, once a run record holding what
    /// they held was written (the caller's order makes it crash-safe).
    pub fn remove_legacy_applied(&self) -> Result<(), RepoError> {
        for name in self.list_files(FileKind::Applied)?.files {
            self.remove_if_present(FileKind::Applied, &name)?;
        }
        Ok(())
    }

    /// Removes a file another run may have removed already.
    fn remove_if_present(&self, kind: FileKind, name: &str) -> Result<(), RepoError> {
        match self.backend().remove(kind, name) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(RepoError::io(
                format!("removing {}/{name}", kind.dir()),
            )(error)),
            _ => Ok(()),
        }
    }
}
