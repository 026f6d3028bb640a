//! What every change of one apply run shares — the spec, the engines,
//! how repositories are opened, the run's id, its events, its cancellation,
//! the quiescer and the restore journal — and what a kind handler may ask
//! of it while copying: the snapshot source to record, steps and progress
//! as events. The loop over a plan's changes and their outcomes is
//! [`super::run`]'s; this module knows nothing of outcomes.

use super::Engines;
use super::{Event, OpenSettings, VolumeAccess};
use crate::plan::{Action, ResourceChange};
use crate::repo::{ExcludeRules, Progress, SnapshotSource};
use crate::spec::{Consistency, Resource, Spec};
use std::time::Instant;

/// Tag of the snapshot `restore --replace` takes of a volume's content before
/// replacing it, so a replace never loses data.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

pub(crate) type Events<'a> = &'a (dyn Fn(Event) + Sync);

/// What every change of one apply run shares.
pub struct Run<'a> {
    pub spec: &'a Spec,
    pub engines: &'a Engines,
    pub settings: &'a OpenSettings,
    pub access: VolumeAccess,
    /// Digest of the spec, stored in each snapshot.
    pub spec_digest: &'a str,
    /// Stored in every snapshot this run writes (one moment of the host).
    pub run_id: String,
    pub events: Events<'a>,
    /// Fired on SIGINT/SIGTERM: transfers with the engine stop at once, so
    /// the engine lets go of the helper containers the cleanup removes.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Stops and pauses of services around copies, and their journal.
    pub quiescer: &'a super::Quiescer,
    /// The targets restores are writing, and their journal.
    pub restores: &'a super::RestoreJournal,
    /// The plan's `KEY=VALUE` tags (`apply --tag`), stored in every backup
    /// snapshot this run takes (not in the safety copies of restores).
    pub tags: &'a [String],
}

/// A new run id: when it started, readable, and unique.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        hex::encode(rand::random::<[u8; 4]>())
    )
}

impl Run<'_> {
    /// The snapshot source of `change`'s resource, as this run records it:
    /// `tags` and, for backups, the run's tags.
    pub(crate) fn source(
        &self,
        change: &ResourceChange,
        name: &str,
        mut tags: Vec<String>,
    ) -> SnapshotSource {
        if change.action == Action::BackUp {
            tags.extend(self.tags.iter().cloned());
        }
        SnapshotSource {
            resource: change.address.to_string(),
            kind: change.kind().keyword().to_string(),
            name: name.to_string(),
            tags,
            spec_digest: Some(self.spec_digest.to_string()),
            run: Some(self.run_id.clone()),
            version: None,
            consistency: self.consistency_of(change).map(|c| c.keyword().to_string()),
            excludes: self.excludes_of(change),
        }
    }

    /// What a backup leaves out of the change's volume or bind (the
    /// spec's rules). Nothing for other kinds, and for the safety copies
    /// restores take: they keep what a replace removes, excluded files too.
    fn excludes_of(&self, change: &ResourceChange) -> ExcludeRules {
        if change.action != Action::BackUp {
            return ExcludeRules::default();
        }
        self.spec
            .resource(&change.address)
            .and_then(|r| r.excludes().cloned())
            .unwrap_or_default()
    }

    /// The consistency a backup copies the change's volume or bind under
    /// (what the spec asks: quiescing happens around every backup copy).
    /// `None` for other kinds, and for the safety copies restores take,
    /// which quiesce nothing.
    fn consistency_of(&self, change: &ResourceChange) -> Option<Consistency> {
        if change.action != Action::BackUp {
            return None;
        }
        match self.spec.resource(&change.address)? {
            Resource::Volume(volume) => Some(volume.consistency),
            Resource::Bind(bind) => Some(bind.consistency),
            Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => None,
        }
    }

    pub(crate) fn step(&self, change: &ResourceChange, message: String) {
        (self.events)(Event::ResourceStep {
            address: change.address.to_string(),
            message,
        })
    }

    /// Progress as events, at most five a second: enough for a bar, few
    /// enough for a JSON event stream of a volume with a million files.
    pub(crate) fn progress(&self, change: &ResourceChange) -> impl Fn(Progress) + Sync + '_ {
        let address = change.address.to_string();
        let last = std::sync::Mutex::new(Instant::now());
        move |progress: Progress| {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < std::time::Duration::from_millis(200) {
                return;
            }
            *last = Instant::now();
            (self.events)(Event::Progress {
                address: address.clone(),
                files: progress.files,
                bytes: progress.bytes,
            })
        }
    }
}
