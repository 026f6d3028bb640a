//! The typed spec: what the HCL files say, after variables, locals and
//! expressions are evaluated and references are resolved to addresses.
//!
//! Every resource keeps the [`Span`] of its block so later stages (graph,
//! plan, apply) can point users back at the file, line and column.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A place in a spec file: byte range plus the 1-based line and column of its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Span {
    pub file: PathBuf,
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The kinds of blocks an address can name: the resources (graph nodes
/// with snapshots or order) and the policies whose settings plans diff.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Image,
    Volume,
    Bind,
    Service,
    Dump,
    /// Not a resource: `policy.NAME` in `~` changes of its settings.
    Policy,
    /// Not a resource: `repository.NAME` in the `+` change that creates it.
    Repository,
}

impl ResourceKind {
    /// Every kind, in the order the spec reference lists them.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Image,
        ResourceKind::Volume,
        ResourceKind::Bind,
        ResourceKind::Service,
        ResourceKind::Dump,
        ResourceKind::Policy,
        ResourceKind::Repository,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            ResourceKind::Image => "image",
            ResourceKind::Volume => "volume",
            ResourceKind::Bind => "bind",
            ResourceKind::Service => "service",
            ResourceKind::Dump => "dump",
            ResourceKind::Policy => "policy",
            ResourceKind::Repository => "repository",
        }
    }

    /// Whether blocks of this kind are graph nodes (`--target` takes them).
    pub fn is_resource(self) -> bool {
        match self {
            ResourceKind::Image
            | ResourceKind::Volume
            | ResourceKind::Bind
            | ResourceKind::Service
            | ResourceKind::Dump => true,
            ResourceKind::Policy | ResourceKind::Repository => false,
        }
    }
}

/// `kind.name`, the address users write in references and `--target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub kind: ResourceKind,
    pub name: String,
}

impl Address {
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Self {
        Address {
            kind,
            name: name.into(),
        }
    }

    /// Parses `volume.data`; `None` when the kind is unknown or the name empty.
    pub fn parse(text: &str) -> Option<Address> {
        let (kind, name) = text.split_once('.')?;
        let kind = ResourceKind::ALL
            .into_iter()
            .find(|k| k.keyword() == kind)?;
        if name.is_empty() || name.contains('.') {
            return None;
        }
        Some(Address::new(kind, name))
    }
}

// Addresses are written as users write them (`volume.data`) in plans, JSON
// and repository records.
impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        Address::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not an address like volume.data"))
        })
    }
}

impl schemars::JsonSchema for Address {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Address".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "kind.name, e.g. volume.data",
            "pattern": "^(image|volume|bind|service|dump|policy|repository)\\.[^.]+$"
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.kind.keyword(), self.name)
    }
}

/// The whole evaluated spec of one directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spec {
    /// The directory the `*.hcl` files were read from.
    pub dir: PathBuf,
    /// Files read, in name order, with their text (for diagnostics).
    #[serde(skip)]
    pub files: Vec<SourceFile>,
    pub engines: Vec<EngineSpec>,
    pub repositories: Vec<RepositorySpec>,
    pub policies: Vec<PolicySpec>,
    pub images: Vec<ImageSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub binds: Vec<BindSpec>,
    pub dumps: Vec<DumpSpec>,
    pub services: Vec<ServiceSpec>,
    /// Evaluated variables (name → value) after precedence; sensitive ones are redacted.
    pub variables: Vec<VariableValue>,
    /// The string values of sensitive variables, for [`Spec::redact`]. Never serialised.
    #[serde(skip)]
    pub sensitive_values: Vec<String>,
    /// `moved` blocks: renamed resources whose snapshots keep counting.
    pub moved: Vec<MovedSpec>,
    /// `notify` blocks. Never serialised: a URL may hold a token.
    #[serde(skip)]
    pub notifications: Vec<NotifySpec>,
    /// `schedule { every = "1h" }`: how often a timer runs `apply`, so a
    /// resource is due when its snapshot would pass its rpo before the next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
}

/// `schedule { every = … }` (see `lifeboat schedule`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleSpec {
    #[serde(serialize_with = "humantime_serde_opt::serialize_one")]
    pub every: Duration,
    #[serde(skip)]
    pub span: Span,
}

