//! apply: executes a [`Plan`] with the Docker engine and the repositories, in
//! the plan's (the graph's) order, reporting through [`Event`]s.
//!
//! This is the only module where `engine` and `repo` meet. It decides nothing
//! the plan has not decided, and it never prints: `cli` renders the events.

mod context;
pub mod drill;
mod engines;
pub mod guards;
pub(crate) mod kinds;
mod notices;
mod observe;
pub mod placement;
pub mod quiesce;
mod records;
mod report;
mod restoring;
mod retention;
mod run;
pub mod run_lock;
mod stream;
pub mod workspace;

pub use context::{ExpectedBytes, PRE_RESTORE_TAG, ProgressTotals, Run, new_run_id};
pub use engines::Engines;
pub use kinds::inspect_service_document;
pub use notices::notify_end_of_run;
pub use observe::{
    RestoreObserved, RestoreSelection, SnapshotRow, backup_live, backup_observations,
    damaged_snapshot_files, find_snapshots, find_snapshots_to_forget, image_layers,
    last_applied_state, list_snapshots, new_repositories, observe_restores, remember_snapshots,
    repository_basis, restore_observations, unreachable_repositories,
};
pub use quiesce::{Hold, Quiescer, RecoverReport, Resumed, recover};
pub use records::{RunFilter, RunListing, RunRow, list_runs};
pub use report::{
    ApplyReport, ApplySummary, ChangeOutcome, CopyOutcome, JsonLine, PlanTag, PruneOutcome, Status,
    SummaryTag,
};
pub use restoring::{RestoreJournal, refuse_partial_restores};
pub use retention::{forget_damaged, plan_prunes_after_forget, prune_after_forget, run_forget};
pub use run::{run_backup, run_restore};
pub use run_lock::{RunLock, lock_run};
pub use workspace::{
    NamedRepository, OpenSettings, open_each_repository, open_repositories,
    open_repositories_reaching, repository_backend, repository_names,
};

use crate::engine::EngineError;
use crate::repo::RepoError;
use serde::Serialize;
use std::time::Duration;

/// How volume content is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeAccess {
    /// Through the Docker API (archive endpoints of a helper container):
    /// works with any engine, local or remote.
    Api,
    /// Straight from the volume's mountpoint, when lifeboat runs on the
    /// engine's host: faster, same snapshot content.
    Direct,
    /// Direct when the mountpoint is readable here, else the API.
    #[default]
    Auto,
}

