//! What an unchanged, forced re-run (`apply --replace`) asks of its
//! repository, counted request by request: from a remote store each is a
//! round trip, and the run makes them one after the other.

use super::backup::{BackupPlanning, BackupRequest, plan_backup_on};
use super::tests::settings;
use super::*;
use crate::apply::NamedRepository;
use crate::engine::memory::MemoryEngine;
use crate::repo::backend::counting::{CountingBackend, Operation};
use crate::repo::backend::memory::MemoryBackend;
use crate::repo::{Backend, FileKind, Repository};
use std::sync::Arc;

const SPEC: &str = r#"
repository "main" {
  path = "repo"
  encryption { passphrase_env = "LIFEBOAT_RERUN_TEST_PASSPHRASE" }
}

volume "data" { name = "app_data" }
"#;

/// One `apply` as the CLI makes it (open, plan, lock, run), on `backend`.
async fn apply(
    dir: &Path,
    engine: &Arc<MemoryEngine>,
    backend: Arc<dyn Backend>,
    replace: &[&str],
) {
    let opened =
        NamedRepository::on_backend("main", backend, Some("pass".into()), &settings()).unwrap();
    let engine: Arc<dyn crate::engine::Engine> = engine.clone();
    let engines = Engines::from_engines([(spec::DEFAULT_ENGINE.to_string(), engine)]);
    let request = BackupRequest {
        replace: replace.iter().map(|a| a.to_string()).collect(),
        ..BackupRequest::default()
    };
    let loaded = Loaded::load(dir, &VarInputs::default()).unwrap();
    let BackupPlanning {
        loaded,
        mut repositories,
        engines,
        plan,
        ..
    } = plan_backup_on(loaded, &request, vec![opened], EngineSource::Given(engines))
        .await
        .unwrap();
    assert!(plan.has_changes(), "{plan:?}");
    lock_repositories(&repositories, false).unwrap();
    let engines = engines.as_ref().unwrap();
    let report = super::tests::apply_backup(&loaded, engines, &plan, &mut repositories).await;
    assert!(report.is_complete(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_forced_rerun_opens_its_repository_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.hcl"), SPEC).unwrap();
    let engine = Arc::new(MemoryEngine::new());
    engine.add_volume("app_data", &[("a.txt", b"alpha"), ("b/c.txt", b"gamma")]);
    let stored: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    Repository::init(stored.clone(), Some("pass")).unwrap();
    apply(dir.path(), &engine, stored.clone(), &[]).await;

    let counting = Arc::new(CountingBackend::new(stored));
    apply(dir.path(), &engine, counting.clone(), &["volume.data"]).await;
    let tally = counting.tally();
    let total = counting.counts().requests();
    // Read once, shared by plan and apply: config, keys, index, the
    // listings of snapshots and run records and each of their files.
    for (operation, kind) in [
        (Operation::Stat, FileKind::Config),
        (Operation::Load, FileKind::Config),
        (Operation::List, FileKind::Key),
        (Operation::List, FileKind::Index),
        (Operation::List, FileKind::Snapshot),
        (Operation::Load, FileKind::Snapshot),
        (Operation::List, FileKind::Run),
        (Operation::Load, FileKind::Run),
        (Operation::List, FileKind::Applied),
    ] {
        let made = counting.requests_of(operation, kind);
        assert_eq!(made, 1, "{operation:?} {kind:?}: {tally:?}");
    }
    // One lock for the whole run: written, listed against, removed; the
    // volume's backup inside the run goes under it.
    assert_eq!(
        counting.requests_of(Operation::Save, FileKind::Lock),
        1,
        "{tally:?}"
    );
    assert_eq!(
        counting.requests_of(Operation::Load, FileKind::Lock),
        0,
        "{tally:?}"
    );
    assert_eq!(
        counting.requests_of(Operation::Remove, FileKind::Lock),
        1,
        "{tally:?}"
    );
    // 34 before the run opened its repository once.
    // 19 while the run record this run wrote was read back at its end;
    // the handle now keeps what it saved.
    assert!(total <= 18, "{total} requests: {tally:?}");
}
