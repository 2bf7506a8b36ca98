//! The pi pool: the library's [`pifork::pool::Pool`] of pinned, daemonic workers, with the
//! appliance's policy on top. Chunks are submitted one at a time ([`Pool::assign`]) and come
//! back as typed events (a chunk reported, a worker ended holding one, an extra descriptor was
//! ready, a worker is late); a worker whose chunk is far overdue (stopped, hung) is killed and
//! its end told as stuck. The library reaps a dead worker at once and starts its replacement
//! (on the same CPU); the chunks queued behind the one it ran go to the others. The engine and
//! the service keep only their own policy on top of it.
//!
//! ```text
//! mod.rs      the pool: starting it, handing out chunks, events, late and stuck workers
//! event.rs    what it reports: the events, the late line, each worker's share of a run
//! worker.rs   what a worker runs: a chunk's sum, timed, and each worker's set-up
//! limits.rs   how many workers: the cap per CPU, the descriptor and process limits
//! ```
//!
//! Workers are named by slot, 0..W: a replacement takes the slot of the worker it replaces.

mod event;
mod limits;
mod worker;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::pace::{Lateness, Pace};
use pifork::pool::{self as lib, Next, PoolError, Tasks};
use pifork::{StartMethod, available_cpus};
use worker::ChunkDone;

pub use event::{Event, WorkerReport, describe_late};
pub use limits::{WORKERS_PER_CPU, make_room, worker_bound};
pub use worker::{Kernel, PoolSpec};

/// A descriptor to watch beside the workers and what it means once ready: `None` to carry on,
/// or the error that ends the run (the workers are then terminated and reaped).
pub type Cancel<'a> = (BorrowedFd<'a>, &'a dyn Fn() -> Option<Error>);

/// Chunks a worker holds at once: the one it computes and one queued behind it, so that it
/// never waits for the parent between chunks. Callers keep at most `DEPTH` per worker out.
pub const DEPTH: usize = 2;

/// A chunk handed out: which, its size, and whether it was reported late.
struct Assigned {
    chunk: usize,
    terms: u64,
    warned: bool,
}

/// One slot's share of the run, over the workers that held it.
#[derive(Default)]
struct Slot {
    /// The worker in it now, while it lives.
    pid: Option<i32>,
    /// The last worker seen in it.
    last: i32,
    pinned: Option<usize>,
    cpu: Option<usize>,
    chunks: u64,
    terms: u64,
    busy: Duration,
}

/// W workers and the chunks they hold; dropping it kills and reaps them all at once.
pub struct Pool {
    // Dropped first: the queue before the pool it belongs to.
    tasks: Tasks<(u64, u64), ChunkDone>,
    pool: lib::Pool,
    pin: bool,
    /// By task index (the order of [`Pool::assign`]).
    assigned: Vec<Assigned>,
    slots: Vec<Slot>,
    /// Workers killed as stuck, not yet reaped: what to tell of each.
    stuck: HashMap<i32, (usize, Duration, Duration)>,
    pace: Pace,
}

