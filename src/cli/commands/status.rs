//! `status`: the spec's resources against their RPO, read from the
//! repositories alone, rendered as a table, JSON or a Prometheus textfile,
//! with an exit code a monitor acts on.

use super::{load, settings, write_atomically};
use crate::apply;
use crate::cli::args::StatusArgs;
use crate::cli::views::{self, Style};
use crate::cli::{CliError, Exit, out};
use crate::status::{self, RepositoryReading};
use std::path::Path;

pub fn status(dir: &Path, args: StatusArgs, style: Style) -> Result<Exit, CliError> {
    let loaded = load(dir, &args.spec)?;
    let opened = apply::open_each_repository(&loaded.spec, &settings(&args.lock, None, "status"));
    let readings: Vec<(String, RepositoryReading)> = opened
        .into_iter()
        .map(|(name, opened)| {
            let reading = match opened {
                Ok(named) => status::read_repository(Ok(&named)),
                Err(error) => status::read_repository(Err(error)),
            };
            (name, reading)
        })
        .collect();
    let now = chrono::Utc::now();
    let report = status::compute(&loaded.spec, &readings, now);
    if let Some(file) = &args.prometheus {
        write_atomically(file, views::status::prometheus(&report).as_bytes())?;
    }
    if args.json {
        out!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("status serialises")
        );
    } else {
        out!("{}", views::status::render(&report, style));
    }
    if args.notify {
        notify_late(&loaded.spec, &report);
    }
    Ok(Exit::Status(report.verdict))
}

/// `--notify`: the resources past their RPO sent to the blocks that watch
/// `late`; what was sent, and what was not, said on stderr (the status and
/// its exit code stay what they are).
fn notify_late(spec: &crate::spec::Spec, report: &status::Status) {
    let late = status::late_resources(report);
    if late.is_empty() || !crate::notify::wanted(spec, crate::spec::NotifyEvent::Late) {
        return;
    }
    let notice = crate::notify::Notice::late(late, None);
    for delivery in crate::notify::send(spec, &notice) {
        match delivery.error {
            None => eprintln!("{delivery}"),
            Some(_) => eprintln!("warning: {delivery}"),
        }
    }
}
