//! One handler per kind of resource: how a change of that kind is backed
//! up into one repository, restored from one, and what its backup needs
//! around the copy. The execution loop ([`super::run`]) owns the rest: the
//! order, skipping, the loop over repositories, quiescing, events and
//! outcomes; handlers never build outcomes nor announce a copy's start or
//! end. Adding a kind is a file here and one line in [`handler`].

pub(crate) mod bind;
mod dump;
mod dump_server;
mod image;
mod service;
pub(crate) mod tree;
pub(crate) mod volume;

pub use service::inspect_service_document;

pub(crate) use dump_server::verify_loaded as verify_loaded_dump_server;

use super::quiesce::Quiet;
use super::{Engines, ExpectedBytes, Run};
use crate::plan::{LiveResource, ResourceChange, RestoreObservation};
use crate::repo::Repository;
use crate::spec::{Address, ResourceKind, ServiceSpec, Spec};

/// What observing a resource may look at: the spec and the engines.
pub(crate) struct Observer<'a> {
    pub spec: &'a Spec,
    pub engines: &'a Engines,
    /// What the restore being planned restores (empty for backups): a
    /// target that is missing now may be created earlier in the same run.
    pub restoring: &'a [Address],
    /// The new names of a restore into other names (empty otherwise):
    /// what is observed instead of the live objects.
    pub into: &'a crate::plan::RestoreMapping,
}

impl Observer<'_> {
    /// Where a restore writes `address`: the mapped name, else `live`.
    pub fn target_name<'n>(&'n self, address: &Address, live: &'n str) -> &'n str {
        self.into.names.get(address).map_or(live, String::as_str)
    }

    /// The engine a resource lives on, or why it is not available.
    pub fn engine(
        &self,
        address: &Address,
    ) -> Result<&std::sync::Arc<dyn crate::engine::Engine>, super::ApplyError> {
        let name = self.spec.engine_name(address);
        self.engines.get(name)
    }
}

/// A backup observation that could not be made: the problem the plan
/// shows for the resource, and the fingerprint of what the engine holds.
pub(crate) type Unobserved = Box<(LiveResource, String)>;

impl<'a> Observer<'a> {
    /// The resource's spec (`declared`, as the kind's lookup found it) and
    /// the engine it lives on, or the observation saying why either is
    /// missing: where every kind's `observe` starts.
    pub fn declared<T>(
        &self,
        address: &Address,
        declared: Option<&'a T>,
    ) -> Result<(&'a T, &'a std::sync::Arc<dyn crate::engine::Engine>), Unobserved> {
        let Some(resource) = declared else {
            let kind = address.kind.keyword();
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            let message = format!("not {article} {kind} of the spec");
            return Err(Box::new((LiveResource::problem(message), String::new())));
        };
        let engines: &'a Engines = self.engines;
        match engines.get(self.spec.engine_name(address)) {
            Ok(engine) => Ok((resource, engine)),
            Err(error) => Err(Box::new((
                LiveResource::problem(error.to_string()),
                "(unreachable)".into(),
            ))),
        }
    }
}

/// A restore observation without its snapshot (chosen by the caller), and
/// the fingerprint of what is on the engine (for the plan's basis).
pub(crate) struct RestoreTarget {
    pub observation: RestoreObservation,
    pub fingerprint: String,
}

impl RestoreTarget {
    /// A target the engine could not tell about (the restore plan shows
    /// `message` as the resource's problem).
    pub fn unknown(message: String) -> RestoreTarget {
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target: Err(message),
                what: String::new(),
                detail: crate::plan::Detail::None,
            },
            fingerprint: "(unreachable)".into(),
        }
    }
}

/// The change's resource as the spec declares it (never as the plan names
/// it: names there may be redacted) and the engine it lives on; `pick`
/// takes the kind's spec out of the resource.
pub(crate) fn resolve<'r, T>(
    run: &'r Run<'_>,
    change: &ResourceChange,
    pick: fn(crate::spec::Resource<'r>) -> Option<&'r T>,
) -> Result<(&'r T, &'r std::sync::Arc<dyn crate::engine::Engine>), super::ApplyError> {
    let spec: &'r Spec = run.spec;
    let resource = spec
        .resource(&change.address)
        .and_then(pick)
        .ok_or_else(|| {
            super::ApplyError::ResourceMissing(format!(
                "the plan names {}, which the spec no longer declares",
                change.address
            ))
        })?;
    let engine = run.engines.get(change.engine_name())?;
    Ok((resource, engine))
}

