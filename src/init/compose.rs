//! A compose project's `depends_on`, read from its compose files when its
//! containers' labels do not say (compose v1 writes no
//! `com.docker.compose.depends_on` label).
//!
//! The files are untrusted input: read up to [`COMPOSE_FILE_LIMIT`],
//! parsed as YAML, and anything of an unexpected shape is an error naming
//! the file and the service, never a panic. Only `services.*.depends_on`
//! is read; nothing else in the files matters here.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest compose file read: far beyond any real one.
pub const COMPOSE_FILE_LIMIT: u64 = 1 << 20;

/// What a project's compose files say: each service's `depends_on`, in
/// the files' order (the services of every file; a later file adds to an
/// earlier one, as compose merges them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFiles {
    /// The files read, as the user would name them.
    pub files: Vec<PathBuf>,
    pub depends_on: BTreeMap<String, Vec<String>>,
}

/// The files the labels name: `config_files` is comma-separated, each
/// relative to `working_dir` unless absolute.
pub fn project_files(working_dir: Option<&str>, config_files: &str) -> Vec<PathBuf> {
    config_files
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|file| match working_dir {
            Some(dir) if Path::new(file).is_relative() => Path::new(dir).join(file),
            _ => PathBuf::from(file),
        })
        .collect()
}

/// Reads and parses `files` (I/O): the first that cannot be read or
/// parsed is the error, which says why and names it.
pub fn read_compose_files(files: &[PathBuf]) -> Result<ComposeFiles, String> {
    let mut read = ComposeFiles::default();
    for file in files {
        let text = read_limited(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let depends_on = depends_on_in(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        for (service, depends) in depends_on {
            let known = read.depends_on.entry(service).or_default();
            for name in depends {
                if !known.contains(&name) {
                    known.push(name);
                }
            }
        }
        read.files.push(file.clone());
    }
    Ok(read)
}

fn read_limited(file: &Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // A label can name anything: opening a FIFO blocks until someone writes
    // to it (unless non-blocking), and a FIFO or a device may never end.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| format!("cannot be read ({e})"))?;
    let metadata = opened
        .metadata()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if !metadata.is_file() {
        return Err("is not a regular file: not read".to_string());
    }
    let mut bytes = Vec::new();
    opened
        .take(COMPOSE_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() as u64 > COMPOSE_FILE_LIMIT {
        return Err(format!(
            "larger than {} KiB, which no compose file is: not read",
            COMPOSE_FILE_LIMIT >> 10
        ));
    }
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
}

/// Every service of one compose file (`services:`), with its
/// `depends_on` (a list of names, or a map of name → condition); a
/// service without one depends on nothing.
pub fn depends_on_in(yaml: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    use serde_norway::Value;
    let mut document: Value =
        serde_norway::from_str(yaml).map_err(|e| format!("is not valid YAML ({e})"))?;
    // `<<: *defaults` is common in compose files; merging it may fail on
    // odd input, which then reads as written.
    let _ = document.apply_merge();
    let Some(services) = document.get("services") else {
        return Err(
            "has no `services` (the version 1 format without it has no depends_on)".to_string(),
        );
    };
    let Value::Mapping(services) = services else {
        return Err("its `services` is not a map of services".to_string());
    };
    let mut found = BTreeMap::new();
    for (name, service) in services {
        let Value::String(name) = name else {
            return Err("a service's name is not a string".to_string());
        };
        let service_name = |value: &Value, which: &str| match value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(format!(
                "service {name:?}: {which} of depends_on is not a service name"
            )),
        };
        let depends = match service.get("depends_on") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| service_name(item, "an entry"))
                .collect::<Result<_, _>>()?,
            Some(Value::Mapping(map)) => map
                .keys()
                .map(|key| service_name(key, "a key"))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "service {name:?}: depends_on is neither a list nor a map"
                ));
            }
        };
        found.insert(name.clone(), depends);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_is_read_in_both_forms_and_merged_defaults() {
        let yaml = r#"
version: "2.4"
x-app: &app
  image: busybox
  depends_on: [db]
services:
  db:
    image: postgres
  cache:
    image: redis
  web:
    <<: *app
  worker:
    image: app
    depends_on:
      db: { condition: service_healthy }
      cache:
        condition: service_started
"#;
        let found = depends_on_in(yaml).unwrap();
        assert_eq!(found["db"], Vec::<String>::new());
        assert_eq!(found["web"], ["db"]);
        assert_eq!(found["worker"], ["db", "cache"]);
    }

    /// Ten levels of aliases, each ten of the one before: 10^10 strings
    /// if expanded.
    fn bomb() -> String {
        let mut yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            yaml.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        yaml + "services: {web: {depends_on: *a9}}\n"
    }

    #[test]
    fn odd_files_are_errors_that_say_what_is_wrong() {
        for (yaml, says) in [
            ("services: [a, b]", "not a map of services"),
            ("version: '1'\ndb:\n  image: x\n", "has no `services`"),
            (
                "services:\n  web:\n    depends_on: 7\n",
                "neither a list nor a map",
            ),
            (
                "services:\n  web:\n    depends_on: [[db]]\n",
                "not a service name",
            ),
            (
                "services: {web: {depends_on: {? [a]: x}}}",
                "not a service name",
            ),
            (": : :\n\t- [", "not valid YAML"),
            ("a: &a [*a]", ""),
            // Nesting too deep for any compose file, and an alias bomb.
            (&"[".repeat(100_000), ""),
            (&bomb(), ""),
            ("", "has no `services`"),
        ] {
            let error = depends_on_in(yaml).unwrap_err();
            assert!(error.contains(says), "{yaml:?}: {error}");
        }
    }

    #[test]
    fn files_are_found_from_the_labels_and_read_within_a_limit() {
        assert_eq!(
            project_files(Some("/srv/shop"), "docker-compose.yml, /etc/override.yml"),
            [
                PathBuf::from("/srv/shop/docker-compose.yml"),
                PathBuf::from("/etc/override.yml")
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("docker-compose.yml");
        let overlay = dir.path().join("override.yml");
        std::fs::write(&base, "services:\n  web:\n    depends_on: [db]\n  db: {}\n").unwrap();
        std::fs::write(&overlay, "services:\n  web:\n    depends_on: [cache]\n").unwrap();
        let read = read_compose_files(&[base.clone(), overlay.clone()]).unwrap();
        assert_eq!(read.depends_on["web"], ["db", "cache"]);

        let missing = dir.path().join("gone.yml");
        let error = read_compose_files(&[missing]).unwrap_err();
        assert!(error.contains("gone.yml: cannot be read"), "{error}");
        let huge = dir.path().join("huge.yml");
        std::fs::write(&huge, "#".repeat(COMPOSE_FILE_LIMIT as usize + 1)).unwrap();
        let error = read_compose_files(&[huge]).unwrap_err();
        assert!(error.contains("larger than 1024 KiB"), "{error}");
        // A FIFO would block the read until someone writes to it.
        let fifo = dir.path().join("fifo.yml");
        let path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let error = read_compose_files(&[fifo]).unwrap_err();
        assert!(error.contains("is not a regular file"), "{error}");
    }
}
