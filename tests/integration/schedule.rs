//! `lifeboat schedule`: the crontab line runs a real backup when its
//! command is executed as cron would (with the environment file), and the
//! systemd units pass `systemd-analyze verify` and hold the lock, the
//! environment file and the journal.

use crate::harness::{Workspace, snapshots};
use crate::support;
use std::path::Path;

fn with_schedule(ws: &Workspace, every: &str) {
    let file = ws.path().join("main.hcl");
    let mut spec = std::fs::read_to_string(&file).unwrap();
    spec.push_str(&format!("\nschedule {{\n  every = \"{every}\"\n}}\n"));
    std::fs::write(file, spec).unwrap();
}

/// The environment file a scheduled run reads, with the test's passphrase.
fn env_file(ws: &Workspace) -> std::path::PathBuf {
    let file = ws.path().join("lifeboat.env");
    std::fs::write(
        &file,
        format!("LIFEBOAT_TEST_PASSPHRASE='{}'\n", ws.passphrase),
    )
    .unwrap();
    file
}

#[test]
fn the_crontab_line_runs_apply_with_the_environment_file_and_logs_to_syslog() {
    let volume = support::TestVolume::create("schedule-cron");
    std::fs::write(volume.mountpoint().join("f"), b"scheduled").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let missing = ws.run(&["schedule", "--cron"]);
    assert_eq!(missing.code(), 1, "{missing}");
    assert!(
        missing
            .stderr()
            .contains("add `schedule { every = \"1h\" }`"),
        "{missing}"
    );

    with_schedule(&ws, "90m");
    let uneven = ws.run(&["schedule", "--cron"]);
    assert_eq!(uneven.code(), 1, "{uneven}");
    assert!(
        uneven.stderr().contains("lifeboat schedule --systemd"),
        "{uneven}"
    );

    with_schedule_replaced(&ws, "90m", "1h");
    let env = env_file(&ws);
    let printed = ws.ok(&["schedule", "--cron", "--env-file", env.to_str().unwrap()]);
    let text = printed.stdout();
    assert!(!text.contains(&ws.passphrase), "no secret in the crontab");
    assert!(
        text.contains("must define, as KEY='value' lines: LIFEBOAT_TEST_PASSPHRASE."),
        "{text}"
    );
    let line = text.lines().last().unwrap();
    let tag = text
        .split("output goes to syslog, tagged ")
        .nth(1)
        .and_then(|rest| rest.split(".\n").next())
        .unwrap();
    assert!(tag.starts_with("lifeboat-"), "{text}");
    let dir = std::fs::canonicalize(ws.path()).unwrap();
    let binary = std::fs::canonicalize(assert_cmd::cargo::cargo_bin("lifeboat")).unwrap();
    let expected = format!(
        "0 * * * * {{ set -a && . {} && set +a && {} --chdir {} --no-color apply --auto-approve \
         --lock-timeout 30m; }} 2>&1 | logger -t {}",
        env.display(),
        binary.display(),
        dir.display(),
        tag
    );
    assert_eq!(line, expected);

    // Run as cron would (sh, no passphrase in the environment), with the
    // output kept here instead of sent to syslog.
    let schedule_fields = 5;
    let command: Vec<&str> = line.split(' ').skip(schedule_fields).collect();
    let command = command.join(" ");
    let command = command.split(" | logger").next().unwrap();
    let run_as_cron = |command: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env_remove("LIFEBOAT_TEST_PASSPHRASE")
            .env_remove("DOCKER_HOST")
            .env("LIFEBOAT_CACHE_DIR", ws.path().join(".cache"))
            .output()
            .unwrap()
    };
    // A missing environment file is said where the log goes, not lost.
    let env_text = env.display().to_string();
    let without_env = run_as_cron(&command.replace(&env_text, "/nonexistent/lifeboat.env"));
    assert!(!without_env.status.success());
    assert!(
        String::from_utf8_lossy(&without_env.stdout).contains("/nonexistent/lifeboat.env"),
        "{without_env:?}"
    );
    let ran = run_as_cron(command);
    let output = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{command}\n{output}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(output.contains("Apply complete! 1 backed up"), "{output}");
    assert_eq!(snapshots(&ws).len(), 1);
}

fn with_schedule_replaced(ws: &Workspace, from: &str, to: &str) {
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        spec.replace(&format!("every = \"{from}\""), &format!("every = \"{to}\"")),
    )
    .unwrap();
}

/// The unit name `schedule --systemd --write` chose: its files' stem.
fn unit_name_in(units: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(units)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.dedup();
    assert_eq!(names.len(), 1, "{names:?}");
    names.remove(0)
}

#[test]
fn the_systemd_units_verify_and_run_apply_with_the_lock_and_the_journal() {
    let ws = Workspace::with_volumes(&[]);
    with_schedule(&ws, "15m");
    let env = env_file(&ws);
    let units = tempfile::tempdir().unwrap();
    let written = ws.ok(&[
        "schedule",
        "--systemd",
        "--env-file",
        env.to_str().unwrap(),
        "--write",
        units.path().to_str().unwrap(),
    ]);
    let dir = std::fs::canonicalize(ws.path()).unwrap();
    let name = unit_name_in(units.path());
    assert!(name.starts_with("lifeboat-"), "{name}");
    assert!(
        written
            .stdout()
            .contains(&format!("systemctl enable --now {name}.timer")),
        "{written}"
    );
    let service_file = units.path().join(format!("{name}.service"));
    let timer_file = units.path().join(format!("{name}.timer"));
    let service = std::fs::read_to_string(&service_file).unwrap();
    let timer = std::fs::read_to_string(&timer_file).unwrap();
    let binary = std::fs::canonicalize(assert_cmd::cargo::cargo_bin("lifeboat")).unwrap();
    for field in [
        "Type=oneshot".to_string(),
        format!("EnvironmentFile={}", env.display()),
        format!(
            "ExecStart={} --chdir {} --no-color apply --auto-approve --lock-timeout 7m30s",
            binary.display(),
            dir.display()
        ),
        "StandardOutput=journal".to_string(),
        format!("SyslogIdentifier={name}"),
    ] {
        assert!(service.lines().any(|l| l == field), "{field} in\n{service}");
    }
    assert!(!service.contains(&ws.passphrase));
    for field in [
        "OnUnitActiveSec=15m",
        "OnBootSec=1min",
        "WantedBy=timers.target",
    ] {
        assert!(timer.lines().any(|l| l == field), "{field} in\n{timer}");
    }
    // Printed, the same units.
    let printed = ws
        .ok(&["schedule", "--systemd", "--env-file", env.to_str().unwrap()])
        .stdout();
    assert!(
        printed.contains(&service) && printed.contains(&timer),
        "{printed}"
    );

    if Path::new("/usr/bin/systemd-analyze").exists() {
        let verified = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&service_file)
            .arg(&timer_file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&verified.stderr);
        assert!(verified.status.success(), "{stderr}");
        // verify reports settings it ignores on stderr, and still exits 0.
        assert!(stderr.trim().is_empty(), "{stderr}");
    }
}
