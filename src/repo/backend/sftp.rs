//! A backend on an SFTP server, through the system `ssh` (one ControlMaster
//! connection, `openssh`) and an SFTP client speaking over it
//! (`openssh-sftp-client`): no SSH or SFTP written here. Follows the
//! contract in [`super`] and the layout of [`super::local`] (a repository
//! copied with rsync opens either way).
//!
//! * **Saves** write `.NAME.tmp-PID-N` in the file's directory, fsync it
//!   when the server offers `fsync@openssh.com`, then rename it over the
//!   name with `posix-rename@openssh.com` (a server without it is refused:
//!   a plain SFTP rename cannot replace a file). SFTP has no directory
//!   fsync; the rename is the server's rename(2).
//!   A save cut off leaves its temporary file, which `list` shows and
//!   [`Backend::remove_temporary`] removes (no other name).
//! * **Credentials** come only from the files the spec names (`identity`,
//!   `known_hosts`) or the ssh agent: ssh runs with a config of its own
//!   (`~/.ssh/config` and default key files are not read), in batch mode
//!   (never a prompt), with strict host key checking (never an automatic
//!   accept).
//! * **Failures**: a lost connection or a request without an answer is
//!   retried on a new connection with backoff ([`Patience`]); what is still
//!   failing after the last try keeps an `io::ErrorKind` that
//!   `failure::io_class` reads as transient (`TimedOut`,
//!   `ConnectionReset`), while a host that cannot be reached
//!   (`HostUnreachable`) and a refused login or host key
//!   (`PermissionDenied`) say the repository is unavailable.
//!
//! The [`super::Backend`] trait is synchronous and called from many threads,
//! some inside other tokio runtimes: the backend owns its runtime and
//! hands every call to it, waiting on a channel, never with `block_on`.

use super::{Backend, FileKind, layout_dir, not_temporary, temporary_path};
use bytes::BytesMut;
use openssh::{ControlPersist, KnownHosts, SessionBuilder};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::{Error as SftpError, Sftp, SftpOptions};
use std::future::Future;
use std::io::{self, ErrorKind};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the repository is: the spec's `sftp` block, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SftpTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The repository directory on the server; relative to the login
    /// directory unless absolute.
    pub path: String,
    /// The private key file; `None`: keys of the ssh agent only.
    pub identity: Option<PathBuf>,
    /// The known_hosts file; `None`: ssh's default (`~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
}

impl SftpTarget {
    /// `sftp://USER@HOST:PORT/PATH`, a path relative to the login
    /// directory as `/~/PATH` (as curl and rclone write it).
    pub fn location(&self) -> String {
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/~/{}", self.path)
        };
        format!("sftp://{}@{}:{}{path}", self.user, self.host, self.port)
    }

    fn known_hosts_shown(&self) -> String {
        match &self.known_hosts {
            Some(file) => file.display().to_string(),
            None => {
                "~/.ssh/known_hosts (ssh's default; `known_hosts` in the sftp block names another)"
                    .to_string()
            }
        }
    }
}

/// How long to wait and how often to try again.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Tries of one call, the first included.
    pub attempts: u32,
    /// The wait before the second try; doubled before each next one.
    pub first_backoff: Duration,
    /// ssh's `ConnectTimeout` (whole seconds).
    pub connect_timeout: Duration,
    /// The longest one call may take on one connection.
    pub call_timeout: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            attempts: 4,
            first_backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(300),
        }
    }
}

pub struct SftpBackend {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// ssh's config file and control sockets, removed when the backend is
    /// dropped (here, not in [`Shared`], which a worker thread may drop
    /// after the process has moved on).
    _state: tempfile::TempDir,
}

/// What the calls running on the runtime share.
struct Shared {
    target: SftpTarget,
    root: PathBuf,
    patience: Patience,
    link: tokio::sync::Mutex<Link>,
    /// Where ssh's config file and control sockets are.
    state: PathBuf,
}

/// The connection, once made; `generation` tells a caller whether the
/// connection it saw fail was already replaced.
#[derive(Default)]
struct Link {
    sftp: Option<Arc<Sftp>>,
    generation: u64,
}

/// Why a try failed.
#[derive(Debug)]
enum Fault {
    /// An answer: trying again gives the same (a missing file, a refused login).
    Final(io::Error),
    /// The connection is gone or did not answer: worth a new one.
    Lost(io::Error),
}

