//! Queues shared by processes, named as CPython's `multiprocessing` names them: [`Queue`]
//! (optionally bounded), [`JoinableQueue`] (with `task_done` and `join`) and [`SimpleQueue`].
//! Many producers and many consumers, in any processes that share the queue. Linux only (the
//! module does not exist on Windows).
//!
//! ```standalone_crate
//! use pifork::Process;
//! use pifork::queue::{GetError, Queue};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let q = Queue::<String>::new()?;
//! let tx = q.clone();
//! // Under fork a clone captured by the target is the same queue.
//! let mut p = Process::new(move || {
//!     for i in 0..3 {
//!         tx.put(&format!("item {i}")).unwrap();
//!     }
//! });
//! p.start()?;
//! for i in 0..3 {
//!     assert_eq!(q.get()?, format!("item {i}"));
//! }
//! p.join()?;
//! assert_eq!(q.get_nowait(), Err(GetError::Empty));
//! # Ok(())
//! # }
//! ```
//!
//! # How it works: no feeder thread
//! A queue is one shared segment (a sealed memfd: nothing in `/dev/shm`, nothing left behind
//! by a killed program) holding a ring of length-prefixed frames, two of the crate's robust
//! mutexes (the one under [`Lock`](crate::sync::Lock)), one that putters take and one that
//! getters take, so that a put and a get run at once, and futex words on which getters wait
//! for "not empty" and putters for "not full". [`put`](Queue::put) encodes the item
//! ([`Message`]) and copies it into the ring in the calling thread; when it returns, the item
//! is in the queue. CPython's `Queue.put` hands the item to a feeder thread that writes it to
//! a pipe later: a producer that exits right after `put` can lose it (or hang at exit, the
//! reason for its `cancel_join_thread`). Here there is nothing to flush and no thread:
//! `join_thread` and `cancel_join_thread` have nothing to do and do not exist.
//!
//! # Sizes
//! `maxsize` counts items, as in CPython ([`Queue::bounded`]; 0 means no limit, as
//! CPython's `maxsize <= 0`). The ring's bytes bound the queue too: [`Queue::new`] and
//! [`Queue::bounded`] reserve [`DEFAULT_RING`] bytes (64 MiB) of memfd address space, a sparse
//! file whose pages are only allocated as frames reach them; [`Queue::with_capacity`] picks
//! another size. So an "unbounded" queue blocks `put` once 64 MiB of frames (each item's
//! encoding plus 8 bytes, rounded up to 8) are queued. Pages the ring has touched stay
//! allocated until the last process holding the queue drops it: a queue that has carried
//! 64 MiB holds 64 MiB of memory. An item that can never fit (encoded larger than the ring
//! less 8 bytes) is [`PutError::TooLarge`] at once, never a wait.
//!
//! # Passing to a child
//! Under fork, a clone captured by the target shares the queue. Under every start method
//! (spawn and forkserver need it), list the queue's descriptor in `Process::inherit_fds`
//! ([`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd)), send the number as an argument, and claim
//! it in the child with `from_inherited(fd)`, as the [`sync`](crate::sync) objects travel.
//! The item type is not recorded: claiming a queue of `u64` as a queue of `String` decodes
//! garbage, which `get` reports as [`GetError::Decode`].
//!
//! # Closing
//! As in CPython, [`close`](Queue::close) says that this process will use its handle no more:
//! afterwards its `put` and `get` (and its clones') are [`PutError::Closed`] and
//! [`GetError::Closed`]. Other processes' handles are not affected.
//!
//! # Death
//! A process killed while it holds one of the queue's mutexes (inside a `put` or a `get`) does
//! not block the others: the next one takes the mutex over (as the [`sync`](crate::sync) locks
//! do; it counts in [`Queue::recoveries`]). That call is told when it asks:
//! [`put_checked`](Queue::put_checked) and [`get_checked`](Queue::get_checked) return
//! [`Acquired::Recovered`] (the plain `put` and `get` return as usual; a call that ends in
//! `Full` or `Empty` after a recovery is not told, but it is counted). The queue stays
//! consistent, as the recovering call has checked: a `put` commits its
//! frame with one final store of the tail index, a `get` with one final store of the head
//! index. So:
//!
//! - a producer killed inside `put` either queued its item whole (it died after the commit) or
//!   not at all; no half-written frame is ever read;
//! - a consumer killed inside `get` before the commit leaves the item in the queue: the next
//!   `get` delivers it; killed after the commit (in the few instructions between that store
//!   and `get`'s return, or before its caller did anything with the item) the item is lost.
//!   So each consumer killed loses at most one item, and no item is ever delivered twice.
//!
//! A recovering process checks the ring (it walks the committed frames); a ring found broken
//! (only memory written by something else than a queue could do that) is reported as
//! [`GetError::Corrupt`] (or [`PutError::Corrupt`]).
//!
//! # Cost
//! An uncontended `put` or `get` is a compare-and-swap, a copy into or out of the ring and a
//! release store, with no system call; a getter that finds the queue empty looks again for a
//! few microseconds before it sleeps on the futex, and a putter wakes a sleeper only when one
//! sleeps. `examples/queue_bench.rs` measures it beside CPython's `multiprocessing.Queue`.

