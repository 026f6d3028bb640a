//! [`Engine`] on bollard, talking to a real Docker engine.
//!
//! Volume content moves through the archive endpoints of a helper container
//! that is created but never started (see [`helpers`]).

mod containers;
mod directories;
mod exec;
mod helpers;
mod images;
mod service_config;
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
    /// Streaming execs of this process still running (their ids): killed
    /// with the helpers when lifeboat is interrupted.
    execs: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
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

/// How to reach an engine: its address and what a secure connection needs.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `unix:///…`, `tcp://…` (TLS when `cert_path` is given) or `ssh://user@host`;
    /// `None`: `DOCKER_HOST`, else the local socket.
    pub host: Option<String>,
    /// The directory with `ca.pem`, `cert.pem` and `key.pem` for TLS (for
    /// the default engine, `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set,
    /// as the Docker CLI does).
    pub cert_path: Option<std::path::PathBuf>,
    /// For `ssh://`: the private key to use.
    pub ssh_identity: Option<std::path::PathBuf>,
}

impl Connection {
    /// This connection with what the environment decides filled in
    /// (`DOCKER_HOST`, else the local socket; `DOCKER_CERT_PATH`): the same
    /// engine, reachable later without that environment.
    pub fn effective(&self) -> Connection {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = self
            .host
            .clone()
            .or_else(|| from_env("DOCKER_HOST"))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let cert_path = self.cert_path.clone().or_else(|| {
            (self.host.is_none() && from_env("DOCKER_TLS_VERIFY").is_some())
                .then(|| from_env("DOCKER_CERT_PATH").map(std::path::PathBuf::from))
                .flatten()
        });
        Connection {
            host: Some(host),
            cert_path,
            ssh_identity: self.ssh_identity.clone(),
        }
    }
}

/// The port an `ssh://[user@]host[:port]` address names, if any.
fn ssh_port(address: &str) -> Option<&str> {
    let authority = address.strip_prefix("ssh://")?;
    let authority = authority.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (name, port) = host.rsplit_once(':')?;
    let bracketed_ipv6_or_name = !name.contains(':') || name.ends_with(']');
    (bracketed_ipv6_or_name && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(port)
}

impl DockerEngine {
    /// Connects as `connection` says, and agrees on an API version the
    /// engine speaks.
    pub async fn connect(connection: &Connection) -> Result<DockerEngine, EngineError> {
        let effective = connection.effective();
        let host = effective.host.clone().unwrap_or_default();
        let cert_path = effective.cert_path;
        let unreachable = |message: String| EngineError::Unreachable {
            host: host.clone(),
            message,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version)
        } else if host.starts_with("ssh://") {
            if let Some(port) = ssh_port(&host) {
                // bollard hands ssh `user@host:port` as the host name, so
                // the connection fails with a bare "Connect" error.
                return Err(unreachable(format!(
                    "an ssh:// address cannot name a port (:{port}) here: give it in \
                     ~/.ssh/config (a `Host NAME` entry with `HostName` and `Port {port}`) \
                     and write ssh://user@NAME"
                )));
            }
            let identity = connection
                .ssh_identity
                .as_ref()
                .map(|p| p.display().to_string());
            Docker::connect_with_ssh(&host, REQUEST_TIMEOUT_SECS, version, identity)
        } else if let (true, Some(dir)) = (host.starts_with("tcp://"), &cert_path) {
            let file = |name: &str| dir.join(name);
            for name in ["ca.pem", "cert.pem", "key.pem"] {
                if !file(name).is_file() {
                    return Err(unreachable(format!(
                        "TLS needs {} (cert_path holds ca.pem, cert.pem and key.pem)",
                        file(name).display()
                    )));
                }
            }
            Docker::connect_with_ssl(
                &host,
                &file("key.pem"),
                &file("cert.pem"),
                &file("ca.pem"),
                REQUEST_TIMEOUT_SECS,
                version,
            )
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECS, version)
        } else {
            return Err(unreachable(
                "write the engine's address as unix:///path, tcp://host:port (with cert_path \
                 for TLS) or ssh://user@host"
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
            execs: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl Engine for DockerEngine {
    async fn ping(&self) -> Result<EngineInfo, EngineError> {
        // Both answers take dockerd some 30 ms (it asks its runtimes for
        // their versions), so they are asked at once.
        let (version, info) = tokio::join!(self.docker.version(), self.docker.info());
        let version = version.map_err(|e| EngineError::Unreachable {
            host: self.host.clone(),
            message: e.to_string(),
        })?;
        // An engine that answers the version but not its info still runs:
        // its data root is then unknown.
        let data_root = match info {
            Ok(info) => info
                .docker_root_dir
                .filter(|dir| !dir.is_empty())
                .map(std::path::PathBuf::from),
            Err(_) => None,
        };
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            host: self.host.clone(),
            data_root,
        })
    }

    fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssh_address_naming_a_port_is_refused_with_what_to_write_instead() {
        assert_eq!(ssh_port("ssh://root@127.0.0.1:2222"), Some("2222"));
        assert_eq!(ssh_port("ssh://docker.example:22/"), Some("22"));
        assert_eq!(ssh_port("ssh://[::1]:2222"), Some("2222"));
        for no_port in ["ssh://root@docker.example", "ssh://[::1]", "ssh://host:"] {
            assert_eq!(ssh_port(no_port), None, "{no_port}");
        }
        let connection = Connection {
            host: Some("ssh://root@127.0.0.1:2222".to_string()),
            ..Connection::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(error) = runtime.block_on(DockerEngine::connect(&connection)) else {
            panic!("connected");
        };
        let message = error.to_string();
        assert!(message.contains("cannot name a port (:2222)"), "{message}");
        assert!(message.contains("~/.ssh/config"), "{message}");
    }
}
