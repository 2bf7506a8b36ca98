//! Thin wrappers over the Linux syscalls pifork needs, one per syscall, each returning
//! `Result<_, Errno>` with the raw call checked right where it is made. Whatever takes over or
//! closes a descriptor by number is `unsafe` and says what the caller must guarantee.

use std::ffi::{CString, c_char};
use std::io::{IoSlice, IoSliceMut};
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

/// `pipe2(O_CLOEXEC)`: returns (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// `pipe2(O_CLOEXEC)` whose read end is non-blocking (the write end blocks). A fresh read
/// end's status flags are only `O_RDONLY`, so one `F_SETFL` sets them without reading them.
pub fn pipe_nonblocking_read() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::fcntl::{F_SETFL, OFlag, fcntl};
    let (r, w) = pipe()?;
    fcntl(&r, F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((r, w))
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    use nix::fcntl::{F_GETFL, F_SETFL, OFlag, fcntl};
    let mut flags = OFlag::from_bits_truncate(fcntl(fd, F_GETFL)?);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, F_SETFL(flags)).map(drop)
}

/// `read(2)`, retrying on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `read(2)` appended to `buf`, into its spare capacity (`grow` more bytes are reserved when
/// there is none): no scratch buffer to zero or copy from. Retries on EINTR; returns the bytes
/// read, 0 only at end-of-file.
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, grow: usize) -> Result<usize, Errno> {
    if buf.capacity() == buf.len() {
        buf.reserve(grow.max(1));
    }
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: the kernel writes at most `spare.len()` bytes into the vector's allocated,
        // unused tail; the borrowed fd stays open for the call.
        let res = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => {
                let n = n as usize;
                // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
        }
    }
}

/// `write(2)` of the whole buffer, retrying on EINTR and short writes.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `dup2(2)`: makes descriptor number `to` a copy of `from` (closing what `to` was), without
/// close-on-exec.
///
/// # Safety
/// Whatever `to` referred to is closed: no live `OwnedFd` (or other owner) in this process may
/// refer to the number `to`, and the caller takes ownership of the new descriptor.
pub unsafe fn dup2_onto(from: BorrowedFd<'_>, to: RawFd) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers; `from` is open for the call, and the caller vouches
    // that nothing else owns `to`.
    let res = unsafe { libc::dup2(from.as_raw_fd(), to) };
    Errno::result(res).map(drop)
}

/// `fcntl(F_DUPFD_CLOEXEC, min)`: an owned copy of `fd` numbered at least `min`.
pub fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, Errno> {
    let new = nix::fcntl::fcntl(fd, nix::fcntl::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Takes ownership of the descriptor numbered `fd`.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process (for example, handed down by the
/// parent for this process to own), and nothing may close it behind the returned `OwnedFd`.
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: forwarded to the caller (see above).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor handed down by a parent across `exec` (its number travelled in the
/// environment), as a `File`.
///
/// # Safety
/// As for [`own_fd`]: `fd` must be open and owned by nobody else in this process.
pub unsafe fn inherited_file(fd: i64) -> std::fs::File {
    // SAFETY: forwarded to the caller (see above).
    std::fs::File::from(unsafe { own_fd(fd as RawFd) })
}

/// Whether `fd` is an open descriptor in this process (`fcntl(F_GETFD)`); touches nothing.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// `setsockopt(SO_PASSCRED)`: every message received carries the sender's credentials, as
/// the kernel knows them.
pub fn set_passcred(sock: BorrowedFd<'_>) -> Result<(), Errno> {
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
}

/// `sendmsg(2)` of one message with descriptors attached (`SCM_RIGHTS`).
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [IoSlice::new(bytes)];
    let cmsgs = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(fds)] };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// One message received by [`recv_with_fds`].
#[derive(Debug)]
pub struct Received {
    /// Bytes of the message (0 at end-of-file).
    pub len: usize,
    /// Descriptors that came with it, now owned by us.
    pub fds: Vec<OwnedFd>,
    /// The sender's pid, when `SO_PASSCRED` is on.
    pub sender: Option<i32>,
}

/// `recvmsg(2)` of one message, taking ownership of attached descriptors (`MSG_CMSG_CLOEXEC`).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 64], UnixCredentials);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => other?,
        };
        let mut received = Received { len: msg.bytes, fds: Vec::new(), sender: None };
        for cmsg in msg.cmsgs()? {
            match cmsg {
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        // SAFETY: SCM_RIGHTS installed these descriptors in this process just
                        // now; nothing else owns them.
                        received.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
                ControlMessageOwned::ScmCredentials(creds) => received.sender = Some(creds.pid()),
                _ => {}
            }
        }
        return Ok(received);
    }
}

