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
//! A backup writes the new cache as the walk goes, compressed and encrypted
//! in pieces to a temporary file beside the old one, so its memory does not
//! grow with the number of files (held whole, it was the largest per-file
//! cost of a first backup: 168 bytes a file at 50,000 files).
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

/// Version 2 added the `xattrs` flag; version 3 writes the entries first
/// and their count after them (the file is written as the walk goes), in
/// pieces encrypted one by one. An older cache is not read (one re-read of
/// the source, then a new cache).
const MAGIC: &[u8; 8] = b"lbcache3";
/// The path length that marks the end of the entries (their count follows).
const END: u32 = u32::MAX;
/// Compressed bytes per encrypted piece of a cache file.
const PIECE: usize = 1 << 20;

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
        .and_then(|stored| unseal_pieces(&stored, keys))
        .and_then(|compressed| zstd::stream::decode_all(compressed.as_slice()).ok())
        .and_then(|plain| decode(&plain))
        .unwrap_or_default()
}

/// The compressed stream of a cache file: its pieces decrypted and joined,
/// or `None` when one is damaged, foreign, out of order or missing.
fn unseal_pieces(stored: &[u8], keys: &Keys) -> Option<Vec<u8>> {
    let mut cursor = Cursor(stored);
    let mut joined = Vec::new();
    for number in 0u64.. {
        let length = cursor.u32()? as usize;
        let piece = keys.decrypt(cursor.take(length)?).ok()?;
        let mut piece = Cursor(&piece);
        if piece.u64()? != number {
            return None;
        }
        let last = piece.take(1)? == [1];
        joined.extend_from_slice(piece.0);
        if last {
            return cursor.0.is_empty().then_some(joined);
        }
    }
    None
}

/// The encrypted file being written: compressed bytes gathered into a
/// piece, each full piece sealed with its number (so pieces cannot be
/// reordered or dropped unnoticed) and appended.
struct Pieces<'k> {
    keys: &'k Keys,
    file: std::fs::File,
    pending: Vec<u8>,
    number: u64,
}

impl Pieces<'_> {
    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        use std::io::Write;
        let mut plain = Vec::with_capacity(9 + self.pending.len());
        plain.extend_from_slice(&self.number.to_le_bytes());
        plain.push(u8::from(last));
        plain.append(&mut self.pending);
        let sealed = self.keys.encrypt(&plain);
        self.file.write_all(&(sealed.len() as u32).to_le_bytes())?;
        self.file.write_all(&sealed)?;
        self.number += 1;
        Ok(())
    }
}

impl std::io::Write for Pieces<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= PIECE {
            self.seal(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A cache being written by a backup, entry by entry as the walk gives
/// them, to a temporary file that [`save`] puts in place. Its memory is a
/// piece and the compressor's window, whatever the number of files.
pub(crate) struct NewCache<'k> {
    /// `None` when there is nothing to write to, or writing failed (the
    /// next backup then reads every file again: the cache is only a hint).
    encoder: Option<zstd::stream::write::Encoder<'static, Pieces<'k>>>,
    temp: Option<PathBuf>,
    count: u64,
}

impl<'k> NewCache<'k> {
    /// A new cache to be saved at `path`; `None` collects nothing.
    pub fn new(path: Option<&Path>, keys: &'k Keys) -> NewCache<'k> {
        let mut new = NewCache {
            encoder: None,
            temp: None,
            count: 0,
        };
        if let Some(path) = path {
            let temp = path.with_extension(format!(
                "tmp-{}-{}",
                std::process::id(),
                hex::encode(rand::random::<[u8; 4]>())
            ));
            let started = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(&temp));
            if let Ok(file) = started {
                new.temp = Some(temp);
                let pieces = Pieces {
                    keys,
                    file,
                    pending: Vec::with_capacity(PIECE + (64 << 10)),
                    number: 0,
                };
                new.encoder = zstd::stream::write::Encoder::new(pieces, 1).ok();
                new.write(MAGIC);
            }
        }
        new
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if let Some(encoder) = &mut self.encoder
            && encoder.write_all(bytes).is_err()
        {
            self.encoder = None;
        }
    }

    pub fn push(&mut self, path: &[u8], file: &CachedFile) {
        if self.encoder.is_none() {
            return;
        }
        let mut out = Vec::with_capacity(path.len() + 45 + 32 * file.content.len());
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
        self.write(&out);
        self.count += 1;
    }

