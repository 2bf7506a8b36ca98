//! Synchronisation between processes, named as CPython's `multiprocessing` names it:
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`] and
//! [`Barrier`]. Each lives in
//! shared memory (a sealed memfd of its own) and sleeps on a process-shared futex: no named
//! POSIX semaphore, nothing in `/dev/shm`, nothing left behind by a killed program.
//!
//! ```standalone_crate
//! use pifork::sync::Lock;
//! use pifork::{Process, Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lock = Lock::new()?;
//! let total = pifork::RawValue::new(0u64)?;
//! let (l, t) = (lock.clone(), total.clone());
//! // Under fork a clone captured by the target shares the memory.
//! let mut p = Process::new(move || {
//!     for _ in 0..1000 {
//!         let _g = l.lock();
//!         t.set(t.get() + 1);
//!     }
//! });
//! p.start()?;
//! for _ in 0..1000 {
//!     let _g = lock.lock();
//!     total.set(total.get() + 1);
//! }
//! p.join()?;
//! assert_eq!(total.get(), 2000);
//! # let _ = Value::new(0u8)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Passing to a child
//! Under fork, a clone captured by the target shares the object. Under every start method
//! (spawn and forkserver need it), list the object's descriptor in `Process::inherit_fds`
//! (`obj.as_raw_fd()`), send the number as an argument, and claim it in the child with
//! `from_inherited(fd)`, as connections travel. Claiming a descriptor that holds another kind
//! of object is [`ShmError::WrongObject`](crate::ShmError::WrongObject).
//!
//! # A holder's death
//! CPython's locks stay locked forever when their holder dies: every other process deadlocks.
//! Here a lock records its holder (pid and start time); a process waiting for it looks, every
//! 20 ms without a wake-up, whether the holder still lives (`/proc/<pid>/stat`: gone, a zombie,
//! or a new process that reuses its pid count as dead), and if not takes the lock over, exactly
//! one waiter per death. That acquirer is told: [`Acquired::Recovered`], or `recovered()` on
//! the guard. [`try_acquire`](Lock::try_acquire) also looks, once.
//!
//! What a recovering process may find: the data the lock protects as the dead holder left it,
//! possibly half-updated (a write the holder made is visible or not, one byte or word at a time;
//! no write is torn below the size of one atomic store). If the protected invariant matters,
//! check or rebuild it when told `Recovered`.
//!
//! - [`Lock`]: recovered from a dead holder; any process may release it, as in CPython.
//! - [`RLock`]: recovered at depth one from a dead owning process.
//! - [`Semaphore`] and [`BoundedSemaphore`]: each process's acquired and unreleased units are
//!   recorded (up to 64 processes at once); when a process ends holding units, they come back
//!   (never above a bounded semaphore's bound). [`Semaphore::counter`] records nothing.
//! - [`Event`] holds nothing that could be lost.
//! - [`Condition`]: a waiter that died waiting is skipped by notifications (see its page).
//! - [`Barrier`]: a party that died waiting inside breaks it; one that dies before arriving
//!   is seen only through the others' timeouts (see its page).
//!
//! The holder is recorded in the same atomic step that takes the lock, so there is no window
//! in which a death goes unseen; its start time follows one store later, so a holder killed in
//! between whose pid is reused by then is waited for until that new process ends. All
//! processes sharing an object must share a pid namespace (children do, unless they unshare).
//!
//! # Descriptors
//! Each object holds one descriptor (its memfd) in every process that has it: a program
//! needing thousands of locks at once meets its descriptor limit (`RLIMIT_NOFILE`) first.
//!
//! # Cost
//! Uncontended, acquiring is one compare-and-swap and releasing one swap, with no system call
//! (`FUTEX_WAKE` only when a waiter marked the word); see `examples/sync_bench.rs`.
//!
//! # Memory ordering
//! Acquiring a lock (or a semaphore's unit) has acquire ordering and releasing it release
//! ordering: everything a holder wrote before releasing is visible to the next acquirer, in
//! any process, shared values and segments included. `Event::set` publishes to whoever sees
//! the event set. Timeouts are measured on the monotonic clock.

mod barrier;
mod condition;
mod event;
mod lock;
pub(crate) mod mutex;
pub(crate) mod owner;
mod release;
mod rlock;
mod semaphore;

pub use barrier::{Barrier, BrokenBarrier, PARTY_SLOTS};
pub use condition::{Condition, ConditionError, ConditionGuard, ConditionLock, WAITER_SLOTS};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use mutex::Acquired;
pub(crate) use mutex::MUTEX_SIZE;
pub use release::ReleaseError;
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, SEM_VALUE_MAX, SLOTS, Semaphore, SemaphoreGuard};
