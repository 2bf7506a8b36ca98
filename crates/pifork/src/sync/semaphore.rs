//! `Semaphore` and `BoundedSemaphore`: CPython's counting semaphores, shared by processes,
//! with the units a dead process held given back.
//!
//! The count is the futex word. Beside it, [`SLOTS`] holder slots record, per process (its pid
//! and start time), how many units it acquired and has not released. When a process ends,
//! however it ends, with units recorded, the next acquirer that finds the count at zero for a
//! slice (or a [`try_acquire`](Semaphore::try_acquire) that finds it at zero) returns them.
//!
//! Taking a unit and recording it are two atomic steps, as are forgetting it and giving it
//! back: a process killed in the instant between them loses that one unit (rather than giving
//! it back twice, which could break a bound).

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::mutex::deadline;
use super::mutex::{Acquired, SLICE};
use super::owner::{Me, me, stamp_died};
use super::release::ReleaseError;
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sys;

/// Processes whose units are recorded at once; units acquired by more processes than this at
/// the same time are not recorded (and not given back if their holder dies).
pub const SLOTS: usize = 64;

/// Where the slots start, after the count, the waiters, the bound and the mode.
const SLOTS_AT: usize = PAYLOAD + 64;
const SLOT_SIZE: usize = 16;
const UNBOUNDED: u32 = u32::MAX;
/// A slot being emptied by the process that found its holder dead.
const RECLAIMING: u64 = u64::MAX;

/// Whether holders are recorded.
const TRACKED: u32 = 1;
const COUNTER: u32 = 2;

/// The largest initial value (CPython's `SEM_VALUE_MAX` on Linux, `INT_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// A counting semaphore shared by processes (CPython's `multiprocessing.Semaphore`): `acquire`
/// takes a unit, waiting while there is none; `release` gives one back (from any process). A
/// clone is the same semaphore.
///
/// Units a process acquired and did not release come back when it ends, killed or not (the
/// next acquirer that waits is told, [`Acquired::Recovered`]). That is right when units stand
/// for something held, as a lock's are; when they count events (one process acquires what
/// another released), build it with [`Semaphore::counter`], which records no holders and gives
/// nothing back.
///
/// ```standalone_crate
/// use pifork::sync::Semaphore;
///
/// let sem = Semaphore::new(2)?;
/// let a = sem.lock();
/// let b = sem.lock();
/// assert!(sem.try_acquire().is_none(), "both units are taken");
/// drop(a);
/// assert_eq!(sem.get_value(), 1);
/// drop(b);
/// sem.release()?; // unbounded: above the initial value is fine
/// assert_eq!(sem.get_value(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    seg: Arc<Segment>,
}

/// A semaphore whose count may not exceed its initial value (CPython's
/// `multiprocessing.BoundedSemaphore`): releasing once too often is
/// [`ReleaseError::OverReleased`], CPython's `ValueError`. Everything else is a
/// [`Semaphore`]'s (it derefs to one).
///
/// ```standalone_crate
/// use pifork::sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1)?;
/// assert_eq!(sem.release(), Err(ReleaseError::OverReleased));
/// let _ = sem.acquire();
/// sem.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BoundedSemaphore(Semaphore);

impl Semaphore {
    /// A semaphore holding `value` units (at most [`SEM_VALUE_MAX`], else
    /// [`ShmError::InvalidValue`]), recording its holders.
    pub fn new(value: u32) -> Result<Semaphore, ShmError> {
        Semaphore::make(value, UNBOUNDED, TRACKED)
    }

    /// A semaphore holding `value` units that records no holders: a count of events, whose
    /// acquired units never come back by themselves.
    pub fn counter(value: u32) -> Result<Semaphore, ShmError> {
        Semaphore::make(value, UNBOUNDED, COUNTER)
    }

    fn make(value: u32, bound: u32, mode: u32) -> Result<Semaphore, ShmError> {
        if value > SEM_VALUE_MAX {
            return Err(ShmError::InvalidValue { value, max: SEM_VALUE_MAX });
        }
        let seg = Segment::object(Kind::Semaphore, 0, 64 + SLOTS * SLOT_SIZE)?;
        let map = seg.map();
        map.atomic_u32(PAYLOAD + 8).store(bound, Ordering::Relaxed);
        map.atomic_u32(PAYLOAD + 12).store(mode, Ordering::Relaxed);
        map.atomic_u32(PAYLOAD).store(value, Ordering::Release);
        Ok(Semaphore { seg: Arc::new(seg) })
    }

    /// Claims the semaphore (bounded or not) the parent handed down under the number `fd`
    /// (listed in its `Process::inherit_fds`); [`ShmError::NotInherited`] if it did not,
    /// [`ShmError::WrongObject`] if that descriptor holds something else.
    pub fn from_inherited(fd: RawFd) -> Result<Semaphore, ShmError> {
        let (seg, _) = Segment::claim_object(fd, Kind::Semaphore)?;
        Ok(Semaphore { seg: Arc::new(seg) })
    }

    fn count(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(PAYLOAD)
    }

