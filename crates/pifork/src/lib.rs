//! pifork: Python's `multiprocessing.Process` model for Linux, natively — fork, a pidfd
//! sentinel, `wait()` for the first of many processes, pinning, results back to the parent.
//!
//! ```standalone_crate
//! use pifork::{Process, wait_first};
//! use std::time::Duration;
//!
//! # fn main() -> pifork::Result<()> {
//! // A target with arguments; its return value comes back to the parent.
//! let mut p = Process::with_args(|(a, b): (u64, u64)| a * b, (6, 7)).name("multiplier");
//! p.start()?;
//! assert_eq!(p.result()?, 42); // joins, then decodes the u64
//! assert_eq!(p.exitcode()?.map(|c| c.code()), Some(0));
//!
//! // Wait for the first of several processes, then stop the others.
//! let mut racers: Vec<Process> = [2_000u64, 1, 2_000]
//!     .into_iter()
//!     .map(|ms| Process::new(move || std::thread::sleep(Duration::from_millis(ms))).daemon(true))
//!     .collect();
//! for r in &mut racers {
//!     r.start()?;
//! }
//! assert_eq!(wait_first(&racers, None)?, Some(1));
//! for r in &mut racers {
//!     r.terminate()?;
//!     r.join()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Targets that must travel to a fresh program (the spawn and forkserver start methods) are
//! entry points registered by name; the program calls [`main_guard`] at the top of `main`,
//! after registering them, the equivalent of Python's `if __name__ == "__main__":`
//! (`examples/entries.rs` shows the whole pattern).
//!
//! The crate's README walks through the rest with examples that run as doctests: CPython
//! parity, the start methods, waiting and the pidfd or pipe backend, pinning, channels and
//! connections, sharing and synchronisation, signals, Windows, and how it works.
//!
//! # Layers
//! `sys` (the system calls and every `unsafe` function; `unsafe_code` is denied elsewhere but
//! for a few statements its header lists) → [`status`] types (`Pid`, `ExitCode`,
//! `StartMethod`) → [`Error`] → the descriptor table, the [`message`] codec and [`wait()`] →
//! the frames that carry messages → [`channel`](mod@channel), [`connection`] and [`signals`] →
//! [`process`]. Beside them, on `sys` and [`Error`]'s `OsError`: [`shm`] (shared segments) →
//! [`sync`] (locks, semaphores, events) and [`value`] (shared numbers) → [`queue`](mod@queue). Nothing here knows the
//! pi appliance built on it.
//!
//! # Before `main`
//! On Linux the library registers one `.init_array` constructor: it counts the threads the
//! process has when it is loaded (one natively, more under an emulator such as qemu-user), the
//! baseline against which the fork start method's "single-threaded" check is made. It only
//! reads `/proc/self/task` and stores a number. The first lock operation registers a
//! `pthread_atfork` child handler, which only counts forks (so that a child knows its cached
//! pid is stale).

// `unsafe` belongs to sys/; its header lists the few statements elsewhere allowed to use it.
#![deny(unsafe_code)]

// Linux (pidfd, /proc, close_range, PR_SET_PDEATHSIG) and Windows (spawn only): the one
// predicate for the Linux side is `target_os = "linux"`, here as in sys/, process/ and wait/.
// `#[derive(Message)]` names `::pifork::...`; this makes that path work inside the library too.
extern crate self as pifork;

#[cfg(not(any(target_os = "linux", windows)))]
compile_error!("pifork runs on Linux and on Windows (spawn only)");

#[cfg(target_os = "linux")]
pub mod channel;
#[cfg(target_os = "linux")]
pub mod connection;
mod error;
#[cfg(target_os = "linux")]
mod fdtable;
#[cfg(target_os = "linux")]
mod frame;
pub mod message;
#[cfg(target_os = "linux")]
pub mod pool;
pub mod process;
#[cfg(target_os = "linux")]
pub mod queue;
#[cfg(target_os = "linux")]
pub mod shm;
#[cfg(target_os = "linux")]
pub mod signals;
pub mod status;
#[cfg(target_os = "linux")]
pub mod sync;
#[allow(unsafe_code)]
mod sys;
#[cfg(target_os = "linux")]
pub mod value;
mod wait;

#[cfg(target_os = "linux")]
pub use channel::{Receiver, Sender, channel};
#[cfg(target_os = "linux")]
pub use connection::{Connection, pipe};
pub use error::{Error, OsError, Result};
#[cfg(target_os = "linux")]
pub use fdtable::take_inherited;
pub use message::Message;
/// `#[derive(Message)]` for structs and enums (the `derive` feature; wire format in its docs).
#[cfg(feature = "derive")]
pub use pifork_derive::Message;
pub use process::{
    ActiveChild, Backend, Context, NOOP_ENTRY, ParentProcess, ParentSentinel, Process, ProcessInfo,
    Supervisor, active_children, available_cpus, backend, cpu_count, current_process, get_context,
    get_start_method, main_guard, parent_process, register, set_start_method, wait_all, wait_first,
};
#[cfg(target_os = "linux")]
pub use process::{forkserver, probe_pidfd};
#[cfg(target_os = "linux")]
pub use queue::{JoinableQueue, Queue, SimpleQueue};
#[cfg(target_os = "linux")]
pub use shm::{ShareableList, SharedMemory, SharedMemoryManager, ShmError};
#[cfg(target_os = "linux")]
pub use signals::SignalPipe;
pub use status::{ExitCode, Pid, StartMethod, UnknownStartMethod, signal_name};
#[cfg(target_os = "linux")]
pub use sync::{Acquired, BoundedSemaphore, Event, Lock, RLock, ReleaseError, Semaphore};
#[cfg(target_os = "linux")]
pub use sync::{Barrier, BrokenBarrier, Condition, ConditionError};
pub use sys::{RawInherit, Sentinel};
#[cfg(target_os = "linux")]
pub use value::{Array, RawArray, RawValue, Shareable, Value};
pub use wait::wait;

// What the derive refuses at compile time, checked with the doctests.
#[cfg(all(doctest, feature = "derive"))]
mod derive_refusals {
    /// A union does not say which field it holds:
    /// ```compile_fail
    /// #[derive(pifork::Message)]
    /// union Bits {
    ///     int: u32,
    ///     float: f32,
    /// }
    /// ```
    /// A packed field cannot be borrowed to be encoded:
    /// ```compile_fail
    /// #[derive(pifork::Message)]
    /// #[repr(C, packed)]
    /// struct Packed {
    ///     a: u8,
    ///     b: u64,
    /// }
    /// ```
    /// A field whose type is not a `Message` is refused:
    /// ```compile_fail
    /// #[derive(pifork::Message)]
    /// struct Holds(std::time::Duration);
    /// ```
    /// while the same shapes with `Message` fields compile:
    /// ```standalone_crate
    /// #[derive(pifork::Message)]
    /// #[repr(C)]
    /// struct Plain {
    ///     a: u8,
    ///     b: u64,
    /// }
    /// #[derive(pifork::Message)]
    /// struct Holds(u64);
    /// ```
    struct Refusals;
}

// The README's examples, compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
