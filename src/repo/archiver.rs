//! Backups: a tar stream or a directory in, a snapshot out.
//!
//! The pipeline keeps both cores busy with bounded memory:
//!
//! ```text
//! caller's thread: read → chunk (FastCDC) → id (keyed hash) → dedup check
//!        │ new blobs only (bounded channel)
//! 2 workers:       zstd (kept only when it shrinks) → AES-256-GCM, bound to the id
//!        │ (bounded channel)
//! writer thread:   pack (16 MiB; a local directory's written to its file
//!                  as it fills) → every few saved packs, save index
//!        │ full packs (handed to an idle uploader only)
//! N uploaders:     pack header, name → save pack   (N: the backend's requests in flight)
//! ```
//!
//! The snapshot file is written only after every pack and index it needs,
//! and an index names only packs whose save returned.

use super::backend::StreamedPack;
use super::budget::ByteBudget;
use super::crypto::BlobId;
use super::exclude::{self, Excludes, MarkerGate, MarkerTest};
use super::index::{IndexFile, IndexedPack};
use super::notes::{Paths, TreeNote};
use super::pack::{BlobKind, BlobSeal, PackBuilder};
use super::partial::WriteSet;
use super::profile::{Compression, ContentProfile, FILE_COMPRESSION, TREE_COMPRESSION};
use super::recycle;
use super::tree::{Node, NodeKind};
use super::xattr;
use super::{
    Chunker, ContentKind, FileKind, Progress, RepoError, Repository, Snapshot, SnapshotSource,
    SnapshotSummary,
};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Blobs waiting for a worker; with up to 8 MiB chunks this caps the
/// in-flight data at a few tens of MB whatever the volume's size.
const QUEUE: usize = 4;
/// Blob bytes in flight between the reader and the pack writer: eight
/// average chunks, enough to keep both workers busy while the reader
/// reads ahead (16 MiB were a sixth of a real tree's first-backup peak,
/// with no measurable gain in speed).
const IN_FLIGHT_BYTES: usize = 8 << 20;
/// Buffers the pool keeps beyond its own bound while a pipeline runs: a
/// blob in flight holds its copy, its compressed and its sealed bytes, so
/// about three budgets' worth come and go, and four once two 8 MiB chunks
/// are sealed at once (the budget pairs them). With less, most chunks of
/// large files took fresh pages (zeroed by the kernel, faulted in one by
/// one): a sixth of the CPU of a first backup of the db-files volume (at
/// three budgets with pairing, 1.3 system-s against 0.8).
const KEPT_FOR_PIPELINE: usize = 4 * IN_FLIGHT_BYTES;
/// Small blobs are handed over together up to this many bytes; the batch
/// being filled is outside the in-flight budget (it takes its room when
/// sent), so the submitter holds at most this much beside it.
const BATCH_BYTES: usize = 1 << 20;
/// What a blob in flight holds beside its bytes (its job, its sealed copy,
/// their allocations' headers), counted in the budget and the batches: by
/// bytes alone, 16 MiB of 40-byte files let 400,000 blobs through at once
/// (100 MB for a million tiny files, heaptrack).
const BLOB_OVERHEAD: usize = 256;
/// An index file is written after this many packs, so an interrupted backup
/// leaves most of its work indexed and reusable.
const PACKS_PER_INDEX: usize = 4;
/// … or after this many blobs: an index file is built whole in memory (as
/// JSON, then compressed and sealed, some 400 bytes a blob at once), and
/// packs of small files hold many blobs each.
const BLOBS_PER_INDEX: usize = 2 * super::pack::MAX_BLOBS;
/// Tree blobs are cut at node boundaries chosen by content, between these
/// sizes (about 10 KB on average). Small, because a change scattered over
/// 1% of the files dirties one tree blob per changed entry: at 64 KiB the
/// 1 GB reference volume's 1% mutation stored 1.03 MB of trees, at 4 KiB
/// 0.57 MB (docs/benchmarks.md); smaller gains little and compresses worse.
const TREE_MIN: usize = 4 * 1024;
/// Files larger than this many of their largest chunks have their chunks
/// hashed by the workers ([`Submitter::submit_large`]), so that the wait
/// for the last ids is short beside the file's reading.
const LARGE_FILE_CHUNKS: u64 = 2;
const TREE_MAX: usize = 1024 * 1024;

struct Job {
    id: JobId,
    kind: BlobKind,
    data: Vec<u8>,
    compression: Compression,
}

/// A job's id: known when submitted, or computed by the worker that seals
/// it ([`Submitter::submit_large`]), which tells the submitter.
enum JobId {
    Known(BlobId),
    ToHash(SyncSender<BlobId>),
}

/// The id of a chunk a worker hashes ([`Submitter::wait_for_ids`]).
pub(crate) struct PendingId(Receiver<BlobId>);

impl PendingId {
    fn wait(self) -> Result<BlobId, RepoError> {
        self.0
            .recv()
            .map_err(|_| RepoError::Source("the storage pipeline stopped".into()))
    }
}

struct Sealed {
    id: BlobId,
    kind: BlobKind,
    stored: Vec<u8>,
    raw_length: usize,
    compressed: bool,
    /// Sealed with its [`BlobSeal`] context (every encrypted repository).
    id_bound: bool,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct WriteStats {
    pub stored_bytes: u64,
    pub new_blobs: u64,
    /// The packs written (name, size), for a caller that checks they stayed.
    pub packs: Vec<(String, u64)>,
}

/// Hands blobs to the pipeline, skipping those the repository already has.
/// Small blobs travel in batches: one hand-over (and thread wake-up) per
/// batch instead of per blob keeps volumes of small files from spending
/// their time in the scheduler.
pub(crate) struct Submitter<'r> {
    repository: &'r Repository,
    budget: &'r ByteBudget,
    jobs: SyncSender<Vec<Job>>,
    /// How data blobs are compressed (the content's [`ContentProfile`]).
    data_compression: Compression,
    in_flight: &'r InFlight,
    /// Small blobs not sent yet, and the room they will take.
    batch: Mutex<(Vec<Job>, usize)>,
}

impl Submitter<'_> {
    pub fn submit(&self, kind: BlobKind, data: &[u8]) -> Result<BlobId, RepoError> {
        let id = self.repository.keys().blob_id(data);
        self.submit_identified(kind, id, data)?;
        Ok(id)
    }

    /// [`Submitter::submit`] for content whose id under this repository's
    /// id key is already known and verified (read from a repository that
    /// names blobs with the same key), so it is not computed again.
    pub fn submit_identified(
        &self,
        kind: BlobKind,
        id: BlobId,
        data: &[u8],
    ) -> Result<(), RepoError> {
        let compression = match kind {
            BlobKind::Data => self.data_compression,
            BlobKind::Tree => TREE_COMPRESSION,
        };
        self.submit_identified_as(kind, id, data, compression)
    }

    /// [`Submitter::submit_identified`] compressing as `compression` says,
    /// whatever the pipeline's content: a blob rewritten as tightly as it
    /// was first stored (prune's repacking).
    pub fn submit_identified_as(
        &self,
        kind: BlobKind,
        id: BlobId,
        data: &[u8],
        compression: Compression,
    ) -> Result<(), RepoError> {
        if !admit(self.repository, self.in_flight, &id) {
            return Ok(());
        }
        self.hand_over(JobId::Known(id), kind, data, compression)
    }

    /// [`Submitter::submit`] with the id computed by a worker, beside the
    /// compression and encryption, instead of on the caller's thread,
    /// which then only reads and cuts: a large file's chunks are hashed on
    /// both cores. The dedup check moves with the hash; a chunk the
    /// repository has costs its copy and its hash, no more.
    pub fn submit_large(&self, kind: BlobKind, data: &[u8]) -> Result<PendingId, RepoError> {
        let (tell, told) = sync_channel(1);
        let compression = match kind {
            BlobKind::Data => self.data_compression,
            BlobKind::Tree => TREE_COMPRESSION,
        };
        self.hand_over(JobId::ToHash(tell), kind, data, compression)?;
        Ok(PendingId(told))
    }

    /// The ids of chunks [`Submitter::submit_large`] handed over, in order.
    /// The reader waits for the workers now: they leave idle priority
    /// (see [`WorkerPriority`]), or a busy host would starve them.
    pub fn wait_for_ids(&self, pending: Vec<PendingId>) -> Result<Vec<BlobId>, RepoError> {
        // The last chunks may wait in a batch for more to come.
        self.flush()?;
        self.budget.congested.store(true, Relaxed);
        pending.into_iter().map(PendingId::wait).collect()
    }

    /// Copies a blob for the workers. Blobs of [`BATCH_BYTES`] and more
    /// travel alone; smaller ones are batched. Room in the budget is
    /// acquired only for what is sent at once: a batch waiting for more
    /// holds none, so whatever waits for room waits only for blobs the
    /// pipeline has (6d03e1e: an unsent batch held room, and a chunk
    /// larger than the budget waited for it for ever).
    fn hand_over(
        &self,
        id: JobId,
        kind: BlobKind,
        data: &[u8],
        compression: Compression,
    ) -> Result<(), RepoError> {
        let held = held_in_flight(data.len());
        if held >= BATCH_BYTES {
            // The smaller blobs before it go first, in order.
            self.flush()?;
            self.budget.acquire(held)?;
            let job = Job::copied(id, kind, data, compression);
            return self.send(vec![job]);
        }
        let mut batch = self.batch.lock().expect("not poisoned");
        batch.1 += held;
        batch.0.push(Job::copied(id, kind, data, compression));
        if batch.1 >= BATCH_BYTES {
            let full = std::mem::take(&mut *batch);
            drop(batch);
            self.send_batch(full)?;
        }
        Ok(())
    }

    /// Acquires the room of `jobs` (`bytes` in the budget) and sends them.
    fn send_batch(&self, (jobs, bytes): (Vec<Job>, usize)) -> Result<(), RepoError> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.budget.acquire(bytes)?;
        self.send(jobs)
    }

    fn send(&self, jobs: Vec<Job>) -> Result<(), RepoError> {
        self.jobs
            .send(jobs)
            .map_err(|_| RepoError::Source("the storage pipeline stopped".into()))
    }

    fn flush(&self) -> Result<(), RepoError> {
        let rest = std::mem::take(&mut *self.batch.lock().expect("not poisoned"));
        self.send_batch(rest)
    }
}

