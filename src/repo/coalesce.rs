//! Reads planned by pack: the blobs a restore, a copy or a tree walk needs
//! next are grouped by pack, neighbours merged into long ranged reads, and
//! those reads run several at once. Against an object store each ranged GET
//! is a round trip, and Garage reads (and checks) a whole block of its own
//! for every request however few bytes it asks for: reading a pack in a
//! few long stretches instead of a request per blob is what restic does,
//! and what makes a restore from S3 as fast as one from disk.
//!
//! This module only reads and hands out stored bytes; decoding, fallbacks
//! and damage records stay with [`Repository::read_copies`].

use super::Repository;
use super::backend::{Backend, DEFAULT_REQUESTS_IN_FLIGHT, FileKind};
use super::crypto::BlobId;
use super::pack::PackedBlob;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// How the reads of one backend are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Two blobs are read together when at most this many bytes lie
    /// between them (bytes read and dropped, cheaper than a round trip).
    pub gap: u64,
    /// One merged request reads at most this much (it is held whole).
    pub max_span: u64,
    /// Reads of one batch running at once.
    pub in_flight: usize,
    /// Whether a request costs a round trip to another machine: callers
    /// then gather larger batches, so each pack is read in few requests.
    pub remote: bool,
}

/// A local disk: what the restore measured fast before reads were planned
/// by pack (a pread is cheap; merging saves system calls, not round trips).
const LOCAL: ReadPlan = ReadPlan {
    gap: 64 << 10,
    max_span: 8 << 20,
    in_flight: 1,
    remote: false,
};

/// A remote store: a whole pack (16 MiB) in one request at most, gaps up
/// to 1 MiB read through (about what a round trip costs on a fast link,
/// and Garage reads whole 1 MiB blocks anyway).
const REMOTE_GAP: u64 = 1 << 20;
const REMOTE_MAX_SPAN: u64 = 16 << 20;

/// Reads of a remote store kept going at once: twice its saves. A save
/// holds a whole pack until it returns, a read only the stretch it asked
/// for, and each waits a round trip whoever decodes meanwhile: restic's
/// restorer keeps as many downloads going as it has connections, and a
/// restore from Garage with four read at 1.5 × restic's time.
pub(crate) const REMOTE_READS_IN_FLIGHT: usize = 2 * super::backend::REMOTE_REQUESTS_IN_FLIGHT;

impl ReadPlan {
    /// The plan for `backend`: one that takes more requests in flight than
    /// a local disk (S3, SFTP) is one where a request costs a round trip.
    pub(crate) fn for_backend(backend: &dyn Backend) -> ReadPlan {
        let in_flight = backend.requests_in_flight();
        if in_flight <= DEFAULT_REQUESTS_IN_FLIGHT {
            return LOCAL;
        }
        ReadPlan {
            gap: REMOTE_GAP,
            max_span: REMOTE_MAX_SPAN,
            in_flight: REMOTE_READS_IN_FLIGHT.max(in_flight),
            remote: true,
        }
    }

    /// This plan for blobs that lie scattered among others (tree blobs
    /// between the data of a backup): only close neighbours are read
    /// together, or a walk of the tree reads most of the data too.
    pub(crate) fn scattered(self) -> ReadPlan {
        ReadPlan {
            gap: LOCAL.gap,
            ..self
        }
    }
}

/// Bytes of packs read ahead for a batch of blobs: (pack, start, bytes).
#[derive(Default)]
pub(crate) struct Prefetched {
    spans: Vec<(String, u64, Vec<u8>)>,
}

/// The stored bytes go back to [`super::recycle`] for the next reads.
impl Drop for Prefetched {
    fn drop(&mut self) {
        for (_, _, bytes) in self.spans.drain(..) {
            super::recycle::give(bytes);
        }
    }
}

