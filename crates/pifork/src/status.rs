//! The small value types of the process model: a process id, how a process ended, and how a
//! process is started. They depend on nothing else in the crate.

use std::fmt;
use std::str::FromStr;

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(pub(crate) i32);

impl Pid {
    /// The raw number.
    pub fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a process ended: CPython's `exitcode`, an exit status or a negated signal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The process exited with this status.
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
}

impl ExitCode {
    /// CPython's integer form: the status, or minus the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Exited(code) => code,
            ExitCode::Signaled(signal) => -signal,
        }
    }

    /// The inverse of [`ExitCode::code`]: negative numbers are signals.
    pub fn from_code(code: i32) -> ExitCode {
        if code < 0 { ExitCode::Signaled(-code) } else { ExitCode::Exited(code) }
    }

    /// True for a clean exit with status 0.
    pub fn success(self) -> bool {
        self == ExitCode::Exited(0)
    }
}

impl fmt::Display for ExitCode {
    /// Python-style: `0`, `1`, `-SIGTERM` (or `-15` for a signal without a name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitCode::Exited(code) => write!(f, "{code}"),
            ExitCode::Signaled(signal) => match signal_name(signal) {
                Some(name) => write!(f, "-{name}"),
                None => write!(f, "-{signal}"),
            },
        }
    }
}

/// The name of a (Linux-numbered) signal: `SIGTERM` for 15.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal).ok().and_then(|s| s.checked_sub(1)).and_then(|i| NAMES.get(i)).copied()
}

/// How a child process is started, as in CPython's `multiprocessing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// A raw `fork`: the child is a copy of the parent and may run any closure.
    Fork,
    /// A fresh run of the current executable that runs a registered entry point.
    Spawn,
    /// A server forked early, while the program was still single-threaded, forks the children.
    Forkserver,
}

impl StartMethod {
    /// The method's name: `fork`, `spawn`, `forkserver`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    /// Every method, in CPython's order.
    pub const ALL: [StartMethod; 3] =
        [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver];
}

/// A name that is not a start method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStartMethod(pub String);

impl fmt::Display for UnknownStartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown start method '{}' (use fork, spawn or forkserver)", self.0)
    }
}

impl std::error::Error for UnknownStartMethod {}

impl FromStr for StartMethod {
    type Err = UnknownStartMethod;

    fn from_str(s: &str) -> Result<Self, UnknownStartMethod> {
        StartMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownStartMethod(s.to_string()))
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_read_like_cpython() {
        assert_eq!(ExitCode::Signaled(15).to_string(), "-SIGTERM");
        assert_eq!(ExitCode::Signaled(64).to_string(), "-64");
        assert_eq!(ExitCode::from_code(-9), ExitCode::Signaled(9));
        assert_eq!(ExitCode::from_code(3).code(), 3);
    }

    #[test]
    fn start_methods_parse_by_name() {
        assert_eq!("forkserver".parse::<StartMethod>(), Ok(StartMethod::Forkserver));
        let err = "vfork".parse::<StartMethod>().unwrap_err();
        assert_eq!(err.to_string(), "unknown start method 'vfork' (use fork, spawn or forkserver)");
    }
}
