//! The forkserver start method: a server forked early, while the program is still
//! single-threaded, forks the workers on request over a Unix socket.
//!
//! A request carries the entry's name and arguments, and — by `SCM_RIGHTS` — the worker's
//! result pipe, a status pipe and any inherited descriptors. The server forks the worker, sends
//! back its pid (and a pidfd, where the kernel has them), reaps it when it ends and writes its
//! exit status into the status pipe, which is the parent's sentinel. The server takes requests
//! from its parent only (the kernel vouches for the sender with `SCM_CREDENTIALS`) and exits
//! when its parent goes away.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::entry;
use super::fds::Tracked;
use super::unix::{Backend, Child, Spawn, backend};
use super::{Pid, run_entry, run_target};
use crate::error::{Error, Result};
use crate::message;
use crate::sys;

/// The parent's end of the running server.
struct Server {
    sock: Tracked,
    pid: Pid,
    /// The server itself, as our child: reaped when it stops.
    process: Child,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Set once a server has been started: a forked child of a process that never started one
/// has nothing to forget, and then leaves the lock (and its memory page) untouched.
static EVER_STARTED: AtomicBool = AtomicBool::new(false);

/// A request: entry, arguments, daemonic, CPUs, inherited descriptors' numbers in the parent,
/// process name. Descriptors attached: result pipe, status pipe, then the inherited ones.
type Request = (String, Vec<u8>, bool, Option<Vec<usize>>, Vec<i32>, String);

/// A reply: the worker's pid, or why there is none. A pidfd may be attached.
type Reply = (i32, String);

const MAX_MESSAGE: usize = 64 * 1024;

/// Starts the fork server if it is not running. Call it early, while the program is still
/// single-threaded and after registering the entry points (the server knows those registered
/// before it started); the first forkserver process starts it otherwise.
pub fn start() -> Result<()> {
    let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if server.is_none() {
        *server = Some(Server::start()?);
        EVER_STARTED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The server's pid, if it is running.
pub fn pid() -> Option<Pid> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.pid)
}

/// Stops the server (its running workers carry on) and reaps it.
pub fn stop() {
    let server = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(Server { sock, mut process, .. }) = server {
        drop(sock); // end-of-file: the server exits
        let _ = process.wait_until(None);
    }
}

/// In a freshly forked child: the parent's server is not this process's (its socket end was
/// just closed here). Forget it without running its destructor; the child may start its own.
pub(crate) fn forget_in_child() {
    // A lock held at the fork (only in the server itself, forked under it) stays held: the
    // server never asks for its own server, so it is left alone.
    if !EVER_STARTED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut server) = SERVER.try_lock() {
        std::mem::forget(server.take());
    }
}

/// The descriptor of the parent's end of the server socket (for tests of the server's
/// refusal of strangers).
pub fn socket_fd() -> Option<RawFd> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.sock.as_raw_fd())
}

impl Server {
    fn start() -> Result<Server> {
        let (ours, theirs) = sys::seqpacket_pair().map_err(Error::sys("socketpair"))?;
        let ours = Tracked::new(ours);
        let theirs = Tracked::new(theirs);
        // Before the fork, so that no request can arrive without its sender's credentials.
        sys::set_passcred(theirs.as_fd()).map_err(Error::sys("setsockopt"))?;
        let theirs_fd = theirs.as_raw_fd();
        let inherit = [theirs_fd];
        let spec = Spawn {
            name: "forkserver",
            daemon: true,
            cpus: None,
            allow_threads: false,
            inherit: &inherit,
        };
        // The server sends no result: its "result pipe" is a pipe nobody reads from.
        let prepared = Child::prepare(&spec)?;
        let process = Child::fork(&spec, prepared, move |_, _, _| serve(theirs_fd))?;
        drop(theirs);
        log::debug!("fork server started, pid {}", process.pid());
        Ok(Server { sock: ours, pid: process.pid(), process })
    }

    fn request(&self, request: &Request, fds: &[RawFd]) -> Result<(Pid, Option<Tracked>)> {
        let fail = |reason: String| Error::Forkserver { reason };
        let bytes = message::to_bytes(request);
        if bytes.len() > MAX_MESSAGE {
            return Err(fail(format!(
                "arguments too large ({} bytes, at most {MAX_MESSAGE})",
                bytes.len()
            )));
        }
        sys::send_with_fds(self.sock.as_fd(), &bytes, fds)
            .map_err(|e| fail(format!("cannot send: {e}")))?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let got = sys::recv_with_fds(self.sock.as_fd(), &mut buf)
            .map_err(|e| fail(format!("no reply: {e}")))?;
        if got.len == 0 {
            return Err(fail("the server is gone".into()));
        }
        let (pid, error): Reply = message::from_bytes(&buf[..got.len])?;
        if pid <= 0 {
            return Err(fail(error));
        }
        Ok((Pid(pid), got.fds.into_iter().next().map(Tracked::new)))
    }
}

