//! Quiescing: what happens around the copy of a volume or bind whose
//! service must be quiet — its `pre` hooks, stopping or pausing it
//! (`consistency`), and afterwards starting or unpausing it again and its
//! `post` hooks, once per resource however many repositories get the copy.
//!
//! Every stop or pause is recorded in a journal (one file per container in
//! the state directory, naming the host and process) before it happens, and
//! the record is removed once the container runs again. So is a container
//! a service restore creates, until it is started. A record holds all that
//! undoing it needs — how to reach the engine, the container's id, and its
//! start and stop times as lifeboat left it — so [`recover`] needs no spec.
//! A run killed in between leaves the record: the next run, or `lifeboat
//! recover`, finds that its process is gone and starts the container again,
//! unless someone started or stopped it since (then it is theirs, and left
//! as it is). SIGINT and SIGTERM release what this process holds and run
//! the `post` hooks still due ([`Quiescer::release_all`]).

use super::report::CopyOutcome;
use super::{ApplyError, Engines, Event, Run};
use crate::engine::{Connection, Engine, EngineError};
use crate::host::ProcessId;
use crate::plan::ResourceChange;
use crate::repo::Repository;
use crate::spec::{Consistency, Hooks, Resource, ServiceSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where, under the spec directory's state directory, the journal lives.
pub const JOURNAL_DIR: &str = "quiesce";

/// What lifeboat did to a container, and so what undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    Stopped,
    Paused,
    /// Created by a service restore, not started yet.
    Created,
}

impl Hold {
    fn of(consistency: Consistency) -> Option<Hold> {
        match consistency {
            Consistency::None => None,
            Consistency::Stop => Some(Hold::Stopped),
            Consistency::Pause => Some(Hold::Paused),
        }
    }
}

/// How to reach an engine without the spec (its variables may be unset
/// when the service must come back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineAddress {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_identity: Option<PathBuf>,
}

impl EngineAddress {
    fn of(connection: &Connection) -> Option<EngineAddress> {
        Some(EngineAddress {
            host: connection.host.clone()?,
            cert_path: connection.cert_path.clone(),
            ssh_identity: connection.ssh_identity.clone(),
        })
    }

    fn connection(&self) -> Connection {
        Connection {
            host: Some(self.host.clone()),
            cert_path: self.cert_path.clone(),
            ssh_identity: self.ssh_identity.clone(),
        }
    }
}

/// One journal record: a container this process is about to stop, pause
/// or create (or did), so a later run can undo or finish it if this one dies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub host: String,
    /// The process, as [`ProcessId::token`] writes it.
    pub process: String,
    pub engine: String,
    /// Where that engine was reached (records of older versions lack it:
    /// then the spec's engine of that name is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_address: Option<EngineAddress>,
    pub container: String,
    /// The container's id: another container created since under the same
    /// name is not lifeboat's to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub hold: Hold,
    /// The resource whose copy or restore needed it (`volume.pgdata`).
    pub resource: String,
    pub since: chrono::DateTime<chrono::Utc>,
    /// When the container had last started before lifeboat acted: a later
    /// start is someone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Once lifeboat's stop is done, when the container stopped: a later
    /// stop is someone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A container this process holds stopped or paused.
struct Held {
    engine: Arc<dyn Engine>,
    entry: JournalEntry,
    path: PathBuf,
}

/// `post` hooks due after a resource's copy, run by whoever gets to them
/// first: the copy's end, or a signal's cleanup.
struct DuePost {
    resource: String,
    engine: Arc<dyn Engine>,
    container: String,
    hooks: Vec<(Vec<String>, Duration)>,
}

#[derive(Default)]
struct HeldState {
    held: Vec<Held>,
    posts: Vec<DuePost>,
    /// Set by [`Quiescer::release_all`]: the process is about to exit, so
    /// nothing more may be stopped.
    closed: bool,
}

