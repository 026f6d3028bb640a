//! `plan`, `apply` and `show`: the backup workflow.

use super::{
    confirm, connect_and_register, emit_json, exit_of, journals, load, lock_run, print_plan,
    recover_services, remove_leftovers, settings, write_atomically,
};
use crate::apply::{self, OpenSettings};
use crate::cli::args::{ApplyArgs, PlanArgs, PlanFormat, ShowArgs, SpecArgs};
use crate::cli::views::{self, ProgressView, Style};
use crate::cli::{CliError, Exit, out};
use crate::plan::{self, Plan, PlanKind};
use crate::planning::{self, backup::BackupPlanning, backup::BackupRequest};
use std::io::IsTerminal;
use std::path::Path;

/// Loads the spec of `dir` and plans a backup of what `request` covers.
pub(super) async fn backup_planning(
    dir: &Path,
    spec_args: &SpecArgs,
    settings: &OpenSettings,
    request: &BackupRequest,
) -> Result<BackupPlanning, CliError> {
    let loaded = load(dir, spec_args)?;
    Ok(planning::backup::plan_backup(loaded, request, settings, connect_and_register()).await?)
}

/// The error for a plan with `!` resources, after it was shown.
fn problems_error(plan: &Plan) -> CliError {
    CliError::Message(format!(
        "{} cannot be acted on now (marked ! above, with why); the rest of the plan can",
        views::plural(plan.summary.problems, "resource")
    ))
}

