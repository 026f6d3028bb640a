//! The index: which pack holds each blob. Stored as encrypted index files
//! (`index/`), each listing some packs and their blobs; loaded whole into
//! memory at open (about 100 bytes a blob).

use super::crypto::BlobId;
use super::pack::PackedBlob;
use super::{FileKind, RepoError, Repository};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
    /// Index files this one replaces (written by prune); readers ignore those.
    #[serde(default)]
    pub supersedes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: String,
    pub size: u64,
    pub blobs: Vec<PackedBlob>,
}

#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<String>,
    pack_numbers: HashMap<String, u32>,
    pub pack_sizes: HashMap<String, u64>,
    blobs: HashMap<BlobId, (u32, PackedBlob)>,
    /// Index files in force (not superseded).
    pub files: Vec<String>,
    /// Index files that could not be read (name, why). Their blobs are
    /// unknown: backups store them again, restores needing them fail
    /// loudly, `check` reports them and `prune` refuses to run.
    pub damaged: Vec<(String, String)>,
}

impl Index {
    pub fn load(repository: &Repository) -> Result<Index, RepoError> {
        let names = repository
            .backend()
            .list(FileKind::Index)
            .map_err(RepoError::io("listing the index"))?;
        let mut files = Vec::new();
        let mut superseded = HashSet::new();
        let mut damaged = Vec::new();
        for name in &names {
            let loaded = repository
                .load_file(FileKind::Index, name)
                .and_then(|bytes| {
                    serde_json::from_slice::<IndexFile>(&bytes).map_err(|e| RepoError::Corrupt {
                        what: format!("index/{name}"),
                        detail: e.to_string(),
                    })
                });
            match loaded {
                Ok(file) => {
                    superseded.extend(file.supersedes.iter().cloned());
                    files.push((name.clone(), file));
                }
                // One damaged file must not lock the user out of the rest
                // (nor out of `check`, which reports it).
                Err(RepoError::Corrupt { detail, .. }) => damaged.push((name.clone(), detail)),
                Err(error) => return Err(error),
            }
        }
        let mut index = Index {
            damaged,
            ..Index::default()
        };
        for (name, file) in files {
            if superseded.contains(&name) {
                continue;
            }
            index.files.push(name);
            for pack in file.packs {
                index.add_pack(&pack);
            }
        }
        Ok(index)
    }

    pub fn add_pack(&mut self, pack: &IndexedPack) {
        let number = match self.pack_numbers.get(&pack.id) {
            Some(n) => *n,
            None => {
                self.packs.push(pack.id.clone());
                let n = (self.packs.len() - 1) as u32;
                self.pack_numbers.insert(pack.id.clone(), n);
                n
            }
        };
        self.pack_sizes.insert(pack.id.clone(), pack.size);
        for blob in &pack.blobs {
            self.blobs.entry(blob.id).or_insert((number, *blob));
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<(String, PackedBlob)> {
        self.blobs
            .get(id)
            .map(|(n, blob)| (self.packs[*n as usize].clone(), *blob))
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Every (pack, blob) pair, grouped by pack.
    pub fn by_pack(&self) -> HashMap<String, Vec<PackedBlob>> {
        let mut packs: HashMap<String, Vec<PackedBlob>> = HashMap::new();
        for (n, blob) in self.blobs.values() {
            packs
                .entry(self.packs[*n as usize].clone())
                .or_default()
                .push(*blob);
        }
        for blobs in packs.values_mut() {
            blobs.sort_by_key(|b| b.offset);
        }
        packs
    }
}

impl Repository {
    /// Writes an index file for packs just stored; returns its stored size.
    pub(crate) fn save_index(&self, file: &IndexFile) -> Result<(String, u64), RepoError> {
        let bytes = serde_json::to_vec(file).expect("index serialises");
        self.save_file(FileKind::Index, &bytes)
    }
}

impl Repository {
    /// Indexes the complete packs no index lists: those of a backup killed
    /// before its next index write (or of one running right now; indexing a
    /// pack twice is harmless). Their blobs are then reused instead of
    /// stored again. Only the headers are read. Returns the bytes adopted.
    ///
    /// Packs that cannot be read are left alone: `check` reports them and
    /// `prune` removes them.
    pub(crate) fn adopt_unindexed_packs(&self) -> Result<u64, RepoError> {
        let names = self
            .backend()
            .list(FileKind::Pack)
            .map_err(RepoError::io("listing packs"))?;
        let orphans: Vec<String> = {
            let index = self.index();
            names
                .into_iter()
                .filter(|name| !index.pack_sizes.contains_key(name))
                .collect()
        };
        let mut adopted = Vec::new();
        for name in orphans {
            if let Some(pack) = self.read_pack_header(&name) {
                adopted.push(pack);
            }
        }
        if adopted.is_empty() {
            return Ok(0);
        }
        let bytes = adopted.iter().map(|p| p.size).sum();
        let file = IndexFile {
            packs: adopted,
            supersedes: Vec::new(),
        };
        let (name, _) = self.save_index(&file)?;
        let mut index = self.index_mut();
        index.files.push(name);
        for pack in &file.packs {
            index.add_pack(pack);
        }
        Ok(bytes)
    }

    fn read_pack_header(&self, name: &str) -> Option<IndexedPack> {
        let backend = self.backend();
        let size = backend.stat(FileKind::Pack, name).ok()?;
        let last = backend
            .load(FileKind::Pack, name, Some(size.checked_sub(4)?..size))
            .ok()?;
        let length = super::pack::header_length(&last).ok()? as u64;
        let start = size.checked_sub(4 + length)?;
        let sealed = backend
            .load(FileKind::Pack, name, Some(start..size - 4))
            .ok()?;
        let blobs = super::pack::decode_header(self.keys(), &sealed, size).ok()?;
        Some(IndexedPack {
            id: name.to_string(),
            size,
            blobs,
        })
    }
}
