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
//! A pipeline whose stages hand back as much as they take may keep more
//! while it runs ([`keep_more`]): a restore from a local disk, whose
//! decoded bytes in flight are bounded by its own budget.

use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Buffers smaller than this are left to the allocator.
pub(crate) const SMALLEST_KEPT: usize = 64 << 10;
/// At most this many bytes of buffers wait here at once (8 MiB put a
/// restore from Garage at 151 MB, over its 150 MB; 4 MiB: 137 MB).
const KEPT_BYTES: usize = 4 << 20;
/// New buffers are made a little larger than asked, so that chunks of
/// neighbouring sizes (content-defined: any size from 512 KiB to 8 MiB)
/// can reuse each other's.
const ROUNDING: usize = 128 << 10;

/// Bytes the pool may keep beyond [`KEPT_BYTES`] while [`KeepMore`]s live.
static EXTRA_KEPT: AtomicUsize = AtomicUsize::new(0);

/// The process's pool: one for every pipeline, like the allocator it
/// stands in front of (a backup's stages and a restore's hand buffers
/// across threads, and across the repository's decode path).
static POOL: Mutex<Kept> = Mutex::new(Kept {
    buffers: Vec::new(),
    bytes: 0,
});

struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
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
pub(crate) fn give(mut buffer: Vec<u8>) {
    let capacity = buffer.capacity();
    if capacity < SMALLEST_KEPT {
        return;
    }
    buffer.clear();
    let mut kept = POOL.lock().expect("not poisoned");
    if kept.bytes + capacity <= KEPT_BYTES + EXTRA_KEPT.load(Relaxed) {
        kept.bytes += capacity;
        kept.buffers.push(buffer);
    }
}

/// Lets the pool keep `bytes` more while the returned value lives; its
/// drop frees what is kept beyond the bound again.
///
/// For a pipeline that holds at most about `bytes` of buffers in flight
/// and hands every one back: with 4 MiB kept, a restore of the db-files
/// volume (blobs of 0.5 to 8 MiB, 16 MiB decoded ahead) gave most buffers
/// back to the allocator and took fresh ones, 450,000 page faults for
/// 1.6 GB, their zeroing and unmapping two fifths of its CPU (perf). The
/// peak is no higher than the pipeline's own in-flight bound plus `bytes`.
pub(crate) fn keep_more(bytes: usize) -> KeepMore {
    EXTRA_KEPT.fetch_add(bytes, Relaxed);
    KeepMore(bytes)
}

/// See [`keep_more`].
pub(crate) struct KeepMore(usize);

impl Drop for KeepMore {
    fn drop(&mut self) {
        EXTRA_KEPT.fetch_sub(self.0, Relaxed);
        let bound = KEPT_BYTES + EXTRA_KEPT.load(Relaxed);
        let mut kept = POOL.lock().expect("not poisoned");
        // The largest go first: they are the ones an allocator maps.
        kept.buffers.sort_unstable_by_key(Vec::capacity);
        while kept.bytes > bound {
            let buffer = kept.buffers.pop().expect("bytes kept, so buffers");
            kept.bytes -= buffer.capacity();
        }
    }
}

/// The bytes of buffers kept now (tests).
#[cfg(test)]
pub(crate) fn kept_bytes() -> usize {
    POOL.lock().expect("not poisoned").bytes
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
        // Beyond the bound only by what allowances in force (a restore
        // another test runs meanwhile) let it keep.
        assert!(kept_bytes() <= KEPT_BYTES + EXTRA_KEPT.load(Relaxed));
        assert!(take(100).capacity() < SMALLEST_KEPT);
    }

    #[test]
    fn keeping_more_holds_more_buffers_while_it_lives_and_trims_them_after() {
        // Other tests share the pool and may hold their own allowances:
        // bounds are checked against the allowance in force.
        let more = keep_more(32 << 20);
        for _ in 0..16 {
            give(Vec::with_capacity(1 << 20));
        }
        let allowed = KEPT_BYTES + EXTRA_KEPT.load(Relaxed);
        assert!(kept_bytes() <= allowed);
        // Room beyond the base bound was used: more than 4 MiB of the
        // 16 given are kept (other tests may take a few meanwhile).
        assert!(kept_bytes() > KEPT_BYTES, "{} kept", kept_bytes());
        drop(more);
        assert!(kept_bytes() <= KEPT_BYTES + EXTRA_KEPT.load(Relaxed));
    }
}
