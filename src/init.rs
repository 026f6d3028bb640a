//! init: a first spec from what runs on an engine (`lifeboat init`).
//!
//! It owns turning an engine's inventory (containers, what they mount and
//! run, the images they run) into spec text: services, their named volumes
//! and bind mounts, their images, a dump for each database recognised by
//! what its container is ([`detect`]), `depends_on` from compose labels or
//! else the project's compose files ([`compose`]), the generated policy on
//! every resource, a comment wherever the choice is the user's, and what was
//! left out or could not be known. [`survey`] reads all that (I/O);
//! [`generate`] is pure and writes nothing: the caller decides where the
//! text goes.

pub mod compose;
pub mod detect;
pub mod survey;

use crate::engine::{ContainerSummary, ImageInfo, MountSource};
use detect::{Recognised, image_name, recipe, recognise};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
pub use survey::{Observed, survey};

/// Which containers the spec describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every container on the engine.
    Engine,
    /// The containers of one compose project (label `com.docker.compose.project`).
    Compose(String),
}

impl Scope {
    pub fn includes(&self, container: &ContainerSummary) -> bool {
        match self {
            Scope::Engine => true,
            Scope::Compose(project) => container.labels.get(COMPOSE_PROJECT) == Some(project),
        }
    }
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
    /// What was left out, and why (shown as comments in the text too).
    pub skipped: Vec<String>,
    /// What could not be known (a compose file that cannot be read, a
    /// service not in it), likewise in the text.
    pub unknown: Vec<String>,
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

fn strings(items: &[String]) -> String {
    list(&items.iter().map(|s| quoted(s)).collect::<Vec<_>>())
}

struct Service<'a> {
    label: String,
    container: &'a ContainerSummary,
    image: Option<String>,
    volumes: Vec<String>,
    binds: Vec<String>,
    depends_on: Vec<String>,
    /// The database server it runs, if recognised.
    database: Option<Recognised>,
}

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

