//! Which database server a container runs, recognised by what the container
//! is (its command, the server binaries on its PATH, its environment, the
//! data directory it mounts, and its image's name as one hint among them),
//! and how such a server is dumped, loaded and asked whether it is ready.
//!
//! Pure: the facts come from the engine (see `survey`) and are untrusted;
//! only environment variable *names* are ever looked at, never values, so a
//! generated command takes credentials from the container's own environment
//! when it runs.

use crate::engine::{ContainerSummary, MountSource};
use std::collections::BTreeSet;

/// A database server init knows how to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Database {
    PostgreSql,
    MySql,
    MariaDb,
    MongoDb,
    Redis,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Database::PostgreSql => "PostgreSQL",
            Database::MySql => "MySQL",
            Database::MariaDb => "MariaDB",
            Database::MongoDb => "MongoDB",
            Database::Redis => "Redis",
        }
    }
}

/// The server binaries whose presence on a container's PATH says what it
/// is (`survey` asks each running container for them).
pub const SERVER_BINARIES: &[&str] = &["postgres", "mysqld", "mariadbd", "mongod", "redis-server"];

/// What is known of a container beyond its summary: read from the engine
/// (its configuration) and from the container itself (`command -v`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDetails {
    /// Entrypoint then command, as the container runs them.
    pub command: Vec<String>,
    /// The names of its environment variables (never their values).
    pub env_names: BTreeSet<String>,
    /// Which of [`SERVER_BINARIES`] are on its PATH; `None` when that could
    /// not be asked (the container is not running, or has no shell).
    pub binaries: Option<BTreeSet<String>>,
    /// Where it has a tmpfs mounted.
    pub tmpfs: Vec<String>,
    /// Where it has an anonymous volume mounted.
    pub anonymous_volumes: Vec<String>,
}

/// One reason to believe a container runs a given server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Its command runs the server (the program named, after wrappers such
    /// as `docker-entrypoint.sh`, `gosu USER` or `sh -c`).
    Command(String),
    /// The server binary is on its PATH.
    Binary(String),
    /// It mounts something at the server's data directory.
    DataDirectory(String),
    /// Its image is named after the server.
    ImageName(String),
    /// Its environment has the server's variables (names only). Never
    /// enough alone: an application that connects to a server has them too.
    Environment(Vec<String>),
    /// It mounts a directory only this server puts there (Redis' `/data`);
    /// never enough alone either.
    SharedDirectory(String),
}

impl Evidence {
    /// Whether this alone says which server runs (the rest only adds weight).
    fn is_conclusive(&self) -> bool {
        !matches!(
            self,
            Evidence::Environment(_) | Evidence::SharedDirectory(_)
        )
    }
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::Command(program) => write!(f, "its command runs {program}"),
            Evidence::Binary(binary) => write!(f, "{binary} is on its PATH"),
            Evidence::DataDirectory(dir) | Evidence::SharedDirectory(dir) => {
                write!(f, "it mounts {dir}")
            }
            Evidence::ImageName(name) => write!(f, "its image is named {name}"),
            Evidence::Environment(names) => {
                write!(f, "its environment has {}", names.join(", "))
            }
        }
    }
}

/// A container recognised as a database server, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub database: Database,
    pub evidence: Vec<Evidence>,
}

/// What identifies one server.
struct Signature {
    database: Database,
    programs: &'static [&'static str],
    env_names: &'static [&'static str],
    env_prefixes: &'static [&'static str],
    data_directories: &'static [&'static str],
    shared_directories: &'static [&'static str],
    image_names: &'static [&'static str],
}

