//! Progress of copies as events: by bytes, inside a large file too, with
//! the total each kind knows before reading (an estimate marked so), at a
//! bounded pace.

use super::*;

/// `len` bytes (a multiple of 2 MiB) cut into chunks of about 1 MiB, as
/// real data is: progress counts bytes read, whether they deduplicate or not.
fn data_of(len: usize) -> Vec<u8> {
    let block = dump_data();
    assert_eq!(len % block.len(), 0);
    block.repeat(len / block.len())
}

/// What the world's events say of the copies of `address`: the started
/// events' expected bytes (and whether estimated), and each progress
/// event's bytes.
fn progress_of(world: &World, address: &str) -> (Vec<(Option<u64>, bool)>, Vec<u64>) {
    let events = world.events.lock().unwrap();
    let mut started = Vec::new();
    let mut bytes = Vec::new();
    for event in events.iter() {
        match event {
            Event::ResourceStarted {
                address: a,
                expected_bytes,
                expected_is_estimate,
                ..
            } if a == address => started.push((*expected_bytes, *expected_is_estimate)),
            Event::Progress {
                address: a,
                bytes: b,
                ..
            } if a == address => bytes.push(*b),
            _ => {}
        }
    }
    (started, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_single_file_moves_in_several_steps_towards_its_total() {
    const SIZE: usize = 16 << 20;
    let mut world = World::new(&["main"]);
    world
        .engine
        .add_volume("app_data", &[("big.bin", &data_of(SIZE))]);
    let spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    // A first backup through the archive stream knows no total: bytes only.
    let (started, _) = progress_of(&world, "volume.data");
    assert_eq!(started, [(None, false)]);

    // The next backup counts to the previous snapshot's size, an estimate,
    // and moves inside the one file (paced by a twentieth of the total,
    // at least a MiB: not by time alone, not chunk by chunk).
    world.events.lock().unwrap().clear();
    let mut again = world.backup_plan(&spec).await;
    again.changes[0].action = Action::BackUp;
    assert!(world.apply(&spec, &again).await.is_complete());
    let (started, bytes) = progress_of(&world, "volume.data");
    assert_eq!(started, [(Some(SIZE as u64), true)]);
    let inside = bytes.iter().filter(|b| **b < SIZE as u64).count();
    assert!(inside >= 8, "progress inside the one file: {bytes:?}");
    assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
    assert!(bytes.iter().all(|b| *b <= SIZE as u64), "{bytes:?}");
    assert!(bytes.len() <= 2 * (SIZE >> 20), "{bytes:?}");

    // A restore counts to the snapshot's size, exactly.
    world.events.lock().unwrap().clear();
    world.engine.remove_volume("app_data").await.unwrap();
    let restore = world.restore_plan(&spec).await;
    assert!(world.apply(&spec, &restore).await.is_complete());
    let (started, bytes) = progress_of(&world, "volume.data");
    assert_eq!(started, [(Some(SIZE as u64), false)]);
    let inside = bytes.iter().filter(|b| **b < SIZE as u64).count();
    assert!(
        inside >= 8,
        "restore progress inside the one file: {bytes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_counts_its_archive_to_the_engines_size_of_it() {
    const LAYER: usize = 12 << 20;
    let mut world = World::new(&["main"]);
    let (archive, _) = image_archive(&data_of(LAYER), "shop/app:1", "amd64");
    let archive_size = archive.len() as u64;
    world.engine.add_image_archive(archive).unwrap();
    let spec = image_spec("shop/app:1");
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let (started, bytes) = progress_of(&world, "image.app");
    // The engine's size of an image is close to its archive's, not exact.
    assert_eq!(started, [(Some(archive_size), true)]);
    assert!(bytes.len() >= 4, "{bytes:?}");
    assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
    assert!(bytes.iter().all(|b| *b <= archive_size), "{bytes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_dump_has_no_total_and_the_next_one_estimates_it() {
    let mut world = World::new(&["main"]);
    let (spec, data) = world.dumping();
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let (started, _) = progress_of(&world, "dump.sql");
    assert_eq!(started, [(None, false)]);
    world.events.lock().unwrap().clear();
    let mut again = world.kind_plan(&spec, ResourceKind::Dump).await;
    again.changes[0].action = Action::BackUp;
    assert!(world.apply(&spec, &again).await.is_complete());
    let (started, _) = progress_of(&world, "dump.sql");
    assert_eq!(started, [(Some(data.len() as u64), true)]);
}
