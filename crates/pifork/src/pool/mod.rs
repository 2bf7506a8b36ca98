//! `Pool`: CPython's `multiprocessing.Pool` (map, imap, apply_async, close, terminate, join)
//! and `concurrent.futures`' process executor ([`Executor`], [`as_completed`], [`wait`]), on
//! worker processes that the pool survives: a worker that dies is reaped at once (its pidfd
//! sentinel), replaced, and its task retried.
//!
//! ```standalone_crate
//! use pifork::pool::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! # fn main() -> Result<(), pifork::pool::PoolError> {
//! let mut pool = Pool::new(2)?;
//! assert_eq!(pool.map(square, 0..10u64)?, (0..10).map(|x| x * x).collect::<Vec<_>>());
//! let r = pool.apply_async(square, 7)?;
//! assert_eq!(r.get(None)?, 49);
//! pool.close()?;
//! pool.join()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Functions, under every start method
//! A task's function is a `fn(T) -> R` item or a closure that captures nothing (`T`, `R`:
//! [`Message`](crate::message::Message)): it travels as the distance of its monomorphized
//! trampoline from an anchor function of the library. Workers run the parent's own executable
//! (fork: the same image; spawn and forkserver: `/proc/self/exe`), and a worker checks at its
//! start that its executable file is the parent's (device, inode, size, modification time),
//! else the pool fails with [`PoolError::ExecutableMismatch`]; so the distance names the same
//! function in the worker. Such a function has a zero-sized type without drop glue: its only
//! value is made from nothing there (the one `unsafe` conversion of each lives in `sys`). No
//! registration is needed. A closure that captures only zero-sized values (a marker or a token
//! type) counts as capturing nothing: every worker then holds its own copy of that token, so a
//! token meant to exist once must not be captured. A closure that captures state is kept in a
//! table in the parent; only a worker forked after it was added has it, so the pool retires
//! idle older workers and forks fresh ones for it; under spawn and forkserver it is
//! [`PoolError::ClosureNeedsFork`]. Registered entries run by name ([`Func::entry`]).
//!
//! # Who drives the pool
//! No thread is left running in the parent (the fork start method refuses a multi-threaded
//! parent, and the pool forks replacements). The pool works while its caller waits on it:
//! `map`, `get`, `wait`, iterating an `imap` and the futures' calls run its event loop, which
//! hands out chunks, reads results and reaps dead workers. Callbacks run there, on the thread
//! that drives the pool, after the result is recorded and outside the pool's lock (so they may
//! submit more work). Submitted work that nobody waits on runs as far as the workers' pipes
//! carry it, and its callbacks run at the next call that drives the pool (`join` does).
//!
//! # Failure is a per-task result
//! A worker that dies mid-task is replaced and the task retried up to `retries` times (default
//! 1), then it alone is [`PoolError::WorkerDied`]. Every item has its own outcome, and a
//! worker reports the items it finished, in order, whenever they have waited 200 µs (at once
//! after a long task, after every task with `task_timeout`): so only a chunk's unfinished
//! items run again, and of short ones at most that much work. A panic is
//! [`PoolError::TaskPanicked`] and the worker lives on; a task past `task_timeout` has its
//! worker killed and is [`PoolError::TaskTimedOut`]. Workers are daemonic: they die with the
//! parent.
//!
//! With [`PoolBuilder::standby`] the pool keeps one more worker started and idle, which takes
//! a leaving worker's place at once (a death costs the map the reap and the retry, not a
//! start); its own replacement starts once no task waits in the parent and a worker is idle.
//!
//! # Tiny tasks
//! A chunk travels as one frame with its arguments encoded end to end (their size sent once
//! when they are all alike), and a worker runs a run of them in one loop of the function's
//! own code; the outcomes come back end to end in one frame per report, and a job keeps
//! values of one size in one buffer, so `map` decodes them straight into its vector. Nothing
//! is allocated per item on either side. Tasks of a few nanoseconds want large chunks: the
//! default chunk size (CPython's) is a quarter of each worker's share.
//!
//! # Sharing objects in the initializer
//! As CPython's `Pool(initializer=init, initargs=(lock, queue))`: give the descriptors of the
//! [`Lock`](crate::Lock), [`Value`](crate::Value), [`Queue`](crate::Queue) and the like to
//! [`PoolBuilder::inherit_fds`], their numbers in the initializer's arguments, and let the
//! initializer claim them (`Lock::from_inherited(fd)`) into a `thread_local!` its tasks read.
//! Every worker inherits them under the same numbers whatever the start method, replacements
//! too, so the parent keeps the objects for as long as the pool lives.
//!
//! # A caller's own policy
//! [`Pool::tasks`] gives a completion queue ([`Tasks`]): tasks submitted one at a time, taken
//! back as they finish with their index. Its [`Tasks::next_with`] also waits on the caller's
//! descriptors (a signal's self-pipe), [`Tasks::running`] says which task runs on which worker
//! since when, and [`Pool::kill_worker`] lets the caller end a worker it judges stuck (the
//! pool settles its task as for any death). [`PoolBuilder::prefetch`] keeps the next task in
//! a worker's pipe while it runs a long one; [`PoolBuilder::build_watching`] keeps the start of
//! a large pool stoppable. A pinned worker's replacement runs on the CPU its predecessor had.

mod api;
mod core;
mod error;
mod func;
mod futures;
mod items;
mod store;
mod tasks;
pub(crate) mod worker;

pub use api::{AsyncResult, IMap, MapResult, Pool, PoolBuilder};
pub use error::{PoolError, PoolResult};
pub use func::Func;
pub use futures::{AsCompleted, Executor, ExecutorBuilder, Future, ReturnWhen, as_completed, wait};
pub use tasks::{Next, Running, Tasks};