impl From<SftpError> for Fault {
    fn from(error: SftpError) -> Fault {
        classify(error)
    }
}

/// A server's answer is final; anything else means the connection failed.
fn classify(error: SftpError) -> Fault {
    let answer = |kind, what: &str, message: &openssh_sftp_client::error::SftpErrMsg| {
        Fault::Final(io::Error::new(
            kind,
            format!("the SFTP server said: {what} ({})", message.get().0),
        ))
    };
    match error {
        SftpError::SftpError(SftpErrorKind::NoSuchFile, message) => {
            answer(ErrorKind::NotFound, "no such file", &message)
        }
        SftpError::SftpError(SftpErrorKind::PermDenied, message) => {
            answer(ErrorKind::PermissionDenied, "permission denied", &message)
        }
        SftpError::SftpError(kind, message) => {
            answer(ErrorKind::Other, &format!("{kind:?}"), &message)
        }
        SftpError::UnsupportedExtension(extension) => Fault::Final(io::Error::new(
            ErrorKind::Unsupported,
            format!("the SFTP server does not offer the {extension} extension"),
        )),
        SftpError::RemoteChildSpawnError(error) => Fault::Lost(io::Error::new(
            ErrorKind::ConnectionReset,
            format!("the SFTP subsystem could not be started: {error}"),
        )),
        other => Fault::Lost(io::Error::new(
            ErrorKind::ConnectionReset,
            format!("the connection was lost: {other}"),
        )),
    }
}

/// What ssh's message says about a failed connection: a refused host key
/// or login is final, and so is a missing `ssh`; an unreachable host
/// and a timeout may pass.
fn connect_fault(target: &SftpTarget, error: openssh::Error) -> Fault {
    let source = match &error {
        openssh::Error::Connect(source) | openssh::Error::Master(source) => Some(source),
        _ => None,
    };
    let said = source
        .map(|s| s.to_string())
        .unwrap_or_else(|| error.to_string());
    let said = said.trim().replace("\r\n", "; ").replace('\n', "; ");
    let endpoint = format!("{}:{}", target.host, target.port);
    if said.contains("Host key verification failed")
        || said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || said.contains("host key is known")
    {
        let file = target.known_hosts_shown();
        return Fault::Final(io::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the host key of {endpoint} is not in the known_hosts file {file}, or differs \
                 from the one there, so ssh refused the connection (ssh said: {said}). Check the \
                 server's key fingerprint with its administrator, then add it: \
                 `ssh-keyscan -p {port} {host} >> {file_only}`",
                port = target.port,
                host = target.host,
                file_only = target
                    .known_hosts
                    .as_deref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "~/.ssh/known_hosts".into()),
            ),
        ));
    }
    if said.contains("Permission denied") {
        let key = match &target.identity {
            Some(file) => format!("the key {}", file.display()),
            None => "the ssh agent's keys (no `identity` in the sftp block)".to_string(),
        };
        return Fault::Final(io::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{endpoint} refused the login of {} with {key}: authorise the public key for \
                 that user on the server (ssh said: {said})",
                target.user
            ),
        ));
    }
    if source.is_some_and(|s| s.kind() == ErrorKind::NotFound)
        || matches!(error, openssh::Error::Ssh(_))
    {
        return Fault::Final(io::Error::new(
            ErrorKind::Unsupported,
            format!("the `ssh` command could not be run ({said}): install OpenSSH's client"),
        ));
    }
    let lower = said.to_lowercase();
    let kind = if lower.contains("timed out") {
        ErrorKind::TimedOut
    } else if lower.contains("refused")
        || lower.contains("unreachable")
        || lower.contains("no route")
        || lower.contains("could not resolve")
    {
        ErrorKind::HostUnreachable
    } else {
        ErrorKind::ConnectionReset
    };
    Fault::Lost(io::Error::new(
        kind,
        format!("cannot connect to {endpoint}: {said}"),
    ))
}

/// The key and known_hosts files the spec names, readable: ssh would
/// only say "Permission denied" or "host key unknown" about a typo.
fn named_files_readable(target: &SftpTarget) -> Result<(), Fault> {
    let named = [
        ("identity", &target.identity),
        ("known_hosts", &target.known_hosts),
    ];
    for (attribute, file) in named {
        if let Some(file) = file
            && let Err(error) = std::fs::File::open(file)
        {
            return Err(final_error(
                ErrorKind::InvalidInput,
                format!(
                    "cannot read the {attribute} file {} the sftp block names: {error}",
                    file.display()
                ),
            ));
        }
    }
    Ok(())
}