const SIGNATURES: &[Signature] = &[
    Signature {
        database: Database::PostgreSql,
        programs: &["postgres", "postmaster"],
        env_names: &["PGDATA"],
        env_prefixes: &["POSTGRES_"],
        data_directories: &[
            "/var/lib/postgresql/data",
            "/var/lib/postgresql",
            "/var/lib/pgsql/data",
        ],
        shared_directories: &[],
        image_names: &["postgres", "postgis", "timescaledb"],
    },
    Signature {
        database: Database::MariaDb,
        programs: &["mariadbd", "mariadbd-safe"],
        env_names: &[],
        env_prefixes: &["MARIADB_"],
        data_directories: &[],
        shared_directories: &[],
        image_names: &["mariadb"],
    },
    Signature {
        database: Database::MySql,
        programs: &["mysqld", "mysqld_safe"],
        env_names: &[],
        env_prefixes: &["MYSQL_"],
        data_directories: &["/var/lib/mysql"],
        shared_directories: &[],
        image_names: &["mysql", "percona"],
    },
    Signature {
        database: Database::MongoDb,
        programs: &["mongod"],
        env_names: &[],
        env_prefixes: &["MONGO_"],
        data_directories: &["/data/db"],
        shared_directories: &[],
        image_names: &["mongo", "mongodb"],
    },
    Signature {
        database: Database::Redis,
        programs: &["redis-server"],
        env_names: &[],
        env_prefixes: &[],
        data_directories: &[],
        shared_directories: &["/data"],
        image_names: &["redis"],
    },
];

/// Programs that run another program named in their arguments.
const WRAPPERS: &[&str] = &[
    // Shell words before a command.
    "until",
    "while",
    "if",
    "then",
    "do",
    "else",
    "!",
    "sh",
    "bash",
    "ash",
    "dash",
    "exec",
    "env",
    "nice",
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
];
/// Wrappers whose first argument is a user, not the program.
const USER_WRAPPERS: &[&str] = &["gosu", "su-exec", "su", "runuser", "chroot"];

/// The programs a command runs: the first word that is not a wrapper, an
/// option, an assignment or a script (`*.sh`, which runs its arguments), in
/// the command and in each `sh -c` script within it. Words in other places
/// are arguments (`pg_isready -h postgres` names a host, not a server).
fn programs(command: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut expecting = true;
    let mut skip_user = false;
    for word in command {
        if word.contains(char::is_whitespace) {
            // A shell script: each of its simple commands.
            for part in word.split([';', '&', '|', '\n']) {
                let words: Vec<String> = part.split_whitespace().map(str::to_string).collect();
                found.extend(programs(&words));
            }
            continue;
        }
        if !expecting {
            continue;
        }
        if skip_user && !word.starts_with('-') {
            skip_user = false;
            continue;
        }
        if word.starts_with('-') || (word.contains('=') && !word.contains('/')) {
            continue;
        }
        let base = word.rsplit('/').next().unwrap_or(word).to_string();
        if USER_WRAPPERS.contains(&base.as_str()) {
            skip_user = true;
        } else if !WRAPPERS.contains(&base.as_str()) && !base.ends_with(".sh") {
            expecting = false;
        }
        found.push(base);
    }
    found
}

/// `registry:5000/org/app:1.2@sha256:…` → `app`.
pub fn image_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last).to_string()
}

fn evidence_for(
    signature: &Signature,
    container: &ContainerSummary,
    details: Option<&ContainerDetails>,
    programs: &[String],
) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    if let Some(program) = programs
        .iter()
        .find(|p| signature.programs.contains(&p.as_str()))
    {
        evidence.push(Evidence::Command(program.clone()));
    }
    if let Some(binaries) = details.and_then(|d| d.binaries.as_ref()) {
        evidence.extend(
            signature
                .programs
                .iter()
                .filter(|p| binaries.contains(**p))
                .map(|p| Evidence::Binary(p.to_string())),
        );
    }
    let targets: Vec<&str> = container
        .mounts
        .iter()
        .filter(|(source, _)| !matches!(source, MountSource::Other))
        .map(|(_, target)| target.trim_end_matches('/'))
        .collect();
    if let Some(dir) = signature
        .data_directories
        .iter()
        .find(|d| targets.contains(d))
    {
        evidence.push(Evidence::DataDirectory(dir.to_string()));
    }
    if let Some(dir) = signature
        .shared_directories
        .iter()
        .find(|d| targets.contains(d))
    {
        evidence.push(Evidence::SharedDirectory(dir.to_string()));
    }
    let name = image_name(&container.image);
    if signature.image_names.contains(&name.as_str()) {
        evidence.push(Evidence::ImageName(name));
    }
    if let Some(details) = details {
        let names: Vec<String> = details
            .env_names
            .iter()
            .filter(|n| {
                signature.env_names.contains(&n.as_str())
                    || signature.env_prefixes.iter().any(|p| n.starts_with(p))
            })
            .cloned()
            .collect();
        if !names.is_empty() {
            evidence.push(Evidence::Environment(names));
        }
    }
    evidence
}

