//! The Linux backend: raw `fork`, a pidfd (or, where pidfd is missing, a pipe) as the
//! sentinel, `pidfd_send_signal`/`kill` for signals, `waitid(P_PIDFD)`/`waitpid` for reaping;
//! `fork` + `execve` for spawn; a fork server for forkserver.
//!
//! `backend` decides pidfd or pipe; `child` is a started child as its parent sees it; `setup`
//! runs around a fork; `fork`, `spawn` and `forkserver` are the three start methods.

pub(crate) mod backend;
pub(crate) mod child;
mod children;
pub(crate) mod fork;
pub mod forkserver;
mod pidfd;
mod setup;
mod spawn;

pub use backend::{Backend, backend, probe_pidfd};
pub(crate) use child::Child;
pub(crate) use children::active as active_children;
pub(crate) use fork::start_fork;
pub(crate) use forkserver::launch as start_forkserver;
pub(crate) use pidfd::{ProcessWatch, watch_process, watched};
pub(crate) use spawn::{adopt_inherited, spawn};

pub(crate) use crate::fdtable::set_inherited;
