//! Copies as plan lines: a repository added later gets what the others
//! hold by repository-to-repository copies, never by reading the engine
//! again, and a second plan finds nothing left to copy.

use super::*;
use crate::repo::backend::Backend;
use crate::repo::{ResourceOutcome, RunRecord};

impl World {
    /// Declares one more repository, empty (not created yet).
    fn add_repository(&mut self, name: &str) {
        let backend: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
        let named = NamedRepository::on_backend(name, backend, Some("pass".into()), &settings());
        self.repositories.push(named.unwrap());
    }

    fn snapshots_in(&self, index: usize) -> Vec<crate::repo::Snapshot> {
        let repository = self.repositories[index].repository.as_ref().unwrap();
        repository.snapshots().unwrap()
    }

    fn newest_record(&self, index: usize) -> RunRecord {
        let repository = self.repositories[index].repository.as_ref().unwrap();
        let (mut runs, _) = repository.runs().unwrap();
        runs.remove(0).record
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_added_later_gets_the_snapshot_by_a_copy_and_a_second_plan_copies_nothing() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    assert_eq!(world.engine.exports(), 1);

    world.add_repository("offsite");
    let plan = world.backup_plan(&spec).await;
    let copy = plan
        .changes
        .iter()
        .find(|c| c.action == Action::Copy)
        .unwrap_or_else(|| panic!("{plan:#?}"));
    let taken = &world.snapshots_in(0)[0];
    let planned = &copy.copies[0];
    assert_eq!(
        (planned.from.as_str(), planned.to.as_str()),
        ("main", "offsite")
    );
    assert_eq!(planned.snapshot.as_ref().unwrap().id, taken.id.to_string());
    assert_eq!(plan.summary.to_copy, 1);

    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(world.engine.exports(), 1, "the engine is not read again");
    let copied = &world.snapshots_in(1)[0];
    assert_eq!(
        (copied.time, &copied.source.run),
        (taken.time, &taken.source.run)
    );
    let outcome = &report.changes[0].copies[0];
    assert_eq!(
        (outcome.repository.as_str(), outcome.from.as_deref()),
        ("offsite", Some("main"))
    );
    // Both repositories record the copy as one.
    for index in [0, 1] {
        let record = world.newest_record(index);
        assert!(
            matches!(
                &record.resources[0].outcome,
                ResourceOutcome::Copied { from, snapshot, .. }
                    if from == "main" && *snapshot == copied.id.to_string()
            ),
            "{record:?}"
        );
    }

    let again = world.backup_plan(&spec).await;
    assert_eq!(again.summary.to_copy, 0, "{again:#?}");
    assert!(!again.has_changes(), "{again:#?}");
}

/// A world backed up into `main` and `offsite` (the second a copy), with
/// the in-memory backends to damage.
async fn backed_up_twice() -> (World, Spec, Arc<MemoryBackend>) {
    let main = Arc::new(MemoryBackend::default());
    let offsite: Arc<dyn crate::repo::Backend> = Arc::new(MemoryBackend::default());
    let mut world = World::on_backends(&[("main", main.clone()), ("offsite", offsite)]);
    world.engine.add_volume(
        "app_data",
        &[("big.bin", &[9u8; 200_000]), ("a.txt", b"alpha")],
    );
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    world.engine.remove_volume("app_data").await.unwrap();
    (world, spec, main)
}

impl World {
    async fn observe_restores(&self, spec: &Spec, only: Option<&str>) -> RestoreObserved {
        let order = spec.addresses();
        let mapping = plan::RestoreMapping::default();
        let selection = RestoreSelection::Latest;
        let repositories = &self.repositories;
        observe_restores(
            &self.engines,
            spec,
            &order,
            repositories,
            &selection,
            &mapping,
            only,
        )
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reads_the_first_sound_copy_and_says_why_it_passed_the_others_over() {
    let (world, spec, main) = backed_up_twice().await;
    let data = Address::new(ResourceKind::Volume, "data");
    // Both sound: main, the first of the copies, and nothing to say.
    let observed = world.observe_restores(&spec, None).await;
    assert_eq!(
        observed.resources[&data]
            .snapshot
            .as_ref()
            .unwrap()
            .repository,
        "main"
    );
    assert!(observed.read_elsewhere.is_empty());

    // main's packs are cut short: offsite's copy of the same moment is read.
    for pack in main.list(crate::repo::FileKind::Pack).unwrap() {
        main.tamper(crate::repo::FileKind::Pack, &pack, |bytes| {
            bytes.truncate(10)
        });
    }
    let observed = world.observe_restores(&spec, None).await;
    let chosen = observed.resources[&data].snapshot.clone().unwrap();
    assert_eq!(chosen.repository, "offsite");
    let elsewhere = &observed.read_elsewhere[&data];
    assert_eq!(elsewhere.repository, "offsite");
    assert_eq!(elsewhere.skipped[0].repository, "main");
    assert!(
        elsewhere.skipped[0].why.contains("is damaged"),
        "{elsewhere:?}"
    );

    // --repository main still reads main: refused before anything is written.
    let forced = world.observe_restores(&spec, Some("main")).await;
    let target = &forced.resources[&data].target;
    assert!(
        target
            .as_ref()
            .is_err_and(|e| e.contains("Nothing was changed")),
        "{target:?}"
    );
    assert!(forced.read_elsewhere.is_empty());
}
