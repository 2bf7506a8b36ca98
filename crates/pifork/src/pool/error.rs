//! The pool's typed errors: CPython's `ValueError`s and `TimeoutError` of `multiprocessing.Pool`
//! and `concurrent.futures`, and what can become of one task.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::status::{ExitCode, Pid, StartMethod};

/// What went wrong with a pool, or with one of its tasks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker process.
    NoProcesses,
    /// The pool was closed or terminated: it takes no more work (CPython: "Pool not running").
    NotRunning,
    /// `join()` before `close()` or `terminate()`.
    StillRunning,
    /// The pool was terminated (or dropped) before this task finished.
    Terminated,
    /// The task's worker died while running it, on every attempt.
    WorkerDied {
        /// The last worker that died running it.
        pid: Pid,
        /// How that worker ended.
        exitcode: ExitCode,
        /// How many times the task was started.
        attempts: u32,
    },
    /// The task panicked (its worker lives on).
    TaskPanicked(String),
    /// The task ran longer than the pool's `task_timeout`; its worker was killed.
    TaskTimedOut {
        /// The worker that was killed.
        pid: Pid,
        /// The limit.
        timeout: Duration,
    },
    /// The task could not run: its arguments did not decode, or its entry failed.
    TaskFailed(String),
    /// Waiting for a result timed out (CPython's `TimeoutError`); the task goes on.
    Timeout,
    /// `successful()` on a result that is not ready (CPython's `ValueError`).
    NotReady,
    /// The future was cancelled before it ran.
    Cancelled,
    /// A closure that captures state runs only on forked workers.
    ClosureNeedsFork {
        /// The pool's start method.
        method: StartMethod,
    },
    /// No entry point is registered under this name.
    UnknownEntry(String),
    /// A worker runs another executable than the pool's parent: code cannot be named across.
    ExecutableMismatch,
    /// The initializer failed in a worker.
    InitializerFailed(String),
    /// Workers, one after the other, did not become ready in time (stopped, hung in their
    /// initializer); each was killed.
    StartTimedOut {
        /// The time each was given.
        timeout: Duration,
    },
    /// The start was given up, as its watch asked ([`PoolBuilder::build_watching`](super::PoolBuilder::build_watching)).
    Interrupted,
    /// A worker could not be started, or the pool's pipes failed.
    Process(Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::NoProcesses => f.write_str("the number of processes must be at least 1"),
            PoolError::NotRunning => f.write_str("the pool is not running (closed or terminated)"),
            PoolError::StillRunning => {
                f.write_str("the pool is still running: close() or terminate() before join()")
            }
            PoolError::Terminated => f.write_str("the pool was terminated before the task ended"),
            PoolError::WorkerDied { pid, exitcode, attempts } => write!(
                f,
                "the worker running the task died (pid {pid}, exit code {exitcode}) after \
                 {attempts} attempt(s)"
            ),
            PoolError::TaskPanicked(message) => write!(f, "the task panicked: {message}"),
            PoolError::TaskTimedOut { pid, timeout } => {
                write!(f, "the task ran past {timeout:?}: its worker (pid {pid}) was killed")
            }
            PoolError::TaskFailed(reason) => write!(f, "the task could not run: {reason}"),
            PoolError::Timeout => f.write_str("timed out waiting for the result"),
            PoolError::NotReady => f.write_str("the result is not ready"),
            PoolError::Cancelled => f.write_str("the future was cancelled"),
            PoolError::Interrupted => f.write_str("the pool's start was interrupted"),
            PoolError::StartTimedOut { timeout } => write!(
                f,
                "pool workers did not become ready within {:.1} s, one after the other",
                timeout.as_secs_f64()
            ),
            PoolError::ClosureNeedsFork { method } => write!(
                f,
                "a closure that captures state cannot travel to a {method} worker: use a plain \
                 fn (or a non-capturing closure), a registered entry, or the fork start method"
            ),
            PoolError::UnknownEntry(name) => write!(f, "no entry point named {name:?}"),
            PoolError::ExecutableMismatch => f.write_str(
                "the pool's worker runs another executable than its parent (replaced on disk?)",
            ),
            PoolError::InitializerFailed(message) => {
                write!(f, "the pool's initializer failed: {message}")
            }
            PoolError::Process(e) => write!(f, "pool worker: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Process(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for PoolError {
    fn from(e: Error) -> PoolError {
        PoolError::Process(e)
    }
}

/// Result alias for the pool.
pub type PoolResult<T> = std::result::Result<T, PoolError>;
