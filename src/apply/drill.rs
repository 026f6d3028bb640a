//! Restore drills: a restore plan into scratch names (`-drill-<run>`, on
//! the network `lifeboat-drill-<run>`) applied, its volumes read back and
//! compared with their snapshots, recovery times and data ages measured
//! against the goals, every scratch object removed, and the run recorded
//! as a run of kind `drill` carrying the [`DrillRecord`].
//!
//! Owns the scratch journal (`drills/<run>.json` in the state directory,
//! written before anything is created, so a killed drill's leftovers are
//! removed by the next drill or `recover`) and the judgement of a drill.
//! Planning the restore is `planning`'s; rendering the report is `cli`'s.

use super::report::{ApplyReport, ChangeOutcome, Status};
use super::{Engines, NamedRepository, Run};
use crate::engine::{Engine, EngineError};
use crate::plan::{Action, Plan};
use crate::repo::{DrillCheck, DrillRecord, DrillResource, Repository, RunKind, RunRecord};
use crate::spec::{ResourceKind, Spec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The suffix every scratch object of the drill `run` ends with.
pub fn scratch_suffix(run: &str) -> String {
    format!("-drill-{run}")
}

/// The scratch objects of one drill on one engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineScratch {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
    pub directories: Vec<PathBuf>,
}

/// What a drill creates, by engine: written to its journal before the
/// restore starts, removed at its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scratch {
    pub run: String,
    pub engines: BTreeMap<String, EngineScratch>,
}

impl Scratch {
    /// The objects the restore changes of `plan` write (each change's
    /// `into`). Refuses a plan that would write a live object: every
    /// restored volume, directory, service and dump must have a scratch
    /// name ending with the drill's suffix.
    pub fn of_plan(plan: &Plan, run: &str) -> Result<Scratch, String> {
        let suffix = scratch_suffix(run);
        let mut scratch = Scratch {
            run: run.to_string(),
            engines: BTreeMap::new(),
        };
        for change in plan.changes.iter().filter(|c| c.action == Action::Restore) {
            if change.address.kind == ResourceKind::Image {
                continue; // loaded by id, no live tag moved
            }
            let Some(into) = change.into.as_ref().filter(|i| i.name.ends_with(&suffix)) else {
                return Err(format!(
                    "{} would be restored into a live object; a drill writes only scratch \
                     objects",
                    change.address
                ));
            };
            let objects = scratch
                .engines
                .entry(change.engine_name().to_string())
                .or_default();
            let name = into.name.clone();
            if let crate::plan::Detail::DumpServer(server) = &change.detail {
                objects
                    .volumes
                    .extend(server.volumes.iter().map(|v| v.name.clone()));
            }
            match change.address.kind {
                ResourceKind::Volume => objects.volumes.push(name),
                ResourceKind::Bind => objects.directories.push(PathBuf::from(name)),
                ResourceKind::Service | ResourceKind::Dump
                    if !objects.containers.contains(&name) =>
                {
                    objects.containers.push(name);
                }
                _ => {}
            }
            if let Some(network) = &into.network
                && !objects.networks.contains(network)
            {
                objects.networks.push(network.clone());
            }
        }
        Ok(scratch)
    }

    /// Whether every name is one of this drill's scratch names: a journal
    /// is read back from disk, and must never name a live object.
    fn is_scratch_only(&self) -> bool {
        let suffix = scratch_suffix(&self.run);
        !self.run.is_empty()
            && self.engines.values().all(|objects| {
                objects
                    .containers
                    .iter()
                    .chain(&objects.volumes)
                    .chain(&objects.networks)
                    .all(|name| name.ends_with(&suffix))
                    && objects.directories.iter().all(|d| {
                        d.is_absolute()
                            && d.to_string_lossy().ends_with(&suffix)
                            && !d.components().any(|c| c == std::path::Component::ParentDir)
                    })
            })
    }

