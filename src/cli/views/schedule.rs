//! `lifeboat schedule`: the crontab line, or the systemd service and timer,
//! that run `apply` every `schedule.every` of the spec. Pure text from a
//! [`ScheduledApply`]; the command gathers it and prints or writes the result.
//!
//! What every rendering holds: the absolute binary and spec directory,
//! `apply --auto-approve`, a lock timeout of half the interval (a run that
//! finds the previous one still going waits for it, and gives up before the
//! next one starts, so runs never pile up), the environment read from a file
//! (the passphrase is never written here), and the output sent to the
//! journal (systemd) or syslog through `logger` (cron).

use crate::plan::format_age;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One scheduled `apply` of one spec directory.
#[derive(Debug, Clone)]
pub struct ScheduledApply {
    /// The units' base name and the log tag (`lifeboat-shop`).
    pub name: String,
    pub binary: PathBuf,
    pub spec_dir: PathBuf,
    /// `--var-file`s, absolute.
    pub var_files: Vec<PathBuf>,
    pub every: Duration,
    /// `KEY='value'` lines the run's environment comes from (sourced by sh
    /// for cron, read by systemd for the service: single quotes suit both).
    pub env_file: PathBuf,
    /// The variables the spec reads from the environment (passphrases, S3
    /// keys): named in the output so the file can be written, never valued.
    pub environment: Vec<String>,
}

impl ScheduledApply {
    /// Half the interval: a run waits that long for the previous one.
    pub fn lock_timeout(&self) -> Duration {
        Duration::from_secs((self.every.as_secs() / 2).max(1))
    }

    /// The command line, as words.
    fn words(&self) -> Vec<String> {
        let mut words = vec![
            self.binary.display().to_string(),
            "--chdir".to_string(),
            self.spec_dir.display().to_string(),
            "--no-color".to_string(),
            "apply".to_string(),
            "--auto-approve".to_string(),
            "--lock-timeout".to_string(),
            exact(self.lock_timeout()),
        ];
        for file in &self.var_files {
            words.extend(["--var-file".to_string(), file.display().to_string()]);
        }
        words
    }

    fn header(&self) -> String {
        let mut out = format!(
            "# lifeboat: `apply` of {} every {} (the spec's schedule.every, which plans use\n\
             # to back up what would pass its rpo before the next run).\n",
            self.spec_dir.display(),
            format_age(self.every)
        );
        if self.environment.is_empty() {
            out.push_str(&format!(
                "# {} may hold KEY='value' lines for the run's environment.\n",
                self.env_file.display()
            ));
        } else {
            out.push_str(&format!(
                "# {} (mode 0600) must define, as KEY='value' lines: {}.\n",
                self.env_file.display(),
                self.environment.join(", ")
            ));
        }
        out
    }
}

/// A duration both humantime (`--lock-timeout`) and systemd read, to the
/// second and without spaces: `2days1h5m`, `7m30s` (never rounded, as plan
/// ages are).
fn exact(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}

/// Characters that never need quoting, in a shell or a systemd command line.
fn is_plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c))
}

/// Paths go into command lines: a control character (a newline) would
/// end the line, and is refused.
fn check_words(words: &[String]) -> Result<(), String> {
    match words.iter().find(|w| w.chars().any(char::is_control)) {
        Some(word) => Err(format!(
            "{word:?} holds a control character, which no crontab or unit line can carry"
        )),
        None => Ok(()),
    }
}

/// A shell word for a crontab line: single-quoted when needed, and `%`
/// escaped (cron turns a bare `%` into a newline).
fn cron_word(word: &str) -> String {
    let quoted = if is_plain(word) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    };
    quoted.replace('%', r"\%")
}

/// A word of a systemd command line: double-quoted when needed, with
/// specifiers (`%`) and variable expansion (`$`) escaped.
fn systemd_word(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if is_plain(word) {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', r"\\").replace('"', "\\\""))
    }
}

/// A path in a unit setting that takes one path (no quoting there).
fn systemd_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

/// The crontab schedule for `every`: cron counts minutes within the hour
/// and hours within the day, so only intervals dividing one of those run
/// at even spacing.
fn cron_schedule(every: Duration) -> Result<String, String> {
    let minutes = every.as_secs() / 60;
    match minutes {
        1 => Ok("* * * * *".to_string()),
        2..60 if 60u64.is_multiple_of(minutes) => Ok(format!("*/{minutes} * * * *")),
        60 => Ok("0 * * * *".to_string()),
        61..1440 if minutes.is_multiple_of(60) && 24u64.is_multiple_of(minutes / 60) => {
            Ok(format!("0 */{} * * *", minutes / 60))
        }
        1440 => Ok("0 0 * * *".to_string()),
        _ => Err(format!(
            "cron cannot run every {} at even intervals (it counts minutes within an hour and \
             hours within a day): use `lifeboat schedule --systemd`, or a schedule.every that \
             divides an hour or a day (15m, 1h, 6h, 24h)",
            format_age(every)
        )),
    }
}

