//! The process model: `Process` and its start methods, `Supervisor`, entry points, and the
//! per-OS backends beneath them.
//!
//! Front: `lifecycle` (Process), `context`, `supervisor`, `guard` (main_guard), `method`
//! (default start method, CPUs). Beneath: `entry` (registry), `target` (what a child runs),
//! `spec` (what a child knows), and the backend of this OS (`unix`: fork, spawn, forkserver,
//! reaping; `windows`: spawn).

mod context;
mod entry;
mod guard;
mod identity;
mod lifecycle;
mod method;
mod parent;
mod spec;
mod supervisor;
mod target;
#[cfg(target_os = "linux")]
mod unix;
#[cfg(windows)]
mod windows;

// The platform backend: every OS module offers the same `Child`, `Backend`, `backend`,
// `DEFAULT_METHOD`, `adopt_inherited` and start functions.
#[cfg(target_os = "linux")]
use unix as imp;
#[cfg(windows)]
use windows as imp;

pub use context::{Context, get_context};
#[cfg(target_os = "linux")]
pub(crate) use entry::is_registered;
pub use entry::{NOOP_ENTRY, register};
pub use guard::main_guard;
pub use identity::{ProcessInfo, current_process};
pub use imp::{Backend, backend};
#[cfg(target_os = "linux")]
pub use imp::{forkserver, probe_pidfd};
pub use lifecycle::Process;
pub use method::{available_cpus, cpu_count, get_start_method, set_start_method};
pub use parent::{ActiveChild, ParentProcess, ParentSentinel, active_children, parent_process};
pub use supervisor::{Supervisor, wait_all, wait_first};
