//! Byte streams (a dump, a container's configuration) as snapshots: one
//! file node whose content is the stream, cut by the same content-defined
//! chunker as files, so a dump of an unchanged database deduplicates
//! against the previous one. Neither side ever holds the stream whole.

use super::tree::{Node, NodeKind};
use super::{ContentKind, Progress, RepoError, Repository, Snapshot, SnapshotSource};
use std::io::{Read, Write};

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
            for id in &node.content {
                let data = self.read_blob(id).map_err(|detail| RepoError::BadBlob {
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
            }
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
}
