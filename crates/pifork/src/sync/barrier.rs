//! `Barrier`: CPython's `multiprocessing.Barrier`, a rendezvous of a fixed number of parties
//! across processes.
//!
//! The state (parties, how many are inside, filling / draining / resetting / broken) lives in
//! the barrier's segment beside a mutex cell of its own ([`RawMutex`], the locks' word); the
//! parties sleep on a generation word that every change of state bumps. Each party inside
//! records its process's stamp in a slot (up to [`PARTY_SLOTS`] at once), so that a party
//! killed while waiting is noticed: the others, looking every [`CHECK`] while they sleep,
//! break the barrier and let it drain, rather than wait forever for the dead one to leave.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::mutex::{MUTEX_SIZE, RawMutex, deadline};
use super::owner::{Me, me, stamp_died};
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sys;

/// Parties inside at once whose death is noticed; beyond that, a party is not recorded (its
/// death is then seen only through the others' timeouts).
pub const PARTY_SLOTS: usize = 64;

/// How often a sleeping party looks whether a party inside died.
const CHECK: Duration = Duration::from_millis(100);

/// Yields to the mutex's holder, at most, before taking it after a wake-up.
const YIELDS: u32 = 20;

const GEN_AT: usize = PAYLOAD + MUTEX_SIZE;
const PARTIES_AT: usize = GEN_AT + 4;
const COUNT_AT: usize = GEN_AT + 8;
const STATE_AT: usize = GEN_AT + 12;
const SLOTS_AT: usize = PAYLOAD + 2 * MUTEX_SIZE;

const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// The barrier is broken, or was reset or broke while the caller waited (CPython's
/// `threading.BrokenBarrierError`): by [`Barrier::abort`], a party's timeout, a party that
/// died inside, an action that panicked, or [`Barrier::reset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenBarrier;

impl std::fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the barrier is broken")
    }
}

impl std::error::Error for BrokenBarrier {}

