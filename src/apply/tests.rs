//! Unit tests of apply without Docker: the in-memory engine and in-memory
//! repositories, planned by the real planner.

use super::*;
use crate::engine::Volumes;
use crate::engine::memory::MemoryEngine;
use crate::plan::{self, Action, Basis, Plan};
use crate::repo::backend::memory::MemoryBackend;
use crate::spec::{Address, Consistency, ResourceKind, Span, Spec, VolumeSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn volume(name: &str) -> VolumeSpec {
    VolumeSpec {
        name: name.to_string(),
        volume_name: format!("app_{name}"),
        engine: None,
        policy: None,
        consistency: Consistency::None,
        service: None,
        span: Span::default(),
    }
}

fn spec(volumes: &[&str]) -> Spec {
    Spec {
        volumes: volumes.iter().map(|n| volume(n)).collect(),
        ..Spec::default()
    }
}

fn settings() -> OpenSettings {
    OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "test".to_string(),
        cache_dir: None,
    }
}

struct World {
    engine: Arc<MemoryEngine>,
    engines: Engines,
    repositories: Vec<NamedRepository>,
    events: Mutex<Vec<Event>>,
}

impl World {
    fn new(repositories: &[&str]) -> World {
        let engine = Arc::new(MemoryEngine::new());
        let dyn_engine: Arc<dyn crate::engine::Engine> = engine.clone();
        let engines = Engines::from_engines([(plan::DEFAULT_ENGINE.to_string(), dyn_engine)]);
        let repositories = repositories
            .iter()
            .map(|name| {
                let backend: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
                NamedRepository::on_backend(name, backend, Some("pass".into()), &settings())
                    .unwrap()
            })
            .collect();
        World {
            engine,
            engines,
            repositories,
            events: Mutex::new(Vec::new()),
        }
    }

    async fn backup_plan(&self, spec: &Spec) -> Plan {
        let order = spec.addresses();
        let (live, _) = backup_live(&self.engines, spec, &order).await;
        let observed = backup_observations(&self.repositories).unwrap();
        let names: Vec<String> = self.repositories.iter().map(|r| r.name.clone()).collect();
        plan::backup_plan(plan::BackupInputs {
            spec,
            order: &order,
            dependencies: &BTreeMap::new(),
            repositories: &names,
            observed: &observed,
            live: &live,
            replace: &[],
            retention_only: false,
            applied: None,
            basis: Basis::default(),
            now: chrono::Utc::now(),
        })
    }

    async fn restore_plan(&self, spec: &Spec) -> Plan {
        let order = spec.addresses();
        let (observed, _) = restore_observations(
            &self.engines,
            spec,
            &order,
            &self.repositories,
            &RestoreSelection::Latest,
        )
        .await
        .unwrap();
        plan::restore_plan(plan::RestoreInputs {
            spec,
            order: &order,
            dependencies: &BTreeMap::new(),
            observed: &observed,
            replace: false,
            basis: Basis::default(),
            now: chrono::Utc::now(),
        })
    }

    async fn apply(&mut self, spec: &Spec, plan: &Plan) -> ApplyReport {
        let settings = settings();
        let events = |event: Event| self.events.lock().unwrap().push(event);
        let run = Run {
            spec,
            engines: &self.engines,
            settings: &settings,
            access: VolumeAccess::Auto,
            spec_digest: "digest",
            run_id: new_run_id(),
            events: &events,
            cancel: Default::default(),
        };
        let mut repositories = std::mem::take(&mut self.repositories);
        let report = match plan.kind {
            plan::PlanKind::Restore => run_restore(plan, &run, &mut repositories).await,
            _ => run_backup(plan, &run, &mut repositories, Default::default()).await,
        };
        self.repositories = repositories;
        report
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_volume_fails_alone_and_the_others_are_backed_up() {
    let mut world = World::new(&["main"]);
    world
        .engine
        .add_volume("app_data", &[("a.txt", b"alpha"), ("b/c.txt", b"gamma")]);
    let spec = spec(&["data", "gone"]);
    let plan = world.backup_plan(&spec).await;
    let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions, [Action::BackUp, Action::Problem]);
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.succeeded(), 1);
    assert_eq!(report.failed(), 1);
    assert!(!report.is_complete());
    // The next plan sees the new snapshot; the missing volume is still a problem.
    let next = world.backup_plan(&spec).await;
    assert_eq!(next.changes[0].action, Action::UpToDate);
    assert_eq!(next.changes[1].action, Action::Problem);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_restores_into_a_new_one_with_the_same_files_and_one_run_id() {
    let mut world = World::new(&["main", "copy"]);
    let files: &[(&str, &[u8])] = &[("a.txt", b"alpha"), ("deep/er/b.bin", &[7u8; 70_000])];
    world.engine.add_volume("app_data", files);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    // One change, two copies (one per repository), one run.
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].copies.len(), 2);
    let runs: std::collections::BTreeSet<Option<String>> = world
        .repositories
        .iter()
        .flat_map(|r| r.repository.as_ref().unwrap().snapshots().unwrap())
        .map(|s| s.source.run)
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs.iter().all(Option::is_some));

    world.engine.remove_volume("app_data").await.unwrap();
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Restore);
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    let restored = world.engine.files("app_data").unwrap();
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, d)| (p.to_string(), d.to_vec()))
        .collect();
    assert_eq!(restored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_of_a_failed_change_is_skipped_and_independent_ones_go_on() {
    let mut world = World::new(&["main"]);
    for name in ["app_a", "app_b", "app_c"] {
        world.engine.add_volume(name, &[("f", name.as_bytes())]);
    }
    world.engine.fail_exports_of("app_a");
    let spec = spec(&["a", "b", "c"]);
    let mut plan = world.backup_plan(&spec).await;
    // b depends on a (as a derived image does on its base).
    plan.changes[1].depends_on = vec![Address::new(ResourceKind::Volume, "a")];
    let report = world.apply(&spec, &plan).await;
    let statuses: Vec<&Status> = report.changes.iter().map(|c| &c.status).collect();
    assert!(matches!(statuses[0], Status::Failed { .. }));
    assert_eq!(
        statuses[1],
        &Status::Skipped {
            because: "volume.a did not succeed".into()
        }
    );
    assert_eq!(statuses[2], &Status::Succeeded);
    let events = world.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ResourceSkipped { address, .. } if address == "volume.b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_target_is_a_problem_in_the_restore_plan() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"1")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    world.apply(&spec, &plan).await;
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Problem);
    assert!(!restore.has_changes());
    let report = world.apply(&spec, &restore).await;
    assert_eq!(report.failed(), 1);
    assert_eq!(world.engine.exports(), 1, "a refused restore reads nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_directory_backs_up_and_restores_where_it_was() {
    let mut world = World::new(&["main"]);
    let path = std::path::Path::new("/srv/shop/nginx");
    let files: &[(&str, &[u8])] = &[("nginx.conf", b"server {}"), ("conf.d/a.conf", b"a")];
    world.engine.add_directory(path, files);
    let spec = Spec {
        binds: vec![crate::spec::BindSpec {
            name: "nginx".into(),
            path: path.to_path_buf(),
            engine: None,
            policy: None,
            consistency: Consistency::None,
            service: None,
            span: Span::default(),
        }],
        ..Spec::default()
    };
    let plan = world.backup_plan(&spec).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    assert!(world.apply(&spec, &plan).await.is_complete());
    let restore = world.restore_plan(&spec).await;
    // Still there and not empty: a restore needs --replace.
    assert_eq!(restore.changes[0].action, Action::Problem);
    let elsewhere = std::path::Path::new("/srv/shop/nginx-copy");
    let mut moved = spec.clone();
    moved.binds[0].path = elsewhere.to_path_buf();
    let restore = world.restore_plan(&moved).await;
    assert_eq!(restore.changes[0].action, Action::Restore);
    assert!(world.apply(&moved, &restore).await.is_complete());
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, d)| (p.to_string(), d.to_vec()))
        .collect();
    assert_eq!(world.engine.directory_files(elsewhere).unwrap(), expected);
}

