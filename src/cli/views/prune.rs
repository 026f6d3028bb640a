//! `lifeboat prune`: a prune plan (`--dry-run`, `forget --prune --dry-run`)
//! and what an executed prune did, one repository at a time; `lifeboat
//! migrate`'s plan and outcome, which run by prune's path.

use super::{human_bytes, plural};
use crate::repo::{MigrateSummary, PruneStats, PruneSummary};

/// Temporary files a dry run names one by one; `check` lists them all.
const LEFTOVERS_SHOWN: usize = 10;

/// What the prune of `repository.NAME (LOCATION)` would do; `leftovers`
/// are the paths of the temporary files it removes.
pub fn render_plan(
    name: &str,
    location: &str,
    plan: &PruneSummary,
    leftovers: &[String],
) -> String {
    let repository = format!("repository.{name} ({location})");
    if plan.packs_to_delete == 0 {
        let needed = plural(plan.packs_kept as usize, "pack");
        if leftovers.is_empty() {
            return format!(
                "{repository}: nothing to prune (every blob of the {needed} is needed)\n"
            );
        }
        return format!(
            "{repository}: would delete no pack (every blob of the {needed} is needed)\n{}",
            render_leftovers(plan, leftovers)
        );
    }
    let unindexed = if plan.unindexed_packs > 0 {
        format!(" ({} left by interrupted backups)", plan.unindexed_packs)
    } else {
        String::new()
    };
    let mut out = format!(
        "{repository}: would delete {}{unindexed}, {} repacked (copying {}), {} to free\n",
        plural(plan.packs_to_delete as usize, "pack"),
        plan.packs_to_repack,
        plural(plan.blobs_to_copy as usize, "blob"),
        human_bytes(plan.bytes_to_free),
    );
    out.push_str(&format!(
        "  keeps {} and the {} snapshots need; removes {} no snapshot needs; {} become one\n",
        plural(plan.packs_kept as usize, "pack"),
        plural(plan.blobs_kept as usize, "blob"),
        plural(plan.blobs_removed as usize, "blob"),
        plural(plan.index_files_to_rewrite as usize, "index file"),
    ));
    if plan.missing_packs > 0 {
        out.push_str(&format!(
            "  forgets {} the index names but that are gone\n",
            plural(plan.missing_packs as usize, "pack")
        ));
    }
    out.push_str(&render_leftovers(plan, leftovers));
    out
}

/// The temporary files a prune would remove, the first few by path.
fn render_leftovers(plan: &PruneSummary, leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "  removes {} interrupted writes left ({})\n",
        plural(leftovers.len(), "temporary file"),
        human_bytes(plan.leftover_bytes),
    );
    for path in leftovers.iter().take(LEFTOVERS_SHOWN) {
        out.push_str(&format!("    {path}\n"));
    }
    if leftovers.len() > LEFTOVERS_SHOWN {
        out.push_str(&format!(
            "    and {} more (`lifeboat check` lists them)\n",
            leftovers.len() - LEFTOVERS_SHOWN
        ));
    }
    out
}

/// What the prune of `repository.NAME (LOCATION)` did.
pub fn render_done(name: &str, location: &str, stats: &PruneStats) -> String {
    format!(
        "repository.{name} ({location}): deleted {}, {} repacked, {} freed{}\n",
        plural(stats.packs_deleted as usize, "pack"),
        stats.packs_repacked,
        human_bytes(stats.bytes_freed),
        leftovers_removed(stats),
    )
}

/// `; removed N temporary files ...` when a prune removed any.
pub fn leftovers_removed(stats: &PruneStats) -> String {
    if stats.leftovers_removed == 0 {
        return String::new();
    }
    format!(
        "; removed {} interrupted writes left ({})",
        plural(stats.leftovers_removed as usize, "temporary file"),
        human_bytes(stats.leftover_bytes_removed),
    )
}

/// What `migrate` of `repository.NAME (LOCATION)` would rewrite.
pub fn render_migrate_plan(name: &str, location: &str, plan: &MigrateSummary) -> String {
    let repository = format!("repository.{name} ({location})");
    if plan.plaintext {
        return format!(
            "{repository}: nothing to migrate (a plaintext repository has no encryption to bind \
             blob ids to; its reads always hash)\n"
        );
    }
    if plan.packs_to_rewrite == 0 {
        return format!(
            "{repository}: nothing to migrate (every blob of the {} is sealed in format 4)\n",
            plural(plan.packs_kept as usize, "pack")
        );
    }
    format!(
        "{repository}: would rewrite {} of {} ({}) sealed by format 3 into format-4 sealing, \
         then delete them; keeps {}\n",
        plural(plan.blobs_to_rewrite as usize, "blob"),
        plural(plan.packs_to_rewrite as usize, "pack"),
        human_bytes(plan.bytes_to_rewrite),
        plural(plan.packs_kept as usize, "pack"),
    )
}

