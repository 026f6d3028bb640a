//! The run's loop over repositories: a resource is read from the engine
//! once and copied into its other repositories; a repository that cannot
//! take it hands the read to the next; and every failure has its class.

use super::*;
use crate::failure::FailureClass;
use crate::repo::FileKind;
use crate::repo::backend::faulty::{Faults, FaultyBackend};

/// The class of a report's first change, when it failed.
fn status_class(report: &ApplyReport) -> Option<FailureClass> {
    match &report.changes[0].status {
        Status::Failed { class, .. } => Some(*class),
        _ => None,
    }
}

/// The report's first change failed as `class`, and so did each of its
/// `copies` copies.
fn assert_failed_as(report: &ApplyReport, class: FailureClass, copies: usize) {
    let change = &report.changes[0];
    let classes: Vec<Option<FailureClass>> = change.copies.iter().map(|c| c.class).collect();
    assert_eq!(status_class(report), Some(class), "{report:?}");
    assert_eq!(classes, vec![Some(class); copies], "{report:?}");
}

/// The id of the image `reference` names on the world's engine.
async fn image_id(world: &World, reference: &str) -> Option<String> {
    let image = crate::engine::Images::image(world.engine.as_ref(), reference).await;
    image.unwrap().map(|image| image.id)
}

impl World {
    /// Each repository holds exactly one snapshot, of `address`, and the
    /// report's change has one successful copy per repository, each
    /// announced by a started and a finished event naming it.
    fn holds_one_snapshot_each(&self, report: &ApplyReport, address: &str) {
        assert!(report.is_complete(), "{report:?}");
        let copies = &report.changes[0].copies;
        let names: Vec<&str> = self.repositories.iter().map(|r| r.name.as_str()).collect();
        let copied: Vec<&str> = copies.iter().map(|c| c.repository.as_str()).collect();
        assert_eq!(copied, names);
        for named in &self.repositories {
            let snapshots = named.repository.as_ref().unwrap().snapshots().unwrap();
            assert_eq!(snapshots.len(), 1, "{}", named.name);
            assert_eq!(snapshots[0].resource, address);
        }
        let events = self.events.lock().unwrap();
        for name in names {
            let started = events.iter().any(
                |e| matches!(e, Event::ResourceStarted { repository, .. } if repository == name),
            );
            let finished = events.iter().any(
                |e| matches!(e, Event::ResourceFinished { repository, .. } if repository == name),
            );
            assert!(started && finished, "{name}: {events:?}");
        }
    }

    /// The first repository is lost: what is restored now comes from the others.
    fn lose_the_first_repository(&mut self) {
        self.repositories.remove(0);
    }

