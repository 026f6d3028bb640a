//! What a user meets when things go wrong: one bad resource does not stop
//! the others, interrupted runs leave nothing holding volumes, flags that
//! cannot apply are refused, output survives a closed pipe.

use crate::harness::Workspace;
use crate::support;
use std::time::{Duration, Instant};

#[test]
fn a_missing_volume_is_a_problem_beside_the_others_and_apply_backs_up_the_rest() {
    let present = support::TestVolume::create("present");
    std::fs::write(present.mountpoint().join("f"), b"kept").unwrap();
    let ws = Workspace::with_volumes(&[
        ("data", present.name()),
        ("gone", "lifeboat-test-no-such-volume"),
    ]);

    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    let text = plan.stdout();
    assert!(text.contains("+ volume.data"), "{plan}");
    assert!(text.contains("! volume.gone"), "{plan}");
    assert!(
        text.contains("lifeboat-test-no-such-volume") && text.contains("main.hcl:"),
        "the problem names the volume and where it is declared:\n{plan}"
    );
    assert!(text.contains("1 problem"), "{plan}");
    assert_eq!(ws.run(&["plan", "--detailed-exitcode"]).code(), 1);

    let apply = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code(), 1, "{apply}");
    assert!(
        apply
            .stdout()
            .contains("Apply finished with errors: 1 backed up, 1 failed"),
        "{apply}"
    );
    let snapshots: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(snapshots[0]["resource"], "volume.data");

    // The JSON plan carries the problem as data.
    let json: serde_json::Value =
        serde_json::from_str(&ws.run(&["plan", "--json"]).stdout()).unwrap();
    let gone = &json["changes"][1];
    assert_eq!(gone["action"], "problem");
    assert_eq!(gone["reasons"][0]["reason"], "problem");
}

/// A volume big enough that reading it through the API takes a while.
fn big_volume(test: &str) -> support::TestVolume {
    let volume = support::TestVolume::create(test);
    for i in 0..24u64 {
        let data = support::random_bytes(8 << 20, 500 + i);
        std::fs::write(volume.mountpoint().join(format!("f{i}.bin")), data).unwrap();
    }
    volume
}

/// Starts `args`, waits until it has a helper container on `volume`, then
/// sends `signal`; returns the exit status.
fn signal_while_copying(
    ws: &Workspace,
    args: &[&str],
    volume: &str,
    signal: libc::c_int,
) -> std::process::ExitStatus {
    let mut child = ws
        .process(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while support::helpers_of(volume).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before a helper container was seen"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no helper");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    child.wait().unwrap()
}

#[test]
fn helpers_of_a_killed_run_are_removed_by_the_next_and_sigterm_removes_its_own() {
    let volume = big_volume("helpers");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let backup = ["apply", "--auto-approve", "--access", "api"];

    // SIGKILL: the helper stays behind, holding the volume.
    let status = signal_while_copying(&ws, &backup, volume.name(), libc::SIGKILL);
    assert!(!status.success());
    let left = support::helpers_of(volume.name());
    assert_eq!(left.len(), 1, "{left:?}");
    let rm = std::process::Command::new("docker")
        .args(["volume", "rm", volume.name()])
        .output()
        .unwrap();
    assert!(!rm.status.success(), "a helper holds the volume");

    // The next run removes it and says which. Every run removes the helpers
    // of gone processes on the whole engine, so a lifeboat of a test running
    // beside this one may get there first: then it is only gone.
    let next = ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    let named = next
        .stdout()
        .contains("left by lifeboat processes that are gone")
        && next.stdout().contains(&left[0]);
    assert!(
        support::helpers_of(volume.name()).is_empty(),
        "the helper is still there (named by the next run: {named}): {next}"
    );

    // SIGTERM (and SIGINT): the run removes its own helpers before it exits.
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let replace = [
            "apply",
            "--auto-approve",
            "--access",
            "api",
            "--replace",
            "volume.data",
        ];
        let status = signal_while_copying(&ws, &replace, volume.name(), signal);
        assert_eq!(status.code(), Some(code), "{status:?}");
        assert!(
            support::helpers_of(volume.name()).is_empty(),
            "signal {signal} left a helper"
        );
    }
    ws.ok(&["check"]);
}

#[test]
fn flags_that_cannot_apply_are_refused() {
    let volume = support::TestVolume::create("flags");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let plan_file = ws.path().join("saved.plan");
    ws.ok(&["plan", "--out", plan_file.to_str().unwrap()]);
    for args in [
        vec![
            "apply",
            plan_file.to_str().unwrap(),
            "--replace",
            "volume.data",
        ],
        vec![
            "apply",
            plan_file.to_str().unwrap(),
            "--target",
            "volume.data",
        ],
        vec!["plan", "--json", "--format", "markdown"],
        vec!["plan", "--no-cache"],
        vec!["snapshots", "--no-cache"],
    ] {
        let run = ws.run(&args);
        assert_ne!(run.code(), 0, "{args:?} was accepted:\n{run}");
        assert!(!run.stderr().is_empty(), "{args:?}: no message\n{run}");
    }
    let man = ws.run(&["man"]);
    assert_eq!(man.code(), 1, "--chdir on man:\n{man}");
    assert!(man.stderr().contains("--chdir"), "{man}");
    // A restore plan is not applied by `apply FILE`.
    let restore_plan = ws.path().join("restore.plan");
    let text = std::fs::read_to_string(&plan_file)
        .unwrap()
        .replace("\"kind\": \"backup\"", "\"kind\": \"restore\"");
    std::fs::write(&restore_plan, text).unwrap();
    let refused = ws.run(&["apply", restore_plan.to_str().unwrap()]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stderr().contains("restore plan"), "{refused}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let lifeboat = assert_cmd::cargo::cargo_bin("lifeboat");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} man | head -1", lifeboat.display()))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn the_generated_passphrase_is_announced_and_a_conflicting_one_refused() {
    let volume = support::TestVolume::create("passfile");
    std::fs::write(volume.mountpoint().join("f"), b"x").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        format!("volume \"data\" {{\n  name = \"{}\"\n}}\n", volume.name()),
    )
    .unwrap();
    let run = |env: Option<&str>| {
        let mut command = assert_cmd::Command::cargo_bin("lifeboat").unwrap();
        command
            .arg("--chdir")
            .arg(dir.path())
            .args(["apply", "--auto-approve"])
            .env("NO_COLOR", "1")
            .env("LIFEBOAT_CACHE_DIR", dir.path().join(".cache"))
            .env_remove("LIFEBOAT_PASSPHRASE");
        if let Some(value) = env {
            command.env("LIFEBOAT_PASSPHRASE", value);
        }
        command.output().unwrap()
    };
    let first = run(None);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}");
    let file = dir.path().join(".lifeboat/passphrase");
    assert!(file.exists());
    assert!(
        stdout.contains(&file.display().to_string()) && stdout.contains("keep a copy"),
        "{stdout}"
    );
    let conflict = run(Some("something else"));
    assert_eq!(conflict.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(stderr.contains("LIFEBOAT_PASSPHRASE"), "{stderr}");
    // The same value in both places is no conflict.
    let same = std::fs::read_to_string(&file).unwrap();
    assert!(run(Some(same.trim())).status.success());
}
