//! The backend conformance suite (`lifeboat::repo::backend::conformance`)
//! run through the public API against real storage: a local directory on
//! this host's filesystem. Remote servers (S3, SFTP) join here with their
//! backends.

use lifeboat::repo::backend::local::LocalBackend;
use lifeboat::repo::backend::{Backend, conformance};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[test]
fn a_local_directory_backend_conforms_and_is_left_without_files() {
    let dir = tempfile::tempdir().unwrap();
    let locations = AtomicU32::new(0);
    let violations = conformance::run(&|| -> Arc<dyn Backend> {
        let n = locations.fetch_add(1, Ordering::SeqCst);
        Arc::new(LocalBackend::new(dir.path().join(format!("location{n}"))))
    });
    let listed: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    assert!(violations.is_empty(), "{}", listed.join("\n"));
    assert!(
        locations.load(Ordering::SeqCst) > 1,
        "a fresh location per check"
    );
    let left: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(left.is_empty(), "the suite left files behind: {left:?}");
}
