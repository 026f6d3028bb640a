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
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
            in_flight,
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
        let mut by_pack: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for (pack, blob) in wanted {
            let start = u64::from(blob.offset);
            by_pack
                .entry(pack.as_str())
                .or_default()
                .push((start, start + u64::from(blob.length)));
        }
        let mut reads: Vec<(&str, Range<u64>)> = Vec::new();
        for (pack, mut ranges) in by_pack {
            ranges.sort_unstable();
            reads.extend(
                runs(&ranges, plan.gap, plan.max_span)
                    .into_iter()
                    .map(|run| (pack, run)),
            );
        }
        let backend = repository.backend();
        let load = |(pack, run): &(&str, Range<u64>)| {
            let bytes = backend.load(FileKind::Pack, pack, Some(run.clone())).ok()?;
            Some((pack.to_string(), run.start, bytes))
        };
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
        let ahead = locations.first().and_then(|(pack, blob)| {
            let stored = self.get(pack, blob)?;
            repository.decode_blob(stored, blob).ok()
        });
        match ahead {
            Some(data) => Ok(data),
            None => repository.read_copies(locations),
        }
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
