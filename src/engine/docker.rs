//! [`Engine`] on bollard, talking to a real Docker engine.
//!
//! Volume content moves through the archive endpoints of a helper container
//! that is created but never started: it only exists so the volume has a
//! place in some container's filesystem. Its image (`lifeboat/helper:1`) is a
//! one-file image lifeboat imports itself, so no registry is needed.

use super::{Engine, EngineError, EngineInfo, ExportStream, VolumeInfo};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io;

/// The helper image lifeboat imports when it is missing.
pub const HELPER_IMAGE: &str = "lifeboat/helper:1";
/// Where helper containers mount the volume (`/` + [`ARCHIVE_ROOT`]).
const MOUNT_PATH: &str = "/volume";
/// Label on everything lifeboat creates on the engine, so leftovers are findable.
const LABEL: &str = "io.lifeboat.helper";
/// Long enough for a multi-gigabyte archive stream; bollard's default (120 s)
/// would cut a large backup.
const REQUEST_TIMEOUT_SECS: u64 = 24 * 3600;

pub struct DockerEngine {
    docker: Docker,
    host: String,
}

fn api(context: &str) -> impl Fn(bollard::errors::Error) -> EngineError + '_ {
    move |error| EngineError::Api {
        context: context.to_string(),
        message: error.to_string(),
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerEngine {
    /// Connects to `host`, or to `DOCKER_HOST`, or to the local socket, and
    /// agrees on an API version the engine speaks.
    pub async fn connect(host: Option<&str>) -> Result<DockerEngine, EngineError> {
        let host = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unreachable = |message: String| EngineError::Unreachable {
            host: host.clone(),
            message,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECS, version)
        } else {
            return Err(unreachable(
                "lifeboat speaks to engines over unix:// and tcp:// (for a remote host, forward \
                 its socket, e.g. `ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST` and \
                 DOCKER_HOST=unix:///tmp/docker.sock)"
                    .to_string(),
            ));
        }
        .map_err(|e| unreachable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerEngine { docker, host })
    }

    async fn ensure_helper_image(&self) -> Result<(), EngineError> {
        if self.docker.inspect_image(HELPER_IMAGE).await.is_ok() {
            return Ok(());
        }
        let mut rootfs = tar::Builder::new(Vec::new());
        let note = b"lifeboat helper image: never started, only mounts volumes\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(note.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        rootfs
            .append_data(&mut header, "lifeboat-helper", &note[..])
            .map_err(|e| EngineError::Api {
                context: "building the helper image".into(),
                message: e.to_string(),
            })?;
        let rootfs = rootfs.into_inner().map_err(|e| EngineError::Api {
            context: "building the helper image".into(),
            message: e.to_string(),
        })?;
        let (repo, tag) = HELPER_IMAGE.split_once(':').expect("image has a tag");
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .create_image(
                Some(options),
                Some(bollard::body_full(Bytes::from(rootfs))),
                None,
            )
            .try_collect::<Vec<_>>()
            .await
            .map_err(api("importing the helper image"))?;
        Ok(())
    }

    /// Creates a never-started container mounting `volume` at [`MOUNT_PATH`].
    async fn helper(&self, volume: &str, read_only: bool) -> Result<HelperGuard, EngineError> {
        self.ensure_helper_image().await?;
        let mount = Mount {
            target: Some(MOUNT_PATH.to_string()),
            source: Some(volume.to_string()),
            typ: Some(MountType::VOLUME),
            read_only: Some(read_only),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("lifeboat-helper-{}", hex::encode(rand::random::<[u8; 6]>()));
        let body = ContainerCreateBody {
            image: Some(HELPER_IMAGE.to_string()),
            cmd: Some(vec!["/lifeboat-helper".to_string()]),
            labels: Some(HashMap::from([(LABEL.to_string(), volume.to_string())])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![mount]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(api("creating the helper container"))?;
        Ok(HelperGuard {
            docker: self.docker.clone(),
            id: created.id,
        })
    }
}

/// A helper container, removed by [`HelperGuard::remove`] or, as a fallback,
/// in the background when dropped.
pub struct HelperGuard {
    docker: Docker,
    id: String,
}

impl HelperGuard {
    pub async fn remove(self) {
        let docker = self.docker.clone();
        let id = self.id.clone();
        std::mem::forget(self);
        remove_container(&docker, &id).await;
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(false)
        .build();
    let _ = docker.remove_container(id, Some(options)).await;
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let id = self.id.clone();
            handle.spawn(async move { remove_container(&docker, &id).await });
        }
    }
}

impl DockerEngine {
    /// Names of containers mounting the volume: lifeboat's helpers, or everyone else's.
    async fn containers_using(
        &self,
        name: &str,
        helpers: bool,
    ) -> Result<Vec<String>, EngineError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("volume", vec![name])]))
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("listing containers"))?;
        Ok(containers
            .into_iter()
            .filter(|c| c.labels.as_ref().is_some_and(|l| l.contains_key(LABEL)) == helpers)
            .map(|c| {
                c.names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .or(c.id)
                    .unwrap_or_default()
            })
            .collect())
    }
}

