//! `ls`, `find`, `dump`, `diff`: one file or directory out of a snapshot,
//! without restoring it, and `diff ADDR`: a snapshot against the live
//! volume or bind. Snapshots are named as [`selector::named`] reads them
//! (an id or unique prefix, `latest:ADDR`, `ADDR` alone,
//! `tag:KEY=VALUE:ADDR`); safety snapshots taken before a `--replace` are
//! found by id only.

use super::{connect_and_register, load, settings};
use crate::apply::partial::LiveRead;
use crate::apply::{self, NamedRepository, PRE_RESTORE_TAG, SnapshotRow};
use crate::cli::args::{DiffArgs, DumpArgs, FindArgs, LockArgs, LsArgs, MountArgs, SpecArgs};
use crate::cli::views;
use crate::cli::{CliError, Exit, interrupt, out, selector};
use crate::repo::browse::{Change, Difference, TreeEntry, TreeSearch};
use crate::repo::{ContentKind, Repository, Snapshot};
use std::path::Path;

/// The repositories of the spec that exist, opened, and their snapshots.
struct Catalog {
    loaded: crate::planning::Loaded,
    repositories: Vec<NamedRepository>,
    rows: Vec<SnapshotRow>,
}

impl Catalog {
    fn open(
        dir: &Path,
        spec: &SpecArgs,
        lock: &LockArgs,
        command: &str,
    ) -> Result<Catalog, CliError> {
        let loaded = load(dir, spec)?;
        let repositories = apply::open_repositories(&loaded.spec, &settings(lock, None, command))?;
        let rows = apply::list_snapshots(&repositories)?;
        Ok(Catalog {
            loaded,
            repositories,
            rows,
        })
    }

    /// The snapshot `text` names (see [`selector::named`]), and the
    /// repository holding it.
    fn resolve(&self, text: &str) -> Result<(&Repository, Snapshot), CliError> {
        let newest = |address: &str, tag: Option<&crate::repo::Tag>| {
            let tagged = tag.map(|tag| crate::repo::TagFilter {
                key: tag.key.clone(),
                value: Some(tag.value.clone()),
            });
            self.rows
                .iter()
                .filter(|r| r.resource == address && !r.tags.iter().any(|t| t == PRE_RESTORE_TAG))
                .filter(|r| tagged.as_ref().is_none_or(|f| f.matches_any(&r.tags)))
                .max_by_key(|r| r.time)
        };
        let row = match selector::named(text)? {
            selector::Named::Latest(address) => newest(address, None).ok_or_else(|| {
                CliError::Message(format!(
                    "no snapshot of {address} yet: back it up with `lifeboat apply` (`lifeboat \
                     snapshots` lists the snapshots there are)"
                ))
            })?,
            selector::Named::Tagged(tag, address) => {
                newest(address, Some(&tag)).ok_or_else(|| {
                    CliError::Message(format!(
                        "no snapshot of {address} has the tag {tag}: `lifeboat snapshots --tag \
                         {tag}` lists the snapshots that have it"
                    ))
                })?
            }
            selector::Named::Id(text) => {
                let matching: Vec<&SnapshotRow> = self
                    .rows
                    .iter()
                    .filter(|r| r.id.starts_with(text))
                    .collect();
                let distinct: std::collections::BTreeSet<&str> =
                    matching.iter().map(|r| r.id.as_str()).collect();
                match distinct.len() {
                    0 => {
                        return Err(CliError::Message(format!(
                            "no snapshot {text}: name one by id, latest:ADDR, ADDR or \
                             tag:KEY=VALUE:ADDR (`lifeboat snapshots` lists them)"
                        )));
                    }
                    1 => matching[0],
                    _ => {
                        return Err(CliError::Message(format!(
                            "snapshot id prefix {text} is ambiguous: give more characters"
                        )));
                    }
                }
            }
        };
        let repository = self
            .repositories
            .iter()
            .find(|r| r.name == row.repository)
            .and_then(|r| r.repository.as_ref())
            .ok_or_else(|| CliError::Message(format!("repository.{} is gone", row.repository)))?;
        Ok((repository, repository.find_snapshot(&row.id)?))
    }
}