impl Job {
    /// A job holding a copy of `data` in a recycled buffer.
    fn copied(id: JobId, kind: BlobKind, data: &[u8], compression: Compression) -> Job {
        let mut copy = recycle::take(data.len());
        copy.extend_from_slice(data);
        Job {
            id,
            kind,
            data: copy,
            compression,
        }
    }
}

/// Whether a blob of `id` is new: neither indexed nor in flight; it is in
/// flight from now on. The index is asked while the set is held: the
/// writer indexes a blob before it takes the blob out of the set, so a
/// blob is always in one or the other once submitted.
fn admit(repository: &Repository, in_flight: &InFlight, id: &BlobId) -> bool {
    let mut in_flight = in_flight.lock().expect("not poisoned");
    if in_flight.contains(id) || repository.index().contains(id) {
        return false;
    }
    in_flight.insert(*id)
}

/// The blobs submitted and not indexed yet: a blob leaves the set once an
/// index file names it, so the set holds a few packs' worth of ids, not
/// every new blob of the backup (a million-file first backup kept 40 MB
/// of ids here).
type InFlight = Mutex<HashSet<BlobId>>;

/// Runs `produce` with a [`Submitter`] while workers and the pack writer
/// store what it submits. Returns its result once everything is durable.
/// Data blobs are compressed as file trees' are (prune's and repair's
/// rewrites, which do not know what a blob holds).
pub(crate) fn with_pipeline<T>(
    repository: &Repository,
    produce: impl FnOnce(&Submitter) -> Result<T, RepoError>,
) -> Result<(T, WriteStats), RepoError> {
    with_pipeline_as(repository, FILE_COMPRESSION, produce)
}

/// [`with_pipeline`] compressing data blobs as `data_compression` says
/// (the content's [`ContentProfile`]).
pub(crate) fn with_pipeline_as<T>(
    repository: &Repository,
    data_compression: Compression,
    produce: impl FnOnce(&Submitter) -> Result<T, RepoError>,
) -> Result<(T, WriteStats), RepoError> {
    // Blobs sealed by format 4 are unreadable to older lifeboats: the
    // config says format 4 before the first one is written (callers lock,
    // which does this too; this holds it for every writer).
    repository.authenticate_config()?;
    let (jobs, job_queue) = sync_channel::<Vec<Job>>(QUEUE);
    let (sealed_tx, sealed_rx) = sync_channel::<Vec<Sealed>>(QUEUE);
    let job_queue = Arc::new(Mutex::new(job_queue));
    let budget = ByteBudget::pairing(IN_FLIGHT_BYTES);
    let in_flight = InFlight::default();
    let _kept_buffers = recycle::reserve(KEPT_FOR_PIPELINE);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let written = write_packs(repository, sealed_rx, &budget, &in_flight);
            budget.close();
            written
        });
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let queue = job_queue.clone();
                let out = sealed_tx.clone();
                let (budget, in_flight) = (&budget, &in_flight);
                scope.spawn(move || seal(repository, &queue, &out, budget, in_flight))
            })
            .collect();
        // The workers own the queue: once they stopped (the writer failed),
        // a hand-over fails instead of waiting for ever.
        drop((sealed_tx, job_queue));
        let submitter = Submitter {
            repository,
            budget: &budget,
            jobs,
            data_compression,
            in_flight: &in_flight,
            batch: Mutex::new((Vec::new(), 0)),
        };
        let produced = produce(&submitter).and_then(|produced| {
            submitter.flush()?;
            Ok(produced)
        });
        drop(submitter);
        for worker in workers {
            let _ = worker.join();
        }
        let written = writer.join().expect("pack writer does not panic");
        // The writer's error is the cause when both failed (the producer then
        // only saw the pipeline stop).
        let stats = written?;
        Ok((produced?, stats))
    })
}

/// The budget a blob of `length` bytes takes while in flight.
fn held_in_flight(length: usize) -> usize {
    length + BLOB_OVERHEAD
}

fn seal(
    repository: &Repository,
    queue: &Mutex<Receiver<Vec<Job>>>,
    out: &SyncSender<Vec<Sealed>>,
    budget: &ByteBudget,
    in_flight: &InFlight,
) {
    let keys = repository.keys();
    let id_bound = repository.seals_blobs_bound();
    let mut priority = WorkerPriority::Normal;
    // One context per compression a job asks for (a pipeline uses one or two).
    let mut compressors: Vec<(Compression, zstd::bulk::Compressor)> = Vec::new();
    let mut probe = zstd::bulk::Compressor::new(1).expect("zstd level 1");
    loop {
        let jobs = match queue.lock().expect("not poisoned").recv() {
            Ok(jobs) => jobs,
            Err(_) => return,
        };
        priority.follow(budget.congested.load(Relaxed));
        // Ids first, for the whole batch: the submitter may be waiting
        // for them, and only new blobs go on.
        let jobs: Vec<(BlobId, Job)> = jobs
            .into_iter()
            .filter_map(|job| match &job.id {
                JobId::Known(id) => Some((*id, job)),
                JobId::ToHash(tell) => {
                    let id = keys.blob_id(&job.data);
                    // A submitter that gave up no longer listens.
                    let _ = tell.send(id);
                    if admit(repository, in_flight, &id) {
                        Some((id, job))
                    } else {
                        budget.release(held_in_flight(job.data.len()));
                        recycle::give(job.data);
                        None
                    }
                }
            })
            .collect();
        let sealed = jobs
            .into_iter()
            .map(|(id, job)| {
                let compression = job.compression;
                // Both buffers go back to the pool once the blob is
                // sealed: the next chunk's copy and output reuse them.
                let mut compressed = None;
                if looks_compressible(&mut probe, &job.data, compression.probe_samples) {
                    let mut buffer = recycle::take(zstd::zstd_safe::compress_bound(job.data.len()));
                    match compressor_at(&mut compressors, compression)
                        .compress_to_buffer(&job.data, &mut buffer)
                    {
                        Ok(length) if length < job.data.len() => compressed = Some(buffer),
                        _ => recycle::give(buffer),
                    }
                }
                let (payload, is_compressed) = match &compressed {
                    Some(c) => (c.as_slice(), true),
                    None => (job.data.as_slice(), false),
                };
                let context = if id_bound {
                    BlobSeal::context(
                        repository.id(),
                        job.kind,
                        is_compressed,
                        job.data.len() as u32,
                        &id,
                    )
                } else {
                    Vec::new()
                };
                let mut stored = recycle::take(payload.len() + keys.encryption_overhead());
                keys.seal_into(payload, &context, &mut stored);
                let raw_length = job.data.len();
                recycle::give(job.data);
                if let Some(compressed) = compressed {
                    recycle::give(compressed);
                }
                Sealed {
                    id,
                    kind: job.kind,
                    stored,
                    raw_length,
                    compressed: is_compressed,
                    id_bound,
                }
            })
            .collect();
        if out.send(sealed).is_err() {
            return;
        }
    }
}

/// The worker's compressor for `compression`, made on first use.
fn compressor_at<'c>(
    compressors: &'c mut Vec<(Compression, zstd::bulk::Compressor<'static>)>,
    compression: Compression,
) -> &'c mut zstd::bulk::Compressor<'static> {
    let at = match compressors
        .iter()
        .position(|(held, _)| *held == compression)
    {
        Some(at) => at,
        None => {
            let compressor = compression
                .compressor()
                .expect("parameters zstd knows (profile tests)");
            compressors.push((compression, compressor));
            compressors.len() - 1
        }
    };
    &mut compressors[at].1
}

