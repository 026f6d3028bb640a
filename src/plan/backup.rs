//! Backup plans: which resources are due, and why; what retention forgets;
//! which settings changed since the last apply.

use super::retention;
use super::{
    Action, AppliedSettings, Basis, DEFAULT_RPO, Plan, PlanKind, ResourceChange, SnapshotRef,
    format_age,
};
use crate::spec::{Address, ResourceKind, Spec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the repositories hold for one resource.
#[derive(Debug, Clone, Default)]
pub struct ObservedResource {
    /// Repository name → latest snapshot there (absent: never backed up there).
    pub latest: BTreeMap<String, SnapshotRef>,
    /// Repository name → every snapshot there that retention governs (safety
    /// snapshots taken before a restore are the user's to forget, not the policy's).
    pub retained: BTreeMap<String, Vec<SnapshotRef>>,
}

#[derive(Debug, Clone)]
pub struct BackupInputs<'a> {
    pub spec: &'a Spec,
    /// Resources to consider, in the graph's backup order (already narrowed by `--target`).
    pub order: &'a [Address],
    /// Every repository the spec writes to (declared or the default one), in spec order.
    pub repositories: &'a [String],
    pub observed: &'a BTreeMap<Address, ObservedResource>,
    /// `--replace ADDR`: back up even when not due.
    pub replace: &'a [Address],
    /// Only what retention forgets (`lifeboat forget`): no backups, so the
    /// snapshot a due backup would add is not counted, and the plan is a
    /// [`PlanKind::Forget`] one.
    pub retention_only: bool,
    /// The settings the last apply recorded (`None`: never recorded, so
    /// nothing to compare with).
    pub applied: Option<&'a AppliedSettings>,
    pub basis: Basis,
    pub now: DateTime<Utc>,
}

