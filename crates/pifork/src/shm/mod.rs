//! Shared memory between processes, CPython's `multiprocessing.shared_memory.SharedMemory`:
//! anonymous segments on a `memfd` (no name anywhere, so nothing to leak: the memory is gone
//! when the last process holding it ends, however it ends) and named segments, files under
//! `/dev/shm` that any process may [`attach`](SharedMemory::attach) to by name until their
//! owner [`unlink`](SharedMemory::unlink)s them.
//!
//! ```standalone_crate
//! use pifork::SharedMemory;
//!
//! let shm = SharedMemory::new(4096)?;
//! shm.write(0, b"hello")?;
//! let mut buf = [0u8; 5];
//! shm.read(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! assert_eq!(shm.size(), 4096);
//! assert_eq!(shm.name(), None); // anonymous: nothing in /dev/shm
//! # Ok::<(), pifork::ShmError>(())
//! ```
//!
//! A segment passes to a child at `Process` creation: under fork a clone captured by the
//! target shares the mapping; under every start method its descriptor can be listed in
//! `Process::inherit_fds` ([`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd)) and claimed in the
//! child with [`SharedMemory::from_inherited`], as connections are. The descriptor is not one
//! of the bookkeeping descriptors a forked child closes: a forked child keeps its copy, which
//! only keeps the memory alive for as long as that child lives (as its mapping does).
//!
//! # Lists and a manager
//! [`ShareableList`] is CPython's list of fixed length in shared memory (numbers, booleans,
//! strings, byte strings, `None`), laid out as CPython lays it out: a Python program can
//! attach to a named one made here, and the other way round. [`SharedMemoryManager`] makes
//! named segments and lists and unlinks them all when it is shut down or dropped, in the
//! process that made it (CPython starts a server process for it).
//!
//! # No resource tracker
//! CPython starts a tracker process that unlinks named segments when their creator ends, which
//! breaks segments another process still uses and warns about "leaked" ones. Here a named
//! segment is its creator's to [`unlink`](SharedMemory::unlink): it stays in `/dev/shm` until
//! then, even past the end of every process (as a file would). Anonymous segments are what to
//! use when nothing outside the process tree needs a name.
//!
//! # Memory ordering
//! Bytes are read and written with relaxed atomic operations ([`read`](SharedMemory::read),
//! [`write`](SharedMemory::write)): sound whatever other processes do at the same time, but a
//! reader may see some bytes of a concurrent write and not others. Order them with a lock
//! ([`Lock`](crate::sync::Lock): its release publishes everything written before it to the
//! next acquirer) or an [`Event`](crate::sync::Event).

mod list;
mod manager;
mod memory;

pub use list::{Item, ShareableList};
pub use manager::SharedMemoryManager;
pub(crate) use memory::{Kind, PAYLOAD, Segment};
pub use memory::{SharedMemory, ShmError};
