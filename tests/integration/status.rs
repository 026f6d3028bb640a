//! `lifeboat status` against real backups in a real repository: JSON that
//! follows its schema, a Prometheus textfile promtool accepts, no Docker
//! engine needed, resources going late and missing, exit codes; and the
//! `notify` blocks against a local HTTP receiver (success, failure, late,
//! and a receiver that is down).

use crate::harness::{Run, Workspace, assert_valid, schema};
use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A Docker engine nobody answers on.
const DEAD_ENGINE: &str = "unix:///nonexistent/lifeboat-test/docker.sock";

/// `lifeboat ARGS` with the Docker engine unreachable (whatever it exits with).
fn without_docker(ws: &Workspace, args: &[&str]) -> Run {
    Run(ws
        .process(args)
        .env("DOCKER_HOST", DEAD_ENGINE)
        .output()
        .unwrap())
}

/// `status --json` without Docker: the exit code and the status, checked
/// against its schema.
fn status_json(ws: &Workspace) -> (i32, serde_json::Value) {
    let run = without_docker(ws, &["status", "--json"]);
    let value: serde_json::Value =
        serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_valid(&schema("status.schema.json"), &value);
    (run.code(), value)
}

fn edit_spec(ws: &Workspace, edit: impl Fn(String) -> String) {
    let path = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(spec)).unwrap();
}

/// `promtool check metrics < FILE`: its complaints, if any.
fn promtool_check(file: &Path) -> Result<(), String> {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("promtool ({e}): run scripts/test.sh, which installs Debian's prometheus")
        })?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(file).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn status_of_a_real_backup_in_json_and_a_prometheus_file_promtool_accepts() {
    let volume = support::TestVolume::create("status-real");
    std::fs::write(volume.mountpoint().join("f"), vec![7u8; 4096]).unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);

    let (code, before) = status_json(&ws);
    assert_eq!(code, 5, "never backed up: missing\n{before:#}");
    assert_eq!(before["resources"][0]["state"], "missing");
    assert_eq!(before["repositories"][0]["state"], "absent");

    ws.ok(&["apply", "--auto-approve"]);
    let metrics = ws.path().join("textfile").join("lifeboat.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let run = without_docker(
        &ws,
        &[
            "status",
            "--json",
            "--prometheus",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code(), 0, "{run}");
    let status: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_valid(&schema("status.schema.json"), &status);
    assert_eq!(status["verdict"], "ok");
    let data = &status["resources"][0];
    assert_eq!(data["address"], "volume.data");
    assert_eq!(data["state"], "ok");
    assert_eq!(data["rpo_seconds"], 86400);
    assert_eq!(data["copies"][0]["repository"], "main");
    assert_eq!(data["copies"][0]["bytes"], 4096);
    assert_eq!(data["last_outcome"]["status"], "done");
    assert_eq!(data["size"]["changed"], false);
    assert!(data["last_drill"].is_null(), "never drilled");

    let text = std::fs::read_to_string(&metrics).unwrap();
    for expected in [
        "# TYPE lifeboat_last_success_timestamp_seconds gauge",
        "lifeboat_rpo_seconds{resource=\"volume.data\"} 86400",
        "lifeboat_snapshot_bytes{resource=\"volume.data\",repository=\"main\"} 4096",
        "lifeboat_last_outcome{resource=\"volume.data\",outcome=\"done\"} 1",
        "lifeboat_repository_up{repository=\"main\"} 1",
        "lifeboat_status_exit_code 0",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    assert!(
        !text.contains("lifeboat_drill_rto_seconds{"),
        "no drill, no sample"
    );
    let leftovers: Vec<_> = std::fs::read_dir(metrics.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "written by a rename: {leftovers:?}");
    promtool_check(&metrics).unwrap();

    let human = without_docker(&ws, &["status"]);
    assert_eq!(human.code(), 0, "{human}");
    assert!(human.stdout().contains("volume.data"), "{human}");
    assert!(human.stdout().contains("main ok"), "{human}");
    assert!(human.stdout().contains("Status: all ok."), "{human}");
}

#[test]
fn status_needs_no_engine_and_a_dead_hosts_resources_go_late() {
    let volume = support::TestVolume::create("status-late");
    std::fs::write(volume.mountpoint().join("f"), b"rows").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    // The host is gone: its engine does not answer, and time passes its rpo.
    edit_spec(&ws, |spec| {
        spec.replace("rpo = \"24h\"", "rpo = \"1s\"").replace(
            "policy = policy.default",
            "policy = policy.default\n  engine = engine.gone",
        ) + &format!("\nengine \"gone\" {{\n  host = \"{DEAD_ENGINE}\"\n}}\n")
    });
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, status) = status_json(&ws);
    assert_eq!(code, 4, "late\n{status:#}");
    assert_eq!(status["verdict"], "late");
    assert_eq!(status["resources"][0]["state"], "late");
    assert_eq!(status["resources"][0]["copies"][0]["state"], "late");
    assert!(status["resources"][0]["age_seconds"].as_u64().unwrap() >= 2);

    let human = without_docker(&ws, &["status"]);
    assert_eq!(human.code(), 4, "{human}");
    assert!(
        human
            .stdout()
            .contains("Status: late. 1 resource: 0 ok, 1 late."),
        "{human}"
    );

    // A repository that cannot be opened is reported, and wins.
    let wrong = ws
        .process(&["status", "--json"])
        .env("DOCKER_HOST", DEAD_ENGINE)
        .env("LIFEBOAT_TEST_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    let wrong = Run(wrong);
    assert_eq!(wrong.code(), 6, "{wrong}");
    let status: serde_json::Value = serde_json::from_str(&wrong.stdout()).unwrap();
    assert_eq!(status["repositories"][0]["state"], "unreachable");
    assert_eq!(status["repositories"][0]["class"], "repository_unavailable");
    assert_eq!(status["resources"][0]["state"], "unknown");
    assert!(!wrong.stdout().contains("not the passphrase"));
}

/// One HTTP request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: String,
}

