//! The start method of processes that choose none, like CPython's `set_start_method`, and the
//! CPUs a process may run on.

use std::sync::atomic::{AtomicU8, Ordering};

use super::imp::backend::DEFAULT_METHOD;
use crate::status::StartMethod;
use crate::sys;

static START_METHOD: AtomicU8 = AtomicU8::new(DEFAULT_METHOD as u8);

/// Sets the start method used by processes that do not choose one (default: fork on Linux,
/// spawn on Windows).
pub fn set_start_method(method: StartMethod) {
    START_METHOD.store(method as u8, Ordering::Relaxed);
}

/// The start method used by processes that do not choose one.
pub fn get_start_method() -> StartMethod {
    StartMethod::ALL[START_METHOD.load(Ordering::Relaxed) as usize]
}

/// In a new child: its default start method is the one it was started with, as in CPython
/// (written only on change: a forked child that keeps its parent's value leaves the page shared).
pub(crate) fn set_own_method(method: StartMethod) {
    if START_METHOD.load(Ordering::Relaxed) != method as u8 {
        START_METHOD.store(method as u8, Ordering::Relaxed);
    }
}

/// The number of CPUs this process may run on (its affinity set), not the machine's total.
pub fn cpu_count() -> usize {
    available_cpus().len().max(1)
}

/// The CPUs this process may run on, ascending.
pub fn available_cpus() -> Vec<usize> {
    sys::get_affinity().unwrap_or_else(|_| vec![0])
}
