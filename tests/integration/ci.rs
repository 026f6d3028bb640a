//! examples/ci/: the pipelines' lifeboat commands, run as the pipelines run
//! them, on a second "machine" (the CI runner) that reaches only the S3
//! repository (Garage, which scripts/test.sh starts) and the engine over
//! `tcp://`, and plans exactly what the host plans.
//!
//! The commands are read from the pipeline files themselves, so a pipeline
//! changed into something that does not work fails here.

use crate::s3::{Garage, Prefix, garage_script, unique_prefix};
use assert_cmd::Command;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PIPELINES: [&str; 2] = [".github/workflows/lifeboat.yml", ".gitlab-ci.yml"];

const PASSPHRASE: &str = "ci example passphrase";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci")
}

/// The lifeboat commands of a pipeline file, in order: each line that runs
/// `lifeboat` (in a GitHub `run:` block or a GitLab `script:` list), cut
/// where the shell takes over (`>plan.md || status=$?`), split into
/// arguments.
fn lifeboat_commands(pipeline: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(example_dir().join(pipeline)).unwrap();
    text.lines()
        .map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("- ").unwrap_or(line);
            line.strip_prefix("run: ").unwrap_or(line)
        })
        .filter_map(|line| line.strip_prefix("lifeboat "))
        .map(|command| {
            let end = command.find(['>', '|', ';', '&']).unwrap_or(command.len());
            let arguments: Vec<String> = command[..end]
                .split_whitespace()
                .map(str::to_string)
                .collect();
            assert!(
                arguments.iter().all(|a| !a.contains(['$', '"', '\'', '`'])),
                "{pipeline}: `lifeboat {command}` uses the shell in its arguments: this \
                 test runs lifeboat's arguments as written, keep them literal"
            );
            arguments
        })
        .collect()
}

/// The exit codes a pipeline accepts from each of its lifeboat commands.
fn accepted_codes(arguments: &[String]) -> &'static [i32] {
    match arguments.first().map(String::as_str) {
        Some("plan") if arguments.iter().any(|a| a == "--detailed-exitcode") => &[0, 2],
        _ => &[0],
    }
}

/// Forwards every connection to 127.0.0.1:PORT to the local engine's unix
/// socket, as a remote engine reached over `tcp://` is; returns the port
/// and the count of connections forwarded. The listener lives until the
/// test process ends.
fn engine_over_tcp() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            counted.fetch_add(1, Ordering::Relaxed);
            let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                continue;
            };
            forward(client, engine);
        }
    });
    (port, connections)
}

/// Copies bytes both ways between `client` and `engine` until each side ends.
fn forward(client: TcpStream, engine: UnixStream) {
    let (Ok(mut client_reader), Ok(mut engine_writer)) = (client.try_clone(), engine.try_clone())
    else {
        return;
    };
    let (mut engine_reader, mut client_writer) = (engine, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut engine_writer);
        let _ = engine_writer.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut engine_reader, &mut client_writer);
        let _ = client_writer.shutdown(Shutdown::Write);
    });
}

/// The example's S3 repository, put in Garage under a prefix of its own.
#[derive(Clone)]
struct Offsite {
    garage: Garage,
    prefix: String,
}

/// One checkout of the spec on one machine: the host (the engine's local
/// socket) or the runner (the engine over `tcp://`).
struct Machine {
    checkout: tempfile::TempDir,
    docker_host: Option<String>,
    offsite: Offsite,
    /// A directory put first in PATH (the runner's `ssh`).
    path_first: Option<PathBuf>,
}

impl Machine {
    /// examples/ci/main.hcl checked out into a directory of this machine,
    /// protecting `volumes` (the example's Docker names → this test's).
    fn checkout(
        docker_host: Option<String>,
        volumes: &[(&str, &str)],
        offsite: &Offsite,
    ) -> Machine {
        let checkout = tempfile::tempdir().unwrap();
        let mut spec = std::fs::read_to_string(example_dir().join("main.hcl")).unwrap();
        for (example, test) in volumes {
            assert!(spec.contains(example), "main.hcl names {example}");
            spec = spec.replace(&format!("\"{example}\""), &format!("\"{test}\""));
        }
        std::fs::write(checkout.path().join("main.hcl"), spec).unwrap();
        Machine {
            checkout,
            docker_host,
            offsite: offsite.clone(),
            path_first: None,
        }
    }

