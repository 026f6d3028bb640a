//! `restore`: a restore plan, shown before anything changes, then applied.

use super::{
    confirm, connect_engines, exit_of, load, lock_repositories, lock_run, order_images,
    parse_addresses, quiescer, recover_services, remove_leftovers, settings, state_dir,
    with_images,
};
use crate::apply::{self, RestoreSelection};
use crate::cli::args::RestoreArgs;
use crate::cli::views::{self, ProgressView, Style};
use crate::cli::{CliError, Exit, out};
use crate::plan::{self, Basis, PlanKind};
use chrono::Utc;
use std::io::IsTerminal;
use std::path::Path;

pub async fn restore(dir: &Path, args: RestoreArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, Some(&args.cache), "restore");
    let _run_lock = lock_run(dir, &args.lock, "restore")?;
    let mut loaded = load(dir, &args.spec)?;
    let view = ProgressView::new(style.color && std::io::stderr().is_terminal(), false);
    // What a killed run left stopped, paused or created-but-not-started is
    // completed first: the plan then sees the services as they should be.
    recover_services(dir, &view).await;
    let targets = parse_addresses(&loaded.spec, &args.targets, "--target")?;
    let order_of = |loaded: &super::Loaded| {
        if targets.is_empty() {
            loaded.graph.restore_order()
        } else {
            loaded.graph.with_dependencies(&targets)
        }
    };
    let order = order_of(&loaded);
    let mut repositories = apply::open_repositories(&loaded.spec, &settings)?;
    let missing = apply::new_repositories(&loaded.spec, &repositories);
    if missing.len() == repositories.len() {
        return Err(CliError::Message(nothing_to_restore_from(&missing)));
    }
    let engines = connect_engines(&loaded, &with_images(&loaded, &order)).await?;
    let image_warnings = order_images(&mut loaded, &engines, &repositories).await?;
    let order = order_of(&loaded);
    let mapping = into_mapping(&loaded.spec, &order, &targets, &args)?;
    let selection = match args.snapshot.as_str() {
        "latest" => RestoreSelection::Latest,
        "latest-each" => RestoreSelection::LatestEach,
        id => RestoreSelection::Id(id.to_string()),
    };
    let (observed, engine_digest) = apply::restore_observations_into(
        &engines,
        &loaded.spec,
        &order,
        &repositories,
        &selection,
        &mapping,
    )
    .await?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        engine_digest,
    };
    lock_repositories(&repositories, false)?;
    let dependencies = loaded.dependencies();
    let allowed: Vec<String> = args
        .allow
        .iter()
        .map(|s| crate::engine::canonical_host_access(s))
        .collect();
    let restores = std::sync::Arc::new(apply::RestoreJournal::new(&state_dir(&loaded)));
    let interrupted = restores.incomplete(&loaded.spec);
    // A snapshot named by id is the user's choice, whatever else is damaged.
    let damaged = match selection {
        RestoreSelection::Id(_) => Vec::new(),
        _ => apply::damaged_snapshot_files(&state_dir(&loaded), &repositories)?,
    };
    let inputs = plan::RestoreInputs {
        spec: &loaded.spec,
        order: &order,
        dependencies: &dependencies,
        observed: &observed,
        targets: &targets,
        replace: args.replace,
        allowed_host_access: &allowed,
        interrupted: &interrupted,
        damaged: &damaged,
        basis,
        now: Utc::now(),
    };
    let mut plan = plan::restore_plan_into(inputs, &mapping);
    plan.warnings.extend(image_warnings);
    out!("{}", views::render_plan(&plan, style));
    if !plan.has_changes() {
        if !plan.has_problems() {
            out!("\nNo changes: there is nothing to restore, and nothing was recorded.\n");
        }
        return if plan.has_problems() {
            Err(CliError::Message(format!(
                "nothing can be restored: {} (marked ! above, with why)",
                views::plural(plan.summary.problems, "resource cannot be restored")
            )))
        } else {
            Ok(Exit::Success)
        };
    }
    if !confirm(args.auto_approve, "restore these resources")? {
        out!("\nRestore cancelled.\n");
        return Ok(Exit::Error);
    }
    out!("\n");
    remove_leftovers(&loaded, &engines, &view).await;
    let quiescer = quiescer(&loaded);
    crate::cli::interrupt::register_restores(restores.clone());
    let events = |event: apply::Event| view.handle(&event);
    let run = apply::Run {
        spec: &loaded.spec,
        engines: &engines,
        settings: &settings,
        access: args.access.into(),
        spec_digest: &loaded.digest,
        run_id: apply::new_run_id(),
        events: &events,
        cancel: crate::cli::interrupt::cancellation(),
        quiescer: &quiescer,
        restores: &restores,
    };
    // `--snapshot ID` restores the one resource that snapshot is of.
    let whole_stack = targets.is_empty() && !matches!(selection, RestoreSelection::Id(_));
    let report = apply::run_restore(&plan, &run, &mut repositories, whole_stack).await;
    out!(
        "{}",
        views::render_report(PlanKind::Restore, &report, style)
    );
    Ok(exit_of(&report))
}

/// The new names `--into`, `--into-suffix` and `--network` ask for,
/// resolved against the spec and the resources restored (`order`).
fn into_mapping(
    spec: &crate::spec::Spec,
    order: &[crate::spec::Address],
    targets: &[crate::spec::Address],
    args: &RestoreArgs,
) -> Result<plan::RestoreMapping, CliError> {
    let mut names = Vec::new();
    for text in &args.into {
        let (address, name) = match text.split_once('=') {
            Some((address, name)) => {
                let address = parse_addresses(spec, &[address.to_string()], "--into")?;
                (address[0].clone(), name.to_string())
            }
            None if targets.len() == 1 => (targets[0].clone(), text.clone()),
            None => {
                return Err(CliError::Message(format!(
                    "--into {text}: say which resource gets that name (--into ADDR={text}), \
                     or give exactly one --target"
                )));
            }
        };
        names.push((address, name));
    }
    let request = plan::IntoRequest {
        names,
        suffix: args.into_suffix.clone(),
        network: args.network.clone(),
    };
    plan::RestoreMapping::resolve(spec, order, &request).map_err(|e| CliError::Message(e.0))
}

/// Why a restore has nothing to read: no repository of the spec exists
/// (never backed up, a wrong `path`, or the disk holding it not mounted).
fn nothing_to_restore_from(missing: &[plan::NewRepository]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|repository| {
            let sign = match &repository.looks_unmounted {
                Some((directory, sign)) => format!(
                    " ({}: is the disk that holds it mounted?)",
                    views::looks_unmounted(directory, *sign)
                ),
                None => String::new(),
            };
            format!(
                "repository.{} does not exist at {}{sign}",
                repository.name, repository.location
            )
        })
        .collect();
    format!(
        "nothing to restore from: {}. Check the repositories' `path`, mount the disk that holds \
         them, or back up first with `lifeboat apply`",
        each.join("; ")
    )
}