/// ssh's state directories are `lifeboat-ssh-PID-…` in the temporary
/// directory: a process killed with SIGKILL runs no drop and leaves its
/// own, and the pid in the name tells the next open which are whose.
const STATE_PREFIX: &str = "lifeboat-ssh-";

/// Removes the state directories under `temp` of processes that no longer
/// run. Only real directories of this user are touched (anyone may put a
/// name there, or a link), and a process that still runs keeps its own;
/// names without a pid (made before pids were in them) are left alone.
fn remove_state_of_gone_processes(temp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    // SAFETY: a plain getter.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(STATE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok());
        let Some(pid) = pid.filter(|pid| *pid > 0) else {
            continue;
        };
        let ours = entry
            .path()
            .symlink_metadata()
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == me);
        if ours && !process_runs(pid) {
            // Best effort: another process may be removing it too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process with this pid runs (one of another user counts).
fn process_runs(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 is sent to nobody; kill only checks the pid.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl SftpBackend {
    /// Removes the file at `path`; gone already on a retry is success
    /// (the try before may have removed it and lost only the answer).
    fn remove_path(&self, path: std::path::PathBuf) -> io::Result<()> {
        self.run(move |sftp, _, attempt| {
            let path = path.clone();
            async move {
                match sftp.fs().remove_file(&path).await.map_err(classify) {
                    Err(Fault::Final(e)) if e.kind() == ErrorKind::NotFound && attempt > 1 => {
                        Ok(())
                    }
                    other => other,
                }
            }
        })
    }

    pub fn new(target: SftpTarget) -> io::Result<SftpBackend> {
        SftpBackend::with_patience(target, Patience::default())
    }

    pub fn with_patience(target: SftpTarget, patience: Patience) -> io::Result<SftpBackend> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-sftp")
            .enable_all()
            .build()?;
        // Control sockets have a short path limit (108 bytes): /tmp, not
        // the spec directory.
        let temp = std::env::temp_dir();
        remove_state_of_gone_processes(&temp);
        let state = tempfile::Builder::new()
            .prefix(&format!("{STATE_PREFIX}{}-", std::process::id()))
            .tempdir_in(&temp)?;
        // ssh reads this file only (`-F`): no ~/.ssh/config, and without an
        // `identity` no default key files, only the agent.
        let config = match &target.identity {
            Some(_) => "# lifeboat: the key is given with -i\n".to_string(),
            None => "# lifeboat: keys of the ssh agent only\nIdentityFile none\n".to_string(),
        };
        std::fs::write(state.path().join("ssh_config"), config)?;
        Ok(SftpBackend {
            shared: Arc::new(Shared {
                root: PathBuf::from(&target.path),
                target,
                patience,
                link: Default::default(),
                state: state.path().to_path_buf(),
            }),
            runtime: Some(runtime),
            _state: state,
        })
    }

    /// Runs `call` on the backend's runtime with retries and waits for it
    /// on this thread (which may belong to another runtime).
    fn run<T, F, Fut>(&self, call: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<Sftp>, Arc<Shared>, u32) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Fault>> + Send,
    {
        let shared = self.shared.clone();
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(async move {
                let _ = done.send(shared.with_retries(call).await);
            });
        outcome
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the SFTP worker stopped")))
    }
}

impl Drop for SftpBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Close the connection (ends the ssh master) while the runtime
            // still runs, then stop it without blocking: drop may happen
            // inside another runtime.
            let shared = self.shared.clone();
            let (done, closed) = std::sync::mpsc::sync_channel(1);
            runtime.spawn(async move {
                shared.close().await;
                let _ = done.send(());
            });
            let _ = closed.recv_timeout(Duration::from_secs(5));
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    async fn with_retries<T, F, Fut>(self: Arc<Self>, call: F) -> io::Result<T>
    where
        F: Fn(Arc<Sftp>, Arc<Shared>, u32) -> Fut,
        Fut: Future<Output = Result<T, Fault>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lost = match self.connection().await {
                Ok((generation, sftp)) => {
                    match tokio::time::timeout(
                        self.patience.call_timeout,
                        call(sftp, self.clone(), attempt),
                    )
                    .await
                    {
                        Ok(Ok(value)) => return Ok(value),
                        Ok(Err(Fault::Final(error))) => return Err(error),
                        Ok(Err(Fault::Lost(error))) => {
                            self.forget(generation).await;
                            error
                        }
                        Err(_) => {
                            self.forget(generation).await;
                            io::Error::new(
                                ErrorKind::TimedOut,
                                format!(
                                    "no answer within {}s",
                                    self.patience.call_timeout.as_secs()
                                ),
                            )
                        }
                    }
                }
                Err(Fault::Final(error)) => return Err(error),
                Err(Fault::Lost(error)) => error,
            };
            if attempt >= self.patience.attempts {
                return Err(io::Error::new(
                    lost.kind(),
                    format!("{lost} (gave up after {attempt} tries)"),
                ));
            }
            let doubled = 1u32 << (attempt - 1).min(10);
            tokio::time::sleep(self.patience.first_backoff.saturating_mul(doubled)).await;
        }
    }

    /// The connection, made when there is none (one at a time: callers
    /// wait for the one connecting).
    async fn connection(&self) -> Result<(u64, Arc<Sftp>), Fault> {
        let mut link = self.link.lock().await;
        if let Some(sftp) = &link.sftp {
            return Ok((link.generation, sftp.clone()));
        }
        let sftp = Arc::new(self.connect().await?);
        link.generation += 1;
        link.sftp = Some(sftp.clone());
        Ok((link.generation, sftp))
    }

    async fn connect(&self) -> Result<Sftp, Fault> {
        let target = &self.target;
        named_files_readable(target)?;
        let mut builder = SessionBuilder::default();
        builder
            .user(target.user.clone())
            .port(target.port)
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(self.patience.connect_timeout.max(Duration::from_secs(1)))
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(&self.state)
            .config_file(self.state.join("ssh_config"))
            // A master left by a killed process ends by itself.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(60).expect("not zero"),
            ));
        if let Some(file) = &target.identity {
            builder.keyfile(file);
        }
        if let Some(file) = &target.known_hosts {
            builder.user_known_hosts_file(file);
        }
        let session = builder
            .connect(&target.host)
            .await
            .map_err(|e| connect_fault(target, e))?;
        let sftp = Sftp::from_session(session, SftpOptions::new()).await?;
        if !sftp.support_posix_rename() {
            return Err(Fault::Final(io::Error::new(
                ErrorKind::Unsupported,
                "the SFTP server does not offer posix-rename@openssh.com, without which a save \
                 cannot replace a file atomically (OpenSSH's server offers it)",
            )));
        }
        Ok(sftp)
    }

    /// Drops the connection `generation` if it is still the current one.
    async fn forget(&self, generation: u64) {
        let mut link = self.link.lock().await;
        if link.generation == generation {
            link.sftp = None;
        }
    }

    async fn close(&self) {
        let sftp = self.link.lock().await.sftp.take();
        if let Some(sftp) = sftp.and_then(|s| Arc::try_unwrap(s).ok()) {
            let _ = sftp.close().await;
        }
    }

    fn dir(&self, kind: FileKind, name: &str) -> PathBuf {
        layout_dir(&self.root, kind, name)
    }
}

