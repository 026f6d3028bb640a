//! A backend in an S3-compatible bucket (AWS, Garage, MinIO, …), through
//! opendal: no S3 signing or HTTP of our own. Follows the contract in
//! [`super`]; how an object store keeps it is in docs/repository-format.md:
//!
//! * **Atomic saves** without rename: an object appears only when its PUT
//!   completes (S3 never shows part of an upload), and a PUT over an
//!   existing key replaces it whole; the last of racing PUTs wins.
//! * **Missing is `NotFound`**: S3 answers DELETE of a missing key with
//!   success, so `remove` looks first.
//! * **Exact reads**: a ranged GET that the object cannot fill, or that
//!   the server refuses (416), is `UnexpectedEof`.
//! * Listings are paginated by opendal and read to the end.
//!
//! The layout is the local one (`config`, `keys/`, `data/xx/`, …) under the
//! prefix, so a local repository copied into a bucket opens as it is.
//!
//! Errors keep their meaning across the [`Backend`] trait as
//! `io::ErrorKind`s that `failure::io_class` sorts: temporary failures
//! (timeouts, resets, 5xx, throttling) are retried with exponential
//! backoff, and what is still failing after that is `TimedOut` or
//! `ConnectionAborted` (class `transient`); a server that cannot be
//! reached, a bucket that does not exist or refused credentials are
//! `NotConnected` / `Other` / `PermissionDenied` (class
//! `repository_unavailable`). Messages never hold the credentials.
//!
//! The trait is synchronous and called from plain threads as well as from
//! threads inside the engine's tokio runtime, where blocking on a runtime
//! panics: the backend owns a small runtime of its own, runs each request
//! there and waits on a channel, which is allowed anywhere.

use super::{Backend, FileKind};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind as DalKind, Operator};
use std::io;
use std::ops::Range;
use std::time::Duration;

/// Where the bucket is and the credentials to reach it.
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// Where the credentials came from, for messages ("AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY"): never the values.
    pub credentials_from: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("credentials_from", &self.credentials_from)
            .finish_non_exhaustive()
    }
}

/// How long to keep trying a request that fails temporarily.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Retries after the first attempt.
    pub retries: usize,
    /// The first pause; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A request (or, for transfers, each read or write of its body) that
    /// takes longer is abandoned and retried.
    pub request_timeout: Duration,
}

impl Default for Patience {
    /// About a minute of pauses (0.5 + 1 + 2 + … + 20 s): long enough for
    /// a node to restart or a load balancer to route around it, short
    /// enough that a run against a dead server ends.
    fn default() -> Self {
        Patience {
            retries: 8,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
        }
    }
}

pub struct S3Backend {
    operator: Operator,
    /// Runs the requests; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    settings: S3Settings,
    attempts: usize,
}

/// opendal's reqwest transport with rustls on ring: the TLS provider is
/// chosen here rather than by a feature, which would build aws-lc.
fn http_transport() -> io::Result<opendal::HttpTransporter> {
    // Ignored when a provider is installed already (another backend).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| io::Error::other(format!("starting the HTTP client: {e}")))?;
    Ok(opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    ))
}