/// `users` (the containers using a volume or directory) and the
/// containers of the services that depend on theirs, directly or not (on the same engine),
/// in the order to stop them: each before the ones it depends on.
pub(crate) fn stop_order(spec: &Spec, engine: &str, users: &[String]) -> Vec<String> {
    let on_engine = |service: &&ServiceSpec| {
        let address = Address::new(ResourceKind::Service, service.name.clone());
        spec.engine_name(&address) == engine
    };
    let services: Vec<&ServiceSpec> = spec.services.iter().filter(on_engine).collect();
    let mut involved: Vec<&ServiceSpec> = services
        .iter()
        .filter(|s| users.contains(&s.container))
        .copied()
        .collect();
    loop {
        let dependents: Vec<&ServiceSpec> = services
            .iter()
            .filter(|s| !involved.iter().any(|i| i.name == s.name))
            .filter(|s| involved.iter().any(|i| s.depends_on.contains(&i.name)))
            .copied()
            .collect();
        if dependents.is_empty() {
            break;
        }
        involved.extend(dependents);
    }
    // Containers the spec knows nothing of depend on nothing it knows.
    let mut order: Vec<String> = users
        .iter()
        .filter(|u| !involved.iter().any(|s| s.container == **u))
        .cloned()
        .collect();
    while !involved.is_empty() {
        // The graph has no cycles (the spec is checked), so one is free;
        // the fallback only keeps a broken spec from looping.
        let free = involved
            .iter()
            .position(|s| {
                !involved
                    .iter()
                    .any(|other| other.depends_on.contains(&s.name))
            })
            .unwrap_or(0);
        order.push(involved.remove(free).container.clone());
    }
    order
}

/// The containers of [`stop_order`] that run now (`users` are known to),
/// in that order: what a restore replacing their data stops.
pub(crate) async fn running_in_stop_order(
    spec: &Spec,
    engine_name: &str,
    engine: &dyn crate::engine::Engine,
    users: &[String],
) -> Result<Vec<String>, crate::engine::EngineError> {
    let mut stops = Vec::new();
    for container in stop_order(spec, engine_name, users) {
        let runs = users.contains(&container)
            || engine
                .container(&container)
                .await?
                .is_some_and(|state| state.running);
        if runs {
            stops.push(container);
        }
    }
    Ok(stops)
}

/// The snapshot a restore change restores (the plan's choice), as
/// `repository` holds it.
pub(crate) fn chosen_snapshot(
    change: &ResourceChange,
    repository: &Repository,
) -> Result<crate::repo::Snapshot, super::ApplyError> {
    let id = change.snapshot.as_ref().map(|s| s.id.as_str());
    Ok(repository.find_snapshot(id.unwrap_or_default())?)
}

/// One copy a handler makes: a backup of the change's resource into
/// `repository`, or a restore of the change's snapshot from it.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub run: &'a Run<'a>,
    pub change: &'a ResourceChange,
    pub repository: &'a Repository,
}

/// `service` as a restore writes it: with its container named as `into`
/// maps it (a renamed service's new container, a dump's scratch server).
pub(crate) fn written_service<'s>(
    service: &'s ServiceSpec,
    into: Option<&crate::plan::RestoreInto>,
) -> std::borrow::Cow<'s, ServiceSpec> {
    match into {
        Some(into) if !into.name.is_empty() => std::borrow::Cow::Owned(ServiceSpec {
            container: into.name.clone(),
            ..service.clone()
        }),
        _ => std::borrow::Cow::Borrowed(service),
    }
}

/// A restore into other names found `what`, its new name, taken since the
/// plan was made: refused, nothing written.
pub(crate) fn exists_now(change: &ResourceChange, what: &str) -> super::ApplyError {
    super::ApplyError::Guarded {
        what: change.address.to_string(),
        message: format!(
            "{what} was created since the plan was made, and a restore into other names writes \
             only new objects: choose another name, or remove it, and plan the restore again"
        ),
    }
}

