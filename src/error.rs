//! The appliance's errors: the library's, and what goes wrong in a parallel job or the service.

use std::fmt;

use super::service::state::StateError;
use pifork::{ExitCode, Pid, signal_name};

/// Everything that can stop a `pifork` command.
#[derive(Debug)]
pub enum Error {
    /// The process library failed.
    Process(pifork::Error),
    /// A worker of a parallel job ended before its work was done.
    WorkerDied {
        /// The worker's index.
        worker: usize,
        /// Its pid (None if it was never started).
        pid: Option<Pid>,
        /// How it ended.
        exitcode: ExitCode,
        /// Its panic message, if it panicked.
        panic: Option<String>,
    },
    /// A worker held a chunk far longer than chunks take (stopped, hung): it was killed.
    WorkerStuck {
        /// The worker's index.
        worker: usize,
        /// Its pid (None if it was never started).
        pid: Option<Pid>,
        /// The chunk it held.
        chunk: usize,
        /// How long it had held it.
        waited: std::time::Duration,
        /// How long a chunk of that size takes at the recent pace.
        expected: std::time::Duration,
    },
    /// A benchmark's process failed, so its time measures nothing.
    MeasurementFailed {
        /// What was measured.
        what: String,
        /// How the process ended.
        exitcode: ExitCode,
    },
    /// A system call of the appliance's own failed (the library's fail as [`Error::Process`]).
    Os {
        /// The call: `fork`, `waitpid`.
        op: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// More workers than a resource limit allows.
    TooManyWorkers {
        /// The workers asked for.
        workers: usize,
        /// The limit: `RLIMIT_NOFILE` or `RLIMIT_NPROC`.
        limit: &'static str,
        /// What they need of it.
        need: u64,
        /// What it allows (the hard limit for descriptors).
        have: u64,
    },
    /// A job was stopped by a signal (SIGINT, SIGTERM).
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The service's state directory or file is unusable.
    State(StateError),
    /// A chunk failed too often: the service gives up.
    ServiceFailed {
        /// The chunk.
        chunk: u64,
        /// How many times it was tried.
        tries: u32,
        /// Why the last try failed.
        last: Box<Error>,
    },
    /// One of the library's ways of sharing out a job failed (`pifork pi --via`).
    Via(super::via::ViaError),
    /// The worker pool failed (it could not start its workers, or its pipes failed).
    Pool(pifork::pool::PoolError),
    /// A chunk's kernel panicked in its worker (which lives on).
    ChunkPanicked {
        /// The chunk.
        chunk: usize,
        /// The panic's message.
        message: String,
    },
}

/// Result alias for the appliance.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<pifork::Error> for Error {
    fn from(e: pifork::Error) -> Error {
        Error::Process(e)
    }
}

impl From<StateError> for Error {
    fn from(e: StateError) -> Error {
        Error::State(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Process(e) => e.fmt(f),
            Error::Via(e) => e.fmt(f),
            Error::Pool(e) => write!(f, "worker pool: {e}"),
            Error::ChunkPanicked { chunk, message } => {
                write!(f, "chunk {chunk} panicked in its worker: {message}")
            }
            Error::WorkerDied { worker, pid, exitcode, panic } => {
                write!(f, "worker {} died with exit code {exitcode}", Worker(*worker, *pid))?;
                match panic {
                    Some(message) => write!(f, ": panicked: {message}"),
                    None => Ok(()),
                }
            }
            Error::WorkerStuck { worker, pid, chunk, waited, expected } => write!(
                f,
                "worker {} held chunk {chunk} for {:.1} s (chunks take about {:.3} s): stopped \
                 or hung, killed",
                Worker(*worker, *pid),
                waited.as_secs_f64(),
                expected.as_secs_f64()
            ),
            Error::MeasurementFailed { what, exitcode } => {
                write!(f, "{what} failed: the process exited with code {exitcode}")
            }
            Error::Os { op, source } => write!(f, "{op} failed: {source}"),
            Error::TooManyWorkers { workers, limit, need, have } => write!(
                f,
                "{workers} workers need {need} of {limit}, which allows {have}: use fewer workers \
                 or raise it ({})",
                if *limit == "RLIMIT_NOFILE" {
                    "ulimit -Hn, LimitNOFILE="
                } else {
                    "ulimit -u, LimitNPROC="
                }
            ),
            Error::Interrupted { signal } => match signal_name(*signal) {
                Some(name) => write!(f, "interrupted by {name}"),
                None => write!(f, "interrupted by signal {signal}"),
            },
            Error::State(e) => e.fmt(f),
            Error::ServiceFailed { chunk, tries, last } => {
                write!(f, "chunk {chunk} failed {tries} times, giving up; last: {last}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Process(e) => Some(e),
            Error::State(e) => Some(e),
            Error::ServiceFailed { last, .. } => Some(last.as_ref()),
            Error::Os { source, .. } => Some(source),
            Error::Via(e) => Some(e),
            Error::Pool(e) => Some(e),
            Error::WorkerDied { .. }
            | Error::ChunkPanicked { .. }
            | Error::WorkerStuck { .. }
            | Error::MeasurementFailed { .. }
            | Error::TooManyWorkers { .. }
            | Error::Interrupted { .. } => None,
        }
    }
}

/// A worker in a message: its index and, if known, its pid (`3 (pid 1234)`).
struct Worker(usize, Option<Pid>);

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(pid) => write!(f, "{} (pid {pid})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    #[test]
    fn a_state_directory_failure_keeps_its_os_error_down_the_chain() {
        let state = StateError::Io {
            path: "/var/lib/pifork".into(),
            op: "create",
            source: io::Error::from_raw_os_error(libc::EROFS),
        };
        let e = Error::from(state);
        assert!(e.to_string().starts_with("cannot create /var/lib/pifork: "), "{e}");
        let os = e.source().and_then(|s| s.source()).and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(os.and_then(io::Error::raw_os_error), Some(libc::EROFS));
        let failed = Error::ServiceFailed { chunk: 3, tries: 4, last: Box::new(e) };
        assert!(failed.source().is_some_and(|s| s.is::<Error>()));
    }

    #[test]
    fn a_failed_call_names_itself_and_keeps_its_os_error() {
        let e = Error::Os { op: "fork", source: io::Error::from_raw_os_error(libc::EAGAIN) };
        assert!(e.to_string().starts_with("fork failed: "), "{e}");
        let os = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(os.and_then(io::Error::raw_os_error), Some(libc::EAGAIN));
    }

    #[test]
    fn a_worker_without_a_pid_is_named_by_its_index() {
        // A started worker always has its pid (`worker 2 (pid 1234) died ...`); one that never
        // started is not given a made-up one.
        let died = Error::WorkerDied {
            worker: 2,
            pid: None,
            exitcode: ExitCode::Signaled(9),
            panic: Some("boom".into()),
        };
        assert_eq!(died.to_string(), "worker 2 died with exit code -SIGKILL: panicked: boom");
        let stuck = Error::WorkerStuck {
            worker: 1,
            pid: None,
            chunk: 7,
            waited: std::time::Duration::from_secs(3),
            expected: std::time::Duration::from_millis(20),
        };
        let text = "worker 1 held chunk 7 for 3.0 s (chunks take about 0.020 s): stopped or hung";
        assert!(stuck.to_string().starts_with(text), "{stuck}");
    }
}
