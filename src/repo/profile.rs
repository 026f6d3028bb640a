//! How each kind of content is cut into chunks and compressed when it is
//! written: its [`ContentProfile`]. Chosen by measurement
//! (docs/repository-format.md, "Blobs and chunking"; docs/benchmarks.md).
//!
//! A profile is a property of the writer only: readers take blobs of any
//! size and any zstd level, so nothing here is recorded in the repository
//! and older readers read what it writes. Deduplication needs the same cuts
//! every time, so a kind's profile is fixed by this code: the repository
//! config's chunker for file trees and image layers (as every version wrote
//! them), fixed sizes for streams. Changing a profile only loses
//! deduplication against blobs cut the old way, once.
//!
//! This module decides parameters only; the archiver applies them.

use super::{Chunker, ContentKind};

/// Cut and compression of one kind of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentProfile {
    /// Where data blobs are cut.
    pub chunker: Chunker,
    /// How data blobs are compressed (tree blobs: always [`TREE_COMPRESSION`]).
    pub compression: Compression,
}

/// How a blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compression {
    /// The zstd level.
    pub level: i32,
    /// How zstd finds matches at that level.
    pub finder: MatchFinder,
    /// Samples of 16 KiB, spread evenly from the start, that a blob of
    /// 64 KiB or more is probed with first: when none shrinks it is stored
    /// as it is (see `archiver::looks_compressible`).
    pub probe_samples: usize,
}

/// zstd's way of finding repeats at a [`Compression`]'s level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchFinder {
    /// The level's own parameters.
    OfLevel,
    /// zstd's double-fast finder (level 3's) with tables of `1 << hash_log`
    /// and `1 << chain_log` entries, matches of `min_match` bytes or more.
    DoubleFast {
        hash_log: u32,
        chain_log: u32,
        min_match: u32,
    },
}

/// Tree blobs of every kind: level 1's own finder. They are mostly ids,
/// which nothing compresses: of the real tree's 27.3 MB of trees, level 1
/// stored 5.45 MB, the double-fast finder of [`FILE_COMPRESSION`] 0.4%
/// more in 1.3 × the time, level 3 5.55 MB, level 12 5.44 MB in 16 ×.
pub(crate) const TREE_COMPRESSION: Compression = Compression {
    level: 1,
    finder: MatchFinder::OfLevel,
    probe_samples: 2,
};

/// Streams (dumps): level 1's own finder, as before. Their bench
/// (scripts/bench-dumps.sh) found level 3 storing more than level 1 on
/// dumps cut at 64 KiB, and the double-fast finder was not measured there.
pub(crate) const STREAM_COMPRESSION: Compression = TREE_COMPRESSION;

/// Files of volumes and binds.
/// A volume's backup is bound by how fast its bytes are compressed, and
/// level 3 costs 1.34 × level 1's CPU; level 1's own finder (one hash
/// table of 8 K entries, matches of 6 bytes) stored 2.0% (reference
/// volume) and 1.8% (real tree) more than restic 0.14. Level 1 with the
/// double-fast finder on small tables (16 K and 4 K entries, which stay
/// in a core's cache) and 5-byte matches stores 4.0% less of what
/// compresses than level 1's own, at 1.10 – 1.17 × its compression CPU;
/// level 3 stores 3.9 – 6.2% less at 1.34 ×. Measured per 1 MiB piece
/// of every compressible file (CPU of one thread, best of five):
///
/// | finder (hash / chain log, min match) | reference | real tree |
/// |---|---|---|
/// | level 1's own (13, 6) | 0 | 0 |
/// | level 1, hash log 16 | −0.65%, +7% CPU | |
/// | double-fast 14 / 10, 6 | −1.74%, +8% | −0.77%, +6.5% |
/// | double-fast 14 / 11, 5 | −3.85%, +14% | −3.35%, +8% |
/// | **double-fast 14 / 12, 5** | **−4.03%, +17%** | **−3.96%, +10%** |
/// | double-fast 15 / 12, 5 | −4.22%, +21% | −4.49%, +12% |
/// | level 3 (17 / 16, 5) | −3.92%, +36% | −6.15%, +34% |
///
/// Readers need nothing of this: a zstd frame decodes the same whatever
/// finder made it.
pub(crate) const FILE_COMPRESSION: Compression = Compression {
    level: 1,
    finder: MatchFinder::DoubleFast {
        hash_log: 14,
        chain_log: 12,
        min_match: 5,
    },
    probe_samples: 2,
};

/// Streams (dumps) are cut at 16 / 64 / 256 KiB. A dump of an unchanged
/// database differs in a few lines (pg_dump's random `\restrict` key, first
/// and last line): each changed line stores the chunk around it again, and
/// at the files' 1 MiB average three re-dumps of a 7.9 MB dump stored
/// 0.92 × what restic stores; at 64 KiB a changed line costs some 28 KB
/// (docs/benchmarks.md, "Dumps"). Smaller still would save little more per
/// line while every chunk adds an id to the stream's one tree node (65
/// bytes each, stored again by every re-dump).
pub(crate) const STREAM_CHUNKER: Chunker = Chunker {
    min: 16 * 1024,
    avg: 64 * 1024,
    max: 256 * 1024,
};