impl Prefetched {
    /// Reads every one of `wanted` (each blob's first location) in as few
    /// requests as `plan` allows, `plan.in_flight` of them at once. A read
    /// that fails is left out: its blobs are read one by one afterwards
    /// ([`Prefetched::blob`]), with the usual fallbacks and damage records.
    pub(crate) fn read(
        repository: &Repository,
        wanted: &[&(String, PackedBlob)],
        plan: ReadPlan,
    ) -> Prefetched {
        let reads = planned_runs(wanted.iter().copied(), plan);
        let load = |(pack, run): &(&str, Range<u64>)| load_span(repository, pack, run);
        let spans = if plan.in_flight <= 1 || reads.len() <= 1 {
            reads.iter().filter_map(load).collect()
        } else {
            let next = AtomicUsize::new(0);
            let loaded = Mutex::new(Vec::with_capacity(reads.len()));
            std::thread::scope(|scope| {
                for _ in 0..plan.in_flight.min(reads.len()) {
                    scope.spawn(|| {
                        while let Some(read) = reads.get(next.fetch_add(1, Ordering::Relaxed)) {
                            if let Some(span) = load(read) {
                                loaded.lock().expect("not poisoned").push(span);
                            }
                        }
                    });
                }
            });
            loaded.into_inner().expect("not poisoned")
        };
        Prefetched { spans }
    }

    /// [`Prefetched::read`] for a reader that hands each blob on as soon
    /// as it is decoded: the runs are read one after the other, and `take`
    /// gets the index in `blobs` (each blob's locations) of every blob of
    /// a run, with the run's bytes, before the next run is read. One run's
    /// stored bytes are held at a time, not the whole batch's. Blobs with
    /// no location come last, with nothing read ahead.
    pub(crate) fn read_by_run<E>(
        repository: &Repository,
        blobs: &[&[(String, PackedBlob)]],
        plan: ReadPlan,
        mut take: impl FnMut(usize, &Prefetched) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut taken = vec![false; blobs.len()];
        let wanted = blobs.iter().filter_map(|locations| locations.first());
        for (pack, run) in planned_runs(wanted, plan) {
            let run_bytes = Prefetched {
                spans: load_span(repository, pack, &run).into_iter().collect(),
            };
            for (i, locations) in blobs.iter().enumerate() {
                let Some((held, blob)) = locations.first() else {
                    continue;
                };
                let start = u64::from(blob.offset);
                let within =
                    held == pack && run.start <= start && start + u64::from(blob.length) <= run.end;
                if within && !taken[i] {
                    taken[i] = true;
                    take(i, &run_bytes)?;
                }
            }
        }
        for (i, _) in taken.iter().enumerate().filter(|(_, taken)| !**taken) {
            take(i, &Prefetched::default())?;
        }
        Ok(())
    }

    /// The stored bytes of `blob` in `pack`, when a read-ahead holds them
    /// (all of them: a backend that answered short holds none).
    pub(crate) fn get(&self, pack: &str, blob: &PackedBlob) -> Option<&[u8]> {
        let start = u64::from(blob.offset);
        let end = start + u64::from(blob.length);
        self.spans.iter().find_map(|(held, at, bytes)| {
            let within = held == pack && *at <= start && end <= at + bytes.len() as u64;
            within.then(|| &bytes[(start - at) as usize..(end - at) as usize])
        })
    }

    /// A blob from the read-ahead when it holds it and it decodes;
    /// otherwise read on its own, from each copy in turn (which records
    /// damage).
    pub(crate) fn blob(
        &self,
        repository: &Repository,
        locations: &[(String, PackedBlob)],
    ) -> Result<Vec<u8>, String> {
        decoded_or_read_alone(repository, locations, |pack, blob| self.get(pack, blob))
    }
}

/// The blobs of `wanted` (pack, place) grouped by pack, their places
/// sorted (a blob read twice is there twice).
fn places_by_pack<'a>(
    wanted: impl IntoIterator<Item = &'a (String, PackedBlob)>,
) -> BTreeMap<&'a str, Vec<(u64, u64)>> {
    let mut by_pack: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for (pack, blob) in wanted {
        let start = u64::from(blob.offset);
        by_pack
            .entry(pack.as_str())
            .or_default()
            .push((start, start + u64::from(blob.length)));
    }
    for places in by_pack.values_mut() {
        places.sort_unstable();
    }
    by_pack
}

/// The reads of `wanted`: neighbours in a pack merged as `plan` merges
/// them.
fn planned_runs<'a>(
    wanted: impl IntoIterator<Item = &'a (String, PackedBlob)>,
    plan: ReadPlan,
) -> Vec<(&'a str, Range<u64>)> {
    places_by_pack(wanted)
        .into_iter()
        .flat_map(|(pack, places)| {
            runs(&places, plan.gap, plan.max_span)
                .into_iter()
                .map(move |run| (pack, run))
        })
        .collect()
}

