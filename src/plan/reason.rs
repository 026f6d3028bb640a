//! Why a change is in the plan, and what the reviewer should know besides:
//! values with parameters, rendered into words by the views (never compared
//! as sentences).

use crate::repo::ExcludeRules;
use crate::spec::{Address, Consistency};
use serde::{Deserialize, Serialize};

/// Why a resource has its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// No snapshot of it in `repository` (absent when the policy copies to one repository only).
    NeverBackedUp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<String>,
    },
    /// The latest snapshot is older than the rpo.
    RpoExceeded { age_seconds: u64, rpo_seconds: u64 },
    /// The latest snapshot is within the rpo now, but would be older than
    /// it at the next scheduled run (`schedule { every }` from now).
    RpoBeforeNextRun {
        age_seconds: u64,
        every_seconds: u64,
        rpo_seconds: u64,
    },
    /// Up to date: the latest snapshot (the newest across its copies, which the others get by copy) is within the rpo.
    WithinRpo {
        snapshot: String,
        age_seconds: u64,
        rpo_seconds: u64,
    },
    /// `--replace ADDR`.
    ReplaceRequested,
    /// `--tag KEY=VALUE`: the run takes a tagged snapshot of every resource
    /// it covers (a release marker is the stack as it is now).
    Tagged { tags: Vec<String> },
    /// What the resource maps to on the engine changed since its latest
    /// snapshot (a volume's Docker name, a bind's path): the snapshot is of
    /// something else.
    SourceChanged { attribute: String },
    /// The engine says the content changed since the latest snapshot (an
    /// image's id is not the one the snapshot recorded).
    ContentChanged,
    /// The latest snapshot (in some repository) was taken under a weaker
    /// `consistency` than the spec asks now (`none < pause < stop`).
    WeakerConsistency {
        taken: Consistency,
        asked: Consistency,
    },
    /// `exclude` or `exclude_if_present` differ from what the latest
    /// snapshot (in some repository) was taken with: it holds other paths
    /// than a backup would now.
    ExcludeChanged {
        taken: ExcludeRules,
        asked: ExcludeRules,
    },
    /// What the copy of a volume or bind leaves out (its `exclude` and
    /// `exclude_if_present`).
    Excludes {
        #[serde(flatten)]
        rules: ExcludeRules,
    },
    /// A restore writes a snapshot whose backup left these paths out: they
    /// are not in it. `replacing`: the restore replaces the target's
    /// content, so live files matching them are removed too (the safety
    /// snapshot taken first, which leaves out nothing, keeps them).
    SnapshotExcluded {
        #[serde(flatten)]
        rules: ExcludeRules,
        replacing: bool,
    },
    /// Retention keeps `keep` of `of` snapshots (`counting_new`: the
    /// snapshot this run takes is among them).
    Retention {
        rules: String,
        keep: usize,
        of: usize,
        counting_new: bool,
    },
    /// `lifeboat forget ID…`.
    NamedOnCommandLine,
    /// `repository`, which the change needs, could not be reached when
    /// the plan was made (`message`: why): the change fails there, and
    /// goes on in its other repositories.
    RepositoryUnreachable { repository: String, message: String },
    /// `<` reads `repository`, passing over the repositories it would
    /// read first (`skipped`, each with why).
    ReadsAnotherRepository {
        repository: String,
        skipped: Vec<super::SkippedRepository>,
    },
    /// `>`: `repository`, one of the policy's copies, lacks `snapshots`
    /// snapshots another one holds (and retention keeps).
    Lacks {
        repository: String,
        snapshots: usize,
    },
    /// A restore creates the target (`what`: "Docker volume app_data").
    CreateTarget { what: String },
    /// A restore fills an existing, empty target.
    IntoEmptyTarget { what: String },
    /// `=` in a restore into other names: the resource has no new name,
    /// so its live object (`what`) is left alone.
    NotMapped { what: String },
    /// A dump's restore feeds the snapshot to a command (`what`: "the
    /// restore_command in container db"), into a server `into` describes:
    /// the dump is where its database comes from.
    LoadDump { what: String, into: DumpInto },
    /// `=` in a restore: the dump is not loaded, because `data` (a volume
    /// or directory of its service), restored in the same plan from
    /// `snapshot`, holds the database already; loading the dump too would
    /// add its rows again. `same_run`: that snapshot was taken by the same
    /// apply run as the dump's.
    DumpInRestoredData {
        data: Address,
        snapshot: String,
        same_run: bool,
    },
    /// `=` in a restore: the dump is not loaded, because `service` kept
    /// data from the time the dump was taken or later (its volumes predate
    /// the dump), to which loading would add the rows again.
    DumpServerHoldsData { service: Address },
    /// `=` in a restore: a volume or directory of a service whose dump is
    /// a `--target`, or its existing container, is not restored from its
    /// snapshot, since `dump` is the database's source (the service starts
    /// on its data as it is, or anew).
    DataFromDump { dump: Address },
    /// `restore --replace` makes a non-empty target equal to the snapshot.
    ReplaceTarget { what: String },
    /// A restore loads an image that is already on the engine, with its tags.
    ImageAlreadyPresent { what: String },
    /// `restore --replace` moves `tags` from the image they point at now
    /// to the restored one.
    MoveTags { what: String, tags: Vec<String> },
    /// `=` in a restore: a container of the service's name exists and is
    /// left alone (`--replace` removes and recreates it).
    KeepExisting { what: String },
    /// `=` in a restore with `--target`: a non-empty volume or directory
    /// restored only because a target needs it is kept as it is.
    KeepDependency { what: String },
    /// `restore --replace`: the existing container is removed and recreated
    /// from the snapshot's configuration.
    RecreateTarget { what: String },
    /// `=` in a restore: a container holds the service's name but differs
    /// from the snapshot's in `settings` (another container); left alone.
    KeepDifferent { what: String, settings: Vec<String> },
    /// A restore creates a container with settings that reach into the
    /// host (`privileged`, `cap-add:…`, `bind:/path`…): shown, always.
    HostAccess { settings: Vec<String> },
    /// `<` in a restore: the target holds a partial restore (a restore of
    /// `snapshot` began at `started` and never finished); it is restored
    /// again, its partial content replaced without a safety snapshot.
    RestoreInterrupted {
        what: String,
        snapshot: String,
        started: chrono::DateTime<chrono::Utc>,
    },
    /// `restore --path`: only `paths` of `what` (a volume or directory) are
    /// written, as the change's `partial` lists; nothing else is touched,
    /// what the snapshot lacks under them is left, and a safety snapshot
    /// of what is overwritten is taken first.
    RestorePaths { what: String, paths: Vec<String> },
    /// `restore --path --into DIR`: `paths` of `what`'s snapshot are
    /// written into the host directory `directory`; `what` is not touched.
    RestorePathsInto {
        what: String,
        paths: Vec<String>,
        directory: String,
    },
    /// `<` in a restore that replaces a volume's or directory's content:
    /// these running containers are stopped first (dependents first) and
    /// started again afterwards, in dependency order.
    StopsContainers { containers: Vec<String> },
    /// `~`: the settings differ from those the last apply recorded.
    SettingsChanged,
    /// `~`: the resource is new since the last apply.
    NewSinceLastApply,
    /// `~`: the resource was removed from the spec since the last apply.
    RemovedSinceLastApply,
    /// The copy interrupts `service` (`consistency`): stopped or paused
    /// for about as long as the last copy took, when known.
    Interrupts {
        service: String,
        how: Interruption,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_copy_millis: Option<u64>,
        /// For a stop: how long its processes get to end before the engine
        /// kills them (the service's `stop_timeout`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_timeout_seconds: Option<u64>,
    },
    /// `pre`/`post` hooks run in `service`'s container around the copy.
    Hooks {
        service: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pre: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        post: Vec<String>,
    },
    /// `+ repository.NAME`: where it will be created looks like a mount
    /// point with nothing mounted on it, so the repository would land on
    /// the filesystem below (usually the root one).
    LooksUnmounted { directory: String, sign: MountSign },
    /// `!`: the resource cannot be acted on now; the rest of the plan can.
    Problem {
        message: String,
        /// Where the resource is declared (`main.hcl:12:1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
}

