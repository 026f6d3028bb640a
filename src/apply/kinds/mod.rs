//! One handler per kind of resource: how a change of that kind is backed
//! up and restored. The execution loop ([`super::run`]) decides order,
//! skipping and outcomes; a handler only does its kind's copy. Adding a
//! kind is a file here and one line in [`handler`].

mod volume;

use super::Run;
use super::report::CopyOutcome;
use crate::plan::ResourceChange;
use crate::repo::Repository;
use crate::spec::ResourceKind;

/// What one copy stored (backup) or read (restore).
#[derive(Debug, Clone, Default)]
pub(crate) struct Copied {
    pub snapshot: String,
    pub files: u64,
    pub bytes: u64,
    pub read_bytes: u64,
    pub added_bytes: u64,
}

#[async_trait::async_trait]
pub(crate) trait KindHandler: Sync {
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
        _ => None,
    }
}