/// A final error of our own making.
fn final_error(kind: ErrorKind, message: impl Into<String>) -> Fault {
    Fault::Final(io::Error::new(kind, message.into()))
}

/// Reads `range` of a file (all of it for `None`), each request at its own
/// offset so that a short answer never shifts the data.
async fn read_file(sftp: &Sftp, path: &Path, range: Option<Range<u64>>) -> Result<Vec<u8>, Fault> {
    use tokio::io::AsyncSeekExt;
    let mut file = sftp.open(path).await?;
    let (mut offset, end) = match &range {
        Some(range) => (range.start, Some(range.end)),
        None => (0, None),
    };
    let mut data = Vec::with_capacity(end.map_or(0, |end| end.saturating_sub(offset)) as usize);
    loop {
        let wanted = match end {
            Some(end) if offset >= end => break,
            Some(end) => (end - offset).min(u64::from(u32::MAX)) as u32,
            None => u32::MAX,
        };
        file.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(|e| final_error(ErrorKind::Other, e.to_string()))?;
        match file.read(wanted, BytesMut::new()).await? {
            Some(chunk) if !chunk.is_empty() => {
                offset += chunk.len() as u64;
                data.extend_from_slice(&chunk);
            }
            _ if end.is_some() => {
                return Err(final_error(
                    ErrorKind::UnexpectedEof,
                    format!("{} ends at byte {offset}, before {range:?}", path.display()),
                ));
            }
            _ => break,
        }
    }
    file.close().await?;
    Ok(data)
}

