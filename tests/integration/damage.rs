//! Never lose data to damage or to an edited file, through the CLI: a
//! damaged blob leaves the index so the next backup stores it again, repair
//! salvages the intact blobs of a damaged pack before anything is deleted,
//! forget names the repository a damaged snapshot file is in, and a saved
//! plan edited by hand cannot forget what retention keeps.

use crate::harness::{Workspace, files_in, snapshots};
use crate::support;
use std::path::Path;

/// A volume with one big file (several chunks) and a small one, backed up
/// once; and a copy of its content to compare restores with.
fn backed_up(test: &str) -> (Workspace, support::TestVolume, tempfile::TempDir) {
    let volume = support::TestVolume::create(test);
    std::fs::write(
        volume.mountpoint().join("big.bin"),
        support::random_bytes(3_000_000, 7),
    )
    .unwrap();
    std::fs::write(volume.mountpoint().join("small.txt"), b"small").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let copy = support::keep_copy(&volume.mountpoint());
    (ws, volume, copy)
}

/// Restores snapshot `id` into a fresh volume and compares it with `copy`.
fn restores_exactly(ws: &Workspace, volume: &support::TestVolume, id: &str, copy: &Path) {
    let target = support::TestVolume::create(&format!("target-{}", &id[..8]));
    let restore_ws = ws.sharing_repository(volume.name(), target.name());
    restore_ws.ok(&["restore", "--auto-approve", "--snapshot", id]);
    support::compare_trees(copy, &target.mountpoint())
        .unwrap_or_else(|diff| panic!("snapshot {id} restored:\n{diff}"));
}

#[test]
fn a_flipped_bit_leaves_the_index_so_the_next_backup_restores_exactly() {
    let (ws, volume, copy) = backed_up("dmg-bitflip");
    let first = snapshots(&ws)[0]["short_id"].as_str().unwrap().to_string();
    let pack = ws.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&pack, bytes).unwrap();

    // Headers and sizes are whole: only reading the data names the blob.
    ws.ok(&["check"]);
    let check = ws.run(&["check", "--read-data"]);
    assert_eq!(check.code(), 1, "{check}");
    let out = check.stdout();
    assert!(
        out.contains("error: blob ") && out.contains("does not authenticate"),
        "{check}"
    );
    assert!(
        out.contains(&format!("affects snapshot {first} of volume.data")),
        "{check}"
    );
    assert!(out.contains("recorded"), "{check}");
    // From now on even a structure check sees it.
    let check = ws.run(&["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(check.stdout().contains("next backup"), "{check}");

    // The next backup stores the damaged blob again: the new snapshot, and
    // the first one (same blobs), restore byte for byte.
    let apply = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert!(!apply.stdout().contains(" 0 B added"), "{apply}");
    let listed = snapshots(&ws);
    let second = listed[1]["id"].as_str().unwrap().to_string();
    restores_exactly(&ws, &volume, &second, copy.path());
    restores_exactly(&ws, &volume, listed[0]["id"].as_str().unwrap(), copy.path());

    // repair --read-data reports the damaged pack, salvages the rest of it.
    let repair = ws.ok(&["repair", "--read-data"]);
    let out = repair.stdout();
    assert!(out.contains("is damaged"), "{repair}");
    assert!(
        out.contains("blobs that authenticate into new packs"),
        "{repair}"
    );
    assert!(out.contains("1 blob did not and is lost"), "{repair}");
    assert!(out.contains("every blob was verified"), "{repair}");
    assert!(!pack.exists(), "the salvaged pack is removed");
    ws.ok(&["check", "--read-data"]);
    restores_exactly(&ws, &volume, &second, copy.path());
}

#[test]
fn a_pack_that_lost_its_trailer_is_salvaged_by_repair_before_prune() {
    let (ws, volume, copy) = backed_up("dmg-trailer");
    let id = snapshots(&ws)[0]["id"].as_str().unwrap().to_string();
    let pack = ws.biggest_pack();
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() - 4]).unwrap();
    // The blobs are intact: a restore is exact before any repair.
    restores_exactly(&ws, &volume, &id, copy.path());
    let check = ws.run(&["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(
        check
            .stdout()
            .contains("`lifeboat repair` copies the blobs"),
        "{check}"
    );

    let dry = ws.ok(&["repair", "--dry-run"]);
    assert!(dry.stdout().contains("would copy its"), "{dry}");
    assert!(pack.exists(), "dry run");
    let repair = ws.ok(&["repair"]);
    let out = repair.stdout();
    assert!(out.contains("copied its"), "{repair}");
    assert!(!out.contains("unreadable"), "{repair}");
    assert!(!out.contains("lost"), "{repair}");
    assert!(
        out.contains("every snapshot's data is in the repository"),
        "{repair}"
    );
    ws.ok(&["prune"]);
    ws.ok(&["check", "--read-data"]);
    restores_exactly(&ws, &volume, &id, copy.path());
}

