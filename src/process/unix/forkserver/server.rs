//! The fork server's own loop: take a request from the parent, fork the worker, report its
//! pid (and a pidfd), reap it when it ends and write its exit status where the parent waits.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::protocol::{MAX_MESSAGE, Reply, Request};
use crate::fdtable::{self, Tracked};
use crate::message;
use crate::process::entry;
use crate::process::spec::ChildSpec;
use crate::process::target::{run_entry, run_target};
use crate::process::unix::backend::{Backend, backend};
use crate::process::unix::child::Child;
use crate::process::unix::fork::{fork, prepare_with};
use crate::sys;

/// A worker the server forked, and where its status goes.
struct Served {
    child: Child,
    status: OwnedFd,
}

/// The server's loop on its end of the socket; never returns.
pub(super) fn serve(sock: BorrowedFd<'_>) -> ! {
    let parent = sys::getppid();
    let mut workers: Vec<Served> = Vec::new();
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
    workers: &mut Vec<Served>,
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
    let spec = ChildSpec {
        name: &proc_name,
        daemon,
        cpus: cpus.as_deref(),
        allow_threads: false,
        inherit: &passed_raw,
    };
    let prepared = prepare_with(None, result_w).map_err(|e| e.to_string())?;
    let sources = &passed;
    let child = fork(&spec, prepared, move |result_w, frame| {
        // Put the inherited descriptors under the numbers they had in the parent: first
        // everything out of the way (above anything in use), then into place. The result pipe
        // moves too, so that no inherited number can land on it.
        let placed = sys::dup_above(result_w, 1024).and_then(|result| {
            let high = sources
                .iter()
                .map(|fd| sys::dup_above(fd.as_fd(), 1024))
                .collect::<Result<Vec<_>, _>>()?;
            for (from, &to) in high.iter().zip(&inherit) {
                // SAFETY: in this freshly forked worker the numbers the parent asked for belong
                // to nobody: the server's own descriptors were moved out of the way above or
                // are copies the worker never uses (it leaves through `_exit`).
                unsafe { sys::dup2_onto(from.as_fd(), to)? };
            }
            // Only the placed copies stay: a copy left open under another number would keep
            // the pipe or socket open after the entry closes its end, hiding the end from the
            // peer until the worker exits.
            drop(high);
            for source in sources.iter().filter(|fd| !inherit.contains(&fd.as_raw_fd())) {
                fdtable::close_in_child(source.as_raw_fd());
            }
            Ok(result)
        });
        let Ok(result) = placed else {
            let _ = writeln!(std::io::stderr(), "pifork: cannot place inherited descriptors");
            sys::exit_now(1)
        };
        fdtable::set_inherited(&inherit);
        let (code, frame) = run_target(frame, |out| run_entry(&entry, &args, out));
        let _ = sys::write_all(result.as_fd(), &frame);
        sys::exit_now(code)
    })
    .map_err(|e| e.to_string())?;
    drop(passed);
    let pid = child.pid();
    let pidfd = match backend() {
        Backend::Pidfd => sys::pidfd_open(nix::unistd::Pid::from_raw(pid.as_raw())).ok(),
        Backend::Pipe => None,
    };
    workers.push(Served { child, status });
    Ok((pid.as_raw(), pidfd))
}
