//! Byte streams (a dump, a container's configuration) as snapshots: one
//! file node whose content is the stream, cut by a content-defined chunker
//! with smaller chunks than files' (see `profile`), so a dump of an
//! unchanged database deduplicates against the previous one but for the
//! few lines that differ. Neither side ever holds the stream whole.

use super::coalesce::{ReadPlan, read_sequence};
use super::tree::{Node, NodeKind};
use super::{ContentKind, Progress, RepoError, Repository, Snapshot, SnapshotSource};
use std::io::{Read, Write};

/// Stored bytes of a stream taken at once, decoded in order (the pack
/// regions read ahead of them are bounded apart: `coalesce::REGIONS_HELD`).
const READ_AHEAD: u64 = 8 << 20;

impl Repository {
    /// Stores everything `stream` yields as a snapshot of kind
    /// [`ContentKind::Stream`].
    pub fn backup_stream(
        &self,
        mut stream: impl Read + Send,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        self.backup_content(ContentKind::Stream, source, progress, |builder| {
            let node = Node::new(NodeKind::File, 0o600, 0, 0, chrono::Utc::now().timestamp());
            builder.add_stream(node, &mut stream).map(|_| ())
        })
    }

    /// Writes the stream a [`ContentKind::Stream`] snapshot holds to `out`,
    /// each blob verified before its bytes are written; returns the bytes written.
    pub fn restore_stream(
        &self,
        snapshot: &Snapshot,
        mut out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<u64, RepoError> {
        let corrupt = |detail: &str| RepoError::Corrupt {
            what: format!("snapshot {}", snapshot.id.short()),
            detail: detail.to_string(),
        };
        if snapshot.content != ContentKind::Stream {
            return Err(corrupt("it holds a file tree, not a byte stream"));
        }
        let mut written = 0u64;
        let mut nodes = 0;
        self.for_each_node(snapshot, |node| {
            nodes += 1;
            if nodes > 1 || node.kind != NodeKind::File || !node.path_bytes().is_empty() {
                return Err(corrupt("a stream snapshot holds exactly one file node"));
            }
            // Streams are cut small (see `profile`): read by the regions
            // of their packs, read ahead, not a request per blob.
            let plan = ReadPlan::for_backend(self.backend());
            read_sequence(self, &node.content, plan, READ_AHEAD, |id, data| {
                let data = data.map_err(|detail| RepoError::BadBlob {
                    path: "(stream)".to_string(),
                    blob: hex::encode(&id[..8]),
                    detail,
                })?;
                out.write_all(&data)
                    .map_err(RepoError::io("writing the restored stream"))?;
                written += data.len() as u64;
                progress(Progress {
                    files: 0,
                    bytes: written,
                    current: None,
                });
                Ok(())
            })?;
            if written != node.size {
                return Err(corrupt("the stream is not as long as recorded"));
            }
            Ok(())
        })?;
        if nodes == 0 {
            return Err(corrupt("a stream snapshot holds exactly one file node"));
        }
        out.flush()
            .map_err(RepoError::io("writing the restored stream"))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::memory::MemoryBackend;
    use crate::repo::{Backend, RepoOptions};
    use std::sync::Arc;

    /// A pg_dump-like text of `rows` rows, its first and last lines naming
    /// `key` (pg_dump 15.14 writes a random `\restrict` key per dump).
    fn dump(rows: u64, key: &str) -> Vec<u8> {
        let mut text = format!("--\n-- PostgreSQL database dump\n--\n\n\\restrict {key}\n\n");
        text.push_str("COPY public.rows (id, hash, note) FROM stdin;\n");
        let mut x = 11u64;
        for id in 1..=rows {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(&format!(
                "{id}\t{:016x}{:016x}\torder {} shipped to customer {}\n",
                x,
                x.rotate_left(17),
                id % 1000,
                x >> 50
            ));
        }
        text.push_str(&format!("\\.\n\n\\unrestrict {key}\n"));
        text.into_bytes()
    }

    #[test]
    fn a_re_dump_with_a_few_changed_lines_adds_only_a_few_small_chunks() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("p")).unwrap();
        let repository = Repository::open(backend, Some("p"), RepoOptions::default()).unwrap();
        let source = SnapshotSource {
            resource: "dump.orders".into(),
            kind: "dump".into(),
            ..SnapshotSource::default()
        };
        let first = dump(100_000, "CUodGhRdnohtgepqIFKFlcJQiJeTY97F");
        assert!(first.len() > 7 << 20, "{}", first.len());
        repository
            .backup_stream(first.as_slice(), source.clone(), &|_| {})
            .unwrap();
        for key in [
            "BzbPb35tDLQpAneKOueG0y6Do44gFffa",
            "Zq2mW8xYt5s0kLrP3vN7bC1dE9fG4hJ6",
        ] {
            let again = dump(100_000, key);
            let snapshot = repository
                .backup_stream(again.as_slice(), source.clone(), &|_| {})
                .unwrap();
            // The chunk of each changed line (one at the start, one at the
            // end) and the tree blob, which lists every chunk.
            assert!(
                snapshot.summary.new_blobs <= 4,
                "{} new blobs",
                snapshot.summary.new_blobs
            );
            assert!(
                snapshot.summary.added_bytes < 160_000,
                "a re-dump added {} B",
                snapshot.summary.added_bytes
            );
            let mut out = Vec::new();
            repository
                .restore_stream(&snapshot, &mut out, &|_| {})
                .unwrap();
            assert!(out == again, "the re-dump did not come back as it was");
        }
    }

