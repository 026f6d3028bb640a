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

/// `fmt --recursive` stays inside the tree: a link to a directory outside
/// is not followed, a link to a file outside is not rewritten, and a link
/// to a file inside is written through, staying a link.
#[cfg(unix)]
#[test]
fn fmt_stays_inside_the_tree_and_keeps_links() {
    use std::os::unix::fs::symlink;
    let unformatted = "volume \"a\" {\nname=\"x\"\n}\n";
    let formatted = "volume \"a\" {\n  name = \"x\"\n}\n";
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("far.hcl"), unformatted).unwrap();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/real.hcl"), unformatted).unwrap();
    symlink(root.join("sub/real.hcl"), root.join("inside.hcl")).unwrap();
    symlink(outside.path().join("far.hcl"), root.join("outside.hcl")).unwrap();
    symlink(outside.path(), root.join("linked_dir")).unwrap();
    let output = fmt(root, &["--recursive"]);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("links to a file outside"), "{stderr}");
    // Outside: untouched, through either link.
    assert_eq!(
        std::fs::read_to_string(outside.path().join("far.hcl")).unwrap(),
        unformatted
    );
    // Inside: formatted, and the link is still a link to it.
    assert_eq!(
        std::fs::read_to_string(root.join("sub/real.hcl")).unwrap(),
        formatted
    );
    let link = std::fs::symlink_metadata(root.join("inside.hcl")).unwrap();
    assert!(link.file_type().is_symlink());
    assert!(
        std::fs::symlink_metadata(root.join("outside.hcl"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
