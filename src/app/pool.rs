//! A pool of pinned, daemonic worker processes that sum chunks of the series: start W workers,
//! assign chunks, wait for the next events as typed values (a worker reported a chunk, a worker
//! ended, an extra descriptor was ready), replace a dead worker and learn which chunks it lost.
//! The engine and the service keep only their own policy on top of it.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::pi;
use crate::{ExitCode, Process, Receiver, Sender, StartMethod, available_cpus, channel, wait};

/// A function summing terms `m..=n` (the pi kernel, or a stand-in in tests).
pub type Kernel = fn(u64, u64) -> f64;

/// Chunks a worker holds at once: the one it computes and one queued behind it, so that it
/// never waits for the parent between chunks.
pub const DEPTH: usize = 2;

/// The entry point of a worker started by spawn or forkserver: its arguments are the numbers
/// of its inherited task and result descriptors.
pub const WORKER_ENTRY: &str = "pifork.pi-worker";

/// Registers the worker's entry point (from `main`, before `main_guard`).
pub fn register_entries() {
    crate::register(WORKER_ENTRY, |(tasks, results): (i32, i32)| {
        let tasks = Receiver::from_inherited(tasks).expect("task channel");
        let results = Sender::from_inherited(results).expect("result channel");
        worker_loop(tasks, results, pi::partial_sum)
    });
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

/// What a worker returns when its task channel closes: (chunks, terms, busy ns, cpu or
/// `u64::MAX`).
type Summary = (u64, u64, u64, u64);

/// A worker's life: take `(first, last)` tasks until the channel closes, answer each with
/// `(sum, ns)`.
fn worker_loop(
    tasks: Receiver<(u64, u64)>,
    results: Sender<(f64, u64)>,
    kernel: Kernel,
) -> Summary {
    // A SIGHUP meant for the service (`systemctl kill -s HUP` reaches every process of the
    // unit) must not end its workers: the supervisor alone answers it.
    let _ = crate::signals::ignore(&[signal_hook::consts::SIGHUP]);
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
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Worker `worker` reported the sum of chunk `chunk`.
    Reported {
        /// The worker's index.
        worker: usize,
        /// The chunk's index (as given to [`Pool::assign`]).
        chunk: usize,
        /// Its partial sum.
        sum: f64,
    },
    /// Worker `worker` ended holding `lost` chunks (oldest first): it is reaped, and the slot
    /// is empty until [`Pool::replace`].
    Ended {
        /// The worker's index.
        worker: usize,
        /// The chunks it held.
        lost: Vec<usize>,
        /// How it ended.
        error: Error,
    },
    /// The extra descriptor with this index was ready.
    Ready(usize),
}

/// One worker process and its two channels.
struct Worker {
    process: Process<Summary>,
    tasks: Option<Sender<(u64, u64)>>,
    results: Receiver<(f64, u64)>,
    /// Chunks handed to this worker and not yet reported, oldest first.
    in_flight: VecDeque<usize>,
    pinned: Option<usize>,
}

impl Worker {
    /// Starts worker `index`, pinned to `pinned`, the way `spec` says.
    fn start(index: usize, pinned: Option<usize>, spec: &PoolSpec) -> Result<Worker> {
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
                return Err(crate::Error::NeedsEntry { method: method.as_str() }.into());
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
            pinned,
        })
    }

    /// Reaps a worker that ended (or is ending) before its work was done, and says how.
    fn died(&mut self, index: usize) -> Error {
        let pid = self.process.pid().ok().flatten().map_or(0, |p| p.as_raw());
        // It closed its channel or its sentinel fired: it is exiting. Give it a moment to
        // finish (so a panic message arrives whole), then make sure.
        if !matches!(self.process.join_timeout(Duration::from_secs(1)), Ok(true)) {
            let _ = self.process.kill();
        }
        let panic = match self.process.result() {
            Err(crate::Error::ChildPanicked { message, .. }) => Some(message),
            _ => None,
        };
        let exitcode = self.process.exitcode().ok().flatten().unwrap_or(ExitCode::Signaled(9));
        Error::WorkerDied { worker: index, pid, exitcode, panic }
    }
}

/// Which descriptor of the pool a wait was on.
#[derive(Debug, Clone, Copy)]
enum Source {
    Results(usize),
    Sentinel(usize),
    Extra(usize),
}

/// W workers; dropping the pool signals them all, then reaps each.
pub struct Pool {
    spec: PoolSpec,
    cpus: Vec<usize>,
    workers: Vec<Worker>,
}

