//! One function per command: load the spec, observe, plan, render, ask,
//! apply. What commands share (loading, addresses, confirmation, engines)
//! lives here; each group of commands has its own file.

mod backup;
mod browse;
mod drill;
mod init;
mod keys;
mod maintenance;
mod restore;
mod schedule;
mod spec_files;
mod status;

use super::args::{AccessArgs, CacheArgs, Cli, Command, LockArgs, SpecArgs};
use super::views::{ProgressView, Style};
use super::{CliError, Exit, interrupt, out};
use crate::apply::{self, Engines, Event, OpenSettings};
use crate::planning::{self, EngineSource, Loaded};
use crate::spec::VarInputs;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub async fn run(cli: Cli, style: Style) -> Result<Exit, CliError> {
    let dir = match (&cli.chdir, &cli.command) {
        (Some(_), Command::Man | Command::Completions(_)) => {
            return Err(CliError::Message(
                "--chdir does not apply to this command: it reads no spec".to_string(),
            ));
        }
        (chdir, _) => chdir.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    match cli.command {
        Command::Init(args) => init::init(&dir, args).await,
        Command::Validate(args) => spec_files::validate(&dir, args, style),
        Command::Plan(args) => backup::plan(&dir, args, style).await,
        Command::Apply(args) => backup::apply(&dir, args, style).await,
        Command::Snapshots(args) => maintenance::snapshots(&dir, args),
        Command::Runs(args) => maintenance::runs(&dir, args, style),
        Command::Status(args) => status::status(&dir, args, style),
        Command::Restore(args) => restore::restore(&dir, args, style).await,
        Command::Drill(args) => drill::drill(&dir, args, style).await,
        Command::Show(args) => backup::show(&dir, args, style),
        Command::Ls(args) => browse::ls(&dir, args),
        Command::Find(args) => browse::find(&dir, args),
        Command::Dump(args) => browse::dump(&dir, args),
        Command::Diff(args) => browse::diff(&dir, args).await,
        Command::Mount(args) => browse::mount(&dir, args).await,
        Command::Graph(args) => spec_files::graph(&dir, args, style).await,
        Command::Fmt(args) => spec_files::fmt(&dir, args),
        Command::Check(args) => maintenance::check(&dir, args),
        Command::Forget(args) => maintenance::forget(&dir, args, style).await,
        Command::Prune(args) => maintenance::prune(&dir, args),
        Command::Migrate(args) => maintenance::migrate(&dir, args),
        Command::Unlock(args) => maintenance::unlock(&dir, args),
        Command::Recover(args) => recover(&dir, args).await,
        Command::Repair(args) => maintenance::repair(&dir, args),
        Command::Key(command) => keys::key(&dir, command),
        Command::Schedule(args) => schedule::schedule(&dir, args),
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

/// The spec of `dir` with the `--var`s and `--var-file`s of `args`.
fn load(dir: &Path, args: &SpecArgs) -> Result<Loaded, CliError> {
    Loaded::load(dir, &var_inputs(args)?).map_err(CliError::Spec)
}

/// Engines connected for a planning, registered at once so an interrupt
/// cleans up after them.
fn connect_and_register() -> EngineSource<'static> {
    EngineSource::Connect {
        connected: &interrupt::register,
    }
}

fn settings(lock: &LockArgs, cache: Option<&CacheArgs>, command: &str) -> OpenSettings {
    OpenSettings {
        lock_timeout: lock.lock_timeout,
        command: command.to_string(),
        cache_dir: match cache {
            Some(cache) if !cache.no_cache => OpenSettings::default_cache_dir(),
            _ => None,
        },
    }
}

/// One line of `--json` output (`apply`, `restore`).
fn emit_json(line: apply::JsonLine) {
    if let Ok(text) = serde_json::to_string(&line) {
        out!("{text}\n");
    }
}

/// The plan as `--json` prints it (its first line), or as text.
fn print_plan(plan: &crate::plan::Plan, json: bool, style: Style) {
    if json {
        emit_json(apply::JsonLine::Plan {
            kind: apply::PlanTag::Plan,
            plan: Box::new(plan.clone()),
        });
    } else {
        out!("{}", super::views::render_plan(plan, style));
    }
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
    out!(
        "\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The journals of a run that applies a plan, both in the spec
/// directory's state directory and registered, so a signal starts again
/// what the quiescer stopped and names the restores left incomplete.
struct Journals {
    quiescer: std::sync::Arc<apply::Quiescer>,
    restores: std::sync::Arc<apply::RestoreJournal>,
}

/// This run's [`Journals`]: a new quiescer, and `restores` (the journal
/// the plan was made with).
fn journals(loaded: &Loaded, restores: apply::RestoreJournal) -> Journals {
    let quiescer = std::sync::Arc::new(apply::Quiescer::new(&loaded.state_dir()));
    interrupt::register_quiescer(quiescer.clone());
    let restores = std::sync::Arc::new(restores);
    interrupt::register_restores(restores.clone());
    Journals { quiescer, restores }
}

impl Journals {
    /// The apply run of a command that applies a plan of `loaded` with
    /// these journals: a new run id, this process's cancellation on
    /// SIGINT/SIGTERM, no tags (a caller that has other ones sets them
    /// with struct update syntax).
    fn apply_run<'a>(
        &'a self,
        loaded: &'a Loaded,
        engines: &'a Engines,
        settings: &'a OpenSettings,
        access: AccessArgs,
        events: &'a (dyn Fn(Event) + Sync),
    ) -> apply::Run<'a> {
        apply::Run {
            spec: &loaded.spec,
            engines,
            settings,
            access: access.into(),
            spec_digest: &loaded.digest,
            run_id: apply::new_run_id(),
            events,
            cancel: interrupt::cancellation(),
            quiescer: &self.quiescer,
            restores: &self.restores,
            tags: &[],
            totals: Default::default(),
        }
    }
}

/// Takes the run lock of the spec in `dir` for `command`, before anything
/// is touched: a second run on the same spec waits (`--lock-timeout`), then
/// refuses naming the first.
fn lock_run(dir: &Path, lock: &LockArgs, command: &str) -> Result<apply::RunLock, CliError> {
    let state_dir = dir.join(apply::workspace::DEFAULT_STATE_DIR);
    let lock = apply::lock_run(&state_dir, command, lock.lock_timeout)?;
    interrupt::register_run_lock(lock.path());
    if let Some(holder) = &lock.broken {
        eprintln!("Note: {holder} ended without releasing the run lock; it was broken.");
    }
    Ok(lock)
}

/// Starts again (or finishes creating) what killed lifeboat runs left
/// stopped, paused or created, before a run plans: each record says how
/// to reach its engine, so nothing here needs the spec's engines.
async fn recover_services(dir: &Path, view: &ProgressView) {
    let state_dir = dir.join(apply::workspace::DEFAULT_STATE_DIR);
    let recovered = apply::recover(&state_dir, &Engines::default()).await;
    // Records it could not act on are kept, and tried again (and reported)
    // once the spec's engines are connected (`remove_leftovers`).
    if !recovered.resumed.is_empty() {
        view.handle(&Event::ServicesRecovered {
            resumed: recovered.resumed,
            errors: Vec::new(),
        });
    }
}

/// `recover`: what a killed lifeboat left undone, undone now — the
/// services it stopped or paused run again, the containers a restore
/// created are started, its helpers are removed. The journal says where
/// each container is, so this works with the spec's variables unset, or
/// the spec broken: the spec only adds engines to look for helpers on.
async fn recover(dir: &Path, args: super::args::RecoverArgs) -> Result<Exit, CliError> {
    let _lock = lock_run(dir, &args.lock, "recover")?;
    let state_dir = dir.join(apply::workspace::DEFAULT_STATE_DIR);
    let mut notes = Vec::new();
    let engines = match load(dir, &args.spec) {
        Ok(loaded) => {
            planning::connect_engines(&loaded, &loaded.spec.addresses(), connect_and_register())
                .await
                .unwrap_or_default()
        }
        Err(_) => {
            notes.push(
                "the spec does not load (`lifeboat validate` says why): the journal was \
                 recovered without it, and leftover helpers looked for on the local engine only"
                    .to_string(),
            );
            Engines::connect_to(
                crate::spec::DEFAULT_ENGINE,
                &crate::engine::Connection::default(),
            )
            .await
        }
    };
    let mut report = apply::recover(&state_dir, &engines).await;
    let mut helpers = Vec::new();
    for (name, engine) in engines.connected() {
        match engine.remove_leftover_helpers().await {
            Ok(removed) => helpers.extend(removed.into_iter().map(|h| {
                format!(
                    "engine.{name}: helper container {} (of {}, pid {} on {})",
                    h.container, h.mounted, h.pid, h.host
                )
            })),
            Err(error) => helpers.push(format!(
                "engine.{name}: could not look for leftover helpers: {error}"
            )),
        }
    }
    // Scratch objects of killed drills (their journals say which).
    let drills = apply::drill::remove_drill_leftovers(&state_dir, &engines).await;
    helpers.extend(drills.removed.iter().map(|r| format!("drill scratch {r}")));
    report.errors.extend(
        drills
            .errors
            .iter()
            .map(|e| format!("a killed drill's scratch objects: {e}")),
    );
    if args.json {
        let value = serde_json::json!({
            "services": report,
            "helpers_removed": helpers,
            "notes": notes,
        });
        out!("{value}\n");
    } else {
        for note in &notes {
            eprintln!("Note: {note}");
        }
        out!("{}", super::views::recover::render(&report, &helpers));
    }
    Ok(if report.errors.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}

/// Undoes what killed lifeboat processes left: services they stopped or
/// paused run again, and their helper containers are removed, saying so.
async fn remove_leftovers(loaded: &Loaded, engines: &Engines, view: &ProgressView) {
    let recovered = apply::recover(&loaded.state_dir(), engines).await;
    if !recovered.resumed.is_empty() || !recovered.errors.is_empty() {
        view.handle(&Event::ServicesRecovered {
            resumed: recovered.resumed,
            errors: recovered.errors,
        });
    }
    for (name, engine) in engines.connected() {
        if let Ok(removed) = engine.remove_leftover_helpers().await
            && !removed.is_empty()
        {
            view.handle(&Event::LeftoversRemoved {
                engine: name.to_string(),
                containers: removed
                    .iter()
                    .map(|h| {
                        format!(
                            "{} (of volume {}, pid {} on {})",
                            h.container, h.mounted, h.pid, h.host
                        )
                    })
                    .collect(),
            });
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
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

/// Exit code of an apply or restore: 0 when everything the plan asked for
/// was done, 1 otherwise.
fn exit_of(report: &apply::ApplyReport) -> Exit {
    if report.is_complete() {
        Exit::Success
    } else {
        Exit::Error
    }
}
