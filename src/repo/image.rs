//! Images as snapshots ([`ContentKind::Image`]): the `docker save` archive
//! taken apart. The snapshot's tree holds `image.json` (what lifeboat
//! records: id, tags, layer DiffIDs, platform), `config.json` (the image
//! configuration, byte for byte: its digest is the image id) and one file
//! node `layer-<hex>` per distinct layer, named by its DiffID.
//!
//! Layer bytes go through the same chunker as every file, so layers that
//! differ in a few files share most chunks; a layer whose DiffID an image
//! snapshot already holds is not stored again: its node reuses the blobs.
//! Layers are chunked and stored as the archive streams, their sha256
//! computed beside the chunking, in both layouts `docker save` writes
//! (`<id>/layer.tar`, and the OCI layout's `blobs/sha256/<digest>`).
//! A restore puts the archive back together for `docker load`.

use super::archiver::Builder;
use super::coalesce::{PackRegions, ReadPlan};
use super::pack::PackedBlob;
use super::tree::{Node, NodeKind};
use super::{BlobId, ContentKind, Progress, RepoError, Repository, Snapshot, SnapshotSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

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

/// The digest an OCI layout's blob entry is named by (`blobs/sha256/<hex>`).
fn blob_digest(path: &str) -> Option<String> {
    let digest = format!("sha256:{}", path.strip_prefix("blobs/sha256/")?);
    digest_of(&digest).is_some().then_some(digest)
}

/// Bytes handed to the hashing thread at a time.
const HASH_BLOCK: usize = 1 << 20;
/// Blocks waiting for the hashing thread: with [`HASH_BLOCK`] it holds a
/// few MiB however large the layer.
const HASH_QUEUE: usize = 4;

/// A reader that copies what passes through it, block by block, to a
/// thread computing its sha256; used blocks come back to be filled again.
struct HashTee<'r> {
    inner: &'r mut dyn Read,
    block: Vec<u8>,
    to_hash: SyncSender<Vec<u8>>,
    spent: Receiver<Vec<u8>>,
}

impl HashTee<'_> {
    fn hand_over(&mut self) {
        let mut next = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_BLOCK));
        next.clear();
        let full = std::mem::replace(&mut self.block, next);
        // The hashing thread only stops once this sender is gone.
        let _ = self.to_hash.send(full);
    }
}

impl Read for HashTee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() >= HASH_BLOCK {
            self.hand_over();
        }
        Ok(n)
    }
}

/// Hands `content` to `consume` (which chunks and stores it on this
/// thread) while another thread computes the sha256 of what `consume`
/// read: a layer's two passes over its bytes run on both cores, and the
/// bytes are read from the engine once. Returns what `consume` returned
/// and the digest (`sha256:<hex>`).
fn hashed_beside<T>(
    content: &mut dyn Read,
    consume: impl FnOnce(&mut dyn Read) -> Result<T, RepoError>,
) -> Result<(T, String), RepoError> {
    std::thread::scope(|scope| {
        let (to_hash, blocks) = sync_channel::<Vec<u8>>(HASH_QUEUE);
        let (give_back, spent) = channel::<Vec<u8>>();
        let hashing = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for block in blocks {
                hasher.update(&block);
                let _ = give_back.send(block);
            }
            hasher.finalize()
        });
        let mut tee = HashTee {
            inner: content,
            block: Vec::with_capacity(HASH_BLOCK),
            to_hash,
            spent,
        };
        let consumed = consume(&mut tee);
        tee.hand_over();
        drop(tee);
        let digest = hashing.join().expect("hashing does not panic");
        Ok((consumed?, format!("sha256:{}", hex::encode(digest))))
    })
}

/// Reads up to `head.len()` bytes (fewer only at the end of `content`).
fn read_head(content: &mut dyn Read, head: &mut [u8]) -> Result<usize, RepoError> {
    let mut filled = 0;
    while filled < head.len() {
        match content.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(source_error(e)),
        }
    }
    Ok(filled)
}

/// One image an export is read for: the id it must have (its
/// configuration's digest), the tags its snapshot records, and the
/// snapshot's source.
#[derive(Debug, Clone)]
pub struct WantedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub source: SnapshotSource,
    /// Images of the same export (indices of earlier ones) that must be
    /// stored whole for this one to be: those it is built on.
    pub needs: Vec<usize>,
}

/// A layer of an export, stored: its blobs and size, and whether this
/// pass stored it (else the repository held it already).
struct ExportLayer {
    content: Vec<BlobId>,
    size: u64,
    stored_here: bool,
}

/// What one pass over a `docker save` archive found: each layer by DiffID
/// (stored once however many images and paths name it), the DiffID of
/// each layer path, the layer paths refused (why), the links between
/// paths, and the small JSON files.
#[derive(Default)]
struct Export {
    layers: HashMap<String, ExportLayer>,
    layer_paths: BTreeMap<String, String>,
    rejected: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
    json: BTreeMap<String, Vec<u8>>,
}

