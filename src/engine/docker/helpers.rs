//! Helper containers: created, never started, mounting what lifeboat reads
//! or writes through their archive endpoints. Their image
//! ([`HELPER_IMAGE`]) is a one-file image lifeboat imports itself, so no
//! registry is needed.
//!
//! Every helper is labelled with the process that made it, so a later run
//! can remove the helpers of a lifeboat that was killed (they would
//! otherwise keep holding their volumes: `docker volume rm` refuses).

use super::{DockerEngine, api};
use crate::engine::{ByteStream, EngineError, ExportStream, Helpers, LeftoverHelper, Release};
use crate::host::ProcessId;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptions, MountType, MountVolumeOptions,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io;

/// The helper image lifeboat imports when it is missing.
pub const HELPER_IMAGE: &str = "lifeboat/helper:1";
/// Where helper containers mount the volume (`/` + [`crate::engine::ARCHIVE_ROOT`]).
pub(super) const MOUNT_PATH: &str = "/volume";
/// Label on every helper: what it mounts. Its presence marks a helper.
pub(super) const LABEL: &str = "io.lifeboat.helper";
/// The creating process's host and `pid:start:boot` ([`ProcessId::token`]).
const LABEL_HOST: &str = "io.lifeboat.host";
const LABEL_PROCESS: &str = "io.lifeboat.process";

/// What a helper container mounts at [`MOUNT_PATH`].
pub(super) enum HelperMount<'a> {
    Volume(&'a str),
    /// A directory on the engine's host (a bind mount); `create` asks the
    /// engine to make it when it is missing (API 1.42 and later; older
    /// engines refuse a missing source either way).
    Directory {
        path: &'a std::path::Path,
        create: bool,
    },
}

impl HelperMount<'_> {
    /// The helper label's value: what it holds.
    fn label(&self) -> String {
        match self {
            HelperMount::Volume(volume) => volume.to_string(),
            HelperMount::Directory { path, .. } => format!("bind:{}", path.display()),
        }
    }
}

/// A helper container, removed by [`HelperGuard::remove`] or, as a
/// fallback, in the background when dropped.
pub(super) struct HelperGuard {
    docker: Docker,
    pub(super) id: String,
    removed: bool,
}

impl HelperGuard {
    pub(super) async fn remove(mut self) {
        self.removed = true;
        remove_container(&self.docker, &self.id).await;
    }

    /// The removal as an engine-neutral [`Release`].
    pub(super) fn into_release(mut self) -> Release {
        self.removed = true;
        let (docker, id) = (self.docker.clone(), self.id.clone());
        Release::new(Box::pin(
            async move { remove_container(&docker, &id).await },
        ))
    }
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (docker, id) = (self.docker.clone(), self.id.clone());
            handle.spawn(async move { remove_container(&docker, &id).await });
        }
    }
}

/// Whether an export holds nothing but its root: an empty directory's
/// archive is its root entry and the end marker, a few KB; anything
/// longer, or any second entry, means content.
pub(super) async fn holds_nothing(export: ExportStream) -> Result<bool, EngineError> {
    const SMALL: usize = 64 * 1024;
    let (mut stream, release) = export.into_parts();
    let mut buffer = Vec::new();
    let mut complete = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| EngineError::Api {
            context: "reading an archive".into(),
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
        context: "reading an archive".into(),
        message: e.to_string(),
    })?;
    Ok(entries.count() <= 1)
}

pub(super) async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(false)
        .build();
    let _ = docker.remove_container(id, Some(options)).await;
}

fn name_of(container: &bollard::models::ContainerSummary) -> String {
    container
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| container.id.clone())
        .unwrap_or_default()
}