/// Compression and encryption may lag behind reading (their queue is
/// bounded) but reading must not: a reader, or a dockerd streaming an
/// archive, that waits for a CPU leaves the disk idle, and dockerd's
/// per-file latency is what bounds API backups (docs/benchmarks.md). So
/// workers run as idle-priority threads while they keep up, and at normal
/// priority as soon as the reader has to wait for them: they yield the CPU
/// to the reader and to the services on the host, but never starve.
#[derive(PartialEq, Eq, Clone, Copy)]
enum WorkerPriority {
    Normal,
    Idle,
}

impl WorkerPriority {
    fn follow(&mut self, congested: bool) {
        let wanted = if congested {
            WorkerPriority::Normal
        } else {
            WorkerPriority::Idle
        };
        if wanted == *self {
            return;
        }
        let policy = match wanted {
            WorkerPriority::Normal => libc::SCHED_OTHER,
            WorkerPriority::Idle => libc::SCHED_IDLE,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on this thread (pid 0); failure only keeps the old policy.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
            *self = wanted;
        }
    }
}

/// Compressing incompressible data (media, encrypted or already compressed
/// files) costs as much as compressing text and saves nothing, so large blobs
/// are probed first: `samples` (at most 4) spread evenly from the start (two:
/// the start and the middle), at zstd's fastest level. Only when none
/// shrinks by 3% is the blob stored as it is.
fn looks_compressible(probe: &mut zstd::bulk::Compressor, data: &[u8], samples: usize) -> bool {
    const SAMPLE: usize = 16 * 1024;
    if data.len() < 4 * SAMPLE {
        return true;
    }
    let samples = samples.clamp(1, 4);
    (0..samples).map(|i| data.len() * i / samples).any(|at| {
        match probe.compress(&data[at..at + SAMPLE]) {
            Ok(c) => c.len() * 100 < SAMPLE * 97,
            Err(_) => true,
        }
    })
}

/// Fills packs from the sealed blobs and has them saved by
/// [`Backend::requests_in_flight`](super::Backend::requests_in_flight)
/// upload threads at once, so one save's round trip no longer stops the
/// pipeline. Memory stays bounded by count: a full pack is handed over
/// only to an idle upload thread (a rendezvous), so at most that many
/// packs are uploading and one more is being filled; a pack streamed to
/// its file ([`FullPack`]) holds only its list of blobs.
///
/// Crash safety: an index file names only packs whose save returned `Ok`
/// (uploads report back, and only reported packs are indexed). After a
/// failed save no pack is handed over any more, the saves in flight
/// finish, the packs they saved are indexed (best effort, so the next run
/// reuses them) and the first error is returned: no index names a pack
/// that is missing, and the snapshot is never written.
fn write_packs(
    repository: &Repository,
    sealed: Receiver<Vec<Sealed>>,
    budget: &ByteBudget,
    in_flight: &InFlight,
) -> Result<WriteStats, RepoError> {
    let uploaders = repository.backend().requests_in_flight().max(1);
    let mut saved = SavedPacks::new(repository, in_flight);
    std::thread::scope(|scope| {
        let (full_packs, queue) = sync_channel::<FullPack>(0);
        // Owned by the upload threads: were they all gone, a hand-over fails
        // instead of waiting for ever.
        let queue = Arc::new(Mutex::new(queue));
        let (reports, reported) = std::sync::mpsc::channel();
        for _ in 0..uploaders {
            let queue = queue.clone();
            let reports = reports.clone();
            scope.spawn(move || upload_packs(repository, &queue, &reports));
        }
        drop((queue, reports));
        let start = || FullPack::start(repository);
        let filled = fill_packs(sealed, budget, start, |pack| {
            saved.record(reported.try_iter())?;
            full_packs
                .send(pack)
                .map_err(|_| RepoError::Source("the pack uploads stopped".into()))
        })
        .map(|new_blobs| saved.stats.new_blobs = new_blobs);
        drop(full_packs);
        // Every upload reports before its thread ends: this waits for them all.
        let uploaded = saved.record(reported.iter());
        let first_error = filled.and(uploaded);
        let indexed = saved.flush_index();
        first_error.and(indexed)?;
        Ok(saved.stats)
    })
}

/// Packs the sealed blobs in arrival order, tree blobs in packs of their
/// own, each begun by `start` when its first blob comes, handing each full
/// pack (and the last, partly filled ones) to `save`. Returns how many
/// blobs it packed.
///
/// Trees apart from data (as restic keeps them): a walk of a snapshot's
/// tree, which every restore, `ls` and `find` starts with, reads a few
/// contiguous packs instead of one small read between every few MB of
/// data, and a restore's data reads are not cut by them (from an object
/// store each such read is a request of its own).
fn fill_packs(
    sealed: Receiver<Vec<Sealed>>,
    budget: &ByteBudget,
    mut start: impl FnMut() -> Result<FullPack, RepoError>,
    mut save: impl FnMut(FullPack) -> Result<(), RepoError>,
) -> Result<u64, RepoError> {
    let mut new_blobs = 0;
    let mut data: Option<FullPack> = None;
    let mut trees: Option<FullPack> = None;
    for blob in sealed.into_iter().flatten() {
        let filling = if blob.kind == BlobKind::Tree {
            &mut trees
        } else {
            &mut data
        };
        if let Some(pack) = filling.as_ref()
            && (!pack.builder.fits(blob.stored.len())
                || (blob.kind == BlobKind::Tree
                    && !tree_pack_fits(&pack.builder, blob.stored.len())))
        {
            save(filling.take().expect("a pack is filling"))?;
        }
        let pack = match filling {
            Some(pack) => pack,
            None => filling.insert(start()?),
        };
        pack.add(&blob)?;
        recycle::give(blob.stored);
        budget.release(held_in_flight(blob.raw_length));
        new_blobs += 1;
    }
    for pack in [data, trees].into_iter().flatten() {
        save(pack)?;
    }
    Ok(new_blobs)
}

/// A pack being filled and then uploaded: its list of blobs, and either
/// its bytes in memory or the file its blobs were streamed to as they came
/// ([`Backend::create_streamed_pack`](super::Backend::create_streamed_pack)).
struct FullPack {
    builder: PackBuilder,
    file: Option<PackFile>,
}

/// A streamed pack's file, and the hash of what was written to it (the
/// pack's name).
struct PackFile {
    file: Box<dyn StreamedPack>,
    hash: Sha256,
}

impl FullPack {
    /// A pack filled in memory.
    fn in_memory() -> FullPack {
        FullPack {
            builder: PackBuilder::default(),
            file: None,
        }
    }

    /// A new pack: streamed to its file where the backend can, else in memory.
    fn start(repository: &Repository) -> Result<FullPack, RepoError> {
        let file = (repository.backend().create_streamed_pack())
            .map_err(RepoError::io("creating a pack file"))?;
        let mut pack = FullPack::in_memory();
        pack.file = file.map(|file| PackFile {
            file,
            hash: Sha256::new(),
        });
        Ok(pack)
    }

    fn add(&mut self, blob: &Sealed) -> Result<(), RepoError> {
        let stored = &blob.stored;
        match &mut self.file {
            Some(PackFile { file, hash }) => {
                file.write_all(stored)
                    .map_err(RepoError::io("writing a pack"))?;
                hash.update(stored);
                let builder = &mut self.builder;
                builder.add_streamed(
                    blob.id,
                    blob.kind,
                    stored.len(),
                    blob.raw_length,
                    blob.compressed,
                    blob.id_bound,
                );
            }
            None => {
                if blob.kind == BlobKind::Tree {
                    make_tree_room(&mut self.builder, stored.len());
                }
                let builder = &mut self.builder;
                builder.add(
                    blob.id,
                    blob.kind,
                    stored,
                    blob.raw_length,
                    blob.compressed,
                    blob.id_bound,
                );
            }
        }
        Ok(())
    }

    /// Finishes the pack (its header) and saves it under its name.
    fn store(self, repository: &Repository) -> Result<IndexedPack, RepoError> {
        let streamed = self.builder.streamed;
        let (bytes, blobs) = self.builder.finish(repository.keys());
        let (name, size) = match self.file {
            None => {
                let name = super::sha256_hex(&bytes);
                let size = bytes.len() as u64;
                repository
                    .backend()
                    .save_owned(FileKind::Pack, &name, bytes)
                    .map_err(RepoError::io(format!("writing pack {}", &name[..8])))?;
                (name, size)
            }
            Some(PackFile { mut file, mut hash }) => {
                file.write_all(&bytes)
                    .map_err(RepoError::io("writing a pack"))?;
                hash.update(&bytes);
                let name = hex::encode(hash.finalize());
                file.commit(&name)
                    .map_err(RepoError::io(format!("writing pack {}", &name[..8])))?;
                (name, (streamed + bytes.len()) as u64)
            }
        };
        Ok(IndexedPack {
            id: name,
            size,
            blobs,
        })
    }
}

