//! Restores of part of a tree (`restore --path`): what the change of the
//! one volume or directory restored carries ([`PartialRestore`]), and the
//! decision that turns a whole-tree restore plan into a partial one
//! ([`with_partial`]). Pure: the lists are computed by `apply` (which
//! reads the snapshot and the live tree); this module only decides.

use super::{Action, Plan, Reason, Summary};
use crate::spec::Address;
use serde::{Deserialize, Serialize};

/// The part of a tree a restore writes, and what it does there. Paths are
/// relative to the tree's root, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PartialRestore {
    /// The paths asked for (`--path`), normalized.
    pub paths: Vec<String>,
    /// `--into DIR`: the host directory the part is written into instead
    /// of the live tree, which is then not touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Entries the snapshot holds and the target lacks: created.
    pub create: Vec<String>,
    /// Entries both hold that differ (content, kind, link, mode, owner,
    /// time or attributes): replaced, after a safety snapshot of them.
    pub overwrite: Vec<String>,
    /// Entries both hold, identical: not written.
    pub leave: Vec<String>,
    /// Entries under the paths that only the target holds: left alone.
    pub kept: Vec<String>,
}

impl PartialRestore {
    /// Whether the restore writes anything.
    pub fn writes(&self) -> bool {
        !self.create.is_empty() || !self.overwrite.is_empty()
    }
}

/// The restore plan of `address` (planned as a whole-tree restore with
/// `--replace`, so that what it would stop is known) made partial:
/// the change carries `partial` and says what it writes; the services a
/// replace would stop are stopped the same way while anything is written
/// in place. A change refused for its own reasons stays refused; a target
/// that does not exist, or holds an interrupted restore, is refused in
/// place (there is no tree to restore part of).
pub fn with_partial(mut plan: Plan, address: &Address, partial: PartialRestore) -> Plan {
    let Some(change) = plan.changes.iter_mut().find(|c| &c.address == address) else {
        return plan;
    };
    let what = match change.reasons.first() {
        Some(
            Reason::ReplaceTarget { what }
            | Reason::IntoEmptyTarget { what }
            | Reason::CreateTarget { what }
            | Reason::RestoreInterrupted { what, .. },
        ) => what.clone(),
        _ => address.to_string(),
    };
    let paths = partial.paths.clone();
    if let Some(directory) = &partial.into {
        // The live tree is not written: only a snapshot is needed.
        if change.snapshot.is_some() {
            change.action = Action::Restore;
            change.reasons = vec![Reason::RestorePathsInto {
                what,
                paths,
                directory: directory.clone(),
            }];
        }
        change.partial = Some(partial);
        plan.summary = Summary::of(&plan.changes);
        return plan;
    }
    let refused = match change.reasons.first() {
        Some(Reason::CreateTarget { .. }) => Some(format!(
            "{what} does not exist, so there is no tree to restore part of: restore it whole \
             (without --path), or write the part into a directory with --into DIR"
        )),
        Some(Reason::RestoreInterrupted { snapshot, .. }) => Some(format!(
            "{what} holds an interrupted restore of snapshot {snapshot}: restore it whole first \
             (without --path)"
        )),
        _ => None,
    };
    match (refused, change.action) {
        (Some(message), _) => {
            change.action = Action::Problem;
            change.reasons = vec![Reason::Problem { message, at: None }];
        }
        (None, Action::Restore) => {
            // What else the plan says stays (the repository read, the
            // containers stopped while anything is written).
            let writes = partial.writes();
            let rest: Vec<Reason> = change
                .reasons
                .drain(..)
                .skip(1)
                .filter(|r| writes || !matches!(r, Reason::StopsContainers { .. }))
                .collect();
            change.reasons = vec![Reason::RestorePaths { what, paths }];
            change.reasons.extend(rest);
            if !writes {
                change.action = Action::UpToDate;
            }
        }
        (None, _) => {}
    }
    change.partial = Some(partial);
    plan.summary = Summary::of(&plan.changes);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Basis, PlanKind, ResourceChange, SnapshotRef};

    fn restore_plan(reasons: Vec<Reason>) -> (Plan, Address) {
        let address = Address::parse("volume.data").expect("address");
        let mut change = ResourceChange::new(address.clone(), Action::Restore);
        change.reasons = reasons;
        change.snapshot = Some(SnapshotRef {
            id: "a1b2c3d4e5".into(),
            repository: "main".into(),
            time: chrono::Utc::now(),
            bytes: 10,
            files: 1,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        });
        let plan = Plan::new(
            PlanKind::Restore,
            Basis::default(),
            vec![change],
            chrono::Utc::now(),
        );
        (plan, address)
    }

    fn partial(create: &[&str], overwrite: &[&str]) -> PartialRestore {
        PartialRestore {
            paths: vec!["config".into()],
            create: create.iter().map(|s| s.to_string()).collect(),
            overwrite: overwrite.iter().map(|s| s.to_string()).collect(),
            ..PartialRestore::default()
        }
    }

    fn what() -> String {
        "Docker volume app_data".to_string()
    }

    #[test]
    fn a_replace_becomes_a_partial_restore_that_stops_the_same_containers() {
        let stops = Reason::StopsContainers {
            containers: vec!["app".into()],
        };
        let (plan, address) =
            restore_plan(vec![Reason::ReplaceTarget { what: what() }, stops.clone()]);
        let plan = with_partial(plan, &address, partial(&[], &["config/app.conf"]));
        let change = &plan.changes[0];
        assert_eq!(change.action, Action::Restore);
        assert_eq!(
            change.reasons,
            vec![
                Reason::RestorePaths {
                    what: what(),
                    paths: vec!["config".into()]
                },
                stops
            ]
        );
        assert!(change.partial.is_some());
    }

    #[test]
    fn nothing_to_write_is_up_to_date_and_stops_nothing() {
        let stops = Reason::StopsContainers {
            containers: vec!["app".into()],
        };
        let (plan, address) = restore_plan(vec![Reason::ReplaceTarget { what: what() }, stops]);
        let plan = with_partial(plan, &address, partial(&[], &[]));
        assert_eq!(plan.changes[0].action, Action::UpToDate);
        assert_eq!(plan.changes[0].reasons.len(), 1);
        assert!(!plan.has_changes());
    }

    #[test]
    fn a_missing_target_is_refused_in_place_but_written_into_a_directory() {
        let (plan, address) = restore_plan(vec![Reason::CreateTarget { what: what() }]);
        let refused = with_partial(plan.clone(), &address, partial(&["config"], &[]));
        assert_eq!(refused.changes[0].action, Action::Problem);
        assert!(matches!(&refused.changes[0].reasons[0],
            Reason::Problem { message, .. } if message.contains("--into DIR")));
        let into = PartialRestore {
            into: Some("/tmp/out".into()),
            ..partial(&["config"], &[])
        };
        let written = with_partial(plan, &address, into);
        assert_eq!(written.changes[0].action, Action::Restore);
        assert!(matches!(
            &written.changes[0].reasons[0],
            Reason::RestorePathsInto { directory, .. } if directory == "/tmp/out"
        ));
    }

    #[test]
    fn a_refused_change_stays_refused() {
        let (mut plan, address) = restore_plan(vec![Reason::Problem {
            message: "damaged".into(),
            at: None,
        }]);
        plan.changes[0].action = Action::Problem;
        let plan = with_partial(plan, &address, partial(&["config"], &[]));
        assert_eq!(plan.changes[0].action, Action::Problem);
    }
}
