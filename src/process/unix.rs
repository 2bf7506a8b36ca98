//! The Linux backend: raw `fork`, a pidfd (or, where pidfd is missing, a pipe) as the
//! sentinel, `pidfd_send_signal`/`kill` for signals, `waitid(P_PIDFD)`/`waitpid` for reaping.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::OnceLock;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::fds::{self, Tracked};
use super::{ExitCode, Pid};
use crate::error::{Error, Result};
use crate::sys;

/// How children are watched and reaped on this system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `pidfd_open` + `waitid(P_PIDFD)` + `pidfd_send_signal` (Linux >= 5.4).
    Pidfd,
    /// CPython's scheme: a pipe whose write end only the child holds, and `waitpid`.
    Pipe,
}

impl Backend {
    /// Lower-case name, as `pifork info` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Pidfd => "pidfd",
            Backend::Pipe => "pipe",
        }
    }
}

/// Whether the running kernel (or emulator) supports everything the pidfd backend uses:
/// `pidfd_open`, `pidfd_send_signal` and `waitid(P_PIDFD)`. Probed on this process itself.
pub fn probe_pidfd() -> Result<(), Errno> {
    let fd = sys::pidfd_open(sys::getpid())?;
    sys::pidfd_send_signal(fd.as_fd(), None)?;
    // We are not our own child: ECHILD proves P_PIDFD is understood (older kernels: EINVAL).
    match sys::waitid_pidfd(fd.as_fd(), false) {
        Err(Errno::ECHILD) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(Errno::EINVAL),
    }
}

/// The backend in use, decided once per process: pidfd when it works, else the pipe
/// fallback. `PIFORK_BACKEND=pipe` forces the fallback; `PIFORK_BACKEND=pidfd` insists on pidfd
/// (and falls back with a warning where it is missing).
pub fn backend() -> Backend {
    static CHOSEN: OnceLock<Backend> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let wanted = std::env::var("PIFORK_BACKEND").unwrap_or_default();
        if wanted == "pipe" {
            log::debug!("backend: pipe (forced by PIFORK_BACKEND)");
            return Backend::Pipe;
        }
        match probe_pidfd() {
            Ok(()) => {
                log::debug!("backend: pidfd");
                Backend::Pidfd
            }
            Err(errno) => {
                if wanted == "pidfd" {
                    log::warn!(
                        "PIFORK_BACKEND=pidfd but pidfd is unavailable ({errno}); using pipe"
                    );
                } else {
                    log::debug!("backend: pipe (pidfd unavailable: {errno})");
                }
                Backend::Pipe
            }
        }
    })
}

/// What the child needs to know, fixed before the fork.
pub(crate) struct Spawn<'a> {
    pub name: &'a str,
    pub daemon: bool,
    pub cpus: Option<&'a [usize]>,
    pub allow_threads: bool,
    pub inherit: &'a [RawFd],
}

/// The descriptors of a child about to be forked.
pub(crate) struct Prepared {
    backend: Backend,
    result_r: Tracked,
    result_w: Tracked,
    sentinel_pipe: Option<(Tracked, Tracked)>,
}

/// A started child as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    backend: Backend,
    sentinel: Tracked,
    result: Tracked,
    output: Vec<u8>,
    output_done: bool,
    status: Option<ExitCode>,
}

/// Set in a child whose process is daemonic: it may not start children of its own.
static IN_DAEMON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True in a daemonic child process.
pub(crate) fn in_daemon() -> bool {
    IN_DAEMON.load(std::sync::atomic::Ordering::Relaxed)
}

impl Child {
    /// Everything that can fail before the fork: the thread check and the pipes. The
    /// target is not touched, so a refused start can be retried.
    pub(crate) fn prepare(spec: &Spawn<'_>) -> Result<Prepared> {
        if !spec.allow_threads && sys::extra_threads().unwrap_or(0) > 0 {
            let threads = sys::thread_count().unwrap_or(2);
            return Err(Error::MultiThreaded { threads });
        }
        let backend = backend();
        let (result_r, result_w) = sys::pipe().map_err(Error::sys("pipe"))?;
        let (result_r, result_w) = (Tracked::new(result_r), Tracked::new(result_w));
        sys::set_nonblocking(result_r.as_fd(), true).map_err(Error::sys("fcntl"))?;
        let sentinel_pipe = match backend {
            Backend::Pipe => {
                let (r, w) = sys::pipe().map_err(Error::sys("pipe"))?;
                Some((Tracked::new(r), Tracked::new(w)))
            }
            Backend::Pidfd => None,
        };
        Ok(Prepared {
            backend,
            result_r,
            result_w,
            sentinel_pipe,
        })
    }

