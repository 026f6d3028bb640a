//! Images: backed up as `docker save` archives taken apart into the
//! repository (each layer once, by DiffID; see `repo::image`), restored by
//! putting the archive back together for `docker load`, which gives back
//! the same image id. An image whose id the latest snapshot recorded is up
//! to date; a restore refuses to move a tag that points at another image
//! unless `--replace`, and an image for another platform than the engine's.
//!
//! Images due on one engine into one repository are exported together
//! before the run's copies ([`back_up_together`]: one `docker save` of
//! all, each shared layer read and stored once); each change's own
//! backup then finds its snapshot, or exports its image alone when the
//! export together did not give it.

use super::{Copied, Job, KindHandler, Observer, RestoreTarget};
use crate::apply::{ApplyError, ExpectedBytes, NamedRepository, Run, retention, stream};
use crate::engine::{Engine, ImageInfo};
use crate::plan::{
    Action, Detail, ImageDetail, LiveResource, Plan, ResourceChange, RestoreObservation,
    TargetState,
};
use crate::repo::{ContentKind, Repository, Snapshot, StoredImage, WantedImage};
use crate::spec::{Address, ImageSpec, Resource, ResourceKind, Spec};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct ImageHandler;

fn image_of<'s>(spec: &'s Spec, address: &Address) -> Option<&'s ImageSpec> {
    match spec.resource(address) {
        Some(Resource::Image(image)) => Some(image),
        _ => None,
    }
}

fn resolve<'r>(
    run: &'r Run<'_>,
    change: &ResourceChange,
) -> Result<(&'r ImageSpec, &'r Arc<dyn Engine>), ApplyError> {
    super::resolve(run, change, |r| match r {
        Resource::Image(x) => Some(x),
        _ => None,
    })
}

fn detail(spec: &Spec, image: &ImageSpec, id: Option<String>) -> Detail {
    Detail::Image(ImageDetail {
        reference: spec.redact(&image.reference),
        id,
        conflicting_tags: Vec::new(),
        target: None,
    })
}

fn missing(spec: &Spec, image: &ImageSpec) -> String {
    format!(
        "image {} does not exist on the engine: build or load it, or fix `ref`",
        spec.redact(&image.reference)
    )
}

/// The image a restore change's snapshot holds, as the repository records it.
pub(crate) fn stored(
    repository: &Repository,
    snapshot: &Snapshot,
) -> Result<StoredImage, ApplyError> {
    Ok(repository.stored_image(snapshot)?)
}

/// The image a snapshot holds, with the tags a restore gives it: its own,
/// or in a restore into other names only the reference `into` names (none
/// when it names none: loaded by id, the live tags left alone).
fn stored_into(
    repository: &Repository,
    snapshot: &Snapshot,
    into: Option<&crate::plan::RestoreInto>,
) -> Result<StoredImage, ApplyError> {
    let mut stored = stored(repository, snapshot)?;
    if let Some(into) = into {
        stored.repo_tags = match into.name.as_str() {
            "" => Vec::new(),
            reference => vec![reference.to_string()],
        };
    }
    Ok(stored)
}

/// Whether an image of `stored`'s platform runs on an engine of
/// `os`/`architecture`; `Err` says why not.
fn platform_matches(stored: &StoredImage, os: &str, architecture: &str) -> Result<(), String> {
    let differs = |a: &str, b: &str| !a.is_empty() && !b.is_empty() && a != b;
    if differs(&stored.os, os) || differs(&stored.architecture, architecture) {
        return Err(format!(
            "the snapshot holds an image for {}/{}, and the engine runs {os}/{architecture}: \
             restore it on an engine for {}/{}",
            stored.os, stored.architecture, stored.os, stored.architecture
        ));
    }
    Ok(())
}

