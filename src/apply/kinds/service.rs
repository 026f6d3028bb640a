//! Services: a container's configuration (and that of the user-defined
//! networks it is attached to), stored as a byte-stream snapshot holding a
//! versioned JSON [`ServiceDocument`]. A backup is `=` while the
//! configuration hashes the same as the latest snapshot's. A restore
//! creates the networks that are missing, recreates the container (after
//! removing the existing one only with `--replace`), starts it when it was
//! running at backup time and waits until it is ready ([`wait_ready`]: its
//! healthcheck healthy, then the spec's `verify` command passing, within
//! `start_timeout`) before what depends on it runs.
//!
//! Environment values may be secrets: they live only in the encrypted
//! snapshot. Plans show variable names, and messages built here have the
//! values masked.

use super::{Copied, Job, KindHandler, Observer, RestoreTarget};
use crate::apply::quiesce::OnEngine;
use crate::apply::{ApplyError, Run};
use crate::engine::{
    ContainerConfig, Engine, Health, HealthStatus, MountKind, NetworkAttachment, NetworkConfig,
};
use crate::plan::{
    Detail, LiveResource, ResourceChange, RestoreInto, RestoreObservation, ServiceDetail,
    TargetState,
};
use crate::repo::{ContentKind, Repository};
use crate::spec::{Address, Resource, ServiceSpec, Spec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct ServiceHandler;

/// What a service snapshot holds. `format` changes when a reader of an
/// older lifeboat could misread the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServiceDocument {
    /// Always [`DOCUMENT_KIND`]: a stream snapshot of something else is refused.
    pub kind: String,
    pub format: u32,
    /// Whether the container ran when it was backed up (a restore starts it then).
    pub running: bool,
    pub container: ContainerConfig,
    /// The user-defined networks it is attached to.
    pub networks: Vec<NetworkConfig>,
}

const DOCUMENT_KIND: &str = "lifeboat.service";
const DOCUMENT_FORMAT: u32 = 1;

/// A configuration is a few KB; anything much larger is not one.
const DOCUMENT_LIMIT: usize = 16 << 20;

/// How often a starting container's health is looked at again.
const READY_INTERVAL: Duration = Duration::from_millis(500);
/// How often a failing `verify` is run again (each run is an exec).
const VERIFY_INTERVAL: Duration = Duration::from_secs(1);

/// The hash of a configuration: equal for an unchanged container.
pub(crate) fn fingerprint(container: &ContainerConfig, networks: &[NetworkConfig]) -> String {
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(&(container, networks)).unwrap_or_default());
    format!("config:{}", hex::encode(&digest.finalize()[..16]))
}

fn service_of<'s>(spec: &'s Spec, address: &Address) -> Option<&'s ServiceSpec> {
    match spec.resource(address) {
        Some(Resource::Service(service)) => Some(service),
        _ => None,
    }
}

fn resolve<'r>(
    run: &'r Run<'_>,
    change: &ResourceChange,
) -> Result<(&'r ServiceSpec, &'r Arc<dyn Engine>), ApplyError> {
    super::resolve(run, change, |r| match r {
        Resource::Service(x) => Some(x),
        _ => None,
    })
}

/// `text` with every environment value of `container` (and every sensitive
/// variable of the spec) masked.
pub(crate) fn masked(spec: &Spec, container: &ContainerConfig, text: &str) -> String {
    let mut text = text.to_string();
    for value in container.env_values() {
        // A one- or two-character value ("1", "on") would mask half the
        // message and hide nothing anyone could not guess.
        if value.len() >= 3 {
            text = text.replace(value, "(sensitive)");
        }
    }
    spec.redact(&text)
}

/// An engine's error about `container` may quote its environment: its
/// values masked, its class kept.
pub(crate) fn masked_engine_error(
    spec: &Spec,
    container: &ContainerConfig,
    error: ApplyError,
) -> ApplyError {
    match error {
        ApplyError::Engine(error) => {
            let text = masked(spec, container, &error.to_string());
            ApplyError::Failed(crate::failure::Failure::new(error.class(), text))
        }
        other => other,
    }
}

