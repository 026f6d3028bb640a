//! A byte budget between pipeline stages: a stage acquires the bytes it hands
//! on and the consuming stage releases them, so peak memory is the same
//! whether blobs are 1 KiB or 8 MiB and however large the volume is.
//!
//! Releases happen once per blob (per small file of a backup or a
//! restore), so a release wakes waiters only when there are any: a
//! condition variable's notify is a futex system call each time, whether
//! anyone waits or not (50,000 of them restoring 50,000 small files).

use super::RepoError;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

pub(crate) struct ByteBudget {
    limit: usize,
    state: Mutex<State>,
    freed: std::sync::Condvar,
    /// The reader had to wait for the workers: they are the bottleneck.
    pub congested: AtomicBool,
}

#[derive(Default)]
struct State {
    held: usize,
    closed: bool,
    /// Threads waiting in [`ByteBudget::acquire`].
    waiting: usize,
}

impl ByteBudget {
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            limit,
            state: Mutex::new(State::default()),
            freed: std::sync::Condvar::new(),
            congested: AtomicBool::new(false),
        }
    }

    /// Waits for room for `n` bytes (a blob larger than the budget waits for an empty pipeline).
    pub fn acquire(&self, n: usize) -> Result<(), RepoError> {
        let mut state = self.state.lock().expect("not poisoned");
        while self.must_wait(&state, n) {
            self.congested.store(true, Relaxed);
            state.waiting += 1;
            state = self.freed.wait(state).expect("not poisoned");
            state.waiting -= 1;
        }
        if state.closed {
            return Err(RepoError::Source("the pipeline stopped".into()));
        }
        state.held += n;
        Ok(())
    }

    /// Whether [`acquire`](Self::acquire) of `n` bytes would wait now. With
    /// one acquiring thread the answer stays true only until it acquires:
    /// the others only release.
    pub fn would_wait(&self, n: usize) -> bool {
        self.must_wait(&self.state.lock().expect("not poisoned"), n)
    }

    fn must_wait(&self, state: &State, n: usize) -> bool {
        !state.closed && state.held > 0 && state.held + n > self.limit
    }

    pub fn release(&self, n: usize) {
        let mut state = self.state.lock().expect("not poisoned");
        state.held = state.held.saturating_sub(n);
        if state.held < self.limit / 4 {
            self.congested.store(false, Relaxed);
        }
        // A waiter registers under the lock before it waits, so none is missed.
        if state.waiting > 0 {
            self.freed.notify_all();
        }
    }

    /// The writer stopped: nothing will be released any more.
    pub fn close(&self) {
        self.state.lock().expect("not poisoned").closed = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `then` once a thread that acquires `wanted` bytes, with `held`
    /// of `limit` taken, waits for room; returns what its acquire gave.
    fn with_a_waiter(
        limit: usize,
        held: usize,
        wanted: usize,
        then: impl FnOnce(&ByteBudget),
    ) -> (ByteBudget, Result<(), RepoError>) {
        let budget = ByteBudget::new(limit);
        budget.acquire(held).unwrap();
        let acquired = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| budget.acquire(wanted));
            // The waiter registers before it sleeps.
            while budget.state.lock().unwrap().waiting == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            then(&budget);
            waiter.join().unwrap()
        });
        (budget, acquired)
    }

    #[test]
    fn a_waiting_acquire_goes_on_once_enough_is_released() {
        let (budget, acquired) = with_a_waiter(100, 80, 50, |budget| {
            // A release that frees too little leaves it waiting.
            budget.release(10);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(budget.state.lock().unwrap().waiting, 1, "70 + 50 > 100");
            budget.release(70);
        });
        acquired.unwrap();
        let state = budget.state.lock().unwrap();
        assert_eq!((state.held, state.waiting), (50, 0));
    }

    #[test]
    fn closing_fails_a_waiting_acquire() {
        let (_, acquired) = with_a_waiter(10, 10, 5, ByteBudget::close);
        assert!(acquired.is_err());
    }
}