pub async fn plan(dir: &Path, args: PlanArgs, style: Style) -> Result<Exit, CliError> {
    let format = match (args.json, args.format) {
        (true, Some(PlanFormat::Human | PlanFormat::Markdown)) => {
            return Err(CliError::Message(
                "--json and --format say different things: pass one of them".to_string(),
            ));
        }
        (true, _) => PlanFormat::Json,
        (false, format) => format.unwrap_or(PlanFormat::Human),
    };
    let settings = settings(&args.lock, None, "plan");
    let request = BackupRequest {
        targets: args.targets.clone(),
        replace: args.replace.clone(),
        retention_only: false,
        tags: args.tags.clone(),
    };
    let planning = backup_planning(dir, &args.spec, &settings, &request).await?;
    match format {
        PlanFormat::Json => out!("{}\n", planning.plan.to_saved()),
        PlanFormat::Markdown => out!("{}", views::markdown::render(&planning.plan)),
        PlanFormat::Human => out!("{}", views::render_plan(&planning.plan, style)),
    }
    if let Some(file) = &args.out {
        write_atomically(file, planning.plan.to_saved().as_bytes())?;
        if format == PlanFormat::Human {
            out!(
                "\nSaved the plan to {}. To perform exactly these actions, run:\n    lifeboat apply {}\n",
                file.display(),
                file.display()
            );
        }
    }
    if planning.plan.has_problems() {
        return Err(problems_error(&planning.plan));
    }
    Ok(if args.detailed_exitcode && planning.plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// A saved plan is a few kilobytes; a file far larger is not one (and is
/// not read into memory whole).
const MAX_SAVED_PLAN: u64 = 64 << 20;

fn read_saved_plan(file: &Path) -> Result<Plan, CliError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        CliError::Message(format!("cannot read the plan file {}: {e}", file.display()))
    };
    let mut text = String::new();
    std::fs::File::open(file)
        .map_err(unreadable)?
        .take(MAX_SAVED_PLAN + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_SAVED_PLAN {
        return Err(CliError::Message(format!(
            "{} is larger than {} MiB: it is no plan `lifeboat plan --out` wrote",
            file.display(),
            MAX_SAVED_PLAN >> 20
        )));
    }
    Plan::from_saved(&text).map_err(|e| CliError::Message(format!("{}: {e}", file.display())))
}

/// The saved plan of `apply FILE`, refused unless it is a backup plan.
fn read_saved_backup_plan(file: &Path) -> Result<Plan, CliError> {
    let saved = read_saved_plan(file)?;
    if saved.kind != PlanKind::Backup {
        return Err(CliError::Message(format!(
            "{} is a {} plan; `lifeboat apply FILE` applies plans made by `lifeboat \
             plan --out FILE`",
            file.display(),
            views::plan_kind_name(saved.kind)
        )));
    }
    Ok(saved)
}

/// Refuses a saved plan the world moved away from (its basis), or that was
/// changed away from what the spec and repositories call for (edited).
fn check_saved_plan(file: &Path, saved: &Plan, recomputed: &Plan) -> Result<(), CliError> {
    let stale = saved.staleness(&recomputed.basis);
    if !stale.is_empty() {
        return Err(CliError::Message(format!(
            "the saved plan {} is stale: {}. Make a new one with `lifeboat plan --out {}` \
             and review it again",
            file.display(),
            stale.join("; "),
            file.display()
        )));
    }
    let unwarranted = saved.unwarranted_changes(recomputed);
    if !unwarranted.is_empty() {
        let listed: Vec<String> = unwarranted.iter().map(|c| c.to_string()).collect();
        return Err(CliError::Message(format!(
            "the saved plan {} holds changes the spec and repositories do not call for (was it \
             edited?): {}. Nothing was done. Make a new one with `lifeboat plan --out {}` and \
             review it again",
            file.display(),
            listed.join("; "),
            file.display()
        )));
    }
    Ok(())
}

pub async fn apply(dir: &Path, args: ApplyArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, Some(&args.cache), "apply");
    let _run_lock = lock_run(dir, &args.lock, "apply")?;
    let json = args.json;
    let view = ProgressView::new(
        !json && style.color && std::io::stderr().is_terminal(),
        json,
    );
    // What a killed run left stopped runs again before anything is planned
    // (a plan of a stopped service would copy it as it is).
    recover_services(dir, &view).await;
    let saved = match &args.plan_file {
        Some(file) => Some(read_saved_backup_plan(file)?),
        None => None,
    };
    // A saved plan's `--replace` requests are made again for the comparison.
    let replace: Vec<String> = match &saved {
        Some(saved) => saved
            .replace_requests()
            .iter()
            .map(|a| a.to_string())
            .collect(),
        None => args.replace.clone(),
    };
    // And its tags: a plan tagged when reviewed is applied with them.
    let tags = match &saved {
        Some(saved) => saved.tags.clone(),
        None => args.tags.clone(),
    };
    let BackupPlanning {
        loaded,
        applied,
        mut repositories,
        engines,
        plan,
    } = backup_planning(
        dir,
        &args.spec,
        &settings,
        &BackupRequest {
            targets: args.targets.clone(),
            replace,
            retention_only: false,
            tags,
        },
    )
    .await?;
    let Some(engines) = engines else {
        return Err(CliError::Message("no engine was connected".to_string()));
    };
    // A saved plan is applied exactly, and only while the world still
    // matches it and it holds nothing the world does not call for.
    let plan = match (&args.plan_file, saved) {
        (Some(file), Some(saved)) => {
            check_saved_plan(file, &saved, &plan)?;
            saved
        }
        _ => plan,
    };
    let forgets = plan
        .changes
        .iter()
        .any(|c| c.action == plan::Action::Forget);
    planning::lock_repositories(&repositories, forgets)?;
    let emit = emit_json;
    print_plan(&plan, json, style);
    if !plan.has_changes() && !plan.has_problems() {
        // Nothing due is a successful run to those told of every success
        // (a healthchecks check goes down without its ping).
        let mut nothing_done = apply::ApplyReport::default();
        let events = |event: apply::Event| view.handle(&event);
        let kind = crate::repo::RunKind::Backup;
        apply::notify_end_of_run(&plan, &loaded.spec, None, kind, &mut nothing_done, &events);
        if json {
            emit(apply::JsonLine::Summary {
                kind: apply::SummaryTag::Summary,
                summary: apply::ApplySummary::of(&apply::ApplyReport::default()),
            });
        } else {
            out!("\nNo changes. Everything is up to date.\n");
        }
        return Ok(Exit::Success);
    }
    // Applying a reviewed plan file is the approval, as in Terraform.
    // Only problems to report: nothing to approve.
    let approved = args.auto_approve || args.plan_file.is_some() || !plan.has_changes();
    if !confirm(approved, "perform these actions")? {
        out!("\nApply cancelled.\n");
        return Ok(Exit::Error);
    }
    if !json {
        out!("\n");
    }
    remove_leftovers(&loaded, &engines, &view).await;
    let journals = journals(&loaded, apply::RestoreJournal::new(&loaded.state_dir()));
    // The restore measurements are kept: a backup does not change them.
    let applied = plan::AppliedState {
        settings: Some(plan::AppliedSettings::of(&loaded.spec)),
        ..applied.unwrap_or_default()
    };
    let events = |event: apply::Event| view.handle(&event);
    let run = apply::Run {
        tags: &plan.tags,
        ..journals.apply_run(&loaded, &engines, &settings, args.access, &events)
    };
    let record_due = crate::cli::interrupt::record_due();
    let report = apply::run_backup(&plan, &run, &mut repositories, applied).await;
    drop(record_due);
    if json {
        emit(apply::JsonLine::Summary {
            kind: apply::SummaryTag::Summary,
            summary: apply::ApplySummary::of(&report),
        });
    } else {
        out!("{}", views::render_report(PlanKind::Backup, &report, style));
    }
    for named in &repositories {
        if let Some(file) = named.generated_passphrase() {
            let text = format!(
                "The default repository is encrypted with a passphrase lifeboat generated into \
                 {}: keep a copy of it somewhere else (without it these backups cannot be \
                 read), or set LIFEBOAT_PASSPHRASE to the same value.",
                file.display()
            );
            if json {
                eprintln!("{text}");
            } else {
                out!("\n{}\n", style.bold(&text));
            }
        }
    }
    Ok(exit_of(&report))
}

/// `show FILE`: a relative FILE is found in the `--chdir` directory, as
/// every other path lifeboat reads.
pub fn show(dir: &Path, args: ShowArgs, style: Style) -> Result<Exit, CliError> {
    let plan = read_saved_plan(&dir.join(&args.file))?;
    if args.json {
        out!("{}\n", plan.to_saved());
    } else {
        out!("{}", views::render_plan(&plan, style));
    }
    Ok(Exit::Success)
}