/// The spec for the containers in `scope`, as text (not yet in canonical
/// layout: the caller formats it). `observed.images` is what the engine
/// holds, with layers: the services' images get their bases from it (and
/// bases no container runs join the spec, so a restore brings them back
/// first).
pub fn generate(observed: &Observed, scope: &Scope) -> Result<Generated, InitError> {
    let (containers, known_images) = (&observed.containers, &observed.images);
    let chosen: Vec<&ContainerSummary> = containers.iter().filter(|c| scope.includes(c)).collect();
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
        let details = observed.details.get(&container.name);
        let mut service = Service {
            label: label.clone(),
            container,
            image,
            volumes: Vec::new(),
            binds: Vec::new(),
            depends_on: Vec::new(),
            database: recognise(container, details),
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
        generated
            .skipped
            .extend(unkept_mounts(container, details, &service));
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

    for service in &mut services {
        let names = compose_depends_on(service.container, observed, &mut generated.unknown);
        for name in names {
            match by_compose_name.get(name.as_str()) {
                Some(label) => service.depends_on.push(format!("service.{label}")),
                None => generated.unknown.push(format!(
                    "{} depends on compose service {name:?}, which has no container here: \
                     add its service and `depends_on` yourself",
                    service.container.name
                )),
            }
        }
    }
    let mut seen = BTreeSet::new();
    generated.unknown.retain(|line| seen.insert(line.clone()));

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
            "\nimage {} {{\n  ref = {}\n{base}  policy = policy.default\n}}",
            quoted(label),
            quoted(reference)
        );
    }
    generated.images = images.len();

    let databases: BTreeSet<&str> = services
        .iter()
        .filter(|s| s.database.is_some())
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
        if let Some(database) = &service.database {
            let verify = recipe(database.database, &env_names(observed, service)).verify;
            let _ = writeln!(
                text,
                "  # ready for what depends on it once this succeeds\n  verify = {}",
                strings(&verify)
            );
        }
        if !service.container.running {
            text.push_str("  # not running when this spec was written\n");
        }
        text.push_str("}\n");
    }
    generated.services = services.len();
    for service in &services {
        let Some(database) = &service.database else {
            continue;
        };
        let recipe = recipe(database.database, &env_names(observed, service));
        let evidence: Vec<String> = database.evidence.iter().map(|e| e.to_string()).collect();
        let _ = write!(
            text,
            "\n# {} recognised in {}: {}.\n# Check the commands (your choice).\n",
            database.database.name(),
            service.container.name,
            evidence.join("; ")
        );
        if !recipe.credentials.is_empty() {
            let _ = writeln!(
                text,
                "# Credentials come from the container's own {} when the commands run.",
                recipe.credentials.join(" and ")
            );
        }
        let _ = write!(
            text,
            "dump {} {{\n  service = service.{}\n  command = {}\n",
            quoted(&service.label),
            service.label,
            strings(&recipe.command)
        );
        if let Some(why) = recipe.why {
            let _ = writeln!(text, "  # {why}");
        }
        match &recipe.restore {
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
    for (heading, lines) in [
        ("Not known", &generated.unknown),
        ("Left out", &generated.skipped),
    ] {
        if !lines.is_empty() {
            let _ = writeln!(text, "\n# {heading}:");
            for line in lines {
                let _ = writeln!(text, "# - {line}");
            }
        }
    }
    generated.text = text;
    Ok(generated)
}

/// The names of the container's environment variables (as the survey
/// read them; none when it could not).
fn env_names(observed: &Observed, service: &Service) -> BTreeSet<String> {
    observed
        .details
        .get(&service.container.name)
        .map(|d| d.env_names.clone())
        .unwrap_or_default()
}

/// What the container keeps that no block can protect, or that it does
/// not keep at all, and why.
fn unkept_mounts(
    container: &ContainerSummary,
    details: Option<&detect::ContainerDetails>,
    service: &Service,
) -> Vec<String> {
    let name = &container.name;
    let mut left_out = Vec::new();
    let (tmpfs, anonymous) = details
        .map(|d| (d.tmpfs.as_slice(), d.anonymous_volumes.as_slice()))
        .unwrap_or_default();
    for target in tmpfs {
        left_out.push(format!(
            "{name} has a tmpfs at {target}: memory only, emptied at every restart"
        ));
    }
    for target in anonymous {
        left_out.push(format!(
            "{name} mounts an anonymous volume at {target}: it has no name to back it up by; \
             give it one (compose `volumes:`, `docker run -v NAME:{target}`) and add a volume block"
        ));
    }
    for (source, target) in &container.mounts {
        let explained = tmpfs.contains(target) || anonymous.contains(target);
        if matches!(source, MountSource::Other) && !explained {
            left_out.push(format!(
                "{name} mounts something at {target} that is neither a named volume nor a host \
                 directory (an anonymous volume or a tmpfs)"
            ));
        }
    }
    if service.volumes.is_empty() && service.binds.is_empty() {
        left_out.push(format!(
            "{name} mounts no named volume or host directory: it has no data of its own to back up (its \
             service and image are described)"
        ));
    }
    left_out
}

/// The compose services `container` depends on: from its compose label
/// (`db:service_started:false,cache:service_healthy:true`), else from its
/// project's compose files; what cannot be known is added to `unknown`.
fn compose_depends_on(
    container: &ContainerSummary,
    observed: &Observed,
    unknown: &mut Vec<String>,
) -> Vec<String> {
    if let Some(depends) = container.labels.get(COMPOSE_DEPENDS_ON) {
        return depends
            .split(',')
            .filter_map(|d| d.split(':').next())
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
    }
    let (Some(project), Some(service)) = (
        container.labels.get(COMPOSE_PROJECT),
        container.labels.get(COMPOSE_SERVICE),
    ) else {
        return Vec::new();
    };
    match observed.compose.get(project) {
        Some(Ok(files)) => match files.depends_on.get(service) {
            Some(depends) => depends.clone(),
            None => {
                let names: Vec<String> = files
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect();
                unknown.push(format!(
                    "the depends_on of {} (compose service {service:?}): the service is not in \
                     {}; add `depends_on` yourself",
                    container.name,
                    names.join(", ")
                ));
                Vec::new()
            }
        },
        Some(Err(why)) => {
            unknown.push(format!(
                "the depends_on of compose project {project}'s services: its labels do not say \
                 (compose v1) and {why}; add `depends_on` yourself"
            ));
            Vec::new()
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detect::Database;

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
        let observed = Observed {
            containers: stack(),
            images: known.to_vec(),
            ..Default::default()
        };
        let generated = generate(&observed, &Scope::Compose("shop".into())).unwrap();
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
        let observed = Observed {
            containers: stack(),
            ..Default::default()
        };
        assert_eq!(
            generate(&observed, &Scope::Compose("blog".into())),
            Err(InitError::NoSuchProject("blog".into(), "shop".into()))
        );
        assert_eq!(
            generate(&Observed::default(), &Scope::Engine),
            Err(InitError::NoContainers)
        );
    }

    #[test]
    fn every_generated_restore_command_stops_at_the_first_error() {
        let restore = |database| {
            recipe(database, &BTreeSet::new())
                .restore
                .map(|r| r.join(" "))
        };
        let postgres = restore(Database::PostgreSql).unwrap();
        assert!(postgres.contains("psql -v ON_ERROR_STOP=1"), "{postgres}");
        // The one statement of a pg_dumpall that fails on every server.
        assert!(
            postgres.contains("/^CREATE ROLE postgres;$/d"),
            "{postgres}"
        );
        let mysql = restore(Database::MySql).unwrap();
        assert!(mysql.contains("exec mysql ") && !mysql.contains("--force"));
        let mariadb = restore(Database::MariaDb).unwrap();
        assert!(mariadb.contains("exec mariadb ") && !mariadb.contains("--force"));
        assert!(
            restore(Database::MongoDb)
                .unwrap()
                .contains("--stopOnError")
        );
        assert_eq!(restore(Database::Redis), None, "no restore is generated");
    }

    use crate::engine::memory::MemoryEngine;
    use crate::engine::{ContainerConfig, MountConfig, MountKind};

    /// A running container on the memory engine, created as `docker run`
    /// would: `image`, `entrypoint` + `command`, `env` (`NAME=value`), and
    /// volumes (name → target; a 64-hex name is anonymous) and tmpfs.
    fn run(
        engine: &MemoryEngine,
        name: &str,
        image: &str,
        command: &[&str],
        env: &[&str],
        mounts: &[(MountKind, &str, &str)],
    ) {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        engine.add_container(
            ContainerConfig {
                name: name.into(),
                image: image.into(),
                image_id: format!("sha256:{name}"),
                command: Some(words(command)),
                env: words(env),
                mounts: mounts
                    .iter()
                    .map(|(kind, source, target)| MountConfig {
                        kind: *kind,
                        source: source.to_string(),
                        target: target.to_string(),
                        read_only: false,
                        options: String::new(),
                    })
                    .collect(),
                ..Default::default()
            },
            true,
        );
    }

    /// The block of `kind` `label` in `text` (up to its closing brace),
    /// with the comment lines just above it.
    fn block(text: &str, kind: &str, label: &str) -> String {
        let start = text
            .find(&format!("{kind} \"{label}\" {{"))
            .unwrap_or_else(|| panic!("no {kind} {label:?} in:\n{text}"));
        let above = text[..start]
            .lines()
            .rev()
            .take_while(|l| l.starts_with('#'));
        let comments = start - above.map(|l| l.len() + 1).sum::<usize>();
        let end = start + text[start..].find("\n}").unwrap_or(text.len() - start);
        // Without the alignment `fmt` adds.
        text[comments..end]
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn generated_on(engine: &MemoryEngine) -> Generated {
        let observed = survey(engine, &Scope::Engine).await.unwrap();
        let generated = generate(&observed, &Scope::Engine).unwrap();
        // Whatever it recognised, the spec loads.
        let dir = tempfile::tempdir().unwrap();
        let text = crate::spec::fmt::canonical(&generated.text);
        std::fs::write(dir.path().join("main.hcl"), &text).unwrap();
        crate::spec::load_dir(dir.path(), &Default::default())
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        Generated { text, ..generated }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn databases_are_recognised_by_what_the_container_is_not_its_image_name() {
        let engine = MemoryEngine::new();
        let volume = MountKind::Volume;
        // PostgreSQL from Debian's packages in a company image: a script
        // starts it, the server is on its PATH, PGDATA is set.
        run(
            &engine,
            "pg",
            "acme/db:15",
            &["/entrypoint.sh"],
            &[
                "PGDATA=/var/lib/postgresql/data",
                "POSTGRES_PASSWORD=pg-secret-1",
            ],
            &[(volume, "pgdata", "/var/lib/postgresql/data")],
        );
        engine.script_exec("pg", "sh", 0, "/usr/lib/postgresql/15/bin/postgres\n");
        run(
            &engine,
            "pg_user",
            "acme/other:1",
            &["docker-entrypoint.sh", "postgres"],
            &["POSTGRES_USER=shop", "POSTGRES_PASSWORD=pg-secret-2"],
            &[],
        );
        run(
            &engine,
            "sql",
            "acme/sql:8",
            &["mysqld"],
            &["MYSQL_ROOT_PASSWORD=my-secret"],
            &[(volume, "sqldata", "/var/lib/mysql")],
        );
        run(
            &engine,
            "maria",
            "acme/sql:11",
            &["docker-entrypoint.sh", "mariadbd"],
            &["MARIADB_ROOT_PASSWORD=maria-secret"],
            &[(volume, "mariadata", "/var/lib/mysql")],
        );
        run(
            &engine,
            "docs",
            "acme/docs:7",
            &["tini", "--", "mongod", "--bind_ip_all"],
            &[
                "MONGO_INITDB_ROOT_USERNAME=root",
                "MONGO_INITDB_ROOT_PASSWORD=mongo-secret",
            ],
            &[(volume, "docsdata", "/data/db")],
        );
        run(
            &engine,
            "cache",
            "acme/kv:7",
            &["gosu", "redis", "redis-server", "--appendonly", "yes"],
            &[],
            &[(volume, "cachedata", "/data")],
        );
        // Applications that talk to databases are none.
        run(
            &engine,
            "app",
            "acme/app:1",
            &[
                "sh",
                "-c",
                "until pg_isready -h postgres; do sleep 1; done; exec /app/run",
            ],
            &[
                "PGHOST=pg",
                "POSTGRES_PASSWORD=app-secret",
                "MYSQL_HOST=sql",
            ],
            &[(volume, "uploads", "/data")],
        );
        engine.script_exec("app", "sh", 0, "");
        run(
            &engine,
            "worker",
            "acme/app:1",
            &["/app/worker"],
            &["MONGO_URL=mongodb://docs", "REDIS_HOST=cache"],
            &[(volume, "spool", "/var/spool/app")],
        );
        let generated = generated_on(&engine).await;
        let text = &generated.text;
        assert_eq!(generated.dumps, 6, "{text}");

        let pg = block(text, "dump", "pg");
        assert!(
            pg.contains(
                "PostgreSQL recognised in pg: postgres is on its PATH; it mounts \
                         /var/lib/postgresql/data; its environment has PGDATA, POSTGRES_PASSWORD"
            ),
            "{pg}"
        );
        assert!(
            pg.contains("command = [\"pg_dumpall\", \"-U\", \"postgres\"]"),
            "{pg}"
        );
        let pgdata = block(text, "volume", "pgdata");
        assert!(
            pgdata.contains("consistency = \"stop\" # your choice: a database's files"),
            "{pgdata}"
        );
        assert!(block(text, "service", "pg").contains("verify = [\"pg_isready\", \"-q\"]"));
        let pg_user = block(text, "dump", "pg_user");
        assert!(pg_user.contains("its command runs postgres"), "{pg_user}");
        assert!(
            pg_user.contains("exec pg_dumpall -U \\\"$POSTGRES_USER\\\"")
                && pg_user.contains("container's own POSTGRES_USER"),
            "{pg_user}"
        );
        let sql = block(text, "dump", "sql");
        assert!(sql.contains("MySQL recognised"), "{sql}");
        assert!(
            sql.contains("MYSQL_PWD=\\\"$MYSQL_ROOT_PASSWORD\\\" exec mysqldump"),
            "{sql}"
        );
        let maria = block(text, "dump", "maria");
        assert!(maria.contains("MariaDB recognised"), "{maria}");
        assert!(
            maria.contains("MYSQL_PWD=\\\"$MARIADB_ROOT_PASSWORD\\\" exec mariadb-dump"),
            "{maria}"
        );
        let docs = block(text, "dump", "docs");
        assert!(docs.contains("MongoDB recognised"), "{docs}");
        assert!(
            docs.contains("--username \\\"$MONGO_INITDB_ROOT_USERNAME\\\""),
            "{docs}"
        );
        let cache = block(text, "dump", "cache");
        assert!(
            cache.contains(
                "Redis recognised in cache: its command runs redis-server; it mounts /data"
            ),
            "{cache}"
        );
        assert!(
            cache.contains("[\"redis-cli\", \"--rdb\", \"-\"]"),
            "{cache}"
        );

        // The applications: no dump, no verify, and their volumes are not
        // quiesced as a database's.
        for app in ["app", "worker"] {
            assert!(!text.contains(&format!("dump \"{app}\"")), "{text}");
            let service = block(text, "service", app);
            assert!(!service.contains("verify"), "{service}");
        }
        assert!(block(text, "volume", "uploads").contains("consistency = \"none\""));
        // No value of any variable is written, secrets least of all.
        for value in ["secret", "mongodb://", "=shop", "=pg"] {
            assert!(!text.contains(value), "{value}: {text}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_resource_has_the_policy_and_the_end_says_what_was_left_out() {
        let engine = MemoryEngine::new();
        let anonymous = "ab".repeat(32);
        run(
            &engine,
            "web",
            "acme/web:1",
            &["/web"],
            &[],
            &[
                (MountKind::Volume, "site", "/srv"),
                (MountKind::Volume, &anonymous, "/cache"),
                (MountKind::Tmpfs, "", "/run/web"),
            ],
        );
        run(&engine, "proxy", "acme/proxy:1", &["/proxy"], &[], &[]);
        let generated = generated_on(&engine).await;
        let text = &generated.text;
        for (kind, label) in [("image", "web"), ("image", "proxy"), ("volume", "site")] {
            assert!(
                block(text, kind, label).contains("policy = policy.default"),
                "{kind} {label}: {text}"
            );
        }
        let left_out = &text[text.find("# Left out:").expect("a left-out list")..];
        for expected in [
            "web has a tmpfs at /run/web: memory only",
            "web mounts an anonymous volume at /cache",
            "proxy mounts no named volume or host directory",
        ] {
            assert!(left_out.contains(expected), "{expected}: {left_out}");
        }
        assert_eq!(generated.skipped.len(), 3, "{:?}", generated.skipped);
        let last = text.trim_end().lines().last().unwrap_or_default();
        assert!(
            generated.skipped.iter().any(|s| last == format!("# - {s}")),
            "the list ends the file: {text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_survey_reads_a_compose_v1_projects_file_from_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            "services:\n  app:\n    depends_on:\n      db: {condition: service_healthy}\n  db: {}\n",
        )
        .unwrap();
        let engine = MemoryEngine::new();
        for (name, service) in [("shop_app_1", "app"), ("shop_db_1", "db")] {
            engine.add_container(
                ContainerConfig {
                    name: name.into(),
                    image: "acme/app:1".into(),
                    labels: BTreeMap::from([
                        (COMPOSE_PROJECT.to_string(), "shop".to_string()),
                        (COMPOSE_SERVICE.to_string(), service.to_string()),
                        (
                            "com.docker.compose.project.config_files".to_string(),
                            "docker-compose.yml".to_string(),
                        ),
                        (
                            "com.docker.compose.project.working_dir".to_string(),
                            dir.path().display().to_string(),
                        ),
                    ]),
                    ..Default::default()
                },
                true,
            );
        }
        let scope = Scope::Compose("shop".into());
        let observed = survey(&engine, &scope).await.unwrap();
        let generated = generate(&observed, &scope).unwrap();
        assert!(
            block(&generated.text, "service", "app").contains("depends_on = [service.db]"),
            "{}",
            generated.text
        );
        assert!(generated.unknown.is_empty(), "{:?}", generated.unknown);

        // Without the file, the output says what is not known.
        std::fs::remove_file(dir.path().join("docker-compose.yml")).unwrap();
        let observed = survey(&engine, &scope).await.unwrap();
        let generated = generate(&observed, &scope).unwrap();
        assert!(
            !generated.text.contains("depends_on ="),
            "{}",
            generated.text
        );
        assert_eq!(generated.unknown.len(), 1, "{:?}", generated.unknown);
        assert!(
            generated.unknown[0].contains("docker-compose.yml: cannot be read"),
            "{:?}",
            generated.unknown
        );
    }

    #[test]
    fn compose_v1_depends_on_comes_from_the_files_and_gaps_are_said() {
        let unlabelled = |name: &str, project: &str, service: &str| {
            let mut c = container(name, "acme/app:1", vec![]);
            c.labels.insert(COMPOSE_PROJECT.into(), project.into());
            c.labels.insert(COMPOSE_SERVICE.into(), service.into());
            c
        };
        let files = compose::ComposeFiles {
            files: vec!["/srv/shop/docker-compose.yml".into()],
            depends_on: BTreeMap::from([
                (
                    "app".to_string(),
                    vec!["db".to_string(), "queue".to_string()],
                ),
                ("db".to_string(), vec![]),
            ]),
        };
        let observed = Observed {
            containers: vec![
                unlabelled("shop_db_1", "shop", "db"),
                unlabelled("shop_app_1", "shop", "app"),
                unlabelled("shop_extra_1", "shop", "extra"),
                unlabelled("blog_web_1", "blog", "web"),
            ],
            compose: BTreeMap::from([
                ("shop".to_string(), Ok(files)),
                (
                    "blog".to_string(),
                    Err("/srv/blog/compose.yml: cannot be read (gone)".to_string()),
                ),
            ]),
            ..Default::default()
        };
        let shop = generate(&observed, &Scope::Compose("shop".into())).unwrap();
        assert!(
            block(&shop.text, "service", "app").contains("depends_on = [service.db]"),
            "{}",
            shop.text
        );
        assert_eq!(
            shop.unknown,
            [
                "shop_app_1 depends on compose service \"queue\", which has no container here: \
                 add its service and `depends_on` yourself",
                "the depends_on of shop_extra_1 (compose service \"extra\"): the service is not in \
                 /srv/shop/docker-compose.yml; add `depends_on` yourself",
            ]
        );
        assert!(
            shop.text
                .contains("# Not known:\n# - shop_app_1 depends on"),
            "{}",
            shop.text
        );
        let blog = generate(&observed, &Scope::Compose("blog".into())).unwrap();
        assert_eq!(
            blog.unknown,
            [
                "the depends_on of compose project blog's services: its labels do not say (compose \
              v1) and /srv/blog/compose.yml: cannot be read (gone); add `depends_on` yourself"
            ]
        );
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