    fn journal_path(state_dir: &Path, run: &str) -> PathBuf {
        state_dir.join("drills").join(format!("{run}.json"))
    }

    /// Writes the journal (`drills/<run>.json`) before anything is created.
    pub fn write_journal(&self, state_dir: &Path) -> std::io::Result<()> {
        let path = Scratch::journal_path(state_dir, &self.run);
        std::fs::create_dir_all(path.parent().expect("in drills/"))?;
        let temporary = path.with_extension("tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(self).expect("journals serialise"),
        )?;
        std::fs::rename(&temporary, &path)
    }

    /// Removes every scratch object (containers first: they hold the
    /// volumes and networks), then the journal when all went; returns what
    /// was removed and what could not be, with why.
    pub async fn remove(&self, state_dir: &Path, engines: &Engines) -> Cleanup {
        let mut cleanup = Cleanup::default();
        for (name, objects) in &self.engines {
            let engine = match engines.get(name) {
                Ok(engine) => engine,
                Err(error) => {
                    cleanup.errors.push(format!(
                        "engine.{name}: scratch objects not removed: {error}"
                    ));
                    continue;
                }
            };
            remove_on(engine.as_ref(), objects, &mut cleanup).await;
        }
        if cleanup.errors.is_empty() {
            let _ = std::fs::remove_file(Scratch::journal_path(state_dir, &self.run));
        }
        cleanup
    }
}

/// What removing scratch objects did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cleanup {
    /// `volume shop_data-drill-…`, in the order removed.
    pub removed: Vec<String>,
    pub errors: Vec<String>,
}

async fn remove_on(engine: &dyn Engine, objects: &EngineScratch, cleanup: &mut Cleanup) {
    for name in &objects.containers {
        note(
            cleanup,
            "container",
            name,
            engine.remove_container(name).await,
        );
    }
    for name in &objects.volumes {
        note(cleanup, "volume", name, engine.remove_volume(name).await);
    }
    for name in &objects.networks {
        let removed = match engine.network(name).await {
            Ok(None) => continue,
            Ok(Some(_)) => engine.remove_network(name).await,
            Err(error) => Err(error),
        };
        note(cleanup, "network", name, removed);
    }
    for directory in &objects.directories {
        if !directory.exists() {
            continue;
        }
        // A remote engine's host is not this one: its directory is not ours
        // to reach.
        let removed = if engine.is_local() {
            std::fs::remove_dir_all(directory).map_err(|e| e.to_string())
        } else {
            Err("on a remote engine's host: remove it there".to_string())
        };
        match removed {
            Ok(()) => cleanup
                .removed
                .push(format!("directory {}", directory.display())),
            Err(error) => cleanup
                .errors
                .push(format!("directory {}: {error}", directory.display())),
        }
    }
}

/// Notes the removal of the `what` `name`; one gone already is nothing to note.
fn note(cleanup: &mut Cleanup, what: &str, name: &str, removed: Result<(), EngineError>) {
    match removed {
        Ok(()) => cleanup.removed.push(format!("{what} {name}")),
        Err(EngineError::ContainerNotFound(_) | EngineError::VolumeNotFound(_)) => {}
        Err(error) => cleanup.errors.push(format!("{what} {name}: {error}")),
    }
}

/// Removes what killed drills left (their journals in `drills/`): called
/// by every drill before it starts and by `recover`. A journal that does
/// not load, or names anything but scratch objects, is left alone and
/// reported.
pub async fn remove_drill_leftovers(state_dir: &Path, engines: &Engines) -> Cleanup {
    let mut cleanup = Cleanup::default();
    let Ok(entries) = std::fs::read_dir(state_dir.join("drills")) else {
        return cleanup;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let loaded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Scratch>(&bytes).map_err(|e| e.to_string()));
        match loaded {
            Ok(scratch) if scratch.is_scratch_only() => {
                let removed = scratch.remove(state_dir, engines).await;
                cleanup.removed.extend(removed.removed);
                cleanup.errors.extend(removed.errors);
            }
            Ok(_) => cleanup.errors.push(format!(
                "{}: names objects that are not a drill's scratch objects; left alone (remove \
                 the file once checked)",
                path.display()
            )),
            Err(error) => cleanup.errors.push(format!(
                "{}: not a drill journal ({error}); left alone",
                path.display()
            )),
        }
    }
    cleanup
}

