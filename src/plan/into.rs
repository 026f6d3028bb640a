//! Restores into other names (`restore --into`, `--into-suffix`): which
//! new name each restored resource is written under, checked against the
//! spec before anything is observed.
//!
//! A restore into other names never writes a live object: every resource
//! it writes gets a name of its own (a new volume, directory, container or
//! image tag), and a renamed service joins an isolated network instead of
//! its own, publishing no host ports. This module owns the mapping and its
//! rules; it does no I/O. Observing the mapped targets and writing them is
//! `apply`'s (each kind's handler reads [`RestoreInto`] from its change).

use crate::spec::{Address, Resource, ResourceKind, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the command line asked for: explicit names, a suffix for the rest,
/// and the network renamed services join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntoRequest {
    /// `--into ADDRESS=NAME` (or `--into NAME` with one `--target`).
    pub names: Vec<(Address, String)>,
    /// `--into-suffix SUFFIX`: every restored volume, directory and service
    /// not named explicitly gets its live name plus this.
    pub suffix: Option<String>,
    /// `--network NAME` (default: `lifeboat` plus the suffix, or plus the
    /// first renamed service's new name).
    pub network: Option<String>,
}

/// The resolved mapping a restore plan is made with: the new name of each
/// mapped resource and the network renamed services join. The default
/// (no network) is a restore into the names of the spec; a mapping asked
/// for that renames nothing (a suffix on a spec of images) still writes
/// nothing live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreMapping {
    pub names: BTreeMap<Address, String>,
    /// The network renamed services are attached to (created `internal`
    /// when missing); empty when no mapping was asked for.
    pub network: String,
    /// A drill's suffix when each dump loads into a scratch server of its
    /// own (`<service's container>-<dump><suffix>`, on empty scratch
    /// volumes) instead of its service's restored container: a drill
    /// proves the dump loads, which the restored volume beside it cannot.
    pub dump_servers: Option<String>,
}

/// Where one restored resource is written instead of its live name: what
/// its change in the plan carries, and the only thing its handler reads
/// about the mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreInto {
    /// The new Docker volume, host directory, container or image reference;
    /// for a dump, the container its restore command runs in. For an image
    /// restored under a mapping without a name of its own: empty (loaded
    /// by id, its live tags left alone).
    pub name: String,
    /// For a service: the network it is attached to instead of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// For a service: the live volume names and host directories its
    /// mounts may use, and the mapped ones they get instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<String, String>,
}

/// Why a requested mapping cannot be used; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IntoError(pub String);

/// Names Docker accepts for volumes, containers and networks.
fn is_docker_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An image reference as `docker tag` takes it (`repo/name:tag`), loosely:
/// lower-case repository, no spaces, no digest (a digest is not a tag).
fn is_image_reference(reference: &str) -> bool {
    let repository = match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => {
            if tag.is_empty()
                || !tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return false;
            }
            repository
        }
        _ => reference,
    };
    !repository.is_empty()
        && !reference.contains('@')
        && repository
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-:".contains(c))
}

/// The live name a resource is written under without a mapping: the
/// volume's, the directory, the container; `None` for dumps (written
/// into their service's container) and kinds a restore does not write.
fn live_name(spec: &Spec, address: &Address) -> Option<String> {
    match spec.resource(address)? {
        Resource::Volume(volume) => Some(volume.volume_name.clone()),
        Resource::Bind(bind) => Some(bind.path.display().to_string()),
        Resource::Service(service) => Some(service.container.clone()),
        Resource::Image(image) => Some(image.reference.clone()),
        Resource::Dump(_) => None,
    }
}

/// Checks `name` is one a resource of `address`'s kind can be written under.
fn check_name(address: &Address, name: &str) -> Result<(), IntoError> {
    let fits = match address.kind {
        ResourceKind::Bind => {
            std::path::Path::new(name).is_absolute()
                && !name.split('/').any(|part| part == "..")
                && name != "/"
        }
        ResourceKind::Image => is_image_reference(name),
        ResourceKind::Volume
        | ResourceKind::Service
        | ResourceKind::Dump
        | ResourceKind::Policy
        | ResourceKind::Repository => is_docker_name(name),
    };
    if fits {
        return Ok(());
    }
    let expected = match address.kind {
        ResourceKind::Bind => "an absolute host directory (no `..`, not `/`)",
        ResourceKind::Image => "an image reference such as `shop/api:drill`",
        ResourceKind::Volume => "a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
        ResourceKind::Service
        | ResourceKind::Dump
        | ResourceKind::Policy
        | ResourceKind::Repository => "a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
    };
    Err(IntoError(format!(
        "--into {address}={name:?}: the new name must be {expected}"
    )))
}

/// The kinds whose objects share one namespace on an engine.
fn namespace(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Volume => "volume",
        ResourceKind::Bind => "directory",
        ResourceKind::Image => "image",
        // A dump's name is the container it loads into: it may be a
        // renamed service's, by design.
        ResourceKind::Dump => "dump",
        ResourceKind::Service | ResourceKind::Policy | ResourceKind::Repository => "container",
    }
}

