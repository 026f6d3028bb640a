//! plan: compares the spec with what was observed (repositories, engine) and
//! returns a [`Plan`]: pure, serialisable, versioned data.
//!
//! This module owns the decisions ("is this volume due?", "may this restore
//! overwrite that volume?") and nothing else: it does no I/O, never talks to
//! Docker or a repository, and never prints. Views in `cli` render plans; `apply`
//! executes them. Because the human, JSON and saved forms are renderings of one
//! value they can never disagree.

mod backup;
mod coverage;
mod detail;
mod into;
mod locations;
mod partial;
mod placement;
mod reason;
mod repositories;
mod restore;
pub mod retention;
mod saved;
pub mod settings;

pub use backup::{
    BackupInputs, LiveResource, ObservedResource, backup_plan, copy_targets, drill_is_due, rpo_of,
};
pub use coverage::{backs_up, not_acted_on};
pub use detail::{
    BindDetail, Detail, DumpServerDetail, ImageDetail, RepositoryDetail, ScratchVolume,
    ServiceDetail, TargetState, VolumeDetail, VolumeUse,
};
pub use into::{IntoError, IntoRequest, RestoreInto, RestoreMapping};
pub use locations::with_locations_relative_to;
pub use partial::{PartialRestore, with_partial};
pub use placement::copies_warnings;
pub use reason::{DumpInto, Interruption, MountSign, Reason, Warning};
pub use repositories::{
    NewRepository, ReadElsewhere, SkippedRepository, UnreachableRepository, with_new_repositories,
    with_read_elsewhere, with_snapshot_excludes, with_unreachable_repositories,
};
pub use restore::{
    DamagedSnapshotFile, InterruptedRestore, RestoreInputs, RestoreObservation, restore_plan,
    restore_plan_into, service_data,
};
pub use saved::UnwarrantedChange;
pub use settings::{
    AppliedSettings, AppliedState, AttributeChange, DrillMeasurement, RestoreMeasurement,
    StackRestoreMeasurement,
};

