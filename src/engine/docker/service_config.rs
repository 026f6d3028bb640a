//! Containers' and networks' configuration on Docker: reading it from an
//! inspect into lifeboat's [`ContainerConfig`] and [`NetworkConfig`],
//! creating containers and networks from them, and running commands in
//! containers. What the engine made up for itself (assigned addresses, the
//! container's id as hostname and alias) is left out, so an unchanged
//! container reads the same after a recreate.

use super::{DockerEngine, api, is_not_found};
use crate::engine::{
    ContainerConfig, EngineError, ExecOutcome, Healthcheck, MountConfig, MountKind,
    NetworkAttachment, NetworkConfig, PortConfig, RestartConfig, Subnet, is_user_network,
};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings,
    ExecConfig, HealthConfig, HostConfig, HostConfigLogConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, InspectNetworkOptions,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// Output kept of a command run in a container: enough for an error message.
const OUTPUT_LIMIT: usize = 4096;

fn sorted<K: Ord, V>(map: Option<HashMap<K, V>>) -> BTreeMap<K, V> {
    map.unwrap_or_default().into_iter().collect()
}

fn config_of(inspected: ContainerInspectResponse) -> ContainerConfig {
    let id = inspected.id.unwrap_or_default();
    let short_id: String = id.chars().take(12).collect();
    let config = inspected.config.unwrap_or_default();
    let host = inspected.host_config.unwrap_or_default();
    let mut mounts: Vec<MountConfig> = inspected
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mount| {
            let kind = match mount.typ.as_deref() {
                Some("volume") => MountKind::Volume,
                Some("bind") => MountKind::Bind,
                Some("tmpfs") => MountKind::Tmpfs,
                _ => return None,
            };
            let source = match kind {
                MountKind::Volume => mount.name.unwrap_or_default(),
                MountKind::Bind => mount.source.unwrap_or_default(),
                MountKind::Tmpfs => String::new(),
            };
            Some(MountConfig {
                kind,
                source,
                target: mount.destination.unwrap_or_default(),
                read_only: !mount.rw.unwrap_or(true),
                options: String::new(),
            })
        })
        .collect();
    for (target, options) in sorted(host.tmpfs) {
        if !mounts.iter().any(|m| m.target == target) {
            mounts.push(MountConfig {
                kind: MountKind::Tmpfs,
                source: String::new(),
                target,
                read_only: false,
                options,
            });
        }
    }
    mounts.sort_by(|a, b| a.target.cmp(&b.target));
    let mut ports: Vec<PortConfig> = sorted(host.port_bindings)
        .into_iter()
        .flat_map(|(container_port, bindings)| {
            bindings
                .unwrap_or_default()
                .into_iter()
                .map(move |binding| PortConfig {
                    container_port: container_port.clone(),
                    host_ip: binding.host_ip.unwrap_or_default(),
                    host_port: binding.host_port.unwrap_or_default(),
                })
        })
        .collect();
    ports.sort();
    let networks = sorted(inspected.network_settings.and_then(|n| n.networks))
        .into_iter()
        .map(|(network, endpoint)| {
            let ipam = endpoint.ipam_config.unwrap_or_default();
            let mut aliases: Vec<String> = endpoint
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|alias| *alias != short_id && *alias != id)
                .collect();
            aliases.sort();
            aliases.dedup();
            NetworkAttachment {
                network,
                aliases,
                ipv4_address: ipam.ipv4_address.filter(|a| !a.is_empty()),
                ipv6_address: ipam.ipv6_address.filter(|a| !a.is_empty()),
            }
        })
        .collect();
    let restart = host.restart_policy.unwrap_or_default();
    let log = host.log_config.unwrap_or_default();
    let mut exposed_ports = config.exposed_ports.unwrap_or_default();
    exposed_ports.sort();
    ContainerConfig {
        name: inspected
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        image_id: inspected.image.unwrap_or_default(),
        command: config.cmd,
        entrypoint: config.entrypoint,
        env: config.env.unwrap_or_default(),
        labels: sorted(config.labels),
        user: config.user.unwrap_or_default(),
        working_dir: config.working_dir.unwrap_or_default(),
        hostname: config.hostname.filter(|h| !h.is_empty() && *h != short_id),
        domainname: config.domainname.unwrap_or_default(),
        tty: config.tty.unwrap_or(false),
        open_stdin: config.open_stdin.unwrap_or(false),
        stop_signal: config.stop_signal.filter(|s| !s.is_empty()),
        stop_timeout: config.stop_timeout,
        exposed_ports,
        healthcheck: config.healthcheck.map(|h| Healthcheck {
            test: h.test.unwrap_or_default(),
            interval: h.interval.unwrap_or(0),
            timeout: h.timeout.unwrap_or(0),
            start_period: h.start_period.unwrap_or(0),
            retries: h.retries.unwrap_or(0),
        }),
        mounts,
        ports,
        publish_all_ports: host.publish_all_ports.unwrap_or(false),
        restart: RestartConfig {
            policy: restart.name.map(|n| n.to_string()).unwrap_or_default(),
            max_retries: restart.maximum_retry_count.unwrap_or(0),
        },
        network_mode: host.network_mode.unwrap_or_default(),
        networks,
        privileged: host.privileged.unwrap_or(false),
        init: host.init,
        readonly_rootfs: host.readonly_rootfs.unwrap_or(false),
        auto_remove: host.auto_remove.unwrap_or(false),
        cap_add: host.cap_add.unwrap_or_default(),
        cap_drop: host.cap_drop.unwrap_or_default(),
        dns: host.dns.unwrap_or_default(),
        dns_search: host.dns_search.unwrap_or_default(),
        extra_hosts: host.extra_hosts.unwrap_or_default(),
        security_opt: host.security_opt.unwrap_or_default(),
        sysctls: sorted(host.sysctls),
        log_driver: log.typ.unwrap_or_default(),
        log_options: sorted(log.config),
        memory: host.memory.unwrap_or(0),
        nano_cpus: host.nano_cpus.unwrap_or(0),
        shm_size: host.shm_size,
    }
}

