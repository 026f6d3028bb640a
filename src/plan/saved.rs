//! Saved plans are files, and files can be edited: before `apply FILE`
//! acts on one, every change it holds is checked against the plan the spec
//! and the repositories give now. The basis check (`Plan::staleness`)
//! refuses a plan the world moved away from; this one refuses a plan that
//! was changed away from the world (a forget retention would not make, a
//! restore in a backup plan, another repository…). A saved plan may hold
//! less than the recomputed one (it was made earlier, or with `--target`),
//! never something else.

use super::{Action, Plan, Reason, ResourceChange};
use crate::spec::Address;

/// One change of a saved plan that the recomputed plan does not contain,
/// and why, for the error `apply FILE` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwarrantedChange {
    pub address: Address,
    pub action: Action,
    pub why: String,
}

impl std::fmt::Display for UnwarrantedChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.action.symbol(), self.address, self.why)
    }
}

impl Plan {
    /// The resources a saved plan backs up because `--replace` asked: the
    /// recomputed plan is made with the same request (a backup only adds a
    /// snapshot, so honouring it from the file loses nothing).
    pub fn replace_requests(&self) -> Vec<Address> {
        self.changes
            .iter()
            .filter(|c| c.action == Action::BackUp && c.reasons.contains(&Reason::ReplaceRequested))
            .map(|c| c.address.clone())
            .collect()
    }

    /// The changes of this (saved) plan that `recomputed`, the plan made
    /// now from the spec and the repositories, does not contain. Empty
    /// when every change follows from them.
    pub fn unwarranted_changes(&self, recomputed: &Plan) -> Vec<UnwarrantedChange> {
        let mut unwarranted = Vec::new();
        let mut seen: Vec<(&Address, Action, &[String])> = Vec::new();
        for change in &self.changes {
            // `=` does nothing, and `!` only reports.
            if matches!(change.action, Action::UpToDate | Action::Problem) {
                continue;
            }
            let refuse = |why: String| UnwarrantedChange {
                address: change.address.clone(),
                action: change.action,
                why,
            };
            let key = (
                &change.address,
                change.action,
                change.repositories.as_slice(),
            );
            if seen.contains(&key) {
                unwarranted.push(refuse("is listed twice".to_string()));
                continue;
            }
            seen.push(key);
            let counterpart = recomputed.changes.iter().find(|r| {
                r.address == change.address
                    && r.action == change.action
                    // Retention forgets per repository: one change each.
                    && (change.action != Action::Forget || r.repositories == change.repositories)
            });
            match counterpart {
                None => unwarranted.push(refuse(format!(
                    "is not what the spec and repositories call for now ({})",
                    now_says(recomputed, &change.address)
                ))),
                Some(now) => {
                    if let Some(why) = difference(change, now) {
                        unwarranted.push(refuse(why));
                    }
                }
            }
        }
        unwarranted
    }
}

/// What the recomputed plan does with `address`, in words for the error.
fn now_says(recomputed: &Plan, address: &Address) -> String {
    let actions: Vec<&str> = recomputed
        .changes
        .iter()
        .filter(|c| &c.address == address)
        .map(|c| action_words(c.action))
        .collect();
    if actions.is_empty() {
        "they have no change for it".to_string()
    } else {
        format!("they say: {}", actions.join(", "))
    }
}

fn action_words(action: Action) -> &'static str {
    match action {
        Action::BackUp => "back up",
        Action::UpToDate => "up to date",
        Action::Restore => "restore",
        Action::Forget => "forget",
        Action::Update => "update settings",
        Action::Problem => "cannot be acted on",
        Action::Create => "create",
    }
}

