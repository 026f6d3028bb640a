//! Copies between repositories from the CLI: a repository added later
//! gets the snapshots by copies, not by reading Docker again; a repository
//! that cannot be reached fails the copies that need it, not the run.

use crate::harness::{Workspace, assert_valid, schema};
use crate::support;

/// Declares repository `name` at `path` in the workspace's spec (the
/// default policy keeps every repository).
pub(crate) fn add_repository(ws: &Workspace, name: &str, path: &std::path::Path) {
    let spec = ws.path().join("main.hcl");
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(&format!(
        "\nrepository \"{name}\" {{\n  path = \"{}\"\n  encryption {{ passphrase_env = \
         \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n",
        path.display()
    ));
    std::fs::write(&spec, text).unwrap();
}

/// The newest run record in the workspace's `main` repository.
fn newest_run(ws: &Workspace) -> serde_json::Value {
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["runs", "--json", "--repository", "main"]).stdout()).unwrap();
    assert_valid(&schema("runs.schema.json"), &listed);
    listed[0].clone()
}

#[test]
fn a_repository_added_later_gets_a_copy_line_and_the_snapshot_without_reading_docker() {
    let volume = support::TestVolume::create("copylater");
    std::fs::write(volume.mountpoint().join("a.txt"), "alpha").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let taken = crate::harness::snapshot_ids(&ws);
    add_repository(&ws, "offsite", &ws.path().join("offsite"));

    let plan = ws.ok(&["plan"]);
    let line = format!("> volume.data   copy {} main → offsite", &taken[0][..8]);
    assert!(plan.stdout().contains(&line), "{line:?} in\n{plan}");
    assert!(plan.stdout().contains("= volume.data"), "{plan}");
    assert!(plan.stdout().contains("1 to copy"), "{plan}");
    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json"]).stdout()).unwrap();
    assert_valid(&schema("plan.schema.json"), &json);

    let applied = ws.ok(&["apply", "--auto-approve", "--json"]);
    let finished: Vec<serde_json::Value> = crate::quiesce::events(&applied.stdout())
        .into_iter()
        .filter(|e| e["type"] == "resource_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{applied}");
    assert_eq!(finished[0]["repository"], "offsite");
    assert_eq!(finished[0]["action"], "copy");
    assert_eq!(finished[0]["read_bytes"], 0, "Docker is not read again");
    let record = newest_run(&ws);
    assert_eq!(record["resources"][0]["status"], "copied", "{record:#}");
    assert_eq!(record["resources"][0]["from"], "main", "{record:#}");

    let again = ws.ok(&["plan"]);
    assert!(!again.stdout().contains("> volume.data"), "{again}");
    assert!(!again.stdout().contains("to copy"), "{again}");
    assert!(again.stdout().contains("= volume.data"), "{again}");
}

#[test]
fn a_repository_that_cannot_be_reached_fails_its_copies_and_the_others_get_their_snapshots() {
    let volume = support::TestVolume::create("unreachable");
    std::fs::write(volume.mountpoint().join("a.txt"), "alpha").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    // A path under a file: no directory can ever be made there.
    std::fs::write(ws.path().join("a-file"), "not a directory").unwrap();
    add_repository(&ws, "offsite", &ws.path().join("a-file/offsite"));

    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("+ volume.data"), "{plan}");
    assert!(
        plan.stdout()
            .contains("fails in repository.offsite, which cannot be reached"),
        "{plan}"
    );
    assert!(!plan.stdout().contains("+ repository.offsite"), "{plan}");

    let applied = ws.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(applied.code(), 1, "{applied}");
    let events = crate::quiesce::events(&applied.stdout());
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "resource_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{applied}");
    assert_eq!(finished[0]["repository"], "main");
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "resource_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{applied}");
    assert_eq!(failed[0]["class"], "repository_unavailable", "{applied}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("offsite"),
        "{applied}"
    );
    let record = newest_run(&ws);
    let outcomes: Vec<(&str, &str)> = record["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("main", "done"), ("offsite", "failed")],
        "{record:#}"
    );
    assert_eq!(record["resources"][1]["class"], "repository_unavailable");
    // Commands about the repositories themselves still refuse to pass
    // over one silently.
    for command in ["snapshots", "check", "runs"] {
        let refused = ws.run(&[command]);
        assert_eq!(refused.code(), 1, "{refused}");
        assert!(refused.stderr().contains("repository.offsite"), "{refused}");
    }
}

/// A directory on another filesystem than Docker's data root (a tmpfs),
/// removed at the end: a repository there counts as off this host.
fn other_filesystem(test: &str) -> crate::guards::RemoveDir {
    use std::os::unix::fs::MetadataExt;
    let device = |p: &str| std::fs::metadata(p).unwrap().dev();
    assert_ne!(device("/dev/shm"), device("/var/lib/docker"));
    crate::guards::RemoveDir(std::path::PathBuf::from(format!(
        "/dev/shm/lifeboat-test-{test}-{}",
        std::process::id()
    )))
}

