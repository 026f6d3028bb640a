//! Bad input gets a clear error naming where it is, and exit code 1.

use assert_cmd::Command;
use std::path::Path;

fn spec_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), text).unwrap();
    dir
}

fn lifeboat(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn dangling_policy_reference_names_file_line_and_column() {
    let dir = spec_dir("volume \"data\" {\n  name   = \"x_data\"\n  policy = policy.nightly\n}\n");
    let output = lifeboat(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("main.hcl:3:"), "{text}");
    assert!(text.contains("nightly"), "{text}");
}

#[test]
fn unknown_attribute_and_bad_duration_are_located() {
    let dir = spec_dir(
        "policy \"p\" {\n  rpo = \"24 hourz\"\n}\nvolume \"data\" {\n  name = \"x_data\"\n  polcy = policy.p\n}\n",
    );
    let output = lifeboat(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("main.hcl:2:"), "bad duration located: {text}");
    assert!(
        text.contains("main.hcl:6:"),
        "unknown attribute located: {text}"
    );
    assert!(text.contains("policy"), "did you mean: {text}");
}

#[test]
fn validate_json_gives_ranges() {
    let dir = spec_dir("volume \"data\" {\n  name = \"x_data\"\n  policy = policy.none\n}\n");
    let output = lifeboat(dir.path(), &["validate", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert!(!json["diagnostics"].as_array().unwrap().is_empty());
}

#[test]
fn unreachable_engine_is_a_clear_error() {
    let dir = spec_dir("volume \"data\" {\n  name = \"x_data\"\n}\n");
    let output = Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir.path())
        .arg("plan")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.to_lowercase().contains("docker"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn an_undeclared_variable_in_the_environment_changes_nothing() {
    let dir = spec_dir("volume \"data\" {\n  name = \"x_data\"\n}\n");
    let output = Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir.path())
        .arg("validate")
        .env("LIFEBOAT_VAR_for_another_spec", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let declared_elsewhere = lifeboat(dir.path(), &["validate", "--var", "nope=1"]);
    assert_eq!(declared_elsewhere.status.code(), Some(1));
}

#[test]
fn a_spec_file_that_is_not_utf8_is_located_for_validate_and_fmt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        b"volume \"data\" {\n  name = \"caf\xe9\"\n}\n",
    )
    .unwrap();
    for command in ["validate", "fmt"] {
        let output = lifeboat(dir.path(), &[command]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let text = stderr(&output);
        assert!(text.contains("main.hcl:2:14"), "{command}: {text}");
        assert!(text.contains("not UTF-8"), "{command}: {text}");
    }
}
