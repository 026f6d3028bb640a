//! `lifeboat key`: passphrases added, changed and removed on a real
//! repository, never the last one nor the one in use, a paper copy of the
//! master key that makes a key again, and no passphrase in any output.

use crate::harness::Workspace;

fn with_passphrase(ws: &Workspace, passphrase: &str, args: &[&str]) -> crate::harness::Run {
    let mut command = ws.process(args);
    command
        .env("LIFEBOAT_TEST_PASSPHRASE", passphrase)
        .env("NEW_PASSPHRASE", "")
        .stdin(std::process::Stdio::null());
    crate::harness::Run(command.output().unwrap())
}

fn with_new(ws: &Workspace, current: &str, new: &str, args: &[&str]) -> crate::harness::Run {
    let mut command = ws.process(args);
    command
        .env("LIFEBOAT_TEST_PASSPHRASE", current)
        .env("NEW_PASSPHRASE", new)
        .stdin(std::process::Stdio::null());
    crate::harness::Run(command.output().unwrap())
}

fn key_ids(ws: &Workspace, passphrase: &str) -> Vec<(String, bool)> {
    let listed = with_passphrase(ws, passphrase, &["key", "list", "--json"]);
    assert_eq!(listed.code(), 0, "{listed}");
    let value: serde_json::Value = serde_json::from_str(&listed.stdout()).unwrap();
    value[0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn keys_are_added_changed_removed_and_made_again_from_a_paper_copy() {
    let volume = crate::support::TestVolume::create("keys");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let first = ws.passphrase.clone();
    ws.ok(&["apply", "--auto-approve"]);
    let mut outputs = Vec::new();
    let keys = key_ids(&ws, &first);
    assert_eq!(keys.len(), 1);
    assert!(keys[0].1, "the key in use is marked");

    // Without a source for the new passphrase and no terminal: refused.
    let asked = with_passphrase(&ws, &first, &["key", "add"]);
    assert_eq!(asked.code(), 1, "{asked}");
    assert!(asked.stderr().contains("--new-passphrase-env"), "{asked}");

    let added = with_new(
        &ws,
        &first,
        "second pass",
        &["key", "add", "--new-passphrase-env", "NEW_PASSPHRASE"],
    );
    assert_eq!(added.code(), 0, "{added}");
    outputs.push(added.to_string());
    assert_eq!(key_ids(&ws, "second pass").len(), 2);
    // The key in use cannot be removed; the other one can.
    let in_use = with_passphrase(&ws, &first, &["key", "remove", &keys[0].0[..8]]);
    assert_eq!(in_use.code(), 1, "{in_use}");
    assert!(in_use.stderr().contains("key passwd"), "{in_use}");
    let removed = with_passphrase(&ws, "second pass", &["key", "remove", &keys[0].0[..8]]);
    assert_eq!(removed.code(), 0, "{removed}");
    let old = with_passphrase(&ws, &first, &["snapshots"]);
    assert_eq!(old.code(), 1, "{old}");
    assert!(old.stderr().contains("wrong passphrase"), "{old}");

    let changed = with_new(
        &ws,
        "second pass",
        "third pass",
        &["key", "passwd", "--new-passphrase-env", "NEW_PASSPHRASE"],
    );
    assert_eq!(changed.code(), 0, "{changed}");
    outputs.push(changed.to_string());
    assert_eq!(
        with_passphrase(&ws, "second pass", &["snapshots"]).code(),
        1
    );
    let keys = key_ids(&ws, "third pass");
    assert_eq!(keys.len(), 1);

    // A paper copy, then every key lost: a key is made again from it.
    let export = with_passphrase(&ws, "third pass", &["key", "export"]);
    assert_eq!(export.code(), 0, "{export}");
    assert!(export.stderr().contains("keep it offline"), "{export}");
    let paper = ws.path().join("master.json");
    std::fs::write(&paper, export.stdout()).unwrap();
    for entry in std::fs::read_dir(ws.repository().join("keys")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let recovered = with_new(
        &ws,
        "nobody knows",
        "fourth pass",
        &[
            "key",
            "add",
            "--master-key",
            paper.to_str().unwrap(),
            "--new-passphrase-env",
            "NEW_PASSPHRASE",
        ],
    );
    assert_eq!(recovered.code(), 0, "{recovered}");
    outputs.push(recovered.to_string());
    assert_eq!(
        with_passphrase(&ws, "fourth pass", &["snapshots"]).code(),
        0
    );
    for output in outputs {
        for secret in [first.as_str(), "second pass", "third pass", "fourth pass"] {
            assert!(!output.contains(secret), "{secret} printed:\n{output}");
        }
    }
}
