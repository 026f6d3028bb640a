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
    /// How data blobs are compressed (tree blobs: always [`FILE_COMPRESSION`]).
    pub compression: Compression,
}

/// How a blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compression {
    /// The zstd level.
    pub level: i32,
    /// Samples of 16 KiB, spread evenly from the start, that a blob of
    /// 64 KiB or more is probed with first: when none shrinks it is stored
    /// as it is (see `archiver::looks_compressible`).
    pub probe_samples: usize,
}

/// Files of volumes and binds, streams, and tree blobs of every kind:
/// level 1 is 1.7× level 3's speed for 1.8% more stored
/// (docs/benchmarks.md), and a volume's backup is bound by how fast its
/// bytes are compressed.
pub(crate) const FILE_COMPRESSION: Compression = Compression {
    level: 1,
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
pub(crate) const IMAGE_COMPRESSION: Compression = Compression {
    level: 1,
    probe_samples: 4,
};

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
                compression: FILE_COMPRESSION,
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
            } = profile.compression;
            assert!(zstd::compression_level_range().contains(&level), "{kind:?}");
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