use crate::spec::{Address, ResourceKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Version of the plan's data form (saved plans, `plan --json`). Bumped on
/// any change a reader could notice; a saved plan of another major version
/// is refused.
pub const FORMAT_VERSION: &str = "2.4";

/// The policy used by resources that name none: a daily backup, keep everything.
pub const DEFAULT_RPO: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Plan {
    pub format_version: String,
    pub lifeboat_version: String,
    pub kind: PlanKind,
    pub created_at: DateTime<Utc>,
    /// What the plan was computed against; `apply FILE` refuses it when any moved on.
    pub basis: Basis,
    /// In execution order (the graph's).
    pub changes: Vec<ResourceChange>,
    /// Counts of `changes` by action (derived, kept for readers of the JSON).
    pub summary: Summary,
    /// Things the reviewer should know that change nothing.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// `KEY=VALUE` tags (`plan --tag`, `apply --tag`) every snapshot the
    /// plan takes carries; a tagged plan backs up every resource it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// `plan` / `apply`: backups, retention, settings.
    Backup,
    /// `restore`: `<` changes only.
    Restore,
    /// `lifeboat forget`: only `-` changes (retention, or snapshots named).
    Forget,
}

/// The observed state a plan depends on, as digests that change whenever the
/// state does. Holds no secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct Basis {
    /// Digest of the evaluated spec (sensitive values excluded).
    pub spec_digest: String,
    pub repositories: Vec<RepositoryBasis>,
    /// Digest of what the engines held for the planned resources (which
    /// volumes existed, and when each was created).
    #[serde(default)]
    pub engine_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RepositoryBasis {
    pub name: String,
    pub id: String,
    /// Digest of the sorted snapshot ids the repository held.
    pub snapshots_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ResourceChange {
    /// `volume.data`
    pub address: Address,
    pub action: Action,
    /// The engine the resource lives on; `None` for changes about no engine
    /// object (policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Why, as values the views put into words.
    pub reasons: Vec<Reason>,
    /// Repositories the action writes to or reads from.
    pub repositories: Vec<String>,
    /// The snapshot the action starts from: the latest for backups (if any), the
    /// one restored for restores.
    pub snapshot: Option<SnapshotRef>,
    /// Changes of this plan that must succeed first (in the graph); when one
    /// fails, apply skips this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// What the change says about its kind of resource.
    pub detail: Detail,
    /// For `forget`: the snapshots retention removes (in the one repository
    /// of `repositories`), newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forget: Vec<SnapshotRef>,
    /// For `update`: the settings that changed since the last apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeChange>,
    /// Repository-to-repository copies, each its own `>` line: for `copy`,
    /// existing snapshots a repository of the policy's copies lacks; for
    /// `back up`, the new snapshot, from the repository read into to each
    /// other one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<PlannedCopy>,
    /// For a restore into other names (`restore --into`): where the
    /// resource is written instead of its live name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<RestoreInto>,
    /// For a restore of part of a tree (`restore --path`): the paths, and
    /// what is created, overwritten, left and kept under them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialRestore>,
}

impl ResourceChange {
    /// The name of the engine the change acts on (the default one when the
    /// plan names none).
    pub fn engine_name(&self) -> &str {
        crate::spec::engine_or_default(self.engine.as_deref())
    }

    /// A change with only the essentials set; the rest empty.
    pub fn new(address: Address, action: Action) -> ResourceChange {
        ResourceChange {
            address,
            action,
            engine: None,
            reasons: Vec::new(),
            repositories: Vec::new(),
            snapshot: None,
            depends_on: Vec::new(),
            detail: Detail::None,
            forget: Vec::new(),
            attributes: Vec::new(),
            copies: Vec::new(),
            into: None,
            partial: None,
        }
    }

    pub fn kind(&self) -> ResourceKind {
        self.address.kind
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `+` take a new snapshot.
    BackUp,
    /// `=` nothing to do.
    UpToDate,
    /// `<` restore a snapshot into the resource.
    Restore,
    /// `-` forget snapshots retention no longer keeps (then prune their data).
    Forget,
    /// `~` settings (policy goals, retention, copies, consistency) changed
    /// since the last apply; applying records them.
    Update,
    /// `!` the resource cannot be acted on now (its reason says why); the
    /// rest of the plan goes ahead, and apply reports it as failed.
    Problem,
    /// `+` a repository that does not exist yet is created (by the first
    /// backup written to it).
    Create,
    /// `>` copy existing snapshots from one repository into another that
    /// lacks them (`copies`), without reading the engine.
    Copy,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::BackUp => '+',
            Action::UpToDate => '=',
            Action::Restore => '<',
            Action::Forget => '-',
            Action::Update => '~',
            Action::Problem => '!',
            Action::Create => '+',
            Action::Copy => '>',
        }
    }

    pub fn is_change(self) -> bool {
        !matches!(self, Action::UpToDate)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SnapshotRef {
    pub id: String,
    pub repository: String,
    pub time: DateTime<Utc>,
    pub bytes: u64,
    pub files: u64,
    /// The apply run that took it (snapshots of one run are one moment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// How long taking it took, when the snapshot says (what the plan
    /// expects a service to be stopped for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Its tags (`release=v1.4.2`): retention keeps what they ask it to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl SnapshotRef {
    /// The first 8 characters of the id (ids come from files: never sliced by bytes).
    pub fn short_id(&self) -> String {
        short_id(&self.id)
    }
}

/// The first 8 characters of an id, whatever it holds.
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// One snapshot copied from repository `from` into `to`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PlannedCopy {
    pub from: String,
    pub to: String,
    /// The snapshot in `from`; `None` for the one the change's backup takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRef>,
}

/// Counts for the closing `Plan:` line.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct Summary {
    pub to_back_up: usize,
    pub to_restore: usize,
    pub unchanged: usize,
    /// Snapshots retention forgets (not resources).
    #[serde(default)]
    pub to_forget: usize,
    /// Resources whose settings changed since the last apply.
    #[serde(default)]
    pub to_update: usize,
    /// Resources that cannot be acted on now (`!`).
    #[serde(default)]
    pub problems: usize,
    /// Repositories created (`+ repository.NAME`).
    #[serde(default)]
    pub repositories_to_create: usize,
    /// Snapshot copies between repositories (`>` lines, not resources).
    #[serde(default)]
    pub to_copy: usize,
}

impl Summary {
    pub(crate) fn of(changes: &[ResourceChange]) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
            summary.to_copy += change.copies.len();
            match change.action {
                Action::BackUp => summary.to_back_up += 1,
                Action::Restore => summary.to_restore += 1,
                Action::UpToDate => summary.unchanged += 1,
                Action::Forget => summary.to_forget += change.forget.len(),
                Action::Update => summary.to_update += 1,
                Action::Problem => summary.problems += 1,
                Action::Create => summary.repositories_to_create += 1,
                Action::Copy => {}
            }
        }
        summary
    }
}

