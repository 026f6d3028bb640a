//! One file out of a snapshot without restoring it: `ls`, `find`, `dump`
//! and `diff` on real snapshots of a volume.

use crate::harness::Workspace;
use crate::support;

#[test]
fn a_file_is_listed_found_written_out_and_compared_without_a_restore() {
    let volume = support::TestVolume::create("browse");
    let root = volume.mountpoint();
    std::fs::create_dir_all(root.join("config/nested")).unwrap();
    std::fs::write(root.join("config/app.conf"), b"port = 80\n").unwrap();
    std::fs::write(root.join("config/nested/extra.conf"), b"x\n").unwrap();
    std::fs::write(root.join("upload.bin"), support::random_bytes(300_000, 3)).unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    ws.ok(&["apply", "--auto-approve"]);
    let first: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    let first_id = first[0]["short_id"].as_str().unwrap().to_string();

    let listed = ws.ok(&["ls", "volume.data"]);
    assert_eq!(listed.stdout(), "config/\nupload.bin\n", "{listed}");
    let long = ws.ok(&["ls", "--long", "latest:volume.data", "config"]);
    assert!(long.stdout().contains("app.conf"), "{long}");
    assert!(long.stdout().contains("file"), "{long}");
    let json: serde_json::Value =
        serde_json::from_str(&ws.ok(&["ls", "--json", "-r", &first_id]).stdout()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5, "{json}");

    let written = ws.ok(&["dump", "volume.data", "config/app.conf"]);
    assert_eq!(written.stdout(), "port = 80\n");
    let big = ws
        .command(&["dump", &first_id, "/upload.bin"])
        .output()
        .unwrap();
    assert_eq!(big.stdout, std::fs::read(root.join("upload.bin")).unwrap());
    let missing = ws.run(&["dump", "volume.data", "nope.conf"]);
    assert_eq!(missing.code(), 1, "{missing}");
    assert!(
        missing.stderr().contains("has nothing at nope.conf"),
        "{missing}"
    );

    // A change, a second snapshot, then find and diff.
    std::fs::write(root.join("config/app.conf"), b"port = 8080\n").unwrap();
    std::fs::remove_file(root.join("upload.bin")).unwrap();
    std::fs::write(root.join("config/new.conf"), b"y\n").unwrap();
    ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
    let found = ws.ok(&["find", "*.conf"]);
    let text = found.stdout();
    assert_eq!(text.matches("snapshot ").count(), 2, "{found}");
    assert!(text.contains("config/new.conf"), "{found}");
    let by_path = ws.ok(&["find", "--json", "config/nested/*"]);
    let value: serde_json::Value = serde_json::from_str(&by_path.stdout()).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2, "{by_path}");

    let diff = ws.ok(&["diff", &first_id, "latest:volume.data"]);
    let text = diff.stdout();
    assert!(text.contains("M    config/app.conf"), "{diff}");
    assert!(text.contains("+    config/new.conf"), "{diff}");
    assert!(text.contains("-    upload.bin"), "{diff}");
    assert!(text.contains("1 added, 1 removed"), "{diff}");
}
