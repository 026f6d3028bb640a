//! Restore plans: which snapshot goes where, and whether that is allowed.

//!
//! A database is restored from one source: its service's data (volumes,
//! directories) or its dump, never both, since loading a dump into the
//! data it was taken from adds its rows again (a table without a primary
//! key doubles). A dump loads only into a server that cannot hold its rows
//! (created by the restore, or started after the dump was taken), when its
//! data cannot be restored, or over the data with `--target` and
//! `--replace`.

use super::{
    Action, Basis, Detail, DumpInto, Plan, PlanKind, Reason, ResourceChange, RestoreInto,
    RestoreMapping, SnapshotRef, TargetState,
};
use crate::spec::{Address, Resource, ResourceKind, Spec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct RestoreObservation {
    /// The snapshot chosen for this resource (`latest` or `--snapshot ID`); `None`
    /// when the repositories hold none.
    pub snapshot: Option<SnapshotRef>,
    /// What is where the restore writes; `Err` when the engine could not say.
    pub target: Result<TargetState, String>,
    /// The target in words ("Docker volume app_data"), sensitive values redacted.
    pub what: String,
    /// What the plan shows about it (with `target` filled in by the plan).
    pub detail: Detail,
}

/// A restore of a target that began and never finished: what it was
/// restoring, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedRestore {
    /// The snapshot's short id.
    pub snapshot: String,
    pub started: DateTime<Utc>,
    /// The paths a `restore --path` was writing; empty when the restore
    /// was of the whole target.
    pub paths: Vec<String>,
}

/// A snapshot file that does not load: its file tells neither its
/// resource nor its time; lifeboat's catalog may remember them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedSnapshotFile {
    pub id: String,
    pub repository: String,
    /// Why it does not load.
    pub detail: String,
    pub resource: Option<Address>,
    pub time: Option<DateTime<Utc>>,
}