/// A crontab line (for `crontab -e` of the user the backups run as, root
/// for direct volume access), with its comments. Everything it prints, a
/// missing environment file included, goes to syslog.
pub fn cron(scheduled: &ScheduledApply) -> Result<String, String> {
    let words = scheduled.words();
    check_words(&words)?;
    check_words(&[scheduled.env_file.display().to_string()])?;
    let command: Vec<String> = words.iter().map(|w| cron_word(w)).collect();
    let env_file = cron_word(&scheduled.env_file.display().to_string());
    Ok(format!(
        "{}# Install with `crontab -e`; output goes to syslog, tagged {}.\n\
         {} {{ set -a && . {env_file} && set +a && {}; }} 2>&1 | logger -t {}\n",
        scheduled.header(),
        scheduled.name,
        cron_schedule(scheduled.every)?,
        command.join(" "),
        cron_word(&scheduled.name),
    ))
}

/// The systemd service and timer: `(file name, content)` each.
pub fn systemd(scheduled: &ScheduledApply) -> Result<[(String, String); 2], String> {
    let words = scheduled.words();
    check_words(&words)?;
    check_words(&[scheduled.env_file.display().to_string()])?;
    let command: Vec<String> = words.iter().map(|w| systemd_word(w)).collect();
    let service_file = format!("{}.service", scheduled.name);
    let every = exact(scheduled.every);
    let service = format!(
        "{}[Unit]\n\
         Description=lifeboat apply of {}\n\
         Wants=network-online.target\n\
         After=network-online.target docker.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         EnvironmentFile={}\n\
         Environment=NO_COLOR=1\n\
         ExecStart={}\n\
         SyslogIdentifier={}\n\
         StandardOutput=journal\n\
         StandardError=journal\n",
        scheduled.header(),
        systemd_path(&scheduled.spec_dir),
        systemd_path(&scheduled.env_file),
        command.join(" "),
        scheduled.name,
    );
    // From the last start: a run that takes long never shortens the gap
    // below `every`, and systemd never starts the service while it runs.
    let timer = format!(
        "# Runs {service_file} every {every}.\n\
         [Unit]\n\
         Description=Run {service_file} every {every}\n\
         \n\
         [Timer]\n\
         OnBootSec=1min\n\
         OnUnitActiveSec={every}\n\
         AccuracySec=1min\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    Ok([
        (service_file, service),
        (format!("{}.timer", scheduled.name), timer),
    ])
}

/// The unit and log name of a spec directory: `lifeboat-` and its name,
/// reduced to what unit names and log tags hold.
pub fn name_of(spec_dir: &Path) -> String {
    let base = spec_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.trim_matches('_').is_empty() {
        "lifeboat".to_string()
    } else {
        format!("lifeboat-{cleaned}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduled(every_minutes: u64, dir: &str) -> ScheduledApply {
        ScheduledApply {
            name: name_of(Path::new(dir)),
            binary: "/usr/local/bin/lifeboat".into(),
            spec_dir: dir.into(),
            var_files: Vec::new(),
            every: Duration::from_secs(every_minutes * 60),
            env_file: "/etc/lifeboat/lifeboat.env".into(),
            environment: vec!["LIFEBOAT_PASSPHRASE".into()],
        }
    }

    #[test]
    fn cron_runs_at_even_intervals_or_says_what_to_use() {
        let at = |minutes: u64| cron_schedule(Duration::from_secs(minutes * 60));
        assert_eq!(at(1).unwrap(), "* * * * *");
        assert_eq!(at(15).unwrap(), "*/15 * * * *");
        assert_eq!(at(60).unwrap(), "0 * * * *");
        assert_eq!(at(360).unwrap(), "0 */6 * * *");
        assert_eq!(at(1440).unwrap(), "0 0 * * *");
        for uneven in [7, 90, 300, 2880] {
            assert!(at(uneven).unwrap_err().contains("--systemd"), "{uneven}");
        }
    }

    #[test]
    fn a_crontab_line_quotes_paths_and_logs_to_syslog() {
        let line = cron(&scheduled(60, "/srv/my shop's 100%")).unwrap();
        let last = line.lines().last().unwrap();
        assert_eq!(
            last,
            "0 * * * * { set -a && . /etc/lifeboat/lifeboat.env && set +a && \
             /usr/local/bin/lifeboat --chdir '/srv/my shop'\\''s 100\\%' --no-color apply \
             --auto-approve --lock-timeout 30m; } 2>&1 | logger -t lifeboat-my_shop_s_100_"
        );
        assert!(line.contains("must define, as KEY='value' lines: LIFEBOAT_PASSPHRASE."));
        assert!(
            cron(&scheduled(60, "/srv/a\nb"))
                .unwrap_err()
                .contains("control character")
        );
    }

    #[test]
    fn systemd_units_escape_specifiers_and_time_from_the_last_start() {
        let [(service_name, service), (timer_name, timer)] =
            systemd(&scheduled(15, "/srv/shop $x 50%")).unwrap();
        assert_eq!(service_name, "lifeboat-shop__x_50_.service");
        assert_eq!(timer_name, "lifeboat-shop__x_50_.timer");
        assert!(
            service.contains(
                "ExecStart=/usr/local/bin/lifeboat --chdir \"/srv/shop $$x 50%%\" --no-color \
                 apply --auto-approve --lock-timeout 7m30s\n"
            ),
            "{service}"
        );
        assert!(service.contains("EnvironmentFile=/etc/lifeboat/lifeboat.env\n"));
        assert!(timer.contains("OnUnitActiveSec=15m\n"), "{timer}");
        let [_, (_, timer)] = systemd(&scheduled(2 * 1440 + 65, "/srv/shop")).unwrap();
        assert!(timer.contains("OnUnitActiveSec=2days1h5m\n"), "{timer}");
    }
}
