//! Quiescing against the real engine: a service stopped or paused around
//! the copy of its volume and running again afterwards, whatever happens —
//! a failing `pre` hook, and a SIGKILL of lifeboat while it is stopped (the
//! next `recover`, or the next `apply`, starts it again).

use crate::harness::Workspace;
use crate::support;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A busybox container sleeping with `volume` mounted at /data, removed
/// when dropped. Its shell ends on SIGTERM at once (a plain `sleep` as pid
/// 1 would make every stop wait Docker's 10 s).
pub(crate) struct TestContainer {
    pub(crate) name: String,
}

impl TestContainer {
    pub(crate) fn start(test: &str, volume: &str) -> TestContainer {
        let name = format!("lifeboat-quiesce-{test}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &format!("{volume}:/data"),
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ]);
        TestContainer { name }
    }

    pub(crate) fn state(&self) -> (bool, bool, String) {
        let out = docker(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Paused}} {{.State.StartedAt}}",
            &self.name,
        ]);
        let mut parts = out.split(' ');
        (
            parts.next() == Some("true"),
            parts.next() == Some("true"),
            parts.next().unwrap_or_default().to_string(),
        )
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// A workspace protecting `volume` used by `container`, with `extra`
/// attributes (consistency, hooks) on the volume block.
pub(crate) fn workspace(volume: &str, container: &str, extra: &str) -> Workspace {
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nvolume \"data\" {{\n  name    = \"{volume}\"\n  policy  = policy.default\n  \
             service = service.db\n  {extra}\n}}\n\nservice \"db\" {{\n  container = \
             \"{container}\"\n}}\n"
        ),
    )
    .unwrap();
    ws
}

pub(crate) fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_event(events: &[serde_json::Value], kind: &str, hold: &str) -> bool {
    events
        .iter()
        .any(|e| e["type"] == kind && e["hold"] == hold)
}

#[test]
fn stop_and_pause_quiesce_the_service_around_the_copy_and_it_runs_again() {
    for (how, hold) in [("stop", "stopped"), ("pause", "paused")] {
        let volume = support::TestVolume::create(&format!("quiesce-{how}"));
        std::fs::write(volume.mountpoint().join("db.txt"), b"rows").unwrap();
        let container = TestContainer::start(how, volume.name());
        let ws = workspace(
            volume.name(),
            &container.name,
            &format!("consistency = \"{how}\""),
        );
        let plan = ws.ok(&["plan"]);
        assert!(
            plan.stdout()
                .contains(&format!("{how} service.db during the copy")),
            "{plan}"
        );
        assert!(!plan.stdout().contains("consistency` ("), "{plan}");
        let started_before = container.state().2;
        let applied = ws.ok(&["apply", "--auto-approve", "--json"]);
        let events = events(&applied.stdout());
        assert!(has_event(&events, "service_quiesced", hold), "{applied}");
        assert!(has_event(&events, "service_resumed", hold), "{applied}");
        let (running, paused, started_after) = container.state();
        assert!(running && !paused, "{how}: not running again");
        if how == "stop" {
            assert_ne!(started_before, started_after, "it was stopped and started");
        }
        // The next plan says how long the copy took last time.
        let plan = ws.ok(&["plan", "--replace", "volume.data"]);
        assert!(plan.stdout().contains("last copy took"), "{plan}");
        assert!(
            std::fs::read_dir(ws.path().join(".lifeboat/quiesce"))
                .unwrap()
                .next()
                .is_none(),
            "the journal is empty after a run"
        );
    }
}

#[test]
fn a_stopped_service_stays_stopped() {
    let volume = support::TestVolume::create("quiesce-stopped");
    let container = TestContainer::start("stopped", volume.name());
    docker(&["stop", "-t", "1", &container.name]);
    let ws = workspace(volume.name(), &container.name, "consistency = \"stop\"");
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(applied.to_string().contains("is not running"), "{applied}");
    assert!(!container.state().0, "a stopped container was started");
}

