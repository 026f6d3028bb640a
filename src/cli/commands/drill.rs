//! `drill`: a restore plan into scratch names (`-drill-<run>`), shown,
//! applied without asking (it writes no live object), checked, measured,
//! cleaned up and reported.

use super::restore::plan_or_explain;
use super::{journals, load, lock_run, recover_services, remove_leftovers};
use super::{settings, write_atomically};
use crate::apply::drill::{Scratch, remove_drill_leftovers, run_drill, scratch_suffix};
use crate::apply::{self, ApplyReport, RestoreSelection, Status};
use crate::cli::args::DrillArgs;
use crate::cli::views::{self, ProgressView, Style};
use crate::cli::{CliError, Exit, out};
use crate::failure::FailureClass;
use crate::planning::restore::{IntoNames, RestorePlanning, RestoreRequest};
use crate::repo::DrillRecord;
use std::io::IsTerminal;
use std::path::Path;

pub async fn drill(dir: &Path, args: DrillArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, Some(&args.cache), "drill");
    let _run_lock = lock_run(dir, &args.lock, "drill")?;
    let loaded = load(dir, &args.spec)?;
    let view = ProgressView::new(style.color && std::io::stderr().is_terminal(), false);
    recover_services(dir, &view).await;
    let run_id = apply::new_run_id();
    let request = RestoreRequest {
        targets: args.targets,
        selection: RestoreSelection::Latest,
        replace: false,
        allowed_host_access: args.allow,
        // A drill reads what a real restore would: the first sound copy.
        repository: None,
    };
    let into = IntoNames {
        into: Vec::new(),
        suffix: Some(scratch_suffix(&run_id)),
        network: None,
        dump_servers: true,
    };
    let RestorePlanning {
        loaded,
        mut repositories,
        engines,
        restores,
        plan,
        ..
    } = plan_or_explain(loaded, &request, &into, &settings).await?;
    // The plan goes to stderr with --json, so stdout is the report alone.
    if args.json {
        eprint!("{}", views::render_plan(&plan, style));
    } else {
        out!("{}", views::render_plan(&plan, style));
    }
    if !plan.has_changes() && !plan.has_problems() {
        return Err(CliError::Message(
            "nothing to drill: no resource of the spec (or of --target) has a snapshot; back \
             up first with `lifeboat apply`"
                .to_string(),
        ));
    }
    let scratch = Scratch::of_plan(&plan, &run_id).map_err(CliError::Message)?;
    let state_dir = loaded.state_dir();
    remove_leftovers(&loaded, &engines, &view).await;
    let leftovers = remove_drill_leftovers(&state_dir, &engines).await;
    if !leftovers.removed.is_empty() {
        eprintln!(
            "Removed what a killed drill left: {}",
            leftovers.removed.join(", ")
        );
    }
    for error in &leftovers.errors {
        eprintln!("Warning: a killed drill's leftovers: {error}");
    }
    scratch.write_journal(&state_dir).map_err(|e| {
        CliError::Message(format!(
            "cannot write the drill's journal in {}: {e}",
            state_dir.display()
        ))
    })?;
    crate::cli::interrupt::register_drill(scratch.clone(), engines.clone(), &state_dir);
    let journals = journals(&loaded, restores);
    // With --json, stdout is the report alone: the progress is not shown.
    let json = args.json;
    let events = |event: apply::Event| {
        if !json {
            view.handle(&event)
        }
    };
    let run = apply::Run {
        run_id,
        ..journals.apply_run(&loaded, &engines, &settings, args.access, &events)
    };
    let record_due = crate::cli::interrupt::record_due();
    let (report, record) = run_drill(&plan, &run, &mut repositories, &scratch, &state_dir).await;
    drop(record_due);
    if let Some(path) = &args.report {
        write_atomically(path, views::drill::render_markdown(&record).as_bytes())?;
    }
    if args.json {
        out!(
            "{}\n",
            serde_json::to_string_pretty(&record).expect("run records serialise")
        );
    } else {
        out!("{}", views::drill::render_summary(&record));
    }
    Ok(drill_exit(&report, record.drill.as_ref()))
}

/// 0 when the drill passed; 4 when it ran and a check failed or a goal was
/// missed (a verify or restore command, the content, RTO, RPO); 1 when it
/// could not be run, recorded or cleaned up (as a restore).
fn drill_exit(report: &ApplyReport, drill: Option<&DrillRecord>) -> Exit {
    let Some(drill) = drill else {
        return Exit::Error;
    };
    if drill.passed {
        return Exit::Success;
    }
    let could_not_run = report.changes.iter().any(|c| {
        matches!(c.status, Status::Failed { class, .. }
            if !matches!(class, FailureClass::CommandFailed | FailureClass::Integrity))
    });
    if could_not_run || !report.errors.is_empty() || !drill.cleanup_errors.is_empty() {
        Exit::Error
    } else {
        Exit::DrillFailed
    }
}
