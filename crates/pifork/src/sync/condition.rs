//! `Condition`: CPython's `multiprocessing.Condition`, a condition variable shared by
//! processes, over a [`Lock`] or an [`RLock`].
//!
//! Each waiter takes a slot in the condition's segment (under the lock): its process's stamp,
//! a ticket (the order of arrival) and a futex word it sleeps on. `notify(n)` (under the lock)
//! marks the `n` oldest live waiters notified and wakes each on its own word, so exactly those
//! wake, in the order they came, as CPython's do. A waiter whose process died while waiting is
//! found by the stamp in its slot: `notify` frees that slot and notifies the next waiter
//! instead, so a notification is never spent on the dead.

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::lock::Lock;
use super::mutex::{Acquired, deadline};
use super::owner::{me, stamp_died};
use super::release::ReleaseError;
use super::rlock::RLock;
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sys;

/// Waiters at once (threads of all processes together); one more is
/// [`ConditionError::TooManyWaiters`].
pub const WAITER_SLOTS: usize = 128;

const SLOT_SIZE: usize = 32;
/// The next ticket (u64) is at `PAYLOAD`; the slots follow the first line.
const SLOTS_AT: usize = PAYLOAD + 64;

/// Yields to a lock holder, at most, before taking the lock back after a wake-up.
const YIELDS: u32 = 20;

const FREE: u32 = 0;
const WAITING: u32 = 1;
const NOTIFIED: u32 = 2;

/// The header number recording which lock a condition is built on.
const OVER_LOCK: u64 = 1;
const OVER_RLOCK: u64 = 2;

/// What a condition's rules forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionError {
    /// `wait` or `notify` without holding the condition's lock (CPython: `RuntimeError:
    /// cannot wait on un-acquired lock`, or an `AssertionError` in `multiprocessing`).
    NotHeld,
    /// [`WAITER_SLOTS`] waiters wait already.
    TooManyWaiters,
}

impl std::fmt::Display for ConditionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConditionError::NotHeld => {
                f.write_str("cannot wait on or notify a condition whose lock is not held")
            }
            ConditionError::TooManyWaiters => {
                write!(f, "more than {WAITER_SLOTS} waiters on one condition")
            }
        }
    }
}

impl std::error::Error for ConditionError {}

/// The lock a [`Condition`] is built on.
#[derive(Debug, Clone)]
pub enum ConditionLock {
    /// A non-recursive lock: held by the calling process counts as held.
    Lock(Lock),
    /// A recursive lock (CPython's default): held by the calling thread, at any depth; a wait
    /// releases every level and takes them all back.
    RLock(RLock),
}

/// A condition variable shared by processes (CPython's `multiprocessing.Condition`). A clone
/// is the same condition.
///
/// [`wait`](Self::wait) releases the lock, sleeps until notified (or the timeout), and takes
/// the lock back before it returns, as CPython's does; calling it, or
/// [`notify`](Self::notify), without holding the lock is [`ConditionError::NotHeld`].
///
/// # A participant's death
/// A waiter killed while waiting is skipped by later notifications (they go to the next live
/// waiter). A waiter killed after it was notified but before it took the lock back has used
/// up that notification, as a thread that wakes and dies would. A process killed while it
/// holds the lock: the lock's next acquirer recovers it (see [the module](crate::sync)),
/// waiters taking the lock back included.
///
/// ```standalone_crate
/// use pifork::sync::Condition;
/// use std::time::Duration;
///
/// let cond = Condition::new()?;
/// assert!(cond.notify(1).is_err(), "the lock is not held");
/// let _held = cond.lock();
/// assert_eq!(cond.wait(Some(Duration::from_millis(10))), Ok(false), "nobody notified");
/// assert_eq!(cond.wait_for(|| true, None), Ok(true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Condition {
    seg: Arc<Segment>,
    lock: ConditionLock,
}

impl Condition {
    /// A new condition over a new [`RLock`] of its own (CPython's default).
    pub fn new() -> Result<Condition, ShmError> {
        Condition::over(ConditionLock::RLock(RLock::new()?))
    }

    /// A new condition over `lock` (which others may also use directly).
    pub fn with_lock(lock: Lock) -> Result<Condition, ShmError> {
        Condition::over(ConditionLock::Lock(lock))
    }

    /// A new condition over the recursive lock `lock`.
    pub fn with_rlock(lock: RLock) -> Result<Condition, ShmError> {
        Condition::over(ConditionLock::RLock(lock))
    }