/// The first room a tree pack takes; it then doubles up to
/// [`TREE_PACK_SIZE`].
const TREE_PACK_START: usize = 256 << 10;
/// Tree packs are saved at this size, not a data pack's: a backup's trees
/// (5 MiB and more for a real tree of 100,000 files) were otherwise held
/// in memory until the end, beside everything in flight, where the first
/// backup peaks. A walk of the tree still reads a few contiguous packs.
const TREE_PACK_SIZE: usize = 4 << 20;
/// A whole pack and its header (the header is written into the same buffer).
const PACK_ROOM: usize = super::pack::TARGET_SIZE + (1 << 20);

/// Whether a tree blob of `stored` bytes still fits a tree pack (an
/// empty one takes any).
fn tree_pack_fits(builder: &PackBuilder, stored: usize) -> bool {
    builder.is_empty() || builder.len() + stored <= TREE_PACK_SIZE
}

/// Grows a tree pack's buffer to hold `stored` more bytes. Data packs take
/// a whole pack's room at once (no copies while they fill); tree packs grow,
/// because most backups write a few hundred KB of trees and the whole room
/// (17 MiB) was a sixth of a first backup's peak memory.
fn make_tree_room(builder: &mut PackBuilder, stored: usize) {
    let data = &mut builder.data;
    let needed = data.len() + stored;
    if needed > data.capacity() {
        let room = (data.capacity() * 2)
            .clamp(TREE_PACK_START, PACK_ROOM)
            .max(needed);
        data.reserve_exact(room - data.len());
    }
}

/// One upload thread: finishes each pack it is handed (header, name) and
/// saves it, reporting every outcome. It goes on after a failure, so the
/// hand-over never waits on a thread that is gone; the filler stops
/// handing over once it hears of the failure.
fn upload_packs(
    repository: &Repository,
    queue: &Mutex<Receiver<FullPack>>,
    reports: &std::sync::mpsc::Sender<Result<IndexedPack, RepoError>>,
) {
    loop {
        let Ok(pack) = queue.lock().expect("not poisoned").recv() else {
            return;
        };
        if reports.send(pack.store(repository)).is_err() {
            return;
        }
    }
}

/// The packs whose saves returned `Ok` and are not indexed yet, and what
/// the writing added up to.
struct SavedPacks<'r> {
    repository: &'r Repository,
    in_flight: &'r InFlight,
    unindexed: Vec<IndexedPack>,
    stats: WriteStats,
    /// A failed upload was heard of: it is returned once, and nothing more
    /// is indexed until the end.
    failed: bool,
}

impl<'r> SavedPacks<'r> {
    fn new(repository: &'r Repository, in_flight: &'r InFlight) -> Self {
        SavedPacks {
            repository,
            in_flight,
            unindexed: Vec::new(),
            stats: WriteStats::default(),
            failed: false,
        }
    }

    /// Takes the uploads' reports: saved packs are counted and, every
    /// [`PACKS_PER_INDEX`] of them (or [`BLOBS_PER_INDEX`] blobs), indexed;
    /// the first failure is returned.
    fn record(
        &mut self,
        reports: impl Iterator<Item = Result<IndexedPack, RepoError>>,
    ) -> Result<(), RepoError> {
        let mut first_error = None;
        for report in reports {
            match report {
                Ok(pack) => {
                    self.stats.stored_bytes += pack.size;
                    self.stats.packs.push((pack.id.clone(), pack.size));
                    self.unindexed.push(pack);
                    // Checked per pack: reports come in bunches, and an
                    // index file is held whole while it is written.
                    if !self.failed
                        && self.index_is_due()
                        && let Err(error) = self.flush_index()
                    {
                        self.failed = true;
                        first_error.get_or_insert(error);
                    }
                }
                Err(error) => {
                    self.failed = true;
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn index_is_due(&self) -> bool {
        let blobs: usize = self.unindexed.iter().map(|pack| pack.blobs.len()).sum();
        self.unindexed.len() >= PACKS_PER_INDEX || blobs >= BLOBS_PER_INDEX
    }

    /// Saves an index file naming the saved packs not indexed yet, and adds
    /// them to the repository's index.
    fn flush_index(&mut self) -> Result<(), RepoError> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let file = IndexFile {
            packs: std::mem::take(&mut self.unindexed),
            supersedes: Vec::new(),
            damaged_blobs: Vec::new(),
        };
        let (name, size) = self.repository.save_index(&file)?;
        self.stats.stored_bytes += size;
        let mut index = self.repository.index_mut();
        index.files.push(name);
        for pack in &file.packs {
            index.add_pack(pack);
        }
        drop(index);
        let mut in_flight = self.in_flight.lock().expect("not poisoned");
        for blob in file.packs.iter().flat_map(|pack| &pack.blobs) {
            in_flight.remove(&blob.id);
        }
        Ok(())
    }
}

/// Splits a stream into content-defined chunks with one reusable buffer
/// (FastCDC's own streaming reader allocates its full buffer per stream,
/// which costs more than the chunking for volumes of many small files).
pub(crate) struct ChunkReader {
    chunker: Chunker,
    buffer: Vec<u8>,
}

impl ChunkReader {
    pub fn new(chunker: Chunker) -> ChunkReader {
        ChunkReader {
            chunker,
            buffer: vec![0; 2 * chunker.max as usize],
        }
    }

    /// Calls `chunk` with each chunk of `source`, in order: the chunks
    /// FastCDC cuts from the whole stream at once.
    ///
    /// A cut needs `max` bytes ahead of it (or the end of the stream).
    /// Near the buffer's end fewer remain, and moving them to its front
    /// copied most of every byte a second time (7% of a first backup of
    /// large files, profiled), so the bytes left are cut first where their
    /// content puts a cut ([`content_cut`]): only the rest of one chunk is
    /// then moved.
    pub fn chunks(
        &mut self,
        mut source: impl Read,
        mut chunk: impl FnMut(&[u8]) -> Result<(), RepoError>,
    ) -> Result<u64, RepoError> {
        let max = self.chunker.max as usize;
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            // Read until `max` bytes are available, the stream ends or the
            // buffer is full.
            while !eof && end - start < max && end < self.buffer.len() {
                match source.read(&mut self.buffer[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(RepoError::Source(e.to_string())),
                }
            }
            if start == end && eof {
                return Ok(total);
            }
            // Empty when cuts used the full buffer up exactly: it is then
            // refilled from its front.
            let window = &self.buffer[start..end.min(start + max)];
            let cut = if eof || window.len() == max {
                Some(self.cut(window))
            } else {
                // The buffer is full and holds less than `max` bytes ahead.
                content_cut(self.chunker, window, self.cut(window))
            };
            let Some(cut) = cut else {
                self.buffer.copy_within(start..end, 0);
                end -= start;
                start = 0;
                continue;
            };
            chunk(&window[..cut])?;
            start += cut;
            total += cut as u64;
        }
    }

    /// Where FastCDC cuts `window` (its whole length when it finds no cut).
    fn cut(&self, window: &[u8]) -> usize {
        fastcdc::v2020::FastCDC::new(
            window,
            self.chunker.min as usize,
            self.chunker.avg as usize,
            self.chunker.max as usize,
        )
        .next()
        .map(|c| c.length)
        .unwrap_or(window.len())
    }
}

/// `cut`, FastCDC's cut of `window` (shorter than `max`, the stream going
/// on), when it is the cut a window of `max` bytes gives too: FastCDC
/// tests the same positions in the same order with the same hash as long
/// as the window holds its `avg` bytes, so a cut it finds before the
/// window's end is the first one a longer window finds. `None` when more
/// of the stream decides.
fn content_cut(chunker: Chunker, window: &[u8], cut: usize) -> Option<usize> {
    (window.len() >= chunker.avg as usize && cut < window.len()).then_some(cut)
}

/// Builds the tree while entries arrive: node lines cut into tree blobs at
/// boundaries that depend on the lines themselves, so a change to one entry
/// changes one or two tree blobs, not all that follow.
#[derive(Default)]
pub(crate) struct TreeWriter {
    buffer: Vec<u8>,
    blobs: Vec<BlobId>,
}

impl TreeWriter {
    pub(crate) fn push(&mut self, node: &Node, submitter: &Submitter) -> Result<(), RepoError> {
        let line = node.to_line();
        self.buffer.extend_from_slice(&line);
        let boundary = line
            .iter()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(*b as u32))
            % 32
            == 0;
        if (self.buffer.len() >= TREE_MIN && boundary) || self.buffer.len() >= TREE_MAX {
            self.cut(submitter)?;
        }
        Ok(())
    }

    fn cut(&mut self, submitter: &Submitter) -> Result<(), RepoError> {
        if !self.buffer.is_empty() {
            let id = submitter.submit(BlobKind::Tree, &self.buffer)?;
            self.buffer.clear();
            self.blobs.push(id);
        }
        Ok(())
    }

    /// Stores what is left and returns the tree's blobs, in order.
    pub(crate) fn finish(mut self, submitter: &Submitter) -> Result<Vec<BlobId>, RepoError> {
        self.cut(submitter)?;
        Ok(self.blobs)
    }
}

/// Where a file's recorded size comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SizeFrom {
    /// The node's (an archive header's): content of another size is an error.
    Node,
    /// The bytes read (a live file, listed a moment earlier).
    Content,
}

/// What both backup paths produce for each entry, before the snapshot exists.
pub(crate) struct Builder<'s, 'r> {
    submitter: &'s Submitter<'r>,
    chunks: ChunkReader,
    tree: TreeWriter,
    summary: SnapshotSummary,
    progress: &'s (dyn Fn(Progress) + Sync),
    /// What the reading path could not copy exactly (see [`TreeNote`]).
    pub notes: Vec<TreeNote>,
}

impl<'s, 'r> Builder<'s, 'r> {
    fn new(
        submitter: &'s Submitter<'r>,
        chunker: Chunker,
        progress: &'s (dyn Fn(Progress) + Sync),
    ) -> Self {
        Builder {
            submitter,
            chunks: ChunkReader::new(chunker),
            tree: TreeWriter::default(),
            summary: SnapshotSummary::default(),
            progress,
            notes: Vec::new(),
        }
    }

