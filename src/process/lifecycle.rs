//! `Process`: a target run in a child process, with CPython's `multiprocessing.Process`
//! semantics, and `Supervisor`, a scope that owns several of them.

mod entry;
#[cfg(unix)]
mod fds;
#[cfg(unix)]
pub mod forkserver;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

// The platform backend: every OS module offers the same `Child`, `Spawn`, `Backend`,
// `Sentinel`, `RawInherit` and `wait_any`.
#[cfg(unix)]
use unix as imp;
#[cfg(windows)]
use windows as imp;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

pub use entry::{NOOP_ENTRY, main_guard, register};
#[cfg(unix)]
pub(crate) use fds::{Tracked, track_forever};
pub(crate) use imp::wait_any;
pub use imp::{Backend, RawInherit, Sentinel, backend};
use imp::{Child, Spawn};
#[cfg(unix)]
pub use unix::probe_pidfd;

use crate::error::{Error, Result};
use crate::message::{self, Message};
use crate::wait::{deadline_after, wait};

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(pub(crate) i32);

impl Pid {
    /// The raw number.
    pub fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a process ended: CPython's `exitcode`, an exit status or a negated signal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The process exited with this status.
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
}

impl ExitCode {
    /// CPython's integer form: the status, or minus the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Exited(code) => code,
            ExitCode::Signaled(signal) => -signal,
        }
    }

    /// True for a clean exit with status 0.
    pub fn success(self) -> bool {
        self == ExitCode::Exited(0)
    }
}

impl fmt::Display for ExitCode {
    /// Python-style: `0`, `1`, `-SIGTERM` (or `-15` for a signal without a name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitCode::Exited(code) => write!(f, "{code}"),
            ExitCode::Signaled(signal) => match signal_name(signal) {
                Some(name) => write!(f, "-{name}"),
                None => write!(f, "-{signal}"),
            },
        }
    }
}

/// The name of a (Linux-numbered) signal: `SIGTERM` for 15.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal).ok().and_then(|s| s.checked_sub(1)).and_then(|i| NAMES.get(i)).copied()
}

/// The number of CPUs this process may run on (its affinity set), not the machine's total.
pub fn cpu_count() -> usize {
    available_cpus().len().max(1)
}

/// The CPUs this process may run on, ascending.
pub fn available_cpus() -> Vec<usize> {
    crate::sys::get_affinity().unwrap_or_else(|_| vec![0])
}

/// Tags of the frame a child sends back.
const TAG_VALUE: u8 = 0;
const TAG_PANIC: u8 = 1;

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
pub(crate) fn run_entry(entry: &entry::EntryFn, args: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&entry(args).unwrap_or_else(|e| panic!("{e}")));
}

/// What a child forked for a [`Process`] runs.
enum ForkBody<T> {
    Closure(Box<dyn FnOnce() -> T>),
    Entry(entry::EntryFn, Vec<u8>),
}

impl<T: Message> ForkBody<T> {
    fn run(self, out: &mut Vec<u8>) {
        match self {
            ForkBody::Closure(f) => f().encode(out),
            ForkBody::Entry(entry, args) => run_entry(&entry, &args, out),
        }
    }
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

/// How a child process is started, as in CPython's `multiprocessing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// A raw `fork`: the child is a copy of the parent and may run any closure.
    Fork,
    /// A fresh run of the current executable that runs a registered entry point.
    Spawn,
    /// A server forked early, while the program was still single-threaded, forks the children.
    Forkserver,
}

impl StartMethod {
    /// The method's name: `fork`, `spawn`, `forkserver`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    /// Every method, in CPython's order.
    pub const ALL: [StartMethod; 3] =
        [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver];
}

impl FromStr for StartMethod {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown start method '{s}' (use fork, spawn or forkserver)"))
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

static START_METHOD: AtomicU8 = AtomicU8::new(imp::DEFAULT_METHOD as u8);

/// Sets the start method used by processes that do not choose one (default: fork on Linux,
/// spawn on Windows).
pub fn set_start_method(method: StartMethod) {
    START_METHOD.store(method as u8, Ordering::Relaxed);
}

/// The start method used by processes that do not choose one.
pub fn get_start_method() -> StartMethod {
    StartMethod::ALL[START_METHOD.load(Ordering::Relaxed) as usize]
}

/// Builds processes bound to one start method, like CPython's `get_context(method)`.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    method: StartMethod,
}