fn non_empty<T>(items: &[T]) -> Option<Vec<T>>
where
    T: Clone,
{
    (!items.is_empty()).then(|| items.to_vec())
}

fn hash_map(map: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.clone().into_iter().collect())
}

fn endpoint(attachment: &NetworkAttachment) -> EndpointSettings {
    let ipam =
        (attachment.ipv4_address.is_some() || attachment.ipv6_address.is_some()).then(|| {
            EndpointIpamConfig {
                ipv4_address: attachment.ipv4_address.clone(),
                ipv6_address: attachment.ipv6_address.clone(),
                ..EndpointIpamConfig::default()
            }
        });
    EndpointSettings {
        aliases: non_empty(&attachment.aliases),
        ipam_config: ipam,
        ..EndpointSettings::default()
    }
}

fn create_body(config: &ContainerConfig, image: String) -> ContainerCreateBody {
    let mut binds = Vec::new();
    let mut tmpfs = HashMap::new();
    for mount in &config.mounts {
        match mount.kind {
            MountKind::Volume | MountKind::Bind => binds.push(format!(
                "{}:{}{}",
                mount.source,
                mount.target,
                if mount.read_only { ":ro" } else { "" }
            )),
            MountKind::Tmpfs => {
                tmpfs.insert(mount.target.clone(), mount.options.clone());
            }
        }
    }
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &config.ports {
        port_bindings
            .entry(port.container_port.clone())
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(port.host_ip.clone()).filter(|s| !s.is_empty()),
                host_port: Some(port.host_port.clone()).filter(|s| !s.is_empty()),
            });
    }
    let restart = (!config.restart.policy.is_empty()).then(|| RestartPolicy {
        name: config.restart.policy.parse::<RestartPolicyNameEnum>().ok(),
        maximum_retry_count: Some(config.restart.max_retries),
    });
    let log_config = (!config.log_driver.is_empty()).then(|| HostConfigLogConfig {
        typ: Some(config.log_driver.clone()),
        config: hash_map(&config.log_options),
    });
    let host_config = HostConfig {
        binds: non_empty(&binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        publish_all_ports: Some(config.publish_all_ports),
        restart_policy: restart,
        network_mode: Some(config.network_mode.clone()).filter(|m| !m.is_empty()),
        privileged: Some(config.privileged),
        init: config.init,
        readonly_rootfs: Some(config.readonly_rootfs),
        auto_remove: Some(config.auto_remove),
        cap_add: non_empty(&config.cap_add),
        cap_drop: non_empty(&config.cap_drop),
        dns: non_empty(&config.dns),
        dns_search: non_empty(&config.dns_search),
        extra_hosts: non_empty(&config.extra_hosts),
        security_opt: non_empty(&config.security_opt),
        sysctls: hash_map(&config.sysctls),
        log_config,
        memory: Some(config.memory).filter(|m| *m > 0),
        nano_cpus: Some(config.nano_cpus).filter(|n| *n > 0),
        shm_size: config.shm_size,
        ..HostConfig::default()
    };
    // API 1.41 attaches a new container to one network: the one its
    // network mode names; the others are connected after creation.
    let first = config
        .networks
        .iter()
        .find(|n| n.network == config.network_mode);
    let networking_config = first.map(|attachment| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            attachment.network.clone(),
            endpoint(attachment),
        )])),
    });
    ContainerCreateBody {
        image: Some(image),
        cmd: config.command.clone(),
        entrypoint: config.entrypoint.clone(),
        env: non_empty(&config.env),
        labels: hash_map(&config.labels),
        user: Some(config.user.clone()).filter(|s| !s.is_empty()),
        working_dir: Some(config.working_dir.clone()).filter(|s| !s.is_empty()),
        hostname: config.hostname.clone(),
        domainname: Some(config.domainname.clone()).filter(|s| !s.is_empty()),
        tty: Some(config.tty),
        open_stdin: Some(config.open_stdin),
        stop_signal: config.stop_signal.clone(),
        stop_timeout: config.stop_timeout,
        exposed_ports: non_empty(&config.exposed_ports),
        healthcheck: config.healthcheck.as_ref().map(|h| HealthConfig {
            test: non_empty(&h.test),
            interval: Some(h.interval),
            timeout: Some(h.timeout),
            start_period: Some(h.start_period),
            retries: Some(h.retries),
            ..HealthConfig::default()
        }),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    }
}

