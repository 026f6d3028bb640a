//! Release tags on the in-memory engine: a tagged run backs up what is
//! within its rpo, its snapshots and run record carry the tags, and a
//! restore by tag takes each resource's tagged snapshot after newer ones
//! were taken, or refuses when a resource has none.

use super::*;
use crate::plan::Reason;

fn snapshot_tags(world: &World) -> BTreeMap<String, Vec<String>> {
    crate::apply::list_snapshots(&world.repositories)
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.tags))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_run_marks_every_resource_and_a_restore_by_tag_takes_those_snapshots() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_a", &[("f", b"a v1")]);
    world.engine.add_volume("app_b", &[("f", b"b v1")]);
    let spec = spec(&["a", "b"]);
    let first = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &first).await.is_complete());

    // Within the rpo: only the tag makes them due.
    assert!(!world.backup_plan(&spec).await.has_changes());
    let tags = vec!["release=v1".to_string()];
    let tagged = world.tagged_backup_plan(&spec, &tags).await;
    assert!(
        tagged
            .changes
            .iter()
            .all(|c| c.action == Action::BackUp
                && c.reasons == [Reason::Tagged { tags: tags.clone() }]),
        "{tagged:?}"
    );
    assert!(world.apply(&spec, &tagged).await.is_complete());
    let release: Vec<String> = snapshot_tags(&world)
        .into_iter()
        .filter(|(_, t)| *t == tags)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(release.len(), 2);
    assert_eq!(run_records(&world)[0].tags, tags);

    // After the release: new content, newer untagged snapshots.
    world.engine.add_volume("app_a", &[("f", b"a v2")]);
    let replace = [Address::new(ResourceKind::Volume, "a")];
    let mut later = world.backup_plan(&spec).await;
    later.changes.retain(|c| replace.contains(&c.address));
    later.changes[0].action = Action::BackUp;
    assert!(world.apply(&spec, &later).await.is_complete());

    let tag = crate::repo::Tag::parse("release=v1").unwrap();
    let restore = world
        .restore_plan_of(&spec, RestoreSelection::Tagged(tag))
        .await;
    let chosen: Vec<String> = restore
        .changes
        .iter()
        .map(|c| c.snapshot.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(chosen.len(), 2);
    assert!(chosen.iter().all(|id| release.contains(id)), "{chosen:?}");

    let unknown = crate::repo::Tag::parse("release=v9").unwrap();
    let order = spec.addresses();
    let refused = restore_observations(
        &world.engines,
        &spec,
        &order,
        &world.repositories,
        &RestoreSelection::Tagged(unknown),
    )
    .await
    .err()
    .unwrap();
    assert!(
        refused
            .to_string()
            .contains("no snapshot of volume.a, volume.b has the tag release=v9"),
        "{refused}"
    );
}
