//! The restore journal: which targets (volumes, bind directories) a
//! restore is writing. A record is written, and synced, after the safety
//! snapshot and before the first change to the target, and removed once
//! the target holds the whole snapshot. A record that outlives its restore
//! (killed, even by SIGKILL, or stopped by an error) marks the target as
//! holding a partial restore: the next restore plan restores it again,
//! and backup plans refuse to back it up.
//!
//! A partial restore (`restore --path`) records the paths it writes: an
//! interrupted one marks only those as torn, so the next plan asks for
//! that partial restore again, never for a whole replace that would
//! empty what the partial restore never touched.
//!
//! Records hold no target names (they may be sensitive): a target is known
//! by a digest of its engine, kind and name, which is also the file's name.

use super::ApplyError;
use crate::host::ProcessId;
use crate::plan::{InterruptedRestore, LiveResource};
use crate::repo::partial::PathSelection;
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
    /// `restore --path`: the paths being written (empty: the whole target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
}

/// This process's restores in progress, and their journal.
pub struct RestoreJournal {
    dir: PathBuf,
    /// Resources whose record this process wrote and has not removed.
    /// (resource, as the interrupted run names it: with its paths when
    /// the restore is partial).
    in_progress: Mutex<Vec<(String, String)>>,
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

    fn in_progress(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
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
        self.write(resource, target, snapshot, Vec::new())
    }

    /// Records that `paths` of `resource`'s target are about to be written
    /// by a partial restore of `snapshot`. Paths an earlier interrupted
    /// partial restore left torn stay recorded, and a target left torn by
    /// a whole restore stays whole.
    pub(crate) fn begin_paths(
        &self,
        resource: &Address,
        target: &Target<'_>,
        snapshot: &str,
        paths: &PathSelection,
    ) -> Result<(), ApplyError> {
        let mut recorded = match self.read(resource, target) {
            Some(earlier) if earlier.paths.is_empty() => Vec::new(),
            Some(earlier) => earlier.paths,
            None => paths.paths().to_vec(),
        };
        if !recorded.is_empty() {
            recorded.extend(paths.paths().iter().cloned());
        }
        self.write(resource, target, snapshot, outermost(recorded))
    }

    /// The record of `resource`'s target, when there is a readable one of it.
    fn read(&self, resource: &Address, target: &Target<'_>) -> Option<Record> {
        let bytes = std::fs::read(self.path(target)).ok()?;
        let record = serde_json::from_slice::<Record>(&bytes).ok()?;
        (record.resource == resource.to_string()).then_some(record)
    }

    fn write(
        &self,
        resource: &Address,
        target: &Target<'_>,
        snapshot: &str,
        paths: Vec<String>,
    ) -> Result<(), ApplyError> {
        let process = ProcessId::current();
        let record = Record {
            resource: resource.to_string(),
            snapshot: snapshot.to_string(),
            started: chrono::Utc::now(),
            host: process.host.clone(),
            process: process.token(),
            paths,
        };
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        super::quiesce::write_record(
            &self.dir,
            &self.path(target),
            &json,
            &format!("recording the restore of {resource}"),
        )?;
        let shown = match &record.paths[..] {
            [] => record.resource.clone(),
            paths => format!("{} (paths {})", record.resource, paths.join(", ")),
        };
        let mut in_progress = self.in_progress();
        in_progress.retain(|(r, _)| *r != record.resource);
        in_progress.push((record.resource, shown));
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
        self.in_progress().retain(|(r, _)| *r != resource);
        Ok(())
    }

    /// A partial restore of `written` finished: the paths it wrote are no
    /// longer torn. The record goes when none is left (a whole restore's
    /// record stays: a partial restore does not finish it).
    pub(crate) fn finish_paths(
        &self,
        resource: &Address,
        target: &Target<'_>,
        written: &PathSelection,
    ) -> Result<(), ApplyError> {
        let record = self.read(resource, target);
        let left: Vec<String> = match &record {
            Some(record) if record.paths.is_empty() => {
                self.in_progress()
                    .retain(|(r, _)| *r != resource.to_string());
                return Ok(());
            }
            Some(record) => record
                .paths
                .iter()
                .filter(|path| !written.covers(path))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        match record {
            Some(record) if !left.is_empty() => {
                self.write(resource, target, &record.snapshot, left)?;
                self.in_progress()
                    .retain(|(r, _)| *r != resource.to_string());
                Ok(())
            }
            _ => self.finish(resource, target),
        }
    }

    /// The resources this process began to restore and has not finished
    /// (what a signal leaves incomplete).
    pub fn unfinished(&self) -> Vec<String> {
        self.in_progress()
            .iter()
            .map(|(_, shown)| shown.clone())
            .collect()
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
            let Some(record) = self.read(&address, &target) else {
                continue;
            };
            // Paths are untrusted too: shown in the plan and the command
            // it suggests, so only those a `--path` accepts are kept.
            let paths = match PathSelection::parse(&record.paths) {
                Ok(selection) => selection.paths().to_vec(),
                Err(_) => Vec::new(),
            };
            found.insert(
                address,
                InterruptedRestore {
                    snapshot: crate::plan::short_id(&record.snapshot),
                    started: record.started,
                    paths,
                },
            );
        }
        found
    }
}

