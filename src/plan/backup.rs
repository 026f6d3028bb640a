//! Backup plans: which resources are due, and why; what retention forgets;
//! which settings changed since the last apply; which resources cannot be
//! backed up now (without stopping the others).

use super::Interruption;
use super::coverage;
use super::retention;
use super::{
    Action, AppliedSettings, AppliedState, Basis, DEFAULT_RPO, Detail, Plan, PlanKind, PlannedCopy,
    Reason, ResourceChange, SnapshotRef, Warning,
};
use crate::repo::ExcludeRules;
use crate::spec::{Address, Consistency, Resource, ResourceKind, Spec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the repositories hold for one resource.
#[derive(Debug, Clone, Default)]
pub struct ObservedResource {
    /// Repository name → latest snapshot there (absent: never backed up there).
    pub latest: BTreeMap<String, SnapshotRef>,
    /// Repository name → what the latest snapshot there was taken of (the
    /// Docker volume's name): a different one means the snapshot is of
    /// something else. Not part of the plan (it may be sensitive).
    pub latest_source: BTreeMap<String, String>,
    /// Repository name → the version the latest snapshot there recorded (an
    /// image id), when its kind has one.
    pub latest_version: BTreeMap<String, String>,
    /// Repository name → the consistency the latest snapshot there was
    /// taken under, when it recorded one (absent: unknown, as for
    /// snapshots of older versions, which are not due for that alone).
    pub latest_consistency: BTreeMap<String, Consistency>,
    /// Repository name → what the latest snapshot there left out, when it
    /// left out anything (absent: nothing, as in snapshots of older versions).
    pub latest_excludes: BTreeMap<String, ExcludeRules>,
    /// Repository name → every snapshot there that retention governs (safety
    /// snapshots taken before a restore are the user's to forget, not the policy's).
    pub retained: BTreeMap<String, Vec<SnapshotRef>>,
}

/// What the engine says about one resource now (observed by its kind's
/// handler in `apply`).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveResource {
    /// Why it cannot be backed up now (the volume is missing, the engine is
    /// unreachable); `None` when it can.
    pub problem: Option<String>,
    /// Running containers that use it and keep running while it is copied
    /// (none when `consistency` stops or pauses them): the plan warns.
    pub running_users: Vec<String>,
    /// What the plan shows about it.
    pub detail: Detail,
    /// What it maps to on the engine now (a volume's Docker name), compared
    /// with what its latest snapshot was taken of.
    pub source: Option<String>,
    /// The version of that object when the engine knows one without reading
    /// its content (an image's id): a different one than the latest
    /// snapshot's means the content changed.
    pub version: Option<String>,
}

