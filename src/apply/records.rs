//! Run records, seen from a run: the record of each apply and restore built
//! from its [`ApplyReport`] and appended to every repository the run used
//! (also when changes failed or the run was interrupted), the conversion of
//! a repository's legacy `applied/` record on the way, and what `plan`
//! reads back from the records: the settings last applied and the measured
//! restore times ([`AppliedState`]).
//!
//! The record's format and its retention belong to `repo::runs`; this
//! module only maps a run's outcomes onto it. It touches no engine.

use super::Run;
use super::report::{ApplyReport, ChangeOutcome, Status};
use super::retention::{fail, repo_error};
use super::{ApplyError, NamedRepository};
use crate::plan::{
    Action, AppliedState, DrillMeasurement, Plan, RestoreMeasurement, StackRestoreMeasurement,
};
use crate::repo::{
    AppliedRecord, DrillResource, PruneRecord, RUN_RECORD_FORMAT, Repository, ResourceOutcome,
    ResourceRecord, RunKind, RunRecord,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Records the run that produced `report` in every repository of the run
/// that exists: a backup's record carries `applied`'s settings when
/// everything succeeded (what `~` lines are computed against), a restore's
/// the measured restore times. A backup run then applies the records'
/// retention. Failing to write is an error of the run (in `report`).
pub(crate) fn record_run(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &[NamedRepository],
    report: &mut ApplyReport,
    kind: RunKind,
    applied: Option<&AppliedState>,
) {
    let finished = Utc::now();
    let mut record = run_record(plan, run, report, kind, finished);
    let settings_applied = kind == RunKind::Backup && report.failed() == 0;
    if settings_applied && let Some(settings) = applied.and_then(|a| a.settings.clone()) {
        // Only the settings: restore times live in restore records.
        let settings = AppliedState {
            settings: Some(settings),
            ..AppliedState::default()
        };
        record.applied = Some(serde_json::to_value(settings).expect("settings serialise"));
    }
    let errors_before = report.errors.len();
    append_record(&record, run, repositories, report);
    if settings_applied && report.errors.len() == errors_before {
        report.settings_recorded = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Update)
            .count();
    }
}

/// Appends `record` to every repository of the run that exists (a
/// backup's then applies the records' retention); failing to write is an
/// error of the run (in `report`).
pub(crate) fn append_record(
    record: &RunRecord,
    run: &Run<'_>,
    repositories: &[NamedRepository],
    report: &mut ApplyReport,
) {
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        let written = tokio::task::block_in_place(|| {
            convert_legacy_record(repository)?;
            repository.append_run(record)?;
            if record.kind == RunKind::Backup {
                repository.forget_runs(record.finished, false)?;
            }
            Ok(())
        });
        if let Err(error) = written {
            fail(report, run.events, &named.name, repo_error(named)(error));
        }
    }
}

/// The record of a run, as far as `report` tells.
pub(crate) fn run_record(
    plan: &Plan,
    run: &Run<'_>,
    report: &ApplyReport,
    kind: RunKind,
    finished: DateTime<Utc>,
) -> RunRecord {
    let changes_seconds = if report.elapsed_seconds > 0.0 {
        report.elapsed_seconds
    } else {
        report.changes.iter().map(|c| c.elapsed_seconds).sum()
    };
    let started = started_at(&run.run_id).unwrap_or_else(|| {
        finished - chrono::Duration::milliseconds((changes_seconds * 1000.0) as i64)
    });
    RunRecord {
        format: RUN_RECORD_FORMAT,
        run: run.run_id.clone(),
        kind,
        tags: plan.tags.clone(),
        host: crate::host::hostname(),
        lifeboat: env!("CARGO_PKG_VERSION").to_string(),
        spec_digest: Some(run.spec_digest.to_string()),
        started,
        finished,
        changes_seconds,
        whole_stack: report.whole_stack,
        into_other_names: plan.changes.iter().any(|c| c.into.is_some()),
        interrupted: run.cancel.is_cancelled(),
        resources: report
            .changes
            .iter()
            .flat_map(|outcome| resource_records(outcome, into_name(plan, &outcome.address)))
            .collect(),
        forgotten: report.forgotten,
        pruned: report
            .pruned
            .iter()
            .map(|p| PruneRecord::of(&p.repository, p.stats))
            .collect(),
        errors: report.errors.clone(),
        warnings: report.warnings.clone(),
        applied: None,
        drill: None,
    }
}