/// One image of an export, checked: what its snapshot holds besides its layers.
struct ExportedImage {
    record: StoredImage,
    config: Vec<u8>,
}

/// The id of the `index`th image wanted (an index out of range is a caller's
/// slip, named as such rather than a panic).
fn wanted_id<'w>(ids: &[&'w str], index: usize) -> &'w str {
    ids.get(index).copied().unwrap_or("(unknown)")
}

/// `items` without repeats, in their order.
fn distinct(items: &[String]) -> Vec<&String> {
    let mut seen: BTreeMap<&String, ()> = BTreeMap::new();
    items
        .iter()
        .filter(|item| seen.insert(item, ()).is_none())
        .collect()
}

/// Reads a `docker save` archive once, storing (through `builder`, not in
/// its tree) each layer the repository does not hold (`known`) while it
/// streams. Both layouts: Docker before 25 names layers `<id>/layer.tar`
/// by a legacy id (the bytes alone tell their DiffID), Docker 25 and later
/// (the OCI layout) `blobs/sha256/<digest>`, checked at the entry's end;
/// the manifest may come before or after them. An entry the archive names
/// twice is refused: which one an image means would be a guess.
fn read_export(
    archive: impl Read,
    known: &HashMap<String, (Vec<BlobId>, u64)>,
    builder: &mut Builder,
) -> Result<Export, RepoError> {
    let mut export = Export::default();
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().map_err(source_error)? {
        let mut entry = entry.map_err(source_error)?;
        let path = entry.path().map_err(source_error)?.display().to_string();
        let kind = entry.header().entry_type();
        let named = blob_digest(&path);
        let wanted = kind.is_symlink()
            || kind.is_hard_link()
            || (kind.is_file()
                && (path.ends_with(".json") || path.ends_with("layer.tar") || named.is_some()));
        if !wanted {
            continue;
        }
        if seen.insert(path.clone(), ()).is_some() {
            return Err(source_error(format!("it names {path} twice")));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(source_error)? {
                export.links.insert(path, target.display().to_string());
            }
            continue;
        }
        let size = entry.size();
        // A blob of the OCI layout is a configuration, a manifest or a
        // layer, which its first bytes tell apart: JSON is kept whole, a
        // layer (a tar) streams.
        let mut head = [0u8; 16];
        let head_len = read_head(&mut entry, &mut head)?;
        let head = &head[..head_len];
        let json_like = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let mut content = head.chain(&mut entry);
        if path.ends_with(".json") || (named.is_some() && json_like && size <= MAX_METADATA) {
            if size > MAX_METADATA {
                return Err(source_error(format!("{path} is too large")));
            }
            let mut data = Vec::new();
            content.read_to_end(&mut data).map_err(source_error)?;
            export.json.insert(path, data);
            continue;
        }
        export.add_layer(path, named, size, &mut content, known, builder)?;
    }
    // A layer whose bytes begin like JSON was kept whole as if it were
    // JSON (it is small); the manifest says it is a layer.
    if let Ok(manifest) = export.manifest() {
        let kept: Vec<String> = manifest
            .iter()
            .flat_map(|entry| &entry.layers)
            .map(|path| export.resolve(path))
            .filter(|path| !export.layer_paths.contains_key(path))
            .filter(|path| !export.rejected.contains_key(path))
            .filter(|path| blob_digest(path).is_some() && export.json.contains_key(path))
            .collect();
        for path in kept {
            let data = export.json[&path].clone();
            let named = blob_digest(&path);
            let size = data.len() as u64;
            export.add_layer(path, named, size, &mut data.as_slice(), known, builder)?;
        }
    }
    Ok(export)
}

