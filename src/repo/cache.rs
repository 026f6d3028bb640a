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
use std::io::Read;
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
        FileStamp::of_stat(&super::walk::Stat::from(meta))
    }

    pub fn of_stat(stat: &super::walk::Stat) -> FileStamp {
        FileStamp {
            size: stat.size,
            mtime_ns: stat.mtime * 1_000_000_000 + stat.mtime_nsec,
            ctime_ns: stat.ctime * 1_000_000_000 + stat.ctime_nsec,
            inode: stat.ino,
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

/// The previous backup's cache, read as the walk goes. The cache was
/// written in walk order, so it is read as a stream beside the walk (a
/// merge of two sorted lists) instead of held whole: its memory is one
/// decrypted piece, the decompressor's window and one entry, whatever the
/// number of files (held whole, a re-run of 1,000,000 files kept some
/// 200 MB of it).
///
/// Anything missing, unreadable or not ours reads as no entries; a piece
/// that is damaged, foreign or out of order ends the entries there. Every
/// entry given was sealed by this repository's keys and is still only a
/// hint (its stamp and blobs are checked), so a cut-short cache costs
/// re-reads, never a wrong snapshot.
pub(crate) struct PreviousCache<'k> {
    entries: Option<zstd::stream::read::Decoder<'static, std::io::BufReader<PieceReader<'k>>>>,
    /// The entry read ahead: the first not yet passed by the walk.
    ahead: Option<(Vec<u8>, CachedFile)>,
    read: u64,
    /// The end marker was read, its count matched and nothing followed.
    complete: bool,
}

impl<'k> PreviousCache<'k> {
    /// No previous cache: every file is read.
    pub fn empty() -> PreviousCache<'k> {
        PreviousCache {
            entries: None,
            ahead: None,
            read: 0,
            complete: false,
        }
    }

    pub fn open(path: &Path, keys: &'k Keys) -> PreviousCache<'k> {
        let mut cache = PreviousCache::empty();
        let pieces = std::fs::File::open(path).map(|file| PieceReader {
            keys,
            file: std::io::BufReader::new(file),
            piece: Vec::new(),
            at: 0,
            number: 0,
            last: false,
        });
        if let Ok(pieces) = pieces {
            cache.entries = zstd::stream::read::Decoder::new(pieces).ok();
            let mut magic = [0; MAGIC.len()];
            if cache.read_exact(&mut magic).is_none() || &magic != MAGIC {
                cache.entries = None;
            }
        }
        cache
    }

    /// The entry of `path`, for a walk that asks in its order (sorted
    /// names, each directory before what it holds): entries before `path`
    /// are passed for good, so asking for an earlier path finds nothing.
    pub fn get(&mut self, path: &[u8]) -> Option<CachedFile> {
        loop {
            if self.ahead.is_none() {
                self.ahead = Some(self.next_entry()?);
            }
            let (ahead, _) = self.ahead.as_ref().expect("read ahead");
            match walk_order(ahead, path) {
                std::cmp::Ordering::Less => self.ahead = None,
                std::cmp::Ordering::Equal => return self.ahead.take().map(|(_, file)| file),
                std::cmp::Ordering::Greater => return None,
            }
        }
    }

    /// The next entry of the stream; `None` at its end or at damage (after
    /// which nothing more is read).
    fn next_entry(&mut self) -> Option<(Vec<u8>, CachedFile)> {
        let entry = self.decode_entry();
        if entry.is_none() {
            self.entries = None;
        }
        entry
    }

    fn decode_entry(&mut self) -> Option<(Vec<u8>, CachedFile)> {
        let path_len = self.u32()?;
        if path_len == END {
            let count = self.u64()?;
            let mut after = [0; 1];
            let ended = self.entries.as_mut()?.read(&mut after).ok()? == 0;
            self.complete = ended && count == self.read && self.entries_end();
            return None;
        }
        // A path longer than Linux allows is damage, not an allocation.
        if path_len > 4096 {
            return None;
        }
        let mut path = vec![0; path_len as usize];
        self.read_exact(&mut path)?;
        let stamp = FileStamp {
            size: self.u64()?,
            mtime_ns: self.u64()? as i64,
            ctime_ns: self.u64()? as i64,
            inode: self.u64()?,
        };
        let mut flag = [0; 1];
        self.read_exact(&mut flag)?;
        let xattrs = match flag {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        let blobs = self.u32()?;
        let mut content = Vec::new();
        for _ in 0..blobs {
            let mut id = [0; 32];
            self.read_exact(&mut id)?;
            content.push(id);
        }
        self.read += 1;
        Some((
            path,
            CachedFile {
                stamp,
                content,
                xattrs,
            },
        ))
    }

    /// Whether the pieces ended where the entries did: the last piece was
    /// read and the file holds nothing after it.
    fn entries_end(&mut self) -> bool {
        let Some(decoder) = self.entries.as_mut() else {
            return false;
        };
        let pieces = decoder.get_mut().get_mut();
        let mut after = [0; 1];
        pieces.last
            && pieces.at == pieces.piece.len()
            && pieces.file.read(&mut after).ok() == Some(0)
    }

    fn read_exact(&mut self, into: &mut [u8]) -> Option<()> {
        self.entries.as_mut()?.read_exact(into).ok()
    }

    fn u32(&mut self) -> Option<u32> {
        let mut bytes = [0; 4];
        self.read_exact(&mut bytes)?;
        Some(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut bytes = [0; 8];
        self.read_exact(&mut bytes)?;
        Some(u64::from_le_bytes(bytes))
    }
}

/// The order of a sorted walk: component by component, so a directory's
/// entries come right after it (`a`, `a/b`, `a-c`, though `-` sorts
/// before `/`).
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// The compressed stream of a cache file, one piece decrypted at a time:
/// a piece damaged, foreign or out of order is an error, and nothing
/// follows the last one.
struct PieceReader<'k> {
    keys: &'k Keys,
    file: std::io::BufReader<std::fs::File>,
    piece: Vec<u8>,
    /// How much of `piece` was read.
    at: usize,
    /// The number the next piece must have.
    number: u64,
    last: bool,
}

impl PieceReader<'_> {
    /// Reads, decrypts and checks the next piece into `self.piece`.
    fn next_piece(&mut self) -> std::io::Result<()> {
        let damaged = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut length = [0; 4];
        self.file.read_exact(&mut length)?;
        let length = u32::from_le_bytes(length) as usize;
        // Pieces are sealed once past PIECE bytes: a longer one is damage.
        if length > 2 * PIECE {
            return Err(damaged("a cache piece longer than written"));
        }
        let mut sealed = vec![0; length];
        self.file.read_exact(&mut sealed)?;
        let plain = self
            .keys
            .decrypt(&sealed)
            .map_err(|_| damaged("a cache piece not sealed by this repository"))?;
        let mut header = Cursor(&plain);
        if header.u64() != Some(self.number) {
            return Err(damaged("a cache piece out of order"));
        }
        self.last = match header.take(1) {
            Some([0]) => false,
            Some([1]) => true,
            _ => return Err(damaged("a cache piece without its flag")),
        };
        self.number += 1;
        self.piece = plain;
        self.at = 9;
        Ok(())
    }
}

impl Read for PieceReader<'_> {
    fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.piece.len() {
            if self.last {
                return Ok(0);
            }
            self.next_piece()?;
        }
        let n = into.len().min(self.piece.len() - self.at);
        into[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
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

    #[cfg(test)]
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every entry of a cache file, or none unless it is whole (its end
    /// marker, count and last piece all read).
    fn load(path: &Path, keys: &Keys) -> HashMap<Vec<u8>, CachedFile> {
        let mut cache = PreviousCache::open(path, keys);
        let entries: HashMap<_, _> = std::iter::from_fn(|| cache.next_entry()).collect();
        if cache.complete {
            entries
        } else {
            HashMap::new()
        }
    }

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

    /// A re-run reads the previous cache beside the walk: at most one
    /// piece decrypted at a time, half-way through the walk only about
    /// half the pieces read, and every entry found when asked in walk
    /// order, also when the walk asks for paths the cache does not hold.
    #[test]
    fn the_previous_cache_is_read_in_step_with_the_walk_one_piece_at_a_time() {
        let keys = Keys::random();
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "repo", &keys, "volume.big");
        let mut new = NewCache::new(Some(&path), &keys);
        let files = 200_000u64;
        // Walk order: each directory's files (sorted) after its name.
        let name = |n: u64| format!("dir{:03}/file{:06}", n / 1000, n % 1000);
        for n in 0..files {
            let (_, mut file) = entry("x", n);
            file.content = vec![keys.blob_id(&n.to_le_bytes())];
            new.push(name(n).as_bytes(), &file);
        }
        let pieces = new.encoder.as_ref().unwrap().get_ref().number + 1;
        assert!(pieces >= 4, "{pieces} pieces");
        save(&path, new).unwrap();

        let mut previous = PreviousCache::open(&path, &keys);
        let mut largest_piece = 0;
        for n in 0..files {
            // A new file before each tenth one: not in the cache.
            if n % 10 == 0 {
                let added = format!("dir{:03}/file{:06}-new", n / 1000, n % 1000);
                let before = name(n).into_bytes();
                assert!(walk_order(added.as_bytes(), &before).is_gt());
                assert_eq!(previous.get(before.as_slice()).unwrap().stamp.size, n);
                assert!(previous.get(added.as_bytes()).is_none());
                continue;
            }
            // Every third file was removed from the tree: never asked.
            if n % 3 == 0 {
                continue;
            }
            let found = previous.get(name(n).as_bytes()).unwrap();
            assert_eq!(found.stamp.size, n);
            assert_eq!(found.content, vec![keys.blob_id(&n.to_le_bytes())]);
            let pieces_read = previous.entries.as_ref().unwrap().get_ref().get_ref();
            largest_piece = largest_piece.max(pieces_read.piece.capacity());
            if n == files / 2 {
                assert!(
                    pieces_read.number <= pieces / 2 + 1,
                    "{} of {pieces} pieces read half-way",
                    pieces_read.number
                );
            }
        }
        assert!(largest_piece <= 2 * PIECE, "{largest_piece} bytes held");
        // Past the end: nothing, and an earlier path is not found again.
        assert!(previous.get(b"zzz").is_none());
        assert!(previous.get(name(5).as_bytes()).is_none());
    }

    #[test]
    fn walk_order_puts_a_directory_s_entries_right_after_it() {
        let keys = Keys::plaintext();
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "repo", &keys, "volume.a");
        let walked = ["a", "a/b", "a/b/c", "a-c", "a.d", "b"];
        let mut new = NewCache::new(Some(&path), &keys);
        for (size, walked) in walked.iter().enumerate() {
            new.push(walked.as_bytes(), &entry(walked, size as u64).1);
        }
        save(&path, new).unwrap();
        let mut previous = PreviousCache::open(&path, &keys);
        for (size, walked) in walked.iter().enumerate() {
            assert_eq!(
                previous.get(walked.as_bytes()).map(|f| f.stamp.size),
                Some(size as u64),
                "{walked}"
            );
        }
        assert!(previous.next_entry().is_none());
        assert!(previous.complete);
        assert!(
            PreviousCache::open(&dir.path().join("none"), &keys)
                .get(b"a")
                .is_none()
        );
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
