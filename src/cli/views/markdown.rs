//! The plan as a pull-request comment: summary table first, details
//! collapsed, replacements highlighted, and always under the size GitHub and
//! GitLab accept for a comment.

use super::{Style, attribute_change, reason, render_plan, summary_line, warning};
use crate::plan::{Action, Plan, Reason, ResourceChange};
use std::fmt::Write as _;

/// Comments must stay below this many characters (GitHub refuses 65,536).
pub const LIMIT: usize = 60_000;

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn action_label(change: &ResourceChange, forced: bool) -> String {
    match (change.action, forced) {
        (Action::BackUp, true) => "**⚠ back up (replace)**".to_string(),
        (Action::BackUp, false) => "back up".to_string(),
        (Action::UpToDate, _) => "up to date".to_string(),
        (Action::Restore, true) => "**⚠ restore, replacing content**".to_string(),
        (Action::Restore, false) => "restore".to_string(),
        (Action::Forget, _) => {
            let n = change.forget.len();
            format!("**⚠ forget {n} snapshot{}**", if n == 1 { "" } else { "s" })
        }
        (Action::Update, _) => "update settings".to_string(),
        (Action::Create, _) => super::create_label(change),
        (Action::Problem, _) => "**✗ cannot be done now**".to_string(),
    }
}

/// What the `why` column says: the reasons, and for an update the attribute diffs.
fn why(change: &ResourceChange) -> String {
    let mut parts: Vec<String> = change.reasons.iter().map(reason).collect();
    parts.extend(
        change
            .attributes
            .iter()
            .map(|a| attribute_change(a, Style { color: false })),
    );
    parts.join("; ")
}

pub fn render(plan: &Plan) -> String {
    let headline = format!("**{}**", summary_line(plan));
    let mut head = String::new();
    let _ = writeln!(head, "### lifeboat plan\n\n{headline}\n");
    for item in &plan.warnings {
        let _ = writeln!(head, "> ⚠ {}", escape(&warning(item)));
    }
    if !plan.warnings.is_empty() {
        head.push('\n');
    }

    let mut rows = Vec::new();
    for change in &plan.changes {
        let forced = change
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::ReplaceRequested | Reason::ReplaceTarget { .. }));
        rows.push(format!(
            "| `{}` | {} | {} | {} | {} |\n",
            change.action.symbol(),
            escape(&super::resource_label(change)),
            action_label(change, forced),
            escape(&change.repositories.join(", ")),
            escape(&why(change))
        ));
    }
    let details = render_plan(plan, Style { color: false });
    let table_head = "| | resource | action | repositories | why |\n|---|---|---|---|---|\n";
    let details_block = |text: &str| {
        format!("\n<details><summary>Full plan</summary>\n\n```text\n{text}```\n\n</details>\n")
    };

    let mut out = head.clone();
    out.push_str(table_head);
    for row in &rows {
        out.push_str(row);
    }
    out.push_str(&details_block(&details));
    if out.len() <= LIMIT {
        return out;
    }

    // Too long: keep the headline, as many table rows as fit, and say what was cut.
    let mut out = head;
    out.push_str(table_head);
    let reserve = 200;
    let mut shown = 0;
    for row in &rows {
        if out.len() + row.len() + reserve > LIMIT {
            break;
        }
        out.push_str(row);
        shown += 1;
    }
    let cut = rows.len() - shown;
    let _ = writeln!(
        out,
        "\n_{cut} more resource{} and the full plan were cut to keep this comment under {LIMIT} \
         characters; run `lifeboat plan` to see everything._",
        if cut == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Basis, PlanKind, Summary};

    fn plan(n: usize) -> Plan {
        let changes: Vec<ResourceChange> = (0..n)
            .map(|i| {
                let address = crate::spec::Address::new(
                    crate::spec::ResourceKind::Volume,
                    format!("v{i:05}"),
                );
                let mut change = ResourceChange::new(address, Action::BackUp);
                change.reasons = vec![Reason::NeverBackedUp { repository: None }];
                change.repositories = vec!["main".into()];
                change
            })
            .collect();
        Plan {
            format_version: crate::plan::FORMAT_VERSION.into(),
            lifeboat_version: "test".into(),
            kind: PlanKind::Backup,
            created_at: chrono::Utc::now(),
            basis: Basis::default(),
            summary: Summary {
                to_back_up: n,
                ..Summary::default()
            },
            changes,
            warnings: vec![],
            tags: Vec::new(),
        }
    }

    #[test]
    fn small_plans_have_table_and_collapsed_details() {
        let text = render(&plan(2));
        assert!(text.starts_with("### lifeboat plan\n\n**Plan: 2 to back up, 0 unchanged.**"));
        assert!(text.contains("| `+` | volume.v00001 | back up | main | never backed up |"));
        assert!(text.contains("<details><summary>Full plan</summary>"));
    }

    #[test]
    fn huge_plans_are_cut_below_the_limit_with_a_count() {
        let text = render(&plan(3000));
        assert!(text.len() <= LIMIT, "{}", text.len());
        assert!(text.contains("more resources and the full plan were cut"));
        assert!(text.contains("**Plan: 3000 to back up"));
    }
}
