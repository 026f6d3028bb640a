//! A backend in a local directory. Follows the contract in [`super`]:
//! every save is temp file + fsync + rename + directory fsync. Packs fan out
//! into `data/xx/` by their first two hex digits so no directory grows huge.
//! Listings show everything a directory holds, temporary files included;
//! a file in a `data/xx/` it does not belong in is listed as `xx/name`.
//! Temporary files a killed process left are removed by their listed name
//! ([`Backend::remove_temporary`]), and no other name is.

use super::{Backend, FileKind, StreamedPack, layout_dir, not_temporary, temporary_path};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, kind: FileKind, name: &str) -> PathBuf {
        layout_dir(&self.root, kind, name)
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.dir(kind, name).join(name)
    }

    /// Temp file + `write` + fsync + rename + directory fsync (the contract
    /// in [`super`]).
    fn save_writing(
        &self,
        kind: FileKind,
        name: &str,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let dir = self.dir(kind, name);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let temporary = dir.join(format!(".{name}{}", temporary_suffix()));
        let written = (|| {
            let mut file = create_temporary(&temporary)?;
            write(&mut file)?;
            file.sync_all()?;
            fs::rename(&temporary, dir.join(name))?;
            sync_dir(&dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }
}

/// Unique per save, not only per process: two threads saving one name
/// must not write into each other's temporary file.
fn temporary_suffix() -> String {
    static SAVES: AtomicU64 = AtomicU64::new(0);
    format!(
        ".tmp-{}-{}",
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    )
}

fn create_temporary(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// A pack streamed into a temporary file of `data/` itself (which pack
/// listings do not read: only its `xx/` directories), renamed into its
/// `data/xx/` once its name is known.
struct StreamedFile {
    root: PathBuf,
    temporary: PathBuf,
    /// Blobs of small files come a few KB at a time: written in pieces.
    file: Option<io::BufWriter<File>>,
}

/// What a streamed pack's writes are gathered into.
const STREAM_BUFFER: usize = 256 << 10;

impl StreamedPack for StreamedFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("open until committed")
            .write_all(bytes)
    }

    fn commit(mut self: Box<Self>, name: &str) -> io::Result<()> {
        let file = self.file.take().expect("open until committed");
        let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        let dir = layout_dir(&self.root, FileKind::Pack, name);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            sync_dir(&self.root.join(FileKind::Pack.dir()))?;
        }
        fs::rename(&self.temporary, dir.join(name))?;
        // Renamed: nothing for the drop to remove.
        self.temporary = PathBuf::new();
        sync_dir(&dir)
    }
}

impl Drop for StreamedFile {
    fn drop(&mut self) {
        if !self.temporary.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.save_writing(kind, name, |file| file.write_all(data))
    }

