//! The settings a reviewer cares about when they change (policy goals,
//! retention, copies; each volume's policy, consistency, excludes and Docker name), as
//! flat `attribute = value` text per resource, and their diff against the
//! settings recorded by the last apply.
//!
//! Flat text keeps the stored record independent of the spec's Rust types:
//! a newer lifeboat reads what an older one recorded, and a diff is a
//! comparison of strings.

use super::{Action, Reason, ResourceChange, format_age};
use crate::spec::{Address, Consistency, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the repositories remember between runs: the settings of the last
/// apply, and how long the last restore of each resource took (to hold
/// `rto` goals against).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    /// `None` until an apply records them (a restore alone records none).
    #[serde(default)]
    pub settings: Option<AppliedSettings>,
    #[serde(default)]
    pub restores: BTreeMap<String, RestoreMeasurement>,
    /// The last restore of the whole stack (`restore` without `--target`)
    /// that completed: the time an `rto` is really about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackRestoreMeasurement>,
    /// Each resource's last drill (from the run records of kind `drill`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drills: BTreeMap<String, DrillMeasurement>,
}

/// A resource's last drill: when it finished, whether the resource
/// passed, and the recovery time it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillMeasurement {
    pub time: chrono::DateTime<chrono::Utc>,
    pub passed: bool,
    pub rto_seconds: f64,
}

/// One measured restore: the time from start to the volume being complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreMeasurement {
    pub seconds: f64,
    pub bytes: u64,
    pub snapshot: String,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// One measured restore of the whole stack: from its first change to its
/// last, every resource restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackRestoreMeasurement {
    pub seconds: f64,
    /// The addresses restored (`<` changes that succeeded), in order.
    pub resources: Vec<String>,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// Resource address → attribute name → value, as the plan shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSettings {
    pub resources: BTreeMap<String, BTreeMap<String, String>>,
}

