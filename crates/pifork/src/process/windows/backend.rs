//! How children are watched and ended on Windows: process handles, the only way there is.

use crate::status::StartMethod;

/// The start method of processes that choose none: spawn, the only one there is here.
pub(crate) const DEFAULT_METHOD: StartMethod = StartMethod::Spawn;

/// How children are watched and ended on this system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Process handles: `WaitForMultipleObjects` to wait, `TerminateProcess` to end.
    Handles,
}

impl Backend {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Handles => "handles",
        }
    }
}

/// The backend in use: there is only one on Windows.
pub fn backend() -> Backend {
    Backend::Handles
}
