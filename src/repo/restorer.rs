//! Restores: a snapshot out as a tar stream (for Docker's archive endpoint)
//! or straight into a directory.
//!
//! A decoder thread walks the tree and reads, authenticates, decompresses
//! and verifies each blob ahead of the writer (bounded channel), so reading
//! the repository and writing the output overlap. A blob that fails
//! verification stops the restore with an error naming the file: nothing is
//! silently written wrong.

use super::budget::ByteBudget;
use super::coalesce::{PackRegions, ReadPlan};
use super::crypto::BlobId;
use super::fsat::{self, Created, Dir, Existing, Metadata};
use super::notes::{Paths, TreeNote};
use super::pack::PackedBlob;
use super::partial::{Placement, WriteSet};
use super::recycle;
use super::tree::{Node, NodeKind};
use super::xattr;
use super::{Progress, RepoError, Repository, Snapshot};
use std::cell::OnceCell;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// What the restore could not write exactly (tar restores).
    pub notes: Vec<TreeNote>,
}

enum Item {
    Node(Node),
    Data(Vec<u8>),
    Failed(RepoError),
}

/// What the walker hands a decode worker: entries pass through, blobs are
/// read, authenticated, decompressed and verified there.
enum Task {
    Node(Node),
    Blob {
        path: String,
        id: BlobId,
        locations: Vec<(String, PackedBlob)>,
    },
    Failed(RepoError),
}

/// Entries the decoder may be ahead of the writer: many entries keep small
/// files flowing.
const AHEAD: usize = 256;
/// Decode workers: one core decrypting and decompressing could not keep up
/// with the writer on database-like files (1.4 of 2 cores busy). Against a
/// remote store there are as many as the backend takes requests in flight,
/// each reading its batch's packs in long stretches.
const DECODERS: usize = 2;

/// Buffers a decoder holds for one blob besides the decoded bytes ahead:
/// the decrypted one (a chunk is at most 8 MiB; zstd's bound adds little).
const MAX_BLOB_BUFFERS: usize = 8 << 20;

/// How the work is cut: it goes over in batches (a thread wake-up per tiny
/// file costs more than writing it), each batch's blobs read by pack
/// together ([`super::coalesce::Prefetched`], or by the regions of their
/// packs the whole restore needs: [`PackRegions`]); the decoded bytes the decoders may be ahead
/// of the writer are bounded, so memory is independent of the snapshot
/// whatever its blob sizes.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    batch: usize,
    batch_bytes: usize,
    ahead_bytes: usize,
    /// A batch holding at most this many bytes (its next blob included)
    /// waits for room whole instead of being handed over as it is; at
    /// most the budget, or the room it waits for could never come.
    whole_batch_waits: usize,
}

/// A local disk: small batches keep the writer busy from the first file.
const LOCAL_PACING: Pacing = Pacing {
    batch: 64,
    batch_bytes: 256 << 10,
    ahead_bytes: 16 << 20,
    // Handed over at once: the decoders keep the writer busy.
    whole_batch_waits: 0,
};

/// A remote store: batches of several MiB, so that each is a request or
/// two of whole stretches of a pack (a batch of 256 KiB made a restore of
/// the reference volume from Garage some 4,000 requests: 85 s where restic
/// takes 4). Four workers (a read in flight each, or decoding) with
/// 8 MiB each and 24 MiB decoded ahead, beside the pack regions held
/// ([`super::coalesce::REGIONS_HELD`]) and four reads ahead, bound a
/// restore's memory: stored bytes waiting are worth more than decoded
/// ones (48 MiB decoded and 32 MiB of regions peaked at 145–156 MB on
/// the reference volume from Garage, 24 and 56 MiB at 141–145 MB, as fast).
const REMOTE_PACING: Pacing = Pacing {
    batch: 4096,
    batch_bytes: 8 << 20,
    ahead_bytes: 24 << 20,
    whole_batch_waits: 16 << 20,
};

/// The walker's side: tasks gathered into batches, dealt to the decode
/// workers in turn (the writer takes the results back in the same turn, so
/// order is kept without sequence numbers).
struct Dealer<'b> {
    workers: Vec<SyncSender<Vec<Task>>>,
    next: usize,
    batch: Vec<Task>,
    bytes: usize,
    budget: &'b ByteBudget,
    pacing: Pacing,
}

