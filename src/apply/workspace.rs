//! The repositories a spec writes to, opened (or found absent) with their
//! passphrases read from the environment. Also the default local repository
//! used when the spec declares none (the way Terraform keeps local state).

use super::ApplyError;
use crate::plan::MountSign;
use crate::repo::backend::local::LocalBackend;
use crate::repo::backend::s3::{Patience, S3Backend, S3Settings};
use crate::repo::backend::sftp::{SftpBackend, SftpTarget};
use crate::repo::{Backend, RepoError, RepoOptions, Repository};
use crate::spec::{CredentialSource, Encryption, RepositoryLocation, RepositorySpec, Spec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Name of the repository lifeboat uses when the spec declares none.
pub const DEFAULT_REPOSITORY: &str = "default";
/// Where, relative to the spec directory, the default repository and its
/// generated passphrase live.
pub const DEFAULT_STATE_DIR: &str = ".lifeboat";
/// Environment variable read for the default repository's passphrase.
pub const DEFAULT_PASSPHRASE_ENV: &str = "LIFEBOAT_PASSPHRASE";

/// How to open repositories: lock behaviour and the running command (lock holder info).
#[derive(Debug, Clone)]
pub struct OpenSettings {
    pub lock_timeout: Duration,
    pub command: String,
    /// Direct-mode file-metadata cache; `None` reads every file.
    pub cache_dir: Option<PathBuf>,
}

impl OpenSettings {
    /// `$LIFEBOAT_CACHE_DIR`, else `$XDG_CACHE_HOME/lifeboat`, else
    /// `~/.cache/lifeboat` (where restic users expect caches).
    pub fn default_cache_dir() -> Option<PathBuf> {
        let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        from_env("LIFEBOAT_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| from_env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("lifeboat")))
            .or_else(|| from_env("HOME").map(|d| PathBuf::from(d).join(".cache/lifeboat")))
    }
}

/// A repository of the spec: where it is and, once opened, the handle.
pub struct NamedRepository {
    pub name: String,
    pub location: String,
    /// `None` while the repository does not exist yet (plan before the first apply).
    pub repository: Option<Repository>,
    backend: Arc<dyn crate::repo::Backend>,
    passphrase: Secret,
    /// The default repository's passphrase is generated on first use, never by `plan`.
    generate_passphrase_at: Option<PathBuf>,
    /// Where this run generated that passphrase, once it did.
    generated: Option<PathBuf>,
    /// Its directory, for a repository on this host's filesystem.
    local_path: Option<PathBuf>,
    /// Recorded resource → the address it is now (the spec's `moved`
    /// blocks): snapshots are read under their current address.
    pub(crate) moved: std::collections::BTreeMap<String, String>,
    /// Why it could not be reached when opened (its storage failed, not
    /// its configuration): the changes that need it fail, the others go on.
    pub unreachable: Option<crate::failure::Failure>,
}

impl NamedRepository {
    /// The open repository, creating it first when it does not exist yet.
    pub fn open_or_init(&mut self, settings: &OpenSettings) -> Result<&Repository, ApplyError> {
        if self.repository.is_none() && self.unreachable.is_some() {
            // Unseen when opened: reached now, it is opened if it exists,
            // and only created when it is seen not to.
            let backend = self.backend.clone();
            if let Some(found) = Repository::find(backend.as_ref()).map_err(|e| self.error(e))? {
                let opened = Repository::open_found(
                    backend,
                    found,
                    self.passphrase.get(),
                    repo_options(settings),
                )
                .map_err(|e| self.error(e))?;
                self.repository = Some(opened);
            }
            self.unreachable = None;
        }
        if self.repository.is_none() {
            if let Some(file) = self.generate_passphrase_at.take() {
                self.passphrase = Secret(Some(generated_passphrase(&file)?));
                self.generated = Some(file);
            }
            let backend = self.backend.clone();
            let opened =
                Repository::init_and_open(backend, self.passphrase.get(), repo_options(settings))
                    .map_err(|e| self.error(e))?;
            self.repository = Some(opened);
        }
        Ok(self.repository.as_ref().expect("opened above"))
    }

    /// The file holding the passphrase this run generated for the default
    /// repository (the user must be told, and keep a copy elsewhere).
    pub fn generated_passphrase(&self) -> Option<&Path> {
        self.generated.as_deref()
    }

    /// A repository on any backend, opened when it exists (tests and
    /// embedders; the CLI goes through [`open_repositories`]).
    pub fn on_backend(
        name: &str,
        backend: Arc<dyn crate::repo::Backend>,
        passphrase: Option<String>,
        settings: &OpenSettings,
    ) -> Result<NamedRepository, ApplyError> {
        let mut named = NamedRepository {
            name: name.to_string(),
            location: backend.location(),
            repository: None,
            backend,
            passphrase: Secret(passphrase),
            generate_passphrase_at: None,
            generated: None,
            local_path: None,
            moved: Default::default(),
            unreachable: None,
        };
        if let Some(found) = Repository::find(named.backend.as_ref()).map_err(|e| named.error(e))? {
            let opened = Repository::open_found(
                named.backend.clone(),
                found,
                named.passphrase.get(),
                repo_options(settings),
            )
            .map_err(|e| named.error(e))?;
            named.repository = Some(opened);
        }
        Ok(named)
    }

    /// For a repository that does not exist yet and lives on this host:
    /// the directory that looks like a mount point left unmounted, if
    /// any (see [`looks_unmounted`]).
    pub fn looks_unmounted(&self) -> Option<(PathBuf, MountSign)> {
        let path = self.local_path.as_deref()?;
        if self.repository.is_some() {
            return None;
        }
        let nearest = path.ancestors().find(|a| a.exists())?;
        let empty = std::fs::read_dir(nearest).is_ok_and(|mut entries| entries.next().is_none());
        let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
        looks_unmounted(
            path,
            nearest,
            empty,
            &read("/etc/fstab"),
            &read("/proc/mounts"),
        )
    }

    pub(crate) fn error(&self, source: RepoError) -> ApplyError {
        ApplyError::Repository {
            name: self.name.clone(),
            location: self.location.clone(),
            source: Box::new(source),
        }
    }
}

/// Whether a repository about to be created at `path` would land on the
/// filesystem below a disk that is not mounted. Kept simple on purpose,
/// two signs only:
///
/// * `nearest` (the nearest existing ancestor of `path`, or `path`) is an
///   empty directory directly under `/mnt` or `/media`, where disks are
///   mounted by hand or by the desktop;
/// * `path` or one of its ancestors (other than `/`) is a mount point of
///   `fstab` that `mounts` (`/proc/mounts`) does not list.
///
/// Returns that directory and the sign; `None` when neither holds.
pub fn looks_unmounted(
    path: &Path,
    nearest: &Path,
    nearest_is_empty: bool,
    fstab: &str,
    mounts: &str,
) -> Option<(PathBuf, MountSign)> {
    let under_mount_root = nearest
        .parent()
        .is_some_and(|parent| parent == Path::new("/mnt") || parent == Path::new("/media"));
    if nearest_is_empty && under_mount_root {
        return Some((nearest.to_path_buf(), MountSign::EmptyUnderMountRoot));
    }
    let mounted: Vec<PathBuf> = mount_points(mounts).collect();
    mount_points(fstab)
        .filter(|point| point != Path::new("/") && path.starts_with(point))
        .find(|point| !mounted.contains(point))
        .map(|point| (point, MountSign::FstabNotMounted))
}

/// The mount points (second field) of an fstab or `/proc/mounts` text,
/// with the octal escapes both use for spaces and tabs decoded.
fn mount_points(table: &str) -> impl Iterator<Item = PathBuf> + '_ {
    table
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| point.starts_with('/'))
        .map(|point| {
            PathBuf::from(
                point
                    .replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\134", "\\"),
            )
        })
}