impl Pool {
    /// Starts `spec.workers` workers (at least one). `cancel` is checked while they start: a
    /// signal while thousands of workers start ends the start at once (those started are
    /// killed and reaped).
    pub fn start(spec: &PoolSpec, cancel: Option<Cancel<'_>>) -> Result<Pool> {
        let workers = spec.workers.max(1);
        if spec.kernel.is_some() && spec.start != StartMethod::Fork {
            return Err(pifork::Error::NeedsEntry { method: spec.start }.into());
        }
        make_room(workers)?;
        let mut builder = lib::Pool::builder()
            .processes(workers)
            .start_method(spec.start)
            .retries(0)
            .prefetch(DEPTH)
            .initializer(worker::ignore_hangup, ());
        if spec.pin {
            builder = builder.cpus(available_cpus()).pin(true);
        }
        let pool = match cancel {
            None => builder.build(),
            Some((fd, on_cancel)) => {
                let mut why = None;
                let built = builder.build_watching(fd, &mut || {
                    why = on_cancel();
                    why.is_some()
                });
                match (built, why) {
                    (Err(PoolError::Interrupted), Some(err)) => return Err(err),
                    (built, _) => built,
                }
            }
        }
        .map_err(Error::Pool)?;
        let tasks = match spec.kernel {
            None => pool.tasks(worker::sum_chunk),
            Some(kernel) => pool.tasks(move |bounds| worker::run_chunk(kernel, bounds)),
        }
        .map_err(Error::Pool)?;
        let mut slots: Vec<Slot> = (0..workers).map(|_| Slot::default()).collect();
        for (slot, pid) in slots.iter_mut().zip(pool.pids()) {
            slot.pid = Some(pid.as_raw());
            slot.last = pid.as_raw();
        }
        Ok(Pool {
            tasks,
            pool,
            pin: spec.pin,
            assigned: Vec::new(),
            slots,
            stuck: HashMap::new(),
            pace: Pace::new(),
        })
    }

    /// The number of workers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for a pool without workers (never, once started).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True while some chunk is out and not yet reported or lost.
    pub fn busy(&self) -> bool {
        self.tasks.pending() > 0
    }

    /// Chunks out: handed out, not yet reported or lost.
    pub fn outstanding(&self) -> usize {
        self.tasks.pending()
    }

    /// Hands out chunk `chunk`, terms `bounds`: the first free worker takes it.
    pub fn assign(&mut self, chunk: usize, bounds: (u64, u64)) -> Result<()> {
        self.tasks.submit(&bounds).map_err(Error::Pool)?;
        let terms = bounds.1.saturating_sub(bounds.0) + 1;
        self.assigned.push(Assigned { chunk, terms, warned: false });
        Ok(())
    }

    /// The slot of worker `pid`: its own, else a free one (its predecessor's, which died).
    fn slot_of(&mut self, pid: i32) -> usize {
        if let Some(i) = self.slots.iter().position(|s| s.pid == Some(pid)) {
            return i;
        }
        let live: Vec<i32> = self.pool.pids().iter().map(|p| p.as_raw()).collect();
        let i =
            self.slots.iter().position(|s| s.pid.is_none_or(|p| !live.contains(&p))).unwrap_or(0);
        log::debug!("worker-{i} is pid {pid}");
        self.slots[i].pid = Some(pid);
        self.slots[i].last = pid;
        i
    }