    /// This machine, reaching `ssh://` hosts with `client`'s ssh.
    fn with_ssh(mut self, client: &SshClient) -> Machine {
        self.path_first = Some(client.dir.path().to_path_buf());
        self
    }

    /// Runs lifeboat as CI does: the repository's place through
    /// `LIFEBOAT_VAR_s3_*`, its secrets through the environment. No output
    /// ever holds a secret.
    fn run(&self, arguments: &[impl AsRef<std::ffi::OsStr>]) -> std::process::Output {
        let garage = &self.offsite.garage;
        let mut command = Command::cargo_bin("lifeboat").unwrap();
        command
            .arg("--chdir")
            .arg(self.checkout.path())
            .args(arguments)
            .env("LIFEBOAT_VAR_s3_endpoint", &garage.endpoint)
            .env("LIFEBOAT_VAR_s3_bucket", &garage.bucket)
            .env("LIFEBOAT_VAR_s3_region", &garage.region)
            .env("LIFEBOAT_VAR_s3_prefix", &self.offsite.prefix)
            .env("LIFEBOAT_S3_ACCESS_KEY", &garage.access_key)
            .env("LIFEBOAT_S3_SECRET_KEY", &garage.secret_key)
            .env("LIFEBOAT_PASSPHRASE", PASSPHRASE)
            .env("NO_COLOR", "1")
            // Each machine has its own cache.
            .env("LIFEBOAT_CACHE_DIR", self.checkout.path().join(".cache"))
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        match &self.docker_host {
            Some(host) => command.env("DOCKER_HOST", host),
            None => command.env_remove("DOCKER_HOST"),
        };
        if let Some(dir) = &self.path_first {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", dir.display()));
        }
        let output = command.output().unwrap();
        let printed =
            [&output.stdout, &output.stderr].map(|o| String::from_utf8_lossy(o).into_owned());
        for secret in [
            garage.secret_key.as_str(),
            garage.access_key.as_str(),
            PASSPHRASE,
        ] {
            assert!(
                !printed.iter().any(|o| o.contains(secret)),
                "a secret was printed: {}",
                show(&output)
            );
        }
        output
    }

    /// `plan --json`, less what differs between two plans of the same
    /// state made moments apart: `created_at`, and the snapshots' ages at
    /// that moment (`age_seconds` of a reason; the snapshots' times stay).
    fn plan_json(&self) -> serde_json::Value {
        let output = self.run(&["plan", "--json"]);
        assert!(
            matches!(output.status.code(), Some(0 | 2)),
            "plan --json: {}",
            show(&output)
        );
        let mut plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        plan.as_object_mut().unwrap().remove("created_at");
        for change in plan["changes"].as_array_mut().unwrap() {
            for reason in change["reasons"].as_array_mut().unwrap() {
                reason.as_object_mut().unwrap().remove("age_seconds");
            }
        }
        plan
    }
}

/// The runner's ssh client for the engine's host, as docker-access.sh and
/// examples/ci/README.md set it up (a key the host accepts, the host's key
/// in known_hosts, a `Host` entry for a port other than 22), here without
/// touching this machine's ~/.ssh: an `ssh` first in PATH that reads its
/// own config file. The host is the sshd scripts/test.sh starts
/// (scripts/lib/ensure-sshd.sh), where `docker` reaches the engine.
struct SshClient {
    dir: tempfile::TempDir,
    docker_host: String,
}

impl SshClient {
    fn new() -> SshClient {
        let file = "/var/lib/lifeboat-sshd/env";
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
            panic!(
                "no sshd facts in {file} ({e}): run the tests with scripts/test.sh, which \
                 starts sshd (ensure_sshd in scripts/lib/ensure-sshd.sh)"
            )
        });
        let fact = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{file} names no {key}"))
        };
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            format!(
                "Host lifeboat-engine\n  HostName {}\n  Port {}\n  IdentityFile {}\n  \
                 UserKnownHostsFile {}\n",
                fact("LIFEBOAT_TEST_SFTP_HOST"),
                fact("LIFEBOAT_TEST_SFTP_PORT"),
                fact("LIFEBOAT_TEST_SFTP_IDENTITY"),
                fact("LIFEBOAT_TEST_SFTP_KNOWN_HOSTS")
            ),
        )
        .unwrap();
        let ssh = dir.path().join("ssh");
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                config.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let docker_host = format!("ssh://{}@lifeboat-engine", fact("LIFEBOAT_TEST_SFTP_USER"));
        SshClient { dir, docker_host }
    }
}