/// This process's stops and pauses, and their journal.
pub struct Quiescer {
    journal: PathBuf,
    process: ProcessId,
    state: tokio::sync::Mutex<HeldState>,
}

/// A container started or unpaused again after the process that stopped
/// it went away (or, for [`Quiescer::release_all`], on a signal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Resumed {
    pub engine: String,
    pub container: String,
    pub resource: String,
    /// What lifeboat had done to it.
    pub hold: Hold,
    /// What it found: `true` when it started or unpaused it; `false` when
    /// the container already ran again, no longer exists, or is left alone.
    pub resumed: bool,
    /// Why it was left stopped although it is: someone started or
    /// stopped it since lifeboat did, or replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_alone: Option<String>,
    pub pid: u32,
    pub host: String,
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct RecoverReport {
    pub resumed: Vec<Resumed>,
    /// Records of lifeboat processes still running (theirs to undo).
    pub still_held: Vec<String>,
    /// Records that could not be acted on, with why (they are kept).
    pub errors: Vec<String>,
}

/// What [`Quiescer::release_all`] did on a signal.
#[derive(Debug, Default)]
pub struct Released {
    /// Containers started or unpaused again.
    pub resumed: Vec<String>,
    /// `post` hooks run (`volume.data: touch /data/done`).
    pub posts: Vec<String>,
    /// What failed, with why.
    pub errors: Vec<String>,
}

fn journal_io(context: String) -> impl FnOnce(std::io::Error) -> ApplyError {
    move |source| ApplyError::Io { context, source }
}

/// A container and the engine it lives on, as a run names them.
pub(crate) struct OnEngine<'a> {
    pub name: &'a str,
    pub engine: &'a Arc<dyn Engine>,
    pub engines: &'a Engines,
    pub container: &'a str,
}

/// A journaled container creation ([`Quiescer::creating`]).
pub(crate) struct Creation {
    entry: JournalEntry,
    path: PathBuf,
}

impl Quiescer {
    /// Quiescing with its journal in `state_dir/quiesce` (the spec
    /// directory's `.lifeboat`).
    pub fn new(state_dir: &Path) -> Quiescer {
        Quiescer {
            journal: state_dir.join(JOURNAL_DIR),
            process: ProcessId::current(),
            state: tokio::sync::Mutex::new(HeldState::default()),
        }
    }

    fn entry_path(&self, engine: &str, container: &str) -> PathBuf {
        let digest = Sha256::digest(format!("{engine}\0{container}").as_bytes());
        self.journal.join(format!(
            "{}-{}.json",
            self.process.pid,
            &hex::encode(digest)[..16]
        ))
    }

    fn entry(&self, on: &OnEngine<'_>, hold: Hold, resource: &str) -> JournalEntry {
        JournalEntry {
            host: self.process.host.clone(),
            process: self.process.token(),
            engine: on.name.to_string(),
            engine_address: on.engines.connection(on.name).and_then(EngineAddress::of),
            container: on.container.to_string(),
            container_id: None,
            hold,
            resource: resource.to_string(),
            since: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Records, then stops (giving it `stop_timeout`) or pauses the container.
    pub(super) async fn hold(
        &self,
        on: &OnEngine<'_>,
        hold: Hold,
        resource: &str,
        stop_timeout: Duration,
    ) -> Result<(), ApplyError> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(ApplyError::Snapshot(
                "the run was interrupted: nothing more is stopped".to_string(),
            ));
        }
        let mut entry = self.entry(on, hold, resource);
        if let Some(before) = on.engine.container(on.container).await? {
            entry.container_id = Some(before.id);
            entry.started_at = before.started_at;
        }
        let path = self.entry_path(on.name, on.container);
        write_entry(&self.journal, &path, &entry)?;
        // Held from here on: whatever the engine did with a failed request,
        // the release looks at the container's state before acting.
        state.held.push(Held {
            engine: on.engine.clone(),
            entry: entry.clone(),
            path: path.clone(),
        });
        match hold {
            Hold::Stopped => {
                on.engine.stop_container(on.container, stop_timeout).await?;
                // How lifeboat left it: a later stop is someone else's.
                // (Without it, recover only checks that nobody started it.)
                if let Ok(Some(after)) = on.engine.container(on.container).await {
                    entry.finished_at = after.finished_at;
                    write_entry(&self.journal, &path, &entry)?;
                    if let Some(held) = state.held.iter_mut().find(|h| h.path == path) {
                        held.entry = entry;
                    }
                }
            }
            Hold::Paused => on.engine.pause_container(on.container).await?,
            Hold::Created => {}
        }
        Ok(())
    }

