//! Image blocks: images built on a local base are backed up (each layer
//! once), removed, and restored base first with the same ids; an unchanged
//! image is up to date; a tag pointing at another image is only moved with
//! `--replace`.

use crate::harness::Workspace;

/// The prefix of every image these tests make (others test in parallel).
const PREFIX: &str = "lifeboat-h2-images";

pub(crate) fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs (tests only; lifeboat itself uses the API)")
}

pub(crate) fn image_id(reference: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds `tag` FROM `from`, adding one file of `content` (a layer of its own).
pub(crate) fn build(tag: &str, from: &str, content: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.txt"), content).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {from}\nCOPY file.txt /{}.txt\n",
            tag.replace([':', '/'], "-")
        ),
    )
    .unwrap();
    let out = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag, "."])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn remove(tags: &[&str]) {
    for tag in tags {
        let _ = docker(&["rmi", "-f", tag]);
    }
}

/// Removes the test's images whatever happens.
pub(crate) struct Images(pub Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        let tags: Vec<&str> = self.0.iter().map(String::as_str).collect();
        remove(&tags);
    }
}

#[test]
fn images_come_back_base_first_with_the_same_ids() {
    let base = format!("{PREFIX}/base:1");
    let app = format!("{PREFIX}/app:1");
    let deep = format!("{PREFIX}/deep:1");
    let _cleanup = Images(vec![deep.clone(), app.clone(), base.clone()]);
    remove(&[&deep, &app, &base]);
    let unique = format!("{:?}", std::time::SystemTime::now());
    build(&base, "lifeboat-test/busybox:1", &format!("base {unique}"));
    build(&app, &base, &format!("app {unique}"));
    build(&deep, &app, &format!("deep {unique}"));
    let ids: Vec<String> = [&base, &app, &deep]
        .iter()
        .map(|t| image_id(t).expect("built"))
        .collect();

    // Names sort against the build order: only the layers order them.
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nimage \"a_deep\" {{\n  ref    = \"{deep}\"\n  policy = policy.default\n}}\n\
             \nimage \"b_app\" {{\n  ref    = \"{app}\"\n  policy = policy.default\n}}\n\
             \nimage \"c_base\" {{\n  ref    = \"{base}\"\n  policy = policy.default\n}}\n"
        ),
    )
    .unwrap();
    let in_order = |text: &str, symbol: char| {
        let at = |name: &str| {
            text.find(&format!("{symbol} image.{name}"))
                .unwrap_or_else(|| panic!("{symbol} image.{name} in:\n{text}"))
        };
        assert!(at("c_base") < at("b_app"), "{text}");
        assert!(at("b_app") < at("a_deep"), "{text}");
    };

    let plan = ws.ok(&["plan"]);
    in_order(&plan.stdout(), '+');
    assert!(!plan.stdout().contains("does not act"), "{plan}");
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 3 backed up"),
        "{applied}"
    );
    let unchanged = ws.ok(&["plan"]);
    in_order(&unchanged.stdout(), '=');

    remove(&[&deep, &app, &base]);
    assert!(image_id(&base).is_none());
    let restored = ws.ok(&["restore", "--auto-approve"]);
    in_order(&restored.stdout(), '<');
    let back: Vec<Option<String>> = [&base, &app, &deep].iter().map(|t| image_id(t)).collect();
    assert_eq!(
        back,
        ids.iter().cloned().map(Some).collect::<Vec<_>>(),
        "{restored}"
    );
    // The restored images are the backed-up ones: nothing to do.
    let again = ws.ok(&["plan"]);
    in_order(&again.stdout(), '=');

    // A tag that points at another image is moved only with --replace.
    assert!(
        docker(&["tag", "lifeboat-test/busybox:1", &app])
            .status
            .success()
    );
    let refused = ws.run(&["restore", "--auto-approve"]);
    assert_ne!(refused.code(), 0, "{refused}");
    assert!(
        refused.stdout().contains("already points at another image")
            && refused.stdout().contains("--replace"),
        "{refused}"
    );
    assert_ne!(image_id(&app).as_ref(), Some(&ids[1]));
    let replaced = ws.ok(&["restore", "--auto-approve", "--replace"]);
    assert!(replaced.stdout().contains("move"), "{replaced}");
    assert_eq!(image_id(&app).as_ref(), Some(&ids[1]), "{replaced}");
}

