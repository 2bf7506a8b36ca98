//! Deadlines on the monotonic clock, and the milliseconds left until one, for `poll(2)` and
//! `WaitForMultipleObjects`.

use std::time::{Duration, Instant};

/// Milliseconds left until `deadline`, rounded up so a wait never ends early; `None` for no
/// deadline, `Some(0)` once it has passed.
pub(crate) fn remaining_ms(deadline: Option<Instant>) -> Option<i32> {
    deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            0
        } else {
            let ms = left.as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    })
}

/// The deadline `timeout` from now (monotonic clock); `None` waits forever.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
