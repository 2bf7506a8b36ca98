//! What a worker of the pool runs: a chunk's terms in, its sum out with the time it took and
//! where it ran, and the set-up each worker does first. Both are plain `fn` items, so they
//! reach workers started by any start method without registration.

use std::time::Instant;

use crate::pi;
use pifork::{Message, StartMethod};

/// A function summing terms `m..=n` (the pi kernel, or a stand-in in tests).
pub type Kernel = fn(u64, u64) -> f64;

/// How the pool's workers are started.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Worker processes.
    pub workers: usize,
    /// Pin each worker to one of the available CPUs.
    pub pin: bool,
    /// How the workers are started.
    pub start: StartMethod,
    /// A stand-in for the Leibniz kernel (fork only: it travels as captured state). Used by
    /// tests.
    pub kernel: Option<Kernel>,
}

/// One chunk's outcome, as a worker sends it back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ChunkDone {
    /// The partial sum.
    pub sum: f64,
    /// Nanoseconds the kernel took.
    pub ns: u64,
    /// The CPU it ran on last (`u64::MAX`: unknown).
    pub cpu: u64,
    /// The only CPU it may run on (`u64::MAX`: several).
    pub only_cpu: u64,
    /// The worker's pid.
    pub pid: i32,
}

impl Message for ChunkDone {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.sum, self.ns, self.cpu, self.only_cpu, self.pid).encode(out);
    }

    fn decode(input: &mut &[u8]) -> pifork::Result<Self> {
        let (sum, ns, cpu, only_cpu, pid) = Message::decode(input)?;
        Ok(ChunkDone { sum, ns, cpu, only_cpu, pid })
    }
}

/// The task of the real pool: chunk `(m, n)` through the Leibniz kernel.
pub(super) fn sum_chunk(bounds: (u64, u64)) -> ChunkDone {
    run_chunk(pi::partial_sum, bounds)
}

/// Chunk `(m, n)` through `kernel`, timed.
pub(super) fn run_chunk(kernel: Kernel, (m, n): (u64, u64)) -> ChunkDone {
    let start = Instant::now();
    let sum = kernel(m, n);
    let ns = start.elapsed().as_nanos() as u64;
    let cpu = nix::sched::sched_getcpu().map_or(u64::MAX, |c| c as u64);
    let allowed = pifork::available_cpus();
    let only_cpu = match allowed[..] {
        [one] => one as u64,
        _ => u64::MAX,
    };
    ChunkDone { sum, ns, cpu, only_cpu, pid: std::process::id() as i32 }
}

/// Each worker's set-up: a SIGHUP meant for the service (`systemctl kill -s HUP` reaches
/// every process of the unit) must not end its workers; the supervisor alone answers it.
pub(super) fn ignore_hangup(_: ()) {
    let _ = pifork::signals::ignore(&[signal_hook::consts::SIGHUP]);
}
