//! The execution loop: one pass over a plan's changes in plan (graph)
//! order, handing each to its kind's handler ([`super::kinds`]) and
//! recording an outcome per change. A change whose dependency did not
//! succeed is skipped, saying why; independent changes go on.
//!
//! The run owns what is the same for every kind: opening the repositories,
//! reading a resource from the engine once however many repositories get
//! it (then copying the snapshot between repositories), quiescing its
//! service around that read as the handler asks, the events announcing
//! each copy and the outcomes with their failure class. Handlers only back
//! up into one repository or restore from one.

use super::kinds::{self, Copied, Job, KindHandler};
use super::quiesce::{self, Quieted};
use super::report::{ApplyReport, ChangeOutcome, CopyOutcome, Status};
use super::retention;
use super::{ApplyError, Event, ExpectedBytes, NamedRepository, Run};
use crate::failure::{Failure, FailureClass};
use crate::plan::{Action, AppliedState, Plan, Reason, ResourceChange};
use crate::repo::Repository;
use crate::spec::Address;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

impl Run<'_> {
    /// The failure `error` is in this run: interrupted when the run was
    /// (whatever broke first when the transfers stopped).
    fn failure(&self, error: &ApplyError) -> Failure {
        let mut failure = error.failure();
        if self.cancel.is_cancelled() {
            failure.class = FailureClass::Interrupted;
        }
        failure
    }

    /// Announces a copy (a backup into, or restore from, `repository`).
    fn copy_started(
        &self,
        change: &ResourceChange,
        action: Action,
        repository: &str,
        expected: Option<ExpectedBytes>,
    ) -> Instant {
        self.expect(change, expected);
        (self.events)(Event::ResourceStarted {
            address: change.address.to_string(),
            action,
            repository: repository.to_string(),
            expected_bytes: expected.map(|e| e.bytes),
            expected_is_estimate: expected.is_some_and(|e| e.estimate),
        });
        Instant::now()
    }

    /// The outcome of a copy [`Run::copy_started`] announced, announced too.
    fn copy_ended(
        &self,
        change: &ResourceChange,
        action: Action,
        repository: &str,
        started: Instant,
        result: Result<Copied, Failure>,
    ) -> CopyOutcome {
        let elapsed = started.elapsed();
        let address = change.address.to_string();
        let mut outcome = CopyOutcome {
            repository: repository.to_string(),
            elapsed_seconds: elapsed.as_secs_f64(),
            ..CopyOutcome::default()
        };
        match result {
            Ok(copied) => {
                (self.events)(Event::ResourceFinished {
                    address,
                    action,
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
            Err(failure) => {
                (self.events)(Event::ResourceFailed {
                    address,
                    class: failure.class,
                    error: format!("{repository}: {}", failure.message),
                });
                outcome.error = Some(failure.message);
                outcome.class = Some(failure.class);
            }
        }
        outcome
    }

    /// Runs one copy, announcing it and its result: `action` is the
    /// change's, or [`Action::Copy`] for a snapshot copied between
    /// repositories.
    async fn copy(
        &self,
        change: &ResourceChange,
        action: Action,
        repository: &str,
        expected: Option<ExpectedBytes>,
        work: impl Future<Output = Result<Copied, ApplyError>>,
    ) -> CopyOutcome {
        let started = self.copy_started(change, action, repository, expected);
        let result = work.await.map_err(|error| self.failure(&error));
        self.copy_ended(change, action, repository, started, result)
    }
}

/// Why the plan marked `change` as not possible, as a failure: none of
/// its repositories could be reached, or its own reason.
fn problem_failure(change: &ResourceChange) -> Failure {
    let unreachable: Vec<String> = change
        .reasons
        .iter()
        .filter_map(|r| match r {
            Reason::RepositoryUnreachable {
                repository,
                message,
            } => Some(format!(
                "repository.{repository} cannot be reached: {message}"
            )),
            _ => None,
        })
        .collect();
    if !unreachable.is_empty() {
        return Failure::new(FailureClass::RepositoryUnavailable, unreachable.join("; "));
    }
    let message = change
        .reasons
        .iter()
        .find_map(|r| match r {
            Reason::Problem { message, at } => Some(match at {
                Some(at) => format!("{message} ({at})"),
                None => message.clone(),
            }),
            _ => None,
        })
        .unwrap_or_else(|| "the plan marked it as not possible".to_string());
    Failure::new(FailureClass::Refused, message)
}

/// Runs the changes of `plan` with one of `actions` (and its `!` problems,
/// which count as failed), in order. Returns one outcome per change.
async fn run_changes(
    plan: &Plan,
    actions: &[Action],
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<ChangeOutcome> {
    let mut outcomes: Vec<ChangeOutcome> = Vec::new();
    // Changes that did not succeed, with why: their dependents are skipped.
    let mut not_done: BTreeMap<Address, ()> = BTreeMap::new();
    for change in plan
        .changes
        .iter()
        .filter(|c| actions.contains(&c.action) || c.action == Action::Problem)
    {
        let started = Instant::now();
        let blocked_by = change.depends_on.iter().find(|d| not_done.contains_key(*d));
        let (status, copies) = if change.action == Action::Problem {
            let Failure {
                class,
                message: error,
            } = problem_failure(change);
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
            let copies = match change.action {
                Action::Restore => restore_one(change, run, repositories).await,
                Action::Copy => copy_existing(change, run, repositories).await,
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
/// that failed become failed copies, each announced.
fn open_targets<'r>(
    change: &ResourceChange,
    names: &[String],
    run: &Run<'_>,
    repositories: &'r mut [NamedRepository],
) -> (Vec<(String, &'r Repository)>, Vec<CopyOutcome>) {
    let mut failed = Vec::new();
    for name in names {
        let result = retention::find(repositories, name)
            .and_then(|named| named.open_or_init(run.settings).map(|_| ()));
        if let Err(error) = result {
            (run.events)(Event::ResourceFailed {
                address: change.address.to_string(),
                class: error.class(),
                error: format!("{name}: {error}"),
            });
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

/// Backs the change's resource up into each repository it names, reading
/// it from the engine once: into the first repository that takes it (with
/// what the handler needs around that copy), then copied from there into
/// each other one. One outcome per repository.
async fn back_up_one(
    change: &ResourceChange,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<CopyOutcome> {
    let Some(handler) = kinds::handler(change.kind()) else {
        return unsupported(change, &change.repositories);
    };
    let (opened, mut outcomes) = open_targets(change, &change.repositories, run, repositories);
    if opened.is_empty() {
        return outcomes;
    }
    let expected = handler.expected_bytes(run, change).await;
    let read = read_once(handler, change, run, &opened, expected);
    let Quieted { copied, after } = match handler.quiet(run.spec, &change.address) {
        Some(quiet) => quiesce::around(run, change, quiet, read).await,
        None => Quieted {
            copied: Ok(read.await),
            after: None,
        },
    };
    let read = copied.unwrap_or_else(|error| ReadOnce {
        attempts: Vec::new(),
        source: Err(run.failure(&error)),
    });
    let attempted = read.attempts.len();
    let mut copies = read.attempts;
    for (name, repository) in &opened[attempted..] {
        copies.push(match &read.source {
            Ok((from, copied)) => {
                let copy = copy_into(run, change, from, repository, copied);
                let mut outcome = run
                    .copy(
                        change,
                        Action::Copy,
                        name,
                        Some(ExpectedBytes::exact(copied.bytes)),
                        copy,
                    )
                    .await;
                outcome.from = Some(opened[attempted - 1].0.clone());
                outcome
            }
            // Nothing was read: each repository misses it for the same reason.
            Err(failure) => {
                let started = run.copy_started(change, change.action, name, expected);
                run.copy_ended(change, change.action, name, started, Err(failure.clone()))
            }
        });
    }
    if let Some(after) = after {
        bringing_back_failed(run, change, &mut copies, run.failure(&after));
    }
    outcomes.extend(copies);
    // In the order of the plan's repositories, whichever failed to open.
    outcomes.sort_by_key(|o| change.repositories.iter().position(|r| *r == o.repository));
    outcomes
}

/// The copies of a resource's backup that read it from the engine: the
/// repositories tried in turn until one took it, and that one's name and
/// what it stored (or why nothing was stored).
struct ReadOnce<'r> {
    attempts: Vec<CopyOutcome>,
    source: Result<(&'r Repository, Copied), Failure>,
}

/// Backs the resource up into the first of `opened` that takes it. A
/// repository that fails for its own reasons (locked, full, damaged) does
/// not stop the others: the next one gets the read.
async fn read_once<'r>(
    handler: &dyn KindHandler,
    change: &ResourceChange,
    run: &Run<'_>,
    opened: &[(String, &'r Repository)],
    expected: Option<ExpectedBytes>,
) -> ReadOnce<'r> {
    let mut attempts = Vec::new();
    let mut failure = None;
    for (name, repository) in opened {
        let started = run.copy_started(change, change.action, name, expected);
        let job = Job {
            run,
            change,
            repository,
        };
        match handler.back_up(job).await {
            Ok(copied) => {
                attempts.push(run.copy_ended(
                    change,
                    change.action,
                    name,
                    started,
                    Ok(copied.clone()),
                ));
                return ReadOnce {
                    attempts,
                    source: Ok((repository, copied)),
                };
            }
            Err(error) => {
                let fault = run.failure(&error);
                attempts.push(run.copy_ended(
                    change,
                    change.action,
                    name,
                    started,
                    Err(fault.clone()),
                ));
                failure = Some(fault);
                if !is_repository_fault(&error) || run.cancel.is_cancelled() {
                    break;
                }
            }
        }
    }
    let failure = failure.unwrap_or_else(|| {
        Failure::new(
            FailureClass::RepositoryUnavailable,
            "none of its repositories could be opened",
        )
    });
    ReadOnce {
        attempts,
        source: Err(failure),
    }
}

/// Whether a failed backup copy failed because of its repository (another
/// repository may take the copy), not because of what it read.
fn is_repository_fault(error: &ApplyError) -> bool {
    let source = match error {
        ApplyError::Store(source) | ApplyError::Repository { source, .. } => source,
        _ => return false,
    };
    !matches!(**source, crate::repo::RepoError::Source(_))
        && matches!(
            source.class(),
            FailureClass::RepositoryUnavailable | FailureClass::Transient | FailureClass::Integrity
        )
}

/// Gets the backup `copied` (stored in `from`) into `to` as well, from
/// `from` alone: the engine is not read again.
async fn copy_into(
    run: &Run<'_>,
    change: &ResourceChange,
    from: &Repository,
    to: &Repository,
    copied: &Copied,
) -> Result<Copied, ApplyError> {
    let progress = run.progress(change);
    let stored = tokio::task::block_in_place(|| {
        let snapshot = from.find_snapshot(&copied.snapshot)?;
        from.copy_snapshot(to, &snapshot, &progress)
    })?;
    let summary = &stored.snapshot.summary;
    Ok(Copied {
        snapshot: stored.snapshot.id.to_string(),
        // Counted as the read counted them (a dump's are not files).
        files: copied.files,
        bytes: summary.bytes,
        // Nothing read from the engine for this one.
        read_bytes: 0,
        added_bytes: summary.added_bytes,
        notes: copied.notes.clone(),
    })
}

/// Copies each existing snapshot the change's `copies` name from its
/// repository into the one lacking it: the engine is not read. One outcome
/// per copy (a repository that cannot be opened fails the copies that need
/// it, not the others).
async fn copy_existing(
    change: &ResourceChange,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> Vec<CopyOutcome> {
    let mut outcomes = Vec::new();
    for planned in &change.copies {
        // The new snapshot's copies are its backup's (`back_up_one`).
        let Some(snapshot) = &planned.snapshot else {
            continue;
        };
        let names = [planned.from.clone(), planned.to.clone()];
        let (opened, failed) = open_targets(change, &names, run, repositories);
        let find = |name: &str| opened.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
        let (Some(from), Some(to)) = (find(&planned.from), find(&planned.to)) else {
            outcomes.extend(failed.into_iter().map(|failure| CopyOutcome {
                repository: planned.to.clone(),
                from: Some(planned.from.clone()),
                error: Some(format!(
                    "{}: {}",
                    failure.repository,
                    failure.error.unwrap_or_default()
                )),
                ..failure
            }));
            continue;
        };
        let held = Copied {
            snapshot: snapshot.id.clone(),
            files: snapshot.files,
            bytes: snapshot.bytes,
            read_bytes: 0,
            added_bytes: 0,
            notes: Vec::new(),
        };
        let copy = copy_into(run, change, from, to, &held);
        let mut outcome = run
            .copy(
                change,
                Action::Copy,
                &planned.to,
                Some(ExpectedBytes::exact(snapshot.bytes)),
                copy,
            )
            .await;
        outcome.from = Some(planned.from.clone());
        outcomes.push(outcome);
    }
    outcomes
}

/// The service could not be brought back after the copy (a restart or a
/// `post` hook failed): the change fails, and each of its `copies` says
/// what it stored.
fn bringing_back_failed(
    run: &Run<'_>,
    change: &ResourceChange,
    copies: &mut [CopyOutcome],
    failure: Failure,
) {
    (run.events)(Event::ResourceFailed {
        address: change.address.to_string(),
        class: failure.class,
        error: failure.message.clone(),
    });
    let message = failure.message;
    for outcome in copies {
        outcome.class = outcome.class.or(Some(failure.class));
        outcome.error = Some(match outcome.error.take() {
            Some(error) => format!("{error}; {message}"),
            None => format!(
                "snapshot {} is stored, but {message}",
                crate::plan::short_id(outcome.snapshot.as_deref().unwrap_or_default())
            ),
        });
    }
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
    let Some(handler) = kinds::handler(change.kind()) else {
        return unsupported(change, names);
    };
    let (opened, mut outcomes) = open_targets(change, names, run, repositories);
    for (name, repository) in opened {
        let restore = handler.restore(Job {
            run,
            change,
            repository,
        });
        outcomes.push(
            run.copy(
                change,
                change.action,
                &name,
                Some(ExpectedBytes::exact(snapshot.bytes)),
                restore,
            )
            .await,
        );
    }
    outcomes
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
/// that lost snapshots, then records the run (with the applied settings,
/// `~`, when everything succeeded).
pub async fn run_backup(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    applied: AppliedState,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    super::notices::notify_start(run, &mut report);
    kinds::prepare_backups(plan, run, repositories).await;
    report.changes = run_changes(plan, &[Action::BackUp, Action::Copy], run, repositories).await;
    retention::forget_and_prune(
        plan,
        repositories,
        run.settings,
        true,
        &mut report,
        run.events,
    );
    // Before the record, so that a notification not delivered is in it.
    let kind = crate::repo::RunKind::Backup;
    let id = Some(run.run_id.as_str());
    super::notices::notify_end_of_run(plan, run.spec, id, kind, &mut report, run.events);
    super::records::record_run(plan, run, repositories, &mut report, kind, Some(&applied));
    report
}

/// Restores every `<` resource of the plan from its snapshot, then records
/// the run: how long each took, and with `whole_stack` (a restore of
/// everything the spec names) how long all of them took: what `rto` goals
/// are held against.
pub async fn run_restore(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    whole_stack: bool,
) -> ApplyReport {
    let mut report = restore_changes(plan, run, repositories, whole_stack).await;
    let kind = crate::repo::RunKind::Restore;
    // Before the record, so that a notification not delivered is in it.
    let id = Some(run.run_id.as_str());
    super::notices::notify_end_of_run(plan, run.spec, id, kind, &mut report, run.events);
    super::records::record_run(plan, run, repositories, &mut report, kind, None);
    report
}

/// Restores every `<` resource of the plan, recording nothing (a drill
/// records once its checks are done).
pub(crate) async fn restore_changes(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    whole_stack: bool,
) -> ApplyReport {
    let started = Instant::now();
    // A restore into other names restores no live resource: its record
    // measures none (nor the stack).
    let into_other_names = plan.changes.iter().any(|c| c.into.is_some());
    let mut report = ApplyReport {
        changes: run_changes(plan, &[Action::Restore], run, repositories).await,
        whole_stack: whole_stack && !into_other_names,
        ..ApplyReport::default()
    };
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report
}