/// A key of the shared Garage that may only read its bucket, deleted when
/// dropped.
struct ReadOnlyKey {
    name: String,
    access_key: String,
    secret_key: String,
}

impl ReadOnlyKey {
    fn create(garage: &Garage) -> ReadOnlyKey {
        let name = format!("lifeboat-ci-read-only-{}", std::process::id());
        let made = garage_script(&format!(
            "garage_cli \"$LIFEBOAT_GARAGE_DIR\" key create {name} && \
             garage_cli \"$LIFEBOAT_GARAGE_DIR\" bucket allow --read {} --key {name}",
            garage.bucket
        ));
        assert!(made.status.success(), "{}", show(&made));
        let text = String::from_utf8_lossy(&made.stdout);
        let field = |label: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(label))
                .map(|value| value.trim().to_string())
                .unwrap_or_else(|| panic!("garage key create printed no {label:?}: {text}"))
        };
        ReadOnlyKey {
            access_key: field("Key ID:"),
            secret_key: field("Secret key:"),
            name,
        }
    }
}

impl Drop for ReadOnlyKey {
    fn drop(&mut self) {
        garage_script(&format!(
            "garage_cli \"$LIFEBOAT_GARAGE_DIR\" key delete --yes {}",
            self.name
        ));
    }
}

