//! The bare fork of the round-trip bench, the appliance's one `unsafe` call outside the
//! kernel: a `fork` whose child calls `_exit(0)` at once, with nothing of the library around it.

use nix::errno::Errno;
use nix::unistd::Pid;

/// Forks a child that exits with 0 at once; its pid, for the caller to reap.
pub(super) fn fork_and_exit() -> Result<Pid, Errno> {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe and never returns, so
    // forking is sound even in a multi-threaded process: the child touches no lock, no
    // allocator and no state copied from the parent.
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        pid
    };
    Errno::result(pid).map(Pid::from_raw)
}