/// A `docker save` archive of one image of one layer, for `arch`, tagged `tag`.
fn image_archive(layer: &[u8], tag: &str, arch: &str) -> (Vec<u8>, String) {
    use sha2::Digest;
    let digest = |data: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
    }))
    .unwrap();
    let id = digest(&config);
    let config_name = format!("{}.json", id.trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": [tag], "Layers": ["l/layer.tar"]}
    ]))
    .unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("l/layer.tar", layer),
        (config_name.as_str(), &config),
        ("manifest.json", &manifest),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data).unwrap();
    }
    (tar.into_inner().unwrap(), id)
}

fn image_spec(reference: &str) -> Spec {
    Spec {
        images: vec![crate::spec::ImageSpec {
            name: "app".into(),
            reference: reference.into(),
            engine: None,
            policy: None,
            base: None,
            span: Span::default(),
        }],
        ..Spec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_up_to_date_until_its_id_changes_and_restores_with_the_same_id() {
    let mut world = World::new(&["main"]);
    let (archive, id) = image_archive(&[5u8; 50_000], "shop/app:1", "amd64");
    world.engine.add_image_archive(archive).unwrap();
    let spec = image_spec("shop/app:1");
    let plan = world.backup_plan(&spec).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    assert!(world.apply(&spec, &plan).await.is_complete());
    let again = world.backup_plan(&spec).await;
    assert_eq!(again.changes[0].action, Action::UpToDate, "{again:?}");

    // A rebuild (another id under the same tag) is due, as content changed.
    let (rebuilt, _) = image_archive(&[6u8; 50_000], "shop/app:1", "amd64");
    world.engine.add_image_archive(rebuilt).unwrap();
    let changed = world.backup_plan(&spec).await;
    assert_eq!(changed.changes[0].action, Action::BackUp);
    assert!(
        changed.changes[0]
            .reasons
            .contains(&plan::Reason::ContentChanged)
    );

    // The tag points at the rebuilt image: refused (not --replace).
    let refused = world.restore_plan(&spec).await;
    assert_eq!(refused.changes[0].action, Action::Problem, "{refused:?}");
    let rebuilt_id = crate::engine::Images::image(world.engine.as_ref(), "shop/app:1")
        .await
        .unwrap()
        .unwrap()
        .id;
    world.engine.remove_image(&rebuilt_id);
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Restore, "{restore:?}");
    assert!(world.apply(&spec, &restore).await.is_complete());
    let back = crate::engine::Images::image(world.engine.as_ref(), "shop/app:1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_for_another_architecture_is_not_restored() {
    let mut world = World::new(&["main"]);
    let (archive, id) = image_archive(&[1u8; 1000], "arm/app:1", "arm64");
    world.engine.add_image_archive(archive).unwrap();
    let spec = image_spec("arm/app:1");
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    world.engine.remove_image(&id);
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Problem);
    assert!(
        matches!(&restore.changes[0].reasons[0], plan::Reason::Problem { message, .. }
            if message.contains("linux/arm64") && message.contains("linux/amd64")),
        "{restore:?}"
    );
}
