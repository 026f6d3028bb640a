//! S3 repositories against Garage, a real S3-compatible server that
//! scripts/test.sh starts (scripts/lib/ensure-garage.sh): the backend
//! contract, the whole CLI workflow on a volume (backup, restore, check
//! --read-data, forget and prune, locks), SIGKILL during a backup, and a
//! node of a three-node cluster killed during one. Every test works under
//! its own key prefix (test name, pid, time) and removes what it wrote.

use crate::harness::{Run, ServerFacts, Workspace};
use crate::support;
use lifeboat::repo::backend::s3::{Patience, S3Backend, S3Settings};
use lifeboat::repo::backend::{Backend, FileKind, conformance};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where a Garage cluster answers, as its env file says.
#[derive(Clone)]
pub(crate) struct Garage {
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
}

impl Garage {
    /// The facts `KEY=value` lines of `file` give.
    fn from_env_file(file: &Path) -> Garage {
        let facts = ServerFacts::read(file, "Garage", "ensure_garage", "ensure-garage.sh");
        let fact = |key: &str| facts.get(key);
        Garage {
            endpoint: fact("LIFEBOAT_TEST_S3_ENDPOINT"),
            bucket: fact("LIFEBOAT_TEST_S3_BUCKET"),
            region: fact("LIFEBOAT_TEST_S3_REGION"),
            access_key: fact("LIFEBOAT_TEST_S3_ACCESS_KEY"),
            secret_key: fact("LIFEBOAT_TEST_S3_SECRET_KEY"),
        }
    }

    /// The single node scripts/test.sh keeps running.
    pub(crate) fn shared() -> Garage {
        Garage::from_env_file(Path::new("/var/lib/lifeboat-garage/env"))
    }

    pub(crate) fn backend(&self, prefix: &str) -> S3Backend {
        S3Backend::new(
            S3Settings {
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                region: self.region.clone(),
                prefix: prefix.to_string(),
                access_key: self.access_key.clone(),
                secret_key: self.secret_key.clone(),
                credentials_from: "the test's Garage key".into(),
            },
            Patience::default(),
        )
        .unwrap()
    }
}

/// A key prefix no other test (or run of this one) uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("lifeboat-tests/{test}-{}-{nanos}", std::process::id())
}

/// Removes every object under a prefix when dropped.
pub(crate) struct Prefix {
    pub(crate) backend: S3Backend,
}

impl Drop for Prefix {
    fn drop(&mut self) {
        for kind in FileKind::ALL {
            for name in self.backend.list(kind).unwrap_or_default() {
                let _ = self.backend.remove(kind, &name);
            }
        }
    }
}

/// A workspace whose spec keeps volume `data` in an S3-only repository
/// under its own prefix, the credentials read from files beside the spec.
struct S3Workspace {
    ws: Workspace,
    prefix: Prefix,
    garage: Garage,
}

impl S3Workspace {
    fn new(test: &str, garage: &Garage, volume: &str) -> S3Workspace {
        let ws = Workspace::with_volumes(&[("data", volume)]);
        let prefix = unique_prefix(test);
        std::fs::write(ws.path().join("access.key"), &garage.access_key).unwrap();
        std::fs::write(
            ws.path().join("secret.key"),
            format!("{}\n", garage.secret_key),
        )
        .unwrap();
        let spec = format!(
            "repository \"main\" {{\n  s3 {{\n    endpoint        = \"{}\"\n    bucket          = \"{}\"\n    region          = \"{}\"\n    prefix          = \"{prefix}\"\n    access_key_file = \"access.key\"\n    secret_key_file = \"secret.key\"\n  }}\n  encryption {{ passphrase_env = \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n\npolicy \"default\" {{\n  rpo = \"24h\"\n  retention {{ keep_last = 7 }}\n}}\n\nvolume \"data\" {{\n  name   = \"{volume}\"\n  policy = policy.default\n}}\n",
            garage.endpoint, garage.bucket, garage.region
        );
        std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
        S3Workspace {
            prefix: Prefix {
                backend: garage.backend(&prefix),
            },
            ws,
            garage: garage.clone(),
        }
    }

