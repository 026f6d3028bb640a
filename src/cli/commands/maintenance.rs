//! Commands on the repositories: `snapshots`, `runs`, `check`, `forget`,
//! `prune`, `unlock`, `repair`.

use super::backup::backup_planning;
use super::{confirm, load, settings};
use crate::apply::{self, NamedRepository, OpenSettings};
use crate::cli::args::{
    CheckArgs, ForgetArgs, LockArgs, MigrateArgs, PruneArgs, RepairArgs, RunsArgs, SnapshotsArgs,
    SpecArgs, UnlockArgs,
};
use crate::cli::views::{self, ProgressView, Style};
use crate::cli::{CliError, Exit, out};
use crate::plan::PlanKind;
use crate::planning::backup::BackupRequest;
use crate::planning::forget::{ForgetPlanning, ForgetRequest, plan_forget};
use crate::repo::{Advice, TagFilter};
use std::path::Path;

pub fn snapshots(dir: &Path, args: SnapshotsArgs) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let repositories =
        apply::open_repositories(&loaded.spec, &settings(&args.lock, None, "snapshots"))?;
    for named in &repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        for damaged in repository.damaged_snapshots()? {
            eprintln!(
                "warning: repository.{}: snapshot {} is damaged ({}): `lifeboat check` tells \
                 more, `lifeboat forget --repository {} {}` removes it",
                named.name,
                damaged.id.short(),
                damaged.detail,
                named.name,
                damaged.id.short()
            );
        }
    }
    let filters = args
        .tags
        .iter()
        .map(|t| TagFilter::parse(t).map_err(|e| CliError::Message(format!("--tag: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = apply::list_snapshots(&repositories)?;
    rows.retain(|row| filters.iter().all(|f| f.matches_any(&row.tags)));
    rows.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    if args.json {
        out!("{}\n", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(Exit::Success);
    }
    if rows.is_empty() && !filters.is_empty() {
        let asked: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        out!("No snapshot has the tag {}.\n", asked.join(" and "));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        out!("No snapshots yet: `lifeboat apply` takes the first ones.\n");
        return Ok(Exit::Success);
    }
    let width = rows
        .iter()
        .map(|r| r.resource.len())
        .max()
        .unwrap_or(8)
        .max(8);
    out!(
        "{:<8}  {:<width$}  {:<20}  {:>10}  {:>8}  REPOSITORY\n",
        "ID",
        "RESOURCE",
        "TIME (UTC)",
        "BYTES",
        "FILES"
    );
    for row in &rows {
        let tags = if row.tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", row.tags.join(", "))
        };
        out!(
            "{:<8}  {:<width$}  {:<20}  {:>10}  {:>8}  {}{tags}\n",
            row.short_id,
            row.resource,
            row.time.format("%Y-%m-%d %H:%M:%S"),
            views::human_bytes(row.bytes),
            // A stream (a dump) or an image holds no files to count.
            if views::holds_files(&row.resource) {
                row.files.to_string()
            } else {
                "-".to_string()
            },
            row.repository
        );
    }
    out!(
        "\n{} snapshot{}.\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(Exit::Success)
}

/// `lifeboat runs`: the run records, read from the repositories alone.
pub fn runs(dir: &Path, args: RunsArgs, style: Style) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let target = match &args.target {
        Some(text) => Some(crate::spec::Address::parse(text).ok_or_else(|| {
            CliError::Message(format!(
                "--target {text:?}: write a resource address, KIND.NAME (e.g. volume.data)"
            ))
        })?),
        None => None,
    };
    let repositories =
        apply::open_repositories_reaching(&loaded.spec, &settings(&args.lock, None, "runs"))?;
    // Only the repositories read must be reached (`--repository NAME`: that one).
    let read = |name: &str| args.repository.as_deref().is_none_or(|only| only == name);
    if let Some(failure) = repositories
        .iter()
        .filter(|r| read(&r.name))
        .find_map(|r| r.unreachable.clone())
    {
        return Err(apply::ApplyError::Failed(failure).into());
    }
    let filter = apply::RunFilter {
        repository: args.repository.as_deref(),
        target: target.as_ref(),
        limit: args.limit,
    };
    let listing = apply::list_runs(&repositories, &filter)?;
    for (repository, file) in &listing.damaged {
        eprintln!(
            "warning: repository.{repository}: the run record runs/{} does not load ({}): it is \
             passed over",
            crate::repo::short(&file.name),
            file.detail
        );
    }
    if args.json {
        out!(
            "{}\n",
            serde_json::to_string_pretty(&listing.runs).expect("json")
        );
    } else {
        out!("{}", views::runs::render(&listing.runs, style));
    }
    Ok(Exit::Success)
}

/// Forgets the run records of `repository.NAME` past their retention (with
/// `dry_run`, counts them), saying so when there were any.
fn forget_old_runs(
    name: &str,
    repository: &crate::repo::Repository,
    dry_run: bool,
) -> Result<(), CliError> {
    let forgotten = repository.forget_runs(chrono::Utc::now(), dry_run)?;
    if forgotten > 0 {
        out!(
            "repository.{name}: {} {} past their retention\n",
            if dry_run { "would forget" } else { "forgot" },
            views::plural(forgotten, "run record")
        );
    }
    Ok(())
}

pub fn check(dir: &Path, args: CheckArgs) -> Result<Exit, CliError> {
    let read_data = match (&args.read_data, &args.read_data_subset) {
        (true, _) => Some(crate::repo::ReadData::All),
        (false, Some(text)) => {
            let percent: f64 = text.trim_end_matches('%').parse().map_err(|_| {
                CliError::Message(format!(
                    "--read-data-subset {text:?}: write a percentage like 10%"
                ))
            })?;
            if !(0.0..=100.0).contains(&percent) {
                return Err(CliError::Message(
                    "--read-data-subset must be between 0% and 100%".into(),
                ));
            }
            Some(crate::repo::ReadData::Subset(percent))
        }
        (false, None) => None,
    };
    if args.rehash && read_data.is_none() {
        return Err(CliError::Message(
            "--rehash hashes the blobs that --read-data or --read-data-subset reads: give one \
             of those too"
                .into(),
        ));
    }
    let mut failed = false;
    for (named, repository) in existing_repositories(dir, &args.spec, &args.lock, "check")? {
        let report = repository.check(crate::repo::CheckOptions {
            read_data,
            rehash: args.rehash,
        })?;
        out!(
            "repository.{} ({}): {} snapshots, {} packs, {} blobs{}\n",
            named.name,
            named.location,
            report.snapshots,
            report.packs,
            report.blobs,
            if read_data.is_some() {
                format!(", {} packs re-read", report.packs_read)
            } else {
                String::new()
            }
        );
        for note in &report.notes {
            out!("  note: {note}\n");
        }
        for problem in &report.problems {
            failed = true;
            let advice = match &problem.advice {
                Some(Advice::Forget { snapshot }) => format!(
                    "; `lifeboat forget --repository {} {snapshot}` removes it",
                    named.name
                ),
                None => String::new(),
            };
            out!("  error: {}: {}{advice}\n", problem.what, problem.detail);
            for (snapshot, resource) in &problem.affects {
                out!("    affects snapshot {snapshot} of {resource}\n");
            }
        }
        if report.is_ok() {
            out!("  no errors were found\n");
        }
    }
    if failed {
        Err(CliError::Message(
            "the check found damage (listed above): snapshots it affects may not restore fully"
                .into(),
        ))
    } else {
        Ok(Exit::Success)
    }
}

pub async fn forget(dir: &Path, args: ForgetArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, None, "forget");
    let (mut repositories, plan, damaged) = if args.snapshots.is_empty() {
        let request = BackupRequest {
            targets: args.targets.clone(),
            replace: Vec::new(),
            retention_only: true,
            tags: Vec::new(),
        };
        let planning = backup_planning(dir, &args.spec, &settings, &request).await?;
        (planning.repositories, planning.plan, Vec::new())
    } else {
        let loaded = load(dir, &args.spec)?;
        let request = ForgetRequest {
            snapshots: args.snapshots.clone(),
            repository: args.repository.clone(),
        };
        let ForgetPlanning {
            repositories,
            plan,
            damaged,
        } = plan_forget(&loaded, &request, &settings)?;
        (repositories, plan, damaged)
    };
    if !plan.changes.is_empty() || damaged.is_empty() {
        out!("{}", views::render_plan(&plan, style));
    }
    if !damaged.is_empty() {
        out!(
            "{}\n\n",
            style.bold(
                "lifeboat will forget these damaged snapshot files (they do not load, so \
                        their resource is unknown):"
            )
        );
        for snapshot in &damaged {
            out!("  - {} on {}\n", snapshot.short_id(), snapshot.repository);
        }
    }
    if !plan.has_changes() && damaged.is_empty() {
        return Ok(Exit::Success);
    }
    if args.dry_run {
        if args.prune {
            out!("\nThen prune would act on what they alone use:\n");
            for (name, location, prune) in
                apply::plan_prunes_after_forget(&plan, &damaged, &repositories)?
            {
                out!(
                    "{}",
                    views::prune::render_plan(
                        &name,
                        &location,
                        &prune.summary(),
                        &leftover_paths(&prune)
                    )
                );
            }
        }
        out!("\nDry run: nothing was forgotten.\n");
        return Ok(Exit::Success);
    }
    if !confirm(args.auto_approve, "forget these snapshots")? {
        out!("\nForget cancelled.\n");
        return Ok(Exit::Error);
    }
    out!("\n");
    let view = ProgressView::new(false, false);
    let events = |event: apply::Event| view.handle(&event);
    let mut report = apply::run_forget(&plan, &mut repositories, &settings, false, &events);
    apply::forget_damaged(&damaged, &mut repositories, &settings, &mut report, &events);
    if args.prune {
        apply::prune_after_forget(&mut repositories, &settings, &mut report, &events);
    }
    for named in &repositories {
        if let Some(repository) = &named.repository {
            forget_old_runs(&named.name, repository, false)?;
        }
    }
    out!("{}", views::render_report(PlanKind::Forget, &report, style));
    if !args.prune && report.forgotten > 0 {
        out!("The data they alone used stays until `lifeboat prune`.\n");
    }
    Ok(if report.failed() == 0 {
        Exit::Success
    } else {
        Exit::Error
    })
}

/// The spec's repositories that exist, opened for `command`; says which do
/// not exist yet (there is nothing to check or prune in them).
fn existing_repositories(
    dir: &Path,
    spec: &SpecArgs,
    lock: &LockArgs,
    command: &str,
) -> Result<Vec<(NamedRepository, crate::repo::Repository)>, CliError> {
    let loaded = load(dir, spec)?;
    let mut existing = Vec::new();
    for mut named in apply::open_repositories(&loaded.spec, &settings(lock, None, command))? {
        match named.repository.take() {
            Some(repository) => existing.push((named, repository)),
            None => out!(
                "repository.{} ({}): not created yet\n",
                named.name,
                named.location
            ),
        }
    }
    Ok(existing)
}

/// The paths of the temporary files `plan` removes, for its rendering.
fn leftover_paths(plan: &crate::repo::PrunePlan) -> Vec<String> {
    plan.leftovers().iter().map(|l| l.path()).collect()
}

pub fn prune(dir: &Path, args: PruneArgs) -> Result<Exit, CliError> {
    for (named, repository) in existing_repositories(dir, &args.spec, &args.lock, "prune")? {
        let plan = repository.plan_prune()?;
        if args.dry_run {
            out!(
                "{}",
                views::prune::render_plan(
                    &named.name,
                    &named.location,
                    &plan.summary(),
                    &leftover_paths(&plan)
                )
            );
            forget_old_runs(&named.name, &repository, true)?;
            continue;
        }
        let stats = repository.execute_prune(&plan)?;
        out!(
            "{}",
            views::prune::render_done(&named.name, &named.location, &stats)
        );
        forget_old_runs(&named.name, &repository, false)?;
    }
    Ok(Exit::Success)
}

pub fn migrate(dir: &Path, args: MigrateArgs) -> Result<Exit, CliError> {
    let mut repositories = existing_repositories(dir, &args.spec, &args.lock, "migrate")?;
    if let Some(wanted) = &args.repository {
        if !repositories.iter().any(|(named, _)| named.name == *wanted) {
            let names: Vec<String> = repositories
                .iter()
                .map(|(named, _)| named.name.clone())
                .collect();
            return Err(CliError::Message(format!(
                "--repository {wanted}: the spec has no existing repository of that name (it \
                 has: {})",
                names.join(", ")
            )));
        }
        repositories.retain(|(named, _)| named.name == *wanted);
    }
    for (named, repository) in repositories {
        if args.dry_run {
            let summary = repository.preview_migrate()?;
            out!(
                "{}",
                views::prune::render_migrate_plan(&named.name, &named.location, &summary)
            );
            continue;
        }
        let plan = repository.plan_migrate()?;
        out!(
            "{}",
            views::prune::render_migrate_plan(&named.name, &named.location, &plan.summary())
        );
        if plan.summary().packs_to_rewrite == 0 {
            continue;
        }
        let stats = repository.execute_migrate(&plan)?;
        out!(
            "{}",
            views::prune::render_migrated(&named.name, &named.location, &stats)
        );
    }
    Ok(Exit::Success)
}

pub fn unlock(dir: &Path, args: UnlockArgs) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let settings = OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "unlock".into(),
        cache_dir: None,
    };
    for named in apply::open_repositories(&loaded.spec, &settings)? {
        if let Some(repository) = &named.repository {
            let removed = repository.unlock()?;
            out!(
                "repository.{}: removed {removed} stale lock(s)\n",
                named.name
            );
        }
    }
    Ok(Exit::Success)
}

pub fn repair(dir: &Path, args: RepairArgs) -> Result<Exit, CliError> {
    for (named, repository) in existing_repositories(dir, &args.spec, &args.lock, "repair")? {
        let report = repository.repair(crate::repo::RepairOptions {
            dry_run: args.dry_run,
            read_data: args.read_data,
        })?;
        out!(
            "{}",
            views::repair::render(&named.name, &named.location, &report)
        );
    }
    Ok(Exit::Success)
}
