//! The syscall boundary: every system call of the crate, and every `unsafe` function. The crate
//! root denies `unsafe_code` outside this module; the only exceptions are allowed statement by
//! statement, where a caller meets the `# Safety` obligation of one of these functions with
//! knowledge only it has (each with its `// SAFETY:` note):
//!
//! - `process/unix/fork.rs`: the fork start method's `fork` — the parent is single-threaded
//!   (checked just before) or the caller opted in with `Process::allow_threads`;
//! - in a freshly forked child, closing or replacing descriptors by number, whose owners are
//!   copies the child never uses (it leaves through `_exit`): `fdtable::close_others_in_child`,
//!   and the fork server's `serve` and `place` (`process/unix/forkserver/server.rs`);
//! - owning descriptors the parent handed down: `fdtable::take_inherited` (each claimed once)
//!   and `main_guard` (`process/guard.rs`: the two pipes named in `PIFORK_SPAWN`);
//! - a pool worker turning a task's code distance back into its function, and making the
//!   zero-sized function value it calls (`pool/func.rs`: the worker checked at its start that
//!   it runs the parent's very executable).
//!
//! Everything else above is safe code.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
