//! One function per command: load the spec, observe, plan, render, ask, apply.

use super::args::{
    ApplyArgs, CheckArgs, Cli, Command, FmtArgs, ForgetArgs, GraphArgs, LockArgs, PlanArgs,
    PlanFormat, PruneArgs, RestoreArgs, ShowArgs, SnapshotsArgs, SpecArgs, UnlockArgs,
    ValidateArgs,
};
use super::views::{self, ProgressView, Style};
use super::{CliError, Exit};
use crate::apply::{self, NamedRepository, OpenSettings, RestoreSelection};
use crate::engine::DockerEngine;
use crate::graph::Graph;
use crate::plan::{self, Basis, Plan, PlanKind};
use crate::spec::{self, Address, Spec, VarInputs};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub async fn run(cli: Cli, style: Style) -> Result<Exit, CliError> {
    let dir = cli.chdir.clone().unwrap_or_else(|| PathBuf::from("."));
    match cli.command {
        Command::Validate(args) => validate(&dir, args),
        Command::Plan(args) => plan_command(&dir, args, style).await,
        Command::Apply(args) => apply_command(&dir, args, style).await,
        Command::Snapshots(args) => snapshots(&dir, args),
        Command::Restore(args) => restore_command(&dir, args, style).await,
        Command::Show(args) => show(args, style),
        Command::Graph(args) => graph(&dir, args),
        Command::Fmt(args) => fmt(&dir, args),
        Command::Check(args) => check(&dir, args),
        Command::Forget(args) => forget_command(&dir, args, style).await,
        Command::Prune(args) => prune_command(&dir, args),
        Command::Unlock(args) => unlock(&dir, args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "lifeboat", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(Exit::Success)
        }
    }
}

/// The spec, its graph and its digest: what every command starts from.
struct Loaded {
    spec: Spec,
    graph: Graph,
    digest: String,
}

fn var_inputs(args: &SpecArgs) -> Result<VarInputs, CliError> {
    let mut cli_vars = Vec::new();
    for pair in &args.vars {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::Message(format!(
                "--var {pair:?}: write it as NAME=VALUE"
            )));
        };
        cli_vars.push((name.trim().to_string(), value.to_string()));
    }
    Ok(VarInputs {
        cli_vars,
        var_files: args.var_files.clone(),
        env: std::env::vars()
            .filter(|(k, _)| k.starts_with("LIFEBOAT_VAR_"))
            .collect(),
    })
}

fn load(dir: &Path, args: &SpecArgs) -> Result<Loaded, CliError> {
    let spec = spec::load_dir(dir, &var_inputs(args)?).map_err(CliError::Spec)?;
    let graph = Graph::build(&spec).map_err(CliError::Spec)?;
    let digest = spec_digest(&spec);
    Ok(Loaded {
        spec,
        graph,
        digest,
    })
}

