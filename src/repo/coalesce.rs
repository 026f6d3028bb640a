//! Reads of neighbouring blobs merged into one ranged request: a restore
//! reads blobs in the order the backup wrote them, so a batch of small
//! files sits side by side in one pack. Against an object store each
//! ranged GET is a round trip; one request per run of neighbours instead of
//! one per blob is what keeps a restore of many small files from waiting
//! on the network.

use super::Repository;
use super::backend::FileKind;
use super::pack::PackedBlob;
use std::collections::BTreeMap;

/// Two blobs are read together when at most this many bytes lie between
/// them (bytes read and dropped, cheaper than a round trip).
const GAP: u64 = 64 << 10;
/// One merged request reads at most this much.
const MAX_SPAN: u64 = 8 << 20;

/// Bytes of packs read ahead for a batch of blobs: (pack, start, bytes).
#[derive(Default)]
pub(crate) struct Prefetched {
    spans: Vec<(String, u64, Vec<u8>)>,
}

impl Prefetched {
    /// Reads, in one request per run, every run of two or more of `wanted`
    /// (each blob's first location) that lie close together in a pack. A
    /// run that cannot be read is left out: its blobs are read one by one,
    /// with the usual fallbacks and damage records.
    pub(crate) fn read(repository: &Repository, wanted: &[&(String, PackedBlob)]) -> Prefetched {
        let mut by_pack: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for (pack, blob) in wanted {
            let start = u64::from(blob.offset);
            by_pack
                .entry(pack.as_str())
                .or_default()
                .push((start, start + u64::from(blob.length)));
        }
        let mut spans = Vec::new();
        for (pack, mut ranges) in by_pack {
            ranges.sort_unstable();
            for run in runs(&ranges) {
                let Ok(bytes) = repository
                    .backend()
                    .load(FileKind::Pack, pack, Some(run.clone()))
                else {
                    continue;
                };
                spans.push((pack.to_string(), run.start, bytes));
            }
        }
        Prefetched { spans }
    }

    /// The stored bytes of `blob` in `pack`, when a read-ahead holds them.
    pub(crate) fn get(&self, pack: &str, blob: &PackedBlob) -> Option<&[u8]> {
        let start = u64::from(blob.offset);
        let end = start + u64::from(blob.length);
        self.spans.iter().find_map(|(held, at, bytes)| {
            let within = held == pack && *at <= start && end <= at + bytes.len() as u64;
            within.then(|| &bytes[(start - at) as usize..(end - at) as usize])
        })
    }
}

/// Sorted ranges merged into runs of neighbours (gaps up to [`GAP`], at
/// most [`MAX_SPAN`] long); a range alone is no run (it is read as before).
fn runs(ranges: &[(u64, u64)]) -> Vec<std::ops::Range<u64>> {
    let mut runs = Vec::new();
    let mut current: Option<(std::ops::Range<u64>, usize)> = None;
    for &(start, end) in ranges {
        match &mut current {
            Some((run, count))
                if start <= run.end + GAP && end.max(run.end) - run.start <= MAX_SPAN =>
            {
                run.end = run.end.max(end);
                *count += 1;
            }
            _ => {
                if let Some((run, count)) = current.take()
                    && count > 1
                {
                    runs.push(run);
                }
                current = Some((start..end, 1));
            }
        }
    }
    if let Some((run, count)) = current
        && count > 1
    {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_merged_and_lone_blobs_and_far_ones_are_not() {
        let ranges = [
            (0, 100),
            (100, 250),
            (300, 400),
            (400 + GAP + 1, 400 + GAP + 50),
            (10 << 20, 11 << 20),
        ];
        assert_eq!(runs(&ranges), vec![0..400]);
        // A run stops before it grows past MAX_SPAN.
        let big = [
            (0, 6 << 20),
            (6 << 20, 12 << 20),
            (12 << 20, (12 << 20) + 10),
        ];
        assert_eq!(runs(&big), vec![(6 << 20)..((12 << 20) + 10)]);
    }
}