fn show(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_pipelines_commands_plan_on_a_runner_what_the_host_plans_and_apply_on_release() {
    // Both pipelines run the same lifeboat commands: running them once
    // runs each pipeline's.
    let commands = lifeboat_commands(PIPELINES[0]);
    for pipeline in &PIPELINES[1..] {
        assert_eq!(
            lifeboat_commands(pipeline),
            commands,
            "{pipeline} and {} run different lifeboat commands",
            PIPELINES[0]
        );
    }
    let subcommands: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(
        subcommands,
        ["fmt", "validate", "plan", "apply"],
        "the pipelines check the format, validate, plan, then apply on release: {commands:?}"
    );
    assert!(
        commands[2]
            .windows(2)
            .any(|w| w == ["--format", "markdown"]),
        "the pull-request comment is the Markdown plan: {commands:?}"
    );

    let uploads = crate::support::TestVolume::create("ci-uploads");
    let config = crate::support::TestVolume::create("ci-config");
    std::fs::write(
        uploads.mountpoint().join("photo.jpg"),
        b"not really a photo",
    )
    .unwrap();
    std::fs::write(config.mountpoint().join("app.toml"), b"debug = false\n").unwrap();
    let volumes = [
        ("shop_uploads", uploads.name()),
        ("shop_config", config.name()),
    ];
    let garage = Garage::shared();
    let offsite = Offsite {
        prefix: unique_prefix("ci"),
        garage: garage.clone(),
    };
    let _removed_at_the_end = Prefix {
        backend: garage.backend(&offsite.prefix),
    };
    let host = Machine::checkout(None, &volumes, &offsite);
    let (port, connections) = engine_over_tcp();
    let runner = Machine::checkout(Some(format!("tcp://127.0.0.1:{port}")), &volumes, &offsite);

    for (i, arguments) in commands.iter().enumerate() {
        if arguments[0] == "apply" {
            // The release: what was planned in the pull request.
            assert_eq!(host.plan_json(), runner.plan_json(), "before the release");
        }
        let output = runner.run(arguments);
        let code = output.status.code().unwrap_or(-1);
        assert!(
            accepted_codes(arguments).contains(&code),
            "step {i}: lifeboat {}: {}",
            arguments.join(" "),
            show(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        if arguments[0] == "plan" {
            assert_eq!(code, 2, "both volumes are due: {}", show(&output));
            assert!(stdout.starts_with("### lifeboat plan"), "{stdout}");
            for address in ["volume.uploads", "volume.config"] {
                assert!(stdout.contains(address), "{stdout}");
            }
        }
        if arguments[0] == "apply" {
            assert!(stdout.contains("2 backed up"), "{}", show(&output));
        }
    }

    // After the release both machines see the same snapshots: nothing to do.
    let after = runner.plan_json();
    assert_eq!(host.plan_json(), after, "after the release");
    assert_eq!(after["summary"]["to_back_up"], 0, "{after:#}");
    let code = runner.run(&["plan", "--detailed-exitcode"]).status.code();
    assert_eq!(code, Some(0));
    assert!(
        connections.load(Ordering::Relaxed) > 0,
        "the runner reached the engine over tcp://"
    );

    // A runner that reaches the engine over ssh:// instead plans the same.
    let ssh = SshClient::new();
    let over_ssh =
        Machine::checkout(Some(ssh.docker_host.clone()), &volumes, &offsite).with_ssh(&ssh);
    assert_eq!(over_ssh.plan_json(), host.plan_json(), "over ssh://");

    // The pull request's plan job may hold a key that can only read
    // (examples/ci/README.md): planning writes nothing.
    let key = ReadOnlyKey::create(&garage);
    let reading = Offsite {
        garage: Garage {
            access_key: key.access_key.clone(),
            secret_key: key.secret_key.clone(),
            ..garage.clone()
        },
        prefix: offsite.prefix.clone(),
    };
    let reader = Machine::checkout(runner.docker_host.clone(), &volumes, &reading);
    assert_eq!(reader.plan_json(), host.plan_json(), "with a read-only key");

    // The same basis: a plan the runner saved applies on the host.
    let saved = runner.checkout.path().join("release.plan");
    let output = runner.run(&[
        "plan".as_ref(),
        "--replace".as_ref(),
        "volume.uploads".as_ref(),
        "--out".as_ref(),
        saved.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let output = host.run(&["apply".as_ref(), saved.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 backed up"),
        "{}",
        show(&output)
    );
}

/// docker-access.sh, which both pipelines run before lifeboat plans or
/// applies, writes what each way to the engine needs, readable by its
/// owner alone where it is a secret, and refuses an address it cannot serve.
#[test]
fn docker_access_writes_the_key_or_certificates_each_way_to_the_engine_needs() {
    use std::os::unix::fs::PermissionsExt;
    for pipeline in PIPELINES {
        let text = std::fs::read_to_string(example_dir().join(pipeline)).unwrap();
        assert_eq!(
            text.matches("./docker-access.sh").count(),
            2,
            "{pipeline} reaches the engine before its plan and before its apply"
        );
    }
    let script = example_dir().join("docker-access.sh");
    let home = tempfile::tempdir().unwrap();
    let run = |docker_host: &str| {
        std::process::Command::new(&script)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", home.path())
            .env("DOCKER_HOST", docker_host)
            .env("DOCKER_SSH_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----")
            .env("DOCKER_SSH_KNOWN_HOSTS", "docker.example ssh-ed25519 AAAA")
            .env("DOCKER_CERT_PATH", home.path().join("tls"))
            .env("DOCKER_TLS_CA", "ca")
            .env("DOCKER_TLS_CERT", "cert")
            .env("DOCKER_TLS_KEY", "key")
            .output()
            .unwrap()
    };
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let output = run("ssh://backup@docker.example");
    assert!(output.status.success(), "{}", show(&output));
    let ssh = home.path().join(".ssh");
    let key = ssh.join("id_ed25519");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    );
    assert_eq!(mode(&key), 0o600);
    assert_eq!(
        std::fs::read_to_string(ssh.join("known_hosts")).unwrap(),
        "docker.example ssh-ed25519 AAAA\n"
    );

    let output = run("tcp://docker.example:2376");
    assert!(output.status.success(), "{}", show(&output));
    for (file, content) in [("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")] {
        let path = home.path().join("tls").join(file);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{content}\n")
        );
        assert_eq!(mode(&path), 0o600, "{file}");
    }

    let output = run("unix:///var/run/docker.sock");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ssh://user@host or tcp://host:2376"),
        "{}",
        show(&output)
    );
}
