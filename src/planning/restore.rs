//! Restore plans (`restore`; next `drill`): the snapshots chosen, what the
//! engines hold where they go, then [`plan::restore_plan`].

use super::ordering::{OrderKind, plan_order};
use super::{
    EngineSource, Loaded, PlanningError, connect_engines, lock_repositories, order_images,
    resolve_addresses, with_images,
};
use crate::apply::{
    self, Engines, NamedRepository, OpenSettings, RestoreJournal, RestoreSelection,
};
use crate::plan::{self, Basis, Plan};
use crate::spec::{Address, ResourceKind};
use chrono::Utc;

/// What the user asked a restore to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// `--target` addresses as typed (empty: the whole stack).
    pub targets: Vec<String>,
    /// Which snapshots (`--snapshot`).
    pub selection: RestoreSelection,
    /// `--replace`: overwrite targets that hold data.
    pub replace: bool,
    /// `--allow`: host access a restored container may get (as typed).
    pub allowed_host_access: Vec<String>,
    /// `--repository NAME`: read that repository only (else the first
    /// whose copy is sound, in the order of each resource's copies).
    pub repository: Option<String>,
}

/// Where a restore into other names writes, as typed (`--into`,
/// `--into-suffix`, `--network`); the default is a restore into the names
/// of the spec.
#[derive(Debug, Clone, Default)]
pub struct IntoNames {
    /// `ADDR=NAME`, or `NAME` alone with exactly one target.
    pub into: Vec<String>,
    pub suffix: Option<String>,
    pub network: Option<String>,
    /// A drill's: each dump loads into a scratch server of its own, named
    /// with `suffix` (see [`plan::RestoreMapping::dump_servers`]).
    pub dump_servers: bool,
}

/// A restore plan and what was opened and observed to make it, for applying it.
pub struct RestorePlanning {
    pub loaded: Loaded,
    /// The repositories, each existing one locked (shared) for the run.
    pub repositories: Vec<NamedRepository>,
    pub engines: Engines,
    /// The journal of restores under way in the spec's state directory.
    pub restores: RestoreJournal,
    /// Whether this restores the whole stack (no `--target`, no snapshot by
    /// id): its time is then the stack's measured RTO.
    pub whole_stack: bool,
    pub plan: Plan,
}

/// Plans a restore of `loaded`'s resources (or of `request.targets` and
/// what they need) from the repositories, and takes a shared lock on each
/// repository that exists, as a run that reads them.
pub async fn plan_restore(
    loaded: Loaded,
    request: &RestoreRequest,
    settings: &OpenSettings,
    engines: EngineSource<'_>,
) -> Result<RestorePlanning, PlanningError> {
    plan_restore_into(loaded, request, &IntoNames::default(), settings, engines).await
}

/// [`plan_restore`] into the names `into` asks for: checked against the
/// spec before anything is opened, then observed and planned under them.
pub async fn plan_restore_into(
    mut loaded: Loaded,
    request: &RestoreRequest,
    into: &IntoNames,
    settings: &OpenSettings,
    engines: EngineSource<'_>,
) -> Result<RestorePlanning, PlanningError> {
    let targets = resolve_addresses(&loaded.spec, &request.targets, "--target")?;
    let order = plan_order(&loaded.graph, OrderKind::Restore, &targets);
    resolve_mapping(&loaded.spec, &order, &targets, into)?;
    let repositories = apply::open_repositories_reaching(&loaded.spec, settings)?;
    super::remember_for_run(&repositories);
    let missing = apply::new_repositories(&loaded.spec, &repositories);
    if missing.len() == repositories.len() {
        return Err(PlanningError::NothingToRestoreFrom(missing));
    }
    let engines = connect_engines(&loaded, &with_images(&loaded, &order), engines).await?;
    let image_warnings = order_images(&mut loaded, &engines, &repositories).await?;
    let order = plan_order(&loaded.graph, OrderKind::Restore, &targets);
    let mapping = resolve_mapping(&loaded.spec, &order, &targets, into)?;
    let selection = &request.selection;
    let apply::RestoreObserved {
        resources: observed,
        engine_digest,
        read_elsewhere,
        snapshot_excludes,
    } = apply::observe_restores(
        &engines,
        &loaded.spec,
        &order,
        &repositories,
        selection,
        &mapping,
        request.repository.as_deref(),
    )
    .await?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        engine_digest,
    };
    lock_repositories(&repositories, false)?;
    let dependencies = loaded.dependencies();
    let allowed: Vec<String> = request
        .allowed_host_access
        .iter()
        .map(|s| crate::engine::canonical_host_access(s))
        .collect();
    let restores = RestoreJournal::new(&loaded.state_dir());
    let interrupted = restores.incomplete(&loaded.spec);
    // A snapshot named by id is the user's choice, whatever else is damaged.
    let by_id = matches!(selection, RestoreSelection::Id(_));
    let damaged = if by_id {
        Vec::new()
    } else {
        apply::damaged_snapshot_files(&loaded.state_dir(), &repositories)?
    };
    let inputs = plan::RestoreInputs {
        spec: &loaded.spec,
        order: &order,
        dependencies: &dependencies,
        observed: &observed,
        targets: &targets,
        replace: request.replace,
        allowed_host_access: &allowed,
        interrupted: &interrupted,
        damaged: &damaged,
        basis,
        now: Utc::now(),
    };
    let plan =
        plan::with_read_elsewhere(plan::restore_plan_into(inputs, &mapping), &read_elsewhere);
    let mut plan = plan::with_snapshot_excludes(plan, &snapshot_excludes);
    plan.warnings.extend(image_warnings);
    let plan = plan::with_locations_relative_to(plan, &loaded.spec.dir);
    Ok(RestorePlanning {
        loaded,
        repositories,
        engines,
        restores,
        // `--snapshot ID` restores the one resource that snapshot is of.
        whole_stack: targets.is_empty() && !by_id,
        plan,
    })
}

