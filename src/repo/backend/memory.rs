//! A backend in memory, for tests. Follows the contract in [`super`].

use super::{Backend, FileKind};
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryBackend {
    files: Mutex<BTreeMap<(FileKind, String), Vec<u8>>>,
}

fn not_found(kind: FileKind, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{kind:?} {name} not found"),
    )
}

pub(crate) fn slice(data: &[u8], range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
    match range {
        None => Ok(data.to_vec()),
        Some(range) if range.end as usize <= data.len() && range.start <= range.end => {
            Ok(data[range.start as usize..range.end as usize].to_vec())
        }
        Some(range) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("range {range:?} is past the end ({} bytes)", data.len()),
        )),
    }
}

impl MemoryBackend {
    /// Changes a stored file in place (tests use it to simulate corruption).
    pub fn tamper(&self, kind: FileKind, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
        let mut files = self.files.lock().unwrap();
        change(
            files
                .get_mut(&(kind, name.to_string()))
                .expect("file exists"),
        );
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.files
            .lock()
            .unwrap()
            .insert((kind, name.to_string()), data.to_vec());
        Ok(())
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        let data = files
            .get(&(kind, name.to_string()))
            .ok_or_else(|| not_found(kind, name))?;
        slice(data, range)
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        let files = self.files.lock().unwrap();
        files
            .get(&(kind, name.to_string()))
            .map(|d| d.len() as u64)
            .ok_or_else(|| not_found(kind, name))
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        let files = self.files.lock().unwrap();
        Ok(files
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.files
            .lock()
            .unwrap()
            .remove(&(kind, name.to_string()))
            .map(|_| ())
            .ok_or_else(|| not_found(kind, name))
    }

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.files.lock().unwrap().is_empty())
    }
}
