//! Direct mode's file-metadata cache: for each regular file the last direct
//! backup of a source read, its stat stamp and the content blobs it gave, so
//! an unchanged file is not read again.
//!
//! The cache lives outside the repository (`RepoOptions::cache_dir`, one file
//! per repository and source) and is only ever a hint: an entry is used when
//! size, mtime, ctime and inode all match *and* every blob is still in the
//! repository's index, so a lost, stale or foreign cache costs a re-read,
//! never a wrong snapshot. It holds file names, so it is encrypted with the
//! repository's keys like everything in the repository.
//!
//! This module must not decide what goes into a snapshot; the archiver does.

use super::crypto::{BlobId, Keys};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `stat` says about a file; equal stamps mean the content is taken as unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
        }
    }

    /// A file changed within the last two seconds may change again within the
    /// same timestamp tick after it was read; it is not cached (git's "racily
    /// clean" rule), so the next backup reads it.
    pub fn is_settled(&self, backup_started_ns: i64) -> bool {
        let margin = 2_000_000_000;
        self.mtime_ns < backup_started_ns - margin && self.ctime_ns < backup_started_ns - margin
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedFile {
    pub stamp: FileStamp,
    pub content: Vec<BlobId>,
    /// The file had extended attributes. Setting or removing one changes
    /// the ctime, so a file with the same stamp and none then has none now,
    /// and the walk need not ask (one `llistxattr` a file saved).
    pub xattrs: bool,
}

/// Entries by path relative to the source root.
pub(crate) type FileCache = HashMap<Vec<u8>, CachedFile>;

/// Version 2 added the `xattrs` flag; a version-1 cache is not read (one
/// re-read of the source, then a new cache).
const MAGIC: &[u8; 8] = b"lbcache2";

/// The cache file of one source of one repository. Its name is keyed, so it
/// does not reveal which volume it describes.
pub(crate) fn cache_path(dir: &Path, repository_id: &str, keys: &Keys, source: &str) -> PathBuf {
    let name = hex::encode(&keys.blob_id(format!("file-cache\0{source}").as_bytes())[..16]);
    dir.join(repository_id).join(name)
}

/// Reads a cache file; anything missing, unreadable or not ours is an empty cache.
pub(crate) fn load(path: &Path, keys: &Keys) -> FileCache {
    std::fs::read(path)
        .ok()
        .and_then(|stored| keys.decrypt(&stored).ok())
        .and_then(|compressed| zstd::stream::decode_all(compressed.as_slice()).ok())
        .and_then(|plain| decode(&plain))
        .unwrap_or_default()
}

/// A cache being collected by a backup, encoded entry by entry as the walk
/// gives them: a third of the memory of holding the entries (path and id
/// vectors, a map's worth of headers) until the end.
pub(crate) struct NewCache {
    /// The cache file's plaintext so far; the entry count is filled in last.
    encoded: Vec<u8>,
    count: u64,
}

impl NewCache {
    pub fn new() -> NewCache {
        let mut encoded = Vec::with_capacity(1 << 16);
        encoded.extend_from_slice(MAGIC);
        encoded.extend_from_slice(&0u64.to_le_bytes());
        NewCache { encoded, count: 0 }
    }

    pub fn push(&mut self, path: &[u8], file: &CachedFile) {
        let out = &mut self.encoded;
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&file.stamp.size.to_le_bytes());
        out.extend_from_slice(&file.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&file.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&file.stamp.inode.to_le_bytes());
        out.push(u8::from(file.xattrs));
        out.extend_from_slice(&(file.content.len() as u32).to_le_bytes());
        for id in &file.content {
            out.extend_from_slice(id);
        }
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        let count = MAGIC.len()..MAGIC.len() + 8;
        self.encoded[count].copy_from_slice(&self.count.to_le_bytes());
        self.encoded
    }
}

/// Writes a cache file atomically. Best effort by design: a cache that cannot
/// be written only costs a re-read next time, so the caller ignores errors.
pub(crate) fn save(path: &Path, keys: &Keys, entries: NewCache) -> std::io::Result<()> {
    let plain = entries.finish();
    let compressed = zstd::bulk::compress(&plain, 1)?;
    let stored = keys.encrypt(&compressed);
    let dir = path.parent().expect("cache files live in a directory");
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temp, stored)?;
    std::fs::rename(&temp, path)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode(bytes: &[u8]) -> Option<FileCache> {
    let mut cursor = Cursor(bytes);
    if cursor.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let count = cursor.u64()? as usize;
    let mut cache = FileCache::with_capacity(count.min(bytes.len() / 44));
    for _ in 0..count {
        let path_len = cursor.u32()? as usize;
        let path = cursor.take(path_len)?.to_vec();
        let stamp = FileStamp {
            size: cursor.u64()?,
            mtime_ns: cursor.u64()? as i64,
            ctime_ns: cursor.u64()? as i64,
            inode: cursor.u64()?,
        };
        let xattrs = match cursor.take(1)? {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        let blobs = cursor.u32()? as usize;
        let content = (0..blobs)
            .map(|_| cursor.take(32).map(|id| id.try_into().expect("32 bytes")))
            .collect::<Option<Vec<BlobId>>>()?;
        cache.insert(
            path,
            CachedFile {
                stamp,
                content,
                xattrs,
            },
        );
    }
    cursor.0.is_empty().then_some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64) -> (Vec<u8>, CachedFile) {
        (
            path.as_bytes().to_vec(),
            CachedFile {
                stamp: FileStamp {
                    size,
                    mtime_ns: 1_700_000_000_123_456_789,
                    ctime_ns: -5,
                    inode: 42,
                },
                content: vec![[7; 32], [9; 32]],
                xattrs: size == 0,
            },
        )
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let keys = Keys::plaintext();
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "repo", &keys, "volume.a");
        let entries = vec![entry("a/b", 3), entry("ü/\u{1F600}", 0)];
        let encode = |entries: &[(Vec<u8>, CachedFile)]| {
            let mut new = NewCache::new();
            for (path, file) in entries {
                new.push(path, file);
            }
            new
        };
        save(&path, &keys, encode(&entries)).unwrap();
        let loaded = load(&path, &keys);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[b"a/b".as_slice()], entries[0].1);
        assert_eq!(loaded["ü/\u{1F600}".as_bytes()], entries[1].1);

        let mut truncated = encode(&entries).finish();
        truncated.pop();
        assert!(decode(&truncated).is_none());
        std::fs::write(&path, b"not a cache").unwrap();
        assert!(load(&path, &keys).is_empty());
    }
}
