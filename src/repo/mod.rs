//! repo: the repository, lifeboat's storage engine. It owns the on-disk
//! format (docs/repository-format.md): config, keys, packs of encrypted and
//! compressed content-defined chunks, indexes, snapshot manifests and locks,
//! and the operations on them (backup from a tar stream or a directory,
//! restore to a tar stream or a directory, check, forget, prune).
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
mod budget;
mod cache;
mod check;
pub mod crypto;
mod direct;
mod index;
pub mod lock;
pub mod pack;
mod prune;
mod restorer;
pub mod tree;

pub use applied::AppliedRecord;
pub use backend::{Backend, FileKind};
pub use check::{CheckOptions, CheckReport, Problem, ReadData};
pub use lock::{LockInfo, RepoLock};
pub use prune::PruneStats;
pub use restorer::RestoreStats;

use crypto::{BlobId, KeyFile, Keys};
use index::Index;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Repository format version written to `config`; readers refuse newer ones.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "lifeboat repository";

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
    #[error("the repository at {0} is encrypted: set its passphrase variable")]
    PassphraseRequired(String),
    #[error(
        "the repository at {location} has format version {found}; this lifeboat reads up to {FORMAT_VERSION}: upgrade lifeboat"
    )]
    TooNew { location: String, found: u32 },
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
}

impl RepoError {
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

/// The plaintext `config` file: marks the directory as ours, says how to read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    format: String,
    version: u32,
    id: String,
    encryption: String,
    chunker: Chunker,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
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
        &self.0[..8.min(self.0.len())]
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
    #[serde(default)]
    pub tags: Vec<String>,
    /// Digest of the spec that made the snapshot.
    #[serde(default)]
    pub spec_digest: Option<String>,
    /// The apply run that took it: every snapshot of one run shares it, so
    /// a whole-host restore can take every resource from the same moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
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
    /// The tree blobs, in order.
    #[serde(with = "tree_ids")]
    pub tree: Vec<BlobId>,
    pub lifeboat_version: String,
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

pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: Keys,
    config: Config,
    index: RwLock<Index>,
    options: RepoOptions,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Repository {
    /// Whether a lifeboat repository is here: `Ok(false)` for a missing or
    /// empty location, `Foreign` for one that holds something else.
    pub fn exists(backend: &dyn Backend) -> Result<bool, RepoError> {
        let location = backend.location();
        match backend.load(FileKind::Config, "config", None) {
            Ok(bytes) => match serde_json::from_slice::<Config>(&bytes) {
                Ok(config) if config.format == MAGIC => Ok(true),
                _ => Err(RepoError::Foreign(location)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if backend
                    .is_empty()
                    .map_err(RepoError::io(format!("looking at {location}")))?
                {
                    Ok(false)
                } else {
                    Err(RepoError::Foreign(location))
                }
            }
            Err(e) => Err(RepoError::io(format!("reading {location}/config"))(e)),
        }
    }

    /// Creates a repository; `passphrase: None` makes an unencrypted one (explicit opt-in).
    pub fn init(backend: Arc<dyn Backend>, passphrase: Option<&str>) -> Result<(), RepoError> {
        let location = backend.location();
        if Repository::exists(backend.as_ref())? {
            return Ok(());
        }
        let config = Config {
            format: MAGIC.to_string(),
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            encryption: if passphrase.is_some() {
                "aes-256-gcm"
            } else {
                "none"
            }
            .to_string(),
            chunker: CHUNKER,
        };
        if let Some(passphrase) = passphrase {
            let (file, _) = KeyFile::create(passphrase);
            let bytes = serde_json::to_vec_pretty(&file).expect("key files serialise");
            backend
                .save(FileKind::Key, &sha256_hex(&bytes), &bytes)
                .map_err(RepoError::io(format!("writing a key to {location}")))?;
        }
        // The config is written last: until it exists the directory is not a repository.
        let bytes = serde_json::to_vec_pretty(&config).expect("config serialises");
        backend
            .save(FileKind::Config, "config", &bytes)
            .map_err(RepoError::io(format!("writing {location}/config")))
    }

    pub fn open(
        backend: Arc<dyn Backend>,
        passphrase: Option<&str>,
        options: RepoOptions,
    ) -> Result<Repository, RepoError> {
        let location = backend.location();
        if !Repository::exists(backend.as_ref())? {
            return Err(RepoError::NotFound(location));
        }
        let bytes = backend
            .load(FileKind::Config, "config", None)
            .map_err(RepoError::io(format!("reading {location}/config")))?;
        let config: Config = serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
            what: "config".into(),
            detail: e.to_string(),
        })?;
        if config.version > FORMAT_VERSION {
            return Err(RepoError::TooNew {
                location,
                found: config.version,
            });
        }
        let keys = if config.encryption == "none" {
            Keys::plaintext()
        } else {
            let passphrase =
                passphrase.ok_or_else(|| RepoError::PassphraseRequired(location.clone()))?;
            Repository::unlock_keys(backend.as_ref(), passphrase)?
        };
        let repository = Repository {
            backend,
            keys,
            config,
            index: RwLock::new(Index::default()),
            options,
        };
        repository.reload_index()?;
        Ok(repository)
    }

