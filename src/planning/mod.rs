//! planning: the steps from a spec directory to a plan, in one place for
//! every command that plans (`plan`, `apply`, `forget`, `restore`, `graph`;
//! next `status` and `drill`): load the spec and its graph, resolve the
//! addresses the user named, connect the engines those need, order images
//! by their layers, observe, and call the pure planners of `plan/`.
//!
//! It owns the order of those steps, so the plans and the graph `graph`
//! draws can never disagree. It never prints, asks or registers anything
//! for interrupts: inputs are plain values, the results are values (and the
//! engines it connected, which the caller registers through
//! [`EngineSource::Connect`]); `cli` renders them.

pub mod backup;
pub mod forget;
mod ordering;
#[cfg(test)]
mod rerun_tests;
pub mod restore;
#[cfg(test)]
mod tests;

pub use ordering::{DrawnGraph, OrderKind, draw_graph};

use crate::apply::{self, ApplyError, Engines, NamedRepository};
use crate::graph::Graph;
use crate::plan::Warning;
use crate::spec::{self, Address, Diagnostics, ResourceKind, Spec, VarInputs};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The spec, its graph and its digest: what every command starts from.
pub struct Loaded {
    pub spec: Spec,
    pub graph: Graph,
    pub digest: String,
}

impl Loaded {
    /// Reads and evaluates the spec files of `dir` and builds their graph.
    pub fn load(dir: &Path, vars: &VarInputs) -> Result<Loaded, Diagnostics> {
        let spec = spec::load_dir(dir, vars)?;
        let graph = Graph::build(&spec)?;
        let digest = spec_digest(&spec);
        Ok(Loaded {
            spec,
            graph,
            digest,
        })
    }

    /// Each resource's direct dependencies, for the plan's `depends_on`.
    pub fn dependencies(&self) -> BTreeMap<Address, Vec<Address>> {
        self.spec
            .addresses()
            .into_iter()
            .map(|a| {
                let dependencies = self.graph.dependencies(&a);
                (a, dependencies)
            })
            .collect()
    }

    /// The spec directory's state directory (journals, the default repository).
    pub fn state_dir(&self) -> PathBuf {
        apply::workspace::state_dir(&self.spec.dir)
    }
}

/// Digest of the evaluated spec (its serialised form holds no secret values),
/// whatever directory it was checked out into: the same files in a CI
/// runner's checkout are the same spec, so a plan made there is the host's
/// plan. What the directory decides stays in: a relative repository path
/// counts as the absolute path it names.
fn spec_digest(spec: &Spec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("dir");
    }
    for repository in value["repositories"].as_array_mut().into_iter().flatten() {
        if let Some(path) = repository["location"]["path"].as_str() {
            let absolute = spec.dir.join(path).display().to_string();
            repository["location"]["path"] = serde_json::Value::String(absolute);
        }
    }
    relative_span_files(&mut value, &spec.dir);
    let json = serde_json::to_vec(&value).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// Makes every span's `file` (in the spec's serialised form) relative to `dir`.
fn relative_span_files(value: &mut serde_json::Value, dir: &Path) {
    match value {
        serde_json::Value::Object(fields) => {
            if let Some(serde_json::Value::String(file)) = fields.get_mut("file")
                && let Ok(relative) = Path::new(file.as_str()).strip_prefix(dir)
            {
                *file = relative.display().to_string();
            }
            fields
                .values_mut()
                .for_each(|field| relative_span_files(field, dir));
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|item| relative_span_files(item, dir)),
        _ => {}
    }
}

