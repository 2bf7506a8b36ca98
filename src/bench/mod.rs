//! Benchmarks: the kernel against the plain loop, the previous (division) kernel, the core's
//! division limit and the floating-point floor of the kernel's own operation mix; scaling over
//! worker counts against the machine's measured capacity; the start+join round trip; and
//! what the service's state costs to save per finished chunk.
//! Everything is measured in the same run and reported as medians, with the repeats' spread.
//! A measurement whose process failed is an error, never a number; a `Cancel` (Ctrl-C) is
//! checked between measurements and wins over a failure it caused.
//!
//! ```text
//! stats.rs        medians and the spread of repeats
//! kernel.rs       the single-core kernel figures
//! scaling.rs      1..=W workers against capacity and threads
//! round_trip.rs   start+join per start method, and the bare fork
//! bare_fork.rs    the bare fork itself: the one unsafe call
//! state.rs        saving a finished chunk: time and bytes, at 10^3 to 10^5 chunks
//! ```

#[allow(unsafe_code)] // fork and _exit, for the bare fork the round trips are compared with
mod bare_fork;
mod kernel;
mod round_trip;
mod scaling;
mod sharing;
mod state;
mod stats;

use crate::engine::Cancel;
use crate::error::{Error, Result};

pub use kernel::{FAST_FACTOR, KernelFigures, division_loop, kernel_figures};
pub use round_trip::{RoundTrips, round_trip, round_trips};
pub use scaling::{ScalingRow, capacity, scaling, scaling_warnings, threads_pi};
pub use sharing::{SharingRow, sharing};
pub use state::{FLAT_WITHIN, SAVING_CHUNKS, SavingRow, StateSaving, state_saving};
pub use stats::{NOISY_SPREAD, Timing, median, time_median};

/// Ends the benchmark if `cancel` says so (a signal arrived).
fn check(cancel: Option<Cancel<'_>>) -> Result<()> {
    match cancel.and_then(|(_, on_cancel)| on_cancel()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The error a failed measurement ends the benchmark with: the interruption if a signal
/// arrived meanwhile (Ctrl-C also reaches the children), else `err`.
fn failed(cancel: Option<Cancel<'_>>, err: impl Into<Error>) -> Error {
    check(cancel).err().unwrap_or_else(|| err.into())
}