    /// Starts or unpauses `container` again if this process holds it;
    /// `Ok(false)` when it does not (a signal's cleanup already did).
    async fn release(&self, engine_name: &str, container: &str) -> Result<bool, ApplyError> {
        let mut state = self.state.lock().await;
        let Some(index) = state
            .held
            .iter()
            .position(|h| h.entry.engine == engine_name && h.entry.container == container)
        else {
            return Ok(false);
        };
        let held = state.held.remove(index);
        // On error the journal keeps the record: the next run tries again.
        resume(held.engine.as_ref(), &held.entry).await?;
        remove_entry(&held.path);
        Ok(true)
    }

    /// Remembers the `post` hooks due after `resource`'s copy.
    pub(super) async fn expect_post(
        &self,
        resource: &str,
        on: &OnEngine<'_>,
        hooks: Vec<(Vec<String>, Duration)>,
    ) {
        if hooks.is_empty() {
            return;
        }
        self.state.lock().await.posts.push(DuePost {
            resource: resource.to_string(),
            engine: on.engine.clone(),
            container: on.container.to_string(),
            hooks,
        });
    }

    /// The `post` hooks due after `resource`'s copy, for the caller to
    /// run; `None` once a signal's cleanup owns them.
    pub(super) async fn take_post(&self, resource: &str) -> Option<Vec<(Vec<String>, Duration)>> {
        let mut state = self.state.lock().await;
        if state.closed {
            return None;
        }
        let index = state.posts.iter().position(|p| p.resource == resource)?;
        Some(state.posts.remove(index).hooks)
    }

    /// Records that a service restore is about to create `on.container`,
    /// so a run killed before starting it leaves a record that the next
    /// run (or `recover`) completes.
    pub(crate) fn creating(
        &self,
        on: &OnEngine<'_>,
        resource: &str,
    ) -> Result<Creation, ApplyError> {
        let entry = self.entry(on, Hold::Created, resource);
        let path = self.entry_path(on.name, on.container);
        write_entry(&self.journal, &path, &entry)?;
        Ok(Creation { entry, path })
    }

    /// The container of `creation` exists now, with id `id`: only that
    /// one is lifeboat's to start.
    pub(crate) fn created(&self, creation: &mut Creation, id: &str) -> Result<(), ApplyError> {
        creation.entry.container_id = Some(id.to_string());
        write_entry(&self.journal, &creation.path, &creation.entry)
    }

    /// The creation is done (its container started, or that start failed
    /// and the run says so): nothing is left for a later run.
    pub(crate) fn creation_done(&self, creation: Creation) {
        remove_entry(&creation.path);
    }

    /// On SIGINT/SIGTERM: starts or unpauses everything this process holds,
    /// runs the `post` hooks still due (each within its timeout), and
    /// refuses further stops.
    pub async fn release_all(&self) -> Released {
        let mut state = self.state.lock().await;
        state.closed = true;
        let mut released = Released::default();
        for held in state.held.drain(..) {
            match resume(held.engine.as_ref(), &held.entry).await {
                Ok(_) => {
                    remove_entry(&held.path);
                    released.resumed.push(held.entry.container);
                }
                Err(error) => released
                    .errors
                    .push(format!("{}: {error}", held.entry.container)),
            }
        }
        for due in state.posts.drain(..) {
            for (command, timeout) in &due.hooks {
                let shown = format!("{}: {}", due.resource, command.join(" "));
                match due.engine.exec(&due.container, command, *timeout).await {
                    Ok(output) if output.exit_code == 0 => released.posts.push(shown),
                    Ok(output) => released.errors.push(format!(
                        "post hook {shown} exited with {}",
                        output.exit_code
                    )),
                    Err(error) => released.errors.push(format!("post hook {shown}: {error}")),
                }
            }
        }
        released
    }
}

