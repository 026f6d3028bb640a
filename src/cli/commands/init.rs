//! `init`: surveys what runs on the default engine, writes a first spec
//! into an empty directory, checks that it loads, and says what it left
//! out or could not know.

use super::write_atomically;
use crate::cli::args::InitArgs;
use crate::cli::views::plural;
use crate::cli::{CliError, Exit, out};
use crate::engine::{Connection, DockerEngine};
use crate::init::{Scope, generate, survey};
use crate::spec;
use std::path::Path;

pub async fn init(dir: &Path, args: InitArgs) -> Result<Exit, CliError> {
    let scope = match args.from_compose {
        Some(project) => Scope::Compose(project),
        None => Scope::Engine,
    };
    let existing: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".hcl"))
        .collect();
    if !existing.is_empty() {
        return Err(CliError::Message(format!(
            "{} already holds spec files ({}): init writes a new spec and overwrites nothing; \
             pass --chdir with a new directory",
            dir.display(),
            existing.join(", ")
        )));
    }
    let engine = DockerEngine::connect(&Connection::default())
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
    let observed = survey(&engine, &scope)
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
    let generated = generate(&observed, &scope).map_err(|e| CliError::Message(e.to_string()))?;
    let text = spec::fmt::canonical(&generated.text);
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Message(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("main.hcl");
    write_atomically(&path, text.as_bytes())?;
    // What init writes must load: a failure here is lifeboat's bug, and the
    // user must hear of it now rather than at the first plan.
    if let Err(diagnostics) = spec::load_dir(dir, &Default::default()) {
        return Err(CliError::Spec(diagnostics));
    }
    let counts = [
        plural(generated.services, "service"),
        plural(generated.images, "image"),
        plural(generated.volumes, "volume"),
        plural(generated.binds, "bind"),
        plural(generated.dumps, "dump"),
    ];
    out!(
        "Wrote {}: {}.\nReview the lines marked `your choice`, then run `lifeboat plan`.\n",
        path.display(),
        counts.join(", ")
    );
    // The output ends with what the spec does not cover, as the file does.
    for (heading, lines) in [
        ("Not known", &generated.unknown),
        ("Left out", &generated.skipped),
    ] {
        if !lines.is_empty() {
            out!("\n{heading}:\n");
            for line in lines {
                out!("  - {line}\n");
            }
        }
    }
    Ok(Exit::Success)
}
