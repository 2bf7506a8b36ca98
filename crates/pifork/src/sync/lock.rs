//! `Lock`: CPython's `multiprocessing.Lock`, a non-recursive lock shared by processes, which
//! survives its holder's death.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::mutex::deadline;
use super::mutex::{Acquired, RawMutex};
use super::owner::{me, thread_token};
use super::release::ReleaseError;
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};

/// Where in the payload, after the mutex's lock and owner words, the holder's thread token is.
const THREAD_AT: usize = 16;

/// A lock shared by processes (CPython's `multiprocessing.Lock`): one holder at a time, in
/// any thread of any process that shares it. A clone is the same lock.
///
/// As in CPython, any process may release it (it is not owned), and releasing it when it is
/// not locked is an error ([`ReleaseError::Unlocked`]). Unlike CPython, a holder that dies
/// holding it (killed, or ended without releasing) does not leave it locked forever: the next
/// acquirer takes it over within about 20 ms of noticing, and is told
/// ([`Acquired::Recovered`]; see [the module](crate::sync) for what it may find).
///
/// ```standalone_crate
/// use pifork::sync::{Acquired, Lock};
///
/// let lock = Lock::new()?;
/// assert_eq!(lock.acquire(), Acquired::Normal);
/// assert!(lock.try_acquire().is_none(), "not recursive");
/// lock.release()?;
/// {
///     let guard = lock.lock(); // released when the guard goes
///     assert!(!guard.recovered());
/// }
/// assert!(lock.release().is_err(), "released too many times");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    seg: Arc<Segment>,
}

impl Lock {
    /// A new, unlocked lock, in a shared segment of its own.
    pub fn new() -> Result<Lock, ShmError> {
        Ok(Lock { seg: Arc::new(Segment::object(Kind::Lock, 0, super::mutex::MUTEX_SIZE)?) })
    }

    /// Claims the lock the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); [`ShmError::NotInherited`] if it did not,
    /// [`ShmError::WrongObject`] if that descriptor holds something else.
    pub fn from_inherited(fd: RawFd) -> Result<Lock, ShmError> {
        let (seg, _) = Segment::claim_object(fd, Kind::Lock)?;
        Ok(Lock { seg: Arc::new(seg) })
    }

    fn raw(&self) -> RawMutex<'_> {
        let map = self.seg.map();
        RawMutex::new(map.atomic_u32(PAYLOAD), map.atomic_u64(PAYLOAD + 8))
    }

    /// The calling thread's token (`owner::thread_token`), written by each acquirer after it
    /// takes the lock: what tells the repr whether the holder in this process is this thread.
    fn thread_word(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(PAYLOAD + THREAD_AT)
    }

    /// Records the calling thread as the holder's, once `how` says the lock was taken.
    fn taken(&self, how: Option<Acquired>) -> Option<Acquired> {
        if how.is_some() {
            self.thread_word().store(thread_token(), Ordering::Relaxed);
        }
        how
    }

    /// Acquires the lock, waiting as long as it takes.
    pub fn acquire(&self) -> Acquired {
        self.taken(self.raw().lock(&me(), None)).expect("no deadline")
    }

    /// Acquires the lock, waiting at most `timeout` (measured on the monotonic clock); `None`
    /// if it stayed locked.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Acquired> {
        self.taken(self.raw().lock(&me(), deadline(timeout)))
    }

    /// Acquires the lock if it is free (or its holder died), without waiting.
    pub fn try_acquire(&self) -> Option<Acquired> {
        self.taken(self.raw().try_lock(&me()))
    }

    /// Releases the lock. [`ReleaseError::Unlocked`] if it was not locked.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.raw().unlock() { Ok(()) } else { Err(ReleaseError::Unlocked) }
    }

    /// Acquires the lock until the guard is dropped.
    pub fn lock(&self) -> LockGuard<'_> {
        let how = self.acquire();
        LockGuard { lock: self, how }
    }

    /// Acquires the lock until the guard is dropped, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        let how = self.acquire_timeout(timeout)?;
        Some(LockGuard { lock: self, how })
    }

    /// Acquires the lock until the guard is dropped, if that needs no wait.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        let how = self.try_acquire()?;
        Some(LockGuard { lock: self, how })
    }

    /// Whether some process holds the lock now (the `locked()` of newer CPythons): a hint
    /// that may be stale at once; a holder that has died counts until the next acquirer
    /// recovers the lock.
    pub fn is_locked(&self) -> bool {
        self.raw().holder() != 0
    }

    /// Whether this process holds the lock (the holder its word names).
    pub(crate) fn held_here(&self) -> bool {
        self.raw().holder() == me().pid
    }
}

/// CPython's repr: `<Lock(owner=None)>`; `<Lock(owner=MainProcess)>` (the process's name)
/// when the calling thread holds it (`MainProcess|T1` on a thread named `T1`);
/// `<Lock(owner=SomeOtherThread)>` when another thread of this process does;
/// `<Lock(owner=SomeOtherProcess)>`.
impl std::fmt::Display for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = match self.raw().holder() {
            0 => "None".to_string(),
            pid if pid == me().pid => {
                if self.thread_word().load(Ordering::Relaxed) == thread_token() {
                    super::owner::label(true)
                } else {
                    "SomeOtherThread".to_string()
                }
            }
            _ => "SomeOtherProcess".to_string(),
        };
        write!(f, "<Lock(owner={owner})>")
    }
}

/// A held [`Lock`], released on drop.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    how: Acquired,
}

impl LockGuard<'_> {
    /// Whether the lock was taken over from a holder that died holding it.
    pub fn recovered(&self) -> bool {
        self.how.recovered()
    }

    /// How the lock was acquired.
    pub fn acquired(&self) -> Acquired {
        self.how
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Someone else may have released it meanwhile (any process may): nothing to undo.
        let _ = self.lock.release();
    }
}

impl AsFd for Lock {
    /// The lock's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for Lock {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}
