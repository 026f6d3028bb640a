//! engine: the Docker engine behind the [`Engine`] trait, and its bollard
//! implementation [`DockerEngine`].
//!
//! It owns every conversation with Docker: volumes, the helper image and the
//! never-started helper containers whose archive endpoints read and write
//! volume content. It knows nothing of specs, plans or repositories: it moves
//! tar streams, it does not interpret them.

mod docker;

pub use docker::DockerEngine;

use bytes::Bytes;
use futures_util::Stream;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
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

/// A volume's content as a tar stream. Entries are named `<root>/…` and the
/// first one, `<root>/`, carries the volume root directory's own metadata.
pub struct ExportStream {
    pub root: String,
    pub stream: ByteStream,
    /// Removes the helper container; call [`ExportStream::release`] when done.
    cleanup: Option<docker::HelperGuard>,
}

impl ExportStream {
    /// Splits into the stream and the handle that removes the helper container.
    pub fn into_parts(self) -> (ByteStream, Release) {
        (self.stream, Release(self.cleanup))
    }
}

/// Removes what an export left on the engine.
pub struct Release(Option<docker::HelperGuard>);

impl Release {
    pub async fn release(mut self) {
        if let Some(guard) = self.0.take() {
            guard.remove().await;
        }
    }
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
}

/// The Docker operations lifeboat needs. Futures are `Send` so they can run
/// on any runtime thread.
pub trait Engine: Send + Sync {
    fn ping(&self) -> impl Future<Output = Result<EngineInfo, EngineError>> + Send;
    fn volume(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<VolumeInfo>, EngineError>> + Send;
    fn create_volume(
        &self,
        volume: &VolumeInfo,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn volume_is_empty(&self, name: &str)
    -> impl Future<Output = Result<bool, EngineError>> + Send;
    /// Names of the containers (running or not) that mount the volume.
    fn volume_users(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;
    /// Streams the volume's content as a tar through a never-started helper
    /// container that mounts it read-only.
    fn export_volume(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ExportStream, EngineError>> + Send;
    /// Extracts a tar stream (entries `volume`, `volume/…`, see
    /// [`ARCHIVE_ROOT`]) into the volume through a helper container that
    /// mounts it read-write. Docker sets the root's mode, owner and mtime only
    /// from a named entry (it ignores `./`), hence the extraction at `/`.
    fn import_volume(
        &self,
        name: &str,
        tar: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
}