impl Dealer<'_> {
    fn flush(&mut self) -> Result<(), RepoError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.batch);
        self.bytes = 0;
        let worker = &self.workers[self.next % self.workers.len()];
        self.next += 1;
        worker
            .send(full)
            .map_err(|_| RepoError::Source("restore writer stopped".into()))
    }

    fn push(&mut self, task: Task) -> Result<(), RepoError> {
        self.batch.push(task);
        if self.batch.len() >= self.pacing.batch || self.bytes >= self.pacing.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Room for the blob's decoded bytes is taken here, in tree order, so
    /// the writer (which frees it in the same order) can always go on.
    fn push_blob(
        &mut self,
        path: String,
        id: BlobId,
        repository: &Repository,
    ) -> Result<(), RepoError> {
        let locations = repository.index().locations(&id);
        let size = locations
            .first()
            .map_or(0, |(_, blob)| blob.raw_length as usize);
        // Bytes held back in a batch are bytes the writer cannot free:
        // hand them over before waiting for room when the room could only
        // come from them. Otherwise the batch waits and stays whole: once
        // the budget is full the walker always waits, and handing over
        // whatever it held then cut a remote restore into batches of a
        // blob or two, each a request.
        if self.budget.would_wait(size) && self.bytes + size > self.pacing.whole_batch_waits {
            self.flush()?;
        }
        self.budget.acquire(size)?;
        self.bytes += size;
        self.push(Task::Blob {
            path,
            id,
            locations,
        })
    }
}

/// Which entries a restore writes: all, or those a partial restore places
/// (in the live tree, or in a directory that was new or empty).
#[derive(Clone, Copy)]
enum Entries<'s> {
    All,
    Placed(&'s WriteSet),
    PlacedInNew(&'s WriteSet),
}

impl Entries<'_> {
    fn placement(&self, node: &Node) -> Placement {
        match self {
            Entries::All => Placement::Write,
            Entries::Placed(set) | Entries::PlacedInNew(set) => {
                set.placement(&String::from_utf8_lossy(&node.path_bytes()))
            }
        }
    }

    /// What a write does with a name that exists already: a directory
    /// that was new or empty holds only what someone put there meanwhile.
    fn existing(&self) -> Existing {
        match self {
            Entries::PlacedInNew(_) => Existing::Refuse,
            Entries::All | Entries::Placed(_) => Existing::Replace,
        }
    }
}

fn walk(repository: &Repository, snapshot: &Snapshot, entries: Entries, mut dealer: Dealer) {
    let result = repository.for_each_admitted_node_last(snapshot, |node| {
        if entries.placement(&node) == Placement::Skip {
            return Ok(());
        }
        let ids = node.content.clone();
        let path = node.display_path();
        dealer.push(Task::Node(node))?;
        for id in ids {
            dealer.push_blob(path.clone(), id, repository)?;
        }
        Ok(())
    });
    if let Err(error) = result.and_then(|()| dealer.flush()) {
        dealer.batch.push(Task::Failed(error));
        let _ = dealer.flush();
    }
}

/// The regions of packs a remote restore reads ([`PackRegions`]), from a
/// walk of the entries it writes (the tree is in the tree cache by now:
/// the restore checked it before); none for a local disk, whose batches
/// read as they did.
fn regions_to_read(
    repository: &Repository,
    snapshot: &Snapshot,
    entries: Entries,
    plan: ReadPlan,
) -> Result<PackRegions, RepoError> {
    if !plan.remote {
        return Ok(PackRegions::default());
    }
    let mut reads = Vec::new();
    repository.for_each_admitted_node(snapshot, |node| {
        if entries.placement(&node) != Placement::Skip {
            let index = repository.index();
            reads.extend(
                node.content
                    .iter()
                    .filter_map(|id| index.locations(id).into_iter().next()),
            );
        }
        Ok(())
    })?;
    Ok(PackRegions::plan(&reads, plan))
}

fn decode_batches(
    repository: &Repository,
    regions: &PackRegions,
    plan: ReadPlan,
    tasks: Receiver<Vec<Task>>,
    out: SyncSender<Vec<Item>>,
) {
    for batch in tasks {
        let wanted: Vec<&(String, PackedBlob)> = batch
            .iter()
            .filter_map(|task| match task {
                Task::Blob { locations, .. } => locations.first(),
                _ => None,
            })
            .collect();
        let prefetched = regions.read(repository, &wanted, plan);
        let items = batch
            .into_iter()
            .map(|task| match task {
                Task::Node(node) => Item::Node(node),
                Task::Failed(error) => Item::Failed(error),
                Task::Blob {
                    path,
                    id,
                    locations,
                } => match prefetched.blob(repository, &locations) {
                    Ok(data) => Item::Data(data),
                    Err(detail) => Item::Failed(RepoError::BadBlob {
                        path,
                        blob: hex::encode(&id[..8]),
                        detail,
                    }),
                },
            })
            .collect();
        if out.send(items).is_err() {
            return;
        }
    }
}

