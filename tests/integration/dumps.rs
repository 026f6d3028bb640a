//! Dumps against the real engine: a command's stdout streamed from a
//! busybox container into the repository and back into a restore command
//! byte for byte, a re-dump of unchanged data adding little, failing
//! commands (exit code, `fail_on_stderr`) storing nothing, the memory
//! of the lifeboat process flat for a 500 MB dump, and, on the real
//! PostgreSQL image with the spec `init` writes, each database restored
//! from one source: its volume, or its dump into a new server.

use crate::harness::Workspace;
use std::process::Command;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A busybox container sleeping (no volume: the dump reads its own
/// filesystem), removed when dropped.
struct TestContainer {
    name: String,
}

impl TestContainer {
    fn start(test: &str) -> TestContainer {
        let name = format!("lifeboat-dumps-{test}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ]);
        TestContainer { name }
    }

    fn sh(&self, script: &str) -> String {
        docker(&["exec", &self.name, "sh", "-c", script])
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// A workspace whose spec has service `db` on `container` and `dumps`
/// (each a `dump` block's name and body).
fn workspace(container: &str, dumps: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::with_volumes(&[]);
    let mut spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    spec.push_str(&format!(
        "\nservice \"db\" {{\n  container = \"{container}\"\n}}\n"
    ));
    for (name, body) in dumps {
        spec.push_str(&format!(
            "\ndump \"{name}\" {{\n  service = service.db\n  policy  = policy.default\n{body}\n}}\n"
        ));
    }
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    ws
}

fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn finished(stdout: &str) -> serde_json::Value {
    events(stdout)
        .into_iter()
        // The service a dump runs in is backed up too: its event is not this one.
        .find(|e| {
            e["type"] == "resource_finished"
                && e["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("dump."))
        })
        .unwrap_or_else(|| panic!("no resource_finished in {stdout}"))
}

/// The dump snapshots the repository holds (the service's are not counted).
fn snapshot_count(ws: &Workspace) -> usize {
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("dump."))
        })
        .count()
}

#[test]
fn a_dump_restores_byte_for_byte_and_an_unchanged_redump_adds_little() {
    let container = TestContainer::start("roundtrip");
    container.sh("dd if=/dev/urandom of=/db.sql bs=1M count=24 2>/dev/null");
    let ws = workspace(
        &container.name,
        &[(
            "sql",
            "  command         = [\"sh\", \"-c\", \"cat /db.sql\"]\n  restore_command = [\"sh\", \
             \"-c\", \"cat > /restored.sql\"]\n  fail_on_stderr  = [\"FATAL\"]",
        )],
    );
    let validated = ws.ok(&["validate"]);
    assert!(!validated.stdout().contains("dump.sql"), "{validated}");
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("dump.sql"), "{plan}");
    let first = finished(&ws.ok(&["apply", "--auto-approve", "--json"]).stdout());
    let size = 24u64 << 20;
    assert_eq!(first["bytes"], size, "{first}");
    let within = ws.ok(&["plan"]);
    assert!(within.stdout().contains("= dump.sql"), "{within}");
    let again = finished(
        &ws.ok(&["apply", "--auto-approve", "--json", "--replace", "dump.sql"])
            .stdout(),
    );
    let added = again["added_bytes"].as_u64().unwrap();
    assert!(
        added < size / 20,
        "the re-dump added {added} of {size} bytes"
    );

    // The running container may hold the dump's rows: a whole restore
    // leaves it alone, naming the dump with --replace loads it over.
    let whole = ws.ok(&["restore", "--auto-approve"]);
    assert!(
        whole.stdout().contains("= dump.sql")
            && whole.stdout().contains("not loaded: service.db holds data"),
        "{whole}"
    );
    let restored = ws.ok(&[
        "restore",
        "--auto-approve",
        "--target",
        "dump.sql",
        "--replace",
    ]);
    assert!(
        restored
            .stdout()
            .contains("over the data the server holds (--replace)"),
        "{restored}"
    );
    let sums = container.sh("sha256sum /db.sql /restored.sql | cut -d' ' -f1");
    let sums: Vec<&str> = sums.lines().collect();
    assert_eq!(sums.len(), 2);
    assert_eq!(sums[0], sums[1], "the restore command received other bytes");
}

/// pg_dump writes a random `\restrict` key on its first and last lines:
/// dumps of an unchanged database differ there only, and each re-dump
/// stores little more than the two small chunks around those lines.
#[test]
fn re_dumps_that_differ_in_their_first_and_last_lines_add_two_small_chunks() {
    let container = TestContainer::start("redump");
    // About 7 MB of text that compresses about 2:1, as rows do.
    container.sh("head -c 3000000 /dev/urandom | od -An -tx4 > /db.sql");
    let ws = workspace(
        &container.name,
        &[(
            "sql",
            "  command         = [\"sh\", \"-c\", \"k=$(head -c 16 /dev/urandom | od -An -tx1 \
             | tr -d ' \\\\n'); echo \\\"restrict $k\\\"; cat /db.sql; echo \\\"unrestrict \
             $k\\\"\"]\n  restore_command = [\"sh\", \"-c\", \"cat > /restored.sql\"]",
        )],
    );
    let first = finished(&ws.ok(&["apply", "--auto-approve", "--json"]).stdout());
    let size = first["bytes"].as_u64().unwrap();
    assert!(size > 6 << 20, "{first}");
    for _ in 0..3 {
        let again = finished(
            &ws.ok(&["apply", "--auto-approve", "--json", "--replace", "dump.sql"])
                .stdout(),
        );
        assert_eq!(again["bytes"], size, "{again}");
        // Whole MiB chunks (the files' size) would add over 1 MB here.
        let added = again["added_bytes"].as_u64().unwrap();
        assert!(added < 200_000, "a re-dump added {added} B");
    }
    ws.ok(&[
        "restore",
        "--auto-approve",
        "--target",
        "dump.sql",
        "--replace",
    ]);
    let lines = container.sh("sed -n '1p;$p' /restored.sql | cut -d' ' -f1 | tr '\\n' ' '");
    assert_eq!(
        lines, "restrict unrestrict",
        "the restored dump lost its ends"
    );
    let middle = container.sh("sed '1d;$d' /restored.sql | cmp - /db.sql && echo same");
    assert_eq!(middle, "same");
}

#[test]
fn a_failing_dump_stores_nothing_and_says_why() {
    let container = TestContainer::start("failing");
    let ws = workspace(
        &container.name,
        &[
            (
                "exits",
                "  command = [\"sh\", \"-c\", \"head -c 3000000 /dev/zero; echo 'could not \
                 connect' >&2; exit 3\"]",
            ),
            (
                "warns",
                "  command        = [\"sh\", \"-c\", \"echo 'pg_dump: error: lost rows' >&2; \
                 head -c 3000000 /dev/zero\"]\n  fail_on_stderr = [\"error:\"]",
            ),
        ],
    );
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_ne!(applied.code(), 0, "{applied}");
    let all = format!("{}{}", applied.stdout(), applied.stderr());
    assert!(all.contains("exited with code 3"), "{all}");
    assert!(all.contains("could not connect"), "{all}");
    assert!(all.contains("\"error:\" (fail_on_stderr)"), "{all}");
    assert!(all.contains("lost rows"), "{all}");
    assert_eq!(snapshot_count(&ws), 0, "a failed dump is never stored");
    let restore = ws.run(&["restore", "--auto-approve"]);
    assert_ne!(restore.code(), 0, "{restore}");
}

#[test]
fn a_dump_without_restore_command_is_a_problem_in_the_restore_plan() {
    let container = TestContainer::start("norestore");
    let ws = workspace(
        &container.name,
        &[("sql", "  command = [\"sh\", \"-c\", \"echo select 1\"]")],
    );
    ws.ok(&["apply", "--auto-approve"]);
    let plan = ws.run(&["restore"]);
    let all = format!("{}{}", plan.stdout(), plan.stderr());
    assert!(all.contains("has no restore_command"), "{all}");
}

/// Peak resident memory (KiB) of `lifeboat apply --target ADDR`.
fn peak_kib(ws: &Workspace, target: &str) -> (u64, f64) {
    let inner = ws.process(&["apply", "--auto-approve", "--target", target]);
    let mut command = Command::new("/usr/bin/time");
    command.args(["-f", "%M"]).arg(inner.get_program());
    command.args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let started = std::time::Instant::now();
    let output = command.output().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let kib = stderr
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak in {stderr}"));
    (kib, elapsed)
}

#[test]
fn memory_stays_flat_for_a_500_mb_dump() {
    let container = TestContainer::start("memory");
    let ws = workspace(
        &container.name,
        &[
            (
                "small",
                "  command = [\"sh\", \"-c\", \"head -c 120000000 /dev/urandom\"]",
            ),
            (
                "large",
                "  command = [\"sh\", \"-c\", \"head -c 500000000 /dev/urandom\"]",
            ),
        ],
    );
    let (small, _) = peak_kib(&ws, "dump.small");
    let (large, seconds) = peak_kib(&ws, "dump.large");
    eprintln!(
        "peak RSS: 120 MB dump {small} KiB, 500 MB dump {large} KiB; 500 MB in {seconds:.1} s \
         ({:.0} MB/s)",
        500.0 / seconds
    );
    // Both fill the whole pipeline (read-ahead, chunks in flight, a pack
    // being written); past that, more bytes must not mean more memory.
    assert!(
        large < small + 24 * 1024,
        "peak memory grew with the dump: {small} KiB for 120 MB, {large} KiB for 500 MB"
    );
}

#[test]
fn an_interrupted_dump_is_killed_in_the_container_and_not_stored() {
    let container = TestContainer::start("interrupt");
    let ws = workspace(
        &container.name,
        &[(
            "sql",
            "  command = [\"sh\", \"-c\", \"head -c 3000000 /dev/zero; sleep 313\"]",
        )],
    );
    let child = ws
        .process(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sleeping = || container.sh("ps -o args").contains("sleep 313");
    let started = std::time::Instant::now();
    while !sleeping() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the dump never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let started = std::time::Instant::now();
    while sleeping() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the dump command still runs in the container after lifeboat was interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        snapshot_count(&ws),
        0,
        "an interrupted dump is never stored"
    );
}

#[test]
fn a_failing_restore_command_fails_the_restore_with_its_exit_code_and_stderr() {
    let container = TestContainer::start("badload");
    let ws = workspace(
        &container.name,
        &[(
            "sql",
            "  command         = [\"sh\", \"-c\", \"head -c 5000000 /dev/urandom\"]\n  \
             restore_command = [\"sh\", \"-c\", \"cat > /dev/null; echo 'ERROR: relation exists' \
             >&2; exit 4\"]",
        )],
    );
    ws.ok(&["apply", "--auto-approve"]);
    let restored = ws.run(&[
        "restore",
        "--auto-approve",
        "--target",
        "dump.sql",
        "--replace",
    ]);
    assert_ne!(restored.code(), 0, "{restored}");
    let all = format!("{}{}", restored.stdout(), restored.stderr());
    assert!(all.contains("exited with code 4"), "{all}");
    assert!(all.contains("relation exists"), "{all}");
}

/// A PostgreSQL server as compose runs it (project labels, a named
/// volume), and its removal at the end of the test.
pub(crate) struct Server {
    pub(crate) project: String,
    pub(crate) container: String,
    pub(crate) volume: String,
}

impl Server {
    pub(crate) fn new(test: &str) -> Server {
        let project = format!("lbdumps{test}{}", std::process::id());
        let server = Server {
            container: format!("{project}-db-1"),
            volume: format!("{project}_pgdata"),
            project,
        };
        server.remove();
        server
    }

    /// Starts the server on its volume (created, and initialised by the
    /// image, when missing) and waits until it is healthy.
    pub(crate) fn start(&self) {
        let label = |k: &str, v: &str| format!("com.docker.compose.{k}={v}");
        docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &self.container,
            "--label",
            &label("project", &self.project),
            "--label",
            &label("service", "db"),
            "-v",
            &format!("{}:/var/lib/postgresql/data", self.volume),
            "lifeboat-test/postgres:15",
        ]);
        self.wait_healthy();
    }

    pub(crate) fn wait_healthy(&self) {
        let started = std::time::Instant::now();
        loop {
            let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", &self.container]);
            if status == "healthy" {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "{} is {status} after 2 minutes",
                self.container
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    pub(crate) fn psql(&self, sql: &str) -> String {
        docker(&[
            "exec",
            &self.container,
            "psql",
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ])
    }

    pub(crate) fn rows(&self) -> String {
        self.psql("SELECT count(*) FROM items")
    }

    /// The container and its volume, as a host that lost them.
    fn remove(&self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.volume])
            .output();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The spec `lifeboat init --from-compose` writes for `server`, with the
/// workspace's repository, and without the image blocks (backing up a
/// 670 MB image is not what this is about; the engine keeps it).
pub(crate) fn init_spec(ws: &Workspace, server: &Server) -> String {
    let spec = ws.path().join("main.hcl");
    std::fs::remove_file(&spec).unwrap();
    ws.ok(&["init", "--from-compose", &server.project]);
    let written = std::fs::read_to_string(&spec).unwrap();
    let mut kept = String::new();
    let mut in_image = false;
    for line in written.lines() {
        if line.starts_with("image ") {
            in_image = true;
        }
        if !in_image && !line.trim_start().starts_with("image ") {
            kept.push_str(line);
            kept.push('\n');
        }
        if in_image && line == "}" {
            in_image = false;
        }
    }
    let kept = kept
        .replace(
            "\"/var/backups/lifeboat\"",
            &format!("\"{}\"", ws.repository().display()),
        )
        .replace("\"LIFEBOAT_PASSPHRASE\"", "\"LIFEBOAT_TEST_PASSPHRASE\"");
    std::fs::write(&spec, &kept).unwrap();
    kept
}

#[test]
fn a_database_comes_back_from_its_volume_or_its_dump_never_both() {
    let server = Server::new("source");
    server.start();
    // No primary key: a dump loaded over the restored volume would double it.
    server.psql("CREATE TABLE items (n integer); INSERT INTO items SELECT generate_series(1, 100)");
    let ws = Workspace::with_volumes(&[]);
    let spec = init_spec(&ws, &server);
    assert!(spec.contains("ON_ERROR_STOP=1"), "{spec}");
    ws.ok(&["validate"]);
    ws.ok(&["apply", "--auto-approve"]);

    // The host loses the server and its volume: a whole restore brings
    // the volume back, and the dump is not loaded over it.
    server.remove();
    let restored = ws.ok(&["restore", "--auto-approve"]);
    let text = restored.stdout();
    assert!(text.contains("< volume.pgdata"), "{restored}");
    assert!(
        text.contains("= dump.db")
            && text.contains("not loaded: volume.pgdata is restored from snapshot")
            && text.contains("(the same run as the dump), which holds the database"),
        "{restored}"
    );
    server.wait_healthy();
    assert_eq!(
        server.rows(),
        "100",
        "the rows come back once, from the volume"
    );

    // Lost again, and started anew by hand on a new volume: the dump,
    // named, loads into the empty server, and stops at no error.
    server.remove();
    // Docker gives a volume's creation time in whole seconds: one made
    // within the second the restore ended could be the one it restored.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    server.start();
    let loaded = ws.ok(&["restore", "--auto-approve", "--target", "dump.db"]);
    let text = loaded.stdout();
    assert!(
        text.contains("its volumes were created after the dump was taken"),
        "{loaded}"
    );
    assert!(text.contains("= volume.pgdata"), "{loaded}");
    assert_eq!(server.rows(), "100", "the rows come back from the dump");

    // The server now holds the dump's rows: loading it again needs --replace.
    let again = ws.run(&["restore", "--auto-approve", "--target", "dump.db"]);
    assert_ne!(again.code(), 0, "{again}");
    let words = again
        .stdout()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("! dump.db cannot restore: service.db holds data")
            && words.contains("Pass --replace to load it over that data"),
        "{again}"
    );
    assert_eq!(server.rows(), "100");
}

#[test]
fn a_dump_target_is_backed_up_alone_and_shown_as_bytes() {
    let container = TestContainer::start("target");
    container.sh("head -c 3000000 /dev/urandom > /db.sql");
    let ws = workspace(
        &container.name,
        &[(
            "sql",
            "  command         = [\"sh\", \"-c\", \"cat /db.sql\"]\n  restore_command = [\"sh\", \
             \"-c\", \"cat > /restored.sql\"]",
        )],
    );
    // The service runs a declared image: a restore needs it first, a
    // backup of the dump does not.
    let mut spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    spec = spec.replace(
        "service \"db\" {\n",
        "image \"busybox\" {\n  ref    = \"lifeboat-test/busybox:1\"\n  policy = \
         policy.default\n}\n\nservice \"db\" {\n  image     = image.busybox\n",
    );
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    let plan = ws.ok(&["plan", "--target", "dump.sql"]);
    assert!(plan.stdout().contains("+ dump.sql"), "{plan}");
    assert!(!plan.stdout().contains("image.busybox"), "{plan}");
    let applied = ws.ok(&["apply", "--auto-approve", "--target", "dump.sql"]);
    let resources: Vec<String> = crate::harness::snapshots(&ws)
        .iter()
        .map(|s| s["resource"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resources, ["dump.sql"], "{applied}");
    // A stream is bytes: no file count at backup, in listings, in plans.
    let done = applied
        .stdout()
        .lines()
        .find(|l| l.starts_with("dump.sql: done"))
        .unwrap_or_else(|| panic!("{applied}"))
        .to_string();
    assert!(done.contains("(3.0 MB; "), "{done}");
    assert!(!done.contains("file"), "{done}");
    let listed = ws.ok(&["snapshots"]);
    let row = listed
        .stdout()
        .lines()
        .find(|l| l.contains("dump.sql"))
        .unwrap()
        .to_string();
    assert!(row.contains("3.0 MB         -  main"), "{row}");
    // A restore target still brings what it needs first: the image.
    let restore = ws.run(&["restore", "--target", "dump.sql"]);
    assert!(restore.stdout().contains("image.busybox"), "{restore}");
}
