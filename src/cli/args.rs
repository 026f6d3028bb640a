//! Command-line arguments (clap). Shell completions and the man page are
//! generated from these definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Declarative backup and restore for Docker hosts",
    long_about = "lifeboat reads the *.hcl files of a directory describing what to protect \
                  (Docker volumes, bind-mounted directories, images, services and database \
                  dumps, their policies and repositories), plans what is due, and applies \
                  backups and ordered restores.",
    after_help = "Exit codes: 0 success, 1 error, 2 changes pending (with --detailed-exitcode), \
                  3 unformatted files (fmt --check), 4 a failed drill (drill); `status` has its own (status --help)."
)]
pub struct Cli {
    /// Read the spec from DIR instead of the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Never color the output (color is only used on a terminal anyway).
    #[arg(long, global = true)]
    pub no_color: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a first spec from what runs on the engine now.
    Init(InitArgs),
    /// Check the spec files: syntax, references, types, durations.
    Validate(ValidateArgs),
    /// Show what apply would back up, and why.
    Plan(PlanArgs),
    /// Back up what is due, in dependency order, after confirmation.
    Apply(ApplyArgs),
    /// List the snapshots in the repositories.
    Snapshots(SnapshotsArgs),
    /// List the recorded runs (apply, restore), newest first: what each
    /// did, failed and skipped. Needs no Docker engine.
    Runs(RunsArgs),
    /// Is every resource within its RPO? Per resource: its copies' age,
    /// its last backup, its size against its history. Needs no Docker
    /// engine; exit codes for monitors (see --help).
    Status(StatusArgs),
    /// Restore what the spec protects (images, volumes, binds, services,
    /// dumps) from snapshots, in dependency order, after showing a restore plan.
    Restore(RestoreArgs),
    /// Rehearse a restore: restore into scratch objects on an isolated
    /// network, run each `verify`, compare the content with the snapshots,
    /// measure RTO and RPO against the goals, remove every scratch object,
    /// and report. Exit codes: 0 passed, 4 a check failed or a goal was
    /// missed, 1 the drill could not be run or cleaned up.
    Drill(DrillArgs),
    /// Show a saved plan (from `plan --out FILE`).
    Show(ShowArgs),
    /// List what a snapshot holds: a tree's files, an image's layers.
    Ls(LsArgs),
    /// Find which snapshots hold paths matching a glob, newest first.
    Find(FindArgs),
    /// Write one file of a snapshot (a directory as a tar stream, or a
    /// dump's stream) to stdout.
    Dump(DumpArgs),
    /// What changed between two snapshots of a resource, or from the
    /// latest snapshot of a volume or bind to its live tree.
    Diff(DiffArgs),
    /// Browse every snapshot as a read-only file system (FUSE) until
    /// Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`.
    Mount(MountArgs),
    /// Print the dependency graph as DOT (the order apply and restore use).
    Graph(GraphArgs),
    /// Rewrite spec files in the canonical layout, keeping comments.
    Fmt(FmtArgs),
    /// Verify the repositories' structure and, optionally, their data.
    Check(CheckArgs),
    /// Forget snapshots: those retention lets go, or the ones named; then prune.
    Forget(ForgetArgs),
    /// Delete the data no snapshot needs any more (after forget).
    Prune(PruneArgs),
    /// Rewrite the blobs an older lifeboat sealed (repository format 3)
    /// in format 4's sealing, which proves their ids on every read.
    Migrate(MigrateArgs),
    /// Remove stale locks (never a live one).
    Unlock(UnlockArgs),
    /// Start again the services a killed lifeboat stopped or paused for a
    /// copy, and remove its helper containers.
    Recover(RecoverArgs),
    /// Rebuild the index from the packs; say which snapshots need lost data.
    Repair(RepairArgs),
    /// Manage a repository's keys: list, add, remove, passwd, export.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the crontab line, or the systemd service and timer, that run
    /// `apply` every `schedule.every` of the spec.
    Schedule(ScheduleArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

impl Command {
    /// Commands that change nothing: they may end as soon as nobody reads
    /// their output.
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Validate(_)
                | Command::Plan(PlanArgs { out: None, .. })
                | Command::Snapshots(_)
                | Command::Runs(_)
                | Command::Status(StatusArgs {
                    prometheus: None,
                    notify: false,
                    ..
                })
                | Command::Show(_)
                | Command::Graph(_)
                | Command::Schedule(ScheduleArgs { write: None, .. })
                | Command::Completions(_)
                | Command::Man
        )
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The saved plan file.
    pub file: PathBuf,
    /// Print it as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[group(id = "source", required = true, multiple = false)]
pub struct InitArgs {
    /// Describe every container on the engine (`DOCKER_HOST`, else the local socket).
    #[arg(long, group = "source")]
    pub from_engine: bool,
    /// Describe the containers of one compose project (their
    /// `com.docker.compose.project` label), with `depends_on` from compose.
    #[arg(long, group = "source", value_name = "PROJECT")]
    pub from_compose: Option<String>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The restore graph (images → volumes → services → dumps) instead of the backup one.
    #[arg(long)]
    pub restore: bool,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Exit 3 when a file is not formatted, changing nothing.
    #[arg(long)]
    pub check: bool,
    /// Print the changes as a unified diff.
    #[arg(long)]
    pub diff: bool,
    /// Also format *.hcl files in subdirectories.
    #[arg(long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Re-read and re-authenticate every blob.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Re-read this percentage of the packs (e.g. 10%).
    #[arg(long, value_name = "N%")]
    pub read_data_subset: Option<String>,
    /// With --read-data(-subset): hash every blob again, also those whose
    /// decryption already proves their id (format 4 sealing).
    #[arg(long)]
    pub rehash: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without SNAPSHOT ids, forgets what the policies' retention rules no \
                        longer keep (what `apply` would forget, without backing up). Snapshots \
                        tagged pre-restore, and the newest snapshot carrying each tag \
                        (`apply --tag`), are only forgotten by id. Run records (`lifeboat \
                        runs`) are kept to the newest 1000 runs and none older than 400 days, \
                        always with the newest record of the applied settings and of each \
                        resource's restore."
)]
pub struct ForgetArgs {
    /// Snapshot ids (or unique prefixes) to forget. None: apply the retention rules.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Limit retention to ADDR (e.g. volume.data; repeatable).
    #[arg(long = "target", value_name = "ADDR", conflicts_with = "snapshots")]
    pub targets: Vec<String>,
    /// Forget the SNAPSHOTs named in repository NAME only (needed when an id
    /// is in several repositories: each holds its own copy).
    #[arg(long, value_name = "NAME", requires = "snapshots")]
    pub repository: Option<String>,
    /// Then delete the data the forgotten snapshots alone used.
    #[arg(long)]
    pub prune: bool,
    /// Show what would be forgotten, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Also forgets the run records (`lifeboat runs`) past their retention: the \
                  newest 1000 runs are kept and none older than 400 days, always with the \
                  newest record of the applied settings and of each resource's restore."
)]
pub struct PruneArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Count what would be deleted, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "A repository made by lifeboat before format 4 keeps working as it is: its \
                  config becomes format 4 at the first write, and new blobs are sealed bound \
                  to their ids. migrate repacks the packs that still hold older blobs (under \
                  the exclusive lock, crash-safe in prune's order: new packs, the index, then \
                  the old packs deleted), so that every read is proven by its decryption. \
                  Blob ids stay as they are (no deduplication is lost). Plaintext \
                  repositories have nothing to migrate."
)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Count what would be rewritten, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the repository NAME (default: every repository of the spec).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "After packs were lost or damaged or index files damaged: rebuilds the index \
                  from the packs' own headers, copies every blob that authenticates out of \
                  damaged packs into new ones before removing them, then lists the snapshots \
                  that need data no pack holds. `apply --replace ADDR` stores such data again \
                  when the volume still holds it."
)]
pub struct RepairArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Say what would be repaired, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read every pack whole and verify every blob (finds damage inside packs).
    #[arg(long)]
    pub read_data: bool,
}