    /// Forks and runs `body` in the child. `body` returns the exit code and the bytes to send
    /// back; the child leaves with `_exit` right after sending them.
    pub(crate) fn launch(
        spec: &Spawn<'_>,
        prepared: Prepared,
        body: Box<dyn FnOnce() -> (i32, Vec<u8>) + '_>,
    ) -> Result<Child> {
        let Prepared {
            backend,
            result_r,
            result_w,
            sentinel_pipe,
        } = prepared;
        // Anything buffered now would otherwise be written twice, once by each process.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let parent = sys::getpid();

        // SAFETY: either the process is single-threaded (checked in `prepare`), so the child
        // can take any lock, or the caller opted in knowing the child's code is fork-safe.
        match unsafe { sys::fork() }.map_err(Error::sys("fork"))? {
            sys::ForkResult::Child => {
                let mut keep = [result_w.as_raw_fd(), -1];
                if let Some((_, w)) = &sentinel_pipe {
                    keep[1] = w.as_raw_fd();
                }
                child_setup(spec, parent, &keep);
                let (code, bytes) = body();
                let _ = sys::write_all(result_w.as_fd(), &bytes);
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().flush();
                sys::exit_now(code)
            }
            sys::ForkResult::Parent { child } => {
                let pid = Pid(child.as_raw());
                drop(result_w);
                let sentinel = match sentinel_pipe {
                    Some((r, w)) => {
                        drop(w);
                        r
                    }
                    None => match sys::pidfd_open(child) {
                        Ok(fd) => Tracked::new(fd),
                        Err(errno) => {
                            // Do not leave the child behind: it never gets a handle.
                            let _ = sys::kill(child, Signal::SIGKILL);
                            let _ = sys::waitpid(child, true);
                            return Err(Error::Sys {
                                op: "pidfd_open",
                                errno,
                            });
                        }
                    },
                };
                log::debug!(
                    "forked {} pid {pid} ({}{})",
                    spec.name,
                    backend.as_str(),
                    if spec.daemon { ", daemon" } else { "" }
                );
                Ok(Child {
                    pid,
                    backend,
                    sentinel,
                    result: result_r,
                    output: Vec::new(),
                    output_done: false,
                    status: None,
                })
            }
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The sentinel: readable (or hung up) once the child has ended.
    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        self.sentinel.as_fd()
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
    fn drain(&mut self) -> Result<()> {
        let mut buf = [0u8; 8192];
        while !self.output_done {
            match sys::read(self.result.as_fd(), &mut buf) {
                Ok(0) => self.output_done = true,
                Ok(n) => self.output.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(errno) => return Err(Error::Sys { op: "read", errno }),
            }
        }
        Ok(())
    }

    /// Reaps the child if it has ended (`block`: wait for it to end).
    fn reap(&mut self, block: bool) -> Result<Option<ExitCode>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let waited = match self.backend {
            Backend::Pidfd => sys::waitid_pidfd(self.sentinel.as_fd(), block),
            Backend::Pipe => sys::waitpid(nix::unistd::Pid::from_raw(self.pid.0), block),
        };
        let status = match waited.map_err(Error::sys("waitid"))? {
            None => return Ok(None),
            Some(WaitStatus::Exited(_, code)) => ExitCode::Exited(code),
            Some(WaitStatus::Signaled(_, signal, _)) => ExitCode::Signaled(signal as i32),
            Some(other) => {
                log::warn!("unexpected wait status {other:?} for pid {}", self.pid);
                return Ok(None);
            }
        };
        log::debug!("reaped pid {} with exit code {status}", self.pid);
        self.status = Some(status);
        // The child is gone; the pipe holds everything it wrote.
        self.drain()?;
        Ok(self.status)
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
    pub(crate) fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<ExitCode>> {
        loop {
            if let Some(code) = self.try_wait()? {
                return Ok(Some(code));
            }
            let timeout = match crate::wait::remaining_ms(deadline) {
                Some(0) => return Ok(None),
                Some(ms) => ms,
                None => -1,
            };
            let mut fds = vec![PollFd::new(self.sentinel.as_fd(), PollFlags::POLLIN)];
            if !self.output_done {
                fds.push(PollFd::new(self.result.as_fd(), PollFlags::POLLIN));
            }
            match sys::poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Error::Sys { op: "poll", errno }),
            }
        }
    }

    /// Sends `signal` unless the child has already been reaped (then there is nobody to signal,
    /// and with pidfd nobody else can be hit by mistake either).
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let sent = match self.backend {
            Backend::Pidfd => sys::pidfd_send_signal(self.sentinel.as_fd(), Some(signal)),
            // Safe from PID reuse too: the pid stays ours until we reap it, and we have not.
            Backend::Pipe => sys::kill(nix::unistd::Pid::from_raw(self.pid.0), signal),
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => {
                log::debug!("sent {signal} to pid {}", self.pid);
                Ok(())
            }
            Err(errno) => Err(Error::Sys {
                op: "signal",
                errno,
            }),
        }
    }
}

/// Runs in the child right after `fork`, before the target: only async-signal-safe calls, then
/// (the parent having been single-threaded) plain code.
fn child_setup(spec: &Spawn<'_>, parent: nix::unistd::Pid, own: &[RawFd]) {
    sys::reset_signal_handlers();
    let mut keep: Vec<RawFd> = own.iter().copied().filter(|&fd| fd >= 0).collect();
    keep.extend_from_slice(spec.inherit);
    fds::close_others_in_child(&keep);
    if spec.daemon {
        IN_DAEMON.store(true, std::sync::atomic::Ordering::Relaxed);
        // A daemonic child dies with its parent, even if the parent is SIGKILLed. Check again
        // afterwards: the parent may have died before the request took effect.
        if sys::set_parent_death_signal(Signal::SIGKILL).is_err() || sys::getppid() != parent {
            sys::exit_now(1);
        }
    }
    if let Some(cpus) = spec.cpus
        && let Err(errno) = sys::set_affinity(cpus)
    {
        let _ = writeln!(
            std::io::stderr(),
            "{}: cannot pin to cpus {cpus:?}: {errno}",
            spec.name
        );
        sys::exit_now(1);
    }
}