/// The server `container` runs, if its facts say so: at least one
/// conclusive sign (command, binary, data directory, image name); where
/// several servers have signs, the one with most conclusive signs, then
/// most signs. MySQL signs with a MariaDB one make it MariaDB (whose
/// server also answers to `mysqld` and mounts `/var/lib/mysql`).
pub fn recognise(
    container: &ContainerSummary,
    details: Option<&ContainerDetails>,
) -> Option<Recognised> {
    let command = details.map(|d| d.command.as_slice()).unwrap_or_default();
    let programs = programs(command);
    let mut candidates: Vec<Recognised> = SIGNATURES
        .iter()
        .map(|signature| Recognised {
            database: signature.database,
            evidence: evidence_for(signature, container, details, &programs),
        })
        .filter(|r| !r.evidence.is_empty())
        .collect();
    // One family: MariaDB's signs and MySQL's add up as MariaDB's.
    if candidates.iter().any(|c| c.database == Database::MariaDb)
        && let Some(mysql) = candidates
            .iter()
            .position(|c| c.database == Database::MySql)
    {
        let mysql = candidates.remove(mysql);
        if let Some(maria) = candidates
            .iter_mut()
            .find(|c| c.database == Database::MariaDb)
        {
            maria.evidence.extend(mysql.evidence);
        }
    }
    candidates
        .into_iter()
        .filter(|c| c.evidence.iter().any(Evidence::is_conclusive))
        .max_by_key(|c| {
            (
                c.evidence.iter().filter(|e| e.is_conclusive()).count(),
                c.evidence.len(),
                std::cmp::Reverse(c.database),
            )
        })
}

/// How a recognised server is dumped, loaded back and asked whether it is
/// ready (commands run in its container). Each load stops at the first
/// error and exits non-zero, so a failed load fails the restore instead of
/// leaving half a database behind a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRecipe {
    pub command: Vec<String>,
    pub restore: Option<Vec<String>>,
    /// Why the restore command looks as it does, written above it.
    pub why: Option<&'static str>,
    /// Succeeds once the server accepts connections (the service's `verify`).
    pub verify: Vec<String>,
    /// The environment variables the commands read credentials from.
    pub credentials: Vec<&'static str>,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn shell(script: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script]
}

/// The first of `names` the container's environment has.
fn first_of(env: &BTreeSet<String>, names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|n| env.contains(*n))
}

