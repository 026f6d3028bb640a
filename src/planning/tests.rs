//! Planning from a spec text without the CLI: the in-memory engine, a
//! local repository in a temporary directory, the real planners.

use super::backup::{BackupPlanning, BackupRequest, plan_backup};
use super::forget::{ForgetRequest, plan_forget};
use super::restore::{RestoreRequest, plan_restore};
use super::*;
use crate::apply::{OpenSettings, Quiescer, RestoreJournal, RestoreSelection, Run, VolumeAccess};
use crate::engine::memory::MemoryEngine;
use crate::plan::{Action, Plan};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Images `base`, `a` built FROM base and `c` FROM a; the spec names no
/// `base =` and sorts them against their build order: only layers tell.
const SPEC: &str = r#"
repository "main" {
  path = "repo"
  encryption { none = true }
}

image "a" { ref = "shop/a:1" }
image "base" { ref = "shop/base:1" }
image "c" { ref = "shop/c:1" }

volume "data" { name = "app_data" }
"#;

pub(super) fn settings() -> OpenSettings {
    OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "test".to_string(),
        cache_dir: None,
    }
}

/// A `docker save` archive of one image tagged `tag` whose layers are
/// `layers`, bottom first (an image built FROM another repeats its layers).
fn image_archive(tag: &str, layers: &[&[u8]]) -> Vec<u8> {
    use sha2::Digest;
    let digest = |data: &[u8]| hex::encode(sha2::Sha256::digest(data));
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", digest(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", digest(&config));
    let layer_paths: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", digest(l)))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [tag], "Layers": layer_paths}
    ]))
    .unwrap();
    let mut files: Vec<(&str, &[u8])> = layer_paths
        .iter()
        .map(String::as_str)
        .zip(layers.iter().copied())
        .collect();
    files.push((&config_name, &config));
    files.push(("manifest.json", &manifest));
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data).unwrap();
    }
    tar.into_inner().unwrap()
}

struct Stack {
    dir: tempfile::TempDir,
    engine: Arc<MemoryEngine>,
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.hcl"), SPEC).unwrap();
        let engine = Arc::new(MemoryEngine::new());
        let (one, two, three): (&[u8], &[u8], &[u8]) = (b"base layer", b"a layer", b"c layer");
        for (tag, layers) in [
            ("shop/base:1", vec![one]),
            ("shop/a:1", vec![one, two]),
            ("shop/c:1", vec![one, two, three]),
        ] {
            engine
                .add_image_archive(image_archive(tag, &layers))
                .unwrap();
        }
        engine.add_volume("app_data", &[("a.txt", b"alpha")]);
        Stack { dir, engine }
    }

    fn load(&self) -> Loaded {
        Loaded::load(self.dir.path(), &VarInputs::default()).unwrap()
    }

    /// The backup `plan` would make of the whole stack.
    async fn plan_backup(&self) -> super::backup::BackupPlanning {
        plan_backup(
            self.load(),
            &BackupRequest::default(),
            &settings(),
            self.engines(),
        )
        .await
        .unwrap()
    }

    fn engines(&self) -> EngineSource<'static> {
        let engine: Arc<dyn crate::engine::Engine> = self.engine.clone();
        EngineSource::Given(Engines::from_engines([(
            spec::DEFAULT_ENGINE.to_string(),
            engine,
        )]))
    }

    /// The graph `lifeboat graph` draws for a plan of `kind`, as DOT.
    async fn dot(&self, kind: OrderKind) -> String {
        let mut loaded = self.load();
        let drawn = draw_graph(&mut loaded, kind, &settings(), self.engines()).await;
        assert!(drawn.notes.is_empty(), "{:?}", drawn.notes);
        loaded.graph.to_dot("test", &drawn.order, &drawn.notes)
    }
}

/// Applies a backup plan as `apply` does once it was planned (and locked).
pub(super) async fn apply_backup(
    loaded: &Loaded,
    engines: &Engines,
    plan: &Plan,
    repositories: &mut [crate::apply::NamedRepository],
) -> crate::apply::ApplyReport {
    let state = loaded.state_dir();
    let quiescer = Quiescer::new(&state);
    let run = Run {
        spec: &loaded.spec,
        engines,
        settings: &settings(),
        access: VolumeAccess::Auto,
        spec_digest: &loaded.digest,
        run_id: crate::apply::new_run_id(),
        events: &|_| {},
        cancel: Default::default(),
        quiescer: &quiescer,
        restores: &RestoreJournal::new(&state),
        tags: &[],
        totals: Default::default(),
    };
    crate::apply::run_backup(plan, &run, repositories, Default::default()).await
}

