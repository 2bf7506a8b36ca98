//! The fork start method: a raw `fork`, the child running its target straight from the
//! parent's memory. Everything that can fail is prepared before the fork, and the fork path
//! touches as few pages as it can (the crate README's *How it works*).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use super::backend::backend;
use super::child::{Child, SentinelPipe};
use super::setup::{child_setup, single_threaded};
use crate::error::{Error, Result};
use crate::fdtable::Tracked;
use crate::process::spec::ChildSpec;
use crate::process::target::run_target;
use crate::status::Pid;
use crate::sys;

/// The descriptors of a child about to be forked.
pub(super) struct Prepared {
    result_r: Option<Tracked>,
    result_w: Tracked,
    sentinel: SentinelPipe,
    /// Allocated before the fork and used on both sides of it: the child builds its frame in
    /// its copy, the parent reads the result into its own; neither allocates or frees it then.
    buffer: Vec<u8>,
}

/// Everything that can fail before the fork: the thread check and the pipes. The target is not
/// touched, so a refused start can be retried.
pub(super) fn prepare(spec: &ChildSpec<'_>) -> Result<Prepared> {
    if !spec.allow_threads {
        single_threaded()?;
    }
    let (result_r, result_w) = sys::pipe_nonblocking_read().map_err(Error::sys("pipe"))?;
    let (result_r, result_w) = (Tracked::new(result_r), Tracked::new(result_w));
    prepare_with(Some(result_r), result_w)
}

/// The sentinel for a child whose result goes to `result_w` (read by `result_r`, if here).
pub(super) fn prepare_with(result_r: Option<Tracked>, result_w: Tracked) -> Result<Prepared> {
    let sentinel = SentinelPipe::new()?;
    Ok(Prepared { result_r, result_w, sentinel, buffer: Vec::with_capacity(256) })
}

/// Forks; the child runs `in_child` (given its result pipe end, its own pipe ends — the result
/// pipe's and, with the pipe backend, the sentinel's, or -1 — and the prepared buffer), which
/// leaves through `_exit`. Returns the parent's view.
pub(super) fn fork(
    spec: &ChildSpec<'_>,
    prepared: Prepared,
    in_child: impl FnOnce(BorrowedFd<'_>, [RawFd; 2], Vec<u8>),
) -> Result<Child> {
    let Prepared { result_r, result_w, sentinel, buffer } = prepared;
    // Anything buffered now would otherwise be written twice, once by each process
    // (stderr is unbuffered).
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    let parent = sys::getpid();

    // Signals sent to the child before it has reset the parent's handlers wait for it (see
    // `block_all_signals`); the child's mask is cleared in `child_setup`.
    let mask = sys::block_all_signals().map_err(Error::sys("sigprocmask"))?;
    #[allow(unsafe_code)] // the one `fork` of the fork start method (see sys/mod.rs)
    // SAFETY: either the process is single-threaded (checked in `prepare`), so the child can
    // take any lock, or the caller opted in knowing the child's code is fork-safe.
    let forked = unsafe { sys::fork() };
    if !matches!(forked, Ok(sys::ForkResult::Child)) {
        sys::restore_signal_mask(&mask);
    }
    match forked.map_err(Error::sys("fork"))? {
        sys::ForkResult::Child => {
            let own = [result_w.as_raw_fd(), sentinel.child_end().unwrap_or(-1)];
            child_setup(spec, parent, &own);
            in_child(result_w.as_fd(), own, buffer);
            // `in_child` leaves through `_exit`; should it ever return, so do we.
            sys::exit_now(1)
        }
        sys::ForkResult::Parent { child } => {
            let pid = Pid(child.as_raw());
            drop(result_w);
            let reaper = sentinel.into_reaper(pid)?;
            log::debug!(
                "forked {} pid {pid} ({}{})",
                spec.name,
                backend().as_str(),
                if spec.daemon { ", daemon" } else { "" }
            );
            let output_done = result_r.is_none();
            Ok(Child {
                pid,
                reaper,
                result: result_r,
                output: buffer,
                output_done,
                status: None,
                started,
                serial: 0,
            })
        }
    }
}

/// The fork start method: prepares, then takes the target's body from `body` (so that a refused
/// start leaves it in place) and forks. The child runs the body, sends its frame and leaves with
/// `_exit`.
pub(crate) fn start_fork<B: FnOnce(&mut Vec<u8>)>(
    spec: &ChildSpec<'_>,
    body: impl FnOnce() -> Result<B>,
) -> Result<Child> {
    let prepared = prepare(spec)?;
    let mut body = Some(body()?);
    fork_body(spec, prepared, &mut |out| body.take().map_or((), |body| body(out)))
}

/// The fork itself, once for every target type: the body is called through a reference, which
/// neither allocates in the parent nor frees in the child.
fn fork_body(
    spec: &ChildSpec<'_>,
    prepared: Prepared,
    body: &mut dyn FnMut(&mut Vec<u8>),
) -> Result<Child> {
    fork(spec, prepared, move |result_w, _, frame| {
        let (code, frame) = run_target(frame, body);
        let _ = sys::write_all(result_w, &frame);
        let _ = std::io::stdout().flush();
        sys::exit_now(code)
    })
}
