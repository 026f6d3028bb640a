//! Where each repository of the spec lives relative to this host: on it
//! (a local path on the filesystem of Docker's data root, an S3 endpoint on
//! loopback) or off it. What the 3-2-1 warnings (`plan::copies_warnings`)
//! are computed from. Reads file metadata only; writes nothing.

use super::Engines;
use super::workspace::local_repository_paths;
use crate::spec::{RepositoryLocation, Spec};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where Docker keeps its data when the engine does not say.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";

/// The default engine's data root (`DockerRootDir`), when it is reachable
/// and says; else [`DEFAULT_DATA_ROOT`].
pub async fn docker_data_root(engines: &Engines) -> PathBuf {
    let engine = engines.get(crate::spec::DEFAULT_ENGINE).ok();
    let said = match engine {
        Some(engine) => engine.ping().await.ok().and_then(|info| info.data_root),
        None => None,
    };
    said.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
}

/// Repository name → whether it is on this host: a local path whose
/// filesystem (its nearest existing directory's) is `data_root`'s, or an
/// endpoint on loopback.
pub fn repositories_on_host(spec: &Spec, data_root: &Path) -> BTreeMap<String, bool> {
    let root_device = device(data_root);
    let mut on_host: BTreeMap<String, bool> = local_repository_paths(spec)
        .into_iter()
        .map(|(name, path)| {
            // Unknown devices count as on the host: the warning errs on the safe side.
            let same = match (device(&path), root_device) {
                (Some(here), Some(root)) => here == root,
                _ => true,
            };
            (name, same)
        })
        .collect();
    for repository in &spec.repositories {
        match &repository.location {
            RepositoryLocation::Local { .. } => {}
            RepositoryLocation::S3 { endpoint, .. } => {
                on_host.insert(
                    repository.name.clone(),
                    is_loopback(endpoint_host(endpoint)),
                );
            }
            RepositoryLocation::Sftp { host, .. } => {
                on_host.insert(repository.name.clone(), is_loopback(host));
            }
        }
    }
    on_host
}

/// The device of `path`'s nearest existing ancestor (a repository not
/// created yet lands on that filesystem).
fn device(path: &Path) -> Option<u64> {
    path.ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok())
        .map(|metadata| metadata.dev())
}

/// The host of an endpoint URL (`http://127.0.0.1:3900/` → `127.0.0.1`,
/// `https://[::1]:9000` → `::1`).
fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

/// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_on_loopback_are_on_the_host() {
        for (endpoint, on_host) in [
            ("http://127.0.0.1:3900", true),
            ("http://127.3.2.1:3900/bucket", true),
            ("https://[::1]:9000", true),
            ("http://LOCALHOST", true),
            ("https://user@localhost:9000/x", true),
            ("https://s3.eu-west-1.amazonaws.com", false),
            ("http://10.0.0.5:3900", false),
            ("https://[2001:db8::1]:443", false),
        ] {
            assert_eq!(is_loopback(endpoint_host(endpoint)), on_host, "{endpoint}");
        }
    }

    #[test]
    fn a_path_on_the_data_roots_filesystem_is_on_the_host_another_filesystem_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let local = |name: &str, path: PathBuf| crate::spec::RepositorySpec {
            name: name.into(),
            location: RepositoryLocation::Local { path },
            encryption: crate::spec::Encryption::None,
            span: Default::default(),
        };
        let shm = format!("/dev/shm/lifeboat-not-created-{}", std::process::id());
        let spec = Spec {
            repositories: vec![
                local("here", dir.path().join("not/yet")),
                local("shm", shm.into()),
            ],
            ..Spec::default()
        };
        let on_host = repositories_on_host(&spec, dir.path());
        assert!(on_host["here"]);
        // /dev/shm is a tmpfs of its own wherever tests run.
        assert_eq!(
            on_host["shm"],
            device(Path::new("/dev/shm")) == device(dir.path())
        );
    }
}