/// Whether the engine has `stored`'s image with every one of its tags.
async fn present_with_tags(engine: &dyn Engine, stored: &StoredImage) -> Result<bool, ApplyError> {
    if engine.image(&stored.id).await?.is_none() {
        return Ok(false);
    }
    for tag in &stored.repo_tags {
        if engine
            .image(tag)
            .await?
            .is_none_or(|info| info.id != stored.id)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The tags of `stored` that point at another image on the engine now.
async fn conflicting_tags(
    engine: &dyn Engine,
    stored: &StoredImage,
) -> Result<Vec<String>, ApplyError> {
    let mut conflicting = Vec::new();
    for tag in &stored.repo_tags {
        if let Some(ImageInfo { id, .. }) = engine.image(tag).await?
            && id != stored.id
        {
            conflicting.push(tag.clone());
        }
    }
    Ok(conflicting)
}

async fn back_up_into(
    run: &Run<'_>,
    change: &ResourceChange,
    engine: &dyn Engine,
    image: &ImageSpec,
    repository: &Repository,
) -> Result<Copied, ApplyError> {
    let _lock = repository.lock_shared()?;
    // The id is read again here: what is exported is checked against it.
    let info = engine
        .image(&image.reference)
        .await?
        .ok_or_else(|| ApplyError::ResourceMissing(missing(run.spec, image)))?;
    let snapshot = match stored_together(run, change, &info.id, repository)? {
        Some(snapshot) => snapshot,
        None => {
            let mut source = run.source(change, &image.reference, Vec::new());
            source.version = Some(info.id.clone());
            let progress = run.progress(change);
            let archive = engine.export_image(&info.id).await?;
            let reader = stream::read_ahead(archive, run.cancel.clone());
            tokio::task::block_in_place(|| {
                repository.backup_image(reader, &info.id, &info.repo_tags, source, &progress)
            })?
        }
    };
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: snapshot.summary.files,
        bytes: snapshot.summary.bytes,
        read_bytes: snapshot.summary.bytes_read,
        added_bytes: snapshot.summary.added_bytes,
        notes: Vec::new(),
    })
}

/// The snapshot [`back_up_together`] stored in this run of the change's
/// image as it is now (`id`), if it did.
fn stored_together(
    run: &Run<'_>,
    change: &ResourceChange,
    id: &str,
    repository: &Repository,
) -> Result<Option<Snapshot>, ApplyError> {
    let resource = change.address.to_string();
    Ok(repository.snapshots()?.into_iter().find(|snapshot| {
        snapshot.content == ContentKind::Image
            && snapshot.resource == resource
            && snapshot.source.run.as_deref() == Some(run.run_id.as_str())
            && snapshot.source.version.as_deref() == Some(id)
    }))
}

/// Backs up together, before the run's copies, the images the plan backs
/// up on one engine into one repository (the first each names): one export
/// of all of them, each layer read, hashed and stored once however many
/// share it, each image its own snapshot (see [`Repository::backup_images`]).
/// Each change's copy then finds its snapshot there ([`stored_together`]);
/// what did not work out here (the export together, or one image of it) is
/// said in the images' events and left to each change's own export, so
/// one image's failure loses no other.
pub(crate) async fn back_up_together(
    plan: &Plan,
    run: &Run<'_>,
    repositories: &mut [NamedRepository],
) {
    let mut groups: BTreeMap<(&str, &str), Vec<&ResourceChange>> = BTreeMap::new();
    for change in &plan.changes {
        if change.action == Action::BackUp
            && change.kind() == ResourceKind::Image
            && let Some(first) = change.repositories.first()
        {
            let key = (change.engine_name(), first.as_str());
            groups.entry(key).or_default().push(change);
        }
    }
    for ((_, name), changes) in groups {
        if changes.len() < 2 || run.cancel.is_cancelled() {
            continue;
        }
        // A repository that does not open fails each change's own copy,
        // which says why.
        let Ok(named) = retention::find(repositories, name) else {
            continue;
        };
        let Ok(repository) = named.open_or_init(run.settings) else {
            continue;
        };
        if let Err(error) = export_together(run, &changes, repository).await {
            let error = run.spec.redact(&error.to_string());
            for change in &changes {
                run.step(
                    change,
                    format!("the export together with the other images failed ({error}): exporting it alone"),
                );
            }
        }
    }
}

