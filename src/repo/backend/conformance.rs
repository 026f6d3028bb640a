//! The conformance suite: the backend contract of [`super`] as checks that
//! any [`Backend`] can be run through, in unit tests (memory, local,
//! faulty) and in integration tests against real servers (a local
//! directory, Garage for S3, OpenSSH's server for SFTP).
//!
//! [`run`] takes a factory that returns a backend at a new, empty
//! location on every call (a fresh directory, bucket prefix or remote
//! path): each check gets its own, so one check's leftovers cannot hide
//! another's failure. Checks name their files with fresh random names,
//! remove every file they saved, and report a backend that keeps one as a
//! violation too, so a shared server is left as it was found. [`run`]
//! returns every violation; [`assert_conforms`] panics listing them.
//!
//! What each check proves (in the order of the contract):
//! * `empty location`: a new location is empty and lists nothing.
//! * `missing files`: load, ranged load, stat and remove of a missing file
//!   are `NotFound`.
//! * `load and stat`: whole and ranged loads return exactly what was
//!   saved, empty files included; a range past the end is
//!   `UnexpectedEof`, never a short read; stat is the saved size.
//! * `namespaces`: one name in two kinds is two files.
//! * `listing`: every saved file is listed exactly once, removed ones not.
//! * `replace`: saving over a file replaces it whole.
//! * `remove`: a removed file is gone for load, stat, list and remove.
//! * `atomic saves`: a reader never sees part of a file while it is
//!   saved or replaced.
//! * `concurrent saves`: saves from many threads all land; racing saves of
//!   one name leave one of them, whole.
//! * `temporary files`: no saved file is a temporary file: `stat_temporary`
//!   says `None` and `remove_temporary` refuses it (`InvalidInput`) and
//!   leaves it; a temporary name that is not there is `NotFound` (or, for
//!   a backend with no temporary files, refused).

use super::{Backend, FileKind};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One clause of the contract a backend broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check's name (see the module doc).
    pub check: &'static str,
    /// The backend's location and what happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

type Check = fn(&dyn Backend, &mut Scratch) -> Result<(), String>;

const CHECKS: [(&str, Check); 10] = [
    ("empty location", empty_location),
    ("missing files", missing_files),
    ("load and stat", load_and_stat),
    ("namespaces", namespaces),
    ("listing", listing),
    ("replace", replace),
    ("remove", remove),
    ("atomic saves", atomic_saves),
    ("concurrent saves", concurrent_saves),
    ("temporary files", temporary_files),
];

/// Runs every check, each on a backend from `make` (a new, empty location
/// each call), and returns what the backend broke (empty: it conforms).
pub fn run(make: &dyn Fn() -> Arc<dyn Backend>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (check, run_check) in CHECKS {
        let backend = make();
        let mut scratch = Scratch::default();
        let outcome = run_check(backend.as_ref(), &mut scratch);
        let cleaned = scratch.clean_up(backend.as_ref());
        for result in [outcome, cleaned] {
            if let Err(detail) = result {
                violations.push(Violation {
                    check,
                    detail: format!("{}: {detail}", backend.location()),
                });
            }
        }
    }
    violations
}

/// [`run`], panicking with every violation when there is any.
pub fn assert_conforms(make: &dyn Fn() -> Arc<dyn Backend>) {
    let violations = run(make);
    if !violations.is_empty() {
        let listed: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
        panic!(
            "the backend breaks the contract of repo::backend:\n{}",
            listed.join("\n")
        );
    }
}

/// The files a check saved, for cleaning up, and fresh names for them.
#[derive(Default)]
struct Scratch {
    saved: Vec<(FileKind, String)>,
}

impl Scratch {
    /// A new name shaped like the ones lifeboat gives (64 hex digits).
    fn name(&self) -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    fn save(
        &mut self,
        backend: &dyn Backend,
        kind: FileKind,
        name: &str,
        data: &[u8],
    ) -> Result<(), String> {
        self.saved.push((kind, name.to_string()));
        backend
            .save(kind, name, data)
            .map_err(|e| format!("saving {kind:?} {name}: {e}"))
    }

    /// Removes what the check saved and left; then none of it may be listed.
    fn clean_up(self, backend: &dyn Backend) -> Result<(), String> {
        for (kind, name) in &self.saved {
            match backend.remove(*kind, name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cleaning up {kind:?} {name}: {e}")),
            }
        }
        for (kind, name) in &self.saved {
            let listed = backend
                .list(*kind)
                .map_err(|e| format!("listing {kind:?} after cleaning up: {e}"))?;
            if listed.contains(name) {
                return Err(format!("{kind:?} {name} is still listed after its removal"));
            }
        }
        Ok(())
    }
}

