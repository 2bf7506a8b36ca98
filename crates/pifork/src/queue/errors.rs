//! What can go wrong with a queue.

use std::fmt;

/// Why a `put` did not queue its item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError {
    /// The queue stayed full (`put_nowait`, or until `put_timeout`'s timeout): CPython's
    /// `queue.Full`.
    Full,
    /// This process closed its handle ([`Queue::close`](super::Queue::close)).
    Closed,
    /// The item's encoding can never fit in the ring.
    TooLarge {
        /// The encoded item's size in bytes.
        size: usize,
        /// The largest encoding the ring carries.
        max: usize,
    },
    /// The ring was found broken by a process that took its lock over from a dead holder.
    Corrupt,
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full => f.write_str("the queue is full"),
            PutError::Closed => f.write_str("the queue is closed"),
            PutError::TooLarge { size, max } => write!(
                f,
                "a {size}-byte message cannot fit in the queue, which carries at most {max} bytes \
                 per message"
            ),
            PutError::Corrupt => f.write_str("the queue's shared memory is corrupt"),
        }
    }
}

impl std::error::Error for PutError {}

/// Why a `get` returned no item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// The queue stayed empty (`get_nowait`, or until `get_timeout`'s timeout): CPython's
    /// `queue.Empty`.
    Empty,
    /// This process closed its handle ([`Queue::close`](super::Queue::close)).
    Closed,
    /// The item was taken but did not decode as the queue's type (a queue claimed as another
    /// type than it carries).
    Decode {
        /// What was wrong with the bytes.
        reason: &'static str,
    },
    /// The ring was found broken by a process that took its lock over from a dead holder.
    Corrupt,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("the queue is empty"),
            GetError::Closed => f.write_str("the queue is closed"),
            GetError::Decode { reason } => write!(f, "cannot decode the queued item: {reason}"),
            GetError::Corrupt => f.write_str("the queue's shared memory is corrupt"),
        }
    }
}

impl std::error::Error for GetError {}

/// Why [`JoinableQueue::task_done`](super::JoinableQueue::task_done) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// Called more times than items were put (CPython's `ValueError`).
    TooManyCalls,
}

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskDoneError::TooManyCalls => f.write_str("task_done() called too many times"),
        }
    }
}

impl std::error::Error for TaskDoneError {}
