//! SFTP repositories against Debian's OpenSSH server on loopback: the
//! backend conformance suite, the CLI's whole cycle into an SFTP-only
//! spec, and the failures people meet (an unknown host key, a server that
//! is down, a connection that drops, one that never answers).
//!
//! The shared server comes from scripts/test.sh (`ensure_sshd`, facts in
//! /var/lib/lifeboat-sshd/env). Tests that stop or cut a server start
//! their own with the same script (`start_sshd`) on a port of their own.
//! The server runs on this host as root, so a test's remote directory is
//! a local temporary directory too: the test reads it directly and it
//! goes away with the test.

use crate::harness::{ServerFacts, Workspace};
use crate::support;
use lifeboat::failure::{FailureClass, io_class};
use lifeboat::repo::backend::sftp::{Patience, SftpBackend, SftpTarget};
use lifeboat::repo::backend::{Backend, FileKind, conformance};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// What a test needs to reach an sshd.
struct Server {
    host: String,
    port: u16,
    user: String,
    identity: PathBuf,
    known_hosts: PathBuf,
}

impl Server {
    /// The facts an env file of `start_sshd` holds.
    fn from_env_file(file: &Path) -> Server {
        let facts = ServerFacts::read(file, "the SFTP server", "ensure_sshd", "ensure-sshd.sh");
        let value = |key: &str| facts.get(key);
        Server {
            host: value("LIFEBOAT_TEST_SFTP_HOST"),
            port: value("LIFEBOAT_TEST_SFTP_PORT").parse().unwrap(),
            user: value("LIFEBOAT_TEST_SFTP_USER"),
            identity: value("LIFEBOAT_TEST_SFTP_IDENTITY").into(),
            known_hosts: value("LIFEBOAT_TEST_SFTP_KNOWN_HOSTS").into(),
        }
    }

    /// The server scripts/test.sh started for every test.
    fn shared() -> Server {
        Server::from_env_file(Path::new("/var/lib/lifeboat-sshd/env"))
    }

    fn target(&self, path: &Path) -> SftpTarget {
        SftpTarget {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            path: path.display().to_string(),
            identity: Some(self.identity.clone()),
            known_hosts: Some(self.known_hosts.clone()),
        }
    }

    fn backend(&self, path: &Path) -> SftpBackend {
        SftpBackend::new(self.target(path)).unwrap()
    }

    /// The `sftp` block of a spec for a repository in `path`.
    fn block(&self, path: &Path, known_hosts: &Path) -> String {
        format!(
            "  sftp {{\n    host        = \"{}\"\n    port        = {}\n    user        = \"{}\"\n    \
             path        = \"{}\"\n    identity    = \"{}\"\n    known_hosts = \"{}\"\n  }}\n",
            self.host,
            self.port,
            self.user,
            path.display(),
            self.identity.display(),
            known_hosts.display()
        )
    }
}

/// An sshd of one test, on a port of its own, stopped when dropped.
struct OwnServer {
    dir: tempfile::TempDir,
    server: Server,
}

impl OwnServer {
    fn start() -> OwnServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/ensure-sshd.sh");
        let started = Command::new("bash")
            .arg("-c")
            .arg("source \"$1\" && start_sshd \"$2\" \"$3\"")
            .arg("bash")
            .arg(&script)
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "start_sshd: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        let server = Server::from_env_file(&dir.path().join("env"));
        OwnServer { dir, server }
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("sshd.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok())
    }

    /// Ends every connection (the listener's children) and keeps listening.
    fn cut_connections(&self) {
        let pid = self.pid().expect("sshd runs");
        for child in children(pid) {
            // Each connection's own process and its privilege-separated child.
            for grandchild in children(child) {
                kill(grandchild);
            }
            kill(child);
        }
    }