#[test]
fn a_failing_pre_hook_means_no_snapshot_and_the_service_running() {
    let volume = support::TestVolume::create("quiesce-hook");
    let container = TestContainer::start("hook", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "consistency = \"stop\"\n  pre = [\"sh\", \"-c\", \"echo flush failed; exit 4\"]\n  \
         post = [\"touch\", \"/data/post-ran\"]",
    );
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("exit 4` before"), "{plan}");
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code(), 1, "{applied}");
    assert!(
        applied.to_string().contains("exited with 4: flush failed"),
        "{applied}"
    );
    let snapshots = ws.ok(&["snapshots", "--json"]);
    assert!(!snapshots.stdout().contains("volume.data"), "{snapshots}");
    assert!(container.state().0, "the service is not running");
    assert!(
        volume.mountpoint().join("post-ran").exists(),
        "post did not run"
    );
}

#[test]
fn a_failing_pre_hook_is_a_command_failed_in_the_events_and_the_summary() {
    let volume = support::TestVolume::create("quiesce-class");
    let container = TestContainer::start("class", volume.name());
    let ws = workspace(
        volume.name(),
        &container.name,
        "pre = [\"sh\", \"-c\", \"exit 5\"]",
    );
    let applied = ws.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(applied.code(), 1, "{applied}");
    let events = events(&applied.stdout());
    let failed = events
        .iter()
        .find(|e| e["type"] == "resource_failed")
        .unwrap_or_else(|| panic!("no failure: {applied}"));
    assert_eq!(failed["class"], "command_failed", "{applied}");
    let summary = events.iter().find(|e| e["type"] == "summary").unwrap();
    let change = &summary["changes"][0];
    assert_eq!(change["status"], "failed", "{summary:#}");
    assert_eq!(change["class"], "command_failed", "{summary:#}");
    assert_eq!(
        change["copies"][0]["class"], "command_failed",
        "{summary:#}"
    );
}

/// Starts a backup and SIGKILLs it as soon as the service is stopped.
fn kill_while_stopped(ws: &Workspace, container: &TestContainer) {
    signal_while_stopped(ws, container, "KILL", &[]);
    assert!(!container.state().0, "the kill left it stopped");
}

/// Starts a backup (with `extra` arguments) and sends it `signal` as soon
/// as the service is stopped.
pub(crate) fn signal_while_stopped(
    ws: &Workspace,
    container: &TestContainer,
    signal: &str,
    extra: &[&str],
) {
    let mut args = vec!["apply", "--auto-approve", "--access", "api"];
    args.extend_from_slice(extra);
    let mut child = ws
        .process(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before the service was seen stopped"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never stopped"
        );
        if !container.state().0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap();
}

#[test]
fn a_sigkill_while_stopped_is_undone_by_recover_and_by_the_next_apply() {
    let volume = support::TestVolume::create("quiesce-kill");
    // Incompressible content, so the copy takes long enough to be killed in.
    for file in 0..48u64 {
        let data = support::random_bytes(1 << 20, 900 + file);
        std::fs::write(volume.mountpoint().join(format!("f{file}.bin")), data).unwrap();
    }
    let container = TestContainer::start("kill", volume.name());
    let ws = workspace(volume.name(), &container.name, "consistency = \"stop\"");

    kill_while_stopped(&ws, &container);
    let recovered = ws.ok(&["recover"]);
    assert!(recovered.stdout().contains("started again"), "{recovered}");
    assert!(container.state().0, "recover did not start it");
    let again = ws.ok(&["recover"]);
    assert!(again.stdout().contains("Nothing to recover"), "{again}");

    kill_while_stopped(&ws, &container);
    let applied = ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    assert!(applied.to_string().contains("started again"), "{applied}");
    assert!(container.state().0, "the next apply did not start it");
}

#[test]
fn sigterm_while_stopped_starts_the_service_before_exiting() {
    let volume = support::TestVolume::create("quiesce-term");
    for file in 0..48u64 {
        let data = support::random_bytes(1 << 20, 1900 + file);
        std::fs::write(volume.mountpoint().join(format!("f{file}.bin")), data).unwrap();
    }
    let container = TestContainer::start("term", volume.name());
    let ws = workspace(volume.name(), &container.name, "consistency = \"stop\"");
    signal_while_stopped(&ws, &container, "TERM", &[]);
    assert!(container.state().0, "SIGTERM left the service stopped");
    let recovered = ws.ok(&["recover"]);
    assert!(
        recovered.stdout().contains("Nothing to recover"),
        "{recovered}"
    );
}
