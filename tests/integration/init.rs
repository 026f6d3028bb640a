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
        text.contains(&format!("ref  = \"{web_image}\"\n  base = image.debian")),
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