/// Starts a worker running entry `name` through the server (started here if need be).
pub(crate) fn launch(spec: &Spawn<'_>, name: &str, args: &[u8]) -> Result<Child> {
    start()?;
    let (result_r, result_w) = sys::pipe().map_err(Error::sys("pipe"))?;
    let (status_r, status_w) = sys::pipe().map_err(Error::sys("pipe"))?;
    let request: Request = (
        name.to_string(),
        args.to_vec(),
        spec.daemon,
        spec.cpus.map(<[usize]>::to_vec),
        spec.inherit.to_vec(),
        spec.name.to_string(),
    );
    let mut fds = vec![result_w.as_raw_fd(), status_w.as_raw_fd()];
    fds.extend_from_slice(spec.inherit);
    let guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let server =
        guard.as_ref().ok_or_else(|| Error::Forkserver { reason: "not running".into() })?;
    let (pid, pidfd) = server.request(&request, &fds)?;
    drop(guard);
    drop((result_w, status_w));
    log::debug!("fork server forked {} pid {pid}", spec.name);
    Child::from_server(pid, Tracked::new(status_r), pidfd, Tracked::new(result_r))
}

/// A worker the server forked, and where its status goes.
struct Worker {
    child: Child,
    status: OwnedFd,
}

/// The server's loop; never returns.
fn serve(sock: RawFd) -> ! {
    // SAFETY-relevant only in name: the descriptor is this process's own end of the socket.
    let sock = sys::inherited_file(sock as u64);
    let parent = sys::getppid();
    let mut workers: Vec<Worker> = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        fds.extend(workers.iter().map(|w| PollFd::new(w.child.sentinel(), PollFlags::POLLIN)));
        match sys::poll(&mut fds, -1) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => sys::exit_now(1),
        }
        let sock_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        // Report the workers that ended.
        workers.retain_mut(|w| match w.child.try_wait() {
            Ok(Some(code)) => {
                let _ = sys::write_all(w.status.as_fd(), &code.code().to_le_bytes());
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        if !sock_ready {
            continue;
        }
        let got = match sys::recv_with_fds(sock.as_fd(), &mut buf) {
            Ok(got) if got.len > 0 => got,
            // End-of-file: the parent closed its end or died. Daemonic workers follow us.
            _ => sys::exit_now(0),
        };
        let reply = match got.sender {
            Some(pid) if pid == parent.as_raw() => handle(&buf[..got.len], got.fds, &mut workers),
            sender => {
                Err(format!("refused a request from pid {sender:?}: only the parent may ask"))
            }
        };
        let (reply, pidfd): (Reply, Option<OwnedFd>) = match reply {
            Ok((pid, pidfd)) => ((pid, String::new()), pidfd),
            Err(reason) => ((0, reason), None),
        };
        let attached: Vec<RawFd> = pidfd.iter().map(AsRawFd::as_raw_fd).collect();
        let _ = sys::send_with_fds(sock.as_fd(), &message::to_bytes(&reply), &attached);
    }
}

/// Forks one worker for a request; returns its pid and, with pidfd, a pidfd for the parent.
fn handle(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    workers: &mut Vec<Worker>,
) -> std::result::Result<(i32, Option<OwnedFd>), String> {
    let (name, args, daemon, cpus, inherit, proc_name): Request =
        message::from_bytes(bytes).map_err(|e| e.to_string())?;
    if fds.len() != 2 + inherit.len() {
        return Err(format!("expected {} descriptors, got {}", 2 + inherit.len(), fds.len()));
    }
    let entry = entry::lookup(&name).map_err(|e| e.to_string())?;
    let mut fds = fds.into_iter();
    let result_w = Tracked::new(fds.next().expect("counted"));
    let status = fds.next().expect("counted");
    let passed: Vec<Tracked> = fds.map(Tracked::new).collect();
    let passed_raw: Vec<RawFd> = passed.iter().map(AsRawFd::as_raw_fd).collect();
    let spec = Spawn {
        name: &proc_name,
        daemon,
        cpus: cpus.as_deref(),
        allow_threads: false,
        inherit: &passed_raw,
    };
    let prepared = Child::prepare_with(None, result_w).map_err(|e| e.to_string())?;
    let sources = passed_raw.clone();
    let child = Child::fork(&spec, prepared, move |result_w, _, frame| {
        // Put the inherited descriptors under the numbers they had in the parent: first
        // everything out of the way (above anything in use), then into place. The result pipe
        // moves too, so that no inherited number can land on it.
        let placed = sys::dup_above(result_w, 1024).and_then(|result| {
            let high = sources
                .iter()
                .map(|&fd| sys::dup_above(fd, 1024))
                .collect::<Result<Vec<_>, _>>()?;
            for (&from, &to) in high.iter().zip(&inherit) {
                sys::dup2_raw(from, to)?;
            }
            Ok(result)
        });
        let Ok(result) = placed else {
            let _ = writeln!(std::io::stderr(), "pifork: cannot place inherited descriptors");
            sys::exit_now(1)
        };
        let (code, frame) = run_target(frame, |out| run_entry(&entry, &args, out));
        let _ = sys::write_all_raw(result, &frame);
        sys::exit_now(code)
    })
    .map_err(|e| e.to_string())?;
    drop(passed);
    let pid = child.pid();
    let pidfd = match backend() {
        Backend::Pidfd => sys::pidfd_open(nix::unistd::Pid::from_raw(pid.as_raw())).ok(),
        Backend::Pipe => None,
    };
    workers.push(Worker { child, status });
    Ok((pid.as_raw(), pidfd))
}
