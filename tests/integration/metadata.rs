//! Restores are exact, or say what they could not do: extended attributes
//! (user.*, security.capability), access and default ACLs and unix sockets
//! through a direct round trip; through the API, what Docker's archive
//! carries (attributes at restore, only security.capability at backup) and
//! notes for the rest; files written while an API backup reads them named.

use crate::harness::Workspace;
use crate::support;
use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (packages acl, attr, libcap2-bin): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every attribute of every entry under `root` (ACLs included, as getfattr
/// shows the system.posix_acl_* attributes), and the ACLs as getfacl reads them.
fn attributes(root: &Path) -> (String, String) {
    let root = root.display().to_string();
    let xattrs = run(
        "getfattr",
        &[
            "-R",
            "-h",
            "-d",
            "-m",
            "-",
            "-e",
            "hex",
            "--absolute-names",
            &root,
        ],
    );
    let acls = run("getfacl", &["-R", "-p", "-P", &root]);
    (xattrs.replace(&root, "ROOT"), acls.replace(&root, "ROOT"))
}

/// A file with user attributes, an access ACL and a capability, a
/// directory with a default ACL, a symlink, a unix socket.
fn fill(root: &Path) {
    std::fs::create_dir(root.join("shared")).unwrap();
    std::fs::write(root.join("shared/report.txt"), b"quarterly").unwrap();
    std::fs::write(root.join("ping"), b"\x7fELF not really").unwrap();
    let at = |name: &str| root.join(name).display().to_string();
    run(
        "setfattr",
        &["-n", "user.origin", "-v", "lab-7", &at("shared/report.txt")],
    );
    run(
        "setfattr",
        &[
            "-n",
            "user.checksum",
            "-v",
            "0x00ff10",
            &at("shared/report.txt"),
        ],
    );
    run("setfattr", &["-n", "user.dir", "-v", "d", &at("shared")]);
    run(
        "setfacl",
        &["-m", "u:1234:rw,g:2345:r", &at("shared/report.txt")],
    );
    run(
        "setfacl",
        &["-d", "-m", "u:1234:rwx,g:2345:rx", &at("shared")],
    );
    run("setfacl", &["-m", "u:1234:rx", &at("shared")]);
    run(
        "setcap",
        &["cap_net_bind_service,cap_net_raw+ep", &at("ping")],
    );
    std::os::unix::fs::symlink("shared/report.txt", root.join("latest")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(root.join("shared/app.sock")).unwrap());
}

/// `dump` without the entries (blank-line separated) that name `name`.
fn without(dump: &str, name: &str) -> String {
    dump.split("\n\n")
        .filter(|entry| !entry.contains(name))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn attributes_acls_capabilities_and_sockets_come_back_exactly() {
    let volume = support::TestVolume::create("xattrs");
    fill(&volume.mountpoint());
    let before = attributes(&volume.mountpoint());
    assert!(before.0.contains("security.capability"), "{}", before.0);
    assert!(
        before.0.contains("system.posix_acl_default"),
        "{}",
        before.0
    );
    let original = support::keep_copy(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        !applied.stdout().contains("note:"),
        "direct carries all: {applied}"
    );

    // Direct (the default as root): everything.
    let restored = ws.ok(&["restore", "--auto-approve", "--replace"]);
    assert!(!restored.stdout().contains("note:"), "{restored}");
    assert_eq!(attributes(&volume.mountpoint()), before);
    assert!(is_socket(&volume.mountpoint().join("shared/app.sock")));
    support::compare_trees(original.path(), &volume.mountpoint())
        .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));

    // Through the API: Docker's untar applies every attribute it is given;
    // the socket cannot travel, and the restore says so.
    let restored = ws.ok(&["restore", "--auto-approve", "--replace", "--access", "api"]);
    assert!(
        restored.stdout().contains("1 socket(s) not restored")
            && restored.stdout().contains("shared/app.sock"),
        "{restored}"
    );
    let after = attributes(&volume.mountpoint());
    assert_eq!(after.0, without(&before.0, "app.sock"));
    assert_eq!(after.1, without(&before.1, "app.sock"));
    assert!(!volume.mountpoint().join("shared/app.sock").exists());
}

#[test]
fn an_api_backup_keeps_the_capability_and_says_what_the_archive_drops() {
    let volume = support::TestVolume::create("xattrs-api");
    fill(&volume.mountpoint());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let applied = ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    assert!(
        applied
            .stdout()
            .contains("carries no extended attributes other than security.capability"),
        "{applied}"
    );
    let json = ws.ok(&[
        "apply",
        "--auto-approve",
        "--replace",
        "volume.data",
        "--access",
        "api",
        "--json",
    ]);
    assert!(
        json.stdout()
            .contains("\"note\":\"archive_omits_metadata\""),
        "{json}"
    );
    ws.ok(&["restore", "--auto-approve", "--replace"]);
    let (xattrs, _) = attributes(&volume.mountpoint());
    assert!(xattrs.contains("security.capability"), "{xattrs}");
    assert!(!xattrs.contains("user.origin"), "{xattrs}");
    assert!(!xattrs.contains("posix_acl"), "{xattrs}");
}

#[test]
fn an_api_backup_names_files_written_while_it_read_them() {
    let volume = support::TestVolume::create("torn");
    let root = volume.mountpoint();
    // Read first (names sort before the log), and large enough that the
    // archive takes more than a second to reach the log.
    std::fs::write(root.join("a-bulk"), support::random_bytes(96 << 20, 7)).unwrap();
    let writer = format!("lifeboat-test-torn-writer-{}", std::process::id());
    let _ = Command::new("docker").args(["rm", "-f", &writer]).output();
    let mount = format!("{}:/data", volume.name());
    run(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &writer,
            "-v",
            &mount,
            "lifeboat-test/busybox:1",
            "sh",
            "-c",
            "while true; do echo line >> /data/z-log; usleep 50000; done",
        ],
    );
    let _remove = support::RemoveContainer(writer.clone());
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let plan = ws.ok(&["plan"]);
    assert!(
        plan.stdout().contains("is used by running container"),
        "{plan}"
    );
    let applied = ws.ok(&["apply", "--auto-approve", "--access", "api"]);
    let stdout = applied.stdout();
    let note = stdout
        .lines()
        .find(|line| line.contains("changed while the backup read them"))
        .unwrap_or_else(|| panic!("no note on the file being written: {applied}"));
    assert!(note.contains("z-log") && !note.contains("a-bulk"), "{note}");
}