/// Writes `data` to `temporary`, fsyncs it when the server can, and
/// renames it to `name` in `dir`; creates `dir` when missing.
async fn write_file(
    sftp: &Sftp,
    dir: &Path,
    temporary: &Path,
    name: &str,
    data: &[u8],
) -> Result<(), Fault> {
    let mut options = sftp.options();
    options.write(true).create(true).truncate(true);
    let open = || options.open(temporary);
    let mut file = match open().await.map_err(classify) {
        Err(Fault::Final(e)) if e.kind() == ErrorKind::NotFound => {
            make_dirs(sftp, dir).await?;
            open().await?
        }
        other => other?,
    };
    file.write_all(data).await?;
    if sftp.support_fsync() {
        file.sync_all().await?;
    }
    file.close().await?;
    sftp.fs().rename(temporary, dir.join(name)).await?;
    Ok(())
}

/// `mkdir -p`: every missing directory of `dir`, from the top down
/// (another thread creating one first is fine).
async fn make_dirs(sftp: &Sftp, dir: &Path) -> Result<(), Fault> {
    let mut fs = sftp.fs();
    let mut missing = Vec::new();
    for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match fs.metadata(ancestor).await.map_err(classify) {
            Ok(_) => break,
            Err(Fault::Final(e)) if e.kind() == ErrorKind::NotFound => missing.push(ancestor),
            Err(other) => return Err(other),
        }
    }
    for dir in missing.into_iter().rev() {
        if let Err(error) = fs.create_dir(dir).await
            && !fs
                .metadata(dir)
                .await
                .is_ok_and(|m| m.file_type().is_some_and(|t| t.is_dir()))
        {
            return Err(error.into());
        }
    }
    Ok(())
}

