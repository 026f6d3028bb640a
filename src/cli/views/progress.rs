//! Apply events as people (or machines) follow them: live progress bars on
//! a terminal, with a percentage and the time left when the size is known;
//! plain lines otherwise; one JSON object a line with `--json`.

use super::{content_size, human_bytes, plural};
use crate::apply::Event;
use crate::cli::out;
use crate::plan::{Action, short_id};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;

pub struct ProgressView {
    bars: Option<MultiProgress>,
    json: bool,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl ProgressView {
    /// `bars`: draw live bars on stderr (a terminal, colors allowed);
    /// `json`: print each event as a JSON line instead of text.
    pub fn new(bars: bool, json: bool) -> Self {
        ProgressView {
            bars: (bars && !json)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            json,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => out!("{text}\n"),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_bar(
        &self,
        bars: &MultiProgress,
        address: &str,
        verb: String,
        total: Option<u64>,
        estimate: bool,
    ) {
        let bar = bars.add(match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        });
        // SI units (KB, MB: powers of 1000), as `human_bytes` and every
        // other size lifeboat shows; an estimated total is marked `~`.
        let template = match (total, estimate) {
            (Some(_), false) => {
                "{prefix} {msg} [{bar:30}] {percent:>3}% {decimal_bytes}/{decimal_total_bytes} \
                 {decimal_bytes_per_sec} {eta} left"
            }
            (Some(_), true) => {
                "{prefix} {msg} [{bar:30}] {percent:>3}% {decimal_bytes}/~{decimal_total_bytes} \
                 {decimal_bytes_per_sec} ~{eta} left"
            }
            (None, _) => {
                "{prefix} {msg} {spinner} {decimal_bytes} {decimal_bytes_per_sec} {elapsed}"
            }
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(address.to_string());
        bar.set_message(verb);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        self.active().insert(address.to_string(), bar);
    }

    pub fn handle(&self, event: &Event) {
        if self.json {
            if let Ok(value) = serde_json::to_value(event) {
                out!("{value}\n");
            }
            return;
        }
        match event {
            Event::ResourceStarted {
                address,
                action,
                repository,
                expected_bytes,
                expected_is_estimate,
            } => {
                let verb = match action {
                    Action::Restore => format!("restoring from {repository}"),
                    Action::Copy => format!("copying → {repository}"),
                    _ => format!("backing up → {repository}"),
                };
                match &self.bars {
                    Some(bars) => {
                        self.start_bar(bars, address, verb, *expected_bytes, *expected_is_estimate)
                    }
                    None => self.line(format!("{address}: {verb}")),
                }
            }
            Event::ResourceStep { address, message } => self.line(format!("{address}: {message}")),
            Event::Progress { address, bytes, .. } => {
                if let Some(bar) = self.active().get(address) {
                    // The previous snapshot's size is an estimate: grow past it.
                    if bar.length().is_some_and(|total| *bytes > total) {
                        bar.set_length(*bytes);
                    }
                    bar.set_position(*bytes);
                }
            }
            Event::ResourceFinished {
                address,
                action,
                snapshot,
                files,
                bytes,
                read_bytes,
                added_bytes,
                notes,
                elapsed,
                ..
            } => {
                self.finish_bar(address);
                let content = content_size(address, *bytes, *files);
                let detail = match action {
                    Action::Restore => {
                        format!("restored snapshot {} ({content})", short_id(snapshot))
                    }
                    Action::Copy => format!(
                        "copied, snapshot {} ({content}; {} added)",
                        short_id(snapshot),
                        human_bytes(*added_bytes),
                    ),
                    _ => format!(
                        "done, snapshot {} ({content}; {} read, {} added)",
                        short_id(snapshot),
                        human_bytes(*read_bytes),
                        human_bytes(*added_bytes),
                    ),
                };
                self.line(format!(
                    "{address}: {detail} in {:.1}s",
                    elapsed.as_secs_f64()
                ));
                for note in notes {
                    self.line(format!("{address}: note: {note}"));
                }
            }
            Event::Forgotten {
                address,
                repository,
                snapshots,
            } => self.line(format!(
                "{address}: forgot {} on {repository}",
                plural(snapshots.len(), "snapshot")
            )),
            Event::Pruned { repository, stats } => self.line(format!(
                "repository.{repository}: pruned {} ({} repacked), {} freed{}",
                plural(stats.packs_deleted as usize, "pack"),
                stats.packs_repacked,
                human_bytes(stats.bytes_freed),
                super::prune::leftovers_removed(stats),
            )),
            Event::ResourceFailed { address, error, .. } => {
                self.finish_bar(address);
                self.line(format!("{address}: FAILED: {error}"));
            }
            Event::ResourceSkipped { address, because } => {
                self.line(format!("{address}: skipped: {because}"));
            }
            Event::ServiceQuiesced {
                address,
                service,
                container,
                hold,
            } => self.line(format!(
                "{address}: {} {service} (container {container}) for the copy",
                match hold {
                    crate::apply::Hold::Paused => "pausing",
                    _ => "stopping",
                }
            )),
            Event::ServiceResumed {
                address,
                service,
                hold,
                seconds,
                ..
            } => self.line(format!(
                "{address}: {service} {} after {seconds:.1}s",
                match hold {
                    crate::apply::Hold::Paused => "unpaused",
                    _ => "started again",
                }
            )),
            Event::ServicesRecovered { resumed, errors } => {
                for one in resumed {
                    self.line(super::words::resumed(one));
                }
                for error in errors {
                    self.line(format!("quiesce journal: {error}"));
                }
            }
            Event::Notified { delivery } => match delivery.error {
                None => self.line(delivery.to_string()),
                Some(_) => self.line(format!("warning: {delivery} (the run is not failed by it)")),
            },
            Event::LeftoversRemoved { engine, containers } => self.line(format!(
                "engine.{engine}: removed {} left by lifeboat processes that are gone: {}",
                plural(containers.len(), "helper container"),
                containers.join(", ")
            )),
        }
    }

    fn finish_bar(&self, address: &str) {
        if let Some(bar) = self.active().remove(address) {
            bar.finish_and_clear();
        }
    }
}