    /// Runs lifeboat; no output ever holds a credential.
    fn run(&self, args: &[&str]) -> Run {
        let run = self.ws.run(args);
        for secret in [&self.garage.secret_key, &self.garage.access_key] {
            assert!(
                !run.stdout().contains(secret.as_str()) && !run.stderr().contains(secret.as_str()),
                "a credential was printed:\n{run}"
            );
        }
        run
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code(), 0, "lifeboat {args:?} failed:\n{run}");
        run
    }

    /// Removes the volume, restores it and compares it with `expected`.
    fn restores_exactly(&self, volume: &support::TestVolume, expected: &Path) -> Run {
        drop(
            std::process::Command::new("docker")
                .args(["volume", "rm", "-f", volume.name()])
                .output(),
        );
        let restored = self.ok(&["restore", "--auto-approve"]);
        support::compare_trees(expected, &volume.mountpoint())
            .unwrap_or_else(|diff| panic!("restored tree differs:\n{diff}"));
        restored
    }

    fn objects(&self, kind: FileKind) -> Vec<String> {
        self.prefix.backend.list(kind).unwrap()
    }

    /// The size of every pack in the bucket.
    fn pack_bytes(&self) -> u64 {
        let backend = &self.prefix.backend;
        self.objects(FileKind::Pack)
            .iter()
            .map(|name| backend.stat(FileKind::Pack, name).unwrap())
            .sum()
    }
}

const BACKUP: [&str; 4] = ["apply", "--auto-approve", "--replace", "volume.data"];

/// `count` files of incompressible data, 50 to 250 KB each, new for `seed`.
fn fill(root: &Path, seed: u64, count: u64) {
    for file in 0..count {
        let size = 50_000 + (file as usize * 7919 % 200_000);
        std::fs::write(
            root.join(format!("s{seed}-f{file}.bin")),
            support::random_bytes(size, seed * 1000 + file),
        )
        .unwrap();
    }
}

/// A TCP proxy in front of Garage that counts the GET requests going
/// through it (ranged reads of packs, among others): what a restore costs
/// in round trips, seen from outside lifeboat.
struct GetCounter {
    endpoint: String,
    gets: Arc<std::sync::atomic::AtomicU64>,
}

impl GetCounter {
    fn start(garage: &Garage) -> GetCounter {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let upstream = garage.endpoint.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = gets.clone();
        // Detached: the threads end with the test process.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream, count: bool| {
                    let gets = counted.clone();
                    std::thread::spawn(move || {
                        let mut buffer = vec![0u8; 64 << 10];
                        // The last bytes of the previous read, so that a
                        // request line split between two reads is seen
                        // (once: every match takes at least one new byte).
                        let mut seen: Vec<u8> = b"\n".to_vec();
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0 || to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                            if count {
                                seen.extend_from_slice(&buffer[..n]);
                                let found = seen.windows(6).filter(|w| w == b"\nGET /").count();
                                gets.fetch_add(found as u64, Ordering::SeqCst);
                                seen.drain(..seen.len().saturating_sub(5));
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pipe(server, client, false);
            }
        });
        GetCounter { endpoint, gets }
    }

    fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
}

/// Issue 23: a restore from S3 reads its packs in long ranged requests,
/// several at once, and the tree ahead, instead of a request per batch of
/// 256 KiB (and Garage reads a whole block of its own for each request):
/// 600 small files restore exactly in a few dozen GETs.
#[test]
fn a_restore_from_s3_reads_a_pack_in_a_few_long_requests() {
    let shared = Garage::shared();
    let counter = GetCounter::start(&shared);
    let garage = Garage {
        endpoint: counter.endpoint.clone(),
        ..shared
    };
    let volume = support::TestVolume::create("s3-reads");
    for file in 0..600u64 {
        let dir = volume.mountpoint().join(format!("d{}", file / 50));
        std::fs::create_dir_all(&dir).unwrap();
        let size = 2_000 + (file as usize * 7919 % 30_000);
        std::fs::write(
            dir.join(format!("f{file}")),
            support::random_bytes(size, file),
        )
        .unwrap();
    }
    let state = support::keep_copy(&volume.mountpoint());
    let s3 = S3Workspace::new("reads", &garage, volume.name());
    s3.ok(&["apply", "--auto-approve"]);
    let packs = s3.objects(FileKind::Pack).len() as u64;
    let before = counter.gets();
    s3.restores_exactly(&volume, state.path());
    let gets = counter.gets() - before;
    eprintln!("restore from Garage: {gets} GET requests, {packs} packs");
    // Config, keys, index, snapshots and locks are a few GETs; the tree and
    // the data of 600 files a few more per pack.
    assert!(
        gets <= 40 + 4 * packs,
        "the restore made {gets} GET requests ({packs} packs)"
    );
}