/// One ranged read of a pack as a held span; `None` when it failed (its
/// blobs are then read alone).
fn load_span(
    repository: &Repository,
    pack: &str,
    run: &Range<u64>,
) -> Option<(String, u64, Vec<u8>)> {
    let bytes = repository
        .backend()
        .load(FileKind::Pack, pack, Some(run.clone()))
        .ok()?;
    Some((pack.to_string(), run.start, bytes))
}

/// The blob of `locations` decoded from the stored bytes `held` has of
/// its first location; when it holds none or they do not decode, read on
/// its own from each copy in turn (which records damage).
fn decoded_or_read_alone<'h>(
    repository: &Repository,
    locations: &[(String, PackedBlob)],
    held: impl FnOnce(&str, &PackedBlob) -> Option<&'h [u8]>,
) -> Result<Vec<u8>, String> {
    let ahead = locations.first().and_then(|(pack, blob)| {
        let stored = held(pack, blob)?;
        repository.decode_blob(stored, blob).ok()
    });
    match ahead {
        Some(data) => Ok(data),
        None => repository.read_copies(locations),
    }
}

/// A restore's reads planned over the whole restore, as restic's restorer
/// plans them: every blob the restore will read is known before the first
/// is, so each pack is read in its whole needed regions (neighbours up to
/// the plan's gap apart, at most [`REGION_SPAN`] long) instead of the
/// stretches one batch of the tree's order needs. Files are written in the
/// tree's order and a backup packs blobs in the order its readers finished
/// them, so a batch of a large file finds its blobs among other files'
/// ones: read by batch, a pack took three or four requests per 8 MiB, and
/// Garage read 2.3 bytes from its blocks for every byte it sent.
///
/// A region read is kept (its stored bytes, at most [`REGIONS_HELD`] of
/// them at once) until every blob read it serves was taken, then dropped;
/// a region that does not fit waits for nobody: its blobs are read with
/// the batch ([`Prefetched`]), as without the plan. Counts come from the
/// walk, so a count that never reaches zero only holds memory (bounded),
/// never a wrong byte: every blob is still decoded and checked, and one
/// that does not decode is read alone ([`Repository::read_copies`]).
#[derive(Default)]
pub(crate) struct PackRegions {
    /// Per pack, its regions sorted by start.
    regions: HashMap<String, Vec<Region>>,
    /// Every region (pack, index in its pack's list) in the order the
    /// restore first needs it: the order [`PackRegions::read_ahead`] reads.
    order: Vec<(String, usize)>,
    /// The next of `order` a read-ahead takes.
    next: AtomicUsize,
    held: Mutex<Held>,
    /// Told when held regions are dropped, or the restore ended.
    freed: Condvar,
}

struct Region {
    range: Range<u64>,
    /// Blob reads of the restore still to be served from it.
    uses: AtomicUsize,
}

/// A region's stored bytes, read once by whichever worker needs it first
/// (the others wait for that read): `None` when the read failed.
type Loaded = Arc<OnceLock<Option<Vec<u8>>>>;

#[derive(Default)]
struct Held {
    bytes: u64,
    regions: HashMap<(String, u64), Loaded>,
    /// The restore ended: read-aheads stop.
    closed: bool,
}

/// A region is at most this long: half a pack.
const REGION_SPAN: u64 = 8 << 20;
/// Stored bytes of regions held at once: with 64 MiB (and eight decode
/// workers, 48 MiB decoded ahead) the bench's restore of the reference
/// volume peaked at 255 MB; with four workers and 24 MiB decoded ahead
/// (`REMOTE_PACING` in the restorer) 56 MiB stays under 150 MB.
pub(crate) const REGIONS_HELD: u64 = 56 << 20;
/// Read-aheads fill at most this much of [`REGIONS_HELD`]: the rest is
/// room for the regions the workers need now (a region far ahead could
/// otherwise leave a batch its own short reads).
const READ_AHEAD_HELD: u64 = REGIONS_HELD * 3 / 4;

