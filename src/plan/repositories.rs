//! Repositories a backup plan creates: one `+ repository.NAME` change for
//! each repository that does not exist yet and that a backup of the plan
//! writes to, so that creating one (perhaps on the root filesystem, below a
//! disk that is not mounted) is never silent.

use super::{Action, Detail, MountSign, Plan, Reason, RepositoryDetail, ResourceChange, Summary};
use crate::spec::{Address, ResourceKind};

/// A repository of the spec that does not exist yet, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRepository {
    pub name: String,
    /// Where it will be created.
    pub location: String,
    /// The directory that looks like a mount point left unmounted, and why.
    pub looks_unmounted: Option<(String, MountSign)>,
}

/// `plan` with a `+` change for each of `new` that a `+` backup writes to,
/// first (the repository exists before anything is stored in it). Apply
/// creates it with the first backup written to it, so a repository nothing
/// is written to is not listed: it is not created.
pub fn with_new_repositories(mut plan: Plan, new: &[NewRepository]) -> Plan {
    let created: Vec<ResourceChange> = new
        .iter()
        .filter(|repository| {
            plan.changes
                .iter()
                .any(|c| c.action == Action::BackUp && c.repositories.contains(&repository.name))
        })
        .map(|repository| {
            let address = Address::new(ResourceKind::Repository, repository.name.clone());
            let mut change = ResourceChange::new(address, Action::Create);
            change.repositories = vec![repository.name.clone()];
            change.detail = Detail::Repository(RepositoryDetail {
                location: repository.location.clone(),
            });
            change.reasons = repository
                .looks_unmounted
                .iter()
                .map(|(directory, sign)| Reason::LooksUnmounted {
                    directory: directory.clone(),
                    sign: *sign,
                })
                .collect();
            change
        })
        .collect();
    if !created.is_empty() {
        plan.changes.splice(0..0, created);
        plan.summary = Summary::of(&plan.changes);
    }
    plan
}

/// A repository of the spec that could not be reached when the plan was
/// made, and why (the storage's error, names of secrets redacted).
#[derive(Debug, Clone, PartialEq)]
pub struct UnreachableRepository {
    pub name: String,
    pub message: String,
}

/// `plan` with each change that needs one of `unreachable` saying so: it
/// fails there when applied, and still goes to its other repositories. A
/// change none of whose repositories can be reached cannot be done now (`!`).
pub fn with_unreachable_repositories(
    mut plan: Plan,
    unreachable: &[UnreachableRepository],
) -> Plan {
    if unreachable.is_empty() {
        return plan;
    }
    for change in &mut plan.changes {
        if !matches!(
            change.action,
            Action::BackUp | Action::Copy | Action::UpToDate
        ) {
            continue;
        }
        let needed: Vec<&UnreachableRepository> = unreachable
            .iter()
            .filter(|r| change.repositories.contains(&r.name))
            .filter(|r| {
                // An up-to-date resource needs only the repositories it
                // copies to or from.
                change.action != Action::UpToDate
                    || change
                        .copies
                        .iter()
                        .any(|c| c.to == r.name || c.from == r.name)
            })
            .collect();
        if needed.is_empty() {
            continue;
        }
        let reasons = needed.iter().map(|r| Reason::RepositoryUnreachable {
            repository: r.name.clone(),
            message: r.message.clone(),
        });
        if needed.len() == change.repositories.len() && change.action == Action::BackUp {
            change.action = Action::Problem;
            change.copies.clear();
            change.reasons = reasons.collect();
        } else {
            change.reasons.extend(reasons);
        }
    }
    plan.summary = Summary::of(&plan.changes);
    plan
}

/// A repository a restore passed over, and why (it is gone, cannot be
/// reached, or its copy of the snapshot is damaged).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct SkippedRepository {
    pub repository: String,
    pub why: String,
}

/// A resource a restore reads from `repository` instead of the
/// repositories before it (`skipped`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadElsewhere {
    pub repository: String,
    pub skipped: Vec<SkippedRepository>,
}

/// `plan` (a restore) saying, on each change `elsewhere` names, which
/// repository it reads and why not the ones before it.
pub fn with_read_elsewhere(
    mut plan: Plan,
    elsewhere: &std::collections::BTreeMap<Address, ReadElsewhere>,
) -> Plan {
    for change in &mut plan.changes {
        if change.action != Action::Restore {
            continue;
        }
        if let Some(read) = elsewhere.get(&change.address) {
            change.reasons.push(Reason::ReadsAnotherRepository {
                repository: read.repository.clone(),
                skipped: read.skipped.clone(),
            });
        }
    }
    plan
}