/// A restore of part of one volume's or directory's tree (`restore
/// --path`): planned as a restore of that target alone with `--replace`
/// (so that what a replace would stop is known and refused alike), then
/// made partial with the lists read from its snapshot and the live tree
/// (or the `--into` directory).
pub async fn plan_partial_restore(
    loaded: Loaded,
    request: &RestoreRequest,
    partial: &apply::partial::PartialRequest,
    settings: &OpenSettings,
    engines: EngineSource<'_>,
) -> Result<RestorePlanning, PlanningError> {
    let targets = resolve_addresses(&loaded.spec, &request.targets, "--target")?;
    let target = match targets.as_slice() {
        [one] if matches!(one.kind, ResourceKind::Volume | ResourceKind::Bind) => one.clone(),
        [one] => {
            return Err(PlanningError::Partial(format!(
                "--path restores part of a volume's or directory's file tree, and {one} has \
                 none: restore it without --path"
            )));
        }
        _ => {
            return Err(PlanningError::Partial(
                "--path restores part of one volume or directory: give exactly one --target \
                 (a volume.NAME or bind.NAME)"
                    .to_string(),
            ));
        }
    };
    let whole = RestoreRequest {
        replace: true,
        ..request.clone()
    };
    // `--into DIR` writes a host directory from the repository alone: the
    // engine is not asked (it may be unreachable), and the target's
    // problem (not observed) gives way to the directory below.
    let engines = match &partial.into {
        Some(_) => EngineSource::Given(apply::Engines::from_engines([])),
        None => engines,
    };
    let mut planning =
        plan_restore_into(loaded, &whole, &IntoNames::default(), settings, engines).await?;
    // Only the target is written: what it depends on is not restored.
    planning.plan.changes.retain(|c| c.address == target);
    planning.plan.summary = plan::Summary::of(&planning.plan.changes);
    planning.whole_stack = false;
    let Some(change) = planning.plan.changes.first() else {
        return Ok(planning);
    };
    let readable = partial.into.is_some() || change.action != plan::Action::Problem;
    if change.snapshot.is_some() && readable {
        let lists = apply::partial::observe_partial(
            &planning.loaded.spec,
            &planning.engines,
            &planning.repositories,
            change,
            partial,
        )
        .await?;
        planning.plan = plan::with_partial(planning.plan, &target, lists);
    }
    Ok(planning)
}

/// The new names `into` asks for, resolved against the spec and the
/// resources restored (`order`; `targets` as resolved).
fn resolve_mapping(
    spec: &crate::spec::Spec,
    order: &[Address],
    targets: &[Address],
    into: &IntoNames,
) -> Result<plan::RestoreMapping, PlanningError> {
    let mut names = Vec::new();
    for text in &into.into {
        let (address, name) = match text.split_once('=') {
            Some((address, name)) => {
                let address = resolve_addresses(spec, &[address.to_string()], "--into")?;
                (address[0].clone(), name.to_string())
            }
            None if targets.len() == 1 => (targets[0].clone(), text.clone()),
            None => {
                return Err(plan::IntoError(format!(
                    "--into {text}: say which resource gets that name (--into ADDR={text}), or \
                     give exactly one --target"
                ))
                .into());
            }
        };
        names.push((address, name));
    }
    let request = plan::IntoRequest {
        names,
        suffix: into.suffix.clone(),
        network: into.network.clone(),
    };
    let mut mapping = plan::RestoreMapping::resolve(spec, order, &request)?;
    if into.dump_servers {
        mapping.dump_servers = into.suffix.clone();
    }
    Ok(mapping)
}
