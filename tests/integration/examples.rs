//! Every example in examples/ validates.

use assert_cmd::Command;
use std::path::Path;

fn example_dirs() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_validates() {
    let dirs = example_dirs();
    assert!(dirs.len() >= 5, "examples/ holds the documented specs");
    for dir in dirs {
        let output = Command::cargo_bin("lifeboat")
            .unwrap()
            .arg("--chdir")
            .arg(&dir)
            .arg("validate")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} does not validate:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
