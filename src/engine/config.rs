//! A container's configuration and a network's, as lifeboat records them:
//! lifeboat's own types (a backup stores them, so they must not change when
//! the Docker client library does), holding what recreating the container
//! the same way needs and nothing the engine makes up at run time (ip
//! addresses it assigned, the container's own id as hostname or alias).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything a container is created with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub name: String,
    /// The image as the container names it (`shop/api:2.3`).
    pub image: String,
    /// The id of the image it ran (`sha256:…`).
    pub image_id: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `NAME=value`, in the engine's order. Values may be secrets: show names only.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub user: String,
    pub working_dir: String,
    /// `None` when the engine chose it (the container's short id).
    pub hostname: Option<String>,
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub exposed_ports: Vec<String>,
    pub healthcheck: Option<Healthcheck>,
    pub mounts: Vec<MountConfig>,
    pub ports: Vec<PortConfig>,
    pub publish_all_ports: bool,
    pub restart: RestartConfig,
    /// `bridge`, `host`, `none`, `container:…` or a network's name.
    pub network_mode: String,
    pub networks: Vec<NetworkAttachment>,
    pub privileged: bool,
    pub init: Option<bool>,
    pub readonly_rootfs: bool,
    pub auto_remove: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub security_opt: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub log_driver: String,
    pub log_options: BTreeMap<String, String>,
    /// Bytes; 0 is no limit.
    pub memory: i64,
    pub nano_cpus: i64,
    pub shm_size: Option<i64>,
}

impl ContainerConfig {
    /// The names of its environment variables (never their values).
    pub fn env_names(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|pair| pair.split_once('=').map_or(pair.as_str(), |(n, _)| n))
            .map(str::to_string)
            .collect()
    }

    /// The values of its environment variables, to keep out of messages.
    pub fn env_values(&self) -> impl Iterator<Item = &str> {
        self.env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(_, v)| v)
    }

    /// The user-defined networks it is attached to (the engine's own
    /// `bridge`, `host` and `none` always exist).
    pub fn user_networks(&self) -> impl Iterator<Item = &str> {
        self.networks
            .iter()
            .map(|n| n.network.as_str())
            .filter(|n| is_user_network(n))
    }

    /// The settings that reach past the container into the host:
    /// privileged mode, added capabilities, the host's (or another
    /// container's) network namespace, security options (which can switch
    /// confinement off), namespaced kernel settings, and host directories
    /// mounted in. Each is named as `restore --allow` takes it
    /// (`privileged`, `cap-add:SYS_ADMIN`, `network:host`, `bind:/srv/x`,
    /// `security-opt:apparmor=unconfined`, `sysctl:net.ipv4.ip_forward`).
    /// A restore plan shows them: a service snapshot is data anyone holding
    /// the repository's key could have written.
    pub fn host_access(&self) -> Vec<String> {
        let mut settings = Vec::new();
        if self.privileged {
            settings.push("privileged".to_string());
        }
        settings.extend(
            self.cap_add
                .iter()
                .map(|c| canonical_host_access(&format!("cap-add:{c}"))),
        );
        if self.network_mode == "host" || self.network_mode.starts_with("container:") {
            settings.push(format!("network:{}", self.network_mode));
        }
        settings.extend(
            self.security_opt
                .iter()
                .map(|o| format!("security-opt:{o}")),
        );
        settings.extend(self.sysctls.keys().map(|k| format!("sysctl:{k}")));
        settings.extend(
            self.mounts
                .iter()
                .filter(|m| m.kind == MountKind::Bind)
                .map(|m| format!("bind:{}", m.source)),
        );
        settings.sort();
        settings.dedup();
        settings
    }

    /// The top-level settings in which `other` differs from this one (its
    /// name aside), by their field names: what a plan says of a container
    /// that holds the service's name but is not the one in the snapshot.
    pub fn differences(&self, other: &ContainerConfig) -> Vec<String> {
        let (Ok(serde_json::Value::Object(mine)), Ok(serde_json::Value::Object(theirs))) =
            (serde_json::to_value(self), serde_json::to_value(other))
        else {
            return Vec::new();
        };
        mine.iter()
            .filter(|(key, value)| {
                key.as_str() != "name" && theirs.get(key.as_str()) != Some(value)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// A host-access setting as [`ContainerConfig::host_access`] names it:
/// capabilities in Docker's short upper-case form (`cap-add:SYS_ADMIN`,
/// whether written `cap_sys_admin` or `CAP_SYS_ADMIN`), the rest as given.
pub fn canonical_host_access(setting: &str) -> String {
    match setting.strip_prefix("cap-add:") {
        Some(capability) => {
            let upper = capability.to_ascii_uppercase();
            format!("cap-add:{}", upper.strip_prefix("CAP_").unwrap_or(&upper))
        }
        None => setting.to_string(),
    }
}

/// Whether `name` is a network a restore may have to create.
pub fn is_user_network(name: &str) -> bool {
    !matches!(name, "bridge" | "host" | "none" | "default" | "") && !name.starts_with("container:")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    /// Nanoseconds, 0 for the default.
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    pub kind: MountKind,
    /// The volume's name or the host directory; empty for tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// tmpfs options (`size=64m`); empty otherwise.
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortConfig {
    /// `80/tcp`
    pub container_port: String,
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartConfig {
    /// `no`, `always`, `unless-stopped`, `on-failure`, or empty.
    pub policy: String,
    pub max_retries: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    /// Aliases given, without the one the engine derives from the container's id.
    pub aliases: Vec<String>,
    /// Addresses given at creation (not those the engine assigned).
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
}

/// A user-defined network, as a restore recreates it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    pub driver: String,
    pub ipam_driver: String,
    pub subnets: Vec<Subnet>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
}

/// What a command run in a container ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    /// Its stdout and stderr, interleaved, cut to a few KB.
    pub output: String,
}