    fn over(lock: ConditionLock) -> Result<Condition, ShmError> {
        let code = match lock {
            ConditionLock::Lock(_) => OVER_LOCK,
            ConditionLock::RLock(_) => OVER_RLOCK,
        };
        let seg = Segment::object(Kind::Condition, code, 64 + WAITER_SLOTS * SLOT_SIZE)?;
        Ok(Condition { seg: Arc::new(seg), lock })
    }

    /// Claims the condition the parent handed down: `fd` its own descriptor, `lock_fd` its
    /// lock's (both listed in the parent's `Process::inherit_fds`; see
    /// [`fds`](Self::fds)). [`ShmError::NotInherited`] or [`ShmError::WrongObject`] as for
    /// the locks.
    pub fn from_inherited(fd: RawFd, lock_fd: RawFd) -> Result<Condition, ShmError> {
        let (seg, code) = Segment::claim_object(fd, Kind::Condition)?;
        let lock = if code == OVER_LOCK {
            ConditionLock::Lock(Lock::from_inherited(lock_fd)?)
        } else {
            ConditionLock::RLock(RLock::from_inherited(lock_fd)?)
        };
        Ok(Condition { seg: Arc::new(seg), lock })
    }

    /// The condition's descriptor and its lock's, to list in `Process::inherit_fds` and pass
    /// to [`from_inherited`](Self::from_inherited).
    pub fn fds(&self) -> [RawFd; 2] {
        let lock = match &self.lock {
            ConditionLock::Lock(l) => l.as_raw_fd(),
            ConditionLock::RLock(l) => l.as_raw_fd(),
        };
        [self.seg.as_fd().as_raw_fd(), lock]
    }

    /// The lock the condition is built on.
    pub fn get_lock(&self) -> &ConditionLock {
        &self.lock
    }

    /// Acquires the condition's lock, waiting as long as it takes.
    pub fn acquire(&self) -> Acquired {
        match &self.lock {
            ConditionLock::Lock(l) => l.acquire(),
            ConditionLock::RLock(l) => l.acquire(),
        }
    }

