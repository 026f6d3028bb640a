//! Copies as plan lines: a repository added later gets what the others
//! hold by repository-to-repository copies, never by reading the engine
//! again, and a second plan finds nothing left to copy.

use super::*;
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
