//! Who this process is, as CPython's `current_process()` tells it: its name, pid, daemon flag
//! and start method — `MainProcess` for a program's own process — and who started it.

use std::sync::Mutex;

use super::target::in_daemon;
use crate::status::{Pid, StartMethod};

/// The running process, as its parent started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The name its parent gave it (`Process-N` by default), or `MainProcess`.
    pub name: String,
    /// Its pid.
    pub pid: Pid,
    /// Whether it is daemonic.
    pub daemon: bool,
    /// How it was started; `None` for the main process, which pifork did not start.
    pub start_method: Option<StartMethod>,
}

/// What a child knows of itself from its start.
struct Identity {
    name: String,
    parent: Pid,
    method: StartMethod,
}

static IDENTITY: Mutex<Option<Identity>> = Mutex::new(None);

/// In a new child: records its name, its parent's pid and how it was started. A lock held by
/// a parent thread at a fork (a fork from a threaded parent, allowed by the caller) leaves the
/// identity of the parent in place rather than blocking.
pub(crate) fn become_child(name: &str, parent: Pid, method: StartMethod) {
    if let Ok(mut identity) = IDENTITY.try_lock() {
        *identity = Some(Identity { name: name.to_string(), parent, method });
    }
}

/// The running process: name, pid, daemon flag and start method.
pub fn current_process() -> ProcessInfo {
    let pid = Pid(std::process::id() as i32);
    let daemon = in_daemon();
    match &*IDENTITY.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(id) => {
            ProcessInfo { name: id.name.clone(), pid, daemon, start_method: Some(id.method) }
        }
        None => ProcessInfo { name: "MainProcess".into(), pid, daemon, start_method: None },
    }
}

/// The pid of the process that started this one — under forkserver too, where the OS parent is
/// the server — or `None` in the main process.
pub(crate) fn parent_pid() -> Option<Pid> {
    IDENTITY.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|id| id.parent)
}
