//! `check`: is every snapshot restorable? Structure always (index files
//! readable, indexed packs present with the right size, every blob a
//! snapshot needs indexed in a sound pack, snapshot and key files intact);
//! with read-data, every pack (or a subset) is re-read and each blob
//! re-authenticated, and re-hashed unless its sealing proves its id
//! (format 4; `rehash` hashes those too). Problems name the snapshots and
//! resources they affect; files that are no repository file are noted.
//! The one write: copies of blobs read-data finds damaged are recorded
//! (an index file, see `index::DamagedBlob`), so that no later backup
//! deduplicates against them.

use super::crypto::BlobId;
use super::index::{DamagedBlob, Index};
use super::{FileKind, RepoError, Repository, Snapshot, pack, short};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What to do about a damaged pack whose blobs may still be intact.
const SALVAGE: &str = "; `lifeboat repair` copies the blobs that still authenticate into new packs";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    All,
    /// Percentage of packs, chosen at random, 0–100.
    Subset(f64),
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub read_data: Option<ReadData>,
    /// With read data: hash every blob again, also those whose decryption
    /// already proves their id (sealed bound to it, format 4). Finds what
    /// the proof cannot: a writer that named a blob wrongly before sealing.
    pub rehash: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// The damaged thing: `pack 3f9a1c22`, `snapshots/…`, `index/…`.
    pub what: String,
    pub detail: String,
    /// `(snapshot short id, resource)` pairs that cannot be fully restored.
    pub affects: Vec<(String, String)>,
    /// The command that deals with it, when it acts on one repository
    /// (the CLI spells it out with the repository's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

/// A command that deals with a problem in one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Advice {
    /// `lifeboat forget --repository NAME ID`: the snapshot file is
    /// damaged here (another repository may hold a sound copy of it).
    Forget { snapshot: String },
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub problems: Vec<Problem>,
    /// Not errors: packs no index lists (left by an interrupted backup),
    /// stale locks, files that are no repository file, damaged records.
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, what: String, detail: String) {
        self.problems.push(Problem {
            what,
            detail,
            affects: Vec::new(),
            advice: None,
        });
    }
}

