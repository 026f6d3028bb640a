//! Every example in examples/ validates.

use assert_cmd::Command;
use std::path::Path;

fn example_dirs() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_validates() {
    let dirs = example_dirs();
    assert!(dirs.len() >= 5, "examples/ holds the documented specs");
    for dir in dirs {
        let output = Command::cargo_bin("lifeboat")
            .unwrap()
            .arg("--chdir")
            .arg(&dir)
            .arg("validate")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} does not validate:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every example plans against the real engine once its Docker volumes
/// exist and the containers its dumps run in are up.
#[test]
fn every_example_plans() {
    let volumes = [
        "lifeboat-demo_data",
        "myapp_data",
        "wiki_uploads",
        "shop_pgdata",
        "blog_db",
        "blog_content",
    ];
    let mut created = Vec::new();
    for name in volumes {
        let exists = std::process::Command::new("docker")
            .args(["volume", "inspect", name])
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let made = std::process::Command::new("docker")
                .args(["volume", "create", name])
                .output()
                .unwrap();
            assert!(made.status.success());
            created.push(name);
        }
    }
    // The examples' images: tags of the local test image (plan checks they exist).
    let mut tagged = Vec::new();
    for reference in [
        "wiki/app:3.2",
        "shop/base:1.4",
        "shop/api:2.3",
        "shop/postgres:16",
    ] {
        let docker = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .unwrap()
                .status
                .success()
        };
        if !docker(&["image", "inspect", reference]) {
            assert!(docker(&["tag", "lifeboat-test/busybox:1", reference]));
            tagged.push(reference);
        }
    }
    // The examples' bind blocks name host directories; plan checks they exist.
    let mut made_dirs = Vec::new();
    for dir in ["/srv/wiki/config", "/srv/shop/nginx"] {
        let dir = std::path::Path::new(dir);
        if !dir.exists() {
            std::fs::create_dir_all(dir).unwrap();
            made_dirs.push(dir);
        }
    }
    // The examples' service blocks name containers; plan reads their
    // configuration, and a dump's plan checks its container runs.
    let mut made_containers = Vec::new();
    for name in ["wiki-app-1", "shop-db-1", "shop-api-1", "shop-web-1"] {
        let running = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&running.stdout).trim() != "true" {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", name])
                .output();
            let made = std::process::Command::new("docker")
                .args(["run", "-d", "--name", name, "lifeboat-test/busybox:1"])
                .args(["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"])
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
            made_containers.push(name);
        }
    }
    for dir in example_dirs() {
        // examples/ci plans against S3 with the credentials CI gives it:
        // tests/integration/ci.rs runs its pipelines' commands.
        if dir.ends_with("ci") {
            continue;
        }
        // Plans read but never write: the example's repositories stay uncreated.
        let state = tempfile::tempdir().unwrap();
        let copy = state.path().join("spec");
        std::fs::create_dir(&copy).unwrap();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, copy.join(file.file_name().unwrap())).unwrap();
        }
        let mut args = vec!["plan", "--detailed-exitcode"];
        if dir.ends_with("multi-file") {
            args.extend(["--var", "backup_root=/nonexistent/backups"]);
        }
        let output = Command::cargo_bin("lifeboat")
            .unwrap()
            .arg("--chdir")
            .arg(&copy)
            .args(&args)
            .env("LIFEBOAT_PASSPHRASE", "example")
            .env("LIFEBOAT_NAS_PASSPHRASE", "example")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{} plans changes:\n{stdout}\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("never backed up"), "{stdout}");
        assert!(stdout.contains("Plan: "), "{stdout}");
    }
    for name in created {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", name])
            .output();
    }
    for dir in made_dirs {
        let _ = std::fs::remove_dir(dir);
    }
    for reference in tagged {
        let _ = std::process::Command::new("docker")
            .args(["rmi", reference])
            .output();
    }
    for name in made_containers {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", name])
            .output();
    }
}
