//! The Linux backend: raw `fork`, a pidfd (or, where pidfd is missing, a pipe) as the
//! sentinel, `pidfd_send_signal`/`kill` for signals, `waitid(P_PIDFD)`/`waitpid` for reaping.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::entry::{HANDSHAKE, SPAWN_ENV, SpawnSpec};
use super::fds::{self, Tracked};
use super::{ExitCode, Pid};
use crate::error::{Error, Result};
use crate::sys;

/// The start method of processes that choose none: fork, as in CPython on Linux.
pub(crate) const DEFAULT_METHOD: super::StartMethod = super::StartMethod::Fork;

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

/// A sentinel: a descriptor that becomes readable (or hangs up) when its process ends.
pub type Sentinel<'a> = BorrowedFd<'a>;

/// A descriptor a child can inherit, named by its number.
pub type RawInherit = RawFd;

/// `wait()` on Linux: `poll(2)` for readability or hang-up, until `deadline`.
pub(crate) fn wait_any(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> Result<Vec<usize>> {
    use crate::wait::remaining_ms;
    let mut pollfds: Vec<PollFd<'_>> =
        fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    loop {
        let timeout_ms = remaining_ms(deadline).unwrap_or(-1);
        match sys::poll(&mut pollfds, timeout_ms) {
            Ok(0) if timeout_ms >= 0 && remaining_ms(deadline) == Some(0) => return Ok(Vec::new()),
            Ok(0) => continue,
            Ok(_) => {
                return Ok(pollfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(i, _)| i)
                    .collect());
            }
            Err(Errno::EINTR) => {
                if remaining_ms(deadline) == Some(0) {
                    return Ok(Vec::new());
                }
            }
            Err(errno) => return Err(Error::sys("poll")(errno)),
        }
    }
}