    /// Waits until something happens or `timeout` passes (then no events): chunks are
    /// reported or lost with their worker; `extra` descriptors (a signal pipe) become ready;
    /// a worker becomes late ([`Event::Late`]) or stuck (killed, then [`Event::Ended`] with
    /// [`Error::WorkerStuck`]).
    pub fn next_events(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<Vec<Event>> {
        let check = self.next_check().map(|at| at.saturating_duration_since(Instant::now()));
        let timeout = match (timeout, check) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        let mut events = Vec::new();
        match self.tasks.next_with(extra, timeout).map_err(Error::Pool)? {
            Next::Done(index, outcome) => {
                events.push(self.settle(index, outcome)?);
                // Whatever else finished meanwhile comes in the same turn.
                while let Next::Done(index, outcome) =
                    self.tasks.next_with(&[], Some(Duration::ZERO)).map_err(Error::Pool)?
                {
                    events.push(self.settle(index, outcome)?);
                }
            }
            Next::Ready(ready) => events.extend(ready.into_iter().map(Event::Ready)),
            Next::Timeout | Next::Idle => {}
        }
        events.extend(self.overdue());
        Ok(events)
    }

    /// The event for task `index`'s outcome.
    fn settle(&mut self, index: usize, outcome: lib::PoolResult<ChunkDone>) -> Result<Event> {
        let (chunk, terms) = (self.assigned[index].chunk, self.assigned[index].terms);
        match outcome {
            Ok(done) => {
                self.pace.record(terms, done.ns);
                let worker = self.slot_of(done.pid);
                let pin = self.pin;
                let slot = &mut self.slots[worker];
                slot.chunks += 1;
                slot.terms += terms;
                slot.busy += Duration::from_nanos(done.ns);
                slot.cpu = (done.cpu != u64::MAX).then_some(done.cpu as usize);
                slot.pinned = (pin && done.only_cpu != u64::MAX).then_some(done.only_cpu as usize);
                log::debug!("worker-{worker} finished chunk {chunk}");
                Ok(Event::Reported { worker, chunk, sum: done.sum })
            }
            Err(PoolError::WorkerDied { pid, exitcode, .. }) => {
                let worker = self.slot_of(pid.as_raw());
                self.slots[worker].pid = None;
                let error = match self.stuck.remove(&pid.as_raw()) {
                    Some((chunk, waited, expected)) => {
                        Error::WorkerStuck { worker, pid: Some(pid), chunk, waited, expected }
                    }
                    None => Error::WorkerDied { worker, pid: Some(pid), exitcode, panic: None },
                };
                Ok(Event::Ended { worker, lost: vec![chunk], error })
            }
            Err(PoolError::TaskPanicked(message)) => {
                Ok(Event::Failed { chunk, error: Error::ChunkPanicked { chunk, message } })
            }
            Err(e) => Err(Error::Pool(e)),
        }
    }

    /// When the next worker becomes late or stuck, if one holds a chunk and the pace is known.
    fn next_check(&self) -> Option<Instant> {
        self.tasks
            .running()
            .iter()
            .filter(|r| !self.stuck.contains_key(&r.pid.as_raw()))
            .filter_map(|r| {
                let a = &self.assigned[r.index];
                let (late, stuck) = self.pace.bounds(a.terms)?;
                r.since.checked_add(if a.warned { stuck } else { late })
            })
            .min()
    }

    /// Workers late or stuck now: the late reported once per chunk, the stuck killed (their
    /// end is told once the pool has reaped them).
    fn overdue(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let mut events = Vec::new();
        for r in self.tasks.running() {
            if self.stuck.contains_key(&r.pid.as_raw()) {
                continue;
            }
            let (terms, warned) = (self.assigned[r.index].terms, self.assigned[r.index].warned);
            let chunk = self.assigned[r.index].chunk;
            let waited = now.saturating_duration_since(r.since);
            let expected = self.pace.expected(terms).unwrap_or_default();
            match self.pace.lateness(terms, waited) {
                Lateness::OnTime => {}
                Lateness::Late if warned => {}
                Lateness::Late => {
                    self.assigned[r.index].warned = true;
                    let pid = r.pid.as_raw();
                    let worker = self.slot_of(pid);
                    events.push(Event::Late { worker, pid, chunk, waited, expected });
                }
                Lateness::Stuck => {
                    log::debug!("pid {} has held chunk {chunk} for {waited:?}: killing it", r.pid);
                    if self.pool.kill_worker(r.pid) {
                        self.stuck.insert(r.pid.as_raw(), (chunk, waited, expected));
                    }
                }
            }
        }
        events
    }

    /// True while some worker is late with its chunk: the work is not progressing as it
    /// should (a service then stops feeding its watchdog).
    pub fn is_late(&self) -> bool {
        let now = Instant::now();
        self.tasks.running().iter().any(|r| {
            let terms = self.assigned[r.index].terms;
            self.pace.lateness(terms, now.saturating_duration_since(r.since)) != Lateness::OnTime
        })
    }

    /// Each slot's share of the run; the workers are then killed and reaped.
    pub fn finish(self) -> Result<Vec<WorkerReport>> {
        let reports = self
            .slots
            .iter()
            .enumerate()
            .map(|(index, s)| WorkerReport {
                index,
                pid: s.last,
                pinned: s.pinned,
                cpu: s.cpu,
                chunks: s.chunks,
                terms: s.terms,
                busy: s.busy,
            })
            .collect();
        Ok(reports)
    }

    /// Ends the workers (they hold nothing once the work is done).
    pub fn wind_down(self) {}
}