/// The container's configuration and networks as the engine has them now;
/// `Err` says why it cannot be read (in words for the plan).
async fn read_document(
    spec: &Spec,
    engine: &dyn Engine,
    container: &str,
) -> Result<ServiceDocument, ApplyError> {
    let shown = spec.redact(container);
    // Engine errors keep their class; their text may hold the container's
    // environment, so it is masked.
    let engine_failure = |error: crate::engine::EngineError, text: String| {
        ApplyError::Failed(crate::failure::Failure::new(error.class(), text))
    };
    let config = match engine.container_config(container).await {
        Ok(Some(config)) => config,
        Ok(None) => {
            return Err(ApplyError::ResourceMissing(format!(
                "container {shown:?} does not exist: start the service, or fix `container`"
            )));
        }
        Err(error) => {
            let text = spec.redact(&error.to_string());
            return Err(engine_failure(error, text));
        }
    };
    let masked_failure = |error: crate::engine::EngineError| {
        let text = masked(spec, &config, &error.to_string());
        engine_failure(error, text)
    };
    let state = engine.container(container).await.map_err(masked_failure)?;
    let mut networks = Vec::new();
    for name in config.user_networks() {
        match engine.network(name).await {
            Ok(Some(network)) => networks.push(network),
            Ok(None) => {
                return Err(ApplyError::ResourceMissing(format!(
                    "network {name:?} of container {shown:?} does not exist (removed while the \
                     container runs?)"
                )));
            }
            Err(error) => return Err(masked_failure(error)),
        }
    }
    Ok(ServiceDocument {
        kind: DOCUMENT_KIND.to_string(),
        format: DOCUMENT_FORMAT,
        running: state.is_some_and(|s| s.running),
        container: config,
        networks,
    })
}

fn detail(spec: &Spec, service: &ServiceSpec, config: Option<&ContainerConfig>) -> Detail {
    Detail::Service(ServiceDetail {
        container: spec.redact(&service.container),
        image: config.map(|c| spec.redact(&c.image)),
        env: config.map(ContainerConfig::env_names).unwrap_or_default(),
        ..ServiceDetail::default()
    })
}

/// What a restore of `service` from `snapshot` would create that reaches
/// into the host, and how the container there now (if any) differs.
/// `host_access` lists all of the snapshot container's such settings;
/// `new_host_access` those the container there now lacks and the spec does
/// not declare, which the plan refuses unless `--allow` names them.
fn restore_detail(
    spec: &Spec,
    service: &ServiceSpec,
    snapshot: &ContainerConfig,
    live: Option<&ContainerConfig>,
) -> Detail {
    let host_access = snapshot.host_access();
    let live_access = live.map(ContainerConfig::host_access).unwrap_or_default();
    let declared = |setting: &str| {
        setting.strip_prefix("bind:").is_some_and(|path| {
            spec.binds
                .iter()
                .any(|b| std::path::Path::new(path).starts_with(&b.path))
        })
    };
    let new_host_access = host_access
        .iter()
        .filter(|s| !live_access.contains(s) && !declared(s))
        .map(|s| spec.redact(s))
        .collect();
    Detail::Service(ServiceDetail {
        container: spec.redact(&service.container),
        image: Some(spec.redact(&snapshot.image)),
        host_access: host_access.iter().map(|s| spec.redact(s)).collect(),
        new_host_access,
        differs_in: live.map(|l| snapshot.differences(l)).unwrap_or_default(),
        ..ServiceDetail::default()
    })
}