/// A local HTTP receiver on a thread, recording every request; answers
/// 200 to each.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if let Some(request) = read_request(&mut stream) {
                    sink.lock().unwrap().push(request);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                );
            }
        });
        Receiver { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn notify_blocks_are_sent_success_failure_and_late_and_healthchecks_pinged() {
    let receiver = Receiver::start();
    let volume = support::TestVolume::create("status-notify");
    std::fs::write(volume.mountpoint().join("f"), b"rows").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let token_path = "/hooks/T0KEN-secret";
    edit_spec(&ws, |spec| {
        spec + "\nnotify \"ops\" {\n  url_env = \"LIFEBOAT_TEST_HOOK\"\n  on = [\"failure\", \"late\", \"success\"]\n}\n\
                notify \"uptime\" {\n  healthchecks {\n    url_env = \"LIFEBOAT_TEST_PING\"\n  }\n}\n"
    });
    let with_hooks = |args: &[&str]| {
        Run(ws
            .process(args)
            .env("LIFEBOAT_TEST_HOOK", receiver.url(token_path))
            .env("LIFEBOAT_TEST_PING", receiver.url("/ping/abc"))
            .output()
            .unwrap())
    };
    let applied = with_hooks(&["apply", "--auto-approve"]);
    assert_eq!(applied.code(), 0, "{applied}");
    assert!(!applied.stdout().contains("T0KEN"), "{applied}");
    assert!(
        applied.stdout().contains("notify.ops (127.0.0.1:"),
        "{applied}"
    );
    let paths: Vec<String> = receiver.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/ping/abc/start", token_path, "/ping/abc"]);
    let body: serde_json::Value = serde_json::from_str(&receiver.received()[1].body).unwrap();
    assert_valid(&schema("notify.schema.json"), &body);
    assert_eq!(body["event"], "success");
    assert_eq!(body["resources"][0]["address"], "volume.data");
    assert_eq!(body["resources"][0]["status"], "done");
    assert!(body["text"].as_str().unwrap().contains("apply done"));

    // The volume is gone: the backup fails, the receivers are told.
    drop(volume);
    edit_spec(&ws, |spec| spec.replace("rpo = \"24h\"", "rpo = \"1s\""));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let failed = with_hooks(&["apply", "--auto-approve"]);
    assert_eq!(failed.code(), 1, "{failed}");
    let received = receiver.received();
    let bodies: Vec<serde_json::Value> = received[3..]
        .iter()
        .filter(|r| r.path == token_path)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["late", "failure"], "{received:?}");
    assert_eq!(bodies[1]["resources"][0]["status"], "failed");
    assert_eq!(bodies[1]["resources"][0]["class"], "refused");
    assert_eq!(bodies[0]["resources"][0]["rpo_seconds"], 1);
    assert!(
        received.iter().any(|r| r.path == "/ping/abc/fail"),
        "{received:?}"
    );

    // `status --notify` tells those watching `late`; healthchecks watch it themselves.
    let before = receiver.received().len();
    let status = with_hooks(&["status", "--notify"]);
    assert_eq!(status.code(), 4, "{status}");
    let sent: Vec<Received> = receiver.received()[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let body: serde_json::Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body["event"], "late");
    assert!(body.get("run").is_none());
    assert!(!status.stderr().contains("T0KEN"), "{status}");
}