impl PackRegions {
    /// The regions of every blob read in `reads` (a blob read twice counts
    /// twice), merged as `plan` merges neighbours.
    pub(crate) fn plan(reads: &[(String, PackedBlob)], plan: ReadPlan) -> PackRegions {
        let regions: HashMap<String, Vec<Region>> = places_by_pack(reads)
            .into_iter()
            .map(|(pack, ranges)| {
                let mut regions: Vec<Region> = runs(&ranges, plan.gap, REGION_SPAN)
                    .into_iter()
                    .map(|range| Region {
                        range,
                        uses: AtomicUsize::new(0),
                    })
                    .collect();
                for &(start, end) in &ranges {
                    if let Some(region) = find(&regions, start, end) {
                        region.uses.fetch_add(1, Ordering::Relaxed);
                    }
                }
                regions.retain(|r| r.uses.load(Ordering::Relaxed) > 0);
                (pack.to_string(), regions)
            })
            .collect();
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (pack, blob) in reads {
            let start = u64::from(blob.offset);
            let Some(list) = regions.get(pack) else {
                continue;
            };
            let at = list.partition_point(|r| r.range.start <= start);
            if at > 0 && seen.insert((pack.as_str(), at - 1)) {
                order.push((pack.clone(), at - 1));
            }
        }
        PackRegions {
            regions,
            order,
            ..PackRegions::default()
        }
    }

    /// Reads regions ahead of the workers, in the order the restore needs
    /// them, while they fit in [`READ_AHEAD_HELD`] (waiting for room as
    /// the workers take their blobs), until every region was read or the
    /// restore ended. Run on several threads: each keeps one read going.
    pub(crate) fn read_ahead(&self, repository: &Repository) {
        let backend = repository.backend();
        while let Some((pack, at)) = self.order.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let region = &self.regions[pack][*at];
            let length = region.range.end - region.range.start;
            let mut held = self.held.lock().expect("not poisoned");
            while !held.closed && held.bytes > 0 && held.bytes + length > READ_AHEAD_HELD {
                held = self.freed.wait(held).expect("not poisoned");
            }
            if held.closed {
                return;
            }
            drop(held);
            if region.uses.load(Ordering::Acquire) == 0 {
                continue;
            }
            if let Some(loaded) = self.hold(pack, region) {
                loaded.get_or_init(|| {
                    backend
                        .load(FileKind::Pack, pack, Some(region.range.clone()))
                        .ok()
                });
            }
        }
    }

    /// The restore ended (done or failed): read-aheads stop waiting.
    pub(crate) fn close(&self) {
        self.held.lock().expect("not poisoned").closed = true;
        self.freed.notify_all();
    }

    fn region(&self, pack: &str, blob: &PackedBlob) -> Option<&Region> {
        let start = u64::from(blob.offset);
        find(
            self.regions.get(pack)?,
            start,
            start + u64::from(blob.length),
        )
    }

    /// The region's bytes to read or wait for, when it is held or there is
    /// room to hold it.
    fn hold(&self, pack: &str, region: &Region) -> Option<Loaded> {
        let mut held = self.held.lock().expect("not poisoned");
        let key = (pack.to_string(), region.range.start);
        if let Some(loaded) = held.regions.get(&key) {
            return Some(loaded.clone());
        }
        let length = region.range.end - region.range.start;
        if held.bytes + length > REGIONS_HELD {
            return None;
        }
        held.bytes += length;
        let loaded = Loaded::default();
        held.regions.insert(key, loaded.clone());
        Some(loaded)
    }

    /// One blob read of the restore served (from its region, a batch's
    /// read or alone): a region all of whose reads were served is dropped.
    fn served(&self, pack: &str, blob: &PackedBlob) {
        let Some(region) = self.region(pack, blob) else {
            return;
        };
        let before = region
            .uses
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            let mut held = self.held.lock().expect("not poisoned");
            if held
                .regions
                .remove(&(pack.to_string(), region.range.start))
                .is_some()
            {
                held.bytes -= region.range.end - region.range.start;
                self.freed.notify_all();
            }
        }
    }

    /// The stored bytes of a batch's blobs: their regions (read here, one
    /// request at a time, unless another worker has or is reading them),
    /// and for blobs whose region does not fit, the batch's own reads.
    pub(crate) fn read<'p>(
        &'p self,
        repository: &Repository,
        wanted: &[&(String, PackedBlob)],
        plan: ReadPlan,
    ) -> RegionReads<'p> {
        let mut regions: Vec<(&str, &Region, Loaded)> = Vec::new();
        let mut rest = Vec::new();
        for &entry in wanted {
            let (pack, blob) = entry;
            let Some(region) = self.region(pack, blob) else {
                rest.push(entry);
                continue;
            };
            if regions
                .iter()
                .any(|(p, r, _)| *p == pack && std::ptr::eq(*r, region))
            {
                continue;
            }
            match self.hold(pack, region) {
                Some(loaded) => regions.push((pack, region, loaded)),
                None => rest.push(entry),
            }
        }
        let backend = repository.backend();
        let held = regions
            .into_iter()
            .map(|(pack, region, loaded)| {
                loaded.get_or_init(|| {
                    backend
                        .load(FileKind::Pack, pack, Some(region.range.clone()))
                        .ok()
                });
                (pack.to_string(), region.range.start, loaded)
            })
            .collect();
        RegionReads {
            plan: self,
            held,
            batch: Prefetched::read(repository, &rest, plan),
        }
    }
}