fn write_entry(dir: &Path, path: &Path, entry: &JournalEntry) -> Result<(), ApplyError> {
    let json = serde_json::to_vec_pretty(entry).unwrap_or_default();
    write_record(
        dir,
        path,
        &json,
        &format!(
            "recording what lifeboat does to container {}",
            entry.container
        ),
    )
}

/// Writes one journal record durably (temporary file, fsync, rename, fsync
/// of the directory): it must survive a crash right after what it records.
pub(crate) fn write_record(
    dir: &Path,
    path: &Path,
    json: &[u8],
    what: &str,
) -> Result<(), ApplyError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(journal_io(format!("creating {}", dir.display())))?;
    let temporary = path.with_extension("tmp");
    std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(json)?;
            file.sync_all()
        })
        .and_then(|_| std::fs::rename(&temporary, path))
        .map_err(journal_io(format!("{what} in {}", path.display())))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn remove_entry(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// What [`resume`] found and did.
#[derive(Debug, PartialEq, Eq)]
enum Resumption {
    /// Started or unpaused.
    Done,
    /// Already running again, or gone: nothing to do.
    Nothing,
    /// Not lifeboat's to start any more, with why.
    LeftAlone(String),
}

/// Undoes (or, for a creation, finishes) what `entry` records, if the
/// container is still as lifeboat left it. A container someone started or
/// stopped since, or replaced, is theirs: left as it is.
async fn resume(engine: &dyn Engine, entry: &JournalEntry) -> Result<Resumption, EngineError> {
    let container = entry.container.as_str();
    let Some(state) = engine.container(container).await? else {
        return Ok(Resumption::Nothing);
    };
    if entry
        .container_id
        .as_ref()
        .is_some_and(|id| *id != state.id)
    {
        return Ok(Resumption::LeftAlone(
            "it is another container now (recreated since under that name)".to_string(),
        ));
    }
    match entry.hold {
        Hold::Paused if state.paused => engine.unpause_container(container).await?,
        Hold::Paused => return Ok(Resumption::Nothing),
        _ if state.running => return Ok(Resumption::Nothing),
        Hold::Stopped => {
            let started_since = entry.started_at.is_some() && state.started_at != entry.started_at;
            let stopped_since =
                entry.finished_at.is_some() && state.finished_at != entry.finished_at;
            if started_since || stopped_since {
                return Ok(Resumption::LeftAlone(format!(
                    "someone started it since lifeboat stopped it{}, and it was stopped again",
                    state
                        .started_at
                        .as_deref()
                        .map(|t| format!(" (it started at {t})"))
                        .unwrap_or_default()
                )));
            }
            engine.start_container(container).await?
        }
        Hold::Created => {
            if state.started_at.is_some() {
                return Ok(Resumption::LeftAlone(
                    "it was started and stopped since lifeboat created it".to_string(),
                ));
            }
            engine.start_container(container).await?
        }
    }
    Ok(Resumption::Done)
}

/// The engine a record names: reached at its recorded address (no spec
/// needed), else the run's engine of that name.
async fn engine_of(
    entry: &JournalEntry,
    engines: &Engines,
    reached: &mut BTreeMap<String, Engines>,
) -> Result<Arc<dyn Engine>, ApplyError> {
    let Some(address) = &entry.engine_address else {
        return engines.get(&entry.engine).cloned();
    };
    let same = engines
        .connection(&entry.engine)
        .and_then(EngineAddress::of)
        .is_some_and(|known| known == *address);
    if same {
        return engines.get(&entry.engine).cloned();
    }
    if !reached.contains_key(&address.host) {
        let connected = Engines::connect_to(&entry.engine, &address.connection()).await;
        reached.insert(address.host.clone(), connected);
    }
    reached[&address.host].get(&entry.engine).cloned()
}

/// Reads the journal in `state_dir` and resumes (or finishes creating) the
/// containers of lifeboat processes that are gone; their records are
/// removed once done. Records of live processes are left to them. Each
/// record says how to reach its engine, so `engines` may be empty.
pub async fn recover(state_dir: &Path, engines: &Engines) -> RecoverReport {
    let dir = state_dir.join(JOURNAL_DIR);
    let mut report = RecoverReport::default();
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return report;
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut reached = BTreeMap::new();
    for path in paths {
        let shown = path.display().to_string();
        // The journal is untrusted input: a broken record is reported, kept.
        let entry: JournalEntry = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        {
            Ok(entry) => entry,
            Err(error) => {
                report.errors.push(format!(
                    "{shown}: not a quiesce record ({error}); remove it once the container it \
                     names runs again"
                ));
                continue;
            }
        };
        let Some(process) = ProcessId::parse(&entry.host, &entry.process) else {
            report
                .errors
                .push(format!("{shown}: the record names no process it can check"));
            continue;
        };
        let what = match entry.hold {
            Hold::Created => "created",
            Hold::Stopped => "stopped",
            Hold::Paused => "paused",
        };
        if !process.is_gone() {
            report.still_held.push(format!(
                "{} ({what} for {}, by lifeboat pid {} on {})",
                entry.container, entry.resource, process.pid, entry.host
            ));
            continue;
        }
        let resumed = match engine_of(&entry, engines, &mut reached).await {
            Ok(engine) => resume(engine.as_ref(), &entry)
                .await
                .map_err(ApplyError::from),
            Err(error) => Err(error),
        };
        match resumed {
            Ok(resumption) => {
                remove_entry(&path);
                report.resumed.push(Resumed {
                    engine: entry.engine.clone(),
                    container: entry.container.clone(),
                    resource: entry.resource.clone(),
                    hold: entry.hold,
                    resumed: resumption == Resumption::Done,
                    left_alone: match resumption {
                        Resumption::LeftAlone(why) => Some(why),
                        _ => None,
                    },
                    pid: process.pid,
                    host: entry.host.clone(),
                });
            }
            Err(error) => report.errors.push(format!(
                "container {} ({what} for {}): {error}",
                entry.container, entry.resource
            )),
        }
    }
    report
}

/// What a resource's copy needs of its service.
struct Quiet<'s> {
    service: &'s ServiceSpec,
    hold: Option<Hold>,
    /// The service's hooks, then the resource's (pre); the reverse for post.
    hooks: [&'s Hooks; 2],
}

fn quiet_of<'s>(run: &Run<'s>, change: &ResourceChange) -> Option<Quiet<'s>> {
    let spec = run.spec;
    let service = spec.service_of(&change.address)?;
    let (consistency, hooks) = match spec.resource(&change.address)? {
        Resource::Volume(volume) => (volume.consistency, &volume.hooks),
        Resource::Bind(bind) => (bind.consistency, &bind.hooks),
        Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => return None,
    };
    let quiet = Quiet {
        service,
        hold: Hold::of(consistency),
        hooks: [&service.hooks, hooks],
    };
    (quiet.hold.is_some() || quiet.hooks.iter().any(|h| !h.is_empty())).then_some(quiet)
}