/// `close(2)` of a descriptor by number. Async-signal-safe.
///
/// # Safety
/// No owner (`OwnedFd`, `File`, ...) of `fd` in this process may use or close it afterwards:
/// used in a freshly forked child on copies of the parent's bookkeeping descriptors, whose
/// owners the child never drops (it leaves only through [`exit_now`]).
pub unsafe fn close_raw(fd: RawFd) {
    // SAFETY: forwarded to the caller (see above); closing a number touches no memory.
    unsafe {
        libc::close(fd);
    }
}

/// `poll(2)` once. Returns the number of ready entries (EINTR is returned to the caller, who
/// owns the deadline).
pub fn poll(fds: &mut [nix::poll::PollFd<'_>], timeout_ms: i32) -> Result<usize, Errno> {
    let timeout =
        nix::poll::PollTimeout::try_from(timeout_ms).unwrap_or(nix::poll::PollTimeout::NONE);
    nix::poll::poll(fds, timeout).map(|n| n as usize)
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

/// Marks a frame in which a child reports that it could not get from `fork` to `execve`: the
/// tag, the [`ExecStep`] that failed, then its errno (4 bytes, little-endian).
pub const EXEC_FAILED: u8 = 0xEE;

/// The steps a spawned child takes between `fork` and `execve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExecStep {
    /// `prctl(PR_SET_PDEATHSIG)`, or the parent was gone already.
    ParentDeathSignal = 1,
    /// `sched_setaffinity`.
    Affinity = 2,
    /// Clearing close-on-exec on a kept descriptor.
    KeepDescriptor = 3,
    /// `execve` itself.
    Execve = 4,
}

impl ExecStep {
    /// The system call behind the step, for error messages.
    pub fn call(self) -> &'static str {
        match self {
            ExecStep::ParentDeathSignal => "prctl(PR_SET_PDEATHSIG)",
            ExecStep::Affinity => "sched_setaffinity",
            ExecStep::KeepDescriptor => "fcntl(F_SETFD)",
            ExecStep::Execve => "execve",
        }
    }

    /// Reads an [`EXEC_FAILED`] frame: the step and its errno.
    pub fn from_frame(frame: &[u8]) -> Option<(ExecStep, i32)> {
        let [EXEC_FAILED, step, a, b, c, d, ..] = *frame else { return None };
        let step = [
            ExecStep::ParentDeathSignal,
            ExecStep::Affinity,
            ExecStep::KeepDescriptor,
            ExecStep::Execve,
        ]
        .into_iter()
        .find(|s| *s as u8 == step)?;
        Some((step, i32::from_le_bytes([a, b, c, d])))
    }
}

/// Everything a child needs between `fork` and `execve`, built before the fork: the program,
/// its argument and environment arrays (NULL-terminated pointer arrays into owned strings), the
/// descriptors it keeps, its CPU set and whether it dies with its parent. With all of it ready,
/// the child neither allocates, frees nor takes a lock, so [`fork_exec`] is safe from a
/// multi-threaded parent.
pub struct ExecPlan {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    keep: Vec<RawFd>,
    cpus: Option<nix::sched::CpuSet>,
    parent: Option<Pid>,
}