#[async_trait::async_trait]
impl KindHandler for ServiceHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let (service, engine) = match observer.declared(address, service_of(observer.spec, address))
        {
            Ok(declared) => declared,
            Err(unobserved) => return *unobserved,
        };
        let document = match read_document(observer.spec, engine.as_ref(), &service.container).await
        {
            Ok(document) => document,
            Err(problem) => {
                return (
                    LiveResource::problem(problem.to_string()),
                    "(missing)".into(),
                );
            }
        };
        let version = fingerprint(&document.container, &document.networks);
        let live = LiveResource {
            problem: None,
            running_users: Vec::new(),
            detail: detail(observer.spec, service, Some(&document.container)),
            source: Some(service.container.clone()),
            version: Some(version.clone()),
        };
        (live, version)
    }

    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget {
        let Some(service) = service_of(observer.spec, address) else {
            return RestoreTarget::unknown("not a service of the spec".into());
        };
        let engine = match observer.engine(address) {
            Ok(engine) => engine,
            Err(error) => return RestoreTarget::unknown(error.to_string()),
        };
        let into = observer.into.into_of(observer.spec, address);
        let service = &*super::written_service(service, into.as_ref());
        let (mut target, fingerprint) = match engine.container(&service.container).await {
            Ok(None) => (Ok(TargetState::Missing), "(missing)".to_string()),
            Ok(Some(state)) => (Ok(TargetState::NonEmpty), state.id),
            Err(error) => (
                Err(observer.spec.redact(&error.to_string())),
                "(unreachable)".to_string(),
            ),
        };
        let mut detail = detail(observer.spec, service, None);
        if let (Some((repository, snapshot)), Ok(state)) = (chosen, &target) {
            let live = match state {
                TargetState::Missing => Ok(None),
                _ => engine.container_config(&service.container).await,
            };
            let document = tokio::task::block_in_place(|| {
                read_snapshot_document(repository, snapshot, address, &|_| {})
            });
            match (document, live) {
                (Ok((document, _)), Ok(live)) => {
                    let mut config = document.container;
                    if let Some(into) = &into
                        && let Err(message) = isolate(observer.spec, &mut config, into)
                    {
                        target = Err(message);
                    }
                    detail = restore_detail(observer.spec, service, &config, live.as_ref());
                    // The mapped directories are this restore's own, as
                    // the spec's binds are.
                    if let (Some(into), Detail::Service(detail)) = (&into, &mut detail) {
                        let mapped: Vec<String> =
                            into.mounts.values().map(|m| format!("bind:{m}")).collect();
                        detail.new_host_access.retain(|s| !mapped.contains(s));
                    }
                }
                (Err(error), _) => target = Err(observer.spec.redact(&error.to_string())),
                (_, Err(error)) => target = Err(observer.spec.redact(&error.to_string())),
            }
        }
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what: format!("container {}", observer.spec.redact(&service.container)),
                detail,
            },
            fingerprint,
        }
    }

    async fn back_up(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        let (run, change, repository) = (job.run, job.change, job.repository);
        let (service, engine) = resolve(run, change)?;
        let document = read_document(run.spec, engine.as_ref(), &service.container).await?;
        let bytes = serde_json::to_vec(&document).map_err(|e| {
            ApplyError::Failed(crate::failure::Failure::new(
                crate::failure::FailureClass::Other,
                format!("encoding the configuration: {e}"),
            ))
        })?;
        let mut source = run.source(change, &service.container, Vec::new());
        source.version = Some(fingerprint(&document.container, &document.networks));
        let _lock = repository.lock_shared()?;
        let progress = run.progress(change);
        let snapshot = tokio::task::block_in_place(|| {
            repository.backup_stream(bytes.as_slice(), source, &progress)
        })?;
        Ok(Copied {
            snapshot: snapshot.id.to_string(),
            files: snapshot.summary.files,
            bytes: snapshot.summary.bytes,
            read_bytes: bytes.len() as u64,
            added_bytes: snapshot.summary.added_bytes,
            notes: Vec::new(),
        })
    }

    async fn restore(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        restore_service(job).await
    }
}

/// A writer that refuses more than [`DOCUMENT_LIMIT`] bytes.
struct Limited(Vec<u8>);

impl std::io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + data.len() > DOCUMENT_LIMIT {
            return Err(std::io::Error::other(
                "the snapshot is far larger than a service configuration",
            ));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The document a restore change's snapshot holds: see [`read_snapshot_document`].
fn load_document(
    run: &Run<'_>,
    change: &ResourceChange,
    repository: &Repository,
) -> Result<(ServiceDocument, u64), ApplyError> {
    let snapshot = super::chosen_snapshot(change, repository)?;
    let progress = run.progress(change);
    tokio::task::block_in_place(|| {
        read_snapshot_document(repository, &snapshot, &change.address, &progress)
    })
}

/// The document a service snapshot holds, checked: untrusted until it
/// parses as a service configuration of a format this version reads.
fn read_snapshot_document(
    repository: &Repository,
    snapshot: &crate::repo::Snapshot,
    address: &Address,
    progress: &(dyn Fn(crate::repo::Progress) + Sync),
) -> Result<(ServiceDocument, u64), ApplyError> {
    let unreadable = |why: String| {
        ApplyError::Integrity(format!(
            "snapshot {} of {address} is not a service configuration this version reads: {why}",
            snapshot.id.short(),
        ))
    };
    if snapshot.content != ContentKind::Stream {
        return Err(unreadable("it holds a file tree".to_string()));
    }
    let mut out = Limited(Vec::new());
    repository.restore_stream(snapshot, &mut out, progress)?;
    let document = parse_document(&out.0).map_err(unreadable)?;
    Ok((document, out.0.len() as u64))
}

/// A service document from untrusted bytes, or why it is not one (in
/// words that quote nothing of it: it may hold secrets).
pub(crate) fn parse_document(bytes: &[u8]) -> Result<ServiceDocument, String> {
    if bytes.len() > DOCUMENT_LIMIT {
        return Err("the snapshot is far larger than a service configuration".to_string());
    }
    // serde's message may quote the document (and so a secret): say where, not what.
    let document: ServiceDocument = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "malformed JSON ({:?} at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if document.kind != DOCUMENT_KIND {
        return Err("it is not a service document".to_string());
    }
    if document.format != DOCUMENT_FORMAT {
        return Err(format!(
            "document format {} (this version reads {DOCUMENT_FORMAT}); use a newer lifeboat",
            document.format
        ));
    }
    Ok(document)
}