/// Restores `plan` (a restore into the drill's scratch names), checks and
/// measures what it restored, removes the scratch objects, and records the
/// run (kind `drill`) in every repository: the record is the report.
pub async fn run_drill(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
    scratch: &Scratch,
    state_dir: &Path,
) -> (ApplyReport, RunRecord) {
    let started = Utc::now();
    let (mut report, mut contents) = restore_then_services(plan, run, repositories).await;
    let mut resources = Vec::new();
    let mut elapsed = 0.0;
    for outcome in &report.changes {
        elapsed += outcome.elapsed_seconds;
        let Some(change) = plan.changes.iter().find(|c| c.address == outcome.address) else {
            continue;
        };
        let server = match &change.detail {
            crate::plan::Detail::DumpServer(server) => Some(server),
            _ => None,
        };
        // A dump's scratch server waits for nothing else: its recovery
        // time is its own (start, readiness, load).
        let rto = if server.is_some() {
            outcome.elapsed_seconds
        } else {
            elapsed
        };
        let mut resource = measured(run.spec, change, outcome, rto, started);
        let succeeded = outcome.status == Status::Succeeded && !run.cancel.is_cancelled();
        if let Some(check) = contents.remove(&change.address) {
            resource.checks.push(check);
        }
        if server.is_some()
            && let Some(check) = dump_server_verify(run, change, succeeded).await
        {
            resource.checks.push(check);
        }
        judge(&mut resource);
        resources.push(resource);
    }
    let cleanup = scratch.remove(state_dir, run.engines).await;
    let network = scratch
        .engines
        .values()
        .flat_map(|e| e.networks.first())
        .next()
        .cloned()
        .unwrap_or_default();
    let drill = stack_record(
        resources,
        report.elapsed_seconds,
        network,
        cleanup,
        report.errors.is_empty() && !run.cancel.is_cancelled(),
    );
    // Before the record, so that a notification not delivered is in it.
    super::notices::notify_end_of_drill(run.spec, &run.run_id, &drill, &mut report, run.events);
    let mut record = super::records::run_record(plan, run, &report, RunKind::Drill, Utc::now());
    record.drill = Some(drill);
    super::records::append_record(&record, run, repositories, &mut report);
    if let Some(drill) = record.drill.as_mut()
        && !report.errors.is_empty()
    {
        drill.passed = false;
    }
    (report, record)
}

