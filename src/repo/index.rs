//! The index: which pack holds each blob. Stored as encrypted index files
//! (`index/`), each listing some packs and their blobs; loaded whole into
//! memory at open (52 bytes a blob, in a sorted vector: [`BlobMap`]).
//!
//! The index is a claim about the packs, not the packs themselves: a pack
//! it names may be gone. So a blob may have several locations (tried in
//! turn), a backup first drops the entries of packs it does not see
//! ([`Repository::sync_index_with_packs`]) and stores their blobs again,
//! and `repair` rebuilds the index from the packs' own headers.
//!
//! A copy of a blob that a read found damaged (it does not authenticate, or
//! its content does not match its id) is recorded in an index file too
//! ([`DamagedBlob`]): every load leaves that copy out, so the blob is no
//! longer offered for deduplication and the next backup of the same content
//! stores it again.

use super::backend::Backend;
use super::crypto::BlobId;
use super::pack::{BlobKind, MAX_BLOB, PackedBlob, hex_id};
use super::{FileKind, Listing, RepoError, Repository, is_file_name, short};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
    /// Index files this one replaces (written by prune); readers ignore those.
    #[serde(default)]
    pub supersedes: Vec<String>,
    /// Copies of blobs found damaged: left out of the index in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged_blobs: Vec<DamagedBlob>,
}

/// One copy of a blob, in one pack, that a read found damaged: the index
/// in force offers it no more (the blob's other copies stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedBlob {
    pub pack: String,
    #[serde(with = "hex_id")]
    pub id: BlobId,
    /// What the read found (`does not authenticate`, …).
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: String,
    pub size: u64,
    pub blobs: Vec<PackedBlob>,
}

impl IndexedPack {
    /// Checks what later code trusts about a pack's entry: its name is a
    /// pack name (it reaches a path), every blob lies inside the pack, and
    /// no blob is larger than lifeboat writes (sizes become allocations).
    pub fn check(&self) -> Result<(), String> {
        if !is_file_name(FileKind::Pack, &self.id) {
            return Err(format!("lists pack {:?}, which is no pack name", self.id));
        }
        for blob in &self.blobs {
            if u64::from(blob.offset) + u64::from(blob.length) > self.size {
                return Err(format!(
                    "places a blob past the end of pack {}",
                    short(&self.id)
                ));
            }
            if blob.length.max(blob.raw_length) > MAX_BLOB {
                return Err(format!(
                    "gives a blob of pack {} more than {} MiB",
                    short(&self.id),
                    MAX_BLOB >> 20
                ));
            }
        }
        Ok(())
    }
}

impl IndexFile {
    /// Parses an index file and checks every entry ([`IndexedPack::check`])
    /// and every superseded name.
    pub fn parse(bytes: &[u8]) -> Result<IndexFile, String> {
        let file: IndexFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if let Some(name) = file
            .supersedes
            .iter()
            .find(|n| !is_file_name(FileKind::Index, n))
        {
            return Err(format!("supersedes {name:?}, which is no index file name"));
        }
        if let Some(damaged) = file
            .damaged_blobs
            .iter()
            .find(|d| !is_file_name(FileKind::Pack, &d.pack))
        {
            return Err(format!(
                "records a damaged blob in {:?}, which is no pack name",
                damaged.pack
            ));
        }
        for pack in &file.packs {
            pack.check()?;
        }
        Ok(file)
    }
}

/// Index files are read, decrypted and parsed on this many threads: at open
/// that was most of the serial start of a re-run (12% of a 100,000-file
/// one, profiled), with the other core idle. Eight at once (for the round
/// trips of a remote store) held 32 MB more at a small-files re-run's peak
/// (45 → 77 MB: index files in memory at once, and the allocator's arenas
/// of eight threads), for no gain once the reads overlap the key's derivation.
const LOAD_THREADS: usize = 2;
/// Stored index bytes [`fetch_stored`] holds at most: past that, the rest
/// are read when they are opened.
const FETCH_AHEAD_BYTES: usize = 8 << 20;

