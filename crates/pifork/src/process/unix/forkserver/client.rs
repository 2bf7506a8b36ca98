//! The parent's side of the fork server: start it, ask it for workers, stop it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use super::protocol::{MAX_MESSAGE, Reply, Request};
use super::server::serve;
use super::slot::{EVER_STARTED, SERVER, Server};
use crate::error::{Error, Result};
use crate::fdtable::Tracked;
use crate::message;
use crate::process::spec::ChildSpec;
use crate::process::unix::child::Child;
use crate::process::unix::fork::{fork, prepare};
use crate::process::unix::pidfd::PidFd;
use crate::status::Pid;
use crate::sys;

/// Starts the fork server if it is not running (or starts a new one if the last one died).
/// Call it early, while the program is still single-threaded and after registering the entry
/// points (the server knows those registered before it started); the first forkserver process
/// starts it otherwise.
pub fn start() -> Result<()> {
    {
        let mut slot = lock();
        match slot.as_mut().map(Server::running) {
            Some(true) => return Ok(()),
            Some(false) => {
                let dead = slot.take();
                drop(slot);
                log::warn!("the fork server died; starting a new one");
                if let Some(dead) = dead {
                    dead.stop();
                }
            }
            None => {}
        }
    }
    // Forked with the slot unlocked: the server, and every worker it forks, must not carry a
    // lock that nobody there would release.
    let fresh = Server::start()?;
    let mut slot = lock();
    if slot.is_none() {
        *slot = Some(fresh);
        EVER_STARTED.store(true, Ordering::Relaxed);
    } else {
        // Another thread started one meanwhile.
        drop(slot);
        fresh.stop();
    }
    Ok(())
}

fn lock() -> std::sync::MutexGuard<'static, Option<Server>> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server's pid, if it is running.
pub fn pid() -> Option<Pid> {
    lock().as_ref().map(|s| s.pid)
}

/// Stops the server (its running workers carry on) and reaps it.
pub fn stop() {
    let server = lock().take();
    if let Some(server) = server {
        server.stop();
    }
}

/// The descriptor of the parent's end of the server socket (for tests of the server's
/// refusal of strangers).
#[doc(hidden)]
pub fn socket_fd() -> Option<RawFd> {
    lock().as_ref().map(|s| s.sock.as_raw_fd())
}

impl Server {
    fn start() -> Result<Server> {
        let (ours, theirs) = sys::seqpacket_pair().map_err(Error::sys("socketpair"))?;
        let ours = Tracked::new(ours);
        let theirs = Tracked::new(theirs);
        // Before the fork, so that no request can arrive without its sender's credentials.
        sys::set_passcred(theirs.as_fd()).map_err(Error::sys("setsockopt"))?;
        let inherit = [theirs.as_raw_fd()];
        let spec = ChildSpec {
            name: "forkserver",
            daemon: true,
            cpus: None,
            allow_threads: false,
            inherit: &inherit,
        };
        // The server sends no result: its "result pipe" is a pipe nobody reads from.
        let prepared = prepare(&spec)?;
        let sock = theirs.as_fd();
        let process = fork(&spec, prepared, move |_, own, _| serve(sock, own))?;
        drop(theirs);
        log::debug!("fork server started, pid {}", process.pid());
        Ok(Server { sock: ours, pid: process.pid(), process })
    }

    /// Whether the server is still there (a server found dead is reaped).
    fn running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// Closes the socket (end-of-file: the server exits; a dying one is killed) and reaps it.
    fn stop(self) {
        let Server { sock, mut process, .. } = self;
        drop(sock);
        if !matches!(process.wait_until(crate::wait::deadline_after(Some(STOP_GRACE))), Ok(Some(_)))
        {
            let _ = process.kill();
            let _ = process.wait_until(None);
        }
    }

    /// Asks for a worker. `Ok(Err(..))` is a refusal; `Err(Gone)` means the server is gone.
    fn request(&self, bytes: &[u8], fds: &[RawFd]) -> std::result::Result<Result<Answer>, Gone> {
        sys::send_with_fds(self.sock.as_fd(), bytes, fds).map_err(|_| Gone)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        match sys::recv_with_fds(self.sock.as_fd(), &mut buf) {
            Ok(got) if got.len > 0 => {
                let reply: Result<Reply> = message::from_bytes(&buf[..got.len]);
                Ok(reply.map(|(pid, error)| (pid, error, got.fds.into_iter().next())))
            }
            _ => Err(Gone),
        }
    }
}

/// How long a stopped server may take to exit before it is killed.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The server went away (its socket was closed under us).
struct Gone;

/// A reply as received: the worker's pid or 0, why not, and the pidfd sent along.
type Answer = (i32, String, Option<OwnedFd>);

/// Starts a worker running entry `name` through the server (started here if need be, and
/// started anew, once, if it turns out to have died).
pub(crate) fn launch(spec: &ChildSpec<'_>, name: &str, args: &[u8]) -> Result<Child> {
    let request: Request = (
        name.to_string(),
        args.to_vec(),
        spec.daemon,
        spec.cpus.map(<[usize]>::to_vec),
        spec.inherit.to_vec(),
        spec.name.to_string(),
    );
    let bytes = message::to_bytes(&request);
    if bytes.len() > MAX_MESSAGE {
        return Err(Error::Forkserver {
            reason: format!("arguments too large ({} bytes, at most {MAX_MESSAGE})", bytes.len()),
        });
    }
    let (result_r, result_w) = sys::pipe().map_err(Error::sys("pipe"))?;
    let (status_r, status_w) = sys::pipe().map_err(Error::sys("pipe"))?;
    let (result_r, result_w) = (Tracked::new(result_r), Tracked::new(result_w));
    let (status_r, status_w) = (Tracked::new(status_r), Tracked::new(status_w));
    let mut fds = vec![result_w.as_raw_fd(), status_w.as_raw_fd()];
    fds.extend_from_slice(spec.inherit);
    let mut retried = false;
    let (pid, error, pidfd) = loop {
        start()?;
        let mut slot = lock();
        let server =
            slot.as_ref().ok_or_else(|| Error::Forkserver { reason: "not running".into() })?;
        match server.request(&bytes, &fds) {
            Ok(reply) => break reply?,
            Err(Gone) if !retried => {
                // Dead or dying: reaped (killed if need be) here; start() forks a new one.
                retried = true;
                log::warn!("the fork server is gone; starting a new one");
                let dead = slot.take();
                drop(slot);
                if let Some(dead) = dead {
                    dead.stop();
                }
            }
            Err(Gone) => {
                return Err(Error::Forkserver { reason: "the server is gone".into() });
            }
        }
    };
    if pid <= 0 {
        return Err(Error::Forkserver { reason: error });
    }
    let pid = Pid(pid);
    drop((result_w, status_w));
    log::debug!("fork server forked {} pid {pid}", spec.name);
    Child::from_server(pid, status_r, pidfd.map(PidFd::from_owned), result_r)
}
