//! Processes: fork, pidfds, waiting, signals, the parent-death signal, CPU affinity, threads.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
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

/// `pidfd_open(2)`: a file descriptor referring to process `pid` (Linux >= 5.3). The kernel
/// always sets close-on-exec on it (the call accepts no `O_CLOEXEC` flag).
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let res = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    let fd = Errno::result(res)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`: sends signal number `signal` (any, realtime ones included) to the
/// process behind `pidfd` (no PID-reuse race). 0 sends nothing and only checks that the
/// process can be signalled.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> Result<(), Errno> {
    // SAFETY: a null siginfo pointer is allowed (the kernel fills in a SI_USER siginfo); the fd
    // is borrowed, so it stays open for the duration of the call.
    let res = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    Errno::result(res).map(drop)
}

/// How a reaped child ended: its exit status, or the number of the signal that killed it
/// (realtime signals included, which `nix`'s `Signal` cannot name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// `_exit(status)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// `waitid(P_PIDFD, fd, WEXITED [| WNOHANG])`: reaps the child behind `pidfd`.
/// Returns `None` when `block` is false and the child is still running.
pub fn waitid_pidfd(pidfd: BorrowedFd<'_>, block: bool) -> Result<Option<Reaped>, Errno> {
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value (plain integers and unions of them).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call; the fd
        // is borrowed, so it stays open.
        let res = unsafe {
            libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags)
        };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // SAFETY: after a successful waitid with WEXITED the kernel filled in the SIGCHLD
        // fields (si_pid, si_status); with WNOHANG and no child ended it left si_pid at 0.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(if info.si_code == libc::CLD_EXITED {
            Reaped::Exited(status)
        } else {
            Reaped::Signaled(status)
        }));
    }
}

/// `waitpid(pid, 0 | WNOHANG)`: reaps the child `pid`; `None` when still running.
pub fn waitpid(pid: Pid, block: bool) -> Result<Option<Reaped>, Errno> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable int for the duration of the call.
        let res = unsafe { libc::waitpid(pid.as_raw(), &mut status, flags) };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(0) => return Ok(None),
            Ok(_) if libc::WIFEXITED(status) => {
                return Ok(Some(Reaped::Exited(libc::WEXITSTATUS(status))));
            }
            Ok(_) if libc::WIFSIGNALED(status) => {
                return Ok(Some(Reaped::Signaled(libc::WTERMSIG(status))));
            }
            // Stopped or continued: reported only when asked for (WUNTRACED, WCONTINUED).
            Ok(_) => continue,
        }
    }
}

/// `kill(2)` with signal number `signal` (realtime ones included).
pub fn kill(pid: Pid, signal: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain syscall with integer arguments.
    Errno::result(unsafe { libc::kill(pid.as_raw(), signal) }).map(drop)
}

/// Whether `signal` is a signal number this system knows (1 to SIGRTMAX).
pub fn is_signal_number(signal: libc::c_int) -> bool {
    (1..=libc::SIGRTMAX()).contains(&signal)
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
    set_affinity_of(0, cpus)
}

/// `sched_setaffinity(pid, set)`: pin process `pid` (0: the caller) to `cpus`.
pub fn set_affinity_of(pid: i32, cpus: &[usize]) -> Result<(), Errno> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    nix::sched::sched_setaffinity(Pid::from_raw(pid), &set)
}

/// `sched_getaffinity(0)`: the CPUs the calling process may run on, ascending.
pub fn get_affinity() -> Result<Vec<usize>, Errno> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect())
}

/// Resets every caught signal — realtime ones included — to its default action (keeping
/// ignored ones ignored, as `execve` would) and clears the signal mask. Used in a forked child,
/// whose signals are blocked from before the fork until here, so that no handler the parent
/// installed for itself ever runs in the child: a signal sent at any moment after the fork
/// acts with its default disposition once unblocked. SIGSEGV and SIGBUS keep the runtime's
/// handlers (stack-overflow reports); SIGKILL and SIGSTOP cannot be caught. Async-signal-safe.
pub fn reset_signal_handlers() {
    for signal in 1..=libc::SIGRTMAX() {
        if matches!(signal, libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGBUS) {
            continue;
        }
        // SAFETY: an all-zero sigaction is a valid value; setting its handler to SIG_DFL with
        // an empty mask and no flags describes the default action.
        let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        // SAFETY: as above, for the previous action's out-parameter.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; installing SIG_DFL runs no handler
        // code. Numbers the C library reserves for itself fail with EINVAL and stay as they are.
        if unsafe { libc::sigaction(signal, &default, &mut previous) } == 0
            && previous.sa_sigaction == libc::SIG_IGN
        {
            // SAFETY: as above, putting SIG_IGN back right away: only caught signals change.
            let _ = unsafe { libc::sigaction(signal, &previous, std::ptr::null_mut()) };
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
