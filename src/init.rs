//! init: a first spec from what runs on an engine (`lifeboat init`).
//!
//! It owns turning an engine's inventory (containers, what they mount, the
//! images they run) into spec text: services, their named volumes and bind
//! mounts, their images, a dump for each recognised database, `depends_on`
//! from compose labels, and a comment wherever the choice is the user's. It
//! reads nothing itself and writes nothing: the caller lists the containers
//! and decides where the text goes.

use crate::engine::{ContainerSummary, ImageInfo, MountSource};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Which containers the spec describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every container on the engine.
    Engine,
    /// The containers of one compose project (label `com.docker.compose.project`).
    Compose(String),
}

/// A generated spec and what it declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    pub services: usize,
    pub images: usize,
    pub volumes: usize,
    pub binds: usize,
    pub dumps: usize,
    /// Mounts left out, and why (shown as comments in the text too).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InitError {
    #[error("the engine has no containers: there is nothing to describe yet")]
    NoContainers,
    #[error(
        "no container belongs to compose project {0:?} (label com.docker.compose.project); \
         projects on this engine: {1}"
    )]
    NoSuchProject(String, String),
}

const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";
const COMPOSE_DEPENDS_ON: &str = "com.docker.compose.depends_on";

/// Host paths a container mounts for its own plumbing, never data to keep.
const PLUMBING: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/hosts",
    "/etc/resolv.conf",
];
const PLUMBING_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// How a recognised database is dumped and loaded back (commands run in
/// its container; credentials come from the container's own environment).
/// Each restore stops at the first error and exits non-zero, so a failed
/// load fails the restore instead of leaving half a database behind a
/// success.
struct DumpRecipe {
    command: &'static [&'static str],
    restore: Option<&'static [&'static str]>,
    /// Why the restore command looks as it does, written above it.
    why: Option<&'static str>,
}

fn dump_recipe(image: &str) -> Option<DumpRecipe> {
    let name = image_name(image);
    Some(match name.as_str() {
        "postgres" | "postgis" | "timescaledb" => DumpRecipe {
            command: &["pg_dumpall", "-U", "postgres"],
            restore: Some(&[
                "sh",
                "-c",
                "sed '/^CREATE ROLE postgres;$/d' | exec psql -v ON_ERROR_STOP=1 -U postgres -d postgres",
            ]),
            why: Some(
                "psql stops at the first error (ON_ERROR_STOP); the server's own superuser \
                 exists already, so its CREATE ROLE is left out of the load",
            ),
        },
        "mysql" | "mariadb" | "percona" => DumpRecipe {
            command: &[
                "sh",
                "-c",
                "exec mysqldump --all-databases --single-transaction -uroot -p\"${MYSQL_ROOT_PASSWORD:-$MARIADB_ROOT_PASSWORD}\"",
            ],
            restore: Some(&[
                "sh",
                "-c",
                "exec mysql -uroot -p\"${MYSQL_ROOT_PASSWORD:-$MARIADB_ROOT_PASSWORD}\"",
            ]),
            why: Some("mysql stops at the first error (never add --force)"),
        },
        "mongo" | "mongodb" => DumpRecipe {
            command: &["mongodump", "--archive"],
            restore: Some(&["mongorestore", "--archive", "--drop", "--stopOnError"]),
            why: Some("mongorestore stops at the first error (--stopOnError)"),
        },
        "redis" | "valkey" => DumpRecipe {
            command: &["redis-cli", "--rdb", "-"],
            restore: None,
            why: None,
        },
        _ => return None,
    })
}

/// `registry:5000/org/app:1.2@sha256:…` → `app`.
fn image_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last).to_string()
}

/// An HCL identifier from anything: lowercase letters, digits, `_`, `-`,
/// starting with a letter or `_`.
fn identifier(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// Unique labels per kind: the first `db` is `db`, the next `db_2`.
#[derive(Default)]
struct Labels(BTreeSet<String>);

impl Labels {
    fn take(&mut self, wanted: &str) -> String {
        let base = identifier(wanted);
        let mut label = base.clone();
        let mut n = 2;
        while !self.0.insert(label.clone()) {
            label = format!("{base}_{n}");
            n += 1;
        }
        label
    }
}

/// An HCL string literal.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    // `${` and `%{` start templates in HCL strings: escape them by doubling.
    out.replace("${", "$${").replace("%{", "%%{") + "\""
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn strings(items: &[&str]) -> String {
    list(&items.iter().map(|s| quoted(s)).collect::<Vec<_>>())
}

struct Service<'a> {
    label: String,
    container: &'a ContainerSummary,
    image: Option<String>,
    volumes: Vec<String>,
    binds: Vec<String>,
    depends_on: Vec<String>,
}

