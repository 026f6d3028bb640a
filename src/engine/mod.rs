//! engine: a container engine behind object-safe capability traits
//! ([`Volumes`], [`Directories`], [`Containers`], [`Exec`], [`Images`],
//! [`Helpers`], [`Inventory`], and the [`Engine`] that gathers them), with two
//! implementations: [`DockerEngine`] on bollard, and [`memory::MemoryEngine`]
//! for unit tests of `apply` without Docker.
//!
//! It owns every conversation with the engine: volumes, the helper image and
//! the never-started helper containers whose archive endpoints read and write
//! volume content. It knows nothing of specs, plans or repositories: it moves
//! tar streams, it does not interpret them. No bollard type appears in these
//! signatures, so a second engine (or a fake one) fits behind them.

mod config;
mod docker;
pub mod memory;

pub use config::{
    ContainerConfig, ExecOutcome, Healthcheck, MountConfig, MountKind, NetworkAttachment,
    NetworkConfig, PortConfig, RestartConfig, Subnet, canonical_host_access, is_user_network,
};

pub use docker::{Connection, DockerEngine, HELPER_IMAGE};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// The name volume content has in archive streams, both ways: entries are
/// `volume`, `volume/…` (the volume root is the first entry).
pub const ARCHIVE_ROOT: &str = "volume";

/// A stream of tar bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What the engine says about itself.
#[derive(Debug, Clone, Default)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    /// Where lifeboat reached it (`unix:///var/run/docker.sock`).
    pub host: String,
    /// Where the engine keeps its data on its host (`DockerRootDir`,
    /// `/var/lib/docker`), when it says.
    pub data_root: Option<PathBuf>,
}

/// A Docker volume's identity and configuration: what a restore needs to
/// recreate it the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Path on the engine's host; readable only when lifeboat runs there.
    pub mountpoint: Option<PathBuf>,
    /// When the engine created it (RFC 3339), if it says.
    pub created_at: Option<String>,
}

impl VolumeInfo {
    /// Where this host can read and write the volume's content directly, if
    /// anywhere: the mountpoint of a plain local volume, the directory of a
    /// bind-backed one. Volumes of other drivers, or of the local driver
    /// mounting something (`type=nfs`, `tmpfs`), are only mounted while a
    /// container uses them: their mountpoint is not their content.
    pub fn content_path(&self) -> Option<PathBuf> {
        let local = self.driver.is_empty() || self.driver == "local";
        if !local {
            return None;
        }
        if let Some(device) = self.bind_device() {
            return Some(device);
        }
        if self.options.is_empty() {
            return self.mountpoint.clone();
        }
        None
    }

    /// A volume of the local driver backed by a host directory
    /// (`-o type=none -o o=bind -o device=DIR`): removing and recreating it
    /// keeps that directory's content.
    pub fn bind_device(&self) -> Option<PathBuf> {
        let local = self.driver.is_empty() || self.driver == "local";
        let bind = self
            .options
            .get("o")
            .is_some_and(|o| o.split(',').any(|part| part.trim() == "bind"));
        match (local, bind, self.options.get("device")) {
            (true, true, Some(device)) if !device.is_empty() => Some(PathBuf::from(device)),
            _ => None,
        }
    }
}

/// A container, as lists of users name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    pub running: bool,
}

/// A volume's content as a tar stream. Entries are named `<root>/…` and the
/// first one, `<root>/`, carries the volume root directory's own metadata.
pub struct ExportStream {
    pub root: String,
    pub stream: ByteStream,
    /// Removes what the export left on the engine (its helper container).
    pub release: Release,
}

impl ExportStream {
    /// Splits into the stream and the handle that removes the helper container.
    pub fn into_parts(self) -> (ByteStream, Release) {
        (self.stream, self.release)
    }
}