/// A snapshot as the single-file commands take it: an id (or unique
/// prefix), `latest:ADDR`, `ADDR` alone (its latest snapshot), or
/// `tag:KEY=VALUE:ADDR` (its newest snapshot with that tag).
#[derive(Debug, Args)]
pub struct LsArgs {
    /// `ID`, `latest:volume.data`, `volume.data` or
    /// `tag:release=v1.4.2:volume.data`.
    #[arg(value_name = "SNAPSHOT|ADDR")]
    pub snapshot: String,
    /// The directory to list (default: the root).
    #[arg(value_name = "PATH", default_value = "")]
    pub path: String,
    /// Everything under PATH, not only its entries.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Modes, owners, sizes and times.
    #[arg(long, short = 'l')]
    pub long: bool,
    /// Print the entries as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// A glob (`*.conf`, `config/**/app.*`): matched against each entry's
    /// name, or its whole path when the pattern holds a `/`.
    #[arg(value_name = "PATTERN")]
    pub pattern: String,
    /// Only the snapshots of ADDR (repeatable; default: every tree snapshot).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Print the matches as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// `ID`, `latest:volume.data`, `volume.data` or
    /// `tag:release=v1.4.2:volume.data`.
    #[arg(value_name = "SNAPSHOT|ADDR")]
    pub snapshot: String,
    /// The file to write, or a directory to write as a tar stream (not for
    /// a dump's stream, which is written whole).
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot (`ID`, `latest:ADDR`, `ADDR` for its latest, or
    /// `tag:KEY=VALUE:ADDR` for its newest with that tag).
    #[arg(value_name = "A")]
    pub older: String,
    /// The newer snapshot of the same resource; without it, A is compared
    /// with the live volume or bind (read only: nothing is backed up or
    /// stopped).
    #[arg(value_name = "B")]
    pub newer: Option<String>,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// How the live tree is read (without B).
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing directory: `/volume.data/2026-12-06T02:00:00Z/…` and
    /// `/volume.data/latest` appear under it.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// Only the snapshots of ADDR (repeatable; default: every snapshot).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List each repository's key files; `*` marks the one the spec's
    /// passphrase opens.
    List(KeyListArgs),
    /// Add a key: another passphrase for the same repository (or, with
    /// --master-key, one made from a `key export` when no passphrase works).
    Add(KeyAddArgs),
    /// Remove a key (never the one in use, nor the last one).
    Remove(KeyRemoveArgs),
    /// Change the passphrase: add a key for the new one, then remove the
    /// one in use. Update the environment variable the spec names after.
    Passwd(KeyPasswdArgs),
    /// Print the master key as a paper copy (JSON). Whoever holds it can
    /// read every backup: keep it offline.
    Export(KeyRepositoryArgs),
}

/// Which repository a key command acts on, and how it is opened.
#[derive(Debug, Args)]
pub struct KeyRepositoryArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// The repository (needed when the spec declares several; `key list`
    /// shows every one without it).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    #[command(flatten)]
    pub target: KeyRepositoryArgs,
    /// Print the keys as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a new passphrase comes from: never the command line (it would sit
/// in the shell's history and the process list).
#[derive(Debug, Args)]
pub struct NewPassphraseArgs {
    /// Read the new passphrase from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "new_passphrase_file")]
    pub new_passphrase_env: Option<String>,
    /// Read the new passphrase from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyAddArgs {
    #[command(flatten)]
    pub target: KeyRepositoryArgs,
    #[command(flatten)]
    pub new_passphrase: NewPassphraseArgs,
    /// Make the key from this `lifeboat key export` file instead of the
    /// spec's passphrase (for a repository no passphrase opens any more).
    #[arg(long, value_name = "FILE")]
    pub master_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The key's id, or a unique prefix of it (`key list` shows them).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub target: KeyRepositoryArgs,
}

#[derive(Debug, Args)]
pub struct KeyPasswdArgs {
    #[command(flatten)]
    pub target: KeyRepositoryArgs,
    #[command(flatten)]
    pub new_passphrase: NewPassphraseArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[group(id = "scheduler", required = true, multiple = false)]
#[command(
    after_help = "The interval is the spec's `schedule { every = \"1h\" }`, which plans also use: \
                  a resource is backed up when its snapshot would pass its rpo before the next \
                  run, so one frequent timer serves every rpo. The run waits up to half the \
                  interval for a previous one still holding the lock. The passphrase and other \
                  secrets come from --env-file, never from the printed units. docs/scheduling.md \
                  shows the whole setup."
)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// A crontab line, logging to syslog through `logger`.
    #[arg(long, group = "scheduler")]
    pub cron: bool,
    /// A systemd service and timer, logging to the journal.
    #[arg(long, group = "scheduler")]
    pub systemd: bool,
    /// The file of KEY='value' lines the run's environment comes from (the
    /// passphrase, S3 keys).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/lifeboat/lifeboat.env"
    )]
    pub env_file: PathBuf,
    /// Write the service and timer into DIR (e.g. /etc/systemd/system)
    /// instead of printing them.
    #[arg(long, value_name = "DIR", requires = "systemd")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SpecArgs {
    /// Set a variable: --var name=value (repeatable; wins over files and environment).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variable values from an HCL file (repeatable; later files win).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct LockArgs {
    /// How long to wait for a lock (the spec's run lock, a repository's)
    /// held by another lifeboat (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
}