#[test]
fn a_base_the_layers_contradict_is_a_warning() {
    let base = format!("{PREFIX}/other-base:1");
    let app = format!("{PREFIX}/other-app:1");
    let _cleanup = Images(vec![app.clone(), base.clone()]);
    let unique = format!("{:?}", std::time::SystemTime::now());
    build(&base, "lifeboat-test/busybox:1", &format!("one {unique}"));
    build(&app, "lifeboat-test/busybox:1", &format!("two {unique}"));
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nimage \"app\" {{\n  ref    = \"{app}\"\n  base   = image.base\n  policy = policy.default\n}}\n\
             \nimage \"base\" {{\n  ref    = \"{base}\"\n  policy = policy.default\n}}\n"
        ),
    )
    .unwrap();
    let plan = ws.ok(&["plan"]);
    assert!(
        plan.stdout()
            .contains("its layers do not start with image.base's"),
        "{plan}"
    );
}

/// The `image.X` addresses of a plan's `symbol` lines (`+`, `<`), in order.
fn listed(text: &str, symbol: char) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(&symbol.to_string())
            && let Some(address) = words.next().filter(|a| a.starts_with("image."))
            && !addresses.iter().any(|a| a == address)
        {
            addresses.push(address.to_string());
        }
    }
    addresses
}

/// The numbered nodes and the labelled edges of `lifeboat graph`'s DOT.
fn drawn(dot: &str) -> (Vec<String>, Vec<String>) {
    let quoted = |text: &str| text.split('"').nth(1).unwrap_or_default().to_string();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for line in dot.lines() {
        if line.contains(" -> ") {
            edges.push(line.trim().to_string());
        } else if line.contains("[label = \"") {
            assert!(line.contains(&format!("\"{}. ", nodes.len() + 1)), "{dot}");
            nodes.push(quoted(line));
        }
    }
    (nodes, edges)
}

