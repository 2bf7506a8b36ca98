//! Which mechanism watches and reaps children here: pidfd where the kernel has it, else
//! CPython's pipe scheme. Decided once per process.

use std::os::fd::AsFd;
use std::sync::OnceLock;

use nix::errno::Errno;

use crate::status::StartMethod;
use crate::sys;

/// The start method of processes that choose none: fork, as in CPython on Linux.
pub(crate) const DEFAULT_METHOD: StartMethod = StartMethod::Fork;

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
    sys::pidfd_send_signal(fd.as_fd(), 0)?;
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
