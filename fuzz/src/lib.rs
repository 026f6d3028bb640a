//! What the repository fuzz targets share: a small repository on the
//! in-memory backend (two snapshots of a little volume, built once per
//! process and copied for each input), one file of it changed as the input
//! says, and the commands that read a repository run over the result.

use lifeboat::repo::backend::memory::MemoryBackend;
use lifeboat::repo::{
    Backend, CheckOptions, FileKind, ReadData, RepoOptions, Repository, SnapshotSource,
};
use std::sync::{Arc, OnceLock};

pub const PASSPHRASE: &str = "fuzz";

/// Every file of a repository: kind, name, bytes.
pub type Files = Vec<(FileKind, String, Vec<u8>)>;

/// The files of a fresh repository holding two snapshots, encrypted or not.
pub fn pristine(encrypted: bool) -> &'static Files {
    static PLAIN: OnceLock<Files> = OnceLock::new();
    static ENCRYPTED: OnceLock<Files> = OnceLock::new();
    let cell = if encrypted { &ENCRYPTED } else { &PLAIN };
    cell.get_or_init(|| build(encrypted.then_some(PASSPHRASE)))
}

fn build(passphrase: Option<&str>) -> Files {
    let backend = Arc::new(MemoryBackend::default());
    Repository::init(backend.clone(), passphrase).expect("init in memory");
    let repository = Repository::open(backend.clone(), passphrase, RepoOptions::default())
        .expect("open what was just made");
    for generation in 0..2u8 {
        let source = SnapshotSource {
            resource: "volume.data".into(),
            kind: "volume".into(),
            name: "data".into(),
            ..SnapshotSource::default()
        };
        repository
            .backup_tar(volume(generation).as_slice(), source, &|_| {})
            .expect("back up the sample volume");
    }
    let mut files = Vec::new();
    for kind in FileKind::ALL {
        for name in backend.list(kind).expect("list") {
            let bytes = backend.load(kind, &name, None).expect("load");
            files.push((kind, name, bytes));
        }
    }
    files
}

/// A Docker archive stream of a little volume: a directory, a few files
/// (one spanning several chunks), a symlink, a hard link.
fn volume(generation: u8) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).expect("link name");
        }
        tar.append_data(&mut header, path, data).expect("tar entry");
    };
    add("data/", tar::EntryType::Directory, b"", None);
    add(
        "data/a.txt",
        tar::EntryType::Regular,
        &[b'a', generation],
        None,
    );
    add("data/dir/", tar::EntryType::Directory, b"", None);
    // Over the chunker's minimum, so it spans chunks; the same in both
    // generations, so the second snapshot shares its blobs.
    let big: Vec<u8> = (0..1_200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    add("data/dir/big.bin", tar::EntryType::Regular, &big, None);
    add("data/link", tar::EntryType::Symlink, b"", Some("a.txt"));
    add("data/hard", tar::EntryType::Link, b"", Some("data/a.txt"));
    tar.into_inner().expect("finish the tar stream")
}

/// A backend holding `files` with one of those `chosen` changed by `input`:
/// the first byte picks the file, the second how (replace it, overwrite or
/// insert at the offset in the next two bytes, counted from the end when the
/// second byte says so, truncate there, or add a stray file of the same
/// kind); the rest is the new content.
pub fn tampered(
    files: &Files,
    chosen: impl Fn(FileKind) -> bool,
    input: &[u8],
) -> Arc<MemoryBackend> {
    let backend = Arc::new(MemoryBackend::default());
    for (kind, name, bytes) in files {
        backend.save(*kind, name, bytes).expect("save in memory");
    }
    let [which, how, high, low, content @ ..] = input else {
        return backend;
    };
    let candidates: Vec<_> = files.iter().filter(|(kind, _, _)| chosen(*kind)).collect();
    let Some((kind, name, bytes)) = candidates
        .get(usize::from(*which) % candidates.len().max(1))
        .copied()
    else {
        return backend;
    };
    let offset = usize::from(u16::from_be_bytes([*high, *low])).min(bytes.len());
    let offset = if how / 5 % 2 == 1 {
        bytes.len() - offset
    } else {
        offset
    };
    let mut changed = bytes.clone();
    match how % 5 {
        0 => changed = content.to_vec(),
        1 => {
            let end = (offset + content.len()).min(changed.len());
            changed[offset..end].copy_from_slice(&content[..end - offset]);
        }
        2 => changed.truncate(offset),
        3 => {
            changed.splice(offset..offset, content.iter().copied());
        }
        _ => {
            let stray = format!("{name}-stray");
            backend
                .save(*kind, &stray, content)
                .expect("save in memory");
            return backend;
        }
    }
    backend.save(*kind, name, &changed).expect("save in memory");
    backend
}

/// What the commands read: open, list snapshots, restore each to a sink,
/// check with every pack read and rehashed, prune and migrate as dry runs,
/// the last applied record.
pub fn exercise(backend: Arc<MemoryBackend>, passphrase: Option<&str>) {
    let Ok(repository) = Repository::open(backend, passphrase, RepoOptions::default()) else {
        return;
    };
    if let Ok(snapshots) = repository.snapshots() {
        for snapshot in &snapshots {
            let _ = repository.restore_tar(snapshot, "data", std::io::sink(), &|_| {});
        }
    }
    // Rehashing too: every blob's id is checked whatever its entry claims.
    let _ = repository.check(CheckOptions {
        read_data: Some(ReadData::All),
        rehash: true,
    });
    let _ = repository.plan_prune();
    let _ = repository.plan_migrate();
    let _ = repository.runs();
    let _ = repository.last_applied();
}
