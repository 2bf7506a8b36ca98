//! A pool of pinned, daemonic worker processes that sum chunks of the series: start W workers,
//! assign chunks, wait for the next events as typed values (a worker reported a chunk, a worker
//! ended, an extra descriptor was ready, a worker is late), replace a dead worker and learn which
//! chunks it lost. A worker whose chunk is far overdue (stopped, hung) is ended like a dead one.
//! The engine and the service keep only their own policy on top of it.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::pace::{Lateness, Pace};
use super::pi;
use pifork::{ExitCode, Process, Receiver, Sender, StartMethod, available_cpus, channel, wait};

/// A descriptor to watch beside the workers and what it means once ready: `None` to carry on,
/// or the error that ends the run (the workers are then terminated and reaped).
pub type Cancel<'a> = (BorrowedFd<'a>, &'a dyn Fn() -> Option<Error>);

/// Workers per available CPU beyond which more only slow the pool down: the parent, one
/// process among them all, gets its share of the CPUs to notice a signal and stop them (on
/// 2 CPUs: stopped in 0.01 s with 8 workers, 0.5 s with 128, 3.8 s with 1000).
pub const WORKERS_PER_CPU: usize = 64;

/// The most workers worth starting here: [`WORKERS_PER_CPU`] per available CPU.
pub fn worker_bound() -> usize {
    WORKERS_PER_CPU * available_cpus().len().max(1)
}

/// Descriptors the parent holds per worker (two channel ends, the sentinel, the result pipe),
/// with room for those in transit while one starts.
const FDS_PER_WORKER: u64 = 6;

/// Descriptors kept for everything else (standard streams, signal pipe, state, fork server).
const FDS_BESIDES: u64 = 64;