/// Runs the walker and the decode workers beside `write`, which consumes
/// the items in tree order.
fn with_decoder<T>(
    repository: &Repository,
    snapshot: &Snapshot,
    entries: Entries,
    write: impl FnOnce(&mut Items) -> Result<T, RepoError>,
) -> Result<T, RepoError> {
    let plan = ReadPlan::for_backend(repository.backend());
    let pacing = if plan.remote {
        REMOTE_PACING
    } else {
        LOCAL_PACING
    };
    let regions = regions_to_read(repository, snapshot, entries, plan)?;
    let regions = &regions;
    let budget = ByteBudget::new(pacing.ahead_bytes);
    // Decoded buffers come back from the writer for the decoders' next
    // blobs instead of being freed and mapped again (see
    // [`recycle::reserve`]): the decoded bytes ahead, and a blob being
    // decrypted and decompressed on each decoder. Not against a remote
    // store, whose peak is near its bound already and whose time is
    // waiting for requests.
    let _reusing =
        (!plan.remote).then(|| recycle::reserve(pacing.ahead_bytes + DECODERS * MAX_BLOB_BUFFERS));
    // Against a remote store half the reads in flight are the decode
    // workers' own, half read ahead ([`PackRegions::read_ahead`]): each
    // worker holds a batch, so eight of them (255 MB peak on the
    // reference volume) cost more memory than their reads gain.
    let decoders = DECODERS.max(plan.in_flight / 2);
    let depth = (AHEAD / pacing.batch / decoders).max(1);
    // The workers together keep `in_flight` reads going: one each.
    let worker_plan = ReadPlan {
        in_flight: 1,
        ..plan
    };
    let (mut workers, mut results) = (Vec::new(), Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..decoders {
            let (task_sender, tasks) = sync_channel(depth);
            let (out, received) = sync_channel(depth);
            workers.push(task_sender);
            results.push(received);
            scope.spawn(move || decode_batches(repository, regions, worker_plan, tasks, out));
        }
        // Regions read ahead of the workers, while they decode and the
        // writer writes: reads stay in flight however the work is cut.
        if plan.remote {
            for _ in 0..plan.in_flight - decoders.min(plan.in_flight) {
                scope.spawn(|| regions.read_ahead(repository));
            }
        }
        let dealer = Dealer {
            workers,
            next: 0,
            batch: Vec::new(),
            bytes: 0,
            budget: &budget,
            pacing,
        };
        scope.spawn(|| walk(repository, snapshot, entries, dealer));
        let mut items = Items {
            results,
            next: 0,
            current: Vec::new().into_iter(),
            budget: &budget,
        };
        let result = write(&mut items);
        drop(items); // lets the decoder stop if the writer gave up early
        budget.close();
        regions.close();
        result
    })
}

struct Items<'b> {
    results: Vec<Receiver<Vec<Item>>>,
    next: usize,
    current: std::vec::IntoIter<Item>,
    budget: &'b ByteBudget,
}

impl Items<'_> {
    /// The next item, `None` once the decoder is done.
    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            let worker = &self.results[self.next % self.results.len()];
            self.next += 1;
            self.current = worker.recv().ok()?.into_iter();
        }
    }

    fn next_node(&mut self) -> Result<Option<Node>, RepoError> {
        match self.next() {
            Some(Item::Node(node)) => Ok(Some(node)),
            Some(Item::Failed(error)) => Err(error),
            Some(Item::Data(_)) => Err(RepoError::Source("restore out of step".into())),
            None => Ok(None),
        }
    }

    fn next_data(&mut self) -> Result<Vec<u8>, RepoError> {
        match self.next() {
            Some(Item::Data(data)) => {
                self.budget.release(data.len());
                Ok(data)
            }
            Some(Item::Failed(error)) => Err(error),
            _ => Err(RepoError::Source("restore out of step".into())),
        }
    }
}

