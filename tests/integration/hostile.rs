//! Untrusted repository content through the CLI, in the API mode (the
//! Docker archive stream): a damaged or missing blob is named with its
//! cause (before anything reaches Docker where the tree shows it), never as the HTTP client's
//! "broken request".

use crate::harness::Workspace;
use crate::support;

#[test]
fn api_mode_restore_of_a_damaged_snapshot_names_the_cause() {
    let data = support::TestVolume::create("hostile-api");
    std::fs::write(
        data.mountpoint().join("big.bin"),
        support::random_bytes(3_000_000, 7),
    )
    .unwrap();
    std::fs::write(data.mountpoint().join("small.txt"), b"small").unwrap();
    let ws = Workspace::with_volumes(&[("data", data.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let packs: Vec<std::path::PathBuf> = walkdir::WalkDir::new(ws.repository().join("data"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    // A flipped bit in the middle of the pack: inside big.bin's data.
    let biggest = packs
        .iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(biggest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(biggest, bytes).unwrap();
    // The volume is lost; `data` still removes what the restore recreates.
    let removed = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", data.name()])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let restore = ws.run(&["restore", "--auto-approve", "--access", "api"]);
    assert_eq!(restore.code(), 1, "{restore}");
    let text = restore.to_string();
    assert!(!text.contains("hyper"), "{restore}");
    assert!(!text.contains("SendRequest"), "{restore}");
    assert!(
        text.contains("big.bin"),
        "names a file: {restore}"
    );
    assert!(text.contains("damaged or missing"), "{restore}");
}
