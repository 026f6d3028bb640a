//! `lifeboat drill` on the real engine: restores into scratch objects, runs
//! the checks, measures, and leaves the engine's volumes, containers and
//! networks exactly as they were, the live ones never stopped; a failed
//! check exits 4 and still cleans up; a killed drill's scratch objects are
//! removed by `recover`.

use crate::harness::Workspace;
use crate::services::{docker, docker_ok};

const IMAGE: &str = "lifeboat-test/busybox:1";

/// A live stack of one test: a volume with a few files and a container
/// using it, both named after the test and process; removed when dropped
/// (with anything a failed drill would have left under those names).
struct Stack {
    volume: String,
    container: String,
}

impl Stack {
    fn start(test: &str) -> Stack {
        let pid = std::process::id();
        let stack = Stack {
            volume: format!("lifeboat-test-drill-{test}-{pid}"),
            container: format!("lifeboat-test-drill-{test}-web-{pid}"),
        };
        docker_ok(&["volume", "create", &stack.volume]);
        let data = mountpoint(&stack.volume);
        std::fs::write(data.join("rows.txt"), b"the snapshot's rows").unwrap();
        std::fs::create_dir_all(data.join("nested/deeper")).unwrap();
        std::fs::write(data.join("nested/deeper/big.bin"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("rows.txt", data.join("link")).unwrap();
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &stack.container,
            "-v",
            &format!("{}:/data", stack.volume),
            IMAGE,
            "sleep",
            "3600",
        ]);
        stack
    }

    /// A workspace protecting the stack: the volume and the service with
    /// `verify` (and `start_timeout`), under a policy with RPO and RTO goals.
    fn workspace(&self, verify: &str, start_timeout: &str) -> Workspace {
        let ws = Workspace::with_volumes(&[]);
        let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
        let spec = format!(
            "{spec}\npolicy \"critical\" {{\n  rpo = \"1h\"\n  rto = \"15m\"\n  drill_every = \"30d\"\n}}\n\
             volume \"data\" {{\n  name   = \"{}\"\n  policy = policy.critical\n}}\n\
             service \"web\" {{\n  container     = \"{}\"\n  volumes       = [volume.data]\n  \
             verify        = {verify}\n  start_timeout = \"{start_timeout}\"\n}}\n",
            self.volume, self.container
        );
        std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
        ws
    }

    /// The engine's volumes and containers named after this stack, and
    /// every drill network (sorted): what a drill must leave as it found.
    fn objects(&self) -> Vec<String> {
        objects_named(&[&self.volume, &self.container])
    }

    fn started_at(&self) -> String {
        docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", &self.container])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for line in self.objects() {
            if let Some(container) = line.strip_prefix("container ") {
                let _ = docker(&["rm", "-f", container]);
            }
        }
        for line in self.objects() {
            if let Some(volume) = line.strip_prefix("volume ") {
                let _ = docker(&["volume", "rm", "-f", volume]);
            }
        }
    }
}

fn mountpoint(volume: &str) -> std::path::PathBuf {
    docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume]).into()
}

fn network_exists(name: &str) -> bool {
    docker(&["network", "inspect", name]).status.success()
}