#[test]
fn a_damaged_snapshot_file_is_forgotten_only_in_the_repository_named() {
    let (ws, _volume, _copy) = backed_up("dmg-tworepos");
    // A second repository that is a copy of the first (as an rsync'd
    // offsite copy is): the same snapshot ids.
    let offsite = ws.path().join("offsite");
    let copied = std::process::Command::new("cp")
        .args(["-a"])
        .arg(ws.repository())
        .arg(&offsite)
        .status()
        .unwrap();
    assert!(copied.success());
    let spec = ws.path().join("main.hcl");
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(&format!(
        "\nrepository \"offsite\" {{\n  path = \"{}\"\n  encryption {{ passphrase_env = \
         \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n",
        offsite.display()
    ));
    std::fs::write(&spec, text).unwrap();
    let short = snapshots(&ws)[0]["short_id"].as_str().unwrap().to_string();
    let damaged = files_in(&ws.repository().join("snapshots"))
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&short))
        .unwrap();
    let good = offsite.join(damaged.strip_prefix(ws.repository()).unwrap());
    assert!(good.exists());
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();

    let check = ws.run(&["check"]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(
        check
            .stdout()
            .contains(&format!("`lifeboat forget --repository main {short}`")),
        "{check}"
    );
    let listed = ws.ok(&["snapshots"]);
    assert!(
        listed
            .stderr()
            .contains(&format!("lifeboat forget --repository main {short}")),
        "{listed}"
    );

    // Without --repository, the id is in two places: refused, naming them.
    let refused = ws.run(&["forget", "--auto-approve", &short]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(refused.stderr().contains("main, offsite"), "{refused}");
    assert!(refused.stderr().contains("--repository"), "{refused}");
    assert!(damaged.exists() && good.exists(), "nothing forgotten");
    let unknown = ws.run(&["forget", "--auto-approve", "--repository", "nope", &short]);
    assert_eq!(unknown.code(), 1, "{unknown}");
    assert!(unknown.stderr().contains("repository.nope"), "{unknown}");

    ws.ok(&["forget", "--auto-approve", "--repository", "main", &short]);
    assert!(!damaged.exists(), "the damaged copy is forgotten");
    assert!(good.exists(), "the good copy in the other repository stays");
    ws.ok(&["check"]);
}

#[test]
fn an_edited_saved_plan_cannot_forget_a_kept_snapshot() {
    let (ws, _volume, _copy) = backed_up("dmg-editedplan");
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    let before = snapshots(&ws);
    assert_eq!(before.len(), 2);
    let plan_file = ws.path().join("edited.plan");
    let plan_arg = plan_file.to_str().unwrap();
    ws.ok(&["plan", "--out", plan_arg]);

    // Retention keeps both (keep_last = 7): the edit adds a forget of the
    // oldest, keeping the plan's basis as it was.
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let mut forget = plan["changes"][0].clone();
    assert_eq!(forget["address"], "volume.data");
    forget["action"] = "forget".into();
    forget["repositories"] = serde_json::json!(["main"]);
    forget["forget"] = serde_json::json!([before[0].clone()]);
    plan["changes"].as_array_mut().unwrap().push(forget);
    std::fs::write(&plan_file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();

    let refused = ws.run(&["apply", plan_arg]);
    assert_eq!(refused.code(), 1, "{refused}");
    let error = refused.stderr();
    assert!(error.contains("do not call for"), "{refused}");
    assert!(error.contains("- volume.data"), "{refused}");
    assert!(error.contains("Nothing was done"), "{refused}");
    assert_eq!(snapshots(&ws), before, "nothing forgotten");

    // A hostile file: far too large, or not a plan, is a clear error.
    let huge = ws.path().join("huge.plan");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    let shown = ws.run(&["show", huge.to_str().unwrap()]);
    assert_eq!(shown.code(), 1, "{shown}");
    assert!(shown.stderr().contains("larger than 64 MiB"), "{shown}");
    std::fs::write(&plan_file, b"{\"format_version\": \"2.1\", \"kind\": [[[[").unwrap();
    let garbage = ws.run(&["apply", plan_arg]);
    assert_eq!(garbage.code(), 1, "{garbage}");
    assert!(
        garbage.stderr().contains("not a lifeboat plan"),
        "{garbage}"
    );
}