/// Runs one hook; an error says what failed and how.
async fn hook(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    container: &str,
    phase: &str,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    if command.is_empty() {
        return Ok(());
    }
    let shown = run.spec.redact(&command.join(" "));
    run.step(change, format!("{phase} hook in {container}: {shown}"));
    match engine.exec(container, command, timeout).await {
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) => {
            let tail: String = {
                let text = output.output.trim();
                let chars: Vec<char> = text.chars().collect();
                chars[chars.len().saturating_sub(300)..].iter().collect()
            };
            Err(format!(
                "{phase} hook `{shown}` in container {container} exited with {}{}",
                output.exit_code,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", run.spec.redact(&tail))
                }
            ))
        }
        Err(error) => Err(format!(
            "{phase} hook `{shown}` in container {container}: {}",
            run.spec.redact(&error.to_string())
        )),
    }
}

/// Runs `copies` (the resource's copy into each repository) with its
/// service quiet: `pre` hooks, then stopped or paused, then the copies,
/// then started or unpaused again and the `post` hooks, in every case. A
/// failing `pre` hook or stop means no copy; a failing restart or `post`
/// hook fails the change (the snapshots written are kept).
pub(crate) async fn around(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &Arc<dyn Engine>,
    repositories: &[(String, &Repository)],
    copies: impl std::future::Future<Output = Vec<CopyOutcome>>,
) -> Vec<CopyOutcome> {
    let Some(quiet) = quiet_of(run, change) else {
        return copies.await;
    };
    let engine_name = change.engine_name();
    let container = quiet.service.container.as_str();
    let service = format!("service.{}", quiet.service.name);
    let fail = |message: String| async move {
        let error = ApplyError::Snapshot(message);
        super::kinds::failed_copies(run, change, repositories, &error).await
    };
    let state = match engine.container(container).await {
        Ok(state) => state,
        Err(error) => {
            return fail(format!(
                "{service}: cannot tell whether container {container} runs: {error}"
            ))
            .await;
        }
    };
    let running = state.as_ref().is_some_and(|s| s.running && !s.paused);
    if !running {
        // Nothing writes to it: the copy is consistent as it is, and a
        // container that is not running has nothing to flush.
        let why = match &state {
            None => format!("container {container} does not exist"),
            Some(_) => format!("container {container} is not running"),
        };
        run.step(
            change,
            format!("{service}: {why}: copied as it is, left as it is"),
        );
        return copies.await;
    }
    let on = OnEngine {
        name: engine_name,
        engine,
        engines: run.engines,
        container,
    };
    let address = change.address.to_string();
    // Due from before the first `pre` hook: a signal from here on runs them.
    let posts = quiet
        .hooks
        .iter()
        .rev()
        .filter(|hooks| !hooks.post.is_empty())
        .map(|hooks| (hooks.post.clone(), hooks.timeout()))
        .collect();
    run.quiescer.expect_post(&address, &on, posts).await;
    let mut failure: Option<String> = None;
    for hooks in quiet.hooks {
        if let Err(error) = hook(
            run,
            change,
            engine.as_ref(),
            container,
            "pre",
            &hooks.pre,
            hooks.timeout(),
        )
        .await
        {
            failure = Some(error);
            break;
        }
    }
    let mut held_since = None;
    if failure.is_none()
        && let Some(hold) = quiet.hold
    {
        (run.events)(Event::ServiceQuiesced {
            address: change.address.to_string(),
            service: service.clone(),
            container: container.to_string(),
            hold,
        });
        // The interruption starts with the stop request, not when the
        // engine says it is done (a stop may take all of stop_timeout).
        let requested = Instant::now();
        match run
            .quiescer
            .hold(&on, hold, &address, quiet.service.stop_timeout())
            .await
        {
            Ok(()) => held_since = Some(requested),
            Err(error) => {
                failure = Some(format!(
                    "{service}: could not {} container {container}: {error}",
                    match hold {
                        Hold::Paused => "pause",
                        _ => "stop",
                    }
                ));
            }
        }
    }
    let mut outcomes = match &failure {
        None => copies.await,
        Some(error) => fail(format!("no copy was taken: {error}")).await,
    };
    let mut after = Vec::new();
    if let Some(hold) = quiet.hold
        && (held_since.is_some() || failure.is_some())
    {
        match run.quiescer.release(engine_name, container).await {
            Ok(true) => (run.events)(Event::ServiceResumed {
                address: change.address.to_string(),
                service: service.clone(),
                container: container.to_string(),
                hold,
                seconds: held_since
                    .map(|since| since.elapsed().as_secs_f64())
                    .unwrap_or_default(),
            }),
            Ok(false) => {}
            Err(error) => after.push(format!(
                "{service}: could not {} container {container} again ({error}); the next \
                 `lifeboat apply` or `lifeboat recover` tries again",
                match hold {
                    Hold::Paused => "unpause",
                    _ => "start",
                }
            )),
        }
    }
    // `None` when a signal's cleanup took them: it runs them.
    for (command, timeout) in run.quiescer.take_post(&address).await.unwrap_or_default() {
        if let Err(error) = hook(
            run,
            change,
            engine.as_ref(),
            container,
            "post",
            &command,
            timeout,
        )
        .await
        {
            after.push(error);
        }
    }
    if !after.is_empty() {
        let message = after.join("; ");
        let class = crate::failure::FailureClass::CommandFailed;
        (run.events)(Event::ResourceFailed {
            address: change.address.to_string(),
            class,
            error: message.clone(),
        });
        for outcome in &mut outcomes {
            outcome.class = outcome.class.or(Some(class));
            outcome.error = Some(match outcome.error.take() {
                Some(error) => format!("{error}; {message}"),
                None => format!(
                    "snapshot {} is stored, but {message}",
                    crate::plan::short_id(outcome.snapshot.as_deref().unwrap_or_default())
                ),
            });
        }
    }
    outcomes
}

