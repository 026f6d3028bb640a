//! Quiescing: what happens around the copy of a volume or bind whose
//! service must be quiet — its `pre` hooks, stopping or pausing it
//! (`consistency`), and afterwards starting or unpausing it again and its
//! `post` hooks, once per resource however many repositories get the copy.
//!
//! Every stop or pause is recorded in a journal (one file per container in
//! the state directory, naming the host and process) before it happens, and
//! the record is removed once the container runs again. A run killed in
//! between leaves the record: the next run, or `lifeboat recover`, finds
//! that its process is gone and starts the container again ([`recover`]).
//! SIGINT and SIGTERM release what this process holds ([`Quiescer::release_all`]).

use super::report::CopyOutcome;
use super::{ApplyError, Engines, Event, Run};
use crate::engine::{Engine, EngineError};
use crate::host::ProcessId;
use crate::plan::ResourceChange;
use crate::repo::Repository;
use crate::spec::{Consistency, Hooks, Resource, ServiceSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where, under the spec directory's state directory, the journal lives.
pub const JOURNAL_DIR: &str = "quiesce";

/// How long a stopped service's processes get to end before SIGKILL
/// (Docker's own default).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What lifeboat did to a container, and so what undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    Stopped,
    Paused,
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

/// One journal record: a container this process is about to stop or
/// pause (or did), so a later run can undo it if this one dies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub host: String,
    /// The process, as [`ProcessId::token`] writes it.
    pub process: String,
    pub engine: String,
    pub container: String,
    pub hold: Hold,
    /// The resource whose copy needed it (`volume.pgdata`).
    pub resource: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// A container this process holds stopped or paused.
struct Held {
    engine: Arc<dyn Engine>,
    engine_name: String,
    container: String,
    hold: Hold,
    entry: PathBuf,
}

#[derive(Default)]
struct HeldState {
    held: Vec<Held>,
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
    /// the container already ran again (or no longer exists).
    pub resumed: bool,
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

fn journal_io(context: String) -> impl FnOnce(std::io::Error) -> ApplyError {
    move |source| ApplyError::Io { context, source }
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

    /// Records, then stops or pauses `container`.
    async fn hold(
        &self,
        engine_name: &str,
        engine: &Arc<dyn Engine>,
        container: &str,
        hold: Hold,
        resource: &str,
    ) -> Result<(), ApplyError> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(ApplyError::Snapshot(
                "the run was interrupted: nothing more is stopped".to_string(),
            ));
        }
        let entry = JournalEntry {
            host: self.process.host.clone(),
            process: self.process.token(),
            engine: engine_name.to_string(),
            container: container.to_string(),
            hold,
            resource: resource.to_string(),
            since: chrono::Utc::now(),
        };
        let path = self.entry_path(engine_name, container);
        write_entry(&self.journal, &path, &entry)?;
        // Held from here on: whatever the engine did with a failed request,
        // the release looks at the container's state before acting.
        state.held.push(Held {
            engine: engine.clone(),
            engine_name: engine_name.to_string(),
            container: container.to_string(),
            hold,
            entry: path,
        });
        match hold {
            Hold::Stopped => engine.stop_container(container, STOP_TIMEOUT).await?,
            Hold::Paused => engine.pause_container(container).await?,
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
            .position(|h| h.engine_name == engine_name && h.container == container)
        else {
            return Ok(false);
        };
        let held = state.held.remove(index);
        match resume(held.engine.as_ref(), &held.container, held.hold).await {
            Ok(_) => {
                remove_entry(&held.entry);
                Ok(true)
            }
            Err(error) => {
                // The journal keeps the record: the next run tries again.
                Err(error.into())
            }
        }
    }

    /// On SIGINT/SIGTERM: starts or unpauses everything this process holds,
    /// and refuses further stops. Returns what it resumed and what failed.
    pub async fn release_all(&self) -> (Vec<String>, Vec<String>) {
        let mut state = self.state.lock().await;
        state.closed = true;
        let mut resumed = Vec::new();
        let mut errors = Vec::new();
        for held in state.held.drain(..) {
            match resume(held.engine.as_ref(), &held.container, held.hold).await {
                Ok(_) => {
                    remove_entry(&held.entry);
                    resumed.push(held.container);
                }
                Err(error) => errors.push(format!("{}: {error}", held.container)),
            }
        }
        (resumed, errors)
    }
}

fn write_entry(dir: &Path, path: &Path, entry: &JournalEntry) -> Result<(), ApplyError> {
    let json = serde_json::to_vec_pretty(entry).unwrap_or_default();
    write_record(
        dir,
        path,
        &json,
        &format!("recording the stop of {}", entry.container),
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

/// Undoes `hold` if the container is still in that state; `Ok(true)` when
/// it acted. A container that no longer exists needs nothing.
async fn resume(engine: &dyn Engine, container: &str, hold: Hold) -> Result<bool, EngineError> {
    let Some(state) = engine.container(container).await? else {
        return Ok(false);
    };
    match hold {
        Hold::Stopped if !state.running => engine.start_container(container).await?,
        Hold::Paused if state.paused => engine.unpause_container(container).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reads the journal in `state_dir` and resumes the containers of lifeboat
/// processes that are gone; their records are removed once done. Records
/// of live processes are left to them.
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
        if !process.is_gone() {
            report.still_held.push(format!(
                "{} ({}, held by lifeboat pid {} on {})",
                entry.container, entry.resource, process.pid, entry.host
            ));
            continue;
        }
        let engine = match engines.get(&entry.engine) {
            Ok(engine) => engine,
            Err(error) => {
                report.errors.push(format!(
                    "container {} (stopped for {}): {error}",
                    entry.container, entry.resource
                ));
                continue;
            }
        };
        match resume(engine.as_ref(), &entry.container, entry.hold).await {
            Ok(resumed) => {
                remove_entry(&path);
                report.resumed.push(Resumed {
                    engine: entry.engine.clone(),
                    container: entry.container.clone(),
                    resource: entry.resource.clone(),
                    hold: entry.hold,
                    resumed,
                    pid: process.pid,
                    host: entry.host.clone(),
                });
            }
            Err(error) => report.errors.push(format!(
                "container {} (stopped for {}): {error}",
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
        _ => return None,
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
    let engine_name = change
        .engine
        .as_deref()
        .unwrap_or(crate::plan::DEFAULT_ENGINE);
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
        match run
            .quiescer
            .hold(
                engine_name,
                engine,
                container,
                hold,
                &change.address.to_string(),
            )
            .await
        {
            Ok(()) => held_since = Some(Instant::now()),
            Err(error) => {
                failure = Some(format!(
                    "{service}: could not {} container {container}: {error}",
                    match hold {
                        Hold::Stopped => "stop",
                        Hold::Paused => "pause",
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
                    Hold::Stopped => "start",
                    Hold::Paused => "unpause",
                }
            )),
        }
    }
    for hooks in quiet.hooks.iter().rev() {
        if let Err(error) = hook(
            run,
            change,
            engine.as_ref(),
            container,
            "post",
            &hooks.post,
            hooks.timeout(),
        )
        .await
        {
            after.push(error);
        }
    }
    if !after.is_empty() {
        let message = after.join("; ");
        (run.events)(Event::ResourceFailed {
            address: change.address.to_string(),
            error: message.clone(),
        });
        for outcome in &mut outcomes {
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
    let engine_name = change
        .engine
        .as_deref()
        .unwrap_or(crate::plan::DEFAULT_ENGINE);
    let resource = change.address.to_string();
    let mut stopped = Vec::new();
    let mut failure = None;
    for container in containers {
        run.step(
            change,
            format!("stopping container {}", run.spec.redact(container)),
        );
        match run
            .quiescer
            .hold(engine_name, engine, container, Hold::Stopped, &resource)
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
