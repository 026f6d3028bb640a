//! Restore plans: which snapshot goes where, and whether that is allowed.

use super::{
    Action, Basis, DEFAULT_ENGINE, Detail, Plan, PlanKind, Reason, ResourceChange, SnapshotRef,
    TargetState,
};
use crate::spec::{Address, ResourceKind, Spec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct RestoreObservation {
    /// The snapshot chosen for this resource (`latest` or `--snapshot ID`); `None`
    /// when the repositories hold none.
    pub snapshot: Option<SnapshotRef>,
    /// What is where the restore writes; `Err` when the engine could not say.
    pub target: Result<TargetState, String>,
    /// The target in words ("Docker volume app_data"), sensitive values redacted.
    pub what: String,
    /// What the plan shows about it (with `target` filled in by the plan).
    pub detail: Detail,
}

#[derive(Debug, Clone)]
pub struct RestoreInputs<'a> {
    pub spec: &'a Spec,
    /// Resources to restore, in the graph's restore order.
    pub order: &'a [Address],
    /// Each resource's direct dependencies in the graph.
    pub dependencies: &'a BTreeMap<Address, Vec<Address>>,
    pub observed: &'a BTreeMap<Address, RestoreObservation>,
    /// `--target`s (empty: everything). A non-empty volume or bind named
    /// here is refused without `--replace`; one restored only because a
    /// target needs it (a database container started anew over its volume
    /// needs its dump, not the volume's old content), or as part of the
    /// whole stack (what survived a partial loss), is kept as it is, as
    /// Velero does.
    pub targets: &'a [Address],
    /// `--replace`: allow overwriting non-empty targets.
    pub replace: bool,
    /// `--allow`: settings reaching into the host that a restored container
    /// may get although the container there now lacks them (see
    /// [`crate::engine::ContainerConfig::host_access`]).
    pub allowed_host_access: &'a [String],
    pub basis: Basis,
    pub now: DateTime<Utc>,
}