/// Removes what an operation left on the engine. [`Release::release`] awaits
/// the removal; dropping it unreleased still removes, in the background.
pub struct Release(Option<BoxFuture<'static, ()>>);

impl Release {
    pub fn new(cleanup: BoxFuture<'static, ()>) -> Release {
        Release(Some(cleanup))
    }

    pub fn nothing() -> Release {
        Release(None)
    }

    pub async fn release(mut self) {
        if let Some(cleanup) = self.0.take() {
            cleanup.await;
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(cleanup) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(cleanup);
        }
    }
}

/// A container's run state, as quiescing and restores need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub paused: bool,
    /// The id of the image it runs (`sha256:…`).
    pub image_id: String,
    /// When it last started, as the engine says it (opaque: compared, not
    /// read); `None` when it never ran.
    pub started_at: Option<String>,
    /// When it last stopped, likewise; `None` when it never stopped.
    pub finished_at: Option<String>,
    /// What its healthcheck (the container's or its image's `HEALTHCHECK`)
    /// says; `None` when it has none.
    pub health: Option<Health>,
}

/// A container's healthcheck status, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Not yet passed since the start (within its start period or retries).
    Starting,
    Healthy,
    Unhealthy,
}

/// The healthcheck's status and what its last run printed (why it fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    /// The last line of the last check's output (and its exit code), empty
    /// before the first check.
    pub last_output: String,
}

/// An image as the engine describes it, without reading its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`: the digest of its configuration.
    pub id: String,
    /// `name:tag` references that point at it.
    pub repo_tags: Vec<String>,
    /// The DiffIDs of its layers (`sha256:…` of each uncompressed layer
    /// tar), bottom first: an image built on another starts with its list.
    pub layers: Vec<String>,
    pub os: String,
    pub architecture: String,
    /// Bytes of its layers as the engine counts them (0: not told): about
    /// what its `docker save` archive holds.
    pub size: u64,
}

/// The operating system and architecture an engine runs images for
/// (`linux`, `amd64`), as image configurations name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

/// A helper container a lifeboat process left behind and a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftoverHelper {
    pub container: String,
    /// What it mounted (a volume name).
    pub mounted: String,
    /// The process that created it, and why it is known to be gone.
    pub pid: u32,
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {host}: {message}. Is the Docker engine running? \
         Start dockerd, or set DOCKER_HOST to where it listens"
    )]
    Unreachable { host: String, message: String },
    #[error("Docker volume {0:?} does not exist")]
    VolumeNotFound(String),
    #[error(
        "Docker volume {name:?} is used by container(s) {}: stop and remove them first, or \
         restore into another volume",
        containers.join(", ")
    )]
    VolumeInUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("Docker engine: {context}: {message}")]
    Api { context: String, message: String },
    #[error("container {0:?} does not exist")]
    ContainerNotFound(String),
    #[error(
        "image {image} ({id}) is not on the engine: restore or pull it first (an `image` block \
         restores it before the service)"
    )]
    ServiceImageMissing { image: String, id: String },
    #[error("directory {0} does not exist on the engine's host")]
    DirectoryNotFound(String),
    #[error("{what} did not finish within {}", humantime::format_duration(*timeout))]
    TimedOut {
        what: String,
        timeout: std::time::Duration,
    },
    #[error("image {0:?} does not exist on the engine")]
    ImageNotFound(String),
}

/// Volume operations. Futures are `Send` so they run on any runtime thread.
#[async_trait::async_trait]
pub trait Volumes: Send + Sync {
    async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError>;
    async fn create_volume(&self, volume: &VolumeInfo) -> Result<(), EngineError>;
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;
    async fn volume_is_empty(&self, name: &str) -> Result<bool, EngineError>;
    /// The containers (running or not) that mount the volume, lifeboat's
    /// own helpers excluded.
    async fn volume_users(&self, name: &str) -> Result<Vec<ContainerRef>, EngineError>;
    /// Streams the volume's content as a tar through a never-started helper
    /// container that mounts it read-only.
    async fn export_volume(&self, name: &str) -> Result<ExportStream, EngineError>;
    /// Extracts a tar stream (entries `volume`, `volume/…`, see
    /// [`ARCHIVE_ROOT`]) into the volume through a helper container that
    /// mounts it read-write.
    async fn import_volume(&self, name: &str, tar: ByteStream) -> Result<(), EngineError>;
}