impl RestoreMapping {
    /// Whether this is a restore into the names of the spec.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
    }

    /// Resolves `request` for a restore of `order` (the resources the
    /// restore plans, in order): explicit names as given, the suffix
    /// applied to every other volume, directory and service, and the
    /// network (by default `lifeboat` plus the suffix, or plus the first
    /// renamed service's new name). Refuses what would write a live object or two objects of
    /// one name, and names that are not names.
    pub fn resolve(
        spec: &Spec,
        order: &[Address],
        request: &IntoRequest,
    ) -> Result<RestoreMapping, IntoError> {
        if request.names.is_empty() && request.suffix.is_none() {
            return match &request.network {
                Some(_) => Err(IntoError(
                    "--network only applies to a restore into other names: add --into or \
                     --into-suffix"
                        .into(),
                )),
                None => Ok(RestoreMapping::default()),
            };
        }
        let mut names = BTreeMap::new();
        for (address, name) in &request.names {
            if !matches!(
                address.kind,
                ResourceKind::Volume
                    | ResourceKind::Bind
                    | ResourceKind::Service
                    | ResourceKind::Dump
                    | ResourceKind::Image
            ) {
                return Err(IntoError(format!(
                    "--into {address}={name}: a restore writes volumes, binds, services, dumps \
                     and images; {address} has nothing to write under another name"
                )));
            }
            if !order.contains(address) {
                return Err(IntoError(format!(
                    "--into {address}={name}: {address} is not among the resources this restore \
                     writes; add --target {address}"
                )));
            }
            check_name(address, name)?;
            if names.insert(address.clone(), name.clone()).is_some() {
                return Err(IntoError(format!(
                    "--into names {address} twice: give it one new name"
                )));
            }
        }
        if let Some(suffix) = &request.suffix {
            if suffix.is_empty()
                || !suffix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(IntoError(format!(
                    "--into-suffix {suffix:?}: a suffix is letters, digits, `_`, `.` or `-`, such \
                     as `_clone`"
                )));
            }
            for address in order {
                let renamed = matches!(
                    address.kind,
                    ResourceKind::Volume | ResourceKind::Bind | ResourceKind::Service
                );
                if !renamed || names.contains_key(address) {
                    continue;
                }
                if let Some(live) = live_name(spec, address) {
                    let name = format!("{live}{suffix}");
                    check_name(address, &name)?;
                    names.insert(address.clone(), name);
                }
            }
        }
        let mut taken: BTreeMap<(&str, &str), &Address> = BTreeMap::new();
        for (address, name) in &names {
            let space = namespace(address.kind);
            if let Some(other) = taken.insert((space, name.as_str()), address) {
                return Err(IntoError(format!(
                    "{other} and {address} would both be restored into the {space} {name}: give \
                     each its own name"
                )));
            }
            // A dump's scratch server must not be a live service's container.
            let live_space = match address.kind {
                ResourceKind::Dump => "container",
                _ => space,
            };
            let live = spec.addresses().into_iter().find(|live| {
                namespace(live.kind) == live_space
                    && live_name(spec, live).as_deref() == Some(name.as_str())
            });
            if let Some(live) = live {
                return Err(IntoError(format!(
                    "--into {address}={name}: {name} is the live {live_space} of {live}; a restore \
                     into other names never writes a live object (use --replace to restore \
                     into the live names)"
                )));
            }
        }
        let network = match (&request.network, &request.suffix) {
            (Some(network), _) => network.clone(),
            (None, Some(suffix)) => format!("lifeboat{suffix}"),
            (None, None) => format!(
                "lifeboat_{}",
                names
                    .iter()
                    .find(|(address, _)| address.kind == ResourceKind::Service)
                    .map_or("restore", |(_, name)| name.as_str())
            ),
        };
        if !is_docker_name(&network) {
            return Err(IntoError(format!(
                "--network {network:?}: a network name is letters, digits, `_`, `.` or `-`"
            )));
        }
        Ok(RestoreMapping {
            names,
            network,
            dump_servers: None,
        })
    }

    /// Where the restore writes `address` instead of its live name, as its
    /// change carries it; `None` for a resource the mapping leaves alone.
    /// A dump not named explicitly goes into its service's new container,
    /// or in a drill into its own scratch server on the mapping's network.
    pub fn into_of(&self, spec: &Spec, address: &Address) -> Option<RestoreInto> {
        if self.is_empty() {
            return None;
        }
        let name = match (self.names.get(address), spec.resource(address)) {
            (Some(name), _) => name.clone(),
            (None, Some(Resource::Dump(dump))) if let Some(suffix) = &self.dump_servers => {
                let service = spec.services.iter().find(|s| s.name == dump.service)?;
                return Some(RestoreInto {
                    name: format!("{}-{}{suffix}", service.container, dump.name),
                    network: Some(self.network.clone()),
                    mounts: BTreeMap::new(),
                });
            }
            (None, Some(Resource::Dump(dump))) => self
                .names
                .get(&Address::new(ResourceKind::Service, dump.service.clone()))?
                .clone(),
            // Loaded by id without moving live tags.
            (None, Some(Resource::Image(_))) => String::new(),
            // Not named: left alone.
            (None, Some(Resource::Volume(_) | Resource::Bind(_) | Resource::Service(_)) | None) => {
                return None;
            }
        };
        let mut into = RestoreInto {
            name,
            ..RestoreInto::default()
        };
        if address.kind == ResourceKind::Service {
            into.network = Some(self.network.clone());
            for (mapped, name) in &self.names {
                if matches!(mapped.kind, ResourceKind::Volume | ResourceKind::Bind)
                    && spec.engine_name(mapped) == spec.engine_name(address)
                    && let Some(live) = live_name(spec, mapped)
                {
                    into.mounts.insert(live, name.clone());
                }
            }
        }
        Some(into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{BindSpec, DumpSpec, ServiceSpec, VolumeSpec};

    fn spec() -> Spec {
        Spec {
            volumes: vec![VolumeSpec::new("data", "shop_data")],
            binds: vec![BindSpec::new("conf", "/srv/shop/conf")],
            services: vec![
                ServiceSpec::new("db", "shop-db-1"),
                ServiceSpec::new("api", "shop-api-1"),
            ],
            dumps: vec![DumpSpec::new("sql", "db", &["pg_dumpall"], &["psql"])],
            ..Spec::default()
        }
    }

    fn at(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    fn resolve(names: &[(&str, &str)], suffix: Option<&str>) -> Result<RestoreMapping, IntoError> {
        let spec = spec();
        let request = IntoRequest {
            names: names.iter().map(|(a, n)| (at(a), n.to_string())).collect(),
            suffix: suffix.map(str::to_string),
            network: None,
        };
        RestoreMapping::resolve(&spec, &spec.addresses(), &request)
    }

    fn error(names: &[(&str, &str)], suffix: Option<&str>) -> String {
        resolve(names, suffix).unwrap_err().0
    }

    #[test]
    fn a_suffix_renames_every_volume_directory_and_service_and_dumps_follow_their_service() {
        let spec = spec();
        let mapping = resolve(&[("service.api", "api_drill")], Some("_clone")).unwrap();
        assert_eq!(mapping.network, "lifeboat_clone");
        let names: Vec<(String, &str)> = mapping
            .names
            .iter()
            .map(|(a, n)| (a.to_string(), n.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("volume.data".to_string(), "shop_data_clone"),
                ("bind.conf".to_string(), "/srv/shop/conf_clone"),
                ("service.api".to_string(), "api_drill"),
                ("service.db".to_string(), "shop-db-1_clone"),
            ]
        );
        let dump = mapping.into_of(&spec, &at("dump.sql")).unwrap();
        assert_eq!(dump.name, "shop-db-1_clone");
        let db = mapping.into_of(&spec, &at("service.db")).unwrap();
        assert_eq!(db.network.as_deref(), Some("lifeboat_clone"));
        assert_eq!(db.mounts["shop_data"], "shop_data_clone");
        assert_eq!(db.mounts["/srv/shop/conf"], "/srv/shop/conf_clone");
        // Without a mapping, nothing has a new name.
        assert_eq!(
            RestoreMapping::default().into_of(&spec, &at("volume.data")),
            None
        );
    }

    #[test]
    fn names_that_would_write_live_objects_or_collide_are_refused() {
        assert!(
            error(&[("volume.data", "shop_data")], None).contains("live volume of volume.data")
        );
        assert!(
            error(&[("service.api", "shop-db-1")], None).contains("live container of service.db")
        );
        assert!(
            error(&[("dump.sql", "shop-db-1")], None).contains("live container of service.db"),
            "a dump's scratch server is not a live one"
        );
        assert!(
            error(&[("service.api", "x"), ("service.db", "x")], None)
                .contains("would both be restored into the container x")
        );
        assert!(error(&[("volume.data", "a b")], None).contains("Docker volume name"));
        assert!(error(&[("bind.conf", "relative/dir")], None).contains("absolute"));
        assert!(error(&[("image.app", "x")], None).contains("not among the resources"));
        assert!(error(&[], Some("/x")).contains("--into-suffix"));
        let policy = IntoRequest {
            names: vec![(Address::new(ResourceKind::Policy, "p"), "x".into())],
            ..IntoRequest::default()
        };
        let order = [Address::new(ResourceKind::Policy, "p")];
        assert!(
            RestoreMapping::resolve(&spec(), &order, &policy)
                .unwrap_err()
                .0
                .contains("nothing to write under another name")
        );
        let spec = spec();
        let network_only = IntoRequest {
            network: Some("drill".into()),
            ..IntoRequest::default()
        };
        assert!(
            RestoreMapping::resolve(&spec, &spec.addresses(), &network_only)
                .unwrap_err()
                .0
                .contains("--network only applies")
        );
    }
}