    /// Adds one entry; `content` is read for files, and must hold exactly
    /// the node's size. Returns the file's content blobs.
    pub fn add(
        &mut self,
        node: Node,
        content: Option<&mut dyn Read>,
    ) -> Result<Vec<BlobId>, RepoError> {
        self.add_entry(node, content, SizeFrom::Node)
            .map(|(blobs, _)| blobs)
    }

    /// Adds a file read from a live tree, which may have shrunk or grown
    /// since it was listed: what `content` gives is stored, with the size
    /// read (the caller bounds `content` to the listed size). Returns the
    /// content blobs and that size.
    pub fn add_as_read(
        &mut self,
        node: Node,
        content: &mut dyn Read,
    ) -> Result<(Vec<BlobId>, u64), RepoError> {
        self.add_entry(node, Some(content), SizeFrom::Content)
    }

    fn add_entry(
        &mut self,
        mut node: Node,
        content: Option<&mut dyn Read>,
        size_from: SizeFrom,
    ) -> Result<(Vec<BlobId>, u64), RepoError> {
        let stored = self.store_content(&mut node, content, size_from)?;
        let blobs = node.content.clone();
        self.add_stored(node)?;
        Ok((blobs, stored))
    }

    /// Reads a file's content into blobs, kept in `node`, without adding
    /// the node to the tree yet (a walk that may still leave it out).
    /// Returns the bytes stored (none for other kinds).
    fn store_content(
        &mut self,
        node: &mut Node,
        content: Option<&mut dyn Read>,
        size_from: SizeFrom,
    ) -> Result<u64, RepoError> {
        if node.kind != NodeKind::File {
            return Ok(0);
        }
        let submitter = self.submitter;
        let progress = self.progress;
        // A file no larger than the smallest chunk is one chunk: room
        // for exactly one id. The first push would reserve four
        // (128 bytes), kept per file in its node and the file cache.
        let one_chunk = node.size > 0 && node.size <= u64::from(self.chunks.chunker.min);
        let mut ids = Vec::with_capacity(usize::from(one_chunk));
        // Progress moves inside a file, chunk by chunk: a volume of
        // a few large files would otherwise sit still, then jump.
        let (files, before) = (self.summary.files, self.summary.bytes);
        let mut read = 0u64;
        // A large file's chunks are hashed by the workers; its ids are
        // collected once it is read (a wait of the chunks in flight, too
        // long for every small file).
        let large = node.size > LARGE_FILE_CHUNKS * u64::from(self.chunks.chunker.max);
        let mut pending = Vec::new();
        let size = match content {
            Some(reader) => self.chunks.chunks(reader, |chunk| {
                if large {
                    pending.push(submitter.submit_large(BlobKind::Data, chunk)?);
                } else {
                    ids.push(submitter.submit(BlobKind::Data, chunk)?);
                }
                read += chunk.len() as u64;
                if !one_chunk {
                    progress(Progress {
                        files,
                        bytes: before + read,
                        current: None,
                    });
                }
                Ok(())
            })?,
            None => 0,
        };
        if size_from == SizeFrom::Content {
            node.size = size;
        }
        if size != node.size {
            return Err(RepoError::Source(format!(
                "{} changed size while being read ({} bytes expected, {size} read)",
                node.display_path(),
                node.size
            )));
        }
        if large {
            ids = submitter.wait_for_ids(pending)?;
        }
        node.content = ids;
        self.summary.bytes_read += size;
        Ok(size)
    }

    /// Stores a file's content (its blobs kept in `node`, which must give
    /// its size) without adding the node to this builder's tree nor
    /// counting it as read here: content several builders' trees share
    /// (an export's layers), which each adds with [`Builder::add_known`]
    /// and the one it is charged to counts with [`Builder::count_read`].
    pub(crate) fn store_shared(
        &mut self,
        node: &mut Node,
        content: &mut dyn Read,
    ) -> Result<u64, RepoError> {
        let size = self.store_content(node, Some(content), SizeFrom::Node)?;
        self.summary.bytes_read -= size;
        Ok(size)
    }

    /// Counts `bytes` of content [`Builder::store_shared`] stored as read
    /// for this builder's snapshot.
    pub(crate) fn count_read(&mut self, bytes: u64) {
        self.summary.bytes_read += bytes;
    }

    /// Adds a node whose content [`Builder::store_content`] stored.
    fn add_stored(&mut self, node: Node) -> Result<(), RepoError> {
        match node.kind {
            NodeKind::File => {
                self.summary.files += 1;
                self.summary.bytes += node.size;
            }
            NodeKind::Dir => self.summary.dirs += 1,
            _ => self.summary.links += 1,
        }
        self.record(&node)
    }

    /// Adds a file whose size is known only once `content` ends (a byte
    /// stream: a dump, a container's configuration): reads it all, then
    /// records the node with the size read. Returns that size.
    pub fn add_stream(&mut self, mut node: Node, content: &mut dyn Read) -> Result<u64, RepoError> {
        let submitter = self.submitter;
        let mut ids = Vec::new();
        let summary = &mut self.summary;
        let progress = self.progress;
        let size = self.chunks.chunks(content, |chunk| {
            ids.push(submitter.submit(BlobKind::Data, chunk)?);
            summary.bytes += chunk.len() as u64;
            summary.bytes_read += chunk.len() as u64;
            progress(Progress {
                files: summary.files,
                bytes: summary.bytes,
                current: None,
            });
            Ok(())
        })?;
        node.kind = NodeKind::File;
        node.size = size;
        node.content = ids;
        self.summary.files += 1;
        self.record(&node)?;
        Ok(size)
    }

    /// Adds a file whose content blobs are already known (and indexed) without reading it.
    pub fn add_known(&mut self, mut node: Node, content: Vec<BlobId>) -> Result<(), RepoError> {
        node.content = content;
        self.summary.files += 1;
        self.summary.bytes += node.size;
        self.record(&node)
    }

    fn record(&mut self, node: &Node) -> Result<(), RepoError> {
        (self.progress)(Progress {
            files: self.summary.files,
            bytes: self.summary.bytes,
            current: None,
        });
        self.tree.push(node, self.submitter)
    }

    fn finish(self) -> Result<(Vec<BlobId>, SnapshotSummary, Vec<TreeNote>), RepoError> {
        let tree = self.tree.finish(self.submitter)?;
        Ok((tree, self.summary, self.notes))
    }
}

/// Adds an archive entry the excludes keep, noting it when it was
/// written during the backup.
fn add_decided(
    builder: &mut Builder,
    changed: &mut Paths,
    (node, written_during): (Node, bool),
) -> Result<(), RepoError> {
    if written_during {
        changed.push(node.display_path());
    }
    builder.add_stored(node)
}

fn strip_root<'a>(path: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    if path == root {
        return Some(b"");
    }
    path.strip_prefix(root)?.strip_prefix(b"/")
}