mod errors;
mod ring;

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::message::{self, Message};
use crate::shm::ShmError;
use crate::sync::Acquired;
use crate::wait::deadline_after;
pub use errors::{GetError, PutError, TaskDoneError};
use ring::Ring;

/// The ring size of [`Queue::new`], [`Queue::bounded`] and [`SimpleQueue::new`]: 64 MiB of
/// sparse memfd, allocated only as used.
pub const DEFAULT_RING: usize = 64 << 20;

/// The largest encoding buffer a thread keeps between puts.
const KEEP: usize = 1 << 20;

thread_local! {
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const QUEUE: u8 = 0;
const JOINABLE: u8 = 1;
const SIMPLE: u8 = 2;

/// A queue shared by processes (CPython's `multiprocessing.Queue`): items of type `T`, first
/// in first out, any number of producers and consumers. A clone is the same queue.
///
/// ```standalone_crate
/// use pifork::queue::{GetError, PutError, Queue};
/// use std::time::Duration;
///
/// let q = Queue::<u64>::bounded(2)?;
/// q.put(&1).unwrap();
/// q.put_nowait(&2).unwrap();
/// assert!(q.full());
/// assert_eq!(q.put_timeout(&3, Duration::from_millis(10)), Err(PutError::Full));
/// assert_eq!(q.qsize(), 2);
/// assert_eq!(q.get().unwrap(), 1);
/// assert_eq!(q.get_nowait().unwrap(), 2);
/// assert!(q.empty());
/// assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(GetError::Empty));
/// # Ok::<(), pifork::ShmError>(())
/// ```
pub struct Queue<T> {
    ring: Arc<Ring>,
    closed: Arc<AtomicBool>,
    items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { ring: self.ring.clone(), closed: self.closed.clone(), items: PhantomData }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.items())
            .field("maxsize", &self.ring.maxsize())
            .field("capacity", &self.ring.capacity())
            .finish()
    }
}

impl<T: Message> Queue<T> {
    /// A new queue with no limit on items (but its [`DEFAULT_RING`] bytes).
    pub fn new() -> Result<Queue<T>, ShmError> {
        Queue::with_capacity(0, DEFAULT_RING)
    }

    /// A new queue holding at most `maxsize` items (0: no limit, as CPython's `maxsize <= 0`),
    /// in a ring of [`DEFAULT_RING`] bytes.
    pub fn bounded(maxsize: usize) -> Result<Queue<T>, ShmError> {
        Queue::with_capacity(maxsize, DEFAULT_RING)
    }

    /// A new queue holding at most `maxsize` items (0: no limit) in a ring of `bytes` bytes
    /// (rounded up to a multiple of 8; from 64 bytes to 2 GiB, else
    /// [`ShmError::InvalidSize`]).
    pub fn with_capacity(maxsize: usize, bytes: usize) -> Result<Queue<T>, ShmError> {
        Queue::create(QUEUE, maxsize, bytes)
    }

    fn create(flavour: u8, maxsize: usize, bytes: usize) -> Result<Queue<T>, ShmError> {
        let rounded = bytes.checked_next_multiple_of(8).unwrap_or(usize::MAX);
        if !(ring::MIN_RING..=ring::MAX_RING).contains(&rounded) {
            return Err(ShmError::InvalidSize { size: bytes as u64 });
        }
        // More items than the ring can hold frames is no limit at all.
        let maxsize = u32::try_from(maxsize).unwrap_or(0);
        Ok(Queue::wrap(Ring::new(flavour, maxsize, rounded)?))
    }

    fn wrap(ring: Ring) -> Queue<T> {
        Queue { ring: Arc::new(ring), closed: Arc::new(AtomicBool::new(false)), items: PhantomData }
    }

    /// Claims the queue the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); [`ShmError::NotInherited`] if it did not,
    /// [`ShmError::WrongObject`] if that descriptor holds something else.
    pub fn from_inherited(fd: RawFd) -> Result<Queue<T>, ShmError> {
        Ok(Queue::wrap(Ring::claim(fd, QUEUE)?))
    }

