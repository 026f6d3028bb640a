//! What a change says about its resource, by kind: one typed field per
//! change instead of kind-specific optionals on every change.

use serde::{Deserialize, Serialize};

/// The per-kind part of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// Changes that are not about one engine object (`-` forget, `~` update).
    None,
    Volume(VolumeDetail),
    Bind(BindDetail),
    Image(ImageDetail),
    Service(ServiceDetail),
    Repository(RepositoryDetail),
    /// A dump loaded into a drill's scratch server of its own.
    DumpServer(DumpServerDetail),
}

impl Detail {
    /// The same detail, saying what a restore finds where it writes.
    pub fn with_target(self, target: Option<TargetState>) -> Detail {
        match self {
            Detail::Volume(volume) => Detail::Volume(VolumeDetail { target, ..volume }),
            Detail::Bind(bind) => Detail::Bind(BindDetail { target, ..bind }),
            Detail::Image(image) => Detail::Image(ImageDetail { target, ..image }),
            Detail::Service(service) => Detail::Service(ServiceDetail { target, ..service }),
            // Nothing a restore writes into.
            Detail::DumpServer(server) => Detail::DumpServer(DumpServerDetail { target, ..server }),
            untargeted @ (Detail::None | Detail::Repository(_)) => untargeted,
        }
    }
}

/// A volume change: which Docker volume, and for restores what is there now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VolumeDetail {
    /// The Docker volume's name, or `(sensitive)` when a sensitive variable
    /// gives it (apply reads the real name from the spec, never from here).
    pub docker_name: String,
    /// For restores: what the restore finds in the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetState>,
    /// For restores of a non-empty volume: the containers that use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<VolumeUse>,
}

/// The containers using a volume, and what replacing its content does
/// about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VolumeUse {
    /// Every container that mounts it, running or not: Docker removes no
    /// volume a container uses, so its content is emptied in place instead.
    pub containers: Vec<String>,
    /// The running containers a replace stops: those using the volume and
    /// those of services that depend on theirs (`depends_on`), dependents
    /// first. They are started again afterwards, in the reverse order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<String>,
    /// Whether lifeboat can empty the volume's directory from here (it runs
    /// on the engine's host and may write there).
    pub reachable: bool,
}

/// A bind change: which directory of the engine's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BindDetail {
    /// The directory, or `(sensitive)` when a sensitive variable gives it.
    pub path: String,
    /// For restores: what the restore finds there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetState>,
    /// For restores of a non-empty directory: the running containers of the
    /// services that mount it and of those that depend on theirs, which a
    /// replace stops (dependents first) and starts again afterwards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<String>,
}

/// An image change: which reference, and which image it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageDetail {
    /// The image reference (`shop/api:2.3`), or `(sensitive)`.
    pub reference: String,
    /// The image id (`sha256:…`): the engine's now for backups, the
    /// snapshot's for restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For restores: tags the snapshot gives the image that point at
    /// another image on the engine now (moved only with `--replace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_tags: Vec<String>,
    /// For restores: `missing` (the image is not there), `empty` (the same
    /// image is already there), `non_empty` (a tag points at another image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetState>,
}

/// A service change: which container, and what it runs. Never the values
/// of its environment (they may be secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceDetail {
    /// The container's name, or `(sensitive)` when a sensitive variable gives it.
    pub container: String,
    /// For backups: the image it runs, as it names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// For backups: the names of its environment variables (values are
    /// stored encrypted and never shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// For restores: `missing` (it is created) or `non_empty` (a container
    /// of that name exists: left alone, or recreated with `--replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetState>,
    /// For restores: the settings of the snapshot's container that reach
    /// into the host (`privileged`, `cap-add:…`, `network:host`,
    /// `bind:/path`, `security-opt:…`, `sysctl:…`): all are shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_access: Vec<String>,
    /// For restores: those of `host_access` that neither the container
    /// there now has nor the spec declares (a `bind` block's directory):
    /// refused unless `restore --allow` names each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_host_access: Vec<String>,
    /// For restores: the settings in which the container there now differs
    /// from the snapshot's (it holds the name, but is another container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differs_in: Vec<String>,
}

/// The scratch database server a drill starts for a dump: what apply
/// creates (and the drill's journal names) before loading it. Its
/// environment is read from the live container when it starts, and never
/// shown (it may hold passwords).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DumpServerDetail {
    /// The image the live service's container runs, as it names it (or
    /// `(sensitive)`).
    pub image: String,
    /// That image's id (`sha256:…`): the scratch server runs it by id.
    pub image_id: String,
    /// An empty scratch volume for each volume the live container mounts
    /// (its data directory among them).
    pub volumes: Vec<ScratchVolume>,
    /// For restores: `missing` (the server is created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetState>,
}

/// One empty volume of a scratch server, and where it is mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScratchVolume {
    /// The scratch volume's name (the drill's suffix ends it).
    pub name: String,
    /// The path in the container the live volume is mounted at.
    pub target: String,
}

/// What a restore finds where it writes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Nothing there: the restore creates it.
    Missing,
    /// Exists and holds nothing: the restore fills it.
    Empty,
    /// Exists with content: refused unless `--replace`, which makes its
    /// content equal to the snapshot (after a safety snapshot).
    NonEmpty,
}

/// A repository change: where the repository is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RepositoryDetail {
    /// Its directory (or other location), as it will be created.
    pub location: String,
}