/// Reads a file's content blobs from the decoder as one stream of exactly
/// the size its node records (a tar header promises that many bytes: more
/// or fewer would end as a truncated or NUL-padded file on Docker's side).
struct Content<'a, 'b> {
    items: &'a mut Items<'b>,
    node: &'a Node,
    delivered: u64,
    remaining_blobs: usize,
    current: Vec<u8>,
    position: usize,
    failure: Option<RepoError>,
    /// Whether some block of the content is all zeros (a hole a direct
    /// restore would keep).
    zeros: bool,
    /// Called with the bytes of the file delivered so far, blob by blob
    /// (progress inside a large file).
    delivering: &'a dyn Fn(u64),
}

impl io::Read for Content<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.remaining_blobs == 0 {
                if self.delivered != self.node.size {
                    return Err(self.fail(content_size_mismatch(self.node, self.delivered)));
                }
                return Ok(0);
            }
            match self.items.next_data() {
                Ok(data) => {
                    (self.delivering)(self.delivered);
                    recycle::give(std::mem::replace(&mut self.current, data));
                    self.position = 0;
                    self.remaining_blobs -= 1;
                    self.zeros = self.zeros || self.current.chunks_exact(HOLE_BLOCK).any(is_zero);
                }
                Err(error) => return Err(self.fail(error)),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        if self.delivered + n as u64 > self.node.size {
            let longer = self.delivered + (self.current.len() - self.position) as u64;
            return Err(self.fail(content_size_mismatch(self.node, longer)));
        }
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        self.delivered += n as u64;
        Ok(n)
    }
}

impl Content<'_, '_> {
    fn fail(&mut self, error: RepoError) -> io::Error {
        let message = error.to_string();
        self.failure = Some(error);
        io::Error::other(message)
    }
}

/// A file whose content blobs add up to another size than its node says:
/// refused in both modes, so neither writes it truncated or padded.
fn content_size_mismatch(node: &Node, content: u64) -> RepoError {
    RepoError::Corrupt {
        what: format!("file {}", node.display_path()),
        detail: format!(
            "{content}{} bytes of content, the tree says {}",
            if content > node.size { " or more" } else { "" },
            node.size
        ),
    }
}

/// The files' sizes against what the snapshot's summary claims.
pub(crate) fn check_totals(snapshot: &Snapshot, totals: TreeTotals) -> Result<(), RepoError> {
    if totals.bytes != snapshot.summary.bytes || totals.files != snapshot.summary.files {
        return Err(RepoError::Corrupt {
            what: format!("snapshot {}", snapshot.id.short()),
            detail: format!(
                "its tree holds {} bytes in {} files, its summary claims {} bytes in {} files",
                totals.bytes, totals.files, snapshot.summary.bytes, snapshot.summary.files
            ),
        });
    }
    Ok(())
}

/// What a tree restore writes, as the tree and the index tell before any
/// content is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeTotals {
    pub files: u64,
    pub bytes: u64,
}

/// `root/path`, or `root` itself for the root node.
fn prefixed(root: &str, raw: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut name = root.as_bytes().to_vec();
    if !raw.is_empty() {
        name.push(b'/');
        name.extend_from_slice(raw);
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&name))
}

fn relative_name(root: &str, node: &Node) -> PathBuf {
    prefixed(root, &node.path_bytes())
}

fn target_path(root: &str, node: &Node, hard_link: bool) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let raw = node.target_bytes().unwrap_or_default();
    if hard_link {
        prefixed(root, &raw)
    } else {
        PathBuf::from(std::ffi::OsStr::from_bytes(&raw))
    }
}

/// Appends `node` to `tar` as `name`, with exact mode (setuid, setgid and
/// sticky included), owner, mtime, extended attributes as PAX records and
/// device numbers; a file's bytes come from `content`, a link points at
/// `link`. Sockets have no tar type: the caller leaves them out.
pub(crate) fn append_tar_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    node: &Node,
    name: &Path,
    link: &Path,
    content: &mut dyn io::Read,
) -> io::Result<()> {
    let pax = xattr::pax_records(node);
    if !pax.is_empty() {
        let records = pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        tar.append_pax_extensions(records)?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(node.mode);
    header.set_uid(node.uid);
    header.set_gid(node.gid);
    header.set_mtime(node.mtime.max(0) as u64);
    header.set_size(0);
    match node.kind {
        NodeKind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
            tar.append_data(&mut header, name, content)
        }
        NodeKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut header, name, io::empty())
        }
        NodeKind::Symlink | NodeKind::Hardlink => {
            header.set_entry_type(if node.kind == NodeKind::Hardlink {
                tar::EntryType::Link
            } else {
                tar::EntryType::Symlink
            });
            tar.append_link(&mut header, name, link)
        }
        NodeKind::Socket => Ok(()),
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            header.set_entry_type(match node.kind {
                NodeKind::Fifo => tar::EntryType::Fifo,
                NodeKind::CharDevice => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            if let Some((major, minor)) = node.device {
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
            }
            tar.append_data(&mut header, name, io::empty())
        }
    }
}