    fn put_until(&self, item: &T, deadline: Option<Instant>) -> Result<Acquired, PutError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PutError::Closed);
        }
        // Encoded into this thread's buffer, reused from put to put (unless one is nested in
        // an encoding, which gets its own).
        ENCODED.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                item.encode(&mut buf);
                let res = self.ring.put(&buf, deadline);
                if buf.capacity() > KEEP {
                    *buf = Vec::new();
                }
                res
            }
            Err(_) => self.ring.put(&message::to_bytes(item), deadline),
        })
    }

    /// Puts `item` at the back, waiting as long as it takes for room. Once it returns `Ok`,
    /// the item is in the queue (this process may exit at once).
    pub fn put(&self, item: &T) -> Result<(), PutError> {
        self.put_until(item, None).map(drop)
    }

    /// Puts `item`, waiting at most `timeout` for room ([`PutError::Full`] then).
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), PutError> {
        self.put_until(item, Instant::now().checked_add(timeout)).map(drop)
    }

    /// Puts `item` if there is room now, else [`PutError::Full`].
    pub fn put_nowait(&self, item: &T) -> Result<(), PutError> {
        self.put_until(item, Some(Instant::now())).map(drop)
    }

    /// Puts `item` as [`put`](Self::put) (`timeout` `None`) or
    /// [`put_timeout`](Self::put_timeout) do, and says how it took the queue's lock:
    /// [`Acquired::Recovered`] if it took it over from a process that died holding it.
    pub fn put_checked(&self, item: &T, timeout: Option<Duration>) -> Result<Acquired, PutError> {
        self.put_until(item, deadline_after(timeout))
    }

    /// Takes the front item as [`get`](Self::get) (`timeout` `None`) or
    /// [`get_timeout`](Self::get_timeout) do, and says how it took the queue's lock:
    /// [`Acquired::Recovered`] if it took it over from a process that died holding it.
    pub fn get_checked(&self, timeout: Option<Duration>) -> Result<(T, Acquired), GetError> {
        self.get_until(deadline_after(timeout))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<(T, Acquired), GetError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(GetError::Closed);
        }
        let (item, how) = self.ring.get(deadline, message::from_bytes)?;
        let item = item.map_err(|e| match e {
            crate::error::Error::Decode { reason } => GetError::Decode { reason },
            _ => GetError::Decode { reason: "invalid encoding" },
        })?;
        Ok((item, how))
    }

    /// Takes the item at the front, waiting as long as it takes for one.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_until(None).map(|(item, _)| item)
    }

    /// Takes the item at the front, waiting at most `timeout` ([`GetError::Empty`] then).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_until(Instant::now().checked_add(timeout)).map(|(item, _)| item)
    }

    /// Takes the item at the front if there is one now, else [`GetError::Empty`].
    pub fn get_nowait(&self) -> Result<T, GetError> {
        self.get_until(Some(Instant::now())).map(|(item, _)| item)
    }

    /// Items in the queue now (exact at the moment it is read; other processes may change it
    /// at once, as CPython warns).
    pub fn qsize(&self) -> usize {
        self.ring.items() as usize
    }

    /// Whether the queue is empty now.
    pub fn empty(&self) -> bool {
        self.ring.items() == 0
    }

    /// Whether the queue is full now: `maxsize` items, or no room for even the smallest item.
    pub fn full(&self) -> bool {
        self.ring.full()
    }

    /// The most items the queue holds (`None`: no limit but its bytes).
    pub fn maxsize(&self) -> Option<usize> {
        match self.ring.maxsize() {
            0 => None,
            n => Some(n as usize),
        }
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Says this process will put and get no more through this handle (and its clones):
    /// afterwards `put` and `get` are `Closed`. Other processes are not affected.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`close`](Self::close) was called on this handle (or a clone).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// How many times a process took the queue's lock over from a holder that died holding
    /// it, since the queue was made (CPython's queues have no such thing: they deadlock).
    pub fn recoveries(&self) -> u64 {
        u64::from(self.ring.recoveries())
    }
}

impl<T> AsFd for Queue<T> {
    /// The queue's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl<T> AsRawFd for Queue<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_fd().as_raw_fd()
    }
}

/// A [`Queue`] that counts unfinished tasks (CPython's `multiprocessing.JoinableQueue`): every
/// `put` adds one, every [`task_done`](Self::task_done) takes one away, and
/// [`join`](Self::join) waits until none is left. Every method of [`Queue`] applies.
///
/// ```standalone_crate
/// use pifork::queue::{JoinableQueue, TaskDoneError};
///
/// let q = JoinableQueue::<u32>::new()?;
/// q.put(&7).unwrap();
/// assert_eq!(q.unfinished_tasks(), 1);
/// assert_eq!(q.get().unwrap(), 7);
/// q.task_done().unwrap();
/// q.join(); // nothing unfinished: returns at once
/// assert_eq!(q.task_done(), Err(TaskDoneError::TooManyCalls));
/// # Ok::<(), pifork::ShmError>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.queue.ring.unfinished())
            .finish()
    }
}

