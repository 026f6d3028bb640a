//! Running the `lifeboat` binary on a spec directory of a test.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A spec directory with its own repository, removed at the end of the test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub passphrase: String,
}

impl Workspace {
    /// A spec protecting `volumes` (spec name → Docker volume name) in a
    /// repository inside the workspace.
    pub fn with_volumes(volumes: &[(&str, &str)]) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spec = format!(
            "repository \"main\" {{\n  path = \"{}\"\n  encryption {{ passphrase_env = \"LIFEBOAT_TEST_PASSPHRASE\" }}\n}}\n\npolicy \"default\" {{\n  rpo = \"24h\"\n  retention {{ keep_last = 7 }}\n}}\n",
            dir.path().join("repo").display()
        );
        for (name, docker_name) in volumes {
            spec.push_str(&format!(
                "\nvolume \"{name}\" {{\n  name   = \"{docker_name}\"\n  policy = policy.default\n}}\n"
            ));
        }
        std::fs::write(dir.path().join("main.hcl"), spec).expect("write spec");
        Workspace {
            dir,
            passphrase: "correct horse battery staple".to_string(),
        }
    }

    /// Another workspace with the same spec and repository, but with the
    /// Docker volume `original` swapped for `replacement` (to restore a
    /// snapshot somewhere else and compare).
    pub fn sharing_repository(&self, original: &str, replacement: &str) -> Workspace {
        let other = Workspace::with_volumes(&[]);
        let spec = std::fs::read_to_string(self.path().join("main.hcl")).unwrap();
        std::fs::write(
            other.path().join("main.hcl"),
            spec.replace(original, replacement),
        )
        .unwrap();
        other
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn repository(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The largest pack file of the repository (where a big file's data is).
    pub fn biggest_pack(&self) -> PathBuf {
        files_in(&self.repository().join("data"))
            .into_iter()
            .max_by_key(|p| p.metadata().unwrap().len())
            .unwrap()
    }

    /// The `lifeboat` process for `args` in this workspace, not yet started.
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"));
        command
            .arg("--chdir")
            .arg(self.path())
            .args(args)
            .env("LIFEBOAT_TEST_PASSPHRASE", &self.passphrase)
            .env("NO_COLOR", "1")
            .env("LIFEBOAT_CACHE_DIR", self.path().join(".cache"))
            .env_remove("DOCKER_HOST");
        command
    }

    pub fn command(&self, args: &[&str]) -> Command {
        Command::from_std(self.process(args))
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().expect("lifeboat runs"))
    }

    /// Runs and insists on exit code 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code(), 0, "lifeboat {args:?} failed:\n{run}");
        run
    }
}

/// Backs `address` up again read directly (`--access direct --replace`)
/// and insists it stored nothing new: the tree and chunks of the previous
/// backup (through the API) were the same.
pub fn assert_direct_backup_adds_nothing(ws: &Workspace, address: &str) {
    let events = ws
        .ok(&[
            "apply",
            "--auto-approve",
            "--json",
            "--access",
            "direct",
            "--replace",
            address,
        ])
        .stdout();
    let finished: serde_json::Value = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["type"] == "resource_finished")
        .expect("finished event");
    assert_eq!(finished["added_bytes"], 0, "{events}");
}

/// The repository's snapshots as `lifeboat snapshots --json` lists them (oldest first).
pub fn snapshots(ws: &Workspace) -> Vec<serde_json::Value> {
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["snapshots", "--json"]).stdout()).unwrap();
    listed.as_array().unwrap().clone()
}

/// The full ids of [`snapshots`].
pub fn snapshot_ids(ws: &Workspace) -> Vec<String> {
    snapshots(ws)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// A JSON Schema of schemas/, compiled.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Fails the test with every violation of `validator` by `value`.
pub fn assert_valid(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{value:#}");
}

/// Every file under `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// The `KEY=value` lines a test server's script (scripts/lib/ensure-*.sh)
/// wrote about the server: where it answers and how to log in.
pub struct ServerFacts {
    file: PathBuf,
    facts: std::collections::HashMap<String, String>,
}

impl ServerFacts {
    /// Reads `file`; a missing one fails the test saying that `starter`
    /// (a function of `script`, run by scripts/test.sh) starts `server`.
    pub fn read(file: &Path, server: &str, starter: &str, script: &str) -> ServerFacts {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
            panic!(
                "no facts about {server} in {} ({e}): run the tests with scripts/test.sh, \
                 which starts it ({starter} in scripts/lib/{script})",
                file.display()
            )
        });
        let facts = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        ServerFacts {
            file: file.to_path_buf(),
            facts,
        }
    }

    pub fn get(&self, key: &str) -> String {
        self.facts
            .get(key)
            .unwrap_or_else(|| panic!("{} names no {key}", self.file.display()))
            .clone()
    }
}

/// Starts `args` and freezes it (SIGSTOP) once `holds_lock` says its
/// lock is in the repository: a run that holds the lock and never ends,
/// until the test kills it.
pub fn frozen_lock_holder(
    ws: &Workspace,
    args: &[&str],
    holds_lock: impl Fn() -> bool,
) -> std::process::Child {
    let holder = ws
        .process(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !holds_lock() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no lock appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(holder.id() as libc::pid_t, libc::SIGSTOP) };
    holder
}