#[test]
fn a_receiver_that_is_down_is_a_warning_of_the_run_never_a_failed_backup() {
    let volume = support::TestVolume::create("status-down");
    std::fs::write(volume.mountpoint().join("f"), b"rows").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let port = closed_port();
    edit_spec(&ws, |spec| {
        spec + &format!(
            "\nnotify \"chat\" {{\n  url = \"http://127.0.0.1:{port}/hook\"\n  on = [\"success\"]\n  timeout = \"2s\"\n}}\n"
        )
    });
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code(), 0, "{applied}");
    assert!(
        applied.stdout().contains(&format!(
            "warning: notify.chat (127.0.0.1:{port}): not delivered"
        )),
        "{applied}"
    );
    assert!(!applied.stdout().contains("/hook"), "{applied}");
    let runs: serde_json::Value =
        serde_json::from_str(&without_docker(&ws, &["runs", "--json"]).stdout()).unwrap();
    let warnings = runs[0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{runs:#}");
    assert!(warnings[0].as_str().unwrap().contains("notify.chat"));
    assert!(runs[0]["errors"].as_array().unwrap().is_empty());
}

#[test]
fn a_notify_block_without_one_destination_or_with_unknown_events_is_refused() {
    let ws = Workspace::with_volumes(&[]);
    edit_spec(&ws, |spec| {
        spec + "\nnotify \"both\" {\n  url = \"https://a.example\"\n  url_env = \"B\"\n}\n\
                notify \"odd\" {\n  url_env = \"X\"\n  on = [\"failure\", \"sometimes\"]\n}\n\
                notify \"ftp\" {\n  url = \"ftp://files.example\"\n}\n"
    });
    let run = ws.run(&["validate"]);
    assert_eq!(run.code(), 1, "{run}");
    let text = run.stderr();
    assert!(
        text.contains("notify \"both\" needs exactly one destination"),
        "{run}"
    );
    assert!(
        text.contains("\"sometimes\" is not an event of `on`"),
        "{run}"
    );
    assert!(text.contains("main.hcl:"), "{run}");
    assert!(text.contains("not an http:// or https:// URL"), "{run}");
}

#[test]
fn restores_and_drills_are_told_with_their_kind_and_a_receiver_down_is_only_a_warning() {
    let receiver = Receiver::start();
    let volume = support::TestVolume::create("status-restore-notify");
    std::fs::write(volume.mountpoint().join("f"), b"rows").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let port = closed_port();
    edit_spec(&ws, |spec| {
        spec + &format!(
            "\nnotify \"ops\" {{\n  url_env = \"LIFEBOAT_TEST_HOOK\"\n  on = [\"failure\", \"success\"]\n}}\n\
             notify \"uptime\" {{\n  healthchecks {{\n    url_env = \"LIFEBOAT_TEST_PING\"\n  }}\n}}\n\
             notify \"chat\" {{\n  url = \"http://127.0.0.1:{port}/hook\"\n  on = [\"success\", \"failure\"]\n  timeout = \"2s\"\n}}\n"
        )
    });
    let with_hooks = |args: &[&str]| {
        Run(ws
            .process(args)
            .env("LIFEBOAT_TEST_HOOK", receiver.url("/hook"))
            .env("LIFEBOAT_TEST_PING", receiver.url("/ping/abc"))
            .output()
            .unwrap())
    };
    let bodies = |from: usize| -> Vec<serde_json::Value> {
        let received = receiver.received();
        assert!(
            received[from..].iter().all(|r| r.path == "/hook"),
            "a restore or drill pings no healthchecks check: {received:?}"
        );
        received[from..]
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    };

    // A drill that passes: a success of kind drill.
    let drilled = with_hooks(&["drill"]);
    assert_eq!(drilled.code(), 0, "{drilled}");
    let sent = bodies(0);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_valid(&schema("notify.schema.json"), &sent[0]);
    assert_eq!(sent[0]["kind"], "drill");
    assert_eq!(sent[0]["event"], "success");
    assert!(sent[0]["text"].as_str().unwrap().contains("drill PASSED"));

    // The host lost the volume: a restore, told as one; the receiver
    // that is down is a warning, the restore succeeds.
    crate::services::docker_ok(&["volume", "rm", volume.name()]);
    let restored = with_hooks(&["restore", "--auto-approve"]);
    assert_eq!(restored.code(), 0, "{restored}");
    assert!(
        restored.stdout().contains(&format!(
            "warning: notify.chat (127.0.0.1:{port}): not delivered"
        )),
        "{restored}"
    );
    let sent = bodies(1);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["kind"], "restore");
    assert_eq!(sent[0]["event"], "success");
    assert_eq!(sent[0]["resources"][0]["address"], "volume.data");
    assert!(sent[0]["run"].is_string());

    // A drill of data older than its RPO fails: a failure of kind drill,
    // naming the check that failed.
    edit_spec(&ws, |spec| spec.replace("rpo = \"24h\"", "rpo = \"1s\""));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let failed = with_hooks(&["drill"]);
    assert_eq!(failed.code(), 4, "{failed}");
    let sent = bodies(2);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["kind"], "drill");
    assert_eq!(sent[0]["event"], "failure");
    assert_eq!(sent[0]["resources"][0]["status"], "failed");
    assert!(
        sent[0]["resources"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rpo: data"),
        "{sent:?}"
    );
}