/// The checks of `address` in a drill's JSON report, by name.
fn checks(report: &serde_json::Value, address: &str) -> Vec<(String, bool)> {
    let resource = report["drill"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("{address} in {report}"));
    resource["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["passed"] == true))
        .collect()
}

#[test]
fn a_drill_of_a_volume_and_a_verified_service_passes_and_leaves_the_engine_as_it_was() {
    let stack = Stack::start("pass");
    let ws = stack.workspace(r#"["test", "-f", "/data/rows.txt"]"#, "60s");
    ws.ok(&["apply", "--auto-approve"]);
    std::fs::write(mountpoint(&stack.volume).join("rows.txt"), b"live, newer").unwrap();
    let before = stack.objects();
    let started = stack.started_at();
    let due = "volume.data: never drilled, and policy.critical";
    let plan = ws.ok(&["plan"]);
    assert!(
        plan.stderr().contains(due) || plan.stdout().contains(due),
        "{plan}"
    );

    let report_file = ws.path().join("drill.md");
    let report_path = report_file.to_str().unwrap();
    let run = ws.run(&["drill", "--json", "--report", report_path]);
    assert_eq!(run.code(), 0, "{run}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON report");
    assert_eq!(report["kind"], "drill");
    assert_eq!(report["drill"]["passed"], true, "{report}");
    let volume = checks(&report, "volume.data");
    assert_eq!(
        volume,
        [
            ("restore".to_string(), true),
            ("content".to_string(), true),
            ("rto".to_string(), true),
            ("rpo".to_string(), true)
        ]
    );
    let service = checks(&report, "service.web");
    assert!(
        service.contains(&("verify".to_string(), true)),
        "{service:?}"
    );
    assert!(report["drill"]["rto_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["drill"]["rto_goal_seconds"], 900.0);
    let network = report["drill"]["network"].as_str().unwrap().to_string();
    assert!(network.starts_with("lifeboat-drill-"), "{network}");

    // The engine as before: the scratch objects are gone, the live
    // container was never stopped, the live data untouched.
    assert_eq!(stack.objects(), before);
    assert!(!network_exists(&network), "{network} removed");
    assert_eq!(
        stack.started_at(),
        started,
        "the live container never stopped"
    );
    assert_eq!(
        std::fs::read(mountpoint(&stack.volume).join("rows.txt")).unwrap(),
        b"live, newer"
    );
    assert!(
        crate::harness::files_in(&ws.path().join(".lifeboat/drills")).is_empty(),
        "the journal goes with the scratch objects"
    );

    // The Markdown report: sources, checks, goals, verdict, cleanup.
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    let snapshot = report["drill"]["resources"][0]["snapshot"]
        .as_str()
        .unwrap();
    for expected in [
        "PASSED",
        "| `volume.data` |",
        snapshot,
        "| main |",
        "| `volume.data` | content | PASSED |",
        "| `service.web` | verify | PASSED |",
        "(goal 15m: met)",
        &format!("- removed network {network}"),
        &format!("- removed volume {}-drill-", stack.volume),
    ] {
        assert!(markdown.contains(expected), "{expected:?} in:\n{markdown}");
    }
    // The drill is a run record like any other, and plan knows of it.
    let runs = ws.ok(&["runs"]);
    assert!(runs.stdout().contains("drill"), "{runs}");
    let plan = ws.ok(&["plan"]);
    let words = format!("{plan}");
    assert!(
        !words.contains("never drilled") && !words.contains("last drilled"),
        "{plan}"
    );
}

#[test]
fn a_drill_ended_by_sigterm_removes_its_scratch_objects_before_it_exits() {
    let stack = Stack::start("term");
    let ws = stack.workspace(r#"["test", "-f", "/data/not-there"]"#, "120s");
    ws.ok(&["apply", "--auto-approve"]);
    let before = stack.objects();
    let started = stack.started_at();
    let drill = ws
        .process(&["drill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_scratch_container(&stack);
    let pid = drill.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let ended = drill.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(143), "{ended:?}");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(stderr.contains("scratch object(s) of drill"), "{stderr}");
    assert_eq!(stack.objects(), before, "removed before it exited");
    assert_eq!(stack.started_at(), started);
    assert!(crate::harness::files_in(&ws.path().join(".lifeboat/drills")).is_empty());
}

/// The network the one drill journal of `ws` names (a killed drill's).
fn journaled_network(ws: &Workspace) -> String {
    let journals = crate::harness::files_in(&ws.path().join(".lifeboat/drills"));
    assert_eq!(journals.len(), 1, "its journal names them");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&journals[0]).unwrap()).unwrap();
    let network = journal["engines"]["default"]["networks"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(network_exists(&network), "{journal}");
    network
}

/// Waits (at most a minute) for the drill's scratch container of `stack`.
fn wait_for_scratch_container(stack: &Stack) {
    let scratch_container = format!("container {}-drill-", stack.container);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !stack
        .objects()
        .iter()
        .any(|o| o.starts_with(&scratch_container))
    {
        assert!(std::time::Instant::now() < deadline, "no scratch container");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_drill_whose_verify_fails_exits_4_and_still_cleans_up() {
    let stack = Stack::start("fail");
    let ws = stack.workspace(r#"["test", "-f", "/data/not-there"]"#, "3s");
    ws.ok(&["apply", "--auto-approve"]);
    let before = stack.objects();
    let started = stack.started_at();

    let run = ws.run(&["drill"]);
    assert_eq!(run.code(), 4, "{run}");
    let out = run.stdout();
    assert!(out.contains("Drill FAILED"), "{run}");
    assert!(out.contains("✗ service.web"), "{run}");
    assert!(out.contains("✓ volume.data"), "{run}");
    assert_eq!(stack.objects(), before, "every scratch object removed");
    assert_eq!(stack.started_at(), started);
}

#[test]
fn a_killed_drill_leaves_scratch_objects_that_recover_removes() {
    let stack = Stack::start("kill");
    // A verify that never passes keeps the drill waiting for it: killed then.
    let ws = stack.workspace(r#"["test", "-f", "/data/not-there"]"#, "120s");
    ws.ok(&["apply", "--auto-approve"]);
    let before = stack.objects();
    let mut drill = ws
        .process(&["drill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_scratch_container(&stack);
    drill.kill().unwrap(); // SIGKILL
    drill.wait().unwrap();
    assert_ne!(
        stack.objects(),
        before,
        "the killed drill left its scratch objects"
    );
    let network = journaled_network(&ws);

    let recovered = ws.ok(&["recover"]);
    assert!(
        recovered.stdout().contains("removed drill scratch"),
        "{recovered}"
    );
    assert_eq!(stack.objects(), before, "recover removed them");
    assert!(!network_exists(&network));
    assert!(crate::harness::files_in(&ws.path().join(".lifeboat/drills")).is_empty());
}

/// A live PostgreSQL server (tests/integration/dumps.rs's) with 100 rows,
/// protected by a spec of its volume (copied with the server stopped), the
/// service (its `verify` counts the rows) and a dump loaded with
/// `restore_command`; backed up, then 50 rows added live.
fn postgres_backed_up(test: &str, restore_command: &str) -> (crate::dumps::Server, Workspace) {
    let server = crate::dumps::Server::new(test);
    server.start();
    server.psql("CREATE TABLE items (n integer); INSERT INTO items SELECT generate_series(1, 100)");
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let spec = format!(
        "{spec}\npolicy \"critical\" {{\n  rpo = \"1h\"\n  rto = \"15m\"\n}}\n\
         volume \"pgdata\" {{\n  name        = \"{volume}\"\n  policy      = policy.critical\n  \
         consistency = \"stop\"\n  service     = service.db\n}}\n\
         service \"db\" {{\n  container     = \"{container}\"\n  volumes       = [volume.pgdata]\n  \
         verify        = [\"psql\", \"-U\", \"postgres\", \"-tAc\", \"select count(*) from items\"]\n  \
         start_timeout = \"120s\"\n}}\n\
         dump \"db\" {{\n  service         = service.db\n  policy          = policy.critical\n  \
         command         = [\"pg_dumpall\", \"-U\", \"postgres\"]\n  \
         restore_command = {restore_command}\n}}\n",
        volume = server.volume,
        container = server.container,
    );
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    server.wait_healthy();
    server.psql("INSERT INTO items SELECT generate_series(101, 150)");
    (server, ws)
}

/// The engine's containers and volumes of `server`'s project (the live
/// ones and any scratch one named after them), sorted.
fn project_objects(server: &crate::dumps::Server) -> Vec<String> {
    objects_named(&[&server.project])
}

/// The engine's volumes and containers whose names start with one of
/// `prefixes` (`volume NAME`, `container NAME`), sorted.
fn objects_named(prefixes: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for (kind, list) in [
        ("volume", vec!["volume", "ls", "-q"]),
        ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
    ] {
        for name in docker_ok(&list).lines() {
            if prefixes.iter().any(|p| name.starts_with(p)) {
                names.push(format!("{kind} {name}"));
            }
        }
    }
    names.sort();
    names
}

fn started_at(container: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", container])
}

/// What a drill must leave as it found it: the project's objects and the
/// live server's start time (with its 150 rows and no drill journal).
struct LiveServer {
    objects: Vec<String>,
    started: String,
}

impl LiveServer {
    fn before(server: &crate::dumps::Server) -> LiveServer {
        LiveServer {
            objects: project_objects(server),
            started: started_at(&server.container),
        }
    }

    /// Nothing of the drill is left; the live server never stopped and
    /// keeps its rows.
    fn assert_left_alone(&self, server: &crate::dumps::Server, ws: &Workspace) {
        assert_eq!(
            project_objects(server),
            self.objects,
            "every scratch object removed"
        );
        assert_eq!(started_at(&server.container), self.started, "never stopped");
        assert_eq!(server.rows(), "150");
        assert!(crate::harness::files_in(&ws.path().join(".lifeboat/drills")).is_empty());
    }
}

/// PostgreSQL's restore command as `lifeboat init` writes it.
const PSQL_LOAD: &str = r#"["sh", "-c", "sed '/^CREATE ROLE postgres;$/d' | exec psql -v ON_ERROR_STOP=1 -U postgres -d postgres"]"#;

#[test]
fn a_drill_loads_the_dump_into_a_scratch_server_and_counts_the_snapshots_rows() {
    let (server, ws) = postgres_backed_up("drilldump", PSQL_LOAD);
    let live = LiveServer::before(&server);

    let report_file = ws.path().join("drill.md");
    let run = ws.run(&["drill", "--json", "--report", report_file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{run}");
    // The plan (on stderr with --json) says where the dump goes.
    let plan = run
        .stderr()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let scratch_server = format!("{}-db-drill-", server.container);
    assert!(
        plan.contains(&format!("< dump.db → container {scratch_server}"))
            && plan.contains(&format!(
                "stream the dump into scratch server {scratch_server}"
            ))
            && plan.contains("started from lifeboat-test/postgres:15 on empty scratch volumes"),
        "{run}"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON report");
    assert_eq!(report["drill"]["passed"], true, "{report}");
    let dump = checks(&report, "dump.db");
    assert_eq!(
        dump,
        [
            ("restore".to_string(), true),
            ("verify".to_string(), true),
            ("rto".to_string(), true),
            ("rpo".to_string(), true)
        ],
        "{report}"
    );
    let row = report["drill"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "dump.db")
        .unwrap();
    let verify = row["checks"][1]["detail"].as_str().unwrap();
    // The snapshot's 100 rows, counted in the scratch server: not the
    // live server's 150.
    assert!(verify.ends_with("printing: 100"), "{verify}");
    assert!(row["into"].as_str().unwrap().starts_with(&scratch_server));
    assert!(row["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(row["rpo_seconds"].as_f64().is_some());
    let markdown = std::fs::read_to_string(&report_file).unwrap();
    for expected in [
        "| `dump.db` | verify | PASSED |",
        "printing: 100 |",
        "| `dump.db` | restore | PASSED | loaded into scratch server",
        &format!("- removed volume {}-db-drill-", server.volume),
        &format!("- removed container {scratch_server}"),
    ] {
        assert!(markdown.contains(expected), "{expected:?} in:\n{markdown}");
    }

    live.assert_left_alone(&server, &ws);
    let network = report["drill"]["network"].as_str().unwrap();
    assert!(!network_exists(network), "{network} removed");
}

#[test]
fn a_drill_whose_dump_does_not_load_exits_4_and_still_cleans_up() {
    // Fed nothing (the readiness probe) it connects and succeeds; fed the
    // dump, it fails as a corrupted load would.
    let failing = r#"["sh", "-c", "input=$(cat); psql -U postgres -c 'select 1' >/dev/null || exit 2; test -z \"$input\" || { echo 'ERROR: the dump is corrupted' >&2; exit 3; }"]"#;
    let (server, ws) = postgres_backed_up("drillbad", failing);
    let live = LiveServer::before(&server);

    let run = ws.run(&["drill"]);
    assert_eq!(run.code(), 4, "{run}");
    let out = run.stdout();
    assert!(out.contains("Drill FAILED"), "{run}");
    assert!(out.contains("✗ dump.db"), "{run}");
    assert!(out.contains("ERROR: the dump is corrupted"), "{run}");
    assert!(out.contains("✓ volume.pgdata"), "{run}");
    live.assert_left_alone(&server, &ws);
}

#[test]
fn a_drill_killed_while_its_scratch_database_server_runs_leaves_nothing_after_recover() {
    // Fed nothing (the readiness probe) it succeeds at once; fed the dump
    // it hangs: the drill is killed while its server holds the load.
    let hanging = r#"["sh", "-c", "input=$(cat); psql -U postgres -c 'select 1' >/dev/null || exit 2; test -z \"$input\" || sleep 600"]"#;
    let (server, ws) = postgres_backed_up("drillkill", hanging);
    let live = LiveServer::before(&server);
    let mut drill = ws
        .process(&["drill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scratch_server = format!("container {}-db-drill-", server.container);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !project_objects(&server)
        .iter()
        .any(|o| o.starts_with(&scratch_server))
    {
        assert!(std::time::Instant::now() < deadline, "no scratch server");
        assert!(drill.try_wait().unwrap().is_none(), "the drill ended first");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Once the dump is being fed to it (its readiness probe passed).
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(drill.try_wait().unwrap().is_none(), "the drill ended first");
    drill.kill().unwrap(); // SIGKILL
    drill.wait().unwrap();
    assert_ne!(
        project_objects(&server),
        live.objects,
        "the server was left"
    );
    let network = journaled_network(&ws);

    let recovered = ws.ok(&["recover"]);
    assert!(
        recovered.stdout().contains("removed drill scratch"),
        "{recovered}"
    );
    live.assert_left_alone(&server, &ws);
    assert!(!network_exists(&network), "{network} removed");
}
