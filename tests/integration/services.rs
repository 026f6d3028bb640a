//! Service blocks: a container's configuration backed up, and the container
//! (with its user-defined network) recreated from it by a restore, on the
//! real engine. Secrets in its environment never reach the output.

use crate::harness::Workspace;
use std::process::Command;

const IMAGE: &str = "lifeboat-test/busybox:1";
const SECRET: &str = "s3cr3t-svc-value-8841";

pub(crate) fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

pub(crate) fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker inspect` of the container, as JSON, keeping what the restore
/// promises to bring back (and not what the engine assigns each time).
fn config_of(container: &str) -> serde_json::Value {
    let text = docker_ok(&["inspect", container]);
    let inspected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let c = &inspected[0];
    let mut networks = serde_json::Map::new();
    for (name, endpoint) in c["NetworkSettings"]["Networks"].as_object().unwrap() {
        let id: String = c["Id"].as_str().unwrap().chars().take(12).collect();
        let mut aliases: Vec<String> = endpoint["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .filter(|a| *a != id)
            .map(str::to_string)
            .collect();
        aliases.sort();
        networks.insert(name.clone(), serde_json::json!(aliases));
    }
    serde_json::json!({
        "image": c["Config"]["Image"],
        "image_id": c["Image"],
        "cmd": c["Config"]["Cmd"],
        "env": c["Config"]["Env"],
        "labels": c["Config"]["Labels"],
        "user": c["Config"]["User"],
        "working_dir": c["Config"]["WorkingDir"],
        "healthcheck": c["Config"]["Healthcheck"],
        "ports": c["HostConfig"]["PortBindings"],
        "restart": c["HostConfig"]["RestartPolicy"],
        "network_mode": c["HostConfig"]["NetworkMode"],
        "mounts": c["Mounts"].as_array().unwrap().iter().map(|m| {
            serde_json::json!([m["Type"], m["Name"], m["Destination"], m["RW"]])
        }).collect::<Vec<_>>(),
        "tmpfs": c["HostConfig"]["Tmpfs"],
        "networks": networks,
    })
}

struct Cleanup {
    container: String,
    network: String,
    volume: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.container]);
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["volume", "rm", "-f", &self.volume]);
    }
}

#[test]
fn a_service_is_recreated_from_its_configuration_with_its_network() {
    let prefix = format!("lb-svc-{}", std::process::id());
    let container = format!("{prefix}-web");
    let network = format!("{prefix}-net");
    let volume = format!("{prefix}-data");
    let _cleanup = Cleanup {
        container: container.clone(),
        network: network.clone(),
        volume: volume.clone(),
    };
    docker_ok(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "172.29.77.0/24",
        "--label",
        "lifeboat.test=services",
        "--opt",
        "com.docker.network.bridge.enable_icc=true",
        &network,
    ]);
    docker_ok(&["volume", "create", &volume]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &container,
        "--network",
        &network,
        "--network-alias",
        "web",
        "--network-alias",
        "frontend",
        "-e",
        "MODE=production",
        "-e",
        &format!("API_TOKEN={SECRET}"),
        "--label",
        "tier=front",
        "--label",
        "lifeboat.test=services",
        "-p",
        "127.0.0.1::8080",
        "--restart",
        "on-failure:3",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "-w",
        "/tmp",
        "-u",
        "0:0",
        "--tmpfs",
        "/scratch:size=8m",
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sleep",
        "3600",
    ]);
    let before = config_of(&container);

    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nvolume \"data\" {{\n  name = \"{volume}\"\n}}\n\nservice \"web\" {{\n  \
             container = \"{container}\"\n  volumes   = [volume.data]\n  verify    = [\"test\", \
             \"-d\", \"/data\"]\n}}\n"
        ),
    )
    .unwrap();

    let validate = ws.ok(&["validate"]);
    assert!(
        !validate.to_string().contains("does not act on"),
        "{validate}"
    );
    let plan = ws.ok(&["plan"]);
    assert!(plan.stdout().contains("+ service.web"), "{plan}");
    assert!(!plan.stdout().contains("Warning: service"), "{plan}");
    let json = ws.ok(&["plan", "--json"]);
    assert!(json.stdout().contains("API_TOKEN"), "{json}");
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 2 backed up"),
        "{applied}"
    );
    let again = ws.ok(&["plan"]);
    assert!(again.stdout().contains("= service.web"), "{again}");

    // It exists: the restore leaves it alone and says so.
    let kept = ws.ok(&["restore", "--auto-approve", "--target", "service.web"]);
    assert!(kept.stdout().contains("left alone"), "{kept}");

    docker_ok(&["rm", "-f", &container]);
    docker_ok(&["network", "rm", &network]);
    let restored = ws.ok(&["restore", "--auto-approve", "--target", "service.web"]);
    assert!(
        restored
            .stdout()
            .contains(&format!("create container {container}")),
        "{restored}"
    );
    assert_eq!(config_of(&container), before);
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Running}}", &container]),
        "true"
    );
    let net = docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}} {{index .Labels \"lifeboat.test\"}}",
        &network,
    ]);
    assert_eq!(net, "bridge 172.29.77.0/24 services");
    let unchanged = ws.ok(&["plan"]);
    assert!(unchanged.stdout().contains("= service.web"), "{unchanged}");

    // --replace removes and recreates it.
    let replaced = ws.ok(&[
        "restore",
        "--auto-approve",
        "--replace",
        "--target",
        "service.web",
    ]);
    assert!(replaced.stdout().contains("recreate"), "{replaced}");
    assert_eq!(config_of(&container), before);

    for run in [
        &validate, &plan, &json, &applied, &again, &kept, &restored, &replaced,
    ] {
        assert!(!run.stdout().contains(SECRET), "{run}");
        assert!(!run.stderr().contains(SECRET), "{run}");
    }
    let repository = walkdir::WalkDir::new(ws.repository())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .any(|e| {
            std::fs::read(e.path())
                .map(|data| data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
                .unwrap_or(false)
        });
    assert!(
        !repository,
        "the secret is stored in clear in the repository"
    );
}