impl Export {
    /// Stores the layer entry `path` (`size` bytes of `content`) as it
    /// streams: chunked, identified and stored on this thread while another
    /// computes its sha256 (chunks deduplicate by content, so a layer the
    /// repository holds stores nothing new). `named`: the digest its name
    /// gives (OCI layout); a layer whose bytes have another is rejected:
    /// no layer is recorded for it, and its blobs stay unreferenced. A
    /// named layer the repository or this export holds is only hashed.
    fn add_layer(
        &mut self,
        path: String,
        named: Option<String>,
        size: u64,
        content: &mut dyn Read,
        known: &HashMap<String, (Vec<BlobId>, u64)>,
        builder: &mut Builder,
    ) -> Result<(), RepoError> {
        let held = named.as_ref().filter(|digest| {
            self.layers.contains_key(*digest)
                || known
                    .get(*digest)
                    .is_some_and(|(_, stored)| *stored == size)
        });
        let in_layer = |error: RepoError| match error {
            RepoError::Source(detail) => source_error(format!("{path}: {detail}")),
            other => other,
        };
        let mut node = file_node(&path, size);
        let (stored, digest) = if held.is_some() {
            hashed_beside(content, |reader| {
                let read = std::io::copy(reader, &mut std::io::sink()).map_err(source_error)?;
                if read != size {
                    return Err(source_error(format!(
                        "{path} holds {read} bytes, its header says {size}"
                    )));
                }
                Ok(false)
            })?
        } else {
            hashed_beside(content, |reader| {
                builder.store_shared(&mut node, reader).map(|_| true)
            })
            .map_err(in_layer)?
        };
        if let Some(named) = named
            && named != digest
        {
            self.rejected.insert(
                path,
                format!("its content is {digest}, not the {named} its name says"),
            );
            return Ok(());
        }
        self.layer_paths.insert(path, digest.clone());
        if self.layers.contains_key(&digest) {
            return Ok(());
        }
        let layer = match known.get(&digest) {
            Some((content, stored_size)) if *stored_size == size => ExportLayer {
                content: content.clone(),
                size,
                stored_here: false,
            },
            _ if stored => ExportLayer {
                content: node.content,
                size,
                stored_here: true,
            },
            // Only hashed, as a layer this export or the repository holds,
            // which it is: `held` matched its digest.
            _ => return Ok(()),
        };
        self.layers.insert(digest, layer);
        Ok(())
    }

    /// The archive's `manifest.json`: one entry per image (per name asked for).
    fn manifest(&self) -> Result<Vec<ManifestEntry>, RepoError> {
        self.json
            .get("manifest.json")
            .ok_or_else(|| source_error("it has no manifest.json"))
            .and_then(|m| serde_json::from_slice(m).map_err(source_error))
    }

    /// The image `wanted` names, found by its configuration's digest (never
    /// by the tags the manifest claims, which may name another image) and
    /// checked: every layer its manifest entry names is in the archive, and
    /// they are the ones its configuration lists.
    fn image(
        &self,
        manifest: &[ManifestEntry],
        wanted: &WantedImage,
    ) -> Result<ExportedImage, RepoError> {
        let mut found = Vec::new();
        for entry in manifest {
            let config = self
                .json
                .get(&entry.config)
                .ok_or_else(|| source_error(format!("it has no {}", entry.config)))?;
            let id = format!("sha256:{}", hex::encode(Sha256::digest(config)));
            if id == wanted.id {
                return self.checked(entry, config, id, wanted);
            }
            found.push(id);
        }
        Err(source_error(match found.as_slice() {
            [] => "it holds no image".to_string(),
            [one] => format!(
                "its configuration is image {one}, not {} (the image changed while being read?)",
                wanted.id
            ),
            many => format!(
                "it holds images {}, not {} (the image changed while being read?)",
                many.join(", "),
                wanted.id
            ),
        }))
    }

