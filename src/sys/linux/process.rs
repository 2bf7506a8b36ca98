//! Processes: fork, pidfds, waiting, signals, the parent-death signal, CPU affinity, threads.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use nix::unistd::ForkResult;

/// A sentinel: a descriptor that becomes readable (or hangs up) when its process ends.
pub type Sentinel<'a> = BorrowedFd<'a>;

/// A descriptor a child can inherit, named by its number.
pub type RawInherit = RawFd;

/// Forks the calling process.
///
/// # Safety
/// In the child only async-signal-safe work may follow until the child exits or execs, unless
/// the parent was single-threaded at the time of the fork (then no lock can be held by a thread
/// that does not exist in the child). The caller checks this before calling.
pub unsafe fn fork() -> Result<ForkResult, Errno> {
    // SAFETY: the contract is forwarded to the caller (see above).
    unsafe { nix::unistd::fork() }
}

/// One bare round trip: `fork`, `_exit(0)` in the child at once, `waitpid` in the parent.
/// What a fork costs on this machine with nothing else around it (the benchmark's reference).
pub fn bare_fork_round_trip() -> Result<(), Errno> {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe, so this is sound even
    // in a multi-threaded process.
    match unsafe { fork() }? {
        ForkResult::Child => exit_now(0),
        ForkResult::Parent { child } => waitpid(child, true).map(drop),
    }
}

/// `pidfd_open(2)`: a file descriptor referring to process `pid` (Linux >= 5.3). The kernel
/// always sets close-on-exec on it (the call accepts no `O_CLOEXEC` flag).
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let res = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    let fd = Errno::result(res)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`: signals the process behind `pidfd` (no PID-reuse race).
/// `None` sends no signal and only checks that the process can be signalled.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Option<Signal>) -> Result<(), Errno> {
    let sig = signal.map_or(0, |s| s as libc::c_int);
    // SAFETY: a null siginfo pointer is allowed (the kernel fills in a SI_USER siginfo); the fd
    // is borrowed, so it stays open for the duration of the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    Errno::result(res).map(drop)
}

/// `waitid(P_PIDFD, fd, WEXITED [| WNOHANG])`: reaps the child behind `pidfd`.
/// Returns `None` when `block` is false and the child is still running.
pub fn waitid_pidfd(pidfd: BorrowedFd<'_>, block: bool) -> Result<Option<WaitStatus>, Errno> {
    let mut flags = WaitPidFlag::WEXITED;
    if !block {
        flags |= WaitPidFlag::WNOHANG;
    }
    loop {
        match nix::sys::wait::waitid(Id::PIDFd(pidfd), flags) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(status) => return Ok(Some(status)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `waitpid(pid, 0 | WNOHANG)`: reaps the child `pid`; `None` when still running.
pub fn waitpid(pid: Pid, block: bool) -> Result<Option<WaitStatus>, Errno> {
    let flags = if block { None } else { Some(WaitPidFlag::WNOHANG) };
    loop {
        match nix::sys::wait::waitpid(pid, flags) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(status) => return Ok(Some(status)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `kill(2)`.
pub fn kill(pid: Pid, signal: Signal) -> Result<(), Errno> {
    nix::sys::signal::kill(pid, signal)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: deliver `sig` to this process when its parent dies.
pub fn set_parent_death_signal(signal: Signal) -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(signal)
}

/// `getppid(2)`.
pub fn getppid() -> Pid {
    nix::unistd::getppid()
}

/// `getpid(2)`.
pub fn getpid() -> Pid {
    nix::unistd::getpid()
}

/// `sched_setaffinity(0, set)`: pin the calling process to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> Result<(), Errno> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

/// `sched_getaffinity(0)`: the CPUs the calling process may run on, ascending.
pub fn get_affinity() -> Result<Vec<usize>, Errno> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect())
}

/// Signals a supervising parent typically catches for its own shutdown or housekeeping.
const PARENT_SIGNALS: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCHLD,
];

/// Resets the parent's handlers for [`PARENT_SIGNALS`] to the default action (keeping ignored
/// ones ignored, as `execve` would) and clears the signal mask. Used in a forked child so that
/// handlers the parent installed for itself do not swallow `terminate()` or Ctrl-C; the
/// runtime's own SIGSEGV/SIGBUS handlers (stack-overflow reports) stay. Async-signal-safe.
pub fn reset_signal_handlers() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in PARENT_SIGNALS {
        // SAFETY: installing SIG_DFL runs no handler code; a previous SIG_IGN is put back
        // right away, so only caught signals change.
        let previous = unsafe { nix::sys::signal::sigaction(signal, &default) };
        if let Ok(prev) = previous
            && matches!(prev.handler(), SigHandler::SigIgn)
        {
            // SAFETY: as above, restoring SIG_IGN.
            let _ = unsafe { nix::sys::signal::sigaction(signal, &prev) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// `sigaction(signal, SIG_IGN)`: the calling process ignores `signal` from now on (and so do
/// the programs it executes, as `execve` keeps ignored signals ignored).
pub fn ignore_signal(signal: Signal) -> Result<(), Errno> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN runs no handler code, so no handler can break any invariant.
    unsafe { nix::sys::signal::sigaction(signal, &ignore) }.map(drop)
}

/// `_exit(2)`: leave the process now, without running destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Number of threads of the calling process. procfs counts them in the link count of
/// `/proc/self/task` (2 + threads), so one `stat` answers without listing the directory; a
/// `/proc` that does not, falls back to the listing.
pub fn thread_count() -> std::io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata("/proc/self/task")?.nlink();
    match usize::try_from(links) {
        Ok(n) if n >= 3 => Ok(n - 2),
        _ => Ok(std::fs::read_dir("/proc/self/task")?.count()),
    }
}

/// Threads the process had when it was loaded, before `main`: 1 natively, more under an
/// emulator such as qemu-user, whose own helper threads show up in `/proc/self/task`.
static BASELINE_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

extern "C" fn record_baseline_threads() {
    if let Ok(n) = thread_count() {
        BASELINE_THREADS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }
}

// SAFETY: an `.init_array` entry is a plain `extern "C" fn()` the loader calls once before
// `main`; this one only reads `/proc` and stores a number.
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_BASELINE_THREADS: extern "C" fn() = record_baseline_threads;

/// The process's threads now, and how many of them were started since it was loaded (0 in a
/// single-threaded program).
pub fn threads() -> std::io::Result<(usize, usize)> {
    let baseline = BASELINE_THREADS.load(std::sync::atomic::Ordering::Relaxed);
    let now = thread_count()?;
    Ok((now, now.saturating_sub(baseline)))
}

/// Blocks `signal` in this process: it stays pending, and a child forked from here gets it
/// (its pending set starts empty) only once the child unblocks it.
pub fn block_signal(signal: Signal) -> Result<(), Errno> {
    let mut set = SigSet::empty();
    set.add(signal);
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), None)
}

/// Blocks every signal in the calling thread; returns the mask to give back to
/// [`restore_signal_mask`]. Held across a `fork`, so that a signal sent to the child before it
/// has reset the parent's handlers stays pending and then acts with its default disposition,
/// instead of running a parent's handler in the child.
pub fn block_all_signals() -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Gives the calling thread back the mask [`block_all_signals`] returned.
pub fn restore_signal_mask(mask: &SigSet) {
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(mask), None);
}
