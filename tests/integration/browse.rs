//! One file out of a snapshot without restoring it: `ls`, `find`, `dump`
//! and `diff` on real snapshots of a volume.

use crate::harness::{Run, Workspace};
use crate::support;

#[test]
fn a_file_is_listed_found_written_out_and_compared_without_a_restore() {
    let volume = support::TestVolume::create("browse");
    let root = volume.mountpoint();
    std::fs::create_dir_all(root.join("config/nested")).unwrap();
    std::fs::write(root.join("config/app.conf"), b"port = 80\n").unwrap();
    std::fs::write(root.join("config/nested/extra.conf"), b"x\n").unwrap();
    std::fs::write(root.join("upload.bin"), support::random_bytes(300_000, 3)).unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let first: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let first_id = first[0]["short_id"].as_str().unwrap().to_string();

    let listed = ws.ok(&["ls", "volume.data"]);
    assert_eq!(listed.stdout(), "config/\nupload.bin\n", "{listed}");
    let long = ws.ok(&["ls", "--long", "latest:volume.data", "config"]);
    assert!(long.stdout().contains("app.conf"), "{long}");
    assert!(long.stdout().contains("file"), "{long}");
    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["ls", "--json", "-r", &first_id]).stdout()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5, "{json}");

    let written = ws.ok(&["dump", "volume.data", "config/app.conf"]);
    assert_eq!(written.stdout(), "port = 80\n");
    let big = ws
        .command(&["dump", &first_id, "/upload.bin"])
        .output()
        .unwrap();
    assert_eq!(big.stdout, std::fs::read(root.join("upload.bin")).unwrap());
    let missing = ws.run(&["dump", "volume.data", "nope.conf"]);
    assert_eq!(missing.code(), 1, "{missing}");
    assert!(
        missing.stderr().contains("has nothing at nope.conf"),
        "{missing}"
    );

    // A change, a second snapshot, then find and diff.
    std::fs::write(root.join("config/app.conf"), b"port = 8080\n").unwrap();
    std::fs::remove_file(root.join("upload.bin")).unwrap();
    std::fs::write(root.join("config/new.conf"), b"y\n").unwrap();
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    let found = ws.ok(&["find", "*.conf"]);
    let text = found.stdout();
    assert_eq!(text.matches("snapshot ").count(), 2, "{found}");
    assert!(text.contains("config/new.conf"), "{found}");
    let by_path = ws.ok(&["find", "--json", "config/nested/*"]);
    let value: serde_json::Value = serde_json::from_str(&by_path.stdout()).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2, "{by_path}");

    let diff = ws.ok(&["diff", &first_id, "latest:volume.data"]);
    let text = diff.stdout();
    assert!(text.contains("M    config/app.conf"), "{diff}");
    assert!(text.contains("+    config/new.conf"), "{diff}");
    assert!(text.contains("-    upload.bin"), "{diff}");
    assert!(text.contains("1 added, 1 removed"), "{diff}");
}