/// Restores the data of `plan` (images, volumes, directories) and checks
/// each restored volume's content, then restores the services and dumps:
/// a database started on its restored volume writes to it at once, so a
/// content check after the services would compare its files, not the
/// restore's. A change whose dependency did not succeed in the first step
/// is skipped, as one run would skip it. The outcomes are in plan order.
async fn restore_then_services(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) -> (ApplyReport, BTreeMap<crate::spec::Address, DrillCheck>) {
    let started_by_services = |change: &crate::plan::ResourceChange| {
        matches!(
            change.address.kind,
            ResourceKind::Service | ResourceKind::Dump
        )
    };
    let (later, data): (Vec<_>, Vec<_>) =
        plan.changes.iter().cloned().partition(started_by_services);
    let data = Plan {
        changes: data,
        ..plan.clone()
    };
    let mut report = super::run::restore_changes(&data, run, repositories, true).await;
    let mut contents = BTreeMap::new();
    for outcome in &report.changes {
        let Some(change) = data.changes.iter().find(|c| c.address == outcome.address) else {
            continue;
        };
        if outcome.status == Status::Succeeded
            && change.address.kind == ResourceKind::Volume
            && !run.cancel.is_cancelled()
        {
            let check = content_check(run, change, repositories).await;
            contents.insert(change.address.clone(), check);
        }
    }
    let mut not_done: std::collections::BTreeSet<crate::spec::Address> = report
        .changes
        .iter()
        .filter(|o| o.status != Status::Succeeded)
        .map(|o| o.address.clone())
        .collect();
    let mut services = Vec::new();
    for change in later {
        let blocked = change.depends_on.iter().find(|d| not_done.contains(*d));
        match blocked {
            Some(dependency) if change.action == Action::Restore => {
                let because = format!("{dependency} did not succeed");
                (run.events)(super::Event::ResourceSkipped {
                    address: change.address.to_string(),
                    because: because.clone(),
                });
                report.changes.push(ChangeOutcome {
                    address: change.address.clone(),
                    action: change.action,
                    status: Status::Skipped { because },
                    copies: Vec::new(),
                    elapsed_seconds: 0.0,
                });
                not_done.insert(change.address.clone());
            }
            _ => services.push(change),
        }
    }
    let services = Plan {
        changes: services,
        ..plan.clone()
    };
    let rest = super::run::restore_changes(&services, run, repositories, true).await;
    report.changes.extend(rest.changes);
    report.errors.extend(rest.errors);
    report.warnings.extend(rest.warnings);
    report.elapsed_seconds += rest.elapsed_seconds;
    let position =
        |address: &crate::spec::Address| plan.changes.iter().position(|c| &c.address == address);
    report.changes.sort_by_key(|o| position(&o.address));
    (report, contents)
}

/// The service's `verify` run once in a dump's loaded scratch server,
/// with what it printed (a row count to hold against the snapshot's);
/// `None` when the service has none.
async fn dump_server_verify(
    run: &Run<'_>,
    change: &crate::plan::ResourceChange,
    loaded: bool,
) -> Option<DrillCheck> {
    let Some(crate::spec::Resource::Dump(dump)) = run.spec.resource(&change.address) else {
        return None;
    };
    let service = run.spec.services.iter().find(|s| s.name == dump.service)?;
    if service.verify.is_empty() {
        return None;
    }
    let command = run.spec.redact(&service.verify.join(" "));
    let into = change.into.as_ref()?;
    let verified = match run.engines.get(change.engine_name()) {
        _ if !loaded => Err("not run: the dump did not load (see restore)".to_string()),
        Ok(engine) => {
            super::kinds::verify_loaded_dump_server(run.spec, engine.as_ref(), service, &into.name)
                .await
        }
        Err(error) => Err(error.to_string()),
    };
    Some(match verified {
        Ok(output) => DrillCheck {
            name: "verify".into(),
            passed: true,
            detail: format!(
                "`{command}` passed in scratch server {}, printing: {output}",
                into.name
            ),
        },
        Err(why) => DrillCheck {
            name: "verify".into(),
            passed: false,
            detail: format!("`{command}` in scratch server {}: {why}", into.name),
        },
    })
}