impl Repository {
    pub fn check(&self, options: CheckOptions) -> Result<CheckReport, RepoError> {
        let mut report = CheckReport::default();
        let backend = self.backend();
        let mut unknown = Vec::new();

        // Read afresh (not this handle's copy, which a backup may have
        // adjusted), one file at a time, so one bad file hides nothing.
        let index = Index::load(self)?;
        unknown.extend(index.unknown.iter().cloned());
        for (name, detail) in &index.damaged {
            report.problem(
                format!("index/{}", short(name)),
                format!("{detail}; `lifeboat repair` rebuilds the index from the packs"),
            );
        }
        report.packs = index.pack_sizes.len();
        report.blobs = index.len();

        // Packs on disk against the index.
        let listing = self.list_files(FileKind::Pack)?;
        unknown.extend(listing.unknown);
        let present: HashSet<String> = listing.files.into_iter().collect();
        let mut bad_packs: HashMap<String, String> = HashMap::new();
        for (name, size) in &index.pack_sizes {
            if !present.contains(name) {
                bad_packs.insert(name.clone(), "missing".to_string());
                continue;
            }
            match backend.stat(FileKind::Pack, name) {
                Ok(actual) if actual == *size => {}
                Ok(actual) => {
                    bad_packs.insert(
                        name.clone(),
                        format!(
                            "{actual} bytes, the index says {size} (truncated or overwritten){SALVAGE}"
                        ),
                    );
                }
                Err(e) => {
                    bad_packs.insert(name.clone(), format!("unreadable: {e}"));
                }
            }
        }
        let unindexed = present
            .iter()
            .filter(|p| !index.pack_sizes.contains_key(*p))
            .count();
        if unindexed > 0 {
            report.notes.push(format!(
                "{unindexed} pack(s) are in no index (left by an interrupted backup or prune); \
                 the next backup adopts the sound ones, `lifeboat prune` removes them"
            ));
        }

        // Read data: re-read packs and re-verify every blob in them.
        let by_pack = index.by_pack();
        let mut bad_blobs: HashMap<(BlobId, String), String> = HashMap::new();
        if let Some(read) = options.read_data {
            let mut names: Vec<&String> = by_pack
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
                let bytes = match backend.load(FileKind::Pack, name, None) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        bad_packs.insert(name.clone(), format!("unreadable: {e}"));
                        continue;
                    }
                };
                let name_matches = super::sha256_hex(&bytes) == *name;
                let header = pack::read_header(self.keys(), &bytes);
                if let Err(detail) = &header {
                    bad_packs.insert(name.clone(), format!("header: {detail}{SALVAGE}"));
                }
                let bad_before = bad_blobs.len();
                for blob in by_pack.get(name).into_iter().flatten() {
                    let end = blob.offset as usize + blob.length as usize;
                    let result = bytes
                        .get(blob.offset as usize..end)
                        .ok_or_else(|| "past the end of the pack".to_string())
                        .and_then(|stored| {
                            self.decode_blob_rehashing(stored, blob, options.rehash)
                        });
                    if let Err(detail) = result {
                        bad_blobs.insert(
                            (blob.id, name.clone()),
                            format!("in pack {}: {detail}", short(name)),
                        );
                    }
                }
                // Changed, yet its header and every blob the index offers
                // from it verify: the change is in a copy already recorded
                // damaged (or in bytes no blob uses). Its blobs are sound.
                if !name_matches && header.is_ok() && bad_blobs.len() == bad_before {
                    report.problem(
                        format!("pack {}", short(name)),
                        "content does not match its name: it holds a damaged blob the index no \
                         longer offers; `lifeboat repair` copies its intact blobs into new packs \
                         and removes it"
                            .to_string(),
                    );
                }
            }
        }

        self.record_check_damage(&bad_blobs, &mut report);

        // A blob is sound when one of its copies is; else the first copy's
        // trouble is what the user is told.
        let blob_state = |id: &BlobId| -> Option<(String, String)> {
            let locations = index.locations(id);
            let Some((first, _)) = locations.first() else {
                let detail = match index.damage_of(id) {
                    Some((pack, detail)) => format!(
                        "damaged in pack {} ({detail}), so out of the index: the next backup \
                         of the same data stores it again, `lifeboat repair` salvages the \
                         rest of that pack",
                        short(pack)
                    ),
                    None => "not in any index".into(),
                };
                return Some((format!("blob {}", hex::encode(&id[..4])), detail));
            };
            let sound = |pack: &String| {
                !bad_packs.contains_key(pack) && !bad_blobs.contains_key(&(*id, pack.clone()))
            };
            if locations.iter().any(|(pack, _)| sound(pack)) {
                return None;
            }
            match bad_packs.get(first) {
                Some(detail) => Some((format!("pack {}", short(first)), detail.clone())),
                None => bad_blobs
                    .get(&(*id, first.clone()))
                    .map(|d| (format!("blob {}", hex::encode(&id[..4])), d.clone())),
            }
        };

        // Snapshots: each must load and every blob it needs must be sound.
        let snapshots = self.list_files(FileKind::Snapshot)?;
        unknown.extend(snapshots.unknown);
        report.snapshots = snapshots.files.len();
        let mut damage: HashMap<String, (String, BTreeSet<(String, String)>)> = HashMap::new();
        for name in snapshots.files {
            let snapshot = match self.load_snapshot(&name) {
                Ok(snapshot) => snapshot,
                Err(RepoError::Corrupt { detail, .. }) => {
                    report.problems.push(Problem {
                        what: format!("snapshots/{}", short(&name)),
                        detail,
                        affects: vec![(short(&name).to_string(), "?".to_string())],
                        advice: Some(Advice::Forget {
                            snapshot: short(&name).to_string(),
                        }),
                    });
                    continue;
                }
                Err(RepoError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    report.snapshots -= 1;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let affected = (snapshot.id.short().to_string(), snapshot.resource.clone());
            let mut note = |what: String, detail: String| {
                damage
                    .entry(what)
                    .or_insert_with(|| (detail, BTreeSet::new()))
                    .1
                    .insert(affected.clone());
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
            let mut totals = super::TreeTotals::default();
            let walked = self.for_each_node_of_content(&snapshot, |node| {
                let mut missing = false;
                for id in &node.content {
                    if let Some((what, detail)) = blob_state(id) {
                        note(what.clone(), detail);
                        missing = true;
                    }
                }
                // What a restore refuses, check reports: content that
                // disagrees with the entry's size, or an entry other than a
                // file carrying content (a FIFO that would be written).
                if !missing && let Err(error) = self.check_node_content(&node) {
                    note(
                        format!("entry {} of {}", node.display_path(), snapshot.id.short()),
                        error.finding(),
                    );
                }
                if node.kind == super::tree::NodeKind::File {
                    totals.files += 1;
                    totals.bytes += node.size;
                }
                Ok(())
            });
            match walked {
                Err(error) => note(format!("tree of {}", snapshot.id.short()), error.finding()),
                Ok(()) if snapshot.content == super::ContentKind::Tree => {
                    if let Err(error) = super::restorer::check_totals(&snapshot, totals) {
                        note(
                            format!("summary of {}", snapshot.id.short()),
                            error.finding(),
                        );
                    }
                }
                Ok(()) => {}
            }
        }
        let mut damage: Vec<_> = damage.into_iter().collect();
        damage.sort_by(|a, b| a.0.cmp(&b.0));
        for (what, (detail, affects)) in damage {
            report.problems.push(Problem {
                what,
                detail,
                affects: affects.into_iter().collect(),
                advice: None,
            });
        }
        // Damaged packs no snapshot needs are still damage.
        let mut bad_packs: Vec<_> = bad_packs.into_iter().collect();
        bad_packs.sort();
        for (pack, detail) in bad_packs {
            let what = format!("pack {}", short(&pack));
            if !report.problems.iter().any(|p| p.what == what) {
                let hint = if detail == "missing" {
                    "; `lifeboat repair` drops it from the index"
                } else {
                    ""
                };
                report.problem(what, format!("{detail}{hint}"));
            }
        }

        self.check_keys(&mut report, &mut unknown)?;
        let applied = self.list_files(FileKind::Applied)?;
        unknown.extend(applied.unknown);
        for name in applied.files {
            if let Err(RepoError::Corrupt { detail, .. }) = self.load_applied(&name) {
                report.notes.push(format!(
                    "applied/{}: {detail}; it is ignored and the next apply replaces it",
                    short(&name)
                ));
            }
        }
        unknown.extend(self.list_files(FileKind::Run)?.unknown);
        for damaged in self.runs()?.1 {
            report.notes.push(format!(
                "runs/{}: {}; this run record is passed over (runs and plans read the others); \
                 remove the file if nothing else needs it",
                short(&damaged.name),
                damaged.detail
            ));
        }
        let locks = self.list_files(FileKind::Lock)?;
        unknown.extend(locks.unknown);
        let stale = super::lock::list(self)?
            .into_iter()
            .filter(|l| l.is_stale())
            .count();
        if stale > 0 {
            report.notes.push(format!(
                "{stale} stale lock(s): `lifeboat unlock` removes them"
            ));
        }
        for path in unknown {
            report
                .notes
                .push(if super::prune::is_leftover(backend, &path) {
                    format!(
                        "{path} is no repository file (a temporary file of an interrupted \
                         write): lifeboat skips it; `lifeboat prune` removes it"
                    )
                } else {
                    format!(
                        "{path} is no repository file (a temporary file of an interrupted \
                         write, or put there by hand): lifeboat skips it; remove it if nothing \
                         else needs it"
                    )
                });
        }
        Ok(report)
    }

    /// Takes the copies read-data found damaged out of the index, so the
    /// next backup stores their content again instead of referencing them.
    fn record_check_damage(
        &self,
        bad_blobs: &HashMap<(BlobId, String), String>,
        report: &mut CheckReport,
    ) {
        let mut found: Vec<DamagedBlob> = bad_blobs
            .iter()
            .map(|((id, pack), detail)| DamagedBlob {
                pack: pack.clone(),
                id: *id,
                detail: detail
                    .split_once(": ")
                    .map_or(detail.as_str(), |(_, why)| why)
                    .to_string(),
            })
            .collect();
        found.sort_by(|a, b| (&a.pack, a.id).cmp(&(&b.pack, b.id)));
        match self.record_damaged_blobs(&found) {
            Ok(0) => {}
            Ok(new) => report.notes.push(format!(
                "{new} damaged blob(s) recorded and taken out of the index: the next backup of \
                 the same data stores them again"
            )),
            Err(error) => report.notes.push(format!(
                "the damaged blobs could not be recorded ({error}): until they are, backups may \
                 still reference them"
            )),
        }
    }

    /// Every key file must be usable: the one that opened the repository is,
    /// but another may be damaged (it would fail its passphrase's owner).
    fn check_keys(
        &self,
        report: &mut CheckReport,
        unknown: &mut Vec<String>,
    ) -> Result<(), RepoError> {
        let keys = self.list_files(FileKind::Key)?;
        unknown.extend(keys.unknown);
        for name in keys.files {
            if let Err(detail) = Repository::read_key_file(self.backend(), &name) {
                report.problem(
                    format!("keys/{}", short(&name)),
                    format!("{detail}; it opens nothing: put it back from a copy, or remove it"),
                );
            }
        }
        Ok(())
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