/// The commands for `database`, taking credentials from the variables
/// `env` names (only names: the values stay in the container).
pub fn recipe(database: Database, env: &BTreeSet<String>) -> DumpRecipe {
    match database {
        Database::PostgreSql => {
            let why = Some(
                "psql stops at the first error (ON_ERROR_STOP); the server's own superuser \
                 exists already, so its CREATE ROLE is left out of the load",
            );
            let verify = argv(&["pg_isready", "-q"]);
            match first_of(env, &["POSTGRES_USER"]) {
                None => DumpRecipe {
                    command: argv(&["pg_dumpall", "-U", "postgres"]),
                    restore: Some(shell(
                        "sed '/^CREATE ROLE postgres;$/d' | exec psql -v ON_ERROR_STOP=1 \
                         -U postgres -d postgres"
                            .into(),
                    )),
                    why,
                    verify,
                    credentials: Vec::new(),
                },
                Some(user) => DumpRecipe {
                    command: shell(format!("exec pg_dumpall -U \"${user}\"")),
                    restore: Some(shell(format!(
                        "sed \"/^CREATE ROLE ${user};\\$/d\" | exec psql -v ON_ERROR_STOP=1 \
                         -U \"${user}\" -d postgres"
                    ))),
                    why,
                    verify,
                    credentials: vec![user],
                },
            }
        }
        Database::MySql | Database::MariaDb => {
            let (dump, client, admin) = if database == Database::MariaDb {
                ("mariadb-dump", "mariadb", "mariadb-admin")
            } else {
                ("mysqldump", "mysql", "mysqladmin")
            };
            // The password reaches the client through MYSQL_PWD, not its
            // command line, where `ps` in the container would show it.
            let password = first_of(env, &["MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD"]);
            let login = password
                .map(|p| format!("MYSQL_PWD=\"${p}\" "))
                .unwrap_or_default();
            DumpRecipe {
                command: shell(format!(
                    "{login}exec {dump} --all-databases --single-transaction -uroot"
                )),
                restore: Some(shell(format!("{login}exec {client} -uroot"))),
                why: Some("it stops at the first error (never add --force)"),
                verify: argv(&[admin, "ping", "--silent"]),
                credentials: password.into_iter().collect(),
            }
        }
        Database::MongoDb => {
            let user = first_of(env, &["MONGO_INITDB_ROOT_USERNAME"]);
            let password = first_of(env, &["MONGO_INITDB_ROOT_PASSWORD"]);
            let (command, restore, credentials) = match (user, password) {
                (Some(user), Some(password)) => {
                    let login = format!(
                        "--username \"${user}\" --password \"${password}\" \
                         --authenticationDatabase admin"
                    );
                    (
                        shell(format!("exec mongodump --archive {login}")),
                        shell(format!(
                            "exec mongorestore --archive --drop --stopOnError {login}"
                        )),
                        vec![user, password],
                    )
                }
                _ => (
                    argv(&["mongodump", "--archive"]),
                    argv(&["mongorestore", "--archive", "--drop", "--stopOnError"]),
                    Vec::new(),
                ),
            };
            DumpRecipe {
                command,
                restore: Some(restore),
                why: Some("mongorestore stops at the first error (--stopOnError)"),
                // mongosh since 6.0, mongo before.
                verify: shell(
                    "exec \"$(command -v mongosh || command -v mongo)\" --quiet --eval \
                     'db.adminCommand(\"ping\")'"
                        .into(),
                ),
                credentials,
            }
        }
        Database::Redis => match first_of(env, &["REDIS_PASSWORD"]) {
            None => DumpRecipe {
                command: argv(&["redis-cli", "--rdb", "-"]),
                restore: None,
                why: None,
                verify: argv(&["redis-cli", "ping"]),
                credentials: Vec::new(),
            },
            // redis-cli reads REDISCLI_AUTH: the password stays off its command line.
            Some(password) => DumpRecipe {
                command: shell(format!(
                    "REDISCLI_AUTH=\"${password}\" exec redis-cli --rdb -"
                )),
                restore: None,
                why: None,
                verify: shell(format!("REDISCLI_AUTH=\"${password}\" exec redis-cli ping")),
                credentials: vec![password],
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn programs_are_found_behind_wrappers_and_in_scripts_but_not_in_arguments() {
        assert_eq!(
            programs(&words("docker-entrypoint.sh postgres -c fsync=off")),
            ["docker-entrypoint.sh", "postgres"]
        );
        assert_eq!(
            programs(&words("tini -- gosu redis redis-server --save 60")),
            ["tini", "gosu", "redis-server"]
        );
        let waiting = programs(&[
            "/bin/sh".into(),
            "-c".into(),
            "until pg_isready -h postgres; do sleep 1; done; exec /app/run".into(),
        ]);
        assert!(
            waiting.contains(&"pg_isready".to_string())
                && waiting.contains(&"run".to_string())
                && !waiting.contains(&"postgres".to_string()),
            "{waiting:?}"
        );
        assert_eq!(
            programs(&words("/usr/sbin/mysqld --user=mysql")),
            ["mysqld"]
        );
    }
}
