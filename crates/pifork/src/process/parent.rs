//! The process that started this one, as CPython's `parent_process()` tells it, and the live
//! children this one started, as `active_children()` does.

use super::identity::parent_pid;
use super::imp;
use crate::error::Result;
use crate::status::Pid;
use crate::sys::Sentinel;

/// The process that started this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentProcess {
    pid: Pid,
}

/// The process that started this one — under forkserver too, where the OS parent is the server
/// — or `None` in the main process, as in CPython.
pub fn parent_process() -> Option<ParentProcess> {
    parent_pid().map(|pid| ParentProcess { pid })
}

impl ParentProcess {
    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Something to [`wait`](crate::wait()) on that becomes ready once the parent has ended
    /// (ready at once if it has ended already). Linux: a pidfd (Linux >= 5.3); an error where
    /// the kernel has none.
    pub fn sentinel(&self) -> Result<ParentSentinel> {
        imp::watch_process(self.pid).map(ParentSentinel)
    }
}

/// Owns what [`ParentProcess::sentinel`] waits on.
#[derive(Debug)]
pub struct ParentSentinel(imp::ProcessWatch);

impl ParentSentinel {
    /// The sentinel, for [`wait`](crate::wait()).
    pub fn sentinel(&self) -> Sentinel<'_> {
        imp::watched(&self.0)
    }
}

/// A child that has been started and has not ended: its pid and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// Its pid.
    pub pid: Pid,
    /// Its name.
    pub name: String,
}

/// The live children this process started (in start order), like CPython's
/// `active_children()`; children found ended are reaped on the way (their `Process` still
/// reports how they ended).
pub fn active_children() -> Vec<ActiveChild> {
    imp::active_children().into_iter().map(|(pid, name)| ActiveChild { pid, name }).collect()
}