impl DockerEngine {
    async fn ensure_helper_image(&self) -> Result<(), EngineError> {
        if self.docker.inspect_image(HELPER_IMAGE).await.is_ok() {
            return Ok(());
        }
        let build_error = |e: std::io::Error| EngineError::Api {
            context: "building the helper image".into(),
            message: e.to_string(),
        };
        let mut rootfs = tar::Builder::new(Vec::new());
        let note = b"lifeboat helper image: never started, only mounts volumes\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(note.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        rootfs
            .append_data(&mut header, "lifeboat-helper", &note[..])
            .map_err(build_error)?;
        let rootfs = rootfs.into_inner().map_err(build_error)?;
        let (repo, tag) = HELPER_IMAGE.split_once(':').unwrap_or((HELPER_IMAGE, "1"));
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
    pub(super) async fn helper(
        &self,
        volume: &str,
        read_only: bool,
    ) -> Result<HelperGuard, EngineError> {
        self.helper_for(&HelperMount::Volume(volume), read_only)
            .await
    }

    /// Creates a never-started container mounting `what` at [`MOUNT_PATH`].
    pub(super) async fn helper_for(
        &self,
        what: &HelperMount<'_>,
        read_only: bool,
    ) -> Result<HelperGuard, EngineError> {
        self.ensure_helper_image().await?;
        let mount = match what {
            HelperMount::Volume(volume) => Mount {
                target: Some(MOUNT_PATH.to_string()),
                source: Some(volume.to_string()),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            HelperMount::Directory { path, create } => Mount {
                target: Some(MOUNT_PATH.to_string()),
                source: Some(path.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(read_only),
                bind_options: Some(MountBindOptions {
                    create_mountpoint: Some(*create),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        let name = format!("lifeboat-helper-{}", hex::encode(rand::random::<[u8; 6]>()));
        let labels = HashMap::from([
            (LABEL.to_string(), what.label()),
            (LABEL_HOST.to_string(), self.process.host.clone()),
            (LABEL_PROCESS.to_string(), self.process.token()),
        ]);
        let body = ContainerCreateBody {
            image: Some(HELPER_IMAGE.to_string()),
            cmd: Some(vec!["/lifeboat-helper".to_string()]),
            labels: Some(labels),
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
            .map_err(|error| match (what, &error) {
                (
                    HelperMount::Directory { path, .. },
                    bollard::errors::Error::DockerResponseServerError { message, .. },
                ) if message.contains("does not exist") => {
                    EngineError::DirectoryNotFound(path.display().to_string())
                }
                _ => api("creating the helper container")(error),
            })?;
        Ok(HelperGuard {
            docker: self.docker.clone(),
            id: created.id,
            removed: false,
        })
    }

    /// The content a helper mounts, as a tar stream whose release removes it.
    pub(super) fn export_through(&self, guard: HelperGuard, what: &'static str) -> ExportStream {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT_PATH)
            .build();
        let stream = self
            .docker
            .download_from_container(&guard.id, Some(options))
            .map_err(move |e| io::Error::other(format!("reading {what} from Docker: {e}")));
        ExportStream {
            root: MOUNT_PATH.trim_start_matches('/').to_string(),
            stream: Box::pin(stream),
            release: guard.into_release(),
        }
    }

    /// Extracts `tar` (entries `volume`, `volume/…`) into what the helper
    /// mounts, then removes the helper.
    pub(super) async fn import_through(
        &self,
        guard: HelperGuard,
        tar: ByteStream,
        context: &'static str,
    ) -> Result<(), EngineError> {
        // Docker sets the root's mode, owner and mtime only from a named
        // entry (it ignores `./`), hence entries `volume/…` extracted at `/`.
        debug_assert_eq!(MOUNT_PATH, format!("/{}", crate::engine::ARCHIVE_ROOT));
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let result = self
            .docker
            .upload_to_container(&guard.id, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(api(context));
        guard.remove().await;
        result
    }

    /// Every helper container on the engine, with its labels.
    async fn helpers(&self) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label", vec![LABEL])]))
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(api("listing lifeboat's helper containers"))
    }
}

#[async_trait::async_trait]
impl Helpers for DockerEngine {
    async fn remove_leftover_helpers(&self) -> Result<Vec<LeftoverHelper>, EngineError> {
        let mut removed = Vec::new();
        for container in self.helpers().await? {
            let labels = container.labels.clone().unwrap_or_default();
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            // Helpers of versions that did not label their process are
            // never started and never reused: nobody else will remove them.
            let creator = ProcessId::parse(&label(LABEL_HOST), &label(LABEL_PROCESS));
            let gone = creator.as_ref().is_none_or(ProcessId::is_gone);
            if !gone {
                continue;
            }
            let name = name_of(&container);
            if let Some(id) = &container.id {
                remove_container(&self.docker, id).await;
            }
            removed.push(LeftoverHelper {
                container: name,
                mounted: label(LABEL),
                pid: creator.as_ref().map(|c| c.pid).unwrap_or_default(),
                host: creator.map(|c| c.host).unwrap_or_default(),
            });
        }
        Ok(removed)
    }

    async fn remove_own_helpers(&self) -> Result<usize, EngineError> {
        self.kill_own_execs().await;
        // A helper whose archive transfer is still winding down may refuse
        // removal for a moment, and one may be in the middle of being
        // created: try until none of this process's helpers is listed.
        let token = self.process.token();
        let mut removed = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mine: Vec<String> = self
                .helpers()
                .await?
                .into_iter()
                .filter(|c| {
                    c.labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_PROCESS))
                        .is_some_and(|t| *t == token)
                })
                .filter_map(|c| c.id)
                .collect();
            if mine.is_empty() {
                break;
            }
            for id in mine {
                remove_container(&self.docker, &id).await;
                removed.insert(id);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(removed.len())
    }
}