/// What one copy stored (backup) or read (restore).
#[derive(Debug, Clone, Default)]
pub(crate) struct Copied {
    pub snapshot: String,
    pub files: u64,
    pub bytes: u64,
    pub read_bytes: u64,
    pub added_bytes: u64,
    /// What the copy could not carry exactly (file trees).
    pub notes: Vec<crate::repo::TreeNote>,
}

#[async_trait::async_trait]
pub(crate) trait KindHandler: Sync {
    /// What the engine says about the resource before a backup, and a
    /// fingerprint of the engine object (it changes when the object is
    /// recreated: a saved plan is then stale).
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String);

    /// What a restore of the resource would find where it writes, when
    /// restoring `chosen` (the snapshot and its repository; `None` when
    /// there is none).
    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        chosen: Option<(&Repository, &crate::repo::Snapshot)>,
    ) -> RestoreTarget;

    /// What the backup copy needs of the resource's service (hooks, a
    /// stop or pause), which the run does once around it: nothing, unless
    /// the kind says otherwise.
    fn quiet<'s>(&self, _spec: &'s Spec, _address: &Address) -> Option<Quiet<'s>> {
        None
    }

    /// What a progress bar of the backup counts to: the previous
    /// snapshot's size (an estimate), unless the kind knows better.
    async fn expected_bytes(
        &self,
        _run: &Run<'_>,
        change: &ResourceChange,
    ) -> Option<ExpectedBytes> {
        previous_size(change)
    }

    /// Backs the job's resource up into its repository, reading it from
    /// the engine.
    async fn back_up(&self, job: Job<'_>) -> Result<Copied, super::ApplyError>;

    /// Restores the job's snapshot from its repository.
    async fn restore(&self, job: Job<'_>) -> Result<Copied, super::ApplyError>;
}

/// The previous snapshot's size: what the next backup of the resource
/// probably reads.
pub(crate) fn previous_size(change: &ResourceChange) -> Option<ExpectedBytes> {
    change
        .snapshot
        .as_ref()
        .map(|s| ExpectedBytes::estimate(s.bytes))
}

/// Reads, before a backup run's copies, what kinds read more cheaply
/// together than one by one (images: one export of all those due on an
/// engine), so that each change's [`KindHandler::back_up`] finds it stored.
pub(crate) async fn prepare_backups(
    plan: &crate::plan::Plan,
    run: &Run<'_>,
    repositories: &mut [super::NamedRepository],
) {
    image::back_up_together(plan, run, repositories).await;
}

/// The handler of a kind; `None` for kinds this version does not act on
/// (plans never give them `+` or `<` changes, see `plan::backs_up`).
pub(crate) fn handler(kind: ResourceKind) -> Option<&'static dyn KindHandler> {
    match kind {
        ResourceKind::Volume => Some(&volume::VolumeHandler),
        ResourceKind::Bind => Some(&bind::BindHandler),
        ResourceKind::Image => Some(&image::ImageHandler),
        ResourceKind::Service => Some(&service::ServiceHandler),
        ResourceKind::Dump => Some(&dump::DumpHandler),
        ResourceKind::Policy | ResourceKind::Repository => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_ENGINE;

    fn service(name: &str, depends_on: &[&str]) -> ServiceSpec {
        ServiceSpec {
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            span: Default::default(),
            ..ServiceSpec::new(name, &format!("{name}-1"))
        }
    }

    #[test]
    fn dependents_stop_before_what_they_depend_on() {
        let spec = Spec {
            services: vec![
                service("db", &[]),
                service("api", &["db"]),
                service("web", &["api"]),
                service("worker", &["db"]),
                service("unrelated", &[]),
            ],
            ..Spec::default()
        };
        let order = stop_order(&spec, DEFAULT_ENGINE, &["db-1".into(), "adminer".into()]);
        assert_eq!(order.len(), 5, "{order:?}");
        assert_eq!(order[0], "adminer", "not a service of the spec: first");
        let at = |c: &str| order.iter().position(|o| o == c).unwrap();
        assert!(at("web-1") < at("api-1"));
        assert!(at("api-1") < at("db-1"));
        assert!(at("worker-1") < at("db-1"));
        assert!(!order.contains(&"unrelated-1".to_string()));
        // Services on another engine are not this engine's to stop.
        assert_eq!(stop_order(&spec, "other", &["db-1".into()]), vec!["db-1"]);
    }
}