/// Containers: their state, and stopping, starting, pausing them.
#[async_trait::async_trait]
pub trait Containers: Send + Sync {
    /// The container named (or with id) `name`; `None` when there is none.
    async fn container(&self, name: &str) -> Result<Option<ContainerState>, EngineError>;
    /// Stops it, giving its processes `timeout` to end before SIGKILL.
    async fn stop_container(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<(), EngineError>;
    async fn start_container(&self, name: &str) -> Result<(), EngineError>;
    async fn pause_container(&self, name: &str) -> Result<(), EngineError>;
    async fn unpause_container(&self, name: &str) -> Result<(), EngineError>;

    /// The container's configuration, as recreating it needs; `None` when
    /// there is no such container.
    async fn container_config(&self, name: &str) -> Result<Option<ContainerConfig>, EngineError>;
    /// Creates (does not start) a container named `config.name` as `config`
    /// says, attached to each of its networks (which must exist). Returns its id.
    async fn create_container_from_config(
        &self,
        config: &ContainerConfig,
    ) -> Result<String, EngineError>;
    /// Removes the container, stopping it first when it runs.
    async fn remove_container(&self, name: &str) -> Result<(), EngineError>;
    /// A network's configuration; `None` when there is no such network.
    async fn network(&self, name: &str) -> Result<Option<NetworkConfig>, EngineError>;
    async fn create_network(&self, network: &NetworkConfig) -> Result<(), EngineError>;
    /// Removes the network (a drill's scratch one); removing one that is
    /// gone already is not an error.
    async fn remove_network(&self, name: &str) -> Result<(), EngineError>;
    /// Runs `command` in the running container and waits for it to end.
    async fn run_in_container(
        &self,
        name: &str,
        command: &[String],
    ) -> Result<ExecOutcome, EngineError>;
}

/// What a command run in a container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// Its stdout and stderr together, at most the last [`EXEC_OUTPUT_LIMIT`] bytes.
    pub output: String,
}

/// How much of a command's output is kept: enough to say why it failed.
pub const EXEC_OUTPUT_LIMIT: usize = 4096;

/// Running commands inside containers (hooks: flush, maintenance mode).
#[async_trait::async_trait]
pub trait Exec: Send + Sync {
    /// Runs `command` (argv, no shell) in the running container `container`
    /// and waits for it, at most `timeout` ([`EngineError::TimedOut`] then).
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, EngineError>;

    /// Starts `command` in the running container with its stdout as a
    /// stream (what a dump stores), never held whole; each stderr chunk
    /// goes to `on_stderr` as it arrives. Dropping the stream before its
    /// end kills the command where the engine allows it (else the closed
    /// pipe ends it on its next write).
    async fn exec_stdout(
        &self,
        container: &str,
        command: &[String],
        on_stderr: StderrWatch,
    ) -> Result<ExecStream, EngineError>;

    /// Runs `command` in the running container with `stdin` as its
    /// standard input (a dump's restore) and waits for it to exit.
    async fn exec_stdin(
        &self,
        container: &str,
        command: &[String],
        stdin: ByteStream,
    ) -> Result<ExecOutput, EngineError>;
}

/// Sees a streamed command's stderr, chunk by chunk.
pub type StderrWatch = Box<dyn FnMut(&[u8]) + Send>;

/// A command running in a container, its stdout streamed.
pub struct ExecStream {
    pub stdout: ByteStream,
    /// Once stdout has ended: the exit code and the last
    /// [`EXEC_OUTPUT_LIMIT`] bytes of stderr.
    pub finished: BoxFuture<'static, Result<ExecOutput, EngineError>>,
}

/// What is at a path on the engine's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryState {
    Missing,
    Empty,
    NonEmpty,
    /// Something that is not a directory (a file, a socket).
    NotADirectory,
}

