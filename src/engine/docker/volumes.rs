//! [`Volumes`] on Docker: inspect, create, remove, and content in and out
//! through helper containers' archive endpoints.

use super::helpers::{LABEL, remove_container};
use super::{DockerEngine, api, is_not_found};
use crate::engine::{ByteStream, ContainerRef, EngineError, ExportStream, VolumeInfo, Volumes};
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveVolumeOptionsBuilder};
use std::collections::HashMap;

impl DockerEngine {
    /// Containers mounting the volume: lifeboat's helpers, or everyone else's.
    async fn containers_using(
        &self,
        name: &str,
        helpers: bool,
    ) -> Result<Vec<(String, ContainerRef)>, EngineError> {
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
                let id = c.id.clone().unwrap_or_default();
                let running = c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING);
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| id.clone());
                (id, ContainerRef { name, running })
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Volumes for DockerEngine {
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
        for (id, _) in self.containers_using(name, true).await? {
            remove_container(&self.docker, &id).await;
        }
        let users = self.volume_users(name).await?;
        if !users.is_empty() {
            return Err(EngineError::VolumeInUse {
                name: name.to_string(),
                containers: users.into_iter().map(|u| u.name).collect(),
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
        super::helpers::holds_nothing(self.export_volume(name).await?).await
    }

    async fn volume_users(&self, name: &str) -> Result<Vec<ContainerRef>, EngineError> {
        Ok(self
            .containers_using(name, false)
            .await?
            .into_iter()
            .map(|(_, user)| user)
            .collect())
    }

    async fn export_volume(&self, name: &str) -> Result<ExportStream, EngineError> {
        if self.volume(name).await?.is_none() {
            return Err(EngineError::VolumeNotFound(name.to_string()));
        }
        let guard = self.helper(name, true).await?;
        Ok(self.export_through(guard, "the volume"))
    }

    async fn import_volume(&self, name: &str, tar: ByteStream) -> Result<(), EngineError> {
        let guard = self.helper(name, false).await?;
        self.import_through(guard, tar, "writing the volume").await
    }
}
