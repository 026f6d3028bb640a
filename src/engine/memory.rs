//! [`MemoryEngine`]: an engine held in memory, for unit tests of `apply`
//! without Docker. Volumes hold tar entries; an export streams them back
//! sorted by path, as Docker's archive of a directory does, and an import
//! adds and overwrites entries but never deletes (as Docker's does).
//! Failures can be injected per volume, per container operation and per
//! command run in a container; what was done to containers is logged, in order.

use super::{
    ARCHIVE_ROOT, ByteStream, ContainerConfig, ContainerRef, ContainerState, ContainerSummary,
    Containers, Directories, DirectoryState, Engine, EngineError, EngineInfo, Exec, ExecOutcome,
    ExecOutput, ExportStream, Health, HealthStatus, Helpers, ImageInfo, Images, Inventory,
    LeftoverHelper, MountSource, NetworkConfig, Platform, Release, VolumeInfo, Volumes,
};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Mutex;

/// One tar entry: its header and data.
#[derive(Clone)]
struct Entry {
    header: tar::Header,
    data: Vec<u8>,
}

/// A streamed command's stdout, stderr and exit code.
type Streamed = (Vec<u8>, Vec<u8>, i64);

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, (VolumeInfo, BTreeMap<String, Entry>)>,
    /// Containers (by name): whether running, and the volumes they mount.
    users: BTreeMap<String, (bool, Vec<String>)>,
    /// Paused containers (by name).
    paused: BTreeSet<String>,
    /// Host directories (bind blocks' paths) and their entries.
    directories: BTreeMap<std::path::PathBuf, BTreeMap<String, Entry>>,
    failing_exports: BTreeSet<String>,
    exports: usize,
    /// The references of each image export, in order (one list per request).
    image_exports: Vec<Vec<String>>,
    /// `(container, operation)` pairs that fail (`"stop"`, `"start"`, …).
    failing_operations: BTreeSet<(String, String)>,
    /// `(container, command's first word)` → what running it gives.
    exec_results: BTreeMap<(String, String), ExecOutput>,
    /// What was done to containers: `"stop db"`, `"exec db flush"`, in order.
    container_log: Vec<String>,
    /// Images by id: what inspect says, and their `docker save` archive.
    images: BTreeMap<String, (ImageInfo, Vec<u8>)>,
    /// Containers' configurations (by name), for those created with one.
    configs: BTreeMap<String, ContainerConfig>,
    networks: BTreeMap<String, NetworkConfig>,
    /// Commands run in containers: (container, command).
    commands: Vec<(String, Vec<String>)>,
    /// `(container, command's first word)` → (stdout, stderr, exit code)
    /// of a streamed command.
    streamed: BTreeMap<(String, String), Streamed>,
    /// `(container, command's first word)` → what the last run of it read on stdin.
    stdin_read: BTreeMap<(String, String), Vec<u8>>,
    /// Health reported for containers (by name) whatever their healthcheck;
    /// without an entry, a running container whose configuration has a
    /// healthcheck is healthy.
    health: BTreeMap<String, Health>,
    /// What `ping` reports as the engine's data root.
    data_root: Option<std::path::PathBuf>,
    /// Containers' last start and stop (by name), as ticks of `clock`.
    times: BTreeMap<String, (Option<u64>, Option<u64>)>,
    clock: u64,
}

impl State {
    /// Records a start or a stop of `name` at the next tick.
    fn stamp(&mut self, name: &str, running: bool) {
        self.clock += 1;
        let times = self.times.entry(name.to_string()).or_default();
        if running {
            times.0 = Some(self.clock);
        } else {
            times.1 = Some(self.clock);
        }
    }
}

#[derive(Default)]
pub struct MemoryEngine {
    state: Mutex<State>,
}