    /// Acquires the condition's lock, waiting at most `timeout`; `None` if it stayed held.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Acquired> {
        match &self.lock {
            ConditionLock::Lock(l) => l.acquire_timeout(timeout),
            ConditionLock::RLock(l) => l.acquire_timeout(timeout),
        }
    }

    /// Releases the condition's lock (one level of an `RLock`).
    pub fn release(&self) -> Result<(), ReleaseError> {
        match &self.lock {
            ConditionLock::Lock(l) => l.release(),
            ConditionLock::RLock(l) => l.release(),
        }
    }

    /// Acquires the condition's lock until the guard is dropped.
    pub fn lock(&self) -> ConditionGuard<'_> {
        let how = self.acquire();
        ConditionGuard { cond: self, how, _thread: PhantomData }
    }

    /// Whether anyone holds the lock.
    fn locked(&self) -> bool {
        match &self.lock {
            ConditionLock::Lock(l) => l.is_locked(),
            ConditionLock::RLock(l) => l.is_locked(),
        }
    }

    fn held(&self) -> bool {
        match &self.lock {
            ConditionLock::Lock(l) => l.held_here(),
            ConditionLock::RLock(l) => l.is_owned(),
        }
    }

    fn next_ticket(&self) -> &AtomicU64 {
        self.seg.map().atomic_u64(PAYLOAD)
    }

    /// Slot `i`: the waiter's stamp, its ticket, its state (the futex word).
    fn slot(&self, i: usize) -> (&AtomicU64, &AtomicU64, &AtomicU32) {
        let map = self.seg.map();
        let at = SLOTS_AT + i * SLOT_SIZE;
        (map.atomic_u64(at), map.atomic_u64(at + 8), map.atomic_u32(at + 16))
    }

    /// Takes a slot for a waiter of this process (under the lock), freeing those of waiters
    /// that died on the way.
    fn take_slot(&self) -> Result<usize, ConditionError> {
        let me = me();
        let free = (0..WAITER_SLOTS).find(|&i| self.slot(i).2.load(Ordering::Relaxed) == FREE);
        // All taken: by the dead, perhaps (a /proc read each, only then).
        let i = free
            .or_else(|| {
                (0..WAITER_SLOTS).find(|&i| stamp_died(self.slot(i).0.load(Ordering::Relaxed), &me))
            })
            .ok_or(ConditionError::TooManyWaiters)?;
        let (stamp, ticket, state) = self.slot(i);
        stamp.store(me.stamp(), Ordering::Relaxed);
        ticket.store(self.next_ticket().fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        state.store(WAITING, Ordering::Release);
        Ok(i)
    }

    /// Releases the lock wholly; the depth to take back.
    fn release_for_wait(&self) -> u32 {
        match &self.lock {
            ConditionLock::Lock(l) => {
                let _ = l.release();
                1
            }
            ConditionLock::RLock(l) => l.release_all(),
        }
    }

    fn reacquire(&self, depth: u32) {
        let how = match &self.lock {
            ConditionLock::Lock(l) => l.acquire(),
            ConditionLock::RLock(l) => l.acquire_levels(depth),
        };
        if how.recovered() {
            log::debug!("condition: its lock was recovered from a holder that died");
        }
    }

    /// Releases the lock, waits until notified or `timeout` passes (`None`: as long as it
    /// takes; the monotonic clock), takes the lock back; whether it was notified (false: timed
    /// out). [`ConditionError::NotHeld`] (nothing released) unless the caller holds the lock.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, ConditionError> {
        if !self.held() {
            return Err(ConditionError::NotHeld);
        }
        let i = self.take_slot()?;
        let deadline = timeout.and_then(deadline);
        let depth = self.release_for_wait();
        let (stamp, _, state) = self.slot(i);
        while state.load(Ordering::Acquire) == WAITING {
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break,
                },
            };
            let _ = sys::futex_wait(state, WAITING, left);
        }
        // The notifier still holds the lock, most often: let it run (it may share this CPU)
        // rather than spin for it.
        for _ in 0..YIELDS {
            if !self.locked() {
                break;
            }
            std::thread::yield_now();
        }
        self.reacquire(depth);
        // Notified, even just after the timeout: the notification is not lost.
        let notified = state.load(Ordering::Acquire) == NOTIFIED;
        stamp.store(0, Ordering::Relaxed);
        state.store(FREE, Ordering::Release);
        Ok(notified)
    }

    /// Waits until `predicate` holds (checked first, then after each wake-up, with the lock
    /// held), at most `timeout` in all; the predicate's last result (CPython's `wait_for`).
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, ConditionError> {
        let deadline = timeout.and_then(deadline);
        loop {
            if predicate() {
                return Ok(true);
            }
            let left = match (timeout, deadline) {
                (None, _) | (Some(_), None) => None,
                (Some(_), Some(d)) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
            };
            self.wait(left)?;
        }
    }

    /// Wakes up to `n` waiters, the longest waiting first, skipping (and forgetting) waiters
    /// whose process died. [`ConditionError::NotHeld`] unless the caller holds the lock.
    pub fn notify(&self, n: usize) -> Result<(), ConditionError> {
        if !self.held() {
            return Err(ConditionError::NotHeld);
        }
        let me = me();
        let mut waiting: Vec<(u64, usize)> = (0..WAITER_SLOTS)
            .filter(|&i| self.slot(i).2.load(Ordering::Relaxed) == WAITING)
            .map(|i| (self.slot(i).1.load(Ordering::Relaxed), i))
            .collect();
        waiting.sort_unstable();
        let mut woken = 0;
        for (_, i) in waiting {
            if woken == n {
                break;
            }
            let (stamp, _, state) = self.slot(i);
            if stamp_died(stamp.load(Ordering::Relaxed), &me) {
                log::debug!("condition: a waiter died waiting; notifying the next");
                stamp.store(0, Ordering::Relaxed);
                state.store(FREE, Ordering::Release);
                continue;
            }
            state.store(NOTIFIED, Ordering::Release);
            let _ = sys::futex_wake(state, 1);
            woken += 1;
        }
        Ok(())
    }

    /// Wakes every waiter. [`ConditionError::NotHeld`] unless the caller holds the lock.
    pub fn notify_all(&self) -> Result<(), ConditionError> {
        self.notify(usize::MAX)
    }
}

/// The held lock of a [`Condition`], released on drop (one level of an `RLock`). It stays on
/// its thread.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    how: Acquired,
    _thread: PhantomData<*const ()>,
}

impl ConditionGuard<'_> {
    /// Whether the lock was taken over from a holder that died holding it.
    pub fn recovered(&self) -> bool {
        self.how.recovered()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        let _ = self.cond.release();
    }
}

/// CPython's repr: `<Condition(<RLock(None, 0)>, 0)>`, the lock's repr and how many wait
/// (not yet notified).
impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = (0..WAITER_SLOTS)
            .filter(|&i| self.slot(i).2.load(Ordering::Acquire) == WAITING)
            .count();
        match &self.lock {
            ConditionLock::Lock(l) => write!(f, "<Condition({l}, {waiting})>"),
            ConditionLock::RLock(l) => write!(f, "<Condition({l}, {waiting})>"),
        }
    }
}

impl AsFd for Condition {
    /// The condition's own segment (its lock has another: see [`Condition::fds`]).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for Condition {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}
