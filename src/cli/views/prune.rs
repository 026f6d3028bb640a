//! `lifeboat prune`: a prune plan (`--dry-run`, `forget --prune --dry-run`)
//! and what an executed prune did, one repository at a time; `lifeboat
//! migrate`'s plan and outcome, which run by prune's path.

use super::{human_bytes, plural};
use crate::repo::{MigrateSummary, PruneStats, PruneSummary};

/// What the prune of `repository.NAME (LOCATION)` would do.
pub fn render_plan(name: &str, location: &str, plan: &PruneSummary) -> String {
    let repository = format!("repository.{name} ({location})");
    if plan.packs_to_delete == 0 {
        return format!(
            "{repository}: nothing to prune (every blob of the {} is needed)\n",
            plural(plan.packs_kept as usize, "pack")
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
    out
}

/// What the prune of `repository.NAME (LOCATION)` did.
pub fn render_done(name: &str, location: &str, stats: &PruneStats) -> String {
    format!(
        "repository.{name} ({location}): deleted {}, {} repacked, {} freed\n",
        plural(stats.packs_deleted as usize, "pack"),
        stats.packs_repacked,
        human_bytes(stats.bytes_freed),
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
        };
        let text = render_plan("primary", "/backups", &plan);
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
        );
        assert_eq!(
            nothing,
            "repository.primary (/backups): nothing to prune (every blob of the 1 pack is needed)\n"
        );
    }
}
