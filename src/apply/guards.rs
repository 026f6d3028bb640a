//! Guards: the host directories a backup must not copy into themselves and
//! a restore must never empty. Every local repository, the spec directory
//! (with its `.lifeboat` state: the default repository, its passphrase, the
//! quiesce journal), the host's system directories and Docker's data root.
//! A bind or volume overlapping one cannot be backed up or restored (a `!`
//! problem in the plan); a bind already fails `validate`.
//!
//! Paths are compared as the host resolves them: relative repository paths
//! from the spec directory, symlinks followed and `..` removed as far as
//! the path exists (see [`resolve`]). Repositories and the spec are on this
//! host, so they are only compared with directories of a local engine.

use super::workspace::{DEFAULT_STATE_DIR, local_repository_paths};
use crate::engine::{Engine, VolumeInfo};
use crate::spec::{Address, Diagnostic, ResourceKind, Spec};
use std::path::{Component, Path, PathBuf};

/// A directory holding lifeboat's own files.
#[derive(Debug, Clone)]
pub struct Protected {
    /// In words: `repository.main`, `the spec directory`.
    pub what: String,
    /// Resolved.
    pub path: PathBuf,
    /// Whether a directory inside it is refused too. Repositories and the
    /// state directory are lifeboat's alone; the spec directory may hold
    /// the directories it protects beside its files (emptying one of those
    /// removes nothing of the spec).
    pub inside_too: bool,
    /// What to do instead, given the overlapping directory as shown.
    remedy: fn(&str) -> String,
}

/// The directories of `spec` that no bind or volume may overlap.
pub fn protected_directories(spec: &Spec) -> Vec<Protected> {
    let mut protected: Vec<Protected> = local_repository_paths(spec)
        .into_iter()
        .map(|(name, path)| Protected {
            what: if spec.repositories.is_empty() {
                "the default repository".to_string()
            } else {
                format!("repository.{name}")
            },
            path: resolve(&path),
            inside_too: true,
            remedy: if spec.repositories.is_empty() {
                |dir| format!("declare a `repository` block whose `path` is outside {dir}")
            } else {
                |dir| format!("give the repository a `path` outside {dir}")
            },
        })
        .collect();
    protected.push(Protected {
        what: "lifeboat's state directory".to_string(),
        path: resolve(&spec.dir.join(DEFAULT_STATE_DIR)),
        inside_too: true,
        remedy: |dir| format!("keep the spec files outside {dir}"),
    });
    protected.push(Protected {
        what: "the spec directory".to_string(),
        path: resolve(&spec.dir),
        inside_too: false,
        remedy: |dir| format!("keep the spec files outside {dir}"),
    });
    protected
}

/// `path` made absolute (from the working directory) with symlinks
/// followed and `.`/`..` removed, as far as it exists; the rest is
/// appended as written, with `..` applied to what precedes it.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let components: Vec<Component> = absolute.components().collect();
    for keep in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..keep].iter().collect();
        if let Ok(mut resolved) = prefix.canonicalize() {
            for part in &components[keep..] {
                match part {
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => resolved.push(name),
                    _ => {}
                }
            }
            return resolved;
        }
    }
    absolute
}