/// What `migrate` of `repository.NAME (LOCATION)` did.
pub fn render_migrated(name: &str, location: &str, stats: &PruneStats) -> String {
    format!(
        "repository.{name} ({location}): rewrote {}, deleted {}\n",
        plural(stats.packs_repacked as usize, "pack"),
        plural(stats.packs_deleted as usize, "old pack"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migrate_plan_counts_what_is_rewritten() {
        let plan = MigrateSummary {
            packs_to_rewrite: 2,
            blobs_to_rewrite: 40,
            bytes_to_rewrite: 30_000_000,
            packs_kept: 1,
            plaintext: false,
        };
        assert_eq!(
            render_migrate_plan("primary", "/backups", &plan),
            "repository.primary (/backups): would rewrite 40 blobs of 2 packs (30.0 MB) sealed \
             by format 3 into format-4 sealing, then delete them; keeps 1 pack\n"
        );
        let done = MigrateSummary {
            packs_to_rewrite: 0,
            ..plan
        };
        assert!(render_migrate_plan("p", "/b", &done).contains("nothing to migrate"));
        let plaintext = MigrateSummary {
            plaintext: true,
            ..done
        };
        assert!(render_migrate_plan("p", "/b", &plaintext).contains("plaintext"));
    }

    #[test]
    fn a_prune_plan_says_what_goes_what_stays_and_what_is_freed() {
        let plan = PruneSummary {
            packs_kept: 4,
            packs_to_repack: 1,
            packs_to_delete: 3,
            unindexed_packs: 1,
            missing_packs: 1,
            blobs_kept: 120,
            blobs_removed: 30,
            blobs_to_copy: 7,
            bytes_to_free: 4_200_000,
            index_files_to_rewrite: 5,
            ..PruneSummary::default()
        };
        let text = render_plan("primary", "/backups", &plan, &[]);
        assert_eq!(
            text,
            "repository.primary (/backups): would delete 3 packs (1 left by interrupted backups), \
             1 repacked (copying 7 blobs), 4.2 MB to free\n  keeps 4 packs and the 120 blobs \
             snapshots need; removes 30 blobs no snapshot needs; 5 index files become one\n  \
             forgets 1 pack the index names but that are gone\n"
        );
        let nothing = render_plan(
            "primary",
            "/backups",
            &PruneSummary {
                packs_kept: 1,
                ..PruneSummary::default()
            },
            &[],
        );
        assert_eq!(
            nothing,
            "repository.primary (/backups): nothing to prune (every blob of the 1 pack is needed)\n"
        );
    }

    #[test]
    fn a_prune_plan_names_the_temporary_files_it_removes() {
        let plan = PruneSummary {
            packs_kept: 1,
            leftovers: 2,
            leftover_bytes: 16_800_000,
            ..PruneSummary::default()
        };
        let paths = vec![
            "data/.pack.tmp-812-0".to_string(),
            "index/.ab12.tmp-812-3".to_string(),
        ];
        assert_eq!(
            render_plan("primary", "/backups", &plan, &paths),
            "repository.primary (/backups): would delete no pack (every blob of the 1 pack is \
             needed)\n  removes 2 temporary files interrupted writes left (16.8 MB)\n    \
             data/.pack.tmp-812-0\n    index/.ab12.tmp-812-3\n"
        );
        let many: Vec<String> = (0..12).map(|n| format!("data/.pack.tmp-1-{n}")).collect();
        let text = render_plan("primary", "/backups", &plan, &many);
        assert!(text.contains("data/.pack.tmp-1-9\n"), "{text}");
        assert!(!text.contains("data/.pack.tmp-1-10"), "{text}");
        assert!(text.contains("and 2 more"), "{text}");
        let done = PruneStats {
            leftovers_removed: 2,
            leftover_bytes_removed: 16_800_000,
            ..PruneStats::default()
        };
        assert_eq!(
            render_done("primary", "/backups", &done),
            "repository.primary (/backups): deleted 0 packs, 0 repacked, 0 B freed; removed 2 \
             temporary files interrupted writes left (16.8 MB)\n"
        );
    }
}
