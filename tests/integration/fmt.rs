//! `lifeboat fmt` writes what HashiCorp's formatter writes.
//!
//! tests/fmt/input/ holds hand-written and tricky specs (plus a copy of every
//! file in examples/); tests/fmt/golden/ holds what `hclwrite.Format` (the
//! formatter behind `terraform fmt`) made of each, produced by
//! tests/fmt/regenerate.sh from the Go program in tests/fmt/hclfmt/, built
//! offline against Debian's golang-github-hashicorp-hcl-v2-dev 2.14.1. The
//! goldens are the contract: CI needs no Go. After adding an input, run
//! that script and commit both files.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fmt")
}

fn fmt(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir)
        .arg("fmt")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn fmt_writes_what_hclwrite_writes_and_then_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(corpus().join("input")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        std::fs::copy(&path, dir.path().join(&name)).unwrap();
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 20, "the corpus is there");
    let output = fmt(dir.path(), &[]);
    assert!(output.status.success(), "{output:?}");
    for name in &names {
        let golden = std::fs::read(corpus().join("golden").join(name)).unwrap();
        let formatted = std::fs::read(dir.path().join(name)).unwrap();
        assert!(
            formatted == golden,
            "{name:?} differs from hclwrite's layout:\n{}",
            similar::TextDiff::from_lines(
                String::from_utf8_lossy(&golden),
                String::from_utf8_lossy(&formatted)
            )
            .unified_diff()
            .header("hclwrite", "lifeboat")
        );
    }
    let again = fmt(dir.path(), &["--check"]);
    assert_eq!(again.status.code(), Some(0), "fmt is idempotent: {again:?}");
}

#[test]
fn every_example_is_already_canonical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        let output = fmt(&dir, &["--check"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {output:?}",
            dir.display()
        );
    }
}
