//! The parallel pi engine: the fixed chunks of 1..=N are handed to pinned, daemonic worker
//! processes, one per core; the parent waits for the *first* worker to report, gives that
//! worker the next chunk, and combines the partial sums in chunk order at the end.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::channel::{Receiver, Sender, channel};
use crate::error::{Error, Result};
use crate::pi;
use crate::process::{self, Backend, Process, StartMethod};
use crate::sys;
use crate::wait::wait;

/// A function summing terms `m..=n` (the pi kernel, or a stand-in in tests).
pub type Kernel = fn(u64, u64) -> f64;

/// What to compute and how.
#[derive(Debug, Clone)]
pub struct PiJob {
    /// Terms of the series, N.
    pub terms: u64,
    /// Worker processes (clamped to the number of chunks).
    pub workers: usize,
    /// Pin worker i to the i-th available CPU.
    pub pin: bool,
    /// How the workers are started.
    pub start: StartMethod,
    /// A stand-in for the Leibniz kernel (fork only: a function cannot travel to a spawned
    /// process). Used by tests.
    pub kernel: Option<Kernel>,
}

impl PiJob {
    /// N terms on `workers` pinned workers with the real kernel.
    pub fn new(terms: u64, workers: usize) -> PiJob {
        PiJob { terms, workers, pin: true, start: process::get_start_method(), kernel: None }
    }
}

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

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct PiReport {
    /// N.
    pub terms: u64,
    /// 4 * S_N.
    pub estimate: f64,
    /// Wall time from the first fork to the combined result.
    pub wall: Duration,
    /// Per worker, by index.
    pub workers: Vec<WorkerReport>,
    /// The process backend used.
    pub backend: Backend,
}

/// The summary a worker returns when its task channel closes:
/// (chunks, terms, busy ns, cpu or u64::MAX).
pub(crate) type Summary = (u64, u64, u64, u64);

fn worker_loop(
    tasks: Receiver<(u64, u64)>,
    results: Sender<(f64, u64)>,
    kernel: Kernel,
) -> Summary {
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
    let cpu = sys::current_cpu().map_or(u64::MAX, |c| c as u64);
    (chunks, terms, busy, cpu)
}

/// The entry point of a worker started by spawn or forkserver: its arguments are the
/// numbers of its inherited task and result descriptors.
pub const WORKER_ENTRY: &str = "pifork.pi-worker";

/// Registers the engine's worker entry point (done once, before any lookup).
pub(crate) fn register_entries() {
    crate::process::register(WORKER_ENTRY, |(tasks, results): (i32, i32)| {
        worker_loop(Receiver::inherited(tasks), Sender::inherited(results), pi::partial_sum)
    });
}

/// One worker process and its two channels (shared with the service).
pub(crate) struct Worker {
    pub(crate) process: Process<Summary>,
    pub(crate) tasks: Option<Sender<(u64, u64)>>,
    pub(crate) results: Receiver<(f64, u64)>,
    /// Chunks handed to this worker and not yet reported, oldest first.
    pub(crate) in_flight: VecDeque<usize>,
    pub(crate) pinned: Option<usize>,
}

impl Worker {
    /// Starts worker `index`, pinned to `pinned`, the way `job` says.
    pub(crate) fn start(index: usize, pinned: Option<usize>, job: &PiJob) -> Result<Worker> {
        let (task_tx, task_rx) = channel::<(u64, u64)>()?;
        let (result_tx, result_rx) = channel::<(f64, u64)>()?;
        let keep = [task_rx.as_raw_fd(), result_tx.as_raw_fd()];
        // With spawn and forkserver the child's ends travel as inherited descriptors, under
        // the same numbers; the parent's copies are closed once the child has started.
        let mut child_ends = None;
        let process = match (job.start, job.kernel) {
            (StartMethod::Fork, kernel) => {
                let kernel = kernel.unwrap_or(pi::partial_sum);
                // The closure owns the child's ends: dropped in the parent at start().
                Process::new(move || worker_loop(task_rx, result_tx, kernel))
            }
            (method, None) => {
                child_ends = Some((task_rx, result_tx));
                Process::entry(WORKER_ENTRY, &(keep[0], keep[1])).start_method(method)
            }
            (method, Some(_)) => return Err(Error::NeedsEntry { method: method.as_str() }),
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
            pinned,
        })
    }

    /// The error for a worker that ended before its work was done (after reaping it).
    pub(crate) fn died(&mut self, index: usize) -> Error {
        let pid = self.process.pid().ok().flatten().map_or(0, |p| p.as_raw());
        // It closed its channel or its sentinel fired: it is exiting. Give it a moment to
        // finish (so a panic message arrives whole), then make sure.
        if !matches!(self.process.join_timeout(Duration::from_secs(1)), Ok(true)) {
            let _ = self.process.kill();
        }
        let panic = match self.process.result() {
            Err(Error::ChildPanicked { message, .. }) => Some(message),
            _ => None,
        };
        let exitcode = self
            .process
            .exitcode()
            .ok()
            .flatten()
            .unwrap_or(process::ExitCode::Signaled(nix::sys::signal::Signal::SIGKILL as i32));
        Error::WorkerDied { worker: index, pid, exitcode, panic }
    }
}

