//! Dumps: a command run in a service's container whose stdout streams
//! straight into a stream snapshot (no temporary file anywhere), and whose
//! restore streams the snapshot into `restore_command`'s stdin, both once
//! the service is ready (healthcheck, then `verify`: `service::wait_ready`).
//! A dump that exits non-zero, is killed, or writes one of its
//! `fail_on_stderr` substrings is never stored: the failure ends the stream
//! before its end, so the repository never writes the snapshot.

use super::{Copied, Job, KindHandler, Observer, RestoreTarget};
use crate::apply::{ApplyError, stream};
use crate::engine::{Engine, EngineError, ExecOutput};
use crate::plan::{Detail, LiveResource, ResourceChange, RestoreObservation, TargetState};
use crate::repo::{ContentKind, Repository, Snapshot};
use crate::spec::{Address, DumpSpec, Resource, ResourceKind, ServiceSpec, Spec};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};

pub(crate) struct DumpHandler;

/// How many lines of stderr a failure shows.
const TAIL_LINES: usize = 10;

/// The longest stderr line kept while looking for `fail_on_stderr`
/// substrings: a command writing binary to stderr cannot grow it unbounded.
const LINE_LIMIT: usize = 64 << 10;

fn dump_of<'s>(spec: &'s Spec, address: &Address) -> Option<&'s DumpSpec> {
    match spec.resource(address) {
        Some(Resource::Dump(dump)) => Some(dump),
        _ => None,
    }
}

fn service_of<'s>(spec: &'s Spec, dump: &DumpSpec) -> Option<&'s ServiceSpec> {
    spec.services.iter().find(|s| s.name == dump.service)
}

/// The dump's spec, its service and the engine that runs it, read from the
/// spec (never from the plan, whose names may be redacted).
fn resolve<'r>(
    spec: &'r Spec,
    engines: &'r crate::apply::Engines,
    address: &Address,
) -> Result<(&'r DumpSpec, &'r ServiceSpec, &'r Arc<dyn Engine>), ApplyError> {
    let Some(dump) = dump_of(spec, address) else {
        return Err(ApplyError::ResourceMissing(format!(
            "the plan names {address}, which the spec no longer declares"
        )));
    };
    let Some(service) = service_of(spec, dump) else {
        return Err(ApplyError::ResourceMissing(format!(
            "{address}: its service {:?} is not declared",
            dump.service
        )));
    };
    let engine = engines.get(crate::spec::engine_or_default(service.engine.as_deref()))?;
    Ok((dump, service, engine))
}

/// The last lines of a command's output, for a failure message.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// `command` is shown as the spec allows (redacted when it holds a
/// sensitive value).
fn failure(what: &str, command: &str, output: &ExecOutput, why: &str) -> String {
    let mut message = format!("{what} {command:?} {why}");
    let tail = tail(&output.output);
    if !tail.is_empty() {
        message.push_str(&format!("; the end of its stderr:\n{tail}"));
    }
    message
}

/// How long a failed dump waits for the engine to kill its command.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Finished = futures_util::future::BoxFuture<'static, Result<ExecOutput, EngineError>>;

/// The command's end, awaited by whoever gets there first (the stream's
/// last item, or the cleanup of a failed copy); `None` once taken.
async fn wait(
    finished: &tokio::sync::Mutex<Option<Finished>>,
) -> Option<Result<ExecOutput, EngineError>> {
    let mut guard = finished.lock().await;
    let result = guard.as_mut()?.await;
    *guard = None;
    Some(result)
}

/// Finds `fail_on_stderr` substrings in stderr line by line, as it arrives
/// (a match early in a long stderr counts too).
#[derive(Default)]
struct StderrScan {
    patterns: Vec<String>,
    line: Vec<u8>,
    matched: Option<String>,
}

impl StderrScan {
    fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if byte == b'\n' {
                self.check();
                self.line.clear();
            } else if self.line.len() < LINE_LIMIT {
                self.line.push(byte);
            }
        }
    }

    fn check(&mut self) {
        if self.matched.is_some() {
            return;
        }
        let line = String::from_utf8_lossy(&self.line);
        if let Some(pattern) = self.patterns.iter().find(|p| line.contains(p.as_str())) {
            self.matched = Some(pattern.clone());
        }
    }

    fn end(&mut self) -> Option<String> {
        self.check();
        self.matched.clone()
    }
}

