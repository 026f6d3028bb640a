//! What a name in the spec may be: block labels (they become addresses like
//! `volume.data`), and the names Docker will be asked for (volume and
//! container names, image references, bind paths), checked here by Docker's
//! own rules so that `validate` catches what the engine would refuse.
//! Pure functions from a name to the problem with it; the caller locates it.

/// The attributes whose value Docker is asked for by name, and the rule each
/// follows: (block type, attribute, rule, help).
pub(super) type Rule = fn(&str) -> Option<String>;
pub(super) const DOCKER_NAMED: &[(&str, &str, Rule, &str)] = &[
    (
        "volume",
        "name",
        volume_name_problem,
        "the name `docker volume ls` shows, e.g. \"shop_pgdata\"",
    ),
    (
        "bind",
        "path",
        bind_path_problem,
        "the host directory as an absolute path, e.g. \"/srv/shop/nginx\"",
    ),
    (
        "image",
        "ref",
        image_reference_problem,
        "a reference `docker pull` takes, e.g. \"shop/api:2.3\"",
    ),
    (
        "service",
        "container",
        container_name_problem,
        "the name `docker ps` shows, e.g. \"shop-db-1\"",
    ),
];

/// A block label must be an identifier: `kind.NAME` references, `--target`
/// and plan addresses are written with it.
pub(super) fn label_problem(label: &str) -> Option<String> {
    if let Some(problem) = text_problem(label) {
        return Some(problem);
    }
    let mut chars = label.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c == '_' || unicode_ident::is_xid_start(c));
    let continues_well = chars.all(|c| c == '-' || unicode_ident::is_xid_continue(c));
    (!(starts_well && continues_well)).then(|| {
        format!("{label:?} is not a name: use letters, digits, `_` and `-`, starting with a letter or `_`")
    })
}

/// Empty, or holding a control character (NUL, newline, escape …).
fn text_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("the name is empty".into());
    }
    text.chars().find(|c| c.is_control()).map(|c| {
        format!(
            "{text:?} holds the control character U+{:04X}",
            u32::from(c)
        )
    })
}

/// Docker's rule for volume names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub(super) fn volume_name_problem(name: &str) -> Option<String> {
    text_problem(name).or_else(|| {
        (!docker_name(name)).then(|| {
            format!(
                "{name:?} is not a Docker volume name: two or more of letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            )
        })
    })
}

/// Docker's rule for container names: as for volumes, with an optional
/// leading `/` (the engine reports names that way).
pub(super) fn container_name_problem(name: &str) -> Option<String> {
    text_problem(name).or_else(|| {
        (!docker_name(name.strip_prefix('/').unwrap_or(name))).then(|| {
            format!(
                "{name:?} is not a Docker container name: two or more of letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            )
        })
    })
}

fn docker_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A bind path must be absolute and clean: the directory backed up is the
/// one written, not one that `..` or a doubled `/` make it.
pub(super) fn bind_path_problem(path: &str) -> Option<String> {
    if let Some(problem) = text_problem(path) {
        return Some(problem.replace("the name", "the path"));
    }
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not an absolute path"));
    }
    let unclean = path != "/"
        && path
            .strip_prefix('/')
            .unwrap_or(path)
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if unclean {
        return Some(format!(
            "{path:?} is not a clean path: no `.` or `..` parts, doubled or trailing `/`"
        ));
    }
    is_system_directory(path).then(|| {
        format!(
            "{path:?} is a system directory: backing it up copies the host, and `restore \
             --replace` would empty it. Name the directory of what you protect, e.g. \
             \"/etc/nginx\" or \"/srv/shop/nginx\""
        )
    })
}

/// Directories of the host itself, never a bind's: `/`, the top-level
/// directories and their well-known children (`/usr/lib`, `/var/lib`,
/// `/var/log` …), and anything under the kernel's `/proc`, `/sys` and
/// `/dev`. Directories below the others (`/etc/nginx`, `/srv/shop`,
/// `/var/lib/app`) are what binds are for.
pub fn is_system_directory(path: &str) -> bool {
    const TOP: &[&str] = &[
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt",
        "opt", "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var",
    ];
    const CHILDREN: &[&str] = &[
        "/usr/bin",
        "/usr/include",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/etc",
        "/usr/local/lib",
        "/usr/local/sbin",
        "/usr/local/share",
        "/usr/sbin",
        "/usr/share",
        "/usr/src",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/var/spool",
        "/var/tmp",
        "/run/lock",
        "/run/user",
        "/etc/systemd",
    ];
    const KERNEL: &[&str] = &["/proc", "/sys", "/dev"];
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return true;
    }
    let top_level = trimmed
        .strip_prefix('/')
        .is_some_and(|rest| TOP.contains(&rest));
    top_level
        || CHILDREN.contains(&trimmed)
        || KERNEL
            .iter()
            .any(|k| trimmed.strip_prefix(k).is_some_and(|r| r.starts_with('/')))
}

