//! `Event`: CPython's `multiprocessing.Event`, a flag shared by processes that waiters sleep on.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sys;
use crate::wait::deadline_after;

/// A flag shared by processes (CPython's `multiprocessing.Event`): [`set`](Self::set) wakes
/// every process and thread in [`wait`](Self::wait), [`clear`](Self::clear) resets it. A clone
/// is the same event. Setting it publishes what the setter wrote before (release ordering) to
/// whoever sees it set (acquire ordering).
///
/// ```standalone_crate
/// use pifork::sync::Event;
/// use std::time::Duration;
///
/// let ev = Event::new()?;
/// assert!(!ev.is_set());
/// assert!(!ev.wait(Some(Duration::from_millis(10))), "timed out");
/// ev.set();
/// assert!(ev.wait(None));
/// ev.clear();
/// assert!(!ev.is_set());
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    seg: Arc<Segment>,
}

impl Event {
    /// A new event, not set, in a shared segment of its own.
    pub fn new() -> Result<Event, ShmError> {
        Ok(Event { seg: Arc::new(Segment::object(Kind::Event, 0, 8)?) })
    }

    /// Claims the event the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); [`ShmError::NotInherited`] if it did not,
    /// [`ShmError::WrongObject`] if that descriptor holds something else.
    pub fn from_inherited(fd: RawFd) -> Result<Event, ShmError> {
        let (seg, _) = Segment::claim_object(fd, Kind::Event)?;
        Ok(Event { seg: Arc::new(seg) })
    }

    /// The flag (the futex word: 0 or 1).
    fn flag(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(PAYLOAD)
    }

    /// How many may be sleeping on the flag.
    fn waiters(&self) -> &AtomicU32 {
        self.seg.map().atomic_u32(PAYLOAD + 4)
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag().load(Ordering::Acquire) == 1
    }

    /// Sets the flag and wakes every waiter; no system call when nobody waits.
    pub fn set(&self) {
        let was = self.flag().swap(1, Ordering::SeqCst);
        if was == 0 && self.waiters().load(Ordering::SeqCst) > 0 {
            let _ = sys::futex_wake(self.flag(), u32::MAX);
        }
    }

    /// Clears the flag: later waits block until the next [`set`](Self::set).
    pub fn clear(&self) {
        self.flag().store(0, Ordering::Release);
    }

    /// Waits until the flag is set, at most `timeout` (`None`: as long as it takes; the
    /// monotonic clock); returns whether it is set (false: timed out), as CPython's does.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        if self.is_set() {
            return true;
        }
        let deadline = deadline_after(timeout);
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let set = loop {
            if self.flag().load(Ordering::SeqCst) == 1 {
                break true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break false,
                },
                None => None,
            };
            let _ = sys::futex_wait(self.flag(), 0, left);
        };
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        // The flag's acquire load: what the setter wrote before setting is visible now.
        set || self.is_set()
    }
}

/// CPython's repr: `<Event at 0x7f2dc4732000 set>` or `<Event at 0x7f2dc4732000 unset>`,
/// where the address is that of the event's shared segment in this process (the same for
/// every clone, as CPython's is the same for every reference to one object).
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.is_set() { "set" } else { "unset" };
        write!(f, "<Event at {:#x} {state}>", self.seg.map().addr())
    }
}

impl AsFd for Event {
    /// The event's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for Event {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}