    fn checked(
        &self,
        entry: &ManifestEntry,
        config: &[u8],
        id: String,
        wanted: &WantedImage,
    ) -> Result<ExportedImage, RepoError> {
        let parsed: ConfigFile = serde_json::from_slice(config).map_err(source_error)?;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let resolved = self.resolve(path);
            let diff_id = self.layer_paths.get(&resolved).ok_or_else(|| {
                source_error(match self.rejected.get(&resolved) {
                    Some(why) => format!("layer {path} is refused: {why}"),
                    None => format!("it has no layer {path}"),
                })
            })?;
            layers.push(diff_id.clone());
        }
        if layers != parsed.rootfs.diff_ids {
            return Err(source_error(format!(
                "the layers of image {id} are not the ones its configuration lists"
            )));
        }
        let record = StoredImage {
            id,
            repo_tags: wanted.repo_tags.clone(),
            layers,
            os: parsed.os,
            architecture: parsed.architecture,
        };
        Ok(ExportedImage {
            record,
            config: config.to_vec(),
        })
    }

    /// `path` with the archive's links followed (at most 8, relative to
    /// the linking entry's directory).
    fn resolve(&self, path: &str) -> String {
        let mut resolved = path.to_string();
        for _ in 0..8 {
            let Some(target) = self.links.get(&resolved) else {
                break;
            };
            let dir = resolved.rsplit_once('/').map_or("", |(d, _)| d);
            let joined = std::path::Path::new(dir).join(target);
            let mut parts: Vec<String> = Vec::new();
            for part in joined.components() {
                match part {
                    std::path::Component::ParentDir => {
                        parts.pop();
                    }
                    std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                    _ => {}
                }
            }
            resolved = parts.join("/");
        }
        resolved
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
        let wanted = vec![WantedImage {
            id: expected_id.to_string(),
            repo_tags: repo_tags.to_vec(),
            source,
            needs: Vec::new(),
        }];
        let mut snapshots = self.backup_images(archive, wanted, progress)?;
        snapshots
            .pop()
            .unwrap_or_else(|| Err(source_error("it holds no image")))
    }

    /// Stores each image of `wanted` from one `docker save` archive of all
    /// of them (`GET /images/get?names=…`) as its own snapshot of kind
    /// [`ContentKind::Image`], in one pass: a layer several images share is
    /// read, hashed and stored once. The archive is untrusted: every
    /// layer's DiffID and each configuration's digest are checked. An
    /// image the archive does not hold whole fails alone (its `Err` in the
    /// result, in `wanted`'s order); an archive that cannot be read fails
    /// them all.
    pub fn backup_images(
        &self,
        archive: impl Read + Send,
        wanted: Vec<WantedImage>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Result<Snapshot, RepoError>>, RepoError> {
        let known = self.stored_layers()?;
        // Progress counts the archive's bytes as they are read from the
        // engine: a layer the repository holds is read but never stored.
        let archive = ProgressReader {
            inner: archive,
            read: 0,
            progress,
        };
        let sources = wanted.iter().map(|w| w.source.clone()).collect();
        let wanted_ids: Vec<&str> = wanted.iter().map(|w| w.id.as_str()).collect();
        self.backup_contents(ContentKind::Image, sources, &|_| {}, |builders| {
            let Some(first) = builders.first_mut() else {
                return Ok(Vec::new());
            };
            let export = read_export(archive, &known, first)?;
            let manifest = export.manifest()?;
            let mut charged: HashMap<String, ()> = HashMap::new();
            let mut whole: Vec<Result<(), RepoError>> = Vec::new();
            for (wanted, builder) in wanted.iter().zip(builders.iter_mut()) {
                let added = (|| {
                    if let Some(&need) = wanted
                        .needs
                        .iter()
                        .find(|&&n| whole.get(n).is_some_and(Result::is_err))
                    {
                        return Err(source_error(format!(
                            "image {} it is built on could not be read from it",
                            wanted_id(&wanted_ids, need)
                        )));
                    }
                    let image = export.image(&manifest, wanted)?;
                    for diff_id in distinct(&image.record.layers) {
                        let layer = &export.layers[diff_id];
                        if layer.stored_here && charged.insert(diff_id.clone(), ()).is_none() {
                            builder.count_read(layer.size);
                        }
                        let node = file_node(&layer_file(diff_id), layer.size);
                        builder.add_known(node, layer.content.clone())?;
                    }
                    builder.add_stream(file_node(CONFIG_FILE, 0), &mut image.config.as_slice())?;
                    let record = serde_json::to_vec(&image.record).map_err(source_error)?;
                    builder.add_stream(file_node(IMAGE_FILE, 0), &mut record.as_slice())?;
                    Ok(())
                })();
                whole.push(added);
            }
            Ok(whole)
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
        // Every blob the archive needs, in the order it is written: read by
        // pack region (a request per stretch of a pack, not per blob).
        let plan = ReadPlan::for_backend(self.backend());
        let reads: Vec<(String, PackedBlob)> = distinct(&record.layers)
            .into_iter()
            .flat_map(|diff_id| &layers[diff_id].content)
            .filter_map(|id| self.index().locations(id).into_iter().next())
            .collect();
        let regions = PackRegions::plan(&reads, plan);
        let mut done: BTreeMap<&str, ()> = BTreeMap::new();
        for (diff_id, path) in record.layers.iter().zip(&layer_paths) {
            if done.insert(diff_id, ()).is_some() {
                continue;
            }
            let node = &layers[diff_id];
            let mut reader = BlobReader {
                repository: self,
                regions: &regions,
                plan,
                blobs: &node.content,
                next: 0,
                ready: std::collections::VecDeque::new(),
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

/// The most a [`ProgressReader`] reads at once: layers stream into the
/// chunker, which asks for many MiB at a time, and an engine that hands
/// over its export in large pieces would otherwise move progress in jumps.
const PROGRESS_READ: usize = 1 << 20;

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at_most = buf.len().min(PROGRESS_READ);
        let n = self.inner.read(&mut buf[..at_most])?;
        self.read += n as u64;
        (self.progress)(Progress {
            files: 0,
            bytes: self.read,
            current: None,
        });
        Ok(n)
    }
}

/// Stored bytes of blobs a layer's reader decodes at a time: its regions
/// are read whole whatever this is, so it only bounds the decoded bytes held.
const READ_BATCH: u64 = 4 << 20;

/// A layer's bytes read by pack region ([`PackRegions`]), each blob
/// verified, and the whole checked against its DiffID at the end.
struct BlobReader<'a, 'p> {
    repository: &'a Repository,
    regions: &'a PackRegions,
    plan: ReadPlan,
    blobs: &'a [BlobId],
    /// The first blob of `blobs` not decoded yet.
    next: usize,
    /// Blobs decoded, not yet handed out.
    ready: std::collections::VecDeque<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    layer: String,
    hasher: Sha256,
    read: u64,
    size: u64,
    written: &'a mut u64,
    progress: &'p (dyn Fn(Progress) + Sync),
}

impl BlobReader<'_, '_> {
    /// Decodes the next batch of blobs; `false` when there are none left.
    fn refill(&mut self) -> std::io::Result<bool> {
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        while let Some(id) = self.blobs.get(self.next) {
            if !batch.is_empty() && bytes >= READ_BATCH {
                break;
            }
            let locations = self.repository.index().locations(id);
            bytes += locations
                .first()
                .map_or(0, |(_, blob)| u64::from(blob.length));
            batch.push((id, locations));
            self.next += 1;
        }
        if batch.is_empty() {
            return Ok(false);
        }
        let wanted: Vec<_> = batch.iter().filter_map(|(_, l)| l.first()).collect();
        let reads = self.regions.read(self.repository, &wanted, self.plan);
        for (id, locations) in &batch {
            let data = reads.blob(self.repository, locations).map_err(|detail| {
                std::io::Error::other(LayerError(format!(
                    "layer {}: blob {}: {detail}",
                    self.layer,
                    hex::encode(&id[..8])
                )))
            })?;
            self.ready.push_back(data);
        }
        Ok(true)
    }
}

impl Read for BlobReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.ready.is_empty() && !self.refill()? {
                let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
                if self.read != self.size || digest != self.layer {
                    return Err(std::io::Error::other(LayerError(format!(
                        "layer {} does not have the content its DiffID names",
                        self.layer
                    ))));
                }
                return Ok(0);
            }
            self.current = self.ready.pop_front().unwrap_or_default();
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
        let (archive, mut ids) = save_archive(&[(layers, tag)]);
        (archive, ids.remove(0))
    }

    /// The configuration of an image of `layers`, and its id.
    fn config_of(layers: &[&[u8]]) -> (Vec<u8>, String) {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let id = digest(&config);
        (config, id)
    }

    /// A `docker save` archive of several images (`layers`, tag) as one
    /// request exports them: a layer directory is named by the layers up
    /// to it (so images built on one base share its directories), and
    /// each path is written once. Returns the archive and the images' ids.
    pub(crate) fn save_archive(images: &[(&[&[u8]], &str)]) -> (Vec<u8>, Vec<String>) {
        let mut tar = tar::Builder::new(Vec::new());
        let mut written = std::collections::BTreeSet::new();
        let mut add = |path: &str, data: &[u8]| {
            if !written.insert(path.to_string()) {
                return;
            }
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, data).unwrap();
        };
        let mut manifest = Vec::new();
        let mut ids = Vec::new();
        for (layers, tag) in images {
            let (config, id) = config_of(layers);
            let mut paths = Vec::new();
            let mut chain = String::new();
            for layer in layers.iter() {
                chain.push_str(&digest(layer));
                let dir = hex::encode(Sha256::digest(&chain));
                add(&format!("{dir}/VERSION"), b"1.0");
                add(&format!("{dir}/json"), b"{}");
                add(&format!("{dir}/layer.tar"), layer);
                paths.push(format!("{dir}/layer.tar"));
            }
            let config_name = format!("{}.json", id.trim_start_matches("sha256:"));
            add(&config_name, &config);
            manifest.push(
                serde_json::json!({"Config": config_name, "RepoTags": [tag], "Layers": paths}),
            );
            ids.push(id);
        }
        add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        (tar.into_inner().unwrap(), ids)
    }

    /// A `docker save` archive of several images as Docker 25 and later
    /// write it (the OCI layout): every layer, configuration and manifest
    /// a blob named by its digest, written once, `manifest.json` and
    /// `index.json` first (before the layers they name). Returns the
    /// archive and the images' ids.
    pub(crate) fn oci_save_archive(images: &[(&[&[u8]], &str)]) -> (Vec<u8>, Vec<String>) {
        let blob = |data: &[u8]| format!("blobs/sha256/{}", &digest(data)[7..]);
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let (mut manifest, mut index, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for (layers, tag) in images {
            let (config, id) = config_of(layers);
            let paths: Vec<String> = layers.iter().map(|l| blob(l)).collect();
            let oci_manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "config": {"digest": id, "size": config.len()},
                "layers": layers.iter().map(|l| serde_json::json!({"digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
            }))
            .unwrap();
            index.push(serde_json::json!({"digest": digest(&oci_manifest)}));
            manifest.push(
                serde_json::json!({"Config": blob(&config), "RepoTags": [tag], "Layers": paths}),
            );
            blobs.push((blob(&oci_manifest), oci_manifest));
            blobs.push((blob(&config), config));
            blobs.extend(layers.iter().map(|l| (blob(l), l.to_vec())));
            ids.push(id);
        }
        let mut tar = tar::Builder::new(Vec::new());
        let mut written = std::collections::BTreeSet::new();
        let index = serde_json::to_vec(&serde_json::json!({"manifests": index})).unwrap();
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();
        let firsts = [
            ("manifest.json".to_string(), manifest),
            ("index.json".to_string(), index),
            ("oci-layout".to_string(), layout),
        ];
        for (path, data) in firsts.into_iter().chain(blobs) {
            if written.insert(path.clone()) {
                let mut header = tar::Header::new_ustar();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                tar.append_data(&mut header, &path, data.as_slice())
                    .unwrap();
            }
        }
        (tar.into_inner().unwrap(), ids)
    }

    /// A reader that hands out at most `step` bytes at a time, so that
    /// entries are split across reads at odd places.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
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
    fn layers_are_stored_as_tightly_as_files_and_come_back_byte_for_byte() {
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
        // the files' level, which layers share (their probes differ).
        let files = open();
        let file = files
            .backup_with(SnapshotSource::default(), &|_| {}, |builder| {
                let node = file_node("layer", 0);
                builder.add_stream(node, &mut layer.as_slice()).map(|_| ())
            })
            .unwrap();
        assert!(
            // (the image adds its configuration and record)
            image.summary.added_bytes * 100 <= file.summary.added_bytes * 101,
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

    fn wanted(id: &str, tag: &str, name: &str, needs: Vec<usize>) -> WantedImage {
        WantedImage {
            id: id.to_string(),
            repo_tags: vec![tag.to_string()],
            source: source(name),
            needs,
        }
    }

    fn repository() -> Repository {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("p")).unwrap();
        Repository::open(backend, Some("p"), RepoOptions::default()).unwrap()
    }

    /// The image `snapshot` holds comes back loadable, with `id`.
    fn restores_as(repository: &Repository, snapshot: &Snapshot, id: &str) {
        let mut out = Vec::new();
        repository
            .restore_image(snapshot, &[], &mut out, &|_| {})
            .unwrap();
        let engine = crate::engine::memory::MemoryEngine::new();
        assert_eq!(engine.add_image_archive(out).unwrap(), vec![id.to_string()]);
    }

    #[test]
    fn one_export_of_several_images_reads_a_shared_layer_once_and_stores_each_image_alone() {
        let repository = repository();
        let base = noise(3 << 20, 11);
        let tools = noise(1 << 20, 12);
        let python = noise(1 << 20, 13);
        let jq = noise(256 << 10, 14);
        let images: [(&[&[u8]], &str); 4] = [
            (&[&base], "base:1"),
            (&[&base, &tools], "tools:1"),
            (&[&base, &python], "python:1"),
            (&[&base, &tools, &jq], "jq:1"),
        ];
        let (archive, ids) = save_archive(&images);
        let wanted: Vec<WantedImage> = ids
            .iter()
            .zip(["base", "tools", "python", "jq"])
            .enumerate()
            .map(|(at, (id, name))| {
                wanted(id, &format!("{name}:1"), name, vec![0; usize::from(at > 0)])
            })
            .collect();
        let snapshots: Vec<Snapshot> = repository
            .backup_images(archive.as_slice(), wanted, &|_| {})
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Each distinct layer was read and stored once, charged to the
        // first image that has it.
        let distinct = (base.len() + tools.len() + python.len() + jq.len()) as u64;
        let read: u64 = snapshots.iter().map(|s| s.summary.bytes_read).sum();
        assert!(
            read >= distinct && read < distinct + (64 << 10),
            "{read} read"
        );
        assert!(snapshots[0].summary.bytes_read >= base.len() as u64);
        assert!(snapshots[3].summary.bytes_read < (base.len() + tools.len()) as u64);
        let added: u64 = snapshots.iter().map(|s| s.summary.added_bytes).sum();
        assert!(added < distinct + (distinct / 10), "{added} added");
        for ((snapshot, id), (layers, tag)) in snapshots.iter().zip(&ids).zip(&images) {
            let stored = repository.stored_image(snapshot).unwrap();
            assert_eq!(&stored.id, id);
            assert_eq!(stored.repo_tags, vec![tag.to_string()]);
            let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
            assert_eq!(stored.layers, diff_ids);
            restores_as(&repository, snapshot, id);
        }
        assert_eq!(repository.snapshots().unwrap().len(), 4);
    }

    /// `archive` with the bytes of each `(path, data)` entry appended once more.
    fn with_entries(archive: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for entry in tar::Archive::new(archive).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let mut header = entry.header().clone();
            tar.append_data(&mut header, &path, data.as_slice())
                .unwrap();
        }
        for (path, data) in extra {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn an_export_naming_a_layer_twice_is_refused_whole() {
        let repository = repository();
        let (archive, ids) = save_archive(&[(&[b"base-layer"], "a:1"), (&[b"other"], "b:1")]);
        let first_layer = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .find(|p| p.ends_with("layer.tar"))
            .unwrap();
        let twice = with_entries(&archive, &[(&first_layer, b"impostor")]);
        let wanted = vec![
            wanted(&ids[0], "a:1", "a", vec![]),
            wanted(&ids[1], "b:1", "b", vec![]),
        ];
        let refused = repository.backup_images(twice.as_slice(), wanted, &|_| {});
        assert!(
            matches!(&refused, Err(RepoError::Source(m)) if m.contains("twice")),
            "{refused:?}"
        );
        assert!(repository.snapshots().unwrap().is_empty());
    }

    #[test]
    fn an_image_whose_layer_is_missing_fails_alone_with_the_images_built_on_it() {
        let repository = repository();
        let images: [(&[&[u8]], &str); 3] = [
            (&[b"base"], "base:1"),
            (&[b"base", b"top"], "app:1"),
            (&[b"lone"], "lone:1"),
        ];
        let (archive, ids) = save_archive(&images);
        // The manifest names a layer path the archive does not hold.
        let mut manifest: serde_json::Value = {
            let mut archive = tar::Archive::new(archive.as_slice());
            let mut entry = archive
                .entries()
                .unwrap()
                .map(Result::unwrap)
                .find(|e| e.path().unwrap().ends_with("manifest.json"))
                .unwrap();
            serde_json::from_reader(&mut entry).unwrap()
        };
        manifest[0]["Layers"][0] = "missing/layer.tar".into();
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let mut rebuilt = tar::Builder::new(Vec::new());
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path == "manifest.json" {
                data = manifest.clone();
            }
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            rebuilt
                .append_data(&mut header, &path, data.as_slice())
                .unwrap();
        }
        let rebuilt = rebuilt.into_inner().unwrap();
        let wanted = vec![
            wanted(&ids[0], "base:1", "base", vec![]),
            wanted(&ids[1], "app:1", "app", vec![0]),
            wanted(&ids[2], "lone:1", "lone", vec![]),
        ];
        let results = repository
            .backup_images(rebuilt.as_slice(), wanted, &|_| {})
            .unwrap();
        assert!(
            matches!(&results[0], Err(RepoError::Source(m)) if m.contains("missing/layer.tar")),
            "{:?}",
            results[0]
        );
        assert!(
            matches!(&results[1], Err(RepoError::Source(m)) if m.contains("built on")),
            "{:?}",
            results[1]
        );
        let lone = results[2].as_ref().unwrap();
        restores_as(&repository, lone, &ids[2]);
        assert_eq!(repository.snapshots().unwrap().len(), 1);
    }

    #[test]
    fn images_are_found_by_their_configuration_never_by_the_tags_a_manifest_claims() {
        let repository = repository();
        // The export's manifest gives image b the tag of image a.
        let (archive, ids) = save_archive(&[(&[b"layer-a"], "a:1"), (&[b"layer-b"], "a:1")]);
        let (_, absent) = config_of(&[b"layer-c"]);
        let wanted = vec![
            wanted(&ids[1], "b:1", "b", vec![]),
            wanted(&ids[0], "a:1", "a", vec![]),
            wanted(&absent, "c:1", "c", vec![]),
        ];
        let results = repository
            .backup_images(archive.as_slice(), wanted, &|_| {})
            .unwrap();
        let b = results[0].as_ref().unwrap();
        let stored = repository.stored_image(b).unwrap();
        assert_eq!(
            (stored.id.as_str(), stored.repo_tags.as_slice()),
            (ids[1].as_str(), &["b:1".to_string()][..])
        );
        assert_eq!(stored.layers, vec![digest(b"layer-b")]);
        let a = results[1].as_ref().unwrap();
        assert_eq!(repository.stored_image(a).unwrap().id, ids[0]);
        // An image the export does not hold is refused, saying which it holds.
        assert!(
            matches!(&results[2], Err(RepoError::Source(m)) if m.contains(&ids[0]) && m.contains("not")),
            "{:?}",
            results[2]
        );
    }

    #[test]
    fn an_image_restore_reads_its_blobs_by_pack_region_in_a_few_requests() {
        let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(inner.clone(), Some("p")).unwrap();
        let counting = Arc::new(crate::repo::backend::counting::CountingBackend::new(inner));
        let repository =
            Repository::open(counting.clone(), Some("p"), RepoOptions::default()).unwrap();
        let base = noise(24 << 20, 21);
        let top = noise(12 << 20, 22);
        let (archive_bytes, id) = archive(&[&base, &top], "regions:1");
        let snapshot = repository
            .backup_image(
                archive_bytes.as_slice(),
                &id,
                &[],
                source("regions"),
                &|_| {},
            )
            .unwrap();
        let (_, _, layers) = repository.image_parts(&snapshot).unwrap();
        let blobs: usize = layers.values().map(|node| node.content.len()).sum();
        let before = counting.counts().pack_loads;
        restores_as(&repository, &snapshot, &id);
        let loads = counting.counts().pack_loads - before;
        assert!(blobs >= 24, "{blobs} blobs");
        // Regions are cut at 8 MiB and at pack ends, so how many blobs share
        // one depends on where chunks fall; blob by blob would be one each.
        assert!(
            loads * 2 <= blobs as u64,
            "{loads} pack reads for {blobs} blobs"
        );
    }

    /// The image `id` (tagged `<name>:1`) stored alone from `archive`.
    fn back_up_one(repository: &Repository, archive: &[u8], id: &str, name: &str) -> Snapshot {
        let wanted = vec![wanted(id, &format!("{name}:1"), name, vec![])];
        let mut stored = repository.backup_images(archive, wanted, &|_| {}).unwrap();
        stored.remove(0).unwrap()
    }

    /// Layers of a base (incompressible), of an image built on it (text)
    /// and of one alone (whose bytes begin like JSON, as a blob of the OCI
    /// layout's configuration would).
    fn layered_images() -> Vec<Vec<u8>> {
        let lone = b"{ a layer that begins like JSON".to_vec();
        vec![noise(3 << 20, 31), text(1 << 20, 32), lone]
    }

    #[test]
    fn both_layouts_stream_layers_split_across_reads_and_restore_each_image_with_its_id() {
        let layers = layered_images();
        let images: [(&[&[u8]], &str); 3] = [
            (&[&layers[0]], "base:1"),
            (&[&layers[0], &layers[1]], "app:1"),
            (&[&layers[2]], "lone:1"),
        ];
        for (layout, (archive, ids)) in [
            ("legacy", save_archive(&images)),
            ("oci", oci_save_archive(&images)),
        ] {
            let repository = repository();
            let all = vec![
                wanted(&ids[0], "base:1", "base", vec![]),
                wanted(&ids[1], "app:1", "app", vec![0]),
                wanted(&ids[2], "lone:1", "lone", vec![]),
            ];
            // 4093 bytes a read: every entry, header and chunk boundary
            // falls across reads.
            let trickle = Trickle {
                data: &archive,
                step: 4093,
            };
            let snapshots: Vec<Snapshot> = repository
                .backup_images(trickle, all, &|_| {})
                .unwrap()
                .into_iter()
                .map(|result| result.unwrap_or_else(|e| panic!("{layout}: {e}")))
                .collect();
            for ((snapshot, id), (image_layers, _)) in snapshots.iter().zip(&ids).zip(&images) {
                let stored = repository.stored_image(snapshot).unwrap();
                let diff_ids: Vec<String> = image_layers.iter().map(|l| digest(l)).collect();
                assert_eq!(stored.layers, diff_ids, "{layout}");
                restores_as(&repository, snapshot, id);
            }
            // Read whole this time, the same export stores nothing new:
            // the chunks cut from a trickle are those of the whole stream.
            let again = back_up_one(&repository, &archive, &ids[1], "app");
            assert!(
                again.summary.added_bytes < 16 << 10,
                "{layout}: {} B added",
                again.summary.added_bytes
            );
        }
    }

    #[test]
    fn a_streamed_layer_whose_digest_does_not_match_its_name_is_refused_and_leaves_nothing_usable()
    {
        let repository = repository();
        let layers = layered_images();
        let images: [(&[&[u8]], &str); 2] = [
            (&[&layers[0], &layers[1]], "app:1"),
            (&[&layers[2]], "lone:1"),
        ];
        let (archive, ids) = oci_save_archive(&images);
        // The second layer's bytes change, its name (its digest) does not.
        let mut tampered = archive.clone();
        let at = tampered
            .windows(64)
            .position(|w| w == &layers[1][..64])
            .unwrap();
        tampered[at + 1000] ^= 1;
        let results = repository
            .backup_images(
                tampered.as_slice(),
                vec![
                    wanted(&ids[0], "app:1", "app", vec![]),
                    wanted(&ids[1], "lone:1", "lone", vec![]),
                ],
                &|_| {},
            )
            .unwrap();
        let bad = &digest(&layers[1])[7..];
        assert!(
            matches!(&results[0], Err(RepoError::Source(m)) if m.contains("refused") && m.contains(bad)),
            "{:?}",
            results[0]
        );
        // The image without that layer is stored whole, alone.
        restores_as(&repository, results[1].as_ref().unwrap(), &ids[1]);
        assert_eq!(repository.snapshots().unwrap().len(), 1);
        // Nothing is known as that layer: the next export of the image
        // stores its true bytes, and the image comes back with its id.
        let layers_known = repository.stored_layers().unwrap();
        assert!(!layers_known.contains_key(&digest(&layers[1])));
        let app = back_up_one(&repository, &archive, &ids[0], "app");
        restores_as(&repository, &app, &ids[0]);
    }
}