/// Docker's image reference grammar (distribution/reference):
/// `[domain[:port]/]path[:tag][@algorithm:hex]`, the path lowercase.
pub(super) fn image_reference_problem(reference: &str) -> Option<String> {
    if let Some(problem) = text_problem(reference) {
        return Some(problem.replace("the name", "the reference"));
    }
    let problem = |why: &str| Some(format!("{reference:?} is not an image reference: {why}"));
    let (named, digest) = match reference.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return problem("the digest after `@` must be like sha256:<64 hex digits>");
    }
    // A tag follows the last `:` that comes after the last `/` (an earlier
    // `:` is a registry port).
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match named.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => (
            named.get(..last_slash + colon).unwrap_or(named),
            named.get(last_slash + colon + 1..),
        ),
        None => (named, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return problem(
            "a tag is up to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
        );
    }
    if name.len() > 255 {
        return problem("the name is longer than 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && components.first().is_some_and(|c| is_domain(c)) {
        components.remove(0);
    }
    if !components.iter().all(|c| is_path_component(c)) {
        return problem(
            "the name is lowercase letters and digits, separated by `/`, and inside a part by `.`, `_`, `__` or dashes",
        );
    }
    None
}

/// `alnum+ (separator alnum+)*` with separators `.`, `_`, `__` or `-+`.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while bytes.get(i).is_some_and(|b| alnum(*b)) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        match bytes.get(i) {
            Some(b'.') => i += 1,
            Some(b'_') => {
                i += if bytes.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            Some(b'-') => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == separator {
            return false;
        }
    }
}

/// `host[:port]`: DNS-like components joined by `.`, or `[IPv6]`.
fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", port),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, port),
            None => (domain, ""),
        }
    };
    let port_ok = port.is_empty() && !domain.ends_with(':')
        || !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let host_ok = host.is_empty() && domain.starts_with('[')
        || host.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        });
    port_ok && host_ok
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    tag.len() <= 128
        && bytes.next().is_some_and(word)
        && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex`, the algorithm `[A-Za-z][A-Za-z0-9]*` parts joined by
/// `+ . - _`, at least 32 hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
        let mut bytes = part.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_dockers_grammar() {
        for good in [
            "busybox",
            "lifeboat-test/busybox:1",
            "shop/api:2.3",
            "localhost:5000/a/b:tag",
            "registry.example.com/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Example.COM/app",
            "[::1]:5000/app:v1",
            "a__b/c--d/e.f_g:V1.0-rc_1",
            "postgres:16-alpine",
        ] {
            assert_eq!(image_reference_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            ":tag",
            "a//b",
            "/a",
            "a/",
            "a..b",
            "a___b",
            "app@sha256:short",
            "app@sha256",
            "host:port/app",
            "a b",
            "a\u{0}b",
        ] {
            assert!(image_reference_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn docker_names_and_bind_paths() {
        assert_eq!(volume_name_problem("shop_pgdata"), None);
        assert_eq!(volume_name_problem("a.b-c_d"), None);
        for bad in ["", "a", "-a", "_a", "a/b", "a b", "é1", "a\u{7}"] {
            assert!(volume_name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(container_name_problem("/shop-db-1"), None);
        assert!(container_name_problem("//x").is_some());
        assert_eq!(bind_path_problem("/srv/shop/nginx"), None);
        for bad in ["srv", "/srv/", "/srv//x", "/srv/./x", "/srv/../etc", ""] {
            assert!(bind_path_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(label_problem("data-1_x"), None);
        for bad in ["", "1st", "a.b", "a b", "a\u{0}"] {
            assert!(label_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn system_directories_are_not_binds_but_their_subdirectories_are() {
        for system in [
            "/",
            "/etc",
            "/usr",
            "/usr/lib",
            "/var",
            "/var/lib",
            "/var/log",
            "/home",
            "/srv",
            "/tmp",
            "/lib64",
            "/proc/1",
            "/sys/fs/cgroup",
            "/dev/shm",
        ] {
            let problem = bind_path_problem(system).unwrap_or_default();
            assert!(
                problem.contains("system directory") && problem.contains("/etc/nginx"),
                "{system:?}: {problem:?}"
            );
        }
        for fine in [
            "/etc/nginx",
            "/srv/shop/nginx",
            "/var/lib/app",
            "/home/alice",
            "/opt/app/config",
            "/var/tmp/x",
        ] {
            assert_eq!(bind_path_problem(fine), None, "{fine:?}");
        }
    }
}
