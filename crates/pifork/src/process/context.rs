//! `Context`: processes bound to one start method, like CPython's `get_context(method)`.

use super::lifecycle::Process;
use crate::message::Message;
use crate::status::StartMethod;

/// Builds processes bound to one start method, like CPython's `get_context(method)`.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    method: StartMethod,
}

/// A context whose processes use `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// [`Process::new`] with this context's start method (fork only: closures cannot travel).
    pub fn process<T: Message + 'static>(
        &self,
        target: impl FnOnce() -> T + 'static,
    ) -> Process<T> {
        Process::new(target).start_method(self.method)
    }

    /// [`Process::entry`] with this context's start method.
    pub fn entry<T: Message + 'static, A: Message>(&self, name: &str, args: &A) -> Process<T> {
        Process::entry(name, args).start_method(self.method)
    }
}