/// The region of `regions` (sorted by start) that holds `start..end`.
fn find(regions: &[Region], start: u64, end: u64) -> Option<&Region> {
    let after = regions.partition_point(|r| r.range.start <= start);
    let region = regions.get(after.checked_sub(1)?)?;
    (end <= region.range.end).then_some(region)
}

/// What [`PackRegions::read`] got for one batch.
pub(crate) struct RegionReads<'p> {
    plan: &'p PackRegions,
    held: Vec<(String, u64, Loaded)>,
    batch: Prefetched,
}

impl RegionReads<'_> {
    fn get(&self, pack: &str, blob: &PackedBlob) -> Option<&[u8]> {
        let start = u64::from(blob.offset);
        let end = start + u64::from(blob.length);
        let in_region = self.held.iter().find_map(|(held, at, loaded)| {
            let bytes = loaded.get()?.as_deref()?;
            let within = held == pack && *at <= start && end <= at + bytes.len() as u64;
            within.then(|| &bytes[(start - at) as usize..(end - at) as usize])
        });
        in_region.or_else(|| self.batch.get(pack, blob))
    }

    /// [`Prefetched::blob`] from the regions or the batch's reads; the
    /// blob read counts as served either way.
    pub(crate) fn blob(
        &self,
        repository: &Repository,
        locations: &[(String, PackedBlob)],
    ) -> Result<Vec<u8>, String> {
        let data = decoded_or_read_alone(repository, locations, |pack, blob| self.get(pack, blob));
        if let Some((pack, blob)) = locations.first() {
            self.plan.served(pack, blob);
        }
        data
    }
}

/// Hands `visit` each blob of `ids` in order, decoded (or why it could not
/// be read): the blobs are read ahead about `window` stored bytes at a
/// time, by pack, as `plan` allows. One sequence read this way (a tree, a
/// stream) costs a request per pack stretch, not one per blob.
pub(crate) fn read_in_order<'i, E>(
    repository: &Repository,
    ids: impl IntoIterator<Item = &'i BlobId>,
    plan: ReadPlan,
    window: u64,
    mut visit: impl FnMut(&BlobId, Result<Vec<u8>, String>) -> Result<(), E>,
) -> Result<(), E> {
    let mut ids = ids.into_iter().peekable();
    while ids.peek().is_some() {
        let mut ahead = Vec::new();
        let mut bytes = 0u64;
        while let Some(id) = ids.next_if(|_| ahead.is_empty() || bytes < window) {
            let locations = repository.index().locations(id);
            bytes += locations
                .first()
                .map_or(0, |(_, blob)| u64::from(blob.length));
            ahead.push((id, locations));
        }
        let wanted: Vec<_> = ahead.iter().filter_map(|(_, l)| l.first()).collect();
        let prefetched = Prefetched::read(repository, &wanted, plan);
        for (id, locations) in &ahead {
            visit(id, prefetched.blob(repository, locations))?;
        }
    }
    Ok(())
}

/// Stored bytes of a sequence planned into regions at a time by
/// [`read_sequence`]: its blob list (a pack name per blob) is held for
/// that much, not for a whole dump of any size.
const SEQUENCE_PLANNED: u64 = 256 << 20;

