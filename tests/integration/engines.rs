//! Several engines in one spec: a second dockerd on this machine (started by
//! scripts/test.sh, see scripts/lib/ensure-docker.sh), the same volume name
//! on both, each backed up and restored on its own engine.

use crate::harness::Workspace;
use std::process::Command;

/// The second engine's address: from scripts/test.sh, else where it starts it.
pub(crate) fn second_engine() -> String {
    let host = std::env::var("LIFEBOAT_TEST_SECOND_ENGINE")
        .unwrap_or_else(|_| "unix:///run/lifeboat-engine2.sock".to_string());
    let up = Command::new("docker")
        .args(["-H", &host, "info"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        up,
        "no second Docker engine answers at {host}: run the tests with scripts/test.sh, \
         which starts one (ensure_second_dockerd in scripts/lib/ensure-docker.sh)"
    );
    host
}

/// `docker` against the engine at `host`; panics when it fails.
pub(crate) fn docker(host: &str, args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(["-H", host])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker -H {host} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `content` as `/data/file` into volume `name` on the engine at `host`.
fn fill(host: &str, name: &str, content: &str) {
    // The second engine holds no images: give it the busybox test image.
    let has_image = Command::new("docker")
        .args(["-H", host, "image", "inspect", "lifeboat-test/busybox:1"])
        .output()
        .unwrap()
        .status
        .success();
    if !has_image {
        let save = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save lifeboat-test/busybox:1 | docker -H {host} load"
            ))
            .output()
            .unwrap();
        assert!(save.status.success(), "{save:?}");
    }
    docker(host, &["volume", "create", name]);
    docker(
        host,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{name}:/data"),
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            &format!("printf '{content}' > /data/file"),
        ],
    );
}

/// The content of `/data/file` in volume `name` on the engine at `host`.
fn read(host: &str, name: &str) -> String {
    docker(
        host,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{name}:/data"),
            "lifeboat-test/busybox:1",
            "cat",
            "/data/file",
        ],
    )
}

#[test]
fn the_same_volume_name_on_two_engines_is_two_resources_each_restored_on_its_own() {
    let second = second_engine();
    let first = "unix:///var/run/docker.sock";
    let name = format!("lifeboat-engines-{}", std::process::id());
    for host in [first, second.as_str()] {
        let _ = Command::new("docker")
            .args(["-H", host, "volume", "rm", "-f", &name])
            .output();
    }
    fill(first, &name, "on the first engine");
    fill(&second, &name, "on the second engine");

    let ws = Workspace::with_volumes(&[("here", &name)]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nengine \"second\" {{\n  host = \"{second}\"\n}}\n\nvolume \"there\" {{\n  \
             name   = \"{name}\"\n  engine = engine.second\n  policy = policy.default\n}}\n"
        ),
    )
    .unwrap();

    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("+ volume.here "), "{plan}");
    assert!(
        plan.stdout().contains("+ volume.there (engine.second)"),
        "{plan}"
    );
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 2 backed up"),
        "{applied}"
    );
    let snapshots = ws.ok(&["snapshots", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&snapshots.stdout()).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{snapshots}");

    for host in [first, second.as_str()] {
        docker(host, &["volume", "rm", &name]);
    }
    let restored = ws.ok(&["restore", "--auto-approve"]);
    assert!(
        restored.stdout().contains("volume.there (engine.second)"),
        "{restored}"
    );
    assert_eq!(read(first, &name), "on the first engine");
    assert_eq!(read(&second, &name), "on the second engine");

    // An engine that cannot be reached fails its resources only.
    std::fs::write(
        ws.path().join("main.hcl"),
        std::fs::read_to_string(ws.path().join("main.hcl"))
            .unwrap()
            .replace(&second, "unix:///run/lifeboat-no-such-engine.sock"),
    )
    .unwrap();
    let partial = ws.run(&["plan"]);
    assert!(partial.stdout().contains("= volume.here "), "{partial}");
    assert!(
        partial.stdout().contains("! volume.there (engine.second)"),
        "{partial}"
    );
    assert!(
        format!("{partial}").contains("lifeboat-no-such-engine.sock"),
        "{partial}"
    );

    for host in [first, second.as_str()] {
        let _ = Command::new("docker")
            .args(["-H", host, "volume", "rm", "-f", &name])
            .output();
    }
}
