//! repo: the repository, lifeboat's storage engine. It owns the on-disk
//! format (docs/repository-format.md): config, keys, packs of encrypted and
//! compressed content-defined chunks, indexes, snapshot manifests, run
//! records and locks, and the operations on them (backup from a tar stream
//! or a directory, restore to a tar stream or a directory, check, forget,
//! prune).
//!
//! It knows nothing of Docker, specs or plans, and never prints: progress
//! goes through callbacks.
//!
//! Write order is packs → index → snapshot, each file written atomically by
//! the backend, so a crash at any point leaves a consistent repository, and
//! the packs an interrupted backup indexed are reused by the next one.

mod applied;
mod archiver;
pub mod backend;
pub mod browse;
mod budget;
mod cache;
mod check;
mod coalesce;
mod config;
mod copy;
pub mod crypto;
mod direct;
pub mod exclude;
mod fsat;
mod guard;
mod image;
/// Bytes that do not compress, for tests outside the repository module.
#[cfg(test)]
pub(crate) use image::tests::noise as incompressible;
#[cfg(test)]
pub(crate) use image::tests::oci_save_archive as image_oci_save_archive;
#[cfg(test)]
pub(crate) use image::tests::save_archive as image_save_archive;
mod index;
mod keys;
pub mod lock;
mod notes;
pub mod pack;
pub mod partial;
mod profile;
mod prune;
mod recycle;
mod repair;
mod restorer;
mod runs;
mod stream;
pub mod tags;
pub mod tree;
mod verify;
mod walk;
mod xattr;

pub use applied::AppliedRecord;
pub use backend::{Backend, FileKind};
pub use check::{Advice, CheckOptions, CheckReport, Problem, ReadData};
pub use config::FORMAT_VERSION;
pub use copy::CopiedSnapshot;
pub use direct::tree_size;
pub use exclude::{ExcludeRules, Excludes};
pub use image::{StoredImage, WantedImage};
pub use keys::{KeyInfo, MasterKeyExport};
pub use lock::{LockInfo, RepoLock};
pub use notes::{Paths, TreeNote};
pub use prune::{Leftover, MigratePlan, MigrateSummary, PrunePlan, PruneStats, PruneSummary};
pub use repair::{IncompleteSnapshot, RepairOptions, RepairReport, SalvagedPack, UnreadablePack};
pub use restorer::{RestoreStats, TreeTotals};
pub use runs::{
    DamagedRun, DrillCheck, DrillRecord, DrillResource, KEEP_RUN_DAYS, KEEP_RUNS, PruneRecord,
    RUN_RECORD_FORMAT, ResourceOutcome, ResourceRecord, RunKind, RunRecord, StoredRun,
    runs_to_forget,
};
pub use tags::{Tag, TagFilter};
pub use verify::Verified;

use config::Config;
use crypto::{BlobId, KeyFile, Keys};
use index::Index;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no lifeboat repository at {0}: it is created by the first `lifeboat apply`")]
    NotFound(String),
    #[error(
        "{0} is not a lifeboat repository (it holds other files); point the repository at an \
         empty or new directory. Nothing was changed there"
    )]
    Foreign(String),
    #[error(
        "wrong passphrase: it opens none of the keys of the repository at {0}. Check the \
         environment variable the spec names"
    )]
    WrongPassphrase(String),
    #[error(
        "the repository at {0} is encrypted, but the spec declares it plaintext (`encryption \
         {{ none = true }}`): declare its `encryption {{ passphrase_env = \"…\" }}` instead"
    )]
    PassphraseRequired(String),
    #[error(
        "the repository at {0} is not encrypted, but the spec asks for encryption: lifeboat \
         writes plaintext only where the spec declares `encryption {{ none = true }}`. Declare \
         that if a plaintext repository is meant, or give this repository a new, empty path"
    )]
    NotEncrypted(String),
    #[error(
        "{0}/config says the repository is not encrypted, but it has keys (it was created \
         encrypted): the config was changed outside lifeboat, and nothing is written there in \
         plaintext. Put back the original config (every copy of the repository holds the same)"
    )]
    Downgraded(String),
    #[error(
        "{location}/config is unusable: {detail}. lifeboat will not use this repository until \
         the file is put back as it was (every copy of the repository holds the same config)"
    )]
    BadConfig { location: String, detail: String },
    #[error(
        "{location}/config does not authenticate: {detail}. It was changed outside lifeboat, so \
         nothing it says is trusted; put back the original (every copy of the repository holds \
         the same config)"
    )]
    ConfigNotAuthentic { location: String, detail: String },
    #[error(
        "key file {file} is unusable: {detail}. Put it back from a copy of the repository (a key \
         file that opens nothing can also be removed, when another key opens the repository)"
    )]
    BadKeyFile { file: String, detail: String },
    #[error(
        "the repository at {location} has {found} key files; lifeboat tries at most \
         {MAX_KEY_FILES} (each costs a key derivation): remove the ones no passphrase needs"
    )]
    TooManyKeys { location: String, found: usize },
    #[error(
        "the repository at {0} is encrypted but keys/ holds no key file: put the key files back \
         from a copy of the repository"
    )]
    NoKeys(String),
    #[error(
        "the repository at {location} has format version {found}; this lifeboat reads up to {FORMAT_VERSION}: upgrade lifeboat"
    )]
    TooNew { location: String, found: u32 },
    /// A config naming an id function a newer lifeboat knows: reading its
    /// blobs by another function would find every id wrong.
    #[error(
        "the repository at {location} names its blobs with {found:?}, an id function this lifeboat does not know (it knows \"hmac-sha256\" and \"blake3\"): upgrade lifeboat"
    )]
    UnknownIdFunction { location: String, found: String },
    #[error("repository damaged: {what}: {detail}. Run `lifeboat check` for the full picture")]
    Corrupt { what: String, detail: String },
    #[error("{}", lock::describe_locked(holder))]
    Locked { holder: Box<LockInfo> },
    #[error(
        "no space left on the device holding the repository while {context}: free space and run again; earlier snapshots are intact"
    )]
    NoSpace { context: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A request that cannot be honoured as asked (a key command that
    /// would lose access, a path a snapshot does not hold): the message
    /// says why and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("no snapshot {0}: `lifeboat snapshots` lists them")]
    SnapshotNotFound(String),
    #[error("snapshot id prefix {0} is ambiguous: give more characters")]
    AmbiguousSnapshot(String),
    #[error(
        "cannot restore {path}: its data (blob {blob}) is damaged or missing in the repository \
         ({detail}); nothing of this file was written correctly. Run `lifeboat check --read-data`"
    )]
    BadBlob {
        path: String,
        blob: String,
        detail: String,
    },
    #[error("reading the source: {0}")]
    Source(String),
    #[error(
        "snapshot {snapshot} cannot be restored: {detail}. Nothing was changed. `lifeboat check \
         --read-data` shows what is damaged; `lifeboat snapshots` lists older snapshots to \
         restore with `--snapshot ID`"
    )]
    Unrestorable { snapshot: String, detail: String },
}

