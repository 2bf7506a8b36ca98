//! pifork: Python's `multiprocessing.Process` model for Linux, natively — fork, a pidfd
//! sentinel, `wait()` for the first of many processes, pinning, results back to the parent —
//! and a parallel Leibniz-series pi engine built on it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bench;
pub mod channel;
pub mod cli;
pub mod engine;
mod error;
pub mod message;
pub mod pi;
pub mod process;
pub mod race;
pub mod signals;
mod sys;
pub mod wait;

pub use channel::{Receiver, Sender, channel};
pub use error::{Error, Result};
pub use message::Message;
pub use process::{
    Backend, ExitCode, Pid, Process, Supervisor, available_cpus, backend, cpu_count, probe_pidfd,
    wait_all, wait_first,
};
pub use signals::SignalPipe;
pub use wait::wait;

/// Facts about the system as pifork sees it, for `pifork info`.
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
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}