impl Repository {
    /// Checks, from the tree and the index alone, that a tree snapshot can
    /// be restored as it claims (both restores do this first), before
    /// anything is written or sent to Docker (whose error, once a stream is cut, says only that it was):
    /// the guard admits every entry, every content blob is indexed, each
    /// file's blobs add up to its size, no other kind of entry carries
    /// content, and the sizes add up to what the snapshot's summary
    /// claims (a tree claiming 10 B that holds a 1 TB file is refused, not
    /// written for minutes). Returns what the restore will write.
    pub fn tree_totals(&self, snapshot: &Snapshot) -> Result<TreeTotals, RepoError> {
        let mut totals = TreeTotals::default();
        self.for_each_admitted_node(snapshot, |node| {
            self.check_node_content(&node)?;
            if node.kind == NodeKind::File {
                totals.files += 1;
                totals.bytes += node.size;
            }
            Ok(())
        })?;
        check_totals(snapshot, totals)?;
        Ok(totals)
    }

    /// One entry's content against what the index says of it: a file's
    /// blobs all indexed and adding up to its size; nothing else carrying
    /// content. Shared by restores (before writing) and `check`.
    pub(crate) fn check_node_content(&self, node: &Node) -> Result<(), RepoError> {
        if node.kind != NodeKind::File {
            if !node.content.is_empty() {
                return Err(RepoError::Corrupt {
                    what: format!("entry {}", node.display_path()),
                    detail: format!("a {:?} that carries content", node.kind).to_lowercase(),
                });
            }
            return Ok(());
        }
        let mut length = 0u64;
        let index = self.index();
        for id in &node.content {
            let Some(raw_length) = index.raw_length(id) else {
                return Err(RepoError::BadBlob {
                    path: node.display_path(),
                    blob: hex::encode(&id[..8]),
                    detail: "no pack holds it".to_string(),
                });
            };
            length += u64::from(raw_length);
        }
        if length != node.size {
            return Err(content_size_mismatch(node, length));
        }
        Ok(())
    }

    /// Writes the snapshot as a tar stream whose entries are `root`,
    /// `root/…` (the root directory first, so it can carry the root's own
    /// mode, owner and mtime), with exact modes (setuid/setgid/sticky
    /// included), owners and mtimes, GNU long names, hard links as links.
    pub fn restore_tar(
        &self,
        snapshot: &Snapshot,
        root: &str,
        out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.restore_tar_entries(snapshot, root, Entries::All, out, progress)
    }

    /// [`Repository::restore_tar`] of only the entries of `write`: the
    /// directories it only enters are left out of the stream (Docker keeps
    /// an existing directory an entry is extracted into).
    pub fn restore_tar_selected(
        &self,
        snapshot: &Snapshot,
        root: &str,
        write: &WriteSet,
        out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.restore_tar_entries(snapshot, root, Entries::Placed(write), out, progress)
    }