    /// Stops the server and its connections.
    fn stop(&self) {
        if let Some(pid) = self.pid() {
            self.cut_connections();
            kill(pid);
            let _ = std::fs::remove_file(self.dir.path().join("sshd.pid"));
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn kill(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A spec directory whose only repository is `main` on `server` in
/// `remote`, protecting `volume` as `volume.data`.
fn sftp_workspace(server: &Server, remote: &Path, volume: &str) -> Workspace {
    sftp_workspace_trusting(server, remote, volume, &server.known_hosts)
}

fn sftp_workspace_trusting(
    server: &Server,
    remote: &Path,
    volume: &str,
    known_hosts: &Path,
) -> Workspace {
    let ws = Workspace::with_volumes(&[("data", volume)]);
    let file = ws.path().join("main.hcl");
    let spec = std::fs::read_to_string(&file).unwrap();
    let local = format!("  path = \"{}\"\n", ws.repository().display());
    assert!(spec.contains(&local), "{spec}");
    std::fs::write(
        &file,
        spec.replace(&local, &server.block(remote, known_hosts)),
    )
    .unwrap();
    ws
}

#[test]
fn an_sftp_backend_conforms_and_is_left_without_files() {
    let server = Server::shared();
    let dir = tempfile::tempdir().unwrap();
    let locations = AtomicU32::new(0);
    let violations = conformance::run(&|| -> Arc<dyn Backend> {
        let n = locations.fetch_add(1, Ordering::SeqCst);
        Arc::new(server.backend(&dir.path().join(format!("location{n}"))))
    });
    let listed: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    assert!(violations.is_empty(), "{}", listed.join("\n"));
    let left = crate::harness::files_in(dir.path());
    assert!(left.is_empty(), "the suite left files behind: {left:?}");
}

/// The engine calls backends from threads of its own tokio runtime, pack
/// writers from several threads at once, and may drop them there.
#[test]
fn calls_from_inside_a_tokio_runtime_and_from_many_threads_work() {
    let server = Server::shared();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(server.backend(&dir.path().join("repo")));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        backend
            .save(FileKind::Snapshot, "inside", b"in a runtime")
            .unwrap();
        let writers: Vec<_> = (0..8u8)
            .map(|n| {
                let backend = backend.clone();
                tokio::task::spawn_blocking(move || {
                    let name = format!("{n:02x}{}", "0".repeat(62));
                    backend
                        .save(FileKind::Pack, &name, &vec![n; 100_000])
                        .unwrap();
                    name
                })
            })
            .collect();
        let mut names = Vec::new();
        for writer in writers {
            names.push(writer.await.unwrap());
        }
        let reader = backend.clone();
        let loaded = tokio::spawn(async move { reader.load(FileKind::Snapshot, "inside", None) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded, b"in a runtime");
        let mut listed = backend.list(FileKind::Pack).unwrap();
        listed.sort();
        assert_eq!(listed, names);
        assert_eq!(
            backend
                .load(FileKind::Pack, &names[3], Some(10..20))
                .unwrap(),
            vec![3; 10]
        );
        // The last handle goes inside the runtime: no panic, no ssh left.
        drop(backend);
    });
    assert!(
        dir.path().join("repo/data/03").is_dir(),
        "packs fan out as on disk"
    );
}

#[test]
fn backup_check_restore_forget_and_prune_through_the_cli() {
    let server = Server::shared();
    let remote = tempfile::tempdir().unwrap();
    let repository = remote.path().join("repo");
    let volume = support::TestVolume::create("sftp-cycle");
    let ws = sftp_workspace(&server, &repository, volume.name());
    for round in 0..2u64 {
        std::fs::write(
            volume.mountpoint().join(format!("round{round}")),
            support::random_bytes(300_000, 0x5f7f_1234 ^ round),
        )
        .unwrap();
        let applied = ws.ok(&["apply", "--auto-approve", "--replace", "volume.data"]);
        assert!(
            applied
                .stdout()
                .contains(&format!("sftp://root@127.0.0.1:{}", server.port))
                || round > 0,
            "{applied}"
        );
    }
    let ids = crate::harness::snapshot_ids(&ws);
    assert_eq!(ids.len(), 2);
    let checked = ws.ok(&["check", "--read-data"]);
    assert!(
        checked.stdout().contains("no errors were found"),
        "{checked}"
    );

    // The same directory opens as a local repository (one layout).
    let local = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let block_start = spec.find("  sftp {").unwrap();
    let block_end = block_start + spec[block_start..].find("  }\n").unwrap() + 4;
    let as_local = format!(
        "{}  path = \"{}\"\n{}",
        &spec[..block_start],
        repository.display(),
        &spec[block_end..]
    );
    std::fs::write(local.path().join("main.hcl"), as_local).unwrap();
    assert_eq!(crate::harness::snapshot_ids(&local), ids);

    // The latest snapshot restores into another volume, whole.
    let target = support::TestVolume::create("sftp-cycle-target");
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    let restore_ws = Workspace::with_volumes(&[]);
    std::fs::write(
        restore_ws.path().join("main.hcl"),
        spec.replace(volume.name(), target.name()),
    )
    .unwrap();
    restore_ws.ok(&["restore", "--auto-approve"]);
    support::compare_trees(&volume.mountpoint(), &target.mountpoint())
        .unwrap_or_else(|diff| panic!("restored from SFTP:\n{diff}"));

    ws.ok(&["forget", "--auto-approve", &ids[0]]);
    let pruned = ws.ok(&["prune"]);
    assert!(pruned.stdout().contains("freed"), "{pruned}");
    assert_eq!(crate::harness::snapshot_ids(&ws), ids[1..]);
    let checked = ws.ok(&["check", "--read-data"]);
    assert!(
        checked.stdout().contains("no errors were found"),
        "{checked}"
    );
}

#[test]
fn a_host_key_not_in_known_hosts_is_refused_with_the_file_and_the_fix() {
    let server = Server::shared();
    let remote = tempfile::tempdir().unwrap();
    let volume = support::TestVolume::create("sftp-hostkey");
    let keys = tempfile::tempdir().unwrap();
    // Another key for the same host (a changed key), and an empty file (an unknown one).
    let other = keys.path().join("other");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success());
    let other_public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let changed = keys.path().join("changed_known_hosts");
    let key: Vec<&str> = other_public.split_whitespace().take(2).collect();
    std::fs::write(
        &changed,
        format!("[127.0.0.1]:{} {}\n", server.port, key.join(" ")),
    )
    .unwrap();
    let unknown = keys.path().join("empty_known_hosts");
    std::fs::write(&unknown, "").unwrap();
    for known_hosts in [&changed, &unknown] {
        let ws = sftp_workspace_trusting(&server, remote.path(), volume.name(), known_hosts);
        let planned = ws.run(&["plan"]);
        assert_eq!(planned.code(), 1, "{planned}");
        // The plan marks what needs the repository `!`, with why.
        let said = format!("{} {}", planned.stdout(), planned.stderr()).replace('\n', " ");
        let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            said.contains(&known_hosts.display().to_string()),
            "{planned}"
        );
        assert!(
            said.contains(&format!(
                "ssh-keyscan -p {} 127.0.0.1 >> {}",
                server.port,
                known_hosts.display()
            )),
            "{planned}"
        );
        assert!(
            std::fs::read_dir(remote.path()).unwrap().next().is_none(),
            "nothing written past a refused key"
        );
    }
}

#[test]
fn a_stopped_server_is_an_unavailable_repository_named_in_the_error() {
    let own = OwnServer::start();
    let remote = tempfile::tempdir().unwrap();
    let volume = support::TestVolume::create("sftp-stopped");
    std::fs::write(volume.mountpoint().join("file"), b"kept").unwrap();
    let ws = sftp_workspace(&own.server, &remote.path().join("repo"), volume.name());
    ws.ok(&["apply", "--auto-approve"]);
    own.stop();

    let started = std::time::Instant::now();
    let applied = ws.run(&["apply", "--auto-approve", "--replace", "volume.data"]);
    assert_eq!(applied.code(), 1, "{applied}");
    // What needs the repository fails, named with why (the plan's `!`
    // line and the outcome); the run goes on without it.
    let said = format!("{}{}", applied.stdout(), applied.stderr());
    let location = format!(
        "sftp://root@127.0.0.1:{}{}",
        own.server.port,
        remote.path().join("repo").display()
    );
    assert!(said.contains(&location), "{applied}");
    assert!(said.contains("Connection refused"), "{applied}");
    assert!(said.contains("gave up after 4 tries"), "{applied}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // The class, as run records and metrics see it.
    let spec = lifeboat::spec::load_dir(ws.path(), &Default::default()).unwrap();
    let settings = lifeboat::apply::workspace::OpenSettings {
        lock_timeout: Duration::from_secs(1),
        command: "test".into(),
        cache_dir: None,
    };
    let error = lifeboat::apply::workspace::open_repositories(&spec, &settings)
        .err()
        .expect("the repository cannot be opened");
    assert_eq!(
        error.class(),
        FailureClass::RepositoryUnavailable,
        "{error}"
    );
}

#[test]
fn a_dropped_connection_is_made_again_without_the_caller_noticing() {
    let own = OwnServer::start();
    let remote = tempfile::tempdir().unwrap();
    let backend = own.server.backend(remote.path());
    backend
        .save(FileKind::Snapshot, "before", b"saved before the cut")
        .unwrap();
    own.cut_connections();
    assert_eq!(
        backend.load(FileKind::Snapshot, "before", None).unwrap(),
        b"saved before the cut"
    );
    own.cut_connections();
    backend
        .save(FileKind::Snapshot, "after", b"saved after")
        .unwrap();
    assert_eq!(backend.stat(FileKind::Snapshot, "after").unwrap(), 11);
}

/// A server that accepts and never answers: every try times out, and
/// what is given up on is transient (worth a later run), quickly.
#[test]
fn a_server_that_never_answers_is_transient_after_the_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let server = Server::shared();
    let remote = tempfile::tempdir().unwrap();
    let target = SftpTarget {
        port,
        ..server.target(remote.path())
    };
    let patience = Patience {
        attempts: 2,
        first_backoff: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(1),
        call_timeout: Duration::from_secs(5),
    };
    let backend = SftpBackend::with_patience(target, patience).unwrap();
    let started = std::time::Instant::now();
    let error = backend.list(FileKind::Snapshot).unwrap_err();
    assert_eq!(io_class(&error), FailureClass::Transient, "{error}");
    assert!(
        error.to_string().contains("gave up after 2 tries"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

const BACKUP: [&str; 4] = ["apply", "--auto-approve", "--replace", "volume.data"];

/// `count` files of incompressible data, new for `seed`.
fn fill(root: &Path, seed: u64, count: u64) {
    for file in 0..count {
        std::fs::write(
            root.join(format!("s{seed}-f{file}.bin")),
            support::random_bytes(
                100_000 + (file as usize * 7919 % 100_000),
                seed * 1000 + file,
            ),
        )
        .unwrap();
    }
}

/// Crash safety and locks hold over SFTP as on disk: backups killed at
/// several points leave a repository that checks and that the next run
/// completes; a backup holding its lock makes prune wait and fail naming
/// it, and once it is gone `unlock` clears the way.
#[test]
fn killed_backups_and_held_locks_behave_as_on_disk() {
    let server = Server::shared();
    let remote = tempfile::tempdir().unwrap();
    let repository = remote.path().join("repo");
    let volume = support::TestVolume::create("sftp-crash");
    fill(&volume.mountpoint(), 1, 20);
    let ws = sftp_workspace(&server, &repository, volume.name());
    let started = std::time::Instant::now();
    ws.ok(&BACKUP);
    let whole = started.elapsed();
    let mut kills = 0;
    for (point, share) in [0.3, 0.6, 0.9].into_iter().enumerate() {
        fill(&volume.mountpoint(), 10 + point as u64, 20);
        if crate::crash::kill_after(&ws, &BACKUP, whole.mul_f64(share)) {
            kills += 1;
        }
        ws.ok(&["check"]);
    }
    assert!(kills >= 1, "no backup was killed before finishing");
    ws.ok(&["unlock"]);
    let finished = ws.ok(&BACKUP);
    assert!(
        finished.stdout().contains("Apply complete! 1 backed up"),
        "{finished}"
    );
    ws.ok(&["check", "--read-data"]);

    fill(&volume.mountpoint(), 3, 20);
    let locks = repository.join("locks");
    // A lock under its name, not the temporary file it is written as.
    let named_locks = || {
        crate::harness::files_in(&locks)
            .into_iter()
            .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'))
            .count()
    };
    let mut holder = crate::harness::frozen_lock_holder(&ws, &BACKUP, || named_locks() > 0);
    let blocked = ws.run(&["prune", "--lock-timeout", "1s"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(blocked.code(), 1, "{blocked}");
    assert!(blocked.stderr().contains("locked by `apply`"), "{blocked}");
    assert!(
        blocked.stderr().contains(&format!("pid {}", holder.id())),
        "{blocked}"
    );
    ws.ok(&["unlock"]);
    assert_eq!(named_locks(), 0, "unlock removed the stale lock");
    ws.ok(&BACKUP);
    ws.ok(&["check", "--read-data"]);
}
