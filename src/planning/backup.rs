//! Backup-kind plans (`plan`, `apply`, and `forget`'s retention-only one):
//! the spec, the engines and the repositories observed, then
//! [`plan::backup_plan`].

use super::ordering::{OrderKind, plan_order};
use super::{
    EngineSource, Loaded, PlanningError, connect_engines, open_repositories_meanwhile,
    order_images, resolve_addresses, with_images,
};
use crate::apply::{self, Engines, NamedRepository, OpenSettings};
use crate::plan::{self, Basis, Plan};
use chrono::Utc;

/// What the user asked a backup plan to cover.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// `--target` addresses as typed (empty: everything).
    pub targets: Vec<String>,
    /// `--replace` addresses as typed: backed up even when not due.
    pub replace: Vec<String>,
    /// `lifeboat forget`: only retention, no engine, no backups.
    pub retention_only: bool,
    /// `--tag KEY=VALUE` as typed: checked here, carried by every snapshot
    /// the plan takes.
    pub tags: Vec<String>,
}

/// A backup plan and what was opened and observed to make it, for applying it.
pub struct BackupPlanning {
    pub loaded: Loaded,
    /// What the repositories remembered (settings, restore times).
    pub applied: Option<plan::AppliedState>,
    pub repositories: Vec<NamedRepository>,
    /// `None` for retention-only plans, which need no engine.
    pub engines: Option<Engines>,
    pub plan: Plan,
}

/// Plans a backup of `loaded`'s resources (or of `request.targets` and
/// what they need) against the engines and the repositories. Writes only
/// what the state directory remembers of snapshots (for the day a snapshot
/// file is damaged); never a repository.
pub async fn plan_backup(
    loaded: Loaded,
    request: &BackupRequest,
    settings: &OpenSettings,
    engines: EngineSource<'_>,
) -> Result<BackupPlanning, PlanningError> {
    let repositories = open_repositories_meanwhile(&loaded.spec, settings);
    plan_backup_with(loaded, request, repositories, engines).await
}

/// [`plan_backup`] against repositories already opened (tests that count
/// what a run asks of its storage, embedders with backends of their own).
pub async fn plan_backup_on(
    loaded: Loaded,
    request: &BackupRequest,
    repositories: Vec<NamedRepository>,
    engines: EngineSource<'_>,
) -> Result<BackupPlanning, PlanningError> {
    plan_backup_with(loaded, request, async { Ok(repositories) }, engines).await
}

/// The engines are connected and observed while `repositories` open; a
/// repository that cannot be opened is the error before an engine's.
async fn plan_backup_with(
    mut loaded: Loaded,
    request: &BackupRequest,
    repositories: impl Future<Output = Result<Vec<NamedRepository>, PlanningError>>,
    engines: EngineSource<'_>,
) -> Result<BackupPlanning, PlanningError> {
    let targets = resolve_addresses(&loaded.spec, &request.targets, "--target")?;
    let replace = resolve_addresses(&loaded.spec, &request.replace, "--replace")?;
    let tags = run_tags(&request.tags)?;
    let mut order = plan_order(&loaded.graph, OrderKind::Backup, &targets);
    if request.retention_only {
        let repositories = repositories.await?;
        super::remember_for_run(&repositories);
        return plan_observed(
            loaded,
            request,
            repositories,
            Observed::default(),
            order,
            replace,
            tags,
        );
    }
    // Images need the repositories to be ordered (their layers), so what
    // they change is observed once both are there.
    let needs_order = !loaded.spec.images.is_empty();
    let observing = async {
        let engines = connect_engines(&loaded, &with_images(&loaded, &order), engines).await?;
        let live = async {
            if needs_order {
                None
            } else {
                Some(apply::backup_live(&engines, &loaded.spec, &order).await)
            }
        };
        let (live, data_root) = tokio::join!(live, apply::placement::docker_data_root(&engines));
        Ok::<_, PlanningError>((engines, live, data_root))
    };
    let (repositories, observed) = tokio::join!(repositories, observing);
    let repositories = repositories?;
    let (engines, live, data_root) = observed?;
    super::remember_for_run(&repositories);
    let mut image_warnings = Vec::new();
    let (mut live, engine_digest) = match live {
        Some(live) => live,
        None => {
            image_warnings = order_images(&mut loaded, &engines, &repositories).await?;
            order = plan_order(&loaded.graph, OrderKind::Backup, &targets);
            apply::backup_live(&engines, &loaded.spec, &order).await
        }
    };
    let incomplete = apply::RestoreJournal::new(&loaded.state_dir()).incomplete(&loaded.spec);
    apply::refuse_partial_restores(&mut live, &incomplete);
    let observed = Observed {
        engines: Some(engines),
        live,
        engine_digest,
        image_warnings,
        data_root: Some(data_root),
    };
    plan_observed(
        loaded,
        request,
        repositories,
        observed,
        order,
        replace,
        tags,
    )
}

