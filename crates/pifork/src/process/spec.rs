//! What a child needs to know about itself, fixed before it starts, whatever the method.

use crate::sys::RawInherit;

/// A child's name, daemon flag, CPUs, thread permission and inherited descriptors.
pub(crate) struct ChildSpec<'a> {
    /// The process's name (for messages).
    pub name: &'a str,
    /// Daemonic: dies with its parent, may not start children.
    pub daemon: bool,
    /// CPUs to pin it to.
    pub cpus: Option<&'a [usize]>,
    /// A raw fork from a multi-threaded parent is allowed.
    #[cfg_attr(windows, allow(dead_code, reason = "only the fork start method checks threads"))]
    pub allow_threads: bool,
    /// Descriptors (handles) it keeps under the same numbers.
    pub inherit: &'a [RawInherit],
}
