//! Reasons and warnings put into words: the only place that decides how
//! they read, for the human plan and the pull-request comment alike.

use crate::apply::{Hold, Resumed};
use crate::plan::{DumpInto, PlanKind, Reason, Warning, format_age};
use std::time::Duration;

fn age(seconds: u64) -> String {
    format_age(Duration::from_secs(seconds))
}

/// Seconds as an age, sub-second ones in milliseconds (an untrusted
/// record may hold anything: negative and huge values are clamped).
fn precise_age(seconds: f64) -> String {
    let seconds = if seconds.is_finite() {
        seconds.clamp(0.0, 1e12)
    } else {
        0.0
    };
    format_age(Duration::from_secs_f64(seconds))
}

/// How long something took, to a tenth of a second under a minute (a
/// restore of a small stack takes seconds, and "0s" says nothing).
pub fn took(seconds: f64) -> String {
    if seconds.is_finite() && seconds < 59.95 {
        format!("{:.1}s", seconds.max(0.0))
    } else {
        precise_age(seconds)
    }
}

/// `/mnt/usb is an empty directory where disks are mounted`: why a
/// directory looks like a mount point left unmounted.
pub fn looks_unmounted(directory: &str, sign: crate::plan::MountSign) -> String {
    let what = match sign {
        crate::plan::MountSign::EmptyUnderMountRoot => {
            "is an empty directory where disks are mounted"
        }
        crate::plan::MountSign::FstabNotMounted => {
            "is a mount point in /etc/fstab with nothing mounted on it"
        }
    };
    format!("{directory} {what}")
}

/// Where a restore into other names writes a resource: `data_copy`,
/// `api_drill (network lifeboat_drill, no published ports)`.
pub(crate) fn into_target(
    kind: crate::spec::ResourceKind,
    into: &crate::plan::RestoreInto,
) -> String {
    use crate::spec::ResourceKind;
    match kind {
        ResourceKind::Image if into.name.is_empty() => "by id, live tags left alone".to_string(),
        // A drill's scratch server of its own is on the drill's network.
        ResourceKind::Dump => match &into.network {
            Some(network) => format!(
                "container {} (network {network}, no published ports)",
                into.name
            ),
            None => format!("container {}", into.name),
        },
        ResourceKind::Image
        | ResourceKind::Volume
        | ResourceKind::Bind
        | ResourceKind::Service
        | ResourceKind::Policy
        | ResourceKind::Repository => match &into.network {
            Some(network) => format!("{} (network {network}, no published ports)", into.name),
            None => into.name.clone(),
        },
    }
}

/// Which server a dump loads into, and why it is the database's source there.
fn dump_into(into: &DumpInto) -> String {
    match into {
        DumpInto::NewServer => ", a server this restore creates (empty)".to_string(),
        DumpInto::StartedAfterDump => {
            ": its volumes were created after the dump was taken, so hold none of its rows"
                .to_string()
        }
        DumpInto::DataNotRestored { data } => {
            format!(": {data} cannot be restored, the dump is the database's source")
        }
        DumpInto::OverExistingData => ", over the data the server holds (--replace)".to_string(),
        DumpInto::ScratchServer => ", the scratch server named with --into".to_string(),
        DumpInto::DrillServer { image } => {
            format!(", started from {image} on empty scratch volumes")
        }
    }
}

