//! What this version of lifeboat acts on. The spec accepts every block of
//! the language; until a kind has a handler in `apply`, plans and
//! `validate` say so for each such block and attribute rather than
//! silently ignoring it. One place to change when a kind arrives.

use super::Warning;
use crate::spec::{ResourceKind, Spec};

/// Kinds whose backups and restores this version performs.
pub fn backs_up(kind: ResourceKind) -> bool {
    match kind {
        ResourceKind::Volume
        | ResourceKind::Bind
        | ResourceKind::Image
        | ResourceKind::Service
        | ResourceKind::Dump => true,
        ResourceKind::Policy | ResourceKind::Repository => false,
    }
}

/// Kinds whose snapshots hold secrets as a rule: a service's configuration
/// (environment values, often passwords), a dump (a database's content).
pub fn holds_secrets(kind: ResourceKind) -> bool {
    match kind {
        ResourceKind::Service | ResourceKind::Dump => true,
        ResourceKind::Volume
        | ResourceKind::Bind
        | ResourceKind::Image
        | ResourceKind::Policy
        | ResourceKind::Repository => false,
    }
}

/// Every block and attribute of `spec` this version accepts but does not act on.
pub fn not_acted_on(spec: &Spec) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut block = |kind: ResourceKind, name: &str, at: String| {
        if !backs_up(kind) {
            warnings.push(Warning::NotActedOn {
                address: format!("{}.{name}", kind.keyword()),
                attribute: None,
                at,
            });
        }
    };
    for dump in &spec.dumps {
        block(ResourceKind::Dump, &dump.name, dump.span.to_string());
    }
    warnings.extend(plaintext_secrets(spec));
    warnings
}

/// Plaintext repositories that would receive services' configurations
/// (environment values, often passwords) or dumps (a database's content):
/// legal, but worth saying wherever the spec is checked.
fn plaintext_secrets(spec: &Spec) -> Vec<Warning> {
    let holding_secrets: Vec<crate::spec::Address> = spec
        .addresses()
        .into_iter()
        .filter(|a| holds_secrets(a.kind))
        .collect();
    spec.repositories
        .iter()
        .filter(|r| r.encryption == crate::spec::Encryption::None)
        .filter_map(|repository| {
            let resources: Vec<String> = holding_secrets
                .iter()
                .filter(|a| match spec.policy_of(a) {
                    Some(policy) if !policy.copies.is_empty() => {
                        policy.copies.contains(&repository.name)
                    }
                    _ => true,
                })
                .map(|a| a.to_string())
                .collect();
            (!resources.is_empty()).then(|| Warning::PlaintextSecrets {
                repository: repository.name.clone(),
                resources,
                at: repository.span.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plaintext_repository_receiving_services_or_dumps_is_warned_of() {
        let text = "repository \"clear\" {\n  path = \"/tmp/x\"\n  encryption { none = true }\n}\n\
                    repository \"sealed\" {\n  path = \"/tmp/y\"\n  encryption { passphrase_env = \"P\" }\n}\n\
                    service \"db\" {\n  container = \"db\"\n}\n\
                    volume \"data\" {\n  name = \"data\"\n}\n";
        let spec = crate::spec::load_sources(
            std::path::Path::new("."),
            vec![("main.hcl".into(), text.as_bytes().to_vec())],
            &Default::default(),
        )
        .unwrap();
        let warnings = not_acted_on(&spec);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(matches!(
            &warnings[0],
            Warning::PlaintextSecrets { repository, resources, at }
                if repository == "clear" && resources == &["service.db"] && at.contains("main.hcl:1")
        ));
    }
}
