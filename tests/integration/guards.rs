//! Runs that cannot destroy what they protect: binds and volumes holding
//! the repository or the spec, system directories and Docker's data root
//! are refused by validate, plan and restore; creating a repository is a
//! line of the plan; a copy taken under a weaker consistency is due.

use crate::harness::{Workspace, assert_valid, schema};
use crate::support;
use std::path::Path;
use std::process::Command;

/// Appends `text` to the workspace's spec.
fn append(ws: &Workspace, text: &str) {
    let path = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{spec}\n{text}\n")).unwrap();
}

fn bind_block(name: &str, path: &Path) -> String {
    format!(
        "bind \"{name}\" {{\n  path   = \"{}\"\n  policy = policy.default\n}}",
        path.display()
    )
}

/// Where the bind block of the spec starts, as diagnostics locate it.
fn bind_location(ws: &Workspace) -> String {
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let line = spec
        .lines()
        .position(|l| l.starts_with("bind "))
        .expect("a bind block")
        + 1;
    format!("main.hcl:{line}:1")
}

#[test]
fn a_bind_holding_the_repository_is_refused_by_validate_plan_and_restore() {
    let ws = Workspace::with_volumes(&[]);
    let data = ws.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("app.conf"), b"listen 80\n").unwrap();
    append(&ws, &bind_block("proj", &data));
    ws.ok(&["validate"]);
    ws.ok(&["apply", "--auto-approve"]);

    // The bind now names the workspace: the spec, the repository and all.
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        spec.replace(
            &data.display().to_string(),
            &ws.path().display().to_string(),
        ),
    )
    .unwrap();
    let at = bind_location(&ws);

    let validate = ws.run(&["validate"]);
    assert_eq!(validate.code(), 1, "{validate}");
    let said = validate.stderr();
    assert!(said.contains("bind.proj"), "{validate}");
    assert!(said.contains("holds repository.main"), "{validate}");
    assert!(
        said.contains(&at),
        "located at the bind ({at}):\n{validate}"
    );

    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    assert!(plan.stdout().contains("! bind.proj"), "{plan}");
    assert!(plan.stdout().contains("holds repository.main"), "{plan}");
    assert!(plan.stdout().contains(&at), "{plan}");

    let restore = ws.run(&[
        "restore",
        "--replace",
        "--target",
        "bind.proj",
        "--auto-approve",
    ]);
    assert_eq!(restore.code(), 1, "{restore}");
    assert!(restore.stdout().contains("! bind.proj"), "{restore}");
    assert!(
        restore.stdout().contains("holds repository.main"),
        "{restore}"
    );
    // Nothing was emptied: the spec, the data and the backups are there.
    assert!(ws.path().join("main.hcl").exists());
    assert!(data.join("app.conf").exists());
    assert!(ws.repository().join("config").exists());
    ws.ok(&["check"]);
}

#[test]
fn the_default_repository_in_the_spec_directory_counts() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        bind_block("proj", ws.path()).replace("  policy = policy.default\n", ""),
    )
    .unwrap();
    let run = Command::new(assert_cmd::cargo::cargo_bin("lifeboat"))
        .arg("--chdir")
        .arg(ws.path())
        .arg("validate")
        .env("NO_COLOR", "1")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("holds the default repository"), "{stderr}");
    assert!(stderr.contains("Declare a `repository` block"), "{stderr}");
    assert!(stderr.contains("main.hcl:1:1"), "{stderr}");
}

#[test]
fn a_volume_whose_directory_holds_the_repository_is_refused() {
    let ws = Workspace::with_volumes(&[]);
    let data = ws.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("app.conf"), b"listen 80\n").unwrap();
    let name = format!("lifeboat-test-guards-bound-{}", std::process::id());
    let _volume = RemoveVolume(name.clone());
    // A volume whose content is a directory of the host (`-o o=bind`).
    let bound_to = |dir: &Path| {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &name])
            .output();
        let created = Command::new("docker")
            .args(["volume", "create", "-o", "type=none", "-o", "o=bind", "-o"])
            .arg(format!("device={}", dir.display()))
            .arg(&name)
            .output()
            .unwrap();
        assert!(created.status.success(), "{created:?}");
    };
    bound_to(&data);
    append(
        &ws,
        &format!("volume \"everything\" {{\n  name   = \"{name}\"\n  policy = policy.default\n}}"),
    );
    ws.ok(&["apply", "--auto-approve"]);

    // The same volume, now bound to the workspace: spec and repository inside.
    bound_to(ws.path());
    // Volumes are only known to the engine: validate cannot tell.
    ws.ok(&["validate"]);
    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    assert!(plan.stdout().contains("! volume.everything"), "{plan}");
    assert!(plan.stdout().contains("holds repository.main"), "{plan}");
    let restore = ws.run(&[
        "restore",
        "--replace",
        "--target",
        "volume.everything",
        "--auto-approve",
    ]);
    assert_eq!(restore.code(), 1, "{restore}");
    assert!(
        restore.stdout().contains("! volume.everything"),
        "{restore}"
    );
    assert!(
        restore.stdout().contains("holds repository.main"),
        "{restore}"
    );
    assert!(ws.path().join("main.hcl").exists());
    assert!(data.join("app.conf").exists());
    ws.ok(&["check"]);
}

struct RemoveVolume(String);

impl Drop for RemoveVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.0])
            .output();
    }
}

