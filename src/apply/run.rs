//! The execution loop: one pass over a plan's changes in plan (graph)
//! order, handing each to its kind's handler ([`super::kinds`]) and
//! recording an outcome per change. A change whose dependency did not
//! succeed is skipped, saying why; independent changes go on.

use super::kinds::{self, Copied};
use super::report::{ApplyReport, ChangeOutcome, CopyOutcome, Status};
use super::retention;
use super::{ApplyError, Engines, Event, NamedRepository, OpenSettings, VolumeAccess};
use crate::plan::{
    Action, AppliedState, Plan, Reason, ResourceChange, RestoreMeasurement, StackRestoreMeasurement,
};
use crate::repo::{Progress, Repository, SnapshotSource};
use crate::spec::{Address, Consistency, Resource, Spec};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

/// Tag of the snapshot `restore --replace` takes of a volume's content before
/// replacing it, so a replace never loses data.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

pub(crate) type Events<'a> = &'a (dyn Fn(Event) + Sync);

/// What every change of one apply run shares.
pub struct Run<'a> {
    pub spec: &'a Spec,
    pub engines: &'a Engines,
    pub settings: &'a OpenSettings,
    pub access: VolumeAccess,
    /// Digest of the spec, stored in each snapshot.
    pub spec_digest: &'a str,
    /// Stored in every snapshot this run writes (one moment of the host).
    pub run_id: String,
    pub events: Events<'a>,
    /// Fired on SIGINT/SIGTERM: transfers with the engine stop at once, so
    /// the engine lets go of the helper containers the cleanup removes.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Stops and pauses of services around copies, and their journal.
    pub quiescer: &'a super::Quiescer,
    /// The targets restores are writing, and their journal.
    pub restores: &'a super::RestoreJournal,
}

/// A new run id: when it started, readable, and unique.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        hex::encode(rand::random::<[u8; 4]>())
    )
}

impl Run<'_> {
    /// The snapshot source of `change`'s resource, as this run records it.
    pub(crate) fn source(
        &self,
        change: &ResourceChange,
        name: &str,
        tags: Vec<String>,
    ) -> SnapshotSource {
        SnapshotSource {
            resource: change.address.to_string(),
            kind: change.kind().keyword().to_string(),
            name: name.to_string(),
            tags,
            spec_digest: Some(self.spec_digest.to_string()),
            run: Some(self.run_id.clone()),
            version: None,
            consistency: self.consistency_of(change).map(|c| c.keyword().to_string()),
        }
    }

    /// The consistency a backup copies the change's volume or bind under
    /// (what the spec asks: quiescing happens around every backup copy).
    /// `None` for other kinds, and for the safety copies restores take,
    /// which quiesce nothing.
    fn consistency_of(&self, change: &ResourceChange) -> Option<Consistency> {
        if change.action != Action::BackUp {
            return None;
        }
        match self.spec.resource(&change.address)? {
            Resource::Volume(volume) => Some(volume.consistency),
            Resource::Bind(bind) => Some(bind.consistency),
            Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => None,
        }
    }

    pub(crate) fn step(&self, change: &ResourceChange, message: String) {
        (self.events)(Event::ResourceStep {
            address: change.address.to_string(),
            message,
        })
    }

    /// Progress as events, at most five a second: enough for a bar, few
    /// enough for a JSON event stream of a volume with a million files.
    pub(crate) fn progress(&self, change: &ResourceChange) -> impl Fn(Progress) + Sync + '_ {
        let address = change.address.to_string();
        let last = std::sync::Mutex::new(Instant::now());
        move |progress: Progress| {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < std::time::Duration::from_millis(200) {
                return;
            }
            *last = Instant::now();
            (self.events)(Event::Progress {
                address: address.clone(),
                files: progress.files,
                bytes: progress.bytes,
            })
        }
    }

    /// A restore copy of `change`'s snapshot from `repository`: [`Run::copy`]
    /// expecting the snapshot's size.
    pub(crate) async fn restore_copy(
        &self,
        change: &ResourceChange,
        repository: &str,
        work: impl Future<Output = Result<Copied, ApplyError>>,
    ) -> CopyOutcome {
        let expected = change.snapshot.as_ref().map(|s| s.bytes);
        self.copy(change, repository, expected, work).await
    }

    /// Runs one copy (a backup into, or restore from, `repository`),
    /// announcing it and its result as events.
    pub(crate) async fn copy(
        &self,
        change: &ResourceChange,
        repository: &str,
        expected_bytes: Option<u64>,
        work: impl Future<Output = Result<Copied, ApplyError>>,
    ) -> CopyOutcome {
        let started = Instant::now();
        let address = change.address.to_string();
        (self.events)(Event::ResourceStarted {
            address: address.clone(),
            action: change.action,
            repository: repository.to_string(),
            expected_bytes,
        });
        let result = work.await;
        let elapsed = started.elapsed();
        let mut outcome = CopyOutcome {
            repository: repository.to_string(),
            elapsed_seconds: elapsed.as_secs_f64(),
            ..CopyOutcome::default()
        };
        match result {
            Ok(copied) => {
                (self.events)(Event::ResourceFinished {
                    address,
                    action: change.action,
                    repository: repository.to_string(),
                    snapshot: copied.snapshot.clone(),
                    files: copied.files,
                    bytes: copied.bytes,
                    read_bytes: copied.read_bytes,
                    added_bytes: copied.added_bytes,
                    notes: copied.notes.clone(),
                    elapsed,
                });
                outcome.snapshot = Some(copied.snapshot);
                outcome.files = copied.files;
                outcome.bytes = copied.bytes;
                outcome.read_bytes = copied.read_bytes;
                outcome.added_bytes = copied.added_bytes;
                outcome.notes = copied.notes;
            }
            Err(error) => {
                let message = error.to_string();
                (self.events)(Event::ResourceFailed {
                    address,
                    class: error.class(),
                    error: format!("{repository}: {message}"),
                });
                outcome.error = Some(message);
                outcome.class = Some(error.class());
            }
        }
        outcome
    }
}