/// Runs the dump command and stores its stdout in `repository`; the
/// snapshot is written only once the command exited 0 with no
/// `fail_on_stderr` match.
async fn dump_into(job: Job<'_>) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (dump, service, engine) = resolve(run.spec, run.engines, &change.address)?;
    // A volume of the service copied with `consistency = "stop"` has just
    // restarted it: a database still starting fails the dump.
    super::service::wait_ready(run, change, engine.as_ref(), service).await?;
    let _lock = repository.lock_shared()?;
    let scan = Arc::new(Mutex::new(StderrScan {
        patterns: dump.fail_on_stderr.clone(),
        ..StderrScan::default()
    }));
    let watching = scan.clone();
    let exec = engine
        .exec_stdout(
            &service.container,
            &dump.command,
            Box::new(move |chunk| {
                watching
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .feed(chunk)
            }),
        )
        .await?;
    let verdict: Arc<Mutex<Option<String>>> = Arc::default();
    let judged = verdict.clone();
    let command = run.spec.redact(&dump.command.join(" "));
    let finished = Arc::new(tokio::sync::Mutex::new(Some(exec.finished)));
    let finish = finished.clone();
    let cancel = run.cancel.clone();
    // The check runs when stdout ends, before the reader sees the end: a
    // failure is the stream's last item, so the snapshot is never written.
    let check = futures_util::stream::once(async move {
        let waited = wait(&finish).await;
        // An interrupt cancels first, then kills the command: an output
        // that ended then is cut short, whatever the exit code says.
        let waited = if cancel.is_cancelled() {
            Some(Err(EngineError::Api {
                context: "running the dump command".into(),
                message: "interrupted: the dump is cut short and not stored".into(),
            }))
        } else {
            waited
        };
        let why = match waited {
            None => None,
            Some(Err(error)) => Some(error.to_string()),
            Some(Ok(output)) => {
                let matched = scan.lock().unwrap_or_else(|p| p.into_inner()).end();
                if output.exit_code != 0 {
                    Some(failure(
                        "the dump command",
                        command.as_str(),
                        &output,
                        &format!("exited with code {}", output.exit_code),
                    ))
                } else {
                    matched.map(|pattern| {
                        failure(
                            "the dump command",
                            command.as_str(),
                            &output,
                            &format!("wrote {pattern:?} (fail_on_stderr) to stderr"),
                        )
                    })
                }
            }
        };
        why.map(|why| {
            *judged.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
            Err(std::io::Error::other(why))
        })
    })
    .filter_map(futures_util::future::ready);
    let reader = stream::read_ahead(Box::pin(exec.stdout.chain(check)), run.cancel.clone());
    let progress = run.progress(change);
    let source = run.source(change, &service.container, Vec::new());
    let stored =
        tokio::task::block_in_place(|| repository.backup_stream(reader, source, &progress));
    if stored.is_err() {
        // The engine kills a command whose output is no longer read: wait
        // for that, so an interrupted lifeboat leaves nothing running.
        let _ = tokio::time::timeout(KILL_WAIT, wait(&finished)).await;
    }
    let judged = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
    let snapshot = match (stored, judged) {
        (_, Some(why)) => return Err(ApplyError::CommandFailed(redact_lines(run.spec, &why))),
        (result, None) => result?,
    };
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: 0,
        bytes: snapshot.summary.bytes,
        read_bytes: snapshot.summary.bytes_read,
        added_bytes: snapshot.summary.added_bytes,
        notes: Vec::new(),
    })
}

/// A command's stderr may echo a sensitive value: each line that holds one
/// is hidden, the others stay to say what went wrong.
fn redact_lines(spec: &Spec, text: &str) -> String {
    text.lines()
        .map(|line| spec.redact(line))
        .collect::<Vec<_>>()
        .join("\n")
}

fn stream_snapshot(
    change: &ResourceChange,
    repository: &Repository,
) -> Result<Snapshot, ApplyError> {
    let snapshot = super::chosen_snapshot(change, repository)?;
    if snapshot.content != ContentKind::Stream {
        return Err(ApplyError::Integrity(format!(
            "snapshot {} of {} holds a file tree, not a dump",
            snapshot.id.short(),
            change.address
        )));
    }
    Ok(snapshot)
}