    /// The bytes are released once written, before the fsync: that wait is
    /// most of a pack's save, and a backup's uploading packs held through
    /// it were a third of its peak memory.
    fn save_owned(&self, kind: FileKind, name: &str, data: Vec<u8>) -> io::Result<()> {
        self.save_writing(kind, name, move |file| {
            file.write_all(&data)?;
            drop(data);
            Ok(())
        })
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.path(kind, name))?;
        match range {
            None => {
                let mut data = Vec::new();
                file.read_to_end(&mut data)?;
                Ok(data)
            }
            Some(range) => {
                // A range comes from index data, which is untrusted: one past
                // the end of the file is refused before its bytes are reserved.
                if range.end > file.metadata()?.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("range {range:?} ends past the end of {name}"),
                    ));
                }
                // A reused buffer (its pages touched already): a restore
                // reads its packs' stored bytes into them and hands them
                // back once decoded ([`crate::repo::coalesce::Prefetched`]).
                let length = range.end.saturating_sub(range.start) as usize;
                let mut data = crate::repo::recycle::take(length);
                data.resize(length, 0);
                file.seek(SeekFrom::Start(range.start))?;
                file.read_exact(&mut data)?;
                Ok(data)
            }
        }
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(kind, name))?.len())
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        let read = |dir: &Path| -> io::Result<Vec<(String, bool)>> {
            match fs::read_dir(dir) {
                Ok(entries) => entries
                    .map(|e| {
                        let e = e?;
                        Ok((
                            e.file_name().to_string_lossy().into_owned(),
                            e.file_type()?.is_dir(),
                        ))
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let base = self.root.join(kind.dir());
        let mut names = Vec::new();
        match kind {
            FileKind::Config => {
                if self.root.join("config").is_file() {
                    names.push("config".to_string());
                }
            }
            FileKind::Pack => {
                for (sub, is_dir) in read(&base)? {
                    if !is_dir {
                        // A file of `data/` itself: no pack (those live in
                        // `data/xx/`), but a streamed pack's temporary file
                        // that a killed backup left, listed so that
                        // `check` says it is there.
                        names.push(sub);
                    } else {
                        for (name, is_dir) in read(&base.join(&sub))? {
                            if is_dir {
                                continue;
                            }
                            // Not where its name puts it: no name reaches it, so
                            // it is listed by its place (which no pack name is).
                            if name.get(..2) == Some(sub.as_str()) {
                                names.push(name);
                            } else {
                                names.push(format!("{sub}/{name}"));
                            }
                        }
                    }
                }
            }
            _ => {
                for (name, is_dir) in read(&base)? {
                    if !is_dir {
                        names.push(name);
                    }
                }
            }
        }
        Ok(names)
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(kind, name))?;
        sync_dir(&self.dir(kind, name))
    }

    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        match temporary_path(&self.root, kind, name) {
            Some(path) => Ok(Some(fs::symlink_metadata(path)?.len())),
            None => Ok(None),
        }
    }

    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        let path =
            temporary_path(&self.root, kind, name).ok_or_else(|| not_temporary(kind, name))?;
        fs::remove_file(&path)?;
        sync_dir(path.parent().expect("in a directory"))
    }

    fn is_empty(&self) -> io::Result<bool> {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn create_streamed_pack(&self) -> io::Result<Option<Box<dyn StreamedPack>>> {
        let data = self.root.join(FileKind::Pack.dir());
        if !data.is_dir() {
            fs::create_dir_all(&data)?;
            sync_dir(&self.root)?;
        }
        let temporary = data.join(format!(".pack{}", temporary_suffix()));
        let file = create_temporary(&temporary)?;
        Ok(Some(Box::new(StreamedFile {
            root: self.root.clone(),
            temporary,
            file: Some(io::BufWriter::with_capacity(STREAM_BUFFER, file)),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_files(root: &Path) -> Vec<String> {
        fs::read_dir(root.join("data"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect()
    }

    /// A streamed pack is invisible while written, then whole under the
    /// name it is given, with nothing left beside it.
    #[test]
    fn a_streamed_pack_appears_whole_under_its_name_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let mut pack = backend.create_streamed_pack().unwrap().unwrap();
        pack.write_all(b"first blob, ").unwrap();
        pack.write_all(&vec![7u8; 3 * STREAM_BUFFER]).unwrap();
        // Listed while written, but as no pack name.
        let listed = backend.list(FileKind::Pack).unwrap();
        assert!(
            listed
                .iter()
                .all(|n| !crate::repo::is_file_name(FileKind::Pack, n))
        );
        let name = "ab".repeat(32);
        pack.commit(&name).unwrap();
        assert_eq!(backend.list(FileKind::Pack).unwrap(), vec![name.clone()]);
        let mut expected = b"first blob, ".to_vec();
        expected.extend(vec![7u8; 3 * STREAM_BUFFER]);
        assert!(backend.load(FileKind::Pack, &name, None).unwrap() == expected);
        assert!(temporary_files(dir.path()).is_empty());
    }

    /// A streamed pack left by a killed backup (no drop ran) is listed,
    /// as no pack name, so that `check` reports it.
    #[test]
    fn a_streamed_pack_left_by_a_killed_backup_is_listed_as_no_pack() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let mut pack = backend.create_streamed_pack().unwrap().unwrap();
        pack.write_all(&[1u8; 1000]).unwrap();
        std::mem::forget(pack);
        let listed = backend.list(FileKind::Pack).unwrap();
        assert_eq!(listed, temporary_files(dir.path()));
        assert_eq!(listed.len(), 1);
        assert!(!crate::repo::is_file_name(FileKind::Pack, &listed[0]));
    }

    /// The temporary files killed saves leave, in `data/`, `data/xx/` and
    /// another kind's directory, are removed by the names `list` gives
    /// them; a real pack and a file put there by hand are refused and stay.
    #[test]
    fn only_temporary_files_are_removed_as_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let mut pack = backend.create_streamed_pack().unwrap().unwrap();
        // Past the buffer: on disk when the process dies.
        pack.write_all(&vec![1u8; 2 * STREAM_BUFFER]).unwrap();
        std::mem::forget(pack);
        let real = "ab".repeat(32);
        backend.save(FileKind::Pack, &real, b"pack").unwrap();
        fs::write(dir.path().join(format!("data/ab/.{real}.tmp-7-3")), b"half").unwrap();
        fs::write(dir.path().join("data/ab/notes.txt"), b"mine").unwrap();
        fs::write(dir.path().join("data/.notes"), b"mine").unwrap();
        let index = "cd".repeat(32);
        fs::create_dir_all(dir.path().join("index")).unwrap();
        fs::write(dir.path().join(format!("index/.{index}.tmp-7-4")), b"idx").unwrap();

        let temporary = |kind| {
            let mut names: Vec<String> = backend
                .list(kind)
                .unwrap()
                .into_iter()
                .filter(|name| backend.stat_temporary(kind, name).unwrap().is_some())
                .collect();
            names.sort();
            names
        };
        let packs = temporary(FileKind::Pack);
        assert_eq!(packs.len(), 2, "{packs:?}");
        assert!(packs[0].starts_with(".pack.tmp-"), "{packs:?}");
        assert_eq!(packs[1], format!("ab/.{real}.tmp-7-3"));
        assert_eq!(
            backend.stat_temporary(FileKind::Pack, &packs[0]).unwrap(),
            Some(2 * STREAM_BUFFER as u64)
        );
        let indexes = temporary(FileKind::Index);
        assert_eq!(indexes, vec![format!(".{index}.tmp-7-4")]);

        // Neither a repository file nor a file put there by hand, nor a
        // path out of the kind's directory, is one.
        for (kind, name) in [
            (FileKind::Pack, real.as_str()),
            (FileKind::Pack, "ab/notes.txt"),
            (FileKind::Pack, ".notes"),
            (FileKind::Pack, "../index/.x.tmp-1-2"),
            (FileKind::Index, "../data/.pack.tmp-1-2"),
            (FileKind::Config, ".config.tmp-1-2"),
        ] {
            assert_eq!(backend.stat_temporary(kind, name).unwrap(), None, "{name}");
            let refused = backend.remove_temporary(kind, name).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{name}");
        }

        for name in &packs {
            backend.remove_temporary(FileKind::Pack, name).unwrap();
        }
        backend
            .remove_temporary(FileKind::Index, &indexes[0])
            .unwrap();
        let gone = backend
            .remove_temporary(FileKind::Index, &indexes[0])
            .unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert!(temporary(FileKind::Pack).is_empty());
        assert!(temporary(FileKind::Index).is_empty());
        assert_eq!(backend.load(FileKind::Pack, &real, None).unwrap(), b"pack");
        assert!(dir.path().join("data/ab/notes.txt").is_file());
        assert!(dir.path().join("data/.notes").is_file());
    }

    /// A streamed pack dropped before its commit (a failed backup) leaves
    /// no file behind.
    #[test]
    fn a_streamed_pack_dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let mut pack = backend.create_streamed_pack().unwrap().unwrap();
        pack.write_all(&[1u8; 1000]).unwrap();
        assert_eq!(temporary_files(dir.path()).len(), 1);
        drop(pack);
        assert!(temporary_files(dir.path()).is_empty());
        assert!(backend.list(FileKind::Pack).unwrap().is_empty());
    }
}