/// The entries of `dir` (name, whether a directory), empty when `dir` is missing.
async fn entries(sftp: &Sftp, dir: &Path) -> Result<Vec<(String, bool)>, Fault> {
    use futures_util::StreamExt;
    let handle = match sftp.fs().open_dir(dir).await.map_err(classify) {
        Err(Fault::Final(e)) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut read = std::pin::pin!(handle.read_dir());
    let mut found = Vec::new();
    while let Some(entry) = read.next().await {
        let entry = entry?;
        let name = entry.filename().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            found.push((name, entry.file_type().is_some_and(|t| t.is_dir())));
        }
    }
    Ok(found)
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.shared.target.location()
    }

    /// Requests share one ssh connection, whose SFTP channel answers them
    /// in any order: several in flight hide the round trips.
    fn requests_in_flight(&self) -> usize {
        super::REMOTE_REQUESTS_IN_FLIGHT
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        // Unique per save, as in the local backend.
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let name = name.to_string();
        let data = Arc::new(data.to_vec());
        self.run(move |sftp, shared, _| {
            let (name, data) = (name.clone(), data.clone());
            async move {
                let dir = shared.dir(kind, &name);
                let temporary = dir.join(format!(
                    ".{name}.tmp-{}-{}",
                    std::process::id(),
                    SAVES.fetch_add(1, Ordering::Relaxed)
                ));
                let written = write_file(&sftp, &dir, &temporary, &name, &data).await;
                if written.is_err() {
                    // On a lost connection this fails too; the temporary
                    // name is no file name to the repository.
                    let _ = sftp.fs().remove_file(&temporary).await;
                }
                written
            }
        })
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        let name = name.to_string();
        self.run(move |sftp, shared, _| {
            let path = shared.dir(kind, &name).join(&name);
            let range = range.clone();
            async move { read_file(&sftp, &path, range).await }
        })
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        let name = name.to_string();
        self.run(move |sftp, shared, _| {
            let path = shared.dir(kind, &name).join(&name);
            async move {
                let metadata = sftp.fs().metadata(&path).await?;
                metadata.len().ok_or_else(|| {
                    final_error(
                        ErrorKind::Other,
                        format!("{}: the server gave no size", path.display()),
                    )
                })
            }
        })
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        self.run(move |sftp, shared, _| async move {
            let base = shared.root.join(kind.dir());
            let mut names = Vec::new();
            match kind {
                FileKind::Config => {
                    let found = entries(&sftp, &shared.root).await?;
                    if found
                        .iter()
                        .any(|(name, is_dir)| name == "config" && !is_dir)
                    {
                        names.push("config".to_string());
                    }
                }
                FileKind::Pack => {
                    for (sub, is_dir) in entries(&sftp, &base).await? {
                        if !is_dir {
                            continue;
                        }
                        for (name, is_dir) in entries(&sftp, &base.join(&sub)).await? {
                            // As in the local backend: a file where its name
                            // does not put it is listed by its place.
                            match (is_dir, name.get(..2) == Some(sub.as_str())) {
                                (true, _) => {}
                                (false, true) => names.push(name),
                                (false, false) => names.push(format!("{sub}/{name}")),
                            }
                        }
                    }
                }
                _ => {
                    for (name, is_dir) in entries(&sftp, &base).await? {
                        if !is_dir {
                            names.push(name);
                        }
                    }
                }
            }
            Ok(names)
        })
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        self.remove_path(self.shared.dir(kind, name).join(name))
    }

    fn stat_temporary(&self, kind: FileKind, name: &str) -> io::Result<Option<u64>> {
        let Some(path) = temporary_path(&self.shared.root, kind, name) else {
            return Ok(None);
        };
        self.run(move |sftp, _, _| {
            let path = path.clone();
            async move {
                let metadata = sftp.fs().metadata(&path).await?;
                Ok(Some(metadata.len().unwrap_or(0)))
            }
        })
    }

    /// As [`Backend::remove`], of the temporary files saves cut by a lost
    /// connection (or a killed process) leave.
    fn remove_temporary(&self, kind: FileKind, name: &str) -> io::Result<()> {
        let path = temporary_path(&self.shared.root, kind, name)
            .ok_or_else(|| not_temporary(kind, name))?;
        self.remove_path(path)
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.run(move |sftp, shared, _| async move {
            Ok(entries(&sftp, &shared.root).await?.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state a SIGKILLed process left is removed by the next open;
    /// a running process's, and names that are not ours, stay.
    #[test]
    fn state_directories_of_processes_gone_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let gone = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        let of = |pid: u32, rest: &str| temp.path().join(format!("{STATE_PREFIX}{pid}-{rest}"));
        let killed = of(gone, "a1b2c3");
        std::fs::create_dir_all(killed.join("inner")).unwrap();
        std::fs::write(killed.join("ssh_config"), "# lifeboat\n").unwrap();
        let running = of(std::process::id(), "d4e5f6");
        std::fs::create_dir(&running).unwrap();
        let unnamed = temp.path().join(format!("{STATE_PREFIX}x7y8z9"));
        std::fs::create_dir(&unnamed).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let link = of(gone, "link");
        std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
        remove_state_of_gone_processes(temp.path());
        assert!(!killed.exists());
        assert!(running.is_dir() && unnamed.is_dir());
        assert!(link.symlink_metadata().is_ok() && elsewhere.path().is_dir());
    }

    #[test]
    fn a_backend_names_its_state_with_its_pid() {
        let backend = SftpBackend::new(target()).unwrap();
        let name = backend
            ._state
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            name.starts_with(&format!("{STATE_PREFIX}{}-", std::process::id())),
            "{name}"
        );
    }

    fn target() -> SftpTarget {
        SftpTarget {
            host: "backup.example".into(),
            port: 2222,
            user: "ops".into(),
            path: "/srv/lifeboat".into(),
            identity: Some("/keys/id".into()),
            known_hosts: Some("/keys/known_hosts".into()),
        }
    }

    fn connect_error(kind: ErrorKind, said: &str) -> openssh::Error {
        openssh::Error::Connect(io::Error::new(kind, said.to_string()))
    }

    fn is_final(fault: &Fault, kind: ErrorKind) -> bool {
        matches!(fault, Fault::Final(e) if e.kind() == kind)
    }

    fn is_lost(fault: &Fault, kind: ErrorKind) -> bool {
        matches!(fault, Fault::Lost(e) if e.kind() == kind)
    }

    #[test]
    fn locations_name_user_host_port_and_path() {
        assert_eq!(
            target().location(),
            "sftp://ops@backup.example:2222/srv/lifeboat"
        );
        let relative = SftpTarget {
            path: "backups/main".into(),
            ..target()
        };
        assert_eq!(
            relative.location(),
            "sftp://ops@backup.example:2222/~/backups/main"
        );
    }

    #[test]
    fn a_refused_host_key_names_the_known_hosts_file_and_the_fix() {
        let fault = connect_fault(
            &target(),
            connect_error(
                ErrorKind::ConnectionAborted,
                "No ED25519 host key is known for [backup.example]:2222 and you have requested \
                 strict checking.\r\nHost key verification failed.",
            ),
        );
        assert!(is_final(&fault, ErrorKind::PermissionDenied), "{fault:?}");
        let Fault::Final(error) = fault else {
            unreachable!()
        };
        let message = error.to_string();
        assert!(message.contains("/keys/known_hosts"), "{message}");
        assert!(
            message.contains("ssh-keyscan -p 2222 backup.example >> /keys/known_hosts"),
            "{message}"
        );
    }

    #[test]
    fn a_refused_login_names_the_user_and_key() {
        let fault = connect_fault(
            &target(),
            connect_error(
                ErrorKind::PermissionDenied,
                "ops@backup.example: Permission denied (publickey).",
            ),
        );
        let Fault::Final(error) = fault else {
            panic!("{fault:?}")
        };
        assert_eq!(error.kind(), ErrorKind::PermissionDenied);
        assert!(
            error
                .to_string()
                .contains("login of ops with the key /keys/id"),
            "{error}"
        );
    }

    #[test]
    fn unreachable_hosts_and_timeouts_are_worth_another_try() {
        let cases = [
            (
                ErrorKind::ConnectionRefused,
                "connect to host backup.example port 2222: Connection refused",
                ErrorKind::HostUnreachable,
            ),
            (
                ErrorKind::ConnectionAborted,
                "Connection timed out during banner exchange",
                ErrorKind::TimedOut,
            ),
            (
                ErrorKind::ConnectionAborted,
                "Connection closed by 127.0.0.1 port 2222",
                ErrorKind::ConnectionReset,
            ),
        ];
        for (kind, said, expected) in cases {
            let fault = connect_fault(&target(), connect_error(kind, said));
            assert!(is_lost(&fault, expected), "{said}: {fault:?}");
        }
    }

    #[test]
    fn a_named_file_that_cannot_be_read_is_said_before_ssh_runs() {
        let fault = named_files_readable(&target()).unwrap_err();
        let Fault::Final(error) = fault else {
            panic!("{fault:?}")
        };
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(
            error
                .to_string()
                .starts_with("cannot read the identity file /keys/id"),
            "{error}"
        );
        let agent_only = SftpTarget {
            identity: None,
            known_hosts: None,
            ..target()
        };
        assert!(named_files_readable(&agent_only).is_ok());
    }

    #[test]
    fn server_answers_are_final_and_broken_connections_are_not() {
        let lost = classify(SftpError::IOError(io::Error::from(ErrorKind::BrokenPipe)));
        assert!(is_lost(&lost, ErrorKind::ConnectionReset), "{lost:?}");
        let unsupported = classify(SftpError::UnsupportedExtension(&"fsync"));
        assert!(
            is_final(&unsupported, ErrorKind::Unsupported),
            "{unsupported:?}"
        );
    }

    /// What `failure::io_class` makes of the kinds given up with.
    #[test]
    fn given_up_kinds_have_the_classes_the_contract_promises() {
        use crate::failure::{FailureClass, io_class};
        use crate::repo::RepoError;
        let class = |kind| {
            RepoError::Io {
                context: "saving".into(),
                source: io::Error::from(kind),
            }
            .class()
        };
        assert_eq!(class(ErrorKind::TimedOut), FailureClass::Transient);
        assert_eq!(class(ErrorKind::ConnectionReset), FailureClass::Transient);
        assert_eq!(
            class(ErrorKind::HostUnreachable),
            FailureClass::RepositoryUnavailable
        );
        assert_eq!(
            class(ErrorKind::PermissionDenied),
            FailureClass::RepositoryUnavailable
        );
        assert_eq!(
            io_class(&io::Error::from(ErrorKind::NotFound)),
            FailureClass::ResourceMissing
        );
    }
}
