//! `wait()` on Linux: `poll(2)` for readability or hang-up.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::deadline::remaining_ms;
use crate::error::{Error, Result};
use crate::sys;

/// `wait()` on Linux: `poll(2)` for readability or hang-up, until `deadline`.
pub(crate) fn wait_any(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> Result<Vec<usize>> {
    let mut pollfds: Vec<PollFd<'_>> =
        fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    loop {
        let timeout_ms = remaining_ms(deadline).unwrap_or(-1);
        match sys::poll(&mut pollfds, timeout_ms) {
            Ok(0) if timeout_ms >= 0 && remaining_ms(deadline) == Some(0) => return Ok(Vec::new()),
            Ok(0) => continue,
            Ok(_) => {
                return Ok(pollfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(i, _)| i)
                    .collect());
            }
            Err(Errno::EINTR) => {
                if remaining_ms(deadline) == Some(0) {
                    return Ok(Vec::new());
                }
            }
            Err(errno) => return Err(Error::sys("poll")(errno)),
        }
    }
}
