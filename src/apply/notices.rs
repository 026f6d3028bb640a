//! The notifications of a run: for a backup, healthchecks checks pinged as
//! it starts, then what it did (success or failure) and the resources its
//! plan found past their RPO sent to the spec's `notify` blocks; for a
//! restore or a drill, how it ended (a drill succeeds when it passed). A receiver that
//! is down becomes a warning of the run (an event, and the run record),
//! never a failure. Sending is `notify`'s; this module only says what.

use super::report::{ApplyReport, Status};
use super::{Event, Run};
use crate::notify::{self, Delivery, Notice, NoticeResource};
use crate::plan::{Action, Plan};
use crate::repo::{DrillRecord, RunKind};
use crate::spec::{NotifyEvent, Spec};

/// Pings the healthchecks checks' `/start`.
pub(super) fn notify_start(run: &Run<'_>, report: &mut ApplyReport) {
    if run.spec.notifications.is_empty() {
        return;
    }
    let deliveries = tokio::task::block_in_place(|| notify::send_start(run.spec));
    report_deliveries(deliveries, report, run.events);
}

/// Sends the blocks that want them a notice of how a backup or restore
/// ended (success: everything done, also when nothing was due; failure
/// otherwise) and, for a backup, one of the resources `plan` found late.
/// `run`: the run's id.
pub fn notify_end_of_run(
    plan: &Plan,
    spec: &Spec,
    run: Option<&str>,
    kind: RunKind,
    report: &mut ApplyReport,
    events: &(dyn Fn(Event) + Sync),
) {
    if spec.notifications.is_empty() {
        return;
    }
    // A restore plan's snapshots are what it restores, not lateness.
    let late = match kind {
        RunKind::Backup => late_resources(plan, spec),
        _ => Vec::new(),
    };
    let ended = if report.is_complete() {
        NotifyEvent::Success
    } else {
        NotifyEvent::Failure
    };
    let resources = outcome_resources(ended, report);
    let ending = RunEnding {
        kind,
        event: ended,
        run,
        resources,
    };
    let deliveries = send_end(spec, ending, late, &report.errors);
    report_deliveries(deliveries, report, events);
}

/// Sends the blocks that want them a notice of how a drill ended: a
/// success when it `passed`, else a failure naming the resources that
/// failed and the checks they failed.
pub(super) fn notify_end_of_drill(
    spec: &Spec,
    run: &str,
    drill: &DrillRecord,
    report: &mut ApplyReport,
    events: &(dyn Fn(Event) + Sync),
) {
    if spec.notifications.is_empty() {
        return;
    }
    let event = if drill.passed {
        NotifyEvent::Success
    } else {
        NotifyEvent::Failure
    };
    let resources = drill
        .resources
        .iter()
        .filter(|r| event == NotifyEvent::Success || !r.passed)
        .map(|r| {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            NoticeResource {
                address: r.address.clone(),
                status: if r.passed { "passed" } else { "failed" }.to_string(),
                class: None,
                message: (!failed.is_empty()).then(|| failed.join("; ")),
                age_seconds: None,
                rpo_seconds: None,
            }
        })
        .collect();
    let ending = RunEnding {
        kind: RunKind::Drill,
        event,
        run: Some(run),
        resources,
    };
    let errors: Vec<String> = report
        .errors
        .iter()
        .chain(&drill.cleanup_errors)
        .cloned()
        .collect();
    let deliveries = send_end(spec, ending, Vec::new(), &errors);
    report_deliveries(deliveries, report, events);
}

/// How a run ended, as its notice says it.
struct RunEnding<'r> {
    kind: RunKind,
    event: NotifyEvent,
    run: Option<&'r str>,
    resources: Vec<NoticeResource>,
}