/// A context whose processes use `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// [`Process::new`] with this context's start method (fork only: closures cannot travel).
    pub fn process<T: Message + 'static>(
        &self,
        target: impl FnOnce() -> T + 'static,
    ) -> Process<T> {
        Process::new(target).start_method(self.method)
    }

    /// [`Process::entry`] with this context's start method.
    pub fn entry<T: Message + 'static, A: Message>(&self, name: &str, args: &A) -> Process<T> {
        Process::entry(name, args).start_method(self.method)
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// What a process runs: a closure (fork only) or a registered entry point (any method).
enum Target<T> {
    Closure(Box<dyn FnOnce() -> T>),
    Entry { name: String, args: Vec<u8> },
}

enum State {
    Initial,
    Started(Child),
    Closed,
}

/// A target function run in a child process, like CPython's `multiprocessing.Process`.
///
/// The child's return value (any [`Message`]) travels back to the parent and is read with
/// [`Process::result`]. Dropping a started process ends its owner's scope the CPython way:
/// a daemonic child is terminated, a non-daemonic one is joined; either way it is reaped.
pub struct Process<T: Message = ()> {
    name: String,
    daemon: bool,
    cpus: Option<Vec<usize>>,
    allow_threads: bool,
    inherit: Vec<RawInherit>,
    method: Option<StartMethod>,
    target: Option<Target<T>>,
    state: State,
}

impl<T: Message> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Initial => "initial".to_string(),
            State::Started(c) => match c.status() {
                None => format!("started pid={}", c.pid()),
                Some(code) => format!("stopped pid={} exitcode={code}", c.pid()),
            },
            State::Closed => "closed".to_string(),
        };
        write!(
            f,
            "<Process name={:?} {state}{}>",
            self.name,
            if self.daemon { " daemon" } else { "" }
        )
    }
}

impl<T: Message + 'static> Process<T> {
    /// A process that will run `target` (a closure or fn; capture its arguments).
    pub fn new(target: impl FnOnce() -> T + 'static) -> Self {
        Self::from_target(Target::Closure(Box::new(target)))
    }

    /// A process that will run the entry point registered under `name` (see [`register`])
    /// with `args`; works with every start method.
    pub fn entry<A: Message>(name: &str, args: &A) -> Self {
        Self::from_target(Target::Entry { name: name.to_string(), args: message::to_bytes(args) })
    }

    fn from_target(target: Target<T>) -> Self {
        Process {
            name: format!("Process-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            daemon: false,
            cpus: None,
            allow_threads: false,
            inherit: Vec::new(),
            method: None,
            target: Some(target),
            state: State::Initial,
        }
    }

    /// A process that will run `target(args)`.
    pub fn with_args<A: 'static>(target: impl FnOnce(A) -> T + 'static, args: A) -> Self {
        Self::new(move || target(args))
    }
}

