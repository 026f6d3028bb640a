//! The restore journal: which targets (volumes, bind directories) a
//! restore is writing. A record is written, and synced, after the safety
//! snapshot and before the first change to the target, and removed once
//! the target holds the whole snapshot. A record that outlives its restore
//! (killed, even by SIGKILL, or stopped by an error) marks the target as
//! holding a partial restore: the next restore plan restores it again,
//! and backup plans refuse to back it up.
//!
//! Records hold no target names (they may be sensitive): a target is known
//! by a digest of its engine, kind and name, which is also the file's name.

use super::ApplyError;
use crate::host::ProcessId;
use crate::plan::{InterruptedRestore, LiveResource};
use crate::spec::{Address, ResourceKind, Spec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where, under the spec directory's state directory, the journal lives.
pub const JOURNAL_DIR: &str = "restoring";

/// One record: a target this process began to restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    resource: String,
    snapshot: String,
    started: chrono::DateTime<chrono::Utc>,
    host: String,
    process: String,
}

/// This process's restores in progress, and their journal.
pub struct RestoreJournal {
    dir: PathBuf,
    /// Resources whose record this process wrote and has not removed.
    in_progress: Mutex<Vec<String>>,
}

/// What a record is about: the resource's target on its engine.
pub(crate) struct Target<'a> {
    pub engine: &'a str,
    pub kind: &'a str,
    /// The Docker volume's name, the bind's directory.
    pub name: &'a str,
}

impl RestoreJournal {
    /// The journal in `state_dir/restoring` (the spec directory's `.lifeboat`).
    pub fn new(state_dir: &Path) -> RestoreJournal {
        RestoreJournal {
            dir: state_dir.join(JOURNAL_DIR),
            in_progress: Mutex::new(Vec::new()),
        }
    }

    fn path(&self, target: &Target<'_>) -> PathBuf {
        let digest = Sha256::digest(
            format!("{}\0{}\0{}", target.engine, target.kind, target.name).as_bytes(),
        );
        self.dir
            .join(format!("{}.json", &hex::encode(digest)[..24]))
    }

    fn in_progress(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.in_progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `resource`'s target is about to be changed by a restore
    /// of `snapshot`; called before its first change.
    pub(crate) fn begin(
        &self,
        resource: &Address,
        target: &Target<'_>,
        snapshot: &str,
    ) -> Result<(), ApplyError> {
        let process = ProcessId::current();
        let record = Record {
            resource: resource.to_string(),
            snapshot: snapshot.to_string(),
            started: chrono::Utc::now(),
            host: process.host.clone(),
            process: process.token(),
        };
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        super::quiesce::write_record(
            &self.dir,
            &self.path(target),
            &json,
            &format!("recording the restore of {resource}"),
        )?;
        let mut in_progress = self.in_progress();
        if !in_progress.contains(&record.resource) {
            in_progress.push(record.resource);
        }
        Ok(())
    }

    /// The target holds the whole snapshot: its record goes.
    pub(crate) fn finish(&self, resource: &Address, target: &Target<'_>) -> Result<(), ApplyError> {
        let path = self.path(target);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ApplyError::Io {
                    context: format!(
                        "removing the record of the finished restore of {resource} ({})",
                        path.display()
                    ),
                    source,
                });
            }
        }
        let resource = resource.to_string();
        self.in_progress().retain(|r| *r != resource);
        Ok(())
    }

    /// The resources this process began to restore and has not finished
    /// (what a signal leaves incomplete).
    pub fn unfinished(&self) -> Vec<String> {
        self.in_progress().clone()
    }

    /// The volumes and binds of `spec` whose target holds a partial restore
    /// (a record outlived its restore). A record is untrusted: one that
    /// does not read, or names another resource, is passed over.
    pub fn incomplete(&self, spec: &Spec) -> BTreeMap<Address, InterruptedRestore> {
        let volumes = spec.volumes.iter().map(|v| {
            let address = Address::new(ResourceKind::Volume, v.name.clone());
            (address, "volume", v.volume_name.clone())
        });
        let binds = spec.binds.iter().map(|b| {
            let address = Address::new(ResourceKind::Bind, b.name.clone());
            (address, "bind", b.path.display().to_string())
        });
        let mut found = BTreeMap::new();
        for (address, kind, name) in volumes.chain(binds) {
            let engine = spec.engine_name(&address);
            let target = Target {
                engine,
                kind,
                name: &name,
            };
            let Ok(bytes) = std::fs::read(self.path(&target)) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
                continue;
            };
            if record.resource != address.to_string() {
                continue;
            }
            found.insert(
                address,
                InterruptedRestore {
                    snapshot: crate::plan::short_id(&record.snapshot),
                    started: record.started,
                },
            );
        }
        found
    }
}

