//! The library's typed errors.

use std::fmt;

use crate::process::ExitCode;

/// Everything that can go wrong in pifork's library.
#[derive(Debug, Clone, PartialEq)]
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
        /// The OS error code (errno, or Windows' last error).
        code: i32,
    },
    /// The child panicked; its panic message travelled back.
    ChildPanicked {
        /// Name of the process.
        name: String,
        /// Its pid.
        pid: i32,
        /// The panic message.
        message: String,
    },
    /// The child ended without sending its result (killed by a signal, or exited early).
    ChildFailed {
        /// Name of the process.
        name: String,
        /// Its pid.
        pid: i32,
        /// How it ended.
        exitcode: ExitCode,
    },
    /// A worker of a parallel job ended before its work was done.
    WorkerDied {
        /// The worker's index.
        worker: usize,
        /// Its pid.
        pid: i32,
        /// How it ended.
        exitcode: ExitCode,
        /// Its panic message, if it panicked.
        panic: Option<String>,
    },
    /// A job was stopped by a signal (SIGINT, SIGTERM).
    Interrupted {
        /// The signal number.
        signal: i32,
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
        method: &'static str,
    },
    /// A spawned child ran its program's `main` instead of its entry: the program does not call
    /// `pifork::main_guard()` at the top of `main`.
    NoMainGuard,
    /// The start method does not exist on this platform.
    Unsupported {
        /// The start method asked for.
        method: &'static str,
    },
    /// The fork server could not be started or refused a request.
    Forkserver {
        /// What went wrong.
        reason: String,
    },
    /// The service's state directory or file is unusable.
    State(crate::state::StateError),
    /// A chunk failed too often: the service gives up.
    ServiceFailed {
        /// The chunk.
        chunk: u64,
        /// How many times it was tried.
        tries: u32,
        /// Why the last try failed.
        last: Box<Error>,
    },
    /// The child's result did not decode as the expected type.
    Decode {
        /// What was wrong with the bytes.
        reason: &'static str,
    },
}

impl Error {
    /// A constructor for [`Error::Sys`] from anything that converts to an `io::Error`
    /// (nix's `Errno`, std's errors).
    pub(crate) fn sys<E: Into<std::io::Error>>(op: &'static str) -> impl Fn(E) -> Error + Copy {
        move |e| Error::Sys { op, code: e.into().raw_os_error().unwrap_or(0) }
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
            Error::Sys { op, code } => {
                write!(f, "{op} failed: {}", std::io::Error::from_raw_os_error(*code))
            }
            Error::ChildPanicked { name, pid, message } => {
                write!(f, "{name} (pid {pid}) panicked: {message}")
            }
            Error::ChildFailed { name, pid, exitcode } => {
                write!(f, "{name} (pid {pid}) ended without a result, exit code {exitcode}")
            }
            Error::WorkerDied { worker, pid, exitcode, panic } => {
                write!(f, "worker {worker} (pid {pid}) died with exit code {exitcode}")?;
                match panic {
                    Some(message) => write!(f, ": panicked: {message}"),
                    None => Ok(()),
                }
            }
            Error::Interrupted { signal } => match crate::process::signal_name(*signal) {
                Some(name) => write!(f, "interrupted by {name}"),
                None => write!(f, "interrupted by signal {signal}"),
            },
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
            Error::State(e) => e.fmt(f),
            Error::ServiceFailed { chunk, tries, last } => {
                write!(f, "chunk {chunk} failed {tries} times, giving up; last: {last}")
            }
            Error::Decode { reason } => write!(f, "cannot decode the child's result: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