impl ExecPlan {
    /// A plan to run `path` with `argv` and exactly the environment `envp` (`KEY=value`).
    pub fn new(path: CString, argv: Vec<CString>, envp: Vec<CString>) -> ExecPlan {
        let argv_count = argv.len();
        let strings: Vec<CString> = argv.into_iter().chain(envp).collect();
        // The pointers stay valid: the strings' heap buffers do not move with the vector.
        let mut pointers = strings.iter().map(|s| s.as_ptr());
        let mut argv: Vec<*const c_char> = pointers.by_ref().take(argv_count).collect();
        let mut envp: Vec<*const c_char> = pointers.collect();
        argv.push(std::ptr::null());
        envp.push(std::ptr::null());
        ExecPlan { path, _strings: strings, argv, envp, keep: Vec::new(), cpus: None, parent: None }
    }

    /// The child keeps `fd`, under the same number, across `execve`.
    pub fn keep(&mut self, fd: RawFd) {
        self.keep.push(fd);
    }

    /// Pins the child to `cpus` before `execve`.
    pub fn pin(&mut self, cpus: &[usize]) -> Result<(), Errno> {
        let mut set = nix::sched::CpuSet::new();
        for &cpu in cpus {
            set.set(cpu)?;
        }
        self.cpus = Some(set);
        Ok(())
    }

    /// The child gets SIGKILL when this process dies (`PR_SET_PDEATHSIG`).
    pub fn die_with_parent(&mut self) {
        self.parent = Some(getpid());
    }
}

/// Forks and, in the child, runs `plan` up to `execve`; returns the child's pid. Only
/// async-signal-safe system calls run in the child: it resets caught signals and the signal
/// mask, applies the plan and execs. If a step fails it writes an [`EXEC_FAILED`] frame to
/// `report` (one of the kept descriptors) and exits with status 1.
pub fn fork_exec(plan: &ExecPlan, report: BorrowedFd<'_>) -> Result<Pid, Errno> {
    let report = report.as_raw_fd();
    // SAFETY: the child below makes only async-signal-safe system calls on data prepared before
    // the fork (no allocation, no lock), then execs or `_exit`s: sound in a threaded parent.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let failed = exec_in_child(plan);
            let (step, errno) = failed;
            let e = (errno as i32).to_le_bytes();
            let frame = [EXEC_FAILED, step as u8, e[0], e[1], e[2], e[3]];
            // SAFETY: `report` is the plan's kept descriptor, open in this child; `frame` is a
            // stack array.
            unsafe { libc::write(report, frame.as_ptr().cast(), frame.len()) };
            exit_now(1)
        }
    }
}

/// The child's side of [`fork_exec`]; returns only on failure.
fn exec_in_child(plan: &ExecPlan) -> (ExecStep, Errno) {
    reset_signal_handlers();
    if let Some(parent) = plan.parent {
        // Checked again afterwards: the parent may have died before the request took effect.
        if let Err(errno) = set_parent_death_signal(Signal::SIGKILL) {
            return (ExecStep::ParentDeathSignal, errno);
        }
        if getppid() != parent {
            return (ExecStep::ParentDeathSignal, Errno::ESRCH);
        }
    }
    if let Some(set) = &plan.cpus
        && let Err(errno) = nix::sched::sched_setaffinity(Pid::from_raw(0), set)
    {
        return (ExecStep::Affinity, errno);
    }
    for &fd in &plan.keep {
        // SAFETY: F_SETFD on a number only changes that descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return (ExecStep::KeepDescriptor, Errno::last());
        }
    }
    // SAFETY: the path and both arrays are NULL-terminated and point into strings the plan
    // owns, which outlive this call (it returns only on failure).
    unsafe { libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
    (ExecStep::Execve, Errno::last())
}