#[test]
fn validate_and_plan_warn_of_one_copy_and_of_none_off_the_host_until_there_is_one() {
    let volume = support::TestVolume::create("threetwoone");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let fewer = "has an rpo but keeps its snapshots in repository.main alone";
    let on_host = "has an rpo but keeps no copy off this host (main on the filesystem";
    for command in ["validate", "plan"] {
        let said = ws.ok(&[command]).stdout();
        assert!(said.contains(fewer) && said.contains(on_host), "{said}");
        // Located at the policy block: `validate` names the file as read,
        // a plan relative to the spec directory (the same in every checkout).
        let at = match command {
            "validate" => format!("policy.default ({}:", ws.path().join("main.hcl").display()),
            _ => "policy.default (main.hcl:".to_string(),
        };
        assert!(said.contains(&at), "{at:?} in\n{said}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&ws.ok(&["validate", "--json"]).stdout()).unwrap();
    assert_valid(&schema("validate.schema.json"), &report);
    let kinds: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["warning"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["fewer_than_two_copies", "no_copy_off_host"],
        "{report:#}"
    );

    // A second repository, on the same filesystem: still none off the host.
    add_repository(&ws, "usb", &ws.path().join("usb"));
    let said = ws.ok(&["validate"]).stdout();
    assert!(
        !said.contains(fewer) && said.contains("keeps no copy off this host"),
        "{said}"
    );

    // One on another filesystem: nothing to warn of.
    let elsewhere = other_filesystem("threetwoone");
    add_repository(&ws, "offsite", &elsewhere.0);
    for command in ["validate", "plan"] {
        let said = ws.ok(&[command]).stdout();
        assert!(!said.contains("has an rpo"), "{said}");
    }
}

/// A volume of a big file and a small one, backed up into `main` and
/// (by a copy) `offsite`, then removed; and a copy of its content.
fn backed_up_twice(test: &str) -> (Workspace, support::TestVolume, tempfile::TempDir) {
    let volume = support::TestVolume::create(test);
    let big = support::random_bytes(3_000_000, 11);
    std::fs::write(volume.mountpoint().join("big.bin"), big).unwrap();
    std::fs::write(volume.mountpoint().join("small.txt"), b"small").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    add_repository(&ws, "offsite", &ws.path().join("offsite"));
    ws.ok(&["apply", "--auto-approve"]);
    let copy = support::keep_copy(&volume.mountpoint());
    let removed = std::process::Command::new("docker")
        .args(["volume", "rm", volume.name()])
        .status()
        .unwrap();
    assert!(removed.success());
    (ws, volume, copy)
}

#[test]
fn a_restore_reads_the_offsite_copy_when_main_is_gone() {
    let (ws, volume, copy) = backed_up_twice("gonemain");
    std::fs::remove_dir_all(ws.repository()).unwrap();
    let restored = ws.ok(&["restore", "--auto-approve"]);
    let said = format!(
        "read from repository.offsite, not repository.main (it does not exist at {})",
        ws.repository().display()
    );
    assert!(restored.stdout().contains(&said), "{said:?} in\n{restored}");
    support::compare_trees(copy.path(), &volume.mountpoint()).unwrap();
}

#[test]
fn a_restore_passes_over_a_damaged_copy_unless_told_to_read_it() {
    let (ws, volume, copy) = backed_up_twice("damagedmain");
    let pack = ws.biggest_pack();
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();

    // Told to read main: refused before anything is written.
    let forced = ws.run(&["restore", "--auto-approve", "--repository", "main"]);
    assert_eq!(forced.code(), 1, "{forced}");
    assert!(forced.stdout().contains("Nothing was changed"), "{forced}");
    let inspected = std::process::Command::new("docker")
        .args(["volume", "inspect", volume.name()])
        .output()
        .unwrap();
    assert!(!inspected.status.success(), "no volume was created");

    let restored = ws.ok(&["restore", "--auto-approve"]);
    let out = restored.stdout();
    assert!(
        out.contains("read from repository.offsite, not repository.main (its copy, snapshot"),
        "{restored}"
    );
    assert!(out.contains("is damaged"), "{restored}");
    support::compare_trees(copy.path(), &volume.mountpoint()).unwrap();
}

/// Removes a stack's container, volume and image from the engine at
/// `host` whatever happens.
struct StackOn {
    host: String,
    container: String,
    volume: String,
    image: String,
}

impl StackOn {
    fn docker(&self, args: &[&str]) -> String {
        crate::engines::docker(&self.host, args).trim().to_string()
    }
}

impl Drop for StackOn {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "-f", &self.container],
            vec!["volume", "rm", "-f", &self.volume],
            vec!["rmi", "-f", &self.image],
        ] {
            let _ = std::process::Command::new("docker")
                .args(["-H", &self.host])
                .args(&args)
                .output();
        }
    }
}