/// A secret read from the environment; never shown by Debug.
#[derive(Clone)]
pub struct Secret(Option<String>);

impl Secret {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn repo_options(settings: &OpenSettings) -> RepoOptions {
    RepoOptions {
        lock_timeout: settings.lock_timeout,
        command: settings.command.clone(),
        cache_dir: settings.cache_dir.clone(),
    }
}

/// The repositories the spec declares, or the default one, each opened when it
/// already exists. Nothing is created here: `plan` must not write. One
/// that cannot be reached is an error (see [`open_repositories_reaching`]).
pub fn open_repositories(
    spec: &Spec,
    settings: &OpenSettings,
) -> Result<Vec<NamedRepository>, ApplyError> {
    let repositories = open_repositories_reaching(spec, settings)?;
    match repositories.iter().find_map(|r| r.unreachable.clone()) {
        Some(failure) => Err(ApplyError::Failed(failure)),
        None => Ok(repositories),
    }
}

/// [`open_repositories`] for the runs that go on without a repository
/// they cannot reach (backups and restores: the changes that need it
/// fail, the others do not): it is kept, marked
/// [`NamedRepository::unreachable`].
pub fn open_repositories_reaching(
    spec: &Spec,
    settings: &OpenSettings,
) -> Result<Vec<NamedRepository>, ApplyError> {
    declared_repositories(spec)
        .iter()
        .map(|declared| open_one(spec, declared, settings))
        .collect()
}

/// Each repository the spec declares (or the default one), by name, opened
/// when it exists, or why it cannot be (unreachable included): for readers
/// such as `status`, where one repository out of reach must not hide what
/// the others hold.
pub fn open_each_repository(
    spec: &Spec,
    settings: &OpenSettings,
) -> Vec<(String, Result<NamedRepository, ApplyError>)> {
    declared_repositories(spec)
        .iter()
        .map(|declared| {
            let opened = open_one(spec, declared, settings).and_then(|named| {
                match named.unreachable.clone() {
                    Some(failure) => Err(ApplyError::Failed(failure)),
                    None => Ok(named),
                }
            });
            (declared.name.clone(), opened)
        })
        .collect()
}

/// The repositories the spec declares, or the default one when none is.
fn declared_repositories(spec: &Spec) -> Vec<RepositorySpec> {
    if spec.repositories.is_empty() {
        vec![default_repository_spec()]
    } else {
        spec.repositories.clone()
    }
}

/// Names of the repositories a spec writes to, in order (the default one when none is declared).
pub fn repository_names(spec: &Spec) -> Vec<String> {
    if spec.repositories.is_empty() {
        vec![DEFAULT_REPOSITORY.to_string()]
    } else {
        spec.repositories.iter().map(|r| r.name.clone()).collect()
    }
}

/// The spec directory's state directory (`.lifeboat`), as messages show
/// it: `.lifeboat`, not `./.lifeboat`, for the current directory.
pub fn state_dir(dir: &Path) -> PathBuf {
    absolute(dir, Path::new(DEFAULT_STATE_DIR))
}

/// The name and directory of each repository the spec stores to on this
/// host (the default one when none is declared), relative paths taken from
/// the spec directory as [`open_repositories`] does.
pub fn local_repository_paths(spec: &Spec) -> Vec<(String, PathBuf)> {
    let default;
    let declared = if spec.repositories.is_empty() {
        default = [default_repository_spec()];
        &default[..]
    } else {
        &spec.repositories[..]
    };
    declared
        .iter()
        .filter_map(|repository| match &repository.location {
            RepositoryLocation::Local { path } => {
                Some((repository.name.clone(), absolute(&spec.dir, path)))
            }
            RepositoryLocation::S3 { .. } | RepositoryLocation::Sftp { .. } => None,
        })
        .collect()
}

/// The repository a spec without `repository` blocks stores to: in the
/// state directory, a path relative to the spec directory as a declared
/// `path` would be (taken from it once, by [`absolute`]).
fn default_repository_spec() -> RepositorySpec {
    RepositorySpec {
        name: DEFAULT_REPOSITORY.to_string(),
        location: RepositoryLocation::Local {
            path: Path::new(DEFAULT_STATE_DIR).join("repository"),
        },
        encryption: Encryption::Passphrase {
            passphrase_env: DEFAULT_PASSPHRASE_ENV.to_string(),
        },
        span: Default::default(),
    }
}

/// The storage of repository `name` of the spec (the default one when
/// none is declared) and its location, without opening it: for commands
/// that must reach a repository no passphrase opens (`key add
/// --master-key`).
pub fn repository_backend(
    spec: &Spec,
    name: &str,
) -> Result<(String, Arc<dyn crate::repo::Backend>), ApplyError> {
    let declared = if spec.repositories.is_empty() {
        vec![default_repository_spec()]
    } else {
        spec.repositories.clone()
    };
    let declared = declared.iter().find(|r| r.name == name).ok_or_else(|| {
        ApplyError::ResourceMissing(format!(
            "the spec declares no repository {name:?} (declared: {})",
            repository_names(spec).join(", ")
        ))
    })?;
    let storage = storage(spec, declared)?;
    Ok((storage.location, storage.backend))
}

/// Where a declared repository's files are.
struct Storage {
    backend: Arc<dyn crate::repo::Backend>,
    /// As messages show it (never a credential).
    location: String,
    /// Its directory, for a repository on this host's filesystem.
    local_path: Option<PathBuf>,
}

/// The storage of a declared repository, by where the spec puts it.
/// Nothing is read or written yet.
fn storage(spec: &Spec, declared: &RepositorySpec) -> Result<Storage, ApplyError> {
    match &declared.location {
        RepositoryLocation::Local { path } => {
            let path = absolute(&spec.dir, path);
            Ok(Storage {
                backend: Arc::new(LocalBackend::new(&path)),
                location: path.display().to_string(),
                local_path: Some(path),
            })
        }
        RepositoryLocation::Sftp {
            host,
            port,
            user,
            path,
            identity,
            known_hosts,
        } => sftp_storage(
            &declared.name,
            SftpTarget {
                host: host.clone(),
                port: *port,
                user: user.clone(),
                path: path.clone(),
                identity: identity.as_deref().map(|p| absolute(&spec.dir, p)),
                known_hosts: known_hosts.as_deref().map(|p| absolute(&spec.dir, p)),
            },
        ),
        RepositoryLocation::S3 {
            endpoint,
            bucket,
            region,
            prefix,
            access_key,
            secret_key,
        } => {
            let credential = |source: &CredentialSource, what: &str| {
                read_credential(spec, declared, source, what)
            };
            let settings = S3Settings {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: region.clone(),
                prefix: prefix.clone(),
                access_key: credential(access_key, "access key")?,
                secret_key: credential(secret_key, "secret key")?,
                credentials_from: format!("{access_key} and {secret_key}"),
            };
            let backend =
                S3Backend::new(settings, Patience::default()).map_err(|source| ApplyError::Io {
                    context: format!("repository.{} ({})", declared.name, declared.span),
                    source,
                })?;
            Ok(Storage {
                location: backend.location(),
                backend: Arc::new(backend),
                local_path: None,
            })
        }
    }
}

/// A credential of an S3 repository, from the variable or file the spec
/// names; a missing one is an error naming the place, never a value.
fn read_credential(
    spec: &Spec,
    declared: &RepositorySpec,
    source: &CredentialSource,
    what: &str,
) -> Result<String, ApplyError> {
    let missing = |problem: String| ApplyError::MissingCredential {
        repository: declared.name.clone(),
        problem,
        at: declared.span.to_string(),
    };
    match source {
        CredentialSource::Env(name) => std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                missing(format!(
                    "the {what} variable {name} is not set; export it before running lifeboat"
                ))
            }),
        CredentialSource::File(path) => {
            let path = absolute(&spec.dir, path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                missing(format!(
                    "cannot read the {what} file {}: {e}",
                    path.display()
                ))
            })?;
            let value = text.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                return Err(missing(format!(
                    "the {what} file {} is empty",
                    path.display()
                )));
            }
            Ok(value.to_string())
        }
    }
}

