//! Restores into other names on the real engine (`restore --into`,
//! `--into-suffix`, `--network`): the snapshot lands in new objects beside
//! the live ones, which keep running untouched, and a name already taken
//! is refused with nothing written.

use crate::harness::Workspace;
use crate::services::{docker, docker_ok};
use crate::support;

const IMAGE: &str = "lifeboat-test/busybox:1";

fn inspect(container: &str, format: &str) -> String {
    docker_ok(&["inspect", "-f", format, container])
}

/// Docker objects a test creates (or makes lifeboat create), removed at
/// its end whatever happened.
struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        for network in &self.networks {
            let _ = docker(&["network", "rm", network]);
        }
        for volume in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", volume]);
        }
    }
}

/// Insists that `run`'s output says each of `texts`.
fn says(run: &crate::harness::Run, texts: &[String]) {
    let out = run.stdout();
    for text in texts {
        assert!(out.contains(text.as_str()), "{text:?} in:\n{run}");
    }
}

/// Insists that the directory `actual` holds exactly the tree `expected`;
/// `what` says which promise broke.
fn same_tree(expected: &tempfile::TempDir, actual: &std::path::Path, what: &str) {
    support::compare_trees(expected.path(), actual)
        .unwrap_or_else(|diff| panic!("{what}:\n{diff}"));
}

/// `restore --into-suffix _clone --network NETWORK` of the whole spec.
fn clone_stack(ws: &Workspace, network: &str) -> crate::harness::Run {
    ws.ok(&[
        "restore",
        "--auto-approve",
        "--into-suffix",
        "_clone",
        "--network",
        network,
    ])
}

/// The mountpoint of a volume (tests run as root on the engine's host).
fn mountpoint(volume: &str) -> std::path::PathBuf {
    docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume]).into()
}

