//! The parallel pi engine: the fixed chunks of 1..=N are handed to a pool of pinned, daemonic
//! worker processes, one per core; the parent waits for the *first* worker to report, gives
//! that worker the next chunk, and combines the partial sums in chunk order at the end.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::kernel::Path;
use super::plan::{chunk_plan, combine};
use super::pool::{DEPTH, Event, Kernel, Pool, PoolSpec, WorkerReport, describe_late};
use pifork::{Backend, StartMethod, backend};

/// How many times a chunk is taken from a stuck worker and redone before the run fails.
pub const MAX_STUCK: u32 = 2;

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
    /// A stand-in for the Leibniz kernel (fork only). Used by tests.
    pub kernel: Option<Kernel>,
}

impl PiJob {
    /// N terms on `workers` pinned workers with the real kernel, started the default way.
    pub fn new(terms: u64, workers: usize) -> PiJob {
        PiJob { terms, workers, pin: true, start: pifork::get_start_method(), kernel: None }
    }
}

/// The outcome of a run over the whole series.
#[derive(Debug, Clone)]
pub struct PiReport {
    /// N.
    pub terms: u64,
    /// 4 * S_N.
    pub estimate: f64,
    /// Wall time from the first start to the combined result.
    pub wall: Duration,
    /// Per worker, by index.
    pub workers: Vec<WorkerReport>,
    /// The process backend used.
    pub backend: Backend,
    /// The kernel path the workers used.
    pub kernel: Path,
}

/// The outcome of a run over some chunks of the plan.
#[derive(Debug, Clone)]
pub struct ChunkReport {
    /// `(chunk index, partial sum)`, in the order the chunks were asked for.
    pub sums: Vec<(usize, f64)>,
    /// Wall time from the first start to the last result.
    pub wall: Duration,
    /// Per worker, by index.
    pub workers: Vec<WorkerReport>,
}

pub use super::pool::Cancel;

/// Runs `job` over the whole series: 4 * the combined partial sums, the same bits for any
/// worker count and start method.
pub fn run(job: &PiJob, cancel: Option<Cancel<'_>>) -> Result<PiReport> {
    let all: Vec<usize> = (0..chunk_plan(job.terms).len()).collect();
    let report = run_chunks(job, &all, cancel)?;
    let partials: Vec<f64> = report.sums.iter().map(|&(_, s)| s).collect();
    Ok(PiReport {
        terms: job.terms,
        estimate: 4.0 * combine(&partials),
        wall: report.wall,
        workers: report.workers,
        backend: backend(),
        kernel: super::kernel::selected().unwrap_or_else(|_| super::kernel::best()),
    })
}

/// Computes the chunks `chunks` (indices into [`chunk_plan`]`(job.terms)`) and returns their
/// partial sums: what one machine of several contributes to a run.
pub fn run_chunks(
    job: &PiJob,
    chunks: &[usize],
    cancel: Option<Cancel<'_>>,
) -> Result<ChunkReport> {
    let plan = chunk_plan(job.terms);
    if let Some(&bad) = chunks.iter().find(|&&c| c >= plan.len()) {
        panic!("chunk {bad} is not in the plan of {} chunks", plan.len());
    }
    let spec = PoolSpec {
        workers: job.workers.clamp(1, chunks.len().max(1)),
        pin: job.pin,
        start: job.start,
        kernel: job.kernel,
    };
    let mut run = Run::start(&spec, &plan, chunks, cancel)?;
    let extra: Vec<BorrowedFd<'_>> = cancel.iter().map(|(fd, _)| *fd).collect();
    while run.pool.busy() {
        for event in run.pool.next_events(&extra, None)? {
            run.handle(event)?;
        }
    }
    let wall = run.started.elapsed();
    let workers = run.pool.finish()?;
    let sums = chunks
        .iter()
        .zip(run.sums)
        .map(|(&c, s)| (c, s.expect("every chunk was reported")))
        .collect();
    Ok(ChunkReport { sums, wall, workers })
}

/// A run in progress: the pool, which chunks are left to hand out and which came back, and how
/// far it has come. Position k of `chunks` travels as the chunk's id through the pool; chunks
/// taken from a stuck worker are redone first. Dropping it (on an error) drops the pool, which
/// terminates and reaps the workers.
struct Run<'a> {
    pool: Pool,
    plan: &'a [(u64, u64)],
    chunks: &'a [usize],
    cancel: Option<Cancel<'a>>,
    started: Instant,
    /// The partial sum of each position, once reported.
    sums: Vec<Option<f64>>,
    /// The next position never handed out.
    next: usize,
    /// Positions taken from a stuck worker, to hand out before `next`.
    redo: VecDeque<usize>,
    /// How many times each position was taken from a stuck worker.
    stuck: Vec<u32>,
    progress: Progress,
}