fn open_one(
    spec: &Spec,
    declared: &RepositorySpec,
    settings: &OpenSettings,
) -> Result<NamedRepository, ApplyError> {
    let Storage {
        backend,
        location,
        local_path,
    } = storage(spec, declared)?;
    let (passphrase, generate_passphrase_at) =
        passphrase_for(spec, declared, local_path.as_deref())?;
    let dyn_backend = backend.clone();
    let error = |source| ApplyError::Repository {
        name: declared.name.clone(),
        location: location.clone(),
        source: Box::new(source),
    };
    let mut unreachable = None;
    let found = match Repository::find(dyn_backend.as_ref()) {
        Ok(found) => found,
        Err(source) if cannot_reach(&source) => {
            unreachable = Some(error(source).failure());
            None
        }
        Err(source) => return Err(error(source)),
    };
    let repository = if let Some(found) = found {
        if generate_passphrase_at.is_some() {
            return Err(ApplyError::MissingPassphrase {
                repository: declared.name.clone(),
                env: DEFAULT_PASSPHRASE_ENV.to_string(),
                at: format!("the passphrase file beside {location} is gone"),
            });
        }
        match Repository::open_found(dyn_backend, found, passphrase.get(), repo_options(settings)) {
            Ok(opened) => Some(opened),
            Err(source) if cannot_reach(&source) => {
                unreachable = Some(error(source).failure());
                None
            }
            Err(source) => return Err(error(source)),
        }
    } else {
        None
    };
    Ok(NamedRepository {
        name: declared.name.clone(),
        location,
        repository,
        backend,
        passphrase,
        generate_passphrase_at,
        generated: None,
        local_path,
        moved: spec
            .moved
            .iter()
            .map(|m| {
                let from = m.from.to_string();
                let to = spec.current_address(&from);
                (from, to)
            })
            .collect(),
        unreachable,
    })
}

