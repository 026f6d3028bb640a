//! What an apply did: an outcome per change of the plan (and per repository
//! it wrote to or read from), plus what retention, prune and the settings
//! record did. Values for `cli` to render; nothing here prints.

use crate::plan::Action;
use crate::repo::PruneStats;
use crate::spec::Address;
use serde::Serialize;

/// How one change ended.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed {
        class: crate::failure::FailureClass,
        error: String,
    },
    /// Not attempted: `because` (a change it depends on failed or was skipped,
    /// or the plan marked it `!`).
    Skipped {
        because: String,
    },
}

/// One copy written (backup) or read (restore), in one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CopyOutcome {
    pub repository: String,
    /// Snapshot written or read; `None` when it failed.
    pub snapshot: Option<String>,
    pub error: Option<String>,
    /// What kind of failure `error` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<crate::failure::FailureClass>,
    /// Logical bytes of the content.
    pub bytes: u64,
    /// Bytes read from the source (backups: less than `bytes` when the
    /// file-metadata cache vouched for unchanged files).
    pub read_bytes: u64,
    pub files: u64,
    /// Bytes added to the repository (backups).
    pub added_bytes: u64,
    pub elapsed_seconds: f64,
    /// What the copy could not carry exactly (the access mode's limits,
    /// files that changed while read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<crate::repo::TreeNote>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChangeOutcome {
    pub address: Address,
    pub action: Action,
    #[serde(flatten)]
    pub status: Status,
    /// Per repository (backups write each copy; restores read one).
    pub copies: Vec<CopyOutcome>,
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PruneOutcome {
    pub repository: String,
    #[serde(flatten)]
    pub stats: PruneStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// One per backup or restore change (`+`, `<`, `!`), in plan order.
    pub changes: Vec<ChangeOutcome>,
    /// Snapshots retention forgot.
    pub forgotten: usize,
    /// Space prune gave back, per repository.
    pub pruned: Vec<PruneOutcome>,
    /// Failures of forget, prune or recording the settings.
    pub errors: Vec<String>,
    /// `~` changes recorded as applied.
    pub settings_recorded: usize,
    /// Wall time of the changes, first to last.
    pub elapsed_seconds: f64,
    /// A restore of everything the spec names (no `--target`): its time is
    /// the stack's recovery time.
    pub whole_stack: bool,
    /// What went wrong beside the changes without failing the run: a
    /// notification that was not delivered.
    pub warnings: Vec<String>,
    /// Repositories that lost snapshots in this run (what prune visits).
    #[serde(skip)]
    pub(crate) forgot_in: Vec<String>,
}

impl ApplyReport {
    fn count(&self, wanted: fn(&Status) -> bool) -> usize {
        self.changes.iter().filter(|c| wanted(&c.status)).count()
    }

    /// Changes that succeeded (a backup to two repositories counts once).
    pub fn succeeded(&self) -> usize {
        self.count(|s| matches!(s, Status::Succeeded))
    }

    /// Changes that failed, plus failures of forget, prune and recording.
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, Status::Failed { .. })) + self.errors.len()
    }

    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, Status::Skipped { .. }))
    }

    /// Whether everything the plan asked for was done.
    pub fn is_complete(&self) -> bool {
        self.failed() == 0 && self.skipped() == 0
    }

    pub fn bytes_freed(&self) -> u64 {
        self.pruned.iter().map(|p| p.stats.bytes_freed).sum()
    }

    fn copies(&self) -> impl Iterator<Item = &CopyOutcome> {
        self.changes
            .iter()
            .flat_map(|c| c.copies.iter())
            .filter(|c| c.error.is_none())
    }

    /// Bytes of content backed up or restored, counting each resource
    /// once however many copies were written.
    pub fn content_bytes(&self) -> u64 {
        self.changes
            .iter()
            .filter_map(|c| c.copies.iter().find(|copy| copy.error.is_none()))
            .map(|copy| copy.bytes)
            .sum()
    }

    /// Bytes read from the sources, over every copy.
    pub fn read_bytes(&self) -> u64 {
        self.copies().map(|c| c.read_bytes).sum()
    }

    /// Bytes added to the repositories, over every copy.
    pub fn added_bytes(&self) -> u64 {
        self.copies().map(|c| c.added_bytes).sum()
    }
}

/// The closing line of `apply --json`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApplySummary {
    /// Changes that succeeded.
    pub backed_up: usize,
    /// Changes that failed (including `!` problems), and failures of
    /// forget, prune or recording.
    pub failed: usize,
    /// Changes not attempted because a dependency did not succeed.
    pub skipped: usize,
    pub forgotten: usize,
    pub bytes_freed: u64,
    pub changes: Vec<ChangeOutcome>,
    pub errors: Vec<String>,
}

impl ApplySummary {
    pub fn of(report: &ApplyReport) -> ApplySummary {
        ApplySummary {
            backed_up: report.succeeded(),
            failed: report.failed(),
            skipped: report.skipped(),
            forgotten: report.forgotten,
            bytes_freed: report.bytes_freed(),
            changes: report.changes.clone(),
            errors: report.errors.clone(),
        }
    }
}

/// One line of `apply --json`: the plan first, then events as they
/// happen, then the summary (schemas/events.schema.json is this type's).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum JsonLine {
    Plan {
        #[serde(rename = "type")]
        kind: PlanTag,
        plan: Box<crate::plan::Plan>,
    },
    Event(super::Event),
    Summary {
        #[serde(rename = "type")]
        kind: SummaryTag,
        #[serde(flatten)]
        summary: ApplySummary,
    },
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanTag {
    Plan,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryTag {
    Summary,
}