impl LiveResource {
    /// A resource that cannot be backed up now, and why.
    pub fn problem(message: String) -> LiveResource {
        LiveResource {
            problem: Some(message),
            running_users: Vec::new(),
            detail: Detail::None,
            source: None,
            version: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackupInputs<'a> {
    pub spec: &'a Spec,
    /// Resources to consider, in the graph's backup order (already narrowed by `--target`).
    pub order: &'a [Address],
    /// Each resource's direct dependencies in the graph.
    pub dependencies: &'a BTreeMap<Address, Vec<Address>>,
    /// Every repository the spec writes to (declared or the default one), in spec order.
    pub repositories: &'a [String],
    pub observed: &'a BTreeMap<Address, ObservedResource>,
    /// What the engines say about each resource (absent: not observed, as
    /// for retention-only plans).
    pub live: &'a BTreeMap<Address, LiveResource>,
    /// `--replace ADDR`: back up even when not due.
    pub replace: &'a [Address],
    /// `--tag KEY=VALUE`, as stored (`release=v1.4.2`): every resource is
    /// backed up, and each snapshot carries them.
    pub tags: &'a [String],
    /// Only what retention forgets (`lifeboat forget`): no backups, so the
    /// snapshot a due backup would add is not counted, and the plan is a
    /// [`PlanKind::Forget`] one.
    pub retention_only: bool,
    /// What the last apply and restores recorded (`None`: nothing yet, so
    /// no settings to compare with and no restore times to hold rto against).
    pub applied: Option<&'a AppliedState>,
    pub basis: Basis,
    pub now: DateTime<Utc>,
}

fn seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs()
}

/// The due decision for one resource: due, and why (or why not).
struct Due {
    due: bool,
    reasons: Vec<Reason>,
    /// The newest of the latest snapshots across the copies: what the rpo
    /// is held against, since every repository lacking it gets it by a copy.
    newest_latest: Option<SnapshotRef>,
}

/// Due when no repository its policy copies to holds a snapshot of it,
/// when the newest snapshot there is older than the rpo (or would be
/// before the next scheduled run: age + `schedule.every` > rpo) or of
/// something else than the resource now names, when it was taken under a
/// weaker consistency than the spec asks now, when the run is tagged, or
/// when `--replace` asks. A repository that lacks a snapshot another one
/// holds is not a reason to read the engine again: it gets a copy
/// ([`missing_copies`]).
fn due(
    inputs: &BackupInputs<'_>,
    address: &Address,
    live: Option<&LiveResource>,
    targets: &[String],
    rpo: std::time::Duration,
) -> Due {
    let source = live.and_then(|l| l.source.as_deref());
    let version = live.and_then(|l| l.version.as_deref());
    let empty = ObservedResource::default();
    let observed = inputs.observed.get(address).unwrap_or(&empty);
    let mut reasons = Vec::new();
    let mut due = false;
    if inputs.replace.contains(address) {
        due = true;
        reasons.push(Reason::ReplaceRequested);
    }
    if !inputs.tags.is_empty() {
        due = true;
        reasons.push(Reason::Tagged {
            tags: inputs.tags.to_vec(),
        });
    }
    let newest = targets
        .iter()
        .filter_map(|repository| Some((repository, observed.latest.get(repository)?)))
        .max_by_key(|(_, latest)| latest.time);
    let Some((repository, latest)) = newest else {
        for repository in targets {
            reasons.push(Reason::NeverBackedUp {
                repository: (targets.len() > 1).then(|| repository.clone()),
            });
        }
        return Due {
            due: true,
            reasons,
            newest_latest: None,
        };
    };
    let age = (inputs.now - latest.time).to_std().unwrap_or_default();
    if age > rpo {
        due = true;
        reasons.push(Reason::RpoExceeded {
            age_seconds: seconds(age),
            rpo_seconds: seconds(rpo),
        });
    } else if let Some(every) = inputs.spec.schedule.as_ref().map(|s| s.every)
        && age + every > rpo
    {
        // The next run comes `every` from now: waiting for it would let
        // the snapshot pass its rpo (an hourly timer and rpo 24h would
        // drift by up to an hour a day).
        due = true;
        reasons.push(Reason::RpoBeforeNextRun {
            age_seconds: seconds(age),
            every_seconds: seconds(every),
            rpo_seconds: seconds(rpo),
        });
    }
    if let (Some(now), Some(then)) = (source, observed.latest_source.get(repository))
        && now != then
    {
        due = true;
        reasons.push(Reason::SourceChanged {
            attribute: source_attribute(address.kind).to_string(),
        });
    }
    if let Some(now) = version
        && observed.latest_version.get(repository).map(String::as_str) != Some(now)
    {
        due = true;
        reasons.push(Reason::ContentChanged);
    }
    let asked = asked_consistency(inputs.spec, address);
    if let (Some(asked), Some(&taken)) = (asked, observed.latest_consistency.get(repository))
        && taken < asked
    {
        due = true;
        reasons.push(Reason::WeakerConsistency { taken, asked });
    }
    if let Some(asked) = inputs.spec.resource(address).and_then(|r| r.excludes()) {
        let taken = observed
            .latest_excludes
            .get(repository)
            .cloned()
            .unwrap_or_default();
        if !taken.same_as(asked) {
            due = true;
            reasons.push(Reason::ExcludeChanged {
                taken,
                asked: asked.clone(),
            });
        }
    }
    if !due {
        reasons.push(Reason::WithinRpo {
            snapshot: latest.short_id(),
            age_seconds: seconds(age),
            rpo_seconds: seconds(rpo),
        });
    }
    Due {
        due,
        reasons,
        newest_latest: Some(latest.clone()),
    }
}

/// Whether two snapshots are one moment of one resource: a copy keeps the
/// time and the run of what it copies (ids differ where keys do).
fn same_moment(a: &SnapshotRef, b: &SnapshotRef) -> bool {
    a.time == b.time && a.run == b.run
}

/// The copies that give every repository of `targets` the snapshots of
/// `address` that retention keeps: each moment held in some repository
/// (copied from the first, in spec order, that holds it), the latest and
/// older ones alike, into each repository lacking it.
fn missing_copies(
    inputs: &BackupInputs<'_>,
    address: &Address,
    targets: &[String],
) -> Vec<PlannedCopy> {
    let Some(observed) = inputs.observed.get(address) else {
        return Vec::new();
    };
    let mut moments: Vec<&SnapshotRef> = Vec::new();
    for repository in targets {
        for snapshot in observed.retained.get(repository).into_iter().flatten() {
            if !moments.iter().any(|m| same_moment(m, snapshot)) {
                moments.push(snapshot);
            }
        }
    }
    let rules = inputs
        .spec
        .policy_of(address)
        .map(|p| p.retention.clone())
        .unwrap_or_default();
    let times: Vec<_> = moments.iter().map(|s| s.time).collect();
    let mut kept = retention::decide(&rules, &times).keep;
    // Oldest first, as a new repository would have received them.
    kept.reverse();
    let mut copies = Vec::new();
    for to in targets {
        let held = observed
            .retained
            .get(to)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for snapshot in kept.iter().map(|&i| moments[i]) {
            if !held.iter().any(|h| same_moment(h, snapshot)) {
                copies.push(PlannedCopy {
                    from: snapshot.repository.clone(),
                    to: to.clone(),
                    snapshot: Some(snapshot.clone()),
                });
            }
        }
    }
    copies
}

/// The copies of the snapshot a backup takes: read into the first of
/// `targets`, copied from there into each other one.
fn new_snapshot_copies(targets: &[String]) -> Vec<PlannedCopy> {
    let Some((first, others)) = targets.split_first() else {
        return Vec::new();
    };
    others
        .iter()
        .map(|to| PlannedCopy {
            from: first.clone(),
            to: to.clone(),
            snapshot: None,
        })
        .collect()
}

/// The spec attribute naming what a resource's copies are read from (a
/// change of it is a new source, so a backup is due).
fn source_attribute(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Bind => "path",
        ResourceKind::Service => "container",
        ResourceKind::Image => "ref",
        ResourceKind::Volume | ResourceKind::Dump => "name",
        // Not copied: nothing to read from.
        ResourceKind::Policy | ResourceKind::Repository => "name",
    }
}

/// The consistency the spec asks of a volume's or bind's copies; `None`
/// for kinds that have none.
fn asked_consistency(spec: &Spec, address: &Address) -> Option<Consistency> {
    match spec.resource(address)? {
        Resource::Volume(volume) => Some(volume.consistency),
        Resource::Bind(bind) => Some(bind.consistency),
        Resource::Image(_) | Resource::Service(_) | Resource::Dump(_) => None,
    }
}

/// The `>` change of an up-to-date resource (`resource`, its `=` change)
/// whose `copies` some repositories lack.
fn copy_change(resource: &ResourceChange, copies: Vec<PlannedCopy>) -> ResourceChange {
    let mut change = ResourceChange::new(resource.address.clone(), Action::Copy);
    change.engine = resource.engine.clone();
    let mut lacking: Vec<&str> = copies.iter().map(|c| c.to.as_str()).collect();
    lacking.dedup();
    change.reasons = lacking
        .iter()
        .map(|repository| Reason::Lacks {
            repository: repository.to_string(),
            snapshots: copies.iter().filter(|c| c.to == *repository).count(),
        })
        .collect();
    change.repositories = resource.repositories.clone();
    change.snapshot = resource.snapshot.clone();
    change.copies = copies;
    change
}

/// What retention forgets of one resource, per repository.
fn forgets(
    inputs: &BackupInputs<'_>,
    address: &Address,
    backing_up_to: &[String],
    copying: &[PlannedCopy],
) -> Vec<ResourceChange> {
    let Some(observed) = inputs.observed.get(address) else {
        return Vec::new();
    };
    let rules = inputs
        .spec
        .policy_of(address)
        .map(|p| p.retention.clone())
        .unwrap_or_default();
    let mut changes = Vec::new();
    for (repository, snapshots) in &observed.retained {
        let mut times: Vec<_> = snapshots.iter().map(|s| s.time).collect();
        let mut tags: Vec<&[String]> = snapshots.iter().map(|s| s.tags.as_slice()).collect();
        let counting_new = backing_up_to.contains(repository);
        if counting_new {
            times.push(inputs.now);
            tags.push(inputs.tags);
        }
        // What the copies bring count as this repository's own (retention
        // keeps them: they were chosen by it); only its own are forgotten.
        for copied in copying
            .iter()
            .filter(|c| &c.to == repository)
            .filter_map(|c| c.snapshot.as_ref())
        {
            times.push(copied.time);
            tags.push(copied.tags.as_slice());
        }
        let decision = retention::decide_tagged(&rules, &times, &tags);
        let forget: Vec<SnapshotRef> = decision
            .forget
            .iter()
            .filter_map(|&i| snapshots.get(i).cloned())
            .collect();
        if forget.is_empty() {
            continue;
        }
        let mut change = ResourceChange::new(address.clone(), Action::Forget);
        change.reasons.push(Reason::Retention {
            rules: retention::describe(&rules),
            keep: decision.keep.len(),
            of: times.len(),
            counting_new,
        });
        change.repositories = vec![repository.clone()];
        change.forget = forget;
        changes.push(change);
    }
    changes
}

