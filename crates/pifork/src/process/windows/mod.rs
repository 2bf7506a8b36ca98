//! The Windows backend: spawn only. A child is a fresh run of the current executable
//! (`CreateProcessW`) that inherits exactly its two pipe ends (and the handles the caller
//! listed); its process handle is the sentinel; `TerminateProcess` stands in for signals.
//!
//! How it maps CPython's model:
//! - `terminate()` and `kill()` end the child with `TerminateProcess` and a distinctive exit
//!   code, read back as `-SIGTERM` and `-SIGKILL` (CPython reports `-SIGTERM` for both).
//! - A daemonic child is put, before it runs, into one job object per parent process with
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`; only the parent holds the job's handle, so the
//!   system kills the child when the parent dies, however it dies (Linux: `PR_SET_PDEATHSIG`).
//! - Pinning sets the suspended child's process affinity mask before its first instruction.
//! - A thread per child reads its result pipe as the bytes arrive, so a large result never
//!   blocks the child on a full pipe, whatever the parent is waiting on.

pub(crate) mod backend;
mod child;
mod command;

pub use backend::{Backend, backend};
pub(crate) use child::Child;

use super::entry::SpawnSpec;
use super::spec::ChildSpec;
use crate::error::Result;
use crate::sys::{self, RawInherit};

/// In a spawned child: the result handle its parent handed down stays out of this process's
/// own children (made non-inheritable, so that not even a child created with blanket handle
/// inheritance holds the parent's pipe open). `hold` is unused on Windows (0): the process
/// handle itself is the sentinel.
pub(crate) fn adopt_inherited(spec: &SpawnSpec) {
    for handle in [spec.result, spec.hold] {
        if handle > 0 {
            let _ = sys::set_inheritable_value(handle, false);
        }
    }
}

/// Handles listed with `inherit_fds` are found under the same values in the child; Windows has
/// no registry of them to claim from (channels are Linux's).
pub(crate) fn set_inherited(_handles: &[RawInherit]) {}

/// Windows has no fork start method.
pub(crate) fn start_fork<B: FnOnce(&mut Vec<u8>)>(
    spec: &ChildSpec<'_>,
    body: impl FnOnce() -> Result<B>,
) -> Result<Child> {
    Child::start_fork(spec, body)
}

/// Nor the forkserver one.
pub(crate) fn start_forkserver(spec: &ChildSpec<'_>, entry: &str, args: &[u8]) -> Result<Child> {
    Child::start_forkserver(spec, entry, args)
}

/// The spawn start method (see [`Child::spawn`]).
pub(crate) fn spawn(spec: &ChildSpec<'_>, entry: &str, args: &[u8]) -> Result<Child> {
    Child::spawn(spec, entry, args)
}

/// Windows keeps no list of live children (`active_children()` is empty there).
pub(crate) fn active_children() -> Vec<(crate::status::Pid, String)> {
    Vec::new()
}

/// What would watch another process: a handle (there is no parent sentinel on Windows).
pub(crate) type ProcessWatch = std::os::windows::io::OwnedHandle;

/// A parent sentinel is not available on Windows.
pub(crate) fn watch_process(_pid: crate::status::Pid) -> Result<ProcessWatch> {
    Err(crate::error::Error::Unavailable { what: "a parent sentinel" })
}

/// The sentinel of a [`ProcessWatch`].
pub(crate) fn watched(watch: &ProcessWatch) -> sys::Sentinel<'_> {
    std::os::windows::io::AsHandle::as_handle(watch)
}