/// Sends the notice of `ending` (and one of `late` resources) to the
/// blocks that want them; `errors`: the run's own failures.
fn send_end(
    spec: &Spec,
    ending: RunEnding<'_>,
    late: Vec<NoticeResource>,
    errors: &[String],
) -> Vec<Delivery> {
    let mut notices = Vec::new();
    if !late.is_empty() && notify::wanted(spec, NotifyEvent::Late) {
        notices.push(Notice::late(late, ending.run));
    }
    if notify::wanted(spec, ending.event) {
        notices.push(run_notice(ending, errors));
    }
    tokio::task::block_in_place(|| {
        notices
            .iter()
            .flat_map(|notice| notify::send(spec, notice))
            .collect()
    })
}

fn report_deliveries(
    deliveries: Vec<Delivery>,
    report: &mut ApplyReport,
    events: &(dyn Fn(Event) + Sync),
) {
    for delivery in deliveries {
        if delivery.error.is_some() {
            report.warnings.push(delivery.to_string());
        }
        events(Event::Notified { delivery });
    }
}

/// The resources of a backup plan whose newest copy (the oldest of them
/// across repositories) is older than their RPO, whether the plan backs
/// them up or cannot (`!`), with that age.
fn late_resources(plan: &Plan, spec: &Spec) -> Vec<NoticeResource> {
    let now = chrono::Utc::now();
    plan.changes
        .iter()
        .filter(|change| matches!(change.action, Action::BackUp | Action::Problem))
        .filter_map(|change| {
            let age = (now - change.snapshot.as_ref()?.time).to_std().ok()?;
            let rpo = crate::plan::rpo_of(spec, &change.address);
            (age > rpo).then(|| NoticeResource {
                address: change.address.to_string(),
                status: "late".to_string(),
                class: None,
                message: None,
                age_seconds: Some(age.as_secs()),
                rpo_seconds: Some(rpo.as_secs()),
            })
        })
        .collect()
}

/// The resources of a run's outcomes a notice of `event` names: every
/// one for a success, those that did not succeed for a failure.
fn outcome_resources(event: NotifyEvent, report: &ApplyReport) -> Vec<NoticeResource> {
    report
        .changes
        .iter()
        .filter(|change| match event {
            NotifyEvent::Success => true,
            _ => !matches!(change.status, Status::Succeeded),
        })
        .map(|change| {
            let (status, class, message) = match &change.status {
                Status::Succeeded => ("done", None, None),
                Status::Failed { class, error } => ("failed", Some(*class), Some(error.clone())),
                Status::Skipped { because } => ("skipped", None, Some(because.clone())),
            };
            NoticeResource {
                address: change.address.to_string(),
                status: status.to_string(),
                class,
                message,
                age_seconds: None,
                rpo_seconds: None,
            }
        })
        .collect()
}

/// A notice of how a run ended; `errors`: the run's own failures, beside
/// its resources'.
fn run_notice(ending: RunEnding<'_>, errors: &[String]) -> Notice {
    let RunEnding {
        kind,
        event,
        run,
        resources,
    } = ending;
    let host = crate::host::hostname();
    let (what, done, verb) = match kind {
        RunKind::Restore => ("restore", "done", "restored"),
        RunKind::Drill => ("drill", "PASSED", "restored and checked"),
        _ => ("apply", "done", "backed up"),
    };
    let text = match event {
        NotifyEvent::Success if resources.is_empty() => {
            format!("lifeboat on {host}: {what} {done}, everything was up to date")
        }
        NotifyEvent::Success => format!(
            "lifeboat on {host}: {what} {done}, {} {verb}",
            match resources.len() {
                1 => "1 resource".to_string(),
                n => format!("{n} resources"),
            }
        ),
        _ => {
            let mut lines: Vec<String> = resources
                .iter()
                .map(|r| {
                    let class = r.class.map(|c| format!(" ({c})")).unwrap_or_default();
                    format!(
                        "{} {}{class}: {}",
                        r.address,
                        r.status,
                        r.message.as_deref().unwrap_or("")
                    )
                })
                .collect();
            lines.extend(errors.iter().cloned());
            format!("lifeboat on {host}: {what} FAILED\n{}", lines.join("\n"))
        }
    };
    let mut notice = Notice::new(event, text, run.map(str::to_string), resources);
    notice.kind = Some(kind);
    notice
}
