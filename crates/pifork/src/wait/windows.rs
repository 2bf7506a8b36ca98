//! `wait()` on Windows: `WaitForMultipleObjects` on process handles (or any waitable handle),
//! with helper threads beyond its limit of 64.

use std::os::windows::io::{AsHandle, AsRawHandle};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::deadline::remaining_ms;
use crate::error::{Error, Result};
use crate::sys::{self, Sentinel};

/// Handles one waiter thread watches, beside the event that stops it.
const GROUP: usize = sys::MAX_WAIT_OBJECTS - 1;

/// `wait()` on Windows: the indices of the signaled handles, ascending, once at least one is
/// signaled or `deadline` passes (then empty). Up to 64 distinct handles are waited on with one
/// `WaitForMultipleObjects`; more are split into groups of 63, each watched by a thread that
/// also waits on a shared event, set by the first group to see a handle signaled (or at the
/// deadline) to stop the others.
pub(crate) fn wait_any(
    sentinels: &[Sentinel<'_>],
    deadline: Option<Instant>,
) -> Result<Vec<usize>> {
    // The same handle twice is not allowed in one wait: wait on each once.
    let mut unique: Vec<Sentinel<'_>> = Vec::with_capacity(sentinels.len());
    for s in sentinels {
        if !unique.iter().any(|u| u.as_raw_handle() == s.as_raw_handle()) {
            unique.push(*s);
        }
    }
    let ready = ready_now(sentinels)?;
    if !ready.is_empty() || remaining_ms(deadline) == Some(0) {
        return Ok(ready);
    }
    let fired = if unique.is_empty() {
        // Nothing can become ready: only the deadline ends the wait.
        loop {
            match remaining_ms(deadline) {
                Some(0) => break None,
                Some(ms) => std::thread::sleep(Duration::from_millis(ms as u64)),
                None => std::thread::park(),
            }
        }
    } else if unique.len() <= sys::MAX_WAIT_OBJECTS {
        wait_few(&unique, deadline)?
    } else {
        wait_many(&unique, deadline)?
    };
    let mut ready = ready_now(sentinels)?;
    // An auto-reset object is reset by the wait that saw it: count it even if the scan
    // cannot see it any more.
    if let Some(hit) = fired {
        let raw = unique[hit].as_raw_handle();
        for (i, s) in sentinels.iter().enumerate() {
            if s.as_raw_handle() == raw && !ready.contains(&i) {
                ready.push(i);
            }
        }
        ready.sort_unstable();
    }
    Ok(ready)
}

/// The indices of the handles signaled right now.
fn ready_now(sentinels: &[Sentinel<'_>]) -> Result<Vec<usize>> {
    let mut ready = Vec::new();
    for (i, s) in sentinels.iter().enumerate() {
        if sys::wait_one(*s, 0).map_err(Error::sys("WaitForSingleObject"))? {
            ready.push(i);
        }
    }
    Ok(ready)
}

/// The timeout of one wait call until `deadline` (`INFINITE` without one).
pub(crate) fn timeout_ms(deadline: Option<Instant>) -> u32 {
    remaining_ms(deadline).map_or(sys::INFINITE, |ms| ms as u32)
}

/// One `WaitForMultipleObjects` over at most 64 handles, repeated until one is signaled or the
/// deadline has passed by the monotonic clock.
fn wait_few(handles: &[Sentinel<'_>], deadline: Option<Instant>) -> Result<Option<usize>> {
    loop {
        let hit = sys::wait_multiple(handles, timeout_ms(deadline))
            .map_err(Error::sys("WaitForMultipleObjects"))?;
        if hit.is_some() || remaining_ms(deadline) == Some(0) {
            return Ok(hit);
        }
    }
}

/// More than 64 handles: one waiter thread per group of 63, stopped through a shared event.
fn wait_many(handles: &[Sentinel<'_>], deadline: Option<Instant>) -> Result<Option<usize>> {
    let stop = sys::event().map_err(Error::sys("CreateEventW"))?;
    let stop = stop.as_handle();
    let hit: Mutex<Option<usize>> = Mutex::new(None);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| -> Result<()> {
        for (g, group) in handles.chunks(GROUP).enumerate() {
            let (hit, failed) = (&hit, &failed);
            let spawned = std::thread::Builder::new()
                .name("pifork-wait".into())
                .stack_size(64 * 1024)
                .spawn_scoped(scope, move || {
                    let mut set = Vec::with_capacity(group.len() + 1);
                    set.push(stop);
                    set.extend_from_slice(group);
                    match sys::wait_multiple(&set, sys::INFINITE) {
                        Ok(Some(0)) | Ok(None) => {}
                        Ok(Some(i)) => {
                            let mut hit = hit.lock().unwrap_or_else(|e| e.into_inner());
                            hit.get_or_insert(g * GROUP + i - 1);
                        }
                        Err(e) => {
                            let e = Error::sys("WaitForMultipleObjects")(e);
                            failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        }
                    }
                    // The first to return releases the others (and the caller).
                    let _ = sys::set_event(stop);
                });
            if let Err(e) = spawned {
                let _ = sys::set_event(stop);
                return Err(Error::sys("CreateThread")(e));
            }
        }
        // The caller keeps the deadline; the threads wait without one until released.
        let waited = loop {
            match sys::wait_one(stop, timeout_ms(deadline)) {
                Ok(true) => break Ok(()),
                Ok(false) if remaining_ms(deadline) == Some(0) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(Error::sys("WaitForSingleObject")(e)),
            }
        };
        let _ = sys::set_event(stop);
        waited
    })?;
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(hit.into_inner().unwrap_or_else(|e| e.into_inner()))
}