#[test]
fn a_volume_restores_into_a_new_volume_while_the_live_one_is_in_use() {
    let live = support::TestVolume::create("into-live");
    let copy = format!("{}-copy", live.name());
    let user = format!("lifeboat-test-into-user-{}", std::process::id());
    let _cleanup = Cleanup {
        containers: vec![user.clone()],
        networks: Vec::new(),
        volumes: vec![copy.clone()],
    };
    support::fill_tricky(&live.mountpoint());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &user,
        "-v",
        &format!("{}:/data", live.name()),
        IMAGE,
        "sleep",
        "3600",
    ]);
    let started = inspect(&user, "{{.State.StartedAt}}");
    let ws = Workspace::with_volumes(&[("data", live.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let snapshot = support::keep_copy(&live.mountpoint());
    std::fs::write(live.mountpoint().join("written-since.txt"), b"live data").unwrap();
    let live_now = support::keep_copy(&live.mountpoint());

    let into_copy = [
        "restore",
        "--auto-approve",
        "--target",
        "volume.data",
        "--into",
        &copy,
    ];
    let restored = ws.ok(&into_copy);
    says(
        &restored,
        &[
            format!("< volume.data → {copy}"),
            format!("create Docker volume {copy}"),
        ],
    );
    same_tree(
        &snapshot,
        &mountpoint(&copy),
        "the new volume is not the snapshot",
    );
    // The live volume and the container using it: as they were.
    same_tree(&live_now, &live.mountpoint(), "the live volume was touched");
    assert_eq!(inspect(&user, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(&user, "{{.State.StartedAt}}"),
        started,
        "never stopped"
    );
    // Not a restore of the live volume: nothing marks it restored or partial.
    let plan = ws.ok(&["plan"]);
    assert!(!plan.stdout().contains("partial restore"), "{plan}");

    // Again: the name is taken now, refused, nothing written.
    std::fs::write(mountpoint(&copy).join("mine.txt"), b"keep me").unwrap();
    let kept = support::keep_copy(&mountpoint(&copy));
    let refused = ws.run(&into_copy);
    assert_eq!(refused.code(), 1, "{refused}");
    says(
        &refused,
        &[
            format!("Docker volume {copy} already exists"),
            format!("docker volume rm {copy}"),
        ],
    );
    same_tree(&kept, &mountpoint(&copy), "the existing volume was written");

    // What cannot be a restore into other names says why.
    for (args, expected) in [
        (vec!["--into", "x", "--replace"], "cannot be used with"),
        (
            vec!["--into", live.name()],
            "is the live volume of volume.data",
        ),
        (vec!["--into", "bad name"], "Docker volume name"),
        (vec!["--into", "volume.nope=x"], "declares no such resource"),
    ] {
        let mut full = vec!["restore", "--auto-approve", "--target", "volume.data"];
        full.extend(args);
        let run = ws.run(&full);
        assert_ne!(run.code(), 0, "{full:?}: {run}");
        assert!(run.stderr().contains(expected), "{full:?}: {run}");
    }
}

#[test]
fn a_stack_restores_beside_the_live_one_on_an_isolated_network() {
    let pid = std::process::id();
    let volume = format!("lifeboat-test-into-stack-{pid}");
    let container = format!("lifeboat-test-into-web-{pid}");
    let network = format!("lifeboat-test-into-net-{pid}");
    let drill = format!("lifeboat-test-into-drill-{pid}");
    let _cleanup = Cleanup {
        containers: vec![container.clone(), format!("{container}_clone")],
        networks: vec![network.clone(), drill.clone()],
        volumes: vec![volume.clone(), format!("{volume}_clone")],
    };
    docker_ok(&["network", "create", &network]);
    docker_ok(&["volume", "create", &volume]);
    std::fs::write(mountpoint(&volume).join("rows.txt"), b"the snapshot's rows").unwrap();
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &container,
        "--network",
        &network,
        "--network-alias",
        "web",
        "-p",
        "127.0.0.1::8080",
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sleep",
        "3600",
    ]);
    let live_id = inspect(&container, "{{.Id}}");
    let ws = Workspace::with_volumes(&[("data", &volume)]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nservice \"web\" {{\n  container = \"{container}\"\n  volumes   = \
             [volume.data]\n  verify    = [\"test\", \"-f\", \"/data/rows.txt\"]\n}}\n"
        ),
    )
    .unwrap();
    ws.ok(&["apply", "--auto-approve"]);
    std::fs::write(mountpoint(&volume).join("rows.txt"), b"live rows, newer").unwrap();

    let restored = clone_stack(&ws, &drill);
    says(
        &restored,
        &[
            format!("< volume.data → {volume}_clone"),
            format!("< service.web → {container}_clone (network {drill}, no published ports)"),
        ],
    );
    let clone = format!("{container}_clone");
    assert_eq!(inspect(&clone, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(
            &clone,
            "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}"
        ),
        drill
    );
    assert!(
        inspect(
            &clone,
            &format!("{{{{json (index .NetworkSettings.Networks \"{drill}\").Aliases}}}}")
        )
        .contains("\"web\""),
        "found by its usual name on the isolated network"
    );
    let ports = inspect(&clone, "{{json .HostConfig.PortBindings}}");
    assert!(
        ports == "null" || ports == "{}",
        "no published ports: {ports}"
    );
    assert_eq!(
        inspect(&clone, "{{range .Mounts}}{{.Name}}{{end}}"),
        format!("{volume}_clone")
    );
    assert_eq!(
        docker_ok(&["network", "inspect", "-f", "{{.Internal}}", &drill]),
        "true"
    );
    assert_eq!(
        std::fs::read(mountpoint(&format!("{volume}_clone")).join("rows.txt")).unwrap(),
        b"the snapshot's rows"
    );
    // The live stack: the same container, running, on its network, with its data.
    assert_eq!(inspect(&container, "{{.Id}}"), live_id);
    assert_eq!(inspect(&container, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(
            &container,
            "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}"
        ),
        network
    );
    assert_eq!(
        std::fs::read(mountpoint(&volume).join("rows.txt")).unwrap(),
        b"live rows, newer"
    );
}

#[test]
fn a_database_clone_runs_beside_the_live_one_and_a_dump_fills_a_scratch_server() {
    use crate::dumps::{Server, init_spec};
    let live = Server::new("intolive");
    let drill = format!("lifeboat-test-into-pgdrill-{}", std::process::id());
    let _cleanup = Cleanup {
        containers: vec![format!("{}_clone", live.container)],
        networks: vec![drill.clone()],
        volumes: vec![format!("{}_clone", live.volume)],
    };
    live.start();
    live.psql("CREATE TABLE items (n integer); INSERT INTO items SELECT generate_series(1, 100)");
    let ws = Workspace::with_volumes(&[]);
    init_spec(&ws, &live);
    ws.ok(&["apply", "--auto-approve"]);
    live.psql("INSERT INTO items SELECT generate_series(1, 50)");
    let live_id = inspect(&live.container, "{{.Id}}");

    // The whole stack beside the live one: its volume from the snapshot,
    // so the dump is not loaded over it (the rows would double).
    let cloned = clone_stack(&ws, &drill);
    says(
        &cloned,
        &[
            format!("< volume.pgdata → {}_clone", live.volume),
            "= dump.db".to_string(),
        ],
    );
    // Dropped at the end: removes the clone's container and volume.
    let clone = Server {
        project: String::new(),
        container: format!("{}_clone", live.container),
        volume: format!("{}_clone", live.volume),
    };
    assert_eq!(clone.rows(), "100", "the snapshot's rows, once");
    assert_eq!(live.rows(), "150", "the live rows, untouched");
    assert_eq!(inspect(&live.container, "{{.Id}}"), live_id);
    assert_eq!(inspect(&live.container, "{{.State.Running}}"), "true");
    // The clone's Compose labels are gone: Compose does not take it for db.
    assert_eq!(
        inspect(
            &clone.container,
            "{{index .Config.Labels \"com.docker.compose.project\"}}"
        ),
        ""
    );

    // A dump into a scratch server named on the command line.
    let scratch = Server::new("intoscratch");
    scratch.start();
    let filled = ws.ok(&[
        "restore",
        "--auto-approve",
        "--target",
        "dump.db",
        "--into",
        &format!("dump.db={}", scratch.container),
    ]);
    says(
        &filled,
        &[format!("< dump.db → container {}", scratch.container)],
    );
    assert_eq!(scratch.rows(), "100");
    assert_eq!(live.rows(), "150");
}
