//! `check`: is every snapshot restorable? Structure always (index files
//! readable, indexed packs present with the right size, every blob a
//! snapshot needs indexed); with read-data, every pack (or a subset) is
//! re-read and each blob re-authenticated and re-hashed. Problems name the
//! snapshots and resources they affect. Nothing here writes.

use super::crypto::BlobId;
use super::index::IndexFile;
use super::{FileKind, RepoError, Repository, Snapshot, pack};
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    All,
    /// Percentage of packs, chosen at random, 0–100.
    Subset(f64),
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub read_data: Option<ReadData>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// The damaged thing: `pack 3f9a1c22`, `snapshots/…`, `index/…`.
    pub what: String,
    pub detail: String,
    /// `(snapshot short id, resource)` pairs that cannot be fully restored.
    pub affects: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub problems: Vec<Problem>,
    /// Not errors: packs no index lists (left by an interrupted backup), stale locks.
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Repository {
    pub fn check(&self, options: CheckOptions) -> Result<CheckReport, RepoError> {
        let mut report = CheckReport::default();
        let backend = self.backend();

        // Index files, one by one, so one bad file does not hide the rest.
        let mut indexed: HashMap<String, (u64, Vec<pack::PackedBlob>)> = HashMap::new();
        let mut superseded = HashSet::new();
        let mut index_files = Vec::new();
        for name in backend
            .list(FileKind::Index)
            .map_err(RepoError::io("listing the index"))?
        {
            match self.load_file(FileKind::Index, &name).and_then(|bytes| {
                serde_json::from_slice::<IndexFile>(&bytes).map_err(|e| RepoError::Corrupt {
                    what: format!("index/{name}"),
                    detail: e.to_string(),
                })
            }) {
                Ok(file) => {
                    superseded.extend(file.supersedes.clone());
                    index_files.push((name, file));
                }
                Err(error) => report.problems.push(Problem {
                    what: format!("index/{}", &name[..8.min(name.len())]),
                    detail: error.to_string(),
                    affects: Vec::new(),
                }),
            }
        }
        let mut blob_pack: HashMap<BlobId, String> = HashMap::new();
        for (name, file) in index_files {
            if superseded.contains(&name) {
                continue;
            }
            for p in file.packs {
                for blob in &p.blobs {
                    blob_pack.entry(blob.id).or_insert_with(|| p.id.clone());
                }
                indexed.insert(p.id.clone(), (p.size, p.blobs));
            }
        }
        report.packs = indexed.len();
        report.blobs = blob_pack.len();

        // Packs on disk against the index.
        let present: HashSet<String> = backend
            .list(FileKind::Pack)
            .map_err(RepoError::io("listing packs"))?
            .into_iter()
            .collect();
        let mut bad_packs: HashMap<String, String> = HashMap::new();
        for (name, (size, _)) in &indexed {
            if !present.contains(name) {
                bad_packs.insert(name.clone(), "missing".to_string());
                continue;
            }
            match backend.stat(FileKind::Pack, name) {
                Ok(actual) if actual == *size => {}
                Ok(actual) => {
                    bad_packs.insert(
                        name.clone(),
                        format!("{actual} bytes, the index says {size} (truncated or overwritten)"),
                    );
                }
                Err(e) => {
                    bad_packs.insert(name.clone(), format!("unreadable: {e}"));
                }
            }
        }
        let unindexed = present.iter().filter(|p| !indexed.contains_key(*p)).count();
        if unindexed > 0 {
            report.notes.push(format!(
                "{unindexed} pack(s) are in no index (left by an interrupted backup or prune); they \
                 hold no data any snapshot needs and `lifeboat prune` removes them"
            ));
        }

        // Read data: re-read packs and re-verify every blob.
        let mut bad_blobs: HashMap<BlobId, String> = HashMap::new();
        if let Some(read) = options.read_data {
            let mut names: Vec<&String> = indexed
                .keys()
                .filter(|n| !bad_packs.contains_key(*n))
                .collect();
            names.sort();
            if let ReadData::Subset(percent) = read {
                use rand::seq::SliceRandom;
                names.shuffle(&mut rand::rng());
                let keep = ((names.len() as f64) * percent / 100.0).ceil() as usize;
                names.truncate(keep.min(names.len()));
            }
            for name in names {
                report.packs_read += 1;
                let (_, blobs) = &indexed[name];
                let bytes = match backend.load(FileKind::Pack, name, None) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        bad_packs.insert(name.clone(), format!("unreadable: {e}"));
                        continue;
                    }
                };
                if super::sha256_hex(&bytes) != *name {
                    bad_packs.insert(name.clone(), "content does not match its name".to_string());
                }
                if let Err(detail) = pack::read_header(self.keys(), &bytes) {
                    bad_packs.insert(name.clone(), format!("header: {detail}"));
                }
                for blob in blobs {
                    let end = blob.offset as usize + blob.length as usize;
                    let result = bytes
                        .get(blob.offset as usize..end)
                        .ok_or_else(|| "past the end of the pack".to_string())
                        .and_then(|stored| self.decode_blob(stored, blob));
                    if let Err(detail) = result {
                        bad_blobs.insert(blob.id, format!("in pack {}: {detail}", &name[..8]));
                    }
                }
            }
        }

        // Snapshots: each must load and every blob it needs must be sound.
        let names = backend
            .list(FileKind::Snapshot)
            .map_err(RepoError::io("listing snapshots"))?;
        report.snapshots = names.len();
        let mut damage: HashMap<String, (String, BTreeSet<(String, String)>)> = HashMap::new();
        for name in names {
            let snapshot = match self.load_snapshot(&name) {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    report.problems.push(Problem {
                        what: format!("snapshots/{}", &name[..8.min(name.len())]),
                        detail: error.to_string(),
                        affects: vec![(name[..8.min(name.len())].to_string(), "?".to_string())],
                    });
                    continue;
                }
            };
            let affected = (snapshot.id.short().to_string(), snapshot.resource.clone());
            let mut note = |what: String, detail: String| {
                damage
                    .entry(what)
                    .or_insert_with(|| (detail, BTreeSet::new()))
                    .1
                    .insert(affected.clone());
            };
            let blob_state = |id: &BlobId| -> Option<(String, String)> {
                match blob_pack.get(id) {
                    None => Some((
                        format!("blob {}", hex::encode(&id[..4])),
                        "not in any index".into(),
                    )),
                    Some(p) if bad_packs.contains_key(p) => {
                        Some((format!("pack {}", &p[..8]), bad_packs[p].clone()))
                    }
                    Some(_) => bad_blobs
                        .get(id)
                        .map(|d| (format!("blob {}", hex::encode(&id[..4])), d.clone())),
                }
            };
            let mut tree_ok = true;
            for id in &snapshot.tree {
                if let Some((what, detail)) = blob_state(id) {
                    note(what, detail);
                    tree_ok = false;
                }
            }
            if !tree_ok {
                continue;
            }
            let walked = self.walk_content(&snapshot, |id| {
                if let Some((what, detail)) = blob_state(id) {
                    note(what, detail);
                }
            });
            if let Err(error) = walked {
                note(
                    format!("tree of {}", snapshot.id.short()),
                    error.to_string(),
                );
            }
        }
        let mut damage: Vec<_> = damage.into_iter().collect();
        damage.sort_by(|a, b| a.0.cmp(&b.0));
        for (what, (detail, affects)) in damage {
            report.problems.push(Problem {
                what,
                detail,
                affects: affects.into_iter().collect(),
            });
        }
        // Damaged packs no snapshot needs are still damage.
        for (pack, detail) in &bad_packs {
            let what = format!("pack {}", &pack[..8]);
            if !report.problems.iter().any(|p| p.what == what) {
                report.problems.push(Problem {
                    what,
                    detail: detail.clone(),
                    affects: Vec::new(),
                });
            }
        }
        let stale = super::lock::list(self)?
            .into_iter()
            .filter(|l| l.is_stale())
            .count();
        if stale > 0 {
            report.notes.push(format!(
                "{stale} stale lock(s): `lifeboat unlock` removes them"
            ));
        }
        Ok(report)
    }

    /// Calls `visit` with every content blob id of the snapshot.
    pub(crate) fn walk_content(
        &self,
        snapshot: &Snapshot,
        mut visit: impl FnMut(&BlobId),
    ) -> Result<(), RepoError> {
        self.for_each_node(snapshot, |node| {
            node.content.iter().for_each(&mut visit);
            Ok(())
        })
    }
}