/// The rpo a resource's newest copies are held against: its policy's, else
/// [`DEFAULT_RPO`]. Plans and `status` both ask here.
pub fn rpo_of(spec: &Spec, address: &Address) -> std::time::Duration {
    spec.policy_of(address)
        .and_then(|p| p.rpo)
        .unwrap_or(DEFAULT_RPO)
}

/// The repositories a resource is copied to: its policy's `copies`, else
/// every repository of the spec (`repositories`, in spec order).
pub fn copy_targets(spec: &Spec, address: &Address, repositories: &[String]) -> Vec<String> {
    match spec.policy_of(address) {
        Some(p) if !p.copies.is_empty() => p.copies.clone(),
        _ => repositories.to_vec(),
    }
}

/// Decides, for each resource in order, whether it is due (see [`due`]),
/// or cannot be backed up now (`!`, beside the rest of the plan), or, up
/// to date, lacks snapshots in some repository (`>`, [`missing_copies`]). Then what
/// its retention forgets in each repository (counting the snapshot about to
/// be taken, so that after apply exactly what the rules keep remains), and
/// which settings changed since the last apply.
pub fn backup_plan(inputs: BackupInputs<'_>) -> Plan {
    let spec = inputs.spec;
    let mut changes = Vec::new();
    let mut forget_changes = Vec::new();
    let mut copy_changes = Vec::new();
    let mut warnings = coverage::not_acted_on(spec);
    for address in inputs.order {
        if !coverage::backs_up(address.kind) {
            continue;
        }
        let Some(resource) = spec.resource(address) else {
            continue;
        };
        let rpo = rpo_of(spec, address);
        let targets = copy_targets(spec, address, inputs.repositories);
        let live = inputs.live.get(address);
        let problem = live.and_then(|l| l.problem.clone());
        let decision = due(&inputs, address, live, &targets, rpo);
        let backing_up = decision.due && problem.is_none() && !inputs.retention_only;

        if let Some(live) = live
            && !live.running_users.is_empty()
            && backing_up
        {
            warnings.push(Warning::RunningWithoutConsistency {
                address: address.clone(),
                containers: live.running_users.clone(),
                at: resource.span().to_string(),
            });
        }
        let copies = if backing_up || problem.is_some() || inputs.retention_only {
            Vec::new()
        } else {
            missing_copies(&inputs, address, &targets)
        };
        forget_changes.extend(forgets(
            &inputs,
            address,
            if backing_up { &targets } else { &[] },
            &copies,
        ));
        let mut change = ResourceChange::new(address.clone(), Action::UpToDate);
        change.engine = Some(spec.engine_name(address).to_string());
        change.depends_on = inputs
            .dependencies
            .get(address)
            .map(|d| {
                d.iter()
                    .filter(|a| inputs.order.contains(a) && coverage::backs_up(a.kind))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        change.repositories = targets;
        change.detail = live.map(|l| l.detail.clone()).unwrap_or(Detail::None);
        change.snapshot = decision.newest_latest;
        match problem {
            Some(message) => {
                change.action = Action::Problem;
                change.reasons = vec![Reason::Problem {
                    message,
                    at: Some(resource.span().to_string()),
                }];
            }
            None => {
                change.action = if decision.due {
                    Action::BackUp
                } else {
                    Action::UpToDate
                };
                change.reasons = decision.reasons;
                if matches!(change.action, Action::BackUp | Action::UpToDate) {
                    change.reasons.extend(excludes(spec, address));
                }
                if change.action == Action::BackUp {
                    change.reasons.extend(interruptions(spec, address, &change));
                    change.copies = new_snapshot_copies(&change.repositories);
                }
            }
        }
        if !copies.is_empty() {
            copy_changes.push(copy_change(&change, copies));
        }
        changes.push(change);
    }
    if inputs.retention_only {
        return Plan::new(PlanKind::Forget, inputs.basis, forget_changes, inputs.now);
    }
    // Backups first, then copies of what some repositories lack, then what
    // retention forgets once they are safe, then the record of settings.
    changes.extend(copy_changes);
    changes.extend(forget_changes);
    if let Some(applied) = inputs.applied {
        if let Some(settings) = &applied.settings {
            changes.extend(AppliedSettings::of(spec).changes_since(settings));
        }
        warnings.extend(rto_warnings(spec, inputs.order, applied));
    }
    let never_applied = AppliedState::default();
    let applied = inputs.applied.unwrap_or(&never_applied);
    warnings.extend(drill_warnings(spec, inputs.order, applied, inputs.now));
    warnings.extend(orphaned_snapshots(&inputs));
    let mut plan = Plan::new(PlanKind::Backup, inputs.basis, changes, inputs.now);
    plan.warnings = warnings;
    plan.tags = inputs.tags.to_vec();
    plan
}

/// Snapshots of resources the spec no longer declares (renamed without a
/// `moved` block, or removed): no plan acts on them, retention never
/// forgets them, and a renamed block's restore cannot find them.
fn orphaned_snapshots(inputs: &BackupInputs<'_>) -> Vec<super::Warning> {
    let declared = inputs.spec.addresses();
    inputs
        .observed
        .iter()
        .filter(|(address, _)| address.kind.is_resource() && !declared.contains(address))
        .flat_map(|(address, observed)| {
            observed.retained.iter().map(|(repository, snapshots)| {
                super::Warning::OrphanedSnapshots {
                    address: address.clone(),
                    repository: repository.clone(),
                    snapshots: snapshots.iter().map(|s| s.short_id()).collect(),
                }
            })
        })
        .filter(|w| !matches!(w, super::Warning::OrphanedSnapshots { snapshots, .. } if snapshots.is_empty()))
        .collect()
}

/// What the copies of a volume or bind leave out, when anything.
fn excludes(spec: &Spec, address: &Address) -> Option<Reason> {
    let rules = spec.resource(address)?.excludes()?;
    (!rules.is_empty()).then(|| Reason::Excludes {
        rules: rules.clone(),
    })
}

/// What the copy of a volume or bind does to its service: hooks it runs
/// there, and a stop or pause (for about as long as the last copy took).
fn interruptions(spec: &Spec, address: &Address, change: &ResourceChange) -> Vec<Reason> {
    let Some(service) = spec.service_of(address) else {
        return Vec::new();
    };
    let (consistency, hooks) = match spec.resource(address) {
        Some(Resource::Volume(volume)) => (volume.consistency, &volume.hooks),
        Some(Resource::Bind(bind)) => (bind.consistency, &bind.hooks),
        Some(Resource::Image(_) | Resource::Service(_) | Resource::Dump(_)) | None => {
            return Vec::new();
        }
    };
    let shown = format!("service.{}", service.name);
    let mut reasons = Vec::new();
    let pre: Vec<String> = [&service.hooks.pre, &hooks.pre]
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| spec.redact(&c.join(" ")))
        .collect();
    let post: Vec<String> = [&hooks.post, &service.hooks.post]
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| spec.redact(&c.join(" ")))
        .collect();
    if !pre.is_empty() || !post.is_empty() {
        reasons.push(Reason::Hooks {
            service: shown.clone(),
            pre,
            post,
        });
    }
    let how = match consistency {
        Consistency::None => return reasons,
        Consistency::Stop => Interruption::Stop,
        Consistency::Pause => Interruption::Pause,
    };
    reasons.push(Reason::Interrupts {
        service: shown,
        stop_timeout_seconds: (how == Interruption::Stop).then(|| service.stop_timeout().as_secs()),
        how,
        last_copy_millis: change
            .snapshot
            .as_ref()
            .and_then(|s| s.duration_seconds)
            .map(|seconds| (seconds.clamp(0.0, 1e9) * 1000.0).round() as u64),
    });
    reasons
}