    fn restore_tar_entries(
        &self,
        snapshot: &Snapshot,
        root: &str,
        entries: Entries,
        out: impl Write,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.tree_totals(snapshot)?;
        with_decoder(self, snapshot, entries, |items| {
            let mut tar = tar::Builder::new(out);
            let mut stats = RestoreStats::default();
            let write_error = |e: io::Error| RepoError::io("writing the restore stream")(e);
            let (mut holes, mut sockets) = (Paths::default(), Paths::default());
            while let Some(node) = items.next_node()? {
                if entries.placement(&node) == Placement::Enter {
                    continue;
                }
                if node.kind == NodeKind::Socket {
                    sockets.push(node.display_path());
                    continue;
                }
                let name = relative_name(root, &node);
                let link = target_path(root, &node, node.kind == NodeKind::Hardlink);
                match node.kind {
                    NodeKind::File => {
                        let delivering = within_file(progress, &stats);
                        let mut content = Content {
                            items,
                            node: &node,
                            delivered: 0,
                            remaining_blobs: node.content.len(),
                            current: Vec::new(),
                            position: 0,
                            failure: None,
                            zeros: false,
                            delivering: &delivering,
                        };
                        let written = append_tar_entry(&mut tar, &node, &name, &link, &mut content);
                        if let Some(failure) = content.failure.take() {
                            return Err(failure);
                        }
                        written.map_err(write_error)?;
                        if content.zeros {
                            holes.push(node.display_path());
                        }
                        stats.files += 1;
                        stats.bytes += node.size;
                    }
                    _ => {
                        append_tar_entry(&mut tar, &node, &name, &link, &mut io::empty())
                            .map_err(write_error)?;
                        if node.kind == NodeKind::Dir {
                            stats.dirs += 1;
                        }
                    }
                }
                progress(Progress {
                    files: stats.files,
                    bytes: stats.bytes,
                    current: None,
                });
            }
            tar.into_inner()
                .and_then(|mut out| out.flush())
                .map_err(write_error)?;
            if !sockets.is_empty() {
                stats
                    .notes
                    .push(TreeNote::SocketsNotRestored { paths: sockets });
            }
            if !holes.is_empty() {
                stats.notes.push(TreeNote::HolesWrittenOut { paths: holes });
            }
            Ok(stats)
        })
    }

    /// Restores into `target` directly (which must be empty or missing):
    /// the same tree a tar restore gives. Every entry is made relative to
    /// its parent's open directory and nothing is followed (see [`fsat`]).
    pub fn restore_dir(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.restore_entries_into(snapshot, target, Entries::All, progress)
    }

    /// Writes only the entries of `write` into `target` (which may hold
    /// other files: they are left alone), entering the directories above
    /// them without changing them; what `write` names replaces what is
    /// there. The whole tree still passes the guard and the size checks.
    pub fn restore_dir_selected(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        write: &WriteSet,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.restore_entries_into(snapshot, target, Entries::Placed(write), progress)
    }

    /// [`Repository::restore_dir_selected`] into a directory that was new
    /// or empty (`restore --path --into`): an entry that appears there
    /// while the restore runs is never replaced; the restore fails on it.
    pub fn restore_dir_selected_new(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        write: &WriteSet,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        self.restore_entries_into(snapshot, target, Entries::PlacedInNew(write), progress)
    }