/// An SFTP repository (its key and known_hosts files taken from the spec
/// directory when relative, as local paths are): nothing connects yet.
fn sftp_storage(name: &str, target: SftpTarget) -> Result<Storage, ApplyError> {
    let location = target.location();
    let backend = SftpBackend::new(target).map_err(|source| ApplyError::Io {
        context: format!("preparing the ssh connection of repository.{name}"),
        source,
    })?;
    Ok(Storage {
        backend: Arc::new(backend),
        location,
        local_path: None,
    })
}

/// Whether opening a repository failed because its storage could not be
/// reached (an I/O failure: a path that cannot be a directory, a disk or
/// server gone), rather than because of what it holds or how it is
/// configured (a wrong passphrase, a foreign directory), which stay errors
/// of the whole run.
fn cannot_reach(error: &RepoError) -> bool {
    matches!(error, RepoError::Io { .. })
        && matches!(
            error.class(),
            crate::failure::FailureClass::RepositoryUnavailable
                | crate::failure::FailureClass::Transient
        )
}

/// `path` taken from the spec directory `dir` when relative, without the
/// `.` components messages would show (`.lifeboat/passphrase`, not
/// `././.lifeboat/passphrase`).
fn absolute(dir: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    };
    let clean: PathBuf = joined
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    if clean.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        clean
    }
}

