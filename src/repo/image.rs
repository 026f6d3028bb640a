//! Images as snapshots ([`ContentKind::Image`]): the `docker save` archive
//! taken apart. The snapshot's tree holds `image.json` (what lifeboat
//! records: id, tags, layer DiffIDs, platform), `config.json` (the image
//! configuration, byte for byte: its digest is the image id) and one file
//! node `layer-<hex>` per distinct layer, named by its DiffID.
//!
//! Layer bytes go through the same chunker as every file, so layers that
//! differ in a few files share most chunks; a layer whose DiffID an image
//! snapshot already holds is not chunked again: its node reuses the blobs.
//! A restore puts the archive back together for `docker load`.

use super::tree::{Node, NodeKind};
use super::{BlobId, ContentKind, Progress, RepoError, Repository, Snapshot, SnapshotSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};

/// The configuration and manifest files are small; anything far larger in
/// their place is not one.
const MAX_METADATA: u64 = 64 << 20;

/// What an image snapshot records about its image (`image.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    /// `sha256:…`
    pub id: String,
    pub repo_tags: Vec<String>,
    /// DiffIDs, bottom first (as the configuration lists them).
    pub layers: Vec<String>,
    pub os: String,
    pub architecture: String,
}

impl StoredImage {
    /// The image in words, as `ls` shows it and a mount's image file holds
    /// it: id, platform, tags, then one line per layer, bottom first.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "image {} ({}/{}), tags: {}\n",
            self.id,
            self.os,
            self.architecture,
            if self.repo_tags.is_empty() {
                "none".into()
            } else {
                self.repo_tags.join(", ")
            }
        );
        for (i, layer) in self.layers.iter().enumerate() {
            text.push_str(&format!("  layer {:>2}  {layer}\n", i + 1));
        }
        text
    }
}

const IMAGE_FILE: &str = "image.json";
const CONFIG_FILE: &str = "config.json";

fn layer_file(diff_id: &str) -> String {
    format!("layer-{}", diff_id.trim_start_matches("sha256:"))
}

fn file_node(path: &str, size: u64) -> Node {
    Node {
        path: path.to_string(),
        path_hex: None,
        kind: NodeKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        size,
        content: Vec::new(),
        target: None,
        target_hex: None,
        device: None,
        xattrs: Vec::new(),
    }
}

fn source_error(detail: impl std::fmt::Display) -> RepoError {
    RepoError::Source(format!("reading the image archive: {detail}"))
}