impl DamagedSnapshotFile {
    /// Whether it may be newer than `chosen`, the latest intact snapshot
    /// of `address`: unknown files may be anything's newest.
    fn may_supersede(&self, address: &Address, chosen: &SnapshotRef) -> bool {
        match (&self.resource, self.time) {
            (Some(resource), Some(time)) => resource == address && time > chosen.time,
            _ => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestoreInputs<'a> {
    pub spec: &'a Spec,
    /// Resources to restore, in the graph's restore order.
    pub order: &'a [Address],
    /// Each resource's direct dependencies in the graph.
    pub dependencies: &'a BTreeMap<Address, Vec<Address>>,
    pub observed: &'a BTreeMap<Address, RestoreObservation>,
    /// `--target`s (empty: everything). A non-empty volume or bind named
    /// here is refused without `--replace`; one restored only because a
    /// target needs it (a database container started anew over its volume
    /// needs its dump, not the volume's old content), or as part of the
    /// whole stack (what survived a partial loss), is kept as it is, as
    /// Velero does.
    pub targets: &'a [Address],
    /// `--replace`: allow overwriting non-empty targets.
    pub replace: bool,
    /// `--allow`: settings reaching into the host that a restored container
    /// may get although the container there now lacks them (see
    /// [`crate::engine::ContainerConfig::host_access`]).
    pub allowed_host_access: &'a [String],
    /// Targets holding a partial restore (the restore journal's records
    /// that outlived their restore): restored again.
    pub interrupted: &'a BTreeMap<Address, InterruptedRestore>,
    /// Snapshot files that do not load, in any repository: one may be the
    /// newest snapshot of any resource. Empty when the user named the
    /// snapshot to restore (`--snapshot ID`).
    pub damaged: &'a [DamagedSnapshotFile],
    pub basis: Basis,
    pub now: DateTime<Utc>,
}

/// One `<` change per resource with a snapshot and a target it may write;
/// a `!` change (with what to do) for each one that cannot be restored as
/// things stand, beside the rest.
pub fn restore_plan(inputs: RestoreInputs<'_>) -> Plan {
    restore_plan_into(inputs, &RestoreMapping::default())
}

/// [`restore_plan`] writing into the names `mapping` gives (`inputs.observed`
/// observed those, not the live ones): each mapped resource is written
/// under its new name only when nothing of that name exists (a directory:
/// nothing in it), every other one is left alone, and nothing live is
/// replaced, stopped or journaled.
pub fn restore_plan_into(inputs: RestoreInputs<'_>, mapping: &RestoreMapping) -> Plan {
    let mut changes = Vec::new();
    for address in inputs.order {
        if !super::backs_up(address.kind) {
            continue;
        }
        let (Some(resource), Some(observed)) =
            (inputs.spec.resource(address), inputs.observed.get(address))
        else {
            continue;
        };
        let what = observed.what.clone();
        let mut change = ResourceChange::new(address.clone(), Action::Restore);
        change.into = mapping.into_of(inputs.spec, address);
        if !mapping.is_empty() && change.into.is_none() {
            change.action = Action::UpToDate;
            change.reasons = vec![Reason::NotMapped { what }];
            change.engine = Some(inputs.spec.engine_name(address).to_string());
            change.detail = observed.detail.clone();
            changes.push(change);
            continue;
        }
        let scratch = address.kind == ResourceKind::Dump && mapping.names.contains_key(address);
        change.engine = Some(inputs.spec.engine_name(address).to_string());
        change.depends_on = inputs
            .dependencies
            .get(address)
            .map(|d| {
                d.iter()
                    .filter(|a| inputs.order.contains(a) && super::backs_up(a.kind))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // A drill's scratch server runs the live image on volumes of its
        // own: it waits for nothing else the drill restores.
        if matches!(observed.detail, Detail::DumpServer(_)) {
            change.depends_on.clear();
        }
        let problem = |message: String| Reason::Problem {
            message,
            at: Some(resource.span().to_string()),
        };
        let target = match (&change.into, &observed.target) {
            (Some(into), Ok(state)) => refuse_existing(address.kind, *state, &what, into),
            _ => observed.target.clone(),
        };
        let conflicting = match &observed.detail {
            Detail::Image(image) => Some(image.conflicting_tags.clone()),
            _ => None,
        };
        // The journal's records are of the live targets. An interrupted
        // `restore --path` is not finished by a whole replace (without a
        // safety snapshot, it would empty what that restore never touched):
        // the backup plan names the partial restore to run again.
        let interrupted = inputs
            .interrupted
            .get(address)
            .filter(|i| change.into.is_none() && i.paths.is_empty());
        let used_by = match &observed.detail {
            Detail::Volume(volume) => volume.used_by.as_ref(),
            _ => None,
        };
        let reason = match (&observed.snapshot, &target) {
            // Docker removes no volume a container uses: its content can
            // only be emptied in place, from the engine's host.
            (Some(_), Ok(TargetState::NonEmpty))
                if (inputs.replace || interrupted.is_some())
                    && let Some(used) =
                        used_by.filter(|u| !u.containers.is_empty() && !u.reachable) =>
            {
                problem(format!(
                    "{what} is used by container(s) {}, and Docker removes no volume a container \
                     uses: replacing its content means emptying its directory, which lifeboat \
                     can only do on the engine's host as root. Run it there, or remove those \
                     containers (`docker rm`) and restore again",
                    used.containers.join(", ")
                ))
            }
            (Some(_), Ok(TargetState::NonEmpty)) if let Some(interrupted) = interrupted => {
                Reason::RestoreInterrupted {
                    what,
                    snapshot: interrupted.snapshot.clone(),
                    started: interrupted.started,
                }
            }
            (None, _) => problem(
                "no snapshot to restore from: run `lifeboat apply` first, or check `lifeboat \
                 snapshots`"
                    .to_string(),
            ),
            // A partial restore that cannot be redone now is still said to
            // be one: the target holds neither the snapshot nor what was there.
            (_, Err(message)) if let Some(interrupted) = interrupted => problem(format!(
                "{what} is incomplete (a restore of snapshot {} was interrupted at {}), and \
                 cannot be restored again now: {message}",
                interrupted.snapshot,
                interrupted.started.format("%Y-%m-%d %H:%M:%S UTC")
            )),
            (_, Err(message)) => problem(message.clone()),
            // Settled by `choose_database_sources` once the plan for its
            // service's data is known.
            (Some(_), Ok(_)) if address.kind == ResourceKind::Dump => Reason::LoadDump {
                what,
                into: match &observed.detail {
                    Detail::DumpServer(server) => DumpInto::DrillServer {
                        image: server.image.clone(),
                    },
                    _ if scratch => DumpInto::ScratchServer,
                    _ => DumpInto::NewServer,
                },
            },
            (Some(_), Ok(TargetState::Missing)) => Reason::CreateTarget { what },
            // Nothing to load: a no-op, not a restore (it writes and records nothing).
            (Some(_), Ok(TargetState::Empty)) if conflicting.is_some() => {
                change.action = Action::UpToDate;
                Reason::ImageAlreadyPresent { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.replace && conflicting.is_some() => {
                Reason::MoveTags {
                    what,
                    tags: conflicting.unwrap_or_default(),
                }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if let Some(tags) = conflicting => {
                problem(format!(
                    "{} of {what} already point{} at another image; restoring would move {}. Pass \
                     --replace to move {} to the restored image, or retag the image there first",
                    tags.join(", "),
                    if tags.len() == 1 { "s" } else { "" },
                    if tags.len() == 1 { "it" } else { "them" },
                    if tags.len() == 1 { "it" } else { "them" },
                ))
            }
            (Some(_), Ok(TargetState::Empty)) => Reason::IntoEmptyTarget { what },
            // A container is configuration, not content: one that exists is
            // left alone (its volumes were restored beside it) unless replaced.
            (Some(_), Ok(TargetState::NonEmpty)) if address.kind == ResourceKind::Service => {
                let differs_in = match &observed.detail {
                    Detail::Service(service) => service.differs_in.clone(),
                    _ => Vec::new(),
                };
                if inputs.replace {
                    Reason::RecreateTarget { what }
                } else if !differs_in.is_empty() {
                    change.action = Action::UpToDate;
                    Reason::KeepDifferent {
                        what,
                        settings: differs_in,
                    }
                } else {
                    change.action = Action::UpToDate;
                    Reason::KeepExisting { what }
                }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.replace => {
                Reason::ReplaceTarget { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if inputs.targets.is_empty() => {
                change.action = Action::UpToDate;
                Reason::KeepExisting { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) if !inputs.targets.contains(address) => {
                change.action = Action::UpToDate;
                Reason::KeepDependency { what }
            }
            (Some(_), Ok(TargetState::NonEmpty)) => problem(format!(
                "{what} is not empty; restoring would mix its files with the snapshot's. Pass \
                 --replace to make it equal to the snapshot, or remove it first"
            )),
        };
        // What would be restored from the latest snapshot is refused while
        // a damaged file may be newer; what is left alone stays so.
        let newer: Vec<&DamagedSnapshotFile> = match &observed.snapshot {
            Some(chosen) => inputs
                .damaged
                .iter()
                .filter(|d| d.may_supersede(address, chosen))
                .collect(),
            None => Vec::new(),
        };
        let reason = match (newer.first(), &observed.snapshot) {
            (Some(damaged), Some(chosen))
                if change.action == Action::Restore
                    && !matches!(reason, Reason::Problem { .. }) =>
            {
                problem(damaged_message(damaged, newer.len(), chosen))
            }
            _ => reason,
        };
        let mut reasons = vec![reason];
        if let Detail::Service(service) = &observed.detail
            && change.action == Action::Restore
        {
            let refused: Vec<&String> = service
                .new_host_access
                .iter()
                .filter(|s| !inputs.allowed_host_access.contains(s))
                .collect();
            if !refused.is_empty() {
                let flags: Vec<String> = refused.iter().map(|s| format!("--allow {s}")).collect();
                reasons = vec![problem(format!(
                    "its snapshot asks for access to the host that the container there now does \
                     not have and the spec does not declare: {}. A snapshot is data anyone \
                     holding the repository's key could have written; if these are meant, pass {}",
                    refused
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    flags.join(" ")
                ))];
            } else if !service.host_access.is_empty() {
                reasons.push(Reason::HostAccess {
                    settings: service.host_access.clone(),
                });
            }
        }
        if reasons.iter().any(|r| matches!(r, Reason::Problem { .. })) {
            change.action = Action::Problem;
        }
        let replaces = matches!(
            reasons[0],
            Reason::ReplaceTarget { .. } | Reason::RestoreInterrupted { .. }
        );
        change.reasons = reasons;
        let stops = match &observed.detail {
            Detail::Volume(_) => used_by.map(|u| u.stops.clone()).unwrap_or_default(),
            Detail::Bind(bind) => bind.stops.clone(),
            Detail::Image(_)
            | Detail::Service(_)
            | Detail::Repository(_)
            | Detail::DumpServer(_)
            | Detail::None => Vec::new(),
        };
        if replaces && !stops.is_empty() {
            change
                .reasons
                .push(Reason::StopsContainers { containers: stops });
        }
        change.repositories = observed
            .snapshot
            .iter()
            .map(|s| s.repository.clone())
            .collect();
        change.snapshot = observed.snapshot.clone();
        change.detail = observed.detail.clone().with_target(target.ok());
        changes.push(change);
    }
    choose_database_sources(&mut changes, &inputs);
    let runs = changes
        .iter()
        .filter_map(|c| c.snapshot.as_ref())
        .map(|s| s.run.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut plan = Plan::new(PlanKind::Restore, inputs.basis, changes, inputs.now);
    if runs > 1 {
        plan.warnings.push(super::Warning::SeveralMoments { runs });
    }
    plan
}

/// What a restore into other names finds at `into`'s name: only a name
/// nothing holds may be written (a directory may exist, empty); a dump's
/// scratch server and an image already there (loaded by id) are what they are.
fn refuse_existing(
    kind: ResourceKind,
    state: TargetState,
    what: &str,
    into: &RestoreInto,
) -> Result<TargetState, String> {
    let exists = match kind {
        ResourceKind::Volume | ResourceKind::Service => state != TargetState::Missing,
        ResourceKind::Bind => state == TargetState::NonEmpty,
        ResourceKind::Image => state == TargetState::NonEmpty && !into.name.is_empty(),
        // Loaded into a container, or never written.
        ResourceKind::Dump | ResourceKind::Policy | ResourceKind::Repository => false,
    };
    if !exists {
        return Ok(state);
    }
    let remove = match kind {
        ResourceKind::Volume => format!("docker volume rm {}", into.name),
        ResourceKind::Service => format!("docker rm -f {}", into.name),
        ResourceKind::Image => format!("docker rmi {}", into.name),
        ResourceKind::Bind
        | ResourceKind::Dump
        | ResourceKind::Policy
        | ResourceKind::Repository => format!("empty {}", into.name),
    };
    let holds = match kind {
        ResourceKind::Bind => "is not empty",
        ResourceKind::Image => "already names another image",
        ResourceKind::Volume
        | ResourceKind::Service
        | ResourceKind::Dump
        | ResourceKind::Policy
        | ResourceKind::Repository => "already exists",
    };
    Err(format!(
        "{what} {holds}: a restore into other names writes only new objects. Choose another \
         name, or remove it first (`{remove}`)"
    ))
}

/// The volumes and directories that hold `service`'s data: those it
/// lists, and those that name it as their service.
pub fn service_data(spec: &Spec, service: &str) -> Vec<Address> {
    let mut data = Vec::new();
    if let Some(declared) = spec.services.iter().find(|s| s.name == service) {
        data.extend(
            declared
                .volumes
                .iter()
                .map(|v| Address::new(ResourceKind::Volume, v.clone())),
        );
        data.extend(
            declared
                .binds
                .iter()
                .map(|b| Address::new(ResourceKind::Bind, b.clone())),
        );
    }
    data.extend(
        spec.volumes
            .iter()
            .filter(|v| v.service.as_deref() == Some(service))
            .map(|v| Address::new(ResourceKind::Volume, v.name.clone())),
    );
    data.extend(
        spec.binds
            .iter()
            .filter(|b| b.service.as_deref() == Some(service))
            .map(|b| Address::new(ResourceKind::Bind, b.name.clone())),
    );
    data.sort();
    data.dedup();
    data
}

/// Decides, for each dump to load, whether its database comes from the
/// dump or from its service's data restored beside it (see the module
/// doc), and changes the dump's (or, for a `--target` dump, the data's)
/// change to say so.
fn choose_database_sources(changes: &mut [ResourceChange], inputs: &RestoreInputs<'_>) {
    let scratch = |change: &ResourceChange| {
        matches!(
            change.reasons.first(),
            Some(Reason::LoadDump {
                into: DumpInto::ScratchServer | DumpInto::DrillServer { .. },
                ..
            })
        )
    };
    let dumps: Vec<usize> = (0..changes.len())
        .filter(|&i| {
            changes[i].address.kind == ResourceKind::Dump
                && changes[i].action == Action::Restore
                && !scratch(&changes[i])
        })
        .collect();
    for index in dumps {
        let address = changes[index].address.clone();
        let Some(Resource::Dump(dump)) = inputs.spec.resource(&address) else {
            continue;
        };
        let service = Address::new(ResourceKind::Service, dump.service.clone());
        let data = service_data(inputs.spec, &dump.service);
        let targeted = inputs.targets.contains(&address);
        let position = |changes: &[ResourceChange], data: &Address| {
            changes.iter().position(|c| &c.address == data)
        };
        if targeted {
            // Data restored only because the dump needs its service stays
            // as it is: the dump, named, is the source. So does a
            // container `--replace` would recreate (its files are not the
            // dump's to replace).
            for needed in data.iter().chain([&service]) {
                if let Some(i) = position(changes, needed)
                    && changes[i].action == Action::Restore
                    && !inputs.targets.contains(needed)
                    && (needed != &service
                        || matches!(changes[i].reasons[..], [Reason::RecreateTarget { .. }]))
                {
                    changes[i].action = Action::UpToDate;
                    changes[i].reasons = vec![Reason::DataFromDump {
                        dump: address.clone(),
                    }];
                }
            }
        }
        let restored = data.iter().find_map(|data| {
            let change = &changes[position(changes, data)?];
            (change.action == Action::Restore).then(|| (data.clone(), change.snapshot.clone()))
        });
        let not_restored = data.iter().find(|data| {
            position(changes, data).is_some_and(|i| changes[i].action == Action::Problem)
                && !matches!(
                    inputs.observed.get(*data).map(|o| &o.target),
                    Some(Ok(TargetState::NonEmpty))
                )
        });
        let server = inputs
            .observed
            .get(&address)
            .and_then(|o| o.target.clone().ok());
        let change = &mut changes[index];
        let Some(Reason::LoadDump { what, .. }) = change.reasons.first().cloned() else {
            continue;
        };
        let load = |into| Reason::LoadDump {
            what: what.clone(),
            into,
        };
        let reason = match (restored, not_restored, server) {
            (Some((data, _)), ..) if targeted => Reason::Problem {
                message: format!(
                    "{data} is restored in the same plan and holds the database {address} was \
                     dumped from: loading the dump too would add its rows again. Name one of \
                     them with --target"
                ),
                at: Some(dump.span.to_string()),
            },
            (Some((data, snapshot)), ..) => {
                let dump_run = change.snapshot.as_ref().and_then(|s| s.run.clone());
                Reason::DumpInRestoredData {
                    data,
                    same_run: dump_run.is_some()
                        && snapshot.as_ref().and_then(|s| s.run.clone()) == dump_run,
                    snapshot: snapshot.map(|s| super::short_id(&s.id)).unwrap_or_default(),
                }
            }
            (None, Some(data), _) => load(DumpInto::DataNotRestored { data: data.clone() }),
            (None, None, Some(TargetState::Missing) | None) => load(DumpInto::NewServer),
            (None, None, Some(TargetState::Empty)) => load(DumpInto::StartedAfterDump),
            (None, None, Some(TargetState::NonEmpty)) if targeted && inputs.replace => {
                load(DumpInto::OverExistingData)
            }
            (None, None, Some(TargetState::NonEmpty)) if targeted => Reason::Problem {
                message: format!(
                    "{service} holds data from when {address} was taken or later (its volumes \
                     predate the dump): loading the dump would add its rows again. Pass \
                     --replace to load it over that data, or start the service on a new volume \
                     first"
                ),
                at: Some(dump.span.to_string()),
            },
            (None, None, Some(TargetState::NonEmpty)) => Reason::DumpServerHoldsData {
                service: service.clone(),
            },
        };
        change.action = match reason {
            Reason::Problem { .. } => Action::Problem,
            Reason::LoadDump { .. } => Action::Restore,
            _ => Action::UpToDate,
        };
        change.reasons = vec![reason];
    }
}

/// Why a restore of the latest snapshot is refused while `damaged` (the
/// first of `count` damaged files) may be newer than `chosen`.
fn damaged_message(damaged: &DamagedSnapshotFile, count: usize, chosen: &SnapshotRef) -> String {
    let others = match count {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let id = super::short_id(&damaged.id);
    let format = |time: &DateTime<Utc>| time.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let intact = chosen.short_id();
    match damaged.time {
        Some(time) => format!(
            "the newest snapshot {id} ({}) is damaged{others}: {}. Pass --snapshot {intact} to \
             restore the older one ({}), or `lifeboat check` to see what is lost",
            format(&time),
            damaged.detail,
            format(&chosen.time),
        ),
        None => format!(
            "snapshot {id} in repository.{}{others} is damaged ({}): what it is a snapshot of, \
             and when it was taken, cannot be read, so it may be the newest snapshot of this \
             resource. Pass --snapshot {intact} to restore the newest intact one ({}), or forget \
             the damaged file (`lifeboat forget {id}`) once `lifeboat check` shows it lost",
            damaged.repository,
            damaged.detail,
            format(&chosen.time),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::VolumeDetail;
    use crate::spec::{Consistency, ResourceKind, Span, VolumeSpec};

    fn inputs<'a>(
        spec: &'a Spec,
        order: &'a [Address],
        observed: &'a BTreeMap<Address, RestoreObservation>,
        replace: bool,
    ) -> RestoreInputs<'a> {
        static NO_DEPENDENCIES: std::sync::LazyLock<BTreeMap<Address, Vec<Address>>> =
            std::sync::LazyLock::new(BTreeMap::new);
        static NONE_INTERRUPTED: std::sync::LazyLock<BTreeMap<Address, InterruptedRestore>> =
            std::sync::LazyLock::new(BTreeMap::new);
        RestoreInputs {
            spec,
            order,
            dependencies: &NO_DEPENDENCIES,
            observed,
            targets: order,
            replace,
            allowed_host_access: &[],
            interrupted: &NONE_INTERRUPTED,
            damaged: &[],
            basis: Basis::default(),
            now: Utc::now(),
        }
    }

    #[test]
    fn non_empty_volume_is_refused_unless_replace() {
        let spec = Spec {
            volumes: vec![VolumeSpec::new("data", "app_data")],
            ..Spec::default()
        };
        let order = [Address::new(ResourceKind::Volume, "data")];
        let snapshot = SnapshotRef {
            id: "abcdef0123".into(),
            repository: "main".into(),
            time: Utc::now(),
            bytes: 1,
            files: 1,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        };
        let observed = [(
            order[0].clone(),
            RestoreObservation {
                snapshot: Some(snapshot),
                target: Ok(TargetState::NonEmpty),
                what: "Docker volume app_data".into(),
                detail: Detail::Volume(VolumeDetail {
                    docker_name: "app_data".into(),
                    target: None,
                    used_by: None,
                }),
            },
        )]
        .into();
        let refused = restore_plan(inputs(&spec, &order, &observed, false));
        assert_eq!(refused.changes[0].action, Action::Problem);
        assert!(
            matches!(&refused.changes[0].reasons[0], Reason::Problem { message, .. } if message.contains("--replace"))
        );
        assert_eq!(refused.summary.problems, 1);
        assert!(!refused.has_changes());
        // Only needed by a target (a dump into the service using it): kept.
        let target = [Address::new(ResourceKind::Dump, "sql")];
        let kept = restore_plan(RestoreInputs {
            targets: &target,
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(kept.changes[0].action, Action::UpToDate);
        assert!(matches!(
            &kept.changes[0].reasons[0],
            Reason::KeepDependency { .. }
        ));
        // Restored as part of the whole stack, what is there is kept too.
        let whole = restore_plan(RestoreInputs {
            targets: &[],
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(whole.changes[0].action, Action::UpToDate);
        assert!(matches!(
            &whole.changes[0].reasons[0],
            Reason::KeepExisting { .. }
        ));
        let plan = restore_plan(inputs(&spec, &order, &observed, true));
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert!(matches!(
            &plan.changes[0].detail,
            Detail::Volume(VolumeDetail {
                target: Some(TargetState::NonEmpty),
                ..
            })
        ));
    }

    /// A database server `db` whose data is `volume.pgdata`, dumped by `dump.sql`.
    fn database_spec() -> Spec {
        Spec {
            volumes: vec![VolumeSpec {
                consistency: Consistency::Stop,
                service: Some("db".into()),
                ..VolumeSpec::new("pgdata", "shop_pgdata")
            }],
            services: vec![crate::spec::ServiceSpec {
                volumes: vec!["pgdata".into()],
                ..crate::spec::ServiceSpec::new("db", "shop-db-1")
            }],
            dumps: vec![crate::spec::DumpSpec {
                name: "sql".into(),
                service: "db".into(),
                command: vec!["pg_dumpall".into()],
                restore_command: vec!["psql".into()],
                fail_on_stderr: Vec::new(),
                policy: None,
                span: Span::default(),
            }],
            ..Spec::default()
        }
    }

    fn observation(
        id: Option<&str>,
        target: TargetState,
        what: &str,
        detail: Detail,
    ) -> RestoreObservation {
        RestoreObservation {
            snapshot: id.map(|id| SnapshotRef {
                id: id.into(),
                repository: "main".into(),
                time: Utc::now(),
                bytes: 1,
                files: 1,
                run: Some("run-1".into()),
                duration_seconds: None,
                tags: Vec::new(),
            }),
            target: Ok(target),
            what: what.into(),
            detail,
        }
    }

    /// The plan's change of `address` in a restore of the database stack:
    /// the volume, the service and the dump in the states given.
    fn database_restore(
        volume: (Option<&str>, TargetState),
        server: TargetState,
        targets: &[Address],
        replace: bool,
    ) -> Plan {
        let spec = database_spec();
        let order = [
            Address::new(ResourceKind::Volume, "pgdata"),
            Address::new(ResourceKind::Service, "db"),
            Address::new(ResourceKind::Dump, "sql"),
        ];
        let volume_detail = Detail::Volume(VolumeDetail {
            docker_name: "shop_pgdata".into(),
            target: None,
            used_by: None,
        });
        let container = if server == TargetState::Missing {
            TargetState::Missing
        } else {
            TargetState::NonEmpty
        };
        let observed = [
            (
                order[0].clone(),
                observation(
                    volume.0,
                    volume.1,
                    "Docker volume shop_pgdata",
                    volume_detail,
                ),
            ),
            (
                order[1].clone(),
                observation(
                    Some("5e41ce00"),
                    container,
                    "container shop-db-1",
                    Detail::None,
                ),
            ),
            (
                order[2].clone(),
                observation(
                    Some("d0d0d0d0"),
                    server,
                    "the restore_command in container shop-db-1",
                    Detail::None,
                ),
            ),
        ]
        .into();
        restore_plan(RestoreInputs {
            targets,
            ..inputs(&spec, &order, &observed, replace)
        })
    }

    fn change<'p>(plan: &'p Plan, address: &str) -> &'p ResourceChange {
        plan.changes
            .iter()
            .find(|c| c.address.to_string() == address)
            .unwrap_or_else(|| panic!("{address} is not in {plan:?}"))
    }

    #[test]
    fn a_dump_is_not_loaded_over_the_volume_restored_beside_it() {
        let plan = database_restore(
            (Some("a0a0a0a0a0"), TargetState::Missing),
            TargetState::Missing,
            &[],
            false,
        );
        assert_eq!(change(&plan, "volume.pgdata").action, Action::Restore);
        let dump = change(&plan, "dump.sql");
        assert_eq!(dump.action, Action::UpToDate, "{plan:?}");
        assert_eq!(
            dump.reasons,
            [Reason::DumpInRestoredData {
                data: Address::new(ResourceKind::Volume, "pgdata"),
                snapshot: "a0a0a0a0".into(),
                same_run: true,
            }]
        );
    }

    #[test]
    fn a_dump_loads_when_the_volume_cannot_be_restored_or_into_a_new_server() {
        // No snapshot of the volume: the dump is the only source.
        let plan = database_restore(
            (None, TargetState::Missing),
            TargetState::Missing,
            &[],
            false,
        );
        assert_eq!(change(&plan, "volume.pgdata").action, Action::Problem);
        assert_eq!(
            change(&plan, "dump.sql").reasons,
            [Reason::LoadDump {
                what: "the restore_command in container shop-db-1".into(),
                into: DumpInto::DataNotRestored {
                    data: Address::new(ResourceKind::Volume, "pgdata"),
                },
            }]
        );
        // Volumes created after the dump was taken: a server started anew.
        let plan = database_restore(
            (Some("a0a0a0a0a0"), TargetState::NonEmpty),
            TargetState::Empty,
            &[],
            false,
        );
        assert_eq!(change(&plan, "volume.pgdata").action, Action::UpToDate);
        let dump = change(&plan, "dump.sql");
        assert_eq!(dump.action, Action::Restore);
        assert!(matches!(
            dump.reasons[0],
            Reason::LoadDump {
                into: DumpInto::StartedAfterDump,
                ..
            }
        ));
    }

    #[test]
    fn a_server_holding_data_gets_the_dump_only_when_named_with_replace() {
        let kept = (Some("a0a0a0a0a0"), TargetState::NonEmpty);
        let whole = database_restore(kept, TargetState::NonEmpty, &[], false);
        let dump = change(&whole, "dump.sql");
        assert_eq!(dump.action, Action::UpToDate);
        assert_eq!(
            dump.reasons,
            [Reason::DumpServerHoldsData {
                service: Address::new(ResourceKind::Service, "db"),
            }]
        );
        let target = [Address::new(ResourceKind::Dump, "sql")];
        let refused = database_restore(kept, TargetState::NonEmpty, &target, false);
        let dump = change(&refused, "dump.sql");
        assert_eq!(dump.action, Action::Problem);
        assert!(
            matches!(&dump.reasons[0], Reason::Problem { message, .. } if message.contains("--replace")),
            "{dump:?}"
        );
        let replaced = database_restore(kept, TargetState::NonEmpty, &target, true);
        // Neither the volume nor the container is replaced from its
        // snapshot: the dump is the source.
        for kept in ["volume.pgdata", "service.db"] {
            let change = change(&replaced, kept);
            assert_eq!(change.action, Action::UpToDate, "{change:?}");
            assert_eq!(
                change.reasons,
                [Reason::DataFromDump {
                    dump: target[0].clone()
                }]
            );
        }
        assert!(matches!(
            change(&replaced, "dump.sql").reasons[0],
            Reason::LoadDump {
                into: DumpInto::OverExistingData,
                ..
            }
        ));
    }

    #[test]
    fn a_dump_named_as_target_is_the_source_of_a_lost_database() {
        // Volume and container lost: the volume is not restored from its
        // snapshot, the service starts anew on an empty one, the dump loads.
        let target = [Address::new(ResourceKind::Dump, "sql")];
        let plan = database_restore(
            (Some("a0a0a0a0a0"), TargetState::Missing),
            TargetState::Missing,
            &target,
            false,
        );
        assert_eq!(change(&plan, "volume.pgdata").action, Action::UpToDate);
        let dump = change(&plan, "dump.sql");
        assert_eq!(dump.action, Action::Restore);
        assert!(matches!(
            dump.reasons[0],
            Reason::LoadDump {
                into: DumpInto::NewServer,
                ..
            }
        ));
        // Both named: one source must be chosen.
        let both = [
            target[0].clone(),
            Address::new(ResourceKind::Volume, "pgdata"),
        ];
        let plan = database_restore(
            (Some("a0a0a0a0a0"), TargetState::Missing),
            TargetState::Missing,
            &both,
            false,
        );
        assert_eq!(change(&plan, "volume.pgdata").action, Action::Restore);
        assert_eq!(change(&plan, "dump.sql").action, Action::Problem);
    }

    #[test]
    fn host_access_the_live_container_lacks_is_refused_unless_allowed() {
        use crate::plan::ServiceDetail;
        use crate::spec::ServiceSpec;
        let spec = Spec {
            services: vec![ServiceSpec::new("evil", "adv_evil")],
            ..Spec::default()
        };
        let order = [Address::new(ResourceKind::Service, "evil")];
        let observed = [(
            order[0].clone(),
            RestoreObservation {
                snapshot: Some(SnapshotRef {
                    id: "abcdef0123".into(),
                    repository: "main".into(),
                    time: Utc::now(),
                    bytes: 1,
                    files: 1,
                    run: None,
                    duration_seconds: None,
                    tags: Vec::new(),
                }),
                target: Ok(TargetState::Missing),
                what: "container adv_evil".into(),
                detail: Detail::Service(ServiceDetail {
                    container: "adv_evil".into(),
                    host_access: vec!["bind:/".into(), "privileged".into()],
                    new_host_access: vec!["bind:/".into(), "privileged".into()],
                    ..ServiceDetail::default()
                }),
            },
        )]
        .into();
        let refused = restore_plan(inputs(&spec, &order, &observed, false));
        assert_eq!(refused.changes[0].action, Action::Problem);
        assert!(matches!(
            &refused.changes[0].reasons[0],
            Reason::Problem { message, .. }
                if message.contains("--allow bind:/ --allow privileged")
        ));
        let allowed = ["bind:/".to_string(), "privileged".to_string()];
        let plan = restore_plan(RestoreInputs {
            allowed_host_access: &allowed,
            ..inputs(&spec, &order, &observed, false)
        });
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert!(plan.changes[0].reasons.iter().any(|r| matches!(
            r,
            Reason::HostAccess { settings } if settings.len() == 2
        )));
    }
}

#[cfg(test)]
mod safety_tests {
    //! What keeps a restore from destroying data: partial restores are
    //! redone, a possibly newer damaged snapshot refuses the latest, and a
    //! volume in use says which containers stop.
    use super::*;
    use crate::plan::{ImageDetail, VolumeDetail, VolumeUse};
    use crate::spec::{ImageSpec, ResourceKind, Span, VolumeSpec};

    fn spec() -> Spec {
        Spec {
            volumes: vec![VolumeSpec::new("data", "app_data")],
            ..Spec::default()
        }
    }

    fn volume() -> Address {
        Address::new(ResourceKind::Volume, "data")
    }

    fn snapshot(id: &str) -> SnapshotRef {
        SnapshotRef {
            id: id.into(),
            repository: "main".into(),
            time: Utc::now(),
            bytes: 1,
            files: 1,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        }
    }

    fn observed(
        target: TargetState,
        used_by: Option<VolumeUse>,
    ) -> BTreeMap<Address, RestoreObservation> {
        [(
            volume(),
            RestoreObservation {
                snapshot: Some(snapshot("1a2b3c4d5e6f")),
                target: Ok(target),
                what: "Docker volume app_data".into(),
                detail: Detail::Volume(VolumeDetail {
                    docker_name: "app_data".into(),
                    target: None,
                    used_by,
                }),
            },
        )]
        .into()
    }

    struct Case {
        targets: Vec<Address>,
        replace: bool,
        interrupted: BTreeMap<Address, InterruptedRestore>,
        damaged: Vec<DamagedSnapshotFile>,
    }

    impl Case {
        fn new() -> Case {
            Case {
                targets: Vec::new(),
                replace: false,
                interrupted: BTreeMap::new(),
                damaged: Vec::new(),
            }
        }

        fn plan(&self, spec: &Spec, observed: &BTreeMap<Address, RestoreObservation>) -> Plan {
            let order: Vec<Address> = observed.keys().cloned().collect();
            restore_plan(RestoreInputs {
                spec,
                order: &order,
                dependencies: &BTreeMap::new(),
                observed,
                targets: &self.targets,
                replace: self.replace,
                allowed_host_access: &[],
                interrupted: &self.interrupted,
                damaged: &self.damaged,
                basis: Basis::default(),
                now: Utc::now(),
            })
        }
    }

    #[test]
    fn a_partial_restore_is_restored_again_without_replace_and_says_so() {
        let spec = spec();
        let mut case = Case::new();
        let started = Utc::now();
        case.interrupted.insert(
            volume(),
            InterruptedRestore {
                snapshot: "8c2e41f0".into(),
                started,
                paths: Vec::new(),
            },
        );
        // The whole stack, no --replace: what is there would be left alone,
        // but a partial restore is not what anyone keeps.
        let plan = case.plan(&spec, &observed(TargetState::NonEmpty, None));
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert_eq!(
            plan.changes[0].reasons,
            vec![Reason::RestoreInterrupted {
                what: "Docker volume app_data".into(),
                snapshot: "8c2e41f0".into(),
                started,
            }]
        );
        assert_eq!(plan.summary.to_restore, 1);
        // Without a record, the same volume is left alone.
        let kept = Case::new().plan(&spec, &observed(TargetState::NonEmpty, None));
        assert_eq!(kept.changes[0].action, Action::UpToDate);
    }

    #[test]
    fn an_interrupted_restore_of_paths_never_becomes_a_whole_replace() {
        let spec = spec();
        let mut case = Case::new();
        case.interrupted.insert(
            volume(),
            InterruptedRestore {
                snapshot: "8c2e41f0".into(),
                started: Utc::now(),
                paths: vec!["config".into()],
            },
        );
        // Only `config` is torn: the rest of the volume is live data that
        // no safety snapshot holds, so it is left as without a record.
        let plan = case.plan(&spec, &observed(TargetState::NonEmpty, None));
        assert_eq!(plan.changes[0].action, Action::UpToDate, "{plan:#?}");
        assert!(
            !plan.changes[0]
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::RestoreInterrupted { .. })),
            "{plan:#?}"
        );
    }

    #[test]
    fn a_damaged_snapshot_file_refuses_the_latest_and_names_the_intact_one() {
        let spec = spec();
        let mut case = Case::new();
        case.damaged.push(DamagedSnapshotFile {
            id: "8c2e41f0aabbccdd".into(),
            repository: "main".into(),
            detail: "does not authenticate".into(),
            resource: None,
            time: None,
        });
        let plan = case.plan(&spec, &observed(TargetState::Missing, None));
        assert_eq!(plan.changes[0].action, Action::Problem);
        let Reason::Problem { message, .. } = &plan.changes[0].reasons[0] else {
            panic!("{:?}", plan.changes[0].reasons);
        };
        assert!(
            message.contains("snapshot 8c2e41f0 in repository.main"),
            "{message}"
        );
        assert!(message.contains("does not authenticate"), "{message}");
        assert!(message.contains("--snapshot 1a2b3c4d"), "{message}");
        assert!(!plan.has_changes());
        // What is left alone is not restored, so nothing is refused.
        let kept = case.plan(&spec, &observed(TargetState::NonEmpty, None));
        assert_eq!(kept.changes[0].action, Action::UpToDate);
        // Remembered as an older snapshot, or one of another resource: no
        // newer snapshot is damaged.
        let chosen_time = observed(TargetState::Missing, None)[&volume()]
            .snapshot
            .as_ref()
            .unwrap()
            .time;
        for (resource, time) in [
            (volume(), chosen_time - chrono::Duration::hours(1)),
            (
                Address::new(ResourceKind::Volume, "other"),
                chosen_time + chrono::Duration::hours(1),
            ),
        ] {
            case.damaged[0].resource = Some(resource);
            case.damaged[0].time = Some(time);
            let plan = case.plan(&spec, &observed(TargetState::Missing, None));
            assert_eq!(plan.changes[0].action, Action::Restore);
        }
        // Remembered as this resource's, newer: said with its time.
        case.damaged[0].resource = Some(volume());
        case.damaged[0].time = Some(chosen_time + chrono::Duration::hours(1));
        let plan = case.plan(&spec, &observed(TargetState::Missing, None));
        let Reason::Problem { message, .. } = &plan.changes[0].reasons[0] else {
            panic!("{:?}", plan.changes[0].reasons);
        };
        assert!(
            message.starts_with("the newest snapshot 8c2e41f0 ("),
            "{message}"
        );
        assert!(
            message.contains("--snapshot 1a2b3c4d to restore the older one"),
            "{message}"
        );
        case.damaged[0].resource = None;
        case.damaged[0].time = None;
        // A resource refused for its own reason keeps that reason.
        case.targets = vec![volume()];
        let refused = case.plan(&spec, &observed(TargetState::NonEmpty, None));
        assert!(
            matches!(&refused.changes[0].reasons[0], Reason::Problem { message, .. }
                if message.contains("--replace") && !message.contains("damaged")),
            "{:?}",
            refused.changes[0].reasons
        );
    }

    #[test]
    fn replacing_a_volume_in_use_lists_the_stops_or_says_why_it_cannot() {
        let spec = spec();
        let mut case = Case::new();
        case.replace = true;
        let used = |reachable| VolumeUse {
            containers: vec!["app".into(), "idle".into()],
            stops: vec!["web".into(), "app".into()],
            reachable,
        };
        let plan = case.plan(&spec, &observed(TargetState::NonEmpty, Some(used(true))));
        assert_eq!(plan.changes[0].action, Action::Restore);
        assert_eq!(
            plan.changes[0].reasons[1],
            Reason::StopsContainers {
                containers: vec!["web".into(), "app".into()]
            }
        );
        let refused = case.plan(&spec, &observed(TargetState::NonEmpty, Some(used(false))));
        assert_eq!(refused.changes[0].action, Action::Problem);
        let Reason::Problem { message, .. } = &refused.changes[0].reasons[0] else {
            panic!("{:?}", refused.changes[0].reasons);
        };
        assert!(message.contains("app, idle"), "{message}");
        // Into an empty volume nothing is replaced, and nothing stops.
        let empty = case.plan(&spec, &observed(TargetState::Empty, Some(used(true))));
        assert_eq!(empty.changes[0].reasons.len(), 1);
    }

    #[test]
    fn an_image_already_there_is_no_change() {
        let spec = Spec {
            images: vec![ImageSpec {
                name: "base".into(),
                reference: "shop/base:1".into(),
                engine: None,
                policy: None,
                base: None,
                span: Span::default(),
            }],
            ..Spec::default()
        };
        let observed = [(
            Address::new(ResourceKind::Image, "base"),
            RestoreObservation {
                snapshot: Some(snapshot("1a2b3c4d5e6f")),
                target: Ok(TargetState::Empty),
                what: "image shop/base:1".into(),
                detail: Detail::Image(ImageDetail {
                    reference: "shop/base:1".into(),
                    id: None,
                    conflicting_tags: Vec::new(),
                    target: None,
                }),
            },
        )]
        .into();
        let plan = Case::new().plan(&spec, &observed);
        assert_eq!(plan.changes[0].action, Action::UpToDate);
        assert!(!plan.has_changes());
        assert_eq!(plan.summary.to_restore, 0);
    }
}
