//! The disaster-recovery test of issue 13: a real stack (PostgreSQL and
//! MariaDB servers from Debian's packages, and an app depending on both, on
//! a network of their own) is backed up, then everything of it is removed
//! from the engine (containers, volumes, network, images) and one
//! `lifeboat restore` brings it back from the repository alone: in order,
//! with the same image ids and the rows written through the servers' own
//! clients. A second run loses the servers' volumes only, starts the
//! servers anew and empty, and loads the rows from the dumps.
//!
//! The stack's images are built in the test FROM the shared test images
//! (lifeboat-test/postgres:15, lifeboat-test/mariadb:10 and
//! lifeboat-test/debian:bookworm, built by scripts/lib/ensure-docker.sh):
//! removing those would break the other tests running beside this one.

use crate::harness::Workspace;
use crate::images::{Images, build, docker, image_id};
use std::time::{Duration, Instant};

const DEBIAN: &str = "lifeboat-test/debian:bookworm";
const POSTGRES: &str = "lifeboat-test/postgres:15";
const MARIADB: &str = "lifeboat-test/mariadb:10";
const ROWS: u32 = 20_000;

fn output(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The names of one run's stack (the process id keeps parallel runs apart).
struct Stack {
    network: String,
    pg: String,
    maria: String,
    app: String,
    pg_volume: String,
    maria_volume: String,
    pg_image: String,
    maria_image: String,
    app_image: String,
}

impl Stack {
    fn new() -> Stack {
        let tag = std::process::id();
        Stack {
            network: format!("lifeboat-dr-net-{tag}"),
            pg: format!("lifeboat-dr-pg-{tag}"),
            maria: format!("lifeboat-dr-maria-{tag}"),
            app: format!("lifeboat-dr-app-{tag}"),
            pg_volume: format!("lifeboat-dr-pgdata-{tag}"),
            maria_volume: format!("lifeboat-dr-mariadata-{tag}"),
            pg_image: format!("lifeboat-dr/postgres:{tag}"),
            maria_image: format!("lifeboat-dr/mariadb:{tag}"),
            app_image: format!("lifeboat-dr/app:{tag}"),
        }
    }

    fn remove_servers(&self) {
        for container in [&self.pg, &self.maria] {
            let _ = docker(&["rm", "-f", "-v", container]);
        }
        for volume in [&self.pg_volume, &self.maria_volume] {
            let _ = docker(&["volume", "rm", "-f", volume]);
        }
    }

    fn remove_containers_and_network(&self) {
        let _ = docker(&["rm", "-f", &self.app]);
        self.remove_servers();
        let _ = docker(&["network", "rm", &self.network]);
    }

    fn start_servers(&self) {
        output(&[
            "run",
            "-d",
            "--name",
            &self.pg,
            "--network",
            &self.network,
            "-v",
            &format!("{}:/var/lib/postgresql/data", self.pg_volume),
            &self.pg_image,
        ]);
        output(&[
            "run",
            "-d",
            "--name",
            &self.maria,
            "--network",
            &self.network,
            "-v",
            &format!("{}:/var/lib/mysql", self.maria_volume),
            &self.maria_image,
        ]);
        for container in [&self.pg, &self.maria] {
            wait_healthy(container);
        }
    }

    fn psql(&self, sql: &str) -> String {
        output(&[
            "exec",
            &self.pg,
            "psql",
            "-U",
            "postgres",
            "-d",
            "shop",
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ])
    }

    fn mariadb(&self, sql: &str) -> String {
        output(&["exec", &self.maria, "mariadb", "-N", "-B", "-e", sql])
    }

    fn counts(&self) -> (String, String) {
        (
            self.psql("SELECT count(*), sum(id) FROM orders"),
            self.mariadb("SELECT count(*), sum(id) FROM shop.orders"),
        )
    }

    fn started_at(&self, container: &str) -> chrono::DateTime<chrono::FixedOffset> {
        let text = output(&["inspect", "-f", "{{.State.StartedAt}}", container]);
        chrono::DateTime::parse_from_rfc3339(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn spec(&self, repository: &str) -> String {
        let Stack {
            pg,
            maria,
            app,
            pg_volume,
            maria_volume,
            pg_image,
            maria_image,
            app_image,
            ..
        } = self;
        format!(
            r#"repository "main" {{
  path = "{repository}"
  encryption {{ passphrase_env = "LIFEBOAT_TEST_PASSPHRASE" }}
}}

policy "default" {{
  rpo = "24h"
  rto = "5s"
  retention {{ keep_last = 7 }}
}}

image "debian" {{
  ref    = "{DEBIAN}"
  policy = policy.default
}}

image "postgres" {{
  ref    = "{pg_image}"
  base   = image.debian
  policy = policy.default
}}

image "mariadb" {{
  ref    = "{maria_image}"
  base   = image.debian
  policy = policy.default
}}

image "app" {{
  ref    = "{app_image}"
  base   = image.debian
  policy = policy.default
}}

volume "pgdata" {{
  name        = "{pg_volume}"
  service     = service.postgres
  consistency = "stop"
  policy      = policy.default
}}

volume "mariadata" {{
  name        = "{maria_volume}"
  service     = service.mariadb
  consistency = "pause"
  policy      = policy.default
}}

service "postgres" {{
  container     = "{pg}"
  image         = image.postgres
  volumes       = [volume.pgdata]
  start_timeout = "90s"
}}

service "mariadb" {{
  container     = "{maria}"
  image         = image.mariadb
  volumes       = [volume.mariadata]
  start_timeout = "90s"
}}

service "app" {{
  container  = "{app}"
  image      = image.app
  depends_on = [service.postgres, service.mariadb]
  verify     = ["getent", "hosts", "{pg}", "{maria}"]
}}

dump "postgres" {{
  service         = service.postgres
  command         = ["pg_dumpall", "-U", "postgres"]
  restore_command = ["psql", "-U", "postgres"]
  policy          = policy.default
}}

dump "mariadb" {{
  service         = service.mariadb
  command         = ["mariadb-dump", "--all-databases"]
  restore_command = ["mariadb"]
  policy          = policy.default
}}
"#
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.remove_containers_and_network();
    }
}

fn wait_healthy(container: &str) {
    let started = Instant::now();
    loop {
        let status = output(&["inspect", "-f", "{{.State.Health.Status}}", container]);
        if status == "healthy" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{container} is {status} after 2 minutes: {}",
            String::from_utf8_lossy(&docker(&["logs", "--tail", "20", container]).stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_whole_stack_comes_back_from_the_repository_alone_and_dumps_refill_empty_servers() {
    for image in [DEBIAN, POSTGRES, MARIADB] {
        assert!(
            image_id(image).is_some(),
            "{image} is missing: run the tests with scripts/test.sh (ensure_db_images)"
        );
    }
    let stack = Stack::new();
    let _images = Images(vec![
        stack.app_image.clone(),
        stack.pg_image.clone(),
        stack.maria_image.clone(),
    ]);
    let unique = format!("{} {:?}", std::process::id(), std::time::SystemTime::now());
    build(&stack.pg_image, POSTGRES, &format!("postgres {unique}"));
    build(&stack.maria_image, MARIADB, &format!("mariadb {unique}"));
    build(&stack.app_image, DEBIAN, &format!("app {unique}"));
    let ids: Vec<String> = [&stack.pg_image, &stack.maria_image, &stack.app_image]
        .iter()
        .map(|image| image_id(image).expect("built"))
        .collect();

    output(&["network", "create", &stack.network]);
    stack.start_servers();
    output(&[
        "run",
        "-d",
        "--name",
        &stack.app,
        "--network",
        &stack.network,
        "--restart",
        "unless-stopped",
        &stack.app_image,
        "sleep",
        "infinity",
    ]);
    output(&[
        "exec",
        &stack.pg,
        "psql",
        "-U",
        "postgres",
        "-c",
        "CREATE DATABASE shop",
    ]);
    stack.psql(&format!(
        "CREATE TABLE orders (id integer PRIMARY KEY, note text); INSERT INTO orders SELECT g, \
         'order ' || g FROM generate_series(1, {ROWS}) g"
    ));
    stack.mariadb(&format!(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id integer PRIMARY KEY, note text); \
         INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq) FROM shop.seq_1_to_{ROWS}"
    ));
    let written = stack.counts();
    let sum = u64::from(ROWS) * u64::from(ROWS + 1) / 2;
    assert_eq!(written, (format!("{ROWS}|{sum}"), format!("{ROWS}\t{sum}")));

    let ws = Workspace::with_volumes(&[]);
    let repository = ws.repository();
    std::fs::write(
        ws.path().join("main.hcl"),
        stack.spec(&repository.display().to_string()),
    )
    .unwrap();
    ws.ok(&["validate"]);
    let applied = ws.ok(&["apply", "--auto-approve"]);
    println!("$ lifeboat apply --auto-approve\n{}", applied.stdout());
    assert!(
        applied.stdout().contains("Apply complete! 11 backed up"),
        "{applied}"
    );

    // The host loses the stack: containers, volumes, network and images.
    stack.remove_containers_and_network();
    for image in [&stack.app_image, &stack.pg_image, &stack.maria_image] {
        output(&["rmi", image]);
    }
    for id in &ids {
        assert!(image_id(id).is_none(), "{id} is still on the engine");
    }

    let restored = ws.ok(&["restore", "--auto-approve"]);
    println!("$ lifeboat restore --auto-approve\n{}", restored.stdout());
    let text = restored.stdout();
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the restore output:\n{text}"))
    };
    let first_step = position(": restoring from");
    for change in [
        "< image.postgres",
        "< image.mariadb",
        "< image.app",
        "< volume.pgdata",
        "< volume.mariadata",
        "< service.postgres",
        "< service.mariadb",
        "< service.app",
        "= dump.postgres",
        "= dump.mariadb",
    ] {
        assert!(
            position(change) < first_step,
            "the plan ({change}) is printed before anything changes:\n{text}"
        );
    }
    assert!(
        position("< service.postgres").max(position("< service.mariadb"))
            < position("< service.app"),
        "servers → app:\n{text}"
    );
    // Each database comes from one source: its restored volume holds it,
    // so its dump is not loaded over it (rows would be added twice).
    for (dump, volume) in [
        ("dump.postgres", "volume.pgdata"),
        ("dump.mariadb", "volume.mariadata"),
    ] {
        let line = &text[position(&format!("= {dump}"))..];
        let line = line.lines().next().unwrap_or_default();
        assert!(
            line.contains(&format!("not loaded: {volume} is restored from snapshot")),
            "{line}"
        );
    }
    assert!(
        text.contains("Restore complete! 8 restored in") && text.contains("(whole stack,"),
        "{restored}"
    );
    assert!(
        text.contains("healthy"),
        "the servers' healthchecks were waited for:\n{text}"
    );

    let back: Vec<Option<String>> = [&stack.pg_image, &stack.maria_image, &stack.app_image]
        .iter()
        .map(|image| image_id(image))
        .collect();
    assert_eq!(back, ids.iter().cloned().map(Some).collect::<Vec<_>>());
    let app_started = stack.started_at(&stack.app);
    for server in [&stack.pg, &stack.maria] {
        assert!(
            stack.started_at(server) < app_started,
            "{server} starts before the app that depends on it"
        );
    }
    assert_eq!(
        stack.counts(),
        written,
        "the rows are back, once, from the volumes"
    );

    // The last whole-stack restore is held against the rto.
    let plan = ws.ok(&["plan"]);
    println!("$ lifeboat plan\n{}", plan.stdout());
    assert!(
        plan.stdout()
            .contains("the last restore of the whole stack (8 resources"),
        "{plan}"
    );

    // Second run: the servers' volumes are lost, the dumps are not. The
    // servers are started anew and empty, then only the dumps are restored.
    stack.remove_servers();
    stack.start_servers();
    assert!(
        stack
            .mariadb("SHOW DATABASES")
            .lines()
            .all(|database| database != "shop"),
        "the new server is empty"
    );
    let loaded = ws.ok(&[
        "restore",
        "--auto-approve",
        "--target",
        "dump.postgres",
        "--target",
        "dump.mariadb",
    ]);
    let text = loaded.stdout();
    println!(
        "$ lifeboat restore --auto-approve --target dump.postgres --target dump.mariadb\n{text}"
    );
    assert!(text.contains("= volume.pgdata"), "{loaded}");
    assert!(text.contains("= service.postgres"), "{loaded}");
    assert!(
        text.contains("its volumes were created after the dump was taken"),
        "{loaded}"
    );
    assert!(text.contains("Restore complete!"), "{loaded}");
    assert!(!text.contains("(whole stack,"), "{loaded}");
    assert_eq!(stack.counts(), written, "the rows come back from the dumps");
}