    /// Applies `restore`, which takes its snapshot from the second
    /// repository, to the end.
    async fn restore_from_second(&mut self, spec: &Spec, restore: &Plan) {
        let chosen = restore.changes[0].snapshot.as_ref();
        assert_eq!(chosen.unwrap().repository, "second", "{restore:?}");
        let report = self.apply(spec, restore).await;
        assert!(report.is_complete(), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_in_two_repositories_is_read_once_and_restores_from_the_second() {
    let mut world = World::new(&["first", "second"]);
    let files: &[(&str, &[u8])] = &[("a.txt", b"alpha"), ("deep/b.bin", &[7u8; 70_000])];
    world.engine.add_volume("app_data", files);
    let before = world.engine.files("app_data").unwrap();
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(world.engine.exports(), 1, "read from the engine once");
    world.holds_one_snapshot_each(&report, "volume.data");
    // The copy read nothing from the engine.
    assert_eq!(report.changes[0].copies[1].read_bytes, 0);

    world.engine.remove_volume("app_data").await.unwrap();
    world.lose_the_first_repository();
    let restore = world.restore_plan(&spec).await;
    world.restore_from_second(&spec, &restore).await;
    assert_eq!(world.engine.files("app_data").unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_in_two_repositories_is_read_once_and_restores_from_the_second() {
    let mut world = World::new(&["first", "second"]);
    let (archive, id) = image_archive(&[5u8; 50_000], "shop/app:1", "amd64");
    world.engine.add_image_archive(archive).unwrap();
    let spec = image_spec("shop/app:1");
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!(world.engine.exports(), 1, "read from the engine once");
    world.holds_one_snapshot_each(&report, "image.app");

    world.engine.remove_image(&id);
    world.lose_the_first_repository();
    let restore = world.restore_plan(&spec).await;
    world.restore_from_second(&spec, &restore).await;
    assert_eq!(image_id(&world, "shop/app:1").await, Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_in_two_repositories_runs_once_and_loads_from_the_second() {
    let mut world = World::new(&["first", "second"]);
    world.engine.add_user("db", "pgdata", true);
    let data = dump_data();
    world.engine.script_stream("db", "pg_dumpall", &data, "", 0);
    let spec = dump_spec(&[], &["psql"]);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    let report = world.apply(&spec, &plan).await;
    let dumps = world
        .engine
        .container_log()
        .iter()
        .filter(|line| *line == "exec db pg_dumpall")
        .count();
    assert_eq!(dumps, 1, "the dump command runs once");
    world.holds_one_snapshot_each(&report, "dump.sql");

    world.lose_the_first_repository();
    let restore = world
        .kind_restore_plan_replacing(&spec, ResourceKind::Dump)
        .await;
    world.restore_from_second(&spec, &restore).await;
    assert_eq!(world.engine.stdin_read("db", "psql").unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_stopped_once_for_two_repositories_that_will_not_start_fails_both_copies() {
    let mut world = World::new(&["first", "second"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    let spec = quiesced_spec(Consistency::Stop, Default::default());
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    // After the plan: the engine will not start it again.
    world.engine.fail_container_operation("db", "start");
    let report = world.apply(&spec, &plan).await;
    assert_eq!(world.engine.exports(), 1);
    assert_eq!(world.engine.container_log(), ["stop db", "start db"]);
    // Both snapshots are stored, and each copy says the service is down.
    for copy in &report.changes[0].copies {
        let error = copy.error.as_deref().unwrap_or_default();
        assert!(copy.snapshot.is_some(), "{copy:?}");
        assert!(error.contains("is stored, but"), "{copy:?}");
        assert!(error.contains("could not start"), "{copy:?}");
    }
    assert_failed_as(&report, FailureClass::CommandFailed, 2);
}

/// A backend on which nothing can be saved (a full or read-only disk).
fn unwritable(inner: Arc<dyn crate::repo::Backend>) -> Arc<dyn crate::repo::Backend> {
    let faults = Faults {
        fail_saves_after: Some(0),
        ..Faults::default()
    };
    Arc::new(FaultyBackend::new(inner, faults))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_repository_that_cannot_be_opened_leaves_the_backup_to_the_second() {
    let first = unwritable(Arc::new(MemoryBackend::default()));
    let second: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
    let mut world = World::on_backends(&[("first", first), ("second", second)]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    let copies = &report.changes[0].copies;
    assert_eq!(copies[0].repository, "first");
    assert_eq!(copies[0].class, Some(FailureClass::RepositoryUnavailable));
    assert_eq!(copies[1].repository, "second");
    assert!(copies[1].snapshot.is_some(), "{report:?}");
    assert_eq!(world.engine.exports(), 1);
    assert_eq!(
        status_class(&report),
        Some(FailureClass::RepositoryUnavailable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_fails_during_the_backup_hands_the_read_to_the_next() {
    // Exists and opens, but takes no write (not even its lock).
    let memory: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
    crate::repo::Repository::init(memory.clone(), Some("pass")).unwrap();
    let second: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
    let mut world = World::on_backends(&[("first", unwritable(memory)), ("second", second)]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    let copies = &report.changes[0].copies;
    assert_eq!(copies[0].class, Some(FailureClass::RepositoryUnavailable));
    assert!(copies[1].snapshot.is_some(), "{report:?}");
    assert_eq!(world.engine.exports(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_or_a_volume_gone_since_the_plan_is_unreachable_or_missing() {
    let mut world = World::new(&["first", "second"]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    let connected = std::mem::replace(&mut world.engines, Engines::from_engines([]));
    let report = world.apply(&spec, &plan).await;
    assert_failed_as(&report, FailureClass::EngineUnreachable, 2);

    world.engines = connected;
    world.engine.remove_volume("app_data").await.unwrap();
    let report = world.apply(&spec, &plan).await;
    assert_failed_as(&report, FailureClass::ResourceMissing, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_or_dump_command_is_command_failed() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a", b"alpha")]);
    world.engine.add_user("db", "app_data", true);
    world.engine.script_exec("db", "flush", 3, "disk full");
    let spec = quiesced_spec(Consistency::Stop, hooks(&["flush"], &[]));
    let plan = world.kind_plan(&spec, ResourceKind::Volume).await;
    let report = world.apply(&spec, &plan).await;
    assert_failed_as(&report, FailureClass::CommandFailed, 1);

    world
        .engine
        .script_stream("db", "pg_dumpall", b"", "connection refused\n", 2);
    let spec = dump_spec(&[], &["psql"]);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    let report = world.apply(&spec, &plan).await;
    assert_failed_as(&report, FailureClass::CommandFailed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_read_by_a_restore_is_an_integrity_failure() {
    let memory = Arc::new(MemoryBackend::default());
    let backend: Arc<dyn crate::repo::Backend> = memory.clone();
    let mut world = World::on_backends(&[("main", backend.clone())]);
    // Content that does not compress, so the middle of the pack is in the
    // file's blob (the plan's read of the tree keeps the tree, already
    // authenticated, for the restore: damage there is not read again).
    let content = crate::repo::incompressible(70_000, 9);
    world
        .engine
        .add_volume("app_data", &[("a.bin", content.as_slice())]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    world.engine.remove_volume("app_data").await.unwrap();
    // Damaged after the plan: found by the restore reading it.
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Restore, "{restore:?}");
    let biggest = backend
        .list(FileKind::Pack)
        .unwrap()
        .into_iter()
        .max_by_key(|pack| backend.stat(FileKind::Pack, pack).unwrap())
        .unwrap();
    memory.tamper(FileKind::Pack, &biggest, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
    });
    let report = world.apply(&spec, &restore).await;
    assert_failed_as(&report, FailureClass::Integrity, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_a_guard_refuses_when_applied_is_refused() {
    let mut world = World::new(&["main"]);
    let inside = std::path::Path::new("/var/lib/docker/volumes/shop_db/_data");
    let hcl = b"bind \"db\" {\n  path = \"/srv/db\"\n}\n".to_vec();
    let sources = vec![(std::path::PathBuf::from("main.hcl"), hcl)];
    let here = std::path::Path::new(".");
    let mut spec = crate::spec::load_sources(here, sources, &Default::default()).unwrap();
    world
        .engine
        .add_directory(&spec.binds[0].path, &[("PG_VERSION", b"16")]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    // Planned into a directory the engine did not yet say is its own.
    spec.binds[0].path = inside.to_path_buf();
    let restore = world.restore_plan(&spec).await;
    assert_eq!(restore.changes[0].action, Action::Restore, "{restore:?}");
    world
        .engine
        .set_data_root(std::path::Path::new("/var/lib/docker"));
    let report = world.apply(&spec, &restore).await;
    assert_failed_as(&report, FailureClass::Refused, 1);
    assert_eq!(world.engine.directory_files(inside), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_short_by_a_signal_is_interrupted() {
    let mut world = World::new(&["first", "second"]);
    world.engine.add_user("db", "pgdata", true);
    world
        .engine
        .script_stream("db", "pg_dumpall", &dump_data(), "", 0);
    let spec = dump_spec(&[], &["psql"]);
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    world.cancel_when_started = true;
    let report = world.apply(&spec, &plan).await;
    assert_failed_as(&report, FailureClass::Interrupted, 2);
    assert!(world.snapshots().is_empty());
}
