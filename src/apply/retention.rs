//! After the backups: forgetting what retention lets go and pruning the
//! data no snapshot needs any more (the run's record: `records`).

use super::context::Events;
use super::report::{ApplyReport, PruneOutcome};
use super::{ApplyError, Event, NamedRepository, OpenSettings};
use crate::plan::{Action, Plan, Reason};
use crate::repo::{PrunePlan, SnapshotId};
use std::collections::BTreeMap;

pub(crate) fn find<'a>(
    repositories: &'a mut [NamedRepository],
    name: &str,
) -> Result<&'a mut NamedRepository, ApplyError> {
    repositories
        .iter_mut()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            ApplyError::ResourceMissing(format!(
                "the plan names repository.{name}, which the spec no longer declares"
            ))
        })
}

pub(crate) fn repo_error(
    named: &NamedRepository,
) -> impl Fn(crate::repo::RepoError) -> ApplyError + '_ {
    move |source| named.error(source)
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

pub(crate) fn forget_and_prune(
    plan: &Plan,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    prune: bool,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    forget_snapshots(plan, repositories, settings, report, events);
    if prune {
        prune_after_forget(repositories, settings, report, events);
    }
}

/// Prunes each repository that lost snapshots in this run.
pub fn prune_after_forget(
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    for name in std::mem::take(&mut report.forgot_in) {
        let Ok(named) = find(repositories, &name) else {
            continue;
        };
        let Ok(repository) = named.open_or_init(settings) else {
            continue;
        };
        events(Event::ResourceStep {
            address: format!("repository.{name}"),
            message: "pruning data no snapshot needs any more".to_string(),
        });
        match tokio::task::block_in_place(|| repository.prune()) {
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

/// The prune each repository would see once the plan's `-` changes and
/// the `damaged` snapshot files are forgotten (`forget --prune --dry-run`),
/// as (repository, location, plan). Changes nothing.
pub fn plan_prunes_after_forget(
    plan: &Plan,
    damaged: &[crate::plan::SnapshotRef],
    repositories: &[NamedRepository],
) -> Result<Vec<(String, String, PrunePlan)>, ApplyError> {
    let mut forgetting: BTreeMap<&str, Vec<SnapshotId>> = BTreeMap::new();
    let planned = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Forget)
        .filter_map(|c| Some((c.repositories.first()?, &c.forget)))
        .flat_map(|(repository, snapshots)| snapshots.iter().map(move |s| (repository, s)));
    let damaged = damaged.iter().map(|s| (&s.repository, s));
    for (repository, snapshot) in planned.chain(damaged) {
        forgetting
            .entry(repository)
            .or_default()
            .push(SnapshotId(snapshot.id.clone()));
    }
    let mut plans = Vec::new();
    for named in repositories {
        let (Some(ids), Some(repository)) =
            (forgetting.get(named.name.as_str()), &named.repository)
        else {
            continue;
        };
        let plan = tokio::task::block_in_place(|| repository.plan_prune_forgetting(ids))
            .map_err(repo_error(named))?;
        plans.push((named.name.clone(), named.location.clone(), plan));
    }
    Ok(plans)
}

/// Forgets damaged snapshot files (named by id: their content does not
/// load, so no plan change can name their resource).
pub fn forget_damaged(
    damaged: &[crate::plan::SnapshotRef],
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    for snapshot in damaged {
        let result = find(repositories, &snapshot.repository).and_then(|named| {
            let repository = named.open_or_init(settings)?;
            tokio::task::block_in_place(|| repository.forget(&[SnapshotId(snapshot.id.clone())]))
                .map_err(repo_error(named))
        });
        match result {
            Ok(()) => {
                report.forgotten += 1;
                note_forgotten_in(report, &snapshot.repository);
                events(Event::Forgotten {
                    address: "(damaged snapshot)".to_string(),
                    repository: snapshot.repository.clone(),
                    snapshots: vec![snapshot.id.clone()],
                });
            }
            Err(error) => fail(report, events, &snapshot.repository, error),
        }
    }
}

fn note_forgotten_in(report: &mut ApplyReport, repository: &str) {
    if !report.forgot_in.iter().any(|r| r == repository) {
        report.forgot_in.push(repository.to_string());
    }
}

pub(crate) fn fail(
    report: &mut ApplyReport,
    events: Events<'_>,
    repository: &str,
    error: ApplyError,
) {
    let message = error.to_string();
    events(Event::ResourceFailed {
        address: format!("repository.{repository}"),
        class: error.class(),
        error: message.clone(),
    });
    report.errors.push(message);
}

/// Runs the `-` changes, noting the repositories that lost snapshots. A
/// resource whose backup failed in this run keeps its snapshots: the plan
/// counted the new snapshot among those retention keeps.
fn forget_snapshots(
    plan: &Plan,
    repositories: &mut [NamedRepository],
    settings: &OpenSettings,
    report: &mut ApplyReport,
    events: Events<'_>,
) {
    for change in plan.changes.iter().filter(|c| c.action == Action::Forget) {
        let Some(repository_name) = change.repositories.first() else {
            continue;
        };
        let counted_new = change.reasons.iter().any(|r| {
            matches!(
                r,
                Reason::Retention {
                    counting_new: true,
                    ..
                }
            )
        });
        let stored = report.changes.iter().any(|o| {
            o.address == change.address
                && o.copies
                    .iter()
                    .any(|c| &c.repository == repository_name && c.error.is_none())
        });
        if counted_new && !stored {
            events(Event::ResourceStep {
                address: change.address.to_string(),
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
                note_forgotten_in(report, repository_name);
                events(Event::Forgotten {
                    address: change.address.to_string(),
                    repository: repository_name.clone(),
                    snapshots: change.forget.iter().map(|s| s.id.clone()).collect(),
                });
            }
            Err(error) => {
                let message = error.to_string();
                events(Event::ResourceFailed {
                    address: change.address.to_string(),
                    class: error.class(),
                    error: message.clone(),
                });
                report.errors.push(format!("{}: {message}", change.address));
            }
        }
    }
}
