//! The forkserver start method: a server forked early, while the program is still
//! single-threaded, forks the workers on request over a Unix socket.
//!
//! A request carries the entry's name and arguments, and — by `SCM_RIGHTS` — the worker's
//! result pipe, a status pipe and any inherited descriptors. The server forks the worker, sends
//! back its pid (and a pidfd, where the kernel has them), reaps it when it ends and writes its
//! exit status into the status pipe, which is the parent's sentinel. The server takes requests
//! from its parent only (the kernel vouches for the sender with `SCM_CREDENTIALS`) and exits
//! when its parent goes away.
//!
//! `slot` holds the parent's end of the running server; `client` starts, asks and stops it;
//! `server` is the server's own loop.

mod client;
mod protocol;
mod server;
pub(super) mod slot;

pub(crate) use client::launch;
pub use client::{pid, socket_fd, start, stop};