/// A goal the last measured restore already missed: the rto cannot be met
/// as things stand, and the reviewer should know before an outage does.
fn rto_warnings(spec: &Spec, order: &[Address], applied: &AppliedState) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for address in order {
        let Some(policy) = spec.policy_of(address) else {
            continue;
        };
        let (Some(rto), Some(measured)) = (policy.rto, applied.restores.get(&address.to_string()))
        else {
            continue;
        };
        if measured.seconds > rto.as_secs_f64() {
            warnings.push(Warning::RtoMissed {
                address: address.clone(),
                snapshot: super::short_id(&measured.snapshot),
                restored_at: measured.time,
                took_seconds: measured.seconds,
                rto_seconds: rto.as_secs_f64(),
                policy: policy.name.clone(),
                at: policy.span.to_string(),
            });
        }
    }
    warnings.extend(stack_rto_warning(spec, applied));
    warnings
}

/// Whether a resource under a policy asking for a drill `every` is due
/// for one: never drilled, or last drilled longer ago than that.
pub fn drill_is_due(
    every: std::time::Duration,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    last.is_none_or(|time| (now - time).to_std().unwrap_or_default() > every)
}

/// Under a policy with `drill_every`: a resource whose last drill is older
/// (or that was never drilled), or whose last drill took longer than the
/// rto.
fn drill_warnings(
    spec: &Spec,
    order: &[Address],
    applied: &AppliedState,
    now: chrono::DateTime<Utc>,
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for address in order {
        let Some(policy) = spec.policy_of(address) else {
            continue;
        };
        let Some(every) = policy.drill_every else {
            continue;
        };
        let last = applied.drills.get(&address.to_string());
        if drill_is_due(every, last.map(|drill| drill.time), now) {
            warnings.push(Warning::DrillDue {
                address: address.clone(),
                last: last.map(|drill| drill.time),
                every_seconds: every.as_secs_f64(),
                policy: policy.name.clone(),
                at: policy.span.to_string(),
            });
        }
        if let (Some(drill), Some(rto)) = (last, policy.rto)
            && drill.rto_seconds > rto.as_secs_f64()
        {
            warnings.push(Warning::DrillRtoMissed {
                address: address.clone(),
                drilled_at: drill.time,
                took_seconds: drill.rto_seconds,
                rto_seconds: rto.as_secs_f64(),
                policy: policy.name.clone(),
                at: policy.span.to_string(),
            });
        }
    }
    warnings
}