/// Why no plan could be made. The messages are the ones users see.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error("{flag} {text:?}: write a resource address like volume.data or service.api")]
    NotAnAddress { flag: &'static str, text: String },
    #[error("{flag} {text}: the spec declares no such resource (declared: {})", declared_list(.declared))]
    Undeclared {
        flag: &'static str,
        text: String,
        declared: Vec<Address>,
    },
    /// A restore with no repository of the spec in existence (each one
    /// says where it was looked for, and whether its disk looks unmounted).
    #[error("nothing to restore from: no repository of the spec exists")]
    NothingToRestoreFrom(Vec<crate::plan::NewRepository>),
    /// `restore --into`, `--into-suffix` or `--network` asked for names
    /// that cannot be used.
    #[error(transparent)]
    Into(#[from] crate::plan::IntoError),
    /// `restore --path` asked for what a partial restore cannot do.
    #[error("{0}")]
    Partial(String),
    /// A `--tag` that is no `KEY=VALUE` within the rules.
    #[error("--tag: {0}")]
    BadTag(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

fn declared_list(declared: &[Address]) -> String {
    if declared.is_empty() {
        "none".to_string()
    } else {
        let known: Vec<String> = declared.iter().map(Address::to_string).collect();
        known.join(", ")
    }
}

/// `--target`/`--replace` values (`flag` names which, for the messages):
/// addresses of resources the spec declares.
pub fn resolve_addresses(
    spec: &Spec,
    texts: &[String],
    flag: &'static str,
) -> Result<Vec<Address>, PlanningError> {
    let declared = spec.addresses();
    texts
        .iter()
        .map(|text| {
            let address = Address::parse(text)
                .filter(|a| a.kind.is_resource())
                .ok_or_else(|| PlanningError::NotAnAddress {
                    flag,
                    text: text.clone(),
                })?;
            if !declared.contains(&address) {
                return Err(PlanningError::Undeclared {
                    flag,
                    text: text.clone(),
                    declared: declared.clone(),
                });
            }
            Ok(address)
        })
        .collect()
}

/// Where a planning gets its engines.
pub enum EngineSource<'a> {
    /// Connect to the engines the spec declares (the default one honours
    /// `DOCKER_HOST`); `connected` sees them at once, before anything is
    /// observed (the CLI registers them so an interrupt cleans up after them).
    Connect {
        connected: &'a (dyn Fn(&Engines) + Sync),
    },
    /// Engines at hand (in-memory engines in tests, embedders).
    Given(Engines),
}

/// The engines the resources in `addresses` live on, connected. When every
/// one is unreachable nothing can be done and that is the error; otherwise
/// the resources on an unreachable engine become problems in the plan.
pub async fn connect_engines(
    loaded: &Loaded,
    addresses: &[Address],
    source: EngineSource<'_>,
) -> Result<Engines, PlanningError> {
    let engines = reach_engines(loaded, addresses, source).await;
    if let Some(error) = engines.all_unreachable() {
        return Err(error.into());
    }
    Ok(engines)
}

/// As [`connect_engines`], but unreachable engines are left for the caller
/// to judge (`graph` draws from the spec alone then).
async fn reach_engines(
    loaded: &Loaded,
    addresses: &[Address],
    source: EngineSource<'_>,
) -> Engines {
    match source {
        EngineSource::Given(engines) => engines,
        EngineSource::Connect { connected } => {
            let mut names: Vec<&str> = addresses
                .iter()
                .filter(|a| loaded.spec.resource(a).is_some())
                .map(|a| loaded.spec.engine_name(a))
                .collect();
            if names.is_empty() {
                names.push(spec::DEFAULT_ENGINE);
            }
            let engines = Engines::connect(&loaded.spec, names).await;
            connected(&engines);
            engines
        }
    }
}

/// The spec's repositories, opened on a thread of their own while the
/// caller goes on with the engines: deriving a repository's key takes as
/// long as the engine's first answers (about 0.1 s each), and an
/// unchanged re-run is little more than both.
pub fn open_repositories_meanwhile(
    spec: &Spec,
    settings: &apply::OpenSettings,
) -> impl std::future::Future<Output = Result<Vec<NamedRepository>, PlanningError>> + use<> {
    let (spec, settings) = (spec.clone(), settings.clone());
    let opening =
        tokio::task::spawn_blocking(move || apply::open_repositories_reaching(&spec, &settings));
    async move {
        match opening.await {
            Ok(opened) => Ok(opened?),
            Err(stopped) if stopped.is_panic() => std::panic::resume_unwind(stopped.into_panic()),
            // Only a runtime shutting down cancels it.
            Err(stopped) => Err(ApplyError::Failed(crate::failure::Failure::new(
                crate::failure::FailureClass::Interrupted,
                format!("opening the repositories stopped: {stopped}"),
            ))
            .into()),
        }
    }
}

/// Orders images after the images they were built from, as their layers
/// tell (see [`Graph::add_observed_image_bases`]); the warnings name the
/// `base =` the layers contradict. Observation first, then the graph, then
/// the plan: the order is computed again after this.
pub async fn order_images(
    loaded: &mut Loaded,
    engines: &Engines,
    repositories: &[NamedRepository],
) -> Result<Vec<Warning>, ApplyError> {
    if loaded.spec.images.is_empty() {
        return Ok(Vec::new());
    }
    let layers = apply::image_layers(engines, &loaded.spec, repositories).await?;
    let mismatches = loaded.graph.add_observed_image_bases(&loaded.spec, &layers);
    Ok(mismatches
        .into_iter()
        .map(|(address, base)| Warning::BaseMismatch {
            at: loaded
                .spec
                .resource(&address)
                .map(|r| r.span().to_string())
                .unwrap_or_default(),
            address,
            base,
        })
        .collect())
}

/// The addresses to connect engines for: `order`, and every image (whose
/// layers order the others).
pub fn with_images(loaded: &Loaded, order: &[Address]) -> Vec<Address> {
    let mut all = order.to_vec();
    for address in image_addresses(&loaded.spec) {
        if !all.contains(&address) {
            all.push(address);
        }
    }
    all
}

fn image_addresses(spec: &Spec) -> Vec<Address> {
    spec.images
        .iter()
        .map(|image| Address::new(ResourceKind::Image, image.name.clone()))
        .collect()
}

/// Lets each open repository of a run remember its snapshot and run
/// listings and files from planning to the end of the run (see
/// [`crate::repo::Repository::remember_for_run`]).
fn remember_for_run(repositories: &[NamedRepository]) {
    for repository in repositories.iter().filter_map(|r| r.repository.as_ref()) {
        repository.remember_for_run();
    }
}

/// Locks each existing repository of a run before it touches anything:
/// shared, or exclusive when the run deletes data (`exclusive`), so a run
/// that cannot have its repositories refuses (or waits, `--lock-timeout`)
/// at once instead of failing at its forget after its copies.
pub fn lock_repositories(
    repositories: &[NamedRepository],
    exclusive: bool,
) -> Result<(), ApplyError> {
    for named in repositories {
        if let Some(repository) = &named.repository {
            repository
                .lock_for_run(exclusive)
                .map_err(|error| named.error(error))?;
        }
    }
    Ok(())
}