/// One `<` change per resource with a snapshot and a target it may write;
/// a `!` change (with what to do) for each one that cannot be restored as
/// things stand, beside the rest.
pub fn restore_plan(inputs: RestoreInputs<'_>) -> Plan {
    let mut changes = Vec::new();
    for address in inputs.order {
        if !super::backs_up(address.kind) {
            continue;
        }
        let (Some(resource), Some(observed)) =
            (inputs.spec.resource(address), inputs.observed.get(address))
        else {
            continue;
        };
        let what = observed.what.clone();
        let mut change = ResourceChange::new(address.clone(), Action::Restore);
        change.engine = Some(
            inputs
                .spec
                .engine_of(address)
                .unwrap_or(DEFAULT_ENGINE)
                .to_string(),
        );
        change.depends_on = inputs
            .dependencies
            .get(address)
            .map(|d| {
                d.iter()
                    .filter(|a| inputs.order.contains(a) && super::backs_up(a.kind))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let problem = |message: String| Reason::Problem {
            message,
            at: Some(resource.span().to_string()),
        };
        let target = observed.target.clone();
        let conflicting = match &observed.detail {
            Detail::Image(image) => Some(image.conflicting_tags.clone()),
            _ => None,
        };
        let reason = match (&observed.snapshot, &target) {
            (None, _) => problem(
                "no snapshot to restore from: run `lifeboat apply` first, or check `lifeboat \
                 snapshots`"
                    .to_string(),
            ),
            (_, Err(message)) => problem(message.clone()),
            (Some(_), Ok(_)) if address.kind == crate::spec::ResourceKind::Dump => {
                Reason::LoadDump { what }
            }
            (Some(_), Ok(TargetState::Missing)) => Reason::CreateTarget { what },
            (Some(_), Ok(TargetState::Empty)) if conflicting.is_some() => {
                Reason::ImageAlreadyPresent { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.replace && conflicting.is_some() => {
                Reason::MoveTags {
                    what,
                    tags: conflicting.unwrap_or_default(),
                }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if let Some(tags) = conflicting => {
                problem(format!(
                    "{} of {what} already point{} at another image; restoring would move {}. Pass \
                     --replace to move {} to the restored image, or retag the image there first",
                    tags.join(", "),
                    if tags.len() == 1 { "s" } else { "" },
                    if tags.len() == 1 { "it" } else { "them" },
                    if tags.len() == 1 { "it" } else { "them" },
                ))
            }
            (Some(_), Ok(TargetState::Empty)) => Reason::IntoEmptyTarget { what },
            // A container is configuration, not content: one that exists is
            // left alone (its volumes were restored beside it) unless replaced.
            (Some(_), Ok(TargetState::NonEmpty)) if address.kind == ResourceKind::Service => {
                let differs_in = match &observed.detail {
                    Detail::Service(service) => service.differs_in.clone(),
                    _ => Vec::new(),
                };
                if inputs.replace {
                    Reason::RecreateTarget { what }
                } else if !differs_in.is_empty() {
                    change.action = Action::UpToDate;
                    Reason::KeepDifferent {
                        what,
                        settings: differs_in,
                    }
                } else {
                    change.action = Action::UpToDate;
                    Reason::KeepExisting { what }
                }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.replace => {
                Reason::ReplaceTarget { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.targets.is_empty() => {
                change.action = Action::UpToDate;
                Reason::KeepExisting { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if !inputs.targets.contains(address) => {
                change.action = Action::UpToDate;
                Reason::KeepDependency { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) => problem(format!(
                "{what} is not empty; restoring would mix its files with the snapshot's. Pass \
                 --replace to make it equal to the snapshot, or remove it first"
            )),
        };
        let mut reasons = vec![reason];
        if let Detail::Service(service) = &observed.detail
            && change.action == Action::Restore
        {
            let refused: Vec<&String> = service
                .new_host_access
                .iter()
                .filter(|s| !inputs.allowed_host_access.contains(s))
                .collect();
            if !refused.is_empty() {
                let flags: Vec<String> = refused.iter().map(|s| format!("--allow {s}")).collect();
                reasons = vec![problem(format!(
                    "its snapshot asks for access to the host that the container there now does \
                     not have and the spec does not declare: {}. A snapshot is data anyone \
                     holding the repository's key could have written; if these are meant, pass {}",
                    refused
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    flags.join(" ")
                ))];
            } else if !service.host_access.is_empty() {
                reasons.push(Reason::HostAccess {
                    settings: service.host_access.clone(),
                });
            }
        }
        if reasons.iter().any(|r| matches!(r, Reason::Problem { .. })) {
            change.action = Action::Problem;
        }
        change.reasons = reasons;
        change.repositories = observed
            .snapshot
            .iter()
            .map(|s| s.repository.clone())
            .collect();
        change.snapshot = observed.snapshot.clone();
        change.detail = observed.detail.clone().with_target(target.ok());
        changes.push(change);
    }
    let runs = changes
        .iter()
        .filter_map(|c| c.snapshot.as_ref())
        .map(|s| s.run.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut plan = Plan::new(PlanKind::Restore, inputs.basis, changes, inputs.now);
    if runs > 1 {
        plan.warnings.push(super::Warning::SeveralMoments { runs });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::VolumeDetail;
    use crate::spec::{Consistency, ResourceKind, Span, VolumeSpec};

    fn inputs<'a>(
        spec: &'a Spec,
        order: &'a [Address],
        observed: &'a BTreeMap<Address, RestoreObservation>,
        replace: bool,
    ) -> RestoreInputs<'a> {
        static NO_DEPENDENCIES: std::sync::LazyLock<BTreeMap<Address, Vec<Address>>> =
            std::sync::LazyLock::new(BTreeMap::new);
        RestoreInputs {
            spec,
            order,
            dependencies: &NO_DEPENDENCIES,
            observed,
            targets: order,
            replace,
            allowed_host_access: &[],
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
                hooks: Default::default(),
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
            run: None,
            duration_seconds: None,
        };
        let observed = [(
            order[0].clone(),
            RestoreObservation {
                snapshot: Some(snapshot),
                target: Ok(TargetState::NonEmpty),
                what: "Docker volume app_data".into(),
                detail: Detail::Volume(VolumeDetail {
                    docker_name: "app_data".into(),
                    target: None,
                }),
            },
        )]
        .into();
        let refused = restore_plan(inputs(&spec, &order, &observed, false));
        assert_eq!(refused.changes[0].action, Action::Problem);
        assert!(
            matches!(&refused.changes[0].reasons[0], Reason::Problem { message, .. } if message.contains("--replace"))
        );
        assert_eq!(refused.summary.problems, 1);
        assert!(!refused.has_changes());
        // Only needed by a target (a dump into the service using it): kept.
        let target = [Address::new(ResourceKind::Dump, "sql")];
        let kept = restore_plan(RestoreInputs {
            targets: &target,
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(kept.changes[0].action, Action::UpToDate);
        assert!(matches!(
            &kept.changes[0].reasons[0],
            Reason::KeepDependency { .. }
        ));
        // Restored as part of the whole stack, what is there is kept too.
        let whole = restore_plan(RestoreInputs {
            targets: &[],
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(whole.changes[0].action, Action::UpToDate);
        assert!(matches!(
            &whole.changes[0].reasons[0],
            Reason::KeepExisting { .. }
        ));
        let plan = restore_plan(inputs(&spec, &order, &observed, true));
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert!(matches!(
            &plan.changes[0].detail,
            Detail::Volume(VolumeDetail {
                target: Some(TargetState::NonEmpty),
                ..
            })
        ));
    }

    #[test]
    fn host_access_the_live_container_lacks_is_refused_unless_allowed() {
        use crate::plan::ServiceDetail;
        use crate::spec::ServiceSpec;
        let spec = Spec {
            services: vec![ServiceSpec {
                name: "evil".into(),
                container: "adv_evil".into(),
                engine: None,
                image: None,
                volumes: Vec::new(),
                binds: Vec::new(),
                depends_on: Vec::new(),
                verify: Vec::new(),
                start_timeout: None,
                hooks: Default::default(),
                span: Span::default(),
            }],
            ..Spec::default()
        };
        let order = [Address::new(ResourceKind::Service, "evil")];
        let observed = [(
            order[0].clone(),
            RestoreObservation {
                snapshot: Some(SnapshotRef {
                    id: "abcdef0123".into(),
                    repository: "main".into(),
                    time: Utc::now(),
                    bytes: 1,
                    files: 1,
                    run: None,
                    duration_seconds: None,
                }),
                target: Ok(TargetState::Missing),
                what: "container adv_evil".into(),
                detail: Detail::Service(ServiceDetail {
                    container: "adv_evil".into(),
                    host_access: vec!["bind:/".into(), "privileged".into()],
                    new_host_access: vec!["bind:/".into(), "privileged".into()],
                    ..ServiceDetail::default()
                }),
            },
        )]
        .into();
        let refused = restore_plan(inputs(&spec, &order, &observed, false));
        assert_eq!(refused.changes[0].action, Action::Problem);
        assert!(matches!(
            &refused.changes[0].reasons[0],
            Reason::Problem { message, .. }
                if message.contains("--allow bind:/ --allow privileged")
        ));
        let allowed = ["bind:/".to_string(), "privileged".to_string()];
        let plan = restore_plan(RestoreInputs {
            allowed_host_access: &allowed,
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert!(plan.changes[0].reasons.iter().any(|r| matches!(
            r,
            Reason::HostAccess { settings } if settings.len() == 2
        )));
    }
}
