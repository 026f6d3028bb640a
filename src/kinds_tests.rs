//! Every kind is known to every registry of kinds. The `match`es over
//! `ResourceKind`, `Resource` and `plan::Detail` are exhaustive, so the
//! compiler stops a new kind at each of them; the registries that cannot be
//! a `match` (the block schema and builder, the spec's lists, the graph,
//! address parsing and its JSON schema) are walked here for every kind of
//! [`ResourceKind::ALL`]. Adding a kind means adding its block below.
//!
//! Adding a resource kind, in order (the compiler or this test stops each
//! step left out): its variant in `ResourceKind` and `ResourceKind::ALL`,
//! its spec struct, `Resource` variant and list in `Spec` (with
//! `Spec::resources`), its block in `spec::schema` and `spec::build`, its
//! node in `graph`, its arms in the exhaustive matches (`plan::backs_up`,
//! `plan::holds_secrets`, the source attribute, consistency, restore
//! targets and names into other names), its handler file in
//! `apply/kinds/` with its line in `apply::kinds::handler`, and the
//! `Address` JSON schema pattern.

use crate::graph::Graph;
use crate::spec::{Address, ResourceKind, VarInputs, load_sources};

/// One block of every kind, each valid.
const EVERY_KIND: &str = r#"
repository "main" {
  path = "/var/backups/lifeboat-kinds-test"
  encryption { none = true }
}
policy "hourly" { rpo = "1h" }
image "app" { ref = "lifeboat-test/busybox:1" }
volume "data" {
  name   = "kinds_data"
  policy = policy.hourly
}
bind "conf" { path = "/srv/kinds/conf" }
service "db" {
  container = "kinds-db-1"
  image     = image.app
  volumes   = [volume.data]
}
dump "all" {
  service = service.db
  command = ["true"]
}
"#;

/// Stops compiling when a kind is added, to say: list it in
/// [`ResourceKind::ALL`] (which the registries below walk) and give
/// [`EVERY_KIND`] a block of it.
fn listed_in_all(kind: ResourceKind) -> bool {
    match kind {
        ResourceKind::Image
        | ResourceKind::Volume
        | ResourceKind::Bind
        | ResourceKind::Service
        | ResourceKind::Dump
        | ResourceKind::Policy
        | ResourceKind::Repository => ResourceKind::ALL.contains(&kind),
    }
}

#[test]
fn every_kind_is_known_to_every_registry() {
    let dir = tempfile::tempdir().unwrap();
    let spec = load_sources(
        dir.path(),
        vec![(dir.path().join("main.hcl"), EVERY_KIND.as_bytes().to_vec())],
        &VarInputs::default(),
    )
    .unwrap_or_else(|d| panic!("{}", d.render(false)));
    let graph = Graph::build(&spec).unwrap_or_else(|d| panic!("{}", d.render(false)));
    let addresses = spec.addresses();
    let backup_order = graph.backup_order();
    let restore_order = graph.restore_order();
    let address_schema = serde_json::to_string(&schemars::schema_for!(Address)).unwrap();
    for kind in ResourceKind::ALL {
        assert!(listed_in_all(kind));
        let keyword = kind.keyword();
        let parsed = Address::parse(&format!("{keyword}.x"));
        assert_eq!(parsed, Some(Address::new(kind, "x")), "{keyword}");
        assert!(
            address_schema.contains(&format!("|{keyword}") as &str)
                || address_schema.contains(&format!("({keyword}|") as &str),
            "the JSON schema of addresses lacks {keyword}: {address_schema}"
        );
        if !kind.is_resource() {
            continue;
        }
        let address = addresses
            .iter()
            .find(|a| a.kind == kind)
            .unwrap_or_else(|| panic!("no {keyword} block parsed into the spec's addresses"));
        assert!(spec.resource(address).is_some(), "{address}");
        assert!(
            backup_order.contains(address),
            "{address} in the backup order"
        );
        assert!(
            restore_order.contains(address),
            "{address} in the restore order"
        );
        assert_eq!(
            crate::plan::backs_up(kind),
            crate::apply::kinds::handler(kind).is_some(),
            "{keyword}: plans back up exactly the kinds apply has a handler for"
        );
    }
}