/// The last whole-stack restore against the tightest `rto` among the
/// policies of what it restored: the stack is back only when all of it is.
fn stack_rto_warning(spec: &Spec, applied: &AppliedState) -> Option<Warning> {
    let measured = applied.stack.as_ref()?;
    // Recorded addresses come from the repository: those this spec no
    // longer declares (or this version cannot read) have no policy here.
    let tightest = measured
        .resources
        .iter()
        .filter_map(|address| Address::parse(address))
        .filter_map(|address| spec.policy_of(&address))
        .filter_map(|policy| Some((policy.rto?, policy)))
        .min_by_key(|(rto, _)| *rto)?;
    let (rto, policy) = tightest;
    (measured.seconds > rto.as_secs_f64()).then(|| Warning::StackRtoMissed {
        resources: measured.resources.len(),
        restored_at: measured.time,
        took_seconds: measured.seconds,
        rto_seconds: rto.as_secs_f64(),
        policy: policy.name.clone(),
        at: policy.span.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::format_age;
    use crate::spec::{PolicySpec, ResourceKind, Retention, Span, VolumeSpec};
    use std::time::Duration;

    fn spec() -> Spec {
        Spec {
            policies: vec![PolicySpec {
                name: "hourly".into(),
                rpo: Some(Duration::from_secs(3600)),
                rto: None,
                drill_every: None,
                retention: Retention::default(),
                copies: vec![],
                span: Span::default(),
            }],
            volumes: ["a", "b", "c"]
                .iter()
                .map(|n| VolumeSpec {
                    policy: Some("hourly".into()),
                    ..VolumeSpec::new(n, &format!("app_{n}"))
                })
                .collect(),
            ..Spec::default()
        }
    }

    /// What a test of [`plan_on_main`] sets beyond the defaults (nothing
    /// read live, replaced or applied before).
    #[derive(Default)]
    pub(super) struct Varied<'a> {
        pub live: Option<&'a BTreeMap<Address, LiveResource>>,
        pub replace: &'a [Address],
        pub applied: Option<&'a AppliedState>,
        pub tags: &'a [String],
    }

    /// The backup plan of `spec` for `order` on repository `main`.
    pub(super) fn plan_on_main(
        spec: &Spec,
        order: &[Address],
        observed: &BTreeMap<Address, ObservedResource>,
        now: DateTime<Utc>,
        varied: Varied<'_>,
    ) -> Plan {
        let repositories = ["main".to_string()];
        let (dependencies, nothing_live) = (BTreeMap::new(), BTreeMap::new());
        backup_plan(BackupInputs {
            spec,
            order,
            dependencies: &dependencies,
            repositories: &repositories,
            observed,
            live: varied.live.unwrap_or(&nothing_live),
            replace: varied.replace,
            tags: varied.tags,
            applied: varied.applied,
            retention_only: false,
            basis: Basis::default(),
            now,
        })
    }

    /// A snapshot on `main` taken `minutes_ago`.
    pub(super) fn snapshot(minutes_ago: i64, now: DateTime<Utc>) -> SnapshotRef {
        SnapshotRef {
            id: "0123456789abcdef".into(),
            repository: "main".into(),
            time: now - chrono::Duration::minutes(minutes_ago),
            bytes: 10,
            files: 1,
            run: None,
            duration_seconds: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn never_backed_up_and_stale_are_due_fresh_is_up_to_date() {
        let spec = spec();
        let now = Utc::now();
        let order: Vec<Address> = ["a", "b", "c"]
            .iter()
            .map(|n| Address::new(ResourceKind::Volume, *n))
            .collect();
        let mut observed = BTreeMap::new();
        let fresh = ObservedResource {
            latest: [("main".to_string(), snapshot(10, now))].into(),
            ..ObservedResource::default()
        };
        let stale = ObservedResource {
            latest: [("main".to_string(), snapshot(192, now))].into(),
            ..ObservedResource::default()
        };
        observed.insert(order[1].clone(), fresh);
        observed.insert(order[2].clone(), stale);
        let plan = plan_on_main(&spec, &order, &observed, now, Varied::default());
        let actions: Vec<_> = plan.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::BackUp, Action::UpToDate, Action::BackUp]);
        assert_eq!(
            plan.changes[0].reasons,
            [Reason::NeverBackedUp { repository: None }]
        );
        assert_eq!(
            plan.changes[2].reasons,
            [Reason::RpoExceeded {
                age_seconds: 192 * 60,
                rpo_seconds: 3600
            }]
        );
        assert_eq!(plan.summary.to_back_up, 2);
        assert_eq!(plan.summary.unchanged, 1);
    }

    #[test]
    fn drill_every_warns_of_drills_never_done_too_old_or_over_the_rto() {
        let mut spec = spec();
        spec.policies[0].drill_every = Some(Duration::from_secs(30 * 86_400));
        spec.policies[0].rto = Some(Duration::from_secs(600));
        let now = Utc::now();
        let drill = |days: i64, rto_seconds: f64| crate::plan::DrillMeasurement {
            time: now - chrono::Duration::days(days),
            passed: true,
            rto_seconds,
        };
        let mut state = AppliedState {
            drills: [
                ("volume.b".to_string(), drill(31, 60.0)),
                ("volume.c".to_string(), drill(1, 900.0)),
            ]
            .into(),
            ..AppliedState::default()
        };
        let order: Vec<Address> = ["a", "b", "c"]
            .iter()
            .map(|n| Address::new(ResourceKind::Volume, *n))
            .collect();
        let summary = |state: &AppliedState| -> Vec<String> {
            drill_warnings(&spec, &order, state, now)
                .iter()
                .map(|w| match w {
                    Warning::DrillDue { address, last, .. } => {
                        format!("due {address} {}", last.is_some())
                    }
                    Warning::DrillRtoMissed {
                        address,
                        took_seconds,
                        ..
                    } => {
                        format!("slow {address} {took_seconds}")
                    }
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            summary(&state),
            [
                "due volume.a false",
                "due volume.b true",
                "slow volume.c 900"
            ]
        );
        state
            .drills
            .insert("volume.b".to_string(), drill(29, 599.0));
        assert_eq!(summary(&state), ["due volume.a false", "slow volume.c 900"]);
        spec.policies[0].drill_every = None;
        assert!(
            drill_warnings(&spec, &order, &state, now).is_empty(),
            "asked for by drill_every only"
        );
    }

    #[test]
    fn ages_read_like_the_plan_sketch() {
        let age = |s| format_age(std::time::Duration::from_secs(s));
        assert_eq!(age(0), "0s");
        assert_eq!(age(95), "1m35s");
        assert_eq!(age(3600), "1h");
        assert_eq!(age(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(age(24 * 3600), "24h");
        assert_eq!(age(3 * 86_400 + 7200), "3d2h");
    }

    #[test]
    fn retention_counts_the_new_snapshot_and_a_missed_rto_warns() {
        let mut spec = spec();
        spec.policies[0].retention.keep_last = Some(2);
        spec.policies[0].rto = Some(Duration::from_secs(60));
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        let mut snapshots: Vec<SnapshotRef> = (0..3)
            .map(|i| SnapshotRef {
                id: format!("{i}{}", "0".repeat(15)),
                ..snapshot(120 + 60 * i, now)
            })
            .collect();
        snapshots.reverse();
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), snapshots[2].clone())].into(),
                retained: [("main".to_string(), snapshots.clone())].into(),
                ..ObservedResource::default()
            },
        )]
        .into();
        let state = AppliedState {
            settings: None,
            stack: None,
            drills: BTreeMap::new(),
            restores: [(
                "volume.a".to_string(),
                crate::plan::RestoreMeasurement {
                    seconds: 95.0,
                    bytes: 1,
                    snapshot: "abcdef0123".into(),
                    time: now,
                },
            )]
            .into(),
        };
        let plan = plan_on_main(
            &spec,
            &order,
            &observed,
            now,
            Varied {
                applied: Some(&state),
                ..Default::default()
            },
        );
        // Due (2h > rpo 1h): the new snapshot and the newest old one stay.
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(plan.changes[1].action, Action::Forget);
        let forgotten: Vec<_> = plan.changes[1].forget.iter().map(|s| &s.id[..1]).collect();
        assert_eq!(forgotten, ["1", "2"]);
        assert_eq!(plan.summary.to_forget, 2);
        assert!(
            matches!(
                &plan.warnings[0],
                Warning::RtoMissed { took_seconds, rto_seconds, policy, .. }
                    if *took_seconds == 95.0 && *rto_seconds == 60.0 && policy == "hourly"
            ),
            "{:?}",
            plan.warnings
        );
    }

    #[test]
    fn a_tagged_plan_backs_up_what_is_within_rpo_and_retention_keeps_a_tag_s_last_snapshot() {
        let mut spec = spec();
        spec.policies[0].retention.keep_last = Some(1);
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        // Newest first: 10 minutes (within the rpo), 70 (release=v1), 130.
        let snapshots: Vec<SnapshotRef> = (0..3)
            .map(|i| SnapshotRef {
                id: format!("{i}{}", "0".repeat(15)),
                tags: if i == 1 {
                    vec!["release=v1".into()]
                } else {
                    Vec::new()
                },
                ..snapshot(10 + 60 * i, now)
            })
            .collect();
        let observed: BTreeMap<_, _> = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), snapshots[0].clone())].into(),
                retained: [("main".to_string(), snapshots.clone())].into(),
                ..ObservedResource::default()
            },
        )]
        .into();
        let untagged = plan_on_main(&spec, &order, &observed, now, Varied::default());
        assert_eq!(untagged.changes[0].action, Action::UpToDate);
        // keep_last 1 keeps the newest; release=v1's only snapshot stays too.
        let forgotten: Vec<_> = untagged.changes[1]
            .forget
            .iter()
            .map(|s| &s.id[..1])
            .collect();
        assert_eq!(forgotten, ["2"]);

        let tags = ["release=v2".to_string()];
        let tagged = plan_on_main(
            &spec,
            &order,
            &observed,
            now,
            Varied {
                tags: &tags,
                ..Default::default()
            },
        );
        assert_eq!(tagged.tags, tags);
        assert_eq!(tagged.changes[0].action, Action::BackUp);
        assert_eq!(
            tagged.changes[0].reasons[0],
            Reason::Tagged {
                tags: tags.to_vec()
            }
        );
        // The new (tagged) snapshot is the one keep_last keeps: the old
        // newest goes, release=v1's last snapshot stays.
        let forgotten: Vec<_> = tagged.changes[1]
            .forget
            .iter()
            .map(|s| &s.id[..1])
            .collect();
        assert_eq!(forgotten, ["0", "2"]);
    }

    #[test]
    fn with_a_schedule_a_resource_is_due_when_its_snapshot_would_pass_its_rpo_before_the_next_run()
    {
        let mut spec = spec();
        spec.policies[0].rpo = Some(Duration::from_secs(24 * 3600));
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        let plan_at = |spec: &Spec, minutes_ago: i64| {
            let observed: BTreeMap<_, _> = [(
                order[0].clone(),
                ObservedResource {
                    latest: [("main".to_string(), snapshot(minutes_ago, now))].into(),
                    ..ObservedResource::default()
                },
            )]
            .into();
            plan_on_main(spec, &order, &observed, now, Varied::default()).changes[0].clone()
        };
        // Unscheduled: 23h30m is within 24h, so an hourly cron would take
        // the next snapshot at 24h30m, half an hour late.
        assert_eq!(plan_at(&spec, 23 * 60 + 30).action, Action::UpToDate);
        spec.schedule = Some(crate::spec::ScheduleSpec {
            every: Duration::from_secs(3600),
            span: Span::default(),
        });
        let change = plan_at(&spec, 23 * 60 + 30);
        assert_eq!(change.action, Action::BackUp);
        assert_eq!(
            change.reasons,
            [Reason::RpoBeforeNextRun {
                age_seconds: (23 * 60 + 30) * 60,
                every_seconds: 3600,
                rpo_seconds: 24 * 3600
            }]
        );
        // Exactly at the edge (age + every = rpo) the next run is in time.
        assert_eq!(plan_at(&spec, 23 * 60).action, Action::UpToDate);
        assert_eq!(plan_at(&spec, 23 * 60 + 1).action, Action::BackUp);
        // Past the rpo it is the rpo that is exceeded.
        assert!(matches!(
            plan_at(&spec, 25 * 60).reasons[..],
            [Reason::RpoExceeded { .. }]
        ));
    }

    #[test]
    fn a_slow_whole_stack_restore_warns_against_the_tightest_rto() {
        let mut spec = spec();
        spec.policies[0].rto = Some(Duration::from_secs(600));
        let mut tight = spec.policies[0].clone();
        tight.name = "tight".into();
        tight.rto = Some(Duration::from_secs(60));
        spec.policies.push(tight);
        spec.volumes[1].policy = Some("tight".into());
        let state = |resources: &[&str], seconds: f64| AppliedState {
            stack: Some(crate::plan::StackRestoreMeasurement {
                seconds,
                resources: resources.iter().map(|r| r.to_string()).collect(),
                time: Utc::now(),
            }),
            ..AppliedState::default()
        };
        let warned = stack_rto_warning(&spec, &state(&["volume.a", "volume.b"], 72.0));
        assert!(
            matches!(
                &warned,
                Some(Warning::StackRtoMissed { resources: 2, took_seconds, rto_seconds, policy, .. })
                    if *took_seconds == 72.0 && *rto_seconds == 60.0 && policy == "tight"
            ),
            "{warned:?}"
        );
        // Within the tightest rto of what it restored (volume.b not among them).
        assert_eq!(
            stack_rto_warning(&spec, &state(&["volume.a", "volume.c"], 72.0)),
            None
        );
        // Addresses the spec no longer declares have no policy.
        assert_eq!(
            stack_rto_warning(&spec, &state(&["volume.gone", "nonsense"], 1e6)),
            None
        );
    }

    #[test]
    fn replace_forces_a_backup() {
        let spec = spec();
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "a")];
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), snapshot(1, now))].into(),
                ..ObservedResource::default()
            },
        )]
        .into();
        let plan = plan_on_main(
            &spec,
            &order,
            &observed,
            now,
            Varied {
                replace: &order,
                ..Default::default()
            },
        );
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(plan.changes[0].reasons, [Reason::ReplaceRequested]);
    }
}