impl Pool {
    /// Starts `spec.workers` workers (at least one).
    pub fn start(spec: &PoolSpec) -> Result<Pool> {
        let mut pool = Pool {
            spec: spec.clone(),
            cpus: available_cpus(),
            workers: Vec::with_capacity(spec.workers),
        };
        for index in 0..spec.workers.max(1) {
            let worker = Worker::start(index, pool.cpu_for(index), spec)?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    fn cpu_for(&self, index: usize) -> Option<usize> {
        self.spec.pin.then(|| self.cpus[index % self.cpus.len()])
    }

    /// The number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// True for a pool without workers (never, once started).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Chunks worker `worker` holds (assigned, not reported).
    pub fn in_flight(&self, worker: usize) -> usize {
        self.workers[worker].in_flight.len()
    }

    /// True while worker `worker` holds fewer than [`DEPTH`] chunks.
    pub fn has_room(&self, worker: usize) -> bool {
        self.in_flight(worker) < DEPTH && self.workers[worker].tasks.is_some()
    }

    /// True while some worker holds a chunk.
    pub fn busy(&self) -> bool {
        self.workers.iter().any(|w| !w.in_flight.is_empty())
    }

    /// Gives chunk `chunk`, terms `bounds`, to worker `worker`. A worker that cannot take it
    /// has died: that shows as [`Event::Ended`], with the chunk among the lost.
    pub fn assign(&mut self, worker: usize, chunk: usize, bounds: (u64, u64)) {
        let w = &mut self.workers[worker];
        let sent = w.tasks.as_ref().map(|t| t.send(&bounds));
        w.in_flight.push_back(chunk);
        if !matches!(sent, Some(Ok(()))) {
            log::debug!("worker-{worker} did not take chunk {chunk}");
        }
    }

    /// Tells worker `worker` no more chunks will come: it finishes what it holds and exits.
    pub fn retire(&mut self, worker: usize) {
        self.workers[worker].tasks = None;
    }

    /// Waits until something happens or `timeout` passes (then no events): workers that hold
    /// chunks report or end; `extra` descriptors (a signal pipe) become ready.
    pub fn next_events(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<Vec<Event>> {
        let ready: Vec<Source> = {
            let mut sources = Vec::new();
            let mut fds = Vec::new();
            for (i, w) in self.workers.iter().enumerate().filter(|(_, w)| !w.in_flight.is_empty()) {
                sources.push(Source::Results(i));
                fds.push(w.results.as_fd());
                sources.push(Source::Sentinel(i));
                fds.push(w.process.sentinel()?);
            }
            for (j, fd) in extra.iter().enumerate() {
                sources.push(Source::Extra(j));
                fds.push(*fd);
            }
            wait(&fds, timeout)?.into_iter().map(|k| sources[k]).collect()
        };
        let mut events = Vec::new();
        let mut heard = Vec::new();
        for source in &ready {
            match *source {
                Source::Results(i) => {
                    heard.push(i);
                    let w = &mut self.workers[i];
                    match w.results.recv() {
                        Ok(Some((sum, _ns))) => {
                            let chunk =
                                w.in_flight.pop_front().expect("a watched worker holds a chunk");
                            log::debug!("worker-{i} finished chunk {chunk}");
                            events.push(Event::Reported { worker: i, chunk, sum });
                        }
                        Ok(None) | Err(_) => events.push(self.ended(i)),
                    }
                }
                Source::Sentinel(i) if !heard.contains(&i) => {
                    // A worker that reported everything it held may end; one holding chunks
                    // may not.
                    if !self.workers[i].in_flight.is_empty() {
                        events.push(self.ended(i));
                    }
                }
                Source::Sentinel(_) => {}
                Source::Extra(j) => events.push(Event::Ready(j)),
            }
        }
        Ok(events)
    }

    fn ended(&mut self, worker: usize) -> Event {
        let w = &mut self.workers[worker];
        let error = w.died(worker);
        let lost = w.in_flight.drain(..).collect();
        w.tasks = None;
        Event::Ended { worker, lost, error }
    }

    /// Starts a fresh worker in slot `worker` (after [`Event::Ended`]).
    pub fn replace(&mut self, worker: usize) -> Result<()> {
        let fresh = Worker::start(worker, self.cpu_for(worker), &self.spec)?;
        self.workers[worker] = fresh;
        Ok(())
    }

    /// Closes every task channel and joins the workers; each worker's share of the run.
    pub fn finish(mut self) -> Result<Vec<WorkerReport>> {
        for w in &mut self.workers {
            w.tasks = None;
        }
        let mut reports = Vec::with_capacity(self.workers.len());
        for (index, w) in self.workers.iter_mut().enumerate() {
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
        Ok(reports)
    }

    /// Closes every task channel and gives the workers `grace` to exit, then ends the rest.
    pub fn wind_down(mut self, grace: Duration) {
        for w in &mut self.workers {
            w.tasks = None;
        }
        for w in &mut self.workers {
            let _ = w.process.join_timeout(grace);
        }
    }
}

impl Drop for Pool {
    /// On every way out the workers are all signalled first, then each is reaped (a worker's
    /// own drop would terminate and join them one after the other).
    fn drop(&mut self) {
        for w in &mut self.workers {
            if matches!(w.process.is_alive(), Ok(true)) {
                let _ = w.process.terminate();
            }
        }
    }
}
