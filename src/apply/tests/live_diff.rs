//! `diff ADDR` on the in-memory engine (the archive path): the latest
//! snapshot against the live volume, the snapshot's excludes applied to
//! the live side, nothing written to the repository, no container
//! stopped; and a bind the same way.

use super::*;
use crate::apply::partial::LiveRead;
use crate::repo::Backend;
use crate::repo::backend::FileKind;
use crate::repo::browse::Change;

/// Every file the backend holds, by kind.
fn stored(backend: &MemoryBackend) -> Vec<(FileKind, Vec<String>)> {
    FileKind::ALL
        .into_iter()
        .map(|kind| (kind, backend.list(kind).unwrap()))
        .collect()
}

/// The latest snapshot of `address` against its live tree, as (change,
/// path) pairs.
async fn live_changes(world: &World, spec: &Spec, address: &str) -> Vec<(Change, String)> {
    let repository = world.repositories[0].repository.as_ref().unwrap();
    let snapshot = repository.snapshots().unwrap().remove(0);
    let live = LiveRead {
        spec,
        engines: &world.engines,
        access: VolumeAccess::Auto,
    };
    let address = Address::parse(address).unwrap();
    let differences = live.diff(repository, &snapshot, &address).await.unwrap();
    differences
        .into_iter()
        .map(|d| (d.change, d.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_volume_is_compared_with_its_snapshot_without_writing_to_the_repository() {
    let backend = Arc::new(MemoryBackend::default());
    let mut world = World::on_backends(&[("main", backend.clone())]);
    let mut data = volume("data");
    data.exclude = crate::repo::ExcludeRules {
        exclude: vec!["cache/**".into()],
        exclude_if_present: Vec::new(),
    };
    let spec = Spec {
        volumes: vec![data],
        ..Spec::default()
    };
    let before: &[(&str, &[u8])] = &[
        ("cache/a", b"cached"),
        ("keep", b"same"),
        ("edit", b"one"),
        ("gone", b"bye"),
    ];
    world.engine.add_volume("app_data", before);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    // Changed live: one added, one removed, one edited, and a new file
    // where the snapshot's excludes leave it out.
    let after: &[(&str, &[u8])] = &[
        ("cache/a", b"cached"),
        ("cache/b", b"new, but excluded"),
        ("keep", b"same"),
        ("edit", b"two"),
        ("new", b"hello"),
    ];
    world.engine.add_volume("app_data", after);
    // A service using the volume, running: diff never stops it.
    world.engine.add_user("app", "app_data", true);

    let stored_before = stored(&backend);
    let listed = live_changes(&world, &spec, "volume.data").await;
    assert_eq!(
        listed,
        [
            (Change::Modified, "edit".to_string()),
            (Change::Removed, "gone".to_string()),
            (Change::Added, "new".to_string()),
        ]
    );
    assert_eq!(
        stored(&backend),
        stored_before,
        "the repository is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_is_compared_through_the_engines_export_of_its_directory() {
    let mut world = World::new(&["main"]);
    // Not on this host: only the engine's archive API reaches it.
    let live = std::path::Path::new("/srv/lifeboat-diff-test/conf");
    world
        .engine
        .add_directory(live, &[("nginx.conf", b"server {}"), ("old.conf", b"x")]);
    let spec = Spec {
        binds: vec![crate::spec::BindSpec::new("conf", live)],
        ..Spec::default()
    };
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    world
        .engine
        .add_directory(live, &[("nginx.conf", b"server { listen 81; }")]);

    let listed = live_changes(&world, &spec, "bind.conf").await;
    assert_eq!(
        listed,
        [
            (Change::Modified, "nginx.conf".to_string()),
            (Change::Removed, "old.conf".to_string())
        ]
    );
}
