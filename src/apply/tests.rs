//! Unit tests of apply without Docker: the in-memory engine and in-memory
//! repositories, planned by the real planner.

use super::quiesce;
use super::*;
use crate::engine::memory::MemoryEngine;
use crate::engine::{Containers, Volumes};
use crate::plan::{self, Action, Basis, Plan};
use crate::repo::backend::memory::MemoryBackend;
use crate::spec::{Address, Consistency, ResourceKind, Span, Spec, VolumeSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn volume(name: &str) -> VolumeSpec {
    VolumeSpec::new(name, &format!("app_{name}"))
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
    /// The state directory holding the quiesce journal.
    state: tempfile::TempDir,
    quiescer: Quiescer,
    restores: super::RestoreJournal,
    /// The run's cancellation (SIGINT), fired by the first copy's start
    /// when `cancel_when_started` says so.
    cancel: tokio_util::sync::CancellationToken,
    cancel_when_started: bool,
}

impl World {
    fn new(repositories: &[&str]) -> World {
        let backends: Vec<(&str, Arc<dyn crate::repo::Backend>)> = repositories
            .iter()
            .map(|name| {
                let backend: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
                (*name, backend)
            })
            .collect();
        World::on_backends(&backends)
    }

    /// A world whose repositories live on `backends` (tests that damage
    /// them or inject faults).
    fn on_backends(backends: &[(&str, Arc<dyn crate::repo::Backend>)]) -> World {
        let engine = Arc::new(MemoryEngine::new());
        let dyn_engine: Arc<dyn crate::engine::Engine> = engine.clone();
        let engines =
            Engines::from_engines([(crate::spec::DEFAULT_ENGINE.to_string(), dyn_engine)]);
        let repositories = backends
            .iter()
            .map(|(name, backend)| {
                NamedRepository::on_backend(name, backend.clone(), Some("pass".into()), &settings())
                    .unwrap()
            })
            .collect();
        let state = tempfile::tempdir().unwrap();
        let quiescer = Quiescer::new(state.path());
        let restores = super::RestoreJournal::new(state.path());
        World {
            engine,
            engines,
            repositories,
            events: Mutex::new(Vec::new()),
            state,
            quiescer,
            restores,
            cancel: Default::default(),
            cancel_when_started: false,
        }
    }

    async fn backup_plan(&self, spec: &Spec) -> Plan {
        self.tagged_backup_plan(spec, &[]).await
    }

    /// [`World::backup_plan`] with `--tag`s (as stored: `release=v1`).
    async fn tagged_backup_plan(&self, spec: &Spec, tags: &[String]) -> Plan {
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
            tags,
            retention_only: false,
            applied: None,
            basis: Basis::default(),
            now: chrono::Utc::now(),
        })
    }

    /// The backup plan's changes of one kind (the services that volumes and
    /// dumps name are resources of their own, not what those tests are about).
    async fn kind_plan(&self, spec: &Spec, kind: ResourceKind) -> Plan {
        let mut plan = self.backup_plan(spec).await;
        plan.changes.retain(|c| c.kind() == kind);
        plan
    }

    async fn kind_restore_plan(&self, spec: &Spec, kind: ResourceKind) -> Plan {
        let mut plan = self.restore_plan(spec).await;
        plan.changes.retain(|c| c.kind() == kind);
        plan
    }

    async fn restore_plan(&self, spec: &Spec) -> Plan {
        self.restore_plan_of(spec, RestoreSelection::Latest).await
    }

    async fn restore_plan_of(&self, spec: &Spec, selection: RestoreSelection) -> Plan {
        self.restore_plan_with(spec, selection, false).await
    }

    /// With `--replace`: a dump loads over what its running server holds.
    async fn kind_restore_plan_replacing(&self, spec: &Spec, kind: ResourceKind) -> Plan {
        let mut plan = self
            .restore_plan_with(spec, RestoreSelection::Latest, true)
            .await;
        plan.changes.retain(|c| c.kind() == kind);
        plan
    }

    async fn restore_plan_with(
        &self,
        spec: &Spec,
        selection: RestoreSelection,
        replace: bool,
    ) -> Plan {
        let order = spec.addresses();
        let (observed, _) =
            restore_observations(&self.engines, spec, &order, &self.repositories, &selection)
                .await
                .unwrap();
        plan::restore_plan(plan::RestoreInputs {
            spec,
            order: &order,
            dependencies: &BTreeMap::new(),
            observed: &observed,
            targets: &order,
            replace,
            allowed_host_access: &[],
            interrupted: &self.restores.incomplete(spec),
            damaged: &[],
            basis: Basis::default(),
            now: chrono::Utc::now(),
        })
    }

    /// A restore plan of the whole spec into the names `mapping` gives.
    async fn restore_plan_into(&self, spec: &Spec, mapping: &plan::RestoreMapping) -> Plan {
        let order = spec.addresses();
        let observed = observe_restores(
            &self.engines,
            spec,
            &order,
            &self.repositories,
            &RestoreSelection::Latest,
            mapping,
            None,
        )
        .await
        .unwrap()
        .resources;
        let inputs = plan::RestoreInputs {
            spec,
            order: &order,
            dependencies: &BTreeMap::new(),
            observed: &observed,
            targets: &[],
            replace: false,
            allowed_host_access: &[],
            interrupted: &self.restores.incomplete(spec),
            damaged: &[],
            basis: Basis::default(),
            now: chrono::Utc::now(),
        };
        plan::restore_plan_into(inputs, mapping)
    }

    async fn apply(&mut self, spec: &Spec, plan: &Plan) -> ApplyReport {
        self.apply_with(spec, plan, Default::default()).await
    }

    /// [`World::apply`] recording `applied` (backups).
    async fn apply_with(
        &mut self,
        spec: &Spec,
        plan: &Plan,
        applied: plan::AppliedState,
    ) -> ApplyReport {
        let settings = settings();
        let events = |event: Event| {
            if self.cancel_when_started && matches!(event, Event::ResourceStarted { .. }) {
                self.cancel.cancel();
            }
            self.events.lock().unwrap().push(event)
        };
        let run = Run {
            spec,
            engines: &self.engines,
            settings: &settings,
            access: VolumeAccess::Auto,
            spec_digest: "digest",
            run_id: new_run_id(),
            events: &events,
            cancel: self.cancel.clone(),
            quiescer: &self.quiescer,
            restores: &self.restores,
            tags: &plan.tags,
            totals: Default::default(),
        };
        let mut repositories = std::mem::take(&mut self.repositories);
        let report = match plan.kind {
            plan::PlanKind::Restore => run_restore(plan, &run, &mut repositories, true).await,
            _ => run_backup(plan, &run, &mut repositories, applied).await,
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
            hooks: Default::default(),
            exclude: Default::default(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_takes_one_moment_unless_asked_for_each_resources_latest() {
    let mut world = World::new(&["main"]);
    for name in ["app_a", "app_b"] {
        world.engine.add_volume(name, &[("f", name.as_bytes())]);
    }
    let spec = spec(&["a", "b"]);
    let both = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &both).await.is_complete());
    // A later run backs up b alone (as `--target volume.b` does).
    let mut only_b = both.clone();
    only_b.changes.retain(|c| c.address.name == "b");
    assert!(world.apply(&spec, &only_b).await.is_complete());

    let run_of = |plan: &Plan, name: &str| {
        plan.changes
            .iter()
            .find(|c| c.address.name == name)
            .and_then(|c| c.snapshot.as_ref())
            .and_then(|s| s.run.clone())
            .unwrap()
    };
    let moment = world.restore_plan(&spec).await;
    assert_eq!(run_of(&moment, "a"), run_of(&moment, "b"));
    assert!(moment.warnings.is_empty(), "{:?}", moment.warnings);

    let each = world
        .restore_plan_of(&spec, RestoreSelection::LatestEach)
        .await;
    assert_ne!(run_of(&each, "a"), run_of(&each, "b"));
    assert_eq!(
        each.warnings,
        [plan::Warning::SeveralMoments { runs: 2 }],
        "the plan says the snapshots are not one moment"
    );
}
/// A spec with volume `data` (Docker volume `app_data`) used by
/// service `db` (container `db`), quiesced as `consistency` says.
fn quiesced_spec(consistency: Consistency, hooks: crate::spec::Hooks) -> Spec {
    let mut data = volume("data");
    data.consistency = consistency;
    data.service = Some("db".to_string());
    data.hooks = hooks;
    Spec {
        volumes: vec![data],
        services: vec![crate::spec::ServiceSpec::new("db", "db")],
        ..Spec::default()
    }
}

fn hooks(pre: &[&str], post: &[&str]) -> crate::spec::Hooks {
    crate::spec::Hooks {
        pre: pre.iter().map(|s| s.to_string()).collect(),
        post: post.iter().map(|s| s.to_string()).collect(),
        timeout: None,
    }
}

impl World {
    fn journal_entries(&self) -> usize {
        std::fs::read_dir(self.state.path().join(quiesce::JOURNAL_DIR))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    async fn running(&self, container: &str) -> (bool, bool) {
        use crate::engine::Containers;
        let state = self.engine.container(container).await.unwrap().unwrap();
        (state.running, state.paused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_stopped_once_around_copies_to_two_repositories() {
    let mut world = World::new(&["main", "copy"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    let spec = quiesced_spec(Consistency::Stop, hooks(&["flush"], &["thaw"]));
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    // Nothing warns of a running user: it is stopped for the copy.
    assert!(
        !plan
            .warnings
            .iter()
            .any(|w| matches!(w, plan::Warning::RunningWithoutConsistency { .. })),
        "{:?}",
        plan.warnings
    );
    assert!(plan.changes[0].reasons.iter().any(|r| matches!(
        r,
        plan::Reason::Interrupts {
            how: plan::Interruption::Stop,
            last_copy_millis: None,
            stop_timeout_seconds: Some(10),
            ..
        }
    )));
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.changes[0].copies.len(), 2);
    assert_eq!(
        world.engine.container_log(),
        ["exec db flush", "stop db", "start db", "exec db thaw"]
    );
    assert_eq!(world.running("db").await, (true, false));
    assert_eq!(world.journal_entries(), 0);
    let events = world.events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ServiceQuiesced {
            hold: Hold::Stopped,
            ..
        }
    )));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ServiceResumed { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_service_is_unpaused_even_when_the_read_fails() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    world.engine.fail_exports_of("app_data");
    let spec = quiesced_spec(Consistency::Pause, hooks(&[], &["thaw"]));
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.failed(), 1);
    assert_eq!(
        world.engine.container_log(),
        ["pause db", "unpause db", "exec db thaw"]
    );
    assert_eq!(world.running("db").await, (true, false));
    assert_eq!(world.journal_entries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_hook_means_no_copy_and_the_post_hook_still_runs() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    world.engine.script_exec("db", "flush", 3, "disk full");
    let spec = quiesced_spec(Consistency::Stop, hooks(&["flush"], &["thaw"]));
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.failed(), 1);
    let error = report.changes[0].copies[0].error.clone().unwrap();
    assert!(error.contains("exited with 3: disk full"), "{error}");
    assert_eq!(world.engine.exports(), 0);
    assert_eq!(
        world.engine.container_log(),
        ["exec db flush", "exec db thaw"]
    );
    assert_eq!(world.running("db").await, (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stop_means_no_copy_and_a_start() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    world.engine.fail_container_operation("db", "stop");
    let spec = quiesced_spec(Consistency::Stop, Default::default());
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.failed(), 1);
    assert_eq!(world.engine.exports(), 0);
    assert_eq!(world.running("db").await, (true, false));
    assert_eq!(world.journal_entries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_restart_fails_the_change_and_keeps_the_record_for_recover() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    world.engine.fail_container_operation("db", "start");
    let spec = quiesced_spec(Consistency::Stop, Default::default());
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.failed(), 1);
    let copy = &report.changes[0].copies[0];
    assert!(copy.snapshot.is_some(), "the snapshot is kept: {copy:?}");
    assert!(
        copy.error.as_ref().unwrap().contains("could not start"),
        "{copy:?}"
    );
    assert_eq!(world.running("db").await, (false, false));
    // The record stays; this process is alive, so recover leaves it to it.
    assert_eq!(world.journal_entries(), 1);
    let recovered = recover(world.state.path(), &world.engines).await;
    assert_eq!(recovered.still_held.len(), 1, "{recovered:?}");
    assert!(recovered.resumed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_stays_stopped_and_its_hooks_do_not_run() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", false);
    let spec = quiesced_spec(Consistency::Stop, hooks(&["flush"], &[]));
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(world.engine.container_log().is_empty());
    assert_eq!(world.running("db").await, (false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_starts_what_a_gone_process_stopped_and_only_that() {
    let world = World::new(&["main"]);
    world.engine.add_user("db", "app_data", false);
    world.engine.add_user("web", "app_data", true);
    let dir = world.state.path().join(quiesce::JOURNAL_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let me = crate::host::ProcessId::current();
    // A pid whose start time does not match: that process is gone.
    let gone = format!(
        "{}:{}:{}",
        me.pid,
        1,
        me.token().splitn(3, ':').nth(2).unwrap()
    );
    for (container, file) in [("db", "1-a.json"), ("web", "1-b.json")] {
        let entry = quiesce::JournalEntry {
            host: me.host.clone(),
            process: gone.clone(),
            engine: crate::spec::DEFAULT_ENGINE.into(),
            container: container.into(),
            engine_address: None,
            container_id: None,
            hold: Hold::Stopped,
            resource: "volume.data".into(),
            since: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
        };
        std::fs::write(dir.join(file), serde_json::to_vec(&entry).unwrap()).unwrap();
    }
    std::fs::write(dir.join("2-c.json"), b"{not json").unwrap();
    let report = recover(world.state.path(), &world.engines).await;
    assert_eq!(report.resumed.len(), 2, "{report:?}");
    assert!(report.resumed[0].resumed, "db was stopped: started");
    assert!(!report.resumed[1].resumed, "web already runs: left alone");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(world.running("db").await, (true, false));
    assert_eq!(world.engine.container_log(), ["start db"]);
    assert_eq!(world.journal_entries(), 1, "only the broken record stays");
}

fn service_spec(verify: &[&str]) -> Spec {
    Spec {
        services: vec![crate::spec::ServiceSpec {
            volumes: vec![],
            binds: vec![],
            depends_on: vec![],
            verify: verify.iter().map(|s| s.to_string()).collect(),
            start_timeout: Some(std::time::Duration::from_secs(1)),
            ..crate::spec::ServiceSpec::new("web", "shop-web")
        }],
        ..Spec::default()
    }
}

fn web_container() -> crate::engine::ContainerConfig {
    crate::engine::ContainerConfig {
        name: "shop-web".into(),
        image: "shop/web:1".into(),
        image_id: "sha256:abc".into(),
        command: Some(vec!["sleep".into(), "1000".into()]),
        env: vec!["MODE=prod".into(), "DB_PASSWORD=hunter2-secret".into()],
        network_mode: "shop-net".into(),
        networks: vec![crate::engine::NetworkAttachment {
            network: "shop-net".into(),
            aliases: vec!["web".into()],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_recreated_with_its_network_started_and_verified_and_secrets_stay_hidden() {
    let mut world = World::new(&["main"]);
    world.engine.add_network(crate::engine::NetworkConfig {
        name: "shop-net".into(),
        driver: "bridge".into(),
        ..Default::default()
    });
    world.engine.add_container(web_container(), true);
    let spec = service_spec(&["true"]);
    let plan = world.backup_plan(&spec).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    let json = serde_json::to_string(&plan).unwrap();
    assert!(
        json.contains("DB_PASSWORD") && !json.contains("hunter2"),
        "{json}"
    );
    assert!(world.apply(&spec, &plan).await.is_complete());
    // Unchanged: `=`; a changed configuration is due again.
    let again = world.backup_plan(&spec).await;
    assert_eq!(again.changes[0].action, Action::UpToDate);

    // Left alone while it exists.
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::UpToDate);
    assert!(matches!(
        restore.changes[0].reasons[0],
        plan::Reason::KeepExisting { .. }
    ));

    world.engine.forget_container("shop-web");
    world.engine.forget_network("shop-net");
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Restore);
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(world.engine.has_network("shop-net"));
    let recreated = world.engine.container("shop-web").await.unwrap().unwrap();
    assert!(recreated.running);
    let config = world
        .engine
        .container_config("shop-web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(config, web_container());
    assert_eq!(
        world.engine.commands(),
        [("shop-web".to_string(), vec!["true".to_string()])]
    );
    let events = format!("{:?}", world.events.lock().unwrap());
    assert!(!events.contains("hunter2"), "{events}");
    assert_eq!(
        world.backup_plan(&spec).await.changes[0].action,
        Action::UpToDate
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verify_fails_the_restore_and_a_changed_config_is_due() {
    let mut world = World::new(&["main"]);
    world.engine.add_network(crate::engine::NetworkConfig {
        name: "shop-net".into(),
        ..Default::default()
    });
    world.engine.add_container(web_container(), true);
    let spec = service_spec(&["false"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let mut changed = web_container();
    changed.labels.insert("tier".into(), "front".into());
    world.engine.forget_container("shop-web");
    world.engine.add_container(changed, true);
    let plan = world.backup_plan(&spec).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    assert_eq!(plan.changes[0].reasons, [plan::Reason::ContentChanged]);

    world.engine.forget_container("shop-web");
    let restore = world.restore_plan(&spec).await;
    let report = world.apply(&spec, &restore).await;
    assert_eq!(report.failed(), 1);
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(error.contains("verify"), "{error}");
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

fn dump_spec(fail_on_stderr: &[&str], restore_command: &[&str]) -> Spec {
    let mut spec = quiesced_spec(Consistency::None, Default::default());
    spec.volumes.clear();
    spec.dumps.push(crate::spec::DumpSpec {
        name: "sql".into(),
        service: "db".into(),
        command: vec!["pg_dumpall".into()],
        restore_command: restore_command.iter().map(|s| s.to_string()).collect(),
        fail_on_stderr: fail_on_stderr.iter().map(|s| s.to_string()).collect(),
        policy: None,
        span: Span::default(),
    });
    spec
}

fn dump_data() -> Vec<u8> {
    let mut x = 11u64;
    (0..(2 << 20))
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 59) as u8 + b'A'
        })
        .collect()
}

impl World {
    /// A running `db` whose `pg_dumpall` writes [`dump_data`], the spec of
    /// its dump `sql` (loaded by `psql`), and that data.
    fn dumping(&self) -> (Spec, Vec<u8>) {
        self.engine.add_user("db", "pgdata", true);
        let data = dump_data();
        self.engine.script_stream("db", "pg_dumpall", &data, "", 0);
        (dump_spec(&[], &["psql"]), data)
    }

    fn snapshots(&self) -> Vec<crate::repo::Snapshot> {
        self.repositories[0]
            .repository
            .as_ref()
            .unwrap()
            .snapshots()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_streams_into_a_snapshot_dedups_and_loads_into_its_restore_command() {
    let mut world = World::new(&["main"]);
    world.engine.add_user("db", "pgdata", true);
    let data = dump_data();
    world
        .engine
        .script_stream("db", "pg_dumpall", &data, "pg_dumpall: done\n", 0);
    let spec = dump_spec(&["ERROR"], &["psql"]);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    let warned = format!("{:?}", plan.warnings);
    assert!(!warned.contains("dump.sql"), "{warned}");
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        world.kind_plan(&spec, ResourceKind::Dump).await.changes[0].action,
        Action::UpToDate
    );
    let again = world.apply(&spec, &plan).await;
    assert!(again.is_complete(), "{again:?}");
    let snapshots = world.snapshots();
    assert_eq!(snapshots.len(), 2);
    let added = snapshots
        .iter()
        .map(|s| s.summary.added_bytes)
        .min()
        .unwrap();
    assert!(added < data.len() as u64 / 20, "{added} of {}", data.len());

    // The running server may hold the dump's rows already: a dump named
    // as a target loads over them only with --replace.
    let refused = world.kind_restore_plan(&spec, ResourceKind::Dump).await;
    assert_eq!(refused.changes[0].action, Action::Problem, "{refused:?}");
    assert!(format!("{:?}", refused.changes[0].reasons).contains("--replace"));
    let restore = world
        .kind_restore_plan_replacing(&spec, ResourceKind::Dump)
        .await;
    assert_eq!(restore.changes[0].action, Action::Restore, "{restore:?}");
    assert!(
        matches!(
            &restore.changes[0].reasons[0],
            plan::Reason::LoadDump {
                into: plan::DumpInto::OverExistingData,
                ..
            }
        ),
        "{restore:?}"
    );
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(world.engine.stdin_read("db", "psql").unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dump_is_never_stored_and_says_why() {
    let mut world = World::new(&["main"]);
    world.engine.add_user("db", "pgdata", true);
    let spec = dump_spec(&["FATAL"], &["psql"]);
    world.engine.script_stream(
        "db",
        "pg_dumpall",
        &dump_data(),
        "starting\nconnection refused\n",
        2,
    );
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    let report = world.apply(&spec, &plan).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(error.contains("exited with code 2"), "{error}");
    assert!(error.contains("connection refused"), "{error}");
    assert!(error.contains("pg_dumpall"), "{error}");
    world.engine.script_stream(
        "db",
        "pg_dumpall",
        &dump_data(),
        "FATAL: role missing\nmore\n",
        0,
    );
    let report = world.apply(&spec, &plan).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(error.contains("\"FATAL\""), "{error}");
    assert!(world.snapshots().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_without_restore_command_is_a_problem_and_a_failing_load_fails() {
    let mut world = World::new(&["main"]);
    world.engine.add_user("db", "pgdata", true);
    world
        .engine
        .script_stream("db", "pg_dumpall", b"select 1;\n", "", 0);
    let spec = dump_spec(&[], &[]);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let restore = world.kind_restore_plan(&spec, ResourceKind::Dump).await;
    assert_eq!(restore.changes[0].action, Action::Problem);
    assert!(format!("{:?}", restore.changes[0].reasons).contains("restore_command"));

    let spec = dump_spec(&[], &["psql"]);
    world
        .engine
        .script_stream("db", "psql", b"", "psql: syntax error\n", 3);
    let restore = world
        .kind_restore_plan_replacing(&spec, ResourceKind::Dump)
        .await;
    let report = world.apply(&spec, &restore).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(error.contains("exited with code 3"), "{error}");
    assert!(error.contains("syntax error"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dump_hides_sensitive_values_in_its_message() {
    let mut world = World::new(&["main"]);
    world.engine.add_user("db", "pgdata", true);
    let mut spec = dump_spec(&[], &["psql"]);
    spec.dumps[0].command.push("--password=s3cret".into());
    spec.sensitive_values = vec!["s3cret".into()];
    world
        .engine
        .script_stream("db", "pg_dumpall", b"", "auth failed for s3cret\nbye\n", 1);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    let report = world.apply(&spec, &plan).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(!error.contains("s3cret"), "{error}");
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(error.contains("bye"), "{error}");
}

fn checked(mut config: crate::engine::ContainerConfig) -> crate::engine::ContainerConfig {
    config.healthcheck = Some(crate::engine::Healthcheck {
        test: vec!["CMD".into(), "ready".into()],
        ..Default::default()
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_service_waits_for_its_healthcheck_and_an_unhealthy_one_fails_naming_it() {
    use crate::engine::HealthStatus;
    let mut world = World::new(&["main"]);
    world.engine.add_network(crate::engine::NetworkConfig {
        name: "shop-net".into(),
        ..Default::default()
    });
    world.engine.add_container(checked(web_container()), true);
    let spec = service_spec(&[]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());

    world.engine.forget_container("shop-web");
    let restore = world.restore_plan(&spec).await;
    assert!(world.apply(&spec, &restore).await.is_complete());

    world.engine.forget_container("shop-web");
    world.engine.set_health(
        "shop-web",
        HealthStatus::Unhealthy,
        "exit code 1: connection refused",
    );
    let report = world.apply(&spec, &restore).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(
        error.contains("shop-web") && error.contains("unhealthy"),
        "{error}"
    );
    assert!(error.contains("connection refused"), "{error}");

    // Never healthy: the service's start_timeout (1s here) ends the wait.
    world.engine.forget_container("shop-web");
    world
        .engine
        .set_health("shop-web", HealthStatus::Starting, "exit code 2: starting");
    let started = std::time::Instant::now();
    let report = world.apply(&spec, &restore).await;
    let Status::Failed { error, .. } = &report.changes[0].status else {
        panic!("{report:?}");
    };
    assert!(
        error.contains("not healthy within 1s") && error.contains("starting"),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_stack_restore_creates_the_service_before_loading_its_dump_and_records_its_time() {
    let mut world = World::new(&["main"]);
    let db = crate::engine::ContainerConfig {
        name: "db".into(),
        image: "pg".into(),
        network_mode: "none".into(),
        ..Default::default()
    };
    world.engine.add_container(checked(db), true);
    let data = dump_data();
    world.engine.script_stream("db", "pg_dumpall", &data, "", 0);
    let spec = dump_spec(&[], &["psql"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());

    world.engine.forget_container("db");
    let restore = world.restore_plan(&spec).await;
    let actions: Vec<_> = restore
        .changes
        .iter()
        .map(|c| (c.address.to_string(), c.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("service.db".to_string(), Action::Restore),
            ("dump.sql".to_string(), Action::Restore)
        ],
        "the dump loads into the container the same run creates: {restore:?}"
    );
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    assert!(report.whole_stack && report.elapsed_seconds > 0.0);
    assert_eq!(world.engine.stdin_read("db", "psql").unwrap(), data);
    let state = last_applied_state(&world.repositories).unwrap().unwrap();
    let stack = state.stack.expect("the whole stack's time is recorded");
    assert_eq!(stack.resources, ["service.db", "dump.sql"]);
    assert!(stack.seconds >= report.elapsed_seconds * 0.99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_record_their_consistency_and_a_stronger_one_asked_later_is_due() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("f", b"data")]);
    let loose = quiesced_spec(Consistency::None, Default::default());
    let plan = world.kind_plan(&loose, ResourceKind::Volume).await;
    assert!(world.apply(&loose, &plan).await.is_complete());
    let recorded: Vec<Option<String>> = world.repositories[0]
        .repository
        .as_ref()
        .unwrap()
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.source.consistency)
        .collect();
    assert_eq!(recorded, [Some("none".to_string())]);
    let same = world.kind_plan(&loose, ResourceKind::Volume).await;
    assert_eq!(same.changes[0].action, Action::UpToDate);

    let strict = quiesced_spec(Consistency::Stop, Default::default());
    let due = world.kind_plan(&strict, ResourceKind::Volume).await;
    assert_eq!(due.changes[0].action, Action::BackUp);
    assert!(
        due.changes[0]
            .reasons
            .contains(&plan::Reason::WeakerConsistency {
                taken: Consistency::None,
                asked: Consistency::Stop
            }),
        "{:?}",
        due.changes[0].reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_inside_the_engines_data_root_is_neither_backed_up_nor_restored() {
    let mut world = World::new(&["main"]);
    let path = std::path::Path::new("/var/lib/docker/volumes/shop_db/_data");
    world.engine.add_directory(path, &[("PG_VERSION", b"16")]);
    let spec = Spec {
        binds: vec![crate::spec::BindSpec {
            name: "db".into(),
            path: path.to_path_buf(),
            engine: None,
            policy: None,
            consistency: Consistency::None,
            service: None,
            hooks: Default::default(),
            exclude: Default::default(),
            span: Span::default(),
        }],
        ..Spec::default()
    };
    // Backed up while the engine did not say where its data is...
    let plan = world.backup_plan(&spec).await;
    assert_eq!(plan.changes[0].action, Action::BackUp);
    assert!(world.apply(&spec, &plan).await.is_complete());
    let elsewhere = std::path::Path::new("/var/lib/docker/volumes/other/_data");
    let mut moved = spec.clone();
    moved.binds[0].path = elsewhere.to_path_buf();
    let earlier = world.restore_plan(&moved).await;
    assert_eq!(earlier.changes[0].action, Action::Restore);
    // ...and refused both ways once it does; a plan made before is refused
    // when applied, before anything is written.
    world
        .engine
        .set_data_root(std::path::Path::new("/var/lib/docker"));
    let report = world.apply(&moved, &earlier).await;
    assert_eq!(report.failed(), 1, "{report:?}");
    assert_eq!(world.engine.directory_files(elsewhere), None);
    let says_volume = |plan: &Plan| {
        assert_eq!(plan.changes[0].action, Action::Problem, "{plan:?}");
        let said = format!("{:?}", plan.changes[0].reasons);
        assert!(
            said.contains("`volume` block") && said.contains("shop_db"),
            "{said}"
        );
    };
    says_volume(&world.backup_plan(&spec).await);
    says_volume(&world.restore_plan(&spec).await);
}

/// A token of this process with another start time: a process that is gone.
fn gone_process() -> String {
    let me = crate::host::ProcessId::current();
    format!(
        "{}:{}:{}",
        me.pid,
        1,
        me.token().splitn(3, ':').nth(2).unwrap()
    )
}

impl World {
    /// Writes a journal record of a gone lifeboat process for `container`.
    fn journal(&self, file: &str, entry: quiesce::JournalEntry) {
        let dir = self.state.path().join(quiesce::JOURNAL_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), serde_json::to_vec(&entry).unwrap()).unwrap();
    }

    fn record(&self, container: &str, hold: Hold) -> quiesce::JournalEntry {
        quiesce::JournalEntry {
            host: crate::host::hostname(),
            process: gone_process(),
            engine: crate::spec::DEFAULT_ENGINE.into(),
            engine_address: None,
            container: container.into(),
            container_id: None,
            hold,
            resource: format!("volume.{container}"),
            since: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// What a killed run leaves after stopping `container`: the record
    /// with the container as lifeboat left it, the container stopped.
    async fn stopped_by_a_killed_run(&self, container: &str) {
        let before = self.engine.container(container).await.unwrap().unwrap();
        self.engine
            .stop_container(container, std::time::Duration::ZERO)
            .await
            .unwrap();
        let after = self.engine.container(container).await.unwrap().unwrap();
        self.journal(
            &format!("1-{container}.json"),
            quiesce::JournalEntry {
                container_id: Some(before.id),
                started_at: before.started_at,
                finished_at: after.finished_at,
                ..self.record(container, Hold::Stopped)
            },
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_leaves_alone_a_container_someone_started_or_stopped_since() {
    let world = World::new(&["main"]);
    for container in ["db", "cache", "queue"] {
        world.engine.add_user(container, "app_data", true);
        world.stopped_by_a_killed_run(container).await;
    }
    // After the crash, an administrator started cache and stopped it again
    // (maintenance), and stopped queue after starting it: theirs now.
    world.engine.set_running_by_hand("cache", true);
    world.engine.set_running_by_hand("cache", false);
    world.engine.set_running_by_hand("queue", true);
    world.engine.set_running_by_hand("queue", false);
    let report = recover(world.state.path(), &world.engines).await;
    assert!(report.errors.is_empty(), "{report:?}");
    let by_name = |name: &str| {
        report
            .resumed
            .iter()
            .find(|r| r.container == name)
            .unwrap()
            .clone()
    };
    assert!(by_name("db").resumed && by_name("db").left_alone.is_none());
    for touched in ["cache", "queue"] {
        let resumed = by_name(touched);
        assert!(!resumed.resumed, "{resumed:?}");
        assert!(
            resumed
                .left_alone
                .as_deref()
                .is_some_and(|why| why.contains("someone started it")),
            "{resumed:?}"
        );
        assert_eq!(world.running(touched).await, (false, false));
    }
    assert_eq!(world.running("db").await, (true, false));
    assert_eq!(world.journal_entries(), 0, "every record was dealt with");
    let log = world.engine.container_log();
    assert_eq!(log.iter().filter(|l| l.starts_with("start")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_a_killed_restore_created_is_started_by_recover_unless_touched() {
    let world = World::new(&["main"]);
    let mut web = web_container();
    world.engine.add_container(web.clone(), false);
    web.name = "shop-api".into();
    world.engine.add_container(web, false);
    world.engine.set_running_by_hand("shop-api", true);
    world.engine.set_running_by_hand("shop-api", false);
    world.journal("1-web.json", world.record("shop-web", Hold::Created));
    world.journal("1-api.json", world.record("shop-api", Hold::Created));
    let report = recover(world.state.path(), &world.engines).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(world.running("shop-web").await, (true, false));
    assert_eq!(world.running("shop-api").await, (false, false));
    let api = report
        .resumed
        .iter()
        .find(|r| r.container == "shop-api")
        .unwrap();
    assert!(api.left_alone.is_some(), "{api:?}");
    assert_eq!(world.journal_entries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_restore_journals_its_container_until_it_is_started() {
    let mut world = World::new(&["main"]);
    world.engine.add_network(crate::engine::NetworkConfig {
        name: "shop-net".into(),
        ..Default::default()
    });
    world.engine.add_container(web_container(), true);
    let spec = service_spec(&[]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    world.engine.forget_container("shop-web");
    // The start fails: the run says so, and leaves no record behind (only
    // a killed run does).
    world.engine.fail_container_operation("shop-web", "start");
    let restore = world.restore_plan(&spec).await;
    let report = world.apply(&spec, &restore).await;
    assert_eq!(report.failed(), 1, "{report:?}");
    assert_eq!(world.journal_entries(), 0);
    let log = world.engine.container_log();
    assert_eq!(log.last().map(String::as_str), Some("start shop-web"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_mid_copy_resumes_the_service_and_runs_its_post_hooks() {
    let world = World::new(&["main"]);
    world.engine.add_user("db", "app_data", true);
    let dyn_engine: Arc<dyn crate::engine::Engine> = world.engine.clone();
    let on = quiesce::OnEngine {
        name: crate::spec::DEFAULT_ENGINE,
        engine: &dyn_engine,
        engines: &world.engines,
        container: "db",
    };
    let post = vec![(vec!["thaw".to_string()], std::time::Duration::from_secs(1))];
    world.quiescer.expect_post("volume.data", &on, post).await;
    world
        .quiescer
        .hold(&on, Hold::Stopped, "volume.data", std::time::Duration::ZERO)
        .await
        .unwrap();
    let released = world.quiescer.release_all().await;
    assert_eq!(released.resumed, ["db"]);
    assert_eq!(released.posts, ["volume.data: thaw"]);
    assert!(released.errors.is_empty(), "{released:?}");
    assert_eq!(
        world.engine.container_log(),
        ["stop db", "start db", "exec db thaw"]
    );
    // The copy's own end finds them run: nothing twice.
    assert!(world.quiescer.take_post("volume.data").await.is_none());
    assert_eq!(world.journal_entries(), 0);
}

/// A World whose volume.data (`app_data`) one run backed up into `main`.
async fn backed_up_world() -> (World, Spec) {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("f", b"data")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    (world, spec)
}

/// The run records of the World's first repository, newest first.
fn run_records(world: &World) -> Vec<crate::repo::RunRecord> {
    let repository = world.repositories[0].repository.as_ref().unwrap();
    let (runs, damaged) = repository.runs().unwrap();
    assert!(damaged.is_empty(), "{damaged:?}");
    runs.into_iter().map(|r| r.record).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_appends_a_record_of_what_was_done_failed_and_skipped() {
    use crate::repo::{ResourceOutcome, RunKind};
    let mut world = World::new(&["main", "copy"]);
    world.engine.add_volume("app_a", &[("f", b"alpha")]);
    world.engine.add_volume("app_b", &[("f", b"beta")]);
    world.engine.fail_exports_of("app_a");
    let spec = spec(&["a", "b", "gone"]);
    let mut plan = world.backup_plan(&spec).await;
    plan.changes[1].depends_on = vec![Address::new(ResourceKind::Volume, "a")];
    let applied = plan::AppliedState {
        settings: Some(plan::AppliedSettings::of(&spec)),
        ..Default::default()
    };
    let report = world.apply_with(&spec, &plan, applied.clone()).await;
    assert_eq!(report.failed(), 2, "{report:?}");
    for named in &world.repositories {
        let (runs, _) = named.repository.as_ref().unwrap().runs().unwrap();
        assert_eq!(runs.len(), 1, "one record in repository.{}", named.name);
    }
    let records = run_records(&world);
    let record = &records[0];
    assert_eq!(record.kind, RunKind::Backup);
    assert_eq!(record.host, crate::host::hostname());
    assert_eq!(record.spec_digest.as_deref(), Some("digest"));
    assert!(record.started <= record.finished && !record.interrupted);
    assert_eq!(
        record.applied, None,
        "settings are recorded only when all succeeded"
    );
    let outcomes: Vec<(&str, Option<&str>, &ResourceOutcome)> = record
        .resources
        .iter()
        .map(|r| (r.address.as_str(), r.repository.as_deref(), &r.outcome))
        .collect();
    assert!(
        matches!(
            outcomes[0],
            ("volume.a", Some("main"), ResourceOutcome::Failed { message, .. })
                if message.contains("injected failure")
        ),
        "{outcomes:?}"
    );
    assert!(
        matches!(
            outcomes[2],
            ("volume.b", None, ResourceOutcome::Skipped { because }) if because.contains("volume.a")
        ),
        "{outcomes:?}"
    );
    assert!(
        matches!(
            outcomes[3],
            (
                "volume.gone",
                None,
                ResourceOutcome::Failed {
                    class: crate::failure::FailureClass::Refused,
                    ..
                }
            )
        ),
        "{outcomes:?}"
    );
    assert_eq!(record.counts(), (0, 2, 1));

    // The next run appends beside it; all done, it carries the settings.
    world.engine.add_volume("app_c", &[("f", b"gamma")]);
    let spec = self::spec(&["b", "c"]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply_with(&spec, &plan, applied.clone()).await;
    assert!(report.is_complete(), "{report:?}");
    let records = run_records(&world);
    assert_eq!(records.len(), 2);
    let newest = &records[0];
    assert_eq!(newest.counts(), (2, 0, 0));
    let ResourceOutcome::Done {
        snapshot, bytes, ..
    } = &newest.resources[0].outcome
    else {
        panic!("{newest:?}");
    };
    assert_eq!(*bytes, 4);
    let stored = world.repositories[0]
        .repository
        .as_ref()
        .unwrap()
        .snapshots()
        .unwrap();
    assert!(stored.iter().any(|s| &s.id.to_string() == snapshot));
    assert_eq!(
        last_applied_state(&world.repositories)
            .unwrap()
            .unwrap()
            .settings,
        applied.settings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_records_what_it_skipped() {
    let (mut world, _) = backed_up_world().await;
    world.engine.add_volume("app_more", &[("f", b"more")]);
    let spec = self::spec(&["data", "more"]);
    let plan = world.backup_plan(&spec).await;
    world.cancel.cancel();
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.skipped(), 1);
    let record = &run_records(&world)[0];
    assert!(record.interrupted && !record.is_complete());
    assert!(matches!(
        &record.resources[0].outcome,
        crate::repo::ResourceOutcome::Skipped { because } if because.contains("interrupted")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_appends_a_restore_record_that_plan_reads_its_times_from() {
    use crate::repo::{ResourceOutcome, RunKind};
    let (mut world, spec) = backed_up_world().await;
    world.engine.remove_volume("app_data").await.unwrap();
    let restore = world.restore_plan(&spec).await;
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    let records = run_records(&world);
    let record = &records[0];
    assert_eq!(record.kind, RunKind::Restore);
    assert!(record.whole_stack && record.applied.is_none());
    let ResourceOutcome::Done {
        snapshot, seconds, ..
    } = &record.resources[0].outcome
    else {
        panic!("{record:?}");
    };
    let state = last_applied_state(&world.repositories).unwrap().unwrap();
    let measured = &state.restores["volume.data"];
    assert_eq!(&measured.snapshot, snapshot);
    assert_eq!(measured.seconds, *seconds);
    assert_eq!(measured.time, record.finished);
    assert_eq!(state.stack.unwrap().resources, ["volume.data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_applied_record_plans_the_same_and_the_first_run_converts_it() {
    use crate::repo::RunKind;
    let (mut world, spec) = backed_up_world().await;
    let repository = world.repositories[0].repository.as_ref().unwrap();
    // What a repository of an older lifeboat holds: no run records, one
    // applied record with settings and restore times.
    for stored in repository.runs().unwrap().0 {
        repository
            .backend()
            .remove(crate::repo::FileKind::Run, &stored.name)
            .unwrap();
    }
    let time = chrono::Utc::now() - chrono::Duration::hours(2);
    let legacy = plan::AppliedState {
        settings: Some(plan::AppliedSettings::of(&spec)),
        drills: BTreeMap::new(),
        restores: BTreeMap::from([(
            "volume.data".to_string(),
            plan::RestoreMeasurement {
                seconds: 42.0,
                bytes: 4,
                snapshot: "s".into(),
                time,
            },
        )]),
        stack: Some(plan::StackRestoreMeasurement {
            seconds: 50.0,
            resources: vec!["volume.data".into()],
            time,
        }),
    };
    repository
        .record_applied(serde_json::to_value(&legacy).unwrap())
        .unwrap();
    assert_eq!(
        last_applied_state(&world.repositories).unwrap(),
        Some(legacy.clone())
    );

    // A run without settings to record converts it, and the plan reads the same.
    world.engine.add_volume("app_data", &[("f", b"changed")]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let repository = world.repositories[0].repository.as_ref().unwrap();
    assert!(
        repository.last_applied().unwrap().is_none(),
        "legacy removed"
    );
    let kinds: Vec<RunKind> = run_records(&world).iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RunKind::Backup, RunKind::Migrated]);
    assert_eq!(
        last_applied_state(&world.repositories).unwrap(),
        Some(legacy)
    );
}

mod copies;
mod excludes;
mod images;
mod into;
mod live_diff;
mod notices;
mod progress;
mod runloop;
mod tags;