/// What a restore of the service document in `bytes` would show of it:
/// its settings reaching into the host, and how another configuration
/// (`live`, a document too) differs from it. For the fuzz target; the
/// restore goes through the same parsing.
pub fn inspect_service_document(
    bytes: &[u8],
    live: &[u8],
) -> Result<(Vec<String>, Vec<String>), String> {
    let document = parse_document(bytes)?;
    let differences = parse_document(live)
        .map(|l| document.container.differences(&l.container))
        .unwrap_or_default();
    let _ = fingerprint(&document.container, &document.networks);
    Ok((document.container.host_access(), differences))
}

async fn restore_service(job: Job<'_>) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (service, engine) = resolve(run, change)?;
    let service = &*super::written_service(service, change.into.as_ref());
    let _lock = repository.lock_shared()?;
    let (mut document, bytes) = load_document(run, change, repository)?;
    if let Some(into) = &change.into {
        isolate(run.spec, &mut document.container, into).map_err(|message| {
            ApplyError::Guarded {
                what: change.address.to_string(),
                message,
            }
        })?;
        create_isolated_network(run, change, engine.as_ref(), into).await?;
    }
    // The plan showed (and, where new, the user allowed) what reaches into
    // the host; a snapshot that asks for more now is not restored.
    let shown = match &change.detail {
        Detail::Service(detail) => detail.host_access.clone(),
        _ => Vec::new(),
    };
    let unshown: Vec<String> = document
        .container
        .host_access()
        .into_iter()
        .filter(|s| !shown.contains(&run.spec.redact(s)))
        .map(|s| run.spec.redact(&s))
        .collect();
    if !unshown.is_empty() {
        return Err(ApplyError::Refused(format!(
            "the snapshot asks for host access the plan did not show ({}): plan the restore \
             again",
            unshown.join(", ")
        )));
    }
    let mut config = document.container.clone();
    // The spec says which container this is; the snapshot may be of
    // another name (`container` changed since).
    config.name = service.container.clone();
    let result = recreate(run, change, engine, service, &document, &config).await;
    result.map_err(|error| masked_engine_error(run.spec, &config, error))?;
    let snapshot = change
        .snapshot
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    Ok(Copied {
        snapshot,
        files: 1,
        bytes,
        read_bytes: bytes,
        added_bytes: 0,
        notes: Vec::new(),
    })
}

/// Makes `config` (a snapshot's container) the configuration of a renamed
/// service's new container: its volume and directory mounts moved to the
/// mapped ones, attached only to the mapping's network (keeping its
/// aliases there, so the clones of a stack find each other by their usual
/// names), no host ports (the live service holds them), and none of the
/// Compose labels that would make Compose take it for the live service's
/// container. It runs the image it ran when backed up, by id: the live tag
/// may have moved since (the image restore before it loads that id, under
/// a mapping leaving the live tags alone). A read-write mount of something not mapped is refused: a
/// clone must not write the live data.
fn isolate(spec: &Spec, config: &mut ContainerConfig, into: &RestoreInto) -> Result<(), String> {
    let mut unmapped = Vec::new();
    for mount in &mut config.mounts {
        if mount.kind == MountKind::Tmpfs {
            continue;
        }
        match into.mounts.get(&mount.source) {
            Some(mapped) => mount.source = mapped.clone(),
            None if !mount.read_only => unmapped.push(spec.redact(&mount.source)),
            None => {}
        }
    }
    if !unmapped.is_empty() {
        return Err(format!(
            "the new container would mount {} read-write, which the live service uses: map \
             the volumes and directories of the service too (--into-suffix maps every one the \
             spec declares; --into volume.NAME=NEW one), or declare the ones the spec lacks",
            unmapped.join(", ")
        ));
    }
    let network = into.network.clone().unwrap_or_default();
    if config.networks.iter().any(|n| n.network == network) {
        return Err(format!(
            "network {network} is one the live service is attached to: its clone there would \
             answer the live service's names. Pass --network with a network of its own"
        ));
    }
    let mut aliases: Vec<String> = config
        .networks
        .iter()
        .flat_map(|n| n.aliases.iter().cloned())
        .collect();
    aliases.sort();
    aliases.dedup();
    config.networks = vec![NetworkAttachment {
        network: network.clone(),
        aliases,
        ipv4_address: None,
        ipv6_address: None,
    }];
    config.network_mode = network;
    config.ports.clear();
    config.publish_all_ports = false;
    if !config.image_id.is_empty() {
        config.image = config.image_id.clone();
    }
    config
        .labels
        .retain(|key, _| !key.starts_with("com.docker.compose."));
    Ok(())
}

