//! The command line's surface: shell completions and the man page come from
//! the clap definitions and cover every command; color never reaches a pipe.

use assert_cmd::Command;

const COMMANDS: [&str; 18] = [
    "validate",
    "plan",
    "apply",
    "snapshots",
    "runs",
    "status",
    "schedule",
    "restore",
    "show",
    "graph",
    "fmt",
    "check",
    "forget",
    "prune",
    "unlock",
    "repair",
    "completions",
    "man",
];

fn lifeboat(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("lifeboat")
        .unwrap()
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Runs `shell -n FILE` when that shell is installed; `None` when it is not.
fn syntax_check(shell: &str, script: &str) -> Option<std::process::Output> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    std::process::Command::new(shell)
        .arg("-n")
        .arg(file.path())
        .output()
        .ok()
}

#[test]
fn completions_cover_every_command_and_parse() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&lifeboat(&["completions", shell]));
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
        if let Some(checked) = syntax_check(shell, &script) {
            assert!(checked.status.success(), "{shell} -n: {checked:?}");
        } else {
            assert_ne!(shell, "bash", "bash is always there to check its script");
        }
    }
}

#[test]
fn the_man_page_documents_every_command_and_the_exit_codes() {
    let page = stdout(&lifeboat(&["man"]));
    assert!(
        page.starts_with(".ie") || page.contains(".TH lifeboat"),
        "roff: {page}"
    );
    for command in COMMANDS {
        assert!(page.contains(command), "man page lacks {command}");
    }
    assert!(page.contains("Exit codes"), "{page}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &page).unwrap();
    if let Ok(rendered) = std::process::Command::new("man")
        .arg("-l")
        .arg(file.path())
        .env("MANPAGER", "cat")
        .output()
    {
        assert!(rendered.status.success(), "man -l: {rendered:?}");
    }
}

#[test]
fn color_never_reaches_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        "volume \"data\" {\n  nme = \"x\"\n}\n",
    )
    .unwrap();
    let chdir = dir.path().to_str().unwrap();
    for args in [
        vec!["--chdir", chdir, "validate"],
        vec!["--chdir", chdir, "--no-color", "validate"],
        vec!["--chdir", chdir, "fmt", "--check", "--diff"],
        vec!["--chdir", chdir, "graph"],
        vec!["--chdir", chdir, "plan"],
    ] {
        let output = lifeboat(&args);
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains('\x1b'), "escape codes in {args:?}: {text}");
        }
    }
}