/// Index files read from the store before the keys that open them are
/// known (while the passphrase's key is derived): their listing, and the
/// stored bytes of the first of them, in listing order. Nothing in them
/// is believed before [`Repository::open_stored`] authenticates it.
pub(crate) struct FetchedIndex {
    listing: Listing,
    stored: Vec<Stored>,
}

/// The bytes of one file as the store gave them, or why it did not.
type Stored = Result<Vec<u8>, RepoError>;

/// Lists `index/` and reads the stored bytes of its files, several at once,
/// up to [`FETCH_AHEAD_BYTES`].
pub(crate) fn fetch_stored(backend: &dyn Backend) -> Result<FetchedIndex, RepoError> {
    let listing = super::list_files(backend, FileKind::Index)?;
    let fetched = AtomicUsize::new(0);
    let stored = in_parallel(&listing.files, |_, name| {
        if fetched.load(Ordering::Relaxed) > FETCH_AHEAD_BYTES {
            return None;
        }
        let stored = read_stored(backend, name);
        if let Ok(bytes) = &stored {
            fetched.fetch_add(bytes.len(), Ordering::Relaxed);
        }
        Some(stored)
    });
    Ok(FetchedIndex {
        listing,
        stored: stored.into_iter().map_while(|s| s).collect(),
    })
}

/// The stored bytes of the index file `name`.
fn read_stored(backend: &dyn Backend, name: &str) -> Stored {
    backend
        .load(FileKind::Index, name, None)
        .map_err(RepoError::io(format!("reading index/{name}")))
}