    fn restore_entries_into(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        entries: Entries,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RestoreStats, RepoError> {
        let existing = entries.existing();
        let io_at = |shown: &str| {
            let context = format!(
                "restoring {}",
                target.join(shown.trim_start_matches('/')).display()
            );
            move |e: io::Error| RepoError::io(context)(e)
        };
        self.tree_totals(snapshot)?;
        std::fs::create_dir_all(target).map_err(io_at("/"))?;
        let root = Dir::open_root(target).map_err(io_at("/"))?;
        let creator = fsat::Creator::of_this_process();
        // What a new file gets in each open directory, asked at its first file.
        let new_files = |dir: &Dir, known: &OnceCell<Option<Created>>| {
            *known.get_or_init(|| creator.and_then(|c| dir.new_files(&c).ok().flatten()))
        };
        let root_new_files = OnceCell::new();
        with_decoder(self, snapshot, entries, |items| {
            let mut stats = RestoreStats::default();
            // Directories open from the root down to the current parent;
            // a directory's mode and times are set when it is left, so
            // creating its children does not change them afterwards (a
            // directory only passed through keeps its own: no metadata).
            #[allow(clippy::type_complexity)]
            let mut open: Vec<(
                Vec<u8>,
                Dir,
                Option<Metadata>,
                OnceCell<Option<Created>>,
            )> = Vec::new();
            let mut root_meta = None;
            while let Some(node) = items.next_node()? {
                let shown = node.display_path();
                let path = node.path_bytes();
                let placement = entries.placement(&node);
                if path.is_empty() {
                    if placement == Placement::Write {
                        root.clear_xattrs().map_err(io_at("/"))?;
                        root_meta = Some(metadata(&node));
                        stats.dirs += 1;
                    }
                    continue;
                }
                let (parent, name) = split_parent(&path);
                while open
                    .last()
                    .is_some_and(|(dir, _, _, _)| dir.as_slice() != parent)
                {
                    let (_, dir, meta, _) = open.pop().expect("not empty");
                    if let Some(meta) = meta {
                        dir.set_metadata(&meta).map_err(io_at(&shown))?;
                    }
                }
                if !parent.is_empty() && open.is_empty() {
                    // The guard admits no such tree; never guess a place.
                    return Err(RepoError::Corrupt {
                        what: format!("the tree of snapshot {}", snapshot.id.short()),
                        detail: format!("entry `{shown}` is not under a directory of the tree"),
                    });
                }
                let (here, here_new_files) = open
                    .last()
                    .map_or((&root, &root_new_files), |(_, dir, _, known)| (dir, known));
                let meta = metadata(&node);
                match node.kind {
                    NodeKind::Dir if placement == Placement::Enter => {
                        let dir = here.open_dir(name).map_err(io_at(&shown))?;
                        open.push((path.clone(), dir, None, OnceCell::new()));
                        continue;
                    }
                    NodeKind::Dir => {
                        let dir = here.make_dir(name).map_err(io_at(&shown))?;
                        open.push((path.clone(), dir, Some(meta), OnceCell::new()));
                        stats.dirs += 1;
                        continue;
                    }
                    NodeKind::File => {
                        let created = new_files(here, here_new_files);
                        let file = here
                            .create_file(name, existing, fsat::creation_mode(&meta, created))
                            .map_err(io_at(&shown))?;
                        let written = within_file(progress, &stats);
                        write_sparse(items, &node, &file, &written).map_err(|e| match e {
                            Failure::Repo(e) => e,
                            Failure::Io(e) => io_at(&shown)(e),
                        })?;
                        fsat::set_new_file_metadata(file.as_raw_fd(), &meta, created)
                            .map_err(io_at(&shown))?;
                        stats.files += 1;
                        stats.bytes += node.size;
                    }
                    NodeKind::Symlink => {
                        let link = node.target_bytes().unwrap_or_default();
                        here.symlink(&link, name, existing).map_err(io_at(&shown))?;
                        here.set_metadata_of(name, &meta, true)
                            .map_err(io_at(&shown))?;
                    }
                    NodeKind::Hardlink => {
                        let first = node.target_bytes().unwrap_or_default();
                        let (first_parent, first_name) = split_parent(&first);
                        let from = open_beneath(&root, first_parent).map_err(io_at(&shown))?;
                        here.hard_link(from.as_ref().unwrap_or(&root), first_name, name, existing)
                            .map_err(io_at(&shown))?;
                        continue;
                    }
                    NodeKind::Fifo
                    | NodeKind::CharDevice
                    | NodeKind::BlockDevice
                    | NodeKind::Socket => {
                        let kind = match node.kind {
                            NodeKind::Fifo => libc::S_IFIFO,
                            NodeKind::Socket => libc::S_IFSOCK,
                            NodeKind::CharDevice => libc::S_IFCHR,
                            _ => libc::S_IFBLK,
                        };
                        let (major, minor) = node.device.unwrap_or((0, 0));
                        here.make_node(name, kind, libc::makedev(major, minor), existing)
                            .map_err(io_at(&shown))?;
                        here.set_metadata_of(name, &meta, false)
                            .map_err(io_at(&shown))?;
                    }
                }
                progress(Progress {
                    files: stats.files,
                    bytes: stats.bytes,
                    current: None,
                });
            }
            while let Some((path, dir, meta, _)) = open.pop() {
                let shown = String::from_utf8_lossy(&path).into_owned();
                if let Some(meta) = meta {
                    dir.set_metadata(&meta).map_err(io_at(&shown))?;
                }
            }
            if let Some(meta) = root_meta {
                root.set_metadata(&meta).map_err(io_at("/"))?;
            }
            Ok(stats)
        })
    }
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (b"", path),
    }
}

/// The directory `relative` under `root`, walked one name at a time without
/// following anything; `None` for the root itself.
fn open_beneath(root: &Dir, relative: &[u8]) -> io::Result<Option<Dir>> {
    let mut current: Option<Dir> = None;
    for name in relative.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
        let next = current.as_ref().unwrap_or(root).open_dir(name)?;
        current = Some(next);
    }
    Ok(current)
}

fn metadata(node: &Node) -> Metadata {
    Metadata {
        uid: node.uid as libc::uid_t,
        gid: node.gid as libc::gid_t,
        mode: (node.mode & 0o7777) as libc::mode_t,
        mtime: node.mtime,
        xattrs: node.xattrs.clone(),
    }
}

enum Failure {
    Repo(RepoError),
    Io(io::Error),
}

/// Blocks of zeros are not written: a few between data are allocated all
/// the same ([`SMALL_ZEROS`]), longer runs are left holes (the sparse
/// regions of a source), and the length is set at the end.
const HOLE_BLOCK: usize = 4096;

