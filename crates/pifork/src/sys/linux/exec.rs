//! `fork` + `execve` with everything prepared before the fork: the spawn start method's way
//! into a fresh program, safe from a multi-threaded parent.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::fd::close_all_except;
use super::process::{
    ForkResult, block_all_signals, exit_now, fork, getpid, getppid, reset_signal_handlers,
    restore_signal_mask, set_parent_death_signal,
};

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
    /// Sorted before the fork.
    keep: Vec<RawFd>,
    /// Where a descriptor-by-descriptor sweep stops, should `close_range` be missing.
    limit: RawFd,
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
        ExecPlan {
            path,
            _strings: strings,
            argv,
            envp,
            keep: Vec::new(),
            limit: super::fd::descriptor_limit(),
            cpus: None,
            parent: None,
        }
    }

    /// The child keeps `fd`, under the same number, across `execve`; every other descriptor
    /// but stdin, stdout and stderr is closed there.
    pub fn keep(&mut self, fd: RawFd) {
        if let Err(i) = self.keep.binary_search(&fd) {
            self.keep.insert(i, fd);
        }
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
    let mask = block_all_signals()?;
    // SAFETY: the child below makes only async-signal-safe system calls on data prepared before
    // the fork (no allocation, no lock), then execs or `_exit`s: sound in a threaded parent.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        restore_signal_mask(&mask);
    }
    match forked? {
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
    // Nothing but stdio and the kept descriptors crosses `execve`, even descriptors the parent
    // opened without close-on-exec.
    // SAFETY: the marked descriptors stay open until `execve`, which closes them; nothing in
    // this child uses them before.
    unsafe { close_all_except(&plan.keep, plan.limit, true) };
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
