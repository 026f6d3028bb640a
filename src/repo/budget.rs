//! A byte budget between pipeline stages: a stage acquires the bytes it hands
//! on and the consuming stage releases them, so peak memory is the same
//! whether blobs are 1 KiB or 8 MiB and however large the volume is.

use super::RepoError;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

pub(crate) struct ByteBudget {
    limit: usize,
    state: Mutex<(usize, bool)>,
    freed: std::sync::Condvar,
    /// The reader had to wait for the workers: they are the bottleneck.
    pub congested: AtomicBool,
}

impl ByteBudget {
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            limit,
            state: Mutex::new((0, false)),
            freed: std::sync::Condvar::new(),
            congested: AtomicBool::new(false),
        }
    }

    /// Waits for room for `n` bytes (a blob larger than the budget waits for an empty pipeline).
    pub fn acquire(&self, n: usize) -> Result<(), RepoError> {
        let mut state = self.state.lock().expect("not poisoned");
        while !state.1 && state.0 > 0 && state.0 + n > self.limit {
            self.congested.store(true, Relaxed);
            state = self.freed.wait(state).expect("not poisoned");
        }
        if state.1 {
            return Err(RepoError::Source("the pipeline stopped".into()));
        }
        state.0 += n;
        Ok(())
    }

    /// Whether [`acquire`](Self::acquire) of `n` bytes would wait now. With
    /// one acquiring thread the answer stays true only until it acquires:
    /// the others only release.
    pub fn would_wait(&self, n: usize) -> bool {
        let state = self.state.lock().expect("not poisoned");
        !state.1 && state.0 > 0 && state.0 + n > self.limit
    }

    pub fn release(&self, n: usize) {
        let mut state = self.state.lock().expect("not poisoned");
        state.0 = state.0.saturating_sub(n);
        if state.0 < self.limit / 4 {
            self.congested.store(false, Relaxed);
        }
        self.freed.notify_all();
    }

    /// The writer stopped: nothing will be released any more.
    pub fn close(&self) {
        self.state.lock().expect("not poisoned").1 = true;
        self.freed.notify_all();
    }
}