/// Digest of the evaluated spec (its serialised form holds no secret values).
fn spec_digest(spec: &Spec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

fn parse_addresses(spec: &Spec, texts: &[String], flag: &str) -> Result<Vec<Address>, CliError> {
    texts
        .iter()
        .map(|text| {
            let address = Address::parse(text).ok_or_else(|| {
                CliError::Message(format!(
                    "{flag} {text:?}: write a resource address like volume.data"
                ))
            })?;
            let declared = spec.volumes.iter().any(|v| v.name == address.name)
                && address.kind == spec::ResourceKind::Volume;
            if !declared {
                let known: Vec<String> = spec
                    .volumes
                    .iter()
                    .map(|v| format!("volume.{}", v.name))
                    .collect();
                return Err(CliError::Message(format!(
                    "{flag} {text}: the spec declares no such volume (declared: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Ok(address)
        })
        .collect()
}

fn settings(lock: &LockArgs, command: &str) -> OpenSettings {
    OpenSettings {
        lock_timeout: lock.lock_timeout,
        command: command.to_string(),
        cache_dir: if lock.no_cache {
            None
        } else {
            OpenSettings::default_cache_dir()
        },
    }
}

fn validate(dir: &Path, args: ValidateArgs) -> Result<Exit, CliError> {
    let result = load(dir, &args.spec);
    if args.json {
        let diagnostics = match &result {
            Ok(_) => Vec::new(),
            Err(CliError::Spec(d)) => d.to_json(),
            Err(CliError::Message(m)) => {
                vec![serde_json::json!({"severity": "error", "message": m})]
            }
        };
        let valid = result.is_ok();
        let out = serde_json::json!({
            "format_version": plan::FORMAT_VERSION,
            "valid": valid,
            "error_count": diagnostics.len(),
            "diagnostics": diagnostics,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(if valid { Exit::Success } else { Exit::Error });
    }
    let loaded = result?;
    let count = loaded.spec.volumes.len();
    println!(
        "Success! The spec is valid ({} file{}, {count} volume{}).",
        loaded.spec.files.len(),
        if loaded.spec.files.len() == 1 {
            ""
        } else {
            "s"
        },
        if count == 1 { "" } else { "s" }
    );
    Ok(Exit::Success)
}

struct BackupPlanning {
    loaded: Loaded,
    /// What the repositories remembered (settings, restore times).
    applied: Option<plan::AppliedState>,
    repositories: Vec<NamedRepository>,
    /// `None` for retention-only plans, which need no engine.
    engine: Option<DockerEngine>,
    plan: Plan,
}

/// What a backup-kind plan covers.
struct Scope<'a> {
    targets: &'a [String],
    replace: &'a [String],
    /// `lifeboat forget`: only retention, no engine, no backups.
    retention_only: bool,
}

async fn backup_planning(
    dir: &Path,
    spec_args: &SpecArgs,
    settings: &OpenSettings,
    scope: Scope<'_>,
) -> Result<BackupPlanning, CliError> {
    let loaded = load(dir, spec_args)?;
    let targets = parse_addresses(&loaded.spec, scope.targets, "--target")?;
    let replace = parse_addresses(&loaded.spec, scope.replace, "--replace")?;
    let order = if targets.is_empty() {
        loaded.graph.backup_order()
    } else {
        loaded.graph.with_dependencies(&targets)
    };
    let repositories = apply::open_repositories(&loaded.spec, settings)?;
    let (engine, volumes_digest) = if scope.retention_only {
        (None, String::new())
    } else {
        let engine = DockerEngine::connect(None).await?;
        apply::check_volumes_exist(&engine, &loaded.spec, &order).await?;
        let digest = apply::volumes_digest(&engine, &loaded.spec, &order).await?;
        (Some(engine), digest)
    };
    let observed = apply::backup_observations(&repositories)?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        volumes_digest,
    };
    let names = apply::repository_names(&loaded.spec);
    let applied = apply::last_applied_state(&repositories)?;
    let plan = plan::backup_plan(plan::BackupInputs {
        spec: &loaded.spec,
        order: &order,
        repositories: &names,
        observed: &observed,
        replace: &replace,
        retention_only: scope.retention_only,
        applied: applied.as_ref(),
        basis,
        now: Utc::now(),
    });
    Ok(BackupPlanning {
        loaded,
        applied,
        repositories,
        engine,
        plan,
    })
}

async fn plan_command(dir: &Path, args: PlanArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, "plan");
    let scope = Scope {
        targets: &args.targets,
        replace: &args.replace,
        retention_only: false,
    };
    let planning = backup_planning(dir, &args.spec, &settings, scope).await?;
    let format = if args.json {
        PlanFormat::Json
    } else {
        args.format
    };
    match format {
        PlanFormat::Json => println!("{}", planning.plan.to_saved()),
        PlanFormat::Markdown => print!("{}", views::markdown::render(&planning.plan)),
        PlanFormat::Human => print!("{}", views::render_plan(&planning.plan, style)),
    }
    if let Some(out) = &args.out {
        write_atomically(out, planning.plan.to_saved().as_bytes())?;
        if format == PlanFormat::Human {
            println!(
                "\nSaved the plan to {}. To perform exactly these actions, run:\n    lifeboat apply {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if args.detailed_exitcode && planning.plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// Asks for `yes` on the terminal; refuses when there is no terminal to ask.
fn confirm(auto_approve: bool, what: &str) -> Result<bool, CliError> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Message(format!(
            "refusing to {what} without confirmation: there is no terminal to ask. Review the \
             plan, then pass --auto-approve"
        )));
    }
    print!(
        "\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

async fn apply_command(dir: &Path, args: ApplyArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, "apply");
    let BackupPlanning {
        loaded,
        applied,
        mut repositories,
        engine,
        plan,
    } = backup_planning(
        dir,
        &args.spec,
        &settings,
        Scope {
            targets: &args.targets,
            replace: &args.replace,
            retention_only: false,
        },
    )
    .await?;
    // Backup plans (not retention-only ones) come with a connected engine.
    let engine = match engine {
        Some(engine) => engine,
        None => DockerEngine::connect(None).await?,
    };
    // A saved plan is applied exactly, and only while the world still matches it.
    let plan = match &args.plan_file {
        None => plan,
        Some(file) => {
            let saved = read_saved_plan(file)?;
            let stale = saved.staleness(&plan.basis);
            if !stale.is_empty() {
                return Err(CliError::Message(format!(
                    "the saved plan {} is stale: {}. Make a new one with `lifeboat plan --out {}` \
                     and review it again",
                    file.display(),
                    stale.join("; "),
                    file.display()
                )));
            }
            saved
        }
    };
    let json = args.json;
    let emit = |value: serde_json::Value| println!("{value}");
    if json {
        emit(serde_json::json!({"type": "plan", "plan": plan}));
    } else {
        print!("{}", views::render_plan(&plan, style));
    }
    if !plan.has_changes() {
        if json {
            emit(serde_json::json!({"type": "summary", "backed_up": 0, "failed": 0}));
        } else {
            println!("\nNo changes. Every volume is up to date.");
        }
        return Ok(Exit::Success);
    }
    // Applying a reviewed plan file is the approval, as in Terraform.
    let approved = args.auto_approve || args.plan_file.is_some();
    if !confirm(approved, "perform these actions")? {
        println!("\nApply cancelled.");
        return Ok(Exit::Error);
    }
    let view = ProgressView::new(!json && std::io::stderr().is_terminal());
    if !json {
        println!();
    }
    let applied = plan::AppliedState {
        settings: Some(plan::AppliedSettings::of(&loaded.spec)),
        restores: applied.map(|state| state.restores).unwrap_or_default(),
    };
    let report = apply::run_backup(
        &plan,
        &engine,
        &mut repositories,
        apply::BackupContext {
            access: args.access.into(),
            settings: &settings,
            spec_digest: &loaded.digest,
            applied,
        },
        &|event| {
            if json {
                emit(serde_json::to_value(&event).expect("events serialise"));
            } else {
                view.handle(&event);
            }
        },
    )
    .await;
    if json {
        emit(serde_json::json!({
            "type": "summary",
            "backed_up": report.succeeded(),
            "forgotten": report.forgotten,
            "bytes_freed": report.bytes_freed(),
            "failed": report.failed(),
            "outcomes": report.outcomes,
            "errors": report.errors,
        }));
    } else {
        print!("{}", views::render_report(PlanKind::Backup, &report, style));
    }
    Ok(if report.failed() == 0 {
        Exit::Success
    } else {
        Exit::Error
    })
}

fn read_saved_plan(file: &Path) -> Result<Plan, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::Message(format!("cannot read the plan file {}: {e}", file.display()))
    })?;
    Plan::from_saved(&text).map_err(|e| CliError::Message(format!("{}: {e}", file.display())))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let temporary = path.with_extension("lifeboat-tmp");
    let result = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|_| std::fs::rename(&temporary, path));
    result.map_err(|e| CliError::Message(format!("cannot write {}: {e}", path.display())))
}

fn show(args: ShowArgs, style: Style) -> Result<Exit, CliError> {
    let plan = read_saved_plan(&args.file)?;
    if args.json {
        println!("{}", plan.to_saved());
    } else {
        print!("{}", views::render_plan(&plan, style));
    }
    Ok(Exit::Success)
}

fn graph(dir: &Path, args: GraphArgs) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    print!("{}", loaded.graph.to_dot(args.restore));
    Ok(Exit::Success)
}

fn spec_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| CliError::Message(format!("cannot read {}: {e}", current.display())))?;
        for entry in entries {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_dir() {
                if recursive && !hidden {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "hcl") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn fmt(dir: &Path, args: FmtArgs) -> Result<Exit, CliError> {
    let mut unformatted = Vec::new();
    for file in spec_files(dir, args.recursive)? {
        let text = spec::read_source(&file).map_err(CliError::Spec)?.text;
        let formatted = spec::fmt::format_source(&file, &text).map_err(CliError::Spec)?;
        if formatted == text {
            continue;
        }
        if args.diff {
            let name = file.display().to_string();
            print!(
                "{}",
                similar::TextDiff::from_lines(&text, &formatted)
                    .unified_diff()
                    .header(&name, &name)
            );
        }
        if !args.check {
            write_atomically(&file, formatted.as_bytes())?;
        }
        if !args.diff {
            println!("{}", file.display());
        }
        unformatted.push(file);
    }
    Ok(if args.check && !unformatted.is_empty() {
        Exit::Unformatted
    } else {
        Exit::Success
    })
}

#[derive(serde::Serialize)]
struct SnapshotRow {
    id: String,
    short_id: String,
    resource: String,
    time: chrono::DateTime<Utc>,
    bytes: u64,
    files: u64,
    repository: String,
    hostname: String,
    tags: Vec<String>,
}

fn snapshots(dir: &Path, args: SnapshotsArgs) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let repositories = apply::open_repositories(&loaded.spec, &settings(&args.lock, "snapshots"))?;
    let mut rows = Vec::new();
    for named in &repositories {
        let Some(repository) = &named.repository else {
            continue;
        };
        for snapshot in repository.snapshots()? {
            let id = snapshot.id.to_string();
            rows.push(SnapshotRow {
                short_id: id[..8.min(id.len())].to_string(),
                id,
                resource: snapshot.resource.clone(),
                time: snapshot.time,
                bytes: snapshot.summary.bytes,
                files: snapshot.summary.files,
                repository: named.name.clone(),
                hostname: snapshot.hostname.clone(),
                tags: snapshot.source.tags.clone(),
            });
        }
    }
    rows.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        println!("No snapshots yet: `lifeboat apply` takes the first ones.");
        return Ok(Exit::Success);
    }
    let width = rows
        .iter()
        .map(|r| r.resource.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<8}  {:<width$}  {:<20}  {:>10}  {:>8}  REPOSITORY",
        "ID", "RESOURCE", "TIME", "BYTES", "FILES"
    );
    for row in &rows {
        let tags = if row.tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", row.tags.join(", "))
        };
        println!(
            "{:<8}  {:<width$}  {:<20}  {:>10}  {:>8}  {}{tags}",
            row.short_id,
            row.resource,
            row.time.format("%Y-%m-%d %H:%M:%S"),
            views::human_bytes(row.bytes),
            row.files,
            row.repository
        );
    }
    println!(
        "\n{} snapshot{}.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(Exit::Success)
}

