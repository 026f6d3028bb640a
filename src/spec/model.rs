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

/// The kinds of blocks that are resources (graph nodes with snapshots or order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Image,
    Volume,
    Bind,
    Service,
    Dump,
}

impl ResourceKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ResourceKind::Image => "image",
            ResourceKind::Volume => "volume",
            ResourceKind::Bind => "bind",
            ResourceKind::Service => "service",
            ResourceKind::Dump => "dump",
        }
    }
}

/// `kind.name`, the address users write in references and `--target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
        let kind = match kind {
            "image" => ResourceKind::Image,
            "volume" => ResourceKind::Volume,
            "bind" => ResourceKind::Bind,
            "service" => ResourceKind::Service,
            "dump" => ResourceKind::Dump,
            _ => return None,
        };
        if name.is_empty() || name.contains('.') {
            return None;
        }
        Some(Address::new(kind, name))
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
        /// Names of the environment variables holding credentials, never the values.
        access_key_env: String,
        secret_key_env: String,
    },
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    #[default]
    None,
    Stop,
    Pause,
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
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct BindSpec {
    pub name: String,
    pub path: PathBuf,
    pub policy: Option<String>,
    pub consistency: Consistency,
    pub service: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpSpec {
    pub name: String,
    pub service: String,
    pub command: Vec<String>,
    pub restore_command: Vec<String>,
    pub policy: Option<String>,
    pub span: Span,
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
    pub span: Span,
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

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
