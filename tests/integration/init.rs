//! `lifeboat init`: a first spec from containers that run on the real
//! engine, labelled as compose labels them.

use assert_cmd::Command;
use std::process::Command as Process;

fn docker(args: &[&str]) -> String {
    let output = Process::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn lifeboat(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("--chdir")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("LIFEBOAT_PASSPHRASE", "init test")
        .output()
        .unwrap()
}

#[test]
fn init_writes_a_valid_spec_for_a_compose_project_and_overwrites_nothing() {
    let project = format!("lbinit{}", std::process::id());
    let volume = format!("{project}_pgdata");
    let conf = tempfile::Builder::new()
        .prefix("lifeboat-init-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let db = format!("{project}-db-1");
    let web = format!("{project}-web-1");
    let cleanup = || {
        let _ = Process::new("docker")
            .args(["rm", "-f", &db, &web])
            .output();
        let _ = Process::new("docker")
            .args(["volume", "rm", "-f", &volume])
            .output();
    };
    cleanup();
    // The web image is built FROM the Debian base: init names that base.
    let web_image = format!("lifeboat-init/web:{}", std::process::id());
    let _images = crate::images::Images(vec![web_image.clone()]);
    crate::images::build(&web_image, "lifeboat-test/debian:bookworm", "web");
    // An image whose name says PostgreSQL, so init proposes a dump.
    docker(&[
        "tag",
        "lifeboat-test/busybox:1",
        "lifeboat-test/postgres:16",
    ]);
    docker(&["volume", "create", &volume]);
    let label = |k: &str, v: &str| format!("com.docker.compose.{k}={v}");
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &db,
        "--label",
        &label("project", &project),
        "--label",
        &label("service", "db"),
        "-v",
        &format!("{volume}:/var/lib/postgresql/data"),
        "lifeboat-test/postgres:16",
        "sleep",
        "3600",
    ]);
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &web,
        "--label",
        &label("project", &project),
        "--label",
        &label("service", "web"),
        "--label",
        &label("depends_on", "db:service_started:false"),
        "-v",
        &format!("{}:/etc/app", conf.path().display()),
        "-v",
        "/etc/localtime:/etc/localtime:ro",
        &web_image,
        "sleep",
        "3600",
    ]);

    let out = tempfile::tempdir().unwrap();
    let spec_dir = out.path().join("spec");
    let written = lifeboat(&spec_dir, &["init", "--from-compose", &project]);
    let stdout = String::from_utf8_lossy(&written.stdout).into_owned();
    assert!(
        written.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(
        stdout.contains("2 services, 3 images, 1 volume, 1 bind, 1 dump"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(spec_dir.join("main.hcl")).unwrap();
    assert!(text.contains(&format!("\"{volume}\"")), "{text}");
    assert!(text.contains("depends_on = [service.db]"), "{text}");
    assert!(text.contains("pg_dumpall"), "{text}");
    assert!(
        text.contains(&format!(
            "ref    = \"{web_image}\"\n  base   = image.debian\n  policy = policy.default"
        )),
        "{text}"
    );
    assert!(
        text.contains("/etc/localtime"),
        "the left-out mount is listed: {text}"
    );

    // Formatted as `fmt` writes, valid, and it plans.
    let fmt = lifeboat(&spec_dir, &["fmt", "--check"]);
    assert!(
        fmt.status.success(),
        "{}",
        String::from_utf8_lossy(&fmt.stdout)
    );
    let valid = lifeboat(&spec_dir, &["validate"]);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    let plan = lifeboat(&spec_dir, &["plan"]);
    let plan_out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan_out.contains("+ volume.pgdata"),
        "{plan_out}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(plan_out.contains("bind."), "{plan_out}");

    // A second init overwrites nothing.
    let again = lifeboat(&spec_dir, &["init", "--from-compose", &project]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("overwrites nothing"));
    assert_eq!(
        std::fs::read_to_string(spec_dir.join("main.hcl")).unwrap(),
        text
    );

    // A project that does not exist is named, with the ones that do.
    let unknown = lifeboat(
        &out.path().join("other"),
        &["init", "--from-compose", "no-such-project-x"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains(&project));

    cleanup();
}

/// A compose v1 project of the test, taken down (containers, volumes,
/// network) whatever happens.
struct ComposeProject {
    dir: tempfile::TempDir,
    name: String,
}

impl ComposeProject {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        Process::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("docker-compose (Debian's package, compose v1) is installed")
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    fn down(&self) {
        let out = self.compose(&["down", "-v", "--remove-orphans"]);
        assert!(
            out.status.success(),
            "docker-compose down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
    }
}

fn wait_healthy(container: &str) {
    let started = std::time::Instant::now();
    loop {
        let status = docker(&["inspect", "-f", "{{.State.Health.Status}}", container]);
        if status.trim() == "healthy" {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{container} is {status} after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn started_at(container: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = docker(&["inspect", "-f", "{{.State.StartedAt}}", container]);
    chrono::DateTime::parse_from_rfc3339(text.trim()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Issue 25's first section, end to end: a compose v1 project (no
/// depends_on labels) of an app depending on PostgreSQL built as an image
/// of another name. init recognises the server by what the container is,
/// reads depends_on from the compose file, puts the policy on every
/// resource and lists what it left out; the spec backs up, and after the
/// stack is gone the restore starts the database, ready, before the app.
#[test]
fn init_of_a_compose_v1_project_with_postgres_under_another_name_restores_in_order() {
    const POSTGRES: &str = "lifeboat-test/postgres:15";
    assert!(
        crate::images::image_id(POSTGRES).is_some(),
        "{POSTGRES} is missing: run the tests with scripts/test.sh (ensure_db_images)"
    );
    let pid = std::process::id();
    // PostgreSQL from Debian's packages under a company's name: nothing
    // in "acme/db" says PostgreSQL.
    let image = format!("acme/db:15-{pid}");
    let _images = crate::images::Images(vec![image.clone()]);
    docker(&["tag", POSTGRES, &image]);
    let secret = format!("pg-secret-{pid}");
    let project = ComposeProject {
        dir: tempfile::tempdir().unwrap(),
        name: format!("lbinitv1{pid}"),
    };
    std::fs::write(
        project.dir.path().join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  db:
    image: {image}
    network_mode: none
    environment:
      POSTGRES_PASSWORD: {secret}
    volumes:
      - pgdata:/var/lib/postgresql/data
    tmpfs:
      - /run/scratch
  app:
    image: lifeboat-test/busybox:1
    command: sleep 3600
    network_mode: none
    depends_on:
      - db
    volumes:
      - /var/cache/app
volumes:
  pgdata: {{}}
"#
        ),
    )
    .unwrap();
    let up = project.compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let (db, app) = (project.container("db"), project.container("app"));
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", &app]);
    assert!(
        labels.contains("com.docker.compose.version\":\"1.") && !labels.contains("depends_on"),
        "compose v1 writes no depends_on label: {labels}"
    );
    wait_healthy(&db);
    let psql = |sql: &str| docker(&["exec", &db, "psql", "-U", "postgres", "-tAc", sql]);
    psql("CREATE TABLE orders (id integer); INSERT INTO orders VALUES (42)");

    let ws = crate::harness::Workspace::with_volumes(&[]);
    std::fs::remove_file(ws.path().join("main.hcl")).unwrap();
    let init = ws.ok(&["init", "--from-compose", &project.name]);
    let stdout = init.stdout();
    println!("$ lifeboat init --from-compose {}\n{stdout}", project.name);
    let text = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    println!("{text}");
    assert!(
        stdout.contains("2 services, 3 images, 1 volume, 0 binds, 1 dump"),
        "{stdout}"
    );
    // The server is recognised by what the container is.
    assert!(
        text.contains(&format!(
            "# PostgreSQL recognised in {db}: postgres is on its PATH; it mounts \
             /var/lib/postgresql/data; its environment has PGDATA, POSTGRES_PASSWORD."
        )),
        "{text}"
    );
    assert!(
        text.contains("dump \"db\" {\n  service = service.db\n  command = [\"pg_dumpall\""),
        "{text}"
    );
    assert!(
        text.contains("consistency = \"stop\" # your choice: a database's files are consistent"),
        "{text}"
    );
    assert!(text.contains("verify = [\"pg_isready\", \"-q\"]"), "{text}");
    // depends_on from the compose file, the labels saying nothing.
    assert!(text.contains("depends_on = [service.db]"), "{text}");
    assert!(!text.contains("# Not known"), "{text}");
    // The policy on every resource that takes one.
    let blocks = ["image \"", "volume \"", "bind \"", "dump \""]
        .iter()
        .map(|kind| text.matches(&format!("\n{kind}")).count())
        .sum::<usize>();
    assert_eq!(blocks, 5, "{text}");
    let with_policy = text
        .lines()
        .filter(|l| l.split_whitespace().eq(["policy", "=", "policy.default"]))
        .count();
    assert_eq!(with_policy, blocks, "{text}");
    // What was left out ends the output, and the file.
    let left_out = stdout
        .split("\nLeft out:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no left-out list: {stdout}"));
    for expected in [
        format!("{app} mounts an anonymous volume at /var/cache/app"),
        format!("{app} mounts no named volume or host directory"),
        format!("{db} has a tmpfs at /run/scratch"),
    ] {
        assert!(left_out.contains(&expected), "{expected}: {left_out}");
        assert!(text.contains(&expected), "{expected}: {text}");
    }
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("# - "),
        "{text}"
    );
    // Never a secret's value.
    assert!(!text.contains(&secret) && !stdout.contains(&secret));

    // Into the test's repository rather than the host's.
    let text = text
        .replace(
            "/var/backups/lifeboat",
            &ws.repository().display().to_string(),
        )
        .replace("\"LIFEBOAT_PASSPHRASE\"", "\"LIFEBOAT_TEST_PASSPHRASE\"");
    std::fs::write(ws.path().join("main.hcl"), text).unwrap();
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 7 backed up"),
        "{applied}"
    );

    project.down();
    let restored = ws.ok(&["restore", "--auto-approve"]);
    let out = restored.stdout();
    println!("$ lifeboat restore --auto-approve\n{out}");
    let position = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the restore output:\n{out}"))
    };
    assert!(
        position(&format!("service.db: {db} is healthy"))
            < position("service.db: verify: `pg_isready -q` succeeded")
            && position("service.db: verify: `pg_isready -q` succeeded")
                < position(&format!("service.app: starting {app}")),
        "the database is ready before the app starts:\n{out}"
    );
    assert!(started_at(&db) < started_at(&app), "{out}");
    assert_eq!(psql("SELECT id FROM orders").trim(), "42");
}
