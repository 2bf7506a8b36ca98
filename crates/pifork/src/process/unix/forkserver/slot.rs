//! Where this process keeps its fork server: one slot, forgotten in every forked child (the
//! parent's server is not the child's).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::fdtable::Tracked;
use crate::process::unix::child::Child;
use crate::status::Pid;

/// The parent's end of the running server.
pub(super) struct Server {
    /// The parent's end of the socket pair.
    pub(super) sock: Tracked,
    /// The server's pid.
    pub(super) pid: Pid,
    /// The server itself, as our child: reaped when it stops.
    pub(super) process: Child,
}

/// The running server, if any.
pub(super) static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Set once a server has been started: a forked child of a process that never started one
/// has nothing to forget, and then leaves the lock (and its memory page) untouched.
pub(super) static EVER_STARTED: AtomicBool = AtomicBool::new(false);

/// In a freshly forked child: the parent's server is not this process's (its socket end was
/// just closed here). Forget it without running its destructor; the child may start its own.
pub(crate) fn forget_server_in_child() {
    // A lock held at the fork (only in the server itself, forked under it) stays held: the
    // server never asks for its own server, so it is left alone.
    if !EVER_STARTED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut server) = SERVER.try_lock() {
        std::mem::forget(server.take());
    }
}