impl S3Backend {
    pub fn new(settings: S3Settings, patience: Patience) -> io::Result<S3Backend> {
        let builder = opendal::services::S3::default()
            .endpoint(&settings.endpoint)
            .bucket(&settings.bucket)
            .region(&settings.region)
            .root(&format!("/{}", settings.prefix.trim_matches('/')))
            .access_key_id(&settings.access_key)
            .secret_access_key(&settings.secret_key)
            // Credentials come from the spec only, never from ~/.aws or
            // an instance's metadata service behind the user's back.
            .disable_config_load()
            .disable_ec2_metadata();
        let invalid = |e: opendal::Error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("s3 repository at {}: {}", settings.endpoint, e.message()),
            )
        };
        let context = opendal::OperationContext::new().with_http_transport(http_transport()?);
        let operator = Operator::new(builder)
            .map_err(invalid)?
            .with_context(context)
            .layer(
                TimeoutLayer::new()
                    .with_timeout(patience.request_timeout)
                    .with_io_timeout(patience.request_timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(patience.retries)
                    .with_min_delay(patience.first_delay)
                    .with_max_delay(patience.max_delay)
                    .with_factor(2.0)
                    .with_jitter(),
            );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-s3")
            .enable_all()
            .build()?;
        Ok(S3Backend {
            operator,
            runtime: Some(runtime),
            settings,
            attempts: patience.retries + 1,
        })
    }

    /// Runs a request on the backend's runtime and waits for it, from any
    /// thread (inside another runtime too).
    fn run<T: Send + 'static>(
        &self,
        request: impl Future<Output = opendal::Result<T>> + Send + 'static,
    ) -> Result<T, opendal::Error> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().expect("only None while dropping");
        runtime.spawn(async move {
            let _ = done.send(request.await);
        });
        result.recv().unwrap_or_else(|_| {
            Err(opendal::Error::new(
                DalKind::Unexpected,
                "the S3 request was abandoned (its task ended without an answer)",
            ))
        })
    }

    /// The key of a file under the prefix; packs fan out as on disk.
    fn key(kind: FileKind, name: &str) -> String {
        match kind {
            FileKind::Config => name.to_string(),
            FileKind::Pack => format!("{}/{}/{name}", kind.dir(), &name[..name.len().min(2)]),
            _ => format!("{}/{name}", kind.dir()),
        }
    }

    /// `error` as an `io::Error` whose kind says what it means (module
    /// doc), for `doing` ("saving data/ab/ab12…").
    fn io_error(&self, doing: &str, error: opendal::Error) -> io::Error {
        let settings = &self.settings;
        let detail = self.redacted(&describe(&error));
        let (kind, message) = if let Some(cause) = connection_failure(&error) {
            (
                io::ErrorKind::NotConnected,
                format!(
                    "cannot reach {} ({cause}; tried {} times): is the server running and \
                     the endpoint right?",
                    settings.endpoint, self.attempts
                ),
            )
        } else if detail.contains("NoSuchBucket") {
            (io::ErrorKind::Other, self.no_bucket())
        } else {
            match error.kind() {
                DalKind::NotFound => (io::ErrorKind::NotFound, "no such object".to_string()),
                DalKind::PermissionDenied => (
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the server refused the credentials (from {}): check them and that \
                         they may read and write bucket {}{}",
                        settings.credentials_from,
                        settings.bucket,
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({detail})")
                        }
                    ),
                ),
                DalKind::RangeNotSatisfied => {
                    (io::ErrorKind::UnexpectedEof, "range past the end".into())
                }
                DalKind::ConfigInvalid => (io::ErrorKind::InvalidInput, detail),
                _ if error.is_temporary() || error.is_persistent() => {
                    let kind = if detail.to_lowercase().contains("timeout")
                        || detail.to_lowercase().contains("timed out")
                    {
                        io::ErrorKind::TimedOut
                    } else {
                        io::ErrorKind::ConnectionAborted
                    };
                    (
                        kind,
                        format!(
                            "{detail} (still failing after {} attempts; this may pass: try \
                             again later)",
                            self.attempts
                        ),
                    )
                }
                _ => (io::ErrorKind::Other, detail),
            }
        };
        io::Error::new(kind, format!("{doing}: {message}"))
    }

    fn no_bucket(&self) -> String {
        format!(
            "bucket {} does not exist at {}: create it, or fix `bucket`",
            self.settings.bucket, self.settings.endpoint
        )
    }

    /// `text` without the credentials (a server may quote the access key).
    fn redacted(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in [&self.settings.access_key, &self.settings.secret_key] {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "…");
            }
        }
        text
    }

    /// The entries under `dir` (recursively or not; at most `limit`). A
    /// listing of a missing bucket says so rather than `NotFound`, which
    /// would read as "no such file".
    fn entries(
        &self,
        dir: &str,
        recursive: bool,
        limit: Option<usize>,
    ) -> io::Result<Vec<opendal::Entry>> {
        let operator = self.operator.clone();
        let path = dir.to_string();
        self.run(async move {
            let listing = operator.list_with(&path).recursive(recursive);
            match limit {
                Some(limit) => listing.limit(limit).await,
                None => listing.await,
            }
        })
        .map_err(|e| match self.io_error(&format!("listing {dir:?}"), e) {
            e if e.kind() == io::ErrorKind::NotFound => io::Error::other(self.no_bucket()),
            e => e,
        })
    }

    /// The names of the objects under `dir`, relative to it.
    fn names_under(&self, dir: &str, recursive: bool) -> io::Result<Vec<String>> {
        Ok(self
            .entries(dir, recursive, None)?
            .into_iter()
            .filter(|entry| !entry.metadata().is_dir())
            .filter_map(|entry| entry.path().strip_prefix(dir).map(str::to_string))
            .filter(|name| !name.is_empty())
            .collect())
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which panics inside
        // another runtime; nothing is left running on it here anyway.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// opendal's message and the innermost cause, shorter than its Display
/// (which lists every request header).
fn describe(error: &opendal::Error) -> String {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut innermost = None;
    while let Some(current) = cause {
        innermost = Some(current.to_string());
        cause = current.source();
    }
    match innermost {
        Some(innermost) => format!("{}: {innermost}", error.message()),
        None => error.message().to_string(),
    }
}

/// Why no connection could be made, when that is what happened (refused,
/// no route, name not resolved): not a request that failed halfway.
fn connection_failure(error: &opendal::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut connect = false;
    while let Some(current) = cause {
        if let Some(http) = current.downcast_ref::<reqwest::Error>() {
            connect |= http.is_connect();
        }
        if let Some(io_error) = current.downcast_ref::<io::Error>()
            && matches!(
                io_error.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            )
        {
            return Some(io_error.to_string());
        }
        if connect && current.source().is_none() {
            return Some(current.to_string());
        }
        cause = current.source();
    }
    None
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        let settings = &self.settings;
        let prefix = settings.prefix.trim_matches('/');
        let bucket = format!(
            "s3:{}/{}",
            settings.endpoint.trim_end_matches('/'),
            settings.bucket
        );
        if prefix.is_empty() {
            bucket
        } else {
            format!("{bucket}/{prefix}")
        }
    }

    fn requests_in_flight(&self) -> usize {
        super::REMOTE_REQUESTS_IN_FLIGHT
    }

    fn save(&self, kind: FileKind, name: &str, data: &[u8]) -> io::Result<()> {
        self.save_owned(kind, name, data.to_vec())
    }

    fn save_owned(&self, kind: FileKind, name: &str, body: Vec<u8>) -> io::Result<()> {
        let key = Self::key(kind, name);
        let operator = self.operator.clone();
        let path = key.clone();
        // One PUT: S3 makes the object visible when it has all of it.
        self.run(async move { operator.write(&path, body).await })
            .map(|_| ())
            .map_err(|e| match self.io_error(&format!("saving {key}"), e) {
                // A PUT cannot miss its object: only its bucket.
                e if e.kind() == io::ErrorKind::NotFound => io::Error::other(self.no_bucket()),
                e => e,
            })
    }

    fn load(&self, kind: FileKind, name: &str, range: Option<Range<u64>>) -> io::Result<Vec<u8>> {
        let key = Self::key(kind, name);
        let doing = format!("loading {key}");
        let past_end = |range: &Range<u64>, size: u64| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{doing}: bytes {range:?} reach past its end ({size} bytes)"),
            )
        };
        let operator = self.operator.clone();
        let path = key.clone();
        let Some(range) = range else {
            return self
                .run(async move { operator.read(&path).await })
                .map(|buffer| buffer.to_vec())
                .map_err(|e| self.io_error(&doing, e));
        };
        if range.start >= range.end {
            // S3 has no empty range: the size says whether it is in bounds.
            let size = self.stat(kind, name)?;
            return if range.start <= size {
                Ok(Vec::new())
            } else {
                Err(past_end(&range, size))
            };
        }
        let wanted = range.clone();
        match self.run(async move { operator.read_with(&path).range(wanted).await }) {
            Ok(buffer) if buffer.len() as u64 == range.end - range.start => Ok(buffer.to_vec()),
            Ok(_) => Err(past_end(&range, self.stat(kind, name)?)),
            Err(e) if e.kind() == DalKind::NotFound => Err(self.io_error(&doing, e)),
            Err(e) => {
                // Servers differ on a range past the end (416, a short
                // body, an error of their own): the size decides.
                let error = self.io_error(&doing, e);
                match self.stat(kind, name) {
                    Ok(size) if range.end > size => Err(past_end(&range, size)),
                    _ => Err(error),
                }
            }
        }
    }

    fn stat(&self, kind: FileKind, name: &str) -> io::Result<u64> {
        let key = Self::key(kind, name);
        let operator = self.operator.clone();
        let path = key.clone();
        self.run(async move { operator.stat(&path).await })
            .map(|metadata| metadata.content_length())
            .map_err(|e| self.io_error(&format!("looking at {key}"), e))
    }

    fn list(&self, kind: FileKind) -> io::Result<Vec<String>> {
        match kind {
            FileKind::Config => match self.stat(kind, "config") {
                Ok(_) => Ok(vec!["config".to_string()]),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            FileKind::Pack => Ok(self
                .names_under(&format!("{}/", kind.dir()), true)?
                .into_iter()
                .filter_map(|relative| match relative.split_once('/') {
                    // Not where its name puts it: no name reaches it, so it
                    // is listed by its place (which no pack name is), as
                    // the local backend does.
                    Some((fan, name)) if name.get(..2) == Some(fan) && !name.contains('/') => {
                        Some(name.to_string())
                    }
                    Some(_) => Some(relative),
                    // Beside the fan-out directories: the local backend
                    // does not see files there either.
                    None => None,
                })
                .collect()),
            _ => Ok(self
                .names_under(&format!("{}/", kind.dir()), false)?
                .into_iter()
                .filter(|name| !name.contains('/'))
                .collect()),
        }
    }

    fn remove(&self, kind: FileKind, name: &str) -> io::Result<()> {
        // DELETE of a missing key succeeds on S3; the contract says NotFound.
        self.stat(kind, name)?;
        let key = Self::key(kind, name);
        let operator = self.operator.clone();
        let path = key.clone();
        self.run(async move { operator.delete(&path).await })
            .map_err(|e| self.io_error(&format!("removing {key}"), e))
    }

    fn is_empty(&self) -> io::Result<bool> {
        let listed = self.entries("/", false, Some(2))?;
        // The listing may name the prefix itself.
        Ok(listed
            .iter()
            .all(|entry| entry.path() == "/" || entry.path().is_empty()))
    }
}

#[cfg(test)]
#[path = "s3_tests.rs"]
mod tests;