    fn waiters(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(PAYLOAD + 4)
    }

    fn bound(&self) -> u32 {
        self.seg.map().atomic_u32(PAYLOAD + 8).load(Ordering::Relaxed)
    }

    fn tracked(&self) -> bool {
        self.seg.map().atomic_u32(PAYLOAD + 12).load(Ordering::Relaxed) == TRACKED
    }

    fn slot(&self, i: usize) -> (&AtomicU64, &AtomicU32) {
        let map = self.seg.map();
        let at = SLOTS_AT + i * SLOT_SIZE;
        (map.atomic_u64(at), map.atomic_u32(at + 8))
    }

    /// The units available now (CPython's `get_value()`; stale at once if others use it).
    pub fn get_value(&self) -> u32 {
        self.count().load(Ordering::Relaxed)
    }

    /// The bound of a [`BoundedSemaphore`]; `None` for an unbounded one.
    pub fn bound_value(&self) -> Option<u32> {
        Some(self.bound()).filter(|&b| b != UNBOUNDED)
    }

    /// Takes a unit if there is one.
    fn take(&self) -> bool {
        let count = self.count();
        let mut c = count.load(Ordering::Relaxed);
        while c > 0 {
            match count.compare_exchange_weak(c, c - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes a unit, waiting until `deadline` (`None`: as long as it takes).
    fn acquire_until(&self, deadline: Option<Instant>) -> Option<Acquired> {
        let me = me();
        if self.take() {
            self.record(&me);
            return Some(Acquired::Normal);
        }
        let mut recovered = false;
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let got = loop {
            if self.take() {
                break true;
            }
            let slice = match deadline {
                None => SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(SLICE),
                    _ => {
                        recovered |= self.reclaim(&me);
                        break self.take();
                    }
                },
            };
            if let Err(nix::errno::Errno::ETIMEDOUT) = sys::futex_wait(self.count(), 0, Some(slice))
            {
                recovered |= self.reclaim(&me);
            }
        };
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        got.then(|| {
            self.record(&me);
            if recovered { Acquired::Recovered } else { Acquired::Normal }
        })
    }

    /// Acquires a unit, waiting as long as it takes.
    pub fn acquire(&self) -> Acquired {
        self.acquire_until(None).expect("no deadline")
    }

    /// Acquires a unit, waiting at most `timeout` (monotonic clock); `None` if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Acquired> {
        self.acquire_until(deadline(timeout))
    }

    /// Acquires a unit if one is available now (after giving back those of dead holders).
    pub fn try_acquire(&self) -> Option<Acquired> {
        let me = me();
        let how = if self.take() {
            Acquired::Normal
        } else if self.reclaim(&me) && self.take() {
            Acquired::Recovered
        } else {
            return None;
        };
        self.record(&me);
        Some(how)
    }

    /// Gives a unit back (any process may). A bounded semaphore already at its bound is
    /// [`ReleaseError::OverReleased`], as is a count at `u32::MAX`.
    pub fn release(&self) -> Result<(), ReleaseError> {
        let me = me();
        // Forget the unit first: a death between the two steps loses it rather than giving
        // it back twice (which could break a bound).
        let slot = self.unrecord(&me);
        let bound = self.bound();
        let count = self.count();
        let mut c = count.load(Ordering::Relaxed);
        loop {
            if c >= bound {
                if let Some(i) = slot {
                    self.slot(i).1.fetch_add(1, Ordering::Relaxed);
                }
                return Err(ReleaseError::OverReleased);
            }
            match count.compare_exchange_weak(c, c + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        if self.waiters().load(Ordering::SeqCst) > 0 {
            let _ = sys::futex_wake(count, 1);
        }
        Ok(())
    }

    /// Acquires a unit until the guard is dropped.
    pub fn lock(&self) -> SemaphoreGuard<'_> {
        let how = self.acquire();
        SemaphoreGuard { sem: self, how }
    }

    /// Acquires a unit until the guard is dropped, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        let how = self.acquire_timeout(timeout)?;
        Some(SemaphoreGuard { sem: self, how })
    }

    /// Acquires a unit until the guard is dropped, if one is available now.
    pub fn try_lock(&self) -> Option<SemaphoreGuard<'_>> {
        let how = self.try_acquire()?;
        Some(SemaphoreGuard { sem: self, how })
    }