/// Incompressible bytes (a server that compresses must not look faster
/// or different than it is).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(32) {
        let block = rand::random::<[u8; 32]>();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    data
}

fn expect_not_found<T: std::fmt::Debug>(what: &str, result: io::Result<T>) -> Result<(), String> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected NotFound, got the error {e} ({:?})",
            e.kind()
        )),
        Ok(value) => Err(format!("{what}: expected NotFound, got {value:?}")),
    }
}

fn expect_bytes(what: &str, result: io::Result<Vec<u8>>, expected: &[u8]) -> Result<(), String> {
    match result {
        Ok(data) if data == expected => Ok(()),
        Ok(data) => Err(format!(
            "{what}: got {} bytes, not the {} saved (or they differ)",
            data.len(),
            expected.len()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn remove_file(backend: &dyn Backend, kind: FileKind, name: &str) -> Result<(), String> {
    backend
        .remove(kind, name)
        .map_err(|e| format!("removing {kind:?} {name}: {e}"))
}

fn listed(backend: &dyn Backend, kind: FileKind) -> Result<Vec<String>, String> {
    backend
        .list(kind)
        .map_err(|e| format!("listing {kind:?}: {e}"))
}

fn empty_location(backend: &dyn Backend, _: &mut Scratch) -> Result<(), String> {
    match backend.is_empty() {
        Ok(true) => {}
        Ok(false) => return Err("a new location says it is not empty".into()),
        Err(e) => return Err(format!("is_empty of a new location: {e}")),
    }
    for kind in FileKind::ALL {
        let names = listed(backend, kind)?;
        if !names.is_empty() {
            return Err(format!("a new location lists {kind:?} files: {names:?}"));
        }
    }
    Ok(())
}

fn missing_files(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    for kind in FileKind::ALL {
        let name = match kind {
            FileKind::Config => "config".to_string(),
            _ => scratch.name(),
        };
        let what = |op: &str| format!("{op} of a missing {kind:?} file");
        expect_not_found(&what("load"), backend.load(kind, &name, None))?;
        expect_not_found(&what("ranged load"), backend.load(kind, &name, Some(0..1)))?;
        expect_not_found(&what("stat"), backend.stat(kind, &name))?;
        expect_not_found(&what("remove"), backend.remove(kind, &name))?;
    }
    Ok(())
}

fn load_and_stat(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let data = random_bytes((1 << 20) + 17);
    let (full, empty) = (scratch.name(), scratch.name());
    scratch.save(backend, FileKind::Pack, &full, &data)?;
    scratch.save(backend, FileKind::Pack, &empty, b"")?;
    match backend.is_empty() {
        Ok(false) => {}
        Ok(true) => return Err("is_empty says true while files are stored".into()),
        Err(e) => return Err(format!("is_empty: {e}")),
    }
    expect_bytes(
        "whole load",
        backend.load(FileKind::Pack, &full, None),
        &data,
    )?;
    expect_bytes(
        "load of an empty file",
        backend.load(FileKind::Pack, &empty, None),
        b"",
    )?;
    let len = data.len() as u64;
    for range in [0..1, 0..4096, 1000..70_000, len - 5..len, len..len, 12..12] {
        let expected = &data[range.start as usize..range.end as usize];
        let what = format!("load of range {range:?}");
        expect_bytes(
            &what,
            backend.load(FileKind::Pack, &full, Some(range)),
            expected,
        )?;
    }
    for range in [len - 5..len + 1, len + 10..len + 20] {
        match backend.load(FileKind::Pack, &full, Some(range.clone())) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Err(e) => {
                return Err(format!(
                    "load of range {range:?} past the end of {len} bytes: expected \
                     UnexpectedEof, got {e} ({:?})",
                    e.kind()
                ));
            }
            Ok(short) => {
                return Err(format!(
                    "load of range {range:?} past the end of {len} bytes returned {} bytes \
                     (a short read)",
                    short.len()
                ));
            }
        }
    }
    for (name, size) in [(&full, len), (&empty, 0)] {
        match backend.stat(FileKind::Pack, name) {
            Ok(found) if found == size => {}
            Ok(found) => return Err(format!("stat says {found} bytes, {size} were saved")),
            Err(e) => return Err(format!("stat: {e}")),
        }
    }
    Ok(())
}

fn namespaces(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let name = scratch.name();
    scratch.save(backend, FileKind::Pack, &name, b"pack")?;
    scratch.save(backend, FileKind::Index, &name, b"index")?;
    scratch.save(backend, FileKind::Config, "config", b"config")?;
    expect_bytes(
        "load of the pack",
        backend.load(FileKind::Pack, &name, None),
        b"pack",
    )?;
    expect_bytes(
        "load of the index file",
        backend.load(FileKind::Index, &name, None),
        b"index",
    )?;
    for kind in FileKind::ALL {
        let names = listed(backend, kind)?;
        let expected: &[&str] = match kind {
            FileKind::Pack | FileKind::Index => &[name.as_str()],
            FileKind::Config => &["config"],
            _ => &[],
        };
        if names != expected {
            return Err(format!("{kind:?} lists {names:?}, expected {expected:?}"));
        }
    }
    remove_file(backend, FileKind::Pack, &name)?;
    expect_bytes(
        "load of the index file after removing the pack of the same name",
        backend.load(FileKind::Index, &name, None),
        b"index",
    )
}

fn listing(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    for kind in [FileKind::Pack, FileKind::Snapshot] {
        let names: Vec<String> = (0..40).map(|_| scratch.name()).collect();
        for name in &names {
            scratch.save(backend, kind, name, name.as_bytes())?;
        }
        let gone = &names[..5];
        for name in gone {
            remove_file(backend, kind, name)?;
        }
        let mut found = listed(backend, kind)?;
        found.sort();
        let mut expected = names[5..].to_vec();
        expected.sort();
        if found != expected {
            let extra: Vec<_> = found.iter().filter(|n| !expected.contains(n)).collect();
            let missing: Vec<_> = expected.iter().filter(|n| !found.contains(n)).collect();
            let mut repeated = found.clone();
            repeated.dedup();
            return Err(format!(
                "{kind:?} lists {} names for {} stored: not listed {missing:?}, listed but not \
                 stored {extra:?}{}",
                found.len(),
                expected.len(),
                if repeated.len() < found.len() {
                    ", some twice"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

fn replace(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let name = scratch.name();
    let (long, short) = (random_bytes(70_000), random_bytes(100));
    scratch.save(backend, FileKind::Lock, &name, &long)?;
    scratch.save(backend, FileKind::Lock, &name, &short)?;
    expect_bytes(
        "load after replacing",
        backend.load(FileKind::Lock, &name, None),
        &short,
    )?;
    match backend.stat(FileKind::Lock, &name) {
        Ok(100) => {}
        Ok(size) => return Err(format!("stat after replacing says {size} bytes, not 100")),
        Err(e) => return Err(format!("stat after replacing: {e}")),
    }
    let names = listed(backend, FileKind::Lock)?;
    if names != [name.clone()] {
        return Err(format!("after replacing one lock, locks lists {names:?}"));
    }
    Ok(())
}

fn remove(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let (gone, stays) = (scratch.name(), scratch.name());
    scratch.save(backend, FileKind::Snapshot, &gone, b"gone")?;
    scratch.save(backend, FileKind::Snapshot, &stays, b"stays")?;
    remove_file(backend, FileKind::Snapshot, &gone)?;
    expect_not_found(
        "load of a removed file",
        backend.load(FileKind::Snapshot, &gone, None),
    )?;
    expect_not_found(
        "stat of a removed file",
        backend.stat(FileKind::Snapshot, &gone),
    )?;
    expect_not_found("a second remove", backend.remove(FileKind::Snapshot, &gone))?;
    let names = listed(backend, FileKind::Snapshot)?;
    if names != [stays.clone()] {
        return Err(format!(
            "after a remove, snapshots lists {names:?}, expected only {stays}"
        ));
    }
    expect_bytes(
        "load of the other file",
        backend.load(FileKind::Snapshot, &stays, None),
        b"stays",
    )
}

fn temporary_files(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let (pack, snapshot) = (scratch.name(), scratch.name());
    scratch.save(backend, FileKind::Pack, &pack, b"pack")?;
    scratch.save(backend, FileKind::Snapshot, &snapshot, b"snapshot")?;
    for (kind, name, content) in [
        (FileKind::Pack, &pack, b"pack".as_slice()),
        (FileKind::Snapshot, &snapshot, b"snapshot".as_slice()),
    ] {
        match backend.stat_temporary(kind, name) {
            Ok(None) => {}
            other => return Err(format!("stat_temporary of {kind:?} {name}: {other:?}")),
        }
        match backend.remove_temporary(kind, name) {
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            other => return Err(format!("remove_temporary of {kind:?} {name}: {other:?}")),
        }
        expect_bytes(
            "load after a refused remove_temporary",
            backend.load(kind, name, None),
            content,
        )?;
    }
    let absent = format!(".{}.tmp-1-1", scratch.name());
    match backend.stat_temporary(FileKind::Snapshot, &absent) {
        Ok(None) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return Err(format!("stat_temporary of a missing {absent}: {other:?}")),
    }
    match backend.remove_temporary(FileKind::Snapshot, &absent) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ) =>
        {
            Ok(())
        }
        other => Err(format!("remove_temporary of a missing {absent}: {other:?}")),
    }
}

fn atomic_saves(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    let contents = [random_bytes(1 << 20), random_bytes(1 << 20)];
    let new_names: Vec<String> = (0..4).map(|_| scratch.name()).collect();
    let replaced = scratch.name();
    scratch.save(backend, FileKind::Pack, &replaced, &contents[0])?;
    for name in &new_names {
        scratch.saved.push((FileKind::Pack, name.clone()));
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let result = (|| {
                for (round, name) in new_names.iter().enumerate() {
                    let data = &contents[round % 2];
                    backend
                        .save(FileKind::Pack, name, data)
                        .map_err(|e| format!("saving {name}: {e}"))?;
                    backend
                        .save(FileKind::Pack, &replaced, &contents[(round + 1) % 2])
                        .map_err(|e| format!("replacing {replaced}: {e}"))?;
                }
                Ok(())
            })();
            done.store(true, Ordering::SeqCst);
            result
        });
        let whole = |data: &[u8]| contents.iter().any(|c| c.as_slice() == data);
        let mut reads = 0u32;
        // At least a few reads even when the writer is quick.
        while !done.load(Ordering::SeqCst) || reads < 4 {
            reads += 1;
            for name in new_names.iter().chain([&replaced]) {
                match backend.load(FileKind::Pack, name, None) {
                    Ok(data) if whole(&data) => {}
                    Ok(data) => {
                        return Err(format!(
                            "a load while saving returned {} bytes that are neither the old \
                             nor the new content: a partial file was visible",
                            data.len()
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && *name != replaced => {}
                    Err(e) => return Err(format!("a load while saving {name}: {e}")),
                }
            }
        }
        writer
            .join()
            .map_err(|_| "the writer thread panicked".to_string())?
    })
}

fn concurrent_saves(backend: &dyn Backend, scratch: &mut Scratch) -> Result<(), String> {
    const THREADS: usize = 6;
    let shared = scratch.name();
    let own: Vec<Vec<String>> = (0..THREADS)
        .map(|_| (0..5).map(|_| scratch.name()).collect())
        .collect();
    let contents: Vec<Vec<u8>> = (0..THREADS).map(|_| random_bytes(256 << 10)).collect();
    scratch.saved.push((FileKind::Index, shared.clone()));
    for names in &own {
        scratch
            .saved
            .extend(names.iter().map(|n| (FileKind::Index, n.clone())));
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (names, data, shared) = (&own[t], &contents[t], &shared);
                scope.spawn(move || -> Result<(), String> {
                    for name in names {
                        backend
                            .save(FileKind::Index, name, data)
                            .map_err(|e| format!("saving {name}: {e}"))?;
                        backend
                            .save(FileKind::Index, shared, data)
                            .map_err(|e| format!("saving {shared} from several threads: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a saving thread panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    for (names, data) in own.iter().zip(&contents) {
        for name in names {
            expect_bytes(
                "load of a file saved beside others",
                backend.load(FileKind::Index, name, None),
                data,
            )?;
        }
    }
    match backend.load(FileKind::Index, &shared, None) {
        Ok(data) if contents.contains(&data) => {}
        Ok(data) => {
            return Err(format!(
                "racing saves of one name left {} bytes that none of them saved",
                data.len()
            ));
        }
        Err(e) => return Err(format!("load after racing saves of one name: {e}")),
    }
    let mut names = listed(backend, FileKind::Index)?;
    names.sort();
    let mut expected: Vec<String> = own.concat();
    expected.push(shared);
    expected.sort();
    if names != expected {
        return Err(format!(
            "after concurrent saves, index lists {} names for {} saved",
            names.len(),
            expected.len()
        ));
    }
    Ok(())
}