impl<T: Message> Process<T> {
    /// Sets the name (default `Process-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Marks the process daemonic: terminated when its owner's scope ends, killed with its
    /// parent (`PR_SET_PDEATHSIG`; on Windows a kill-on-close job), and not allowed to start
    /// children.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Pins the child to these CPUs (`sched_setaffinity` before the target runs; on Windows
    /// the process affinity mask, set before the child's first instruction).
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Chooses the start method (default: [`get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The start method this process uses.
    pub fn get_start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(get_start_method)
    }

    /// Allows a raw fork from a multi-threaded parent. Only sound if the target takes no lock
    /// that another parent thread could have held at the fork.
    pub fn allow_threads(mut self, allow: bool) -> Self {
        self.allow_threads = allow;
        self
    }

    /// Keeps these descriptors open in the child, under the same numbers, whatever the start
    /// method (pifork's own channel ends are otherwise closed there; with fork, other
    /// descriptors are inherited as usual). On Windows: handles, made inheritable and listed to
    /// the child, which finds them under the same values.
    pub fn inherit_fds(mut self, fds: impl IntoIterator<Item = RawInherit>) -> Self {
        self.inherit.extend(fds);
        self
    }

    /// The process's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Whether the process is daemonic.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The CPUs the child will be (or was) pinned to.
    pub fn pinned_cpus(&self) -> Option<&[usize]> {
        self.cpus.as_deref()
    }

    fn child(&self) -> Result<&Child> {
        match &self.state {
            State::Initial => Err(Error::NotStarted),
            State::Started(c) => Ok(c),
            State::Closed => Err(Error::Closed),
        }
    }

    fn child_mut(&mut self) -> Result<&mut Child> {
        match &mut self.state {
            State::Initial => Err(Error::NotStarted),
            State::Started(c) => Ok(c),
            State::Closed => Err(Error::Closed),
        }
    }

    /// Starts the child. Errors if already started or closed, in a daemonic process, or
    /// (without [`Process::allow_threads`]) in a multi-threaded one.
    pub fn start(&mut self) -> Result<()> {
        match self.state {
            State::Initial => {}
            State::Started(_) => return Err(Error::AlreadyStarted),
            State::Closed => return Err(Error::Closed),
        }
        if IN_DAEMON.load(Ordering::Relaxed) {
            return Err(Error::DaemonChildren);
        }
        if entry::guard_missing() {
            return Err(Error::NoMainGuard);
        }
        if let Some(cpus) = &self.cpus {
            let allowed = available_cpus();
            if let Some(&cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(Error::CpuUnavailable { cpu });
            }
        }
        let method = self.get_start_method();
        let spec = Spawn {
            name: &self.name,
            daemon: self.daemon,
            cpus: self.cpus.as_deref(),
            allow_threads: self.allow_threads,
            inherit: &self.inherit,
        };
        let child = match (method, &self.target) {
            (StartMethod::Fork, _) => {
                // Taken only once nothing can fail any more before the fork.
                let target = &mut self.target;
                Child::start_fork(&spec, move || {
                    // The body is consumed in the child; in the parent it is dropped after the
                    // fork, closing the parent's copies of whatever the closure captured (such
                    // as the child's channel ends).
                    let body = match target.take() {
                        Some(Target::Closure(f)) => ForkBody::Closure(f),
                        Some(Target::Entry { name, args }) => {
                            ForkBody::Entry(entry::lookup(&name)?, args)
                        }
                        None => return Err(Error::AlreadyStarted),
                    };
                    Ok(move |out: &mut Vec<u8>| body.run(out))
                })?
            }
            (_, Some(Target::Closure(_))) => {
                return Err(Error::NeedsEntry { method: method.as_str() });
            }
            (StartMethod::Spawn, Some(Target::Entry { name, args })) => {
                entry::check_name(name)?;
                Child::spawn(&spec, name, args)?
            }
            (StartMethod::Forkserver, Some(Target::Entry { name, args })) => {
                entry::check_name(name)?;
                Child::start_forkserver(&spec, name, args)?
            }
            (_, None) => return Err(Error::AlreadyStarted),
        };
        if let Some(cpus) = &self.cpus {
            log::debug!("{} pid {} pinned to cpus {cpus:?}", self.name, child.pid());
        }
        self.target = None;
        self.state = State::Started(child);
        Ok(())
    }

    /// Waits for the child to end (and reaps it).
    pub fn join(&mut self) -> Result<()> {
        self.child_mut()?.wait_until(None).map(drop)
    }

    /// Waits at most `timeout`; true if the child has ended.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = deadline_after(Some(timeout));
        Ok(self.child_mut()?.wait_until(deadline)?.is_some())
    }

    /// Whether the child has been started and has not ended yet.
    pub fn is_alive(&mut self) -> Result<bool> {
        match &mut self.state {
            State::Initial => Ok(false),
            State::Started(c) => Ok(c.try_wait()?.is_none()),
            State::Closed => Err(Error::Closed),
        }
    }

    /// `None` while running (or not started), then how the child ended.
    pub fn exitcode(&mut self) -> Result<Option<ExitCode>> {
        match &mut self.state {
            State::Initial => Ok(None),
            State::Started(c) => c.try_wait(),
            State::Closed => Err(Error::Closed),
        }
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Result<Option<Pid>> {
        match &self.state {
            State::Initial => Ok(None),
            State::Started(c) => Ok(Some(c.pid())),
            State::Closed => Err(Error::Closed),
        }
    }

    /// A descriptor (on Windows the process handle) that becomes ready when the child ends,
    /// for [`wait`].
    pub fn sentinel(&self) -> Result<Sentinel<'_>> {
        Ok(self.child()?.sentinel())
    }

    /// Sends SIGTERM (no-op once the child has been reaped). On Windows: `TerminateProcess`,
    /// read back as `-SIGTERM` as in CPython.
    pub fn terminate(&mut self) -> Result<()> {
        self.child()?.terminate()
    }

    /// Sends SIGKILL (no-op once the child has been reaped). On Windows: `TerminateProcess`,
    /// read back as `-SIGKILL`.
    pub fn kill(&mut self) -> Result<()> {
        self.child()?.kill()
    }

    /// Releases the process's resources. Errors while the child runs; afterwards every call
    /// on this object errors with [`Error::Closed`].
    pub fn close(&mut self) -> Result<()> {
        if let State::Started(c) = &mut self.state
            && c.try_wait()?.is_none()
        {
            return Err(Error::StillRunning);
        }
        self.target = None;
        self.state = State::Closed;
        Ok(())
    }

    /// Joins the child and returns its value; a panic or a death without a result is an
    /// error naming the process, its pid and how it ended.
    pub fn result(&mut self) -> Result<T> {
        let name = self.name.clone();
        let child = self.child_mut()?;
        let code = match child.wait_until(None)? {
            Some(code) => code,
            None => unreachable!("waiting without a deadline returns only when the child ended"),
        };
        let pid = child.pid().0;
        match child.output().split_first() {
            Some((&TAG_VALUE, rest)) if code.success() => message::from_bytes(rest),
            Some((&TAG_PANIC, mut rest)) => {
                let message = String::decode(&mut rest)?;
                Err(Error::ChildPanicked { name, pid, message })
            }
            _ => Err(Error::ChildFailed { name, pid, exitcode: code }),
        }
    }

    /// End of the owner's scope: terminate a daemonic child (then kill it if it lingers),
    /// join a non-daemonic one.
    fn finish(&mut self) {
        let daemon = self.daemon;
        let Ok(child) = self.child_mut() else { return };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        if daemon {
            let _ = child.terminate();
            if !matches!(
                child.wait_until(deadline_after(Some(Duration::from_secs(1)))),
                Ok(Some(_))
            ) {
                let _ = child.kill();
            }
        }
        let _ = child.wait_until(None);
    }
}

impl<T: Message> Drop for Process<T> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Waits until the first of `procs` has ended or `timeout` passes; returns its index
/// (the lowest if several ended), or `None` on timeout. Unstarted processes are an error.
pub fn wait_first<T: Message>(
    procs: &[Process<T>],
    timeout: Option<Duration>,
) -> Result<Option<usize>> {
    let sentinels = procs.iter().map(Process::sentinel).collect::<Result<Vec<_>>>()?;
    Ok(wait(&sentinels, timeout)?.first().copied())
}

/// Joins all of `procs` within one overall `timeout`; true if all have ended.
pub fn wait_all<T: Message>(procs: &mut [Process<T>], timeout: Option<Duration>) -> Result<bool> {
    let deadline = deadline_after(timeout);
    for p in procs.iter_mut() {
        if p.child_mut()?.wait_until(deadline)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A scope owning several processes; when it ends (drop or [`Supervisor::shutdown`]),
/// daemonic children are terminated and non-daemonic ones joined, as CPython does at exit.
#[derive(Debug)]
pub struct Supervisor<T: Message = ()> {
    procs: Vec<Process<T>>,
    reported: Vec<bool>,
}

impl<T: Message> Default for Supervisor<T> {
    fn default() -> Self {
        Supervisor { procs: Vec::new(), reported: Vec::new() }
    }
}

impl<T: Message> Supervisor<T> {
    /// An empty supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `process` and takes ownership of it; returns its index.
    pub fn start(&mut self, mut process: Process<T>) -> Result<usize> {
        process.start()?;
        self.procs.push(process);
        self.reported.push(false);
        Ok(self.procs.len() - 1)
    }

    /// The processes, in start order.
    pub fn processes(&self) -> &[Process<T>] {
        &self.procs
    }

    /// The processes, mutably.
    pub fn processes_mut(&mut self) -> &mut [Process<T>] {
        &mut self.procs
    }

    /// Waits for the next process to end and returns its index: each process is reported once,
    /// in the order they end (whether or not it ended before this call). `None` on timeout or
    /// once every process has been reported.
    pub fn wait_first(&mut self, timeout: Option<Duration>) -> Result<Option<usize>> {
        let pending: Vec<usize> = (0..self.procs.len()).filter(|&i| !self.reported[i]).collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let sentinels =
            pending.iter().map(|&i| self.procs[i].sentinel()).collect::<Result<Vec<_>>>()?;
        let Some(&k) = wait(&sentinels, timeout)?.first() else {
            return Ok(None);
        };
        self.reported[pending[k]] = true;
        Ok(Some(pending[k]))
    }

    /// Sends SIGTERM to every running process.
    pub fn terminate_all(&mut self) -> Result<()> {
        self.procs.iter_mut().try_for_each(|p| p.terminate())
    }

    /// Ends the scope now: terminates daemonic children, joins the others, reaps all.
    pub fn shutdown(&mut self) {
        for p in &mut self.procs {
            if p.daemon {
                let _ = p.terminate();
            }
        }
        for p in &mut self.procs {
            p.finish();
        }
    }
}

impl<T: Message> Drop for Supervisor<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
