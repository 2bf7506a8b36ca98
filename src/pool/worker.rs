//! One worker, from both ends: the loop a worker process runs (take a chunk, sum it, answer
//! with the sum and its time, until the task channel closes), its entry point for spawn and
//! forkserver, and the parent's handle on the process with the chunks it holds.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pi;
use pifork::{ExitCode, Process, Receiver, Sender, StartMethod, channel};

/// A function summing terms `m..=n` (the pi kernel, or a stand-in in tests).
pub type Kernel = fn(u64, u64) -> f64;

/// The entry point of a worker started by spawn or forkserver: its arguments are the numbers
/// of its inherited task and result descriptors.
pub const WORKER_ENTRY: &str = "pifork.pi-worker";

/// Registers the worker's entry point (from `main`, before `main_guard`).
pub fn register_entries() {
    pifork::register(WORKER_ENTRY, |(tasks, results): (i32, i32)| {
        let tasks = Receiver::from_inherited(tasks).expect("task channel");
        let results = Sender::from_inherited(results).expect("result channel");
        worker_loop(tasks, results, pi::partial_sum)
    });
}

/// What a worker returns when its task channel closes: (chunks, terms, busy ns, cpu or
/// `u64::MAX`).
pub(super) type Summary = (u64, u64, u64, u64);

/// A worker's life: take `(first, last)` tasks until the channel closes, answer each with
/// `(sum, ns)`.
fn worker_loop(
    tasks: Receiver<(u64, u64)>,
    results: Sender<(f64, u64)>,
    kernel: Kernel,
) -> Summary {
    // A SIGHUP meant for the service (`systemctl kill -s HUP` reaches every process of the
    // unit) must not end its workers: the supervisor alone answers it.
    let _ = pifork::signals::ignore(&[signal_hook::consts::SIGHUP]);
    let (mut chunks, mut terms, mut busy) = (0u64, 0u64, 0u64);
    while let Some((m, n)) = tasks.recv().expect("task channel") {
        let start = Instant::now();
        let sum = kernel(m, n);
        let ns = start.elapsed().as_nanos() as u64;
        results.send(&(sum, ns)).expect("result channel");
        chunks += 1;
        terms += n - m + 1;
        busy += ns;
    }
    let cpu = nix::sched::sched_getcpu().map_or(u64::MAX, |c| c as u64);
    (chunks, terms, busy, cpu)
}

/// How the pool's workers are started.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Worker processes.
    pub workers: usize,
    /// Pin worker i to the i-th available CPU.
    pub pin: bool,
    /// How the workers are started.
    pub start: StartMethod,
    /// A stand-in for the Leibniz kernel (fork only: a function cannot travel to a spawned
    /// process). Used by tests.
    pub kernel: Option<Kernel>,
}

/// One worker process, its two channels and the chunks it holds, as the parent sees them.
pub(super) struct Worker {
    pub(super) process: Process<Summary>,
    pub(super) tasks: Option<Sender<(u64, u64)>>,
    pub(super) results: Receiver<(f64, u64)>,
    /// Chunks handed to this worker and not yet reported, oldest first, with their sizes in
    /// terms.
    pub(super) in_flight: VecDeque<(usize, u64)>,
    /// When the worker began the oldest of them (when it was handed out to an idle worker,
    /// or when the one before it was reported), and whether it was reported late already.
    pub(super) front: Option<(Instant, bool)>,
    pub(super) pinned: Option<usize>,
}

impl Worker {
    /// Starts worker `index`, pinned to `pinned`, the way `spec` says.
    pub(super) fn start(index: usize, pinned: Option<usize>, spec: &PoolSpec) -> Result<Worker> {
        let (task_tx, task_rx) = channel::<(u64, u64)>()?;
        let (result_tx, result_rx) = channel::<(f64, u64)>()?;
        let keep = [task_rx.as_raw_fd(), result_tx.as_raw_fd()];
        // With spawn and forkserver the child's ends travel as inherited descriptors, under
        // the same numbers; the parent's copies are closed once the child has started.
        let mut child_ends = None;
        let process = match (spec.start, spec.kernel) {
            (StartMethod::Fork, kernel) => {
                let kernel = kernel.unwrap_or(pi::partial_sum);
                // The closure owns the child's ends: dropped in the parent at start().
                Process::new(move || worker_loop(task_rx, result_tx, kernel))
            }
            (method, None) => {
                child_ends = Some((task_rx, result_tx));
                Process::entry(WORKER_ENTRY, &(keep[0], keep[1])).start_method(method)
            }
            (method, Some(_)) => {
                return Err(pifork::Error::NeedsEntry { method }.into());
            }
        };
        let mut process = process.name(format!("worker-{index}")).daemon(true).inherit_fds(keep);
        if let Some(cpu) = pinned {
            process = process.cpus([cpu]);
        }
        process.start()?;
        drop(child_ends);
        Ok(Worker {
            process,
            tasks: Some(task_tx),
            results: result_rx,
            in_flight: VecDeque::new(),
            front: None,
            pinned,
        })
    }

    /// Its pid (0 once it can no longer be known).
    pub(super) fn pid(&self) -> i32 {
        self.process.pid().ok().flatten().map_or(0, |p| p.as_raw())
    }

    /// The chunk it holds, its size and since when, if any.
    pub(super) fn current(&self) -> Option<(usize, u64, Instant, bool)> {
        let (since, warned) = self.front?;
        let &(chunk, terms) = self.in_flight.front()?;
        Some((chunk, terms, since, warned))
    }

    /// Reaps worker `index`, which ended (or is ending) before its work was done, and says
    /// how.
    pub(super) fn died(&mut self, index: usize) -> Error {
        let pid = self.process.pid().ok().flatten();
        // It closed its channel or its sentinel fired: it is exiting. Give it a moment to
        // finish (so a panic message arrives whole), then make sure.
        if !matches!(self.process.join_timeout(Duration::from_secs(1)), Ok(true)) {
            let _ = self.process.kill();
        }
        let panic = match self.process.result() {
            Err(pifork::Error::ChildPanicked { message, .. }) => Some(message),
            _ => None,
        };
        let exitcode = self.process.exitcode().ok().flatten().unwrap_or(ExitCode::Signaled(9));
        Error::WorkerDied { worker: index, pid, exitcode, panic }
    }
}