fn problem_message(change: &ResourceChange) -> String {
    change
        .reasons
        .iter()
        .find_map(|r| match r {
            Reason::Problem { message, at } => Some(match at {
                Some(at) => format!("{message} ({at})"),
                None => message.clone(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| "the plan marked it as not possible".to_string())
}

/// Runs the changes of `plan` with action `action` (and its `!` problems,
/// which count as failed), in order. Returns one outcome per change.
async fn run_changes(
    plan: &Plan,
    action: Action,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<ChangeOutcome> {
    let mut outcomes: Vec<ChangeOutcome> = Vec::new();
    // Changes that did not succeed, with why: their dependents are skipped.
    let mut not_done: BTreeMap<Address, ()> = BTreeMap::new();
    for change in plan
        .changes
        .iter()
        .filter(|c| c.action == action || c.action == Action::Problem)
    {
        let started = Instant::now();
        let blocked_by = change.depends_on.iter().find(|d| not_done.contains_key(*d));
        let (status, copies) = if change.action == Action::Problem {
            let error = problem_message(change);
            let class = crate::failure::FailureClass::Refused;
            (run.events)(Event::ResourceFailed {
                address: change.address.to_string(),
                class,
                error: error.clone(),
            });
            (Status::Failed { class, error }, Vec::new())
        } else if run.cancel.is_cancelled() {
            let because = "the run was interrupted".to_string();
            (Status::Skipped { because }, Vec::new())
        } else if let Some(dependency) = blocked_by {
            let because = format!("{dependency} did not succeed");
            (run.events)(Event::ResourceSkipped {
                address: change.address.to_string(),
                because: because.clone(),
            });
            (Status::Skipped { because }, Vec::new())
        } else {
            let copies = match action {
                Action::Restore => restore_one(change, run, repositories).await,
                _ => back_up_one(change, run, repositories).await,
            };
            let errors: Vec<String> = copies
                .iter()
                .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.repository)))
                .collect();
            let class = copies.iter().find_map(|c| c.class);
            let status = if errors.is_empty() {
                Status::Succeeded
            } else {
                Status::Failed {
                    class: class.unwrap_or(crate::failure::FailureClass::Other),
                    error: errors.join("; "),
                }
            };
            (status, copies)
        };
        if status != Status::Succeeded {
            not_done.insert(change.address.clone(), ());
        }
        outcomes.push(ChangeOutcome {
            address: change.address.clone(),
            action: change.action,
            status,
            copies,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        });
    }
    outcomes
}

/// Opens (creating on first use) each repository `names` lists; the ones
/// that failed become failed copies.
fn open_targets<'r>(
    names: &[String],
    run: &Run<'_>,
    repositories: &'r mut [NamedRepository],
) -> (Vec<(String, &'r Repository)>, Vec<CopyOutcome>) {
    let mut failed = Vec::new();
    for name in names {
        let result = retention::find(repositories, name)
            .and_then(|named| named.open_or_init(run.settings).map(|_| ()));
        if let Err(error) = result {
            failed.push(CopyOutcome {
                repository: name.clone(),
                error: Some(error.to_string()),
                class: Some(error.class()),
                ..CopyOutcome::default()
            });
        }
    }
    let opened = repositories
        .iter()
        .filter(|named| names.contains(&named.name))
        .filter_map(|named| Some((named.name.clone(), named.repository.as_ref()?)))
        .collect();
    (opened, failed)
}

async fn back_up_one(
    change: &ResourceChange,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<CopyOutcome> {
    let (opened, mut copies) = open_targets(&change.repositories, run, repositories);
    let Some(handler) = kinds::handler(change.kind()) else {
        return unsupported(change, &change.repositories);
    };
    copies.extend(handler.back_up(run, change, &opened).await);
    copies
}

async fn restore_one(
    change: &ResourceChange,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<CopyOutcome> {
    let Some(snapshot) = &change.snapshot else {
        return Vec::new();
    };
    let names = std::slice::from_ref(&snapshot.repository);
    let (opened, mut copies) = open_targets(names, run, repositories);
    let Some(handler) = kinds::handler(change.kind()) else {
        return unsupported(change, names);
    };
    for (name, repository) in opened {
        copies.push(handler.restore(run, change, &name, repository).await);
    }
    copies
}

fn unsupported(change: &ResourceChange, repositories: &[String]) -> Vec<CopyOutcome> {
    repositories
        .iter()
        .map(|repository| CopyOutcome {
            repository: repository.clone(),
            error: Some(format!(
                "this version of lifeboat cannot act on {} resources",
                change.kind().keyword()
            )),
            class: Some(crate::failure::FailureClass::Unsupported),
            ..CopyOutcome::default()
        })
        .collect()
}

/// Backs up every `+` resource of the plan to each repository it names,
/// then forgets what retention lets go (`-`) and prunes the repositories
/// that lost snapshots, then records the applied settings (`~`) when
/// everything succeeded.
pub async fn run_backup(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    applied: AppliedState,
) -> ApplyReport {
    let mut report = ApplyReport {
        changes: run_changes(plan, Action::BackUp, run, repositories).await,
        ..ApplyReport::default()
    };
    retention::forget_and_prune(
        plan,
        repositories,
        run.settings,
        true,
        &mut report,
        run.events,
    );
    if report.failed() == 0 {
        retention::record_state(repositories, &applied, &mut report, run.events);
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

/// Restores every `<` resource of the plan from its snapshot, then records
/// how long each took, and with `whole_stack` (a restore of everything the
/// spec names) how long all of them took: what `rto` goals are held against.
pub async fn run_restore(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    whole_stack: bool,
) -> ApplyReport {
    let started = Instant::now();
    // A restore into other names restores no live resource: it records no
    // measurement of one (nor of the stack), and leaves the live
    // resources' records as they are.
    let into_other_names = plan.changes.iter().any(|c| c.into.is_some());
    let mut report = ApplyReport {
        changes: run_changes(plan, Action::Restore, run, repositories).await,
        whole_stack: whole_stack && !into_other_names,
        ..ApplyReport::default()
    };
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    if into_other_names {
        return report;
    }
    let mut state = match super::last_applied_state(repositories) {
        Ok(state) => state.unwrap_or_default(),
        Err(error) => {
            report.errors.push(error.to_string());
            return report;
        }
    };
    let mut measured = false;
    for outcome in report
        .changes
        .iter()
        .filter(|c| c.status == Status::Succeeded)
    {
        let Some(copy) = outcome.copies.first() else {
            continue;
        };
        let Some(snapshot) = &copy.snapshot else {
            continue;
        };
        state.restores.insert(
            outcome.address.to_string(),
            RestoreMeasurement {
                seconds: outcome.elapsed_seconds,
                bytes: copy.bytes,
                snapshot: snapshot.clone(),
                time: chrono::Utc::now(),
            },
        );
        measured = true;
    }
    // A partial or failed run says nothing about how long recovering the
    // stack takes.
    if whole_stack && measured && report.is_complete() {
        state.stack = Some(StackRestoreMeasurement {
            seconds: report.elapsed_seconds,
            resources: report
                .changes
                .iter()
                .map(|c| c.address.to_string())
                .collect(),
            time: chrono::Utc::now(),
        });
    }
    if measured {
        retention::record_state(repositories, &state, &mut report, run.events);
    }
    report
}
