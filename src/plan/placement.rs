//! The 3-2-1 rule held against the spec: a policy with an `rpo` promises
//! that its data survives, which takes at least two copies, one of them
//! off the host. Pure: where each repository lives (on this host or not)
//! is observed by the caller (`apply::placement`).

use super::Warning;
use crate::spec::Spec;
use std::collections::BTreeMap;

/// The warnings for each policy with an `rpo` whose copies (every
/// repository of `repositories` when it names none) number fewer than
/// two, or are all on this host (`on_host`: repository name → whether it
/// is; a repository it does not name counts as on the host).
pub fn copies_warnings(
    spec: &Spec,
    repositories: &[String],
    on_host: &BTreeMap<String, bool>,
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for policy in spec.policies.iter().filter(|p| p.rpo.is_some()) {
        let copies = if policy.copies.is_empty() {
            repositories.to_vec()
        } else {
            policy.copies.clone()
        };
        let at = policy.span.to_string();
        if copies.len() < 2 {
            warnings.push(Warning::FewerThanTwoCopies {
                policy: policy.name.clone(),
                repositories: copies.clone(),
                at: at.clone(),
            });
        }
        if copies
            .iter()
            .all(|name| on_host.get(name).copied().unwrap_or(true))
        {
            warnings.push(Warning::NoCopyOffHost {
                policy: policy.name.clone(),
                repositories: copies,
                at,
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PolicySpec, Retention, Span};
    use std::time::Duration;

    fn policy(name: &str, rpo: Option<u64>, copies: &[&str]) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            rpo: rpo.map(Duration::from_secs),
            rto: None,
            retention: Retention::default(),
            copies: copies.iter().map(|c| c.to_string()).collect(),
            drill_every: None,
            span: Span::default(),
        }
    }

    fn warned(policies: Vec<PolicySpec>, on_host: &[(&str, bool)]) -> Vec<Warning> {
        let spec = Spec {
            policies,
            ..Spec::default()
        };
        let repositories: Vec<String> = on_host.iter().map(|(n, _)| n.to_string()).collect();
        let on_host = on_host.iter().map(|(n, h)| (n.to_string(), *h)).collect();
        copies_warnings(&spec, &repositories, &on_host)
    }

    #[test]
    fn one_copy_or_none_off_the_host_is_warned_of_for_policies_with_an_rpo() {
        let at = Span::default().to_string();
        // One repository, on the host: both warnings.
        assert_eq!(
            warned(vec![policy("p", Some(3600), &[])], &[("main", true)]),
            [
                Warning::FewerThanTwoCopies {
                    policy: "p".into(),
                    repositories: vec!["main".into()],
                    at: at.clone()
                },
                Warning::NoCopyOffHost {
                    policy: "p".into(),
                    repositories: vec!["main".into()],
                    at: at.clone()
                }
            ]
        );
        // Two, both on the host; then copies naming only the off-host one.
        let both = [("main", true), ("usb", true)];
        assert!(matches!(
            &warned(vec![policy("p", Some(3600), &[])], &both)[..],
            [Warning::NoCopyOffHost { .. }]
        ));
        let mixed = [("main", true), ("offsite", false)];
        assert!(matches!(
            &warned(vec![policy("p", Some(3600), &["offsite"])], &mixed)[..],
            [Warning::FewerThanTwoCopies { repositories, .. }] if repositories == &["offsite"]
        ));
    }

    #[test]
    fn two_copies_one_off_the_host_or_no_rpo_warn_of_nothing() {
        let mixed = [("main", true), ("offsite", false)];
        assert_eq!(warned(vec![policy("p", Some(3600), &[])], &mixed), []);
        assert_eq!(
            warned(vec![policy("p", Some(3600), &["main", "offsite"])], &mixed),
            []
        );
        assert_eq!(warned(vec![policy("p", None, &["main"])], &mixed), []);
    }
}
