//! The children this process started and has not reaped yet, for `active_children()`: each
//! with a copy of its sentinel, so that it can be checked without disturbing its `Process`.
//! A direct child found ended is reaped here, and its exit code kept until its `Process` asks.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::poll::{PollFd, PollFlags};

use crate::fdtable::Tracked;
use crate::status::{ExitCode, Pid};
use crate::sys;

/// A child as the registry knows it.
struct Entry {
    pid: Pid,
    name: String,
    /// A copy of its sentinel.
    watch: Tracked,
    /// Ours to reap (fork and spawn), not the fork server's.
    direct: bool,
}

/// Live children by serial number, and the exit codes of those reaped here.
struct Registry {
    live: BTreeMap<u64, Entry>,
    reaped: BTreeMap<u64, ExitCode>,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { live: BTreeMap::new(), reaped: BTreeMap::new() });

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a started child; returns its serial number (0 if its sentinel could not be copied:
/// it is then simply not listed).
pub(crate) fn register(
    pid: Pid,
    name: &str,
    sentinel: std::os::fd::BorrowedFd<'_>,
    direct: bool,
) -> u64 {
    let Ok(watch) = sys::dup_above(sentinel, 3) else { return 0 };
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let entry = Entry { pid, name: name.to_string(), watch: Tracked::new(watch), direct };
    registry().live.insert(serial, entry);
    serial
}

/// The child `serial` was reaped by its `Process`: no longer listed.
pub(crate) fn forget(serial: u64) {
    if serial != 0 {
        let mut registry = registry();
        registry.live.remove(&serial);
        registry.reaped.remove(&serial);
    }
}

/// The exit code of child `serial` if it was reaped here (its `Process` then finds it gone).
pub(crate) fn take_reaped(serial: u64) -> Option<ExitCode> {
    registry().reaped.remove(&serial)
}

/// The live children, `(pid, name)` in start order; those found ended are reaped (direct
/// children) and dropped from the list.
pub(crate) fn active() -> Vec<(Pid, String)> {
    let mut registry = registry();
    let mut ended = Vec::new();
    for (&serial, entry) in &registry.live {
        let mut fds = [PollFd::new(entry.watch.as_fd(), PollFlags::POLLIN)];
        if !matches!(sys::poll(&mut fds, 0), Ok(1)) {
            continue;
        }
        let code = if entry.direct {
            match sys::waitpid(nix::unistd::Pid::from_raw(entry.pid.as_raw()), false) {
                Ok(Some(sys::Reaped::Exited(code))) => Some(ExitCode::Exited(code)),
                Ok(Some(sys::Reaped::Signaled(signal))) => Some(ExitCode::Signaled(signal)),
                _ => None,
            }
        } else {
            None
        };
        ended.push((serial, code));
    }
    for (serial, code) in ended {
        if let Some(entry) = registry.live.remove(&serial) {
            log::debug!("active_children: pid {} ({}) has ended", entry.pid, entry.name);
        }
        if let Some(code) = code {
            registry.reaped.insert(serial, code);
        }
    }
    registry.live.values().map(|e| (e.pid, e.name.clone())).collect()
}
