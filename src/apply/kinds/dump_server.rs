//! A drill's scratch database server for a dump: a container started from
//! the image the live service runs (by id), with its command and
//! environment, on an empty scratch volume for each volume it mounts, on
//! the drill's isolated network; ready once the dump's `restore_command`
//! runs against it (fed nothing), so the dump then loads once.
//!
//! Owns observing where such a server would go, starting it and asking it
//! the service's `verify` after the load. The names are the plan's (the
//! drill's journal holds them before anything is created); removing the
//! server is the drill's cleanup, never this module's. The live container
//! is only read. Its environment (passwords) is copied into the server and
//! never shown: messages built here have its values masked.

use super::RestoreTarget;
use super::service::{create_isolated_network, masked, masked_engine_error, wait_ready};
use crate::apply::{ApplyError, Run};
use crate::engine::{
    ContainerConfig, Engine, MountConfig, MountKind, NetworkAttachment, VolumeInfo,
};
use crate::plan::{
    Detail, DumpServerDetail, ResourceChange, RestoreInto, RestoreObservation, ScratchVolume,
    TargetState,
};
use crate::spec::{DumpSpec, ServiceSpec, Spec};
use std::time::Duration;

/// The first pause between two tries of the restore command against a
/// starting server; doubled up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// How many lines of a verify's output the drill's report keeps.
const OUTPUT_LINES: usize = 5;

/// The scratch volumes a server replacing `live`'s volumes gets: each
/// volume mount's source plus `-<dump><suffix>` (the suffix ends every
/// scratch name, as the drill's journal requires).
pub(crate) fn scratch_volumes(
    live: &ContainerConfig,
    dump: &str,
    suffix: &str,
) -> Vec<ScratchVolume> {
    live.mounts
        .iter()
        .filter(|m| m.kind == MountKind::Volume)
        .map(|m| ScratchVolume {
            name: format!("{}-{dump}{suffix}", m.source),
            target: m.target.clone(),
        })
        .collect()
}

/// What a drill's restore of `dump` finds where its scratch server `into`
/// would go: the live container it copies (which must exist), and no
/// object of the server's names yet. The plan shows the image and the
/// scratch volumes; their names go to the drill's journal.
pub(crate) async fn observe(
    spec: &Spec,
    engine: &dyn Engine,
    dump: &DumpSpec,
    service: &ServiceSpec,
    suffix: &str,
    into: &RestoreInto,
) -> RestoreTarget {
    let shown = spec.redact(&service.container);
    let what = format!("scratch server {}", into.name);
    let target = |fingerprint: String, target, detail| RestoreTarget {
        observation: RestoreObservation {
            snapshot: None,
            target,
            what: what.clone(),
            detail,
        },
        fingerprint,
    };
    let (state, live) = match (
        engine.container(&service.container).await,
        engine.container_config(&service.container).await,
    ) {
        (Ok(Some(state)), Ok(Some(live))) => (state, live),
        (Err(error), _) | (_, Err(error)) => {
            return RestoreTarget::unknown(spec.redact(&error.to_string()));
        }
        _ => {
            return RestoreTarget::unknown(format!(
                "container {shown} of service.{} does not exist: a drill starts dump.{}'s \
                 scratch server from the image it runs and with its environment. Start the \
                 service, or drill other resources (--target)",
                service.name, dump.name
            ));
        }
    };
    if let Some(bind) = live
        .mounts
        .iter()
        .find(|m| m.kind == MountKind::Bind && !m.read_only)
    {
        return target(
            state.id,
            Err(format!(
                "container {shown} mounts {} read-write, which a scratch server must not write: \
                 mount it read-only in the live service, or drill other resources (--target)",
                spec.redact(&bind.source)
            )),
            Detail::None,
        );
    }
    let volumes = scratch_volumes(&live, &dump.name, suffix);
    let mut taken = Vec::new();
    if !matches!(engine.container(&into.name).await, Ok(None)) {
        taken.push(format!("container {}", into.name));
    }
    for volume in &volumes {
        if !matches!(engine.volume(&volume.name).await, Ok(None)) {
            taken.push(format!("volume {}", volume.name));
        }
    }
    if !taken.is_empty() {
        return target(
            state.id,
            Err(format!(
                "{} already exist(s): a drill writes only new objects; remove them, or run \
                 `lifeboat recover`",
                taken.join(", ")
            )),
            Detail::None,
        );
    }
    let image_id = if live.image_id.is_empty() {
        state.image_id.clone()
    } else {
        live.image_id.clone()
    };
    let detail = Detail::DumpServer(DumpServerDetail {
        image: spec.redact(&live.image),
        image_id,
        volumes,
        target: None,
    });
    target(state.id, Ok(TargetState::Missing), detail)
}

