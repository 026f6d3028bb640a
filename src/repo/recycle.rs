//! Blob-sized buffers handed back for reuse between pipeline stages.
//!
//! A first backup of large files allocated a fresh buffer for every chunk
//! (its copy for the workers), every compressed and every sealed blob, and
//! a restore one for every decrypted and decompressed blob. Each is
//! between 512 KiB and 8 MiB: glibc maps such a buffer, the kernel zeroes
//! each page on first touch, and the free unmaps it again. The 1.6 GB
//! db-files volume took 661,000 page faults backing up and 543,000
//! restoring, and the zeroing, faulting and unmapping was a sixth of the
//! backup's CPU (perf). Buffers the stages are done with come back here
//! and the next blob takes one, so pages are touched once.
//!
//! Owns only memory: what a buffer held is never read again (every taker
//! gets it empty). Small buffers are not kept (the allocator serves them
//! from its arenas without faults), and what is kept is bounded by
//! [`KEPT_BYTES`], so the pool adds at most that to a run's peak memory.
//! A backup's pipeline raises the bound while it runs ([`reserve`]): its
//! chunk copies, compressed and sealed blobs need more than 4 MiB of
//! buffers at once, and with 4 MiB kept the 1.6 GB db-files volume still
//! faulted in 540,000 fresh pages (110,000 with 32 MiB kept). A restore
//! from a local disk does the same for its decoded blobs (450,000 faults
//! restoring that volume with 4 MiB kept, their zeroing and unmapping two
//! fifths of its CPU; 45,000 with its in-flight bytes kept).

use std::sync::Mutex;

/// Buffers smaller than this are left to the allocator.
pub(crate) const SMALLEST_KEPT: usize = 64 << 10;
/// At most this many bytes of buffers wait here at once (8 MiB put a
/// restore from Garage at 151 MB, over its 150 MB; 4 MiB: 137 MB).
const KEPT_BYTES: usize = 4 << 20;
/// New buffers are made a little larger than asked, so that chunks of
/// neighbouring sizes (content-defined: any size from 512 KiB to 8 MiB)
/// can reuse each other's.
const ROUNDING: usize = 128 << 10;

/// The process's pool: one for every pipeline, like the allocator it
/// stands in front of (a backup's stages and a restore's hand buffers
/// across threads, and across the repository's decode path).
static POOL: Mutex<Kept> = Mutex::new(Kept {
    buffers: Vec::new(),
    bytes: 0,
    limit: KEPT_BYTES,
});

struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    /// [`KEPT_BYTES`] and what the [`Reserve`]s alive add.
    limit: usize,
}

impl Kept {
    /// Keeps `buffer` (emptied) if it fits the limit; frees it otherwise.
    fn keep(&mut self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        buffer.clear();
        if self.bytes + capacity <= self.limit {
            self.bytes += capacity;
            self.buffers.push(buffer);
        }
    }

    /// Lowers the limit by `extra`, freeing what no longer fits.
    fn lower(&mut self, extra: usize) {
        self.limit -= extra;
        self.shrink_to_limit();
    }

    /// Frees kept buffers, largest first, until they fit the limit.
    fn shrink_to_limit(&mut self) {
        while self.bytes > self.limit {
            let largest = (0..self.buffers.len())
                .max_by_key(|at| self.buffers[*at].capacity())
                .expect("bytes kept means buffers kept");
            self.bytes -= self.buffers.swap_remove(largest).capacity();
        }
    }
}

/// While alive, the pool keeps `extra` more bytes of buffers; dropped, it
/// frees what is kept beyond the bound again.
pub(crate) struct Reserve {
    extra: usize,
}

/// Raises the pool's bound by `extra` bytes until the [`Reserve`] drops.
pub(crate) fn reserve(extra: usize) -> Reserve {
    POOL.lock().expect("not poisoned").limit += extra;
    Reserve { extra }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        POOL.lock().expect("not poisoned").lower(self.extra);
    }
}

/// An empty buffer with room for at least `length` bytes: a kept one when
/// one is large enough (the smallest such), else a new one.
pub(crate) fn take(length: usize) -> Vec<u8> {
    if length < SMALLEST_KEPT {
        return Vec::with_capacity(length);
    }
    {
        let mut kept = POOL.lock().expect("not poisoned");
        let fitting = kept
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, buffer)| buffer.capacity() >= length)
            .min_by_key(|(_, buffer)| buffer.capacity())
            .map(|(at, _)| at);
        if let Some(at) = fitting {
            let buffer = kept.buffers.swap_remove(at);
            kept.bytes -= buffer.capacity();
            return buffer;
        }
    }
    Vec::with_capacity(length.next_multiple_of(ROUNDING))
}

/// Hands `buffer` back for a later [`take`]; freed instead when it is
/// small or the pool is full.
pub(crate) fn give(buffer: Vec<u8>) {
    if buffer.capacity() < SMALLEST_KEPT {
        return;
    }
    POOL.lock().expect("not poisoned").keep(buffer);
}

/// Whether the buffers kept fit the bound in force, read at one instant
/// (tests: other tests' pipelines raise and lower it meanwhile).
#[cfg(test)]
fn within_limit() -> bool {
    let kept = POOL.lock().expect("not poisoned");
    kept.bytes <= kept.limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_and_the_pool_stays_bounded() {
        let mut first = take(1 << 20);
        assert!(first.capacity() >= 1 << 20);
        first.extend_from_slice(&[7u8; 1 << 20]);
        give(first);
        // Other tests share the pool: whichever buffer comes, it is empty
        // and large enough.
        let again = take(1 << 20);
        assert!(again.is_empty() && again.capacity() >= 1 << 20);
        give(again);
        // Small buffers are not kept, and the pool never holds more than
        // its bound however much comes back.
        for _ in 0..64 {
            give(Vec::with_capacity(1 << 20));
        }
        give(Vec::with_capacity(1024));
        // A pipeline running in another test may hold a reserve.
        assert!(within_limit());
        assert!(take(100).capacity() < SMALLEST_KEPT);
    }

    #[test]
    fn a_raised_limit_keeps_more_and_lowering_it_frees_the_excess() {
        let mut kept = Kept {
            buffers: Vec::new(),
            bytes: 0,
            limit: KEPT_BYTES,
        };
        kept.limit += 16 << 20;
        for _ in 0..12 {
            let mut buffer = Vec::with_capacity(1 << 20);
            buffer.push(7);
            kept.keep(buffer);
        }
        assert_eq!(kept.bytes, 12 << 20, "all kept under the raised limit");
        assert!(kept.buffers.iter().all(Vec::is_empty));
        kept.lower(16 << 20);
        assert!(kept.bytes <= KEPT_BYTES && kept.bytes > 0);
        let counted: usize = kept.buffers.iter().map(Vec::capacity).sum();
        assert_eq!(counted, kept.bytes);
    }

    #[test]
    fn a_reserve_raises_the_pools_limit_while_it_lives() {
        // Other tests' pipelines may hold reserves too: only this one's
        // share is known.
        let limit = || POOL.lock().unwrap().limit;
        let reserve = reserve(16 << 20);
        assert!(limit() >= KEPT_BYTES + (16 << 20));
        drop(reserve);
        assert!(within_limit());
    }
}