#[cfg(test)]
mod problems_and_sources {
    use super::tests::{Varied, plan_on_main};
    use super::*;
    use crate::plan::format_age;
    use crate::spec::{ResourceKind, VolumeSpec};

    fn volume(name: &str, docker: &str) -> VolumeSpec {
        VolumeSpec::new(name, docker)
    }

    #[test]
    fn a_missing_volume_is_a_problem_beside_the_others_and_a_renamed_one_is_due() {
        let spec = Spec {
            volumes: vec![volume("gone", "app_gone"), volume("renamed", "app_new")],
            ..Spec::default()
        };
        let now = Utc::now();
        let order: Vec<Address> = ["gone", "renamed"]
            .iter()
            .map(|n| Address::new(ResourceKind::Volume, *n))
            .collect();
        let latest = super::tests::snapshot(5, now);
        let observed = [(
            order[1].clone(),
            ObservedResource {
                latest: [("main".to_string(), latest)].into(),
                latest_source: [("main".to_string(), "app_old".to_string())].into(),
                ..ObservedResource::default()
            },
        )]
        .into();
        let renamed = LiveResource {
            problem: None,
            running_users: vec![],
            detail: Detail::None,
            source: Some("app_new".into()),
            version: None,
        };
        let live = [
            (
                order[0].clone(),
                LiveResource::problem("Docker volume \"app_gone\" does not exist".into()),
            ),
            (order[1].clone(), renamed),
        ]
        .into();
        let plan = plan_on_main(
            &spec,
            &order,
            &observed,
            now,
            Varied {
                live: Some(&live),
                ..Default::default()
            },
        );
        assert_eq!(plan.changes[0].action, Action::Problem);
        assert_eq!(plan.changes[1].action, Action::BackUp);
        assert_eq!(
            plan.changes[1].reasons,
            [Reason::SourceChanged {
                attribute: "name".into()
            }]
        );
        assert_eq!(plan.summary.problems, 1);
        assert_eq!(plan.summary.to_back_up, 1);
        assert!(plan.has_changes());
        assert_eq!(format_age(std::time::Duration::from_millis(400)), "400ms");
    }