/// Creates the isolated network renamed services join, `internal` (no
/// route out), unless it exists.
pub(crate) async fn create_isolated_network(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    into: &RestoreInto,
) -> Result<(), ApplyError> {
    let Some(name) = &into.network else {
        return Ok(());
    };
    if engine.network(name).await?.is_some() {
        return Ok(());
    }
    run.step(change, format!("creating internal network {name}"));
    engine
        .create_network(&NetworkConfig {
            name: name.clone(),
            driver: "bridge".into(),
            internal: true,
            ..NetworkConfig::default()
        })
        .await?;
    Ok(())
}

async fn recreate(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &Arc<dyn Engine>,
    service: &ServiceSpec,
    document: &ServiceDocument,
    config: &ContainerConfig,
) -> Result<(), ApplyError> {
    let shown = run.spec.redact(&config.name);
    let target = match &change.detail {
        Detail::Service(detail) => detail.target,
        _ => None,
    };
    let exists = engine.container(&config.name).await?.is_some();
    match (exists, target) {
        (true, Some(TargetState::NonEmpty)) => {
            run.step(
                change,
                format!("removing container {shown} to recreate it (--replace)"),
            );
            engine.remove_container(&config.name).await?;
        }
        (true, _) => {
            return Err(ApplyError::Refused(format!(
                "container {shown} appeared since the plan was made: plan the restore again"
            )));
        }
        (false, _) => {}
    }
    for name in config.user_networks() {
        if engine.network(name).await?.is_some() {
            continue;
        }
        let network = document
            .networks
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                ApplyError::ResourceMissing(format!(
                    "network {name:?} is missing and the snapshot does not hold its \
                     configuration: create it, then restore again"
                ))
            })?;
        run.step(
            change,
            format!(
                "creating network {name} (driver {}{})",
                network.driver,
                network
                    .subnets
                    .iter()
                    .map(|s| format!(", subnet {}", s.subnet))
                    .collect::<String>()
            ),
        );
        engine.create_network(network).await?;
    }
    run.step(
        change,
        format!(
            "creating container {shown} from its configuration (image {}, {} environment \
             variables)",
            run.spec.redact(&config.image),
            config.env.len()
        ),
    );
    // Journaled until started: a run killed in between leaves a record the
    // next run (or `recover`) completes, instead of a `Created` container
    // that looks restored.
    let on = OnEngine {
        name: change.engine_name(),
        engine,
        engines: run.engines,
        container: &config.name,
    };
    let creation = match document.running {
        true => Some(run.quiescer.creating(&on, &change.address.to_string())?),
        false => None,
    };
    let id = match engine.create_container_from_config(config).await {
        Ok(id) => id,
        Err(error) => {
            if let Some(creation) = creation {
                run.quiescer.creation_done(creation);
            }
            return Err(error.into());
        }
    };
    let Some(mut creation) = creation else {
        let skipped = if service.verify.is_empty() {
            ""
        } else {
            "; `verify` is not run"
        };
        run.step(
            change,
            format!("not starting {shown}: it was not running when backed up{skipped}"),
        );
        return Ok(());
    };
    run.quiescer.created(&mut creation, &id)?;
    run.step(change, format!("starting {shown}"));
    let started = engine.start_container(&config.name).await;
    run.quiescer.creation_done(creation);
    started?;
    wait_ready(run, change, engine.as_ref(), service)
        .await
        .map_err(|error| match error {
            ApplyError::CommandFailed(message) => {
                ApplyError::CommandFailed(masked(run.spec, config, &message))
            }
            ApplyError::ResourceMissing(message) => {
                ApplyError::ResourceMissing(masked(run.spec, config, &message))
            }
            other => other,
        })
}

