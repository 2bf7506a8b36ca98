//! A started child as its parent sees it: its pid, how it is reaped (pidfd, pipe sentinel, or
//! the fork server's status pipe), its result pipe, and the verbs join, poll and signal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::backend::{Backend, backend};
use super::children;
use super::pidfd::PidFd;
use crate::error::{Error, Result};
use crate::fdtable::Tracked;
use crate::status::{ExitCode, Pid};
use crate::sys;
use crate::wait::remaining_ms;

/// How the parent learns that a child ended, and reaps it.
#[derive(Debug)]
pub(super) enum Reaper {
    /// Our child, watched through its pidfd.
    Pidfd(PidFd),
    /// Our child, watched through a pipe only it holds; reaped with `waitpid`.
    Pipe(Tracked),
    /// The fork server's child: the server reaps it, writes its status into `status` and closes
    /// the pipe; `code` holds the status once read.
    Server { status: Tracked, pidfd: Option<PidFd>, code: Option<i32> },
}

/// How a child about to be started will be watched: with the pipe backend, a pipe whose write
/// end only the child keeps; with pidfd, nothing until the child exists.
pub(super) struct SentinelPipe(Option<(Tracked, Tracked)>);

impl SentinelPipe {
    /// The pipe, if the backend in use needs one.
    pub(super) fn new() -> Result<SentinelPipe> {
        Ok(SentinelPipe(match backend() {
            Backend::Pipe => {
                let (r, w) = sys::pipe().map_err(Error::sys("pipe"))?;
                Some((Tracked::new(r), Tracked::new(w)))
            }
            Backend::Pidfd => None,
        }))
    }

    /// The end the child keeps open until it exits, if there is a pipe.
    pub(super) fn child_end(&self) -> Option<RawFd> {
        self.0.as_ref().map(|(_, w)| w.as_raw_fd())
    }

    /// Once the child `pid` exists: the parent's way to watch and reap it. Should its pidfd
    /// not open, the child is killed and reaped (it would have no handle) and that is the error.
    pub(super) fn into_reaper(self, pid: Pid) -> Result<Reaper> {
        match self.0 {
            Some((r, w)) => {
                drop(w);
                Ok(Reaper::Pipe(r))
            }
            None => PidFd::open(pid).map(Reaper::Pidfd).map_err(|errno| {
                let raw = nix::unistd::Pid::from_raw(pid.as_raw());
                let _ = sys::kill(raw, libc::SIGKILL);
                let _ = sys::waitpid(raw, true);
                Error::sys("pidfd_open")(errno)
            }),
        }
    }
}

/// A started child as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pub(super) pid: Pid,
    pub(super) reaper: Reaper,
    /// The read end of the child's result pipe (none in the fork server, which only reaps).
    pub(super) result: Option<Tracked>,
    pub(super) output: Vec<u8>,
    pub(super) output_done: bool,
    pub(super) status: Option<ExitCode>,
    /// When the parent started it (see [`EAGER`]).
    pub(super) started: Instant,
    /// Its number in the list of `active_children()` (0: not listed).
    pub(super) serial: u64,
}

/// How long a join watches only the sentinel before it also reads the result pipe as data
/// arrives: a child whose result fits in the pipe then wakes its parent once, when it exits,
/// instead of twice; a larger result waits at most this long for the parent to start reading.
const SENTINEL_ONLY: Duration = Duration::from_millis(5);

/// A join issued within this long of its child's start checks the sentinel without sleeping
/// (yielding the CPU between checks) until then: a child that ends that quickly is reaped
/// without the parent going idle and being woken again. Later joins block at once.
const EAGER: Duration = Duration::from_micros(250);