/// Image layers are cold data, written once and deduplicated by DiffID,
/// but a backup of them must not be slower than `docker save | zstd -3
/// -T0` (issue 27), and compression is most of its CPU. On the image set
/// (a debootstrap Debian and three images built on it, 494 MB exported
/// together) one export of all four stored at level 1 177.4 MB (0.84 ×
/// `docker save | zstd -3` of the four, 211.2 MB: chunks shared between
/// layers are stored once), at level 3 166.9 MB (0.79 ×), at level 9
/// 160.8 MB (0.76 ×) in four times the pipeline's time. Per 1 MiB block, `zstd -b -B1M` of the export gave
/// 222.7 MB at level 1, 217.2 MB at 2, 216.1 MB at 3 and 208.0 MB at 8:
/// levels above 1 buy 2–7% at 1.5–8 × the CPU. Four probe samples: two
/// stored 2.6 MB of compressible chunks as they were, four 0.4 MB
/// (docs/benchmarks.md, "Images"). Level -1 (zstd's first fast level)
/// stored 198.6 MB (0.94 ×) and saved no CPU: 3.0 CPU-seconds a backup at
/// both levels, the cheaper compression spent again sealing and writing
/// 12% more bytes (issue 27, two runs each on a loaded machine).
/// Layers take files' finder too (as tightly as files, whatever their
/// probes: `image::tests`), which is still cheaper than `zstd -3`'s.
pub(crate) const IMAGE_COMPRESSION: Compression = Compression {
    probe_samples: 4,
    ..FILE_COMPRESSION
};

impl Compression {
    /// A zstd context that compresses as this says.
    pub(crate) fn compressor(&self) -> std::io::Result<zstd::bulk::Compressor<'static>> {
        use zstd::zstd_safe::{CParameter, Strategy};
        let mut compressor = zstd::bulk::Compressor::new(self.level)?;
        if let MatchFinder::DoubleFast {
            hash_log,
            chain_log,
            min_match,
        } = self.finder
        {
            for parameter in [
                CParameter::Strategy(Strategy::ZSTD_dfast),
                CParameter::HashLog(hash_log),
                CParameter::ChainLog(chain_log),
                CParameter::MinMatch(min_match),
            ] {
                compressor.set_parameter(parameter)?;
            }
        }
        Ok(compressor)
    }
}

impl ContentProfile {
    /// The profile of `kind` in a repository whose config names
    /// `tree_chunker`.
    pub(crate) fn of(kind: ContentKind, tree_chunker: Chunker) -> ContentProfile {
        match kind {
            ContentKind::Tree => ContentProfile {
                chunker: tree_chunker,
                compression: FILE_COMPRESSION,
            },
            ContentKind::Stream => ContentProfile {
                chunker: STREAM_CHUNKER,
                compression: STREAM_COMPRESSION,
            },
            ContentKind::Image => ContentProfile {
                chunker: tree_chunker,
                compression: IMAGE_COMPRESSION,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::CHUNKER;
    use crate::repo::config::check_chunker;

    #[test]
    fn every_profile_is_one_fastcdc_accepts_and_zstd_knows() {
        for kind in [ContentKind::Tree, ContentKind::Stream, ContentKind::Image] {
            let profile = ContentProfile::of(kind, CHUNKER);
            assert_eq!(check_chunker(profile.chunker), Ok(()), "{kind:?}");
            let Compression {
                level,
                probe_samples,
                ..
            } = profile.compression;
            assert!(zstd::compression_level_range().contains(&level), "{kind:?}");
            // zstd takes its parameters, and what it makes decodes.
            let mut compressor = profile.compression.compressor().unwrap();
            let text = b"a line of text, and the same line of text again. ".repeat(300);
            let compressed = compressor.compress(&text).unwrap();
            assert!(compressed.len() < text.len() / 10, "{kind:?}");
            assert_eq!(
                zstd::bulk::decompress(&compressed, text.len()).unwrap(),
                text
            );
            // A blob probed is at least four samples long.
            assert!((1..=4).contains(&probe_samples), "{kind:?}");
        }
    }

    #[test]
    fn trees_and_images_follow_the_config_and_streams_do_not() {
        let config = Chunker {
            min: 256 * 1024,
            avg: 512 * 1024,
            max: 4 * 1024 * 1024,
        };
        assert_eq!(
            ContentProfile::of(ContentKind::Tree, config).chunker,
            config
        );
        assert_eq!(
            ContentProfile::of(ContentKind::Image, config).chunker,
            config
        );
        assert_eq!(
            ContentProfile::of(ContentKind::Stream, config).chunker,
            STREAM_CHUNKER
        );
    }
}