/// Decides, for each volume in order, whether it is due: never backed up in a
/// repository its policy copies to, latest snapshot older than the rpo, or
/// forced by `--replace`. Then what its retention forgets in each repository
/// (counting the snapshot about to be taken, so that after apply exactly what
/// the rules keep remains), and which settings changed since the last apply.
pub fn backup_plan(inputs: BackupInputs<'_>) -> Plan {
    let spec = inputs.spec;
    let mut changes = Vec::new();
    let mut forgets = Vec::new();
    let mut warnings = Vec::new();
    for address in inputs.order {
        match address.kind {
            ResourceKind::Volume => {}
            // Services are ordering only: they hold no data of their own.
            ResourceKind::Service => continue,
            ResourceKind::Image | ResourceKind::Bind | ResourceKind::Dump => {
                warnings.push(format!(
                    "{address} is validated and ordered, but this version of lifeboat backs up \
                     Docker volumes only: it is not protected yet"
                ));
                continue;
            }
        }
        let Some(volume) = spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        let policy = volume
            .policy
            .as_ref()
            .and_then(|name| spec.policies.iter().find(|p| &p.name == name));
        let rpo = policy.and_then(|p| p.rpo).unwrap_or(DEFAULT_RPO);
        let targets: Vec<String> = match policy {
            Some(p) if !p.copies.is_empty() => p.copies.clone(),
            _ => inputs.repositories.to_vec(),
        };
        let empty = ObservedResource::default();
        let observed = inputs.observed.get(address).unwrap_or(&empty);

        let mut reasons = Vec::new();
        let mut due = false;
        if inputs.replace.contains(address) {
            due = true;
            reasons.push("replacement requested (--replace)".to_string());
        }
        let mut oldest_latest: Option<&SnapshotRef> = None;
        for repository in &targets {
            match observed.latest.get(repository) {
                None => {
                    due = true;
                    reasons.push(if targets.len() == 1 {
                        "never backed up".to_string()
                    } else {
                        format!("never backed up to {repository}")
                    });
                }
                Some(latest) => {
                    let age = (inputs.now - latest.time).to_std().unwrap_or_default();
                    if age > rpo {
                        due = true;
                        reasons.push(format!(
                            "last snapshot {} ago > rpo {}",
                            format_age(age),
                            format_age(rpo)
                        ));
                    }
                    if oldest_latest.is_none_or(|o| latest.time < o.time) {
                        oldest_latest = Some(latest);
                    }
                }
            }
        }
        if !due && let Some(latest) = oldest_latest {
            let age = (inputs.now - latest.time).to_std().unwrap_or_default();
            reasons.push(format!(
                "snapshot {}, {} ago, rpo {}",
                latest.short_id(),
                format_age(age),
                format_age(rpo)
            ));
        }
        let rules = policy.map(|p| p.retention.clone()).unwrap_or_default();
        for (repository, snapshots) in &observed.retained {
            let mut times: Vec<_> = snapshots.iter().map(|s| s.time).collect();
            let backing_up_here = due && !inputs.retention_only && targets.contains(repository);
            if backing_up_here {
                times.push(inputs.now);
            }
            let decision = retention::decide(&rules, &times);
            let forget: Vec<SnapshotRef> = decision
                .forget
                .iter()
                .filter(|&&i| i < snapshots.len())
                .map(|&i| snapshots[i].clone())
                .collect();
            if forget.is_empty() {
                continue;
            }
            let mut change = ResourceChange::new(address.to_string(), Action::Forget);
            change.reasons.push(format!(
                "retention ({}) keeps {} of {}{}",
                retention::describe(&rules),
                decision.keep.len(),
                times.len(),
                if backing_up_here {
                    " counting the new snapshot"
                } else {
                    ""
                }
            ));
            change.repositories = vec![repository.clone()];
            change.docker_name = volume.volume_name.clone();
            change.forget = forget;
            forgets.push(change);
        }
        let mut change = ResourceChange::new(
            address.to_string(),
            if due {
                Action::BackUp
            } else {
                Action::UpToDate
            },
        );
        change.reasons = reasons;
        change.repositories = targets;
        change.docker_name = volume.volume_name.clone();
        change.snapshot = oldest_latest.cloned();
        changes.push(change);
    }
    if inputs.retention_only {
        return Plan::new(PlanKind::Forget, inputs.basis, forgets, inputs.now);
    }
    // Backups first, then what retention forgets once they are safe, then
    // the record of settings.
    changes.extend(forgets);
    if let Some(applied) = inputs.applied {
        changes.extend(AppliedSettings::of(spec).changes_since(applied));
    }
    let mut plan = Plan::new(PlanKind::Backup, inputs.basis, changes, inputs.now);
    plan.warnings = warnings;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Consistency, PolicySpec, Retention, Span, VolumeSpec};
    use std::time::Duration;

    fn spec() -> Spec {
        Spec {
            policies: vec![PolicySpec {
                name: "hourly".into(),
                rpo: Some(Duration::from_secs(3600)),
                rto: None,
                retention: Retention::default(),
                copies: vec![],
                span: Span::default(),
            }],
            volumes: ["a", "b", "c"]
                .iter()
                .map(|n| VolumeSpec {
                    name: n.to_string(),
                    volume_name: format!("app_{n}"),
                    engine: None,
                    policy: Some("hourly".into()),
                    consistency: Consistency::None,
                    service: None,
                    span: Span::default(),
                })
                .collect(),
            ..Spec::default()
        }
    }

    fn snapshot(minutes_ago: i64, now: DateTime<Utc>) -> SnapshotRef {
        SnapshotRef {
            id: "0123456789abcdef".into(),
            repository: "main".into(),
            time: now - chrono::Duration::minutes(minutes_ago),
            bytes: 10,
            files: 1,
        }
    }

    #[test]
    fn never_backed_up_and_stale_are_due_fresh_is_up_to_date() {
        let spec = spec();
        let now = Utc::now();
        let order: Vec<Address> = ["a", "b", "c"]
            .iter()
            .map(|n| Address::new(ResourceKind::Volume, *n))
            .collect();
        let mut observed = BTreeMap::new();
        let fresh = ObservedResource {
            latest: [("main".to_string(), snapshot(10, now))].into(),
            ..ObservedResource::default()
        };
        let stale = ObservedResource {
            latest: [("main".to_string(), snapshot(192, now))].into(),
            ..ObservedResource::default()
        };
        observed.insert(order[1].clone(), fresh);
        observed.insert(order[2].clone(), stale);
        let plan = backup_plan(BackupInputs {
            spec: &spec,
            order: &order,
            repositories: &["main".to_string()],
            observed: &observed,
            replace: &[],
            applied: None,
            retention_only: false,
            basis: Basis::default(),
            now,
        });
        let actions: Vec<_> = plan.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::BackUp, Action::UpToDate, Action::BackUp]);
        assert_eq!(plan.changes[0].reasons, ["never backed up"]);
        assert_eq!(
            plan.changes[2].reasons,
            ["last snapshot 3h12m ago > rpo 1h"]
        );
        assert_eq!(plan.summary.to_back_up, 2);
        assert_eq!(plan.summary.unchanged, 1);
    }

    #[test]
    fn ages_read_like_the_plan_sketch() {
        let age = |s| format_age(std::time::Duration::from_secs(s));
        assert_eq!(age(0), "0s");
        assert_eq!(age(95), "1m35s");
        assert_eq!(age(3600), "1h");
        assert_eq!(age(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(age(24 * 3600), "24h");
        assert_eq!(age(3 * 86_400 + 7200), "3d2h");
    }

    #[test]
    fn replace_forces_a_backup() {
        let spec = spec();
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), snapshot(1, now))].into(),
                ..ObservedResource::default()
            },
        )]
        .into();
        let plan = backup_plan(BackupInputs {
            spec: &spec,
            order: &order,
            repositories: &["main".to_string()],
            observed: &observed,
            replace: &order,
            applied: None,
            retention_only: false,
            basis: Basis::default(),
            now,
        });
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(
            plan.changes[0].reasons,
            ["replacement requested (--replace)"]
        );
    }
}