#[test]
fn system_directories_and_dockers_data_root_are_not_binds() {
    for system in ["/", "/etc", "/var/lib"] {
        let ws = Workspace::with_volumes(&[]);
        append(&ws, &bind_block("host", Path::new(system)));
        assert_eq!(ws.run(&["validate"]).code(), 1);
        // As data: the message unwrapped, with where the path is written.
        let validate = ws.run(&["validate", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&validate.stdout()).unwrap();
        assert_eq!(json["valid"], false, "{validate}");
        let message = json["diagnostics"][0]["summary"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("is a system directory"), "{validate}");
        assert!(message.contains("/etc/nginx"), "{validate}");
    }

    // A volume's directory, named as a bind: the engine says where its data root is.
    let volume = support::TestVolume::create("guards-root");
    std::fs::write(volume.mountpoint().join("f"), b"x").unwrap();
    let ws = Workspace::with_volumes(&[]);
    append(&ws, &bind_block("raw", &volume.mountpoint()));
    ws.ok(&["validate"]);
    let plan = ws.run(&["plan"]);
    assert_eq!(plan.code(), 1, "{plan}");
    let text = plan.stdout();
    assert!(text.contains("! bind.raw"), "{plan}");
    assert!(text.contains("Docker's data root"), "{plan}");
    assert!(
        text.contains("`volume` block") && text.contains(volume.name()),
        "{plan}"
    );
}

#[test]
fn creating_a_repository_is_a_line_of_the_plan_in_every_rendering() {
    let volume = support::TestVolume::create("guards-create");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let location = ws.repository().display().to_string();

    let saved = ws.path().join("saved.json");
    let plan = ws.ok(&["plan", "--out", saved.to_str().unwrap()]);
    let line = plan
        .stdout()
        .lines()
        .find(|l| l.contains("repository.main"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.trim_start().starts_with("+ repository.main"), "{plan}");
    assert!(line.contains(&format!("create at {location}")), "{plan}");
    assert!(!line.contains("warning"), "{plan}");

    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["plan", "--json"]).stdout()).unwrap();
    assert_valid(&schema("plan.schema.json"), &json);
    assert_eq!(json["changes"][0]["address"], "repository.main");
    assert_eq!(json["changes"][0]["action"], "create");
    assert_eq!(json["changes"][0]["detail"]["location"], location.as_str());
    assert_eq!(json["summary"]["repositories_to_create"], 1);

    let markdown = ws.ok(&["plan", "--format", "markdown"]).stdout();
    assert!(
        markdown.contains(&format!("| `+` | repository.main | create at {location} |")),
        "{markdown}"
    );

    // The saved plan applies, creating the repository; then it exists.
    ws.ok(&["apply", saved.to_str().unwrap()]);
    assert!(ws.repository().join("config").exists());
    assert!(!ws.ok(&["plan"]).stdout().contains("+ repository.main"));
}

#[test]
fn a_repository_in_an_empty_directory_under_mnt_is_flagged() {
    let mount_point = Path::new("/mnt").join(format!("lifeboat-guards-{}", std::process::id()));
    std::fs::create_dir_all(&mount_point).unwrap();
    let _cleanup = RemoveDir(mount_point.clone());
    let volume = support::TestVolume::create("guards-mnt");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        spec.replace(
            &ws.repository().display().to_string(),
            &mount_point.join("lifeboat").display().to_string(),
        ),
    )
    .unwrap();
    let plan = ws.ok(&["plan"]);
    let text = plan.stdout();
    assert!(text.contains("+ repository.main"), "{plan}");
    assert!(
        text.contains(&format!(
            "warning: {} is an empty directory where disks are mounted",
            mount_point.display()
        )),
        "{plan}"
    );
    // Nothing was created by the plan; a restore says why it has nothing to read.
    assert!(!mount_point.join("lifeboat").exists());
    let restore = ws.run(&["restore", "--auto-approve"]);
    assert_eq!(restore.code(), 1, "{restore}");
    let said = restore.stderr();
    assert!(
        said.contains("repository.main does not exist at"),
        "{restore}"
    );
    assert!(
        said.contains("is the disk that holds it mounted?"),
        "{restore}"
    );
    assert!(!mount_point.join("lifeboat").exists());
}

pub(crate) struct RemoveDir(pub std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_copy_taken_under_weaker_consistency_than_now_asked_is_due() {
    let volume = support::TestVolume::create("guards-consistency");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let container = support::SleepingContainer::start("guards-consistency");
    let ws = Workspace::with_volumes(&[]);
    let block = |consistency: &str| {
        format!(
            "volume \"data\" {{\n  name        = \"{}\"\n  policy      = policy.default\n  \
             service     = service.db\n  consistency = \"{consistency}\"\n}}\n\nservice \"db\" \
             {{\n  container = \"{}\"\n  volumes   = [volume.data]\n}}",
            volume.name(),
            container.name
        )
    };
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let write = |consistency: &str| {
        std::fs::write(
            ws.path().join("main.hcl"),
            format!("{spec}\n{}\n", block(consistency)),
        )
        .unwrap()
    };
    write("none");
    ws.ok(&["apply", "--auto-approve"]);
    assert!(ws.ok(&["plan"]).stdout().contains("= volume.data"));

    write("stop");
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("+ volume.data"), "{plan}");
    assert!(
        plan.stdout()
            .contains("taken with consistency none < stop now asked"),
        "{plan}"
    );
    ws.ok(&["apply", "--auto-approve"]);
    let after = ws.ok(&["plan"]);
    assert!(after.stdout().contains("= volume.data"), "{after}");

    // Asking less than the copy had is not a reason to copy again.
    write("pause");
    let weaker = ws.ok(&["plan"]);
    assert!(weaker.stdout().contains("= volume.data"), "{weaker}");
}
