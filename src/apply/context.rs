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
    /// What each copy under way counts to, for the pace of its progress
    /// events (`ProgressTotals::default()` for a new run).
    pub totals: ProgressTotals,
}

/// What a copy's progress counts to: the content's size when it is known
/// before reading, an estimate (the previous snapshot's size, the engine's
/// size of an image), or nothing (a first dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedBytes {
    pub bytes: u64,
    /// The content may turn out larger or smaller.
    pub estimate: bool,
}

impl ExpectedBytes {
    pub fn exact(bytes: u64) -> Self {
        ExpectedBytes {
            bytes,
            estimate: false,
        }
    }

    pub fn estimate(bytes: u64) -> Self {
        ExpectedBytes {
            bytes,
            estimate: true,
        }
    }
}

/// The expected bytes of each copy under way, by resource address (one
/// copy of a resource runs at a time): set when a copy starts, read by
/// its progress.
#[derive(Debug, Default)]
pub struct ProgressTotals(std::sync::Mutex<std::collections::HashMap<String, Option<u64>>>);

impl ProgressTotals {
    fn set(&self, address: &str, expected: Option<ExpectedBytes>) {
        let mut totals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        totals.insert(address.to_string(), expected.map(|e| e.bytes));
    }

    fn get(&self, address: &str) -> Option<u64> {
        let totals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        totals.get(address).copied().flatten()
    }
}

/// When a copy's progress becomes an event: a quarter of a second after
/// the last one, or sooner once a twentieth of the expected bytes (at
/// least 1 MiB, at most 64 MiB) went by. Enough for a bar that moves
/// smoothly, few enough for a JSON event stream of a volume with a million
/// files (the repository reports every file and every chunk).
#[derive(Debug)]
pub(crate) struct ProgressPace {
    last_at: Instant,
    last_bytes: u64,
    step: u64,
}

impl ProgressPace {
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
    const MIN_STEP: u64 = 1 << 20;
    const MAX_STEP: u64 = 64 << 20;

    pub(crate) fn new(expected: Option<u64>, now: Instant) -> Self {
        ProgressPace {
            last_at: now,
            last_bytes: 0,
            step: expected.map_or(Self::MAX_STEP, |total| {
                (total / 20).clamp(Self::MIN_STEP, Self::MAX_STEP)
            }),
        }
    }

    /// Whether progress at `bytes` (at `now`) is worth an event; if so it
    /// is the new reference.
    pub(crate) fn due(&mut self, bytes: u64, now: Instant) -> bool {
        let due = now.duration_since(self.last_at) >= Self::INTERVAL
            || bytes.saturating_sub(self.last_bytes) >= self.step;
        if due {
            self.last_at = now;
            self.last_bytes = bytes;
        }
        due
    }
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

    /// Records what the copy of `change` that starts now counts to.
    pub(crate) fn expect(&self, change: &ResourceChange, expected: Option<ExpectedBytes>) {
        self.totals.set(&change.address.to_string(), expected);
    }

    /// Progress of the copy of `change` under way as events, at the pace
    /// [`ProgressPace`] keeps.
    pub(crate) fn progress(&self, change: &ResourceChange) -> impl Fn(Progress) + Sync + '_ {
        let address = change.address.to_string();
        let pace =
            std::sync::Mutex::new(ProgressPace::new(self.totals.get(&address), Instant::now()));
        move |progress: Progress| {
            let mut pace = pace.lock().unwrap_or_else(|p| p.into_inner());
            if !pace.due(progress.bytes, Instant::now()) {
                return;
            }
            (self.events)(Event::Progress {
                address: address.clone(),
                files: progress.files,
                bytes: progress.bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProgressPace;
    use std::time::{Duration, Instant};

    #[test]
    fn progress_is_an_event_every_twentieth_of_the_total_or_quarter_second() {
        let start = Instant::now();
        let mut pace = ProgressPace::new(Some(100 << 20), start);
        // 5 MiB steps of a 100 MiB copy, read in 64 KiB pieces at once.
        let due: Vec<u64> = (1..=1600u64)
            .map(|piece| piece << 16)
            .filter(|bytes| pace.due(*bytes, start))
            .collect();
        assert_eq!(due.len(), 20, "{due:?}");
        assert!(due.iter().all(|bytes| bytes % (5 << 20) == 0), "{due:?}");
        // Time alone makes an event once a quarter second passed.
        assert!(!pace.due((100 << 20) + 1, start + Duration::from_millis(100)));
        assert!(pace.due((100 << 20) + 2, start + Duration::from_millis(300)));
        // A small or unknown total: at least 1 MiB, at most 64 MiB a step.
        let mut small = ProgressPace::new(Some(1000), start);
        assert!(!small.due(1000, start));
        assert!(small.due(1 << 20, start));
        let mut unknown = ProgressPace::new(None, start);
        assert!(!unknown.due((64 << 20) - 1, start));
        assert!(unknown.due(64 << 20, start));
    }
}