/// The spec for the containers in `scope`, as text (not yet in canonical
/// layout: the caller formats it).
/// The engine's image `reference` names (an id, or a tag; `name` alone
/// means `name:latest`).
fn find_image<'a>(reference: &str, known: &'a [ImageInfo]) -> Option<&'a ImageInfo> {
    let tagged = match reference.rsplit('/').next() {
        Some(last) if !last.contains(':') && !last.contains('@') => format!("{reference}:latest"),
        _ => reference.to_string(),
    };
    known.iter().find(|image| {
        image.id == reference
            || image
                .repo_tags
                .iter()
                .any(|t| *t == reference || *t == tagged)
    })
}

/// The image `image` is built `FROM`: the tagged image whose layers are the
/// longest strict prefix of its own (untagged intermediates cannot be named
/// in a spec).
fn base_of<'a>(image: &ImageInfo, known: &'a [ImageInfo]) -> Option<&'a ImageInfo> {
    known
        .iter()
        .filter(|candidate| {
            candidate.id != image.id
                && !candidate.repo_tags.is_empty()
                && !candidate.layers.is_empty()
                && candidate.layers.len() < image.layers.len()
                && image.layers.starts_with(&candidate.layers)
        })
        .max_by_key(|candidate| candidate.layers.len())
}