/// Why a directory looks like a mount point left unmounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountSign {
    /// An empty directory directly under `/mnt` or `/media`, where disks
    /// are mounted.
    EmptyUnderMountRoot,
    /// A mount point `/etc/fstab` lists, with nothing mounted on it.
    FstabNotMounted,
}

/// The server a dump loads into, and why loading it there is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "server", rename_all = "snake_case")]
pub enum DumpInto {
    /// The service's container is created by this restore, on no data kept
    /// or restored: an empty server.
    NewServer,
    /// The service's volumes were created after the dump was taken (a
    /// server started anew): they cannot hold the dump's rows.
    StartedAfterDump,
    /// `data` cannot be restored (it has its own `!`): the dump is the
    /// only source of the database.
    DataNotRestored { data: Address },
    /// `--target` with `--replace`: loaded over the data the server holds.
    OverExistingData,
    /// `--into dump.NAME=CONTAINER`: loaded into a scratch server the user
    /// named (one that exists by design: it is the server to fill).
    ScratchServer,
    /// A drill: a scratch server of its own, started from `image` (the one
    /// the live service runs, by id) on empty scratch volumes, so the
    /// drill proves the dump loads.
    DrillServer { image: String },
}

/// What a copy does to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interruption {
    Stop,
    Pause,
}