#[test]
fn the_graph_draws_the_order_and_edges_the_plans_follow() {
    let prefix = format!("lifeboat-graph-{}", std::process::id());
    let [base, a, c] = ["base", "a", "c"].map(|name| format!("{prefix}/{name}:1"));
    let _cleanup = Images(vec![c.clone(), a.clone(), base.clone()]);
    let unique = format!("{:?}", std::time::SystemTime::now());
    build(&base, "lifeboat-test/busybox:1", &format!("base {unique}"));
    build(&a, &base, &format!("a {unique}"));
    build(&c, &a, &format!("c {unique}"));
    // Names sort against the build order, and no `base =` is written:
    // only the layers order them.
    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let mut images = String::new();
    for (name, reference) in [("a", &a), ("base", &base), ("c", &c)] {
        images.push_str(&format!(
            "\nimage \"{name}\" {{\n  ref    = \"{reference}\"\n  policy = policy.default\n}}\n"
        ));
    }
    std::fs::write(ws.path().join("main.hcl"), format!("{spec}{images}")).unwrap();
    let expected = ["image.base", "image.a", "image.c"];
    let base_edges = [
        "\"image.a\" -> \"image.c\" [label = \"base image\"];",
        "\"image.base\" -> \"image.a\" [label = \"base image\"];",
    ];

    let plan = ws.ok(&["plan"]);
    let (order, edges) = drawn(&ws.ok(&["graph"]).stdout());
    assert_eq!(order, expected);
    assert_eq!(listed(&plan.stdout(), '+'), order, "{plan}");
    assert_eq!(edges, base_edges);

    ws.ok(&["apply", "--auto-approve"]);
    remove(&[&c, &a, &base]);
    // The images are gone: their snapshots' layers order them now.
    let graph = ws.ok(&["graph", "--restore"]);
    let (order, edges) = drawn(&graph.stdout());
    assert_eq!(order, expected, "{graph}");
    assert_eq!(edges, base_edges, "{graph}");
    let restored = ws.ok(&["restore", "--auto-approve"]);
    assert_eq!(listed(&restored.stdout(), '<'), order, "{restored}");

    // Without an engine the graph is the spec's alone, and says so.
    let blind = ws
        .command(&["graph", "--restore"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&blind.stdout),
        String::from_utf8_lossy(&blind.stderr),
    );
    assert_eq!(blind.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("Note: no engine could be reached"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("// Note: no engine could be reached"),
        "{stdout}"
    );
    assert_eq!(drawn(&stdout).1, Vec::<String>::new(), "{stdout}");
}

/// Issue 27: the images due together are exported in one request, each
/// still its own snapshot that restores with its id.
#[test]
fn images_due_together_are_exported_once_and_each_restores_with_its_id() {
    let prefix = format!("{PREFIX}-together-{}", std::process::id());
    let base = format!("{prefix}/base:1");
    let app = format!("{prefix}/app:1");
    let _cleanup = Images(vec![app.clone(), base.clone()]);
    let unique = format!("{:?}", std::time::SystemTime::now());
    let mut ids = Vec::new();
    for (tag, from) in [(&base, "lifeboat-test/busybox:1"), (&app, base.as_str())] {
        build(tag, from, &format!("{tag} {unique}"));
        ids.push(image_id(tag).expect("built"));
    }
    let ws = Workspace::with_volumes(&[]);
    let mut spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    for (name, reference) in [("app", &app), ("base", &base)] {
        spec.push_str(&format!(
            "\nimage \"{name}\" {{\n  ref    = \"{reference}\"\n  policy = policy.default\n}}\n"
        ));
    }
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied
            .to_string()
            .contains("exporting 2 images in one request"),
        "{applied}"
    );
    assert!(
        applied.stdout().contains("Apply complete! 2 backed up"),
        "{applied}"
    );
    let snapshots = ws.ok(&["snapshots"]);
    for address in ["image.app", "image.base"] {
        assert!(snapshots.stdout().contains(address), "{snapshots}");
    }

    remove(&[&app, &base]);
    let restored = ws.ok(&["restore", "--auto-approve"]);
    let back: Vec<Option<String>> = [&base, &app].iter().map(|t| image_id(t)).collect();
    assert_eq!(
        back,
        ids.iter().cloned().map(Some).collect::<Vec<_>>(),
        "{restored}"
    );
}

/// Issue 27: layers stream from the engine's export into the repository,
/// never through a temporary file: a backup with no usable temporary
/// directory works, and the image comes back with its id.
#[test]
fn an_image_backup_streams_its_layers_without_a_temporary_file() {
    let prefix = format!("{PREFIX}-streamed-{}", std::process::id());
    let app = format!("{prefix}/app:1");
    let _cleanup = Images(vec![app.clone()]);
    let unique = format!("{:?}", std::time::SystemTime::now());
    build(&app, "lifeboat-test/busybox:1", &format!("{app} {unique}"));
    let id = image_id(&app).expect("built");
    let ws = Workspace::with_volumes(&[]);
    let mut spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    spec.push_str(&format!(
        "\nimage \"app\" {{\n  ref    = \"{app}\"\n  policy = policy.default\n}}\n"
    ));
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    let no_temp = ws.path().join("no-such-directory");
    let applied = crate::harness::Run(
        ws.command(&["apply", "--auto-approve"])
            .env("TMPDIR", &no_temp)
            .output()
            .unwrap(),
    );
    assert!(
        applied.stdout().contains("Apply complete! 1 backed up"),
        "{applied}"
    );
    remove(&[&app]);
    let restored = ws.ok(&["restore", "--auto-approve"]);
    assert_eq!(image_id(&app), Some(id), "{restored}");
}