#[test]
fn a_garage_bucket_conforms_to_the_backend_contract() {
    let garage = Garage::shared();
    let base = unique_prefix("conformance");
    let locations = AtomicU32::new(0);
    let violations = conformance::run(&|| -> Arc<dyn Backend> {
        let n = locations.fetch_add(1, Ordering::SeqCst);
        Arc::new(garage.backend(&format!("{base}/location{n}")))
    });
    let listed: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    assert!(violations.is_empty(), "{}", listed.join("\n"));
    // Nothing is left under any of the locations (the suite cleans up).
    assert!(
        garage.backend(&base).is_empty().unwrap(),
        "objects left under {base}"
    );
}

/// S3 lists at most 1000 keys an answer: a listing reads every page.
#[test]
fn listings_past_one_page_name_every_object() {
    let garage = Garage::shared();
    let prefix = Prefix {
        backend: garage.backend(&unique_prefix("pages")),
    };
    let backend = &prefix.backend;
    let names: Vec<String> = (0..1100).map(|i| format!("{i:064x}")).collect();
    std::thread::scope(|scope| {
        for part in names.chunks(100) {
            scope.spawn(move || {
                for name in part {
                    backend.save(FileKind::Snapshot, name, b"x").unwrap();
                }
            });
        }
    });
    let mut listed = backend.list(FileKind::Snapshot).unwrap();
    listed.sort();
    assert_eq!(listed, names);
}

