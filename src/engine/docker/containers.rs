//! [`Containers`] on Docker: inspect, stop, start, pause, unpause.

use super::{DockerEngine, api, is_not_found};
use crate::engine::{
    ContainerConfig, ContainerState, ContainerSummary, Containers, EngineError, ExecOutcome,
    Health, HealthStatus, Inventory, MountSource, NetworkConfig,
};
use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{InspectContainerOptions, StopContainerOptionsBuilder};

impl DockerEngine {
    /// Maps "no such container" to [`EngineError::ContainerNotFound`].
    fn container_error<'n>(
        name: &'n str,
        context: &'static str,
    ) -> impl Fn(bollard::errors::Error) -> EngineError + 'n {
        move |error| {
            if is_not_found(&error) {
                EngineError::ContainerNotFound(name.to_string())
            } else {
                api(context)(error)
            }
        }
    }
}

#[async_trait::async_trait]
impl Containers for DockerEngine {
    async fn container(&self, name: &str) -> Result<Option<ContainerState>, EngineError> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspected) => {
                let state = inspected.state.unwrap_or_default();
                Ok(Some(ContainerState {
                    id: inspected.id.unwrap_or_default(),
                    name: inspected
                        .name
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    running: state.running.unwrap_or(false),
                    paused: state.paused.unwrap_or(false),
                    image_id: inspected.image.unwrap_or_default(),
                    started_at: state.started_at.clone().filter(|t| !never(t)),
                    finished_at: state.finished_at.clone().filter(|t| !never(t)),
                    health: state.health.and_then(health),
                }))
            }
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(api("inspecting a container")(error)),
        }
    }

    async fn stop_container(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<(), EngineError> {
        let seconds = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        self.docker
            .stop_container(name, Some(options))
            .await
            .map_err(Self::container_error(name, "stopping a container"))
    }

    async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(Self::container_error(name, "starting a container"))
    }

    async fn pause_container(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .pause_container(name)
            .await
            .map_err(Self::container_error(name, "pausing a container"))
    }

    async fn unpause_container(&self, name: &str) -> Result<(), EngineError> {
        self.docker
            .unpause_container(name)
            .await
            .map_err(Self::container_error(name, "unpausing a container"))
    }

    async fn container_config(&self, name: &str) -> Result<Option<ContainerConfig>, EngineError> {
        self.inspect_config(name).await
    }

    async fn create_container_from_config(
        &self,
        config: &ContainerConfig,
    ) -> Result<String, EngineError> {
        self.create_from_config(config).await
    }

    async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        self.remove(name).await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkConfig>, EngineError> {
        self.inspect_network_config(name).await
    }

    async fn create_network(&self, network: &NetworkConfig) -> Result<(), EngineError> {
        self.create_network_from(network).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Err(error) if !is_not_found(&error) => Err(api("removing a network")(error)),
            _ => Ok(()),
        }
    }

    async fn run_in_container(
        &self,
        name: &str,
        command: &[String],
    ) -> Result<ExecOutcome, EngineError> {
        self.exec(name, command).await
    }
}

#[async_trait::async_trait]
impl Inventory for DockerEngine {
    async fn containers(&self) -> Result<Vec<ContainerSummary>, EngineError> {
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api("listing containers"))?;
        let mut containers: Vec<ContainerSummary> = listed
            .into_iter()
            .filter(|c| {
                !c.labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(super::helpers::LABEL))
            })
            .map(|c| {
                let id = c.id.unwrap_or_default();
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or(id);
                let mounts = c
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| {
                        let source = match (m.typ.as_deref(), m.name, m.source) {
                            (Some("volume"), Some(name), _)
                                if !crate::engine::is_anonymous_volume(&name) =>
                            {
                                MountSource::Volume(name)
                            }
                            (Some("bind"), _, Some(source)) => {
                                MountSource::Bind(std::path::PathBuf::from(source))
                            }
                            _ => MountSource::Other,
                        };
                        (source, m.destination.unwrap_or_default())
                    })
                    .collect();
                ContainerSummary {
                    name,
                    image: c.image.unwrap_or_default(),
                    image_id: c.image_id.unwrap_or_default(),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    mounts,
                }
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }
}

/// The container's health, `None` when it has no healthcheck (the engine
/// says `none`, or nothing).
fn health(health: bollard::models::Health) -> Option<Health> {
    let status = match health.status? {
        HealthStatusEnum::STARTING => HealthStatus::Starting,
        HealthStatusEnum::HEALTHY => HealthStatus::Healthy,
        HealthStatusEnum::UNHEALTHY => HealthStatus::Unhealthy,
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => return None,
    };
    let last_output = health
        .log
        .unwrap_or_default()
        .into_iter()
        .last()
        .map(|check| {
            let output = check.output.unwrap_or_default();
            let line = output.trim().lines().last().unwrap_or("").trim();
            let line: String = line.chars().take(300).collect();
            match (check.exit_code, line.is_empty()) {
                (Some(code), true) => format!("exit code {code}"),
                (Some(code), false) => format!("exit code {code}: {line}"),
                (None, _) => line,
            }
        })
        .unwrap_or_default();
    Some(Health {
        status,
        last_output,
    })
}

/// Docker's zero time: a container never started (or never stopped).
fn never(time: &str) -> bool {
    time.is_empty() || time.starts_with("0001-01-01")
}
