//! Bridges between the engine's async byte streams and the repository's
//! blocking readers and writers.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::{self, Read, Write};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The error a cancelled transfer ends with. Not `ErrorKind::Interrupted`:
/// std's readers retry on that kind, then see the end of the stream and
/// store a cut-short copy as if it were whole.
fn interrupted() -> io::Error {
    io::Error::other("interrupted: the run was cancelled")
}

/// Chunks handed to the engine at a time: large enough to keep the Docker
/// upload busy, small enough that the bounded channel caps memory at a few MB.
const CHUNK: usize = 1 << 20;
const CHANNEL_CHUNKS: usize = 4;

/// A blocking [`Write`] whose bytes come out of the paired stream.
pub struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

/// A blocking writer and the stream that yields what it writes; once
/// `cancel` fires the stream ends with an error (so the engine stops
/// receiving and lets go of its helper container).
pub fn channel(
    cancel: CancellationToken,
) -> (
    ChannelWriter,
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let stream = futures_util::stream::unfold(
        (receiver, cancel, false),
        |(mut receiver, cancel, ended)| async move {
            if ended {
                return None;
            }
            tokio::select! {
                item = receiver.recv() => item.map(|item| (item, (receiver, cancel, false))),
                _ = cancel.cancelled() => Some((Err(interrupted()), (receiver, cancel, true))),
            }
        },
    );
    (
        ChannelWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        },
        stream,
    )
}

impl ChannelWriter {
    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        self.sender
            .blocking_send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the Docker upload stopped"))
    }

    /// Ends the stream with an error so the reader fails instead of taking a
    /// truncated stream for a complete one.
    pub fn abort(mut self, message: String) {
        let _ = self.send(Err(io::Error::other(message)));
    }

    /// Flushes what is buffered; dropping the writer afterwards ends the stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.send(Ok(Bytes::from(full)))
    }
}

/// Export chunks the read-ahead may hold: the engine keeps streaming while
/// the backup hashes and chunks, instead of stalling on a full socket.
const READ_AHEAD_CHUNKS: usize = 12;

/// A blocking [`Read`] over an engine's byte stream, which a task keeps
/// reading up to [`READ_AHEAD_CHUNKS`] MiB ahead of the reader. Must be
/// created inside the runtime and read from a blocking context.
///
/// Read buffers go back to the task once read and are filled again: a
/// fresh 1 MiB buffer per MiB of stream is a fresh mapping each time
/// (above the allocator's mmap threshold), and its page faults and unmaps
/// cost as much CPU as the copy itself (an image export: 358 of the
/// backup's 705 munmaps, issue 27).
pub struct ChannelReader {
    receiver: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    /// How much of `current` was read.
    consumed: usize,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
}

/// Once `cancel` fires the engine's stream is dropped (which lets go of the
/// helper container) and the reader fails.
pub fn read_ahead<S>(mut stream: S, cancel: CancellationToken) -> ChannelReader
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let (sender, receiver) = mpsc::channel(READ_AHEAD_CHUNKS);
    let (spent, returned) = std::sync::mpsc::channel::<Vec<u8>>();
    tokio::spawn(async move {
        // At most READ_AHEAD_CHUNKS + 4 buffers circulate: queued, one
        // waiting for room in the queue, one being filled, one being read
        // and one on its way back.
        let empty_buffer = move || match returned.try_recv() {
            Ok(mut buffer) => {
                buffer.clear();
                buffer
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let mut buffer = empty_buffer();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cancel.cancelled() => {
                    drop(stream);
                    let _ = sender.send(Err(interrupted())).await;
                    return;
                }
            };
            let Some(item) = item else {
                break;
            };
            match item {
                Ok(bytes) => {
                    // A piece that does not fit goes into the next buffer,
                    // so that buffers keep the size they were made with
                    // (one that grew would double its memory).
                    let fits = buffer.len() + bytes.len() <= buffer.capacity().max(CHUNK);
                    if !buffer.is_empty() && !fits {
                        let full = std::mem::replace(&mut buffer, empty_buffer());
                        if sender.send(Ok(full)).await.is_err() {
                            return; // the reader stopped
                        }
                    }
                    buffer.extend_from_slice(&bytes);
                }
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            }
        }
        if !buffer.is_empty() {
            let _ = sender.send(Ok(buffer)).await;
        }
    });
    ChannelReader {
        receiver,
        current: Vec::new(),
        consumed: 0,
        spent,
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.consumed == self.current.len() {
            let next = match self.receiver.blocking_recv() {
                Some(Ok(next)) => next,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            };
            let read = std::mem::replace(&mut self.current, next);
            self.consumed = 0;
            if read.capacity() > 0 {
                // The task may have ended already: the buffer is then freed.
                let _ = self.spent.send(read);
            }
        }
        let left = &self.current[self.consumed..];
        let n = out.len().min(left.len());
        out[..n].copy_from_slice(&left[..n]);
        self.consumed += n;
        Ok(n)
    }
}