/// One export of the images of `changes` into `repository`; an `Err` when
/// the export itself failed (each image is then exported alone).
async fn export_together(
    run: &Run<'_>,
    changes: &[&ResourceChange],
    repository: &Repository,
) -> Result<(), ApplyError> {
    let _lock = repository.lock_shared()?;
    let mut wanted: Vec<WantedImage> = Vec::new();
    let mut batched: Vec<&ResourceChange> = Vec::new();
    let mut engine = None;
    for change in changes {
        // An image that cannot be resolved or is missing fails in its own
        // copy, with the error that names it.
        let Ok((image, image_engine)) = resolve(run, change) else {
            continue;
        };
        let Some(info) = image_engine.image(&image.reference).await? else {
            continue;
        };
        let mut source = run.source(change, &image.reference, Vec::new());
        source.version = Some(info.id.clone());
        let needs = batched
            .iter()
            .enumerate()
            .filter(|(_, earlier)| change.depends_on.contains(&earlier.address))
            .map(|(at, _)| at)
            .collect();
        wanted.push(WantedImage {
            id: info.id,
            repo_tags: info.repo_tags,
            source,
            needs,
        });
        batched.push(change);
        engine = Some(image_engine);
    }
    let Some(engine) = engine.filter(|_| batched.len() > 1) else {
        return Ok(());
    };
    let names: Vec<String> = batched.iter().map(|c| c.address.to_string()).collect();
    for change in &batched {
        run.step(
            change,
            format!(
                "exporting {} images in one request: {}",
                names.len(),
                names.join(", ")
            ),
        );
    }
    let ids: Vec<String> = wanted.iter().map(|w| w.id.clone()).collect();
    let archive = engine.export_images(&ids).await?;
    let reader = stream::read_ahead(archive, run.cancel.clone());
    let first = batched[0];
    let progress = run.progress(first);
    let stored =
        tokio::task::block_in_place(|| repository.backup_images(reader, wanted, &progress))?;
    for (change, result) in batched.iter().zip(stored) {
        if let Err(error) = result {
            let error = run.spec.redact(&error.to_string());
            run.step(
                change,
                format!("not whole in the export together ({error}): exporting it alone"),
            );
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl KindHandler for ImageHandler {
    async fn observe(&self, observer: &Observer<'_>, address: &Address) -> (LiveResource, String) {
        let (image, engine) = match observer.declared(address, image_of(observer.spec, address)) {
            Ok(declared) => declared,
            Err(unobserved) => return *unobserved,
        };
        match engine.image(&image.reference).await {
            Ok(Some(info)) => {
                let live = LiveResource {
                    problem: None,
                    running_users: Vec::new(),
                    detail: detail(observer.spec, image, Some(info.id.clone())),
                    source: Some(image.reference.clone()),
                    version: Some(info.id.clone()),
                };
                (live, info.id)
            }
            Ok(None) => (
                LiveResource::problem(missing(observer.spec, image)),
                "(missing)".into(),
            ),
            Err(error) => (
                LiveResource::problem(observer.spec.redact(&error.to_string())),
                "(unreachable)".into(),
            ),
        }
    }

    async fn observe_target(
        &self,
        observer: &Observer<'_>,
        address: &Address,
        chosen: Option<(&Repository, &Snapshot)>,
    ) -> RestoreTarget {
        let Some(image) = image_of(observer.spec, address) else {
            return RestoreTarget::unknown("not an image of the spec".into());
        };
        let engine = match observer.engine(address) {
            Ok(engine) => engine,
            Err(error) => return RestoreTarget::unknown(error.to_string()),
        };
        let into = observer.into.into_of(observer.spec, address);
        let reference = match into.as_ref().filter(|i| !i.name.is_empty()) {
            Some(into) => into.name.clone(),
            None => observer.spec.redact(&image.reference),
        };
        let Some((repository, snapshot)) = chosen else {
            // No snapshot: the plan says so; the target does not matter.
            return RestoreTarget {
                observation: RestoreObservation {
                    snapshot: None,
                    target: Ok(TargetState::Missing),
                    what: format!("image {reference}"),
                    detail: detail(observer.spec, image, None),
                },
                fingerprint: "(no snapshot)".into(),
            };
        };
        let looked = async {
            let stored = stored_into(repository, snapshot, into.as_ref())?;
            let platform = engine.platform().await?;
            let present = present_with_tags(engine.as_ref(), &stored).await?;
            let conflicting = conflicting_tags(engine.as_ref(), &stored).await?;
            Ok::<_, ApplyError>((stored, platform, present, conflicting))
        };
        let (stored, platform, present, conflicting) = match looked.await {
            Ok(found) => found,
            Err(error) => {
                return RestoreTarget::unknown(observer.spec.redact(&error.to_string()));
            }
        };
        let what = format!("image {reference} ({})", short_image_id(&stored.id));
        let target = match platform_matches(&stored, &platform.os, &platform.architecture) {
            Err(message) => Err(message),
            Ok(()) if !conflicting.is_empty() => Ok(TargetState::NonEmpty),
            Ok(()) if present => Ok(TargetState::Empty),
            Ok(()) => Ok(TargetState::Missing),
        };
        let fingerprint = format!("{present} {}", conflicting.join(","));
        RestoreTarget {
            observation: RestoreObservation {
                snapshot: None,
                target,
                what,
                detail: Detail::Image(ImageDetail {
                    reference,
                    id: Some(stored.id.clone()),
                    conflicting_tags: conflicting,
                    target: None,
                }),
            },
            fingerprint,
        }
    }

    /// The engine's size of the image: what its archive holds, roughly
    /// (the archive adds headers; the engine counts layers as stored).
    async fn expected_bytes(
        &self,
        run: &Run<'_>,
        change: &ResourceChange,
    ) -> Option<ExpectedBytes> {
        let (image, engine) = resolve(run, change).ok()?;
        match engine.image(&image.reference).await {
            Ok(Some(info)) if info.size > 0 => Some(ExpectedBytes::estimate(info.size)),
            _ => super::previous_size(change),
        }
    }

    async fn back_up(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        let (run, change, repository) = (job.run, job.change, job.repository);
        let (image, engine) = resolve(run, change)?;
        back_up_into(run, change, engine.as_ref(), image, repository).await
    }

    async fn restore(&self, job: Job<'_>) -> Result<Copied, ApplyError> {
        restore_image(job).await
    }
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows ids.
fn short_image_id(id: &str) -> String {
    let hex = id.trim_start_matches("sha256:");
    format!("sha256:{}", hex.chars().take(12).collect::<String>())
}

async fn restore_image(job: Job<'_>) -> Result<Copied, ApplyError> {
    let (run, change, repository) = (job.run, job.change, job.repository);
    let (_, engine) = resolve(run, change)?;
    let engine = engine.as_ref();
    let _lock = repository.lock_shared()?;
    let snapshot = super::chosen_snapshot(change, repository)?;
    let stored = stored_into(repository, &snapshot, change.into.as_ref())?;
    // Checked again: the engine may have changed since the plan.
    let platform = engine.platform().await?;
    platform_matches(&stored, &platform.os, &platform.architecture).map_err(|message| {
        ApplyError::Unsupported {
            what: change.address.to_string(),
            message,
        }
    })?;
    let allowed = match &change.detail {
        Detail::Image(detail) => detail.conflicting_tags.clone(),
        _ => Vec::new(),
    };
    let conflicting = conflicting_tags(engine, &stored).await?;
    if let Some(tag) = conflicting.iter().find(|t| !allowed.contains(t)) {
        return Err(ApplyError::Unsupported {
            what: change.address.to_string(),
            message: format!(
                "tag {tag} now points at another image; make the restore plan again (with \
                 --replace to move it)"
            ),
        });
    }
    if present_with_tags(engine, &stored).await? {
        run.step(
            change,
            format!(
                "{} is already on the engine with its tags: nothing to load",
                stored.id
            ),
        );
        return Ok(Copied {
            snapshot: snapshot.id.to_string(),
            ..Copied::default()
        });
    }
    let progress = run.progress(change);
    let written = stream::feed_engine(
        run.cancel.clone(),
        "handing the image archive to Docker",
        |writer| repository.restore_image(&snapshot, &stored.repo_tags, writer, &progress),
        |archive| engine.load_image(archive),
    )?;
    if engine.image(&stored.id).await?.is_none() {
        return Err(ApplyError::Integrity(format!(
            "the engine loaded the archive of snapshot {}, but has no image {} after it",
            snapshot.id.short(),
            stored.id
        )));
    }
    Ok(Copied {
        snapshot: snapshot.id.to_string(),
        files: stored.layers.len() as u64,
        bytes: written,
        ..Copied::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_for_another_platform_is_refused_with_what_it_needs() {
        let stored = StoredImage {
            os: "linux".into(),
            architecture: "arm64".into(),
            ..StoredImage::default()
        };
        let refused = platform_matches(&stored, "linux", "amd64").unwrap_err();
        assert!(refused.contains("linux/arm64"), "{refused}");
        assert!(refused.contains("linux/amd64"), "{refused}");
        assert!(platform_matches(&stored, "linux", "arm64").is_ok());
    }
}