/// A `sha256:` digest, checked to be one (names built from it become paths).
fn digest_of(text: &str) -> Option<&str> {
    let hex = text.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A temporary file that is gone from the directory as soon as it exists.
fn spool_file() -> Result<std::fs::File, RepoError> {
    let path = std::env::temp_dir().join(format!(
        "lifeboat-layer-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(RepoError::io("creating a spool file for an image layer"))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An image snapshot's record, configuration bytes and layer nodes by DiffID.
type ImageParts = (StoredImage, Vec<u8>, HashMap<String, Node>);

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl Repository {
    /// DiffID → (content blobs, size) of every layer the image snapshots
    /// hold whose blobs are all still indexed.
    fn stored_layers(&self) -> Result<HashMap<String, (Vec<BlobId>, u64)>, RepoError> {
        let mut layers = HashMap::new();
        for snapshot in self.snapshots()? {
            if snapshot.content != ContentKind::Image {
                continue;
            }
            self.for_each_node(&snapshot, |node| {
                if let Some(hex) = node.path.strip_prefix("layer-")
                    && node.kind == NodeKind::File
                    && node.content.iter().all(|id| self.index().contains(id))
                {
                    layers.insert(format!("sha256:{hex}"), (node.content, node.size));
                }
                Ok(())
            })?;
        }
        Ok(layers)
    }

    /// Stores the image a `docker save` archive holds (exactly one image,
    /// whose id must be `expected_id`) as a snapshot of kind
    /// [`ContentKind::Image`]. The archive is untrusted: every layer's
    /// DiffID and the configuration's digest are checked.
    pub fn backup_image(
        &self,
        archive: impl Read + Send,
        expected_id: &str,
        repo_tags: &[String],
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        let known = self.stored_layers()?;
        // Progress counts the archive's bytes as they are read from the
        // engine: layers are spooled before they are stored, and a layer
        // the repository holds is read but never stored.
        let archive = ProgressReader {
            inner: archive,
            read: 0,
            progress,
        };
        self.backup_content(ContentKind::Image, source, &|_| {}, |builder| {
            let mut archive = tar::Archive::new(archive);
            // Archive path → DiffID of each layer tar, and small JSON files.
            let mut layer_paths: BTreeMap<String, String> = BTreeMap::new();
            let mut links: BTreeMap<String, String> = BTreeMap::new();
            let mut json: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut added: BTreeMap<String, ()> = BTreeMap::new();
            for entry in archive.entries().map_err(source_error)? {
                let mut entry = entry.map_err(source_error)?;
                let path = entry.path().map_err(source_error)?.display().to_string();
                let kind = entry.header().entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    if let Some(target) = entry.link_name().map_err(source_error)? {
                        links.insert(path, target.display().to_string());
                    }
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                if path.ends_with(".json") {
                    if entry.size() > MAX_METADATA {
                        return Err(source_error(format!("{path} is too large")));
                    }
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).map_err(source_error)?;
                    json.insert(path, data);
                    continue;
                }
                if !path.ends_with("layer.tar") {
                    continue;
                }
                // The archive names layers by a legacy id, not their
                // DiffID: only the bytes tell which layer this is, so they
                // wait in a spool file until their digest is known.
                let mut spool = HashingWriter {
                    inner: std::io::BufWriter::new(spool_file()?),
                    hasher: Sha256::new(),
                };
                let size = std::io::copy(&mut entry, &mut spool).map_err(source_error)?;
                let diff_id = format!("sha256:{}", hex::encode(spool.hasher.finalize()));
                layer_paths.insert(path, diff_id.clone());
                if added.contains_key(&diff_id) {
                    continue;
                }
                added.insert(diff_id.clone(), ());
                let node = file_node(&layer_file(&diff_id), size);
                if let Some((content, stored_size)) = known.get(&diff_id)
                    && *stored_size == size
                {
                    builder.add_known(node, content.clone())?;
                    continue;
                }
                let mut file = spool
                    .inner
                    .into_inner()
                    .map_err(|e| source_error(e.error()))?;
                file.rewind()
                    .map_err(RepoError::io("reading back a spooled image layer"))?;
                let stored = builder.add_stream(node, &mut std::io::BufReader::new(file))?;
                if stored != size {
                    return Err(source_error("a spooled layer changed while being stored"));
                }
            }
            let manifest: Vec<ManifestEntry> = json
                .get("manifest.json")
                .ok_or_else(|| source_error("it has no manifest.json"))
                .and_then(|m| serde_json::from_slice(m).map_err(source_error))?;
            let [image] = <[ManifestEntry; 1]>::try_from(manifest)
                .map_err(|m| source_error(format!("it holds {} images, not one", m.len())))?;
            let config = json
                .get(&image.config)
                .ok_or_else(|| source_error(format!("it has no {}", image.config)))?;
            let id = format!("sha256:{}", hex::encode(Sha256::digest(config)));
            if id != expected_id {
                return Err(source_error(format!(
                    "its configuration is image {id}, not {expected_id} (the image changed while \
                     being read?)"
                )));
            }
            let parsed: ConfigFile = serde_json::from_slice(config).map_err(source_error)?;
            let mut in_archive = Vec::new();
            for path in &image.layers {
                let mut resolved = path.clone();
                for _ in 0..8 {
                    let Some(target) = links.get(&resolved) else {
                        break;
                    };
                    // Links are relative to the linking entry's directory.
                    let dir = resolved.rsplit_once('/').map_or("", |(d, _)| d);
                    let joined = std::path::Path::new(dir).join(target);
                    let mut parts: Vec<String> = Vec::new();
                    for part in joined.components() {
                        match part {
                            std::path::Component::ParentDir => {
                                parts.pop();
                            }
                            std::path::Component::Normal(p) => {
                                parts.push(p.to_string_lossy().into_owned())
                            }
                            _ => {}
                        }
                    }
                    resolved = parts.join("/");
                }
                let diff_id = layer_paths
                    .get(&resolved)
                    .ok_or_else(|| source_error(format!("it has no layer {path}")))?;
                in_archive.push(diff_id.clone());
            }
            if in_archive != parsed.rootfs.diff_ids {
                return Err(source_error(
                    "its layers are not the ones its configuration lists",
                ));
            }
            builder.add_stream(file_node(CONFIG_FILE, 0), &mut config.as_slice())?;
            let stored = StoredImage {
                id,
                repo_tags: repo_tags.to_vec(),
                layers: in_archive,
                os: parsed.os,
                architecture: parsed.architecture,
            };
            let record = serde_json::to_vec(&stored).map_err(source_error)?;
            builder.add_stream(file_node(IMAGE_FILE, 0), &mut record.as_slice())?;
            Ok(())
        })
    }

    /// The parts of an image snapshot: its record, configuration and layers
    /// (DiffID → node). Untrusted: checked against each other.
    fn image_parts(&self, snapshot: &Snapshot) -> Result<ImageParts, RepoError> {
        let corrupt = |detail: String| RepoError::Corrupt {
            what: format!("image snapshot {}", snapshot.id.short()),
            detail,
        };
        if snapshot.content != ContentKind::Image {
            return Err(corrupt("it holds no image".into()));
        }
        let mut files: HashMap<String, Node> = HashMap::new();
        self.for_each_node(snapshot, |node| {
            if node.kind == NodeKind::File {
                files.insert(node.path.clone(), node);
            }
            Ok(())
        })?;
        let mut small = |name: &str| -> Result<Vec<u8>, RepoError> {
            let node = files
                .remove(name)
                .ok_or_else(|| corrupt(format!("it has no {name}")))?;
            if node.size > MAX_METADATA {
                return Err(corrupt(format!("{name} is too large")));
            }
            let mut data = Vec::new();
            for id in &node.content {
                data.extend(
                    self.read_blob(id)
                        .map_err(|e| corrupt(format!("{name}: {e}")))?,
                );
            }
            Ok(data)
        };
        let record: StoredImage = serde_json::from_slice(&small(IMAGE_FILE)?)
            .map_err(|e| corrupt(format!("{IMAGE_FILE}: {e}")))?;
        let config = small(CONFIG_FILE)?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&config))) != record.id {
            return Err(corrupt(
                "its configuration is not the image it records".into(),
            ));
        }
        let mut layers = HashMap::new();
        for diff_id in &record.layers {
            if digest_of(diff_id).is_none() {
                return Err(corrupt(format!("{diff_id:?} is not a layer digest")));
            }
            let node = files
                .get(&layer_file(diff_id))
                .ok_or_else(|| corrupt(format!("it has no layer {diff_id}")))?;
            layers.insert(diff_id.clone(), node.clone());
        }
        Ok((record, config, layers))
    }

    /// What an image snapshot records about its image.
    pub fn stored_image(&self, snapshot: &Snapshot) -> Result<StoredImage, RepoError> {
        Ok(self.image_parts(snapshot)?.0)
    }

    /// Writes an image snapshot to `out` as a `docker save` archive that
    /// `docker load` takes, tagging the image with `tags`; returns the
    /// layer bytes written.
    pub fn restore_image(
        &self,
        snapshot: &Snapshot,
        tags: &[String],
        out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<u64, RepoError> {
        let (record, config, layers) = self.image_parts(snapshot)?;
        let write_error = RepoError::io("writing the image archive");
        let mut tar = tar::Builder::new(out);
        let config_name = format!("{}.json", record.id.trim_start_matches("sha256:"));
        let layer_paths: Vec<String> = record
            .layers
            .iter()
            .map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:")))
            .collect();
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": tags,
            "Layers": layer_paths,
        }]);
        let manifest = serde_json::to_vec(&manifest).map_err(|e| RepoError::Corrupt {
            what: format!("image snapshot {}", snapshot.id.short()),
            detail: e.to_string(),
        })?;
        let append = |tar: &mut tar::Builder<_>, path: &str, size: u64, data: &mut dyn Read| {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(size);
            tar.append_data(&mut header, path, data)
        };
        append(
            &mut tar,
            &config_name,
            config.len() as u64,
            &mut config.as_slice(),
        )
        .map_err(RepoError::io("writing the image archive"))?;
        let mut written = 0u64;
        let mut done: BTreeMap<&str, ()> = BTreeMap::new();
        for (diff_id, path) in record.layers.iter().zip(&layer_paths) {
            if done.insert(diff_id, ()).is_some() {
                continue;
            }
            let node = &layers[diff_id];
            let mut reader = BlobReader {
                repository: self,
                blobs: node.content.iter(),
                current: Vec::new(),
                at: 0,
                layer: diff_id.clone(),
                hasher: Sha256::new(),
                read: 0,
                size: node.size,
                written: &mut written,
                progress,
            };
            append(&mut tar, path, node.size, &mut reader).map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<LayerError>())
                {
                    Some(LayerError(detail)) => RepoError::Corrupt {
                        what: format!("image snapshot {}", snapshot.id.short()),
                        detail: detail.clone(),
                    },
                    None => RepoError::Io {
                        context: "writing the image archive".to_string(),
                        source: e,
                    },
                }
            })?;
        }
        append(
            &mut tar,
            "manifest.json",
            manifest.len() as u64,
            &mut manifest.as_slice(),
        )
        .map_err(RepoError::io("writing the image archive"))?;
        let mut out = tar.into_inner().map_err(write_error)?;
        out.flush()
            .map_err(RepoError::io("writing the image archive"))?;
        Ok(written)
    }
}

