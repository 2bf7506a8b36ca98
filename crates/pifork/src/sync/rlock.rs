//! `RLock`: CPython's `multiprocessing.RLock`, a recursive lock owned by one thread of one
//! process at a time, which survives its owner's death.

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::mutex::deadline;
use super::mutex::{Acquired, MUTEX_SIZE, RawMutex};
use super::owner::{Me, me, thread_token};
use super::release::ReleaseError;
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};

/// A recursive lock shared by processes (CPython's `multiprocessing.RLock`): the thread that
/// holds it may acquire it again, and must release it as many times. Its owner is a thread of
/// a process: another thread, or another process, cannot release it
/// ([`ReleaseError::NotOwner`], CPython's "attempt to release recursive lock not owned by
/// thread"). A clone is the same lock.
///
/// An owner that dies holding it (at any depth) does not leave it locked: the next acquirer
/// takes it over with a depth of one and is told ([`Acquired::Recovered`]).
///
/// ```standalone_crate
/// use pifork::sync::RLock;
///
/// let lock = RLock::new()?;
/// let outer = lock.lock();
/// let inner = lock.lock(); // the same thread: no deadlock
/// drop(inner);
/// drop(outer);
/// assert!(lock.release().is_err(), "not held any more");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RLock {
    seg: Arc<Segment>,
    at: usize,
}

impl RLock {
    /// A new, unlocked recursive lock, in a shared segment of its own.
    pub fn new() -> Result<RLock, ShmError> {
        Ok(RLock { seg: Arc::new(Segment::object(Kind::RLock, 0, MUTEX_SIZE)?), at: PAYLOAD })
    }

    /// The lock whose cell is at `at` in `seg` (a shared value's own lock).
    pub(crate) fn within(seg: Arc<Segment>, at: usize) -> RLock {
        RLock { seg, at }
    }

    /// Claims the lock the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); [`ShmError::NotInherited`] if it did not,
    /// [`ShmError::WrongObject`] if that descriptor holds something else.
    pub fn from_inherited(fd: RawFd) -> Result<RLock, ShmError> {
        let (seg, _) = Segment::claim_object(fd, Kind::RLock)?;
        Ok(RLock { seg: Arc::new(seg), at: PAYLOAD })
    }