    /// The `~` reason names the attribute users wrote: an image is read
    /// from its `ref`, a bind from its `path`, a service from its `container`.
    #[test]
    fn a_new_source_is_named_by_the_attribute_that_gives_it() {
        assert_eq!(source_attribute(ResourceKind::Image), "ref");
        assert_eq!(source_attribute(ResourceKind::Bind), "path");
        assert_eq!(source_attribute(ResourceKind::Service), "container");
        assert_eq!(source_attribute(ResourceKind::Volume), "name");
    }
}

#[cfg(test)]
mod consistency_changes {
    use super::tests::{Varied, plan_on_main};
    use super::*;
    use crate::spec::{ResourceKind, VolumeSpec};

    /// The plan for one volume asking `asked`, whose only latest snapshot
    /// (fresh) recorded `taken` (`None`: an older version's snapshot).
    fn plan_for(asked: Consistency, taken: Option<Consistency>) -> Plan {
        let spec = Spec {
            volumes: vec![VolumeSpec {
                consistency: asked,
                ..VolumeSpec::new("db", "app_db")
            }],
            ..Spec::default()
        };
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "db")];
        let latest = super::tests::snapshot(5, now);
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), latest)].into(),
                latest_consistency: taken.map(|t| ("main".to_string(), t)).into_iter().collect(),
                ..ObservedResource::default()
            },
        )]
        .into();
        plan_on_main(&spec, &order, &observed, now, Varied::default())
    }

    #[test]
    fn a_copy_taken_under_weaker_consistency_than_asked_is_due() {
        let plan = plan_for(Consistency::Stop, Some(Consistency::None));
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(
            plan.changes[0].reasons,
            [Reason::WeakerConsistency {
                taken: Consistency::None,
                asked: Consistency::Stop
            }]
        );
        let paused = plan_for(Consistency::Stop, Some(Consistency::Pause));
        assert_eq!(paused.changes[0].action, Action::BackUp);
        assert!(Consistency::None < Consistency::Pause && Consistency::Pause < Consistency::Stop);
    }

    #[test]
    fn equal_stronger_or_unrecorded_consistency_is_not_due_for_that() {
        for (asked, taken) in [
            (Consistency::Stop, Some(Consistency::Stop)),
            (Consistency::Pause, Some(Consistency::Stop)),
            (Consistency::None, Some(Consistency::Pause)),
            // Snapshots of older versions recorded nothing: taken as the
            // spec asked then, so not due for this reason alone.
            (Consistency::Stop, None),
        ] {
            let plan = plan_for(asked, taken);
            assert_eq!(
                plan.changes[0].action,
                Action::UpToDate,
                "{asked:?} asked, {taken:?} taken: {:?}",
                plan.changes[0].reasons
            );
        }
    }

    #[test]
    fn recorded_levels_are_read_strictly() {
        assert_eq!(Consistency::from_keyword("pause"), Some(Consistency::Pause));
        assert_eq!(Consistency::from_keyword("freeze"), None);
        assert_eq!(Consistency::Stop.keyword(), "stop");
    }
}

#[cfg(test)]
mod exclude_changes {
    use super::tests::{Varied, plan_on_main};
    use super::*;
    use crate::spec::{ResourceKind, VolumeSpec};