/// The node of one entry of a Docker archive stream whose root is
/// `root_name` (`raw_path`: the entry's path), with the attributes its PAX
/// records carry; `None` for an entry of a type a tree does not record.
/// A file's content is the caller's to read.
pub(crate) fn tar_node<R: Read>(
    entry: &mut tar::Entry<R>,
    raw_path: &[u8],
    root_name: &[u8],
) -> Result<Option<Node>, RepoError> {
    let Some(relative) = strip_root(raw_path, root_name) else {
        return Err(RepoError::Source(format!(
            "tar entry {} is outside the archive's root",
            String::from_utf8_lossy(raw_path)
        )));
    };
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File,
        tar::EntryType::Directory => NodeKind::Dir,
        tar::EntryType::Symlink => NodeKind::Symlink,
        tar::EntryType::Link => NodeKind::Hardlink,
        tar::EntryType::Fifo => NodeKind::Fifo,
        tar::EntryType::Char => NodeKind::CharDevice,
        tar::EntryType::Block => NodeKind::BlockDevice,
        _ => return Ok(None),
    };
    let mut node = Node::new(
        kind,
        header.mode().unwrap_or(0) & 0o7777,
        header.uid().unwrap_or(0),
        header.gid().unwrap_or(0),
        header.mtime().unwrap_or(0) as i64,
    );
    if kind == NodeKind::File {
        node.size = entry.size();
    }
    node.set_path(relative);
    if let Some(records) = entry
        .pax_extensions()
        .map_err(|e| RepoError::Source(format!("tar stream: {e}")))?
    {
        let records = records
            .filter_map(Result::ok)
            .filter_map(|r| Some((r.key().ok()?, r.value_bytes())));
        node.xattrs = xattr::from_pax(records);
    }
    match kind {
        NodeKind::Symlink => {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            node.set_target(&target);
        }
        NodeKind::Hardlink => {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let target = strip_root(&target, root_name).unwrap_or(&target).to_vec();
            node.set_target(&target);
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let header = entry.header();
            node.device = Some((
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            ));
        }
        _ => {}
    }
    Ok(Some(node))
}

impl Repository {
    /// Backs up a Docker archive stream (entries `<root>/…`, the root first),
    /// with the attributes its PAX `SCHILY.xattr.*` records carry. Its notes
    /// say what such a stream never carries, and which files were written
    /// while it was read (their headers' mtimes lie within the backup).
    pub fn backup_tar(
        &self,
        tar: impl Read + Send,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        self.backup_tar_entries(tar, None, source, progress)
    }

    /// [`Repository::backup_tar`] of only the entries of `only` (with the
    /// directories above them): the safety snapshot of what a partial
    /// restore through the archive API overwrites.
    pub fn backup_tar_selected(
        &self,
        tar: impl Read + Send,
        only: &WriteSet,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        self.backup_tar_entries(tar, Some(only), source, progress)
    }

    fn backup_tar_entries(
        &self,
        tar: impl Read + Send,
        only: Option<&WriteSet>,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Snapshot, RepoError> {
        let excludes = Excludes::new(&source.excludes).map_err(RepoError::Source)?;
        self.backup_with(source, progress, |builder| {
            let mut gate = MarkerGate::new(&excludes);
            let mut archive = tar::Archive::new(tar);
            let entries = archive
                .entries()
                .map_err(|e| RepoError::Source(format!("not a tar stream: {e}")))?;
            let mut root: Option<Vec<u8>> = None;
            // Whole seconds, as the headers have them: a file whose mtime
            // is later than the second the backup started in was written
            // after the backup began (before Docker read it, or while).
            let started = chrono::Utc::now().timestamp();
            let mut changed = Paths::default();
            let mut links_to_excluded = Paths::default();
            for entry in entries {
                let mut entry = entry.map_err(|e| RepoError::Source(format!("tar stream: {e}")))?;
                let raw_path = entry.path_bytes().into_owned();
                let root_name = root.get_or_insert_with(|| {
                    raw_path.strip_suffix(b"/").unwrap_or(&raw_path).to_vec()
                });
                let Some(relative) = strip_root(&raw_path, root_name) else {
                    return Err(RepoError::Source(format!(
                        "tar entry {} is outside the archive's root",
                        String::from_utf8_lossy(&raw_path)
                    )));
                };
                if gate.skips(relative) {
                    continue;
                }
                let relative = relative.to_vec();
                let Some(mut node) = tar_node(&mut entry, &raw_path, root_name)? else {
                    continue;
                };
                if only.is_some_and(|set| !set.admits(&String::from_utf8_lossy(&relative))) {
                    continue;
                }
                let kind = node.kind;
                let is_dir = kind == NodeKind::Dir;
                if excludes.excludes_path(&relative, is_dir) {
                    if is_dir {
                        gate.skip_below(&relative);
                    }
                    continue;
                }
                // Noted once the entry is decided: a marker met later may
                // still leave it out.
                let written_during = kind == NodeKind::File
                    && node.mtime > started
                    && node.mtime <= chrono::Utc::now().timestamp();
                if kind == NodeKind::Hardlink {
                    let target = node.target_bytes().unwrap_or_default();
                    if excludes.excludes_file_or_parent(&target) || gate.marked_out(&target) {
                        links_to_excluded.push(node.display_path());
                        continue;
                    }
                }
                let marker = excludes.marker_test(exclude::split_name(&relative).1);
                let is_marker = match marker {
                    None => {
                        let content: Option<&mut dyn Read> = if kind == NodeKind::File {
                            Some(&mut entry)
                        } else {
                            None
                        };
                        builder.store_content(&mut node, content, SizeFrom::Node)?;
                        false
                    }
                    Some(MarkerTest::Present) => true,
                    // The signature is read first; the file is stored whole
                    // only if it is no marker after all.
                    Some(MarkerTest::CacheDirSignature) if kind == NodeKind::File => {
                        let mut head = Vec::new();
                        (&mut entry)
                            .take(exclude::CACHEDIR_SIGNATURE.len() as u64)
                            .read_to_end(&mut head)
                            .map_err(|e| RepoError::Source(format!("tar stream: {e}")))?;
                        let tagged = head == exclude::CACHEDIR_SIGNATURE;
                        if !tagged {
                            let mut content = std::io::Cursor::new(head).chain(&mut entry);
                            builder.store_content(&mut node, Some(&mut content), SizeFrom::Node)?;
                        }
                        tagged
                    }
                    Some(MarkerTest::CacheDirSignature) => false,
                };
                for decided in gate
                    .arrive(&relative, is_dir, is_marker, (node, written_during))
                    .map_err(RepoError::Source)?
                {
                    add_decided(builder, &mut changed, decided)?;
                }
            }
            for decided in gate.finish() {
                add_decided(builder, &mut changed, decided)?;
            }
            if root.is_none() {
                return Err(RepoError::Source("the archive stream was empty".into()));
            }
            builder.notes.push(TreeNote::ArchiveOmitsMetadata);
            if !links_to_excluded.is_empty() {
                builder.notes.push(TreeNote::LinksToExcluded {
                    paths: links_to_excluded,
                });
            }
            if !changed.is_empty() {
                builder
                    .notes
                    .push(TreeNote::ChangedWhileRead { paths: changed });
            }
            Ok(())
        })
    }

    pub(crate) fn backup_with(
        &self,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
        read: impl FnOnce(&mut Builder) -> Result<(), RepoError>,
    ) -> Result<Snapshot, RepoError> {
        self.backup_content(ContentKind::Tree, source, progress, read)
    }

    /// A backup whose tree holds content of `content_kind` (see [`ContentKind`]).
    pub(crate) fn backup_content(
        &self,
        content_kind: ContentKind,
        source: SnapshotSource,
        progress: &(dyn Fn(Progress) + Sync),
        read: impl FnOnce(&mut Builder) -> Result<(), RepoError>,
    ) -> Result<Snapshot, RepoError> {
        let mut snapshots =
            self.backup_contents(content_kind, vec![source], progress, |builders| {
                read(&mut builders[0])?;
                Ok(vec![Ok(())])
            })?;
        snapshots
            .pop()
            .unwrap_or_else(|| Err(RepoError::Source("the backup produced no snapshot".into())))
    }

    /// Backups of several resources read in one pass from one source (the
    /// images of one export): one builder and one snapshot per source,
    /// their blobs stored once through one pipeline. `read` says, per
    /// builder, whether its snapshot is whole: an `Err` fails that one
    /// alone; an `Err` of `read` itself fails them all. The bytes stored
    /// are shared out by what each builder read.
    pub(crate) fn backup_contents(
        &self,
        content_kind: ContentKind,
        sources: Vec<SnapshotSource>,
        progress: &(dyn Fn(Progress) + Sync),
        read: impl FnOnce(&mut [Builder]) -> Result<Vec<Result<(), RepoError>>, RepoError>,
    ) -> Result<Vec<Result<Snapshot, RepoError>>, RepoError> {
        let started = Instant::now();
        let time = chrono::Utc::now();
        self.sync_index_with_packs()?;
        let profile = ContentProfile::of(content_kind, self.chunker());
        let count = sources.len();
        let (built, stats) = with_pipeline_as(self, profile.compression, |submitter| {
            let mut builders: Vec<Builder> = (0..count)
                .map(|_| Builder::new(submitter, profile.chunker, progress))
                .collect();
            let whole = read(&mut builders)?;
            builders
                .into_iter()
                .zip(whole)
                .map(|(builder, whole)| match whole {
                    Ok(()) => builder.finish().map(Ok),
                    Err(error) => Ok(Err(error)),
                })
                .collect::<Result<Vec<_>, RepoError>>()
        })?;
        let read_total: u64 = built
            .iter()
            .filter_map(|b| b.as_ref().ok())
            .map(|(_, summary, _)| summary.bytes_read)
            .sum();
        let mut snapshots = Vec::with_capacity(count);
        for (source, built) in sources.into_iter().zip(built) {
            let (tree, mut summary, notes) = match built {
                Ok(built) => built,
                Err(error) => {
                    snapshots.push(Err(error));
                    continue;
                }
            };
            let share = |total: u64| match read_total {
                0 if count == 1 => total,
                0 => 0,
                _ => {
                    (u128::from(total) * u128::from(summary.bytes_read) / u128::from(read_total))
                        as u64
                }
            };
            summary.added_bytes = share(stats.stored_bytes);
            summary.new_blobs = share(stats.new_blobs);
            summary.duration_seconds = started.elapsed().as_secs_f64();
            let mut snapshot = Snapshot {
                id: super::SnapshotId(String::new()),
                time,
                resource: source.resource.clone(),
                hostname: crate::host::hostname(),
                source,
                summary,
                content: content_kind,
                tree,
                lifeboat_version: env!("CARGO_PKG_VERSION").to_string(),
                notes,
            };
            snapshot.id = self.save_snapshot(&snapshot)?;
            snapshots.push(Ok(snapshot));
        }
        Ok(snapshots)
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::memory::MemoryBackend;
    use super::super::pack::PackedBlob;
    use super::super::{RepoOptions, Repository};
    use super::*;

    fn repository() -> Repository {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), None).unwrap();
        Repository::open(backend, None, RepoOptions::default()).unwrap()
    }

