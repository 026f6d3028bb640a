//! What `init` reads before it writes (I/O): the engine's containers and
//! images, each chosen container's configuration and the server binaries
//! on its PATH, and the compose files of projects whose labels do not say
//! `depends_on`. Everything read is untrusted and only gathered here; what
//! it means is decided by `generate` and `detect`.

use super::compose::{ComposeFiles, project_files, read_compose_files};
use super::detect::{ContainerDetails, SERVER_BINARIES};
use super::{COMPOSE_DEPENDS_ON, COMPOSE_PROJECT, Scope};
use crate::engine::{Engine, EngineError, MountKind, is_anonymous_volume};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const COMPOSE_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
const COMPOSE_WORKING_DIR: &str = "com.docker.compose.project.working_dir";

/// How long asking a container for its binaries may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `generate` describes.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub containers: Vec<crate::engine::ContainerSummary>,
    /// The engine's images, with their layers.
    pub images: Vec<crate::engine::ImageInfo>,
    /// By container name, for the containers in scope.
    pub details: BTreeMap<String, ContainerDetails>,
    /// By compose project, for projects none of whose containers has the
    /// `depends_on` label (compose v1): what their files say, or why that
    /// is not known.
    pub compose: BTreeMap<String, Result<ComposeFiles, String>>,
}

/// Reads what `generate` needs for `scope` from `engine` (and, for compose
/// projects without `depends_on` labels, their files on this host).
pub async fn survey<E: Engine + ?Sized>(
    engine: &E,
    scope: &Scope,
) -> Result<Observed, EngineError> {
    let containers = engine.containers().await?;
    // With their layers: what each image is built FROM comes from them.
    let mut images = Vec::new();
    for listed in engine.list_images().await? {
        if let Some(image) = engine.image(&listed.id).await? {
            images.push(image);
        }
    }
    // Compose v2 labels its containers with depends_on; where any
    // container of a project has the label, the labels say it all.
    let labelled: BTreeSet<&String> = containers
        .iter()
        .filter(|c| c.labels.contains_key(COMPOSE_DEPENDS_ON))
        .filter_map(|c| c.labels.get(COMPOSE_PROJECT))
        .collect();
    let mut details = BTreeMap::new();
    let mut compose = BTreeMap::new();
    for container in containers.iter().filter(|c| scope.includes(c)) {
        details.insert(container.name.clone(), details_of(engine, container).await?);
        let Some(project) = container.labels.get(COMPOSE_PROJECT) else {
            continue;
        };
        if labelled.contains(project) || compose.contains_key(project) {
            continue;
        }
        let files = match container.labels.get(COMPOSE_CONFIG_FILES) {
            Some(files) => read_compose_files(&project_files(
                container
                    .labels
                    .get(COMPOSE_WORKING_DIR)
                    .map(String::as_str),
                files,
            )),
            None => Err(format!(
                "its containers name no compose file (label {COMPOSE_CONFIG_FILES})"
            )),
        };
        compose.insert(project.clone(), files);
    }
    Ok(Observed {
        containers,
        images,
        details,
        compose,
    })
}

async fn details_of<E: Engine + ?Sized>(
    engine: &E,
    container: &crate::engine::ContainerSummary,
) -> Result<ContainerDetails, EngineError> {
    let mut details = ContainerDetails::default();
    if let Some(config) = engine.container_config(&container.name).await? {
        details.command = config
            .entrypoint
            .iter()
            .chain(config.command.iter())
            .flatten()
            .cloned()
            .collect();
        details.env_names = config.env_names().into_iter().collect();
        for mount in &config.mounts {
            match mount.kind {
                MountKind::Tmpfs => details.tmpfs.push(mount.target.clone()),
                MountKind::Volume if is_anonymous_volume(&mount.source) => {
                    details.anonymous_volumes.push(mount.target.clone())
                }
                MountKind::Volume | MountKind::Bind => {}
            }
        }
    }
    if container.running {
        details.binaries = binaries_on_path(engine, &container.name).await;
    }
    Ok(details)
}

/// Which [`SERVER_BINARIES`] the running container has on its PATH, by
/// its own shell's `command -v`; `None` when it cannot say (no shell,
/// paused, gone). Its output is untrusted: only known names count.
async fn binaries_on_path<E: Engine + ?Sized>(
    engine: &E,
    container: &str,
) -> Option<std::collections::BTreeSet<String>> {
    let script = format!(
        "for b in {}; do command -v \"$b\"; done; exit 0",
        SERVER_BINARIES.join(" ")
    );
    let command = ["sh".to_string(), "-c".to_string(), script];
    let output = engine.exec(container, &command, ASK_TIMEOUT).await.ok()?;
    if output.exit_code != 0 {
        return None;
    }
    Some(
        output
            .output
            .lines()
            .filter_map(|line| line.trim().rsplit('/').next())
            .filter(|name| SERVER_BINARIES.contains(name))
            .map(str::to_string)
            .collect(),
    )
}