/// Writes a file's content blobs at their offsets, skipping zero blocks.
/// Progress inside the file a restore writes after `stats`: told the
/// bytes of that file so far.
fn within_file<'p>(
    progress: &'p (dyn Fn(Progress) + Sync),
    stats: &RestoreStats,
) -> impl Fn(u64) + 'p {
    let (files, before) = (stats.files, stats.bytes);
    move |so_far| {
        progress(Progress {
            files,
            bytes: before + so_far,
            current: None,
        })
    }
}

/// `written` is told the bytes of the file written so far, blob by blob.
fn write_sparse(
    items: &mut Items,
    node: &Node,
    file: &std::fs::File,
    written: &dyn Fn(u64),
) -> Result<(), Failure> {
    use std::os::unix::fs::FileExt;
    let mut offset = 0u64;
    let mut written_end = 0u64;
    let mut runs = Vec::new();
    for _ in 0..node.content.len() {
        written(offset);
        let data = items.next_data().map_err(Failure::Repo)?;
        data_runs(&data, offset, &mut runs);
        // Runs a few zero blocks apart are allocated together, then each
        // goes out in one write.
        for group in runs.chunk_by(|before, after| after.start - before.end < SMALL_ZEROS) {
            let (start, end) = (group[0].start, group[group.len() - 1].end);
            // One run leaves no hole to fill: a small file or a blob of
            // data only is written without the extra system call (one per
            // file made the small-files restore slower).
            if group.len() > 1 {
                reserve(file, offset + start as u64, end - start).map_err(Failure::Io)?;
            }
            for run in group {
                file.write_all_at(&data[run.clone()], offset + run.start as u64)
                    .map_err(Failure::Io)?;
            }
            written_end = offset + end as u64;
        }
        offset += data.len() as u64;
        recycle::give(data);
    }
    if offset != node.size {
        return Err(Failure::Repo(RepoError::Corrupt {
            what: format!("file {}", node.display_path()),
            detail: format!("{offset} bytes of content, the tree says {}", node.size),
        }));
    }
    if written_end < offset {
        file.set_len(offset).map_err(Failure::Io)?;
    }
    Ok(())
}

/// The runs of `data` (at `offset` of its file) other than whole blocks
/// of zeros, into `runs`.
fn data_runs(data: &[u8], offset: u64, runs: &mut Vec<std::ops::Range<usize>>) {
    runs.clear();
    let mut position = 0;
    let mut run_start = 0;
    while position < data.len() {
        let to_boundary = HOLE_BLOCK - ((offset as usize + position) % HOLE_BLOCK);
        let end = (position + to_boundary).min(data.len());
        let block = &data[position..end];
        if block.len() == to_boundary && is_zero(block) {
            if run_start < position {
                runs.push(run_start..position);
            }
            run_start = end;
        }
        position = end;
    }
    if run_start < data.len() {
        runs.push(run_start..data.len());
    }
}

/// Zeros shorter than this between data are allocated, not left holes:
/// a database's zero pages are written data in its source, and a hole
/// every few pages is what made writing slow ([`reserve`]); longer runs
/// are what sparse files hold.
const SMALL_ZEROS: usize = 256 << 10;

/// Allocates `length` bytes at `offset` before they are written, so the
/// zero blocks skipped among them are allocated (unwritten extents,
/// reading as zeros) rather than holes, and the writes go into one
/// extent: with a hole every few pages (a database's zero pages), ext4
/// kept a delayed extent per run and spent a sixth of the db-files
/// restore's CPU in `ext4_da_get_block_prep` (perf); with the range
/// allocated first, writes of that pattern took a quarter of the system
/// time. Range by range as they are written, never the whole file first:
/// a restore that fails part-way leaves a file no longer than what was
/// written. A file system without `fallocate` is written as before.
fn reserve(file: &std::fs::File, offset: u64, length: usize) -> io::Result<()> {
    // SAFETY: an open descriptor and plain integers; nothing is borrowed.
    let result = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            // The size grows with the writes only: a write failing within
            // the range leaves the file no longer than what was written.
            libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            length as libc::off_t,
        )
    };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(()),
        _ => Err(error),
    }
}

fn is_zero(block: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u128.
    let (head, words, tail) = unsafe { block.align_to::<u128>() };
    head.iter().all(|b| *b == 0) && words.iter().all(|w| *w == 0) && tail.iter().all(|b| *b == 0)
}
