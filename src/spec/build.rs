//! Conversion of checked blocks to the typed model ([`Spec`]): defaults
//! filled in, and the rules that need a whole block or the whole spec
//! (exactly one repository location, a retention that keeps something, one
//! volume block per Docker volume).

use super::check::Checked;
use super::diagnostics::Diagnostic;
use super::load::Loader;
use super::model::*;
use super::names;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The shortest `schedule.every`: timers and cron count minutes.
const MIN_SCHEDULE: std::time::Duration = std::time::Duration::from_secs(60);

impl Loader<'_> {
    pub(super) fn build(
        &mut self,
        dir: &Path,
        checked: Vec<(String, Checked)>,
        variables: Vec<VariableValue>,
    ) -> Spec {
        let mut spec = Spec {
            dir: dir.to_path_buf(),
            variables,
            sensitive_values: std::mem::take(&mut self.sensitive),
            ..Spec::default()
        };
        for (kind, block) in checked {
            self.check_docker_names(&kind, &block, &spec.sensitive_values);
            let name = block.label.clone();
            let span = block.span.clone();
            match kind.as_str() {
                "repository" => {
                    let encryption = match block.blocks.get("encryption") {
                        Some(e) if e.bool("none") == Some(true) => Encryption::None,
                        Some(e) => Encryption::Passphrase {
                            passphrase_env: e
                                .string("passphrase_env")
                                .unwrap_or_else(|| "LIFEBOAT_PASSPHRASE".into()),
                        },
                        None => Encryption::Passphrase {
                            passphrase_env: "LIFEBOAT_PASSPHRASE".into(),
                        },
                    };
                    let location = match (
                        block.string("path"),
                        block.blocks.get("s3"),
                        block.blocks.get("sftp"),
                    ) {
                        (Some(path), None, None) => RepositoryLocation::Local {
                            path: PathBuf::from(path),
                        },
                        (None, None, Some(sftp)) => match self.sftp_location(&name, sftp) {
                            Some(location) => location,
                            None => continue,
                        },
                        (None, Some(s3), None) => {
                            let access_key =
                                self.credential(&name, s3, "access_key", "AWS_ACCESS_KEY_ID");
                            let secret_key =
                                self.credential(&name, s3, "secret_key", "AWS_SECRET_ACCESS_KEY");
                            let endpoint = s3.string("endpoint").unwrap_or_default();
                            if !(endpoint.starts_with("http://")
                                || endpoint.starts_with("https://"))
                            {
                                self.error(Diagnostic::error(
                                    "s3_endpoint",
                                    format!("repository {name:?}: the s3 endpoint {endpoint:?} is no URL; write it as `https://host[:port]` (or `http://` for a server on a trusted network)"),
                                    s3.fields.get("endpoint").map(|f| f.span.clone()),
                                ));
                            }
                            let (Some(access_key), Some(secret_key)) = (access_key, secret_key)
                            else {
                                continue;
                            };
                            RepositoryLocation::S3 {
                                endpoint,
                                bucket: s3.string("bucket").unwrap_or_default(),
                                region: s3.string("region").unwrap_or_else(|| "us-east-1".into()),
                                prefix: s3.string("prefix").unwrap_or_default(),
                                access_key,
                                secret_key,
                            }
                        }
                        _ => {
                            self.error(
                                Diagnostic::error("repository_location", format!("repository {name:?} needs exactly one of `path = \"…\"`, an `s3 {{ … }}` or an `sftp {{ … }}` block"), Some(span.clone())),
                            );
                            continue;
                        }
                    };
                    spec.repositories.push(RepositorySpec {
                        name,
                        location,
                        encryption,
                        span,
                    });
                }
                "policy" => {
                    let retention = block.blocks.get("retention").map(|r| Retention {
                        keep_last: r.count("keep_last"),
                        keep_hourly: r.count("keep_hourly"),
                        keep_daily: r.count("keep_daily"),
                        keep_weekly: r.count("keep_weekly"),
                        keep_monthly: r.count("keep_monthly"),
                        keep_yearly: r.count("keep_yearly"),
                        keep_within: r.duration("keep_within"),
                        keep_tagged: r.strings("keep_tagged"),
                    });
                    if let Some(r) = &retention {
                        let counts = [
                            r.keep_last,
                            r.keep_hourly,
                            r.keep_daily,
                            r.keep_weekly,
                            r.keep_monthly,
                            r.keep_yearly,
                        ];
                        let any_set = counts.iter().any(Option::is_some) || r.keep_within.is_some();
                        let keeps_something = counts.iter().any(|c| c.is_some_and(|n| n > 0))
                            || r.keep_within.is_some();
                        let retention_block = &block.blocks["retention"];
                        self.check_keep_tagged(&name, retention_block, r, any_set);
                        if any_set && !keeps_something {
                            let at = block.blocks["retention"].span.clone();
                            self.error(
                                Diagnostic::error("retention_keeps_nothing", format!("policy {name:?}: this retention keeps no snapshot at all"), Some(at))
                                    .with_help("keep at least one, e.g. keep_last = 1; leave retention out to keep everything"),
                            );
                        }
                    }
                    spec.policies.push(PolicySpec {
                        name,
                        rpo: block.duration("rpo"),
                        rto: block.duration("rto"),
                        drill_every: block.duration("drill_every"),
                        retention: retention.unwrap_or_default(),
                        copies: block.references("copies"),
                        span,
                    });
                }
                "schedule" => {
                    let every = block.duration("every").unwrap_or_default();
                    if every < MIN_SCHEDULE || every.as_secs() % 60 != 0 {
                        let at = block.fields.get("every").map(|f| f.span.clone());
                        self.error(
                            Diagnostic::error("schedule_every", "schedule: `every` is a whole number of minutes, at least 1m (timers and cron count minutes)".to_string(), at.or(Some(span.clone())))
                                .with_help("e.g. every = \"15m\" or every = \"1h\""),
                        );
                    }
                    spec.schedule = Some(ScheduleSpec { every, span });
                }
                "volume" => spec.volumes.push(VolumeSpec {
                    exclude: self.excludes(&kind, &name, &block),
                    name,
                    volume_name: block.string("name").unwrap_or_default(),
                    engine: block.reference("engine"),
                    policy: block.reference("policy"),
                    consistency: block.consistency(),
                    service: block.reference("service"),
                    hooks: block.hooks(),
                    span,
                }),
                "bind" => spec.binds.push(BindSpec {
                    exclude: self.excludes(&kind, &name, &block),
                    name,
                    path: PathBuf::from(block.string("path").unwrap_or_default()),
                    engine: block.reference("engine"),
                    policy: block.reference("policy"),
                    consistency: block.consistency(),
                    service: block.reference("service"),
                    hooks: block.hooks(),
                    span,
                }),
                "image" => spec.images.push(ImageSpec {
                    name,
                    reference: block.string("ref").unwrap_or_default(),
                    engine: block.reference("engine"),
                    policy: block.reference("policy"),
                    base: block.reference("base"),
                    span,
                }),
                "dump" => spec.dumps.push(DumpSpec {
                    name,
                    service: block.reference("service").unwrap_or_default(),
                    command: block.strings("command"),
                    restore_command: block.strings("restore_command"),
                    fail_on_stderr: block.strings("fail_on_stderr"),
                    policy: block.reference("policy"),
                    span,
                }),
                "service" => spec.services.push(ServiceSpec {
                    name,
                    container: block.string("container").unwrap_or_default(),
                    engine: block.reference("engine"),
                    image: block.reference("image"),
                    volumes: block.references("volumes"),
                    binds: block.references("binds"),
                    depends_on: block.references("depends_on"),
                    verify: block.strings("verify"),
                    start_timeout: block.duration("start_timeout"),
                    stop_timeout: block.duration("stop_timeout"),
                    hooks: block.hooks(),
                    span,
                }),
                "notify" => {
                    if let Some(notify) = self.notify(&block) {
                        spec.notifications.push(notify);
                    }
                }
                "engine" => spec.engines.push(EngineSpec {
                    name,
                    host: block.string("host"),
                    cert_path: block.string("cert_path").map(PathBuf::from),
                    ssh_identity: block.string("ssh_identity").map(PathBuf::from),
                    span,
                }),
                _ => {}
            }
        }
        // Two volume blocks for one Docker volume would back it up twice
        // under two names; the same name on two engines is two volumes.
        let mut by_docker_name: HashMap<(&str, &str), &VolumeSpec> = HashMap::new();
        let mut duplicates = Vec::new();
        for volume in &spec.volumes {
            let engine = crate::spec::engine_or_default(volume.engine.as_deref());
            let key = (engine, volume.volume_name.as_str());
            if let Some(first) = by_docker_name.insert(key, volume) {
                let on = match engine {
                    crate::spec::DEFAULT_ENGINE => String::new(),
                    engine => format!(" on engine.{engine}"),
                };
                duplicates.push(
                    Diagnostic::error(
                        "duplicate_volume",
                        format!(
                            "volume.{} and volume.{} both protect Docker volume {:?}{on}",
                            first.name,
                            volume.name,
                            spec.redact(&volume.volume_name)
                        ),
                        Some(volume.span.clone()),
                    )
                    .with_related(first.span.clone(), "also protected here"),
                );
            }
        }
        for d in duplicates {
            self.error(d);
        }
        self.check_quiescing(&spec);
        spec
    }

    /// A volume's or bind's `exclude` globs and `exclude_if_present`
    /// names, each checked (an invalid one is an error at its attribute).
    fn excludes(&mut self, kind: &str, name: &str, block: &Checked) -> crate::repo::ExcludeRules {
        use crate::repo::exclude::{check_marker, check_pattern};
        let rules = crate::repo::ExcludeRules {
            exclude: block.strings("exclude"),
            exclude_if_present: block.strings("exclude_if_present"),
        };
        /// An attribute, its values, their check, and the help line.
        type ExcludeCheck<'r> = (
            &'r str,
            &'r [String],
            fn(&str) -> Result<(), String>,
            &'r str,
        );
        let checks: [ExcludeCheck; 2] = [
            (
                "exclude",
                &rules.exclude,
                check_pattern,
                "a name matches at any depth (\"*.tmp\"), a path from the root matches there (\"cache/**\"); see docs/spec-reference.md",
            ),
            (
                "exclude_if_present",
                &rules.exclude_if_present,
                check_marker,
                "name a file looked for in each directory, e.g. \".lifeboat-exclude\" or \"CACHEDIR.TAG\"",
            ),
        ];
        for (attribute, values, check, help) in checks {
            let at = block.fields.get(attribute).map(|f| f.span.clone());
            for value in values {
                if let Err(problem) = check(value) {
                    self.error(
                        Diagnostic::error(
                            "bad_exclude",
                            format!("{kind} {name:?}: {attribute}: {problem}"),
                            at.clone(),
                        )
                        .with_help(help),
                    );
                }
            }
        }
        // Every snapshot would be empty, and every plan "up to date".
        let at = block.fields.get("exclude").map(|f| f.span.clone());
        for pattern in &rules.exclude {
            if crate::repo::exclude::leaves_out_everything(pattern) {
                self.error(
                    Diagnostic::error(
                        "exclude_everything",
                        format!(
                            "{kind} {name:?}: exclude: {pattern:?} leaves out every entry, so \
                             its snapshots would hold nothing"
                        ),
                        at.clone(),
                    )
                    .with_help(
                        "narrow the pattern to what is not worth keeping (\"cache/**\", \
                         \"*.tmp\"); to stop backing it up, remove the block",
                    ),
                );
            }
        }
        rules
    }

    /// `keep_tagged` names tag keys or tags as `snapshots --tag` takes
    /// them, and keeps only tagged snapshots: alone, it would forget every
    /// other backup (the newest included), so it needs another rule.
    fn check_keep_tagged(
        &mut self,
        policy: &str,
        block: &Checked,
        rules: &Retention,
        others: bool,
    ) {
        let Some(field) = block.fields.get("keep_tagged") else {
            return;
        };
        for tag in &rules.keep_tagged {
            if let Err(problem) = crate::repo::TagFilter::parse(tag) {
                self.error(
                    Diagnostic::error(
                        "keep_tagged",
                        format!("policy {policy:?}: keep_tagged: {problem}"),
                        Some(field.span.clone()),
                    )
                    .with_help("write tag keys like \"release\", or tags like \"release=v1.4.2\""),
                );
            }
        }
        if !others {
            self.error(
                Diagnostic::error("keep_tagged_alone", format!("policy {policy:?}: keep_tagged alone would forget every untagged snapshot, the newest too"), Some(field.span.clone()))
                    .with_help("add a rule for the other snapshots, e.g. keep_last = 7"),
            );
        }
    }

    /// A `notify` block: exactly one destination (`url`, `url_env` or a
    /// `healthchecks` block with one of them), `on` words it knows, a URL
    /// written out that is one.
    fn notify(&mut self, block: &Checked) -> Option<NotifySpec> {
        let name = &block.label;
        let url_of = |block: &Checked| match (block.string("url"), block.string("url_env")) {
            (Some(url), None) => Some(UrlSource::Written(url)),
            (None, Some(env)) => Some(UrlSource::Env(env)),
            _ => None,
        };
        let healthchecks = block.blocks.get("healthchecks");
        let written = [block.fields.get("url"), block.fields.get("url_env")]
            .iter()
            .flatten()
            .count();
        let target = match (healthchecks, written) {
            (None, 1) => url_of(block).map(NotifyTarget::Webhook),
            (Some(checks), 0) => url_of(checks).map(NotifyTarget::Healthchecks),
            _ => None,
        };
        let Some(target) = target else {
            self.error(
                Diagnostic::error(
                    "notify_destination",
                    format!(
                        "notify {name:?} needs exactly one destination: `url = \"…\"`, \
                         `url_env = \"VARIABLE\"`, or a `healthchecks {{ url_env = \"…\" }}` \
                         block with one of them"
                    ),
                    Some(healthchecks.map_or(&block.span, |h| &h.span).clone()),
                )
                .with_help(
                    "a URL holding a token belongs in the environment: url_env names the \
                     variable that holds it",
                ),
            );
            return None;
        };
        if let NotifyTarget::Webhook(UrlSource::Written(url))
        | NotifyTarget::Healthchecks(UrlSource::Written(url)) = &target
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            let at = healthchecks.unwrap_or(block).fields.get("url");
            self.error(
                Diagnostic::error(
                    "notify_url",
                    format!("notify.{name}: the url is not an http:// or https:// URL"),
                    at.map(|field| field.span.clone()),
                )
                .with_help("write the whole URL, e.g. \"https://hooks.example.com/lifeboat\""),
            );
            return None;
        }
        self.notify_events(block, target)
    }

    /// The rest of a `notify` block once its destination is known: `on`
    /// (webhooks only) and `timeout`.
    fn notify_events(&mut self, block: &Checked, target: NotifyTarget) -> Option<NotifySpec> {
        let name = &block.label;
        let on = match (block.fields.get("on"), &target) {
            (None, _) => DEFAULT_NOTIFY_ON.to_vec(),
            (Some(field), NotifyTarget::Healthchecks(_)) => {
                self.error(
                    Diagnostic::error(
                        "notify_on",
                        format!(
                            "notify.{name}: `on` does not apply to a healthchecks check, which \
                             is pinged when every apply starts, succeeds and fails"
                        ),
                        Some(field.span.clone()),
                    )
                    .with_help("remove `on`, or use `url`/`url_env` for a webhook"),
                );
                return None;
            }
            (Some(field), NotifyTarget::Webhook(_)) => {
                let mut events = Vec::new();
                for word in block.strings("on") {
                    match NotifyEvent::ALL.iter().find(|e| e.keyword() == word) {
                        Some(event) => events.push(*event),
                        None => {
                            self.error(
                                Diagnostic::error(
                                    "notify_on",
                                    format!("notify.{name}: {word:?} is not an event of `on`"),
                                    Some(field.span.clone()),
                                )
                                .with_help("write some of [\"failure\", \"late\", \"success\"]"),
                            );
                            return None;
                        }
                    }
                }
                events.sort();
                events.dedup();
                events
            }
        };
        Some(NotifySpec {
            name: name.clone(),
            target,
            on,
            timeout: block.duration("timeout").unwrap_or(DEFAULT_NOTIFY_TIMEOUT),
            span: block.span.clone(),
        })
    }

    /// Stopping, pausing and hooks act on a container: a volume or bind
    /// asking for them must say which.
    /// Where an s3 block's `what` (`access_key`, `secret_key`) is read
    /// from: `{what}_env` or `{what}_file`, at most one of them, else the
    /// variable restic and the AWS tools read. `None` after an error.
    fn credential(
        &mut self,
        repository: &str,
        s3: &Checked,
        what: &str,
        default_env: &str,
    ) -> Option<CredentialSource> {
        let env = format!("{what}_env");
        let file = format!("{what}_file");
        match (s3.string(&env), s3.string(&file)) {
            (Some(_), Some(_)) => {
                self.error(Diagnostic::error(
                    "s3_credential",
                    format!(
                        "repository {repository:?}: `{env}` and `{file}` both say where the {} \
                         is; keep one of them",
                        what.replace('_', " ")
                    ),
                    s3.fields.get(file.as_str()).map(|f| f.span.clone()),
                ));
                None
            }
            (None, Some(path)) => Some(CredentialSource::File(PathBuf::from(path))),
            (Some(name), None) => Some(CredentialSource::Env(name)),
            (None, None) => Some(CredentialSource::Env(default_env.to_string())),
        }
    }

    fn check_quiescing(&mut self, spec: &Spec) {
        let copied = spec
            .volumes
            .iter()
            .map(|v| {
                (
                    ResourceKind::Volume,
                    &v.name,
                    v.consistency,
                    &v.hooks,
                    &v.span,
                )
            })
            .chain(spec.binds.iter().map(|b| {
                (
                    ResourceKind::Bind,
                    &b.name,
                    b.consistency,
                    &b.hooks,
                    &b.span,
                )
            }));
        let mut problems = Vec::new();
        for (kind, name, consistency, hooks, span) in copied {
            let address = Address::new(kind, name.clone());
            if (consistency != Consistency::None || !hooks.is_empty())
                && spec.service_of(&address).is_none()
            {
                let what = if consistency != Consistency::None {
                    "`consistency` stops or pauses a service"
                } else {
                    "`pre` and `post` run in a service's container"
                };
                problems.push(
                    Diagnostic::error(
                        "quiesce_needs_service",
                        format!("{address}: {what}, and it names none"),
                        Some(span.clone()),
                    )
                    .with_help(format!(
                        "add `service = service.NAME` to {address} (a `service` block naming \
                         the container that uses it)"
                    )),
                );
            }
        }
        for problem in problems {
            self.error(problem);
        }
    }

    /// The `sftp` block of repository `name`, or `None` after reporting
    /// what is wrong at the value: a port out of range, or a host or user
    /// ssh would take for something else (an option, `user@host`).
    fn sftp_location(&mut self, name: &str, sftp: &Checked) -> Option<RepositoryLocation> {
        let mut fine = true;
        let port = match (sftp.fields.get("port"), sftp.count("port")) {
            (None, _) => 22,
            (Some(field), count) => match count.and_then(|n| u16::try_from(n).ok()) {
                Some(port) if port > 0 => port,
                _ => {
                    self.error(
                        Diagnostic::error(
                            "bad_port",
                            format!(
                                "repository {name:?}: the sftp port must be between 1 and 65535"
                            ),
                            Some(field.span.clone()),
                        )
                        .with_help("leave `port` out for ssh's 22"),
                    );
                    fine = false;
                    0
                }
            },
        };
        for (attribute, example) in [("host", "backup.example.com"), ("user", "backup")] {
            let (Some(value), Some(field)) = (sftp.string(attribute), sftp.fields.get(attribute))
            else {
                continue;
            };
            let bad = value.is_empty()
                || value.starts_with('-')
                || value.contains('@')
                || value.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad {
                self.error(
                    Diagnostic::error("bad_sftp_address", format!("repository {name:?}: {value:?} is no sftp {attribute}"), Some(field.span.clone()))
                        .with_help(format!("write the {attribute} alone, e.g. {attribute} = \"{example}\"; the user, host and port have an attribute each")),
                );
                fine = false;
            }
        }
        if sftp.string("path").is_some_and(|p| p.is_empty()) {
            self.error(Diagnostic::error("bad_sftp_address", format!("repository {name:?}: the sftp path is empty"), Some(sftp.fields["path"].span.clone())).with_help("name the repository's directory on the server, e.g. path = \"/srv/backups/lifeboat\""));
            fine = false;
        }
        fine.then(|| RepositoryLocation::Sftp {
            host: sftp.string("host").unwrap_or_default(),
            port,
            user: sftp.string("user").unwrap_or_default(),
            path: sftp.string("path").unwrap_or_default(),
            identity: sftp.string("identity").map(PathBuf::from),
            known_hosts: sftp.string("known_hosts").map(PathBuf::from),
        })
    }

    /// Names Docker would refuse fail here, at the value, rather than in
    /// the middle of an apply.
    fn check_docker_names(&mut self, kind: &str, block: &Checked, sensitive: &[String]) {
        for (block_type, attribute, rule, help) in names::DOCKER_NAMED {
            if *block_type != kind {
                continue;
            }
            let (Some(value), Some(field)) =
                (block.string(attribute), block.fields.get(*attribute))
            else {
                continue;
            };
            if let Some(mut problem) = rule(&value) {
                if sensitive
                    .iter()
                    .any(|s| !s.is_empty() && value.contains(s.as_str()))
                {
                    // The rule quotes the value; a sensitive one stays out.
                    problem = "the (sensitive) value is not a valid Docker name".to_string();
                }
                self.error(
                    Diagnostic::error(
                        "bad_name",
                        format!("{kind}.{} {attribute}: {problem}", block.label),
                        Some(field.span.clone()),
                    )
                    .with_help(*help),
                );
            }
        }
    }
}