/// `plan` with what the backup of each restored tree snapshot left out
/// said on its restore change (`excludes`: per resource, the chosen
/// snapshot's rules, when it left out anything), and whether the restore
/// removes such live files (it replaces the target's content).
pub fn with_snapshot_excludes(
    mut plan: Plan,
    excludes: &std::collections::BTreeMap<Address, crate::repo::ExcludeRules>,
) -> Plan {
    for change in &mut plan.changes {
        if change.action != Action::Restore {
            continue;
        }
        if let Some(rules) = excludes.get(&change.address) {
            let replacing = matches!(
                change.reasons.first(),
                Some(Reason::ReplaceTarget { .. } | Reason::RestoreInterrupted { .. })
            );
            change.reasons.push(Reason::SnapshotExcluded {
                rules: rules.clone(),
                replacing,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Basis, PlanKind};

    fn plan_backing_up_to(repository: &str) -> Plan {
        let mut change =
            ResourceChange::new(Address::new(ResourceKind::Volume, "data"), Action::BackUp);
        change.repositories = vec![repository.to_string()];
        Plan::new(
            PlanKind::Backup,
            Basis::default(),
            vec![change],
            chrono::Utc::now(),
        )
    }

    fn new(name: &str, looks_unmounted: Option<(String, MountSign)>) -> NewRepository {
        NewRepository {
            name: name.into(),
            location: format!("/var/backups/{name}"),
            looks_unmounted,
        }
    }

    #[test]
    fn a_repository_a_backup_writes_to_is_created_first_and_says_where() {
        let sign = Some(("/mnt/usb".to_string(), MountSign::EmptyUnderMountRoot));
        let plan = with_new_repositories(
            plan_backing_up_to("main"),
            &[new("main", sign), new("unused", None)],
        );
        assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
        let created = &plan.changes[0];
        assert_eq!(created.address.to_string(), "repository.main");
        assert_eq!(created.action, Action::Create);
        assert_eq!(
            created.detail,
            Detail::Repository(RepositoryDetail {
                location: "/var/backups/main".into()
            })
        );
        assert_eq!(
            created.reasons,
            [Reason::LooksUnmounted {
                directory: "/mnt/usb".into(),
                sign: MountSign::EmptyUnderMountRoot
            }]
        );
        assert_eq!(plan.summary.repositories_to_create, 1);
        assert_eq!(plan.summary.to_back_up, 1);
        // Saved and read back, as `apply FILE` does.
        assert_eq!(Plan::from_saved(&plan.to_saved()).unwrap(), plan);
    }

    #[test]
    fn nothing_is_created_when_nothing_is_backed_up() {
        let mut plan = plan_backing_up_to("main");
        plan.changes[0].action = Action::UpToDate;
        let plan = with_new_repositories(plan, &[new("main", None)]);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.summary.repositories_to_create, 0);
    }

    #[test]
    fn an_unreachable_repository_fails_what_needs_it_and_nothing_else() {
        let offsite = UnreachableRepository {
            name: "offsite".into(),
            message: "Not a directory".into(),
        };
        let unreachable = Reason::RepositoryUnreachable {
            repository: "offsite".into(),
            message: "Not a directory".into(),
        };
        let mut plan = plan_backing_up_to("main");
        plan.changes[0].repositories.push("offsite".into());
        let mut elsewhere = plan_backing_up_to("main").changes.remove(0);
        elsewhere.address = Address::new(ResourceKind::Volume, "logs");
        plan.changes.push(elsewhere);
        let plan = with_unreachable_repositories(plan, std::slice::from_ref(&offsite));
        // Still backed up into main; the copy into offsite will fail.
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(plan.changes[0].reasons, std::slice::from_ref(&unreachable));
        assert_eq!(plan.changes[1].reasons, []);
        // Nowhere to go at all: it cannot be done now.
        let only = with_unreachable_repositories(plan_backing_up_to("offsite"), &[offsite]);
        assert_eq!(only.changes[0].action, Action::Problem);
        assert_eq!(only.changes[0].reasons, [unreachable]);
        assert_eq!(only.summary.problems, 1);
    }
}
