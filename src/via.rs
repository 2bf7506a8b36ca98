//! Other ways to share the same job among worker processes, each built on the library's own
//! toolkit: its process pool, a queue, or shared memory. Every way sums the chunks of
//! [`chunk_plan`] with the appliance's kernel and combines them with [`combine`] in chunk
//! order, so each gives the bits of [`engine::run`] (which takes its results over each
//! worker's pipe).

use std::fmt;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::engine::{self, PiJob, PiReport};
use super::error::{Error, Result};
use super::plan::{chunk_plan, combine};
use super::pool::WorkerReport;
use super::{kernel, pi};
use pifork::pool::{Pool, PoolError};
use pifork::queue::GetError;
use pifork::{Array, Process, Queue, ShmError, available_cpus, backend};

/// How the workers get their chunks and hand back the sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// The appliance's engine: results over each worker's pipe.
    #[default]
    Pipe,
    /// `pifork::pool::Pool` mapping a plain `fn` over the chunks.
    Pool,
    /// One process per worker putting `(chunk, bits)` on a `pifork::Queue`.
    Queue,
    /// One process per worker writing each sum into its slot of a shared `Array<f64>`.
    Shared,
}

impl Via {
    /// Every way, the default first.
    pub const ALL: [Via; 4] = [Via::Pipe, Via::Pool, Via::Queue, Via::Shared];

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Pipe => "pipe",
            Via::Pool => "pool",
            Via::Queue => "queue",
            Via::Shared => "shared",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVia(pub String);

impl fmt::Display for UnknownVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown way {:?}: pipe, pool, queue or shared", self.0)
    }
}

impl std::error::Error for UnknownVia {}

impl FromStr for Via {
    type Err = UnknownVia;
    fn from_str(s: &str) -> std::result::Result<Via, UnknownVia> {
        Via::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownVia(s.to_string()))
    }
}

/// What failed in one of the library's ways.
#[derive(Debug)]
pub enum ViaError {
    /// The process pool failed.
    Pool(PoolError),
    /// The queue or the shared array could not be made.
    Shm(ShmError),
    /// Taking a sum off the queue failed.
    Get(GetError),
    /// A chunk index came back that is not in the plan, or came twice.
    BadChunk(u64),
}

impl fmt::Display for ViaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViaError::Pool(e) => write!(f, "pool: {e}"),
            ViaError::Shm(e) => write!(f, "shared memory: {e}"),
            ViaError::Get(e) => write!(f, "queue: {e}"),
            ViaError::BadChunk(c) => write!(f, "queue: chunk {c} is not one that was due"),
        }
    }
}

impl std::error::Error for ViaError {}

impl From<ViaError> for Error {
    fn from(e: ViaError) -> Error {
        Error::Via(e)
    }
}

/// Registers the workers' entry points (for spawn and forkserver).
pub fn register_entries() {
    pifork::register(QUEUE_ENTRY, queue_worker);
    pifork::register(SHARED_ENTRY, shared_worker);
}

const QUEUE_ENTRY: &str = "pifork_pi::via::queue_worker";
const SHARED_ENTRY: &str = "pifork_pi::via::shared_worker";

/// Runs `job` the way `via` says: the same chunks, the same combination, the same bits.
pub fn run(job: &PiJob, via: Via, cancel: Option<engine::Cancel<'_>>) -> Result<PiReport> {
    if via == Via::Pipe {
        return engine::run(job, cancel);
    }
    let plan = chunk_plan(job.terms);
    let workers = job.workers.clamp(1, plan.len());
    let started = Instant::now();
    let (partials, reports) = match via {
        Via::Pipe => unreachable!("handled above"),
        Via::Pool => by_pool(job, &plan, workers)?,
        Via::Queue => by_queue(job, &plan, workers)?,
        Via::Shared => by_shared(job, &plan, workers)?,
    };
    Ok(PiReport {
        terms: job.terms,
        estimate: 4.0 * combine(&partials),
        wall: started.elapsed(),
        workers: reports,
        backend: backend(),
        kernel: kernel::selected().unwrap_or_else(|_| kernel::best()),
    })
}

