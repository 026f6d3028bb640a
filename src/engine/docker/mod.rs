//! [`Engine`] on bollard, talking to a real Docker engine.
//!
//! Volume content moves through the archive endpoints of a helper container
//! that is created but never started (see [`helpers`]).

mod containers;
mod directories;
mod helpers;
mod volumes;

pub use helpers::HELPER_IMAGE;

use super::{Engine, EngineError, EngineInfo};
use bollard::Docker;

/// Long enough for a multi-gigabyte archive stream; bollard's default (120 s)
/// would cut a large backup.
const REQUEST_TIMEOUT_SECS: u64 = 24 * 3600;

pub struct DockerEngine {
    docker: Docker,
    host: String,
    /// This process, as its helper containers' labels record it.
    process: crate::host::ProcessId,
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
        Ok(DockerEngine {
            docker,
            host,
            process: crate::host::ProcessId::current(),
        })
    }
}

#[async_trait::async_trait]
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

    fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }
}
