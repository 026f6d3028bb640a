//! One handler per kind of resource: how a change of that kind is backed
//! up and restored. The execution loop ([`super::run`]) decides order,
//! skipping and outcomes; a handler only does its kind's copy. Adding a
//! kind is a file here and one line in [`handler`].

mod bind;
mod dump;
mod image;
mod service;
mod tree;
mod volume;

pub use service::inspect_service_document;

use super::report::CopyOutcome;
use super::{Engines, Run};
use crate::plan::{LiveResource, ResourceChange, RestoreObservation};
use crate::repo::Repository;
use crate::spec::{Address, ResourceKind, Spec};

/// What observing a resource may look at: the spec and the engines.
pub(crate) struct Observer<'a> {
    pub spec: &'a Spec,
    pub engines: &'a Engines,
    /// What the restore being planned restores (empty for backups): a
    /// target that is missing now may be created earlier in the same run.
    pub restoring: &'a [Address],
}

impl Observer<'_> {
    /// The engine a resource lives on, or why it is not available.
    pub fn engine(
        &self,
        address: &Address,
    ) -> Result<&std::sync::Arc<dyn crate::engine::Engine>, super::ApplyError> {
        let name = self
            .spec
            .engine_of(address)
            .unwrap_or(crate::plan::DEFAULT_ENGINE);
        self.engines.get(name)
    }
}

/// A restore observation without its snapshot (chosen by the caller), and
/// the fingerprint of what is on the engine (for the plan's basis).
pub(crate) struct RestoreTarget {
    pub observation: RestoreObservation,
    pub fingerprint: String,
}

impl RestoreTarget {
    /// A target the engine could not tell about (the restore plan shows
    /// `message` as the resource's problem).
    pub fn unknown(message: String) -> RestoreTarget {
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target: Err(message),
                what: String::new(),
                detail: crate::plan::Detail::None,
            },
            fingerprint: "(unreachable)".into(),
        }
    }
}

/// The change's resource as the spec declares it (never as the plan names
/// it: names there may be redacted) and the engine it lives on; `pick`
/// takes the kind's spec out of the resource.
pub(crate) fn resolve<'r, T>(
    run: &'r Run<'_>,
    change: &ResourceChange,
    pick: fn(crate::spec::Resource<'r>) -> Option<&'r T>,
) -> Result<(&'r T, &'r std::sync::Arc<dyn crate::engine::Engine>), super::ApplyError> {
    let spec: &'r Spec = run.spec;
    let resource = spec
        .resource(&change.address)
        .and_then(pick)
        .ok_or_else(|| {
            super::ApplyError::Snapshot(format!(
                "the plan names {}, which the spec no longer declares",
                change.address
            ))
        })?;
    let engine = run.engines.get(
        change
            .engine
            .as_deref()
            .unwrap_or(crate::plan::DEFAULT_ENGINE),
    )?;
    Ok((resource, engine))
}

/// One failed copy per repository, all for the same reason (the resource
/// could not be resolved before any copy began).
pub(crate) async fn failed_copies(
    run: &Run<'_>,
    change: &ResourceChange,
    repositories: &[(String, &Repository)],
    error: &super::ApplyError,
) -> Vec<CopyOutcome> {
    let mut outcomes = Vec::new();
    for (name, _) in repositories {
        let error = super::ApplyError::Snapshot(error.to_string());
        outcomes.push(run.copy(change, name, None, async { Err(error) }).await);
    }
    outcomes
}

/// What one copy stored (backup) or read (restore).
#[derive(Debug, Clone, Default)]
pub(crate) struct Copied {
    pub snapshot: String,
    pub files: u64,
    pub bytes: u64,
    pub read_bytes: u64,
    pub added_bytes: u64,
    /// What the copy could not carry exactly (file trees).
    pub notes: Vec<crate::repo::TreeNote>,
}

#[async_trait::async_trait]
pub(crate) trait KindHandler: Sync {
    /// What the engine says about the resource before a backup, and a
    /// fingerprint of the engine object (it changes when the object is
    /// recreated: a saved plan is then stale).
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String);

    /// What a restore of the resource would find where it writes, when
    /// restoring `chosen` (the snapshot and its repository; `None` when
    /// there is none).
    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget;

    /// Backs the change's resource up into each of `repositories` (opened,
    /// named); one outcome per repository. Whatever the resource needs
    /// around the copy (quiescing a service) happens once, around all of them.
    async fn back_up(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
        repositories: &[(String, &Repository)],
    ) -> Vec<CopyOutcome>;

    /// Restores the change's snapshot from `repository`.
    async fn restore(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
        repository_name: &str,
        repository: &Repository,
    ) -> CopyOutcome;
}

/// The handler of a kind; `None` for kinds this version does not act on
/// (plans never give them `+` or `<` changes, see `plan::backs_up`).
pub(crate) fn handler(kind: ResourceKind) -> Option<&'static dyn KindHandler> {
    match kind {
        ResourceKind::Volume => Some(&volume::VolumeHandler),
        ResourceKind::Bind => Some(&bind::BindHandler),
        ResourceKind::Image => Some(&image::ImageHandler),
        ResourceKind::Service => Some(&service::ServiceHandler),
        ResourceKind::Dump => Some(&dump::DumpHandler),
        _ => None,
    }
}