/// Streams the snapshot into `restore_command`'s stdin in the container.
async fn load(job: Job<'_>) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (dump, service, engine) = resolve(run.spec, run.engines, &change.address)?;
    let live = service;
    let service = &*super::written_service(service, change.into.as_ref());
    if dump.restore_command.is_empty() {
        return Err(ApplyError::Refused(no_restore_command(&change.address)));
    }
    let _lock = repository.lock_shared()?;
    let snapshot = stream_snapshot(change, repository)?;
    match (&change.detail, &change.into) {
        // A drill: a scratch server of the dump's own, started now.
        (Detail::DumpServer(server), Some(into)) => {
            super::dump_server::start(run, change, engine.as_ref(), dump, live, server, into)
                .await?
        }
        // Restored a moment ago, or started by hand just before: a
        // database still starting refuses the load.
        _ => super::service::wait_ready(run, change, engine.as_ref(), service).await?,
    }
    let progress = run.progress(change);
    let (mut writer, upload) = stream::channel(run.cancel.clone());
    let handle = tokio::runtime::Handle::current();
    let loading = engine.exec_stdin(&service.container, &dump.restore_command, Box::pin(upload));
    let (restored, loaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let restorer = scope.spawn(|| {
                match repository.restore_stream(&snapshot, &mut writer, &progress) {
                    Ok(bytes) => writer.finish().map(|_| bytes).map_err(|e| ApplyError::Io {
                        context: "handing the dump to restore_command".to_string(),
                        source: e,
                    }),
                    Err(error) => {
                        writer.abort(error.to_string());
                        Err(error.into())
                    }
                }
            });
            let loaded = handle.block_on(loading);
            (restorer.join(), loaded)
        })
    });
    let output = loaded?;
    if output.exit_code != 0 {
        let message = failure(
            "restore_command",
            &run.spec.redact(&dump.restore_command.join(" ")),
            &output,
            &format!("exited with code {}", output.exit_code),
        );
        return Err(ApplyError::CommandFailed(redact_lines(run.spec, &message)));
    }
    let bytes = match restored {
        Ok(result) => result?,
        Err(_) => return Err(crate::apply::stream::worker_panicked()),
    };
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        bytes,
        ..Copied::default()
    })
}

fn no_restore_command(address: &Address) -> String {
    format!(
        "{address} has no restore_command: add one that reads the dump from stdin (for \
         PostgreSQL, restore_command = [\"psql\", \"-U\", \"postgres\"]), or restore the \
         service's volumes instead"
    )
}

/// Whether the service's container can run a command now; the message says
/// what to do when not.
async fn container_problem(
    spec: &Spec,
    engine: &dyn Engine,
    service: &ServiceSpec,
) -> Option<String> {
    let shown = spec.redact(&service.container);
    match engine.container(&service.container).await {
        Ok(Some(state)) if state.running && !state.paused => None,
        Ok(Some(_)) => Some(format!(
            "container {shown:?} of service.{} is not running: start it, the dump runs in it",
            service.name
        )),
        Ok(None) => Some(format!(
            "container {shown:?} of service.{} does not exist: start the service, or fix \
             `container`",
            service.name
        )),
        Err(error) => Some(spec.redact(&error.to_string())),
    }
}

