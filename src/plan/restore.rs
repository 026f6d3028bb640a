//! Restore plans: which snapshot goes where, and whether that is allowed.

use super::{Action, Basis, Plan, PlanKind, ResourceChange, SnapshotRef};
use crate::spec::{Address, ResourceKind, Spec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What is in the Docker volume a restore would write to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    /// No such volume: the restore creates it.
    Missing,
    /// Exists and holds nothing: the restore fills it.
    Empty,
    /// Exists with content: refused unless `--replace`, which makes its content
    /// equal to the snapshot.
    NonEmpty,
}

#[derive(Debug, Clone)]
pub struct RestoreObservation {
    /// The snapshot chosen for this resource (`latest` or `--snapshot ID`); `None`
    /// when the repositories hold none.
    pub snapshot: Option<SnapshotRef>,
    pub volume: VolumeState,
}

#[derive(Debug, Clone)]
pub struct RestoreInputs<'a> {
    pub spec: &'a Spec,
    /// Resources to restore, in the graph's restore order.
    pub order: &'a [Address],
    pub observed: &'a BTreeMap<Address, RestoreObservation>,
    /// `--replace`: allow overwriting non-empty volumes.
    pub replace: bool,
    pub basis: Basis,
    pub now: DateTime<Utc>,
}

/// Why a restore plan cannot be made, one entry per resource that blocks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {}", p.address, p.message)).collect::<Vec<_>>().join("\n"))]
pub struct RestoreRefused {
    pub problems: Vec<RestoreProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProblem {
    pub address: String,
    pub message: String,
}

pub fn restore_plan(inputs: RestoreInputs<'_>) -> Result<Plan, RestoreRefused> {
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    for address in inputs.order {
        if address.kind != ResourceKind::Volume {
            continue;
        }
        let Some(volume) = inputs.spec.volumes.iter().find(|v| v.name == address.name) else {
            continue;
        };
        let Some(observed) = inputs.observed.get(address) else {
            continue;
        };
        let Some(snapshot) = &observed.snapshot else {
            problems.push(RestoreProblem {
                address: address.to_string(),
                message: "no snapshot to restore from: run `lifeboat apply` first, or check \
                          `lifeboat snapshots`"
                    .to_string(),
            });
            continue;
        };
        let reason = match observed.volume {
            VolumeState::Missing => format!("create Docker volume {}", volume.volume_name),
            VolumeState::Empty => format!("into empty Docker volume {}", volume.volume_name),
            VolumeState::NonEmpty if inputs.replace => format!(
                "replace the content of Docker volume {} (files not in the snapshot are removed)",
                volume.volume_name
            ),
            VolumeState::NonEmpty => {
                problems.push(RestoreProblem {
                    address: address.to_string(),
                    message: format!(
                        "Docker volume {} is not empty; restoring would mix its files with the \
                         snapshot's. Pass --replace to make it equal to the snapshot, or remove \
                         the volume first",
                        volume.volume_name
                    ),
                });
                continue;
            }
        };
        changes.push(ResourceChange {
            address: address.to_string(),
            action: Action::Restore,
            reasons: vec![reason],
            repositories: vec![snapshot.repository.clone()],
            docker_name: volume.volume_name.clone(),
            snapshot: Some(snapshot.clone()),
            volume: Some(observed.volume),
            forget: Vec::new(),
            attributes: Vec::new(),
        });
    }
    if problems.is_empty() {
        Ok(Plan::new(
            PlanKind::Restore,
            inputs.basis,
            changes,
            inputs.now,
        ))
    } else {
        Err(RestoreRefused { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Consistency, Span, VolumeSpec};

    fn inputs<'a>(
        spec: &'a Spec,
        order: &'a [Address],
        observed: &'a BTreeMap<Address, RestoreObservation>,
        replace: bool,
    ) -> RestoreInputs<'a> {
        RestoreInputs {
            spec,
            order,
            observed,
            replace,
            basis: Basis::default(),
            now: Utc::now(),
        }
    }

    #[test]
    fn non_empty_volume_is_refused_unless_replace() {
        let spec = Spec {
            volumes: vec![VolumeSpec {
                name: "data".into(),
                volume_name: "app_data".into(),
                engine: None,
                policy: None,
                consistency: Consistency::None,
                service: None,
                span: Span::default(),
            }],
            ..Spec::default()
        };
        let order = [Address::new(ResourceKind::Volume, "data")];
        let snapshot = SnapshotRef {
            id: "abcdef0123".into(),
            repository: "main".into(),
            time: Utc::now(),
            bytes: 1,
            files: 1,
        };
        let observed = [(
            order[0].clone(),
            RestoreObservation {
                snapshot: Some(snapshot),
                volume: VolumeState::NonEmpty,
            },
        )]
        .into();
        let refused = restore_plan(inputs(&spec, &order, &observed, false)).unwrap_err();
        assert!(refused.problems[0].message.contains("--replace"));
        let plan = restore_plan(inputs(&spec, &order, &observed, true)).unwrap();
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert_eq!(plan.changes[0].volume, Some(VolumeState::NonEmpty));
    }
}
