//! What the parent and its fork server say to each other over their socket.

/// A request: entry, arguments, daemonic, CPUs, inherited descriptors' numbers in the parent,
/// process name. Descriptors attached: result pipe, status pipe, then the inherited ones.
pub(super) type Request = (String, Vec<u8>, bool, Option<Vec<usize>>, Vec<i32>, String);

/// A reply: the worker's pid, or why there is none. A pidfd may be attached (the client sees
/// it as the third item).
pub(super) type Reply = (i32, String);

/// The largest message either side sends.
pub(super) const MAX_MESSAGE: usize = 64 * 1024;