/// Whether the server the dump `chosen` loads into may hold its rows,
/// judged by the service's volumes: `Missing` when none exists (the
/// container is `created` by the restore on new ones, or there are none);
/// `Empty` when each that exists was created after the dump was taken, and
/// neither it nor the dump was restored since (a server started anew);
/// `NonEmpty` otherwise, and whenever that cannot be told (a running
/// container without volumes, no creation time).
async fn server_state(
    observer: &Observer<'_>,
    dump: &Address,
    service: &ServiceSpec,
    chosen: Option<(&Repository, &Snapshot)>,
    created: bool,
) -> TargetState {
    let unknown = if created {
        TargetState::Missing
    } else {
        TargetState::NonEmpty
    };
    let Some((repository, snapshot)) = chosen else {
        return unknown;
    };
    let volumes: Vec<Address> = crate::plan::service_data(observer.spec, &service.name)
        .into_iter()
        .filter(|a| a.kind == ResourceKind::Volume)
        .collect();
    // A volume a restore created holds the restored database, however
    // new, and so does one the dump was loaded into.
    let restored = crate::apply::records::restore_times(repository);
    let mut existing = false;
    for address in volumes {
        let Some(Resource::Volume(volume)) = observer.spec.resource(&address) else {
            return TargetState::NonEmpty;
        };
        let Ok(engine) = observer.engine(&address) else {
            return TargetState::NonEmpty;
        };
        let name = observer.target_name(&address, &volume.volume_name);
        let created_at = match engine.volume(name).await {
            Ok(None) => continue,
            Ok(Some(info)) => info
                .created_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            Err(_) => return TargetState::NonEmpty,
        };
        existing = true;
        let started_after = created_at.is_some_and(|created_at| {
            created_at > snapshot.time
                && [address.to_string(), dump.to_string()].iter().all(|a| {
                    restored
                        .get(a)
                        .is_none_or(|restored| *restored < created_at)
                })
        });
        if !started_after {
            return TargetState::NonEmpty;
        }
    }
    if existing {
        TargetState::Empty
    } else {
        unknown
    }
}

#[async_trait::async_trait]
impl KindHandler for DumpHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let (_, service, engine) = match resolve(observer.spec, observer.engines, address) {
            Ok(resolved) => resolved,
            Err(error) => {
                return (
                    LiveResource::problem(error.to_string()),
                    "(unreachable)".into(),
                );
            }
        };
        if let Some(problem) = container_problem(observer.spec, engine.as_ref(), service).await {
            return (LiveResource::problem(problem), "(missing)".into());
        }
        let fingerprint = match engine.container(&service.container).await {
            Ok(Some(state)) => state.id,
            _ => String::new(),
        };
        let live = LiveResource {
            problem: None,
            running_users: Vec::new(),
            detail: crate::plan::Detail::None,
            source: None,
            version: None,
        };
        (live, fingerprint)
    }

    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget {
        let (dump, service, engine) = match resolve(observer.spec, observer.engines, address) {
            Ok(resolved) => resolved,
            Err(error) => return RestoreTarget::unknown(error.to_string()),
        };
        let into = observer.into.into_of(observer.spec, address);
        if let (Some(suffix), Some(into)) = (&observer.into.dump_servers, &into) {
            if dump.restore_command.is_empty() {
                return RestoreTarget::unknown(no_restore_command(address));
            }
            return super::dump_server::observe(
                observer.spec,
                engine.as_ref(),
                dump,
                service,
                suffix,
                into,
            )
            .await;
        }
        let service = &*super::written_service(service, into.as_ref());
        let shown = observer.spec.redact(&service.container);
        let what = format!("the restore_command in container {shown}");
        // A whole-stack restore creates the container before the dump
        // loads (the graph orders service → dump): only a container that
        // stays as it is must run now. A scratch server named with
        // `--into` is one that stays.
        let service_address = Address::new(ResourceKind::Service, service.name.clone());
        let scratch = observer.into.names.contains_key(address);
        let created_first = !scratch
            && observer.restoring.contains(&service_address)
            && matches!(engine.container(&service.container).await, Ok(None));
        let target = if dump.restore_command.is_empty() {
            Err(no_restore_command(address))
        } else if created_first {
            // On volumes kept from before the dump, a new container is
            // not a new server.
            Ok(server_state(observer, address, service, chosen, true).await)
        } else {
            match container_problem(observer.spec, engine.as_ref(), service).await {
                Some(_) if scratch => Err(format!(
                    "the scratch server {shown} named with --into is not a running container: \
                     start it first (the dump is loaded into it, never into a live server)"
                )),
                Some(problem) => Err(problem),
                None => Ok(server_state(observer, address, service, chosen, false).await),
            }
        };
        let fingerprint = match engine.container(&service.container).await {
            Ok(Some(state)) => state.id,
            _ => "(missing)".into(),
        };
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what,
                detail: crate::plan::Detail::None,
            },
            fingerprint,
        }
    }

    async fn back_up(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        dump_into(job).await
    }

    async fn restore(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        load(job).await
    }
}
