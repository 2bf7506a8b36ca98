//! The fork start method's two checks around `fork`: in the parent, that it is single-threaded;
//! in the child, the set-up before its target runs (signals, descriptors, daemon, pinning).

use std::io::Write;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::forkserver::slot::forget_server_in_child;
use crate::error::{Error, Result};
use crate::fdtable;
use crate::process::identity::become_child;
use crate::process::method::set_own_method;
use crate::process::spec::ChildSpec;
use crate::process::target::set_in_daemon;
use crate::status::{Pid, StartMethod};
use crate::sys;

/// How long a thread that has been joined may still be counted among the process's threads.
const THREAD_LINGER: Duration = Duration::from_millis(100);

/// Refuses to fork a multi-threaded process. A joined thread wakes its joiner before it is
/// reaped, so it can still be counted for a moment (on a busy machine, for as long as it
/// waits for a CPU to finish exiting): a count above the baseline is checked again for up to
/// [`THREAD_LINGER`] before it is believed. A process whose thread count cannot be read
/// (no `/proc`) is taken to be single-threaded.
pub(super) fn single_threaded() -> Result<()> {
    let since = Instant::now();
    loop {
        let (threads, extra) = match sys::threads() {
            Ok((_, 0)) | Err(_) => return Ok(()),
            Ok(counted) => counted,
        };
        if since.elapsed() >= THREAD_LINGER {
            return Err(Error::MultiThreaded { threads });
        }
        log::trace!("{extra} thread(s) besides this one; checking again");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Runs in the child right after `fork`, before the target: only async-signal-safe calls, then
/// (the parent having been single-threaded) plain code. `own` lists the child's own pipe ends
/// (-1 for none); `parent` is the parent's pid, taken before the fork (the child's `getppid()`
/// is not its parent's any more if the parent has died meanwhile).
pub(super) fn child_setup(spec: &ChildSpec<'_>, parent: nix::unistd::Pid, own: &[RawFd]) {
    sys::reset_signal_handlers();
    fdtable::close_others_in_child(|fd| own.contains(&fd) || spec.inherit.contains(&fd));
    forget_server_in_child();
    // A worker of the (daemonic) fork server is daemonic only if it was asked to be.
    set_in_daemon(spec.daemon);
    become_child(spec.name, Pid(parent.as_raw()), StartMethod::Fork);
    set_own_method(StartMethod::Fork);
    if spec.daemon {
        // A daemonic child dies with its parent, even if the parent is SIGKILLed. Check again
        // afterwards: the parent may have died before the request took effect.
        if sys::set_parent_death_signal(Signal::SIGKILL).is_err() || sys::getppid() != parent {
            sys::exit_now(1);
        }
    }
    if let Some(cpus) = spec.cpus
        && let Err(errno) = sys::set_affinity(cpus)
    {
        let _ = writeln!(std::io::stderr(), "{}: cannot pin to cpus {cpus:?}: {errno}", spec.name);
        sys::exit_now(1);
    }
}