/// Waits, for up to the service's `start_timeout`, until its started
/// container is ready for what depends on it: its healthcheck (the
/// container's or its image's `HEALTHCHECK`) says `healthy`, then its
/// `verify` command succeeds. A container without either is ready once
/// running. Dumps call this before loading, so a restore never feeds a
/// database that is still starting.
pub(crate) async fn wait_ready(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    service: &ServiceSpec,
) -> Result<(), ApplyError> {
    let timeout = service.start_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let shown = run.spec.redact(&service.container);
    let waited = || humantime::format_duration(timeout);
    let mut announced = false;
    loop {
        let Some(state) = engine.container(&service.container).await? else {
            return Err(ApplyError::ResourceMissing(format!(
                "container {shown} of service.{} disappeared while starting",
                service.name
            )));
        };
        let last = |health: &Health| match health.last_output.as_str() {
            "" => String::new(),
            output => format!("; its last check said: {}", run.spec.redact(output)),
        };
        match &state.health {
            None => break,
            Some(health) if health.status == HealthStatus::Healthy => {
                if announced {
                    run.step(change, format!("{shown} is healthy"));
                }
                break;
            }
            Some(health) if health.status == HealthStatus::Unhealthy => {
                return Err(ApplyError::CommandFailed(format!(
                    "container {shown} of service.{} started but its healthcheck says \
                     unhealthy{}",
                    service.name,
                    last(health)
                )));
            }
            Some(health) => {
                if !state.running {
                    return Err(ApplyError::CommandFailed(format!(
                        "container {shown} of service.{} stopped before its healthcheck \
                         passed{}: see `docker logs {shown}`",
                        service.name,
                        last(health)
                    )));
                }
                if tokio::time::Instant::now() >= deadline || run.cancel.is_cancelled() {
                    return Err(ApplyError::CommandFailed(format!(
                        "container {shown} of service.{} was not healthy within {} \
                         (start_timeout){}",
                        service.name,
                        waited(),
                        last(health)
                    )));
                }
                if !announced {
                    run.step(
                        change,
                        format!(
                            "waiting for {shown}'s healthcheck to pass (up to {})",
                            waited()
                        ),
                    );
                    announced = true;
                }
            }
        }
        tokio::time::sleep(READY_INTERVAL).await;
    }
    if service.verify.is_empty() {
        return Ok(());
    }
    verify(run, change, engine, service, deadline).await
}

/// Runs the spec's `verify` command in the started container until it
/// succeeds or `deadline` passes.
async fn verify(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    service: &ServiceSpec,
    deadline: tokio::time::Instant,
) -> Result<(), ApplyError> {
    let command = run.spec.redact(&service.verify.join(" "));
    run.step(
        change,
        format!("verify: running `{command}` in the container"),
    );
    loop {
        let outcome = engine
            .run_in_container(&service.container, &service.verify)
            .await;
        let failure = match outcome {
            Ok(outcome) if outcome.exit_code == 0 => {
                run.step(change, format!("verify: `{command}` succeeded"));
                return Ok(());
            }
            Ok(outcome) => format!(
                "exited with {}{}",
                outcome.exit_code,
                match outcome.output.trim() {
                    "" => String::new(),
                    output => format!(": {output}"),
                }
            ),
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() >= deadline || run.cancel.is_cancelled() {
            return Err(ApplyError::CommandFailed(format!(
                "the container is started, but `verify` (`{command}`) still failed after {} \
                 (start_timeout): {}",
                humantime::format_duration(service.start_timeout()),
                run.spec.redact(&failure)
            )));
        }
        tokio::time::sleep(VERIFY_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz corpus's hostile document parses, and everything in it that
    /// reaches into the host is named (capabilities in their short form).
    #[test]
    fn a_hostile_document_names_every_setting_that_reaches_into_the_host() {
        let seed = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/service_document/seed-hostile"),
        )
        .unwrap();
        let marker = b"\n#--live--\n";
        let at = seed
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap();
        let (access, differences) =
            inspect_service_document(&seed[..at], &seed[at + marker.len()..]).unwrap();
        assert_eq!(
            access,
            [
                "bind:/",
                "cap-add:SYS_ADMIN",
                "network:host",
                "privileged",
                "security-opt:apparmor=unconfined",
                "sysctl:net.ipv4.ip_forward",
            ]
        );
        assert_eq!(differences, ["cap_add", "command", "privileged"]);
        let error = inspect_service_document(b"{\"kind\": \"TOKEN=secret\"", b"").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}