/// Every file of the repository with its bytes: what a read-only command
/// must leave exactly as it was.
fn repository_files(ws: &Workspace) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    crate::harness::files_in(&ws.repository())
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn the_live_volume_is_compared_with_its_latest_snapshot_read_directly_or_through_the_api() {
    let volume = support::TestVolume::create("diff-live");
    let root = volume.mountpoint();
    std::fs::write(root.join("app.conf"), b"port = 80\n").unwrap();
    std::fs::write(root.join("upload.bin"), support::random_bytes(100_000, 5)).unwrap();
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::write(root.join("same.txt"), b"unchanged\n").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name()), ("other", "lifeboat-never")]);
    let spec_file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&spec_file).unwrap().replacen(
        "policy = policy.default\n",
        "policy = policy.default\n  exclude = [\"*.tmp\"]\n",
        1,
    );
    std::fs::write(&spec_file, spec).unwrap();
    ws.ok(&["apply", "--auto-approve", "--target", "volume.data"]);
    let id = crate::harness::snapshot_ids(&ws)[0][..8].to_string();

    // One file of each change, and one the snapshot's excludes leave out;
    // the root's time put back, so that only those four differ.
    let root_time = std::fs::metadata(&root).unwrap().modified().unwrap();
    std::fs::write(root.join("app.conf"), b"port = 81\n").unwrap();
    std::fs::remove_file(root.join("upload.bin")).unwrap();
    std::fs::write(root.join("new.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("scratch.tmp"), b"left out\n").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(root.join("run.sh"), mode).unwrap();
    filetime::set_file_mtime(&root, filetime::FileTime::from_system_time(root_time)).unwrap();
    let repository_before = repository_files(&ws);

    let expected = format!(
        "M    app.conf\n+    new.txt\nU    run.sh\n-    upload.bin\n\n{id} → live of volume.data: \
         1 added, 1 removed, 1 modified, 1 with other metadata only.\n"
    );
    let mut json = Vec::new();
    for access in ["direct", "api"] {
        let text = ws.ok(&["diff", "volume.data", "--access", access]);
        assert_eq!(text.stdout(), expected, "--access {access}: {text}");
        let listed = ws.ok(&["diff", "--json", &id, "--access", access]);
        let value: serde_json::Value = serde_json::from_str(&listed.stdout()).unwrap();
        let changes: Vec<(&str, &str)> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["change"].as_str().unwrap(), d["path"].as_str().unwrap()))
            .collect();
        assert_eq!(
            changes,
            [
                ("modified", "app.conf"),
                ("added", "new.txt"),
                ("metadata", "run.sh"),
                ("removed", "upload.bin"),
            ],
            "--access {access}: {listed}"
        );
        json.push(value);
    }
    assert_eq!(json[0], json[1], "both ways of reading say the same");
    assert!(
        repository_files(&ws) == repository_before,
        "diff wrote to the repository"
    );
    assert_eq!(crate::harness::snapshot_ids(&ws).len(), 1);

    // What cannot be compared, each said with what to do.
    let undeclared = ws.run(&["diff", "volume.nope"]);
    assert_eq!(undeclared.code(), 1, "{undeclared}");
    assert!(
        undeclared
            .stderr()
            .contains("volume.nope: the spec declares no such resource"),
        "{undeclared}"
    );
    let never = ws.run(&["diff", "volume.other"]);
    assert!(
        never.stderr().contains("no snapshot of volume.other yet"),
        "{never}"
    );
    assert!(never.stderr().contains("lifeboat apply"), "{never}");
    let policy = ws.run(&["diff", "policy.default"]);
    assert_ne!(policy.code(), 0, "{policy}");
    assert!(policy.stderr().contains("policy.default"), "{policy}");
    let unreachable = Run(ws
        .command(&["diff", "volume.data"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap());
    assert_ne!(unreachable.code(), 0, "{unreachable}");
    let message = unreachable.stderr();
    assert!(message.contains("diff volume.data"), "{unreachable}");
    assert!(
        message.contains("cannot reach the Docker engine"),
        "{unreachable}"
    );
}

#[test]
fn snapshots_are_named_by_tag_and_address_as_restore_names_them_by_tag() {
    let volume = support::TestVolume::create("browse-tag");
    let root = volume.mountpoint();
    std::fs::write(root.join("app.conf"), b"release\n").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve", "--tag", "release=v1.4.2"]);
    std::fs::write(root.join("app.conf"), b"after the release\n").unwrap();
    std::fs::write(root.join("new.conf"), b"new\n").unwrap();
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);

    let tagged = "tag:release=v1.4.2:volume.data";
    let diff = ws.ok(&["diff", tagged, "latest:volume.data"]);
    let out = diff.stdout();
    assert!(out.contains("M    app.conf\n"), "{diff}");
    assert!(out.contains("+    new.conf\n"), "{diff}");
    assert!(out.contains("1 added, 0 removed, 1 modified"), "{diff}");
    let live = ws.ok(&["diff", tagged]);
    assert!(live.stdout().contains("→ live of volume.data"), "{live}");
    assert!(live.stdout().contains("M    app.conf\n"), "{live}");
    let dumped = ws.ok(&["dump", tagged, "app.conf"]);
    assert_eq!(dumped.stdout(), "release\n");
    assert_eq!(ws.ok(&["ls", tagged]).stdout(), "app.conf\n");

    let other = ws.run(&["diff", "tag:release=v9:volume.data", "volume.data"]);
    assert_eq!(other.code(), 1, "{other}");
    assert!(
        other
            .stderr()
            .contains("no snapshot of volume.data has the tag release=v9"),
        "{other}"
    );
    let no_address = ws.run(&["diff", "tag:release=v1.4.2", "volume.data"]);
    assert_eq!(no_address.code(), 1, "{no_address}");
    assert!(
        no_address.stderr().contains("write tag:KEY=VALUE:ADDR"),
        "{no_address}"
    );
}