/// A resource's restore as the drill measured it, before the content and
/// goal checks: `rto_seconds` from the start of the restore to its end.
fn measured(
    spec: &Spec,
    change: &crate::plan::ResourceChange,
    outcome: &ChangeOutcome,
    rto_seconds: f64,
    started: DateTime<Utc>,
) -> DrillResource {
    let policy = spec.policy_of(&change.address);
    let goal = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let snapshot = change.snapshot.as_ref();
    let mut checks = Vec::new();
    let restored = match &outcome.status {
        Status::Succeeded => DrillCheck {
            name: "restore".into(),
            passed: true,
            detail: format!(
                "{} snapshot {} of repository.{}",
                match (&change.detail, &change.into) {
                    (crate::plan::Detail::DumpServer(server), Some(into)) => format!(
                        "loaded into scratch server {} (image {}) from",
                        into.name, server.image
                    ),
                    _ => "restored from".to_string(),
                },
                snapshot.map_or("?", |s| s.id.as_str()),
                snapshot.map_or("?", |s| s.repository.as_str())
            ),
        },
        Status::Failed { error, .. } => DrillCheck {
            name: "restore".into(),
            passed: false,
            detail: error.clone(),
        },
        Status::Skipped { because } => DrillCheck {
            name: "restore".into(),
            passed: false,
            detail: format!("not tried: {because}"),
        },
    };
    let succeeded = restored.passed;
    checks.push(restored);
    if let Some(crate::spec::Resource::Service(service)) = spec.resource(&change.address)
        && !service.verify.is_empty()
    {
        checks.push(DrillCheck {
            name: "verify".into(),
            passed: succeeded,
            detail: format!(
                "`{}` {}",
                spec.redact(&service.verify.join(" ")),
                if succeeded {
                    "passed in the scratch container"
                } else {
                    "did not pass (see restore)"
                }
            ),
        });
    }
    DrillResource {
        address: change.address.to_string(),
        into: change
            .into
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_default(),
        repository: snapshot.map(|s| s.repository.clone()).unwrap_or_default(),
        snapshot: snapshot.map(|s| s.id.clone()).unwrap_or_default(),
        snapshot_time: snapshot.map(|s| s.time),
        rto_seconds,
        rto_goal_seconds: goal(policy.and_then(|p| p.rto)),
        rpo_seconds: snapshot.map(|s| seconds_between(s.time, started)),
        rpo_goal_seconds: goal(policy.and_then(|p| p.rpo)),
        checks,
        passed: false,
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// Adds the goal checks (measured RTO and RPO against the policy's) and
/// decides whether the resource passed: every check did.
pub fn judge(resource: &mut DrillResource) {
    if let Some(goal) = resource.rto_goal_seconds {
        resource.checks.push(DrillCheck {
            name: "rto".into(),
            passed: resource.rto_seconds <= goal,
            detail: format!(
                "restored and verified in {} (goal {})",
                words(resource.rto_seconds),
                words(goal)
            ),
        });
    }
    if let (Some(age), Some(goal)) = (resource.rpo_seconds, resource.rpo_goal_seconds) {
        resource.checks.push(DrillCheck {
            name: "rpo".into(),
            passed: age <= goal,
            detail: format!("data {} old (goal {})", words(age), words(goal)),
        });
    }
    resource.passed = !resource.checks.is_empty() && resource.checks.iter().all(|c| c.passed);
}

/// The drill of the whole run: it passed when every resource did, the run
/// finished (`completed`) and every scratch object went.
pub fn stack_record(
    resources: Vec<DrillResource>,
    rto_seconds: f64,
    network: String,
    cleanup: Cleanup,
    completed: bool,
) -> DrillRecord {
    let rto_goal_seconds = resources
        .iter()
        .filter_map(|r| r.rto_goal_seconds)
        .reduce(f64::max);
    let passed = completed
        && !resources.is_empty()
        && resources.iter().all(|r| r.passed)
        && rto_goal_seconds.is_none_or(|goal| rto_seconds <= goal)
        && cleanup.errors.is_empty();
    DrillRecord {
        passed,
        rto_seconds,
        rto_goal_seconds,
        resources,
        network,
        removed: cleanup.removed,
        cleanup_errors: cleanup.errors,
    }
}

/// Whole seconds as the report words them (`1m 5s`; under a second: `0.42s`).
fn words(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{seconds:.2}s");
    }
    humantime::format_duration(Duration::from_secs(seconds.round() as u64)).to_string()
}

/// Reads the scratch volume back and compares it with the snapshot it was
/// restored from: every path present in both, regular files of equal size
/// and content (SHA-256 of each side).
async fn content_check(
    run: &Run<'_>,
    change: &crate::plan::ResourceChange,
    repositories: &[NamedRepository],
) -> DrillCheck {
    let failed = |detail: String| DrillCheck {
        name: "content".into(),
        passed: false,
        detail,
    };
    let (Some(snapshot), Some(into)) = (&change.snapshot, &change.into) else {
        return failed("no snapshot to compare with".into());
    };
    let Some(repository) = repositories
        .iter()
        .find(|r| r.name == snapshot.repository)
        .and_then(|r| r.repository.as_ref())
    else {
        return failed(format!("repository.{} is not open", snapshot.repository));
    };
    let engine = match run.engines.get(change.engine_name()) {
        Ok(engine) => engine,
        Err(error) => return failed(error.to_string()),
    };
    let expected = match tokio::task::block_in_place(|| snapshot_files(repository, &snapshot.id)) {
        Ok(files) => files,
        Err(error) => return failed(format!("reading snapshot {}: {error}", snapshot.id)),
    };
    let export = match engine.export_volume(&into.name).await {
        Ok(export) => export,
        Err(error) => return failed(format!("reading volume {} back: {error}", into.name)),
    };
    let root = export.root.clone();
    let (stream, release) = export.into_parts();
    let reader = super::stream::read_ahead(stream, run.cancel.clone());
    let actual = tokio::task::spawn_blocking(move || tar_files(reader, &root))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    release.release().await;
    let actual = match actual {
        Ok(files) => files,
        Err(error) => return failed(format!("reading volume {} back: {error}", into.name)),
    };
    let differences = compare_files(&expected, &actual);
    let files = expected.values().filter(|f| f.is_some()).count();
    let bytes: u64 = expected.values().flatten().map(|(size, _)| size).sum();
    if differences.is_empty() {
        DrillCheck {
            name: "content".into(),
            passed: true,
            detail: format!(
                "volume {} read back: {} entries, {files} files, {bytes} bytes equal to snapshot {}",
                into.name,
                expected.len(),
                snapshot.id
            ),
        }
    } else {
        let shown: Vec<&str> = differences.iter().take(10).map(String::as_str).collect();
        failed(format!(
            "volume {} differs from snapshot {} in {} path(s): {}",
            into.name,
            snapshot.id,
            differences.len(),
            shown.join("; ")
        ))
    }
}

/// Path → `Some((size, sha256))` for a regular file, `None` for any
/// other entry (compared by presence).
type Files = BTreeMap<String, Option<(u64, [u8; 32])>>;

fn snapshot_files(repository: &Repository, id: &str) -> Result<Files, crate::repo::RepoError> {
    let snapshot = repository.find_snapshot(id)?;
    let tree = repository.tree_map(&snapshot)?;
    let mut files = Files::new();
    for (path, compared) in tree {
        match compared.entry.kind.as_str() {
            "file" => {
                let mut hasher = HashWriter(Sha256::new());
                let size = repository.write_file(&snapshot, &path, &mut hasher)?;
                files.insert(path, Some((size, hasher.0.finalize().into())));
            }
            // Docker's archive carries no sockets.
            "socket" => {}
            _ => {
                files.insert(path, None);
            }
        }
    }
    Ok(files)
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The entries of a volume export (named `<root>/…`), as [`Files`].
fn tar_files(reader: impl Read, root: &str) -> Result<Files, String> {
    let mut files = Files::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let relative = name
            .trim_start_matches("./")
            .strip_prefix(root)
            .unwrap_or(&name)
            .trim_matches('/')
            .to_string();
        if entry.header().entry_type().is_file() {
            let mut hasher = Sha256::new();
            let mut buffer = [0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = entry.read(&mut buffer).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            files.insert(relative, Some((size, hasher.finalize().into())));
        } else {
            files.insert(relative, None);
        }
    }
    Ok(files)
}

/// What differs between the snapshot's entries and the read-back ones, one
/// line per path.
fn compare_files(expected: &Files, actual: &Files) -> Vec<String> {
    let mut differences = Vec::new();
    for (path, want) in expected {
        let shown = if path.is_empty() { "/" } else { path };
        match (want, actual.get(path)) {
            (_, None) => differences.push(format!("{shown} missing")),
            (Some((size, _)), Some(Some((got, _)))) if size != got => {
                differences.push(format!("{shown} has {got} bytes, the snapshot {size}"))
            }
            (Some((_, hash)), Some(Some((_, got)))) if hash != got => {
                differences.push(format!("{shown} content differs"))
            }
            (Some(_), Some(None)) | (None, Some(Some(_))) => {
                differences.push(format!("{shown} is another kind of entry"))
            }
            _ => {}
        }
    }
    for path in actual.keys().filter(|p| !expected.contains_key(*p)) {
        differences.push(format!("{path} is not in the snapshot"));
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(rto: f64, rto_goal: Option<f64>, rpo: f64, rpo_goal: Option<f64>) -> DrillResource {
        DrillResource {
            address: "volume.data".into(),
            rto_seconds: rto,
            rto_goal_seconds: rto_goal,
            rpo_seconds: Some(rpo),
            rpo_goal_seconds: rpo_goal,
            checks: vec![DrillCheck {
                name: "restore".into(),
                passed: true,
                detail: String::new(),
            }],
            ..DrillResource::default()
        }
    }

    #[test]
    fn a_resource_passes_only_within_both_goals() {
        let mut within = resource(30.0, Some(900.0), 1800.0, Some(3600.0));
        judge(&mut within);
        assert!(within.passed);
        assert_eq!(
            within.checks[1].detail,
            "restored and verified in 30s (goal 15m)"
        );
        assert_eq!(within.checks[2].detail, "data 30m old (goal 1h)");

        let mut slow = resource(901.0, Some(900.0), 10.0, Some(3600.0));
        judge(&mut slow);
        assert!(!slow.passed);
        assert!(!slow.checks[1].passed && slow.checks[2].passed);

        let mut stale = resource(1.0, None, 7200.0, Some(3600.0));
        judge(&mut stale);
        assert!(!stale.passed, "data older than the rpo fails the drill");
        assert_eq!(stale.checks.len(), 2, "no rto goal, no rto check");
    }

    #[test]
    fn the_stack_passes_when_every_resource_did_its_goal_was_met_and_everything_was_removed() {
        let mut fast = resource(2.0, Some(60.0), 1.0, None);
        judge(&mut fast);
        let mut slower = resource(5.0, Some(10.0), 1.0, None);
        judge(&mut slower);
        let clean = || Cleanup::default();
        let stack = stack_record(
            vec![fast.clone(), slower.clone()],
            7.0,
            "n".into(),
            clean(),
            true,
        );
        assert!(stack.passed);
        assert_eq!(stack.rto_goal_seconds, Some(60.0), "the largest goal");
        assert!(!stack_record(vec![fast.clone()], 61.0, "n".into(), clean(), true).passed);
        assert!(!stack_record(vec![fast.clone()], 1.0, "n".into(), clean(), false).passed);
        assert!(!stack_record(Vec::new(), 1.0, "n".into(), clean(), true).passed);
        let left = Cleanup {
            removed: Vec::new(),
            errors: vec!["volume x: in use".into()],
        };
        assert!(!stack_record(vec![fast], 1.0, "n".into(), left, true).passed);
    }

    #[test]
    fn read_back_differences_name_each_path() {
        let file = |size, byte| Some((size, [byte; 32]));
        let expected: Files = [
            ("".to_string(), None),
            ("a".to_string(), file(3, 1)),
            ("b".to_string(), file(3, 2)),
            ("c".to_string(), file(3, 3)),
            ("d".to_string(), None),
        ]
        .into();
        let actual: Files = [
            ("".to_string(), None),
            ("a".to_string(), file(3, 1)),
            ("b".to_string(), file(4, 2)),
            ("c".to_string(), file(3, 9)),
            ("e".to_string(), None),
        ]
        .into();
        assert_eq!(
            compare_files(&expected, &actual),
            [
                "b has 4 bytes, the snapshot 3",
                "c content differs",
                "d missing",
                "e is not in the snapshot"
            ]
        );
        assert!(compare_files(&expected, &expected).is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn leftovers_of_a_killed_drill_are_removed_and_a_journal_naming_a_live_object_is_not() {
        use crate::engine::memory::MemoryEngine;
        use crate::engine::{ContainerConfig, MountConfig, MountKind, NetworkConfig, Volumes};
        let engine = std::sync::Arc::new(MemoryEngine::new());
        let dyn_engine: std::sync::Arc<dyn Engine> = engine.clone();
        let engines =
            Engines::from_engines([(crate::spec::DEFAULT_ENGINE.to_string(), dyn_engine)]);
        let state = tempfile::tempdir().unwrap();
        engine.add_volume("data", &[("rows", b"live")]);
        engine.add_volume("data-drill-r1", &[("rows", b"scratch")]);
        engine.add_network(NetworkConfig {
            name: "lifeboat-drill-r1".into(),
            ..NetworkConfig::default()
        });
        let config = ContainerConfig {
            name: "web-drill-r1".into(),
            mounts: vec![MountConfig {
                kind: MountKind::Volume,
                source: "data-drill-r1".into(),
                target: "/data".into(),
                read_only: false,
                options: String::new(),
            }],
            ..ContainerConfig::default()
        };
        engine.add_container(config, true);
        let killed = Scratch {
            run: "r1".into(),
            engines: [(
                crate::spec::DEFAULT_ENGINE.to_string(),
                EngineScratch {
                    containers: vec!["web-drill-r1".into()],
                    volumes: vec!["data-drill-r1".into()],
                    networks: vec!["lifeboat-drill-r1".into()],
                    directories: Vec::new(),
                },
            )]
            .into(),
        };
        killed.write_journal(state.path()).unwrap();
        // A journal someone edited to name the live volume: left alone.
        let mut edited = killed.clone();
        edited.run = "r2".into();
        edited.engines.get_mut("default").unwrap().volumes = vec!["data".into()];
        edited.write_journal(state.path()).unwrap();

        let cleanup = remove_drill_leftovers(state.path(), &engines).await;
        assert_eq!(
            cleanup.removed,
            [
                "container web-drill-r1",
                "volume data-drill-r1",
                "network lifeboat-drill-r1"
            ]
        );
        assert_eq!(cleanup.errors.len(), 1, "{cleanup:?}");
        assert!(cleanup.errors[0].contains("r2.json: names objects that are not"));
        assert!(
            engine.volume("data").await.unwrap().is_some(),
            "the live volume stays"
        );
        assert!(engine.volume("data-drill-r1").await.unwrap().is_none());
        assert!(!engine.has_network("lifeboat-drill-r1"));
        assert!(
            !state.path().join("drills/r1.json").exists(),
            "its journal went with them"
        );
        assert!(state.path().join("drills/r2.json").exists());
        // Run again: nothing left of r1 to remove.
        let again = remove_drill_leftovers(state.path(), &engines).await;
        assert!(again.removed.is_empty());
    }

    #[test]
    fn a_journal_naming_a_live_object_is_not_scratch() {
        let mut scratch = Scratch {
            run: "r1".into(),
            engines: BTreeMap::new(),
        };
        scratch.engines.insert(
            "default".into(),
            EngineScratch {
                volumes: vec!["data-drill-r1".into()],
                networks: vec!["lifeboat-drill-r1".into()],
                ..EngineScratch::default()
            },
        );
        assert!(scratch.is_scratch_only());
        let mut live = scratch.clone();
        live.engines
            .get_mut("default")
            .unwrap()
            .volumes
            .push("data".into());
        assert!(!live.is_scratch_only());
        let mut up = scratch.clone();
        up.engines.get_mut("default").unwrap().directories =
            vec![PathBuf::from("/srv/../etc-drill-r1")];
        assert!(!up.is_scratch_only());
    }
}
