//! Shutdown signals as a descriptor: SIGINT/SIGTERM (or any set) write to a socket that
//! [`crate::wait()`] can watch beside the sentinels, so a signal ends a wait at once.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::fdtable::{Tracked, track_forever};

/// A self-pipe for signals: readable once one of the registered signals arrived.
#[derive(Debug)]
pub struct SignalPipe {
    read: Tracked,
    last: Arc<AtomicUsize>,
}

impl SignalPipe {
    /// Catches `signals` from now on (their default action no longer runs).
    pub fn new(signals: &[i32]) -> Result<SignalPipe> {
        let io = Error::sys::<std::io::Error>("signal pipe");
        let (read, write) = UnixStream::pair().map_err(io)?;
        read.set_nonblocking(true).map_err(io)?;
        write.set_nonblocking(true).map_err(io)?;
        let read = Tracked::new(OwnedFd::from(read));
        let last = Arc::new(AtomicUsize::new(0));
        for &signal in signals {
            // The flag first, then the wake-up byte: a reader that sees the byte sees the flag.
            signal_hook::flag::register_usize(signal, Arc::clone(&last), signal as usize)
                .map_err(io)?;
            let end = OwnedFd::from(write.try_clone().map_err(io)?);
            // The handler owns this copy for the life of the process; children never get it.
            track_forever(&end);
            signal_hook::low_level::pipe::register_raw(signal, end).map_err(io)?;
        }
        Ok(SignalPipe { read, last })
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The last signal received since the previous call, if any (clears the pipe).
    pub fn take(&self) -> Option<i32> {
        let mut buf = [0u8; 64];
        while matches!(crate::sys::read(self.read.as_fd(), &mut buf), Ok(n) if n > 0) {}
        match self.last.swap(0, Ordering::AcqRel) {
            0 => None,
            signal => Some(signal as i32),
        }
    }
}

/// Ignores `signals` in the calling process from now on, like CPython's
/// `signal.signal(sig, signal.SIG_IGN)`: for a worker that must outlive a SIGHUP sent to its
/// whole process group (`systemctl kill -s HUP`). Children started afterwards inherit it, as
/// across `execve`.
pub fn ignore(signals: &[i32]) -> Result<()> {
    for &signal in signals {
        let signal =
            nix::sys::signal::Signal::try_from(signal)
                .map_err(Error::sys::<nix::errno::Errno>("signal number"))?;
        crate::sys::ignore_signal(signal).map_err(Error::sys("sigaction"))?;
    }
    Ok(())
}
