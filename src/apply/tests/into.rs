//! Restores into other names on the in-memory engine: the mapped objects
//! are created with the snapshot's content, the live ones are never
//! touched, and a mapped name that exists is refused before anything is
//! written.

use super::*;

fn mapping(spec: &Spec, names: &[(&str, &str)], suffix: Option<&str>) -> plan::RestoreMapping {
    let request = plan::IntoRequest {
        names: names
            .iter()
            .map(|(address, name)| (Address::parse(address).unwrap(), name.to_string()))
            .collect(),
        suffix: suffix.map(str::to_string),
        network: None,
    };
    plan::RestoreMapping::resolve(spec, &spec.addresses(), &request).unwrap()
}

fn change<'p>(plan: &'p Plan, address: &str) -> &'p plan::ResourceChange {
    plan.changes
        .iter()
        .find(|c| c.address.to_string() == address)
        .unwrap_or_else(|| panic!("no {address} in {plan:?}"))
}

/// The `!` change of `address` in `plan`, and its problem's message.
fn refused<'p>(plan: &'p Plan, address: &str) -> &'p str {
    let refused = change(plan, address);
    assert_eq!(refused.action, Action::Problem, "{refused:?}");
    match &refused.reasons[0] {
        plan::Reason::Problem { message, .. } => message,
        other => panic!("{other:?}"),
    }
}