/// Directories of the engine's host (what `bind` blocks protect), read and
/// written through helper containers that bind-mount them, so a remote
/// engine's host works too.
#[async_trait::async_trait]
pub trait Directories: Send + Sync {
    async fn directory(&self, path: &Path) -> Result<DirectoryState, EngineError>;
    /// The directory's content as a tar stream (entries `<root>/…`, the root first).
    async fn export_directory(&self, path: &Path) -> Result<ExportStream, EngineError>;
    /// Extracts a tar stream (entries `volume`, `volume/…`) into the
    /// directory, creating it when it is missing.
    async fn import_directory(&self, path: &Path, tar: ByteStream) -> Result<(), EngineError>;
}

/// Images: what they are, and their content in and out as `docker save`
/// archives (a tar of `manifest.json`, the configuration and one
/// uncompressed tar per layer).
#[async_trait::async_trait]
pub trait Images: Send + Sync {
    /// The image `reference` (`name:tag` or id) names; `None` when none.
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError>;
    /// Every image of the engine (without their layers).
    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError>;
    /// The image as a `docker save` archive.
    async fn export_image(&self, reference: &str) -> Result<ByteStream, EngineError>;
    /// Several images as one `docker save` archive (`GET
    /// /images/get?names=a&names=b`): a layer they share is in it once;
    /// its manifest has an entry per image.
    async fn export_images(&self, references: &[String]) -> Result<ByteStream, EngineError>;
    /// Loads a `docker save` archive (`docker load`): its images, with the
    /// tags its manifest gives them.
    async fn load_image(&self, tar: ByteStream) -> Result<(), EngineError>;
    /// Points `tag` (`name:tag`) at image `id`.
    async fn tag_image(&self, id: &str, tag: &str) -> Result<(), EngineError>;
    /// The platform the engine runs images for.
    async fn platform(&self) -> Result<Platform, EngineError>;
}

/// Cleaning up after lifeboat processes: helpers are labelled with the
/// process that made them, so any later run can remove those of processes
/// that are gone (a SIGKILL leaves them holding their volumes).
#[async_trait::async_trait]
pub trait Helpers: Send + Sync {
    /// Removes helper containers whose creating process (on this host) is
    /// gone; returns what it removed.
    async fn remove_leftover_helpers(&self) -> Result<Vec<LeftoverHelper>, EngineError>;
    /// Removes this process's own helpers (on SIGINT/SIGTERM, before exit).
    async fn remove_own_helpers(&self) -> Result<usize, EngineError>;
}

/// What a container mounts at one of its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A named Docker volume.
    Volume(String),
    /// A directory (or file) of the engine's host.
    Bind(PathBuf),
    /// Anything else (tmpfs, anonymous volumes, named pipes).
    Other,
}

/// Anonymous volumes are named by 64 hex digits: they belong to one
/// container's lifetime, not to anything a spec would name.
pub fn is_anonymous_volume(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container as an inventory of the engine lists it: enough to describe
/// what it runs and what it keeps, not how to recreate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub name: String,
    /// The image as the container was created from it (`postgres:16`), or
    /// its id when the tag has moved on.
    pub image: String,
    pub image_id: String,
    pub running: bool,
    pub labels: BTreeMap<String, String>,
    /// (what is mounted, where in the container), in the engine's order.
    pub mounts: Vec<(MountSource, String)>,
}

/// Listing what runs on the engine (for `lifeboat init`).
#[async_trait::async_trait]
pub trait Inventory: Send + Sync {
    /// Every container, running or not, lifeboat's own helpers excluded.
    async fn containers(&self) -> Result<Vec<ContainerSummary>, EngineError>;
}

/// One engine: every capability lifeboat uses, behind one object.
#[async_trait::async_trait]
pub trait Engine: Volumes + Directories + Containers + Exec + Images + Helpers + Inventory {
    async fn ping(&self) -> Result<EngineInfo, EngineError>;

    /// Whether the engine runs on this host, sharing its filesystem (a local
    /// socket): only then may lifeboat read and write its directories
    /// itself (direct access) instead of through the API.
    fn is_local(&self) -> bool;
}
