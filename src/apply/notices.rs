//! The notifications of an apply run: healthchecks checks pinged as it
//! starts, then what it did (success or failure) and the resources its plan
//! found past their RPO sent to the spec's `notify` blocks. A receiver that
//! is down becomes a warning of the run (an event, and the run record),
//! never a failure. Sending is `notify`'s; this module only says what.

use super::report::{ApplyReport, Status};
use super::{Event, Run};
use crate::notify::{self, Delivery, Notice, NoticeResource};
use crate::plan::{Action, Plan};
use crate::spec::{NotifyEvent, Spec};

/// Pings the healthchecks checks' `/start`.
pub(super) fn notify_start(run: &Run<'_>, report: &mut ApplyReport) {
    if run.spec.notifications.is_empty() {
        return;
    }
    let deliveries = tokio::task::block_in_place(|| notify::send_start(run.spec));
    report_deliveries(deliveries, report, run.events);
}

/// Sends the blocks that want them a notice of the resources `plan` found
/// late, and one of how the run ended (success: everything done, also
/// when nothing was due; failure otherwise). `run`: the run's id.
pub fn notify_end_of_run(
    plan: &Plan,
    spec: &Spec,
    run: Option<&str>,
    report: &mut ApplyReport,
    events: &(dyn Fn(Event) + Sync),
) {
    if spec.notifications.is_empty() {
        return;
    }
    let late = late_resources(plan, spec);
    let mut notices = Vec::new();
    if !late.is_empty() && notify::wanted(spec, NotifyEvent::Late) {
        notices.push(Notice::late(late, run));
    }
    let ended = if report.is_complete() {
        NotifyEvent::Success
    } else {
        NotifyEvent::Failure
    };
    if notify::wanted(spec, ended) {
        notices.push(run_notice(ended, report, run));
    }
    let deliveries: Vec<Delivery> = tokio::task::block_in_place(|| {
        notices
            .iter()
            .flat_map(|notice| notify::send(spec, notice))
            .collect()
    });
    report_deliveries(deliveries, report, events);
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

/// A notice of how an apply ended.
fn run_notice(event: NotifyEvent, report: &ApplyReport, run: Option<&str>) -> Notice {
    let resources: Vec<NoticeResource> = report
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
        .collect();
    let host = crate::host::hostname();
    let text = match event {
        NotifyEvent::Success if resources.is_empty() => {
            format!("lifeboat on {host}: apply done, everything was up to date")
        }
        NotifyEvent::Success => format!(
            "lifeboat on {host}: apply done, {} backed up",
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
            lines.extend(report.errors.iter().cloned());
            format!("lifeboat on {host}: apply FAILED\n{}", lines.join("\n"))
        }
    };
    Notice::new(event, text, run.map(str::to_string), resources)
}