/// Only on the commands that read volumes (a restore with `--replace`
/// reads one for its safety snapshot).
#[derive(Debug, Args, Clone, Copy)]
pub struct CacheArgs {
    /// Do not use the file-metadata cache of direct-mode backups (read every
    /// file). The cache lives in $LIFEBOAT_CACHE_DIR, else
    /// $XDG_CACHE_HOME/lifeboat, else ~/.cache/lifeboat.
    #[arg(long)]
    pub no_cache: bool,
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e}: write a duration like 30s, 5m or 1h"))
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Print diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Exit 0 when nothing is to do, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Limit the plan to ADDR (e.g. volume.data, dump.pg; repeatable): a backup target is
    /// backed up alone, without what it depends on (each snapshot stands on its own).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Back ADDR up even when it is not due (repeatable).
    #[arg(long = "replace", value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Print the plan as JSON (same as --format json).
    #[arg(long)]
    pub json: bool,
    /// How to print the plan: human (the default), json, or markdown (a
    /// pull-request comment).
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
    /// Save the plan to FILE, to apply exactly it later with `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Tag the snapshots of the run KEY=VALUE (e.g. release=v1.4.2;
    /// repeatable): every resource is backed up, so the tag marks the
    /// whole stack as it is now. Saved with --out.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A saved plan (from `plan --out FILE`) to apply exactly; refused when stale.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Limit the run to ADDR, backed up alone without what it depends on (repeatable; not
    /// with a plan FILE).
    #[arg(long = "target", value_name = "ADDR", conflicts_with = "plan_file")]
    pub targets: Vec<String>,
    /// Back ADDR up even when it is not due (repeatable; not with a plan FILE).
    #[arg(long = "replace", value_name = "ADDR", conflicts_with = "plan_file")]
    pub replace: Vec<String>,
    /// Tag the snapshots of the run KEY=VALUE (e.g. release=v1.4.2;
    /// repeatable): every resource is backed up, so the tag marks the whole
    /// stack as it is now. Not with a plan FILE: tag it with `plan --tag`.
    #[arg(long = "tag", value_name = "KEY=VALUE", conflicts_with = "plan_file")]
    pub tags: Vec<String>,
    /// Stream one JSON event a line (plan, progress, result, summary) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct AccessArgs {
    /// How to read and write volumes: auto (direct where the volume's
    /// directory is readable here, else the API), api (the Docker archive
    /// API, any engine), or direct (the volume's directory, on the engine's host).
    #[arg(long, value_enum, default_value = "auto")]
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    Api,
    Direct,
    Auto,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print the snapshots as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only the snapshots with a tag of KEY, or the tag KEY=VALUE
    /// (repeatable: each must match).
    #[arg(long = "tag", value_name = "KEY[=VALUE]")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Reads only the repositories, never a Docker engine. Every apply and restore \
                  appends one record to each repository it used, also when something failed \
                  or it was interrupted (kind shown with !). apply, forget and prune keep the \
                  newest 1000 runs and forget records older than 400 days, but always keep the \
                  newest record of the applied settings and of each resource's restore."
)]
pub struct RunsArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print the runs as JSON: an array of run records, one object per run.
    #[arg(long)]
    pub json: bool,
    /// Only the runs recorded in repository NAME.
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// Only the newest N runs.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only the runs that did something with ADDR (e.g. volume.data), and
    /// only its outcomes: the resource's history.
    #[arg(long, value_name = "ADDR")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Drill only ADDR and what it depends on (repeatable). Default:
    /// everything the spec protects.
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Also write the report as Markdown to FILE (for an audit).
    #[arg(long, value_name = "FILE.md")]
    pub report: Option<std::path::PathBuf>,
    /// Print the report (the drill's run record) as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// As `restore --allow`: host access a scratch container may get.
    #[arg(long = "allow", value_name = "SETTING")]
    pub allow: Vec<String>,
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Reads only the repositories (snapshots and run records), never a Docker \
                  engine: run it on a second machine to watch the first, whose resources go \
                  late when it dies.

