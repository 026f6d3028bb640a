//! `init`: lists what runs on the default engine, writes a first spec into
//! an empty directory, and checks that it loads.

use super::write_atomically;
use crate::cli::args::InitArgs;
use crate::cli::views::plural;
use crate::cli::{CliError, Exit, out};
use crate::engine::{Connection, DockerEngine, Images, Inventory};
use crate::init::{Scope, generate};
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
    let containers = engine
        .containers()
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
    // With their layers: what each image is built FROM comes from them.
    let mut images = Vec::new();
    for listed in engine
        .list_images()
        .await
        .map_err(|e| CliError::Message(e.to_string()))?
    {
        if let Some(image) = engine
            .image(&listed.id)
            .await
            .map_err(|e| CliError::Message(e.to_string()))?
        {
            images.push(image);
        }
    }
    let generated =
        generate(&containers, &images, &scope).map_err(|e| CliError::Message(e.to_string()))?;
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
    if !generated.skipped.is_empty() {
        out!(
            "Left out (listed at the end of the file): {}\n",
            plural(generated.skipped.len(), "mount")
        );
    }
    Ok(Exit::Success)
}