fn lock(engine: &MemoryEngine) -> std::sync::MutexGuard<'_, State> {
    engine.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn api(context: &str, message: impl ToString) -> EngineError {
    EngineError::Api {
        context: context.to_string(),
        message: message.to_string(),
    }
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    /// Makes `ping` report `dir` as where the engine keeps its data.
    pub fn set_data_root(&self, dir: &std::path::Path) {
        lock(self).data_root = Some(dir.to_path_buf());
    }

    /// Creates volume `name` holding `files` (path → content), each 0644,
    /// owned by root, mtime 1.
    pub fn add_volume(&self, name: &str, files: &[(&str, &[u8])]) {
        let mut entries = BTreeMap::new();
        entries.insert(String::new(), dir_entry(""));
        for (path, data) in files {
            // Docker's archives hold every directory before what is in it.
            for dir in std::path::Path::new(path).ancestors().skip(1) {
                if dir.as_os_str().is_empty() {
                    break;
                }
                let dir = dir.to_string_lossy().into_owned();
                entries
                    .entry(dir.clone())
                    .or_insert_with(|| dir_entry(&dir));
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_mtime(1);
            header.set_size(data.len() as u64);
            entries.insert(
                path.to_string(),
                Entry {
                    header,
                    data: data.to_vec(),
                },
            );
        }
        let info = VolumeInfo {
            name: name.to_string(),
            driver: "local".to_string(),
            ..VolumeInfo::default()
        };
        lock(self).volumes.insert(name.to_string(), (info, entries));
    }

    /// Creates host directory `path` holding `files` (as [`MemoryEngine::add_volume`]).
    pub fn add_directory(&self, path: &std::path::Path, files: &[(&str, &[u8])]) {
        self.add_volume("(directory)", files);
        let mut state = lock(self);
        if let Some((_, entries)) = state.volumes.remove("(directory)") {
            state.directories.insert(path.to_path_buf(), entries);
        }
    }

    /// The files of a host directory: path → content.
    pub fn directory_files(&self, path: &std::path::Path) -> Option<BTreeMap<String, Vec<u8>>> {
        let state = lock(self);
        state.directories.get(path).map(regular_files)
    }

    /// The files of a volume: path → content (directories left out).
    pub fn files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let state = lock(self);
        let (_, entries) = state.volumes.get(name)?;
        Some(regular_files(entries))
    }

    /// Makes exports of `name` fail, as an engine error would.
    pub fn fail_exports_of(&self, name: &str) {
        lock(self).failing_exports.insert(name.to_string());
    }

    /// Records a container mounting `volume`.
    pub fn add_user(&self, container: &str, volume: &str, running: bool) {
        let mut state = lock(self);
        let entry = state
            .users
            .entry(container.to_string())
            .or_insert((running, Vec::new()));
        let was_running = std::mem::replace(&mut entry.0, running);
        entry.1.push(volume.to_string());
        if running && (!was_running || !state.times.contains_key(container)) {
            state.stamp(container, true);
        }
    }

    /// Starts or stops a container as someone else (an administrator)
    /// would, outside lifeboat: its start and stop times move on.
    pub fn set_running_by_hand(&self, name: &str, running: bool) {
        let mut state = lock(self);
        if let Some(entry) = state.users.get_mut(name) {
            entry.0 = running;
            state.stamp(name, running);
        }
    }

    /// Makes `operation` (`"stop"`, `"start"`, `"pause"`, `"unpause"`) of
    /// `container` fail, as an engine error would.
    pub fn fail_container_operation(&self, container: &str, operation: &str) {
        lock(self)
            .failing_operations
            .insert((container.to_string(), operation.to_string()));
    }

    /// What a command whose first word is `program` gives when run in
    /// `container` (without this: exit code 0, no output).
    pub fn script_exec(&self, container: &str, program: &str, exit_code: i64, output: &str) {
        lock(self).exec_results.insert(
            (container.to_string(), program.to_string()),
            ExecOutput {
                exit_code,
                output: output.to_string(),
            },
        );
    }

    /// What a streamed command whose first word is `program` gives in
    /// `container`: its stdout, stderr and exit code (without this: nothing, 0).
    /// A command run with a stdin reads it all, then exits with `exit_code`
    /// and `stderr` as its output.
    pub fn script_stream(
        &self,
        container: &str,
        program: &str,
        stdout: &[u8],
        stderr: &str,
        exit_code: i64,
    ) {
        lock(self).streamed.insert(
            (container.to_string(), program.to_string()),
            (stdout.to_vec(), stderr.as_bytes().to_vec(), exit_code),
        );
    }

    /// What the last command whose first word is `program` read on its stdin in `container`.
    pub fn stdin_read(&self, container: &str, program: &str) -> Option<Vec<u8>> {
        lock(self)
            .stdin_read
            .get(&(container.to_string(), program.to_string()))
            .cloned()
    }

    /// What was done to containers, in order (`"pause db"`, `"exec db flush"`).
    pub fn container_log(&self) -> Vec<String> {
        lock(self).container_log.clone()
    }

    /// Creates a container from `config` (running or not), mounting its volumes.
    pub fn add_container(&self, config: ContainerConfig, running: bool) {
        let mut state = lock(self);
        let volumes = config
            .mounts
            .iter()
            .filter(|m| m.kind == super::MountKind::Volume)
            .map(|m| m.source.clone())
            .collect();
        state.users.insert(config.name.clone(), (running, volumes));
        state.times.remove(&config.name);
        if running {
            state.stamp(&config.name, true);
        }
        state.configs.insert(config.name.clone(), config);
    }

    pub fn add_network(&self, network: NetworkConfig) {
        lock(self).networks.insert(network.name.clone(), network);
    }

    /// Removes a container (as `docker rm -f`).
    pub fn forget_container(&self, name: &str) {
        let mut state = lock(self);
        state.users.remove(name);
        state.times.remove(name);
        state.configs.remove(name);
        state.paused.remove(name);
        state.health.remove(name);
    }

    /// Makes the engine report `health` for container `name` from now on
    /// (`Starting` forever is a service that never becomes healthy).
    pub fn set_health(&self, name: &str, status: HealthStatus, last_output: &str) {
        lock(self).health.insert(
            name.to_string(),
            Health {
                status,
                last_output: last_output.to_string(),
            },
        );
    }

    pub fn forget_network(&self, name: &str) {
        lock(self).networks.remove(name);
    }

    pub fn has_network(&self, name: &str) -> bool {
        lock(self).networks.contains_key(name)
    }

    /// The commands run in containers so far: (container, command).
    pub fn commands(&self) -> Vec<(String, Vec<String>)> {
        lock(self).commands.clone()
    }

    /// How many exports were started (each is one read of a volume).
    pub fn exports(&self) -> usize {
        lock(self).exports
    }

    /// The image exports so far: the references of each request.
    pub fn image_exports(&self) -> Vec<Vec<String>> {
        lock(self).image_exports.clone()
    }
}

