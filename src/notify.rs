//! notify: tells people and monitors what a run did and which resources
//! are late, as the spec's `notify` blocks ask: a JSON body POSTed to a
//! webhook (schemas/notify.schema.json), or a ping of a healthchecks-style
//! check (`/start`, success, `/fail`).
//!
//! Owns the body, which block is sent what, and the delivery (ureq, a short
//! timeout, one retry). A receiver that is down is a [`Delivery`] with its
//! error, returned for the caller to report, never a failed run. URLs may
//! hold tokens: nothing here shows more of one than its host. It knows
//! nothing of engines or repositories.

use crate::failure::FailureClass;
use crate::spec::{NotifyEvent, NotifySpec, NotifyTarget, Spec, UrlSource};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a webhook receives, as JSON. `text` is a summary for people (the
/// field chat incoming hooks show).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Notice {
    pub event: NotifyEvent,
    /// A summary in a few lines, for chat hooks.
    pub text: String,
    /// The host lifeboat ran on.
    pub host: String,
    pub time: DateTime<Utc>,
    /// The run it is about (absent: from `status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The kind of that run: `backup` (apply), `restore` or `drill`
    /// (absent: from `status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::repo::RunKind>,
    /// The resources it is about: failed or skipped ones for a failure,
    /// late ones for late, the ones backed up for a success.
    pub resources: Vec<NoticeResource>,
    /// Version of the lifeboat that sent it.
    pub lifeboat: String,
}

/// One resource of a [`Notice`].
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct NoticeResource {
    /// `volume.data`
    pub address: String,
    /// `done`, `failed`, `skipped` (a run) or `late`, `missing` (its RPO).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FailureClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Late: how old its newest copy is, and its RPO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<u64>,
}

impl Notice {
    /// A notice of `event` about `resources`, sent now from this host.
    pub fn new(
        event: NotifyEvent,
        text: String,
        run: Option<String>,
        resources: Vec<NoticeResource>,
    ) -> Notice {
        Notice {
            event,
            text,
            host: crate::host::hostname(),
            time: Utc::now(),
            run,
            kind: None,
            resources,
            lifeboat: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// A notice of resources past their RPO (`late`): from an apply's plan or
    /// from `status`.
    pub fn late(late: Vec<NoticeResource>, run: Option<&str>) -> Notice {
        let listed: Vec<String> = late
            .iter()
            .map(|r| match (r.age_seconds, r.rpo_seconds) {
                (Some(age), Some(rpo)) => format!(
                    "{} ({} old, rpo {})",
                    r.address,
                    crate::plan::format_age(std::time::Duration::from_secs(age)),
                    crate::plan::format_age(std::time::Duration::from_secs(rpo))
                ),
                _ => format!("{} ({})", r.address, r.status),
            })
            .collect();
        let text = format!(
            "lifeboat on {}: {} past {} RPO: {}",
            crate::host::hostname(),
            if late.len() == 1 {
                "1 resource is"
            } else {
                "resources are"
            },
            if late.len() == 1 { "its" } else { "their" },
            listed.join(", ")
        );
        Notice::new(NotifyEvent::Late, text, run.map(str::to_string), late)
    }
}

/// What happened to one notification: sent, or why not.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Delivery {
    /// The `notify` block's name.
    pub notify: String,
    /// The receiver's host (never the whole URL: it may hold a token).
    pub host: String,
    /// Why it was not delivered; `None`: delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            None => write!(f, "notify.{} ({}): sent", self.notify, self.host),
            Some(error) => write!(
                f,
                "notify.{} ({}): not delivered: {error}",
                self.notify, self.host
            ),
        }
    }
}

/// What a healthchecks-style check is pinged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ping {
    Start,
    Success,
    Fail,
}

impl Ping {
    fn suffix(self) -> &'static str {
        match self {
            Ping::Start => "/start",
            Ping::Success => "",
            Ping::Fail => "/fail",
        }
    }
}

