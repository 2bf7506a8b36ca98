//! `pifork info`: what the system offers, as the library sees it; its report is in
//! [`crate::report`], re-exported here.

use super::kernel::{self, Path};
use pifork::{Backend, available_cpus, backend, probe_pidfd};

pub use super::report::{format_cpu_list, info_json, info_text};

/// Facts about the system as pifork sees it.
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
    /// The pi kernel path in use, or why `PIFORK_KERNEL` cannot be followed.
    pub pi_kernel: std::result::Result<Path, String>,
    /// The kernel paths this CPU runs, best last.
    pub kernels: Vec<Path>,
}

/// Gathers [`SystemInfo`].
pub fn system_info() -> SystemInfo {
    let kernel = nix::sys::utsname::uname()
        .map(|u| {
            let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
            (text(u.sysname()), text(u.release()), text(u.machine()))
        })
        .unwrap_or_default();
    SystemInfo {
        kernel,
        pidfd: probe_pidfd().map_err(|e| format!("{e}")),
        cpus: available_cpus(),
        backend: backend(),
        pi_kernel: kernel::selected().map_err(|e| e.to_string()),
        kernels: kernel::supported(),
    }
}