/// [`read_in_order`] for a long sequence read once (a dump's stream): the
/// regions of packs it needs are planned ahead, [`SEQUENCE_PLANNED`]
/// stored bytes at a time ([`PackRegions`]), and against a remote store
/// read ahead on `plan.in_flight - 1` threads while `visit` takes the
/// blobs in order, `window` stored bytes a batch: reads stay in flight
/// while the bytes are decoded and written, instead of each batch's reads
/// waiting for the last one's writing. Every blob is decoded and checked;
/// one whose region read failed or that does not decode is read alone.
pub(crate) fn read_sequence<E>(
    repository: &Repository,
    ids: &[BlobId],
    plan: ReadPlan,
    window: u64,
    mut visit: impl FnMut(&BlobId, Result<Vec<u8>, String>) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = ids;
    while !rest.is_empty() {
        let planned = {
            let index = repository.index();
            let mut stored = 0u64;
            let mut planned = Vec::new();
            for id in rest {
                if !planned.is_empty() && stored >= SEQUENCE_PLANNED {
                    break;
                }
                let locations = index.locations(id);
                stored += locations
                    .first()
                    .map_or(0, |(_, blob)| u64::from(blob.length));
                planned.push((id, locations));
            }
            planned
        };
        rest = &rest[planned.len()..];
        let reads: Vec<(String, PackedBlob)> = planned
            .iter()
            .filter_map(|(_, locations)| locations.first().cloned())
            .collect();
        let regions = PackRegions::plan(&reads, plan);
        drop(reads);
        let read_ahead = if plan.remote {
            plan.in_flight.saturating_sub(1)
        } else {
            0
        };
        // The reader takes its own regions one request at a time; the
        // read-aheads keep the others going.
        let own = ReadPlan {
            in_flight: 1,
            ..plan
        };
        std::thread::scope(|scope| {
            for _ in 0..read_ahead {
                scope.spawn(|| regions.read_ahead(repository));
            }
            let visited = (|| {
                let mut batches = planned.as_slice();
                while !batches.is_empty() {
                    let mut bytes = 0u64;
                    let taken = batches
                        .iter()
                        .take_while(|(_, locations)| {
                            let first = bytes == 0;
                            bytes += locations
                                .first()
                                .map_or(0, |(_, blob)| u64::from(blob.length));
                            first || bytes <= window
                        })
                        .count()
                        .max(1);
                    let (batch, later) = batches.split_at(taken);
                    batches = later;
                    let wanted: Vec<_> = batch.iter().filter_map(|(_, l)| l.first()).collect();
                    let held = regions.read(repository, &wanted, own);
                    for (id, locations) in batch {
                        visit(id, held.blob(repository, locations))?;
                    }
                }
                Ok(())
            })();
            regions.close();
            visited
        })?;
    }
    Ok(())
}

/// Sorted ranges merged into runs of neighbours (gaps up to `gap`, at most
/// `max_span` long, or one range alone that is longer).
fn runs(ranges: &[(u64, u64)], gap: u64, max_span: u64) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for &(start, end) in ranges {
        match runs.last_mut() {
            Some(run)
                if start <= run.end.saturating_add(gap)
                    && end.max(run.end) - run.start <= max_span =>
            {
                run.end = run.end.max(end);
            }
            _ => runs.push(start..end),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: u64 = LOCAL.gap;
    const MAX_SPAN: u64 = LOCAL.max_span;

    #[test]
    fn neighbours_are_merged_and_far_ones_are_not() {
        let ranges = [
            (0, 100),
            (100, 250),
            (300, 400),
            (400 + GAP + 1, 400 + GAP + 50),
            (10 << 20, 11 << 20),
        ];
        assert_eq!(
            runs(&ranges, GAP, MAX_SPAN),
            vec![
                0..400,
                (400 + GAP + 1)..(400 + GAP + 50),
                (10 << 20)..(11 << 20)
            ]
        );
        // A run stops before it grows past the longest span.
        let big = [
            (0, 6 << 20),
            (6 << 20, 12 << 20),
            (12 << 20, (12 << 20) + 10),
        ];
        assert_eq!(
            runs(&big, GAP, MAX_SPAN),
            vec![0..(6 << 20), (6 << 20)..((12 << 20) + 10)]
        );
        // A remote plan reads the same blobs as one stretch.
        assert_eq!(
            runs(&big, REMOTE_GAP, REMOTE_MAX_SPAN),
            vec![0..((12 << 20) + 10)]
        );
    }
}
