//! `schedule`: what to install so `apply` runs every `schedule.every` of
//! the spec (rendered by [`views::schedule`]). Reads the spec only: no
//! engine, no repository.

use super::{load, write_atomically};
use crate::cli::args::ScheduleArgs;
use crate::cli::views::schedule::{self as views, ScheduledApply};
use crate::cli::{CliError, Exit, out};
use crate::spec::{CredentialSource, Encryption, RepositoryLocation, Spec};
use std::path::Path;

pub fn schedule(dir: &Path, args: ScheduleArgs) -> Result<Exit, CliError> {
    if !args.spec.vars.is_empty() {
        return Err(CliError::Message(
            "--var values would be written into the crontab or unit, where anyone reading it \
             sees them: put them in a --var-file (its path is written, not its values)"
                .to_string(),
        ));
    }
    let loaded = load(dir, &args.spec)?;
    let Some(schedule) = &loaded.spec.schedule else {
        return Err(CliError::Message(
            "the spec declares no schedule: add `schedule { every = \"1h\" }` to a spec file. \
             Plans use that interval too, backing up what would pass its rpo before the next run"
                .to_string(),
        ));
    };
    let absolute = |path: &Path, what: &str| {
        std::path::absolute(path).map_err(|e| {
            CliError::Message(format!(
                "cannot make {what} {} absolute: {e}",
                path.display()
            ))
        })
    };
    let spec_dir = std::fs::canonicalize(dir).map_err(|e| {
        CliError::Message(format!(
            "cannot resolve the spec directory {}: {e}",
            dir.display()
        ))
    })?;
    let binary = std::env::current_exe()
        .map_err(|e| CliError::Message(format!("cannot tell where lifeboat itself is: {e}")))?;
    let scheduled = ScheduledApply {
        name: views::name_of(&spec_dir),
        binary,
        var_files: args
            .spec
            .var_files
            .iter()
            .map(|f| absolute(&dir.join(f), "the --var-file"))
            .collect::<Result<_, _>>()?,
        spec_dir,
        every: schedule.every,
        env_file: absolute(&args.env_file, "--env-file")?,
        environment: environment_names(&loaded.spec),
    };
    if args.cron {
        out!("{}", views::cron(&scheduled).map_err(CliError::Message)?);
        return Ok(Exit::Success);
    }
    let units = views::systemd(&scheduled).map_err(CliError::Message)?;
    match &args.write {
        Some(target) => {
            for (file, text) in &units {
                let path = target.join(file);
                write_atomically(&path, text.as_bytes())?;
                out!("Wrote {}\n", path.display());
            }
            out!(
                "Then: systemctl daemon-reload && systemctl enable --now {}.timer\n",
                scheduled.name
            );
        }
        None => {
            for (file, text) in &units {
                out!("# --- {file}\n{text}\n");
            }
        }
    }
    Ok(Exit::Success)
}

/// The environment variables the spec's repositories read (passphrases, S3
/// keys), each once. The default repository needs none: its passphrase
/// file lives beside it.
fn environment_names(spec: &Spec) -> Vec<String> {
    let mut names = Vec::new();
    for repository in &spec.repositories {
        if let Encryption::Passphrase { passphrase_env } = &repository.encryption {
            names.push(passphrase_env.clone());
        }
        // Credentials read from files are read there by the run itself.
        if let RepositoryLocation::S3 {
            access_key,
            secret_key,
            ..
        } = &repository.location
        {
            for source in [access_key, secret_key] {
                if let CredentialSource::Env(name) = source {
                    names.push(name.clone());
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}
