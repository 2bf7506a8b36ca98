//! The errors of a release the locks' rules forbid, as CPython raises them.

use std::fmt;

/// A release the lock's rules forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The lock was not locked (CPython: `ValueError: semaphore or lock released too many
    /// times`).
    Unlocked,
    /// The calling thread does not hold the recursive lock (CPython: `AssertionError: attempt
    /// to release recursive lock not owned by thread`).
    NotOwner,
    /// The bounded semaphore is at its bound (CPython: `ValueError: semaphore or lock released
    /// too many times`).
    OverReleased,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseError::Unlocked => "lock released too many times: it is not locked",
            ReleaseError::NotOwner => {
                "cannot release a recursive lock the calling thread does not hold"
            }
            ReleaseError::OverReleased => "semaphore released too many times",
        })
    }
}

impl std::error::Error for ReleaseError {}