/// The sum of one chunk `(first, last)`, as the queue and shared-memory workers take it.
fn chunk_sum((first, last): (u64, u64)) -> f64 {
    pi::partial_sum(first, last)
}

/// The chunks worker `w` of `workers` takes: `w`, `w + workers`, ...
fn share(w: usize, workers: usize, chunks: usize) -> impl Iterator<Item = usize> {
    (w..chunks).step_by(workers)
}

/// What the parent knows of worker `index`: its pid, CPU and share of the plan.
fn report(
    index: usize,
    pid: i32,
    pinned: Option<usize>,
    plan: &[(u64, u64)],
    workers: usize,
) -> WorkerReport {
    let mine: Vec<usize> = share(index, workers, plan.len()).collect();
    WorkerReport {
        index,
        pid,
        pinned,
        cpu: None,
        chunks: mine.len() as u64,
        terms: mine.iter().map(|&c| plan[c].1 - plan[c].0 + 1).sum(),
        busy: Duration::ZERO,
    }
}

/// The CPU worker `index` is pinned to, as the engine pins it.
fn cpu_for(job: &PiJob, cpus: &[usize], index: usize) -> Option<usize> {
    (job.pin && !cpus.is_empty()).then(|| cpus[index % cpus.len()])
}

/// The pool's task: a chunk's sum and the pid of the worker that summed it.
fn chunk_sum_by((first, last): (u64, u64)) -> (f64, i32) {
    (pi::partial_sum(first, last), std::process::id() as i32)
}

fn by_pool(
    job: &PiJob,
    plan: &[(u64, u64)],
    workers: usize,
) -> Result<(Vec<f64>, Vec<WorkerReport>)> {
    let cpus = available_cpus();
    let mut builder = Pool::builder().processes(workers).start_method(job.start);
    if job.pin {
        builder = builder.cpus(cpus.clone()).pin(true);
    }
    let pool = builder.build().map_err(ViaError::Pool)?;
    let done = pool.map_chunked(chunk_sum_by, plan.to_vec(), Some(1)).map_err(ViaError::Pool)?;
    let reports = pool
        .pids()
        .into_iter()
        .enumerate()
        .map(|(i, pid)| {
            // Which chunks this worker summed, from the pids they came back with.
            let mine: Vec<usize> = (0..done.len()).filter(|&c| done[c].1 == pid.as_raw()).collect();
            WorkerReport {
                chunks: mine.len() as u64,
                terms: mine.iter().map(|&c| plan[c].1 - plan[c].0 + 1).sum(),
                ..report(i, pid.as_raw(), cpu_for(job, &cpus, i), plan, workers)
            }
        })
        .collect();
    pool.close().map_err(ViaError::Pool)?;
    pool.join().map_err(ViaError::Pool)?;
    Ok((done.into_iter().map(|(sum, _)| sum).collect(), reports))
}

/// A queue worker: sums its share of the plan, putting `(chunk, bits)` on the queue.
fn queue_worker((fd, w, workers, terms): (i32, u64, u64, u64)) {
    let q = Queue::<(u64, u64)>::from_inherited(fd).expect("the queue was handed down");
    let plan = chunk_plan(terms);
    for c in share(w as usize, workers as usize, plan.len()) {
        q.put(&(c as u64, chunk_sum(plan[c]).to_bits())).expect("room on the queue");
    }
}

/// A shared-memory worker: sums its share of the plan into the array's slots.
fn shared_worker((fd, w, workers, terms): (i32, u64, u64, u64)) {
    let slots = Array::<f64>::from_inherited(fd).expect("the array was handed down");
    let plan = chunk_plan(terms);
    for c in share(w as usize, workers as usize, plan.len()) {
        let sum = chunk_sum(plan[c]);
        let _held = slots.get_lock().lock();
        slots.set(c, sum).expect("a slot per chunk");
    }
}