/// Runs `job`. `cancel`, when given, is watched with the workers (a [`crate::SignalPipe`]);
/// once it is readable the workers are terminated and reaped, and `on_cancel` supplies the
/// error to return.
pub fn run(
    job: &PiJob,
    cancel: Option<(BorrowedFd<'_>, &dyn Fn() -> Option<Error>)>,
) -> Result<PiReport> {
    let plan = pi::chunk_plan(job.terms);
    let count = job.workers.clamp(1, plan.len());
    let cpus = process::available_cpus();
    let started = Instant::now();
    let mut crew = Crew(Vec::with_capacity(count));
    for index in 0..count {
        let pinned = job.pin.then(|| cpus[index % cpus.len()]);
        crew.0.push(Worker::start(index, pinned, job)?);
    }
    let workers = &mut crew.0;
    let mut partials = vec![0.0f64; plan.len()];
    let mut next = 0;
    // Every worker gets one chunk, then one more queued behind it, so that it never waits
    // for the parent between chunks.
    for _ in 0..QUEUED {
        for (i, w) in workers.iter_mut().enumerate() {
            hand_out(i, w, &plan, &mut next)?;
        }
    }
    while workers.iter().any(|w| !w.in_flight.is_empty()) {
        // Results first, then sentinels, then the cancel descriptor.
        let active: Vec<usize> = (0..count).filter(|&i| !workers[i].in_flight.is_empty()).collect();
        let mut fds: Vec<BorrowedFd<'_>> =
            active.iter().map(|&i| workers[i].results.as_fd()).collect();
        for &i in &active {
            fds.push(workers[i].process.sentinel()?);
        }
        if let Some((fd, _)) = &cancel {
            fds.push(*fd);
        }
        let ready = wait(&fds, None)?;
        drop(fds);
        if let Some((_, on_cancel)) = &cancel
            && ready.contains(&(2 * active.len()))
            && let Some(err) = on_cancel()
        {
            log::debug!("cancelled: {err}");
            return Err(err); // dropping the crew terminates and reaps the workers
        }
        let mut replied = Vec::new();
        for &k in ready.iter().filter(|&&k| k < active.len()) {
            let i = active[k];
            let w = &mut workers[i];
            match w.results.recv() {
                Ok(Some((sum, _ns))) => {
                    let chunk = w.in_flight.pop_front().expect("active worker has a chunk");
                    partials[chunk] = sum;
                    log::debug!("worker-{i} finished chunk {chunk}");
                    hand_out(i, w, &plan, &mut next)?;
                    replied.push(i);
                }
                Ok(None) | Err(_) => return Err(w.died(i)),
            }
        }
        for &k in ready.iter().filter(|&&k| k >= active.len() && k < 2 * active.len()) {
            let i = active[k - active.len()];
            if !replied.contains(&i) {
                return Err(workers[i].died(i));
            }
        }
    }
    let estimate = 4.0 * pi::combine(&partials);
    let wall = started.elapsed();
    let mut reports = Vec::with_capacity(count);
    for (index, w) in workers.iter_mut().enumerate() {
        let pid = w.process.pid()?.map_or(0, |p| p.as_raw());
        let (chunks, terms, busy, cpu) = match w.process.result() {
            Ok(summary) => summary,
            Err(_) => return Err(w.died(index)),
        };
        reports.push(WorkerReport {
            index,
            pid,
            pinned: w.pinned,
            cpu: (cpu != u64::MAX).then_some(cpu as usize),
            chunks,
            terms,
            busy: Duration::from_nanos(busy),
        });
    }
    Ok(PiReport { terms: job.terms, estimate, wall, workers: reports, backend: process::backend() })
}

/// The running workers; on every way out of [`run`] they are all signalled first, then each
/// is reaped (a worker's own drop would terminate and join them one after the other).
pub(crate) struct Crew(pub(crate) Vec<Worker>);

impl Drop for Crew {
    fn drop(&mut self) {
        for w in &mut self.0 {
            if matches!(w.process.is_alive(), Ok(true)) {
                let _ = w.process.terminate();
            }
        }
    }
}

/// Chunks a worker holds at once: the one it computes and one queued behind it.
const QUEUED: usize = 2;

/// Gives worker `index` the next chunk, or closes its task channel when none is left (it then
/// finishes what it holds, returns its summary and exits).
fn hand_out(index: usize, w: &mut Worker, plan: &[(u64, u64)], next: &mut usize) -> Result<()> {
    if *next < plan.len() {
        let tasks = w.tasks.as_ref().expect("open while chunks remain");
        if tasks.send(&plan[*next]).is_err() {
            return Err(w.died(index));
        }
        w.in_flight.push_back(*next);
        *next += 1;
    } else {
        w.tasks = None;
    }
    Ok(())
}
