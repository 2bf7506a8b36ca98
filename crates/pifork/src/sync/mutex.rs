//! The lock word every lock of the crate is built on: a process-shared futex mutex that
//! survives its holder's death. The queue, the pool and the shared values reuse it by placing
//! a [`MUTEX_SIZE`]-byte cell in their own segment.
//!
//! The word (`u32`, the futex) is `0` when free, else the holder's pid, with bit 31 set once
//! some process may be sleeping on it. Beside it, a 64-bit owner word records the holder's
//! pid and start time, written right after the word is taken.
//!
//! - acquire, uncontended: one compare-and-swap `0 -> pid` (acquire ordering), then a plain
//!   store of the owner word; no system call;
//! - release: one swap `-> 0` (release ordering); `FUTEX_WAKE` only if bit 31 was set;
//! - contended: the waiter looks at the word up to [`SPINS`] times, backing off between looks
//!   (a holder on another CPU is often about to release; a look pulls the word's cache line
//!   from it, so they grow apart, up to 64 pauses: tens of microseconds in all), then sets bit 31 and sleeps on the word in slices of [`SLICE`]; after
//!   each slice that passes without a wake-up it reads the holder's `/proc/<pid>/stat`. A
//!   holder that is gone, a zombie, or whose pid now names a process started at another time
//!   died holding the lock: the waiter takes the word over with a compare-and-swap from the
//!   value it judged, so exactly one waiter recovers it, and is told
//!   ([`Acquired::Recovered`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::owner::{Me, PID_MASK, holder_died};
use crate::sys;

/// How long a waiter sleeps before it looks whether the holder still lives.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// Looks at a held word before sleeping on it.
const SPINS: u32 = 40;

/// The most pauses between two looks: 2^this.
const BACKOFF: u32 = 6;

/// Bit 31 of the lock word: some process may be sleeping on it.
const WAITERS: u32 = 1 << 31;

/// Bytes a mutex cell takes in a segment (a cache line): the word at 0, the owner word at 8,
/// and 16..64 free for the lock built on it (an `RLock` keeps its owning thread and count at
/// 16..24) and what it guards (a `Value` keeps its number at 32..40: the holder touches one
/// line).
pub(crate) const MUTEX_SIZE: usize = 64;

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a recovered lock may guard data its dead holder left half-changed"]
pub enum Acquired {
    /// From a holder that released it (or free).
    Normal,
    /// From a holder that died holding it (killed, or ended without releasing): whatever it
    /// protects may be half-updated, as the holder left it at its death.
    Recovered,
}

impl Acquired {
    /// Whether the lock was taken over from a dead holder.
    pub fn recovered(self) -> bool {
        self == Acquired::Recovered
    }
}

/// A mutex cell: the lock word and the owner word, in shared memory.
#[derive(Clone, Copy)]
pub(crate) struct RawMutex<'a> {
    word: &'a AtomicU32,
    owner: &'a AtomicU64,
}

