//! Bridges between the engine's async byte streams and the repository's
//! blocking readers and writers.

use bytes::Bytes;
use futures_util::Stream;
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Chunks handed to the engine at a time: large enough to keep the Docker
/// upload busy, small enough that the bounded channel caps memory at a few MB.
const CHUNK: usize = 1 << 20;
const CHANNEL_CHUNKS: usize = 4;

/// A blocking [`Write`] whose bytes come out of the paired stream.
pub struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

/// A blocking writer and the stream that yields what it writes.
pub fn channel() -> (
    ChannelWriter,
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
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