async fn restore_command(dir: &Path, args: RestoreArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, "restore");
    let loaded = load(dir, &args.spec)?;
    let targets = parse_addresses(&loaded.spec, &args.targets, "--target")?;
    let order: Vec<Address> = loaded
        .graph
        .restore_order()
        .into_iter()
        .filter(|a| targets.is_empty() || targets.contains(a))
        .collect();
    let mut repositories = apply::open_repositories(&loaded.spec, &settings)?;
    let engine = DockerEngine::connect(None).await?;
    let selection = if args.snapshot == "latest" {
        RestoreSelection::Latest
    } else {
        RestoreSelection::Id(args.snapshot.clone())
    };
    let observed =
        apply::restore_observations(&engine, &loaded.spec, &order, &repositories, &selection)
            .await?;
    let basis = Basis {
        spec_digest: loaded.digest.clone(),
        repositories: apply::repository_basis(&repositories)?,
        volumes_digest: apply::volumes_digest(&engine, &loaded.spec, &order).await?,
    };
    let plan = plan::restore_plan(plan::RestoreInputs {
        spec: &loaded.spec,
        order: &order,
        observed: &observed,
        replace: args.replace,
        basis,
        now: Utc::now(),
    })?;
    print!("{}", views::render_plan(&plan, style));
    if !plan.has_changes() {
        return Ok(Exit::Success);
    }
    if !confirm(args.auto_approve, "restore these volumes")? {
        println!("\nRestore cancelled.");
        return Ok(Exit::Error);
    }
    println!();
    let view = ProgressView::new(std::io::stderr().is_terminal());
    let report = apply::run_restore(
        &plan,
        &engine,
        args.access.into(),
        &mut repositories,
        &settings,
        &loaded.digest,
        &|event| view.handle(&event),
    )
    .await;
    print!(
        "{}",
        views::render_report(PlanKind::Restore, &report, style)
    );
    Ok(if report.failed() == 0 {
        Exit::Success
    } else {
        Exit::Error
    })
}

