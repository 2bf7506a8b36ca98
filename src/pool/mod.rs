//! A pool of pinned, daemonic worker processes that sum chunks of the series: start W workers,
//! assign chunks, wait for the next events as typed values (a worker reported a chunk, a worker
//! ended, an extra descriptor was ready, a worker is late), replace a dead worker and learn which
//! chunks it lost. A worker whose chunk is far overdue (stopped, hung) is ended like a dead one.
//! The engine and the service keep only their own policy on top of it.
//!
//! ```text
//! mod.rs      the pool: starting workers, handing out chunks, events, late and stuck workers
//! event.rs    what it reports: the events, the late line, each worker's share of a run
//! worker.rs   one worker: how it is started, the loop its process runs, its entry, the
//!             parent's handle on it
//! limits.rs   how many workers: the cap per CPU, the descriptor and process limits
//! ```

mod event;
mod limits;
mod worker;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::pace::{Lateness, Pace};
use pifork::{available_cpus, wait};
use worker::Worker;

pub use event::{Event, WorkerReport, describe_late};
pub use limits::{WORKERS_PER_CPU, make_room, worker_bound};
pub use worker::{Kernel, PoolSpec, WORKER_ENTRY, register_entries};

/// A descriptor to watch beside the workers and what it means once ready: `None` to carry on,
/// or the error that ends the run (the workers are then terminated and reaped).
pub type Cancel<'a> = (BorrowedFd<'a>, &'a dyn Fn() -> Option<Error>);

/// Chunks a worker holds at once: the one it computes and one queued behind it, so that it
/// never waits for the parent between chunks.
pub const DEPTH: usize = 2;

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
                    let pid = w.process.pid().ok().flatten();
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