#[test]
fn backup_restore_check_forget_prune_and_locks_work_on_s3() {
    let garage = Garage::shared();
    let volume = support::TestVolume::create("s3-workflow");
    fill(&volume.mountpoint(), 1, 6);
    std::fs::write(volume.mountpoint().join("note.txt"), "first\n").unwrap();
    let s3 = S3Workspace::new("workflow", &garage, volume.name());

    let plan = s3.ok(&["plan"]);
    assert!(plan.stdout().contains("+ volume.data"), "{plan}");
    let applied = s3.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 1 backed up"),
        "{applied}"
    );
    assert!(
        !s3.objects(FileKind::Pack).is_empty(),
        "packs are in the bucket"
    );
    assert_eq!(
        s3.objects(FileKind::Lock),
        Vec::<String>::new(),
        "locks are released"
    );

    // The second snapshot shares nothing of the first's data but a name.
    for entry in std::fs::read_dir(volume.mountpoint()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(volume.mountpoint().join("note.txt"), "second\n").unwrap();
    fill(&volume.mountpoint(), 2, 2);
    s3.ok(&BACKUP);
    let second_state = support::keep_copy(&volume.mountpoint());
    let ids = crate::harness::snapshot_ids(&s3.ws);
    assert_eq!(ids.len(), 2, "{ids:?}");
    s3.ok(&["check", "--read-data"]);

    // Restore onto a volume that is gone: exactly the latest snapshot.
    let restored = s3.restores_exactly(&volume, second_state.path());
    assert!(restored.stdout().contains("< volume.data"), "{restored}");

    // Forget the first snapshot, prune what only it used: data is freed
    // and what is left reads back whole.
    let stored_before = s3.pack_bytes();
    s3.ok(&["forget", "--auto-approve", &ids[0]]);
    s3.ok(&["prune"]);
    assert!(
        s3.pack_bytes() < stored_before / 2,
        "prune freed too little: {} of {stored_before} bytes left",
        s3.pack_bytes()
    );
    assert_eq!(crate::harness::snapshot_ids(&s3.ws), vec![ids[1].clone()]);
    s3.ok(&["check", "--read-data"]);

    // A backup holding the repository's lock (frozen mid-run): prune is
    // refused naming it, a second apply of the spec too; once the holder
    // is gone, unlock removes its lock and the next backup completes.
    fill(&volume.mountpoint(), 3, 20);
    let mut holder = crate::harness::frozen_lock_holder(&s3.ws, &BACKUP, || {
        !s3.objects(FileKind::Lock).is_empty()
    });
    let blocked = s3.run(&["prune", "--lock-timeout", "1s"]);
    assert_eq!(blocked.code(), 1, "{blocked}");
    assert!(blocked.stderr().contains("locked by `apply`"), "{blocked}");
    assert!(
        blocked.stderr().contains(&format!("pid {}", holder.id())),
        "{blocked}"
    );
    let second = s3.run(&BACKUP);
    assert_eq!(second.code(), 1, "{second}");
    assert!(
        second.stderr().contains(&format!("pid {}", holder.id())),
        "{second}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    s3.ok(&["unlock"]);
    assert_eq!(
        s3.objects(FileKind::Lock),
        Vec::<String>::new(),
        "unlock removed the stale lock"
    );
    s3.ok(&BACKUP);
    s3.ok(&["check", "--read-data"]);
}

#[test]
fn a_backup_to_s3_killed_midway_leaves_a_repository_the_next_run_completes() {
    let garage = Garage::shared();
    let volume = support::TestVolume::create("s3-crash");
    fill(&volume.mountpoint(), 1, 20);
    let s3 = S3Workspace::new("crash", &garage, volume.name());
    let started = Instant::now();
    s3.ok(&BACKUP);
    let whole = started.elapsed();

    // Kills early (planning, locking), midway (packs) and late (index,
    // snapshot), each into new content; the repository checks after each.
    let mut kills = 0;
    for (point, share) in [0.2, 0.5, 0.8, 0.95].into_iter().enumerate() {
        fill(&volume.mountpoint(), 10 + point as u64, 20);
        if crate::crash::kill_after(&s3.ws, &BACKUP, whole.mul_f64(share)) {
            kills += 1;
        }
        s3.ok(&["check"]);
    }
    assert!(
        kills >= 2,
        "only {kills} of 4 backups were killed before finishing"
    );
    let latest = support::keep_copy(&volume.mountpoint());
    let finished = s3.ok(&BACKUP);
    assert!(
        finished.stdout().contains("Apply complete! 1 backed up"),
        "{finished}"
    );
    s3.ok(&["unlock"]);
    s3.ok(&["check", "--read-data"]);
    // And what it stored is the volume as it is now.
    s3.restores_exactly(&volume, latest.path());
}

/// A three-node Garage cluster (replication factor 3) of this test alone,
/// on its own ports; stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    garage: Garage,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Three nodes use base .. base + 23; spread tests of other processes.
        let base = 41000 + (std::process::id() % 600) * 30;
        let started = garage_script(&format!(
            "ensure_garage_binary >/dev/null && start_garage_cluster '{}' 3 {base}",
            dir.path().display()
        ));
        if !started.status.success() {
            stop_cluster(dir.path());
            panic!(
                "starting a three-node Garage failed: {}{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr)
            );
        }
        let cluster = Cluster {
            garage: Garage::from_env_file(&dir.path().join("env")),
            dir,
        };
        // The key's access to the bucket reaches every node a moment after
        // the script returns: wait until the bucket answers.
        let probe = cluster.garage.backend("probe");
        let started = Instant::now();
        while let Err(e) = probe.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the three-node Garage does not answer: {e}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }

    /// Kills node `i` at once (SIGKILL), as a crash or a power cut does.
    fn kill_node(&self, i: u32) {
        let pid: i32 = std::fs::read_to_string(self.dir.path().join(format!("node{i}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: a plain signal to a server this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Runs `commands` in bash with scripts/lib/ensure-garage.sh loaded.
pub(crate) fn garage_script(commands: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/ensure-garage.sh");
    std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(". '{}' && {commands}", script.display()))
        .output()
        .unwrap()
}

fn stop_cluster(dir: &Path) {
    garage_script(&format!("stop_garage_cluster '{}'", dir.display()));
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_cluster(self.dir.path());
    }
}

#[test]
fn a_node_killed_during_a_backup_loses_nothing() {
    let cluster = Cluster::start();
    let volume = support::TestVolume::create("s3-node-down");
    fill(&volume.mountpoint(), 1, 20);
    let s3 = S3Workspace::new("node-down", &cluster.garage, volume.name());
    let started = Instant::now();
    s3.ok(&BACKUP);
    let whole = started.elapsed();

    fill(&volume.mountpoint(), 2, 20);
    let latest = support::keep_copy(&volume.mountpoint());
    let events_file = s3.ws.path().join("events.json");
    let mut backup = s3
        .ws
        .process(&[
            "apply",
            "--auto-approve",
            "--replace",
            "volume.data",
            "--json",
        ])
        .stdout(std::fs::File::create(&events_file).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(whole.mul_f64(0.4));
    assert!(
        backup.try_wait().unwrap().is_none(),
        "the backup finished before the node went down"
    );
    // Node 1 is the endpoint; the one killed is a replica it writes to.
    cluster.kill_node(3);
    let status = backup.wait().unwrap();
    if !status.success() {
        let events = std::fs::read_to_string(&events_file).unwrap();
        let failed: Vec<serde_json::Value> = events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["type"] == "resource_failed")
            .collect();
        assert!(
            failed
                .iter()
                .all(|e| e["class"] == "transient" || e["class"] == "repository_unavailable"),
            "a failure while a node went down must be transient or repository_unavailable: \
             {events}"
        );
    }
    // With the node still down, the next run completes and everything
    // reads back.
    s3.ok(&BACKUP);
    s3.ok(&["check", "--read-data"]);
    s3.restores_exactly(&volume, latest.path());
}

#[test]
fn missing_credentials_are_named_never_shown() {
    let volume = support::TestVolume::create("s3-credentials");
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    let spec = format!(
        "repository \"offsite\" {{\n  s3 {{\n    endpoint       = \"http://127.0.0.1:9\"\n    bucket         = \"b\"\n    access_key_env = \"LIFEBOAT_TEST_UNSET_ACCESS_KEY\"\n    secret_key_env = \"LIFEBOAT_TEST_SECRET_KEY\"\n  }}\n  encryption {{ passphrase_env = \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n\npolicy \"default\" {{\n  rpo = \"24h\"\n}}\n\nvolume \"data\" {{\n  name   = \"{}\"\n  policy = policy.default\n}}\n",
        volume.name()
    );
    std::fs::write(ws.path().join("main.hcl"), spec).unwrap();
    let plan = Run(ws
        .process(&["plan"])
        .env_remove("LIFEBOAT_TEST_UNSET_ACCESS_KEY")
        .env("LIFEBOAT_TEST_SECRET_KEY", "do-not-print-me")
        .output()
        .unwrap());
    assert_eq!(plan.code(), 1, "{plan}");
    let message = plan.stderr();
    assert!(message.contains("repository.offsite"), "{plan}");
    assert!(
        message.contains("LIFEBOAT_TEST_UNSET_ACCESS_KEY is not set"),
        "{plan}"
    );
    assert!(message.contains("main.hcl:1:"), "{plan}");
    assert!(!message.contains("do-not-print-me"), "{plan}");

    // Both a variable and a file for one key: `validate` names the place.
    let both = std::fs::read_to_string(ws.path().join("main.hcl"))
        .unwrap()
        .replace(
            "    bucket ",
            "    secret_key_file = \"secret.key\"\n    bucket ",
        );
    std::fs::write(ws.path().join("main.hcl"), both).unwrap();
    let validated = ws.run(&["validate"]);
    assert_eq!(validated.code(), 1, "{validated}");
    assert!(
        validated
            .stderr()
            .contains("`secret_key_env` and `secret_key_file`"),
        "{validated}"
    );
    assert!(validated.stderr().contains("main.hcl:4:"), "{validated}");
}