impl<'a> RawMutex<'a> {
    /// The cell made of these two words (the lock word first, in the same segment).
    pub(crate) fn new(word: &'a AtomicU32, owner: &'a AtomicU64) -> RawMutex<'a> {
        RawMutex { word, owner }
    }

    /// The pid of the holder (0: free).
    pub(crate) fn holder(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & PID_MASK
    }

    /// Takes the lock if it is free, or if its holder died; never sleeps.
    pub(crate) fn try_lock(&self, me: &Me) -> Option<Acquired> {
        if self.word.compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.owner.store(me.stamp(), Ordering::Relaxed);
            return Some(Acquired::Normal);
        }
        self.try_recover(me)
    }

    /// Takes the lock, waiting until `deadline` (`None`: as long as it takes).
    pub(crate) fn lock(&self, me: &Me, deadline: Option<Instant>) -> Option<Acquired> {
        if self.word.compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.owner.store(me.stamp(), Ordering::Relaxed);
            return Some(Acquired::Normal);
        }
        self.lock_contended(me, deadline)
    }

    #[cold]
    fn lock_contended(&self, me: &Me, deadline: Option<Instant>) -> Option<Acquired> {
        // Once this caller has slept, others may sleep too: it takes the word with the bit
        // set, so that its release wakes one. Before that it takes it bare (a sleeper that a
        // release woke marks the word again when it finds it taken), so that the bit, and a
        // wake-up per release, do not outlive the contention.
        let mut mark = 0;
        loop {
            // A holder on another CPU often releases within a few hundred cycles: look a
            // little before sleeping.
            for spin in 0..SPINS {
                if self.word.load(Ordering::Relaxed) == 0
                    && self
                        .word
                        .compare_exchange(0, me.pid | mark, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    self.owner.store(me.stamp(), Ordering::Relaxed);
                    return Some(Acquired::Normal);
                }
                // Back off, so that looking does not pull the line from the holder.
                for _ in 0..1u32 << spin.min(BACKOFF) {
                    std::hint::spin_loop();
                }
            }
            let seen = self.word.load(Ordering::Relaxed);
            if seen == 0 {
                continue;
            }
            let slice = match deadline {
                None => SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(SLICE),
                    // Out of time: one last look at the holder.
                    _ => return self.try_recover(me),
                },
            };
            if seen & WAITERS == 0
                && self
                    .word
                    .compare_exchange(seen, seen | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Woken, the word changed, or a signal: look again; a slice without news: look
            // at the holder.
            if let Err(nix::errno::Errno::ETIMEDOUT) =
                sys::futex_wait(self.word, seen | WAITERS, Some(slice))
                && let Some(how) = self.try_recover(me)
            {
                return Some(how);
            }
            mark = WAITERS;
        }
    }

    /// Takes the lock over if its holder died (exactly one caller succeeds per death).
    #[cold]
    fn try_recover(&self, me: &Me) -> Option<Acquired> {
        let seen = self.word.load(Ordering::Relaxed);
        let holder = seen & PID_MASK;
        if holder == 0 {
            return self.try_lock_free(me);
        }
        if !holder_died(holder, self.owner.load(Ordering::Relaxed), me) {
            return None;
        }
        let taken = me.pid | (seen & WAITERS);
        self.word.compare_exchange(seen, taken, Ordering::Acquire, Ordering::Relaxed).ok()?;
        self.owner.store(me.stamp(), Ordering::Relaxed);
        log::debug!("lock recovered from pid {holder}, which died holding it");
        Some(Acquired::Recovered)
    }

    fn try_lock_free(&self, me: &Me) -> Option<Acquired> {
        let seen = self.word.load(Ordering::Relaxed);
        if seen & PID_MASK != 0 {
            return None;
        }
        let taken = me.pid | (seen & WAITERS);
        self.word.compare_exchange(seen, taken, Ordering::Acquire, Ordering::Relaxed).ok()?;
        self.owner.store(me.stamp(), Ordering::Relaxed);
        Some(Acquired::Normal)
    }

    /// Releases the lock (whoever holds it); false if it was not locked.
    pub(crate) fn unlock(&self) -> bool {
        let was = self.word.swap(0, Ordering::Release);
        if was & WAITERS != 0 {
            let _ = sys::futex_wake(self.word, 1);
        }
        was != 0
    }
}

/// The instant `timeout` from now; `None` if it is beyond what the clock can tell (as long as
/// it takes).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::owner::me;

    fn cell() -> (AtomicU32, AtomicU64) {
        (AtomicU32::new(0), AtomicU64::new(0))
    }

    #[test]
    fn the_word_names_the_holder_and_the_waiters() {
        let (w, o) = cell();
        let m = RawMutex::new(&w, &o);
        let me = me();
        assert_eq!(m.try_lock(&me), Some(Acquired::Normal));
        assert_eq!(w.load(Ordering::Relaxed), me.pid);
        assert_eq!(o.load(Ordering::Relaxed), me.stamp());
        assert_eq!(m.try_lock(&me), None, "not recursive, and the holder lives");
        assert_eq!(m.lock(&me, Some(Instant::now())), None);
        assert_eq!(w.load(Ordering::Relaxed), me.pid, "out of time at once: no mark");
        assert_eq!(m.lock(&me, Some(Instant::now() + Duration::from_millis(30))), None);
        assert_eq!(w.load(Ordering::Relaxed), me.pid | WAITERS, "a waiter marked the word");
        assert!(m.unlock());
        assert_eq!(w.load(Ordering::Relaxed), 0);
        assert!(!m.unlock(), "already free");
    }

    #[test]
    fn a_dead_holder_is_replaced_once() {
        let (w, o) = cell();
        let m = RawMutex::new(&w, &o);
        let me = me();
        // A pid no process has, with waiters: the lock is taken over, the bit kept.
        w.store(PID_MASK | WAITERS, Ordering::Relaxed);
        assert_eq!(m.try_lock(&me), Some(Acquired::Recovered));
        assert_eq!(w.load(Ordering::Relaxed), me.pid | WAITERS);
        assert_eq!(m.try_lock(&me), None, "the new holder lives");
        assert!(m.unlock());
        // A waiter recovers it too, once its slice passes.
        w.store(PID_MASK, Ordering::Relaxed);
        let start = Instant::now();
        assert_eq!(m.lock(&me, None), Some(Acquired::Recovered));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_release_wakes_a_sleeper_in_time() {
        let (w, o) = cell();
        let (w, o): (&'static AtomicU32, &'static AtomicU64) =
            (Box::leak(Box::new(w)), Box::leak(Box::new(o)));
        let m = RawMutex::new(w, o);
        assert_eq!(m.lock(&me(), None), Some(Acquired::Normal));
        let t = std::thread::spawn(move || {
            // Another thread, same process: it waits, then gets it normally.
            RawMutex::new(w, o).lock(&me(), Some(Instant::now() + Duration::from_secs(10)))
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(m.unlock());
        assert_eq!(t.join().unwrap(), Some(Acquired::Normal));
        assert!(m.unlock());
    }
}