/// The scratch server's configuration: the live container's image (by
/// id), command, user and environment; its volumes replaced by the
/// scratch ones, read-only directories kept, tmpfs kept; only on the
/// drill's network; no ports, no host access, no restart policy.
fn server_config(
    live: &ContainerConfig,
    server: &DumpServerDetail,
    into: &RestoreInto,
) -> ContainerConfig {
    let mut mounts: Vec<MountConfig> = live
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Tmpfs || (m.kind == MountKind::Bind && m.read_only))
        .cloned()
        .collect();
    mounts.extend(server.volumes.iter().map(|volume| MountConfig {
        kind: MountKind::Volume,
        source: volume.name.clone(),
        target: volume.target.clone(),
        read_only: false,
        options: String::new(),
    }));
    let network = into.network.clone().unwrap_or_default();
    ContainerConfig {
        name: into.name.clone(),
        image: server.image_id.clone(),
        image_id: server.image_id.clone(),
        command: live.command.clone(),
        entrypoint: live.entrypoint.clone(),
        env: live.env.clone(),
        user: live.user.clone(),
        working_dir: live.working_dir.clone(),
        stop_signal: live.stop_signal.clone(),
        stop_timeout: live.stop_timeout,
        healthcheck: live.healthcheck.clone(),
        shm_size: live.shm_size,
        init: live.init,
        mounts,
        network_mode: network.clone(),
        networks: vec![NetworkAttachment {
            network,
            aliases: Vec::new(),
            ipv4_address: None,
            ipv6_address: None,
        }],
        ..ContainerConfig::default()
    }
}

/// Starts the scratch server the plan's `server` detail describes, and
/// waits until it is ready: its healthcheck healthy (if it has one), then
/// `restore_command` fed nothing succeeding, tried with growing pauses
/// within the service's `start_timeout`.
pub(crate) async fn start(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    dump: &DumpSpec,
    service: &ServiceSpec,
    server: &DumpServerDetail,
    into: &RestoreInto,
) -> Result<(), ApplyError> {
    let shown = run.spec.redact(&service.container);
    let Some(live) = engine.container_config(&service.container).await? else {
        return Err(ApplyError::ResourceMissing(format!(
            "container {shown} of service.{} disappeared since the plan was made: its scratch \
             server copies its configuration",
            service.name
        )));
    };
    let config = server_config(&live, server, into);
    let started = create_and_start(run, change, engine, &config, server, into).await;
    started.map_err(|error| masked_engine_error(run.spec, &config, error))?;
    let scratch = ServiceSpec {
        container: into.name.clone(),
        // `verify` checks the data: it runs once the dump is loaded.
        verify: Vec::new(),
        ..service.clone()
    };
    wait_ready(run, change, engine, &scratch).await?;
    wait_accepting(run, change, engine, dump, service, &config).await
}

async fn create_and_start(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    config: &ContainerConfig,
    server: &DumpServerDetail,
    into: &RestoreInto,
) -> Result<(), ApplyError> {
    create_isolated_network(run, change, engine, into).await?;
    for volume in &server.volumes {
        run.step(
            change,
            format!(
                "creating empty scratch volume {} for {}",
                volume.name, volume.target
            ),
        );
        engine
            .create_volume(&VolumeInfo {
                name: volume.name.clone(),
                driver: "local".into(),
                ..VolumeInfo::default()
            })
            .await?;
    }
    run.step(
        change,
        format!(
            "creating scratch server {} from image {} ({}, {} environment variables)",
            into.name,
            server.image,
            crate::plan::short_id(server.image_id.trim_start_matches("sha256:")),
            config.env.len()
        ),
    );
    engine.create_container_from_config(config).await?;
    run.step(change, format!("starting {}", into.name));
    engine.start_container(&into.name).await?;
    Ok(())
}

/// Runs `restore_command` with empty input in the started server until it
/// succeeds (the server accepts connections) or `start_timeout` passes.
async fn wait_accepting(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    dump: &DumpSpec,
    service: &ServiceSpec,
    config: &ContainerConfig,
) -> Result<(), ApplyError> {
    let timeout = service.start_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let command = run.spec.redact(&dump.restore_command.join(" "));
    run.step(
        change,
        format!(
            "waiting for {} to accept `{command}` (up to {})",
            config.name,
            humantime::format_duration(timeout)
        ),
    );
    let mut pause = FIRST_PAUSE;
    loop {
        let nothing: crate::engine::ByteStream = Box::pin(futures_util::stream::empty());
        let failure = match engine
            .exec_stdin(&config.name, &dump.restore_command, nothing)
            .await
        {
            Ok(output) if output.exit_code == 0 => return Ok(()),
            Ok(output) => format!(
                "exited with code {}{}",
                output.exit_code,
                match output.output.trim() {
                    "" => String::new(),
                    text => format!(": {}", last_lines(text, OUTPUT_LINES)),
                }
            ),
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() + pause > deadline || run.cancel.is_cancelled() {
            return Err(ApplyError::CommandFailed(masked(
                run.spec,
                config,
                &format!(
                    "scratch server {} did not accept `{command}` within {} (start_timeout): {failure}",
                    config.name,
                    humantime::format_duration(timeout)
                ),
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Runs the service's `verify` once in the loaded scratch server `name`:
/// `Ok` with what it printed (its last lines), `Err` with why it failed;
/// environment values masked either way.
pub(crate) async fn verify_loaded(
    spec: &Spec,
    engine: &dyn Engine,
    service: &ServiceSpec,
    name: &str,
) -> Result<String, String> {
    let config = engine
        .container_config(name)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let outcome = engine.run_in_container(name, &service.verify).await;
    let (passed, text) = match outcome {
        Ok(outcome) if outcome.exit_code == 0 => (true, outcome.output),
        Ok(outcome) => (
            false,
            format!(
                "exited with {}{}",
                outcome.exit_code,
                match outcome.output.trim() {
                    "" => String::new(),
                    output => format!(": {output}"),
                }
            ),
        ),
        Err(error) => (false, error.to_string()),
    };
    let text = masked(spec, &config, &last_lines(text.trim(), OUTPUT_LINES));
    if passed { Ok(text) } else { Err(text) }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" / ")
}