/// Sends `notice` to every block that wants it: webhooks whose `on` names
/// its event, healthchecks checks for the end of an apply (success or
/// failure; a check watches lateness itself, and backups only). Blocking.
pub fn send(spec: &Spec, notice: &Notice) -> Vec<Delivery> {
    let body = serde_json::to_vec(notice).expect("notices serialise");
    spec.notifications
        .iter()
        .filter_map(|notify| match &notify.target {
            NotifyTarget::Webhook(url) if notify.on.contains(&notice.event) => {
                Some(deliver(notify, url, "", &body, "application/json"))
            }
            NotifyTarget::Webhook(_) => None,
            // A check watches the scheduled backups: a restore or a drill
            // that ends is not a backup that ran.
            NotifyTarget::Healthchecks(_)
                if notice
                    .kind
                    .is_some_and(|kind| kind != crate::repo::RunKind::Backup) =>
            {
                None
            }
            NotifyTarget::Healthchecks(url) => {
                let ping = match notice.event {
                    NotifyEvent::Success => Ping::Success,
                    NotifyEvent::Failure => Ping::Fail,
                    NotifyEvent::Late => return None,
                };
                Some(deliver(
                    notify,
                    url,
                    ping.suffix(),
                    notice.text.as_bytes(),
                    "text/plain; charset=utf-8",
                ))
            }
        })
        .collect()
}

/// Pings every healthchecks check's `/start`: an apply begins (the check
/// then measures its duration, and knows it hangs). Blocking.
pub fn send_start(spec: &Spec) -> Vec<Delivery> {
    spec.notifications
        .iter()
        .filter_map(|notify| match &notify.target {
            NotifyTarget::Healthchecks(url) => Some(deliver(
                notify,
                url,
                Ping::Start.suffix(),
                b"",
                "text/plain; charset=utf-8",
            )),
            NotifyTarget::Webhook(_) => None,
        })
        .collect()
}

/// Whether `spec` has a block that `event` would reach.
pub fn wanted(spec: &Spec, event: NotifyEvent) -> bool {
    spec.notifications.iter().any(|n| match n.target {
        NotifyTarget::Webhook(_) => n.on.contains(&event),
        NotifyTarget::Healthchecks(_) => event != NotifyEvent::Late,
    })
}

/// POSTs `body` to the block's URL (plus `suffix`), trying once more when
/// the first attempt fails.
fn deliver(
    notify: &NotifySpec,
    url: &UrlSource,
    suffix: &str,
    body: &[u8],
    content_type: &str,
) -> Delivery {
    let failed = |host: String, error: String| Delivery {
        notify: notify.name.clone(),
        host,
        error: Some(error),
    };
    let url = match url {
        UrlSource::Written(url) => url.clone(),
        UrlSource::Env(name) => match std::env::var(name) {
            Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
            _ => {
                return failed(
                    "-".to_string(),
                    format!("the environment variable {name} (url_env) is not set"),
                );
            }
        },
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        // Not a URL: what it holds is not shown at all.
        return failed(
            "-".to_string(),
            "the URL is not an http:// or https:// one".to_string(),
        );
    }
    let host = host_of(&url);
    let target = format!("{}{suffix}", url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(notify.timeout))
        .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let attempt = || {
        agent
            .post(&target)
            .content_type(content_type)
            .send(body)
            .map(|_| ())
    };
    // One retry: a receiver restarting, a dropped connection.
    match attempt().or_else(|_| attempt()) {
        Ok(()) => Delivery {
            notify: notify.name.clone(),
            host,
            error: None,
        },
        Err(error) => failed(host, describe(&error, &target)),
    }
}

/// The error in words, with the URL (and its path and query, where a
/// token often is) taken out.
fn describe(error: &ureq::Error, url: &str) -> String {
    let text = match error {
        ureq::Error::StatusCode(code) => format!("the receiver answered HTTP {code}"),
        ureq::Error::Timeout(_) => "no answer in time".to_string(),
        ureq::Error::HostNotFound => "the host is not found".to_string(),
        ureq::Error::ConnectionFailed => "cannot connect".to_string(),
        ureq::Error::Io(io) => format!("cannot connect: {}", io.kind()),
        other => other.to_string(),
    };
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .filter(|path| path.len() > 1);
    let text = text.replace(url, "(url)");
    match path {
        Some(path) => text.replace(path, "/(path)"),
        None => text,
    }
}

/// The host (and port) of a URL, without any user or password.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        "-".to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_of_a_url_is_ever_shown() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/XYZ"),
            "hooks.slack.com"
        );
        assert_eq!(
            host_of("http://user:secret@127.0.0.1:8080/x?t=1"),
            "127.0.0.1:8080"
        );
        assert_eq!(host_of("https://hc-ping.com"), "hc-ping.com");
        let error = ureq::Error::BadUri("https://hc-ping.com/abc-token/fail".into());
        let text = describe(&error, "https://hc-ping.com/abc-token/fail");
        assert!(!text.contains("abc-token"), "{text}");
    }
}