    /// Reads of a few odd sizes, as a pipe or an archive entry gives them.
    struct Dribble<'d> {
        data: &'d [u8],
        reads: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            let n = [1, 7_000, 100_000, 33_333][self.reads % 4]
                .min(buf.len())
                .min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The buffer is cut where content puts cuts before its rest is moved
    /// to the front: the chunks stay exactly those FastCDC cuts from the
    /// whole stream, on random data (content cuts), zeros (every chunk
    /// `max` long) and the two mixed, whatever sizes the reads have.
    #[test]
    fn chunks_are_those_of_the_whole_stream() {
        let chunker = Chunker {
            min: 4 * 1024,
            avg: 16 * 1024,
            max: 64 * 1024,
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut data = Vec::new();
        for part in 0..24 {
            let len = 50_000 + part * 37_001;
            if part % 3 == 2 {
                data.resize(data.len() + len, 0);
            } else {
                data.extend((0..len).map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                }));
            }
        }
        let whole: Vec<usize> = fastcdc::v2020::FastCDC::new(
            &data,
            chunker.min as usize,
            chunker.avg as usize,
            chunker.max as usize,
        )
        .map(|c| c.length)
        .collect();
        let mut reader = ChunkReader::new(chunker);
        let mut streamed = Vec::new();
        let total = reader
            .chunks(
                Dribble {
                    data: &data,
                    reads: 0,
                },
                |chunk| {
                    streamed.push(chunk.len());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert!(whole.contains(&(chunker.max as usize)) && whole.len() > 100);
        assert_eq!(streamed, whole);
    }

    /// Random bytes from `state` (xorshift), with runs of zeros and a
    /// repeated stretch, so chunks come cut by content, cut at `max`, and
    /// twice the same.
    fn mixed_content(length: usize, state: &mut u64) -> Vec<u8> {
        let mut data = super::super::tests::random_bytes(length, state);
        if length > 600_000 {
            data[100_000..500_000].fill(0);
            data.copy_within(0..90_000, length - 90_000);
        }
        data
    }

    /// A large file's chunks are hashed by the workers: its ids are those
    /// the sequential path gives (the chunks FastCDC cuts from the whole
    /// file, each hashed), in order, for files just below, at and above
    /// the size that takes the parallel path and far above it, and every
    /// blob is stored once with exactly its chunk's bytes.
    #[test]
    fn a_large_files_ids_are_those_of_the_sequential_chunker() {
        let chunker = Chunker {
            min: 4 * 1024,
            avg: 16 * 1024,
            max: 64 * 1024,
        };
        let large = (LARGE_FILE_CHUNKS * u64::from(chunker.max)) as usize;
        let repository = repository();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for length in [
            0,
            1,
            chunker.min as usize - 1,
            large - 1,
            large,
            large + 1,
            3 * chunker.max as usize + 12_345,
            40 * chunker.max as usize + 4_097,
        ] {
            let data = mixed_content(length, &mut state);
            let expected: Vec<BlobId> = fastcdc::v2020::FastCDC::new(
                &data,
                chunker.min as usize,
                chunker.avg as usize,
                chunker.max as usize,
            )
            .map(|c| {
                repository
                    .keys()
                    .blob_id(&data[c.offset..c.offset + c.length])
            })
            .collect();
            let (content, _) = with_pipeline(&repository, |submitter| {
                let progress = |_: Progress| {};
                let mut builder = Builder::new(submitter, chunker, &progress);
                let mut node = Node::new(NodeKind::File, 0o644, 0, 0, 0);
                node.set_path(format!("file-{length}").as_bytes());
                node.size = length as u64;
                builder.add(
                    node,
                    Some(&mut Dribble {
                        data: &data,
                        reads: 0,
                    }),
                )
            })
            .unwrap();
            assert_eq!(content, expected, "{length} bytes");
            let mut restored = Vec::new();
            for id in &content {
                restored.extend(repository.read_blob(id).unwrap());
            }
            assert!(restored == data, "{length} bytes read back");
        }
    }

    /// Chunks hashed by the workers are checked against the repository
    /// there: a second backup of the same large file stores nothing, and
    /// the in-flight budget is all given back (nothing waits for it).
    #[test]
    fn a_large_file_already_stored_is_not_stored_again() {
        let chunker = Chunker {
            min: 4 * 1024,
            avg: 16 * 1024,
            max: 64 * 1024,
        };
        let repository = repository();
        let data = mixed_content(20 * chunker.max as usize, &mut 77);
        let back_up = || {
            with_pipeline(&repository, |submitter| {
                let progress = |_: Progress| {};
                let mut builder = Builder::new(submitter, chunker, &progress);
                let mut node = Node::new(NodeKind::File, 0o644, 0, 0, 0);
                node.set_path(b"large");
                node.size = data.len() as u64;
                builder.add(node, Some(&mut &data[..]))
            })
            .unwrap()
        };
        let (first, stats) = back_up();
        // The repeated stretch and the zeros are stored once.
        assert!(stats.new_blobs < first.len() as u64);
        let (second, stats) = back_up();
        assert_eq!(second, first);
        assert_eq!((stats.new_blobs, stats.stored_bytes), (0, 0));
    }

    /// The set of submitted ids holds only what no index names yet: once
    /// an index file names a pack, its blobs leave the set (and are then
    /// known to the index, so they are still not stored twice).
    #[test]
    fn indexed_blobs_leave_the_in_flight_set() {
        let repository = repository();
        let in_flight = InFlight::default();
        let ids: Vec<BlobId> = (0..1000u32)
            .map(|n| repository.keys().blob_id(&n.to_le_bytes()))
            .collect();
        in_flight.lock().unwrap().extend(ids.iter().copied());
        let mut saved = SavedPacks::new(&repository, &in_flight);
        let pack = IndexedPack {
            id: "ab".repeat(32),
            size: 1000 * 100,
            blobs: (ids.iter().enumerate())
                .map(|(n, id)| PackedBlob {
                    id: *id,
                    kind: BlobKind::Data,
                    offset: n as u32 * 100,
                    length: 100,
                    raw_length: 100,
                    compressed: false,
                    id_bound: false,
                })
                .collect(),
        };
        saved.unindexed.push(pack);
        saved.flush_index().unwrap();
        assert!(in_flight.lock().unwrap().is_empty());
        let index = repository.index();
        assert!(ids.iter().all(|id| index.contains(id)));
    }

    /// A blob that must wait for room while small blobs wait in the
    /// submitter's batch sends the batch first: they held room the
    /// pipeline never saw, and a chunk larger than the budget (which waits
    /// for an empty pipeline) waited for them for ever (an API backup of
    /// the reference volume hung so once the budget was 8 MiB).
    #[test]
    fn a_blob_waiting_for_room_sends_the_batch_that_holds_it() {
        let (done, finished) = sync_channel(1);
        std::thread::spawn(move || {
            let repository = repository();
            let stored = with_pipeline(&repository, |submitter| {
                submitter.submit(BlobKind::Data, b"a small blob, batched")?;
                submitter.submit(BlobKind::Data, &vec![9u8; IN_FLIGHT_BYTES + 1])?;
                submitter.submit(BlobKind::Data, b"another small one")?;
                Ok(())
            })
            .map(|(_, stats)| stats.new_blobs);
            let _ = done.send(stored);
        });
        let stored = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the pipeline finished");
        assert_eq!(stored.unwrap(), 3);
    }

    /// Runs `produce` in a pipeline on its own thread and returns how many
    /// blobs were stored, failing if it has not finished within a minute
    /// (a stalled budget waits for ever).
    fn finishes_within_a_minute(
        produce: impl FnOnce(&Submitter) -> Result<(), RepoError> + Send + 'static,
    ) -> u64 {
        let (done, finished) = sync_channel(1);
        std::thread::spawn(move || {
            let repository = repository();
            let stored = with_pipeline(&repository, produce).map(|(_, stats)| stats.new_blobs);
            let _ = done.send(stored);
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the pipeline finished")
            .unwrap()
    }

    /// Chunks of the largest size (larger than the budget with their
    /// overhead, so each waits for an empty pipeline) between small files
    /// never stall the pipeline.
    #[test]
    fn largest_chunks_between_small_files_never_stall() {
        let stored = finishes_within_a_minute(|submitter| {
            for n in 0..6u8 {
                submitter.submit(BlobKind::Data, &[n; 100])?;
                submitter.submit(BlobKind::Data, &vec![n; 8 << 20])?;
                submitter.submit(BlobKind::Data, &[n; 200])?;
            }
            Ok(())
        });
        assert_eq!(stored, 18);
    }

    /// A batch being filled holds no room in the budget: the pipeline's
    /// budget counts only what was sent, so a blob waiting for room never
    /// waits for blobs the pipeline cannot see.
    #[test]
    fn a_batch_being_filled_holds_no_room_in_the_budget() {
        let repository = repository();
        with_pipeline(&repository, |submitter| {
            submitter.submit(BlobKind::Data, b"a small blob, batched")?;
            assert!(!submitter.batch.lock().unwrap().0.is_empty());
            assert_eq!(submitter.budget.held(), 0);
            Ok(())
        })
        .unwrap();
    }

    /// Two threads submitting through one submitter: one streams small
    /// blobs, the other largest-size chunks. The small blobs left in the
    /// batch when their thread ends are sent only after both end; before
    /// the batch held no room, the large chunk waited for them for ever.
    #[test]
    fn small_blobs_from_another_thread_never_stall_a_large_chunk() {
        let stored = finishes_within_a_minute(|submitter| {
            std::thread::scope(|scope| {
                let small = scope.spawn(|| {
                    (0..2000u32).try_for_each(|n| {
                        submitter.submit(BlobKind::Data, &n.to_le_bytes()).map(drop)
                    })
                });
                for n in 0..4u8 {
                    submitter.submit(BlobKind::Data, &vec![n; 8 << 20])?;
                }
                small.join().unwrap()
            })
        });
        assert_eq!(stored, 2004);
    }

    /// A backup into a local directory streams its packs to their files:
    /// no pack's blobs are held in memory (the pack handed to the upload
    /// holds only its header), and each pack is named by the hash of its
    /// content, every blob read back as it was.
    #[test]
    fn packs_are_streamed_to_a_local_repository_not_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn super::super::Backend> = Arc::new(
            super::super::backend::local::LocalBackend::new(dir.path().join("repo")),
        );
        Repository::init(backend.clone(), None).unwrap();
        let repository = Repository::open(backend.clone(), None, RepoOptions::default()).unwrap();
        let blobs: Vec<Vec<u8>> = (0..40u64)
            .map(|n| mixed_content(1 << 20, &mut (n + 1)))
            .collect();
        let (ids, stats) = with_pipeline(&repository, |submitter| {
            blobs
                .iter()
                .map(|blob| submitter.submit(BlobKind::Data, blob))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
        assert!(stats.packs.len() >= 2, "{:?}", stats.packs);
        for (name, size) in &stats.packs {
            let bytes = backend.load(FileKind::Pack, name, None).unwrap();
            assert_eq!(bytes.len() as u64, *size);
            assert_eq!(&super::super::sha256_hex(&bytes), name);
        }
        for (id, blob) in ids.iter().zip(&blobs) {
            assert!(&repository.read_blob(id).unwrap() == blob);
        }

        let (sealed, packed) = sync_channel(QUEUE);
        let start = || FullPack::start(&repository);
        let budget = ByteBudget::new(IN_FLIGHT_BYTES);
        sealed
            .send(vec![Sealed {
                id: [1; 32],
                kind: BlobKind::Data,
                stored: vec![5u8; 1 << 20],
                raw_length: 1 << 20,
                compressed: false,
                id_bound: true,
            }])
            .unwrap();
        drop(sealed);
        fill_packs(packed, &budget, start, |pack| {
            assert!(pack.file.is_some());
            assert_eq!(
                (pack.builder.len(), pack.builder.data.capacity()),
                (1 << 20, 0)
            );
            Ok(())
        })
        .unwrap();
    }

    /// Tiny blobs are bounded by their count, not only their bytes: packs
    /// close at [`pack::MAX_BLOBS`](super::super::pack::MAX_BLOBS) blobs,
    /// index files are written every [`BLOBS_PER_INDEX`] blobs, and the
    /// in-flight budget lets at most one blob per [`BLOB_OVERHEAD`] bytes
    /// through (a million tiny files once held them all at once).
    #[test]
    fn tiny_blobs_are_bounded_by_count_in_packs_index_files_and_flight() {
        let repository = repository();
        let blobs = 2 * BLOBS_PER_INDEX + 100;
        with_pipeline(&repository, |submitter| {
            for n in 0..blobs as u64 {
                submitter.submit(BlobKind::Data, &n.to_le_bytes())?;
            }
            Ok(())
        })
        .unwrap();
        let index = repository.index();
        let packs = index.by_pack();
        let largest = packs.values().map(Vec::len).max().unwrap();
        assert_eq!(largest, super::super::pack::MAX_BLOBS);
        assert_eq!(packs.values().map(Vec::len).sum::<usize>(), blobs);
        // An index file is due once its packs reach BLOBS_PER_INDEX blobs,
        // checked per saved pack; how packs fill depends on the threads'
        // timing (a pack closes early when the budget waits), so the bound
        // is checked per file, not as a count of files.
        let names = index.files.clone();
        drop(index);
        assert!(names.len() >= 2, "{} index files", names.len());
        for name in &names {
            let bytes = repository.load_file(FileKind::Index, name).unwrap();
            let file = super::super::index::IndexFile::parse(&bytes).unwrap();
            let held: usize = file.packs.iter().map(|pack| pack.blobs.len()).sum();
            assert!(
                held < BLOBS_PER_INDEX + super::super::pack::MAX_BLOBS,
                "index/{name} names {held} blobs"
            );
        }

        let budget = ByteBudget::new(IN_FLIGHT_BYTES);
        let mut admitted = 0;
        while !budget.would_wait(held_in_flight(8)) {
            budget.acquire(held_in_flight(8)).unwrap();
            admitted += 1;
        }
        assert!(
            admitted <= IN_FLIGHT_BYTES / BLOB_OVERHEAD,
            "{admitted} blobs"
        );
    }

    /// A backup's trees are not held until its end: tree packs are handed
    /// to the uploads at [`TREE_PACK_SIZE`], each with its room bounded
    /// by that size (20 MiB of trees were one 17 MiB pack and more).
    #[test]
    fn tree_packs_are_saved_at_a_few_mib_not_held_for_the_whole_backup() {
        let (sealed, blobs) = sync_channel(QUEUE);
        let budget = ByteBudget::new(IN_FLIGHT_BYTES);
        let tree_bytes = 20 << 20;
        let producer = std::thread::spawn(move || {
            for n in 0..(tree_bytes / 10_000) as u32 {
                let blob = Sealed {
                    id: [n as u8; 32],
                    kind: BlobKind::Tree,
                    stored: vec![7u8; 10_000],
                    raw_length: 10_000,
                    compressed: false,
                    id_bound: true,
                };
                sealed.send(vec![blob]).unwrap();
            }
        });
        let mut saved = Vec::new();
        fill_packs(
            blobs,
            &budget,
            || Ok(FullPack::in_memory()),
            |pack| {
                let data = &pack.builder.data;
                saved.push((data.len(), data.capacity()));
                Ok(())
            },
        )
        .unwrap();
        producer.join().unwrap();
        assert!(saved.len() >= 5, "{saved:?}");
        for (filled, capacity) in saved {
            assert!(
                filled <= TREE_PACK_SIZE,
                "{filled} bytes of trees in one pack"
            );
            assert!(capacity <= TREE_PACK_SIZE, "{capacity} bytes reserved");
        }
    }

    /// A tree pack takes room as its trees come (a few hundred KB for most
    /// backups), never more than twice its content nor more than a pack.
    #[test]
    fn tree_packs_grow_with_their_content_up_to_a_pack() {
        let mut builder = PackBuilder::default();
        let tree = vec![7u8; 10_000];
        let mut added = 0;
        while builder.fits(tree.len()) {
            make_tree_room(&mut builder, tree.len());
            builder.add([1; 32], BlobKind::Tree, &tree, tree.len(), false, true);
            added += tree.len();
            let capacity = builder.data.capacity();
            assert!(capacity <= PACK_ROOM, "{capacity} bytes reserved");
            assert!(
                capacity <= (2 * added).max(TREE_PACK_START),
                "{capacity} bytes reserved for {added}"
            );
        }
    }
}