#[test]
fn a_whole_stack_comes_back_on_a_new_host_from_the_offsite_repository_alone() {
    let second = crate::engines::second_engine();
    let tag = std::process::id();
    let stack = |host: &str| StackOn {
        host: host.to_string(),
        container: format!("lifeboat-offsite-app-{tag}"),
        volume: format!("lifeboat-offsite-data-{tag}"),
        image: format!("lifeboat-offsite/app:{tag}"),
    };
    let old = stack("unix:///var/run/docker.sock");
    let new = stack(&second);
    crate::images::build(&old.image, "lifeboat-test/busybox:1", "the app layer");
    let image_id = old.docker(&["image", "inspect", "-f", "{{.Id}}", &old.image]);
    old.docker(&["volume", "create", &old.volume]);
    old.docker(&[
        "run",
        "-d",
        "--name",
        &old.container,
        "--network",
        "none",
        "-e",
        "MODE=production",
        "-v",
        &format!("{}:/data", old.volume),
        &old.image,
        "sleep",
        "3600",
    ]);
    old.docker(&[
        "exec",
        &old.container,
        "sh",
        "-c",
        "seq 1 5000 > /data/rows",
    ]);
    let rows = old.docker(&["exec", &old.container, "md5sum", "/data/rows"]);

    // Off site: an S3 bucket (the Garage scripts/test.sh runs), its keys in
    // files beside the spec, as a secret store would put them on each host.
    let garage = crate::s3::Garage::shared();
    let prefix = crate::s3::unique_prefix("offsite-dr");
    let _objects = crate::s3::Prefix {
        backend: garage.backend(&prefix),
    };
    let ws = Workspace::with_volumes(&[]);
    let offsite = format!(
        "\nrepository \"offsite\" {{\n  s3 {{\n    endpoint        = \"{}\"\n    bucket          = \"{}\"\n    \
         region          = \"{}\"\n    prefix          = \"{prefix}\"\n    access_key_file = \"s3-access.key\"\n    \
         secret_key_file = \"s3-secret.key\"\n  }}\n  encryption {{ passphrase_env = \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n",
        garage.endpoint, garage.bucket, garage.region
    );
    let keys = |dir: &std::path::Path| {
        std::fs::write(dir.join("s3-access.key"), &garage.access_key).unwrap();
        std::fs::write(dir.join("s3-secret.key"), &garage.secret_key).unwrap();
    };
    keys(ws.path());
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap() + &offsite;
    let spec = format!(
        "{spec}\nimage \"app\" {{\n  ref    = \"{}\"\n  policy = policy.default\n}}\n\n\
         volume \"data\" {{\n  name        = \"{}\"\n  consistency = \"stop\"\n  \
         policy      = policy.default\n}}\n\n\
         service \"app\" {{\n  container = \"{}\"\n  image     = image.app\n  \
         volumes   = [volume.data]\n}}\n",
        old.image, old.volume, old.container
    );
    std::fs::write(ws.path().join("main.hcl"), &spec).unwrap();
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 3 backed up"),
        "{applied}"
    );
    // The test's Garage runs on this machine: the plan says so.
    assert!(
        applied.stdout().contains("no copy off this host"),
        "{applied}"
    );

    // The host is lost, with the repository on its disk. On a new host
    // (the second engine) the spec comes from git, the passphrase from
    // the secret store, and the off-site repository is all there is.
    std::fs::remove_dir_all(ws.repository()).unwrap();
    let new_host = Workspace::with_volumes(&[]);
    std::fs::write(new_host.path().join("main.hcl"), &spec).unwrap();
    keys(new_host.path());
    let restore = |args: &[&str]| {
        let mut command = new_host.process(args);
        command.env("DOCKER_HOST", &second);
        crate::harness::Run(command.output().unwrap())
    };
    let snapshots = restore(&["snapshots"]);
    assert_eq!(snapshots.code(), 0, "{snapshots}");
    let restored = restore(&["restore", "--auto-approve"]);
    assert_eq!(restored.code(), 0, "{restored}");
    let out = restored.stdout();
    let said = format!(
        "read from repository.offsite, not repository.main (it does not exist at {})",
        ws.repository().display()
    );
    assert!(out.contains(&said), "{said:?} in\n{restored}");
    assert!(out.contains("Restore complete! 3 restored"), "{restored}");

    assert_eq!(
        new.docker(&["image", "inspect", "-f", "{{.Id}}", &new.image]),
        image_id
    );
    assert_eq!(
        new.docker(&["inspect", "-f", "{{.State.Running}}", &new.container]),
        "true"
    );
    assert_eq!(
        new.docker(&["exec", &new.container, "md5sum", "/data/rows"]),
        rows
    );
    let env = new.docker(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &new.container,
    ]);
    assert!(env.lines().any(|l| l == "MODE=production"), "{env}");
}