fn entry_line(entry: &TreeEntry, long: bool) -> String {
    let name = if entry.path.is_empty() {
        "/"
    } else {
        &entry.path
    };
    let shown = match (&entry.target, entry.kind.as_str()) {
        (Some(target), "symlink") => format!("{name} -> {target}"),
        (Some(target), "hardlink") => format!("{name} => {target}"),
        _ if entry.kind == "dir" && !entry.path.is_empty() => format!("{name}/"),
        _ => name.to_string(),
    };
    if !long {
        return format!("{shown}\n");
    }
    let time = chrono::DateTime::from_timestamp(entry.mtime, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    format!(
        "{:<9} {:04o} {:>6} {:>6} {:>10}  {time}  {shown}\n",
        entry.kind, entry.mode, entry.uid, entry.gid, entry.size
    )
}

pub fn ls(dir: &Path, args: LsArgs) -> Result<Exit, CliError> {
    let catalog = Catalog::open(dir, &args.spec, &args.lock, "ls")?;
    let (repository, snapshot) = catalog.resolve(&args.snapshot)?;
    match snapshot.content {
        ContentKind::Tree => {
            let mut entries = Vec::new();
            repository.list_tree(&snapshot, &args.path, args.recursive, |e| entries.push(e))?;
            if args.json {
                out!(
                    "{}\n",
                    serde_json::to_string_pretty(&entries).expect("json")
                );
            } else {
                for entry in &entries {
                    out!("{}", entry_line(entry, args.long));
                }
            }
        }
        ContentKind::Image => {
            let image = repository.stored_image(&snapshot)?;
            if args.json {
                out!(
                    "{}\n",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "image": image.id, "tags": image.repo_tags, "layers": image.layers,
                        "os": image.os, "architecture": image.architecture,
                    }))
                    .expect("json")
                );
            } else {
                out!("{}", image.describe());
            }
        }
        ContentKind::Stream => {
            let what = format!(
                "snapshot {} of {} is a byte stream of {} ({}): `lifeboat dump {}` writes it out",
                snapshot.id.short(),
                snapshot.resource,
                views::human_bytes(snapshot.summary.bytes),
                if snapshot.resource.starts_with("service.") {
                    "a container's configuration"
                } else {
                    "a dump's output"
                },
                snapshot.id.short()
            );
            if args.json {
                out!(
                    "{}\n",
                    serde_json::json!({"stream": snapshot.resource, "bytes": snapshot.summary.bytes})
                );
            } else {
                out!("{what}\n");
            }
        }
    }
    Ok(Exit::Success)
}

pub fn find(dir: &Path, args: FindArgs) -> Result<Exit, CliError> {
    let glob = globset::GlobBuilder::new(&args.pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| CliError::Message(format!("{:?} is not a glob: {e}", args.pattern)))?
        .compile_matcher();
    let whole_path = args.pattern.contains('/');
    let catalog = Catalog::open(dir, &args.spec, &args.lock, "find")?;
    let mut rows: Vec<&SnapshotRow> = catalog
        .rows
        .iter()
        .filter(|r| args.targets.is_empty() || args.targets.contains(&r.resource))
        .collect();
    rows.sort_by(|a, b| b.time.cmp(&a.time).then(a.id.cmp(&b.id)));
    // One search per repository: its snapshots share tree blobs, each
    // decoded and matched once (and kept while a snapshot still to walk
    // holds it). What is left of each snapshot's walk (the guard's checks
    // of where its nodes stand) is bound by the CPU, so the walks run side
    // by side and the results keep the newest-first order.
    let searches: Vec<TreeSearch> = catalog
        .repositories
        .iter()
        .filter_map(|named| named.repository.as_ref())
        .map(|repository| TreeSearch::new(repository, &glob, whole_path))
        .collect();
    type Walk<'s> = Result<Option<(&'s TreeSearch<'s>, Snapshot)>, CliError>;
    let walks: Vec<std::sync::Mutex<Option<Walk>>> = rows
        .iter()
        .map(|row| {
            let walk = catalog.resolve(&row.id).map(|(repository, snapshot)| {
                let search = searches.iter().find(|s| s.reads(repository));
                let search = search.filter(|_| snapshot.content == ContentKind::Tree)?;
                search.expect(&snapshot);
                Some((search, snapshot))
            });
            std::sync::Mutex::new(Some(walk))
        })
        .collect();
    let searched = map_in_parallel(&walks, |walk| -> Result<Vec<TreeEntry>, CliError> {
        let walk = walk.lock().expect("not poisoned").take();
        match walk.expect("each walk is taken once")? {
            Some((search, snapshot)) => Ok(search.find(&snapshot)?),
            None => Ok(Vec::new()),
        }
    });
    let mut found = Vec::new();
    for (row, matches) in rows.into_iter().zip(searched) {
        let matches = matches?;
        if !matches.is_empty() {
            found.push((row, matches));
        }
    }
    if args.json {
        let value: Vec<serde_json::Value> = found
            .iter()
            .map(|(row, matches)| {
                serde_json::json!({
                    "snapshot": row.id, "resource": row.resource, "repository": row.repository,
                    "time": row.time, "matches": matches,
                })
            })
            .collect();
        out!("{}\n", serde_json::to_string_pretty(&value).expect("json"));
        return Ok(Exit::Success);
    }
    if found.is_empty() {
        out!("No snapshot holds a path matching {:?}.\n", args.pattern);
        return Ok(Exit::Success);
    }
    for (row, matches) in &found {
        out!(
            "snapshot {} of {} ({} UTC, repository {}):\n",
            row.short_id,
            row.resource,
            row.time.format("%Y-%m-%d %H:%M:%S"),
            row.repository
        );
        for entry in matches {
            out!("  {}", entry_line(entry, true));
        }
    }
    Ok(Exit::Success)
}