/// In a spawned child: records the descriptors its parent handed down, so that this process's
/// own children do not inherit them.
pub(crate) fn adopt_inherited(result: u64, hold: u64) {
    for fd in [result, hold] {
        if fd != 0 {
            fds::track_forever(&(fd as RawFd));
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
    result_r: Option<Tracked>,
    result_w: Tracked,
    sentinel_pipe: Option<(Tracked, Tracked)>,
    /// Allocated before the fork and used on both sides of it: the child builds its frame in
    /// its copy, the parent reads the result into its own; neither allocates or frees it then.
    buffer: Vec<u8>,
}

/// How the parent learns that a child ended, and reaps it.
#[derive(Debug)]
enum Reaper {
    /// Our child, watched through its pidfd.
    Pidfd(Tracked),
    /// Our child, watched through a pipe only it holds; reaped with `waitpid`.
    Pipe(Tracked),
    /// The fork server's child: the server reaps it and writes its status into `status`.
    Server { status: Tracked, pidfd: Option<Tracked> },
}

/// A started child as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    reaper: Reaper,
    /// The read end of the child's result pipe (none in the fork server, which only reaps).
    result: Option<Tracked>,
    output: Vec<u8>,
    output_done: bool,
    status: Option<ExitCode>,
    /// When the parent started it (see [`EAGER`]).
    started: Instant,
}

/// How long a join watches only the sentinel before it also reads the result pipe as data
/// arrives: a child whose result fits in the pipe then wakes its parent once, when it exits,
/// instead of twice; a larger result waits at most this long for the parent to start reading.
const SENTINEL_ONLY: Duration = Duration::from_millis(5);

/// A join issued within this long of its child's start checks the sentinel without sleeping
/// (yielding the CPU between checks) until then: a child that ends that quickly is reaped
/// without the parent going idle and being woken again. Later joins block at once.
const EAGER: Duration = Duration::from_micros(250);

/// How long a thread that has been joined may still be counted among the process's threads.
const THREAD_LINGER: Duration = Duration::from_millis(100);

/// Refuses to fork a multi-threaded process. A joined thread wakes its joiner before it is
/// reaped, so it can still be counted for a moment (on a busy machine, for as long as it
/// waits for a CPU to finish exiting): a count above the baseline is checked again for up to
/// [`THREAD_LINGER`] before it is believed. A process whose thread count cannot be read
/// (no `/proc`) is taken to be single-threaded.
fn single_threaded() -> Result<()> {
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

/// How long a spawned child may take to reach `main_guard`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks a child's frame that reports a failed `execve` (followed by the errno, 4 bytes).
const TAG_EXEC_FAILED: u8 = 0xEE;

impl Child {
    /// Everything that can fail before the fork: the thread check and the pipes. The
    /// target is not touched, so a refused start can be retried.
    pub(crate) fn prepare(spec: &Spawn<'_>) -> Result<Prepared> {
        if !spec.allow_threads {
            single_threaded()?;
        }
        let (result_r, result_w) = sys::pipe_nonblocking_read().map_err(Error::sys("pipe"))?;
        let (result_r, result_w) = (Tracked::new(result_r), Tracked::new(result_w));
        Self::prepare_with(Some(result_r), result_w)
    }

    /// The sentinel for a child whose result goes to `result_w` (read by `result_r`, if here).
    pub(crate) fn prepare_with(result_r: Option<Tracked>, result_w: Tracked) -> Result<Prepared> {
        let backend = backend();
        let sentinel_pipe = match backend {
            Backend::Pipe => {
                let (r, w) = sys::pipe().map_err(Error::sys("pipe"))?;
                Some((Tracked::new(r), Tracked::new(w)))
            }
            Backend::Pidfd => None,
        };
        Ok(Prepared { backend, result_r, result_w, sentinel_pipe, buffer: Vec::with_capacity(256) })
    }

    /// Forks; the child runs `in_child` (given its result pipe end, its sentinel pipe end or
    /// -1, and the prepared buffer), which leaves through `_exit`. Returns the parent's view.
    pub(crate) fn fork(
        spec: &Spawn<'_>,
        prepared: Prepared,
        in_child: impl FnOnce(RawFd, RawFd, Vec<u8>),
    ) -> Result<Child> {
        let Prepared { backend, result_r, result_w, sentinel_pipe, buffer } = prepared;
        // Anything buffered now would otherwise be written twice, once by each process
        // (stderr is unbuffered).
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        // Only a daemonic child checks that its parent is still there.
        let parent = spec.daemon.then(sys::getpid);

        // SAFETY: either the process is single-threaded (checked in `prepare`), so the child
        // can take any lock, or the caller opted in knowing the child's code is fork-safe.
        match unsafe { sys::fork() }.map_err(Error::sys("fork"))? {
            sys::ForkResult::Child => {
                let hold = sentinel_pipe.as_ref().map_or(-1, |(_, w)| w.as_raw_fd());
                child_setup(spec, parent, &[result_w.as_raw_fd(), hold]);
                in_child(result_w.as_raw_fd(), hold, buffer);
                // `in_child` leaves through `_exit`; should it ever return, so do we.
                sys::exit_now(1)
            }
            sys::ForkResult::Parent { child } => {
                let pid = Pid(child.as_raw());
                drop(result_w);
                let reaper = match sentinel_pipe {
                    Some((r, w)) => {
                        drop(w);
                        Reaper::Pipe(r)
                    }
                    None => match sys::pidfd_open(child) {
                        Ok(fd) => Reaper::Pidfd(Tracked::new(fd)),
                        Err(errno) => {
                            // Do not leave the child behind: it never gets a handle.
                            let _ = sys::kill(child, Signal::SIGKILL);
                            let _ = sys::waitpid(child, true);
                            return Err(Error::sys("pidfd_open")(errno));
                        }
                    },
                };
                log::debug!(
                    "forked {} pid {pid} ({}{})",
                    spec.name,
                    backend.as_str(),
                    if spec.daemon { ", daemon" } else { "" }
                );
                let output_done = result_r.is_none();
                Ok(Child {
                    pid,
                    reaper,
                    result: result_r,
                    output: buffer,
                    output_done,
                    status: None,
                    started,
                })
            }
        }
    }

    /// The fork start method: prepares, then takes the target's body from `body` (so that a
    /// refused start leaves it in place) and forks. The child runs the body, sends its frame
    /// and leaves with `_exit`.
    pub(crate) fn start_fork<B: FnOnce(&mut Vec<u8>)>(
        spec: &Spawn<'_>,
        body: impl FnOnce() -> Result<B>,
    ) -> Result<Child> {
        let prepared = Self::prepare(spec)?;
        let mut body = Some(body()?);
        Self::fork_body(spec, prepared, &mut |out| body.take().map_or((), |body| body(out)))
    }

    /// The fork itself, once for every target type: the body is called through a reference,
    /// which neither allocates in the parent nor frees in the child.
    fn fork_body(
        spec: &Spawn<'_>,
        prepared: Prepared,
        body: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Result<Child> {
        Self::fork(spec, prepared, move |result_w, _, frame| {
            let (code, frame) = super::run_target(frame, body);
            let _ = sys::write_all_raw(result_w, &frame);
            let _ = std::io::stdout().flush();
            sys::exit_now(code)
        })
    }

    /// The forkserver start method.
    pub(crate) fn start_forkserver(spec: &Spawn<'_>, entry: &str, args: &[u8]) -> Result<Child> {
        super::forkserver::launch(spec, entry, args)
    }

    /// The spawn start method: fork, then exec the current executable with `PIFORK_SPAWN`
    /// naming the entry; its `main_guard` answers with a handshake, reads the arguments and
    /// runs the entry.
    pub(crate) fn spawn(spec: &Spawn<'_>, entry: &str, args: &[u8]) -> Result<Child> {
        let prepared = Self::prepare(spec)?;
        // Not recorded in the descriptor table: the child must keep `args_r` through exec, and
        // no other child is forked while these exist.
        let (args_r, args_w) = sys::pipe().map_err(Error::sys("pipe"))?;
        let hold = prepared.sentinel_pipe.as_ref().map_or(0, |(_, w)| w.as_raw_fd() as u64);
        let env_value = SpawnSpec {
            entry: entry.to_string(),
            args: args_r.as_raw_fd() as u64,
            result: prepared.result_w.as_raw_fd() as u64,
            hold,
            daemon: spec.daemon,
        }
        .encode();
        // Everything exec needs is built before the fork.
        let path = CString::new("/proc/self/exe").expect("no NUL");
        let argv0 = std::env::args_os().next().unwrap_or_else(|| "pifork".into());
        let argv = [CString::new(argv0.as_bytes()).unwrap_or_else(|_| path.clone())];
        let mut envp: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != SPAWN_ENV)
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect();
        envp.push(CString::new(format!("{SPAWN_ENV}={env_value}")).expect("no NUL"));
        let args_fd = args_r.as_raw_fd();
        let mut child = Self::fork(spec, prepared, move |result_w, hold, _| {
            let mut keep = vec![args_fd, result_w];
            if hold >= 0 {
                keep.push(hold);
            }
            keep.extend_from_slice(spec.inherit);
            for fd in keep {
                let _ = sys::set_cloexec(fd, false);
            }
            let errno = sys::execve(&path, &argv, &envp);
            let mut frame = vec![TAG_EXEC_FAILED];
            frame.extend_from_slice(&(errno as i32).to_le_bytes());
            let _ = sys::write_all_raw(result_w, &frame);
            sys::exit_now(1)
        })?;
        drop(args_r);
        child.await_handshake()?;
        // The guard reads the arguments right after its handshake.
        let sent = sys::write_all(args_w.as_fd(), args);
        drop(args_w);
        if let Err(errno) = sent {
            log::debug!(
                "spawned {} pid {} did not take its arguments: {errno}",
                spec.name,
                child.pid
            );
        }
        Ok(child)
    }

    /// Waits for a spawned child's first byte. Anything else — an early exit, an exec failure,
    /// silence — ends the child and is an error.
    fn await_handshake(&mut self) -> Result<()> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            self.drain()?;
            if let Some(&first) = self.output.first() {
                if first == HANDSHAKE {
                    self.output.remove(0);
                    return Ok(());
                }
                break;
            }
            if self.output_done || self.try_wait()?.is_some() {
                break;
            }
            let timeout = crate::wait::remaining_ms(Some(deadline)).unwrap_or(0);
            if timeout == 0 {
                break;
            }
            let mut fds = vec![PollFd::new(self.sentinel(), PollFlags::POLLIN)];
            if let Some(result) = &self.result {
                fds.push(PollFd::new(result.as_fd(), PollFlags::POLLIN));
            }
            match sys::poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Error::sys("poll")(errno)),
            }
        }
        let _ = self.signal(Signal::SIGKILL);
        self.wait_until(None)?;
        match self.output.as_slice() {
            [TAG_EXEC_FAILED, a, b, c, d, ..] => {
                Err(Error::Sys { op: "execve", code: i32::from_le_bytes([*a, *b, *c, *d]) })
            }
            _ => Err(Error::NoMainGuard),
        }
    }

    /// A child forked by the fork server: `status` receives its exit status, `pidfd` (when the
    /// kernel has pidfd) signals it, `result` carries its frame.
    pub(crate) fn from_server(
        pid: Pid,
        status: Tracked,
        pidfd: Option<Tracked>,
        result: Tracked,
    ) -> Result<Child> {
        sys::set_nonblocking(result.as_fd(), true).map_err(Error::sys("fcntl"))?;
        sys::set_nonblocking(status.as_fd(), true).map_err(Error::sys("fcntl"))?;
        Ok(Child {
            pid,
            reaper: Reaper::Server { status, pidfd },
            result: Some(result),
            output: Vec::new(),
            output_done: false,
            status: None,
            started: Instant::now(),
        })
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The sentinel: readable (or hung up) once the child has ended.
    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        match &self.reaper {
            Reaper::Pidfd(fd) | Reaper::Pipe(fd) => fd.as_fd(),
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
    fn drain(&mut self) -> Result<()> {
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
            Reaper::Pidfd(fd) => sys::waitid_pidfd(fd.as_fd(), block),
            Reaper::Pipe(_) => sys::waitpid(nix::unistd::Pid::from_raw(self.pid.0), block),
            Reaper::Server { status, .. } => {
                return self.read_server_status(status.as_raw_fd(), block);
            }
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
        self.reaped(status)
    }

    fn reaped(&mut self, status: ExitCode) -> Result<Option<ExitCode>> {
        log::debug!("reaped pid {} with exit code {status}", self.pid);
        self.status = Some(status);
        // The child is gone; the pipe holds everything it wrote.
        self.drain()?;
        Ok(self.status)
    }

    /// The fork server writes a child's status (its `ExitCode::code()`, 4 bytes) once it has
    /// reaped it, then closes the pipe.
    fn read_server_status(&mut self, fd: RawFd, block: bool) -> Result<Option<ExitCode>> {
        loop {
            let mut buf = [0u8; 4];
            match sys::read_raw(fd, &mut buf) {
                Ok(4) => {
                    let code = i32::from_le_bytes(buf);
                    let status =
                        if code < 0 { ExitCode::Signaled(-code) } else { ExitCode::Exited(code) };
                    return self.reaped(status);
                }
                Ok(0) => {
                    return Err(Error::Forkserver {
                        reason: format!("lost track of pid {}", self.pid),
                    });
                }
                Ok(_) => return Err(Error::Forkserver { reason: "short status".into() }),
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
            let mut timeout = crate::wait::remaining_ms(deadline).unwrap_or(-1);
            if !draining {
                let until_drain = crate::wait::remaining_ms(Some(drain_from)).unwrap_or(0).max(1);
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
            if crate::wait::remaining_ms(deadline) == Some(0) {
                return Ok(None);
            }
        }
    }

    /// SIGTERM.
    pub(crate) fn terminate(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// SIGKILL.
    pub(crate) fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Sends `signal` unless the child has already been reaped (then there is nobody to signal,
    /// and with pidfd nobody else can be hit by mistake either).
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.pid.0);
        let sent = match &self.reaper {
            Reaper::Pidfd(fd) | Reaper::Server { pidfd: Some(fd), .. } => {
                sys::pidfd_send_signal(fd.as_fd(), Some(signal))
            }
            // Safe from PID reuse too: the pid stays ours until we reap it, and we have not.
            Reaper::Pipe(_) => sys::kill(pid, signal),
            // Without pidfd the server may reap between our check and the kill: the window
            // is as narrow as CPython's, whose forkserver always works this way.
            Reaper::Server { pidfd: None, .. } => sys::kill(pid, signal),
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => {
                log::debug!("sent {signal} to pid {}", self.pid);
                Ok(())
            }
            Err(errno) => Err(Error::sys("signal")(errno)),
        }
    }
}

/// Runs in the child right after `fork`, before the target: only async-signal-safe calls, then
/// (the parent having been single-threaded) plain code. `own` lists the child's own pipe ends
/// (-1 for none); `parent` is the parent's pid, known for a daemonic child.
pub(crate) fn child_setup(spec: &Spawn<'_>, parent: Option<nix::unistd::Pid>, own: &[RawFd]) {
    sys::reset_signal_handlers();
    fds::close_others_in_child(|fd| own.contains(&fd) || spec.inherit.contains(&fd));
    super::forkserver::forget_in_child();
    // A worker of the (daemonic) fork server is daemonic only if it was asked to be.
    super::set_in_daemon(spec.daemon);
    if let Some(parent) = parent {
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