/// Runs `work` (a restore replacing a volume's content) with `containers`
/// stopped, in that order, through the journal (so a killed run's next run
/// starts them again); afterwards, on every path, starts them again in the
/// reverse order (dependencies first). A container that could not be
/// stopped means no `work`; one that could not be started again fails the
/// change, saying so.
pub(crate) async fn stopped_during<T>(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &Arc<dyn Engine>,
    containers: &[String],
    work: impl std::future::Future<Output = Result<T, ApplyError>>,
) -> Result<T, ApplyError> {
    let engine_name = change.engine_name();
    let resource = change.address.to_string();
    let mut stopped = Vec::new();
    let mut failure = None;
    for container in containers {
        run.step(
            change,
            format!("stopping container {}", run.spec.redact(container)),
        );
        let on = OnEngine {
            name: engine_name,
            engine,
            engines: run.engines,
            container,
        };
        // The service's own stop_timeout when the spec names the container.
        let stop_timeout = run
            .spec
            .services
            .iter()
            .find(|s| &s.container == container)
            .map_or(crate::spec::DEFAULT_STOP_TIMEOUT, |s| s.stop_timeout());
        match run
            .quiescer
            .hold(&on, Hold::Stopped, &resource, stop_timeout)
            .await
        {
            Ok(()) => stopped.push(container),
            Err(error) => {
                failure = Some(ApplyError::Snapshot(format!(
                    "could not stop container {} ({error}); nothing was changed",
                    run.spec.redact(container)
                )));
                // Held even so: the release below looks at its state.
                stopped.push(container);
                break;
            }
        }
    }
    let result = match failure {
        Some(error) => Err(error),
        None => work.await,
    };
    let mut not_started = Vec::new();
    for container in stopped.iter().rev() {
        match run.quiescer.release(engine_name, container).await {
            Ok(true) => run.step(
                change,
                format!("started container {} again", run.spec.redact(container)),
            ),
            Ok(false) => {}
            Err(error) => not_started.push(format!("{} ({error})", run.spec.redact(container))),
        }
    }
    if not_started.is_empty() {
        return result;
    }
    let message = format!(
        "could not start container(s) {} again; the next `lifeboat restore` or `lifeboat \
         recover` tries again",
        not_started.join(", ")
    );
    Err(match result {
        Ok(_) => ApplyError::Snapshot(format!("the restore finished, but {message}")),
        Err(error) => ApplyError::Snapshot(format!("{error}; {message}")),
    })
}