/// `images` is what the engine holds, with layers: the services' images
/// get their bases from it (and bases no container runs join the spec, so
/// a restore brings them back first).
pub fn generate(
    containers: &[ContainerSummary],
    known_images: &[ImageInfo],
    scope: &Scope,
) -> Result<Generated, InitError> {
    let chosen: Vec<&ContainerSummary> = containers
        .iter()
        .filter(|c| match scope {
            Scope::Engine => true,
            Scope::Compose(project) => c.labels.get(COMPOSE_PROJECT) == Some(project),
        })
        .collect();
    if chosen.is_empty() {
        return Err(match scope {
            Scope::Engine => InitError::NoContainers,
            Scope::Compose(project) => {
                let projects: BTreeSet<&str> = containers
                    .iter()
                    .filter_map(|c| c.labels.get(COMPOSE_PROJECT).map(String::as_str))
                    .collect();
                let known = if projects.is_empty() {
                    "none".to_string()
                } else {
                    projects.into_iter().collect::<Vec<_>>().join(", ")
                };
                InitError::NoSuchProject(project.clone(), known)
            }
        });
    }
    let project = match scope {
        Scope::Compose(project) => Some(project.as_str()),
        Scope::Engine => None,
    };

    let mut generated = Generated::default();
    let (mut service_labels, mut image_labels, mut volume_labels, mut bind_labels) = (
        Labels::default(),
        Labels::default(),
        Labels::default(),
        Labels::default(),
    );
    // Docker name / path / ref → label, in first-seen order.
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut volumes: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut binds: BTreeMap<std::path::PathBuf, (String, Vec<String>)> = BTreeMap::new();
    let mut services = Vec::new();
    let mut by_compose_name: BTreeMap<&str, String> = BTreeMap::new();

    for container in &chosen {
        let compose_name = container.labels.get(COMPOSE_SERVICE);
        let label = service_labels.take(compose_name.unwrap_or(&container.name));
        if let Some(name) = compose_name {
            by_compose_name.insert(name, label.clone());
        }
        let image = (!container.image.is_empty()).then(|| {
            images
                .entry(container.image.clone())
                .or_insert_with(|| image_labels.take(&image_name(&container.image)))
                .clone()
        });
        let mut service = Service {
            label: label.clone(),
            container,
            image,
            volumes: Vec::new(),
            binds: Vec::new(),
            depends_on: Vec::new(),
        };
        for (source, destination) in &container.mounts {
            match source {
                MountSource::Volume(name) => {
                    let short = project
                        .and_then(|p| name.strip_prefix(&format!("{p}_")))
                        .unwrap_or(name);
                    let entry = volumes
                        .entry(name.clone())
                        .or_insert_with(|| (volume_labels.take(short), Vec::new()));
                    entry.1.push(label.clone());
                    service.volumes.push(entry.0.clone());
                }
                MountSource::Bind(path) => {
                    let text = path.display().to_string();
                    if PLUMBING.contains(&text.as_str())
                        || PLUMBING_TREES
                            .iter()
                            .any(|t| text == *t || text.starts_with(&format!("{t}/")))
                    {
                        generated.skipped.push(format!(
                            "{} mounts {text} at {destination}: the host's own plumbing, not data",
                            container.name
                        ));
                        continue;
                    }
                    if crate::spec::is_system_directory(&text) {
                        generated.skipped.push(format!(
                            "{} mounts {text} at {destination}: a system directory, which a bind \
                             may not protect; add a bind of the directory of its data yourself",
                            container.name
                        ));
                        continue;
                    }
                    let entry = binds.entry(path.clone()).or_insert_with(|| {
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "root".into());
                        (bind_labels.take(&name), Vec::new())
                    });
                    entry.1.push(label.clone());
                    service.binds.push(entry.0.clone());
                }
                MountSource::Other => {}
            }
        }
        services.push(service);
    }
    // Bases, and their bases, by the engine's layers.
    let mut bases: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<String> = images.keys().cloned().collect();
    while let Some(reference) = pending.pop() {
        let Some(base) =
            find_image(&reference, known_images).and_then(|image| base_of(image, known_images))
        else {
            continue;
        };
        let present = images
            .iter()
            .find(|(r, _)| find_image(r, known_images).is_some_and(|i| i.id == base.id))
            .map(|(_, label)| label.clone());
        let label = match present {
            Some(label) => label,
            None => {
                let base_ref = base.repo_tags[0].clone();
                let label = image_labels.take(&image_name(&base_ref));
                images.insert(base_ref.clone(), label.clone());
                pending.push(base_ref);
                label
            }
        };
        bases.insert(reference, label);
    }

    // Compose writes `db:service_started:false,cache:service_healthy:true`.
    for service in &mut services {
        if let Some(depends) = service.container.labels.get(COMPOSE_DEPENDS_ON) {
            for name in depends.split(',').filter_map(|d| d.split(':').next()) {
                if let Some(label) = by_compose_name.get(name.trim()) {
                    service.depends_on.push(format!("service.{label}"));
                }
            }
        }
    }

    let mut text = String::new();
    let what = match scope {
        Scope::Engine => "every container on the engine".to_string(),
        Scope::Compose(p) => format!("compose project {p}"),
    };
    let _ = writeln!(
        text,
        "# A first spec written by `lifeboat init` from what runs now ({what}).\n\
         # Review the lines marked `your choice`, then `lifeboat plan`.\n"
    );
    text.push_str(
        "# Where copies live. Your choice: a disk that survives this host, or an\n\
         # `s3` block for a copy off it.\n\
         repository \"local\" {\n  path = \"/var/backups/lifeboat\"\n  \
         encryption { passphrase_env = \"LIFEBOAT_PASSPHRASE\" }\n}\n\n",
    );
    text.push_str(
        "policy \"default\" {\n  rpo = \"24h\" # your choice: how much recent data you may lose\n  \
         rto = \"1h\" # your choice: how long a restore may take\n  retention {\n    \
         keep_daily  = 7\n    keep_weekly = 4\n  }\n}\n",
    );
    for (reference, label) in &images {
        let base = bases
            .get(reference)
            .map(|base| format!("  base = image.{base}\n"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "\nimage {} {{\n  ref = {}\n{base}}}",
            quoted(label),
            quoted(reference)
        );
    }
    generated.images = images.len();

    let databases: BTreeSet<&str> = services
        .iter()
        .filter(|s| dump_recipe(&s.container.image).is_some())
        .map(|s| s.label.as_str())
        .collect();
    let quiesce_line = |users: &[String]| -> String {
        match users {
            [only] if databases.contains(only.as_str()) => format!(
                "  service     = service.{only}\n  consistency = \"stop\" # your choice: a database's \
                 files are consistent only while it is stopped (\"pause\" is shorter; the dump \
                 below needs neither)\n"
            ),
            [only] => format!(
                "  service     = service.{only}\n  consistency = \"none\" # your choice: \"stop\" or \
                 \"pause\" service.{only} during the copy when it writes here\n"
            ),
            _ => format!(
                "  # used by {}: name one as `service` to quiesce it (your choice)\n",
                users
                    .iter()
                    .map(|u| format!("service.{u}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    for (name, (label, users)) in &volumes {
        let _ = write!(
            text,
            "\nvolume {} {{\n  name   = {}\n  policy = policy.default\n{}}}\n",
            quoted(label),
            quoted(name),
            quiesce_line(users)
        );
    }
    generated.volumes = volumes.len();
    for (path, (label, users)) in &binds {
        let _ = write!(
            text,
            "\nbind {} {{\n  path   = {}\n  policy = policy.default\n{}}}\n",
            quoted(label),
            quoted(&path.display().to_string()),
            quiesce_line(users)
        );
    }
    generated.binds = binds.len();
    for service in &services {
        let _ = write!(
            text,
            "\nservice {} {{\n  container = {}\n",
            quoted(&service.label),
            quoted(&service.container.name)
        );
        if let Some(image) = &service.image {
            let _ = writeln!(text, "  image = image.{image}");
        }
        let refs = |kind: &str, labels: &[String]| {
            list(
                &labels
                    .iter()
                    .map(|l| format!("{kind}.{l}"))
                    .collect::<Vec<_>>(),
            )
        };
        if !service.volumes.is_empty() {
            let _ = writeln!(text, "  volumes = {}", refs("volume", &service.volumes));
        }
        if !service.binds.is_empty() {
            let _ = writeln!(text, "  binds = {}", refs("bind", &service.binds));
        }
        if !service.depends_on.is_empty() {
            let _ = writeln!(text, "  depends_on = {}", list(&service.depends_on));
        }
        if !service.container.running {
            text.push_str("  # not running when this spec was written\n");
        }
        text.push_str("}\n");
    }
    generated.services = services.len();
    for service in &services {
        let Some(recipe) = dump_recipe(&service.container.image) else {
            continue;
        };
        let _ = write!(
            text,
            "\n# Recognised from the image name ({}): check the commands (your choice).\n\
             dump {} {{\n  service = service.{}\n  command = {}\n",
            service.container.image,
            quoted(&service.label),
            service.label,
            strings(recipe.command)
        );
        if let Some(why) = recipe.why {
            let _ = writeln!(text, "  # {why}");
        }
        match recipe.restore {
            Some(restore) => {
                let _ = writeln!(text, "  restore_command = {}", strings(restore));
            }
            None => {
                text.push_str("  # no restore_command: this dump is a file to put back by hand\n")
            }
        }
        text.push_str("  policy = policy.default\n}\n");
        generated.dumps += 1;
    }
    if !generated.skipped.is_empty() {
        text.push_str("\n# Left out:\n");
        for skipped in &generated.skipped {
            let _ = writeln!(text, "# - {skipped}");
        }
    }
    generated.text = text;
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, image: &str, mounts: Vec<(MountSource, &str)>) -> ContainerSummary {
        ContainerSummary {
            name: name.into(),
            image: image.into(),
            image_id: format!("sha256:{name}"),
            running: true,
            labels: BTreeMap::new(),
            mounts: mounts
                .into_iter()
                .map(|(s, d)| (s, d.to_string()))
                .collect(),
        }
    }

    fn compose(
        mut c: ContainerSummary,
        project: &str,
        service: &str,
        depends: &str,
    ) -> ContainerSummary {
        c.labels.insert(COMPOSE_PROJECT.into(), project.into());
        c.labels.insert(COMPOSE_SERVICE.into(), service.into());
        if !depends.is_empty() {
            c.labels.insert(COMPOSE_DEPENDS_ON.into(), depends.into());
        }
        c
    }

    fn stack() -> Vec<ContainerSummary> {
        vec![
            compose(
                container(
                    "shop-db-1",
                    "postgres:16",
                    vec![(
                        MountSource::Volume("shop_pgdata".into()),
                        "/var/lib/postgresql/data",
                    )],
                ),
                "shop",
                "db",
                "",
            ),
            compose(
                container(
                    "shop-web-1",
                    "registry.local:5000/shop/web:1.2",
                    vec![
                        (MountSource::Bind("/srv/shop/nginx".into()), "/etc/nginx"),
                        (
                            MountSource::Bind("/var/run/docker.sock".into()),
                            "/var/run/docker.sock",
                        ),
                        (MountSource::Other, "/tmp"),
                    ],
                ),
                "shop",
                "web",
                "db:service_started:false",
            ),
            container("other", "busybox", vec![]),
        ]
    }

    #[test]
    fn a_compose_project_becomes_services_volumes_binds_images_and_dumps() {
        let layers = |n: usize| {
            (0..n)
                .map(|i| format!("sha256:{i:064}"))
                .collect::<Vec<_>>()
        };
        let image = |id: &str, tag: &str, n: usize| ImageInfo {
            id: id.into(),
            repo_tags: vec![tag.into()],
            layers: layers(n),
            os: "linux".into(),
            architecture: "amd64".into(),
            size: 0,
        };
        let known = [
            image("sha256:web", "registry.local:5000/shop/web:1.2", 5),
            image("sha256:base", "shop/base:1", 3),
            image("sha256:debian", "debian:bookworm", 1),
        ];
        let generated = generate(&stack(), &known, &Scope::Compose("shop".into())).unwrap();
        let text = &generated.text;
        assert_eq!(
            (
                generated.services,
                generated.images,
                generated.volumes,
                generated.binds,
                generated.dumps
            ),
            (2, 4, 1, 1, 1),
            "{text}"
        );
        assert!(
            text.contains("volume \"pgdata\" {\n  name   = \"shop_pgdata\""),
            "{text}"
        );
        assert!(text.contains("consistency = \"stop\""), "{text}");
        assert!(text.contains("depends_on = [service.db]"), "{text}");
        assert!(
            text.contains("ref = \"registry.local:5000/shop/web:1.2\""),
            "{text}"
        );
        assert!(text.contains("command = [\"pg_dumpall\""), "{text}");
        // The load stops at the first error instead of reporting success.
        assert!(
            text.contains("exec psql -v ON_ERROR_STOP=1 -U postgres -d postgres\"]"),
            "{text}"
        );
        // The web image's base (not run by any container) joins the spec,
        // with its own base.
        assert!(
            text.contains("ref = \"registry.local:5000/shop/web:1.2\"\n  base = image.base"),
            "{text}"
        );
        assert!(
            text.contains("ref = \"shop/base:1\"\n  base = image.debian"),
            "{text}"
        );
        assert!(
            text.contains("/var/run/docker.sock at /var/run/docker.sock: the host's own plumbing"),
            "{text}"
        );
        assert!(!text.contains("\"other\""), "{text}");
        // It is a valid spec.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.hcl"),
            crate::spec::fmt::canonical(text),
        )
        .unwrap();
        crate::spec::load_dir(dir.path(), &Default::default()).unwrap();
    }

    #[test]
    fn unknown_projects_and_empty_engines_say_what_there_is() {
        assert_eq!(
            generate(&stack(), &[], &Scope::Compose("blog".into())),
            Err(InitError::NoSuchProject("blog".into(), "shop".into()))
        );
        assert_eq!(
            generate(&[], &[], &Scope::Engine),
            Err(InitError::NoContainers)
        );
    }

    #[test]
    fn every_generated_restore_command_stops_at_the_first_error() {
        let restore = |image: &str| dump_recipe(image).unwrap().restore.map(|r| r.join(" "));
        let postgres = restore("postgres:16").unwrap();
        assert!(postgres.contains("psql -v ON_ERROR_STOP=1"), "{postgres}");
        // The one statement of a pg_dumpall that fails on every server.
        assert!(
            postgres.contains("/^CREATE ROLE postgres;$/d"),
            "{postgres}"
        );
        let mariadb = restore("mariadb:11").unwrap();
        assert!(mariadb.contains("exec mysql ") && !mariadb.contains("--force"));
        assert!(restore("mongo:7").unwrap().contains("--stopOnError"));
        assert_eq!(restore("redis:7"), None, "no restore is generated");
    }

    #[test]
    fn names_become_identifiers_and_stay_unique() {
        let mut labels = Labels::default();
        assert_eq!(labels.take("My App"), "my_app");
        assert_eq!(labels.take("my_app"), "my_app_2");
        assert_eq!(labels.take("9lives"), "_9lives");
        assert_eq!(quoted("a${b}\"c"), "\"a$${b}\\\"c\"");
        assert_eq!(image_name("reg:5000/org/app:1@sha256:00"), "app");
    }
}