impl RepoError {
    /// What is wrong, for `check`'s own findings: the message without the
    /// advice to run `lifeboat check`, which the user is running.
    pub(crate) fn finding(&self) -> String {
        match self {
            RepoError::Corrupt { what, detail } => format!("{what}: {detail}"),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> RepoError {
        let context = context.into();
        move |source| {
            if source.kind() == io::ErrorKind::StorageFull {
                RepoError::NoSpace { context }
            } else {
                RepoError::Io { context, source }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct RepoOptions {
    /// How long to wait for a conflicting lock.
    pub lock_timeout: Duration,
    /// The command line doing the work, recorded in locks for other users to see.
    pub command: String,
    /// Where direct-mode backups keep their file-metadata cache; `None`: no cache.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            lock_timeout: Duration::ZERO,
            command: "lifeboat".to_string(),
            cache_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunker {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// restic's sizes: 512 KiB / 1 MiB / 8 MiB.
pub const CHUNKER: Chunker = Chunker {
    min: 512 * 1024,
    avg: 1024 * 1024,
    max: 8 * 1024 * 1024,
};

/// A snapshot's id: the SHA-256 of its stored file, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotId(pub String);

impl SnapshotId {
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What was backed up: the resource and the Docker object behind it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotSource {
    /// `volume.data`
    pub resource: String,
    /// `volume`
    pub kind: String,
    /// The Docker volume's name.
    pub name: String,
    /// Bare keys (`pre-restore`) and `KEY=VALUE` tags (`apply --tag`);
    /// see [`tags`]. Checked when read.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Digest of the spec that made the snapshot.
    #[serde(default)]
    pub spec_digest: Option<String>,
    /// The apply run that took it: every snapshot of one run shares it, so
    /// a whole-host restore can take every resource from the same moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The version of what was backed up when the engine gives one without
    /// reading its content (an image's id), so plans can tell it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How quiet the resource's service was kept during the copy (`none`,
    /// `pause`, `stop`), for backups of volumes and binds. Absent from
    /// snapshots of older versions and of other kinds: unknown. Kept as
    /// text so a level this version does not know never makes the snapshot
    /// unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// What the backup left out of a volume's or bind's tree (see
    /// [`exclude`]); empty for other kinds, for safety copies taken before
    /// a restore (which leave out nothing) and in older snapshots.
    #[serde(default, skip_serializing_if = "ExcludeRules::is_empty")]
    pub excludes: ExcludeRules,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotSummary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    /// Logical bytes of file content.
    pub bytes: u64,
    /// Bytes actually read from the source: less than `bytes` when the
    /// file-metadata cache vouched for unchanged files.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes newly written to the repository (packs and index) by this backup.
    pub added_bytes: u64,
    pub new_blobs: u64,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Not stored inside the file: it is the file's name.
    #[serde(skip_deserializing, default = "empty_id")]
    pub id: SnapshotId,
    pub time: chrono::DateTime<chrono::Utc>,
    pub resource: String,
    pub hostname: String,
    pub source: SnapshotSource,
    pub summary: SnapshotSummary,
    /// What the tree holds (snapshots before this field are file trees).
    #[serde(default)]
    pub content: ContentKind,
    /// The tree blobs, in order.
    #[serde(with = "tree_ids")]
    pub tree: Vec<BlobId>,
    pub lifeboat_version: String,
    /// What the backup that made this snapshot noticed it could not copy
    /// exactly; not stored (it is about that run, not the content).
    #[serde(skip)]
    pub notes: Vec<TreeNote>,
}

/// What a snapshot's tree holds. Every kind is stored as a tree of nodes,
/// so check, prune, repair and deduplication treat them alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// A directory tree (volumes, binds).
    #[default]
    Tree,
    /// A byte stream (a dump, a container's configuration): one file node,
    /// the root, whose content is the stream (see `repo::stream`).
    Stream,
    /// An image: its configuration, a record of it, and its layers, each
    /// stored once by DiffID (see `repo::image`).
    Image,
}

fn empty_id() -> SnapshotId {
    SnapshotId(String::new())
}

mod tree_ids {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ids: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| {
                hex::decode(t)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| serde::de::Error::custom("bad tree id"))
            })
            .collect()
    }
}

/// Progress of a backup or restore.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
    pub current: Option<String>,
}

/// The config bytes of a repository [`Repository::find`] found (marked as
/// lifeboat's, not yet parsed or authenticated: [`Repository::open_found`]
/// does both).
pub struct FoundConfig(Vec<u8>);

pub struct Repository {
    /// `remembering`, through which every request of this handle goes.
    backend: Arc<dyn Backend>,
    /// What a run has listed and loaded ([`Repository::remember_for_run`]).
    remembering: Arc<backend::remembering::RememberingBackend>,
    keys: Keys,
    config: Config,
    /// A format-1 config, accepted as it is; the next write authenticates it.
    config_upgrade: AtomicBool,
    index: RwLock<Index>,
    options: RepoOptions,
    /// The key file the passphrase opened (`None` in plaintext).
    key_file: Option<String>,
    /// The lock a whole run holds ([`Repository::lock_for_run`]): the
    /// shorter locks this handle takes inside the run do not conflict with it.
    run_lock: std::sync::Mutex<Option<RepoLock>>,
    /// The decoded tree blobs of the last tree walked, when they are few
    /// ([`TREE_CACHE`]): a restore walks a tree twice (checked before
    /// anything is written, then written), and from a remote store each
    /// walk is requests.
    tree_cache: std::sync::Mutex<Option<CachedTree>>,
    /// Tests only: write as a format-3 lifeboat did (blobs not bound to
    /// their ids, the config left at format 3), to test upgrades in place.
    #[cfg(test)]
    writes_format_3: bool,
}

/// A tree's blob ids and their decoded bytes, in order.
type CachedTree = (Vec<BlobId>, Arc<Vec<Vec<u8>>>);

/// Whether a walk keeps the tree it read for the next one
/// ([`Repository::for_each_admitted_node_last`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum TreeWalk {
    Kept,
    Last,
}

/// Stored bytes of tree blobs a walk reads ahead (by pack, several requests
/// at once): tree blobs are about 1 MiB, so this is a few at a time.
const TREE_WINDOW: u64 = 8 << 20;

/// Decoded bytes of tree blobs a repository handle keeps from its last
/// walk: the tree of some 60,000 files.
const TREE_CACHE: usize = 16 << 20;

/// Decompressed size bounds of metadata files: snapshots and records are
/// small (the tree lives in blobs); an index file lists up to every blob of
/// the repository (about 150 bytes each: 4 GiB is some 25 million blobs).
const MAX_METADATA_FILE: u64 = 64 << 20;
const MAX_INDEX_FILE: u64 = 4 << 30;

/// Key files tried at most when opening: each costs a key derivation, so a
/// directory full of them must not make opening take hours.
pub const MAX_KEY_FILES: usize = 32;
/// A key file is a few hundred bytes; a file far larger is not one.
const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// Whether `name` can be a file of `kind`: what lifeboat itself names them
/// (SHA-256 hex; locks: 16 random bytes in hex). Anything else in the
/// namespace (temporary files of interrupted writes, files someone put
/// there) is reported by `check` and otherwise left alone.
pub(crate) fn is_file_name(kind: FileKind, name: &str) -> bool {
    let hex_of = |digits: usize| {
        name.len() == digits
            && name
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match kind {
        FileKind::Config => name == "config",
        FileKind::Lock => hex_of(32),
        FileKind::Key
        | FileKind::Pack
        | FileKind::Index
        | FileKind::Snapshot
        | FileKind::Applied
        | FileKind::Run => hex_of(64),
    }
}

/// One namespace, listed: the names that can be repository files, and the rest.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<String>,
    /// Entries that are no file of this kind, shown as `dir/name`.
    pub unknown: Vec<String>,
}

/// Lists one namespace of `backend`, sorted, splitting off what can be no file of it.
fn list_files(backend: &dyn Backend, kind: FileKind) -> Result<Listing, RepoError> {
    let names = backend.list(kind).map_err(RepoError::io(format!(
        "listing {}/{}",
        backend.location(),
        kind.dir()
    )))?;
    let mut listing = Listing::default();
    for name in names {
        if is_file_name(kind, &name) {
            listing.files.push(name);
        } else {
            listing.unknown.push(format!("{}/{name}", kind.dir()));
        }
    }
    listing.files.sort();
    listing.unknown.sort();
    Ok(listing)
}

/// A snapshot file that does not load: reported, skipped by everything
/// else, and forgettable by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedSnapshot {
    pub id: SnapshotId,
    /// Why it does not load.
    pub detail: String,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The first 8 characters of a name, for messages (names from the
/// repository may be shorter, or not ASCII).
pub(crate) fn short(name: &str) -> &str {
    name.char_indices()
        .nth(8)
        .map_or(name, |(end, _)| &name[..end])
}

impl Repository {
    /// Whether a lifeboat repository is here: `Ok(false)` for a missing or
    /// empty location, `Foreign` for one that holds something else. Only
    /// the format marker is looked at; [`Repository::open`] checks the rest.
    pub fn exists(backend: &dyn Backend) -> Result<bool, RepoError> {
        Ok(Repository::find(backend)?.is_some())
    }

    /// [`Repository::exists`], keeping the config it read for
    /// [`Repository::open_found`]: a run reads the config once, not once
    /// to look and again to open (each a round trip on a remote store).
    pub fn find(backend: &dyn Backend) -> Result<Option<FoundConfig>, RepoError> {
        let location = backend.location();
        match Repository::load_config_bytes(backend) {
            Ok(bytes) => {
                let marked = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .is_some_and(|value| value["format"] == config::MAGIC);
                if marked {
                    Ok(Some(FoundConfig(bytes)))
                } else {
                    Err(RepoError::Foreign(location))
                }
            }
            Err(RepoError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                if backend
                    .is_empty()
                    .map_err(RepoError::io(format!("looking at {location}")))?
                {
                    Ok(None)
                } else {
                    Err(RepoError::Foreign(location))
                }
            }
            Err(error) => Err(error),
        }
    }

    fn load_config_bytes(backend: &dyn Backend) -> Result<Vec<u8>, RepoError> {
        let location = backend.location();
        let context = format!("reading {location}/config");
        let size = backend
            .stat(FileKind::Config, "config")
            .map_err(RepoError::io(context.clone()))?;
        if size > config::MAX_SIZE {
            return Err(RepoError::BadConfig {
                location,
                detail: format!("{size} bytes, a config is a few hundred"),
            });
        }
        backend
            .load(FileKind::Config, "config", None)
            .map_err(RepoError::io(context))
    }

    /// Creates a repository; `passphrase: None` makes an unencrypted one
    /// (explicit opt-in). An existing repository is left as it is: `open`
    /// then checks that it is what the caller declares.
    pub fn init(backend: Arc<dyn Backend>, passphrase: Option<&str>) -> Result<(), RepoError> {
        if Repository::exists(backend.as_ref())? {
            return Ok(());
        }
        Repository::write_new(backend.as_ref(), passphrase).map(drop)
    }

    /// [`Repository::init`] then [`Repository::open`], deriving the key from
    /// the passphrase once: a new repository is opened with the keys it was
    /// just created with. It ran at init and again at open: 1.9% of the
    /// reference volume's first-backup CPU samples (0.12 s), 8% of a
    /// db-files one's; 0.8% since (perf, loaded machine).
    pub fn init_and_open(
        backend: Arc<dyn Backend>,
        passphrase: Option<&str>,
        options: RepoOptions,
    ) -> Result<Repository, RepoError> {
        if let Some(found) = Repository::find(backend.as_ref())? {
            return Repository::open_found(backend, found, passphrase, options);
        }
        let (keys, key_file, config) = Repository::write_new(backend.as_ref(), passphrase)?;
        Repository::open_with_keys(backend, config, keys, key_file, None, options)
    }

    /// Writes a new repository's key file (when encrypted) and config; returns
    /// its keys, the key file's name and the config.
    fn write_new(
        backend: &dyn Backend,
        passphrase: Option<&str>,
    ) -> Result<(Keys, Option<String>, Config), RepoError> {
        let location = backend.location();
        let (keys, key_file) = match passphrase {
            Some(passphrase) => {
                let (file, keys) = KeyFile::create(passphrase);
                let bytes = serde_json::to_vec_pretty(&file).expect("key files serialise");
                let name = sha256_hex(&bytes);
                backend
                    .save(FileKind::Key, &name, &bytes)
                    .map_err(RepoError::io(format!("writing a key to {location}")))?;
                (keys, Some(name))
            }
            None => (Keys::plaintext(), None),
        };
        // The config is written last: until it exists the directory is not a repository.
        let config = Config::new(&keys);
        backend
            .save(FileKind::Config, "config", &config.to_bytes())
            .map_err(RepoError::io(format!("writing {location}/config")))?;
        Ok((keys, key_file, config))
    }

    /// Opens the repository the caller declares: `passphrase: Some` for an
    /// encrypted one, `None` for a plaintext one (an explicit choice). A
    /// repository that is not what the caller declares is refused, whatever
    /// its config says, and so is a config its keys do not vouch for.
    pub fn open(
        backend: Arc<dyn Backend>,
        passphrase: Option<&str>,
        options: RepoOptions,
    ) -> Result<Repository, RepoError> {
        match Repository::find(backend.as_ref())? {
            Some(found) => Repository::open_found(backend, found, passphrase, options),
            None => Err(RepoError::NotFound(backend.location())),
        }
    }

    /// [`Repository::open`] of the repository [`Repository::find`] found,
    /// with the config it read then.
    pub fn open_found(
        backend: Arc<dyn Backend>,
        found: FoundConfig,
        passphrase: Option<&str>,
        options: RepoOptions,
    ) -> Result<Repository, RepoError> {
        let location = backend.location();
        let config = Config::parse(&found.0, &location)?;
        // The index files are read while the passphrase's key is derived
        // (a fifth of a second of CPU): on a remote store, most of the
        // round trips of an open (measured in the commit that added it).
        let (keys, fetched) = std::thread::scope(|scope| {
            let fetching = scope.spawn(|| index::fetch_stored(backend.as_ref()));
            let keys = Repository::open_keys(backend.as_ref(), &config, passphrase, &location);
            let fetched = fetching
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (keys, fetched)
        });
        let (keys, key_file) = keys?;
        Repository::open_with_keys(backend, config, keys, key_file, Some(fetched?), options)
    }

    /// The handle on a repository whose `keys` are known: checks that they
    /// vouch for `config`, then reads the index (the files `fetched` already
    /// read, when given).
    fn open_with_keys(
        backend: Arc<dyn Backend>,
        config: Config,
        keys: Keys,
        key_file: Option<String>,
        fetched: Option<index::FetchedIndex>,
        options: RepoOptions,
    ) -> Result<Repository, RepoError> {
        let upgrade = config.verify(&keys, &backend.location())?;
        // Believed only now: the MAC covers `blob_ids`.
        let keys = keys.with_id_function(config.id_function());
        let remembering = Arc::new(backend::remembering::RememberingBackend::new(backend));
        let repository = Repository {
            backend: remembering.clone(),
            remembering,
            keys,
            config,
            config_upgrade: AtomicBool::new(upgrade),
            index: RwLock::new(Index::default()),
            options,
            key_file,
            run_lock: std::sync::Mutex::new(None),
            tree_cache: std::sync::Mutex::new(None),
            #[cfg(test)]
            writes_format_3: false,
        };
        let index = Index::load_fetched(&repository, fetched)?;
        *repository.index.write().expect("index lock") = index;
        Ok(repository)
    }

    /// The keys that open the repository of `config` as the caller
    /// declares it, and the key file that gave them.
    fn open_keys(
        backend: &dyn Backend,
        config: &Config,
        passphrase: Option<&str>,
        location: &str,
    ) -> Result<(Keys, Option<String>), RepoError> {
        let location = location.to_string();
        let mut key_file = None;
        let keys = match (passphrase, config.is_encrypted()) {
            (Some(passphrase), true) => {
                let (keys, name) = Repository::unlock_keys(backend, passphrase)?;
                key_file = Some(name);
                keys
            }
            (None, true) => return Err(RepoError::PassphraseRequired(location)),
            // Keys beside a plaintext config: the config was swapped.
            (_, false) if Repository::has_keys(backend)? => {
                return Err(RepoError::Downgraded(location));
            }
            (Some(_), false) => return Err(RepoError::NotEncrypted(location)),
            (None, false) => Keys::plaintext(),
        };
        Ok((keys, key_file))
    }

    fn has_keys(backend: &dyn Backend) -> Result<bool, RepoError> {
        Ok(!list_files(backend, FileKind::Key)?.files.is_empty())
    }

    /// The master keys from the first key file the passphrase opens. Key
    /// files that are unusable (not JSON, parameters out of bounds, damaged)
    /// are passed over while another one opens, and are the error when none does.
    fn unlock_keys(backend: &dyn Backend, passphrase: &str) -> Result<(Keys, String), RepoError> {
        let location = backend.location();
        let names = list_files(backend, FileKind::Key)?.files;
        if names.is_empty() {
            return Err(RepoError::NoKeys(location));
        }
        if names.len() > MAX_KEY_FILES {
            return Err(RepoError::TooManyKeys {
                location,
                found: names.len(),
            });
        }
        let mut unusable = None;
        for name in names {
            let file = format!("{location}/keys/{name}");
            match Repository::read_key_file(backend, &name).and_then(|key| key.open(passphrase)) {
                Ok(Some(keys)) => return Ok((keys, name)),
                Ok(None) => {}
                Err(detail) => {
                    unusable.get_or_insert(RepoError::BadKeyFile { file, detail });
                }
            }
        }
        Err(unusable.unwrap_or(RepoError::WrongPassphrase(location)))
    }

    /// One key file, read with a size bound and its parameters checked.
    pub(crate) fn read_key_file(backend: &dyn Backend, name: &str) -> Result<KeyFile, String> {
        let size = backend
            .stat(FileKind::Key, name)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if size > MAX_KEY_FILE_SIZE {
            return Err(format!("{size} bytes, a key file is a few hundred"));
        }
        let bytes = backend
            .load(FileKind::Key, name, None)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if sha256_hex(&bytes) != name {
            return Err("its content does not match its name (modified or truncated)".into());
        }
        KeyFile::parse(&bytes)
    }

    /// Whether blobs this handle writes are sealed bound to their ids
    /// (format 4): in every encrypted repository. Plaintext has no AEAD to
    /// bind them to, so its blobs stay unmarked (and are always hashed).
    pub(crate) fn seals_blobs_bound(&self) -> bool {
        #[cfg(test)]
        if self.writes_format_3 {
            return false;
        }
        self.keys.is_encrypted()
    }

    /// Tests only: a format-3 repository, as a lifeboat of format 3 creates it.
    #[cfg(test)]
    pub(crate) fn init_format_3(
        backend: Arc<dyn Backend>,
        passphrase: &str,
    ) -> Result<(), RepoError> {
        let (file, keys) = KeyFile::create(passphrase);
        let bytes = serde_json::to_vec_pretty(&file).expect("key files serialise");
        backend
            .save(FileKind::Key, &sha256_hex(&bytes), &bytes)
            .map_err(RepoError::io("writing a key"))?;
        backend
            .save(
                FileKind::Config,
                "config",
                &Config::format_3(&keys).to_bytes(),
            )
            .map_err(RepoError::io("writing config"))
    }

    /// Tests only: opens a repository to write as a format-3 lifeboat did.
    #[cfg(test)]
    pub(crate) fn open_as_format_3(
        backend: Arc<dyn Backend>,
        passphrase: &str,
    ) -> Result<Repository, RepoError> {
        let mut repository = Repository::open(backend, Some(passphrase), RepoOptions::default())?;
        assert_eq!(repository.config.version, 3, "a format-3 repository");
        repository.writes_format_3 = true;
        repository.config_upgrade.store(false, Ordering::SeqCst);
        Ok(repository)
    }

    /// The format version of the config this handle opened.
    pub fn format_version(&self) -> u32 {
        self.config.version
    }

    /// Authenticates a format-1 config (rewriting it at the current format
    /// with its MAC), once, before the first write of this handle. Two
    /// writers doing it at once write the same bytes.
    fn authenticate_config(&self) -> Result<(), RepoError> {
        if !self.config_upgrade.load(Ordering::SeqCst) {
            return Ok(());
        }
        let location = self.location();
        self.backend
            .save(
                FileKind::Config,
                "config",
                &self.config.authenticated(&self.keys).to_bytes(),
            )
            .map_err(RepoError::io(format!("authenticating {location}/config")))?;
        self.config_upgrade.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Lists one namespace, splitting off what can be no file of it.
    pub(crate) fn list_files(&self, kind: FileKind) -> Result<Listing, RepoError> {
        list_files(self.backend(), kind)
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn chunker(&self) -> Chunker {
        self.config.chunker
    }

    /// Stores a metadata file (index, snapshot): compressed, encrypted, named
    /// by the SHA-256 of what is stored so corruption is visible without keys.
    pub(crate) fn save_file(
        &self,
        kind: FileKind,
        plaintext: &[u8],
    ) -> Result<(String, u64), RepoError> {
        let compressed = zstd::bulk::compress(plaintext, 3)
            .map_err(RepoError::io("compressing repository metadata"))?;
        let stored = self.keys.encrypt(&compressed);
        let name = sha256_hex(&stored);
        self.backend
            .save(kind, &name, &stored)
            .map_err(RepoError::io(format!("writing {}/{name}", kind.dir())))?;
        Ok((name, stored.len() as u64))
    }

    pub(crate) fn load_file(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, RepoError> {
        let stored = self
            .backend
            .load(kind, name, None)
            .map_err(RepoError::io(format!("reading {}/{name}", kind.dir())))?;
        self.open_stored(kind, name, stored)
    }

    /// The content of the metadata file `name` from its `stored` bytes
    /// (read from the store, untrusted): checked against its name,
    /// authenticated, decompressed within bounds.
    pub(crate) fn open_stored(
        &self,
        kind: FileKind,
        name: &str,
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, RepoError> {
        let what = format!("{}/{name}", kind.dir());
        // Plaintext repositories do not authenticate: a small file that
        // claims to decompress to terabytes must not be believed.
        let limit = match kind {
            FileKind::Index => MAX_INDEX_FILE,
            _ => MAX_METADATA_FILE,
        };
        let corrupt = |detail: &str| RepoError::Corrupt {
            what: what.clone(),
            detail: detail.to_string(),
        };
        if sha256_hex(&stored) != name {
            return Err(corrupt(
                "content does not match its name (modified or truncated)",
            ));
        }
        let compressed = self
            .keys
            .decrypt(&stored)
            .map_err(|_| corrupt("does not authenticate"))?;
        let mut plain = Vec::new();
        zstd::stream::read::Decoder::new(compressed.as_slice())
            .and_then(|decoder| {
                use std::io::Read;
                decoder.take(limit + 1).read_to_end(&mut plain)
            })
            .map_err(|_| corrupt("does not decompress"))?;
        if plain.len() as u64 > limit {
            return Err(corrupt(&format!(
                "decompresses to more than {} MiB, more than lifeboat ever writes",
                limit >> 20
            )));
        }
        Ok(plain)
    }

    pub(crate) fn reload_index(&self) -> Result<(), RepoError> {
        let index = Index::load(self)?;
        *self.index.write().expect("index lock") = index;
        Ok(())
    }

    pub(crate) fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().expect("index lock")
    }

    pub(crate) fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().expect("index lock")
    }

    /// Reads, authenticates, decompresses and verifies one blob. A blob
    /// stored in several packs (stored again after its pack was lost, or by
    /// two backups at once) is read from the next one when one fails.
    pub(crate) fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, String> {
        let locations = self.index().locations(id);
        self.read_copies(&locations)
    }

    /// Reads the first of these copies of one blob that reads and verifies.
    /// Copies found damaged on the way leave the index (see
    /// [`Repository::record_damaged_blobs`]), so no later backup
    /// deduplicates against them; a pack that does not load is not damage
    /// (the disk may be back tomorrow) and is left as it is.
    pub(crate) fn read_copies(
        &self,
        locations: &[(String, pack::PackedBlob)],
    ) -> Result<Vec<u8>, String> {
        let mut first_error = None;
        let mut damaged = Vec::new();
        let mut found = None;
        for (pack, blob) in locations {
            let range = blob.offset as u64..blob.offset as u64 + blob.length as u64;
            let stored = match self.backend.load(FileKind::Pack, pack, Some(range)) {
                Ok(stored) => stored,
                Err(e) => {
                    first_error.get_or_insert(format!("pack {}: {e}", short(pack)));
                    continue;
                }
            };
            match self.decode_blob(&stored, blob) {
                Ok(data) => {
                    found = Some(data);
                    break;
                }
                Err(detail) => {
                    first_error.get_or_insert(format!("in pack {}: {detail}", short(pack)));
                    damaged.push(index::DamagedBlob {
                        pack: pack.clone(),
                        id: blob.id,
                        detail,
                    });
                }
            }
        }
        // Best effort: the read's own outcome is what the caller is told;
        // a repository that cannot be written to keeps offering the copy,
        // and `check --read-data` or `repair` finds it again.
        let _ = self.record_damaged_blobs(&damaged);
        found.ok_or_else(|| first_error.unwrap_or_else(|| "not in the index".to_string()))
    }

    /// Authenticates, decompresses and checks one stored blob against its
    /// index entry. A blob sealed bound to its id in an encrypted
    /// repository is proven by its decryption alone; others (format 3,
    /// plaintext) are hashed again. See [`Repository::decode_blob_rehashing`].
    pub(crate) fn decode_blob(
        &self,
        stored: &[u8],
        blob: &pack::PackedBlob,
    ) -> Result<Vec<u8>, String> {
        self.decode_blob_rehashing(stored, blob, false)
    }

    /// [`Repository::decode_blob`], hashing every blob again when `rehash`
    /// (`check --read-data --rehash`).
    ///
    /// Skipping the hash is sound whatever the entry says: `id_bound`
    /// chooses the associated data of the decryption ([`pack::BlobSeal`]),
    /// and a blob sealed under other associated data (a format-3 blob, or
    /// a format-4 blob of another id, kind, form, length or repository)
    /// does not decrypt under it. Only a holder of the keys can seal.
    pub(crate) fn decode_blob_rehashing(
        &self,
        stored: &[u8],
        blob: &pack::PackedBlob,
        rehash: bool,
    ) -> Result<Vec<u8>, String> {
        let context = if blob.id_bound {
            pack::BlobSeal::of(self.id(), blob)
        } else {
            Vec::new()
        };
        // Into reused buffers: a restore writes the blob and hands it back
        // (see [`recycle`]).
        let mut plain = recycle::take(stored.len());
        if self.keys.unseal_into(stored, &context, &mut plain).is_err() {
            recycle::give(plain);
            return Err("does not authenticate".to_string());
        }
        let data = if blob.compressed {
            thread_local! {
                // A context per blob costs more than decompressing a small blob.
                static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                    const { std::cell::RefCell::new(None) };
            }
            let mut data = recycle::take(blob.raw_length as usize);
            let decompressed = DECOMPRESSOR.with_borrow_mut(|decompressor| {
                if decompressor.is_none() {
                    *decompressor = Some(zstd::bulk::Decompressor::new()?);
                }
                decompressor
                    .as_mut()
                    .expect("just made")
                    .decompress_to_buffer(&plain, &mut data)
            });
            recycle::give(plain);
            if let Err(e) = decompressed {
                recycle::give(data);
                return Err(format!("does not decompress: {e}"));
            }
            data
        } else {
            plain
        };
        // Plaintext has no AEAD: nothing is proven without the hash.
        let proven = blob.id_bound && self.keys.is_encrypted() && !rehash;
        if data.len() != blob.raw_length as usize
            || (!proven && self.keys.blob_id(&data) != blob.id)
        {
            return Err("content does not match its id".to_string());
        }
        Ok(data)
    }

    /// Every intact snapshot, oldest first. Damaged snapshot files are left
    /// out ([`Repository::damaged_snapshots`] lists them, `check` reports
    /// them) so that one bad file does not hide the others.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, RepoError> {
        Ok(self.load_snapshots()?.0)
    }

    /// The snapshot files that do not load, by id: `forget` removes them.
    pub fn damaged_snapshots(&self) -> Result<Vec<DamagedSnapshot>, RepoError> {
        Ok(self.load_snapshots()?.1)
    }

    /// `load` of each of `names`, in their order: several at once on a
    /// remote store, where each is a round trip (an unchanged re-run
    /// loaded its snapshots and run records one after the other); one
    /// after the other on a local disk, as before.
    pub(crate) fn load_each<T: Send>(
        &self,
        names: &[String],
        load: impl Fn(&str) -> T + Sync,
    ) -> Vec<T> {
        let plan = coalesce::ReadPlan::for_backend(self.backend());
        if !plan.remote || names.len() <= 1 {
            return names.iter().map(|name| load(name)).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let loaded = std::sync::Mutex::new(Vec::with_capacity(names.len()));
        std::thread::scope(|scope| {
            for _ in 0..plan.in_flight.min(names.len()) {
                scope.spawn(|| {
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(at) else {
                            return;
                        };
                        let value = load(name);
                        loaded.lock().expect("not poisoned").push((at, value));
                    }
                });
            }
        });
        let mut loaded = loaded.into_inner().expect("not poisoned");
        loaded.sort_by_key(|(at, _)| *at);
        loaded.into_iter().map(|(_, value)| value).collect()
    }

    /// Intact snapshots (oldest first) and damaged ones.
    pub(crate) fn load_snapshots(
        &self,
    ) -> Result<(Vec<Snapshot>, Vec<DamagedSnapshot>), RepoError> {
        let mut snapshots = Vec::new();
        let mut damaged = Vec::new();
        let names = self.list_files(FileKind::Snapshot)?.files;
        let loaded = self.load_each(&names, |name| self.load_snapshot(name));
        for (name, loaded) in names.into_iter().zip(loaded) {
            match loaded {
                Ok(snapshot) => snapshots.push(snapshot),
                Err(RepoError::Corrupt { detail, .. }) => damaged.push(DamagedSnapshot {
                    id: SnapshotId(name),
                    detail,
                }),
                // Forgotten by someone else between listing and loading.
                Err(RepoError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok((snapshots, damaged))
    }

    pub(crate) fn load_snapshot(&self, name: &str) -> Result<Snapshot, RepoError> {
        let bytes = self.load_file(FileKind::Snapshot, name)?;
        let mut snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
                what: format!("snapshots/{name}"),
                detail: e.to_string(),
            })?;
        // Tags are shown and matched as they are: only what lifeboat writes is accepted.
        tags::check_stored(&snapshot.source.tags).map_err(|detail| RepoError::Corrupt {
            what: format!("snapshots/{name}"),
            detail,
        })?;
        snapshot.id = SnapshotId(name.to_string());
        Ok(snapshot)
    }

    /// The snapshot with this id or unique id prefix; a damaged one is an
    /// error naming it.
    pub fn find_snapshot(&self, id_or_prefix: &str) -> Result<Snapshot, RepoError> {
        let names = self.list_files(FileKind::Snapshot)?.files;
        let matches: Vec<_> = names
            .iter()
            .filter(|n| n.starts_with(id_or_prefix))
            .collect();
        match matches.as_slice() {
            [] => Err(RepoError::SnapshotNotFound(id_or_prefix.to_string())),
            [one] => self.load_snapshot(one),
            _ => Err(RepoError::AmbiguousSnapshot(id_or_prefix.to_string())),
        }
    }

    pub(crate) fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId, RepoError> {
        let bytes = serde_json::to_vec(snapshot).expect("snapshots serialise");
        let (name, _) = self.save_file(FileKind::Snapshot, &bytes)?;
        Ok(SnapshotId(name))
    }

    /// Takes a lock shared with other backups and restores. Whoever locks
    /// is about to write, so a format-1 config is authenticated here.
    /// Within a run ([`Repository::lock_for_run`]) the run's lock is that
    /// lock: taking another beside it would protect nothing more and cost
    /// a write, a listing, a read of the run's lock and a removal.
    pub fn lock_shared(&self) -> Result<RepoLock, RepoError> {
        self.lock(false)
    }

    /// Takes the lock that excludes everyone else (for deleting data);
    /// within a run whose lock is exclusive, that lock.
    pub fn lock_exclusive(&self) -> Result<RepoLock, RepoError> {
        self.lock(true)
    }

    fn lock(&self, exclusive: bool) -> Result<RepoLock, RepoError> {
        let covered = self
            .run_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|run| run.is_exclusive() || !exclusive)
            .map(RepoLock::covered_by);
        let lock = match covered {
            Some(lock) => lock,
            None => lock::acquire(self, exclusive)?,
        };
        self.authenticate_config()?;
        Ok(lock)
    }

    /// Takes a lock for a whole run, before it touches anything: shared
    /// (beside other backups and restores), or exclusive when the run will
    /// delete data (its forgets then cannot fail on another's lock after
    /// its copies). Waits as [`RepoOptions::lock_timeout`] says, then fails
    /// naming the holder. The locks this handle takes during the run do
    /// not conflict with it; it is released by [`Repository::unlock_run`] or
    /// when the handle is dropped.
    pub fn lock_for_run(&self, exclusive: bool) -> Result<(), RepoError> {
        // Upgrading: the new lock is taken beside the old, then the old goes.
        let lock = lock::acquire(self, exclusive)?;
        self.authenticate_config()?;
        let old = self
            .run_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(lock);
        drop(old);
        Ok(())
    }

    /// From now on this handle lists snapshots and run records once and
    /// loads each of their files once (plan and apply of one run share
    /// them): see [`backend::remembering`]. For one run only: a handle
    /// that lives on (mount, status) must not call it.
    pub fn remember_for_run(&self) {
        self.remembering.start();
    }

    /// Forgets what [`Repository::remember_for_run`] kept, when this handle
    /// takes the exclusive lock: what it decides to delete then is decided
    /// on the store as it is, which no one else changes from then on.
    pub(crate) fn forget_remembered(&self) {
        self.remembering.forget();
    }

    /// Releases the lock of [`Repository::lock_for_run`], if held.
    pub fn unlock_run(&self) {
        self.run_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// The name of the run's own lock, which never blocks this handle.
    pub(crate) fn run_lock_name(&self) -> Option<String> {
        self.run_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|lock| lock.name().to_string())
    }

    pub(crate) fn options(&self) -> &RepoOptions {
        &self.options
    }

    /// Removes stale locks (holder gone or silent too long); returns how many.
    pub fn unlock(&self) -> Result<usize, RepoError> {
        lock::remove_stale(self)
    }

    /// Reads every node of a snapshot's tree, in order.
    pub(crate) fn for_each_node(
        &self,
        snapshot: &Snapshot,
        visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        self.walk_tree(snapshot, TreeWalk::Kept, visit)
    }

    fn walk_tree(
        &self,
        snapshot: &Snapshot,
        walk: TreeWalk,
        mut visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        let mut reader = tree::NodeReader::default();
        let corrupt = |detail: String| damaged_tree(snapshot, detail);
        let mut nodes = Vec::new();
        let mut feed = |bytes: &[u8]| {
            reader.feed(bytes, &mut nodes).map_err(corrupt)?;
            nodes.drain(..).try_for_each(&mut visit)
        };
        let cached = {
            let mut cache = self.tree_cache.lock().expect("not poisoned");
            match &*cache {
                Some((ids, _)) if *ids == snapshot.tree => match walk {
                    TreeWalk::Kept => cache.as_ref().map(|(_, blobs)| blobs.clone()),
                    TreeWalk::Last => cache.take().map(|(_, blobs)| blobs),
                },
                _ => None,
            }
        };
        if let Some(blobs) = cached {
            match Arc::try_unwrap(blobs) {
                // Each blob is freed once its nodes are handed on.
                Ok(owned) => owned.into_iter().try_for_each(|bytes| feed(&bytes))?,
                Err(shared) => shared.iter().try_for_each(|bytes| feed(bytes))?,
            }
            return reader.finish().map_err(corrupt);
        }
        let mut kept = (walk == TreeWalk::Kept).then(Vec::new);
        let mut kept_bytes = 0;
        self.read_tree_blobs(snapshot.tree.iter(), |id, read| {
            let bytes =
                read.map_err(|e| corrupt(format!("tree blob {}: {e}", hex::encode(&id[..4]))))?;
            feed(&bytes)?;
            kept_bytes += bytes.len();
            if kept_bytes > TREE_CACHE {
                kept = None;
            }
            if let Some(kept) = &mut kept {
                kept.push(bytes);
            }
            Ok(())
        })?;
        reader.finish().map_err(corrupt)?;
        if let Some(kept) = kept {
            *self.tree_cache.lock().expect("not poisoned") =
                Some((snapshot.tree.clone(), Arc::new(kept)));
        }
        Ok(())
    }

    /// Reads tree blobs `ids` in order, by pack a window at a time (a walk
    /// of a large tree from a remote store is then not a round trip per
    /// blob), and hands each to `each` with its bytes or why they did not
    /// read; stops at the first error `each` returns.
    pub(crate) fn read_tree_blobs<'i>(
        &self,
        ids: impl Iterator<Item = &'i BlobId>,
        each: impl FnMut(&BlobId, Result<Vec<u8>, String>) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        let plan = coalesce::ReadPlan::for_backend(self.backend()).scattered();
        coalesce::read_in_order(self, ids, plan, TREE_WINDOW, each)
    }

    /// Every node of `snapshot` in the form its content has: a directory
    /// tree through the guard restores use ([`Self::for_each_admitted_node`]);
    /// a stream or an image, whose root is a file node and not a directory,
    /// as restores of those read it.
    pub(crate) fn for_each_node_of_content(
        &self,
        snapshot: &Snapshot,
        visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        match snapshot.content {
            ContentKind::Tree => self.for_each_admitted_node(snapshot, visit),
            ContentKind::Stream | ContentKind::Image => self.for_each_node(snapshot, visit),
        }
    }

    /// [`Repository::for_each_node`] for what is restored or checked: a
    /// node the [`guard::TreeGuard`] refuses stops the walk as damage.
    pub(crate) fn for_each_admitted_node(
        &self,
        snapshot: &Snapshot,
        visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        self.walk_admitted(snapshot, TreeWalk::Kept, visit)
    }

    /// [`Repository::for_each_admitted_node`] for the last walk of
    /// `snapshot` through this handle (a restore's, after its checks): the
    /// cached tree is freed as it is walked instead of staying beside the
    /// restore's buffers (16 MB of a 97,000-entry tree).
    pub(crate) fn for_each_admitted_node_last(
        &self,
        snapshot: &Snapshot,
        visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        self.walk_admitted(snapshot, TreeWalk::Last, visit)
    }

    fn walk_admitted(
        &self,
        snapshot: &Snapshot,
        walk: TreeWalk,
        mut visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        let mut guard = guard::TreeGuard::default();
        self.walk_tree(snapshot, walk, |node| {
            guard
                .admit(&node)
                .map_err(|detail| refused_tree(snapshot, detail))?;
            visit(node)
        })
    }
}

/// `snapshot`'s tree does not read or decode (`detail` says where).
pub(crate) fn damaged_tree(snapshot: &Snapshot, detail: String) -> RepoError {
    RepoError::Corrupt {
        what: format!("the tree of snapshot {}", snapshot.id.short()),
        detail,
    }
}

/// The [`guard::TreeGuard`] refuses a node of `snapshot`'s tree (`detail`).
pub(crate) fn refused_tree(snapshot: &Snapshot, detail: String) -> RepoError {
    damaged_tree(
        snapshot,
        format!(
            "{detail}: a hostile or damaged tree; restore stops there and writes nothing \
             outside its target"
        ),
    )
}

#[cfg(test)]
mod copy_tests;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod format4_tests;
#[cfg(test)]
mod partial_tests;
#[cfg(test)]
mod prune_tests;
#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod restore_tests;
#[cfg(test)]
pub(crate) mod runs_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;
#[cfg(test)]
mod upload_tests;