/// Refuses the backup of each resource in `incomplete` that could
/// otherwise be backed up: its target holds a partial restore, and a copy
/// of it would be stored as if it were the resource's content.
pub fn refuse_partial_restores(
    live: &mut BTreeMap<Address, LiveResource>,
    incomplete: &BTreeMap<Address, InterruptedRestore>,
) {
    for (address, interrupted) in incomplete {
        let Some(resource) = live.get_mut(address) else {
            continue;
        };
        if resource.problem.is_none() {
            resource.problem = Some(format!(
                "it holds a partial restore (a restore of snapshot {} was interrupted at {}): a \
                 backup would store a torn copy. Finish the restore first: `lifeboat restore \
                 --target {address}`",
                interrupted.snapshot,
                interrupted.started.format("%Y-%m-%d %H:%M:%S UTC"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::VolumeSpec;

    fn spec(volume_name: &str) -> Spec {
        Spec {
            volumes: vec![VolumeSpec::new("data", volume_name)],
            ..Spec::default()
        }
    }

    #[test]
    fn a_record_outlives_an_unfinished_restore_and_only_marks_its_own_target() {
        let state = tempfile::tempdir().unwrap();
        let address = Address::new(ResourceKind::Volume, "data");
        let target = Target {
            engine: crate::spec::DEFAULT_ENGINE,
            kind: "volume",
            name: "app_data",
        };
        let journal = RestoreJournal::new(state.path());
        journal.begin(&address, &target, "8c2e41f0aabbcc").unwrap();
        assert_eq!(journal.unfinished(), vec!["volume.data".to_string()]);
        // Another process (the next run) reads what this one left.
        let next = RestoreJournal::new(state.path());
        let found = next.incomplete(&spec("app_data"));
        assert_eq!(found[&address].snapshot, "8c2e41f0");
        // The same resource now naming another volume is not that target.
        assert!(next.incomplete(&spec("other_volume")).is_empty());
        // A record is untrusted: garbage is passed over, never a panic.
        let files: Vec<_> = std::fs::read_dir(state.path().join(JOURNAL_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains("app_data"), "no target names in the journal");
        std::fs::write(&files[0], b"{not json").unwrap();
        assert!(next.incomplete(&spec("app_data")).is_empty());

        journal.begin(&address, &target, "8c2e41f0aabbcc").unwrap();
        journal.finish(&address, &target).unwrap();
        assert!(journal.unfinished().is_empty());
        assert!(next.incomplete(&spec("app_data")).is_empty());
    }

    #[test]
    fn a_partial_restore_refuses_its_backup() {
        let address = Address::new(ResourceKind::Volume, "data");
        let mut live: BTreeMap<Address, LiveResource> = [(
            address.clone(),
            LiveResource {
                problem: None,
                ..LiveResource::problem(String::new())
            },
        )]
        .into();
        let incomplete = [(
            address.clone(),
            InterruptedRestore {
                snapshot: "8c2e41f0".into(),
                started: chrono::Utc::now(),
            },
        )]
        .into();
        refuse_partial_restores(&mut live, &incomplete);
        let problem = live[&address].problem.clone().unwrap();
        assert!(problem.contains("partial restore"), "{problem}");
        assert!(
            problem.contains("lifeboat restore --target volume.data"),
            "{problem}"
        );
    }
}