/// The function the last party to arrive runs before the others are let through.
type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier shared by processes (CPython's `multiprocessing.Barrier`): `parties` callers of
/// [`wait`](Self::wait) (threads of any processes) block until the last arrives; each then
/// gets its arrival index, `0..parties`; the barrier is then ready for the next round. A
/// clone is the same barrier (with the same action and default timeout).
///
/// # A party's death
/// A party killed while waiting inside the barrier breaks it: the others learn it within
/// about 100 ms of looking and get [`BrokenBarrier`]. A party that dies before it
/// reaches the barrier cannot be told from a late one: the others wait for it until their
/// timeout (which then breaks the barrier, as in CPython), or forever without one. Give a
/// timeout when a party may die.
///
/// ```standalone_crate
/// use pifork::sync::Barrier;
/// use std::time::Duration;
///
/// let b = Barrier::new(1)?;
/// assert_eq!(b.wait(None), Ok(0), "one party: through at once");
/// let two = Barrier::new(2)?;
/// assert!(two.wait(Some(Duration::from_millis(10))).is_err(), "timed out: broken");
/// assert!(two.broken());
/// two.reset();
/// assert!(!two.broken());
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Segment>,
    action: Option<Action>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("action", &self.action.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// CPython's repr, with the Rust path where CPython names the module:
/// `<pifork::sync::Barrier at 0x7f2dc410b000: waiters=0/3>`, or
/// `<pifork::sync::Barrier at 0x7f2dc410b000: broken>`. The address is that of the barrier's
/// shared segment in this process (the same for every clone).
impl std::fmt::Display for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<pifork::sync::Barrier at {:#x}: ", self.seg.map().addr())?;
        if self.broken() {
            write!(f, "broken>")
        } else {
            write!(f, "waiters={}/{}>", self.n_waiting(), self.parties())
        }
    }
}

impl Barrier {
    /// A new barrier for `parties` parties (at least 1, else [`ShmError::InvalidParties`]),
    /// with no action and no default timeout.
    pub fn new(parties: u32) -> Result<Barrier, ShmError> {
        if parties == 0 {
            return Err(ShmError::InvalidParties);
        }
        let seg = Segment::object(Kind::Barrier, 0, 2 * MUTEX_SIZE + PARTY_SLOTS * 8)?;
        seg.map().atomic_u32(PARTIES_AT).store(parties, Ordering::Release);
        Ok(Barrier { seg: Arc::new(seg), action: None, timeout: None })
    }

    /// Claims the barrier the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); it has no action or default timeout here until given one.
    pub fn from_inherited(fd: RawFd) -> Result<Barrier, ShmError> {
        let (seg, _) = Segment::claim_object(fd, Kind::Barrier)?;
        Ok(Barrier { seg: Arc::new(seg), action: None, timeout: None })
    }

    /// This handle with `action`, run by the last party to arrive (in its process) before the
    /// others go on. An action that panics breaks the barrier; the panic goes on in that
    /// party.
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Barrier {
        self.action = Some(Arc::new(action));
        self
    }

    /// This handle with a default timeout for [`wait`](Self::wait).
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    fn raw(&self) -> RawMutex<'_> {
        let map = self.seg.map();
        RawMutex::new(map.atomic_u32(PAYLOAD), map.atomic_u64(PAYLOAD + 8))
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(at)
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        self.seg.map().atomic_u64(SLOTS_AT + i * 8)
    }

    fn state(&self) -> u32 {
        self.word(STATE_AT).load(Ordering::Relaxed)
    }

    fn set_state(&self, state: u32) {
        self.word(STATE_AT).store(state, Ordering::Relaxed);
        self.wake_all();
    }

    fn count(&self) -> u32 {
        self.word(COUNT_AT).load(Ordering::Relaxed)
    }

    fn wake_all(&self) {
        self.word(GEN_AT).fetch_add(1, Ordering::Release);
        let _ = sys::futex_wake(self.word(GEN_AT), u32::MAX);
    }

    /// Takes the barrier's own mutex. Recovered from a party that died holding it: the state
    /// may be half-changed, so the barrier is broken.
    fn enter(&self, me: &Me) {
        if self.raw().lock(me, None).expect("no deadline").recovered() {
            log::debug!("barrier: a party died changing it; broken");
            self.set_state(BROKEN);
        }
    }

    fn leave(&self) {
        self.raw().unlock();
    }

    /// With the mutex held: releases it, sleeps until the state changes, `deadline` or one
    /// [`CHECK`], takes it back; whether time is left.
    fn sleep(&self, me: &Me, deadline: Option<Instant>) -> bool {
        let seen = self.word(GEN_AT).load(Ordering::Acquire);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return false;
        }
        self.leave();
        let slice = left.map_or(CHECK, |l| l.min(CHECK));
        let res = sys::futex_wait(self.word(GEN_AT), seen, Some(slice));
        // The waker still holds the mutex, most often: let it run (it may share this CPU)
        // rather than spin for it.
        for _ in 0..YIELDS {
            if self.raw().holder() == 0 {
                break;
            }
            std::thread::yield_now();
        }
        self.enter(me);
        if res == Err(nix::errno::Errno::ETIMEDOUT) {
            self.reap_dead(me);
        }
        deadline.is_none_or(|d| Instant::now() < d)
    }

    /// With the mutex held: forgets the parties inside that died; one that died waiting for
    /// the barrier to fill breaks it.
    fn reap_dead(&self, me: &Me) {
        for i in 0..PARTY_SLOTS {
            let stamp = self.slot(i).load(Ordering::Relaxed);
            if stamp == 0 || !stamp_died(stamp, me) {
                continue;
            }
            self.slot(i).store(0, Ordering::Relaxed);
            if self.state() == FILLING {
                log::debug!("barrier: a party died waiting; broken");
                self.set_state(BROKEN);
            }
            self.exit(None);
        }
    }

    /// With the mutex held: a party leaves (its slot `slot`); the last one out of a draining
    /// or resetting barrier makes it ready for the next round.
    fn exit(&self, slot: Option<usize>) {
        if let Some(i) = slot {
            self.slot(i).store(0, Ordering::Relaxed);
        }
        let count = self.count().saturating_sub(1);
        self.word(COUNT_AT).store(count, Ordering::Relaxed);
        if count == 0 && matches!(self.state(), DRAINING | RESETTING) {
            self.set_state(FILLING);
        }
    }

    /// Waits until all parties have called `wait`, at most `timeout` (`None`: the handle's
    /// default, or as long as it takes); the caller's arrival index, `0..parties`.
    /// [`BrokenBarrier`] if the barrier is or becomes broken, or is reset, while waiting; a
    /// timeout breaks it (for every party, as in CPython). A timeout that passes while the
    /// previous round is still leaving is `BrokenBarrier` too, without breaking it.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<u32, BrokenBarrier> {
        let deadline = timeout.or(self.timeout).and_then(deadline);
        let me = me();
        self.enter(&me);
        // A previous round still draining or resetting: wait for it to end (not past the
        // timeout: a round whose parties' count a death left wrong may never end).
        while matches!(self.state(), DRAINING | RESETTING) {
            if !self.sleep(&me, deadline) {
                self.leave();
                return Err(BrokenBarrier);
            }
        }
        if self.state() == BROKEN {
            self.leave();
            return Err(BrokenBarrier);
        }
        let index = self.count();
        self.word(COUNT_AT).store(index + 1, Ordering::Relaxed);
        let slot = (0..PARTY_SLOTS).find(|&i| self.slot(i).load(Ordering::Relaxed) == 0);
        if let Some(i) = slot {
            self.slot(i).store(me.stamp(), Ordering::Relaxed);
        }
        let result = if index + 1 == self.parties() {
            if let Some(action) = &self.action {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| action()));
                if let Err(panic) = ran {
                    self.set_state(BROKEN);
                    self.exit(slot);
                    self.leave();
                    std::panic::resume_unwind(panic);
                }
            }
            self.set_state(DRAINING);
            Ok(index)
        } else {
            while self.state() == FILLING {
                if !self.sleep(&me, deadline) {
                    if self.state() == FILLING {
                        self.set_state(BROKEN);
                    }
                    break;
                }
            }
            if matches!(self.state(), BROKEN | RESETTING) { Err(BrokenBarrier) } else { Ok(index) }
        };
        self.exit(slot);
        self.leave();
        result
    }

    /// Returns the barrier to its empty state; parties waiting get [`BrokenBarrier`]. A broken
    /// barrier is usable again.
    pub fn reset(&self) {
        let me = me();
        self.enter(&me);
        if self.count() > 0 {
            if matches!(self.state(), FILLING | BROKEN) {
                self.set_state(RESETTING);
            }
        } else {
            self.set_state(FILLING);
        }
        self.wake_all();
        self.leave();
    }

    /// Breaks the barrier: waiting parties, and later callers until a
    /// [`reset`](Self::reset), get [`BrokenBarrier`].
    pub fn abort(&self) {
        let me = me();
        self.enter(&me);
        self.set_state(BROKEN);
        self.leave();
    }

    /// The number of parties the barrier needs.
    pub fn parties(&self) -> u32 {
        self.word(PARTIES_AT).load(Ordering::Acquire)
    }

    /// How many parties wait in it now (a hint, stale at once).
    pub fn n_waiting(&self) -> u32 {
        if self.state() == FILLING { self.count() } else { 0 }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state() == BROKEN
    }
}

impl AsFd for Barrier {
    /// The barrier's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for Barrier {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}