/// Something the reviewer should know that changes nothing by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "warning", rename_all = "snake_case")]
pub enum Warning {
    /// A block or attribute the spec accepts but this version does not act on.
    NotActedOn {
        /// `image.base`, or `volume.pgdata` with `attribute`.
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attribute: Option<String>,
        at: String,
    },
    /// The last measured restore took longer than the policy's rto.
    RtoMissed {
        address: Address,
        snapshot: String,
        restored_at: chrono::DateTime<chrono::Utc>,
        took_seconds: f64,
        rto_seconds: f64,
        policy: String,
        at: String,
    },
    /// The last restore of the whole stack took longer than the smallest
    /// rto among the policies of the resources it restored.
    StackRtoMissed {
        /// How many resources it restored.
        resources: usize,
        restored_at: chrono::DateTime<chrono::Utc>,
        took_seconds: f64,
        rto_seconds: f64,
        policy: String,
        at: String,
    },
    /// The resource's policy asks for a drill every `every_seconds`, and its
    /// last drill (`None`: never) is older.
    DrillDue {
        address: Address,
        last: Option<chrono::DateTime<chrono::Utc>>,
        every_seconds: f64,
        policy: String,
        at: String,
    },
    /// The resource's last drill measured a recovery time over its rto.
    DrillRtoMissed {
        address: Address,
        drilled_at: chrono::DateTime<chrono::Utc>,
        took_seconds: f64,
        rto_seconds: f64,
        policy: String,
        at: String,
    },
    /// The snapshots a restore uses come from several apply runs: no one
    /// run holds a snapshot of every resource restored.
    SeveralMoments { runs: usize },
    /// `base = image.NAME` names an image whose layers the image does not
    /// start with (as the engine or the latest snapshots know them).
    BaseMismatch {
        address: Address,
        base: Address,
        at: String,
    },
    /// A volume is in use by a running container and is copied without
    /// stopping or pausing it: the copy may be inconsistent.
    RunningWithoutConsistency {
        address: Address,
        containers: Vec<String>,
        at: String,
    },
    /// Snapshots of a resource the spec no longer declares.
    OrphanedSnapshots {
        address: Address,
        repository: String,
        /// Short ids, oldest first.
        snapshots: Vec<String>,
    },
    /// A policy with an `rpo` keeps its snapshots in fewer than two
    /// repositories (`repositories`: its copies).
    FewerThanTwoCopies {
        policy: String,
        repositories: Vec<String>,
        at: String,
    },
    /// A policy with an `rpo` keeps no copy off this host: every one of
    /// `repositories` is a path on the filesystem of Docker's data root, or
    /// a server on loopback.
    NoCopyOffHost {
        policy: String,
        repositories: Vec<String>,
        at: String,
    },
    /// A repository declared `encryption { none = true }` receives what
    /// holds secrets: services' environment values, dumps' output.
    PlaintextSecrets {
        repository: String,
        /// `service.db`, `dump.all`: what it would store in clear.
        resources: Vec<String>,
        at: String,
    },
}