/// The numbered nodes and the edges of a DOT text `Graph::to_dot` wrote.
fn read_dot(dot: &str) -> (Vec<String>, BTreeSet<(String, String)>) {
    let quoted = |text: &str| text.split('"').nth(1).unwrap_or_default().to_string();
    let mut nodes = Vec::new();
    let mut edges = BTreeSet::new();
    for line in dot.lines() {
        if let Some((from, to)) = line.split_once(" -> ") {
            edges.insert((quoted(from), quoted(to)));
        } else if line.contains("[label = \"") {
            let number = format!("{}. ", nodes.len() + 1);
            assert!(line.contains(&number), "numbered in order: {line}");
            nodes.push(quoted(line));
        }
    }
    (nodes, edges)
}

/// The order of a plan's resources and the dependencies between them
/// (repositories to create and policies are no nodes of the graph).
fn read_plan(plan: &Plan) -> (Vec<String>, BTreeSet<(String, String)>) {
    let mut order: Vec<String> = Vec::new();
    let mut edges = BTreeSet::new();
    for change in plan.changes.iter().filter(|c| c.address.kind.is_resource()) {
        let address = change.address.to_string();
        if !order.contains(&address) {
            order.push(address.clone());
        }
        for before in &change.depends_on {
            edges.insert((before.to_string(), address.clone()));
        }
    }
    (order, edges)
}

/// `lifeboat restore`: the latest of everything.
fn whole_stack() -> RestoreRequest {
    RestoreRequest {
        targets: Vec::new(),
        selection: RestoreSelection::Latest,
        replace: false,
        allowed_host_access: Vec::new(),
        repository: None,
    }
}

