//! The parent's side of the fork server: start it, ask it for workers, stop it.

use std::os::fd::{AsFd, AsRawFd, RawFd};
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

/// The descriptor of the parent's end of the server socket (for tests of the server's
/// refusal of strangers).
#[doc(hidden)]
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
        let process = fork(&spec, prepared, move |_, _| serve(sock))?;
        drop(theirs);
        log::debug!("fork server started, pid {}", process.pid());
        Ok(Server { sock: ours, pid: process.pid(), process })
    }

    fn request(&self, request: &Request, fds: &[RawFd]) -> Result<(Pid, Option<PidFd>)> {
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
        Ok((Pid(pid), got.fds.into_iter().next().map(PidFd::from_owned)))
    }
}

/// Starts a worker running entry `name` through the server (started here if need be).
pub(crate) fn launch(spec: &ChildSpec<'_>, name: &str, args: &[u8]) -> Result<Child> {
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