/// One attribute that differs from the last apply; `None` is "not set".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttributeChange {
    /// `retention.keep_daily`
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl AppliedSettings {
    pub fn of(spec: &Spec) -> AppliedSettings {
        let mut resources = BTreeMap::new();
        for policy in &spec.policies {
            let mut attributes = BTreeMap::new();
            let mut set = |name: &str, value: Option<String>| {
                if let Some(value) = value {
                    attributes.insert(name.to_string(), value);
                }
            };
            set("rpo", policy.rpo.map(format_age));
            set("rto", policy.rto.map(format_age));
            let r = &policy.retention;
            for (name, value) in [
                ("keep_last", r.keep_last),
                ("keep_hourly", r.keep_hourly),
                ("keep_daily", r.keep_daily),
                ("keep_weekly", r.keep_weekly),
                ("keep_monthly", r.keep_monthly),
                ("keep_yearly", r.keep_yearly),
            ] {
                set(&format!("retention.{name}"), value.map(|n| n.to_string()));
            }
            set("retention.keep_within", r.keep_within.map(format_age));
            if !r.keep_tagged.is_empty() {
                set(
                    "retention.keep_tagged",
                    Some(format!("{:?}", r.keep_tagged)),
                );
            }
            if !policy.copies.is_empty() {
                let copies: Vec<String> = policy
                    .copies
                    .iter()
                    .map(|c| format!("repository.{c}"))
                    .collect();
                set("copies", Some(format!("[{}]", copies.join(", "))));
            }
            resources.insert(format!("policy.{}", policy.name), attributes);
        }
        for volume in &spec.volumes {
            let mut attributes = BTreeMap::new();
            attributes.insert("name".to_string(), spec.redact(&volume.volume_name));
            if let Some(policy) = &volume.policy {
                attributes.insert("policy".to_string(), format!("policy.{policy}"));
            }
            if volume.consistency != Consistency::None {
                let text = serde_json::to_value(volume.consistency)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                attributes.insert("consistency".to_string(), text);
            }
            let rules = &volume.exclude;
            for (name, list) in [
                ("exclude", &rules.exclude),
                ("exclude_if_present", &rules.exclude_if_present),
            ] {
                if !list.is_empty() {
                    attributes.insert(name.to_string(), format!("{list:?}"));
                }
            }
            resources.insert(format!("volume.{}", volume.name), attributes);
        }
        AppliedSettings { resources }
    }

    /// `~` changes from `previous` (the last apply) to `self`, one per
    /// resource whose attributes differ, in address order. Resources new
    /// since then are listed as such; removed ones too, so a reviewer sees a
    /// policy disappear.
    pub fn changes_since(&self, previous: &AppliedSettings) -> Vec<ResourceChange> {
        let empty = BTreeMap::new();
        let mut addresses: Vec<&String> = self
            .resources
            .keys()
            .chain(previous.resources.keys())
            .collect();
        addresses.sort();
        addresses.dedup();
        let mut changes = Vec::new();
        for address in addresses {
            let now = self.resources.get(address);
            let before = previous.resources.get(address);
            let (now_map, before_map) = (now.unwrap_or(&empty), before.unwrap_or(&empty));
            let mut names: Vec<&String> = now_map.keys().chain(before_map.keys()).collect();
            names.sort();
            names.dedup();
            let attributes: Vec<AttributeChange> = names
                .into_iter()
                .filter(|name| now_map.get(*name) != before_map.get(*name))
                .map(|name| AttributeChange {
                    name: name.clone(),
                    before: before_map.get(name).cloned(),
                    after: now_map.get(name).cloned(),
                })
                .collect();
            if attributes.is_empty() && now.is_some() == before.is_some() {
                continue;
            }
            // Recorded addresses come from the repository: one this version
            // cannot read is not shown rather than trusted.
            let Some(address) = Address::parse(address) else {
                continue;
            };
            let mut change = ResourceChange::new(address, Action::Update);
            change.reasons.push(match (before, now) {
                (None, _) => Reason::NewSinceLastApply,
                (_, None) => Reason::RemovedSinceLastApply,
                _ => Reason::SettingsChanged,
            });
            change.attributes = attributes;
            changes.push(change);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PolicySpec, Retention, Span};
    use std::time::Duration;

    fn spec(keep_daily: u32, copies: &[&str]) -> Spec {
        Spec {
            policies: vec![PolicySpec {
                name: "critical".into(),
                rpo: Some(Duration::from_secs(3600)),
                rto: None,
                drill_every: None,
                retention: Retention {
                    keep_daily: Some(keep_daily),
                    ..Retention::default()
                },
                copies: copies.iter().map(|c| c.to_string()).collect(),
                span: Span::default(),
            }],
            ..Spec::default()
        }
    }

    #[test]
    fn a_changed_retention_reads_as_before_and_after() {
        let before = AppliedSettings::of(&spec(14, &["primary"]));
        let after = AppliedSettings::of(&spec(30, &["primary", "offsite"]));
        let changes = after.changes_since(&before);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].address.to_string(), "policy.critical");
        assert_eq!(changes[0].action, Action::Update);
        assert_eq!(
            changes[0].attributes,
            [
                AttributeChange {
                    name: "copies".into(),
                    before: Some("[repository.primary]".into()),
                    after: Some("[repository.primary, repository.offsite]".into()),
                },
                AttributeChange {
                    name: "retention.keep_daily".into(),
                    before: Some("14".into()),
                    after: Some("30".into()),
                },
            ]
        );
        assert!(after.changes_since(&after).is_empty());
    }

    #[test]
    fn a_volumes_changed_excludes_read_as_before_and_after() {
        let with = |exclude: &[&str]| Spec {
            volumes: vec![crate::spec::VolumeSpec {
                exclude: crate::repo::ExcludeRules {
                    exclude: exclude.iter().map(|e| e.to_string()).collect(),
                    exclude_if_present: Vec::new(),
                },
                ..crate::spec::VolumeSpec::new("data", "app_data")
            }],
            ..Spec::default()
        };
        let before = AppliedSettings::of(&with(&[]));
        let after = AppliedSettings::of(&with(&["cache/**", "*.tmp"]));
        let changes = after.changes_since(&before);
        assert_eq!(
            changes[0].attributes,
            [AttributeChange {
                name: "exclude".into(),
                before: None,
                after: Some("[\"cache/**\", \"*.tmp\"]".into()),
            }]
        );
    }

    #[test]
    fn new_and_removed_resources_are_listed() {
        let before = AppliedSettings::of(&spec(14, &[]));
        let after = AppliedSettings::default();
        let removed = after.changes_since(&before);
        assert_eq!(removed[0].reasons, [Reason::RemovedSinceLastApply]);
        let added = before.changes_since(&after);
        assert_eq!(added[0].reasons, [Reason::NewSinceLastApply]);
        assert!(added[0].attributes.iter().all(|a| a.before.is_none()));
    }
}
