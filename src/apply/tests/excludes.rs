//! Excludes through the apply loop on the in-memory engine (the archive
//! path): a backup records and applies the spec's rules, and the safety
//! snapshot a replacing restore takes first leaves out nothing.

use super::*;

fn excluding_spec() -> Spec {
    let mut data = volume("data");
    data.exclude = crate::repo::ExcludeRules {
        exclude: vec!["cache/**".into(), "*.tmp".into()],
        exclude_if_present: Vec::new(),
    };
    Spec {
        volumes: vec![data],
        ..Spec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_records_its_excludes_and_a_replaces_safety_snapshot_leaves_out_nothing() {
    let mut world = World::new(&["main"]);
    let files: &[(&str, &[u8])] = &[("cache/a", b"cached"), ("x.tmp", b"tmp"), ("keep", b"k")];
    world.engine.add_volume("app_data", files);
    let spec = excluding_spec();
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    let repository = world.repositories[0].repository.as_ref().unwrap();
    let snapshots = repository.snapshots().unwrap();
    assert_eq!(snapshots[0].source.excludes, spec.volumes[0].exclude);
    assert_eq!(snapshots[0].summary.files, 1, "only keep");
    assert_eq!(
        world.backup_plan(&spec).await.changes[0].action,
        Action::UpToDate
    );

    let restore = world
        .kind_restore_plan_replacing(&spec, ResourceKind::Volume)
        .await;
    let report = world.apply(&spec, &restore).await;
    assert!(report.is_complete(), "{report:?}");
    let restored = world.engine.files("app_data").unwrap();
    assert_eq!(restored.keys().collect::<Vec<_>>(), ["keep"]);
    let repository = world.repositories[0].repository.as_ref().unwrap();
    let safety = repository
        .snapshots()
        .unwrap()
        .into_iter()
        .find(|s| s.source.tags.iter().any(|t| t == PRE_RESTORE_TAG))
        .expect("a safety snapshot");
    assert!(safety.source.excludes.is_empty());
    assert_eq!(safety.summary.files, 3, "the excluded files too");
}