/// `cache/**, *.tmp and directories holding CACHEDIR.TAG`, or `nothing`.
/// The rules may come from a snapshot (untrusted): control characters are
/// shown as `?`.
fn exclude_rules(rules: &crate::repo::ExcludeRules) -> String {
    let mut parts = Vec::new();
    if !rules.exclude.is_empty() {
        parts.push(rules.exclude.join(", "));
    }
    if !rules.exclude_if_present.is_empty() {
        parts.push(format!(
            "directories holding {}",
            rules.exclude_if_present.join(" or ")
        ));
    }
    if parts.is_empty() {
        return "nothing".to_string();
    }
    parts
        .join(" and ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn reason(reason: &Reason) -> String {
    match reason {
        Reason::ReadsAnotherRepository {
            repository,
            skipped,
        } => {
            let passed: Vec<String> = skipped
                .iter()
                .map(|s| format!("repository.{} ({})", s.repository, s.why))
                .collect();
            format!(
                "read from repository.{repository}, not {}",
                passed.join(", not ")
            )
        }
        Reason::RepositoryUnreachable {
            repository,
            message,
        } => format!("fails in repository.{repository}, which cannot be reached: {message}"),
        Reason::Lacks {
            repository,
            snapshots,
        } => format!(
            "{repository} lacks {} the others hold",
            super::plural(*snapshots, "snapshot")
        ),
        Reason::NeverBackedUp { repository: None } => "never backed up".to_string(),
        Reason::NeverBackedUp {
            repository: Some(repository),
        } => format!("never backed up to {repository}"),
        Reason::RpoExceeded {
            age_seconds,
            rpo_seconds,
        } => format!(
            "last snapshot {} ago > rpo {}",
            age(*age_seconds),
            age(*rpo_seconds)
        ),
        Reason::RpoBeforeNextRun {
            age_seconds,
            every_seconds,
            rpo_seconds,
        } => format!(
            "last snapshot {} ago + next run in {} > rpo {}",
            age(*age_seconds),
            age(*every_seconds),
            age(*rpo_seconds)
        ),
        Reason::WithinRpo {
            snapshot,
            age_seconds,
            rpo_seconds,
        } => format!(
            "snapshot {snapshot}, {} ago, rpo {}",
            age(*age_seconds),
            age(*rpo_seconds)
        ),
        Reason::ReplaceRequested => "replacement requested (--replace)".to_string(),
        Reason::Tagged { tags } => format!("tagged {} (--tag)", tags.join(", ")),
        Reason::SourceChanged { attribute } => format!(
            "`{attribute}` changed since its latest snapshot, which is of what it named before"
        ),
        Reason::ContentChanged => "changed since its latest snapshot".to_string(),
        Reason::WeakerConsistency { taken, asked } => format!(
            "taken with consistency {} < {} now asked",
            taken.keyword(),
            asked.keyword()
        ),
        Reason::ExcludeChanged { taken, asked } => format!(
            "exclude changed since its latest snapshot (then: {}; now: {})",
            exclude_rules(taken),
            exclude_rules(asked)
        ),
        Reason::Excludes { rules } => format!("leaves out {}", exclude_rules(rules)),
        Reason::SnapshotExcluded { rules, replacing } => format!(
            "not in the snapshot: {} (left out by its backup){}",
            exclude_rules(rules),
            if *replacing {
                "; the replace removes such files from the target too, and the safety \
                 snapshot taken first (which leaves out nothing) keeps them"
            } else {
                ""
            }
        ),
        Reason::Retention {
            rules,
            keep,
            of,
            counting_new,
        } => format!(
            "retention ({rules}) keeps {keep} of {of}{}",
            if *counting_new {
                " counting the new snapshot"
            } else {
                ""
            }
        ),
        Reason::NamedOnCommandLine => "named on the command line".to_string(),
        Reason::CreateTarget { what } => format!("create {what}"),
        Reason::IntoEmptyTarget { what } => format!("into empty {what}"),
        Reason::NotMapped { what } => {
            format!("left alone: {what} is live, and this restore writes only new names")
        }
        Reason::LoadDump { what, into } => {
            format!("stream the dump into {what}{}", dump_into(into))
        }
        Reason::DumpInRestoredData {
            data,
            snapshot,
            same_run,
        } => format!(
            "not loaded: {data} is restored from snapshot {snapshot} ({}), which holds the \
             database; loading the dump too would add its rows again (--target the dump alone \
             to load it instead)",
            if *same_run {
                "the same run as the dump"
            } else {
                "another run than the dump's"
            }
        ),
        Reason::DumpServerHoldsData { service } => format!(
            "not loaded: {service} holds data from when the dump was taken or later, to which \
             loading would add its rows again (--target the dump with --replace to load it over)"
        ),
        Reason::DataFromDump { dump } => format!(
            "not restored from its snapshot: {dump} (--target) is the database's source, loaded \
             into the server as it is"
        ),
        Reason::RestorePaths { what, paths } => format!(
            "restore only {} of {what}: nothing outside is touched, what the snapshot lacks \
             there is left, and a safety snapshot of what is overwritten is taken first",
            paths.join(", ")
        ),
        Reason::RestorePathsInto {
            what,
            paths,
            directory,
        } => format!(
            "write {} of {what}'s snapshot into {directory}, with its modes, owners, times and \
             attributes ({what} is not touched)",
            paths.join(", ")
        ),
        Reason::ReplaceTarget { what } => format!(
            "replace the content of {what} (files not in the snapshot are removed; a safety \
             snapshot is taken first)"
        ),
        Reason::ImageAlreadyPresent { what } => {
            format!("{what} is already there with the same id and tags: nothing to load")
        }
        Reason::MoveTags { what, tags } => format!(
            "load {what} and move {} from the image {} at now",
            tags.join(", "),
            if tags.len() == 1 {
                "it points"
            } else {
                "they point"
            }
        ),
        Reason::KeepExisting { what } => {
            format!("{what} exists and is left alone (--replace removes and recreates it)")
        }
        Reason::KeepDependency { what } => format!(
            "{what} is not empty and only needed by a --target: kept as it is (--replace, or \
             naming it with --target, restores it)"
        ),
        Reason::RecreateTarget { what } => {
            format!("remove {what} and recreate it from the snapshot's configuration")
        }
        Reason::KeepDifferent { what, settings } => format!(
            "{what} exists but is not the snapshot's container (it differs in {}): left alone \
             (--replace removes it and recreates the snapshot's)",
            settings.join(", ")
        ),
        Reason::HostAccess { settings } => {
            format!("with access to the host: {}", settings.join(", "))
        }
        Reason::LooksUnmounted { directory, sign } => format!(
            "warning: {}: if a disk belongs there it is not mounted, and the repository would be \
             created on the disk below",
            looks_unmounted(directory, *sign)
        ),
        Reason::RestoreInterrupted {
            what,
            snapshot,
            started,
        } => format!(
            "{what} is incomplete (a restore of snapshot {snapshot} was interrupted at {}): \
             restore it again, replacing its partial content (no safety snapshot: it holds a \
             partial restore, not data to keep)",
            started.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Reason::StopsContainers { containers } => format!(
            "stops container{} {} (in this order) before anything is copied or changed, and \
             starts {} again once it is restored, in dependency order",
            if containers.len() == 1 { "" } else { "s" },
            containers.join(", "),
            if containers.len() == 1 { "it" } else { "them" },
        ),
        Reason::SettingsChanged => "changed since the last apply".to_string(),
        Reason::NewSinceLastApply => "new since the last apply".to_string(),
        Reason::RemovedSinceLastApply => "removed from the spec since the last apply".to_string(),
        Reason::Interrupts {
            service,
            how,
            last_copy_millis,
            stop_timeout_seconds,
        } => {
            let verb = match how {
                crate::plan::Interruption::Stop => "stop",
                crate::plan::Interruption::Pause => "pause",
            };
            let mut text = format!("{verb} {service} during the copy");
            if let Some(seconds) = stop_timeout_seconds {
                text.push_str(&format!(
                    " (stop_timeout {}, then killed)",
                    humantime::format_duration(std::time::Duration::from_secs(*seconds))
                ));
            }
            if let Some(ms) = last_copy_millis {
                text.push_str(&format!(
                    "; last copy took {}",
                    precise_age(*ms as f64 / 1000.0)
                ));
            }
            text
        }
        Reason::Hooks { service, pre, post } => {
            let mut parts = Vec::new();
            let quoted = |commands: &[String]| {
                commands
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !pre.is_empty() {
                parts.push(format!("{} before", quoted(pre)));
            }
            if !post.is_empty() {
                parts.push(format!("{} after", quoted(post)));
            }
            format!("runs {} the copy in {service}", parts.join(" and "))
        }
        Reason::Problem { message, at: None } => message.clone(),
        Reason::Problem {
            message,
            at: Some(at),
        } => format!("{message} ({at})"),
    }
}

pub fn warning(warning: &Warning) -> String {
    match warning {
        Warning::NotActedOn {
            address,
            attribute: None,
            at,
        } => format!(
            "{address} ({at}) is accepted, but this version of lifeboat does not act on {} \
             blocks yet: it is not protected",
            address.split('.').next().unwrap_or(address)
        ),
        Warning::NotActedOn {
            address,
            attribute: Some(attribute),
            at,
        } => format!(
            "{address}: `{attribute}` ({at}) is accepted, but this version of lifeboat does not \
             act on it yet"
        ),
        Warning::OrphanedSnapshots {
            address,
            repository,
            snapshots,
        } => format!(
            "repository.{repository} holds {} of {address}, which the spec no longer declares: \
             no plan backs it up or forgets them. Renamed? Add moved {{ from = {address}  to = \
             {}.NEW_NAME }}. Removed? `lifeboat forget --repository {repository} {}` forgets them",
            crate::cli::views::plural(snapshots.len(), "snapshot"),
            address.kind.keyword(),
            snapshots.join(" ")
        ),
        Warning::FewerThanTwoCopies {
            policy,
            repositories,
            at,
        } => format!(
            "policy.{policy} ({at}) has an rpo but keeps its snapshots in {}: one lost disk or \
             one damaged pack and they are gone. Declare a second repository and list both in \
             `copies` (3-2-1: three copies, two media, one off site)",
            match &repositories[..] {
                [] => "no repository".to_string(),
                [one] => format!("repository.{one} alone"),
                _ => format!("repositories {}", repositories.join(", ")),
            }
        ),
        Warning::NoCopyOffHost {
            policy,
            repositories,
            at,
        } => format!(
            "policy.{policy} ({at}) has an rpo but keeps no copy off this host ({} on the \
             filesystem of Docker's data root, or on loopback): the host's loss takes its \
             backups too. Add an off-host repository (s3, sftp, or another disk) to `copies`",
            repositories.join(", ")
        ),
        Warning::PlaintextSecrets {
            repository,
            resources,
            at,
        } => format!(
            "repository.{repository} ({at}) is not encrypted (`encryption {{ none = true }}`), and \
             {} would be stored there in clear: a service's environment values and a dump's \
             output often hold passwords. Declare `encryption {{ passphrase_env = \"…\" }}` \
             for it unless anyone who can read it may read those",
            resources.join(", ")
        ),
        Warning::DrillDue {
            address,
            last,
            every_seconds,
            policy,
            at,
        } => format!(
            "{address}: {}, and policy.{policy} ({at}) asks for one every {}: run `lifeboat \
             drill --target {address}`",
            match last {
                Some(time) => format!("last drilled {}", time.format("%Y-%m-%d %H:%M UTC")),
                None => "never drilled".to_string(),
            },
            precise_age(*every_seconds)
        ),
        Warning::DrillRtoMissed {
            address,
            drilled_at,
            took_seconds,
            rto_seconds,
            policy,
            at,
        } => format!(
            "{address}: the last drill ({}) restored it in {}, longer than the rto {} of \
             policy.{policy} ({at}): raise the rto, or make restores faster",
            drilled_at.format("%Y-%m-%d %H:%M UTC"),
            precise_age(*took_seconds),
            precise_age(*rto_seconds)
        ),
        Warning::RtoMissed {
            address,
            snapshot,
            restored_at,
            took_seconds,
            rto_seconds,
            policy,
            at,
        } => format!(
            "{address}: the last restore (snapshot {snapshot}, {}) took {}, longer than the rto \
             {} of policy.{policy} ({at}): raise the rto, or make restores faster (direct \
             access, a closer repository)",
            restored_at.format("%Y-%m-%d %H:%M UTC"),
            precise_age(*took_seconds),
            precise_age(*rto_seconds)
        ),
        Warning::StackRtoMissed {
            resources,
            restored_at,
            took_seconds,
            rto_seconds,
            policy,
            at,
        } => format!(
            "the last restore of the whole stack ({resources} resources, {}) took {}, longer \
             than the rto {} of policy.{policy} ({at}), the tightest of what it restored: raise \
             the rto, or make restores faster (direct access, a closer repository, fewer \
             dumps to replay)",
            restored_at.format("%Y-%m-%d %H:%M UTC"),
            precise_age(*took_seconds),
            precise_age(*rto_seconds)
        ),
        Warning::SeveralMoments { runs } => format!(
            "no apply run holds a snapshot of every resource restored: these come from {runs} \
             runs (each resource's latest), so they are not one moment"
        ),
        Warning::BaseMismatch { address, base, at } => format!(
            "{address} says `base = {base}` ({at}), but its layers do not start with {base}'s: \
             it is not built on it. Fix `base`, or rebuild {address} FROM {base}"
        ),
        Warning::RunningWithoutConsistency {
            address,
            containers,
            at,
        } => format!(
            "{address} is used by running {} ({}) and is copied while {} write to it: set \
             `consistency = \"stop\"` or `\"pause\"` ({at}) for a consistent copy",
            if containers.len() == 1 {
                "container"
            } else {
                "containers"
            },
            containers.join(", "),
            if containers.len() == 1 {
                "it may"
            } else {
                "they may"
            }
        ),
    }
}

pub fn plan_kind_name(kind: PlanKind) -> &'static str {
    match kind {
        PlanKind::Backup => "backup",
        PlanKind::Restore => "restore",
        PlanKind::Forget => "forget",
    }
}

/// One container a gone lifeboat process had stopped or paused, and what
/// this run did about it.
pub fn resumed(resumed: &Resumed) -> String {
    let done = match (resumed.hold, resumed.resumed, &resumed.left_alone) {
        (_, _, Some(why)) => format!("{why}: left as it is"),
        (Hold::Paused, true, _) => "unpaused".to_string(),
        (_, true, _) => "started again".to_string(),
        (_, false, None) => "already running again (or gone): nothing to do".to_string(),
    };
    format!(
        "container {} (engine.{}, {} for {} by lifeboat pid {} on {}, which is gone): {done}",
        resumed.container,
        resumed.engine,
        match resumed.hold {
            Hold::Stopped => "stopped",
            Hold::Paused => "paused",
            Hold::Created => "created but not started",
        },
        resumed.resource,
        resumed.pid,
        resumed.host
    )
}
