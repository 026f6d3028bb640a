//! Where the spec says what a plan's reasons and warnings point at, written
//! relative to the spec directory (`main.hcl:51:1`): a plan is about the
//! spec's files, not the checkout it was made in, so the plan a CI runner
//! makes in its own checkout is the host's plan, and a reviewer reads the
//! path as it is in the repository.

use super::Plan;
use std::path::Path;

/// `plan` with every spec location (`at`) under `dir` made relative to it;
/// locations elsewhere (a file named by absolute path) stay as they are.
pub fn with_locations_relative_to(plan: Plan, dir: &Path) -> Plan {
    let mut prefix = dir.display().to_string();
    if prefix.is_empty() || prefix == "." {
        return plan;
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    // Locations sit in many typed reasons and warnings under one field
    // name; walking the plan's data reaches each without a match per kind.
    let Ok(mut value) = serde_json::to_value(&plan) else {
        return plan;
    };
    relativize(&mut value, &prefix);
    serde_json::from_value(value).unwrap_or(plan)
}

fn relativize(value: &mut serde_json::Value, prefix: &str) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    serde_json::Value::String(at) if key == "at" => {
                        if let Some(relative) = at.strip_prefix(prefix) {
                            *at = relative.to_string();
                        }
                    }
                    other => relativize(other, prefix),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                relativize(item, prefix);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanKind, Warning};

    #[test]
    fn locations_in_the_spec_directory_are_written_relative_to_it() {
        let mut plan = Plan::new(
            PlanKind::Backup,
            Default::default(),
            Vec::new(),
            chrono::Utc::now(),
        );
        let warning = |at: &str| Warning::FewerThanTwoCopies {
            policy: "daily".into(),
            at: at.into(),
            repositories: vec!["offsite".into()],
        };
        plan.warnings = vec![
            warning("/tmp/checkout/main.hcl:51:1"),
            warning("/etc/other.hcl:1:1"),
        ];
        let plan = with_locations_relative_to(plan, Path::new("/tmp/checkout"));
        assert_eq!(
            plan.warnings,
            vec![warning("main.hcl:51:1"), warning("/etc/other.hcl:1:1")]
        );
    }
}