fn image_order(order: &[String]) -> Vec<&str> {
    order
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("image."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_draws_the_order_and_edges_the_backup_and_restore_plans_use() {
    let stack = Stack::new();
    let image_edges: BTreeSet<(String, String)> =
        [("image.a", "image.c"), ("image.base", "image.a")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();

    let backup = stack.plan_backup().await;
    let (order, edges) = read_plan(&backup.plan);
    assert_eq!(image_order(&order), ["image.base", "image.a", "image.c"]);
    assert_eq!(edges, image_edges);
    assert_eq!(
        (order, edges),
        read_dot(&stack.dot(OrderKind::Backup).await)
    );

    // Back everything up, then remove the images: their layers now come
    // from the repository's image snapshots, for the plan and the graph.
    let BackupPlanning {
        loaded,
        mut repositories,
        engines,
        plan,
        ..
    } = backup;
    assert!(
        plan.changes
            .iter()
            .filter(|c| c.address.kind.is_resource())
            .all(|c| c.action == Action::BackUp),
        "{plan:?}"
    );
    let report = apply_backup(&loaded, engines.as_ref().unwrap(), &plan, &mut repositories).await;
    assert!(report.is_complete(), "{report:?}");
    for tag in ["shop/base:1", "shop/a:1", "shop/c:1"] {
        let image = crate::engine::Images::image(stack.engine.as_ref(), tag)
            .await
            .unwrap()
            .unwrap();
        stack.engine.remove_image(&image.id);
    }

    let restore = plan_restore(stack.load(), &whole_stack(), &settings(), stack.engines())
        .await
        .unwrap();
    assert!(restore.whole_stack);
    let (order, edges) = read_plan(&restore.plan);
    assert_eq!(image_order(&order), ["image.base", "image.a", "image.c"]);
    assert_eq!(edges, image_edges);
    assert!(
        restore
            .plan
            .changes
            .iter()
            .filter(|c| c.address.kind == spec::ResourceKind::Image)
            .all(|c| c.action == Action::Restore),
        "{:?}",
        restore.plan
    );
    assert_eq!(
        (order, edges),
        read_dot(&stack.dot(OrderKind::Restore).await)
    );

    // The snapshot a restore would read, named by a prefix of its id, is
    // what a forget plan forgets.
    let volume = restore
        .plan
        .changes
        .iter()
        .find(|c| c.address.kind == spec::ResourceKind::Volume)
        .and_then(|c| c.snapshot.clone())
        .unwrap();
    let request = ForgetRequest {
        snapshots: vec![volume.id[..12].to_string()],
        repository: None,
    };
    let forget = plan_forget(&stack.load(), &request, &settings()).unwrap();
    assert!(forget.damaged.is_empty());
    let forgotten: Vec<(String, Action, Vec<String>)> = forget
        .plan
        .changes
        .iter()
        .map(|c| {
            let ids = c.forget.iter().map(|s| s.id.clone()).collect();
            (c.address.to_string(), c.action, ids)
        })
        .collect();
    assert_eq!(
        forgotten,
        [("volume.data".to_string(), Action::Forget, vec![volume.id])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_resolved_and_a_restore_needs_a_repository_to_read() {
    let stack = Stack::new();
    let request = BackupRequest {
        targets: vec!["image.c".to_string()],
        ..BackupRequest::default()
    };
    let planned = plan_backup(stack.load(), &request, &settings(), stack.engines())
        .await
        .unwrap();
    // A backup target is backed up alone: its snapshot holds every layer.
    let (order, _) = read_plan(&planned.plan);
    assert_eq!(order, ["image.c"]);

    let unknown = BackupRequest {
        replace: vec!["volume.nope".to_string()],
        ..BackupRequest::default()
    };
    let error = plan_backup(stack.load(), &unknown, &settings(), stack.engines())
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "--replace volume.nope: the spec declares no such resource (declared: image.a, \
         image.base, image.c, volume.data)"
    );

    let error = plan_restore(stack.load(), &whole_stack(), &settings(), stack.engines())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, PlanningError::NothingToRestoreFrom(missing) if missing.len() == 1),
        "{error:?}"
    );
}

/// The same spec files in two checkouts (the host's, a CI runner's) have
/// one digest, so a plan made in either is the same plan; what the
/// checkout decides (a relative repository path) and the content still count.
#[test]
fn the_spec_digest_is_the_same_in_every_checkout_of_the_same_files() {
    let digest_of = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.hcl"), text).unwrap();
        Loaded::load(dir.path(), &VarInputs::default())
            .unwrap()
            .digest
    };
    let spec = |path: &str, rpo: &str| {
        format!(
            "repository \"main\" {{\n  path = \"{path}\"\n}}\n\npolicy \"p\" {{\n  rpo = \"{rpo}\"\n}}\n\n\
             volume \"data\" {{\n  name   = \"app_data\"\n  policy = policy.p\n}}\n"
        )
    };
    let absolute = spec("/var/backups/lifeboat", "24h");
    assert_eq!(digest_of(&absolute), digest_of(&absolute));
    assert_ne!(
        digest_of(&absolute),
        digest_of(&spec("/var/backups/lifeboat", "1h"))
    );
    let relative = spec("backups", "24h");
    assert_ne!(digest_of(&relative), digest_of(&relative));
}

/// `restore --path a.txt --into DIR`: planned and written with no engine
/// at all (only the repository is read), as with the engine unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_into_a_directory_is_planned_and_written_without_an_engine() {
    use super::restore::plan_partial_restore;
    let stack = Stack::new();
    let backup = stack.plan_backup().await;
    let state = backup.loaded.state_dir();
    let quiescer = Quiescer::new(&state);
    let journal = RestoreJournal::new(&state);
    let open = settings();
    let run = |spec, engines, digest| Run {
        spec,
        engines,
        settings: &open,
        access: VolumeAccess::Auto,
        spec_digest: digest,
        run_id: crate::apply::new_run_id(),
        events: &|_| {},
        cancel: Default::default(),
        quiescer: &quiescer,
        restores: &journal,
        tags: &[],
        totals: Default::default(),
    };
    let BackupPlanning {
        loaded,
        mut repositories,
        engines,
        plan,
        ..
    } = backup;
    let backed_up = run(&loaded.spec, engines.as_ref().unwrap(), &loaded.digest);
    let report =
        crate::apply::run_backup(&plan, &backed_up, &mut repositories, Default::default()).await;
    assert!(report.is_complete(), "{report:?}");

    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("part");
    let partial = crate::apply::partial::PartialRequest {
        selection: crate::repo::partial::PathSelection::parse(&["a.txt".to_string()]).unwrap(),
        into: Some(into.clone()),
        access: VolumeAccess::Auto,
    };
    let request = RestoreRequest {
        targets: vec!["volume.data".to_string()],
        ..whole_stack()
    };
    let no_engine = EngineSource::Given(Engines::from_engines([]));
    let planned = plan_partial_restore(stack.load(), &request, &partial, &settings(), no_engine)
        .await
        .unwrap();
    let change = &planned.plan.changes[0];
    assert_eq!(change.action, Action::Restore, "{:?}", planned.plan);
    assert_eq!(planned.plan.changes.len(), 1);
    let mut repositories = planned.repositories;
    let restored = run(
        &planned.loaded.spec,
        &planned.engines,
        &planned.loaded.digest,
    );
    let report =
        crate::apply::run_restore(&planned.plan, &restored, &mut repositories, false).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(std::fs::read(into.join("a.txt")).unwrap(), b"alpha");
}