    fn rules(exclude: &[&str], markers: &[&str]) -> ExcludeRules {
        ExcludeRules {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            exclude_if_present: markers.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The plan for one volume asking `asked`, whose only latest snapshot
    /// (fresh) left out `taken` (`None`: nothing recorded).
    fn plan_for(asked: ExcludeRules, taken: Option<ExcludeRules>) -> Plan {
        let spec = Spec {
            volumes: vec![VolumeSpec {
                exclude: asked,
                ..VolumeSpec::new("data", "app_data")
            }],
            ..Spec::default()
        };
        let now = Utc::now();
        let order = [Address::new(ResourceKind::Volume, "data")];
        let observed = [(
            order[0].clone(),
            ObservedResource {
                latest: [("main".to_string(), super::tests::snapshot(5, now))].into(),
                latest_excludes: taken.map(|t| ("main".to_string(), t)).into_iter().collect(),
                ..ObservedResource::default()
            },
        )]
        .into();
        plan_on_main(&spec, &order, &observed, now, Varied::default())
    }

    #[test]
    fn a_changed_exclude_makes_the_resource_due_and_the_change_shows_its_excludes() {
        let asked = rules(&["cache/**", "*.tmp"], &["CACHEDIR.TAG"]);
        let taken = rules(&["cache/**"], &[]);
        let plan = plan_for(asked.clone(), Some(taken.clone()));
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(
            plan.changes[0].reasons,
            [
                Reason::ExcludeChanged {
                    taken,
                    asked: asked.clone()
                },
                Reason::Excludes { rules: asked }
            ]
        );
        // Excludes added to a volume whose snapshots left out nothing.
        let added = plan_for(rules(&["*.tmp"], &[]), None);
        assert_eq!(added.changes[0].action, Action::BackUp);
        // And removed: the snapshot lacks what a backup would now hold.
        let removed = plan_for(ExcludeRules::default(), Some(rules(&["*.tmp"], &[])));
        assert_eq!(removed.changes[0].action, Action::BackUp);
    }

    #[test]
    fn the_same_excludes_in_another_order_are_not_a_change() {
        let plan = plan_for(
            rules(&["*.tmp", "cache/**"], &[]),
            Some(rules(&["cache/**", "*.tmp", "*.tmp"], &[])),
        );
        assert_eq!(plan.changes[0].action, Action::UpToDate);
        assert!(matches!(
            plan.changes[0].reasons[0],
            Reason::WithinRpo { .. }
        ));
        assert!(matches!(
            plan.changes[0].reasons[1],
            Reason::Excludes { .. }
        ));
        let none = plan_for(ExcludeRules::default(), None);
        assert_eq!(none.changes[0].action, Action::UpToDate);
        assert_eq!(none.changes[0].reasons.len(), 1, "no excludes line");
    }
}

#[cfg(test)]
mod copies {
    use super::*;
    use crate::spec::{PolicySpec, ResourceKind, Retention, Span, VolumeSpec};

    /// One volume whose policy keeps the last `keep_last` snapshots in
    /// `main` and `offsite` (rpo 1h).
    fn spec(keep_last: Option<u32>) -> Spec {
        Spec {
            policies: vec![PolicySpec {
                name: "kept".into(),
                rpo: Some(std::time::Duration::from_secs(3600)),
                rto: None,
                retention: Retention {
                    keep_last,
                    ..Retention::default()
                },
                copies: vec!["main".into(), "offsite".into()],
                drill_every: None,
                span: Span::default(),
            }],
            volumes: vec![VolumeSpec {
                policy: Some("kept".into()),
                ..VolumeSpec::new("data", "app_data")
            }],
            ..Spec::default()
        }
    }

    /// A snapshot in `repository` of the moment `minutes_ago` (ids differ
    /// per repository, as where keys differ).
    fn snapshot(repository: &str, minutes_ago: i64, now: DateTime<Utc>) -> SnapshotRef {
        SnapshotRef {
            id: format!("{repository}-{minutes_ago:04}-0000000"),
            repository: repository.into(),
            run: Some(format!("run-{minutes_ago}")),
            ..super::tests::snapshot(minutes_ago, now)
        }
    }

    /// What `main` and `offsite` hold: the moments `minutes_ago` each.
    fn holding(held: &[(&str, &[i64])], now: DateTime<Utc>) -> ObservedResource {
        let mut observed = ObservedResource::default();
        for (repository, moments) in held {
            let snapshots: Vec<SnapshotRef> = moments
                .iter()
                .map(|m| snapshot(repository, *m, now))
                .collect();
            if let Some(latest) = snapshots.iter().max_by_key(|s| s.time) {
                observed
                    .latest
                    .insert(repository.to_string(), latest.clone());
            }
            observed.retained.insert(repository.to_string(), snapshots);
        }
        observed
    }

    fn plan(spec: &Spec, observed: ObservedResource, now: DateTime<Utc>) -> Plan {
        let order = [Address::new(ResourceKind::Volume, "data")];
        let observed = [(order[0].clone(), observed)].into();
        let repositories = ["main".to_string(), "offsite".to_string()];
        let (dependencies, live) = (BTreeMap::new(), BTreeMap::new());
        backup_plan(BackupInputs {
            spec,
            order: &order,
            dependencies: &dependencies,
            repositories: &repositories,
            observed: &observed,
            live: &live,
            replace: &[],
            applied: None,
            retention_only: false,
            basis: Basis::default(),
            tags: &[],
            now,
        })
    }

    fn copied(plan: &Plan) -> Vec<(String, String, String)> {
        plan.changes
            .iter()
            .filter(|c| c.action == Action::Copy)
            .flat_map(|c| &c.copies)
            .map(|c| {
                let id = c
                    .snapshot
                    .as_ref()
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                (c.from.clone(), c.to.clone(), id)
            })
            .collect()
    }

    #[test]
    fn a_repository_added_later_gets_what_retention_keeps_by_copies_not_a_new_read() {
        let now = Utc::now();
        let plan = plan(
            &spec(Some(2)),
            holding(&[("main", &[50, 30, 10])], now),
            now,
        );
        let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::UpToDate, Action::Copy, Action::Forget]);
        // The two retention keeps, oldest first; the third is forgotten in main.
        assert_eq!(
            copied(&plan),
            [
                ("main".into(), "offsite".into(), "main-0030-0000000".into()),
                ("main".into(), "offsite".into(), "main-0010-0000000".into()),
            ]
        );
        assert_eq!(
            plan.changes[1].reasons,
            [Reason::Lacks {
                repository: "offsite".into(),
                snapshots: 2
            }]
        );
        assert_eq!(plan.changes[2].repositories, ["main"]);
        assert_eq!(plan.changes[2].forget[0].id, "main-0050-0000000");
        assert_eq!((plan.summary.to_copy, plan.summary.to_back_up), (2, 0));
    }

    #[test]
    fn a_snapshot_copied_before_is_recognised_by_its_moment_so_a_second_plan_copies_nothing() {
        let now = Utc::now();
        let plan = plan(
            &spec(None),
            holding(&[("main", &[30, 10]), ("offsite", &[30, 10])], now),
            now,
        );
        assert_eq!(copied(&plan), []);
        assert_eq!(plan.summary.to_copy, 0);
        assert!(!plan.has_changes(), "{:?}", plan.changes);
    }

    #[test]
    fn the_newest_snapshot_anywhere_holds_the_rpo_and_reaches_the_others_by_copy() {
        let now = Utc::now();
        // offsite's latest is past the rpo, main's is not: a copy, no read.
        let plan = plan(
            &spec(None),
            holding(&[("main", &[200, 10]), ("offsite", &[200])], now),
            now,
        );
        assert_eq!(plan.changes[0].action, Action::UpToDate);
        assert_eq!(
            copied(&plan),
            [("main".into(), "offsite".into(), "main-0010-0000000".into())]
        );
        // Both past it: one backup, read once and copied.
        let plan = self::plan(
            &spec(None),
            holding(&[("main", &[200]), ("offsite", &[300])], now),
            now,
        );
        assert_eq!(plan.changes[0].action, Action::BackUp);
        assert_eq!(
            plan.changes[0].copies,
            [PlannedCopy {
                from: "main".into(),
                to: "offsite".into(),
                snapshot: None
            }]
        );
        assert_eq!(copied(&plan), []);
    }

    #[test]
    fn retention_applies_in_each_repository_by_its_own_snapshots() {
        let now = Utc::now();
        // main holds more history than offsite: keep_last 2 forgets two
        // there, and offsite, which holds one, gets the other one it keeps.
        let plan = plan(
            &spec(Some(2)),
            holding(&[("main", &[40, 30, 20, 10]), ("offsite", &[10])], now),
            now,
        );
        assert_eq!(
            copied(&plan),
            [("main".into(), "offsite".into(), "main-0020-0000000".into())]
        );
        let forgets: Vec<(&[String], Vec<&str>)> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Forget)
            .map(|c| {
                let ids = c.forget.iter().map(|s| s.id.as_str()).collect();
                (c.repositories.as_slice(), ids)
            })
            .collect();
        assert_eq!(
            forgets,
            [(
                &["main".to_string()][..],
                vec!["main-0030-0000000", "main-0040-0000000"]
            )]
        );
    }
}