/// `paths` without those under another of them, sorted: a glob (`**`)
/// expands to every entry it matches, and the record, the plan and the
/// command it suggests need only the outermost.
fn outermost(paths: Vec<String>) -> Vec<String> {
    let all: std::collections::BTreeSet<String> = paths.into_iter().collect();
    let is_below_another = |path: &String| {
        path.match_indices('/')
            .any(|(slash, _)| all.contains(&path[..slash]))
    };
    all.iter()
        .filter(|p| !is_below_another(p))
        .cloned()
        .collect()
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
        if resource.problem.is_some() {
            continue;
        }
        let started = interrupted.started.format("%Y-%m-%d %H:%M:%S UTC");
        let snapshot = &interrupted.snapshot;
        resource.problem = Some(if interrupted.paths.is_empty() {
            format!(
                "it holds a partial restore (a restore of snapshot {snapshot} was interrupted at \
                 {started}): a backup would store a torn copy. Finish the restore first: \
                 `lifeboat restore --target {address}`"
            )
        } else {
            let paths = interrupted.paths.join(", ");
            let again: String = interrupted
                .paths
                .iter()
                .map(|p| format!(" --path {p}"))
                .collect();
            format!(
                "it holds a partial restore ({paths} of snapshot {snapshot}: its `restore \
                 --path` was interrupted at {started}): a backup would store a torn copy. \
                 Finish that restore first: `lifeboat restore --target {address} --snapshot \
                 {snapshot}{again}`"
            )
        });
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

    /// The resource `volume.data` restoring into the Docker volume `app_data`.
    fn app_data() -> (Address, Target<'static>) {
        let target = Target {
            engine: crate::spec::DEFAULT_ENGINE,
            kind: "volume",
            name: "app_data",
        };
        (Address::new(ResourceKind::Volume, "data"), target)
    }

    #[test]
    fn a_record_outlives_an_unfinished_restore_and_only_marks_its_own_target() {
        let state = tempfile::tempdir().unwrap();
        let (address, target) = app_data();
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
    fn an_interrupted_restore_of_paths_is_recorded_until_those_paths_are_written() {
        let state = tempfile::tempdir().unwrap();
        let (address, target) = app_data();
        let paths = |list: &[&str]| {
            PathSelection::parse(&list.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let journal = RestoreJournal::new(state.path());
        // Killed while writing `data`, then while writing `config`.
        journal
            .begin_paths(&address, &target, "8c2e41f0aabbcc", &paths(&["data"]))
            .unwrap();
        let next = RestoreJournal::new(state.path());
        next.begin_paths(&address, &target, "8c2e41f0aabbcc", &paths(&["config"]))
            .unwrap();
        // What a signal's message names: the paths left torn, only the
        // outermost of those a glob expanded to.
        assert_eq!(next.unfinished(), ["volume.data (paths config, data)"]);
        next.begin_paths(
            &address,
            &target,
            "8c2e41f0aabbcc",
            &paths(&["config/a", "config/sub", "config/sub/b", "top"]),
        )
        .unwrap();
        assert_eq!(next.unfinished(), ["volume.data (paths config, data, top)"]);
        next.finish_paths(&address, &target, &paths(&["top"]))
            .unwrap();
        let found = next.incomplete(&spec("app_data"));
        assert_eq!(found[&address].paths, ["config", "data"]);
        // Writing `config/sub` does not finish `config`; writing `config` does.
        next.finish_paths(&address, &target, &paths(&["config/sub"]))
            .unwrap();
        assert_eq!(
            next.incomplete(&spec("app_data"))[&address].paths,
            ["config", "data"]
        );
        next.finish_paths(&address, &target, &paths(&["config"]))
            .unwrap();
        assert_eq!(next.incomplete(&spec("app_data"))[&address].paths, ["data"]);
        next.finish_paths(&address, &target, &paths(&["data"]))
            .unwrap();
        assert!(next.incomplete(&spec("app_data")).is_empty());
        assert!(next.unfinished().is_empty());

        // A whole restore's record is not finished by a partial one, nor
        // narrowed to its paths.
        journal.begin(&address, &target, "8c2e41f0aabbcc").unwrap();
        journal
            .begin_paths(&address, &target, "8c2e41f0aabbcc", &paths(&["data"]))
            .unwrap();
        journal
            .finish_paths(&address, &target, &paths(&["data"]))
            .unwrap();
        assert!(
            next.incomplete(&spec("app_data"))[&address]
                .paths
                .is_empty()
        );

        // Untrusted paths in a record are not shown nor suggested.
        let file = next.path(&target);
        let text = std::fs::read_to_string(&file).unwrap();
        let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
        record["paths"] = serde_json::json!(["../etc", "data"]);
        std::fs::write(&file, record.to_string()).unwrap();
        assert!(
            next.incomplete(&spec("app_data"))[&address]
                .paths
                .is_empty()
        );
    }

    /// The problem `refuse_partial_restores` gives `volume.data` when a
    /// restore of `paths` of it (none: the whole volume) was interrupted.
    fn refusal(paths: Vec<String>) -> String {
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
                paths,
            },
        )]
        .into();
        refuse_partial_restores(&mut live, &incomplete);
        live[&address].problem.clone().unwrap()
    }

    #[test]
    fn an_interrupted_restore_of_paths_refuses_the_backup_and_names_that_restore() {
        let problem = refusal(vec!["config".into(), "data/db".into()]);
        assert!(
            problem.contains(
                "`lifeboat restore --target volume.data --snapshot 8c2e41f0 --path config \
                 --path data/db`"
            ),
            "{problem}"
        );
    }

    #[test]
    fn a_partial_restore_refuses_its_backup() {
        let problem = refusal(Vec::new());
        assert!(problem.contains("partial restore"), "{problem}");
        assert!(
            problem.contains("lifeboat restore --target volume.data"),
            "{problem}"
        );
    }
}
