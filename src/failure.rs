//! Why something failed, as a value: the class every failure of a run is
//! put in, so exit codes, run records, metrics, alerts and retries act on
//! the class and only people read the message.
//!
//! Owns the classes and how the errors of `repo` and `engine` map onto
//! them; it knows nothing of plans or the CLI. A class is stored in run
//! records, so classes are only ever added (a record of a newer version
//! with a class this one does not know reads as [`FailureClass::Other`]).

use serde::{Deserialize, Serialize};

/// The kind of a failure, coarse enough to act on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The Docker engine could not be reached (socket, TCP, TLS).
    EngineUnreachable,
    /// What the change acts on is not there: a Docker object, a directory,
    /// a resource the spec no longer declares, a snapshot.
    ResourceMissing,
    /// A command lifeboat ran failed: a hook, a dump or restore command, a
    /// container that would not start or stop.
    CommandFailed,
    /// The repository cannot be used: missing, locked, wrong or missing
    /// passphrase, out of space, not writable.
    RepositoryUnavailable,
    /// A failure that may pass by itself: a timeout, a reset connection, a
    /// server error. Trying again later is the remedy.
    Transient,
    /// Stored data is damaged or does not match what names it.
    Integrity,
    /// The run was interrupted (SIGINT, SIGTERM) before this finished.
    Interrupted,
    /// A safety check refused it (a guard, the plan's `!`): nothing was
    /// changed, and the message says what to do.
    Refused,
    /// What this version, this host or this engine cannot do.
    Unsupported,
    /// Anything else (an I/O error on this host, an engine error without a
    /// better class).
    #[serde(other)]
    Other,
}

impl FailureClass {
    /// The word used in JSON, records and metrics labels.
    pub fn keyword(self) -> &'static str {
        match self {
            FailureClass::EngineUnreachable => "engine_unreachable",
            FailureClass::ResourceMissing => "resource_missing",
            FailureClass::CommandFailed => "command_failed",
            FailureClass::RepositoryUnavailable => "repository_unavailable",
            FailureClass::Transient => "transient",
            FailureClass::Integrity => "integrity",
            FailureClass::Interrupted => "interrupted",
            FailureClass::Refused => "refused",
            FailureClass::Unsupported => "unsupported",
            FailureClass::Other => "other",
        }
    }

    /// Whether running again later, unchanged, may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureClass::Transient | FailureClass::EngineUnreachable | FailureClass::Interrupted
        )
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A failure: its class and the message people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The class of an I/O error: timeouts and broken connections may pass.
pub fn io_class(error: &std::io::Error) -> FailureClass {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::TimedOut
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::ConnectionRefused
        | K::BrokenPipe
        | K::Interrupted
        | K::WouldBlock => FailureClass::Transient,
        K::NotFound => FailureClass::ResourceMissing,
        K::StorageFull => FailureClass::RepositoryUnavailable,
        _ => FailureClass::Other,
    }
}

impl crate::engine::EngineError {
    pub fn class(&self) -> FailureClass {
        use crate::engine::EngineError as E;
        match self {
            E::Unreachable { .. } => FailureClass::EngineUnreachable,
            E::VolumeNotFound(_)
            | E::ContainerNotFound(_)
            | E::ServiceImageMissing { .. }
            | E::DirectoryNotFound(_)
            | E::ImageNotFound(_) => FailureClass::ResourceMissing,
            E::VolumeInUse { .. } => FailureClass::Refused,
            E::TimedOut { .. } => FailureClass::Transient,
            E::Api { .. } => FailureClass::Other,
        }
    }
}

impl crate::repo::RepoError {
    pub fn class(&self) -> FailureClass {
        use crate::repo::RepoError as R;
        match self {
            R::NotFound(_)
            | R::Foreign(_)
            | R::WrongPassphrase(_)
            | R::PassphraseRequired(_)
            | R::NotEncrypted(_)
            | R::BadKeyFile { .. }
            | R::TooManyKeys { .. }
            | R::NoKeys(_)
            | R::TooNew { .. }
            | R::UnknownIdFunction { .. }
            | R::Locked { .. }
            | R::NoSpace { .. } => FailureClass::RepositoryUnavailable,
            R::Downgraded(_)
            | R::BadConfig { .. }
            | R::ConfigNotAuthentic { .. }
            | R::Corrupt { .. }
            | R::BadBlob { .. }
            | R::Unrestorable { .. } => FailureClass::Integrity,
            R::Io { source, .. } => match io_class(source) {
                FailureClass::Other => FailureClass::RepositoryUnavailable,
                class => class,
            },
            R::Refused(_) => FailureClass::Refused,
            R::SnapshotNotFound(_) | R::AmbiguousSnapshot(_) => FailureClass::ResourceMissing,
            R::Source(_) => FailureClass::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_the_serialised_names_and_unknown_classes_read_as_other() {
        for class in [
            FailureClass::EngineUnreachable,
            FailureClass::ResourceMissing,
            FailureClass::CommandFailed,
            FailureClass::RepositoryUnavailable,
            FailureClass::Transient,
            FailureClass::Integrity,
            FailureClass::Interrupted,
            FailureClass::Refused,
            FailureClass::Unsupported,
            FailureClass::Other,
        ] {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.keyword()));
            assert_eq!(serde_json::from_str::<FailureClass>(&json).unwrap(), class);
        }
        let future: FailureClass = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(future, FailureClass::Other);
    }
}