    fn unlock_keys(backend: &dyn Backend, passphrase: &str) -> Result<Keys, RepoError> {
        let location = backend.location();
        let names = backend
            .list(FileKind::Key)
            .map_err(RepoError::io(format!("listing keys in {location}")))?;
        for name in names {
            let bytes = backend
                .load(FileKind::Key, &name, None)
                .map_err(RepoError::io(format!("reading key {name}")))?;
            let Ok(file) = serde_json::from_slice::<KeyFile>(&bytes) else {
                continue;
            };
            if let Some(keys) = file.open(passphrase) {
                return Ok(keys);
            }
        }
        Err(RepoError::WrongPassphrase(location))
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
        let what = format!("{}/{name}", kind.dir());
        let stored = self
            .backend
            .load(kind, name, None)
            .map_err(RepoError::io(format!("reading {what}")))?;
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
        zstd::stream::decode_all(compressed.as_slice()).map_err(|_| corrupt("does not decompress"))
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

    /// Reads, authenticates, decompresses and verifies one blob.
    pub(crate) fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, String> {
        let location = self
            .index()
            .get(id)
            .ok_or_else(|| "not in the index".to_string())?;
        let (pack, blob) = location;
        let range = blob.offset as u64..blob.offset as u64 + blob.length as u64;
        let stored = self
            .backend
            .load(FileKind::Pack, &pack, Some(range))
            .map_err(|e| format!("pack {}: {e}", &pack[..8.min(pack.len())]))?;
        self.decode_blob(&stored, &blob)
    }

    pub(crate) fn decode_blob(
        &self,
        stored: &[u8],
        blob: &pack::PackedBlob,
    ) -> Result<Vec<u8>, String> {
        let plain = self
            .keys
            .decrypt(stored)
            .map_err(|_| "does not authenticate".to_string())?;
        let data = if blob.compressed {
            thread_local! {
                // A context per blob costs more than decompressing a small blob.
                static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                    const { std::cell::RefCell::new(None) };
            }
            DECOMPRESSOR
                .with_borrow_mut(|decompressor| {
                    if decompressor.is_none() {
                        *decompressor = Some(zstd::bulk::Decompressor::new()?);
                    }
                    decompressor
                        .as_mut()
                        .expect("just made")
                        .decompress(&plain, blob.raw_length as usize)
                })
                .map_err(|e| format!("does not decompress: {e}"))?
        } else {
            plain
        };
        if data.len() != blob.raw_length as usize || self.keys.blob_id(&data) != blob.id {
            return Err("content does not match its id".to_string());
        }
        Ok(data)
    }

    /// Every snapshot, oldest first. A damaged snapshot file is an error
    /// naming it (`check` reports it with what it affects).
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, RepoError> {
        let names = self
            .backend
            .list(FileKind::Snapshot)
            .map_err(RepoError::io("listing snapshots"))?;
        let mut snapshots = names
            .iter()
            .map(|name| self.load_snapshot(name))
            .collect::<Result<Vec<_>, _>>()?;
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(snapshots)
    }

    pub(crate) fn load_snapshot(&self, name: &str) -> Result<Snapshot, RepoError> {
        let bytes = self.load_file(FileKind::Snapshot, name)?;
        let mut snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
                what: format!("snapshots/{name}"),
                detail: e.to_string(),
            })?;
        snapshot.id = SnapshotId(name.to_string());
        Ok(snapshot)
    }

    pub fn find_snapshot(&self, id_or_prefix: &str) -> Result<Snapshot, RepoError> {
        let names = self
            .backend
            .list(FileKind::Snapshot)
            .map_err(RepoError::io("listing snapshots"))?;
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

    /// Takes a lock shared with other backups and restores.
    pub fn lock_shared(&self) -> Result<RepoLock, RepoError> {
        lock::acquire(self, false)
    }

    /// Takes the lock that excludes everyone else (for deleting data).
    pub fn lock_exclusive(&self) -> Result<RepoLock, RepoError> {
        lock::acquire(self, true)
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
        mut visit: impl FnMut(tree::Node) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        let mut reader = tree::NodeReader::default();
        let corrupt = |detail: String| RepoError::Corrupt {
            what: format!("the tree of snapshot {}", snapshot.id.short()),
            detail,
        };
        let mut nodes = Vec::new();
        for id in &snapshot.tree {
            let bytes = self
                .read_blob(id)
                .map_err(|e| corrupt(format!("tree blob {}: {e}", hex::encode(&id[..4]))))?;
            reader.feed(&bytes, &mut nodes).map_err(corrupt)?;
            for node in nodes.drain(..) {
                visit(node)?;
            }
        }
        reader.finish().map_err(corrupt)
    }
}

#[cfg(test)]
mod tests;
