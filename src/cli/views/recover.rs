//! The report of `lifeboat recover`: which services a killed lifeboat had
//! stopped or paused run again, what was left to live processes, what
//! could not be done.

use super::words;
use crate::apply::RecoverReport;

pub fn render(report: &RecoverReport, helpers: &[String]) -> String {
    let mut out = String::new();
    for resumed in &report.resumed {
        out.push_str(&words::resumed(resumed));
        out.push('\n');
    }
    for held in &report.still_held {
        out.push_str(&format!(
            "{held}: that lifeboat is still running; it starts the container again itself\n"
        ));
    }
    for helper in helpers {
        out.push_str(&format!("removed {helper}\n"));
    }
    for error in &report.errors {
        out.push_str(&format!("Error: {error}\n"));
    }
    if report.resumed.is_empty()
        && report.still_held.is_empty()
        && helpers.is_empty()
        && report.errors.is_empty()
    {
        out.push_str("Nothing to recover: no lifeboat run left a service stopped or paused.\n");
    }
    out
}