/// Progress and results of an apply, in the order they happen.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ResourceStarted {
        address: String,
        action: crate::plan::Action,
        repository: String,
        /// Bytes expected (the tree's or the snapshot's; an estimate: the
        /// previous snapshot's, the engine's size of an image), for progress
        /// bars with a percentage and time left. None: no total is known
        /// (a first dump), progress shows bytes and rate only.
        expected_bytes: Option<u64>,
        /// `expected_bytes` is an estimate: the content may turn out larger
        /// or smaller.
        #[serde(default)]
        expected_is_estimate: bool,
    },
    /// A step inside a resource ("safety snapshot of the current content", "recreating volume").
    ResourceStep { address: String, message: String },
    /// Bytes read (backups) or written (restores) so far, within files
    /// too; one every quarter second or twentieth of the expected bytes
    /// at most.
    Progress {
        address: String,
        files: u64,
        bytes: u64,
    },
    ResourceFinished {
        address: String,
        action: crate::plan::Action,
        repository: String,
        snapshot: String,
        files: u64,
        bytes: u64,
        /// Bytes read from the source (less than `bytes` when the
        /// file-metadata cache vouched for unchanged files).
        read_bytes: u64,
        added_bytes: u64,
        /// What the copy could not carry exactly.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<crate::repo::TreeNote>,
        /// Seconds.
        #[serde(with = "seconds")]
        #[schemars(with = "f64")]
        elapsed: Duration,
    },
    ResourceFailed {
        address: String,
        class: crate::failure::FailureClass,
        error: String,
    },
    /// Not attempted because a change it depends on did not succeed.
    ResourceSkipped { address: String, because: String },
    /// `service` is about to be stopped or paused for the copy of `address`
    /// (recorded first, so even a killed run's next run undoes it).
    ServiceQuiesced {
        address: String,
        service: String,
        container: String,
        hold: quiesce::Hold,
    },
    /// `service` runs again after the copy of `address`; it was stopped or
    /// paused for `seconds`.
    ServiceResumed {
        address: String,
        service: String,
        container: String,
        hold: quiesce::Hold,
        seconds: f64,
    },
    /// Containers a lifeboat process that is gone had stopped or paused,
    /// started or unpaused again.
    ServicesRecovered {
        resumed: Vec<quiesce::Resumed>,
        /// Records that could not be acted on, and why (they are kept).
        errors: Vec<String>,
    },
    /// Helper containers of lifeboat processes that are gone, removed.
    LeftoversRemoved {
        engine: String,
        containers: Vec<String>,
    },
    /// Retention forgot these snapshots of `address` in `repository`.
    Forgotten {
        address: String,
        repository: String,
        snapshots: Vec<String>,
    },
    /// Prune removed the data no snapshot needs any more.
    Pruned {
        repository: String,
        #[serde(flatten)]
        stats: crate::repo::PruneStats,
    },
    /// A `notify` block was sent what the run did (or a healthchecks
    /// check pinged); `error` says why it was not delivered, which fails
    /// nothing.
    Notified {
        #[serde(flatten)]
        delivery: crate::notify::Delivery,
    },
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("repository.{name} ({location}): {source}")]
    Repository {
        name: String,
        location: String,
        #[source]
        source: Box<RepoError>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A repository error inside a copy (the copy's outcome names the repository).
    #[error(transparent)]
    Store(Box<RepoError>),
    #[error(
        "repository.{repository}: the passphrase variable {env} is not set ({at}); export it \
         before running lifeboat"
    )]
    MissingPassphrase {
        repository: String,
        env: String,
        at: String,
    },
    #[error("repository.{repository}: {problem} ({at})")]
    MissingCredential {
        repository: String,
        problem: String,
        at: String,
    },
    #[error(
        "the default repository's passphrase is in {file}, and {env} holds a different one: \
         lifeboat will not guess. Unset {env}, or (if {env} is the right one and the file a \
         mistake) move the file away"
    )]
    PassphraseConflict { file: String, env: String },
    #[error("{what}: {message}")]
    Unsupported { what: String, message: String },
    /// The directory a restore would empty or write is one of those
    /// [`guards`] protects.
    #[error("{what}: refused: {message}")]
    Guarded { what: String, message: String },
    #[error("engine.{name}: {message}")]
    EngineUnavailable { name: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// What the change acts on is not there (a Docker object, a directory,
    /// a snapshot, a resource the spec no longer declares).
    #[error("{0}")]
    ResourceMissing(String),
    /// A command lifeboat ran failed: a hook, a dump or load command, a
    /// verify command, a container that would not stop or start.
    #[error("{0}")]
    CommandFailed(String),
    /// Stored or restored data does not match what names it.
    #[error("{0}")]
    Integrity(String),
    /// A safety check refused it; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The run was interrupted before this finished.
    #[error("{0}")]
    Interrupted(String),
    /// A failure passed on with more said about it: the class stays.
    #[error("{0}")]
    Failed(crate::failure::Failure),
    #[error(
        "another lifeboat run is acting on this spec: {holder} holds {path}. Wait for it to \
         finish (pass --lock-timeout 10m to wait that long)"
    )]
    RunLocked { holder: String, path: String },
    #[error(
        "{volume}: direct access needs the volume's mountpoint on this host ({mountpoint}); run \
         lifeboat on the engine's host as root, or use --access api"
    )]
    NoDirectAccess { volume: String, mountpoint: String },
}

impl ApplyError {
    /// What kind of failure this is (see [`crate::failure`]).
    pub fn class(&self) -> crate::failure::FailureClass {
        use crate::failure::FailureClass as C;
        match self {
            ApplyError::Repository { source, .. } => source.class(),
            ApplyError::Store(source) => source.class(),
            ApplyError::Engine(source) => source.class(),
            ApplyError::MissingPassphrase { .. }
            | ApplyError::MissingCredential { .. }
            | ApplyError::PassphraseConflict { .. }
            | ApplyError::RunLocked { .. } => C::RepositoryUnavailable,
            ApplyError::Unsupported { .. } | ApplyError::NoDirectAccess { .. } => C::Unsupported,
            ApplyError::Guarded { .. } => C::Refused,
            ApplyError::EngineUnavailable { .. } => C::EngineUnreachable,
            ApplyError::Io { source, .. } => crate::failure::io_class(source),
            ApplyError::ResourceMissing(_) => C::ResourceMissing,
            ApplyError::CommandFailed(_) => C::CommandFailed,
            ApplyError::Integrity(_) => C::Integrity,
            ApplyError::Refused(_) => C::Refused,
            ApplyError::Interrupted(_) => C::Interrupted,
            ApplyError::Failed(failure) => failure.class,
        }
    }

    /// The failure as a value: its class and its message.
    pub fn failure(&self) -> crate::failure::Failure {
        crate::failure::Failure::new(self.class(), self.to_string())
    }

    /// This failure, its message put in context by `context` (the class stays).
    pub fn in_context(self, context: impl FnOnce(String) -> String) -> ApplyError {
        let class = self.class();
        ApplyError::Failed(crate::failure::Failure::new(
            class,
            context(self.to_string()),
        ))
    }
}

impl From<RepoError> for ApplyError {
    fn from(error: RepoError) -> Self {
        ApplyError::Store(Box::new(error))
    }
}

#[cfg(test)]
mod forget_tests;
#[cfg(test)]
mod tests;
