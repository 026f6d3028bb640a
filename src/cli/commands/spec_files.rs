//! `validate`, `graph` and `fmt`: commands on the spec files alone.

use super::{connect_and_register, load, write_atomically};
use crate::cli::args::{FmtArgs, GraphArgs, ValidateArgs};
use crate::cli::views::{self, Style};
use crate::cli::{CliError, Exit, out};
use crate::plan;
use crate::planning::{OrderKind, draw_graph};
use crate::spec;
use std::path::{Path, PathBuf};

pub fn validate(dir: &Path, args: ValidateArgs, style: Style) -> Result<Exit, CliError> {
    // Binds that overlap lifeboat's own directories are refused here already
    // (plan and restore refuse them too, as `!` problems beside the rest).
    let result = load(dir, &args.spec).and_then(|loaded| {
        let overlaps = crate::apply::guards::bind_diagnostics(&loaded.spec);
        if overlaps.is_empty() {
            Ok(loaded)
        } else {
            Err(CliError::Spec(spec::Diagnostics {
                items: overlaps,
                files: loaded.spec.files.clone(),
            }))
        }
    });
    let warnings = result
        .as_ref()
        .map(|loaded| {
            let mut warnings = plan::not_acted_on(&loaded.spec);
            // From the spec files alone: Docker's usual data root, not the engine's word.
            let data_root = Path::new(crate::apply::placement::DEFAULT_DATA_ROOT);
            let on_host = crate::apply::placement::repositories_on_host(&loaded.spec, data_root);
            let names = crate::apply::repository_names(&loaded.spec);
            warnings.extend(plan::copies_warnings(&loaded.spec, &names, &on_host));
            warnings
        })
        .unwrap_or_default();
    if args.json {
        let diagnostics = match &result {
            Ok(_) => Vec::new(),
            Err(CliError::Spec(d)) => d.to_json(),
            Err(CliError::Message(m)) => {
                vec![serde_json::json!({"severity": "error", "message": m})]
            }
        };
        let valid = result.is_ok();
        let out = serde_json::json!({
            "format_version": plan::FORMAT_VERSION,
            "valid": valid,
            "error_count": diagnostics.len(),
            "diagnostics": diagnostics,
            "warnings": warnings,
        });
        out!("{}\n", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(if valid { Exit::Success } else { Exit::Error });
    }
    let loaded = result?;
    let spec = &loaded.spec;
    let counts = [
        (spec.repositories.len(), "repository", "repositories"),
        (spec.policies.len(), "policy", "policies"),
        (spec.engines.len(), "engine", "engines"),
        (spec.images.len(), "image", "images"),
        (spec.volumes.len(), "volume", "volumes"),
        (spec.binds.len(), "bind", "binds"),
        (spec.services.len(), "service", "services"),
        (spec.dumps.len(), "dump", "dumps"),
    ];
    let listed: Vec<String> = counts
        .iter()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many }))
        .collect();
    out!(
        "Success! The spec is valid ({}{}).\n",
        views::plural(spec.files.len(), "file"),
        if listed.is_empty() {
            ", nothing to protect yet".to_string()
        } else {
            format!(": {}", listed.join(", "))
        }
    );
    if !warnings.is_empty() {
        out!("\n{}", views::render_warnings(&warnings, style));
    }
    Ok(Exit::Success)
}

/// `graph [--restore]`: the graph the backup (or restore) plan follows,
/// numbered in its order, image bases from layers included; drawn from the
/// spec alone, saying so, where no engine answers.
pub async fn graph(dir: &Path, args: GraphArgs, style: Style) -> Result<Exit, CliError> {
    let mut loaded = load(dir, &args.spec)?;
    let (kind, title) = if args.restore {
        (OrderKind::Restore, "lifeboat restore order")
    } else {
        (OrderKind::Backup, "lifeboat backup order")
    };
    // Repositories are only read (image layers of removed images): no lock.
    let settings = crate::apply::OpenSettings {
        lock_timeout: std::time::Duration::ZERO,
        command: "graph".to_string(),
        cache_dir: None,
    };
    let drawn = draw_graph(&mut loaded, kind, &settings, connect_and_register()).await;
    for note in &drawn.notes {
        eprintln!("Note: {note}");
    }
    eprint!("{}", views::render_warnings(&drawn.warnings, style));
    out!("{}", loaded.graph.to_dot(title, &drawn.order, &drawn.notes));
    Ok(Exit::Success)
}

fn spec_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| CliError::Message(format!("cannot read {}: {e}", current.display())))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            // A link to a directory is not descended into: it may lead out
            // of the tree (or back into it, forever).
            let linked_dir = entry.file_type().is_ok_and(|t| t.is_symlink()) && path.is_dir();
            if linked_dir {
                continue;
            }
            if path.is_dir() {
                if recursive && !hidden {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "hcl") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

pub fn fmt(dir: &Path, args: FmtArgs) -> Result<Exit, CliError> {
    let mut unformatted = Vec::new();
    let root = std::fs::canonicalize(dir)
        .map_err(|e| CliError::Message(format!("cannot read {}: {e}", dir.display())))?;
    for file in spec_files(dir, args.recursive)? {
        let text = spec::read_source(&file).map_err(CliError::Spec)?.text;
        let formatted = spec::fmt::format_source(&file, &text).map_err(CliError::Spec)?;
        if formatted == text {
            continue;
        }
        if args.diff {
            let name = file.display().to_string();
            out!(
                "{}",
                similar::TextDiff::from_lines(&text, &formatted)
                    .unified_diff()
                    .header(&name, &name)
            );
        }
        if !args.check {
            match write_target(&root, &file)? {
                Some(target) => write_atomically(&target, formatted.as_bytes())?,
                None => {
                    eprintln!(
                        "lifeboat: {} links to a file outside {}: not rewritten (format it \
                         where it lives)",
                        file.display(),
                        dir.display()
                    );
                    continue;
                }
            }
        }
        if !args.diff {
            out!("{}\n", file.display());
        }
        unformatted.push(file);
    }
    Ok(if args.check && !unformatted.is_empty() {
        Exit::Unformatted
    } else {
        Exit::Success
    })
}

/// Where formatting `file` writes: the file itself, or, for a symbolic
/// link, the file it points at (so the link stays a link) when that lies
/// inside `root`; `None` for a link out of the tree, which `fmt` leaves
/// alone.
fn write_target(root: &Path, file: &Path) -> Result<Option<PathBuf>, CliError> {
    let is_link = std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(Some(file.to_path_buf()));
    }
    let target = std::fs::canonicalize(file)
        .map_err(|e| CliError::Message(format!("cannot follow {}: {e}", file.display())))?;
    Ok(target.starts_with(root).then_some(target))
}