/// Streams what `produce` writes (on a thread of its own, reading the
/// repository) into the engine, which reads it through `consume` (an
/// import or an image load), and returns what `produce` returned. Call it
/// from the runtime's worker threads (it blocks one).
///
/// Whoever stopped first says why: a producer that met damaged data cut
/// the stream, and the engine then only reports a broken request, so its
/// error wins; when the engine refused the upload, the producer only saw a
/// closed pipe, so the engine's wins.
pub(crate) fn feed_engine<T, P, F, Fut>(
    cancel: CancellationToken,
    handing: &str,
    produce: P,
    consume: F,
) -> Result<T, crate::apply::ApplyError>
where
    T: Send,
    P: FnOnce(&mut ChannelWriter) -> Result<T, crate::repo::RepoError> + Send,
    F: FnOnce(crate::engine::ByteStream) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::engine::EngineError>>,
{
    use crate::repo::RepoError;
    let (mut writer, upload) = channel(cancel);
    let handle = tokio::runtime::Handle::current();
    let consuming = consume(Box::pin(upload));
    let (produced, consumed) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| match produce(&mut writer) {
                Ok(value) => writer.finish().map(|_| value).map_err(|e| RepoError::Io {
                    context: handing.to_string(),
                    source: e,
                }),
                Err(error) => {
                    writer.abort(error.to_string());
                    Err(error)
                }
            });
            let consumed = handle.block_on(consuming);
            (producer.join(), consumed)
        })
    });
    match (produced, consumed) {
        (Ok(Ok(value)), Ok(())) => Ok(value),
        (Ok(Err(cause)), _) if !matches!(cause, RepoError::Io { .. }) => Err(cause.into()),
        (_, Err(refused)) => Err(refused.into()),
        (Ok(Err(cause)), Ok(())) => Err(cause.into()),
        (Err(_), Ok(())) => Err(worker_panicked()),
    }
}

/// The failure of a copy whose worker thread panicked.
pub(crate) fn worker_panicked() -> crate::apply::ApplyError {
    crate::apply::ApplyError::Failed(crate::failure::Failure::new(
        crate::failure::FailureClass::Other,
        "the restore worker panicked",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_ahead_fills_the_same_few_buffers_again_and_keeps_every_byte() {
        // 48 MiB in pieces that straddle the 1 MiB buffers: the reader sees
        // every byte in order, and the buffers it reads from are the same
        // few, filled again (never one fresh allocation per MiB), and none
        // grew past its 1 MiB.
        let pieces: Vec<io::Result<Bytes>> = (0..48 * 4 + 3)
            .map(|i| Ok(Bytes::from(vec![i as u8; CHUNK / 4 + 7])))
            .collect();
        let expected: Vec<u8> = pieces
            .iter()
            .flat_map(|piece| piece.as_ref().unwrap().to_vec())
            .collect();
        let mut reader = read_ahead(
            Box::pin(futures_util::stream::iter(pieces)),
            CancellationToken::new(),
        );
        let (read, buffers) = tokio::task::spawn_blocking(move || {
            let mut read = Vec::new();
            let mut buffers = std::collections::BTreeSet::new();
            let mut piece = vec![0u8; 100_000];
            loop {
                let n = reader.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                read.extend_from_slice(&piece[..n]);
                buffers.insert(reader.current.as_ptr() as usize);
                assert!(reader.current.capacity() <= CHUNK, "a buffer grew");
            }
            (read, buffers)
        })
        .await
        .unwrap();
        assert!(
            read == expected,
            "{} bytes read of {}",
            read.len(),
            expected.len()
        );
        assert!(
            buffers.len() <= READ_AHEAD_CHUNKS + 4,
            "{} buffers for 48 MiB",
            buffers.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_read_fails_and_never_ends_as_if_complete() {
        // A stream that sends a little and then nothing, like a dump command
        // that sleeps: only the cancellation ends it.
        let stream = futures_util::stream::iter([Ok(Bytes::from_static(b"partial"))])
            .chain(futures_util::stream::pending());
        let cancel = CancellationToken::new();
        let mut reader = read_ahead(Box::pin(stream), cancel.clone());
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all)
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        cancel.cancel();
        let result = reading.await.unwrap();
        assert!(result.is_err(), "{result:?}");
    }
}