    /// Records a unit acquired by this process.
    fn record(&self, me: &Me) {
        if !self.tracked() {
            return;
        }
        let stamp = me.stamp();
        for attempt in 0..2 {
            if let Some(i) = (0..SLOTS).find(|&i| self.slot(i).0.load(Ordering::Acquire) == stamp) {
                self.slot(i).1.fetch_add(1, Ordering::Relaxed);
                return;
            }
            for i in 0..SLOTS {
                let (owner, units) = self.slot(i);
                if owner.compare_exchange(0, stamp, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    units.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            if attempt == 0 {
                // Full: free the slots of processes that ended, then look again.
                self.reclaim(me);
            }
        }
        log::warn!("semaphore: more than {SLOTS} holding processes; this unit is not recorded");
    }

    /// Forgets a unit this process recorded; the slot it came from.
    fn unrecord(&self, me: &Me) -> Option<usize> {
        if !self.tracked() {
            return None;
        }
        let stamp = me.stamp();
        (0..SLOTS).find(|&i| {
            let (owner, units) = self.slot(i);
            owner.load(Ordering::Acquire) == stamp
                && units
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_sub(1))
                    .is_ok()
        })
    }

    /// Gives back the units of processes that ended and frees their slots; whether any unit
    /// came back.
    fn reclaim(&self, me: &Me) -> bool {
        if !self.tracked() {
            return false;
        }
        let mut any = false;
        for i in 0..SLOTS {
            let (owner, units) = self.slot(i);
            let stamp = owner.load(Ordering::Acquire);
            if stamp == 0 || stamp == RECLAIMING || !stamp_died(stamp, me) {
                continue;
            }
            if owner
                .compare_exchange(stamp, RECLAIMING, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue; // another process is at it
            }
            let n = units.swap(0, Ordering::AcqRel);
            if n > 0 {
                let bound = self.bound();
                let _ = self.count().fetch_update(Ordering::SeqCst, Ordering::Relaxed, |c| {
                    Some(c.saturating_add(n).min(bound))
                });
                log::debug!("semaphore: {n} unit(s) of a process that ended given back");
                let _ = sys::futex_wake(self.count(), n);
                any = true;
            }
            owner.store(0, Ordering::Release);
        }
        any
    }
}

impl BoundedSemaphore {
    /// A semaphore holding `value` units (at most [`SEM_VALUE_MAX`]), never more.
    pub fn new(value: u32) -> Result<BoundedSemaphore, ShmError> {
        Ok(BoundedSemaphore(Semaphore::make(value, value, TRACKED)?))
    }

    /// Claims the bounded semaphore the parent handed down under the number `fd` (listed in
    /// its `Process::inherit_fds`); an unbounded one is [`ShmError::WrongObject`].
    pub fn from_inherited(fd: RawFd) -> Result<BoundedSemaphore, ShmError> {
        let sem = Semaphore::from_inherited(fd)?;
        if sem.bound_value().is_none() {
            return Err(ShmError::WrongObject {
                expected: "a BoundedSemaphore".into(),
                found: "an unbounded Semaphore".into(),
            });
        }
        Ok(BoundedSemaphore(sem))
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

/// A unit of a [`Semaphore`], given back on drop.
#[derive(Debug)]
#[must_use = "the unit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    how: Acquired,
}

impl SemaphoreGuard<'_> {
    /// Whether acquiring it gave back units of a process that ended holding them.
    pub fn recovered(&self) -> bool {
        self.how.recovered()
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        let _ = self.sem.release();
    }
}

/// CPython's repr: `<Semaphore(value=2)>`.
impl std::fmt::Display for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.bound_value() {
            Some(max) => {
                write!(f, "<BoundedSemaphore(value={}, maxvalue={max})>", self.get_value())
            }
            None => write!(f, "<Semaphore(value={})>", self.get_value()),
        }
    }
}

/// CPython's repr: `<BoundedSemaphore(value=1, maxvalue=2)>`.
impl std::fmt::Display for BoundedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl AsFd for Semaphore {
    /// The semaphore's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for Semaphore {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}

impl AsFd for BoundedSemaphore {
    /// The semaphore's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for BoundedSemaphore {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_a_dead_process_come_back_once() {
        let sem = BoundedSemaphore::new(3).unwrap();
        let me = me();
        // Two units held by a process that no longer exists (a pid beyond any).
        let dead = (u64::from(super::super::owner::PID_MASK)) << 42 | 5;
        let (owner, units) = sem.slot(7);
        owner.store(dead, Ordering::Relaxed);
        units.store(2, Ordering::Relaxed);
        sem.count().store(1, Ordering::Relaxed);
        assert_eq!(sem.try_acquire(), Some(Acquired::Normal));
        assert_eq!(sem.try_acquire(), Some(Acquired::Recovered));
        assert_eq!(sem.get_value(), 1, "two came back, one taken");
        assert_eq!(owner.load(Ordering::Relaxed), 0, "the slot is free again");
        assert!(!sem.reclaim(&me), "given back once");
        // This process's two units are recorded in one slot.
        let mine = (0..SLOTS).filter(|&i| sem.slot(i).0.load(Ordering::Relaxed) == me.stamp());
        let mine: Vec<usize> = mine.collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(sem.slot(mine[0]).1.load(Ordering::Relaxed), 2);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!(sem.get_value(), 3);
        assert_eq!(sem.release(), Err(ReleaseError::OverReleased));
        assert_eq!(sem.slot(mine[0]).1.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_counter_records_nothing() {
        let sem = Semaphore::counter(1).unwrap();
        let _ = sem.acquire();
        assert!((0..SLOTS).all(|i| sem.slot(i).0.load(Ordering::Relaxed) == 0));
        assert!(sem.acquire_timeout(Duration::from_millis(30)).is_none());
    }
}
