//! `key list | add | remove | passwd | export`: a repository's key files.
//! New passphrases come from an environment variable, a file, or the
//! terminal (asked twice, not echoed); no secret is printed, except the
//! master key by `key export`, which exists to print it.

use super::{load, settings};
use crate::apply::{self, NamedRepository};
use crate::cli::args::{KeyCommand, KeyRepositoryArgs, NewPassphraseArgs};
use crate::cli::{CliError, Exit, out};
use crate::repo::Repository;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

pub fn key(dir: &Path, command: KeyCommand) -> Result<Exit, CliError> {
    match command {
        KeyCommand::List(args) => {
            let opened = opened(dir, &args.target, true)?;
            let mut listed = Vec::new();
            for (named, repository) in &opened {
                listed.push((named, repository.list_keys()?));
            }
            if args.json {
                let value: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|(named, keys)| {
                        serde_json::json!({"repository": named.name, "location": named.location, "keys": keys})
                    })
                    .collect();
                out!("{}\n", serde_json::to_string_pretty(&value).expect("json"));
                return Ok(Exit::Success);
            }
            for (named, keys) in listed {
                out!("repository.{} ({})\n", named.name, named.location);
                out!("  {:<10}{:<22}HOST\n", "ID", "CREATED (UTC)");
                for key in keys {
                    let created = key
                        .created
                        .map(|c| c.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into());
                    out!(
                        "{} {:<10}{:<22}{}{}\n",
                        if key.current { "*" } else { " " },
                        &key.id[..8.min(key.id.len())],
                        created,
                        key.hostname,
                        key.problem
                            .map(|p| format!("  (unusable: {p})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(Exit::Success)
        }
        KeyCommand::Add(args) => {
            if let Some(file) = &args.master_key {
                let loaded = load(dir, &args.target.spec)?;
                let name = only_repository(&loaded.spec, args.target.repository.as_deref())?;
                let (location, backend) = apply::repository_backend(&loaded.spec, &name)?;
                let export = read_limited(file)?;
                let passphrase = new_passphrase(&args.new_passphrase)?;
                let id = Repository::add_key_from_export(backend, &export, &passphrase)?;
                out!(
                    "repository.{name} ({location}): added key {} from the master key in {}\n",
                    &id[..8],
                    file.display()
                );
                return Ok(Exit::Success);
            }
            let (named, repository) = opened(dir, &args.target, false)?.remove(0);
            let passphrase = new_passphrase(&args.new_passphrase)?;
            let id = repository.add_key(&passphrase)?;
            out!(
                "repository.{} ({}): added key {}; the new passphrase opens the repository too\n",
                named.name,
                named.location,
                &id[..8]
            );
            Ok(Exit::Success)
        }
        KeyCommand::Remove(args) => {
            let (named, repository) = opened(dir, &args.target, false)?.remove(0);
            let removed = repository.remove_key(&args.id)?;
            out!(
                "repository.{} ({}): removed key {}\n",
                named.name,
                named.location,
                &removed[..8]
            );
            Ok(Exit::Success)
        }
        KeyCommand::Passwd(args) => {
            let (named, repository) = opened(dir, &args.target, false)?.remove(0);
            let passphrase = new_passphrase(&args.new_passphrase)?;
            let (new, old) = repository.change_passphrase(&passphrase)?;
            out!(
                "repository.{} ({}): the passphrase changed (key {} replaces {}). Set the \
                 environment variable the spec names to the new passphrase before the next run.\n",
                named.name,
                named.location,
                &new[..8],
                &old[..8]
            );
            Ok(Exit::Success)
        }
        KeyCommand::Export(target) => {
            let (named, repository) = opened(dir, &target, false)?.remove(0);
            let export = repository.export_master_key()?;
            eprintln!(
                "The master key of repository.{} ({}) follows. Whoever holds it can read every \
                 backup there: print it or keep it offline. `lifeboat key add --master-key FILE` \
                 makes a key from it when no passphrase opens the repository.",
                named.name, named.location
            );
            out!("{}\n", serde_json::to_string_pretty(&export).expect("json"));
            Ok(Exit::Success)
        }
    }
}

/// The opened repositories the command acts on: the one `--repository`
/// names, else every one (`all`) or the only one. Never empty.
fn opened(
    dir: &Path,
    target: &KeyRepositoryArgs,
    all: bool,
) -> Result<Vec<(NamedRepository, Repository)>, CliError> {
    let loaded = load(dir, &target.spec)?;
    let wanted = match target.repository.as_deref() {
        Some(name) => Some(only_repository(&loaded.spec, Some(name))?),
        None if all => None,
        None => Some(only_repository(&loaded.spec, None)?),
    };
    let mut out = Vec::new();
    for mut named in apply::open_repositories(&loaded.spec, &settings(&target.lock, None, "key"))? {
        if wanted.as_ref().is_some_and(|w| *w != named.name) {
            continue;
        }
        match named.repository.take() {
            Some(repository) => out.push((named, repository)),
            None => {
                return Err(CliError::Message(format!(
                    "repository.{} ({}) does not exist yet: `lifeboat apply` creates it",
                    named.name, named.location
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::Message("no repository to act on".into()));
    }
    Ok(out)
}

/// `name` when the spec declares it; with none given, the only repository.
fn only_repository(spec: &crate::spec::Spec, name: Option<&str>) -> Result<String, CliError> {
    let names = apply::repository_names(spec);
    match name {
        Some(name) if names.iter().any(|n| n == name) => Ok(name.to_string()),
        Some(name) => Err(CliError::Message(format!(
            "--repository {name}: the spec declares no such repository (declared: {})",
            names.join(", ")
        ))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(CliError::Message(format!(
            "the spec declares several repositories ({}): name one with --repository",
            names.join(", ")
        ))),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut bytes))
        .map_err(|e| CliError::Message(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

/// The new passphrase: from the variable or file named, else asked twice
/// on the terminal without echo. Never empty.
fn new_passphrase(args: &NewPassphraseArgs) -> Result<String, CliError> {
    let passphrase = if let Some(var) = &args.new_passphrase_env {
        std::env::var(var).map_err(|_| {
            CliError::Message(format!(
                "--new-passphrase-env {var}: the variable is not set"
            ))
        })?
    } else if let Some(file) = &args.new_passphrase_file {
        let bytes = read_limited(file)?;
        String::from_utf8_lossy(&bytes)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Message(
                "no terminal to ask for the new passphrase: pass --new-passphrase-env VAR or \
                 --new-passphrase-file FILE"
                    .into(),
            ));
        }
        let first = ask_hidden("New passphrase: ")?;
        let second = ask_hidden("The same again: ")?;
        if first != second {
            return Err(CliError::Message(
                "the two passphrases differ: nothing was changed".into(),
            ));
        }
        first
    };
    if passphrase.is_empty() {
        return Err(CliError::Message(
            "the new passphrase is empty: nothing was changed".into(),
        ));
    }
    Ok(passphrase)
}

/// One line from the terminal with echo off (restored after).
fn ask_hidden(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_terminal = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_terminal {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a copy of the terminal's own settings with echo off.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have_terminal {
        // SAFETY: the settings read above, put back.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
