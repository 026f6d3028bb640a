//! Forget plans for snapshots named by id (`forget ID…`). What retention
//! forgets is a backup-kind planning with `retention_only` (see
//! [`super::backup`]).

use super::{Loaded, PlanningError};
use crate::apply::{self, NamedRepository, OpenSettings};
use crate::plan::{self, Basis, Plan, SnapshotRef};
use chrono::Utc;

/// The snapshots the user named.
#[derive(Debug, Clone, Default)]
pub struct ForgetRequest {
    /// Snapshot ids or unique id prefixes, as typed.
    pub snapshots: Vec<String>,
    /// `--repository NAME`: look in that repository only.
    pub repository: Option<String>,
}

/// A plan to forget the snapshots named, and what it was made from.
pub struct ForgetPlanning {
    pub repositories: Vec<NamedRepository>,
    pub plan: Plan,
    /// Named snapshot files that do not load (their resource is unknown,
    /// so they are no change of the plan): forgotten beside it.
    pub damaged: Vec<SnapshotRef>,
}

/// Finds the snapshots `request` names in `loaded`'s repositories; unknown
/// and ambiguous ids are errors.
pub fn plan_forget(
    loaded: &Loaded,
    request: &ForgetRequest,
    settings: &OpenSettings,
) -> Result<ForgetPlanning, PlanningError> {
    let repositories = apply::open_repositories(&loaded.spec, settings)?;
    let (requested, damaged) = apply::find_snapshots_to_forget(
        &repositories,
        &request.snapshots,
        request.repository.as_deref(),
    )?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        engine_digest: String::new(),
    };
    Ok(ForgetPlanning {
        plan: plan::forget_plan(&requested, basis, Utc::now()),
        repositories,
        damaged,
    })
}
