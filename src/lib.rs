//! pifork: Python's `multiprocessing.Process` model for Linux, natively — fork, a pidfd
//! sentinel, `wait()` for the first of many processes, pinning, results back to the parent —
//! and a parallel Leibniz-series pi engine built on it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// The process model is portable (fork and forkserver are Linux-only, spawn works on Windows
// too); the pi engine and everything the CLI needs build on it with Linux descriptors.
#[cfg(unix)]
pub mod bench;
#[cfg(unix)]
pub mod channel;
#[cfg(unix)]
pub mod cli;
#[cfg(unix)]
pub mod engine;
mod error;
pub mod message;
#[cfg(unix)]
pub mod notify;
pub mod pi;
pub mod process;
#[cfg(unix)]
pub mod race;
#[cfg(unix)]
pub mod service;
#[cfg(unix)]
pub mod signals;
pub mod state;
mod sys;
pub mod wait;

#[cfg(unix)]
pub use channel::{Receiver, Sender, channel};
pub use error::{Error, Result};
pub use message::Message;
pub use process::{
    Backend, Context, ExitCode, NOOP_ENTRY, Pid, Process, RawInherit, Sentinel, StartMethod,
    Supervisor, available_cpus, backend, cpu_count, get_context, get_start_method, main_guard,
    register, set_start_method, signal_name, wait_all, wait_first,
};
#[cfg(unix)]
pub use process::{forkserver, probe_pidfd};
#[cfg(unix)]
pub use signals::SignalPipe;
pub use wait::wait;

/// Facts about the system as pifork sees it, for `pifork info`.
#[cfg(unix)]
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// Kernel name, release and machine, as `uname` gives them.
    pub kernel: (String, String, String),
    /// `Ok` if pidfd works here, else why not.
    pub pidfd: std::result::Result<(), String>,
    /// CPUs this process may use.
    pub cpus: Vec<usize>,
    /// The backend chosen.
    pub backend: Backend,
}

/// Gathers [`SystemInfo`].
#[cfg(unix)]
pub fn system_info() -> SystemInfo {
    SystemInfo {
        kernel: sys::uname().unwrap_or_default(),
        pidfd: probe_pidfd().map_err(|e| format!("{e}")),
        cpus: available_cpus(),
        backend: backend(),
    }
}

/// Formats a CPU list compactly: `0-3`, `0,2,4-5`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}
