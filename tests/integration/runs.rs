//! Runs that cannot destroy what they protect, against the real engine:
//! two applies of one spec at once, `recover` without the spec's values and
//! around an administrator's changes, the real downtime of a stop and its
//! `stop_timeout`, hooks killed at their timeout, `post` on SIGTERM, and a
//! service restore killed between creating and starting its container.

use crate::harness::Workspace;
use crate::quiesce::{TestContainer, docker, events, signal_while_stopped, workspace};
use crate::support;
use std::time::{Duration, Instant};

/// A volume with 48 MB of incompressible files: a copy long enough to
/// signal lifeboat in.
pub(crate) fn big_volume(test: &str, seed: u64) -> support::TestVolume {
    let volume = support::TestVolume::create(test);
    for file in 0..48u64 {
        let data = support::random_bytes(1 << 20, seed + file);
        std::fs::write(volume.mountpoint().join(format!("f{file}.bin")), data).unwrap();
    }
    volume
}

#[test]
fn a_second_apply_of_one_spec_refuses_at_once_naming_the_first_or_waits_for_it() {
    let volume = support::TestVolume::create("runs-twice");
    std::fs::write(volume.mountpoint().join("db.txt"), b"rows").unwrap();
    let container = TestContainer::start("twice", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "consistency = \"stop\"\n  pre = [\"sleep\", \"4\"]\n  hook_timeout = \"30s\"",
    );
    let lock_file = ws.path().join(".lifeboat/run.lock");
    let start_first = || {
        let child = ws
            .process(&["apply", "--auto-approve", "--replace", "volume.data"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Holding the lock once its file names it.
        let started = Instant::now();
        while std::fs::read(&lock_file)
            .map(|b| b.is_empty())
            .unwrap_or(true)
        {
            assert!(started.elapsed() < Duration::from_secs(30), "no run lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };

    let first = start_first();
    let started = Instant::now();
    let second = ws.run(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert_eq!(second.code(), 1, "{second}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "it refused at once"
    );
    let refusal = second.stderr();
    assert!(
        refusal.contains("another lifeboat run is acting on this spec")
            && refusal.contains("`lifeboat apply`")
            && refusal.contains(&format!("pid {}", first.id()))
            && refusal.contains("--lock-timeout"),
        "{second}"
    );
    assert!(
        !second.stdout().contains("pre hook"),
        "the second run touched nothing: {second}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    assert!(
        container.state().0,
        "the service runs after the first apply"
    );

    // With --lock-timeout the second waits for the first, then runs.
    let first = start_first();
    let waited = ws.ok(&[
        "apply",
        "--auto-approve",
        "--replace",
        "volume.data",
        "--lock-timeout",
        "2m",
    ]);
    assert!(waited.stdout().contains("complete!"), "{waited}");
    assert!(first.wait_with_output().unwrap().status.success());
    assert!(container.state().0, "the service runs after both");
    let snapshots: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let copies = snapshots
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["resource"] == "volume.data")
        .count();
    assert_eq!(copies, 3, "{snapshots:#}");
}

/// The spec of [`workspace`], its container named by a variable that has
/// no default: every command needs `--var db=…`, except `recover`.
fn workspace_with_variable(volume: &str) -> Workspace {
    let ws = workspace(volume, "${var.db}", "consistency = \"stop\"");
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!("variable \"db\" {{\n  type = string\n}}\n\n{spec}"),
    )
    .unwrap();
    let missing = ws.run(&["plan"]);
    assert_ne!(missing.code(), 0, "the variable is required: {missing}");
    ws
}

#[test]
fn recover_needs_no_spec_values_and_leaves_alone_what_an_administrator_touched() {
    let volume = big_volume("runs-recover", 3100);
    let container = TestContainer::start("recover", volume.name());
    let ws = workspace_with_variable(volume.name());
    let var = format!("db={}", container.name);

    // Killed while the service is stopped; the variable is not set now.
    signal_while_stopped(&ws, &container, "KILL", &["--var", &var]);
    assert!(!container.state().0, "the kill left it stopped");
    let recovered = ws.ok(&["recover"]);
    assert!(recovered.stdout().contains("started again"), "{recovered}");
    assert!(
        recovered.stderr().contains("the spec does not load")
            && recovered
                .stderr()
                .contains("ended without releasing the run lock; it was broken"),
        "{recovered}"
    );
    assert!(container.state().0, "recover did not start it");

    // Killed again; an administrator then starts it and stops it again
    // (maintenance): it is theirs now, and stays stopped.
    signal_while_stopped(&ws, &container, "KILL", &["--var", &var]);
    assert!(!container.state().0);
    docker(&["start", &container.name]);
    docker(&["stop", "-t", "1", &container.name]);
    let recovered = ws.ok(&["recover"]);
    assert!(
        recovered.stdout().contains("someone started it")
            && recovered.stdout().contains("left as it is"),
        "{recovered}"
    );
    assert!(
        !container.state().0,
        "recover started what the admin stopped"
    );
    let again = ws.ok(&["recover"]);
    assert!(again.stdout().contains("Nothing to recover"), "{again}");
}

#[test]
fn the_downtime_reported_is_the_whole_stop_and_stop_timeout_bounds_it() {
    let volume = support::TestVolume::create("runs-downtime");
    std::fs::write(volume.mountpoint().join("db.txt"), b"rows").unwrap();
    // A service that ignores SIGTERM: only the kill after stop_timeout ends it.
    let name = format!("lifeboat-runs-downtime-{}", std::process::id());
    let _remove = support::RemoveContainer(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/data", volume.name()),
        "lifeboat-test/busybox:1",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 1; done",
    ]);
    let ws = workspace(volume.name(), &name, "consistency = \"stop\"");
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        spec.replace(
            &format!("container = \"{name}\""),
            &format!("container = \"{name}\"\n  stop_timeout = \"3s\""),
        ),
    )
    .unwrap();
    let plan = ws.ok(&["plan"]);
    assert!(
        plan.stdout()
            .contains("stop service.db during the copy (stop_timeout 3s, then killed)"),
        "{plan}"
    );
    let started = Instant::now();
    let applied = ws.ok(&["apply", "--auto-approve", "--json"]);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stop waited stop_timeout, not Docker's 10s"
    );
    let resumed = events(&applied.stdout())
        .into_iter()
        .find(|e| e["type"] == "service_resumed")
        .unwrap_or_else(|| panic!("{applied}"));
    let seconds = resumed["seconds"].as_f64().unwrap();
    assert!(
        (3.0..9.0).contains(&seconds),
        "the interruption took {seconds}s: the stop itself counts"
    );
    let running = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(running, "true");
}

/// The `sleep 60` processes running in `container` (zombies, already
/// killed and waiting to be reaped, are not running).
fn sleepers(container: &str) -> Vec<String> {
    docker(&["exec", container, "ps", "-o", "stat,args"])
        .lines()
        .filter(|l| l.contains("sleep 60") && !l.trim_start().starts_with('Z'))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_hook_that_times_out_is_killed_inside_the_container() {
    let volume = support::TestVolume::create("runs-hook");
    let container = TestContainer::start("hook", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "consistency = \"stop\"\n  pre = [\"sh\", \"-c\", \"sleep 60; echo late\"]\n  \
         hook_timeout = \"2s\"",
    );
    let started = Instant::now();
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code(), 1, "{applied}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        applied.to_string().contains("did not finish within 2s")
            && applied.to_string().contains("(killed)"),
        "{applied}"
    );
    assert!(container.state().0, "the service runs");
    assert_eq!(sleepers(&container.name), Vec::<String>::new());
}

#[test]
fn sigterm_mid_copy_runs_the_post_hooks_before_exiting() {
    let volume = big_volume("runs-post", 4100);
    let container = TestContainer::start("post", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "consistency = \"stop\"\n  post = [\"touch\", \"/data/post-ran\"]",
    );
    signal_while_stopped(&ws, &container, "TERM", &[]);
    assert!(container.state().0, "SIGTERM left the service stopped");
    assert!(
        volume.mountpoint().join("post-ran").exists(),
        "post did not run on SIGTERM"
    );
    // A run ended by a signal released its run lock cleanly.
    let next = ws.ok(&["recover"]);
    assert!(!next.stderr().contains("run lock"), "{next}");
}

/// What a `lifeboat restore` killed between creating and starting
/// `container` leaves: the container `Created`, and its journal record
/// naming a process that is gone.
fn leave_a_killed_restore(ws: &Workspace, container: &str) {
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", container])
        .output();
    docker(&[
        "create",
        "--name",
        container,
        "lifeboat-test/busybox:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let record = serde_json::json!({
        "host": host.trim(),
        // pid 1 never started at tick 1 of this boot: that process is gone.
        "process": format!("1:1:{}", boot.trim()),
        "engine": "default",
        "engine_address": { "host": "unix:///var/run/docker.sock" },
        "container": container,
        "hold": "created",
        "resource": "service.web",
        "since": "2026-12-06T12:00:00Z",
    });
    let dir = ws.path().join(".lifeboat/quiesce");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1-web.json"), record.to_string()).unwrap();
}

#[test]
fn a_restore_killed_between_create_and_start_is_completed_by_recover_and_the_next_restore() {
    let name = format!("lifeboat-runs-created-{}", std::process::id());
    let _remove = support::RemoveContainer(name.clone());
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!("{spec}\nservice \"web\" {{\n  container = \"{name}\"\n}}\n"),
    )
    .unwrap();
    let state = |name: &str| docker(&["inspect", "-f", "{{.State.Status}}", name]);

    leave_a_killed_restore(&ws, &name);
    let recovered = ws.ok(&["recover"]);
    assert!(
        recovered.stdout().contains("created but not started")
            && recovered.stdout().contains("started again"),
        "{recovered}"
    );
    assert_eq!(state(&name), "running");

    // The next restore completes it before planning: then it is up to date.
    ws.ok(&["apply", "--auto-approve"]);
    leave_a_killed_restore(&ws, &name);
    let restored = ws.ok(&["restore", "--auto-approve"]);
    assert!(restored.to_string().contains("started again"), "{restored}");
    assert_eq!(state(&name), "running");
    let again = ws.ok(&["recover"]);
    assert!(again.stdout().contains("Nothing to recover"), "{again}");
}
