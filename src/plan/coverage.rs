//! What this version of lifeboat acts on. The spec accepts every block of
//! the language; until a kind has a handler in `apply`, plans and
//! `validate` say so for each such block and attribute rather than
//! silently ignoring it. One place to change when a kind arrives.

use super::Warning;
use crate::spec::{ResourceKind, Spec};

/// Kinds whose backups and restores this version performs.
pub fn backs_up(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::Volume
            | ResourceKind::Bind
            | ResourceKind::Image
            | ResourceKind::Service
            | ResourceKind::Dump
    )
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
    warnings
}
