//! Untrusted repository content through the CLI, in the API mode (the
//! Docker archive stream): a damaged or missing blob is named with its
//! cause (before anything reaches Docker where the tree shows it), never as the HTTP client's
//! "broken request".

use crate::harness::Workspace;
use crate::support;

#[test]
fn api_mode_restore_of_a_damaged_snapshot_names_the_cause() {
    let data = support::TestVolume::create("hostile-api");
    std::fs::write(
        data.mountpoint().join("big.bin"),
        support::random_bytes(3_000_000, 7),
    )
    .unwrap();
    std::fs::write(data.mountpoint().join("small.txt"), b"small").unwrap();
    let ws = Workspace::with_volumes(&[("data", data.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    // A flipped bit in the middle of the pack: inside big.bin's data.
    let biggest = ws.biggest_pack();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&biggest, bytes).unwrap();
    // The volume is lost; `data` still removes what the restore recreates.
    let removed = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", data.name()])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let restore = ws.run(&["restore", "--auto-approve", "--access", "api"]);
    assert_eq!(restore.code(), 1, "{restore}");
    let text = restore.to_string();
    assert!(!text.contains("hyper"), "{restore}");
    assert!(!text.contains("SendRequest"), "{restore}");
    assert!(text.contains("big.bin"), "names a file: {restore}");
    assert!(text.contains("damaged or missing"), "{restore}");
}

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

/// A service snapshot is data anyone holding the key could have written:
/// a restore shows every setting that reaches into the host, and creates
/// none the container there now lacks unless `--allow` names it.
#[test]
fn a_service_snapshot_with_host_access_is_shown_and_refused_unless_allowed() {
    let container = format!("lb-hostile-svc-{}", std::process::id());
    let _ = docker(&["rm", "-f", &container]);
    let _cleanup = support::RemoveContainer(container.clone());
    // Created, not started: this sandbox's kernel refuses privileged
    // containers' capabilities at start, and the settings are the point.
    let run = |extra: &[&str]| {
        let mut args = vec!["create", "--name", container.as_str()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["lifeboat-test/busybox:1", "sleep", "3600"]);
        let out = docker(&args);
        assert!(out.status.success(), "{out:?}");
    };
    run(&[
        "--privileged",
        "--cap-add",
        "SYS_ADMIN",
        "--network",
        "host",
        "-v",
        "/:/host",
        "--security-opt",
        "apparmor=unconfined",
    ]);
    let ws = Workspace::with_volumes(&[]);
    std::fs::write(
        ws.path().join("svc.hcl"),
        format!("service \"evil\" {{\n  container = \"{container}\"\n}}\n"),
    )
    .unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    // The container there now is an ordinary one of the same name.
    assert!(docker(&["rm", "-f", &container]).status.success());
    run(&[]);
    let settings = [
        "privileged",
        "cap-add:SYS_ADMIN",
        "network:host",
        "bind:/",
        "security-opt:apparmor=unconfined",
        // Docker adds it to every privileged container.
        "security-opt:label=disable",
    ];
    let refused = ws.run(&[
        "restore",
        "--replace",
        "--auto-approve",
        "--target",
        "service.evil",
    ]);
    assert_eq!(refused.code(), 1, "{refused}");
    let text = refused.stdout();
    for setting in settings {
        assert!(text.contains(setting), "{setting} not shown: {refused}");
        assert!(text.contains(&format!("--allow {setting}")), "{refused}");
    }
    let inspect = |field: &str| {
        let out = docker(&["inspect", "-f", field, &container]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(inspect("{{.HostConfig.Privileged}}"), "false", "left alone");
    // Named one by one, they are allowed, and the plan still shows them.
    let mut args = vec![
        "restore",
        "--replace",
        "--auto-approve",
        "--target",
        "service.evil",
    ];
    for setting in settings {
        args.extend_from_slice(&["--allow", setting]);
    }
    let allowed = ws.ok(&args);
    assert!(
        allowed.stdout().contains("with access to the host: "),
        "{allowed}"
    );
    assert_eq!(inspect("{{.HostConfig.Privileged}}"), "true");
    // Now the container there has them: restoring it again needs no flag.
    ws.ok(&[
        "restore",
        "--replace",
        "--auto-approve",
        "--target",
        "service.evil",
    ]);
}

/// A container that holds the service's name but is another container is
/// not "up to date": the plan says how it differs.
#[test]
fn a_container_of_the_same_name_but_another_configuration_is_named_as_such() {
    let container = format!("lb-hostile-other-{}", std::process::id());
    let _ = docker(&["rm", "-f", &container]);
    let _cleanup = support::RemoveContainer(container.clone());
    let start = |command: &str| {
        let out = docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "-e",
            "MODE=x",
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            command,
        ]);
        assert!(out.status.success(), "{out:?}");
    };
    start("sleep 3600");
    let ws = Workspace::with_volumes(&[]);
    std::fs::write(
        ws.path().join("svc.hcl"),
        format!("service \"app\" {{\n  container = \"{container}\"\n}}\n"),
    )
    .unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    let same = ws.ok(&["restore", "--auto-approve"]);
    assert!(same.stdout().contains("exists and is left alone"), "{same}");
    assert!(docker(&["rm", "-f", &container]).status.success());
    start("sleep 7200");
    let other = ws.ok(&["restore", "--auto-approve"]);
    assert!(
        other
            .stdout()
            .contains("exists but is not the snapshot's container (it differs in command)"),
        "{other}"
    );
}