fn regular_files(entries: &BTreeMap<String, Entry>) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .filter(|(_, e)| e.header.entry_type() == tar::EntryType::Regular)
        .map(|(p, e)| (p.clone(), e.data.clone()))
        .collect()
}

fn export_of(entries: &BTreeMap<String, Entry>) -> Result<ExportStream, EngineError> {
    let bytes = archive(entries).map_err(|e| api("archiving", e))?;
    let stream = futures_util::stream::iter([Ok(Bytes::from(bytes))]);
    Ok(ExportStream {
        root: ARCHIVE_ROOT.to_string(),
        stream: Box::pin(stream),
        release: Release::nothing(),
    })
}

/// The entries of a tar stream whose entries are `volume`, `volume/…`.
async fn read_entries(mut tar: ByteStream) -> Result<Vec<(String, Entry)>, EngineError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = tar.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| api("writing", e))?);
    }
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut imported = Vec::new();
    for entry in archive
        .entries()
        .map_err(|e| api("reading the archive", e))?
    {
        let mut entry = entry.map_err(|e| api("reading the archive", e))?;
        let path = entry
            .path()
            .map_err(|e| api("reading the archive", e))?
            .to_string_lossy()
            .into_owned();
        let relative = path
            .strip_prefix(ARCHIVE_ROOT)
            .map(|p| p.trim_matches('/').to_string())
            .ok_or_else(|| api("writing", format!("entry {path} outside")))?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| api("reading the archive", e))?;
        imported.push((
            relative,
            Entry {
                header: entry.header().clone(),
                data,
            },
        ));
    }
    Ok(imported)
}

