//! `wait()`: block until the first of several sentinels (or any readable descriptors) is
//! ready — the equivalent of `multiprocessing.connection.wait`, on `poll(2)`.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::process::Sentinel;

/// Milliseconds left until `deadline`, rounded up so a wait never ends early; `None` for no
/// deadline, `Some(0)` once it has passed.
pub(crate) fn remaining_ms(deadline: Option<Instant>) -> Option<i32> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            0
        } else {
            let ms = left.as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    })
}

/// The deadline `timeout` from now (monotonic clock); `None` waits forever.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Waits until at least one of `sentinels` is ready or `timeout` passes, and returns the
/// indices of the ready ones, ascending (empty on timeout).
///
/// Process sentinels become ready when the process ends. On Linux any other descriptor (a
/// channel's receiving end, a signal pipe) can be waited on alongside them, ready when readable
/// or hung up; on Windows any waitable handle. Signals that interrupt the wait are absorbed:
/// the wait resumes with the time that is left.
pub fn wait(sentinels: &[Sentinel<'_>], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let ready = crate::process::wait_any(sentinels, deadline_after(timeout))?;
    log::debug!("wait: ready {ready:?} of {}", sentinels.len());
    Ok(ready)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::sys;
    use std::os::fd::AsFd;

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
