//! The report of `lifeboat repair`: what was rebuilt, and what is lost.

use super::plural;
use crate::repo::{RepairReport, short};

/// The report for `repository.NAME (LOCATION)`; advice names the repository.
pub fn render(name: &str, location: &str, report: &RepairReport) -> String {
    let repository = format!("repository.{name} ({location})");
    let would = |done: &str, planned: &str| if report.dry_run { planned } else { done }.to_string();
    let mut out = String::new();
    if report.index_changed() {
        out.push_str(&format!(
            "{repository}: {} the index from {} ({}), replacing {}\n",
            would("rebuilt", "would rebuild"),
            plural(report.packs, "pack"),
            plural(report.blobs, "blob"),
            plural(report.index_files_replaced, "index file"),
        ));
    } else {
        out.push_str(&format!(
            "{repository}: the index matches the {} (nothing to rebuild)\n",
            plural(report.packs, "pack")
        ));
    }
    let list = |ids: &[String]| {
        ids.iter()
            .map(|id| short(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !report.packs_dropped.is_empty() {
        out.push_str(&format!(
            "  {} {} that {} gone: {}\n",
            would("dropped", "would drop"),
            plural(report.packs_dropped.len(), "pack"),
            if report.packs_dropped.len() == 1 {
                "is"
            } else {
                "are"
            },
            list(&report.packs_dropped)
        ));
    }
    if !report.packs_added.is_empty() {
        out.push_str(&format!(
            "  {} {} no index named: {}\n",
            would("added", "would add"),
            plural(report.packs_added.len(), "pack"),
            list(&report.packs_added)
        ));
    }
    if report.damaged_index_files > 0 {
        out.push_str(&format!(
            "  {} {}\n",
            would("replaced", "would replace"),
            plural(report.damaged_index_files, "damaged index file")
        ));
    }
    for pack in &report.packs_salvaged {
        out.push_str(&format!(
            "  pack {} is damaged ({}): {} {} that authenticate{} into new packs, then {} it{}\n",
            short(&pack.id),
            pack.detail,
            would("copied its", "would copy its"),
            plural(pack.salvaged, "blob"),
            if pack.salvaged == 1 { "s" } else { "" },
            would("removed", "remove"),
            if pack.lost > 0 {
                format!(
                    "; {} did not and {} lost",
                    plural(pack.lost, "blob"),
                    if pack.lost == 1 { "is" } else { "are" }
                )
            } else {
                String::new()
            }
        ));
    }
    for pack in &report.packs_unreadable {
        out.push_str(&format!(
            "  pack {} is unreadable ({}): left out of the index; `lifeboat prune` removes it\n",
            short(&pack.id),
            pack.detail
        ));
    }
    for snapshot in &report.incomplete {
        let what = if snapshot.tree_lost {
            "its tree (the list of its files) is gone".to_string()
        } else {
            format!(
                "it needs {} that no pack holds",
                plural(snapshot.missing_blobs, "blob")
            )
        };
        out.push_str(&format!(
            "  snapshot {} of {}: {what}. `lifeboat apply --replace {}` stores that data again \
             if {} still holds it; otherwise `lifeboat forget --repository {name} {}`\n",
            snapshot.id.short(),
            snapshot.resource,
            snapshot.resource,
            snapshot.resource,
            snapshot.id.short()
        ));
    }
    for snapshot in &report.damaged_snapshots {
        out.push_str(&format!(
            "  snapshot {} is damaged ({}): `lifeboat forget --repository {name} {}` removes it\n",
            snapshot.id.short(),
            snapshot.detail,
            snapshot.id.short()
        ));
    }
    if report.incomplete.is_empty() && report.damaged_snapshots.is_empty() {
        out.push_str(if report.read_data {
            "  every snapshot's data is in the repository, and every blob was verified\n"
        } else {
            "  every snapshot's data is in the repository (by the packs' headers: `lifeboat \
             repair --read-data` also verifies every blob)\n"
        });
    }
    if report.dry_run && report.index_changed() {
        out.push_str("  Dry run: nothing was changed.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{
        DamagedSnapshot, IncompleteSnapshot, SalvagedPack, SnapshotId, UnreadablePack,
    };

    #[test]
    fn a_repair_report_says_what_was_done_and_what_is_lost() {
        let report = RepairReport {
            dry_run: false,
            read_data: true,
            packs: 3,
            blobs: 120,
            packs_added: vec!["a".repeat(64)],
            packs_dropped: vec!["b".repeat(64)],
            packs_unreadable: vec![UnreadablePack {
                id: "c".repeat(64),
                detail: "header does not authenticate".into(),
            }],
            packs_salvaged: vec![SalvagedPack {
                id: "f".repeat(64),
                detail: "1 of its 4 blobs fail to authenticate".into(),
                salvaged: 3,
                lost: 1,
            }],
            damaged_index_files: 1,
            index_files_replaced: 4,
            incomplete: vec![IncompleteSnapshot {
                id: SnapshotId("d".repeat(64)),
                resource: "volume.data".into(),
                missing_blobs: 3,
                tree_lost: false,
            }],
            damaged_snapshots: vec![DamagedSnapshot {
                id: SnapshotId("e".repeat(64)),
                detail: "does not authenticate".into(),
            }],
        };
        insta::assert_snapshot!(render("main", "/r", &report));
        let dry = RepairReport {
            dry_run: true,
            incomplete: Vec::new(),
            damaged_snapshots: Vec::new(),
            ..report
        };
        insta::assert_snapshot!(render("main", "/r", &dry));
    }
}