/// A service `web` (container `shop-web`) using volume `data` (`app_data`)
/// read-write, publishing a port, labelled by Compose, backed up.
async fn backed_up_stack() -> (World, Spec) {
    let mut world = World::new(&["main"]);
    world.engine.add_network(crate::engine::NetworkConfig {
        name: "shop-net".into(),
        ..Default::default()
    });
    world
        .engine
        .add_volume("app_data", &[("db.txt", b"snapshot rows")]);
    let mut web = web_container();
    web.mounts.push(crate::engine::MountConfig {
        kind: crate::engine::MountKind::Volume,
        source: "app_data".into(),
        target: "/data".into(),
        read_only: false,
        options: String::new(),
    });
    web.ports.push(crate::engine::PortConfig {
        container_port: "80/tcp".into(),
        host_ip: String::new(),
        host_port: "8080".into(),
    });
    web.labels
        .insert("com.docker.compose.project".into(), "shop".into());
    world.engine.add_container(web, true);
    let mut spec = service_spec(&[]);
    spec.volumes.push(volume("data"));
    spec.services[0].volumes = vec!["data".into()];
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    (world, spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_restores_into_a_new_name_while_the_live_one_stays_in_use_untouched() {
    let (mut world, spec) = backed_up_stack().await;
    let live_before = world.engine.files("app_data").unwrap();
    let into = mapping(&spec, &[("volume.data", "data_copy")], None);
    let plan = world.restore_plan_into(&spec, &into).await;
    let volume = change(&plan, "volume.data");
    assert_eq!(volume.action, Action::Restore, "{plan:?}");
    assert_eq!(volume.into.as_ref().unwrap().name, "data_copy");
    assert_eq!(
        volume.reasons,
        [plan::Reason::CreateTarget {
            what: "Docker volume data_copy".into()
        }]
    );
    // The service has no new name: its live container is left alone.
    let service = change(&plan, "service.web");
    assert_eq!(service.action, Action::UpToDate);
    assert!(matches!(service.reasons[0], plan::Reason::NotMapped { .. }));

    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(world.engine.files("data_copy").unwrap(), live_before);
    assert_eq!(world.engine.files("app_data").unwrap(), live_before);
    assert!(world.running("shop-web").await.0, "the live user runs on");
    assert!(
        world.engine.container_log().is_empty(),
        "nothing live was stopped: {:?}",
        world.engine.container_log()
    );
    // No safety snapshot of anything live, and no measurement of a
    // restore of the live volume.
    let snapshots = world.repositories[0]
        .repository
        .as_ref()
        .unwrap()
        .snapshots()
        .unwrap();
    assert_eq!(snapshots.len(), 2, "the backup's only");
    let state = last_applied_state(&world.repositories).unwrap();
    assert!(state.is_none_or(|s| s.restores.is_empty() && s.stack.is_none()));
    assert!(
        !world.state.path().join("restoring").exists()
            || std::fs::read_dir(world.state.path().join("restoring"))
                .unwrap()
                .count()
                == 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_name_that_exists_is_refused_and_nothing_is_written() {
    let (mut world, spec) = backed_up_stack().await;
    world
        .engine
        .add_volume("data_copy", &[("mine.txt", b"keep me")]);
    let into = mapping(&spec, &[("volume.data", "data_copy")], None);
    let plan = world.restore_plan_into(&spec, &into).await;
    let message = refused(&plan, "volume.data");
    assert!(
        message.contains("Docker volume data_copy already exists")
            && message.contains("docker volume rm data_copy"),
        "{message}"
    );
    let exports = world.engine.exports();
    let report = world.apply(&spec, &plan).await;
    assert_eq!(report.failed(), 1);
    assert!(matches!(
        report.changes[0].status,
        Status::Failed {
            class: crate::failure::FailureClass::Refused,
            ..
        }
    ));
    let kept: BTreeMap<String, Vec<u8>> = [("mine.txt".to_string(), b"keep me".to_vec())].into();
    assert_eq!(world.engine.files("data_copy").unwrap(), kept);
    assert_eq!(world.engine.exports(), exports, "nothing was read either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_restores_beside_the_live_one_on_an_isolated_network_without_ports() {
    let (mut world, spec) = backed_up_stack().await;
    let live_config = world.engine.container_config("shop-web").await.unwrap();
    let into = mapping(&spec, &[], Some("_clone"));
    assert_eq!(into.network, "lifeboat_clone");
    let plan = world.restore_plan_into(&spec, &into).await;
    let service = change(&plan, "service.web");
    assert_eq!(service.action, Action::Restore, "{plan:?}");
    let service_into = service.into.as_ref().unwrap();
    assert_eq!(service_into.name, "shop-web_clone");
    assert_eq!(
        service_into.mounts,
        [("app_data".to_string(), "app_data_clone".to_string())].into()
    );
    assert_eq!(service_into.network.as_deref(), Some("lifeboat_clone"));

    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    let network = world
        .engine
        .network("lifeboat_clone")
        .await
        .unwrap()
        .unwrap();
    assert!(network.internal);
    let clone = world
        .engine
        .container_config("shop-web_clone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(clone.network_mode, "lifeboat_clone");
    assert_eq!(clone.networks.len(), 1);
    assert_eq!(
        clone.networks[0].aliases,
        ["web"],
        "found by its usual name"
    );
    assert!(clone.ports.is_empty());
    assert_eq!(clone.image, "sha256:abc", "the image it ran, by id");
    assert_eq!(clone.mounts[0].source, "app_data_clone");
    assert!(!clone.labels.contains_key("com.docker.compose.project"));
    assert!(world.running("shop-web_clone").await.0);
    assert_eq!(
        world.engine.files("app_data_clone").unwrap(),
        world.engine.files("app_data").unwrap()
    );
    // The live container is the one it was, running.
    assert_eq!(
        world.engine.container_config("shop-web").await.unwrap(),
        live_config
    );
    assert!(world.running("shop-web").await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_that_would_mount_live_data_or_join_a_live_network_is_refused() {
    let (world, spec) = backed_up_stack().await;
    let into = mapping(&spec, &[("service.web", "web_drill")], None);
    let plan = world.restore_plan_into(&spec, &into).await;
    let message = refused(&plan, "service.web");
    assert!(
        message.contains("app_data read-write") && message.contains("--into-suffix"),
        "{message}"
    );
    assert!(!world.engine.has_network("lifeboat_web_drill"));

    // Nor may it join the live service's network.
    let request = plan::IntoRequest {
        suffix: Some("_clone".into()),
        network: Some("shop-net".into()),
        ..plan::IntoRequest::default()
    };
    let into = plan::RestoreMapping::resolve(&spec, &spec.addresses(), &request).unwrap();
    let plan = world.restore_plan_into(&spec, &into).await;
    let message = refused(&plan, "service.web");
    assert!(
        message.contains("network shop-net is one the live service"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_loads_into_the_scratch_server_named_and_never_into_the_live_one() {
    let mut world = World::new(&["main"]);
    let (spec, data) = world.dumping();
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    assert!(world.apply(&spec, &plan).await.is_complete());

    // Not there yet: a scratch server is one that runs.
    let into = mapping(&spec, &[("dump.sql", "scratch-pg")], None);
    let missing = world.restore_plan_into(&spec, &into).await;
    let message = refused(&missing, "dump.sql");
    assert!(
        message.contains("scratch server scratch-pg named with --into is not a running"),
        "{message}"
    );

    world.engine.add_user("scratch-pg", "scratch", true);
    let plan = world.restore_plan_into(&spec, &into).await;
    let dump = change(&plan, "dump.sql");
    assert_eq!(dump.action, Action::Restore, "{plan:?}");
    assert!(matches!(
        dump.reasons[0],
        plan::Reason::LoadDump {
            into: plan::DumpInto::ScratchServer,
            ..
        }
    ));
    assert_eq!(change(&plan, "service.db").action, Action::UpToDate);
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(world.engine.stdin_read("scratch-pg", "psql").unwrap(), data);
    assert_eq!(
        world.engine.stdin_read("db", "psql"),
        None,
        "the live server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_restores_into_a_new_one_and_a_non_empty_one_is_refused() {
    let mut world = World::new(&["main"]);
    let live = std::path::Path::new("/srv/shop/conf");
    world
        .engine
        .add_directory(live, &[("nginx.conf", b"server {}")]);
    let spec = Spec {
        binds: vec![crate::spec::BindSpec::new("conf", live)],
        ..Spec::default()
    };
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let into = mapping(&spec, &[], Some("_drill"));
    let plan = world.restore_plan_into(&spec, &into).await;
    assert_eq!(
        change(&plan, "bind.conf").into.as_ref().unwrap().name,
        "/srv/shop/conf_drill"
    );
    assert!(world.apply(&spec, &plan).await.is_complete());
    let copy = std::path::Path::new("/srv/shop/conf_drill");
    assert_eq!(
        world.engine.directory_files(copy),
        world.engine.directory_files(live)
    );
    let again = world.restore_plan_into(&spec, &into).await;
    let message = refused(&again, "bind.conf");
    assert!(
        message.contains("/srv/shop/conf_drill is not empty"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_under_a_mapping_moves_no_live_tag_and_gets_only_the_tag_named() {
    use crate::engine::Images;
    let mut world = World::new(&["main"]);
    let (archive, id) = image_archive(&[5u8; 50_000], "shop/app:1", "amd64");
    world.engine.add_image_archive(archive).unwrap();
    let spec = image_spec("shop/app:1");
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    // The live tag moves on to a rebuild, and the backed-up image is gone.
    let (rebuilt, rebuilt_id) = image_archive(&[6u8; 50_000], "shop/app:1", "amd64");
    world.engine.add_image_archive(rebuilt).unwrap();
    world.engine.remove_image(&id);

    // Not named: loaded by id, the live tag left where it is.
    let into = mapping(&spec, &[], Some("_clone"));
    let plan = world.restore_plan_into(&spec, &into).await;
    let image = change(&plan, "image.app");
    assert_eq!(image.action, Action::Restore, "{plan:?}");
    assert_eq!(image.into.as_ref().unwrap().name, "");
    assert!(world.apply(&spec, &plan).await.is_complete());
    assert!(world.engine.image(&id).await.unwrap().is_some());
    let live = world.engine.image("shop/app:1").await.unwrap().unwrap();
    assert_eq!(live.id, rebuilt_id);

    // Named: tagged so, the live tag still left alone.
    world.engine.remove_image(&id);
    let into = mapping(&spec, &[("image.app", "shop/app:drill")], None);
    let plan = world.restore_plan_into(&spec, &into).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let drill = world.engine.image("shop/app:drill").await.unwrap().unwrap();
    assert_eq!(drill.id, id);
    let live = world.engine.image("shop/app:1").await.unwrap().unwrap();
    assert_eq!(live.id, rebuilt_id);

    // A name that points at another image is not moved.
    let (other, _) = image_archive(&[7u8; 50_000], "shop/app:other", "amd64");
    world.engine.add_image_archive(other).unwrap();
    let into = mapping(&spec, &[("image.app", "shop/app:other")], None);
    let plan = world.restore_plan_into(&spec, &into).await;
    let message = refused(&plan, "image.app");
    assert!(message.contains("already names another image"), "{message}");
}

/// A live PostgreSQL-like server `db` (image `shop/pg:16`, a password in
/// its environment, its data on volume `pgdata`) whose dump `sql` is
/// backed up, and the drill's mapping (suffix `-drill-r1`, a scratch
/// server per dump).
async fn drilled_dump(
    start_timeout: Option<std::time::Duration>,
) -> (World, Spec, plan::RestoreMapping) {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("pgdata", &[("PG_VERSION", b"16")]);
    let mut db = web_container();
    db.name = "db".into();
    db.image = "shop/pg:16".into();
    db.image_id = "sha256:pg16".into();
    db.mounts.push(crate::engine::MountConfig {
        kind: crate::engine::MountKind::Volume,
        source: "pgdata".into(),
        target: "/var/lib/postgresql/data".into(),
        read_only: false,
        options: String::new(),
    });
    db.ports.push(crate::engine::PortConfig {
        container_port: "5432/tcp".into(),
        host_ip: String::new(),
        host_port: "5432".into(),
    });
    world.engine.add_container(db, true);
    world
        .engine
        .script_stream("db", "pg_dumpall", &dump_data(), "", 0);
    let mut spec = dump_spec(&[], &["psql"]);
    spec.services[0].verify = vec!["psql".into(), "-tAc".into(), "select 1".into()];
    spec.services[0].start_timeout = start_timeout;
    let plan = world.kind_plan(&spec, ResourceKind::Dump).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    let mut into = mapping(&spec, &[], Some("-drill-r1"));
    into.dump_servers = Some("-drill-r1".into());
    (world, spec, into)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_loads_a_dump_into_a_scratch_server_of_its_own_from_the_live_image() {
    let (mut world, spec, into) = drilled_dump(None).await;
    let mut plan = world.restore_plan_into(&spec, &into).await;
    // Only the dump was backed up.
    plan.changes.retain(|c| c.kind() == ResourceKind::Dump);
    let dump = change(&plan, "dump.sql");
    assert_eq!(dump.action, Action::Restore, "{plan:?}");
    assert_eq!(
        dump.reasons[0],
        plan::Reason::LoadDump {
            what: "scratch server db-sql-drill-r1".into(),
            into: plan::DumpInto::DrillServer {
                image: "shop/pg:16".into()
            },
        }
    );
    let plan::Detail::DumpServer(server) = &dump.detail else {
        panic!("{:?}", dump.detail);
    };
    assert_eq!(server.image_id, "sha256:pg16");
    assert_eq!(
        server.volumes,
        [plan::ScratchVolume {
            name: "pgdata-sql-drill-r1".into(),
            target: "/var/lib/postgresql/data".into(),
        }]
    );
    assert!(dump.depends_on.is_empty(), "it waits for nothing restored");
    // The journal names the server and its volume before anything exists.
    let scratch = crate::apply::drill::Scratch::of_plan(&plan, "r1").unwrap();
    let objects = &scratch.engines["default"];
    assert!(objects.containers.contains(&"db-sql-drill-r1".to_string()));
    assert_eq!(objects.volumes, ["pgdata-sql-drill-r1"]);
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");

    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        world.engine.stdin_read("db-sql-drill-r1", "psql").unwrap(),
        dump_data()
    );
    assert_eq!(
        world.engine.stdin_read("db", "psql"),
        None,
        "the live server"
    );
    let config = world
        .engine
        .container_config("db-sql-drill-r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(config.image, "sha256:pg16");
    assert!(
        config
            .env
            .contains(&"DB_PASSWORD=hunter2-secret".to_string())
    );
    assert!(config.ports.is_empty());
    assert_eq!(config.network_mode, into.network);
    assert_eq!(config.mounts[0].source, "pgdata-sql-drill-r1");
    assert!(world.running("db-sql-drill-r1").await.0);
    assert!(world.running("db").await.0, "the live server runs on");
    assert_eq!(
        world.engine.files("pgdata").unwrap()["PG_VERSION"],
        b"16",
        "the live volume is untouched"
    );
    let verified = crate::apply::kinds::verify_loaded_dump_server(
        &spec,
        world.engine.as_ref(),
        &spec.services[0],
        "db-sql-drill-r1",
    )
    .await;
    assert!(verified.is_ok(), "{verified:?}");

    // Killed now: the journal written before the drill names what the
    // next drill (or `recover`) removes.
    scratch.write_journal(world.state.path()).unwrap();
    let cleanup =
        crate::apply::drill::remove_drill_leftovers(world.state.path(), &world.engines).await;
    assert_eq!(
        cleanup.removed,
        [
            "container db-sql-drill-r1".to_string(),
            "volume pgdata-sql-drill-r1".to_string(),
            format!("network {}", into.network),
        ]
    );
    assert!(world.engine.volume("pgdata").await.unwrap().is_some());
    assert!(world.running("db").await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_server_that_never_accepts_the_restore_command_fails_the_load_in_time() {
    let timeout = std::time::Duration::from_secs(1);
    let (mut world, spec, into) = drilled_dump(Some(timeout)).await;
    world.engine.script_stream(
        "db-sql-drill-r1",
        "psql",
        b"",
        "psql: error: connection refused (password hunter2-secret)",
        2,
    );
    let mut plan = world.restore_plan_into(&spec, &into).await;
    plan.changes.retain(|c| c.kind() == ResourceKind::Dump);
    let started = std::time::Instant::now();
    let report = world.apply(&spec, &plan).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let outcome = &report.changes[0];
    let plan_dump = change(&plan, "dump.sql");
    assert_eq!(outcome.address, plan_dump.address);
    let Status::Failed { class, error } = &outcome.status else {
        panic!("{outcome:?}");
    };
    assert_eq!(*class, crate::failure::FailureClass::CommandFailed);
    assert!(
        error.contains("scratch server db-sql-drill-r1 did not accept `psql` within 1s"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}
