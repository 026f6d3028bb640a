//! apply: executes a [`Plan`] with the Docker engine and the repositories, in
//! the plan's (the graph's) order, reporting through [`Event`]s.
//!
//! This is the only module where `engine` and `repo` meet. It decides nothing
//! the plan has not decided, and it never prints: `cli` renders the events.

mod execute;
mod observe;
mod stream;
pub mod workspace;

pub use execute::{
    ApplyReport, BackupContext, PruneOutcome, ResourceOutcome, run_backup, run_forget, run_restore,
};
pub use observe::{
    RestoreSelection, backup_observations, check_volumes_exist, find_snapshots,
    find_snapshots_to_forget, last_applied_state, repository_basis, restore_observations,
    volumes_digest,
};
pub use workspace::{NamedRepository, OpenSettings, open_repositories, repository_names};

use crate::engine::EngineError;
use crate::repo::RepoError;
use serde::Serialize;
use std::time::Duration;

/// How volume content is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeAccess {
    /// Through the Docker API (archive endpoints of a helper container):
    /// works with any engine, local or remote.
    #[default]
    Api,
    /// Straight from the volume's mountpoint, when lifeboat runs on the
    /// engine's host: faster, same snapshot content.
    Direct,
    /// Direct when the mountpoint is reachable here, else the API.
    Auto,
}

/// Progress and results of an apply, in the order they happen.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ResourceStarted {
        address: String,
        action: crate::plan::Action,
        repository: String,
        /// Bytes expected (from the previous snapshot), for progress bars.
        expected_bytes: Option<u64>,
    },
    /// A step inside a resource ("safety snapshot of the current content", "recreating volume").
    ResourceStep {
        address: String,
        message: String,
    },
    Progress {
        address: String,
        files: u64,
        bytes: u64,
    },
    ResourceFinished {
        address: String,
        repository: String,
        snapshot: String,
        files: u64,
        bytes: u64,
        added_bytes: u64,
        #[serde(with = "seconds")]
        elapsed: Duration,
    },
    ResourceFailed {
        address: String,
        error: String,
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
    #[error(
        "repository.{repository}: the passphrase variable {env} is not set ({at}); export it \
         before running lifeboat"
    )]
    MissingPassphrase {
        repository: String,
        env: String,
        at: String,
    },
    #[error("{what}: {message}")]
    Unsupported { what: String, message: String },
    #[error(
        "{address}: Docker volume {docker_name:?} does not exist ({at}); create it or fix `name`"
    )]
    VolumeMissing {
        address: String,
        docker_name: String,
        at: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Snapshot(String),
    #[error(
        "{volume}: direct access needs the volume's mountpoint on this host ({mountpoint}); run \
         lifeboat on the engine's host as root, or use --access api"
    )]
    NoDirectAccess { volume: String, mountpoint: String },
}