impl Child {
    /// A child forked by the fork server: `status` receives its exit status, `pidfd` (when the
    /// kernel has pidfd) signals it, `result` carries its frame.
    pub(crate) fn from_server(
        pid: Pid,
        status: Tracked,
        pidfd: Option<PidFd>,
        result: Tracked,
    ) -> Result<Child> {
        sys::set_nonblocking(result.as_fd(), true).map_err(Error::sys("fcntl"))?;
        sys::set_nonblocking(status.as_fd(), true).map_err(Error::sys("fcntl"))?;
        Ok(Child {
            pid,
            reaper: Reaper::Server { status, pidfd, code: None },
            result: Some(result),
            output: Vec::new(),
            output_done: false,
            status: None,
            started: Instant::now(),
            serial: 0,
        })
    }

    /// Lists the child in `active_children()` under `name`, until it is reaped.
    pub(crate) fn register(&mut self, name: &str) {
        let direct = !matches!(self.reaper, Reaper::Server { .. });
        self.serial = children::register(self.pid, name, self.sentinel(), direct);
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The sentinel: readable (or hung up) once the child has ended.
    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        match &self.reaper {
            Reaper::Pidfd(fd) => fd.as_fd(),
            Reaper::Pipe(fd) => fd.as_fd(),
            Reaper::Server { status, .. } => status.as_fd(),
        }
    }

    /// The bytes the child sent, complete once the child has been reaped.
    pub(crate) fn output(&self) -> &[u8] {
        &self.output
    }

    /// The exit status once reaped.
    pub(crate) fn status(&self) -> Option<ExitCode> {
        self.status
    }

    /// Reads whatever the child has sent so far without blocking.
    pub(super) fn drain(&mut self) -> Result<()> {
        let Some(result) = &self.result else { return Ok(()) };
        while !self.output_done {
            // Small results (the usual case) take one small allocation; large ones double it.
            let grow = self.output.len().clamp(256, 1 << 20);
            match sys::read_append(result.as_fd(), &mut self.output, grow) {
                Ok(0) => self.output_done = true,
                Ok(_) => {}
                Err(Errno::EAGAIN) => break,
                Err(errno) => return Err(Error::sys("read")(errno)),
            }
        }
        Ok(())
    }

