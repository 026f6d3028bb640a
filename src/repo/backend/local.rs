//! A backend in a local directory. Follows the contract in [`super`]:
//! every save is temp file + fsync + rename + directory fsync. Packs fan out
//! into `data/xx/` by their first two hex digits so no directory grows huge.
//! Listings show everything a directory holds, temporary files included;
//! a file in a `data/xx/` it does not belong in is listed as `xx/name`.

use super::{Backend, FileKind, layout_dir};
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
        // Unique per save, not only per process: two threads saving one
        // name must not write into each other's temporary file.
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let temporary = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            SAVES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)?;
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
                    if is_dir {
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

    fn is_empty(&self) -> io::Result<bool> {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }
}
