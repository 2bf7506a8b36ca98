//! `PidFd`: an owned pidfd and its verbs. Signals and waits through it cannot hit a recycled
//! pid.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::fdtable::Tracked;
use crate::status::Pid;
use crate::sys;

/// A pidfd, recorded in the descriptor table (no other child inherits it).
#[derive(Debug)]
pub(crate) struct PidFd(Tracked);

impl PidFd {
    /// `pidfd_open` of `pid`.
    pub(crate) fn open(pid: Pid) -> Result<PidFd, Errno> {
        sys::pidfd_open(nix::unistd::Pid::from_raw(pid.as_raw())).map(PidFd::from_owned)
    }

    /// Takes over a pidfd received from elsewhere (the fork server).
    pub(crate) fn from_owned(fd: OwnedFd) -> PidFd {
        PidFd(Tracked::new(fd))
    }

    /// `pidfd_send_signal`.
    pub(crate) fn send_signal(&self, signal: i32) -> Result<(), Errno> {
        sys::pidfd_send_signal(self.0.as_fd(), signal)
    }

    /// `waitid(P_PIDFD)`: reaps the process if it has ended (`block`: waits for it to end).
    pub(crate) fn wait(&self, block: bool) -> Result<Option<sys::Reaped>, Errno> {
        sys::waitid_pidfd(self.0.as_fd(), block)
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What watches a process that is not necessarily ours: its pidfd, or, if it has ended
/// already, the read end of a pipe whose write end is closed (ready at once).
pub(crate) type ProcessWatch = Tracked;

/// A [`ProcessWatch`] on `pid`.
pub(crate) fn watch_process(pid: Pid) -> Result<ProcessWatch> {
    match sys::pidfd_open(nix::unistd::Pid::from_raw(pid.as_raw())) {
        Ok(fd) => Ok(Tracked::new(fd)),
        Err(Errno::ESRCH) => {
            let (r, _w) = sys::pipe().map_err(Error::sys("pipe"))?;
            Ok(Tracked::new(r))
        }
        Err(errno) => Err(Error::sys("pidfd_open")(errno)),
    }
}

/// The sentinel of a [`ProcessWatch`].
pub(crate) fn watched(watch: &ProcessWatch) -> BorrowedFd<'_> {
    watch.as_fd()
}