/// Reads the passphrase from the environment variable the spec names. The
/// default repository falls back to a passphrase generated on first use and
/// kept beside it (returned as the file to generate), so a first try needs no setup.
fn passphrase_for(
    spec: &Spec,
    declared: &RepositorySpec,
    local_path: Option<&Path>,
) -> Result<(Secret, Option<PathBuf>), ApplyError> {
    let env_name = match &declared.encryption {
        Encryption::None => return Ok((Secret(None), None)),
        Encryption::Passphrase { passphrase_env } => passphrase_env,
    };
    let from_env = std::env::var(env_name).ok().filter(|v| !v.is_empty());
    if let Some(repository_path) =
        local_path.filter(|_| declared.name == DEFAULT_REPOSITORY && spec.repositories.is_empty())
    {
        let file = repository_path.with_file_name("passphrase");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let stored = text.trim_end().to_string();
            if from_env.as_ref().is_some_and(|env| *env != stored) {
                return Err(ApplyError::PassphraseConflict {
                    file: file.display().to_string(),
                    env: env_name.clone(),
                });
            }
            return Ok((Secret(Some(stored)), None));
        }
        return Ok(match from_env {
            Some(value) => (Secret(Some(value)), None),
            None => (Secret(None), Some(file)),
        });
    }
    match from_env {
        Some(value) => Ok((Secret(Some(value)), None)),
        _ => Err(ApplyError::MissingPassphrase {
            repository: declared.name.clone(),
            env: env_name.clone(),
            at: declared.span.to_string(),
        }),
    }
}