/// Why the host directory `dir` (resolved), the content of a bind or
/// volume shown as `shown`, must not be backed up or restored: it is a
/// system directory, overlaps one of `protected`, or lies in or holds
/// Docker's data root. `None` when it may.
pub fn problem(
    spec: &Spec,
    dir: &Path,
    shown: &str,
    protected: &[Protected],
    data_root: Option<&Path>,
) -> Option<String> {
    let show = |path: &Path| spec.redact(&path.display().to_string());
    let dir_text = dir.display().to_string();
    if crate::spec::is_system_directory(&dir_text) {
        return Some(format!(
            "{shown} is the system directory {}: backing it up copies the host, and `restore \
             --replace` would empty it. Name the directory of what you protect, e.g. /etc/nginx",
            show(dir)
        ));
    }
    for guarded in protected {
        let path = show(&guarded.path);
        if guarded.path.starts_with(dir) {
            return Some(format!(
                "{shown} holds {} ({path}): a backup would copy it into itself, and `restore \
                 --replace` would empty it first. {}, or protect a narrower directory",
                guarded.what,
                capitalized(&(guarded.remedy)(&show(dir)))
            ));
        }
        if guarded.inside_too && dir.starts_with(&guarded.path) {
            return Some(format!(
                "{shown} lies inside {} ({path}), which holds lifeboat's own files: a restore \
                 would overwrite them. Protect a directory outside {path}",
                guarded.what
            ));
        }
    }
    let root = data_root?;
    let root_shown = show(root);
    if root.starts_with(dir) {
        return Some(format!(
            "{shown} holds Docker's data root ({root_shown}): Docker owns what is there, and \
             `restore --replace` would empty it under the running engine. Name a narrower \
             directory; protect volumes with `volume` blocks and images with `image` blocks"
        ));
    }
    let inside = dir.strip_prefix(root).ok()?;
    let mut parts = inside.components().map(|c| c.as_os_str().to_string_lossy());
    let volume = match (parts.next().as_deref(), parts.next()) {
        (Some("volumes"), Some(name)) => Some(name.into_owned()),
        _ => None,
    };
    Some(match volume {
        Some(name) => format!(
            "{shown} lies inside Docker volume {name:?} (in Docker's data root {root_shown}): \
             protect the volume with a `volume` block instead (name = {name:?}), which reads \
             and restores it the way Docker expects"
        ),
        None => format!(
            "{shown} lies inside Docker's data root ({root_shown}), which Docker owns: protect \
             volumes with `volume` blocks and images with `image` blocks instead"
        ),
    })
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why a bind of `path` on `engine` must not be backed up or restored.
/// Repositories and the spec are compared only on a local engine; the
/// data root, on any (it is on the same host as the bind).
pub(crate) async fn bind_problem(spec: &Spec, engine: &dyn Engine, path: &Path) -> Option<String> {
    let shown = spec.redact(&path.display().to_string());
    let (dir, protected) = if engine.is_local() {
        (resolve(path), protected_directories(spec))
    } else {
        (path.to_path_buf(), Vec::new())
    };
    let data_root = engine.ping().await.ok().and_then(|info| info.data_root);
    problem(spec, &dir, &shown, &protected, data_root.as_deref())
}

/// Why a volume whose content is a directory of this host (its
/// mountpoint, or the directory a bind-backed volume names) must not be
/// backed up or restored. Only a local engine's volumes are compared:
/// another host's directories cannot hold this host's repositories.
pub(crate) fn volume_problem(
    spec: &Spec,
    engine: &dyn Engine,
    info: &VolumeInfo,
) -> Option<String> {
    if !engine.is_local() {
        return None;
    }
    let dir = info.content_path()?;
    let shown = format!(
        "Docker volume {} (its directory {})",
        spec.redact(&info.name),
        spec.redact(&dir.display().to_string())
    );
    problem(
        spec,
        &resolve(&dir),
        &shown,
        &protected_directories(spec),
        None,
    )
}

/// `validate`'s check of binds against the repositories and the spec
/// directory, located at each bind. Binds of an engine on another host are
/// left to `plan`, which asks that engine.
pub fn bind_diagnostics(spec: &Spec) -> Vec<Diagnostic> {
    let protected = protected_directories(spec);
    spec.binds
        .iter()
        .filter(|bind| engine_is_local(spec, bind.engine.as_deref()))
        .filter_map(|bind| {
            let address = Address::new(ResourceKind::Bind, bind.name.clone());
            let shown = spec.redact(&bind.path.display().to_string());
            let message = problem(spec, &resolve(&bind.path), &shown, &protected, None)?;
            Some(
                Diagnostic::error(
                    "bind_overlaps_lifeboat",
                    format!("{address}: {message}"),
                    Some(bind.span.clone()),
                )
                .with_help(
                    "a bind must neither hold nor lie inside a repository or lifeboat's state \
                     directory, nor hold the spec directory",
                ),
            )
        })
        .collect()
}

/// Whether the engine a resource names runs on this host, as far as the
/// spec and `DOCKER_HOST` tell (a `unix://` socket, or the default one).
fn engine_is_local(spec: &Spec, engine: Option<&str>) -> bool {
    let declared = spec
        .engines
        .iter()
        .find(|e| e.name == crate::spec::engine_or_default(engine))
        .and_then(|e| e.host.clone());
    let host = declared.or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()));
    host.is_none_or(|h| h.starts_with("unix://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec read from `dir` with one repository at `repository` (or the
    /// default one when `None`).
    fn spec_in(dir: &Path, repository: Option<&Path>) -> Spec {
        Spec {
            dir: dir.to_path_buf(),
            repositories: repository
                .map(|path| crate::spec::RepositorySpec {
                    name: "main".into(),
                    location: crate::spec::RepositoryLocation::Local {
                        path: path.to_path_buf(),
                    },
                    encryption: crate::spec::Encryption::None,
                    span: Default::default(),
                })
                .into_iter()
                .collect(),
            ..Spec::default()
        }
    }

    fn check(spec: &Spec, dir: &Path) -> Option<String> {
        let protected = protected_directories(spec);
        problem(spec, &resolve(dir), "bind.x", &protected, None)
    }

    #[test]
    fn a_directory_holding_or_inside_a_repository_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("project");
        std::fs::create_dir_all(project.join("data")).unwrap();
        let spec_dir = root.path().join("spec");
        std::fs::create_dir(&spec_dir).unwrap();
        // Relative to the spec directory, through `..`, not created yet.
        let spec = spec_in(&spec_dir, Some(Path::new("../project/backups/repo")));

        let holds = check(&spec, &project).unwrap();
        assert!(holds.contains("holds repository.main"), "{holds}");
        assert!(holds.contains("project/backups/repo"), "{holds}");
        let inside = check(&spec, &project.join("backups/repo/snapshots")).unwrap();
        assert!(inside.contains("lies inside repository.main"), "{inside}");
        assert_eq!(check(&spec, &project.join("data")), None);
        assert_eq!(check(&spec, &root.path().join("elsewhere")), None);

        // Through a symlink: the same directory by another name.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&project, &link).unwrap();
        assert!(check(&spec, &link).is_some());
    }

    #[test]
    fn the_spec_directory_and_the_default_repository_count() {
        let root = tempfile::tempdir().unwrap();
        let spec_dir = root.path().join("proj");
        std::fs::create_dir_all(spec_dir.join("nginx")).unwrap();
        let spec = spec_in(&spec_dir, None);
        let holds = check(&spec, root.path()).unwrap();
        assert!(holds.contains("the default repository"), "{holds}");
        assert!(holds.contains("Declare a `repository` block"), "{holds}");
        let same = check(&spec, &spec_dir).unwrap();
        assert!(same.contains("holds the default repository"), "{same}");
        // Beside the spec files is fine; inside its state directory is not.
        assert_eq!(check(&spec, &spec_dir.join("nginx")), None);
        let state = check(&spec, &spec_dir.join(".lifeboat")).unwrap();
        assert!(state.contains("holds"), "{state}");
        let declared = spec_in(&spec_dir, Some(&root.path().join("repo")));
        let spec_only = check(&declared, root.path()).unwrap();
        assert!(spec_only.contains("holds repository.main"), "{spec_only}");
        let around_spec = check(&declared, &spec_dir).unwrap();
        assert!(
            around_spec.contains("lifeboat's state directory"),
            "{around_spec}"
        );
    }

    #[test]
    fn docker_data_root_and_system_directories_are_refused() {
        let spec = Spec::default();
        let root = Path::new("/var/lib/docker");
        let volume = problem(
            &spec,
            Path::new("/var/lib/docker/volumes/shop_db/_data"),
            "bind.db",
            &[],
            Some(root),
        )
        .unwrap();
        assert!(
            volume.contains("`volume` block") && volume.contains("\"shop_db\""),
            "{volume}"
        );
        let overlay = problem(
            &spec,
            Path::new("/var/lib/docker/overlay2"),
            "bind.x",
            &[],
            Some(root),
        )
        .unwrap();
        assert!(overlay.contains("inside Docker's data root"), "{overlay}");
        let holds = problem(
            &spec,
            Path::new("/data"),
            "bind.x",
            &[],
            Some(Path::new("/data/docker")),
        )
        .unwrap();
        assert!(holds.contains("holds Docker's data root"), "{holds}");
        let system = problem(&spec, Path::new("/etc"), "bind.x", &[], Some(root)).unwrap();
        assert!(system.contains("system directory"), "{system}");
        assert_eq!(
            problem(
                &spec,
                Path::new("/srv/shop/nginx"),
                "bind.x",
                &[],
                Some(root)
            ),
            None
        );
    }

    #[test]
    fn resolving_follows_what_exists_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().canonicalize().unwrap();
        assert_eq!(
            resolve(&root.path().join("a/b/../c")),
            real.join("a/c"),
            "missing parts are applied lexically"
        );
        std::fs::create_dir(root.path().join("d")).unwrap();
        assert_eq!(resolve(&root.path().join("d/../d/./e")), real.join("d/e"));
    }
}
