//! The fork server's own loop: take a request from the parent, fork the worker, report its
//! pid (and a pidfd), reap it when it ends and write its exit status where the parent waits.
//!
//! The server holds only what it needs — stdio, its socket and its own pipe ends — and does not
//! die of SIGINT or SIGHUP (Ctrl-C or a hangup of the process group, `systemctl kill -s HUP`
//! of a unit, are the parent's to handle), as CPython's does for SIGINT: it blocks them, so
//! that a worker, whose signal mask is cleared as it starts, never misses one sent right after
//! its start. Each worker holds only stdio, its own pipe ends and what its request listed.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;

use super::protocol::{MAX_MESSAGE, Reply, Request};
use crate::fdtable::{self, Tracked};
use crate::message;
use crate::process::entry;
use crate::process::identity::become_child;
use crate::process::method::set_own_method;
use crate::process::spec::ChildSpec;
use crate::process::target::{run_entry, run_target};
use crate::process::unix::backend::{Backend, backend};
use crate::process::unix::child::Child;
use crate::process::unix::fork::{fork, prepare_with};
use crate::status::{Pid, StartMethod};
use crate::sys;

/// A worker the server forked, and where its status goes.
struct Served {
    child: Child,
    status: Tracked,
}

/// The server's loop on its end of the socket; `own` are its own pipe ends (or -1). Never
/// returns.
pub(super) fn serve(sock: BorrowedFd<'_>, own: [RawFd; 2]) -> ! {
    let mut keep: Vec<RawFd> = [sock.as_raw_fd()].into_iter().chain(own).collect();
    keep.sort_unstable();
    #[allow(unsafe_code)] // closing by number in a freshly forked child (see sys/mod.rs)
    // SAFETY: this freshly forked server uses no descriptor but `keep` and stdio; the owners of
    // the others (copies of the parent's objects) are never used or dropped here.
    unsafe {
        sys::close_all_except(&keep, sys::descriptor_limit(), false)
    };
    let _ = sys::block_signal(Signal::SIGINT);
    let _ = sys::block_signal(Signal::SIGHUP);
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
            Some(pid) if pid == parent.as_raw() => {
                let from = Pid(parent.as_raw());
                handle(&buf[..got.len], got.fds, &mut workers, from)
            }
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

/// Forks one worker for a request from `parent`; returns its pid and, with pidfd, a pidfd for
/// the parent.
fn handle(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    workers: &mut Vec<Served>,
    parent: Pid,
) -> std::result::Result<(i32, Option<OwnedFd>), String> {
    let (entry_name, args, daemon, cpus, inherit, proc_name): Request =
        message::from_bytes(bytes).map_err(|e| e.to_string())?;
    if fds.len() != 2 + inherit.len() {
        return Err(format!("expected {} descriptors, got {}", 2 + inherit.len(), fds.len()));
    }
    let entry = entry::lookup(&entry_name).map_err(|e| e.to_string())?;
    let mut fds = fds.into_iter().map(Tracked::new);
    let result_w = fds.next().expect("counted");
    let status = fds.next().expect("counted");
    let passed: Vec<Tracked> = fds.collect();
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
    let name = &proc_name;
    let child = fork(&spec, prepared, move |result_w, [_, hold], frame| {
        let Ok(result) = place(result_w, sources, &inherit, hold) else {
            let _ = writeln!(std::io::stderr(), "pifork: cannot place inherited descriptors");
            sys::exit_now(1)
        };
        become_child(name, parent, StartMethod::Forkserver);
        set_own_method(StartMethod::Forkserver);
        fdtable::set_inherited(&inherit);
        let (code, frame) = run_target(frame, |out| run_entry(&entry, &args, out));
        let _ = sys::write_all(result.as_fd(), &frame);
        let _ = std::io::stdout().flush();
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

/// In a freshly forked worker: moves its result pipe and the descriptors it was passed out of
/// the way (above anything in use), closes every descriptor of the server's it still holds
/// (the originals included) but `hold`, its sentinel pipe end, then puts the passed ones under
/// the numbers they had in the parent. Returns the result pipe's new descriptor.
fn place(
    result_w: BorrowedFd<'_>,
    sources: &[Tracked],
    targets: &[RawFd],
    hold: RawFd,
) -> Result<OwnedFd, Errno> {
    // Copies numbered above every target, so that placing one target cannot close another's
    // source or the result pipe; and no higher, since no number at or above RLIMIT_NOFILE can
    // be had (its soft limit is 1024 by default, and for systemd's services).
    let above = targets.iter().copied().max().map_or(0, |t| t + 1);
    let result = sys::dup_above(result_w, above)?;
    let high = sources
        .iter()
        .map(|fd| sys::dup_above(fd.as_fd(), above))
        .collect::<Result<Vec<_>, _>>()?;
    fdtable::close_others_in_child(|fd| fd == hold);
    for (from, &to) in high.iter().zip(targets) {
        #[allow(unsafe_code)] // replacing by number in a freshly forked child (see sys/mod.rs)
        // SAFETY: the numbers the parent asked for belong to nobody in this worker any more:
        // the server's descriptors were just closed, and their owners are copies the worker
        // never uses (it leaves through `_exit`).
        unsafe {
            sys::dup2_onto(from.as_fd(), to)?
        };
    }
    Ok(result)
}