#[derive(Debug)]
struct LayerError(String);

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayerError {}

/// A reader that reports how many bytes were read through it.
struct ProgressReader<'p, R> {
    inner: R,
    read: u64,
    progress: &'p (dyn Fn(Progress) + Sync),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(Progress {
            files: 0,
            bytes: self.read,
            current: None,
        });
        Ok(n)
    }
}

/// A layer's bytes read blob by blob, each verified, and the whole checked
/// against its DiffID at the end.
struct BlobReader<'a, 'p> {
    repository: &'a Repository,
    blobs: std::slice::Iter<'a, BlobId>,
    current: Vec<u8>,
    at: usize,
    layer: String,
    hasher: Sha256,
    read: u64,
    size: u64,
    written: &'a mut u64,
    progress: &'p (dyn Fn(Progress) + Sync),
}

impl Read for BlobReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(id) = self.blobs.next() else {
                let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
                if self.read != self.size || digest != self.layer {
                    return Err(std::io::Error::other(LayerError(format!(
                        "layer {} does not have the content its DiffID names",
                        self.layer
                    ))));
                }
                return Ok(0);
            };
            self.current = self.repository.read_blob(id).map_err(|detail| {
                std::io::Error::other(LayerError(format!(
                    "layer {}: blob {}: {detail}",
                    self.layer,
                    hex::encode(&id[..8])
                )))
            })?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.hasher.update(&buf[..n]);
        self.at += n;
        self.read += n as u64;
        *self.written += n as u64;
        (self.progress)(Progress {
            files: 0,
            bytes: *self.written,
            current: None,
        });
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::repo::backend::memory::MemoryBackend;
    use crate::repo::{Backend, RepoOptions};
    use std::sync::Arc;

    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    fn digest(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    /// A `docker save` archive of one image with `layers`, laid out as
    /// Docker 20.10 writes it (entries sorted, legacy layer directories).
    pub(crate) fn archive(layers: &[&[u8]], tag: &str) -> (Vec<u8>, String) {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let id = digest(&config);
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, data).unwrap();
        };
        let mut paths = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let dir = hex::encode(Sha256::digest(format!("{id}{i}")));
            add(&format!("{dir}/VERSION"), b"1.0");
            add(&format!("{dir}/json"), b"{}");
            add(&format!("{dir}/layer.tar"), layer);
            paths.push(format!("{dir}/layer.tar"));
        }
        let config_name = format!("{}.json", id.trim_start_matches("sha256:"));
        add(&config_name, &config);
        let manifest =
            serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": paths}]);
        add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        (tar.into_inner().unwrap(), id)
    }

    fn source(name: &str) -> SnapshotSource {
        SnapshotSource {
            resource: format!("image.{name}"),
            kind: "image".into(),
            ..SnapshotSource::default()
        }
    }

    #[test]
    fn layers_are_stored_once_and_images_come_back_loadable_with_their_id() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("p")).unwrap();
        let repository = Repository::open(backend, Some("p"), RepoOptions::default()).unwrap();
        let base_layer = noise(4 << 20, 1);
        let mut edited = base_layer.clone();
        edited[1 << 20..(1 << 20) + 100].copy_from_slice(&[7; 100]);
        let top = noise(64 << 10, 2);
        let (base, base_id) = archive(&[&base_layer], "base:1");
        let (derived, derived_id) = archive(&[&base_layer, &top], "app:1");
        let (near, near_id) = archive(&[&edited], "near:1");

        let first = repository
            .backup_image(
                base.as_slice(),
                &base_id,
                &["base:1".into()],
                source("base"),
                &|_| {},
            )
            .unwrap();
        assert_eq!(first.content, ContentKind::Image);
        // The base layer is known by its DiffID: only the new layer is stored.
        let second = repository
            .backup_image(
                derived.as_slice(),
                &derived_id,
                &["app:1".into()],
                source("app"),
                &|_| {},
            )
            .unwrap();
        assert!(
            second.summary.bytes_read < (base_layer.len() / 2) as u64,
            "the known layer was read again: {}",
            second.summary.bytes_read
        );
        assert!(second.summary.added_bytes < (base_layer.len() / 4) as u64);
        // A layer that differs in a few bytes shares most chunks.
        let third = repository
            .backup_image(
                near.as_slice(),
                &near_id,
                &["near:1".into()],
                source("near"),
                &|_| {},
            )
            .unwrap();
        assert!(
            third.summary.added_bytes < (base_layer.len() / 2) as u64,
            "{}",
            third.summary.added_bytes
        );

        let stored = repository.stored_image(&second).unwrap();
        assert_eq!(stored.id, derived_id);
        assert_eq!(stored.layers, vec![digest(&base_layer), digest(&top)]);
        assert_eq!(
            (stored.os.as_str(), stored.architecture.as_str()),
            ("linux", "amd64")
        );
        let mut out = Vec::new();
        repository
            .restore_image(&second, &["app:1".into()], &mut out, &|_| {})
            .unwrap();
        let engine = crate::engine::memory::MemoryEngine::new();
        assert_eq!(
            engine.add_image_archive(out.clone()).unwrap(),
            vec![derived_id.clone()]
        );
        // The layer tars come back byte for byte.
        let mut layers = Vec::new();
        for entry in tar::Archive::new(out.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with("layer.tar") {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                layers.push(digest(&data));
            }
        }
        assert_eq!(layers, stored.layers);
    }

    /// Text-like bytes (words, numbers, lines), as most of a layer's files are.
    pub(crate) fn text(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "usr",
            "lib",
            "share",
            "doc",
            "copyright",
            "python3",
            "libssl",
            "config",
            "the",
            "package",
            "version",
            "debian",
        ];
        let mut x = seed;
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(WORDS[(x >> 60) as usize % WORDS.len()].as_bytes());
            out.push(if (x >> 20).is_multiple_of(9) {
                b'\n'
            } else {
                b' '
            });
            if (x >> 40).is_multiple_of(5) {
                out.extend_from_slice(format!("{} ", (x >> 44) % 100_000).as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn layers_are_compressed_harder_than_files_and_come_back_byte_for_byte() {
        let open = || {
            let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
            Repository::init(backend.clone(), Some("p")).unwrap();
            Repository::open(backend, Some("p"), RepoOptions::default()).unwrap()
        };
        let layer = text(3 << 20, 5);
        let (archive_bytes, id) = archive(&[&layer], "text:1");
        let images = open();
        let image = images
            .backup_image(archive_bytes.as_slice(), &id, &[], source("text"), &|_| {})
            .unwrap();
        // The same bytes as a file of a volume: cut alike, compressed at
        // the files' level.
        let files = open();
        let file = files
            .backup_with(SnapshotSource::default(), &|_| {}, |builder| {
                let node = file_node("layer", 0);
                builder.add_stream(node, &mut layer.as_slice()).map(|_| ())
            })
            .unwrap();
        assert!(
            image.summary.added_bytes * 100 < file.summary.added_bytes * 97,
            "image {} B, file {} B",
            image.summary.added_bytes,
            file.summary.added_bytes
        );
        let mut out = Vec::new();
        images
            .restore_image(&image, &[], &mut out, &|_| {})
            .unwrap();
        let mut restored = None;
        for entry in tar::Archive::new(out.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with("layer.tar") {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                restored = Some(data);
            }
        }
        assert!(
            restored == Some(layer),
            "the layer did not come back as it was"
        );
    }

    #[test]
    fn an_archive_of_another_image_or_with_a_wrong_layer_is_refused() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("p")).unwrap();
        let repository = Repository::open(backend, Some("p"), RepoOptions::default()).unwrap();
        let (archive_bytes, _) = archive(&[b"layer"], "x:1");
        let other = format!("sha256:{}", "0".repeat(64));
        let refused =
            repository.backup_image(archive_bytes.as_slice(), &other, &[], source("x"), &|_| {});
        assert!(matches!(refused, Err(RepoError::Source(m)) if m.contains("not")));
        // The configuration lists a layer the archive does not hold.
        let (mut tampered, id) = archive(&[b"layer-bytes"], "x:1");
        let at = tampered
            .windows(11)
            .position(|w| w == b"layer-bytes")
            .unwrap();
        tampered[at] = b'L';
        let refused = repository.backup_image(tampered.as_slice(), &id, &[], source("x"), &|_| {});
        assert!(refused.is_err());
    }
}