impl<'a> Run<'a> {
    /// Starts the pool the way `spec` says and hands out [`DEPTH`] chunks per worker: one it
    /// computes and one queued behind it.
    fn start(
        spec: &PoolSpec,
        plan: &'a [(u64, u64)],
        chunks: &'a [usize],
        cancel: Option<Cancel<'a>>,
    ) -> Result<Run<'a>> {
        let started = Instant::now();
        let pool = Pool::start(spec, cancel)?;
        let terms = chunks.iter().map(|&c| plan[c].1 - plan[c].0 + 1).sum();
        let progress = Progress {
            chunks_done: 0,
            chunks: chunks.len(),
            terms_done: 0,
            terms,
            elapsed: Duration::ZERO,
        };
        let (sums, stuck) = (vec![None; chunks.len()], vec![0; chunks.len()]);
        let mut run = Run {
            pool,
            plan,
            chunks,
            cancel,
            started,
            sums,
            next: 0,
            redo: VecDeque::new(),
            stuck,
            progress,
        };
        run.top_up()?;
        Ok(run)
    }

    /// Hands out chunks until [`DEPTH`] per worker are out, or none is left.
    fn top_up(&mut self) -> Result<()> {
        while self.pool.outstanding() < DEPTH * self.pool.len() {
            let position = self
                .redo
                .pop_front()
                .or_else(|| (self.next < self.chunks.len()).then_some(self.next));
            let Some(k) = position else { break };
            self.pool.assign(k, self.plan[self.chunks[k]])?;
            self.next = self.next.max(k + 1);
        }
        Ok(())
    }

    /// The interruption, if the cancel descriptor's signal arrived.
    fn cancelled(&self) -> Option<Error> {
        self.cancel.as_ref().and_then(|(_, on_cancel)| on_cancel())
    }

    /// Answers one event of the pool; an error ends the run.
    fn handle(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Reported { chunk, sum, .. } => {
                self.sums[chunk] = Some(sum);
                self.top_up()?;
                let (first, last) = self.plan[self.chunks[chunk]];
                self.progress.chunks_done += 1;
                self.progress.terms_done += last - first + 1;
                self.progress.elapsed = self.started.elapsed();
                notify_observer(&self.progress);
            }
            Event::Ended { worker, lost, error } => {
                // Ctrl-C reaches the whole process group: a worker killed by the signal the
                // parent caught too means the run was interrupted, not that it failed.
                if let Some(err) = self.cancelled() {
                    return Err(err);
                }
                self.redo_stuck(worker, &lost, error)?;
            }
            Event::Failed { error, .. } => return Err(self.name_chunk(error)),
            Event::Late { worker, pid, chunk, waited, expected } => {
                log::warn!("{}", describe_late(worker, pid, self.chunks[chunk], waited, expected));
            }
            Event::Ready(_) => {
                if let Some(err) = self.cancelled() {
                    log::debug!("cancelled: {err}");
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// The pool names a chunk by its position in `chunks`: say its plan index instead, as the
    /// late line does.
    fn name_chunk(&self, error: Error) -> Error {
        match error {
            Error::WorkerStuck { worker, pid, chunk, waited, expected } => {
                Error::WorkerStuck { worker, pid, chunk: self.chunks[chunk], waited, expected }
            }
            Error::ChunkPanicked { chunk, message } => {
                Error::ChunkPanicked { chunk: self.chunks[chunk], message }
            }
            other => other,
        }
    }

    /// Worker `worker` ended holding `lost` for `error`: a stuck worker's chunk is redone on
    /// another (each at most [`MAX_STUCK`] times; the pool has replaced the worker); any other
    /// end fails the run.
    fn redo_stuck(&mut self, _worker: usize, lost: &[usize], error: Error) -> Result<()> {
        let error = self.name_chunk(error);
        if !matches!(error, Error::WorkerStuck { .. }) {
            return Err(error);
        }
        log::warn!("{error}; redoing its chunks on a new worker");
        for &k in lost.iter().rev() {
            self.stuck[k] += 1;
            if self.stuck[k] > MAX_STUCK {
                return Err(error);
            }
            self.redo.push_front(k);
        }
        self.top_up()
    }
}

/// How far a run has come, as told to the observer after every reported chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Chunks reported so far.
    pub chunks_done: usize,
    /// Chunks in the run.
    pub chunks: usize,
    /// Terms in the reported chunks.
    pub terms_done: u64,
    /// Terms in the run.
    pub terms: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// Something told of every run's progress on this thread (a terminal's progress line).
pub type Observer = Box<dyn FnMut(&Progress)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Installs `observer` for the runs made on this thread from now on (`None` removes it) and
/// returns the previous one.
pub fn observe(observer: Option<Observer>) -> Option<Observer> {
    OBSERVER.with(|o| o.replace(observer))
}

fn notify_observer(progress: &Progress) {
    OBSERVER.with(|o| {
        if let Some(observer) = o.borrow_mut().as_mut() {
            observer(progress);
        }
    });
}