    #[test]
    fn a_stream_round_trips_and_an_unchanged_one_adds_almost_nothing() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("p")).unwrap();
        let repository = Repository::open(backend, Some("p"), RepoOptions::default()).unwrap();
        let mut data = Vec::new();
        let mut x = 7u64;
        for _ in 0..(3 << 20) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            data.push((x >> 60) as u8 + b'a');
        }
        let source = SnapshotSource {
            resource: "dump.orders".into(),
            kind: "dump".into(),
            ..SnapshotSource::default()
        };
        let first = repository
            .backup_stream(data.as_slice(), source.clone(), &|_| {})
            .unwrap();
        assert_eq!(first.content, ContentKind::Stream);
        assert_eq!(first.summary.bytes, data.len() as u64);
        let again = repository
            .backup_stream(data.as_slice(), source, &|_| {})
            .unwrap();
        assert!(
            again.summary.added_bytes < first.summary.added_bytes / 20,
            "{} of {}",
            again.summary.added_bytes,
            first.summary.added_bytes
        );
        let mut out = Vec::new();
        let written = repository
            .restore_stream(&again, &mut out, &|_| {})
            .unwrap();
        assert_eq!(written, data.len() as u64);
        assert_eq!(out, data);
        let mut empty = Vec::new();
        let nothing = repository
            .backup_stream(&b""[..], SnapshotSource::default(), &|_| {})
            .unwrap();
        assert_eq!(
            repository
                .restore_stream(&nothing, &mut empty, &|_| {})
                .unwrap(),
            0
        );
    }

    /// A dump backed up into a remote-like repository (`faults` on top):
    /// the raw store, the counting faulty backend, the repository, the
    /// dump and its snapshot.
    fn remote_dump(
        faults: crate::repo::backend::faulty::Faults,
    ) -> (
        Arc<MemoryBackend>,
        Arc<crate::repo::backend::faulty::FaultyBackend>,
        Repository,
        Vec<u8>,
        Snapshot,
    ) {
        let (inner, faulty, repository) = crate::repo::read_tests::remote_like(faults);
        let data = dump(200_000, "CUodGhRdnohtgepqIFKFlcJQiJeTY97F");
        let source = crate::repo::tests::source("dump.orders");
        let snapshot = repository
            .backup_stream(data.as_slice(), source, &|_| {})
            .unwrap();
        (inner, faulty, repository, data, snapshot)
    }

    /// Issue 23: a dump restores by the regions of its packs, read ahead
    /// several at once, not a request per blob (counted on the in-memory
    /// store seen as a remote one, each request taking a round trip).
    #[test]
    fn a_dump_of_many_blobs_restores_in_a_few_reads_of_its_packs_several_at_once() {
        let (_, counting, repository) = crate::repo::read_tests::counted_remote();
        // Binary data beside the text (a custom-format dump): four packs.
        let mut data = dump(100_000, "CUodGhRdnohtgepqIFKFlcJQiJeTY97F");
        data.extend(crate::repo::image::tests::noise(40 << 20, 7));
        let snapshot = repository
            .backup_stream(data.as_slice(), SnapshotSource::default(), &|_| {})
            .unwrap();
        let blobs = snapshot.summary.new_blobs;
        let packs = repository
            .list_files(crate::repo::FileKind::Pack)
            .unwrap()
            .files
            .len() as u64;
        let before = counting.counts();
        counting.reset_most_loads_at_once();
        let mut out = Vec::new();
        repository
            .restore_stream(&snapshot, &mut out, &|_| {})
            .unwrap();
        assert!(out == data, "the dump did not come back as it was");
        let after = counting.counts();
        let loads = after.pack_loads - before.pack_loads;
        eprintln!(
            "{blobs} blobs in {packs} packs: {loads} pack loads, at most {} at once",
            after.most_loads_at_once
        );
        assert!(blobs > 100, "{blobs} blobs");
        // A region is at most half a pack.
        assert!(loads <= 3 * packs, "{loads} pack loads for {packs} packs");
        assert!(
            after.most_loads_at_once >= 2,
            "at most {} loads at once",
            after.most_loads_at_once
        );
    }

    /// The fallbacks of every read by pack: a long read that fails costs
    /// requests (each blob read alone), never the restore; a blob that
    /// does not decode is read alone, fails the restore as damage
    /// (`integrity`) and leaves the index.
    #[test]
    fn a_dump_restore_reads_blobs_alone_when_long_reads_fail_and_refuses_a_damaged_one() {
        use crate::repo::backend::faulty::Faults;
        let (_, faulty, repository, data, snapshot) = remote_dump(Faults {
            fail_pack_ranges_longer_than: Some(1 << 20),
            ..Faults::default()
        });
        let loads = faulty.pack_loads();
        let mut out = Vec::new();
        repository
            .restore_stream(&snapshot, &mut out, &|_| {})
            .unwrap();
        assert!(out == data, "the dump did not come back as it was");
        assert!(faulty.pack_loads() - loads > snapshot.summary.new_blobs / 2);

        let (inner, _, repository, _, snapshot) = remote_dump(Faults::default());
        let (_, blob) = crate::repo::damage_tests::flip_a_bit(&inner, &repository);
        let error = repository
            .restore_stream(&snapshot, &mut Vec::new(), &|_| {})
            .unwrap_err();
        assert!(matches!(&error, RepoError::BadBlob { .. }), "{error}");
        assert_eq!(error.class(), crate::failure::FailureClass::Integrity);
        assert!(repository.index().locations(&blob.id).is_empty());
    }
}