    /// Ends the entries and the file; returns the temporary file's path.
    fn finish(mut self) -> std::io::Result<PathBuf> {
        let mut end = END.to_le_bytes().to_vec();
        end.extend_from_slice(&self.count.to_le_bytes());
        self.write(&end);
        let (Some(encoder), Some(temp)) = (self.encoder.take(), self.temp.take()) else {
            return Err(std::io::Error::other("the new file cache was not written"));
        };
        let written = encoder.finish().and_then(|mut pieces| {
            pieces.seal(true)?;
            pieces.file.sync_all()
        });
        match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }
}

impl Drop for NewCache<'_> {
    /// A backup that failed leaves no temporary file behind.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Puts a new cache file in place atomically. Best effort by design: a cache
/// that cannot be written only costs a re-read next time, so the caller
/// ignores errors.
pub(crate) fn save(path: &Path, entries: NewCache) -> std::io::Result<()> {
    let temp = entries.finish()?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
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
    let mut cache = FileCache::new();
    for read in 0u64.. {
        let path_len = cursor.u32()?;
        if path_len == END {
            let count = cursor.u64()?;
            return (cursor.0.is_empty() && count == read).then_some(cache);
        }
        let path = cursor.take(path_len as usize)?.to_vec();
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
    None
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
        let mut new = NewCache::new(Some(&path), &keys);
        for (path, file) in &entries {
            new.push(path, file);
        }
        save(&path, new).unwrap();
        let loaded = load(&path, &keys);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[b"a/b".as_slice()], entries[0].1);
        assert_eq!(loaded["ü/\u{1F600}".as_bytes()], entries[1].1);
        // Only the cache file is left: no temporary one.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        let stored = std::fs::read(&path).unwrap();
        let plain =
            zstd::stream::decode_all(unseal_pieces(&stored, &keys).unwrap().as_slice()).unwrap();
        let mut truncated = plain.clone();
        truncated.pop();
        assert!(decode(&truncated).is_none());
        assert!(
            decode(&plain[..plain.len() - 12]).is_none(),
            "no end marker"
        );
        std::fs::write(&path, &stored[..stored.len() - 1]).unwrap();
        assert!(load(&path, &keys).is_empty());
        std::fs::write(&path, b"not a cache").unwrap();
        assert!(load(&path, &keys).is_empty());
    }

    /// A backup of many files holds one piece of the new cache at a time:
    /// what it keeps does not grow with the files, and pieces taken out of
    /// order or dropped make the whole cache unreadable (a re-read, never
    /// a wrong entry).
    #[test]
    fn a_new_cache_is_written_in_pieces_of_bounded_memory() {
        let keys = Keys::random();
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "repo", &keys, "volume.big");
        let mut new = NewCache::new(Some(&path), &keys);
        let mut largest_pending = 0;
        let files = 200_000u64;
        for n in 0..files {
            let (_, mut file) = entry("x", n);
            // Content ids do not compress: the file is several pieces.
            file.content = vec![keys.blob_id(&n.to_le_bytes())];
            new.push(format!("dir{}/file{n}", n % 97).as_bytes(), &file);
            let pieces = new.encoder.as_ref().unwrap().get_ref();
            largest_pending = largest_pending.max(pieces.pending.capacity());
        }
        let pieces = new.encoder.as_ref().unwrap().get_ref().number;
        assert!(pieces >= 4, "{pieces} pieces");
        assert!(
            largest_pending <= PIECE + (64 << 10),
            "{largest_pending} bytes pending"
        );
        save(&path, new).unwrap();
        assert_eq!(load(&path, &keys).len() as u64, files);

        // The first two pieces swapped.
        let stored = std::fs::read(&path).unwrap();
        let first = 4 + u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
        let second =
            first + 4 + u32::from_le_bytes(stored[first..first + 4].try_into().unwrap()) as usize;
        let mut swapped = stored[first..second].to_vec();
        swapped.extend_from_slice(&stored[..first]);
        swapped.extend_from_slice(&stored[second..]);
        std::fs::write(&path, &swapped).unwrap();
        assert!(load(&path, &keys).is_empty());
        // The last piece dropped.
        let mut cut = Cursor(&stored);
        let mut last_start = 0;
        while !cut.0.is_empty() {
            last_start = stored.len() - cut.0.len();
            let length = cut.u32().unwrap() as usize;
            cut.take(length).unwrap();
        }
        std::fs::write(&path, &stored[..last_start]).unwrap();
        assert!(load(&path, &keys).is_empty());
    }

    #[test]
    fn a_cache_without_a_path_collects_nothing_and_a_dropped_one_leaves_no_file() {
        let keys = Keys::plaintext();
        let mut nowhere = NewCache::new(None, &keys);
        nowhere.push(b"a", &entry("a", 1).1);
        assert!(nowhere.encoder.is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "repo", &keys, "volume.a");
        let mut failed = NewCache::new(Some(&path), &keys);
        failed.push(b"a", &entry("a", 1).1);
        drop(failed);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            0
        );
    }
}