/// `each` of `names` (with its place) on [`LOAD_THREADS`] threads, each
/// taking the next name as it is done; the results in the order of `names`.
fn in_parallel<T: Send>(names: &[String], each: impl Fn(usize, &str) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let threads = LOAD_THREADS.min(names.len());
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(at) else {
                            return done;
                        };
                        done.push((at, each(at, name)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_unstable_by_key(|(at, _)| *at);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Every named index file, in the order of `names`; the first come from
/// `stored` when given.
fn load_all(
    repository: &Repository,
    names: &[String],
    stored: Vec<Stored>,
) -> Vec<Result<IndexFile, RepoError>> {
    let stored: Vec<Mutex<Option<Stored>>> =
        stored.into_iter().map(|s| Mutex::new(Some(s))).collect();
    in_parallel(names, |at, name| {
        let fetched = stored
            .get(at)
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
        let stored = match fetched {
            Some(stored) => stored,
            None => read_stored(repository.backend(), name),
        }?;
        let bytes = repository.open_stored(FileKind::Index, name, stored)?;
        IndexFile::parse(&bytes).map_err(|detail| RepoError::Corrupt {
            what: format!("index/{name}"),
            detail,
        })
    })
}

/// Where one copy of a blob is: the pack's number and the blob's place in it.
/// Kept without the blob's id (the map's key holds it): 20 bytes instead
/// of 52, a third of the index's memory.
#[derive(Debug, Clone, Copy)]
struct Location {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    kind: BlobKind,
    compressed: bool,
    id_bound: bool,
}

impl Location {
    fn new(pack: u32, blob: &PackedBlob) -> Location {
        Location {
            pack,
            offset: blob.offset,
            length: blob.length,
            raw_length: blob.raw_length,
            kind: blob.kind,
            compressed: blob.compressed,
            id_bound: blob.id_bound,
        }
    }

    fn blob(&self, id: &BlobId) -> PackedBlob {
        PackedBlob {
            id: *id,
            kind: self.kind,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            compressed: self.compressed,
            id_bound: self.id_bound,
        }
    }
}

/// Blob ids to their first location, in 52 bytes a blob: a sorted vector,
/// and the blobs added since it was last merged in a small map. A hash map
/// of every blob held 2 to 4 times the entries' size in free buckets (111 MB
/// for a million blobs, most of a 10 GB backup's memory); the map of recent
/// blobs is merged into the vector once it holds an eighth as many.
#[derive(Debug, Default)]
struct BlobMap {
    sorted: Vec<(BlobId, Location)>,
    recent: HashMap<BlobId, Location>,
}

/// The byte order of two ids, decided by their first eight bytes as one
/// number (ids are keyed hashes: two that share them are all but unheard
/// of). A slice comparison is a `memcmp` call per step of a search: with
/// one lookup per unchanged file, 6% of a re-run of small files (profiled).
fn id_order(a: &BlobId, b: &BlobId) -> std::cmp::Ordering {
    let head = |id: &BlobId| u64::from_be_bytes(id[..8].try_into().expect("ids are 32 bytes"));
    head(a).cmp(&head(b)).then_with(|| a.cmp(b))
}

/// Blobs the recent map holds at least before it is merged.
const RECENT_MIN: usize = 4096;

impl BlobMap {
    fn position(&self, id: &BlobId) -> Result<usize, usize> {
        self.sorted.binary_search_by(|(key, _)| id_order(key, id))
    }

    fn get(&self, id: &BlobId) -> Option<&Location> {
        match self.position(id) {
            Ok(at) => Some(&self.sorted[at].1),
            Err(_) => self.recent.get(id),
        }
    }

    fn contains_key(&self, id: &BlobId) -> bool {
        self.get(id).is_some()
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// Sets the location of `id`, whether it is known or new.
    fn insert(&mut self, id: BlobId, location: Location) {
        match self.position(&id) {
            Ok(at) => self.sorted[at].1 = location,
            Err(_) => {
                self.recent.insert(id, location);
                if self.recent.len() >= RECENT_MIN.max(self.sorted.len() / 8) {
                    self.merge();
                }
            }
        }
    }

    fn remove(&mut self, id: &BlobId) {
        match self.position(id) {
            Ok(at) => {
                self.sorted.remove(at);
            }
            Err(_) => {
                self.recent.remove(id);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&BlobId, &Location)> {
        (self.sorted.iter().map(|(id, location)| (id, location))).chain(self.recent.iter())
    }

    fn retain(&mut self, mut keep: impl FnMut(&BlobId, &mut Location) -> bool) {
        self.sorted.retain_mut(|(id, location)| keep(id, location));
        self.recent.retain(|id, location| keep(id, location));
    }

    /// Moves the recent blobs into the sorted vector, merging from its end
    /// (no second vector: a large one grows in place).
    fn merge(&mut self) {
        let mut recent: Vec<(BlobId, Location)> = self.recent.drain().collect();
        let Some(&filler) = recent.first() else {
            return;
        };
        recent.sort_unstable_by_key(|(id, _)| *id);
        let sorted = &mut self.sorted;
        let mut old = sorted.len();
        sorted.reserve_exact(recent.len());
        sorted.resize(old + recent.len(), filler);
        let mut next = sorted.len();
        while let Some(&newest) = recent.last() {
            next -= 1;
            if old > 0 && sorted[old - 1].0 > newest.0 {
                old -= 1;
                sorted[next] = sorted[old];
            } else {
                sorted[next] = newest;
                recent.pop();
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<String>,
    pack_numbers: HashMap<String, u32>,
    pub pack_sizes: HashMap<String, u64>,
    blobs: BlobMap,
    /// Further copies of blobs stored in more than one pack (rare: two
    /// backups storing the same new content at once, or a blob stored
    /// again after its pack was lost). Tried when the first copy fails.
    copies: HashMap<BlobId, Vec<Location>>,
    /// Index files in force (not superseded).
    pub files: Vec<String>,
    /// Index files that could not be read (name, why). Their blobs are
    /// unknown: backups store them again, restores needing them fail
    /// loudly, `check` reports them, `prune` refuses to run and `repair`
    /// replaces them.
    pub damaged: Vec<(String, String)>,
    /// Entries of `index/` that are no index file (reported by `check`).
    pub unknown: Vec<String>,
    /// Copies found damaged, by (pack, blob): never offered, whatever
    /// index file lists them; the value says what was found.
    pub damaged_blobs: HashMap<(String, BlobId), String>,
}

impl Index {
    pub fn load(repository: &Repository) -> Result<Index, RepoError> {
        Index::load_fetched(repository, None)
    }

    /// [`Index::load`] of the files `fetched` listed (and read, some of
    /// them) when given.
    pub(crate) fn load_fetched(
        repository: &Repository,
        fetched: Option<FetchedIndex>,
    ) -> Result<Index, RepoError> {
        let (listing, stored) = match fetched {
            Some(fetched) => (fetched.listing, fetched.stored),
            None => (repository.list_files(FileKind::Index)?, Vec::new()),
        };
        let mut files = Vec::new();
        let mut superseded = HashSet::new();
        let mut damaged = Vec::new();
        for (name, loaded) in listing
            .files
            .iter()
            .zip(load_all(repository, &listing.files, stored))
        {
            match loaded {
                Ok(file) => {
                    superseded.extend(file.supersedes.iter().cloned());
                    files.push((name.clone(), file));
                }
                // One damaged file must not lock the user out of the rest
                // (nor out of `check`, which reports it).
                Err(RepoError::Corrupt { detail, .. }) => damaged.push((name.clone(), detail)),
                // Superseded and removed by a prune or repair since the listing.
                Err(RepoError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        // A damaged file that a readable one supersedes no longer matters.
        damaged.retain(|(name, _)| !superseded.contains(name));
        let mut index = Index {
            damaged,
            unknown: listing.unknown,
            ..Index::default()
        };
        files.retain(|(name, _)| !superseded.contains(name));
        // Records first: a damaged copy is left out whichever file lists it.
        for (_, file) in &files {
            for damaged in &file.damaged_blobs {
                index
                    .damaged_blobs
                    .insert((damaged.pack.clone(), damaged.id), damaged.detail.clone());
            }
        }
        for (name, file) in files {
            index.files.push(name);
            for pack in file.packs {
                index.add_pack(&pack);
            }
        }
        Ok(index)
    }

    /// An empty index that leaves out the same damaged copies as this one.
    pub fn empty_like(&self) -> Index {
        Index {
            damaged_blobs: self.damaged_blobs.clone(),
            ..Index::default()
        }
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
            if self.damaged_blobs.contains_key(&(pack.id.clone(), blob.id)) {
                continue;
            }
            match self.blobs.get(&blob.id) {
                None => {
                    self.blobs.insert(blob.id, Location::new(number, blob));
                }
                // The same pack named by two index files.
                Some(location) if location.pack == number => {}
                Some(_) => {
                    let copies = self.copies.entry(blob.id).or_default();
                    if !copies.iter().any(|copy| copy.pack == number) {
                        copies.push(Location::new(number, blob));
                    }
                }
            }
        }
    }

    fn pack_name(&self, number: u32) -> String {
        self.packs.get(number as usize).cloned().unwrap_or_default()
    }

    /// Every known copy of a blob, the first one first.
    pub fn locations(&self, id: &BlobId) -> Vec<(String, PackedBlob)> {
        self.blobs
            .get(id)
            .into_iter()
            .chain(self.copies.get(id).into_iter().flatten())
            .map(|location| (self.pack_name(location.pack), location.blob(id)))
            .collect()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The plaintext length of a blob, without building its locations (a
    /// restore's check asks it of every blob before writing).
    pub fn raw_length(&self, id: &BlobId) -> Option<u32> {
        self.blobs.get(id).map(|location| location.raw_length)
    }

    /// How many distinct blobs the index knows.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Every (pack, blob) pair, copies included, grouped by pack.
    pub fn by_pack(&self) -> HashMap<String, Vec<PackedBlob>> {
        let mut packs: HashMap<String, Vec<PackedBlob>> = HashMap::new();
        let copies =
            (self.copies.iter()).flat_map(|(id, copies)| copies.iter().map(move |l| (id, l)));
        for (id, location) in self.blobs.iter().chain(copies) {
            packs
                .entry(self.pack_name(location.pack))
                .or_default()
                .push(location.blob(id));
        }
        for blobs in packs.values_mut() {
            blobs.sort_by_key(|b| b.offset);
        }
        packs
    }

    /// Leaves out the copy of `id` in `pack` (found damaged): another copy
    /// takes its place, or the blob is no longer known. Returns whether
    /// this was news.
    pub fn mark_damaged(&mut self, pack: &str, id: &BlobId, detail: &str) -> bool {
        if self
            .damaged_blobs
            .insert((pack.to_string(), *id), detail.to_string())
            .is_some()
        {
            return false;
        }
        let Some(number) = self.pack_numbers.get(pack).copied() else {
            return true;
        };
        if let Some(copies) = self.copies.get_mut(id) {
            copies.retain(|copy| copy.pack != number);
        }
        if self
            .blobs
            .get(id)
            .is_some_and(|location| location.pack == number)
        {
            match self.copies.get_mut(id).filter(|c| !c.is_empty()) {
                Some(others) => {
                    let next = others.remove(0);
                    self.blobs.insert(*id, next);
                }
                None => {
                    self.blobs.remove(id);
                }
            }
        }
        self.copies.retain(|_, c| !c.is_empty());
        true
    }

    /// The damage recorded for `id` in any pack, when its every copy is
    /// out of the index for it: `(pack, what was found)`.
    pub fn damage_of(&self, id: &BlobId) -> Option<(&str, &str)> {
        self.damaged_blobs
            .iter()
            .find(|((_, blob), _)| blob == id)
            .map(|((pack, _), detail)| (pack.as_str(), detail.as_str()))
    }

    /// The damage records of the packs `keep` accepts, for an index file
    /// that supersedes the ones holding them (records of packs that are
    /// gone say nothing any more).
    pub fn damaged_records(&self, keep: impl Fn(&str) -> bool) -> Vec<DamagedBlob> {
        let mut records: Vec<DamagedBlob> = self
            .damaged_blobs
            .iter()
            .filter(|((pack, _), _)| keep(pack))
            .map(|((pack, id), detail)| DamagedBlob {
                pack: pack.clone(),
                id: *id,
                detail: detail.clone(),
            })
            .collect();
        records.sort_by(|a, b| (&a.pack, a.id).cmp(&(&b.pack, b.id)));
        records
    }

    /// Forgets every pack not in `present`: their blobs keep another copy
    /// as their location, or are no longer known. Returns the packs forgotten.
    pub fn retain_packs(&mut self, present: &HashSet<String>) -> Vec<String> {
        let gone: HashSet<u32> = self
            .pack_numbers
            .iter()
            .filter(|(name, _)| !present.contains(*name) && self.pack_sizes.contains_key(*name))
            .map(|(_, n)| *n)
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        let mut forgotten: Vec<String> = gone.iter().map(|n| self.pack_name(*n)).collect();
        forgotten.sort();
        for name in &forgotten {
            self.pack_sizes.remove(name);
        }
        for copies in self.copies.values_mut() {
            copies.retain(|copy| !gone.contains(&copy.pack));
        }
        let copies = &mut self.copies;
        self.blobs.retain(|id, location| {
            if !gone.contains(&location.pack) {
                return true;
            }
            match copies.get_mut(id).filter(|c| !c.is_empty()) {
                Some(others) => {
                    *location = others.remove(0);
                    true
                }
                None => false,
            }
        });
        self.copies.retain(|_, c| !c.is_empty());
        forgotten
    }
}

impl Repository {
    /// Writes an index file for packs just stored; returns its stored size.
    pub(crate) fn save_index(&self, file: &IndexFile) -> Result<(String, u64), RepoError> {
        let bytes = serde_json::to_vec(file).expect("index serialises");
        self.save_file(FileKind::Index, &bytes)
    }

    /// Writes one index file listing every pack of this handle's index and
    /// superseding `replaced`, then removes those.
    pub(crate) fn replace_index(&self, replaced: &[String]) -> Result<(), RepoError> {
        let (packs, damaged_blobs) = {
            let index = self.index();
            let mut by_pack = index.by_pack();
            // A pack whose every blob is recorded damaged has no entry left,
            // yet it is still indexed: named with no blobs, it keeps its
            // records, where left out it would be adopted again, damaged
            // copies and all, from its header by the next backup.
            for pack in index.pack_sizes.keys() {
                by_pack.entry(pack.clone()).or_default();
            }
            let packs: Vec<IndexedPack> = by_pack
                .into_iter()
                .map(|(id, blobs)| IndexedPack {
                    size: index.pack_sizes.get(&id).copied().unwrap_or_default(),
                    id,
                    blobs,
                })
                .collect();
            let damaged = index.damaged_records(|pack| index.pack_sizes.contains_key(pack));
            (packs, damaged)
        };
        let (name, _) = self.save_index(&IndexFile {
            packs,
            supersedes: replaced.to_vec(),
            damaged_blobs,
        })?;
        for old_file in replaced.iter().filter(|n| **n != name) {
            // Another repair or prune may have removed it; it is superseded anyway.
            let _ = self.backend().remove(FileKind::Index, old_file);
        }
        let mut index = self.index_mut();
        index.files = vec![name];
        Ok(())
    }

    /// Takes copies a read found damaged out of the index, in this handle
    /// and for every later load: one index file records them (written
    /// atomically, like any index file). Copies already recorded are
    /// skipped; returns how many were new.
    pub(crate) fn record_damaged_blobs(&self, found: &[DamagedBlob]) -> Result<usize, RepoError> {
        let new: Vec<DamagedBlob> = {
            let index = self.index();
            let mut new: Vec<DamagedBlob> = Vec::new();
            for damaged in found {
                let key = (damaged.pack.clone(), damaged.id);
                if !index.damaged_blobs.contains_key(&key)
                    && !new
                        .iter()
                        .any(|d| d.pack == damaged.pack && d.id == damaged.id)
                {
                    new.push(damaged.clone());
                }
            }
            new
        };
        if new.is_empty() {
            return Ok(0);
        }
        let (name, _) = self.save_index(&IndexFile {
            packs: Vec::new(),
            supersedes: Vec::new(),
            damaged_blobs: new.clone(),
        })?;
        let mut index = self.index_mut();
        index.files.push(name);
        for damaged in &new {
            index.mark_damaged(&damaged.pack, &damaged.id, &damaged.detail);
        }
        Ok(new.len())
    }
}

impl Repository {
    /// Before a backup, with one listing of the packs: forgets the index
    /// entries of packs that are not there, so their blobs are stored again
    /// instead of referenced while lost; then indexes the complete packs no
    /// index lists (those of a backup killed before its next index write,
    /// or of one running right now: indexing a pack twice is harmless), so
    /// their blobs are reused. Only headers are read. Returns the bytes adopted.
    ///
    /// Packs that cannot be read are left alone: `check` reports them and
    /// `prune` removes them.
    pub(crate) fn sync_index_with_packs(&self) -> Result<u64, RepoError> {
        let names = self.list_files(FileKind::Pack)?.files;
        let present: HashSet<String> = names.iter().cloned().collect();
        let orphans: Vec<String> = {
            let mut index = self.index_mut();
            index.retain_packs(&present);
            names
                .into_iter()
                .filter(|name| !index.pack_sizes.contains_key(name))
                .collect()
        };
        let mut adopted = Vec::new();
        for name in orphans {
            if let Ok(pack) = self.read_pack_header(&name) {
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
            damaged_blobs: Vec::new(),
        };
        let (name, _) = self.save_index(&file)?;
        let mut index = self.index_mut();
        index.files.push(name);
        for pack in &file.packs {
            index.add_pack(pack);
        }
        Ok(bytes)
    }

    /// A pack's own account of its blobs, from its header alone (the last
    /// bytes of the pack; the header authenticates).
    pub(crate) fn read_pack_header(&self, name: &str) -> Result<IndexedPack, String> {
        let backend = self.backend();
        let size = backend
            .stat(FileKind::Pack, name)
            .map_err(|e| format!("cannot be read: {e}"))?;
        let too_short = || "shorter than a pack header (truncated)".to_string();
        let last = backend
            .load(
                FileKind::Pack,
                name,
                Some(size.checked_sub(4).ok_or_else(too_short)?..size),
            )
            .map_err(|e| format!("cannot be read: {e}"))?;
        let length = super::pack::header_length(&last)? as u64;
        let start = size.checked_sub(4 + length).ok_or_else(too_short)?;
        let sealed = backend
            .load(FileKind::Pack, name, Some(start..size - 4))
            .map_err(|e| format!("cannot be read: {e}"))?;
        let blobs = super::pack::decode_header(self.keys(), &sealed, size)?;
        let pack = IndexedPack {
            id: name.to_string(),
            size,
            blobs,
        };
        pack.check()?;
        Ok(pack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// What each blob costs the index besides its 32-byte id.
    #[test]
    fn a_location_is_twenty_bytes() {
        assert_eq!(std::mem::size_of::<Location>(), 20);
        let blob = PackedBlob {
            id: [3; 32],
            kind: BlobKind::Tree,
            offset: 1,
            length: 2,
            raw_length: 3,
            compressed: true,
            id_bound: true,
        };
        assert_eq!(Location::new(9, &blob).blob(&blob.id), blob);
    }

    /// The search's order is the ids' byte order, for ids that differ in
    /// their first eight bytes or only after them.
    #[test]
    fn ids_are_ordered_as_their_bytes() {
        let mut ids: Vec<BlobId> = vec![[0; 32], [255; 32], [7; 32]];
        for at in [0, 7, 8, 31] {
            let mut id = [7; 32];
            id[at] = 6;
            ids.push(id);
            id[at] = 8;
            ids.push(id);
        }
        for a in &ids {
            for b in &ids {
                assert_eq!(id_order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    /// The blob map answers as a hash map of every blob would, while it
    /// holds each blob once in a vector of exactly its entries plus a
    /// recent map of at most an eighth of them.
    #[test]
    fn the_blob_map_is_a_sorted_vector_and_a_small_recent_map() {
        let id = |n: u32| -> BlobId { Sha256::digest(n.to_le_bytes()).into() };
        let location = |n: u32| Location {
            pack: n % 7,
            offset: n,
            length: 1,
            raw_length: 1,
            kind: BlobKind::Data,
            compressed: false,
            id_bound: n.is_multiple_of(2),
        };
        let mut map = BlobMap::default();
        let mut model = HashMap::new();
        for n in 0..100_000u32 {
            map.insert(id(n), location(n));
            model.insert(id(n), n);
            assert!(map.recent.len() < RECENT_MIN.max(map.sorted.len() / 8));
        }
        // A known blob's location changes in place.
        map.insert(id(5), location(500));
        model.insert(id(5), 500);
        map.remove(&id(6));
        model.remove(&id(6));
        map.retain(|_, location| location.offset % 10 != 3);
        model.retain(|_, n| *n % 10 != 3);
        assert_eq!(map.len(), model.len());
        assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(map.sorted.capacity() <= map.sorted.len() + map.sorted.len() / 8);
        for n in 0..100_000u32 {
            assert_eq!(
                map.get(&id(n)).map(|l| l.offset),
                model.get(&id(n)).copied(),
                "{n}"
            );
        }
        let mut listed: Vec<u32> = map.iter().map(|(_, l)| l.offset).collect();
        listed.sort_unstable();
        let mut expected: Vec<u32> = model.values().copied().collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
    }
}