impl Plan {
    /// Whether applying would change anything (problems are not changes).
    pub fn has_changes(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.action.is_change() && c.action != Action::Problem)
    }

    pub fn has_problems(&self) -> bool {
        self.summary.problems > 0
    }

    fn new(kind: PlanKind, basis: Basis, changes: Vec<ResourceChange>, now: DateTime<Utc>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION.to_string(),
            lifeboat_version: env!("CARGO_PKG_VERSION").to_string(),
            kind,
            created_at: now,
            basis,
            summary: Summary::of(&changes),
            changes,
            warnings: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// The saved form (`plan --out FILE`): the JSON, versioned.
    pub fn to_saved(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialise")
    }

    /// Reads a saved plan, refusing formats this version cannot apply
    /// faithfully. The file is untrusted: it is only ever parsed, and the
    /// counts are recomputed rather than believed.
    pub fn from_saved(text: &str) -> Result<Plan, SavedPlanError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SavedPlanError::NotAPlan(e.to_string()))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| SavedPlanError::NotAPlan("no format_version".to_string()))?;
        if version.split('.').next() != FORMAT_VERSION.split('.').next() {
            return Err(SavedPlanError::Version {
                found: version.to_string(),
                supported: FORMAT_VERSION.to_string(),
            });
        }
        let mut plan: Plan =
            serde_json::from_value(value).map_err(|e| SavedPlanError::NotAPlan(e.to_string()))?;
        plan.summary = Summary::of(&plan.changes);
        for tag in &plan.tags {
            crate::repo::Tag::parse(tag).map_err(SavedPlanError::NotAPlan)?;
        }
        Ok(plan)
    }

    /// Why this plan no longer matches the world (`current` observed now);
    /// empty when it may still be applied.
    pub fn staleness(&self, current: &Basis) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.basis.spec_digest != current.spec_digest {
            reasons.push("the spec changed since the plan was made".to_string());
        }
        for saved in &self.basis.repositories {
            match current.repositories.iter().find(|r| r.name == saved.name) {
                None => reasons.push(format!("repository.{} is no longer declared", saved.name)),
                Some(now) if now.id != saved.id => reasons.push(format!(
                    "repository.{} is a different repository than when the plan was made",
                    saved.name
                )),
                Some(now) if now.snapshots_digest != saved.snapshots_digest => {
                    reasons.push(format!(
                        "repository.{} gained or lost snapshots since the plan was made",
                        saved.name
                    ))
                }
                Some(_) => {}
            }
        }
        if self.basis.engine_digest != current.engine_digest {
            reasons.push(
                "Docker volumes or images were created, changed or removed since the plan was made"
                    .to_string(),
            );
        }
        reasons
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("this is not a lifeboat plan file ({0}); write one with `lifeboat plan --out FILE`")]
    NotAPlan(String),
    #[error(
        "the plan file has format version {found}, this lifeboat applies {supported}: make the \
         plan again with this version"
    )]
    Version { found: String, supported: String },
}

/// A plan forgetting exactly the snapshots named (`lifeboat forget ID…`):
/// one `-` change per resource and repository, in the order given.
pub fn forget_plan(requested: &[(Address, SnapshotRef)], basis: Basis, now: DateTime<Utc>) -> Plan {
    let mut changes: Vec<ResourceChange> = Vec::new();
    for (resource, snapshot) in requested {
        let existing = changes.iter().position(|c| {
            &c.address == resource && c.repositories.first() == Some(&snapshot.repository)
        });
        let index = existing.unwrap_or_else(|| {
            let mut change = ResourceChange::new(resource.clone(), Action::Forget);
            change.reasons.push(Reason::NamedOnCommandLine);
            change.repositories.push(snapshot.repository.clone());
            changes.push(change);
            changes.len() - 1
        });
        let change = &mut changes[index];
        if !change.forget.iter().any(|s| s.id == snapshot.id) {
            change.forget.push(snapshot.clone());
        }
    }
    Plan::new(PlanKind::Forget, basis, changes, now)
}

/// "3h12m" style age, to the precision a reader cares about: days and hours
/// past two days, hours and minutes past an hour, else minutes and seconds.
pub fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    if secs == 0 && age.subsec_millis() > 0 {
        return format!("{}ms", age.subsec_millis());
    }
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<(u64, &str)> = if days >= 2 {
        vec![(days, "d"), (hours, "h")]
    } else if secs >= 3600 {
        vec![(days * 24 + hours, "h"), (minutes, "m")]
    } else {
        vec![(minutes, "m"), (seconds, "s")]
    };
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_string()
    } else {
        text
    }
}