fn check(dir: &Path, args: CheckArgs) -> Result<Exit, CliError> {
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
    let mut failed = false;
    for (named, repository) in existing_repositories(dir, &args.spec, &args.lock, "check")? {
        let report = repository.check(crate::repo::CheckOptions { read_data })?;
        println!(
            "repository.{} ({}): {} snapshots, {} packs, {} blobs{}",
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
            println!("  note: {note}");
        }
        for problem in &report.problems {
            failed = true;
            println!("  error: {}: {}", problem.what, problem.detail);
            for (snapshot, resource) in &problem.affects {
                println!("    affects snapshot {snapshot} of {resource}");
            }
        }
        if report.is_ok() {
            println!("  no errors were found");
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

async fn forget_command(dir: &Path, args: ForgetArgs, style: Style) -> Result<Exit, CliError> {
    let settings = settings(&args.lock, "forget");
    let (mut repositories, plan) = if args.snapshots.is_empty() {
        let scope = Scope {
            targets: &args.targets,
            replace: &[],
            retention_only: true,
        };
        let planning = backup_planning(dir, &args.spec, &settings, scope).await?;
        (planning.repositories, planning.plan)
    } else {
        let loaded = load(dir, &args.spec)?;
        let repositories = apply::open_repositories(&loaded.spec, &settings)?;
        let requested = apply::find_snapshots(&repositories, &args.snapshots)?;
        let basis = Basis {
            spec_digest: loaded.digest.clone(),
            repositories: apply::repository_basis(&repositories)?,
            volumes_digest: String::new(),
        };
        let plan = plan::forget_plan(&requested, basis, Utc::now());
        (repositories, plan)
    };
    print!("{}", views::render_plan(&plan, style));
    if !plan.has_changes() {
        return Ok(Exit::Success);
    }
    if args.dry_run {
        println!("\nDry run: nothing was forgotten.");
        return Ok(Exit::Success);
    }
    if !confirm(args.auto_approve, "forget these snapshots")? {
        println!("\nForget cancelled.");
        return Ok(Exit::Error);
    }
    println!();
    let view = ProgressView::new(false);
    let report = apply::run_forget(&plan, &mut repositories, &settings, args.prune, &|event| {
        view.handle(&event)
    });
    print!("{}", views::render_report(PlanKind::Forget, &report, style));
    if !args.prune && report.forgotten > 0 {
        println!("The data they alone used stays until `lifeboat prune`.");
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
    for mut named in apply::open_repositories(&loaded.spec, &settings(lock, command))? {
        match named.repository.take() {
            Some(repository) => existing.push((named, repository)),
            None => println!(
                "repository.{} ({}): not created yet",
                named.name, named.location
            ),
        }
    }
    Ok(existing)
}

fn prune_command(dir: &Path, args: PruneArgs) -> Result<Exit, CliError> {
    for (named, repository) in existing_repositories(dir, &args.spec, &args.lock, "prune")? {
        let stats = repository.prune(args.dry_run)?;
        println!(
            "repository.{} ({}): {} {}, {} repacked, {} {}",
            named.name,
            named.location,
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            views::plural(stats.packs_deleted as usize, "pack"),
            stats.packs_repacked,
            views::human_bytes(stats.bytes_freed),
            if args.dry_run { "to free" } else { "freed" },
        );
    }
    Ok(Exit::Success)
}

fn unlock(dir: &Path, args: UnlockArgs) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let settings = OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "unlock".into(),
        cache_dir: None,
    };
    for named in apply::open_repositories(&loaded.spec, &settings)? {
        if let Some(repository) = &named.repository {
            let removed = repository.unlock()?;
            println!("repository.{}: removed {removed} stale lock(s)", named.name);
        }
    }
    Ok(Exit::Success)
}