/// What the engines showed a backup plan ([`Observed::default`]: no engine,
/// for retention-only plans).
#[derive(Default)]
struct Observed {
    engines: Option<Engines>,
    live: std::collections::BTreeMap<crate::spec::Address, plan::LiveResource>,
    engine_digest: String,
    image_warnings: Vec<crate::plan::Warning>,
    /// The engine's data root, for the warning on copies kept on its disk.
    data_root: Option<std::path::PathBuf>,
}

/// The plan from what the repositories and the engines showed.
fn plan_observed(
    loaded: Loaded,
    request: &BackupRequest,
    repositories: Vec<NamedRepository>,
    engine_side: Observed,
    order: Vec<crate::spec::Address>,
    replace: Vec<crate::spec::Address>,
    tags: Vec<String>,
) -> Result<BackupPlanning, PlanningError> {
    let Observed {
        engines,
        live,
        engine_digest,
        image_warnings,
        data_root,
    } = engine_side;
    let observed = apply::backup_observations(&repositories)?;
    // What each snapshot is of, for the day its file is damaged.
    apply::remember_snapshots(&loaded.state_dir(), &repositories)?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        engine_digest,
    };
    let names = apply::repository_names(&loaded.spec);
    let applied = apply::last_applied_state(&repositories)?;
    let dependencies = loaded.dependencies();
    let mut plan = plan::backup_plan(plan::BackupInputs {
        spec: &loaded.spec,
        order: &order,
        dependencies: &dependencies,
        repositories: &names,
        observed: &observed,
        live: &live,
        replace: &replace,
        tags: &tags,
        retention_only: request.retention_only,
        applied: applied.as_ref(),
        basis,
        now: Utc::now(),
    });
    plan.warnings.extend(image_warnings);
    if let Some(data_root) = &data_root {
        let on_host = apply::placement::repositories_on_host(&loaded.spec, data_root);
        plan.warnings
            .extend(plan::copies_warnings(&loaded.spec, &names, &on_host));
    }
    let plan =
        plan::with_new_repositories(plan, &apply::new_repositories(&loaded.spec, &repositories));
    let plan = plan::with_unreachable_repositories(
        plan,
        &apply::unreachable_repositories(&loaded.spec, &repositories),
    );
    let plan = plan::with_locations_relative_to(plan, &loaded.spec.dir);
    Ok(BackupPlanning {
        loaded,
        applied,
        repositories,
        engines,
        plan,
    })
}

/// `--tag` values checked and in their stored form, sorted, each once.
fn run_tags(typed: &[String]) -> Result<Vec<String>, PlanningError> {
    let mut tags = std::collections::BTreeSet::new();
    for text in typed {
        let tag = crate::repo::Tag::parse(text).map_err(PlanningError::BadTag)?;
        tags.insert(tag.to_string());
    }
    Ok(tags.into_iter().collect())
}