/// How a saved change does more than, or other than, the recomputed one.
fn difference(saved: &ResourceChange, now: &ResourceChange) -> Option<String> {
    if let Some(repository) = saved
        .repositories
        .iter()
        .find(|r| !now.repositories.contains(r))
    {
        return Some(format!(
            "names repository.{repository}, which the spec does not give it"
        ));
    }
    if let Some(snapshot) = saved.forget.iter().find(|s| {
        !now.forget
            .iter()
            .any(|n| n.id == s.id && n.repository == s.repository)
    }) {
        return Some(format!(
            "forgets snapshot {} on repository.{}, which retention keeps",
            snapshot.short_id(),
            snapshot.repository
        ));
    }
    if saved.engine != now.engine {
        return Some("names another engine than the spec".to_string());
    }
    if saved.detail != now.detail {
        return Some("describes the resource otherwise than the spec and engine".to_string());
    }
    if saved.attributes != now.attributes {
        return Some("records other settings than the spec holds".to_string());
    }
    let mut saved_order = saved.depends_on.clone();
    let mut now_order = now.depends_on.clone();
    saved_order.sort();
    now_order.sort();
    if saved_order != now_order {
        return Some("depends on other changes than the graph says".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Basis, PlanKind, SnapshotRef};
    use crate::spec::ResourceKind;
    use chrono::Utc;

    fn snapshot(id: &str, repository: &str) -> SnapshotRef {
        SnapshotRef {
            id: id.repeat(64),
            repository: repository.to_string(),
            time: Utc::now(),
            bytes: 1,
            files: 1,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        }
    }

    fn forget(repository: &str, ids: &[&str]) -> ResourceChange {
        let mut change =
            ResourceChange::new(Address::new(ResourceKind::Volume, "data"), Action::Forget);
        change.repositories = vec![repository.to_string()];
        change.forget = ids.iter().map(|id| snapshot(id, repository)).collect();
        change
    }

    fn backup(name: &str, repositories: &[&str]) -> ResourceChange {
        let mut change =
            ResourceChange::new(Address::new(ResourceKind::Volume, name), Action::BackUp);
        change.repositories = repositories.iter().map(|r| r.to_string()).collect();
        change
    }

    fn plan(changes: Vec<ResourceChange>) -> Plan {
        Plan::new(PlanKind::Backup, Basis::default(), changes, Utc::now())
    }

    #[test]
    fn a_saved_plan_keeps_its_tags_and_one_holding_a_bad_tag_is_no_plan() {
        let mut tagged = plan(vec![backup("data", &["main"])]);
        tagged.tags = vec!["release=v1.4.2".into()];
        assert_eq!(Plan::from_saved(&tagged.to_saved()).unwrap(), tagged);
        tagged.tags = vec!["release=v1 && rm".into()];
        let refused = Plan::from_saved(&tagged.to_saved())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("this is not a lifeboat plan file"),
            "{refused}"
        );
        assert!(refused.contains("a value holds only"), "{refused}");
    }

    #[test]
    fn a_saved_plan_equal_to_or_smaller_than_the_recomputed_one_is_warranted() {
        let now = plan(vec![
            backup("data", &["main", "offsite"]),
            forget("main", &["a", "b"]),
            backup("other", &["main"]),
        ]);
        assert!(now.unwarranted_changes(&now).is_empty());
        let earlier = plan(vec![backup("data", &["main"]), forget("main", &["a"])]);
        assert!(earlier.unwarranted_changes(&now).is_empty());
    }

    #[test]
    fn an_edited_forget_restore_or_repository_is_named() {
        let now = plan(vec![backup("data", &["main"]), forget("main", &["a"])]);
        let kept = plan(vec![forget("main", &["a", "c"])]);
        let refused = kept.unwarranted_changes(&now);
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0]
                .to_string()
                .contains("forgets snapshot cccccccc on repository.main"),
            "{}",
            refused[0]
        );

        let elsewhere = plan(vec![forget("offsite", &["a"])]);
        assert!(
            elsewhere.unwarranted_changes(&now)[0]
                .why
                .contains("not what the spec"),
        );
        let other_repository = plan(vec![backup("data", &["attacker"])]);
        assert!(
            other_repository.unwarranted_changes(&now)[0]
                .why
                .contains("repository.attacker")
        );
        let mut restore = backup("data", &["main"]);
        restore.action = Action::Restore;
        let refused = plan(vec![restore]).unwarranted_changes(&now);
        assert!(
            refused[0].why.contains("they say: back up"),
            "{:?}",
            refused
        );
        let not_due = plan(vec![backup("other", &["main"])]);
        assert!(
            not_due.unwarranted_changes(&now)[0]
                .why
                .contains("they have no change for it")
        );
        let twice = plan(vec![forget("main", &["a"]), forget("main", &["a"])]);
        assert_eq!(twice.unwarranted_changes(&now).len(), 1);
    }

    #[test]
    fn replace_requests_come_from_the_reason() {
        let mut replaced = backup("data", &["main"]);
        replaced.reasons.push(Reason::ReplaceRequested);
        let saved = plan(vec![replaced, backup("other", &["main"])]);
        assert_eq!(
            saved.replace_requests(),
            vec![Address::new(ResourceKind::Volume, "data")]
        );
    }
}