impl DockerEngine {
    pub(super) async fn inspect_config(
        &self,
        name: &str,
    ) -> Result<Option<ContainerConfig>, EngineError> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspected) => Ok(Some(config_of(inspected))),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(api("inspecting a container")(error)),
        }
    }

    /// What to create the container from: its image reference when that
    /// still names the image it ran, else that image by id (a tag moved on
    /// since the backup); an error naming both when the engine has neither.
    async fn image_to_run(&self, config: &ContainerConfig) -> Result<String, EngineError> {
        let id_of = |reference: String| async move {
            match self.docker.inspect_image(&reference).await {
                Ok(image) => Ok(image.id),
                Err(error) if is_not_found(&error) => Ok(None),
                Err(error) => Err(api("inspecting an image")(error)),
            }
        };
        let by_reference = id_of(config.image.clone()).await?;
        if config.image_id.is_empty() || by_reference.as_deref() == Some(&config.image_id) {
            if by_reference.is_some() {
                return Ok(config.image.clone());
            }
        } else if id_of(config.image_id.clone()).await?.is_some() {
            return Ok(config.image_id.clone());
        }
        Err(EngineError::ServiceImageMissing {
            image: config.image.clone(),
            id: config.image_id.clone(),
        })
    }

    pub(super) async fn create_from_config(
        &self,
        config: &ContainerConfig,
    ) -> Result<String, EngineError> {
        let image = self.image_to_run(config).await?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&config.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), create_body(config, image))
            .await
            .map_err(api("creating a container"))?;
        for attachment in config
            .networks
            .iter()
            .filter(|n| n.network != config.network_mode && is_user_network(&n.network))
        {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint(attachment)),
            };
            self.docker
                .connect_network(&attachment.network, request)
                .await
                .map_err(api("connecting a container to a network"))?;
        }
        Ok(created.id)
    }

    pub(super) async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => {
                Err(EngineError::ContainerNotFound(name.to_string()))
            }
            Err(error) => Err(api("removing a container")(error)),
        }
    }

    pub(super) async fn inspect_network_config(
        &self,
        name: &str,
    ) -> Result<Option<NetworkConfig>, EngineError> {
        let network = match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(network) => network,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(api("inspecting a network")(error)),
        };
        let ipam = network.ipam.unwrap_or_default();
        Ok(Some(NetworkConfig {
            name: network.name.unwrap_or_default(),
            driver: network.driver.unwrap_or_default(),
            ipam_driver: ipam.driver.unwrap_or_default(),
            subnets: ipam
                .config
                .unwrap_or_default()
                .into_iter()
                .map(|c| Subnet {
                    subnet: c.subnet.unwrap_or_default(),
                    gateway: c.gateway.unwrap_or_default(),
                    ip_range: c.ip_range.unwrap_or_default(),
                })
                .collect(),
            options: sorted(network.options),
            labels: sorted(network.labels),
            internal: network.internal.unwrap_or(false),
            attachable: network.attachable.unwrap_or(false),
            enable_ipv6: network.enable_ipv6.unwrap_or(false),
        }))
    }

    pub(super) async fn create_network_from(
        &self,
        network: &NetworkConfig,
    ) -> Result<(), EngineError> {
        let some = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
        let ipam = Ipam {
            driver: some(&network.ipam_driver),
            config: non_empty(
                &network
                    .subnets
                    .iter()
                    .map(|s| IpamConfig {
                        subnet: some(&s.subnet),
                        gateway: some(&s.gateway),
                        ip_range: some(&s.ip_range),
                        ..IpamConfig::default()
                    })
                    .collect::<Vec<_>>(),
            ),
            options: None,
        };
        let request = NetworkCreateRequest {
            name: network.name.clone(),
            driver: some(&network.driver),
            internal: Some(network.internal),
            attachable: Some(network.attachable),
            enable_ipv6: Some(network.enable_ipv6),
            ipam: Some(ipam),
            options: hash_map(&network.options),
            labels: hash_map(&network.labels),
            ..NetworkCreateRequest::default()
        };
        self.docker
            .create_network(request)
            .await
            .map(|_| ())
            .map_err(api("creating a network"))
    }

    pub(super) async fn exec(
        &self,
        name: &str,
        command: &[String],
    ) -> Result<ExecOutcome, EngineError> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.to_vec()),
            ..ExecConfig::default()
        };
        let created = self
            .docker
            .create_exec(name, config)
            .await
            .map_err(api("running a command in a container"))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(api("running a command in a container"))?;
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached {
            output: mut stream, ..
        } = started
        {
            while let Some(item) = stream.next().await {
                let item = item.map_err(api("reading a command's output"))?;
                if output.len() < OUTPUT_LIMIT {
                    output.push_str(&String::from_utf8_lossy(&item.into_bytes()));
                }
            }
        }
        if output.len() > OUTPUT_LIMIT {
            let mut cut = OUTPUT_LIMIT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        // The output ends a moment before the engine records the exit code.
        for _ in 0..50 {
            let inspected = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(api("reading a command's exit code"))?;
            if inspected.running != Some(true)
                && let Some(exit_code) = inspected.exit_code
            {
                return Ok(ExecOutcome { exit_code, output });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(EngineError::Api {
            context: "running a command in a container".to_string(),
            message: "the command's output ended but it did not exit within 5 s".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_engine_made_up_is_left_out_and_create_gives_back_the_rest() {
        let id = "0123456789abcdef0123456789abcdef";
        let inspected: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": id,
            "Name": "/web",
            "Image": "sha256:feed",
            "Config": {
                "Hostname": "0123456789ab",
                "Image": "shop/web:1",
                "Env": ["A=1", "TOKEN=secret-value"],
                "ExposedPorts": {"80/tcp": {}},
            },
            "HostConfig": {
                "NetworkMode": "shop",
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Tmpfs": {"/scratch": "size=8m"},
            },
            "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": false}],
            "NetworkSettings": {"Networks": {"shop": {
                "Aliases": ["web", "0123456789ab"],
                "IPAddress": "172.18.0.5",
            }}},
        }))
        .unwrap();
        let config = config_of(inspected);
        assert_eq!(config.name, "web");
        assert_eq!(config.hostname, None);
        assert_eq!(config.networks[0].aliases, ["web"]);
        assert_eq!(config.networks[0].ipv4_address, None);
        assert_eq!(config.restart.policy, "on-failure");
        assert_eq!(config.env_names(), ["A", "TOKEN"]);
        assert_eq!(config.mounts.len(), 2);
        let body = create_body(&config, "shop/web:1".into());
        let host = body.host_config.unwrap();
        assert_eq!(host.binds.unwrap(), ["data:/data:ro"]);
        assert_eq!(host.tmpfs.unwrap()["/scratch"], "size=8m");
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::ON_FAILURE)
        );
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["shop"].aliases.as_deref(),
            Some(&["web".to_string()][..])
        );
    }
}
