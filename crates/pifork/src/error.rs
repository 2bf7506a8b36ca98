//! The library's typed errors: one enum for the process model, the message codec, the fork
//! server and the system calls beneath them. An OS error stays reachable as the `source()`.

use std::fmt;

use crate::status::{ExitCode, Pid, StartMethod};

/// An error code from the operating system (errno, or Windows' last error), kept as the source
/// of [`Error::Sys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError(i32);

impl OsError {
    /// The raw code.
    pub fn raw_os_error(self) -> i32 {
        self.0
    }

    /// The error of code `code` (errno).
    #[cfg(target_os = "linux")]
    pub(crate) fn from_code(code: i32) -> OsError {
        OsError(code)
    }
}

impl From<OsError> for std::io::Error {
    fn from(e: OsError) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.0)
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        std::io::Error::from_raw_os_error(self.0).fmt(f)
    }
}

impl std::error::Error for OsError {}

/// Everything that can go wrong in pifork's library.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// `start()` was called on a process that was already started.
    AlreadyStarted,
    /// A call needed a started process.
    NotStarted,
    /// The process object was closed; no further calls are allowed.
    Closed,
    /// `close()` was called while the process was still running.
    StillRunning,
    /// A daemonic process tried to start a child.
    DaemonChildren,
    /// A raw fork was refused because the parent has more than one thread.
    MultiThreaded {
        /// Threads seen in `/proc/self/task`.
        threads: usize,
    },
    /// The requested CPU is not in the set this process may use.
    CpuUnavailable {
        /// The CPU asked for.
        cpu: usize,
    },
    /// A system call failed.
    Sys {
        /// Which operation failed.
        op: &'static str,
        /// The OS error (also the error's `source()`).
        source: OsError,
    },
    /// The child panicked; its panic message travelled back.
    ChildPanicked {
        /// Name of the process.
        name: String,
        /// Its pid.
        pid: Pid,
        /// The panic message.
        message: String,
    },
    /// The child ended without sending its result (killed by a signal, or exited early).
    ChildFailed {
        /// Name of the process.
        name: String,
        /// Its pid.
        pid: Pid,
        /// How it ended.
        exitcode: ExitCode,
    },
    /// No entry point is registered under this name.
    UnknownEntry {
        /// The name asked for.
        name: String,
        /// The names that are registered.
        known: String,
    },
    /// The spawn and forkserver start methods run registered entry points only.
    NeedsEntry {
        /// The start method asked for.
        method: StartMethod,
    },
    /// A spawned child ran its program's `main` instead of its entry: the program does not call
    /// `pifork::main_guard()` at the top of `main`.
    NoMainGuard,
    /// The start method does not exist on this platform.
    Unsupported {
        /// The start method asked for.
        method: StartMethod,
    },
    /// The fork server could not be started or refused a request.
    Forkserver {
        /// What went wrong.
        reason: String,
    },
    /// The child's result did not decode as the expected type.
    Decode {
        /// What was wrong with the bytes.
        reason: &'static str,
    },
    /// The platform has no such thing.
    Unavailable {
        /// What is missing.
        what: &'static str,
    },
    /// The descriptor was not handed to this process by its parent, or was claimed already.
    NotInherited {
        /// The descriptor's number.
        fd: i32,
    },
}

impl Error {
    /// A constructor for [`Error::Sys`] from anything that converts to an `io::Error`
    /// (nix's `Errno`, std's errors).
    pub(crate) fn sys<E: Into<std::io::Error>>(op: &'static str) -> impl Fn(E) -> Error + Copy {
        move |e| Error::Sys { op, source: OsError(e.into().raw_os_error().unwrap_or(0)) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyStarted => f.write_str("processes can only be started once"),
            Error::NotStarted => f.write_str("the process has not been started"),
            Error::Closed => f.write_str("the process object is closed"),
            Error::StillRunning => f.write_str("cannot close a process while it is still running"),
            Error::DaemonChildren => {
                f.write_str("daemonic processes are not allowed to have children")
            }
            Error::MultiThreaded { threads } => write!(
                f,
                "refusing to fork: this process has {threads} threads and fork copies only the \
                 calling one (a lock held by another thread would stay locked in the child); \
                 start processes before spawning threads, use the spawn or forkserver start \
                 method, or opt in with Process::allow_threads(true) if the child only runs \
                 fork-safe code"
            ),
            Error::CpuUnavailable { cpu } => {
                write!(f, "cpu {cpu} is not in this process's affinity set")
            }
            Error::Sys { op, source } => write!(f, "{op} failed: {source}"),
            Error::ChildPanicked { name, pid, message } => {
                write!(f, "{name} (pid {pid}) panicked: {message}")
            }
            Error::ChildFailed { name, pid, exitcode } => {
                write!(f, "{name} (pid {pid}) ended without a result, exit code {exitcode}")
            }
            Error::UnknownEntry { name, known } if known.is_empty() => {
                write!(f, "no entry point named {name:?} (names use letters, digits and _-.:)")
            }
            Error::UnknownEntry { name, known } => {
                write!(f, "no entry point named {name:?} is registered (registered: {known})")
            }
            Error::NeedsEntry { method } => write!(
                f,
                "the {method} start method runs registered entry points only: register the \
                 target with pifork::register and build the process with Process::entry"
            ),
            Error::NoMainGuard => f.write_str(
                "the spawned child ran the program's main instead of its entry: call \
                 pifork::main_guard() at the top of main, after registering the entry points",
            ),
            Error::Unsupported { method } => {
                write!(f, "the {method} start method is not available on this platform")
            }
            Error::Forkserver { reason } => write!(f, "fork server: {reason}"),
            Error::Decode { reason } => write!(f, "cannot decode the child's result: {reason}"),
            Error::Unavailable { what } => write!(f, "{what} is not available on this platform"),
            Error::NotInherited { fd } => write!(
                f,
                "descriptor {fd} was not handed to this process by its parent (or was taken \
                 already): list it in the parent's Process::inherit_fds"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// The OS error behind a failed system call, if that is what this is.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } => Some(source.raw_os_error()),
            _ => None,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