/// When the run started: its id begins with that moment (`new_run_id`).
fn started_at(run_id: &str) -> Option<DateTime<Utc>> {
    let stamp = run_id.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|time| time.and_utc())
}

/// The name `address` is restored into, when the plan maps it.
fn into_name(plan: &Plan, address: &crate::spec::Address) -> Option<String> {
    plan.changes
        .iter()
        .find(|c| &c.address == address)
        .and_then(|c| c.into.as_ref())
        .map(|into| into.name.clone())
}

/// One change's outcome per repository it copied to or from.
fn resource_records(change: &ChangeOutcome, into: Option<String>) -> Vec<ResourceRecord> {
    let address = change.address.to_string();
    let alone = |outcome| {
        vec![ResourceRecord {
            address: address.clone(),
            repository: None,
            into: into.clone(),
            outcome,
        }]
    };
    match &change.status {
        Status::Skipped { because } => {
            return alone(ResourceOutcome::Skipped {
                because: because.clone(),
            });
        }
        Status::Failed { class, error } if change.copies.is_empty() => {
            return alone(ResourceOutcome::Failed {
                class: *class,
                message: error.clone(),
            });
        }
        Status::Succeeded if change.copies.is_empty() => {
            return alone(ResourceOutcome::Skipped {
                because: "there was nothing to copy".to_string(),
            });
        }
        _ => {}
    }
    change
        .copies
        .iter()
        .map(|copy| {
            let outcome = match (&copy.error, &copy.snapshot) {
                (None, Some(snapshot)) if let Some(from) = &copy.from => ResourceOutcome::Copied {
                    from: from.clone(),
                    snapshot: snapshot.clone(),
                    bytes: copy.bytes,
                    added_bytes: copy.added_bytes,
                    seconds: copy.elapsed_seconds,
                },
                (None, Some(snapshot)) => ResourceOutcome::Done {
                    snapshot: snapshot.clone(),
                    files: copy.files,
                    bytes: copy.bytes,
                    added_bytes: copy.added_bytes,
                    // A restore's time is the whole restore of the
                    // resource: what its `rto` is about.
                    seconds: if change.action == Action::Restore {
                        change.elapsed_seconds
                    } else {
                        copy.elapsed_seconds
                    },
                },
                (error, _) => ResourceOutcome::Failed {
                    class: copy.class.unwrap_or(crate::failure::FailureClass::Other),
                    message: error.clone().unwrap_or_else(|| "no snapshot".to_string()),
                },
            };
            ResourceRecord {
                address: address.clone(),
                repository: Some(copy.repository.clone()),
                into: into.clone(),
                outcome,
            }
        })
        .collect()
}

/// Converts a legacy `applied/` record into a run record of kind
/// `migrated`, then removes it: in that order, so a crash in between leaves
/// both (which read the same) and never neither.
fn convert_legacy_record(repository: &Repository) -> Result<(), crate::repo::RepoError> {
    let Some(legacy) = repository.last_applied()? else {
        return Ok(());
    };
    repository.append_run(&migrated_record(&legacy))?;
    repository.remove_legacy_applied()
}

fn migrated_record(legacy: &AppliedRecord) -> RunRecord {
    let state: AppliedState = serde_json::from_value(legacy.settings.clone()).unwrap_or_default();
    RunRecord {
        format: RUN_RECORD_FORMAT,
        run: format!("{}-applied", legacy.time.format("%Y%m%dT%H%M%SZ")),
        kind: RunKind::Migrated,
        tags: Vec::new(),
        host: legacy.hostname.clone(),
        lifeboat: env!("CARGO_PKG_VERSION").to_string(),
        spec_digest: None,
        started: legacy.time,
        finished: legacy.time,
        changes_seconds: 0.0,
        whole_stack: false,
        into_other_names: false,
        interrupted: false,
        // The restores it measured, so retention keeps this record while
        // it holds a resource's newest measurement.
        resources: state
            .restores
            .iter()
            .map(|(address, measured)| ResourceRecord {
                address: address.clone(),
                repository: None,
                into: None,
                outcome: ResourceOutcome::Done {
                    snapshot: measured.snapshot.clone(),
                    files: 0,
                    bytes: measured.bytes,
                    added_bytes: 0,
                    seconds: measured.seconds,
                },
            })
            .collect(),
        forgotten: 0,
        pruned: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        // Verbatim, restore times with their own times included.
        applied: Some(legacy.settings.clone()),
        drill: None,
    }
}