/// `notify "NAME" { … }`: who is told about runs and late resources.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySpec {
    pub name: String,
    pub target: NotifyTarget,
    /// What a webhook is sent (a healthchecks check is pinged at the start
    /// and end of every apply instead).
    pub on: Vec<NotifyEvent>,
    /// How long one request may take.
    pub timeout: Duration,
    pub span: Span,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    /// A JSON body POSTed to the URL (webhooks, chat incoming hooks).
    Webhook(UrlSource),
    /// A healthchecks-style check: `URL/start` when an apply starts, `URL`
    /// when it succeeds, `URL/fail` when it fails.
    Healthchecks(UrlSource),
}

/// A URL written in the spec, or the environment variable holding it (a
/// URL with a token in it is a secret).
#[derive(Debug, Clone, PartialEq)]
pub enum UrlSource {
    Written(String),
    Env(String),
}

/// What a `notify` block may be sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// An apply ended with a resource failed (or a run error).
    Failure,
    /// A resource's newest snapshot is older than its RPO (seen by `plan`
    /// during an apply, or by `status --notify`).
    Late,
    /// An apply ended with everything done (also when nothing was due).
    Success,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] = [
        NotifyEvent::Failure,
        NotifyEvent::Late,
        NotifyEvent::Success,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Late => "late",
            NotifyEvent::Success => "success",
        }
    }
}

/// What a webhook is sent when its block does not say (`on`).
pub const DEFAULT_NOTIFY_ON: [NotifyEvent; 2] = [NotifyEvent::Failure, NotifyEvent::Late];