fn generated_passphrase(file: &Path) -> Result<String, ApplyError> {
    use rand::RngExt;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes: [u8; 32] = rand::rng().random();
    let passphrase = hex::encode(bytes);
    let io_error = |source| ApplyError::Io {
        context: format!(
            "writing the default repository's passphrase to {}",
            file.display()
        ),
        source,
    };
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io_error)?;
    out.write_all(passphrase.as_bytes())
        .and_then(|_| out.sync_all())
        .map_err(io_error)?;
    Ok(passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FSTAB: &str = "# <file system> <mount point> <type> <options>\n\
        UUID=1 / ext4 defaults 0 1\n\
        UUID=2 /srv/backup\\040disk ext4 noauto 0 2\n\
        tmpfs /tmp tmpfs defaults 0 0\n";
    const MOUNTS: &str = "/dev/sda1 / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";

    fn sign(path: &str, nearest: &str, empty: bool) -> Option<(PathBuf, MountSign)> {
        looks_unmounted(Path::new(path), Path::new(nearest), empty, FSTAB, MOUNTS)
    }

    #[test]
    fn an_empty_directory_under_mnt_or_an_unmounted_fstab_entry_looks_unmounted() {
        assert_eq!(
            sign("/mnt/usb/lifeboat", "/mnt/usb", true),
            Some(("/mnt/usb".into(), MountSign::EmptyUnderMountRoot))
        );
        assert_eq!(
            sign("/media/nas", "/media/nas", true),
            Some(("/media/nas".into(), MountSign::EmptyUnderMountRoot))
        );
        assert_eq!(
            sign("/srv/backup disk/lifeboat", "/srv", false),
            Some(("/srv/backup disk".into(), MountSign::FstabNotMounted))
        );
        // Something is there, or mounted, or it is not a mount root.
        assert_eq!(sign("/mnt/usb/lifeboat", "/mnt/usb", false), None);
        assert_eq!(sign("/tmp/x/repo", "/tmp", true), None);
        assert_eq!(sign("/var/backups/lifeboat", "/var/backups", true), None);
        assert_eq!(sign("/mnt/usb", "/mnt", true), None);
    }

    #[test]
    fn the_default_repository_is_in_the_spec_directory_shown_without_dots() {
        let in_dir = |dir: &str| {
            let spec = Spec {
                dir: PathBuf::from(dir),
                ..Spec::default()
            };
            local_repository_paths(&spec)[0].1.display().to_string()
        };
        assert_eq!(in_dir("."), ".lifeboat/repository");
        assert_eq!(in_dir("./"), ".lifeboat/repository");
        // A relative --chdir is taken once, not twice (ws/ws/.lifeboat).
        assert_eq!(in_dir("ws"), "ws/.lifeboat/repository");
        assert_eq!(in_dir("./ws/./"), "ws/.lifeboat/repository");
        assert_eq!(in_dir("/srv/shop"), "/srv/shop/.lifeboat/repository");
        assert_eq!(state_dir(Path::new("./")), Path::new(".lifeboat"));
    }
}