    fn raw(&self) -> RawMutex<'_> {
        let map = self.seg.map();
        RawMutex::new(map.atomic_u32(self.at), map.atomic_u64(self.at + 8))
    }

    /// The owning thread's token, and the depth.
    fn thread(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(self.at + 16)
    }

    fn depth(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(self.at + 20)
    }

    fn owned_by(&self, me: &Me, thread: u32) -> bool {
        self.raw().holder() == me.pid && self.thread().load(Ordering::Relaxed) == thread
    }

    fn acquire_until(&self, deadline: Option<Instant>, wait: bool) -> Option<Acquired> {
        let (me, thread) = (me(), thread_token());
        if self.owned_by(&me, thread) {
            let depth = self.depth().load(Ordering::Relaxed);
            self.depth()
                .store(depth.checked_add(1).expect("RLock depth overflow"), Ordering::Relaxed);
            return Some(Acquired::Normal);
        }
        let how = if wait { self.raw().lock(&me, deadline) } else { self.raw().try_lock(&me) }?;
        self.thread().store(thread, Ordering::Relaxed);
        self.depth().store(1, Ordering::Relaxed);
        Some(how)
    }

    /// Acquires the lock (again, if this thread holds it), waiting as long as it takes.
    pub fn acquire(&self) -> Acquired {
        self.acquire_until(None, true).expect("no deadline")
    }

    /// Acquires the lock, waiting at most `timeout` (monotonic clock); `None` if another
    /// thread or process kept it.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Acquired> {
        self.acquire_until(deadline(timeout), true)
    }

    /// Acquires the lock if that needs no wait (free, held by this thread, or its owner died).
    pub fn try_acquire(&self) -> Option<Acquired> {
        self.acquire_until(None, false)
    }

    /// Releases one level; the last one unlocks. [`ReleaseError::NotOwner`] unless the calling
    /// thread holds it.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if !self.owned_by(&me(), thread_token()) {
            return Err(ReleaseError::NotOwner);
        }
        let depth = self.depth().load(Ordering::Relaxed);
        if depth > 1 {
            self.depth().store(depth - 1, Ordering::Relaxed);
        } else {
            self.depth().store(0, Ordering::Relaxed);
            self.thread().store(0, Ordering::Relaxed);
            self.raw().unlock();
        }
        Ok(())
    }

    /// Releases every level the calling thread holds; how many it held (0: none, nothing
    /// released).
    pub(crate) fn release_all(&self) -> u32 {
        if !self.owned_by(&me(), thread_token()) {
            return 0;
        }
        let depth = self.depth().load(Ordering::Relaxed);
        self.depth().store(0, Ordering::Relaxed);
        self.thread().store(0, Ordering::Relaxed);
        self.raw().unlock();
        depth
    }

    /// Acquires the lock again at `depth` levels (after [`release_all`](Self::release_all)),
    /// waiting as long as it takes.
    pub(crate) fn acquire_levels(&self, depth: u32) -> Acquired {
        let how = self.acquire();
        if depth > 1 {
            self.depth().store(depth, Ordering::Relaxed);
        }
        how
    }

    /// Whether some thread of some process holds the lock now (the `locked()` of newer
    /// CPythons): a hint; a holder that has died counts until the next acquirer recovers it.
    pub fn is_locked(&self) -> bool {
        self.raw().holder() != 0
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.owned_by(&me(), thread_token())
    }

    /// Acquires the lock until the guard is dropped.
    pub fn lock(&self) -> RLockGuard<'_> {
        let how = self.acquire();
        RLockGuard { lock: self, how, _owner_thread: PhantomData }
    }

    /// Acquires the lock until the guard is dropped, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        let how = self.acquire_timeout(timeout)?;
        Some(RLockGuard { lock: self, how, _owner_thread: PhantomData })
    }

    /// Acquires the lock until the guard is dropped, if that needs no wait.
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        let how = self.try_acquire()?;
        Some(RLockGuard { lock: self, how, _owner_thread: PhantomData })
    }
}

/// CPython's repr: `<RLock(None, 0)>`; `<RLock(MainProcess, 2)>` when the calling thread
/// holds it two levels deep (`MainProcess|T1` on a thread named `T1`); held elsewhere,
/// `<RLock(SomeOtherThread, nonzero)>` or `<RLock(SomeOtherProcess, nonzero)>`.
impl std::fmt::Display for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let me = me();
        match self.raw().holder() {
            0 => write!(f, "<RLock(None, 0)>"),
            _ if self.owned_by(&me, thread_token()) => {
                let depth = self.depth().load(Ordering::Relaxed);
                write!(f, "<RLock({}, {depth})>", super::owner::label(true))
            }
            pid if pid == me.pid => write!(f, "<RLock(SomeOtherThread, nonzero)>"),
            _ => write!(f, "<RLock(SomeOtherProcess, nonzero)>"),
        }
    }
}

/// A held level of an [`RLock`], released on drop. It stays on its thread (not `Send`): only
/// the owning thread may release.
///
/// ```compile_fail,E0277
/// fn elsewhere<T: Send>(_: T) {}
/// let lock = pifork::sync::RLock::new().unwrap();
/// elsewhere(lock.lock()); // another thread could not release it
/// ```
#[derive(Debug)]
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    how: Acquired,
    _owner_thread: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Whether the lock was taken over from an owner that died holding it.
    pub fn recovered(&self) -> bool {
        self.how.recovered()
    }

    /// How the lock was acquired.
    pub fn acquired(&self) -> Acquired {
        self.how
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

impl AsFd for RLock {
    /// The lock's segment, to list in `Process::inherit_fds` (for a shared value's lock: the
    /// value's segment).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for RLock {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}
