//! `Process`: a target run in a child process, with CPython's `multiprocessing.Process`
//! semantics: start, join (with a timeout), is_alive, exitcode, pid, sentinel, terminate, kill,
//! close, and the target's result sent back to the parent.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::entry::{self, guard_missing};
use super::imp::{self, Child};
use super::method::{available_cpus, get_start_method};
use super::spec::ChildSpec;
use super::target::{TAG_PANIC, TAG_VALUE, in_daemon, run_entry};
use crate::error::{Error, Result};
use crate::message::{self, Message};
use crate::status::{ExitCode, Pid, StartMethod};
use crate::sys::{RawInherit, Sentinel};
use crate::wait::deadline_after;

/// What a child forked for a [`Process`] runs.
enum ForkBody<'a, T> {
    Closure(Box<dyn FnOnce() -> T>),
    /// An entry, its arguments, and the descriptors it may take with `take_inherited`.
    Entry(entry::EntryFn, Vec<u8>, &'a [RawInherit]),
}

impl<T: Message> ForkBody<'_, T> {
    fn run(self, out: &mut Vec<u8>) {
        match self {
            ForkBody::Closure(f) => f().encode(out),
            ForkBody::Entry(entry, args, inherit) => {
                imp::set_inherited(inherit);
                run_entry(&entry, &args, out)
            }
        }
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// What a process runs: a closure (fork only) or a registered entry point (any method).
enum Target<T> {
    Closure(Box<dyn FnOnce() -> T>),
    Entry { name: String, args: Vec<u8> },
}

/// Where a process is in its life.
enum Lifecycle {
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
    state: Lifecycle,
}

impl<T: Message> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            Lifecycle::Initial => "initial".to_string(),
            Lifecycle::Started(c) => match c.status() {
                None => format!("started pid={}", c.pid()),
                Some(code) => format!("stopped pid={} exitcode={code}", c.pid()),
            },
            Lifecycle::Closed => "closed".to_string(),
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

    /// A process that will run the entry point registered under `name` (see [`crate::register`])
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
            state: Lifecycle::Initial,
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
            Lifecycle::Initial => Err(Error::NotStarted),
            Lifecycle::Started(c) => Ok(c),
            Lifecycle::Closed => Err(Error::Closed),
        }
    }

    fn child_mut(&mut self) -> Result<&mut Child> {
        match &mut self.state {
            Lifecycle::Initial => Err(Error::NotStarted),
            Lifecycle::Started(c) => Ok(c),
            Lifecycle::Closed => Err(Error::Closed),
        }
    }

    /// Starts the child. Errors if already started or closed, in a daemonic process, or
    /// (without [`Process::allow_threads`]) in a multi-threaded one.
    pub fn start(&mut self) -> Result<()> {
        match self.state {
            Lifecycle::Initial => {}
            Lifecycle::Started(_) => return Err(Error::AlreadyStarted),
            Lifecycle::Closed => return Err(Error::Closed),
        }
        if in_daemon() {
            return Err(Error::DaemonChildren);
        }
        if guard_missing() {
            return Err(Error::NoMainGuard);
        }
        if let Some(cpus) = &self.cpus {
            let allowed = available_cpus();
            if let Some(&cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(Error::CpuUnavailable { cpu });
            }
        }
        let method = self.get_start_method();
        let spec = ChildSpec {
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
                let inherit = &self.inherit;
                imp::start_fork(&spec, move || {
                    // The body is consumed in the child; in the parent it is dropped after the
                    // fork, closing the parent's copies of whatever the closure captured (such
                    // as the child's channel ends).
                    let body = match target.take() {
                        Some(Target::Closure(f)) => ForkBody::Closure(f),
                        Some(Target::Entry { name, args }) => {
                            ForkBody::Entry(entry::lookup(&name)?, args, inherit)
                        }
                        None => return Err(Error::AlreadyStarted),
                    };
                    Ok(move |out: &mut Vec<u8>| body.run(out))
                })?
            }
            (_, Some(Target::Closure(_))) => {
                return Err(Error::NeedsEntry { method });
            }
            (StartMethod::Spawn, Some(Target::Entry { name, args })) => {
                entry::check_name(name)?;
                imp::spawn(&spec, name, args)?
            }
            (StartMethod::Forkserver, Some(Target::Entry { name, args })) => {
                entry::check_name(name)?;
                imp::start_forkserver(&spec, name, args)?
            }
            (_, None) => return Err(Error::AlreadyStarted),
        };
        if let Some(cpus) = &self.cpus {
            log::debug!("{} pid {} pinned to cpus {cpus:?}", self.name, child.pid());
        }
        let mut child = child;
        child.register(&self.name);
        self.target = None;
        self.state = Lifecycle::Started(child);
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
            Lifecycle::Initial => Ok(false),
            Lifecycle::Started(c) => Ok(c.try_wait()?.is_none()),
            Lifecycle::Closed => Err(Error::Closed),
        }
    }

    /// `None` while running (or not started), then how the child ended.
    pub fn exitcode(&mut self) -> Result<Option<ExitCode>> {
        match &mut self.state {
            Lifecycle::Initial => Ok(None),
            Lifecycle::Started(c) => c.try_wait(),
            Lifecycle::Closed => Err(Error::Closed),
        }
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Result<Option<Pid>> {
        match &self.state {
            Lifecycle::Initial => Ok(None),
            Lifecycle::Started(c) => Ok(Some(c.pid())),
            Lifecycle::Closed => Err(Error::Closed),
        }
    }

    /// A descriptor (on Windows the process handle) that becomes ready when the child ends,
    /// for [`crate::wait()`].
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

    /// Sends signal number `signal` (no-op once the child has been reaped): through the pidfd
    /// where there is one, so a recycled pid is never hit. On Windows only SIGTERM (15) and
    /// SIGKILL (9) exist, as `terminate()` and `kill()`.
    pub fn send_signal(&mut self, signal: i32) -> Result<()> {
        self.child()?.send_signal(signal)
    }

    /// Sends SIGINT, like CPython's `interrupt()`.
    pub fn interrupt(&mut self) -> Result<()> {
        self.send_signal(2)
    }

    /// Releases the process's resources. Errors while the child runs; afterwards every call
    /// on this object errors with [`Error::Closed`].
    pub fn close(&mut self) -> Result<()> {
        if let Lifecycle::Started(c) = &mut self.state
            && c.try_wait()?.is_none()
        {
            return Err(Error::StillRunning);
        }
        self.target = None;
        self.state = Lifecycle::Closed;
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
        let pid = child.pid();
        match child.output().split_first() {
            Some((&TAG_VALUE, rest)) if code.success() => message::from_bytes(rest),
            Some((&TAG_PANIC, mut rest)) => {
                let message = String::decode(&mut rest)?;
                Err(Error::ChildPanicked { name, pid, message })
            }
            _ => Err(Error::ChildFailed { name, pid, exitcode: code }),
        }
    }

    /// Waits until the child ends or `deadline` passes; true if it has ended.
    pub(crate) fn join_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        Ok(self.child_mut()?.wait_until(deadline)?.is_some())
    }

    /// End of the owner's scope: terminate a daemonic child (then kill it if it lingers),
    /// join a non-daemonic one.
    pub(crate) fn finish(&mut self) {
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
