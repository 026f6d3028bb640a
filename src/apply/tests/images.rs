//! Images due together: one export of all of them, each image its own
//! snapshot and outcome; an export together that fails falls back to one
//! export per image, and only the image that cannot be read fails.

use super::*;
use crate::engine::Images;

fn images_spec(images: &[(&str, &str)]) -> Spec {
    Spec {
        images: images
            .iter()
            .map(|(name, reference)| crate::spec::ImageSpec {
                name: name.to_string(),
                reference: reference.to_string(),
                engine: None,
                policy: None,
                base: None,
                span: Span::default(),
            })
            .collect(),
        ..Spec::default()
    }
}

/// A world whose engine has a base image, an image built on it and one
/// alone; returns their ids (in that order) and the spec naming them.
fn three_images(world: &World) -> (Vec<String>, Spec) {
    three_images_saved_by(world, crate::repo::image_save_archive)
}

/// Writes a `docker save` archive of images (layers, tag) in one layout;
/// returns it and the images' ids.
type SaveArchive = fn(&[(&[&[u8]], &str)]) -> (Vec<u8>, Vec<String>);

/// [`three_images`] as an engine whose exports are written by `save` (a
/// layout) gives them.
fn three_images_saved_by(world: &World, save: SaveArchive) -> (Vec<String>, Spec) {
    let base = crate::repo::incompressible(1 << 20, 1);
    let api = crate::repo::incompressible(64 << 10, 2);
    let images: [(&[&[u8]], &str); 3] = [
        (&[&base], "shop/base:1"),
        (&[&base, &api], "shop/api:1"),
        (&[b"other"], "shop/other:1"),
    ];
    let mut ids = Vec::new();
    for image in images {
        let (archive, mut id) = save(&[image]);
        world.engine.add_image_archive(archive).unwrap();
        ids.push(id.remove(0));
    }
    let spec = images_spec(&[
        ("base", "shop/base:1"),
        ("api", "shop/api:1"),
        ("other", "shop/other:1"),
    ]);
    (ids, spec)
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_due_together_are_exported_in_one_request_each_with_its_own_snapshot() {
    let world = World::new(&["main"]);
    let (ids, spec) = three_images(&world);
    backed_up_together_and_restored_with_their_ids(world, ids, spec).await;
}

/// Docker 25 and later export in the OCI layout: read the same way, each
/// image restored with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_an_engine_exports_in_the_oci_layout_are_backed_up_and_restored_with_their_ids() {
    let world = World::new(&["main"]);
    let (ids, spec) = three_images_saved_by(&world, crate::repo::image_oci_save_archive);
    backed_up_together_and_restored_with_their_ids(world, ids, spec).await;
}

async fn backed_up_together_and_restored_with_their_ids(
    mut world: World,
    ids: Vec<String>,
    spec: Spec,
) {
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    let exports = world.engine.image_exports();
    assert_eq!(exports.len(), 1, "{exports:?}");
    assert_eq!(sorted(exports[0].clone()), sorted(ids.clone()));
    let repository = world.repositories[0].repository.as_ref().unwrap();
    assert_eq!(repository.snapshots().unwrap().len(), 3);
    for change in &report.changes {
        assert_eq!(change.status, Status::Succeeded, "{change:?}");
        assert!(change.copies[0].snapshot.is_some(), "{change:?}");
    }
    // The shared base layer was read once, for one image only.
    let read: u64 = report.changes.iter().map(|c| c.copies[0].read_bytes).sum();
    assert!(read < (1 << 20) + (256 << 10), "{read} bytes read");

    for id in &ids {
        world.engine.remove_image(id);
    }
    let restore = world.restore_plan(&spec).await;
    let restored = world.apply(&spec, &restore).await;
    assert!(restored.is_complete(), "{restored:?}");
    for (reference, id) in ["shop/base:1", "shop/api:1", "shop/other:1"]
        .iter()
        .zip(&ids)
    {
        let image = world.engine.image(reference).await.unwrap();
        assert_eq!(image.map(|i| i.id).as_ref(), Some(id), "{reference}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_together_falls_back_to_one_export_per_image_and_says_so() {
    let mut world = World::new(&["main"]);
    let (ids, spec) = three_images(&world);
    world.engine.fail_exports_of(&ids[2]);
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    let status = |address: &str| {
        let change = report
            .changes
            .iter()
            .find(|c| c.address.to_string() == address);
        change.map(|c| c.status.clone()).unwrap()
    };
    assert_eq!(status("image.base"), Status::Succeeded, "{report:?}");
    assert_eq!(status("image.api"), Status::Succeeded, "{report:?}");
    assert!(
        matches!(status("image.other"), Status::Failed { .. }),
        "{report:?}"
    );
    let exports = world.engine.image_exports();
    assert_eq!(exports.len(), 4, "one together, then one each: {exports:?}");
    assert!(exports[1..].iter().all(|e| e.len() == 1), "{exports:?}");
    let events = world.events.lock().unwrap();
    for address in ["image.base", "image.api", "image.other"] {
        let said = events.iter().any(|e| {
            matches!(e, Event::ResourceStep { address: a, message }
                if a == address && message.contains("exporting it alone"))
        });
        assert!(said, "{address}: {events:?}");
    }
    let failed_class = events.iter().find_map(|e| match e {
        Event::ResourceFailed { address, class, .. } if address == "image.other" => Some(*class),
        _ => None,
    });
    let repository = world.repositories[0].repository.as_ref().unwrap();
    assert_eq!(repository.snapshots().unwrap().len(), 2);
    assert!(failed_class.is_some(), "{events:?}");
}
