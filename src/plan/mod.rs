//! plan: compares the spec with what was observed (repositories, engine) and
//! returns a [`Plan`]: pure, serialisable, versioned data.
//!
//! This module owns the decisions ("is this volume due?", "may this restore
//! overwrite that volume?") and nothing else: it does no I/O, never talks to
//! Docker or a repository, and never prints. Views in `cli` render plans; `apply`
//! executes them. Because the human, JSON and saved forms are renderings of one
//! value they can never disagree.

mod backup;
mod restore;
pub mod retention;
pub mod settings;

pub use backup::{BackupInputs, ObservedResource, backup_plan};
pub use restore::{RestoreInputs, RestoreObservation, VolumeState, restore_plan};
pub use settings::{AppliedSettings, AppliedState, AttributeChange, RestoreMeasurement};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Version of the plan's data form (saved plans, `plan --json`). Bumped on
/// any change a reader could notice.
pub const FORMAT_VERSION: &str = "1.1";

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
    /// Things the reviewer should know that change nothing (e.g. resources
    /// this version does not back up yet).
    #[serde(default)]
    pub warnings: Vec<String>,
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
    /// Digest of which planned Docker volumes existed (and when each was created).
    #[serde(default)]
    pub volumes_digest: String,
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
    pub address: String,
    pub action: Action,
    /// Why, in the user's words ("never backed up", "last snapshot 3h ago > rpo 1h").
    pub reasons: Vec<String>,
    /// Repositories the action writes to or reads from.
    pub repositories: Vec<String>,
    /// Docker object the resource maps to (the volume's name).
    pub docker_name: String,
    /// The snapshot the action starts from: the latest for backups (if any), the
    /// one restored for restores.
    pub snapshot: Option<SnapshotRef>,
    /// For restores: what happens to the existing Docker volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeState>,
    /// For `forget`: the snapshots retention removes (in the one repository
    /// of `repositories`), newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forget: Vec<SnapshotRef>,
    /// For `update`: the settings that changed since the last apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeChange>,
}

impl ResourceChange {
    /// A change with only the essentials set; the rest empty.
    pub fn new(address: impl Into<String>, action: Action) -> ResourceChange {
        ResourceChange {
            address: address.into(),
            action,
            reasons: Vec::new(),
            repositories: Vec::new(),
            docker_name: String::new(),
            snapshot: None,
            volume: None,
            forget: Vec::new(),
            attributes: Vec::new(),
        }
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
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::BackUp => '+',
            Action::UpToDate => '=',
            Action::Restore => '<',
            Action::Forget => '-',
            Action::Update => '~',
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
}

impl SnapshotRef {
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
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
}

impl Summary {
    fn of(changes: &[ResourceChange]) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
            match change.action {
                Action::BackUp => summary.to_back_up += 1,
                Action::Restore => summary.to_restore += 1,
                Action::UpToDate => summary.unchanged += 1,
                Action::Forget => summary.to_forget += change.forget.len(),
                Action::Update => summary.to_update += 1,
            }
        }
        summary
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action.is_change())
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
        }
    }

    /// The saved form (`plan --out FILE`): the JSON, versioned.
    pub fn to_saved(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialise")
    }

    /// Reads a saved plan, refusing formats this version cannot apply faithfully.
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
        serde_json::from_value(value).map_err(|e| SavedPlanError::NotAPlan(e.to_string()))
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
        if self.basis.volumes_digest != current.volumes_digest {
            reasons
                .push("Docker volumes were created or removed since the plan was made".to_string());
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
pub fn forget_plan(requested: &[(String, SnapshotRef)], basis: Basis, now: DateTime<Utc>) -> Plan {
    let mut changes: Vec<ResourceChange> = Vec::new();
    for (resource, snapshot) in requested {
        let existing = changes.iter_mut().find(|c| {
            &c.address == resource && c.repositories.first() == Some(&snapshot.repository)
        });
        let change = match existing {
            Some(change) => change,
            None => {
                let mut change = ResourceChange::new(resource.clone(), Action::Forget);
                change.reasons.push("named on the command line".to_string());
                change.repositories.push(snapshot.repository.clone());
                changes.push(change);
                changes.last_mut().expect("just pushed")
            }
        };
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
