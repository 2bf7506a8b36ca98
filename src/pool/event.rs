//! What the pool reports: its events as typed values, the line that tells of a late worker,
//! and each worker's share of a run.

use std::time::Duration;

use crate::error::Error;

/// One worker's share of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReport {
    /// Index 0..W.
    pub index: usize,
    /// Its pid.
    pub pid: i32,
    /// The CPU it was pinned to (None with `--no-pin`).
    pub pinned: Option<usize>,
    /// The CPU it was last seen running on.
    pub cpu: Option<usize>,
    /// Chunks it computed.
    pub chunks: u64,
    /// Terms it computed.
    pub terms: u64,
    /// Time it spent computing.
    pub busy: Duration,
}

/// Something that happened in the pool.
#[derive(Debug)]
pub enum Event {
    /// Worker `worker` reported the sum of chunk `chunk`.
    Reported {
        /// The worker's index.
        worker: usize,
        /// The chunk's index (as given to [`Pool::assign`](super::Pool::assign)).
        chunk: usize,
        /// Its partial sum.
        sum: f64,
    },
    /// Worker `worker` ended holding `lost` chunks: it is reaped, and a replacement takes its
    /// slot (the chunks queued behind the one it ran went to other workers).
    Ended {
        /// The worker's index.
        worker: usize,
        /// The chunks it held.
        lost: Vec<usize>,
        /// How it ended.
        error: Error,
    },
    /// Chunk `chunk` failed in its worker, which lives on (its kernel panicked).
    Failed {
        /// The chunk's index.
        chunk: usize,
        /// What failed.
        error: Error,
    },
    /// The extra descriptor with this index was ready.
    Ready(usize),
    /// Worker `worker` has held chunk `chunk` for `waited`, far beyond the `expected` time
    /// (reported once per chunk). Much later it is ended as stuck.
    Late {
        /// The worker's index.
        worker: usize,
        /// Its pid.
        pid: i32,
        /// The chunk it holds.
        chunk: usize,
        /// How long it has held it.
        waited: Duration,
        /// How long a chunk of that size takes at the recent pace.
        expected: Duration,
    },
}

/// The line that reports [`Event::Late`]: which worker holds which chunk, for how long, and
/// how long chunks take.
pub fn describe_late(
    worker: usize,
    pid: i32,
    chunk: usize,
    waited: Duration,
    expected: Duration,
) -> String {
    format!(
        "worker {worker} (pid {pid}) has held chunk {chunk} for {:.1} s; chunks take about {:.3} s",
        waited.as_secs_f64(),
        expected.as_secs_f64()
    )
}