fn dir_entry(_path: &str) -> Entry {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_mtime(1);
    header.set_size(0);
    Entry {
        header,
        data: Vec::new(),
    }
}

fn archive(entries: &BTreeMap<String, Entry>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut header = entry.header.clone();
        let name = if path.is_empty() {
            format!("{ARCHIVE_ROOT}/")
        } else {
            format!("{ARCHIVE_ROOT}/{path}")
        };
        builder.append_data(&mut header, name, entry.data.as_slice())?;
    }
    builder.into_inner()
}

#[async_trait::async_trait]
impl Volumes for MemoryEngine {
    async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError> {
        Ok(lock(self).volumes.get(name).map(|(info, _)| info.clone()))
    }

    async fn create_volume(&self, volume: &VolumeInfo) -> Result<(), EngineError> {
        let mut state = lock(self);
        if state.volumes.contains_key(&volume.name) {
            return Err(api("creating a volume", "already exists"));
        }
        let entries = BTreeMap::from([(String::new(), dir_entry(""))]);
        state
            .volumes
            .insert(volume.name.clone(), (volume.clone(), entries));
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let users = self.volume_users(name).await?;
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse {
                name: name.to_string(),
                containers: users.into_iter().map(|u| u.name).collect(),
            });
        }
        lock(self)
            .volumes
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| EngineError::VolumeNotFound(name.to_string()))
    }

    async fn volume_is_empty(&self, name: &str) -> Result<bool, EngineError> {
        let state = lock(self);
        let (_, entries) = state
            .volumes
            .get(name)
            .ok_or_else(|| EngineError::VolumeNotFound(name.to_string()))?;
        Ok(entries.len() <= 1)
    }

    async fn volume_users(&self, name: &str) -> Result<Vec<ContainerRef>, EngineError> {
        Ok(lock(self)
            .users
            .iter()
            .filter(|(_, (_, volumes))| volumes.iter().any(|v| v == name))
            .map(|(container, (running, _))| ContainerRef {
                name: container.clone(),
                running: *running,
            })
            .collect())
    }

    async fn export_volume(&self, name: &str) -> Result<ExportStream, EngineError> {
        let mut state = lock(self);
        state.exports += 1;
        if state.failing_exports.contains(name) {
            return Err(api("reading the volume", "injected failure"));
        }
        let (_, entries) = state
            .volumes
            .get(name)
            .ok_or_else(|| EngineError::VolumeNotFound(name.to_string()))?;
        export_of(entries)
    }

    async fn import_volume(&self, name: &str, tar: ByteStream) -> Result<(), EngineError> {
        let imported = read_entries(tar).await?;
        let mut state = lock(self);
        let (_, entries) = state
            .volumes
            .get_mut(name)
            .ok_or_else(|| EngineError::VolumeNotFound(name.to_string()))?;
        entries.extend(imported);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Directories for MemoryEngine {
    async fn directory(&self, path: &std::path::Path) -> Result<DirectoryState, EngineError> {
        Ok(match lock(self).directories.get(path) {
            None => DirectoryState::Missing,
            Some(entries) if entries.len() <= 1 => DirectoryState::Empty,
            Some(_) => DirectoryState::NonEmpty,
        })
    }

    async fn export_directory(&self, path: &std::path::Path) -> Result<ExportStream, EngineError> {
        let mut state = lock(self);
        state.exports += 1;
        let entries = state
            .directories
            .get(path)
            .ok_or_else(|| EngineError::DirectoryNotFound(path.display().to_string()))?;
        export_of(entries)
    }

    async fn import_directory(
        &self,
        path: &std::path::Path,
        tar: ByteStream,
    ) -> Result<(), EngineError> {
        let imported = read_entries(tar).await?;
        lock(self)
            .directories
            .entry(path.to_path_buf())
            .or_insert_with(|| BTreeMap::from([(String::new(), dir_entry(""))]))
            .extend(imported);
        Ok(())
    }
}

impl MemoryEngine {
    fn set_state(
        &self,
        name: &str,
        running: Option<bool>,
        paused: Option<bool>,
    ) -> Result<(), EngineError> {
        let mut state = lock(self);
        let operation = match (running, paused) {
            (Some(false), _) => "stop",
            (Some(true), _) => "start",
            (None, Some(true)) => "pause",
            _ => "unpause",
        };
        state.container_log.push(format!("{operation} {name}"));
        if state
            .failing_operations
            .contains(&(name.to_string(), operation.to_string()))
        {
            return Err(api(operation, "injected failure"));
        }
        let Some(entry) = state.users.get_mut(name) else {
            return Err(EngineError::ContainerNotFound(name.to_string()));
        };
        if let Some(running) = running {
            entry.0 = running;
            state.stamp(name, running);
        }
        if let Some(paused) = paused {
            if paused {
                state.paused.insert(name.to_string());
            } else {
                state.paused.remove(name);
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Containers for MemoryEngine {
    async fn container(&self, name: &str) -> Result<Option<ContainerState>, EngineError> {
        let state = lock(self);
        Ok(state.users.get(name).map(|(running, _)| {
            let times = state.times.get(name).copied().unwrap_or_default();
            let checked = state
                .configs
                .get(name)
                .is_some_and(|c| c.healthcheck.is_some());
            let health = match state.health.get(name) {
                Some(health) => Some(health.clone()),
                None if checked => Some(Health {
                    status: if *running {
                        HealthStatus::Healthy
                    } else {
                        HealthStatus::Starting
                    },
                    last_output: String::new(),
                }),
                None => None,
            };
            ContainerState {
                id: format!("id-{name}"),
                name: name.to_string(),
                running: *running,
                paused: state.paused.contains(name),
                image_id: String::new(),
                started_at: times.0.map(|t| format!("t{t}")),
                finished_at: times.1.map(|t| format!("t{t}")),
                health,
            }
        }))
    }

    async fn stop_container(
        &self,
        name: &str,
        _timeout: std::time::Duration,
    ) -> Result<(), EngineError> {
        self.set_state(name, Some(false), Some(false))
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.set_state(name, Some(true), None)
    }

    async fn pause_container(&self, name: &str) -> Result<(), EngineError> {
        self.set_state(name, None, Some(true))
    }

    async fn unpause_container(&self, name: &str) -> Result<(), EngineError> {
        self.set_state(name, None, Some(false))
    }

    async fn container_config(&self, name: &str) -> Result<Option<ContainerConfig>, EngineError> {
        Ok(lock(self).configs.get(name).cloned())
    }

    async fn create_container_from_config(
        &self,
        config: &ContainerConfig,
    ) -> Result<String, EngineError> {
        {
            let state = lock(self);
            if state.users.contains_key(&config.name) {
                return Err(api("creating a container", "the name is in use"));
            }
            if let Some(missing) = config
                .user_networks()
                .find(|n| !state.networks.contains_key(*n))
            {
                return Err(api(
                    "creating a container",
                    format!("network {missing} not found"),
                ));
            }
        }
        self.add_container(config.clone(), false);
        Ok(format!("id-{}", config.name))
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        if !lock(self).users.contains_key(name) {
            return Err(EngineError::ContainerNotFound(name.to_string()));
        }
        self.forget_container(name);
        Ok(())
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkConfig>, EngineError> {
        Ok(lock(self).networks.get(name).cloned())
    }

    async fn create_network(&self, network: &NetworkConfig) -> Result<(), EngineError> {
        let mut state = lock(self);
        if state.networks.contains_key(&network.name) {
            return Err(api("creating a network", "already exists"));
        }
        state.networks.insert(network.name.clone(), network.clone());
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        lock(self).networks.remove(name);
        Ok(())
    }

    async fn run_in_container(
        &self,
        name: &str,
        command: &[String],
    ) -> Result<ExecOutcome, EngineError> {
        let mut state = lock(self);
        match state.users.get(name) {
            None => return Err(EngineError::ContainerNotFound(name.to_string())),
            Some((false, _)) => {
                return Err(api("running a command", "the container is not running"));
            }
            Some((true, _)) => {}
        }
        state.commands.push((name.to_string(), command.to_vec()));
        // `false` fails, as it would in a real container; anything else succeeds.
        let exit_code = i64::from(command.first().is_some_and(|c| c == "false"));
        Ok(ExecOutcome {
            exit_code,
            output: String::new(),
        })
    }
}

#[async_trait::async_trait]
impl Inventory for MemoryEngine {
    async fn containers(&self) -> Result<Vec<ContainerSummary>, EngineError> {
        let state = lock(self);
        Ok(state
            .users
            .iter()
            .map(|(name, (running, volumes))| match state.configs.get(name) {
                // Created from a configuration: listed as Docker lists it.
                Some(config) => ContainerSummary {
                    name: name.clone(),
                    image: config.image.clone(),
                    image_id: config.image_id.clone(),
                    running: *running,
                    labels: config.labels.clone(),
                    mounts: config
                        .mounts
                        .iter()
                        .map(|m| {
                            let source = match m.kind {
                                super::MountKind::Volume
                                    if !super::is_anonymous_volume(&m.source) =>
                                {
                                    MountSource::Volume(m.source.clone())
                                }
                                super::MountKind::Bind => {
                                    MountSource::Bind(m.source.clone().into())
                                }
                                _ => MountSource::Other,
                            };
                            (source, m.target.clone())
                        })
                        .collect(),
                },
                None => ContainerSummary {
                    name: name.clone(),
                    image: String::new(),
                    image_id: String::new(),
                    running: *running,
                    labels: BTreeMap::new(),
                    mounts: volumes
                        .iter()
                        .map(|v| (MountSource::Volume(v.clone()), format!("/{v}")))
                        .collect(),
                },
            })
            .collect())
    }
}

/// Whether a command can run in `container` now.
fn runnable(state: &State, container: &str) -> Result<(), EngineError> {
    match state.users.get(container).map(|(running, _)| *running) {
        None => Err(EngineError::ContainerNotFound(container.to_string())),
        Some(false) => Err(api("exec", format!("container {container} is not running"))),
        Some(true) if state.paused.contains(container) => {
            Err(api("exec", format!("container {container} is paused")))
        }
        Some(true) => Ok(()),
    }
}

#[async_trait::async_trait]
impl Exec for MemoryEngine {
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        _timeout: std::time::Duration,
    ) -> Result<ExecOutput, EngineError> {
        let mut state = lock(self);
        state
            .container_log
            .push(format!("exec {container} {}", command.join(" ")));
        runnable(&state, container)?;
        let program = command.first().cloned().unwrap_or_default();
        Ok(state
            .exec_results
            .get(&(container.to_string(), program))
            .cloned()
            .unwrap_or(ExecOutput {
                exit_code: 0,
                output: String::new(),
            }))
    }

    async fn exec_stdout(
        &self,
        container: &str,
        command: &[String],
        mut on_stderr: crate::engine::StderrWatch,
    ) -> Result<crate::engine::ExecStream, EngineError> {
        let (stdout, stderr, exit_code) = {
            let mut state = lock(self);
            state
                .container_log
                .push(format!("exec {container} {}", command.join(" ")));
            runnable(&state, container)?;
            let program = command.first().cloned().unwrap_or_default();
            state
                .streamed
                .get(&(container.to_string(), program))
                .cloned()
                .unwrap_or_default()
        };
        on_stderr(&stderr);
        // Small chunks, so readers see a stream and not one buffer.
        let chunks: Vec<std::io::Result<Bytes>> = stdout
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let output = ExecOutput {
            exit_code,
            output: String::from_utf8_lossy(&stderr).into_owned(),
        };
        Ok(crate::engine::ExecStream {
            stdout: Box::pin(futures_util::stream::iter(chunks)),
            finished: Box::pin(async move { Ok(output) }),
        })
    }

    async fn exec_stdin(
        &self,
        container: &str,
        command: &[String],
        mut stdin: ByteStream,
    ) -> Result<ExecOutput, EngineError> {
        let program = command.first().cloned().unwrap_or_default();
        {
            let mut state = lock(self);
            state
                .container_log
                .push(format!("exec {container} {}", command.join(" ")));
            runnable(&state, container)?;
        }
        let mut read = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stdin).await {
            let chunk = chunk.map_err(|e| api("feeding a command's input", e))?;
            read.extend_from_slice(&chunk);
        }
        let mut state = lock(self);
        let key = (container.to_string(), program);
        let (_, stderr, exit_code) = state.streamed.get(&key).cloned().unwrap_or_default();
        state.stdin_read.insert(key, read);
        Ok(ExecOutput {
            exit_code,
            output: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Helpers for MemoryEngine {
    async fn remove_leftover_helpers(&self) -> Result<Vec<LeftoverHelper>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_own_helpers(&self) -> Result<usize, EngineError> {
        Ok(0)
    }
}

impl MemoryEngine {
    /// Loads a `docker save` archive as `docker load` would (see [`Images::load_image`]).
    pub fn add_image_archive(&self, archive: Vec<u8>) -> Result<Vec<String>, EngineError> {
        let invalid = |message: String| api("loading an image", message);
        let mut files = BTreeMap::new();
        let mut reader = tar::Archive::new(archive.as_slice());
        for entry in reader.entries().map_err(|e| invalid(e.to_string()))? {
            let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
            let path = entry
                .path()
                .map_err(|e| invalid(e.to_string()))?
                .display()
                .to_string();
            // (the OCI layout names its configurations by digest, under blobs/)
            if path.ends_with(".json") || path.starts_with("blobs/") {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| invalid(e.to_string()))?;
                files.insert(path, data);
            }
        }
        let manifest: serde_json::Value = files
            .get("manifest.json")
            .and_then(|m| serde_json::from_slice(m).ok())
            .ok_or_else(|| invalid("no manifest.json".into()))?;
        let mut ids = Vec::new();
        for image in manifest.as_array().into_iter().flatten() {
            let config_name = image["Config"].as_str().unwrap_or_default();
            let config = files
                .get(config_name)
                .ok_or_else(|| invalid(format!("no {config_name}")))?;
            let parsed: serde_json::Value =
                serde_json::from_slice(config).map_err(|e| invalid(e.to_string()))?;
            let text = |key: &str| parsed[key].as_str().unwrap_or_default().to_string();
            use sha2::Digest;
            let id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config)));
            let tags: Vec<String> = image["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(String::from))
                .collect();
            let info = ImageInfo {
                id: id.clone(),
                repo_tags: tags.clone(),
                layers: parsed["rootfs"]["diff_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect(),
                os: text("os"),
                architecture: text("architecture"),
                size: archive.len() as u64,
            };
            let mut state = lock(self);
            for (other, _) in state.images.values_mut() {
                other.repo_tags.retain(|t| !tags.contains(t));
            }
            let entry = state
                .images
                .entry(id.clone())
                .or_insert((info.clone(), archive.clone()));
            for tag in tags {
                if !entry.0.repo_tags.contains(&tag) {
                    entry.0.repo_tags.push(tag);
                }
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Removes an image (`docker rmi`).
    pub fn remove_image(&self, id: &str) {
        lock(self).images.remove(id);
    }

    fn find_image(&self, reference: &str) -> Option<(ImageInfo, Vec<u8>)> {
        let state = lock(self);
        let reference = if reference.contains(':') {
            reference.to_string()
        } else {
            format!("{reference}:latest")
        };
        state
            .images
            .values()
            .find(|(info, _)| info.id == reference || info.repo_tags.contains(&reference))
            .cloned()
    }
}

/// `docker save` archives of several images as one, as the engine writes
/// it: each path once (shared layers too), one manifest of every entry.
fn combined_archive(archives: &[Vec<u8>]) -> Result<Vec<u8>, EngineError> {
    let invalid = |e: std::io::Error| api("exporting images", e);
    let mut manifest: Vec<serde_json::Value> = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut out = tar::Builder::new(Vec::new());
    for archive in archives {
        for entry in tar::Archive::new(archive.as_slice())
            .entries()
            .map_err(invalid)?
        {
            let mut entry = entry.map_err(invalid)?;
            let path = entry.path().map_err(invalid)?.display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(invalid)?;
            if path == "manifest.json" {
                let entries: Vec<serde_json::Value> =
                    serde_json::from_slice(&data).map_err(|e| api("exporting images", e))?;
                manifest.extend(entries);
            } else if written.insert(path.clone()) {
                let mut header = entry.header().clone();
                out.append_data(&mut header, &path, data.as_slice())
                    .map_err(invalid)?;
            }
        }
    }
    let manifest = serde_json::to_vec(&manifest).map_err(|e| api("exporting images", e))?;
    let mut header = tar::Header::new_ustar();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    out.append_data(&mut header, "manifest.json", manifest.as_slice())
        .map_err(invalid)?;
    out.into_inner().map_err(invalid)
}

#[async_trait::async_trait]
impl Images for MemoryEngine {
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        Ok(self.find_image(reference).map(|(info, _)| info))
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError> {
        Ok(lock(self)
            .images
            .values()
            .map(|(info, _)| ImageInfo {
                layers: Vec::new(),
                ..info.clone()
            })
            .collect())
    }

    async fn export_image(&self, reference: &str) -> Result<ByteStream, EngineError> {
        self.export_images(&[reference.to_string()]).await
    }

    async fn export_images(&self, references: &[String]) -> Result<ByteStream, EngineError> {
        let mut archives = Vec::new();
        for reference in references {
            let (_, archive) = self
                .find_image(reference)
                .ok_or_else(|| EngineError::ImageNotFound(reference.to_string()))?;
            archives.push(archive);
        }
        let mut state = lock(self);
        state.exports += 1;
        state.image_exports.push(references.to_vec());
        if references.iter().any(|r| state.failing_exports.contains(r)) {
            return Err(api("exporting images", "injected failure"));
        }
        drop(state);
        let archive = match archives.as_slice() {
            [one] => one.clone(),
            _ => combined_archive(&archives)?,
        };
        Ok(Box::pin(futures_util::stream::iter([Ok(Bytes::from(
            archive,
        ))])))
    }

    async fn load_image(&self, mut tar: ByteStream) -> Result<(), EngineError> {
        let mut archive = Vec::new();
        while let Some(chunk) = tar.next().await {
            archive.extend_from_slice(&chunk.map_err(|e| api("loading an image", e))?);
        }
        self.add_image_archive(archive).map(|_| ())
    }

    async fn tag_image(&self, id: &str, tag: &str) -> Result<(), EngineError> {
        let mut state = lock(self);
        if !state.images.contains_key(id) {
            return Err(EngineError::ImageNotFound(id.to_string()));
        }
        for (info, _) in state.images.values_mut() {
            info.repo_tags.retain(|t| t != tag);
            if info.id == id {
                info.repo_tags.push(tag.to_string());
            }
        }
        Ok(())
    }

    async fn platform(&self) -> Result<Platform, EngineError> {
        Ok(Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
        })
    }
}

#[async_trait::async_trait]
impl Engine for MemoryEngine {
    async fn ping(&self) -> Result<EngineInfo, EngineError> {
        Ok(EngineInfo {
            version: "memory".to_string(),
            api_version: String::new(),
            host: "memory://".to_string(),
            data_root: lock(self).data_root.clone(),
        })
    }

    fn is_local(&self) -> bool {
        false
    }
}