/// The started workers and the CPU each is pinned to.
type Started = (Vec<Process<()>>, Vec<Option<usize>>);

/// Starts `workers` processes of `entry`, each given `(fd, w, workers, terms)` and `fd`.
fn start_all(job: &PiJob, entry: &str, fd: i32, workers: usize) -> Result<Started> {
    let cpus = available_cpus();
    let mut procs = Vec::with_capacity(workers);
    let mut pinned = Vec::with_capacity(workers);
    for w in 0..workers {
        let args = (fd, w as u64, workers as u64, job.terms);
        let cpu = cpu_for(job, &cpus, w);
        let mut p = Process::entry(entry, &args)
            .inherit_fds([fd])
            .start_method(job.start)
            .name(format!("worker-{w}"))
            .daemon(true);
        if let Some(cpu) = cpu {
            p = p.cpus([cpu]);
        }
        p.start()?;
        procs.push(p);
        pinned.push(cpu);
    }
    Ok((procs, pinned))
}

/// An error if worker `w` has ended other than with exit code 0.
fn check_worker(w: usize, p: &mut Process<()>) -> Result<()> {
    match p.exitcode()? {
        Some(code) if !code.success() => {
            Err(Error::WorkerDied { worker: w, pid: p.pid()?, exitcode: code, panic: None })
        }
        _ => Ok(()),
    }
}

/// Joins every worker, then the reports of what each did.
fn join_all(
    procs: &mut [Process<()>],
    pinned: &[Option<usize>],
    plan: &[(u64, u64)],
) -> Result<Vec<WorkerReport>> {
    let workers = procs.len();
    let mut reports = Vec::with_capacity(workers);
    for (w, p) in procs.iter_mut().enumerate() {
        p.join()?;
        check_worker(w, p)?;
        let pid = p.pid()?.map_or(0, |pid| pid.as_raw());
        reports.push(report(w, pid, pinned[w], plan, workers));
    }
    Ok(reports)
}

fn by_queue(
    job: &PiJob,
    plan: &[(u64, u64)],
    workers: usize,
) -> Result<(Vec<f64>, Vec<WorkerReport>)> {
    let q = Queue::<(u64, u64)>::new().map_err(ViaError::Shm)?;
    let (mut procs, pinned) = start_all(job, QUEUE_ENTRY, q.as_raw_fd(), workers)?;
    let mut sums: Vec<Option<f64>> = vec![None; plan.len()];
    let mut got = 0;
    while got < plan.len() {
        match q.get_timeout(Duration::from_millis(200)) {
            Ok((c, bits)) => {
                let slot = sums.get_mut(c as usize).ok_or(ViaError::BadChunk(c))?;
                if slot.replace(f64::from_bits(bits)).is_some() {
                    return Err(ViaError::BadChunk(c).into());
                }
                got += 1;
            }
            // Nothing yet: a worker that died will never put its share.
            Err(GetError::Empty) => {
                for (w, p) in procs.iter_mut().enumerate() {
                    check_worker(w, p)?;
                }
            }
            Err(e) => return Err(ViaError::Get(e).into()),
        }
    }
    let reports = join_all(&mut procs, &pinned, plan)?;
    Ok((sums.into_iter().map(|s| s.expect("every chunk came")).collect(), reports))
}

fn by_shared(
    job: &PiJob,
    plan: &[(u64, u64)],
    workers: usize,
) -> Result<(Vec<f64>, Vec<WorkerReport>)> {
    let slots = Array::<f64>::zeroed(plan.len()).map_err(ViaError::Shm)?;
    let (mut procs, pinned) = start_all(job, SHARED_ENTRY, slots.as_raw_fd(), workers)?;
    let reports = join_all(&mut procs, &pinned, plan)?;
    let partials = {
        let _held = slots.get_lock().lock();
        slots.to_vec()
    };
    Ok((partials, reports))
}
