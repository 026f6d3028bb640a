//! Backup plans: which resources are due, and why; what retention forgets;
//! which settings changed since the last apply.

use super::retention;
use super::{
    Action, AppliedSettings, AppliedState, Basis, DEFAULT_RPO, Plan, PlanKind, ResourceChange,
    SnapshotRef, format_age,
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
    /// What the last apply and restores recorded (`None`: nothing yet, so
    /// no settings to compare with and no restore times to hold rto against).
    pub applied: Option<&'a AppliedState>,
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
        if let Some(settings) = &applied.settings {
            changes.extend(AppliedSettings::of(spec).changes_since(settings));
        }
        warnings.extend(rto_warnings(spec, inputs.order, applied));
    }
    let mut plan = Plan::new(PlanKind::Backup, inputs.basis, changes, inputs.now);
    plan.warnings = warnings;
    plan
}

/// A goal the last measured restore already missed: the rto cannot be met
/// as things stand, and the reviewer should know before an outage does.
fn rto_warnings(spec: &Spec, order: &[Address], applied: &AppliedState) -> Vec<String> {
    let mut warnings = Vec::new();
    for address in order.iter().filter(|a| a.kind == ResourceKind::Volume) {
        let Some(volume) = spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        let Some(policy) = volume
            .policy
            .as_ref()
            .and_then(|name| spec.policies.iter().find(|p| &p.name == name))
        else {
            continue;
        };
        let (Some(rto), Some(measured)) = (policy.rto, applied.restores.get(&address.to_string()))
        else {
            continue;
        };
        if measured.seconds > rto.as_secs_f64() {
            warnings.push(format!(
                "{address}: the last restore (snapshot {}, {}) took {}, longer than the rto {} \
                 of policy.{} ({}): raise the rto, or make restores faster (direct access, a \
                 closer repository)",
                &measured.snapshot[..8.min(measured.snapshot.len())],
                measured.time.format("%Y-%m-%d %H:%M UTC"),
                format_age(std::time::Duration::from_secs_f64(measured.seconds.ceil())),
                format_age(rto),
                policy.name,
                policy.span,
            ));
        }
    }
    warnings
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
    fn retention_counts_the_new_snapshot_and_a_missed_rto_warns() {
        let mut spec = spec();
        spec.policies[0].retention.keep_last = Some(2);
        spec.policies[0].rto = Some(Duration::from_secs(60));
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        let mut snapshots: Vec<SnapshotRef> = (0..3)
            .map(|i| SnapshotRef {
                id: format!("{i}{}", "0".repeat(15)),
                ..snapshot(120 + 60 * i, now)
            })
            .collect();
        snapshots.reverse();
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), snapshots[2].clone())].into(),
                retained: [("main".to_string(), snapshots.clone())].into(),
            },
        )]
        .into();
        let state = AppliedState {
            settings: None,
            restores: [(
                "volume.a".to_string(),
                crate::plan::RestoreMeasurement {
                    seconds: 95.0,
                    bytes: 1,
                    snapshot: "abcdef0123".into(),
                    time: now,
                },
            )]
            .into(),
        };
        let plan = backup_plan(BackupInputs {
            spec: &spec,
            order: &order,
            repositories: &["main".to_string()],
            observed: &observed,
            replace: &[],
            applied: Some(&state),
            retention_only: false,
            basis: Basis::default(),
            now,
        });
        // Due (2h > rpo 1h): the new snapshot and the newest old one stay.
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(plan.changes[1].action, Action::Forget);
        let forgotten: Vec<_> = plan.changes[1].forget.iter().map(|s| &s.id[..1]).collect();
        assert_eq!(forgotten, ["1", "2"]);
        assert_eq!(plan.summary.to_forget, 2);
        assert!(
            plan.warnings[0].contains("took 1m35s, longer than the rto 1m of policy.hourly"),
            "{:?}",
            plan.warnings
        );
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