impl<T: Message> JoinableQueue<T> {
    /// A new joinable queue with no limit on items (but its [`DEFAULT_RING`] bytes).
    pub fn new() -> Result<JoinableQueue<T>, ShmError> {
        JoinableQueue::with_capacity(0, DEFAULT_RING)
    }

    /// A new joinable queue holding at most `maxsize` items (0: no limit).
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>, ShmError> {
        JoinableQueue::with_capacity(maxsize, DEFAULT_RING)
    }

    /// A new joinable queue of at most `maxsize` items in a ring of `bytes` bytes (as
    /// [`Queue::with_capacity`]).
    pub fn with_capacity(maxsize: usize, bytes: usize) -> Result<JoinableQueue<T>, ShmError> {
        Ok(JoinableQueue { queue: Queue::create(JOINABLE, maxsize, bytes)? })
    }

    /// Claims the joinable queue the parent handed down under the number `fd` (as
    /// [`Queue::from_inherited`]).
    pub fn from_inherited(fd: RawFd) -> Result<JoinableQueue<T>, ShmError> {
        Ok(JoinableQueue { queue: Queue::wrap(Ring::claim(fd, JOINABLE)?) })
    }

    /// Marks one task (an item got earlier, by any process) done;
    /// [`TaskDoneError::TooManyCalls`] if more were marked than put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.queue.ring.task_done()
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.queue.ring.join(None);
    }

    /// Waits at most `timeout` until every item put has been marked done; false if some
    /// remain (CPython's `join` has no timeout).
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.ring.join(Instant::now().checked_add(timeout))
    }

    /// Items put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.queue.ring.unfinished() as usize
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> AsFd for JoinableQueue<T> {
    /// The queue's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

impl<T> AsRawFd for JoinableQueue<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.queue.as_raw_fd()
    }
}

/// The plainest queue (CPython's `multiprocessing.SimpleQueue`): `put`, `get`, `empty` and
/// `close`, no limit on items (but its [`DEFAULT_RING`] bytes). A clone is the same queue.
///
/// ```standalone_crate
/// use pifork::queue::SimpleQueue;
///
/// let q = SimpleQueue::<String>::new()?;
/// assert!(q.empty());
/// q.put(&"hi".to_string()).unwrap();
/// assert!(!q.empty());
/// assert_eq!(q.get().unwrap(), "hi");
/// # Ok::<(), pifork::ShmError>(())
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue").field("queue", &self.queue).finish()
    }
}

impl<T: Message> SimpleQueue<T> {
    /// A new, empty simple queue.
    pub fn new() -> Result<SimpleQueue<T>, ShmError> {
        Ok(SimpleQueue { queue: Queue::create(SIMPLE, 0, DEFAULT_RING)? })
    }

    /// Claims the simple queue the parent handed down under the number `fd` (as
    /// [`Queue::from_inherited`]).
    pub fn from_inherited(fd: RawFd) -> Result<SimpleQueue<T>, ShmError> {
        Ok(SimpleQueue { queue: Queue::wrap(Ring::claim(fd, SIMPLE)?) })
    }

    /// Puts `item` at the back (waiting for room only once 64 MiB are queued).
    pub fn put(&self, item: &T) -> Result<(), PutError> {
        self.queue.put(item)
    }

    /// Takes the item at the front, waiting as long as it takes for one.
    pub fn get(&self) -> Result<T, GetError> {
        self.queue.get()
    }

    /// Puts `item` as [`put`](Self::put), and says how it took the queue's lock (as
    /// [`Queue::put_checked`]).
    pub fn put_checked(&self, item: &T) -> Result<Acquired, PutError> {
        self.queue.put_checked(item, None)
    }

    /// Takes the front item as [`get`](Self::get), and says how it took the queue's lock (as
    /// [`Queue::get_checked`]).
    pub fn get_checked(&self) -> Result<(T, Acquired), GetError> {
        self.queue.get_checked(None)
    }

    /// Whether the queue is empty now.
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// Says this process will use this handle no more (as [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close()
    }
}

impl<T> AsFd for SimpleQueue<T> {
    /// The queue's segment, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

impl<T> AsRawFd for SimpleQueue<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.queue.as_raw_fd()
    }
}