impl Engine for DockerEngine {
    async fn ping(&self) -> Result<EngineInfo, EngineError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| EngineError::Unreachable {
                host: self.host.clone(),
                message: e.to_string(),
            })?;
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            host: self.host.clone(),
        })
    }

    async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>, EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(volume) => Ok(Some(VolumeInfo {
                name: volume.name,
                driver: volume.driver,
                options: volume.options.into_iter().collect(),
                labels: volume.labels.into_iter().collect(),
                mountpoint: Some(volume.mountpoint.into())
                    .filter(|p: &std::path::PathBuf| !p.as_os_str().is_empty()),
                created_at: volume.created_at.map(|t| t.to_string()),
            })),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(api("inspecting a volume")(error)),
        }
    }

    async fn create_volume(&self, volume: &VolumeInfo) -> Result<(), EngineError> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(volume.name.clone()),
            driver: Some(if volume.driver.is_empty() {
                "local".to_string()
            } else {
                volume.driver.clone()
            }),
            driver_opts: Some(volume.options.clone().into_iter().collect()),
            labels: Some(volume.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(api("creating a volume"))?;
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        // Helper containers left by an interrupted lifeboat are ours to remove.
        for helper in self.containers_using(name, true).await? {
            remove_container(&self.docker, &helper).await;
        }
        let users = self.volume_users(name).await?;
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse {
                name: name.to_string(),
                containers: users,
            });
        }
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Err(EngineError::VolumeNotFound(name.into())),
            Err(error) => Err(api("removing a volume")(error)),
        }
    }

    async fn volume_is_empty(&self, name: &str) -> Result<bool, EngineError> {
        // An empty volume's archive is its root entry and the end marker: a
        // few KB. Anything longer, or any second entry, means content.
        const SMALL: usize = 64 * 1024;
        let export = self.export_volume(name).await?;
        let (mut stream, release) = export.into_parts();
        let mut buffer = Vec::new();
        let mut complete = true;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| EngineError::Api {
                context: "reading a volume".into(),
                message: e.to_string(),
            })?;
            buffer.extend_from_slice(&chunk);
            if buffer.len() > SMALL {
                complete = false;
                break;
            }
        }
        drop(stream);
        release.release().await;
        if !complete {
            return Ok(false);
        }
        let mut archive = tar::Archive::new(buffer.as_slice());
        let entries = archive.entries().map_err(|e| EngineError::Api {
            context: "reading a volume's archive".into(),
            message: e.to_string(),
        })?;
        Ok(entries.count() <= 1)
    }

    async fn volume_users(&self, name: &str) -> Result<Vec<String>, EngineError> {
        self.containers_using(name, false).await
    }

    async fn export_volume(&self, name: &str) -> Result<ExportStream, EngineError> {
        if self.volume(name).await?.is_none() {
            return Err(EngineError::VolumeNotFound(name.to_string()));
        }
        let guard = self.helper(name, true).await?;
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT_PATH)
            .build();
        let stream = self
            .docker
            .download_from_container(&guard.id, Some(options))
            .map_err(|e| io::Error::other(format!("reading the volume from Docker: {e}")));
        Ok(ExportStream {
            root: MOUNT_PATH.trim_start_matches('/').to_string(),
            stream: Box::pin(stream),
            cleanup: Some(guard),
        })
    }

    async fn import_volume(
        &self,
        name: &str,
        tar: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let guard = self.helper(name, false).await?;
        debug_assert_eq!(MOUNT_PATH, format!("/{}", super::ARCHIVE_ROOT));
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let result = self
            .docker
            .upload_to_container(&guard.id, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(api("writing the volume"));
        guard.remove().await;
        result
    }
}