/// What the runs recorded in one repository, for `plan`: the settings of
/// the newest record carrying them, each resource's newest measured
/// restore, and the newest complete restore of the whole stack. A legacy
/// `applied/` record not converted yet counts as a record. `None` when
/// there is no record at all.
pub(crate) fn applied_state_of(
    repository: &Repository,
) -> Result<Option<AppliedState>, crate::repo::RepoError> {
    let mut state = StateFromRecords::default();
    state.absorb_repository(repository)?;
    Ok(state.finish())
}

/// When each resource was last restored from `repository`, by address
/// (empty when its records do not read).
pub(crate) fn restore_times(repository: &Repository) -> BTreeMap<String, DateTime<Utc>> {
    applied_state_of(repository)
        .ok()
        .flatten()
        .map(|state| {
            state
                .restores
                .into_iter()
                .map(|(address, measured)| (address, measured.time))
                .collect()
        })
        .unwrap_or_default()
}

/// [`applied_state_of`] over every repository that exists: newest wins,
/// item by item.
pub(crate) fn applied_state(
    repositories: &[NamedRepository],
) -> Result<Option<AppliedState>, ApplyError> {
    let mut state = StateFromRecords::default();
    for named in repositories {
        if let Some(repository) = &named.repository {
            state
                .absorb_repository(repository)
                .map_err(repo_error(named))?;
        }
    }
    Ok(state.finish())
}

/// An [`AppliedState`] being assembled from records in any order.
#[derive(Default)]
struct StateFromRecords {
    any: bool,
    settings: Option<(DateTime<Utc>, crate::plan::AppliedSettings)>,
    state: AppliedState,
}

impl StateFromRecords {
    fn absorb_repository(&mut self, repository: &Repository) -> Result<(), crate::repo::RepoError> {
        if let Some(legacy) = repository.last_applied()? {
            self.absorb_applied(&legacy.settings, legacy.time);
        }
        for stored in repository.runs()?.0 {
            self.absorb(&stored.record);
        }
        Ok(())
    }

    fn absorb(&mut self, record: &RunRecord) {
        self.any = true;
        if let Some(applied) = &record.applied {
            self.absorb_applied(applied, record.finished);
        }
        if let Some(drill) = record
            .drill
            .as_ref()
            .filter(|_| record.kind == RunKind::Drill)
        {
            for resource in &drill.resources {
                self.drilled(&resource.address, record.finished, resource);
            }
        }
        // A restore into other names restored no live resource.
        if record.kind != RunKind::Restore || record.into_other_names {
            return;
        }
        let mut measured = false;
        for resource in &record.resources {
            if let ResourceOutcome::Done {
                snapshot,
                bytes,
                seconds,
                ..
            } = &resource.outcome
            {
                measured = true;
                self.restore(
                    &resource.address,
                    RestoreMeasurement {
                        seconds: *seconds,
                        bytes: *bytes,
                        snapshot: snapshot.clone(),
                        time: record.finished,
                    },
                );
            }
        }
        // A partial or failed run says nothing about how long recovering
        // the stack takes.
        if record.whole_stack && measured && record.is_complete() {
            let mut resources: Vec<String> = Vec::new();
            for resource in &record.resources {
                if !resources.contains(&resource.address) {
                    resources.push(resource.address.clone());
                }
            }
            self.stack(StackRestoreMeasurement {
                seconds: record.changes_seconds,
                resources,
                time: record.finished,
            });
        }
    }