/// How long one notification request may take when the block does not say.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// `moved { from = … to = … }`: snapshots recorded as `from` are `to`'s.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MovedSpec {
    pub from: Address,
    pub to: Address,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariableValue {
    pub name: String,
    pub value: serde_json::Value,
    pub sensitive: bool,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineSpec {
    pub name: String,
    /// `unix:///…`, `tcp://…` or `ssh://…`; `None` means the local default (honours `DOCKER_HOST`).
    pub host: Option<String>,
    /// For `tcp://` with TLS: the directory holding `ca.pem`, `cert.pem` and
    /// `key.pem` (as `DOCKER_CERT_PATH` does for the Docker CLI).
    pub cert_path: Option<PathBuf>,
    /// For `ssh://`: the private key to use (default: ssh's own choice).
    pub ssh_identity: Option<PathBuf>,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositorySpec {
    pub name: String,
    pub location: RepositoryLocation,
    pub encryption: Encryption,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RepositoryLocation {
    Local {
        path: PathBuf,
    },
    S3 {
        endpoint: String,
        bucket: String,
        region: String,
        /// Key prefix inside the bucket (may be empty).
        prefix: String,
        /// Where the credentials are read from, never the values.
        access_key: CredentialSource,
        secret_key: CredentialSource,
    },
    /// A directory on an SFTP server, reached with the system `ssh`.
    Sftp {
        host: String,
        port: u16,
        user: String,
        /// On the server: relative to the login directory unless absolute.
        path: String,
        /// The private key file, as written (relative: to the spec
        /// directory); `None`: the ssh agent's keys only.
        identity: Option<PathBuf>,
        /// The known_hosts file, as written; `None`: `~/.ssh/known_hosts`.
        known_hosts: Option<PathBuf>,
    },
}

/// Where a credential is read from when a repository is opened: the spec
/// names the place, never the value.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// An environment variable (`…_env`).
    Env(String),
    /// A file (`…_file`), relative paths from the spec directory; its
    /// content without the trailing newline.
    File(PathBuf),
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Env(name) => write!(f, "${name}"),
            CredentialSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Encryption {
    /// Key derived from a passphrase read from this environment variable.
    Passphrase { passphrase_env: String },
    /// Explicit opt-out (`encryption { none = true }`).
    None,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    #[serde(with = "humantime_serde_opt")]
    pub rpo: Option<Duration>,
    #[serde(with = "humantime_serde_opt")]
    pub rto: Option<Duration>,
    /// How often each resource of the policy must be drilled (`lifeboat
    /// drill`): `plan` warns when its last drill is older, or measured a
    /// recovery time over the `rto`.
    #[serde(with = "humantime_serde_opt")]
    pub drill_every: Option<Duration>,
    pub retention: Retention,
    /// Repository names; empty means every repository.
    pub copies: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

/// restic-style keep rules; all `None` means keep everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    #[serde(with = "humantime_serde_opt")]
    pub keep_within: Option<Duration>,
    /// Tag keys (`release`) or tags (`release=v1.4.2`) whose snapshots are
    /// all kept, beside what the other rules keep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tagged: Vec<String>,
}

/// How quiet a volume's or bind's service is kept while it is copied.
/// Ordered by strength (`none < pause < stop`): declaration order is that
/// order, so a copy taken under a weaker consistency than the spec asks
/// now is due again.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Default,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    #[default]
    None,
    Pause,
    Stop,
}

impl Consistency {
    /// The word the spec and snapshots use (`none`, `pause`, `stop`).
    pub fn keyword(self) -> &'static str {
        match self {
            Consistency::None => "none",
            Consistency::Pause => "pause",
            Consistency::Stop => "stop",
        }
    }

    /// Reads a recorded keyword; `None` for anything else (a snapshot is
    /// untrusted, and a newer version may record a level this one does not know).
    pub fn from_keyword(text: &str) -> Option<Consistency> {
        [Consistency::None, Consistency::Pause, Consistency::Stop]
            .into_iter()
            .find(|c| c.keyword() == text)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSpec {
    pub name: String,
    pub reference: String,
    pub engine: Option<String>,
    pub policy: Option<String>,
    /// The image this one is built on, when written (`base = image.x`);
    /// otherwise found from the layers.
    pub base: Option<String>,
    pub span: Span,
}

/// Commands run in a service's container around each copy of a resource
/// (`pre`: flush, maintenance mode on; `post`: maintenance mode off). Each
/// is one argv, run without a shell.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hooks {
    pub pre: Vec<String>,
    pub post: Vec<String>,
    /// How long each may take; `None`: [`DEFAULT_HOOK_TIMEOUT`].
    #[serde(with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// How long a hook may run when the spec does not say.
/// The engine resources use when they name none (the local one, or `DOCKER_HOST`).
pub const DEFAULT_ENGINE: &str = "default";

/// The engine an optional `engine` setting names: [`DEFAULT_ENGINE`] when
/// it names none. Every resource's engine is resolved through this.
pub fn engine_or_default(engine: Option<&str>) -> &str {
    engine.unwrap_or(DEFAULT_ENGINE)
}

pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSpec {
    pub name: String,
    /// The Docker volume's name.
    pub volume_name: String,
    pub engine: Option<String>,
    /// Policy name; `None` uses the implicit default policy.
    pub policy: Option<String>,
    pub consistency: Consistency,
    /// Service name stopped/paused around the copy.
    pub service: Option<String>,
    pub hooks: Hooks,
    /// `exclude` and `exclude_if_present`: what backups leave out.
    #[serde(flatten)]
    pub exclude: crate::repo::ExcludeRules,
    pub span: Span,
}

impl VolumeSpec {
    /// A volume block with only its names set (no policy, engine, service
    /// or hooks), as code that builds specs (tests, embedders) starts from.
    pub fn new(name: &str, volume_name: &str) -> VolumeSpec {
        VolumeSpec {
            name: name.to_string(),
            volume_name: volume_name.to_string(),
            engine: None,
            policy: None,
            consistency: Consistency::None,
            service: None,
            hooks: Hooks::default(),
            exclude: Default::default(),
            span: Span::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BindSpec {
    pub name: String,
    /// The directory on the engine's host.
    pub path: PathBuf,
    pub engine: Option<String>,
    pub policy: Option<String>,
    pub consistency: Consistency,
    pub service: Option<String>,
    pub hooks: Hooks,
    /// `exclude` and `exclude_if_present`: what backups leave out.
    #[serde(flatten)]
    pub exclude: crate::repo::ExcludeRules,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpSpec {
    pub name: String,
    pub service: String,
    pub command: Vec<String>,
    pub restore_command: Vec<String>,
    /// Substrings that, found in the command's stderr, fail the dump.
    pub fail_on_stderr: Vec<String>,
    pub policy: Option<String>,
    pub span: Span,
}

impl BindSpec {
    /// A bind block with only its name and directory set, as code that
    /// builds specs (tests, embedders) starts from.
    pub fn new(name: &str, path: impl Into<PathBuf>) -> BindSpec {
        BindSpec {
            name: name.to_string(),
            path: path.into(),
            engine: None,
            policy: None,
            consistency: Consistency::None,
            service: None,
            hooks: Hooks::default(),
            exclude: Default::default(),
            span: Span::default(),
        }
    }
}

impl DumpSpec {
    /// A dump block of `service` with only its commands set, as code that
    /// builds specs (tests, embedders) starts from.
    pub fn new(name: &str, service: &str, command: &[&str], restore_command: &[&str]) -> DumpSpec {
        let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
        DumpSpec {
            name: name.to_string(),
            service: service.to_string(),
            command: words(command),
            restore_command: words(restore_command),
            fail_on_stderr: Vec::new(),
            policy: None,
            span: Span::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub container: String,
    pub engine: Option<String>,
    pub image: Option<String>,
    pub volumes: Vec<String>,
    pub binds: Vec<String>,
    pub depends_on: Vec<String>,
    pub verify: Vec<String>,
    /// How long a restored container may take to pass its healthcheck and
    /// `verify`; `None`: [`DEFAULT_START_TIMEOUT`].
    #[serde(with = "humantime_serde_opt")]
    pub start_timeout: Option<Duration>,
    /// How long a stop for `consistency = "stop"` gives the container's
    /// processes to end before the engine kills them; `None`:
    /// [`DEFAULT_STOP_TIMEOUT`].
    #[serde(with = "humantime_serde_opt")]
    pub stop_timeout: Option<Duration>,
    /// Run around the copy of each volume and bind of this service.
    pub hooks: Hooks,
    pub span: Span,
}

impl ServiceSpec {
    /// A service block with only its names set, as code that builds specs
    /// (tests, embedders) starts from.
    pub fn new(name: &str, container: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            container: container.to_string(),
            engine: None,
            image: None,
            volumes: Vec::new(),
            binds: Vec::new(),
            depends_on: Vec::new(),
            verify: Vec::new(),
            start_timeout: None,
            stop_timeout: None,
            hooks: Hooks::default(),
            span: Span::default(),
        }
    }
}

/// How long a started service may take to become healthy when the spec
/// does not say: long enough for a database's first start on a slow disk.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped service's processes get to end before SIGKILL when
/// the spec does not say (Docker's own default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl ServiceSpec {
    pub fn start_timeout(&self) -> Duration {
        self.start_timeout.unwrap_or(DEFAULT_START_TIMEOUT)
    }

    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

/// Values given from outside the files: `--var`, `--var-file`, `LIFEBOAT_VAR_*`.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// `--var k=v`, in command-line order (later wins).
    pub cli_vars: Vec<(String, String)>,
    /// `--var-file FILE`, in command-line order.
    pub var_files: Vec<PathBuf>,
    /// The process environment (only `LIFEBOAT_VAR_*` are read).
    pub env: BTreeMap<String, String>,
}

/// serde helper: `Option<Duration>` as a humantime string ("1h 30m").
pub mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn serialize_one<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// One resource of the spec, whatever its kind, with what every stage asks
/// of resources in general.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Image(&'a ImageSpec),
    Volume(&'a VolumeSpec),
    Bind(&'a BindSpec),
    Service(&'a ServiceSpec),
    Dump(&'a DumpSpec),
}

impl<'a> Resource<'a> {
    /// The policy it names (`None`: the implicit default policy).
    pub fn policy(&self) -> Option<&'a str> {
        match self {
            Resource::Image(r) => r.policy.as_deref(),
            Resource::Volume(r) => r.policy.as_deref(),
            Resource::Bind(r) => r.policy.as_deref(),
            Resource::Dump(r) => r.policy.as_deref(),
            Resource::Service(_) => None,
        }
    }

    /// What its backups leave out, for kinds whose content is a file tree.
    pub fn excludes(&self) -> Option<&'a crate::repo::ExcludeRules> {
        match self {
            Resource::Volume(r) => Some(&r.exclude),
            Resource::Bind(r) => Some(&r.exclude),
            Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => None,
        }
    }

    /// The engine it names (`None`: the default engine). A dump lives on
    /// its service's engine (the graph orders it after the service).
    pub fn engine(&self) -> Option<&'a str> {
        match self {
            Resource::Image(r) => r.engine.as_deref(),
            Resource::Volume(r) => r.engine.as_deref(),
            Resource::Service(r) => r.engine.as_deref(),
            Resource::Bind(r) => r.engine.as_deref(),
            Resource::Dump(_) => None,
        }
    }

    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Image(_) => ResourceKind::Image,
            Resource::Volume(_) => ResourceKind::Volume,
            Resource::Bind(_) => ResourceKind::Bind,
            Resource::Service(_) => ResourceKind::Service,
            Resource::Dump(_) => ResourceKind::Dump,
        }
    }

    /// The block's label: `data` of `volume "data"`.
    pub fn name(&self) -> &'a str {
        match self {
            Resource::Image(r) => &r.name,
            Resource::Volume(r) => &r.name,
            Resource::Bind(r) => &r.name,
            Resource::Service(r) => &r.name,
            Resource::Dump(r) => &r.name,
        }
    }

    pub fn address(&self) -> Address {
        Address::new(self.kind(), self.name())
    }

    pub fn span(&self) -> &'a Span {
        match self {
            Resource::Image(r) => &r.span,
            Resource::Volume(r) => &r.span,
            Resource::Bind(r) => &r.span,
            Resource::Service(r) => &r.span,
            Resource::Dump(r) => &r.span,
        }
    }
}

impl Spec {
    /// Every resource, kind by kind in the order of [`ResourceKind::ALL`],
    /// each kind in the order of the spec.
    pub fn resources(&self) -> impl Iterator<Item = Resource<'_>> {
        let images = self.images.iter().map(Resource::Image);
        let volumes = self.volumes.iter().map(Resource::Volume);
        let binds = self.binds.iter().map(Resource::Bind);
        let services = self.services.iter().map(Resource::Service);
        let dumps = self.dumps.iter().map(Resource::Dump);
        images
            .chain(volumes)
            .chain(binds)
            .chain(services)
            .chain(dumps)
    }

    /// The resource at `address`, if the spec declares it.
    pub fn resource(&self, address: &Address) -> Option<Resource<'_>> {
        self.resources()
            .find(|r| r.kind() == address.kind && r.name() == address.name)
    }

    /// The name of the engine the resource lives on: the one it names (a
    /// dump's is its service's), else [`DEFAULT_ENGINE`]. The one place
    /// that default is applied to a resource.
    pub fn engine_name(&self, address: &Address) -> &str {
        engine_or_default(self.engine_of(address))
    }

    /// The engine the resource lives on (`None`: the default engine); a
    /// dump's is its service's.
    pub fn engine_of(&self, address: &Address) -> Option<&str> {
        match self.resource(address)? {
            Resource::Dump(dump) => self
                .services
                .iter()
                .find(|s| s.name == dump.service)
                .and_then(|s| s.engine.as_deref()),
            other => other.engine(),
        }
    }

    /// The service a volume or bind belongs to: the one its `service`
    /// names, else the only service listing it in `volumes` or `binds`.
    pub fn service_of(&self, address: &Address) -> Option<&ServiceSpec> {
        let named = match self.resource(address)? {
            Resource::Volume(volume) => volume.service.as_deref(),
            Resource::Bind(bind) => bind.service.as_deref(),
            Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => return None,
        };
        if let Some(name) = named {
            return self.services.iter().find(|s| s.name == name);
        }
        let mut listing = self.services.iter().filter(|s| match address.kind {
            ResourceKind::Volume => s.volumes.contains(&address.name),
            ResourceKind::Bind => s.binds.contains(&address.name),
            ResourceKind::Image
            | ResourceKind::Service
            | ResourceKind::Dump
            | ResourceKind::Policy
            | ResourceKind::Repository => false,
        });
        match (listing.next(), listing.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// The policy a resource follows, if it names one that is declared.
    pub fn policy_of(&self, address: &Address) -> Option<&PolicySpec> {
        let name = self.resource(address)?.policy()?;
        self.policies.iter().find(|p| p.name == name)
    }

    /// Every resource address, in the order the spec lists kinds and blocks.
    pub fn addresses(&self) -> Vec<Address> {
        self.resources().map(|r| r.address()).collect()
    }

    /// The address snapshots recorded as `recorded` belong to now: through
    /// the `moved` blocks (chains followed), else `recorded` itself.
    pub fn current_address(&self, recorded: &str) -> String {
        let mut current = recorded.to_string();
        // A chain cannot be longer than the blocks; a cycle stops there.
        for _ in 0..=self.moved.len() {
            match self.moved.iter().find(|m| m.from.to_string() == current) {
                Some(moved) => current = moved.to.to_string(),
                None => break,
            }
        }
        current
    }

    /// The values of sensitive variables: text containing one is shown as
    /// `(sensitive)` in plans, output and errors.
    pub fn redact(&self, text: &str) -> String {
        let secret = self
            .sensitive_values
            .iter()
            .any(|s| !s.is_empty() && text.contains(s.as_str()));
        if secret {
            "(sensitive)".to_string()
        } else {
            text.to_string()
        }
    }
}