    /// Reaps the child if it has ended (`block`: wait for it to end).
    fn reap(&mut self, block: bool) -> Result<Option<ExitCode>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let waited = match &self.reaper {
            Reaper::Pidfd(fd) => fd.wait(block),
            Reaper::Pipe(_) => sys::waitpid(nix::unistd::Pid::from_raw(self.pid.0), block),
            Reaper::Server { .. } => return self.read_server_status(block),
        };
        let waited = match waited {
            // Reaped already, by `active_children()`, which kept the exit code.
            Err(Errno::ECHILD) => match children::take_reaped(self.serial) {
                Some(code) => return self.reaped(code),
                None => Err(Errno::ECHILD),
            },
            other => other,
        };
        let status = match waited.map_err(Error::sys("waitid"))? {
            None => return Ok(None),
            Some(sys::Reaped::Exited(code)) => ExitCode::Exited(code),
            Some(sys::Reaped::Signaled(signal)) => ExitCode::Signaled(signal),
        };
        self.reaped(status)
    }

    fn reaped(&mut self, status: ExitCode) -> Result<Option<ExitCode>> {
        log::debug!("reaped pid {} with exit code {status}", self.pid);
        self.status = Some(status);
        children::forget(self.serial);
        // The child is gone; the pipe holds everything it wrote.
        self.drain()?;
        Ok(self.status)
    }

    /// The fork server writes a child's status (its `ExitCode::code()`, 4 bytes) once it has
    /// reaped it, then closes the pipe. The child counts as ended at the end-of-file, when its
    /// sentinel becomes ready, not at the status, read a moment earlier; end-of-file without a
    /// status means the server died first: exit code 255, as in CPython.
    fn read_server_status(&mut self, block: bool) -> Result<Option<ExitCode>> {
        loop {
            let mut buf = [0u8; 4];
            let read = sys::read(self.sentinel(), &mut buf);
            let Reaper::Server { code, .. } = &mut self.reaper else {
                unreachable!("only the fork server's children have a status pipe")
            };
            match read {
                Ok(4) if code.is_none() => *code = Some(i32::from_le_bytes(buf)),
                Ok(0) => {
                    let status = code.map_or(ExitCode::Exited(255), ExitCode::from_code);
                    if code.is_none() {
                        log::debug!("fork server gone before reporting pid {}", self.pid);
                    }
                    return self.reaped(status);
                }
                Ok(_) => return Err(Error::Forkserver { reason: "bad status".into() }),
                Err(Errno::EAGAIN) if block => {
                    crate::wait::wait(&[self.sentinel()], None)?;
                }
                Err(Errno::EAGAIN) => return Ok(None),
                Err(errno) => return Err(Error::sys("read")(errno)),
            }
        }
    }

    /// Non-blocking: the exit code if the child has ended (reaping it), else `None`.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitCode>> {
        if self.status.is_none() {
            self.drain()?;
        }
        self.reap(false)
    }

    /// Waits until the child ends or `deadline` passes, reading its output meanwhile so that
    /// a child with a large result never blocks on a full pipe.
    ///
    /// Within [`EAGER`] of the start the sentinel is checked without sleeping. After that it is
    /// polled before each attempt to reap (with a zero timeout once `deadline` has passed), so
    /// a child that has already ended costs no failed read or wait.
    pub(crate) fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<ExitCode>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let eager_until = self.started + EAGER;
        while Instant::now() < eager_until && deadline.is_none_or(|d| Instant::now() < d) {
            match sys::poll(&mut [PollFd::new(self.sentinel(), PollFlags::POLLIN)], 0) {
                Ok(1) => match self.try_wait()? {
                    Some(code) => return Ok(Some(code)),
                    None => break,
                },
                Ok(_) | Err(Errno::EINTR) => std::thread::yield_now(),
                Err(errno) => return Err(Error::sys("poll")(errno)),
            }
        }
        let drain_from = Instant::now() + SENTINEL_ONLY;
        loop {
            let draining = Instant::now() >= drain_from;
            let mut timeout = remaining_ms(deadline).unwrap_or(-1);
            if !draining {
                let until_drain = remaining_ms(Some(drain_from)).unwrap_or(0).max(1);
                timeout = if timeout < 0 { until_drain } else { timeout.min(until_drain) };
            }
            let sentinel = PollFd::new(self.sentinel(), PollFlags::POLLIN);
            let polled = match self.result.as_ref().filter(|_| draining && !self.output_done) {
                Some(result) => sys::poll(
                    &mut [sentinel, PollFd::new(result.as_fd(), PollFlags::POLLIN)],
                    timeout,
                ),
                None => sys::poll(&mut [sentinel], timeout),
            };
            match polled {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Error::sys("poll")(errno)),
            }
            if let Some(code) = self.try_wait()? {
                return Ok(Some(code));
            }
            if remaining_ms(deadline) == Some(0) {
                return Ok(None);
            }
        }
    }

    /// SIGTERM.
    pub(crate) fn terminate(&self) -> Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// SIGKILL.
    pub(crate) fn kill(&self) -> Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Sends signal number `signal` (realtime ones included; an unknown number is `EINVAL`)
    /// unless the child has already been reaped (then there is nobody to signal, and with
    /// pidfd nobody else can be hit by mistake either).
    pub(crate) fn send_signal(&self, signal: i32) -> Result<()> {
        if !sys::is_signal_number(signal) {
            return Err(Error::sys("signal")(Errno::EINVAL));
        }
        if self.status.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.pid.0);
        let sent = match &self.reaper {
            Reaper::Pidfd(fd) | Reaper::Server { pidfd: Some(fd), .. } => fd.send_signal(signal),
            // Safe from PID reuse too: the pid stays ours until we reap it, and we have not.
            Reaper::Pipe(_) => sys::kill(pid, signal),
            // Without pidfd the server may reap between our check and the kill: the window
            // is as narrow as CPython's, whose forkserver always works this way.
            Reaper::Server { pidfd: None, .. } => sys::kill(pid, signal),
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => {
                log::debug!("sent signal {signal} to pid {}", self.pid);
                Ok(())
            }
            Err(errno) => Err(Error::sys("signal")(errno)),
        }
    }
}