    /// An applied value (as `apply` wrote it; anything else is ignored:
    /// records are untrusted) stored at `time`.
    fn absorb_applied(&mut self, value: &serde_json::Value, time: DateTime<Utc>) {
        self.any = true;
        if let Ok(state) = serde_json::from_value::<AppliedState>(value.clone()) {
            if let Some(settings) = state.settings
                && self.settings.as_ref().is_none_or(|(t, _)| *t < time)
            {
                self.settings = Some((time, settings));
            }
            for (address, measured) in state.restores {
                self.restore(&address, measured);
            }
            if let Some(stack) = state.stack {
                self.stack(stack);
            }
        }
    }

    fn drilled(&mut self, address: &str, time: DateTime<Utc>, resource: &DrillResource) {
        let drills = &mut self.state.drills;
        if drills.get(address).is_none_or(|d| d.time < time) {
            let measured = DrillMeasurement {
                time,
                passed: resource.passed,
                rto_seconds: resource.rto_seconds,
            };
            drills.insert(address.to_string(), measured);
        }
    }

    fn restore(&mut self, address: &str, measured: RestoreMeasurement) {
        let restores = &mut self.state.restores;
        if restores.get(address).is_none_or(|m| m.time < measured.time) {
            restores.insert(address.to_string(), measured);
        }
    }

    fn stack(&mut self, measured: StackRestoreMeasurement) {
        if self
            .state
            .stack
            .as_ref()
            .is_none_or(|s| s.time < measured.time)
        {
            self.state.stack = Some(measured);
        }
    }

    fn finish(self) -> Option<AppliedState> {
        self.any.then(|| AppliedState {
            settings: self.settings.map(|(_, settings)| settings),
            ..self.state
        })
    }
}

/// One run as `lifeboat runs` lists it: its record, and the repositories
/// that hold it (every repository the run used holds a copy).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct RunRow {
    pub repositories: Vec<String>,
    #[serde(flatten)]
    pub record: RunRecord,
}

/// What `lifeboat runs` reads: which repositories, which resource.
#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    /// Only the records of this repository.
    pub repository: Option<&'a str>,
    /// Only the runs that did something with this resource, with only its
    /// outcomes.
    pub target: Option<&'a crate::spec::Address>,
    /// The newest this many.
    pub limit: Option<usize>,
}

/// What `lifeboat runs` lists.
#[derive(Debug, Clone, Default)]
pub struct RunListing {
    /// Newest first, each run once however many repositories hold it.
    pub runs: Vec<RunRow>,
    /// The record files passed over because they do not load, with the
    /// repository that holds each.
    pub damaged: Vec<(String, crate::repo::DamagedRun)>,
}

/// The runs recorded in the repositories that exist, as `filter` says.
pub fn list_runs(
    repositories: &[NamedRepository],
    filter: &RunFilter<'_>,
) -> Result<RunListing, ApplyError> {
    super::observe::declared_repository(repositories, filter.repository)?;
    let mut rows: Vec<RunRow> = Vec::new();
    let mut damaged = Vec::new();
    for named in repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        if filter.repository.is_some_and(|only| only != named.name) {
            continue;
        }
        let (runs, bad) = repository.runs().map_err(repo_error(named))?;
        damaged.extend(bad.into_iter().map(|d| (named.name.clone(), d)));
        for stored in runs {
            let record = stored.record;
            match rows
                .iter_mut()
                .find(|row| row.record.run == record.run && row.record.kind == record.kind)
            {
                Some(row) => row.repositories.push(named.name.clone()),
                None => rows.push(RunRow {
                    repositories: vec![named.name.clone()],
                    record,
                }),
            }
        }
    }
    if let Some(target) = filter.target {
        let address = target.to_string();
        rows.retain_mut(|row| {
            row.record.resources.retain(|r| r.address == address);
            !row.record.resources.is_empty()
        });
    }
    rows.sort_by(|a, b| {
        b.record
            .finished
            .cmp(&a.record.finished)
            .then_with(|| b.record.run.cmp(&a.record.run))
    });
    if let Some(limit) = filter.limit {
        rows.truncate(limit);
    }
    Ok(RunListing {
        runs: rows,
        damaged,
    })
}
