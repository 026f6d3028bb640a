//! `restore`: a restore plan, shown before anything changes, then applied.

use super::{
    confirm, connect_and_register, emit_json, exit_of, journals, load, lock_run, print_plan,
    recover_services, remove_leftovers, settings,
};
use crate::apply::partial::PartialRequest;
use crate::apply::{self, RestoreSelection};
use crate::cli::args::RestoreArgs;
use crate::cli::views::{self, ProgressView, Style};
use crate::cli::{CliError, Exit, out, selector};
use crate::plan::{self, PlanKind};
use crate::planning::PlanningError;
use crate::planning::restore::{
    IntoNames, RestorePlanning, RestoreRequest, plan_partial_restore, plan_restore_into,
};
use crate::repo::partial::PathSelection;
use std::io::IsTerminal;
use std::path::Path;

pub async fn restore(dir: &Path, args: RestoreArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, Some(&args.cache), "restore");
    let _run_lock = lock_run(dir, &args.lock, "restore")?;
    let loaded = load(dir, &args.spec)?;
    let json = args.json;
    let view = ProgressView::new(
        !json && style.color && std::io::stderr().is_terminal(),
        json,
    );
    // What a killed run left stopped, paused or created-but-not-started is
    // completed first: the plan then sees the services as they should be.
    recover_services(dir, &view).await;
    let request = RestoreRequest {
        targets: args.targets,
        selection: match args.snapshot.as_str() {
            "latest" => RestoreSelection::Latest,
            "latest-each" => RestoreSelection::LatestEach,
            text if let Some(tag) = selector::tag(text, &format!("--snapshot {text}")) => {
                RestoreSelection::Tagged(tag?)
            }
            id => RestoreSelection::Id(id.to_string()),
        },
        replace: args.replace,
        allowed_host_access: args.allow,
        repository: args.repository,
    };
    let planned = if args.paths.is_empty() {
        let into = IntoNames {
            into: args.into,
            suffix: args.into_suffix,
            network: args.network,
            dump_servers: false,
        };
        plan_or_explain(loaded, &request, &into, &settings).await?
    } else {
        let partial = partial_request(&args.paths, args.into, args.access.into())?;
        plan_partial_restore(
            loaded,
            &request,
            &partial,
            &settings,
            connect_and_register(),
        )
        .await?
    };
    let RestorePlanning {
        loaded,
        mut repositories,
        engines,
        restores,
        whole_stack,
        plan,
    } = planned;
    let emit = emit_json;
    print_plan(&plan, json, style);
    if !plan.has_changes() {
        if !plan.has_problems() && !json {
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
    if !json {
        out!("\n");
    }
    remove_leftovers(&loaded, &engines, &view).await;
    let journals = journals(&loaded, restores);
    let events = |event: apply::Event| view.handle(&event);
    let run = journals.apply_run(&loaded, &engines, &settings, args.access, &events);
    let record_due = crate::cli::interrupt::record_due();
    let report = apply::run_restore(&plan, &run, &mut repositories, whole_stack).await;
    drop(record_due);
    if json {
        emit(apply::JsonLine::Summary {
            kind: apply::SummaryTag::Summary,
            summary: apply::ApplySummary::of(&report),
        });
    } else {
        out!(
            "{}",
            views::render_report(PlanKind::Restore, &report, style)
        );
    }
    Ok(exit_of(&report))
}

/// `--path` (and `--into`, which then names one host directory), checked
/// before anything is opened.
fn partial_request(
    paths: &[String],
    into: Vec<String>,
    access: apply::VolumeAccess,
) -> Result<PartialRequest, CliError> {
    let selection = PathSelection::parse(paths).map_err(CliError::Message)?;
    let into = match into.as_slice() {
        [] => None,
        [dir] if !dir.contains('=') => Some(std::path::absolute(dir)?),
        _ => {
            return Err(CliError::Message(
                "with --path, --into names one host directory (new or empty) the part is \
                 written into: --into DIR"
                    .to_string(),
            ));
        }
    };
    Ok(PartialRequest {
        selection,
        into,
        access,
    })
}

/// The restore plan (of `restore` and `drill`), or why there is none in
/// the user's words.
pub(super) async fn plan_or_explain(
    loaded: crate::planning::Loaded,
    request: &RestoreRequest,
    into: &IntoNames,
    settings: &apply::OpenSettings,
) -> Result<RestorePlanning, CliError> {
    match plan_restore_into(loaded, request, into, settings, connect_and_register()).await {
        Err(PlanningError::NothingToRestoreFrom(missing)) => {
            Err(CliError::Message(nothing_to_restore_from(&missing)))
        }
        planned => Ok(planned?),
    }
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