/// Makes room for `workers` worker processes: raises the soft `RLIMIT_NOFILE` toward the hard
/// limit if their descriptors need it (waits use `poll`, so high numbers are fine), and checks
/// `RLIMIT_NPROC`. Errors with what is missing and how to raise it.
pub fn make_room(workers: usize) -> Result<()> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let need = FDS_BESIDES + FDS_PER_WORKER * workers as u64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < need
    {
        if hard >= need && setrlimit(Resource::RLIMIT_NOFILE, need, hard).is_ok() {
            log::debug!("raised RLIMIT_NOFILE from {soft} to {need} for {workers} workers");
        } else {
            return Err(Error::TooManyWorkers {
                workers,
                limit: "RLIMIT_NOFILE",
                need,
                have: hard,
            });
        }
    }
    // Root is not held to RLIMIT_NPROC; anyone else counts every process of the user.
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC)
        && soft != RLIM_INFINITY
        && !nix::unistd::geteuid().is_root()
        && soft < workers as u64 + 16
    {
        let need = workers as u64 + 16;
        return Err(Error::TooManyWorkers { workers, limit: "RLIMIT_NPROC", need, have: soft });
    }
    Ok(())
}

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
    pifork::register(WORKER_ENTRY, |(tasks, results): (i32, i32)| {
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

/// One worker process and its two channels.
struct Worker {
    process: Process<Summary>,
    tasks: Option<Sender<(u64, u64)>>,
    results: Receiver<(f64, u64)>,
    /// Chunks handed to this worker and not yet reported, oldest first, with their sizes in
    /// terms.
    in_flight: VecDeque<(usize, u64)>,
    /// When the worker began the oldest of them (when it was handed out to an idle worker,
    /// or when the one before it was reported), and whether it was reported late already.
    front: Option<(Instant, bool)>,
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

    /// Reaps a worker that ended (or is ending) before its work was done, and says how.
    fn pid(&self) -> i32 {
        self.process.pid().ok().flatten().map_or(0, |p| p.as_raw())
    }

    /// The chunk it holds, its size and since when, if any.
    fn current(&self) -> Option<(usize, u64, Instant, bool)> {
        let (since, warned) = self.front?;
        let &(chunk, terms) = self.in_flight.front()?;
        Some((chunk, terms, since, warned))
    }

    fn died(&mut self, index: usize) -> Error {
        let pid = self.pid();
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
    pace: Pace,
}

impl Pool {
    /// Starts `spec.workers` workers (at least one). `cancel` is checked between starts: a
    /// signal while thousands of workers start ends the start at once (those started are
    /// terminated and reaped).
    pub fn start(spec: &PoolSpec, cancel: Option<Cancel<'_>>) -> Result<Pool> {
        make_room(spec.workers.max(1))?;
        let mut pool = Pool {
            spec: spec.clone(),
            cpus: available_cpus(),
            workers: Vec::with_capacity(spec.workers),
            pace: Pace::new(),
        };
        for index in 0..spec.workers.max(1) {
            if let Some((fd, on_cancel)) = cancel
                && !wait(&[fd], Some(Duration::ZERO))?.is_empty()
                && let Some(err) = on_cancel()
            {
                return Err(err);
            }
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
        if w.in_flight.is_empty() {
            w.front = Some((Instant::now(), false));
        }
        w.in_flight.push_back((chunk, bounds.1.saturating_sub(bounds.0) + 1));
        if !matches!(sent, Some(Ok(()))) {
            log::debug!("worker-{worker} did not take chunk {chunk}");
        }
    }

    /// Tells worker `worker` no more chunks will come: it finishes what it holds and exits.
    pub fn retire(&mut self, worker: usize) {
        self.workers[worker].tasks = None;
    }

    /// Waits until something happens or `timeout` passes (then no events): workers that hold
    /// chunks report or end; `extra` descriptors (a signal pipe) become ready; a worker
    /// becomes late ([`Event::Late`]) or stuck (ended, as [`Event::Ended`] with
    /// [`Error::WorkerStuck`]).
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
            let check = self.next_check().map(|at| at.saturating_duration_since(Instant::now()));
            let timeout = match (timeout, check) {
                (Some(t), Some(c)) => Some(t.min(c)),
                (t, c) => t.or(c),
            };
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
                        Ok(Some((sum, ns))) => {
                            let (chunk, terms) =
                                w.in_flight.pop_front().expect("a watched worker holds a chunk");
                            w.front = (!w.in_flight.is_empty()).then(|| (Instant::now(), false));
                            self.pace.record(terms, ns);
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
        events.extend(self.overdue());
        Ok(events)
    }

    /// When the next worker becomes late or stuck, if one holds a chunk and the pace is known.
    fn next_check(&self) -> Option<Instant> {
        self.workers
            .iter()
            .filter_map(|w| {
                let (_, terms, since, warned) = w.current()?;
                let (late, stuck) = self.pace.bounds(terms)?;
                since.checked_add(if warned { stuck } else { late })
            })
            .min()
    }

    /// Workers late or stuck now: the late reported once per chunk, the stuck ended.
    fn overdue(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let mut events = Vec::new();
        for i in 0..self.workers.len() {
            let Some((chunk, terms, since, warned)) = self.workers[i].current() else { continue };
            let waited = now.saturating_duration_since(since);
            let expected = self.pace.expected(terms).unwrap_or_default();
            match self.pace.lateness(terms, waited) {
                Lateness::OnTime => {}
                Lateness::Late if warned => {}
                Lateness::Late => {
                    let w = &mut self.workers[i];
                    w.front = Some((since, true));
                    events.push(Event::Late { worker: i, pid: w.pid(), chunk, waited, expected });
                }
                Lateness::Stuck => {
                    let w = &mut self.workers[i];
                    let pid = w.pid();
                    let _ = w.process.kill();
                    let _ = w.process.join();
                    let error = Error::WorkerStuck { worker: i, pid, chunk, waited, expected };
                    events.push(self.lose(i, error));
                }
            }
        }
        events
    }

    /// True while some worker is late with its chunk: the work is not progressing as it
    /// should (a service then stops feeding its watchdog).
    pub fn is_late(&self) -> bool {
        let now = Instant::now();
        self.workers.iter().any(|w| {
            w.current().is_some_and(|(_, terms, since, _)| {
                self.pace.lateness(terms, now.saturating_duration_since(since)) != Lateness::OnTime
            })
        })
    }

    fn ended(&mut self, worker: usize) -> Event {
        let error = self.workers[worker].died(worker);
        self.lose(worker, error)
    }

    /// The event for worker `worker`, ended (and reaped) for `error`: the chunks it held.
    fn lose(&mut self, worker: usize, error: Error) -> Event {
        let w = &mut self.workers[worker];
        let lost = w.in_flight.drain(..).map(|(chunk, _)| chunk).collect();
        w.front = None;
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

    /// Closes every task channel and gives the workers `grace`, all together, to exit; the
    /// rest are then ended all at once.
    pub fn wind_down(mut self, grace: Duration) {
        for w in &mut self.workers {
            w.tasks = None;
        }
        self.join_all(grace);
    }

    /// Joins every worker within one shared `grace`, then kills those still running, all at
    /// once, and reaps them.
    fn join_all(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &mut self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = w.process.join_timeout(left);
        }
        for w in &mut self.workers {
            if matches!(w.process.is_alive(), Ok(true)) {
                let _ = w.process.kill();
            }
        }
        for w in &mut self.workers {
            let _ = w.process.join();
        }
    }
}

/// How long terminated workers get to exit before they are killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

impl Drop for Pool {
    /// On every way out the workers are all terminated at once, given one shared second, then
    /// the rest killed at once and all reaped: stopping takes about a second however many
    /// workers there are (one by one, each worker's own drop would take up to a second).
    fn drop(&mut self) {
        for w in &mut self.workers {
            if matches!(w.process.is_alive(), Ok(true)) {
                let _ = w.process.terminate();
            }
        }
        self.join_all(TERMINATE_GRACE);
    }
}