pub fn dump(dir: &Path, args: DumpArgs) -> Result<Exit, CliError> {
    let catalog = Catalog::open(dir, &args.spec, &args.lock, "dump")?;
    let (repository, snapshot) = catalog.resolve(&args.snapshot)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match (snapshot.content, &args.path) {
        (ContentKind::Tree, Some(path)) => {
            repository.write_path(&snapshot, path, true, &mut out)?;
        }
        (ContentKind::Tree, None) => {
            return Err(CliError::Message(format!(
                "snapshot {} is a file tree: name the file or directory to write (`/` for all \
                 of it, as a tar stream; `lifeboat ls {}` lists them)",
                snapshot.id.short(),
                snapshot.id.short()
            )));
        }
        (ContentKind::Stream, None) => {
            repository.restore_stream(&snapshot, &mut out, &|_| {})?;
        }
        (ContentKind::Stream, Some(_)) => {
            return Err(CliError::Message(format!(
                "snapshot {} is a byte stream, written whole: drop the PATH",
                snapshot.id.short()
            )));
        }
        (ContentKind::Image, _) => {
            return Err(CliError::Message(format!(
                "snapshot {} is an image: `lifeboat restore --target {}` loads it into the engine",
                snapshot.id.short(),
                snapshot.resource
            )));
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(Exit::Success)
}

pub async fn diff(dir: &Path, args: DiffArgs) -> Result<Exit, CliError> {
    let catalog = Catalog::open(dir, &args.spec, &args.lock, "diff")?;
    let Some(newer_text) = &args.newer else {
        return diff_live(&catalog, &args).await;
    };
    let (older_repository, older) = catalog.resolve(&args.older)?;
    let (newer_repository, newer) = catalog.resolve(newer_text)?;
    if older.resource != newer.resource {
        return Err(CliError::Message(format!(
            "snapshot {} is of {}, snapshot {} of {}: compare two snapshots of one resource",
            older.id.short(),
            older.resource,
            newer.id.short(),
            newer.resource
        )));
    }
    let before = older_repository.tree_map(&older)?;
    let after = newer_repository.tree_map(&newer)?;
    let differences = crate::repo::browse::compare(&before, &after);
    let compared = format!("{} → {}", older.id.short(), newer.id.short());
    print_differences(&differences, args.json, &compared, &newer.resource);
    Ok(Exit::Success)
}

/// `diff A` alone: snapshot A (an address's latest, or one by id) against
/// the live volume or bind it was taken of.
async fn diff_live(catalog: &Catalog, args: &DiffArgs) -> Result<Exit, CliError> {
    let spec = &catalog.loaded.spec;
    // An address is checked before any snapshot is looked for: a typo or
    // an image is said as such, not as "no snapshot".
    if let selector::Named::Latest(named) | selector::Named::Tagged(_, named) =
        selector::named(&args.older)?
    {
        crate::planning::resolve_addresses(spec, &[named.to_string()], "diff")?;
        live_tree_address(spec, &args.older, named)?;
    }
    let (repository, snapshot) = catalog.resolve(&args.older)?;
    let address = live_tree_address(spec, &args.older, &snapshot.resource)?;
    // The engine's error already says how to reach it.
    let unreachable = |error: String| CliError::Message(format!("diff {address}: {error}"));
    let engines = crate::planning::connect_engines(
        &catalog.loaded,
        std::slice::from_ref(&address),
        connect_and_register(),
    )
    .await
    .map_err(|e| unreachable(e.to_string()))?;
    let live = LiveRead {
        spec,
        engines: &engines,
        access: args.access.into(),
    };
    let differences = live
        .diff(repository, &snapshot, &address)
        .await
        .map_err(|e| match e {
            apply::ApplyError::EngineUnavailable { .. } => unreachable(e.to_string()),
            other => CliError::Message(format!("diff {address}: {other}")),
        })?;
    let compared = format!("{} → live", snapshot.id.short());
    print_differences(&differences, args.json, &compared, &snapshot.resource);
    Ok(Exit::Success)
}

/// `resource` (what `diff TEXT` names) as the address of a volume or
/// bind of the spec: only those have a live tree to compare.
fn live_tree_address(
    spec: &crate::spec::Spec,
    text: &str,
    resource: &str,
) -> Result<crate::spec::Address, CliError> {
    use crate::spec::{Address, Resource};
    Address::parse(resource)
        .filter(|a| {
            matches!(
                spec.resource(a),
                Some(Resource::Volume(_) | Resource::Bind(_))
            )
        })
        .ok_or_else(|| {
            CliError::Message(format!(
                "diff {text}: {resource} is not a volume or bind of the spec, and only their \
                 live trees can be compared with a snapshot: name one (`lifeboat diff \
                 volume.NAME`), or compare two snapshots with `lifeboat diff A B`"
            ))
        })
}

/// The differences as `diff` prints them: one line each and a count, or
/// JSON (the same for two snapshots and for a snapshot against live).
fn print_differences(differences: &[Difference], json: bool, compared: &str, resource: &str) {
    if json {
        out!(
            "{}\n",
            serde_json::to_string_pretty(differences).expect("json")
        );
        return;
    }
    let mut counts = [0usize; 4];
    for difference in differences {
        let (symbol, slot) = match difference.change {
            Change::Added => ("+", 0),
            Change::Removed => ("-", 1),
            Change::Modified => ("M", 2),
            Change::Metadata => ("U", 3),
        };
        counts[slot] += 1;
        let name = if difference.path.is_empty() {
            "/"
        } else {
            &difference.path
        };
        out!("{symbol}    {name}\n");
    }
    out!(
        "\n{compared} of {resource}: {} added, {} removed, {} modified, {} with other metadata \
         only.\n",
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
}

pub async fn mount(dir: &Path, args: MountArgs) -> Result<Exit, CliError> {
    let mountpoint = args.mountpoint.clone();
    let shown = mountpoint.display().to_string();
    let mount_error = |e: crate::mount::fuse::MountError| CliError::Message(e.to_string());
    // Before the repositories are opened: a stale mountpoint is the
    // likelier mistake, and the cheaper one to report.
    crate::mount::fuse::check_mountpoint(&mountpoint).map_err(mount_error)?;
    let catalog = Catalog::open(dir, &args.spec, &args.lock, "mount")?;
    let mut repositories = Vec::new();
    let mut snapshots = Vec::new();
    for named in catalog.repositories {
        let Some(repository) = named.repository else {
            continue;
        };
        let index = repositories.len();
        for snapshot in repository.snapshots()? {
            // The rows carry what the catalog knows beyond the file:
            // `moved` renames and tags.
            let Some(row) = catalog
                .rows
                .iter()
                .find(|r| r.repository == named.name && r.id == snapshot.id.0)
            else {
                continue;
            };
            if !args.targets.is_empty() && !args.targets.contains(&row.resource) {
                continue;
            }
            snapshots.push(crate::mount::MountedSnapshot {
                repository: index,
                resource: row.resource.clone(),
                safety: row.tags.iter().any(|t| t == PRE_RESTORE_TAG),
                snapshot,
            });
        }
        repositories.push(repository);
    }
    let fs = crate::mount::SnapshotFs::new(repositories, snapshots)
        .reporting(Box::new(|problem| eprintln!("lifeboat mount: {problem}")));
    let (count, resources) = fs.counts();
    let mounted =
        crate::mount::fuse::mount(std::sync::Arc::new(fs), &mountpoint).map_err(mount_error)?;
    let unmount = mounted.unmounter();
    interrupt::register_mount(shown.clone(), Box::new(move || unmount.unmount()));
    out!(
        "Mounted {count} snapshot(s) of {resources} resource(s) on {shown}, read-only: \
         {shown}/ADDR/TIME/… and {shown}/ADDR/latest. Ctrl-C or `fusermount3 -u {shown}` \
         unmounts.\n"
    );
    let ended = tokio::task::spawn_blocking(move || mounted.wait())
        .await
        .map_err(|e| CliError::Message(format!("the mount of {shown} ended badly: {e}")))?;
    ended.map_err(|e| CliError::Message(format!("the mount of {shown} ended: {e}")))?;
    out!("Unmounted {shown}.\n");
    Ok(Exit::Success)
}

/// `work` applied to every item on as many threads as the machine has
/// cores, the results in the items' order.
fn map_in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, work(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            // A worker's panic is a bug: carry it on, not a half result.
            let done = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, result) in done {
                results[i] = Some(result);
            }
        }
    });
    results.into_iter().flatten().collect()
}
