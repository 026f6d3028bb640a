//! A byte budget between pipeline stages: a stage acquires the bytes it hands
//! on and the consuming stage releases them, so peak memory is the same
//! whether blobs are 1 KiB or 8 MiB and however large the volume is.
//!
//! The contract, which keeps a pipeline from stalling:
//! - A blob larger than the budget is admitted alone, once nothing else is
//!   in flight (the budget is then exceeded by that one blob); in a
//!   [`ByteBudget::pairing`] budget, once no more than its own size is.
//! - Admission is in arrival order: a blob waiting for room is not
//!   overtaken by smaller ones that would fit, so the empty pipeline a
//!   large blob waits for does come (small blobs streaming in from another
//!   thread kept it from ever emptying).
//! - What is acquired must be handed on at once to a stage that releases
//!   it without waiting for the acquirer: bytes held back (an unsent batch)
//!   are room the pipeline cannot see nor give back, and an acquire
//!   waiting for them waits for ever.
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
    /// A blob may be in flight beside others as large as itself, the
    /// budget notwithstanding ([`ByteBudget::pairing`]).
    pairs: bool,
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
    /// The turn the next acquire takes, and the turn admitted next: turns
    /// keep admission in arrival order.
    next_turn: u64,
    serving: u64,
}

impl ByteBudget {
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            limit,
            pairs: false,
            state: Mutex::new(State::default()),
            freed: std::sync::Condvar::new(),
            congested: AtomicBool::new(false),
        }
    }

    /// A budget of `limit` bytes in which a blob of `n` bytes may always
    /// join up to `n` others: two blobs larger than half the budget are
    /// sealed at once instead of one after the other. A backup's chunks
    /// are up to 8 MiB (runs of zeros, incompressible data), and with one
    /// such chunk in an 8 MiB budget at a time the reader and a worker
    /// waited for the other worker: the db-files volume's first backup
    /// took 4.4 s instead of 3.7 s (files cached). Small blobs keep the
    /// plain limit.
    pub fn pairing(limit: usize) -> ByteBudget {
        ByteBudget {
            pairs: true,
            ..ByteBudget::new(limit)
        }
    }

    /// Waits for room for `n` bytes, after every acquire that came first (a
    /// blob larger than the budget waits for an empty pipeline).
    pub fn acquire(&self, n: usize) -> Result<(), RepoError> {
        let mut state = self.state.lock().expect("not poisoned");
        let turn = state.next_turn;
        state.next_turn += 1;
        while !state.closed && (state.serving != turn || self.must_wait(&state, n)) {
            self.congested.store(true, Relaxed);
            state.waiting += 1;
            state = self.freed.wait(state).expect("not poisoned");
            state.waiting -= 1;
        }
        if state.closed {
            return Err(RepoError::Source("the pipeline stopped".into()));
        }
        state.serving += 1;
        state.held += n;
        // The next turn may fit too; it waits until told.
        if state.waiting > 0 {
            self.freed.notify_all();
        }
        Ok(())
    }

    /// Whether [`acquire`](Self::acquire) of `n` bytes would wait now. With
    /// one acquiring thread the answer stays true only until it acquires:
    /// the others only release.
    pub fn would_wait(&self, n: usize) -> bool {
        let state = self.state.lock().expect("not poisoned");
        state.serving != state.next_turn || self.must_wait(&state, n)
    }

    fn must_wait(&self, state: &State, n: usize) -> bool {
        let room = if self.pairs {
            self.limit.max(2 * n)
        } else {
            self.limit
        };
        !state.closed && state.held > 0 && state.held + n > room
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

    /// Bytes acquired and not released.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.state.lock().expect("not poisoned").held
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

    /// A blob larger than the budget is admitted alone once the pipeline
    /// is empty, even while another thread streams small blobs that would
    /// fit: they queue behind it. Without turns the small ones kept the
    /// pipeline from ever emptying and it waited until they stopped.
    #[test]
    fn a_blob_larger_than_the_budget_is_not_starved_by_small_ones() {
        let budget = ByteBudget::new(100);
        let (handed_on, consumed) = std::sync::mpsc::channel::<usize>();
        let small_acquired = std::sync::atomic::AtomicUsize::new(0);
        let (large_done, large_admitted) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            // The consuming stage: releases what it is handed, slowly.
            scope.spawn(|| {
                for n in consumed {
                    std::thread::sleep(Duration::from_millis(1));
                    budget.release(n);
                }
            });
            let small = {
                let (budget, small_acquired) = (&budget, &small_acquired);
                scope.spawn(move || {
                    for _ in 0..2000 {
                        budget.acquire(10).unwrap();
                        small_acquired.fetch_add(1, Relaxed);
                        handed_on.send(10).unwrap();
                    }
                })
            };
            while small_acquired.load(Relaxed) < 20 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let large = scope.spawn(|| {
                budget.acquire(150).unwrap();
                large_done.send(small_acquired.load(Relaxed)).unwrap();
                budget.release(150);
            });
            let small_before = large_admitted
                .recv_timeout(Duration::from_secs(30))
                .expect("the large blob was admitted");
            assert!(small_before < 200, "{small_before} small blobs went first");
            large.join().unwrap();
            small.join().unwrap();
        });
    }

    /// Two blobs larger than half the budget are in flight at once in a
    /// pairing budget (one sealed while the next is), not a third; a plain
    /// budget takes them one at a time; small ones keep the plain limit.
    #[test]
    fn a_pairing_budget_lets_a_large_blob_join_one_as_large() {
        let pairing = ByteBudget::pairing(100);
        pairing.acquire(80).unwrap();
        assert!(!pairing.would_wait(80));
        pairing.acquire(80).unwrap();
        assert!(pairing.would_wait(80), "a third large blob");
        assert!(pairing.would_wait(10), "a small one past the limit");
        let plain = ByteBudget::new(100);
        plain.acquire(80).unwrap();
        assert!(plain.would_wait(80));
        assert!(!plain.would_wait(20));
    }

    /// Admission is in arrival order: an acquire that would fit waits
    /// behind one that waits for room, and goes once that one went.
    #[test]
    fn an_acquire_that_fits_waits_behind_an_earlier_one_that_does_not() {
        let (budget, acquired) = with_a_waiter(100, 80, 50, |budget| {
            assert!(budget.would_wait(10), "a smaller blob would overtake");
            budget.release(80);
        });
        acquired.unwrap();
        assert!(!budget.would_wait(10));
        budget.acquire(10).unwrap();
        assert_eq!(budget.held(), 60);
    }
}
