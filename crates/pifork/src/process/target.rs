//! What runs in a child: the target, wrapped so that its result or its panic travels back as
//! one frame, and the flag that tells a daemonic child it may not start children.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use super::entry::EntryFn;
use crate::message::Message;

/// Tag of a frame carrying the target's encoded value.
pub(crate) const TAG_VALUE: u8 = 0;
/// Tag of a frame carrying a panic message.
pub(crate) const TAG_PANIC: u8 = 1;

/// The frame of a child that failed with `message` (exit code 1).
pub(crate) fn panic_frame(message: String) -> (i32, Vec<u8>) {
    let mut frame = vec![TAG_PANIC];
    message.encode(&mut frame);
    (1, frame)
}

/// Runs `target`, which appends its encoded result to the frame, catching a panic; returns
/// the exit code and the frame to send back. The frame is built in place in `frame` (given
/// empty; the fork start method allocates it before the fork, so that a forked child with a
/// small result neither allocates nor frees on its way out).
pub(crate) fn run_target(mut frame: Vec<u8>, target: impl FnOnce(&mut Vec<u8>)) -> (i32, Vec<u8>) {
    frame.clear();
    frame.push(TAG_VALUE);
    match catch_unwind(AssertUnwindSafe(|| target(&mut frame))) {
        Ok(()) => (0, frame),
        Err(payload) => {
            let text = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            panic_frame(text)
        }
    }
}

/// Runs a registered entry on its encoded arguments, appending the encoded result to `out`;
/// a failing entry panics with its error (reported to the parent like any panic).
pub(crate) fn run_entry(entry: &EntryFn, args: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&entry(args).unwrap_or_else(|e| panic!("{e}")));
}

/// Set in a daemonic child: it may not start children of its own.
static IN_DAEMON: AtomicBool = AtomicBool::new(false);

/// Records whether this (child) process is daemonic.
pub(crate) fn set_in_daemon(daemon: bool) {
    // Written only on change: a child that keeps its parent's value leaves the page shared.
    if IN_DAEMON.load(Ordering::Relaxed) != daemon {
        IN_DAEMON.store(daemon, Ordering::Relaxed);
    }
}

/// True in a daemonic child.
pub(crate) fn in_daemon() -> bool {
    IN_DAEMON.load(Ordering::Relaxed)
}