Exit codes (when several hold, the highest wins):
  0  every resource is within its RPO, its last backup succeeded, its size is in line
  1  error (the spec does not load, the metrics file cannot be written)
  2  size changed: a newest snapshot is more than 50% away from the median of the earlier ones
  3  failed: a resource's last backup failed
  4  late: a resource's newest snapshot is older than its RPO
  5  missing: a resource has no snapshot in a repository its policy copies to
  6  repository unreachable: a repository could not be opened or read"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print the status as JSON (schemas/status.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Also write the status to FILE in node_exporter's textfile format
    /// (written to a temporary file beside it, then renamed).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Send the spec's `notify` blocks that watch `late` a notice of the
    /// resources past their RPO (none is sent when all are within it).
    #[arg(long)]
    pub notify: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Restore only ADDR and what it depends on (repeatable). Default:
    /// everything the spec protects.
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Snapshot to restore: an id (or unique prefix); `latest`, the newest
    /// apply run that holds a snapshot of every resource restored (one
    /// moment; each resource's latest when no run holds them all);
    /// `latest-each`, each resource's own latest snapshot; or
    /// `tag:KEY=VALUE`, each resource's newest snapshot with that tag
    /// (`apply --tag`), refused when one has none.
    #[arg(
        long,
        value_name = "ID|latest|latest-each|tag:KEY=VALUE",
        default_value = "latest"
    )]
    pub snapshot: String,
    /// Restore over what is there: non-empty volumes and directories are made
    /// equal to the snapshot (a safety snapshot of the current content is taken
    /// first), dumps are loaded over the data their server holds.
    #[arg(long)]
    pub replace: bool,
    /// Let a restored container get SETTING, a setting that reaches into
    /// the host (`privileged`, `cap-add:NAME`, `network:host`, `bind:/PATH`,
    /// `security-opt:OPT`, `sysctl:NAME`), although the container there now
    /// lacks it and the spec declares no such `bind`. The restore plan
    /// names each one it needs (repeatable).
    #[arg(long = "allow", value_name = "SETTING")]
    pub allow: Vec<String>,
    /// Restore into a new object of another name instead of the live one,
    /// which is never touched: `ADDR=NAME` (repeatable), or `NAME` with
    /// exactly one --target. NAME is a Docker volume or container name, an
    /// absolute directory for a bind, an image reference (`repo:tag`) for an
    /// image, and for a dump the container (a scratch server) it is loaded into.
    /// With --path: a host directory, new or empty, the part is written into.
    #[arg(long = "into", value_name = "[ADDR=]NAME", conflicts_with = "replace")]
    pub into: Vec<String>,
    /// Restore every volume, directory and service into its live name plus
    /// SUFFIX (`data` → `data_clone`, `/srv/conf` → `/srv/conf_clone`), dumps
    /// into their service's new container: a copy of the stack beside the
    /// live one.
    #[arg(
        long = "into-suffix",
        value_name = "SUFFIX",
        conflicts_with = "replace"
    )]
    pub into_suffix: Option<String>,
    /// With --into or --into-suffix: the network renamed services are
    /// attached to instead of their own (created `internal` if missing;
    /// default `lifeboat` plus the suffix, or `lifeboat_` plus the first renamed service's new name).
    /// Renamed services publish no host ports.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Read repository NAME only. Default: for each resource, the first
    /// repository of its policy's copies whose copy of the snapshot is
    /// there and sound (the plan says when it reads another).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// Restore only PATH of the --target volume or directory (repeatable):
    /// a file or directory inside the snapshot, as `lifeboat ls` shows it,
    /// or a glob of them (`config/*.conf`: matched against whole paths, `*`
    /// within one name, as `find` matches a pattern with a `/`).
    /// In place, only what differs under PATH is written (a safety snapshot
    /// of what it overwrites is taken first) and nothing else is touched;
    /// with --into DIR, the part is written into that host directory.
    #[arg(
        long = "path",
        value_name = "PATH",
        conflicts_with_all = ["replace", "into_suffix", "network"]
    )]
    pub paths: Vec<String>,
    /// Print the plan, the events and the summary as JSON lines (as `apply
    /// --json` does).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

impl From<AccessArgs> for crate::apply::VolumeAccess {
    fn from(args: AccessArgs) -> Self {
        match args.access {
            Access::Api => crate::apply::VolumeAccess::Api,
            Access::Direct => crate::apply::VolumeAccess::Direct,
            Access::Auto => crate::apply::VolumeAccess::Auto,
        }
    }
}
