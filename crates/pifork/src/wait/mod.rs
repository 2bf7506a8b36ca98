//! `wait()`: block until the first of several sentinels (or any readable descriptors) is
//! ready — the equivalent of `multiprocessing.connection.wait`, on `poll(2)`.

mod deadline;
#[cfg(target_os = "linux")]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
use unix as imp;
#[cfg(windows)]
use windows as imp;

use std::time::Duration;

pub(crate) use deadline::{deadline_after, remaining_ms};
#[cfg(windows)]
pub(crate) use windows::timeout_ms;

use crate::error::Result;
use crate::sys::Sentinel;

/// Waits until at least one of `sentinels` is ready or `timeout` passes, and returns the
/// indices of the ready ones, ascending (empty on timeout).
///
/// Process sentinels become ready when the process ends. On Linux any other descriptor (a
/// channel's receiving end, a signal pipe) can be waited on alongside them, ready when readable
/// or hung up; on Windows any waitable handle. Signals that interrupt the wait are absorbed:
/// the wait resumes with the time that is left.
pub fn wait(sentinels: &[Sentinel<'_>], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let ready = imp::wait_any(sentinels, deadline_after(timeout))?;
    log::debug!("wait: ready {ready:?} of {}", sentinels.len());
    Ok(ready)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::sys;
    use std::os::fd::AsFd;
    use std::time::Instant;

    #[test]
    fn times_out_with_nothing_ready() {
        let (r, _w) = sys::pipe().unwrap();
        let start = Instant::now();
        let ready = wait(&[r.as_fd()], Some(Duration::from_millis(30))).unwrap();
        assert!(ready.is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn reports_only_the_ready_ones() {
        let (r1, _w1) = sys::pipe().unwrap();
        let (r2, w2) = sys::pipe().unwrap();
        let (r3, w3) = sys::pipe().unwrap();
        sys::write_all(w2.as_fd(), b"x").unwrap();
        drop(w3); // hang-up counts as ready
        let ready = wait(&[r1.as_fd(), r2.as_fd(), r3.as_fd()], None).unwrap();
        assert_eq!(ready, vec![1, 2]);
    }

    #[test]
    fn zero_timeout_polls_once() {
        let (r, w) = sys::pipe().unwrap();
        assert!(wait(&[r.as_fd()], Some(Duration::ZERO)).unwrap().is_empty());
        sys::write_all(w.as_fd(), b"x").unwrap();
        assert_eq!(wait(&[r.as_fd()], Some(Duration::ZERO)).unwrap(), vec![0]);
    }
}
