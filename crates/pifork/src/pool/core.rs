//! The pool's state and its event loop, driven by whoever waits on it: start and replace
//! workers, hand out chunks, read results, notice deaths (the pidfd sentinels) and timeouts.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::error::{PoolError, PoolResult};
use super::func::{self, FuncRef};
use super::store::{Flat, Outcomes, Spare};
use super::worker::{self, Reply};
use crate::fdtable::Tracked;
use crate::message::Message;
use crate::process::Process;
use crate::status::{ExitCode, Pid, StartMethod};
use crate::sys;
use crate::wait::remaining_ms;

/// How a pool is made.
pub(crate) struct Config {
    pub processes: usize,
    pub method: StartMethod,
    pub init: Option<(FuncRef, Vec<u8>)>,
    pub max_tasks: u64,
    pub cpus: Option<Vec<usize>>,
    pub pin: bool,
    pub retries: u32,
    pub timeout: Option<Duration>,
    /// Tasks a worker holds at once, however long they take (at least 1).
    pub prefetch: usize,
    /// The longest a new worker may take to become ready before it is killed and replaced.
    pub start_timeout: Duration,
    /// The caller's descriptors every worker inherits, under the same numbers.
    pub inherit: Vec<RawFd>,
    /// Whether one more worker is kept started and idle, to take a leaving one's place.
    pub standby: bool,
}

/// Workers in a row that did not become ready in time before the pool gives up.
const UNREADY_LIMIT: u32 = 3;

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
}

/// Items of one job handed out together.
struct Chunk {
    job: u64,
    items: Items,
    /// Run alone on a worker with nothing else to do (its worker's death is then its own).
    strict: bool,
}

/// Which items of a job a chunk holds.
#[derive(Debug, Clone, PartialEq)]
enum Items {
    /// Consecutive items, `start..end`.
    Run(u32, u32),
    /// Items in any order (given back after a death).
    List(VecDeque<u32>),
}

impl Items {
    /// These items: a run if they are consecutive.
    fn of(list: VecDeque<u32>) -> Items {
        match (list.front(), list.back()) {
            (Some(&a), Some(&b))
                if b.checked_sub(a) == Some(list.len() as u32 - 1)
                    && list.iter().zip(a..).all(|(&x, y)| x == y) =>
            {
                Items::Run(a, b + 1)
            }
            _ => Items::List(list),
        }
    }

    fn len(&self) -> usize {
        match self {
            Items::Run(a, b) => (b - a) as usize,
            Items::List(l) => l.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn front(&self) -> Option<u32> {
        match self {
            Items::Run(a, b) => (a < b).then_some(*a),
            Items::List(l) => l.front().copied(),
        }
    }

    /// Takes the first `k` items off.
    fn take_front(&mut self, k: usize) -> Items {
        match self {
            Items::Run(a, b) => {
                let end = (*a + k as u32).min(*b);
                let head = Items::Run(*a, end);
                *a = end;
                head
            }
            Items::List(l) => Items::List(l.drain(..k.min(l.len())).collect()),
        }
    }

    /// Every item, in order.
    fn all(&self) -> Vec<u32> {
        match self {
            Items::Run(a, b) => (*a..*b).collect(),
            Items::List(l) => l.iter().copied().collect(),
        }
    }
}

struct Worker {
    process: Process<()>,
    sock: Tracked,
    pid: Pid,
    inbuf: worker::InBuf,
    outbuf: Vec<u8>,
    /// How much of `outbuf` is written.
    out_pos: usize,
    sent: VecDeque<Chunk>,
    sent_count: u64,
    /// The CPU it is pinned to.
    cpu: Option<usize>,
    generation: u64,
    since: Instant,
    ready: bool,
    retiring: bool,
    timed_out: bool,
    eof: bool,
    /// Started and kept idle, to take a leaving worker's place: sent nothing, not counted.
    standby: bool,
}

/// A chunk's arguments at least this long are sent from the job's own buffer while nothing
/// waits before them (shorter ones are not worth a system call of their own).
const SEND_IN_PLACE: usize = 1 << 14;

impl Worker {
    /// Counted among the pool's `processes`: neither leaving nor the standby.
    fn staying(&self) -> bool {
        !self.retiring && !self.standby
    }

    /// Ready and staying: one the pool hands work to.
    fn serving(&self) -> bool {
        self.ready && self.staying()
    }

    /// Sends the frame that `outbuf` holds the head of and `tail` ends, as far as the socket
    /// takes it now, from where each piece is (with nothing before it waiting to go); keeps
    /// what is left in `outbuf`, for [`Inner::write_out`].
    fn send_or_keep(&mut self, tail: &[u8]) {
        if tail.len() < SEND_IN_PLACE || self.out_pos > 0 || self.eof {
            self.outbuf.extend_from_slice(tail);
            return;
        }
        let head = self.outbuf.len();
        match sys::send_parts_nosignal(self.sock.as_fd(), &[&self.outbuf, tail]) {
            Ok(n) if n >= head => {
                self.outbuf.clear();
                self.outbuf.extend_from_slice(&tail[n - head..]);
            }
            Ok(n) => {
                self.out_pos = n;
                self.outbuf.extend_from_slice(tail);
            }
            // Full, or gone: the bytes wait, and writing them later finds out which.
            Err(_) => self.outbuf.extend_from_slice(tail),
        }
    }
}

/// A call's tasks: their arguments until they run, then their outcomes.
pub(crate) struct Job {
    func: FuncRef,
    closure: Option<u64>,
    /// The arguments, as they were added; freed once all of their items are done.
    args: VecDeque<Segment>,
    /// Every item's outcome.
    pub outcomes: Outcomes,
    /// How often each item's worker died under it (items that ever had one).
    attempts: HashMap<u32, u32>,
    /// Items whose outcome is not known yet.
    pub remaining: usize,
    /// No more items will be added.
    pub input_done: bool,
    /// Items in the order they finished, not yet taken by an unordered reader (kept only
    /// for one).
    pub finished: VecDeque<u32>,
    finish_order: bool,
    on_done: Option<OnDone>,
    /// Nobody holds the job's handle: forget it once done.
    detached: bool,
}

/// Arguments added together: items `first..`.
struct Segment {
    first: u32,
    args: Flat,
    /// Its items whose outcome is not known yet.
    unfinished: usize,
}

/// What a job does when it completes: makes the callback to run (from its outcomes).
pub(crate) type OnDone = Box<dyn FnOnce(&Outcomes) -> Callback>;

/// A callback to run once the pool is released.
pub(crate) type Callback = Box<dyn FnOnce()>;

impl Job {
    /// Whether every item has its outcome.
    pub fn complete(&self) -> bool {
        self.input_done && self.remaining == 0
    }

    /// Where item `idx`'s arguments are: a position in `args`.
    fn segment(&self, idx: u32) -> Option<usize> {
        let p = self.args.partition_point(|s| s.first <= idx).checked_sub(1)?;
        let s = &self.args[p];
        (((idx - s.first) as usize) < s.args.len()).then_some(p)
    }

    /// Item `idx`'s encoded arguments (empty once it is done).
    fn arg(&self, idx: u32) -> &[u8] {
        match self.segment(idx) {
            Some(p) if self.args[p].unfinished > 0 => {
                let s = &self.args[p];
                s.args.get((idx - s.first) as usize)
            }
            _ => &[],
        }
    }

    /// Items `first..first + n` are done: their arguments may go.
    fn settle(&mut self, first: u32, n: u32, spare: &mut Spare) {
        let (mut i, end) = (first, first + n);
        while i < end {
            let Some(p) = self.segment(i) else { break };
            let s = &mut self.args[p];
            let upto = end.min(s.first + s.args.len() as u32);
            s.unfinished = s.unfinished.saturating_sub((upto - i) as usize);
            if s.unfinished == 0 {
                spare.give(s.args.free());
            }
            i = upto;
        }
        while self.args.front().is_some_and(|s| s.unfinished == 0) {
            self.args.pop_front();
        }
    }

    /// Records one item's outcome; false if it was known already.
    fn set(&mut self, idx: u32, outcome: PoolResult<&[u8]>, spare: &mut Spare) -> bool {
        let new = match outcome {
            Ok(bytes) => self.outcomes.set_value(idx, bytes),
            Err(e) => self.outcomes.set_error(idx, e),
        };
        if new {
            self.settle(idx, 1, spare);
            self.remaining -= 1;
            if self.finish_order {
                self.finished.push_back(idx);
            }
        }
        new
    }

    /// Records the values of items `first..first + n`, each `size` bytes of `bytes`, in one
    /// go; false (nothing recorded) if that cannot be done at once.
    fn set_run(
        &mut self,
        first: u32,
        n: u32,
        size: usize,
        bytes: &[u8],
        spare: &mut Spare,
    ) -> bool {
        if !self.outcomes.set_values(first, n as usize, size, bytes) {
            return false;
        }
        self.settle(first, n, spare);
        self.remaining -= n as usize;
        if self.finish_order {
            self.finished.extend(first..first + n);
        }
        true
    }

    /// Appends a chunk of these items (a request, in the worker's form) to `out`, but for
    /// its tail, returned: arguments added together, sent from where they are if they can be.
    fn write_chunk(&self, out: &mut Vec<u8>, items: &Items) -> &[u8] {
        let start = worker::begin_frame(out);
        out.push(worker::REQ_CHUNK);
        self.func.encode(out);
        (items.len() as u64).encode(out);
        let run = match *items {
            Items::Run(a, b) => self
                .segment(a)
                .filter(|&p| {
                    let s = &self.args[p];
                    s.unfinished > 0 && b <= s.first + s.args.len() as u32
                })
                .map(|p| (p, a, b)),
            Items::List(_) => None,
        };
        if let Some((p, a, b)) = run {
            // Consecutive items added together: their bytes are already end to end.
            let s = &self.args[p];
            let (a, b) = ((a - s.first) as usize, (b - s.first) as usize);
            match s.args.stride() {
                Some(size) => worker::push_same_size(out, size),
                None => {
                    out.push(1);
                    for i in a..b {
                        out.extend_from_slice(&(s.args.get(i).len() as u32).to_le_bytes());
                    }
                }
            }
            let tail = s.args.span(a, b);
            let len = (out.len() - start - 4 + tail.len()) as u32;
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            tail
        } else {
            let all = items.all();
            out.push(1);
            for &i in &all {
                out.extend_from_slice(&(self.arg(i).len() as u32).to_le_bytes());
            }
            for &i in &all {
                out.extend_from_slice(self.arg(i));
            }
            worker::end_frame(out, start);
            &[]
        }
    }
}

/// The pool's state.
pub(crate) struct Inner {
    cfg: Config,
    pub state: State,
    workers: Vec<Worker>,
    started: usize,
    queue: VecDeque<Chunk>,
    pub jobs: HashMap<u64, Job>,
    next_job: u64,
    broken: Option<PoolError>,
    callbacks: Vec<Callback>,
    /// The replies' time (ns) and items so far, each fading by 1/8 a reply: behind
    /// [`item_time`](Self::item_time).
    item_sums: (f64, f64),
    /// Workers in a row killed for not becoming ready in time.
    unready: u32,
    /// Buffers of finished jobs, for the next ones.
    spare: Spare,
    /// The executable's identity, for the workers to check theirs against.
    exe: worker::ExeId,
}

/// A descriptor to watch while a pool starts, and what to ask when it is readable.
pub(crate) type Watch<'a, 'b> = (BorrowedFd<'a>, &'b mut dyn FnMut() -> bool);

/// A task that has run this long is long: its worker gets no more work queued behind it.
const BUSY: Duration = Duration::from_micros(200);

/// About this much work (by the tasks' time so far) is queued at each worker.
const QUEUED_WORK: Duration = Duration::from_millis(1);

/// At most this many chunks are queued at a worker.
const MAX_DEPTH: usize = 1024;

/// Chunks queued at a worker before any task has reported its time.
const FIRST_DEPTH: usize = 8;

fn now() -> Instant {
    Instant::now()
}

impl Inner {
    /// A pool with its workers started and ready. With `watch`, its `check` is asked whenever
    /// its descriptor is readable while they start: `true` gives up ([`PoolError::Interrupted`],
    /// the workers started so far killed and reaped).
    pub fn start(cfg: Config, mut watch: Option<Watch<'_, '_>>) -> PoolResult<Inner> {
        let mut inner = Inner {
            cfg,
            state: State::Running,
            workers: Vec::new(),
            started: 0,
            queue: VecDeque::new(),
            jobs: HashMap::new(),
            next_job: 0,
            broken: None,
            callbacks: Vec::new(),
            item_sums: (0.0, 0.0),
            unready: 0,
            spare: Spare::default(),
            exe: sys::executable_identity().map_err(|_| PoolError::ExecutableMismatch)?,
        };
        let extra: Vec<BorrowedFd<'_>> = watch.iter().map(|(fd, _)| *fd).collect();
        while inner.workers.len() < inner.cfg.processes {
            if !extra.is_empty() && !inner.poll_extra(&extra, 0).is_empty() {
                inner.check_watch(&mut watch)?;
            }
            inner.start_worker(false)?;
        }
        if inner.cfg.standby {
            inner.start_worker(true)?;
        }
        while inner.workers.iter().any(|w| !w.ready) {
            if !inner.step_with(None, &extra)?.is_empty() {
                inner.check_watch(&mut watch)?;
            }
            if let Some(e) = inner.broken.clone() {
                inner.terminate();
                return Err(e);
            }
        }
        Ok(inner)
    }

    /// Asks the start's watch whether to give up; if so, ends the workers started so far.
    fn check_watch(&mut self, watch: &mut Option<Watch<'_, '_>>) -> PoolResult<()> {
        if let Some((_, check)) = watch
            && check()
        {
            self.terminate();
            return Err(PoolError::Interrupted);
        }
        Ok(())
    }

    /// Which of `extra` are readable within `timeout_ms` (-1: as long as it takes).
    fn poll_extra(&self, extra: &[BorrowedFd<'_>], timeout_ms: i32) -> Vec<usize> {
        let mut fds: Vec<PollFd<'_>> =
            extra.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        if sys::poll(&mut fds, timeout_ms).is_err() {
            return Vec::new();
        }
        fds.iter()
            .enumerate()
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| i)
            .collect()
    }

    /// The tasks of job `id` that a worker is running now: (item, the worker's pid, since
    /// when). A worker runs what it was sent in order, so its oldest unfinished item is the one.
    pub fn running(&self, id: u64) -> Vec<(u32, Pid, Instant)> {
        self.workers
            .iter()
            .filter_map(|w| {
                let c = w.sent.front()?;
                (c.job == id).then(|| c.items.front().map(|i| (i, w.pid, w.since)))?
            })
            .collect()
    }

    /// Kills worker `pid` (SIGKILL); the loop reaps and replaces it, and settles its tasks as
    /// for any death. False if no worker has that pid.
    pub fn kill_worker(&mut self, pid: Pid) -> bool {
        match self.workers.iter_mut().find(|w| w.pid == pid) {
            Some(w) => w.process.kill().is_ok(),
            None => false,
        }
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.cfg.processes
    }

    /// The start method of the workers.
    pub fn method(&self) -> StartMethod {
        self.cfg.method
    }

    /// The pids of the live workers (not the standby's).
    pub fn pids(&self) -> Vec<Pid> {
        self.workers.iter().filter(|w| !w.standby).map(|w| w.pid).collect()
    }

    /// The standby worker's pid, if one is started (and not leaving).
    pub fn standby_pid(&self) -> Option<Pid> {
        self.workers.iter().find(|w| w.standby && !w.retiring).map(|w| w.pid)
    }

    /// The CPUs the workers may run on: the pool's set, or all this process may use.
    fn cpu_set(&self) -> Vec<usize> {
        self.cfg.cpus.clone().unwrap_or_else(crate::process::available_cpus)
    }

    /// The CPU fewest staying workers (not the standby) are pinned to, of the pool's set.
    fn emptiest_cpu(&self, cpus: &[usize]) -> Option<usize> {
        let on = |c: usize| self.workers.iter().filter(|w| w.staying() && w.cpu == Some(c)).count();
        cpus.iter().copied().min_by_key(|&c| on(c))
    }

    /// Starts a worker; with `standby`, one kept idle until a worker leaves (unpinned until
    /// then: which CPU it takes is its predecessor's).
    fn start_worker(&mut self, standby: bool) -> PoolResult<()> {
        let (ours, theirs) = sys::stream_pair().map_err(crate::error::Error::sys("socketpair"))?;
        let theirs = Tracked::new(theirs);
        let args: worker::WorkerArgs = (
            theirs.as_raw_fd(),
            self.exe,
            self.cfg.init.clone(),
            self.cfg.max_tasks,
            self.cfg.timeout.is_some(),
        );
        let index = self.started;
        self.started += 1;
        let mut process = Process::<()>::entry(worker::ENTRY, &args)
            .name(format!("PoolWorker-{}", index + 1))
            .daemon(true)
            .start_method(self.cfg.method)
            .inherit_fds(
                std::iter::once(theirs.as_raw_fd()).chain(self.cfg.inherit.iter().copied()),
            );
        let cpus = self.cpu_set();
        let mut pinned = None;
        if self.cfg.pin && !cpus.is_empty() && !standby {
            // The CPU fewest staying workers are on: a replacement takes its predecessor's.
            let cpu = self.emptiest_cpu(&cpus).unwrap_or(cpus[0]);
            pinned = Some(cpu);
            process = process.cpus([cpu]);
        } else if self.cfg.cpus.is_some() {
            process = process.cpus(cpus);
        }
        let generation = func::closure_generation();
        process.start()?;
        drop(theirs);
        let pid = process.pid()?.ok_or(PoolError::Process(crate::error::Error::NotStarted))?;
        sys::set_nonblocking(ours.as_fd(), true).map_err(crate::error::Error::sys("fcntl"))?;
        self.workers.push(Worker {
            process,
            sock: Tracked::new(ours),
            pid,
            inbuf: worker::InBuf::default(),
            outbuf: Vec::new(),
            out_pos: 0,
            sent: VecDeque::new(),
            sent_count: 0,
            cpu: pinned,
            generation,
            since: now(),
            ready: false,
            retiring: false,
            timed_out: false,
            eof: false,
            standby,
        });
        Ok(())
    }

    /// Puts the standby (the first, ready or not) in a leaving worker's place: counted and
    /// sent work from now on, and on a pinned pool pinned as a replacement would be. False if
    /// there is none.
    fn promote_standby(&mut self) -> bool {
        let Some(i) = self.workers.iter().position(|w| w.standby && !w.retiring) else {
            return false;
        };
        if self.cfg.pin {
            let cpus = self.cpu_set();
            if let Some(cpu) = self.emptiest_cpu(&cpus) {
                let w = &mut self.workers[i];
                match sys::set_affinity_of(w.pid.as_raw(), &[cpu]) {
                    Ok(()) => w.cpu = Some(cpu),
                    Err(e) => log::debug!("pool standby {} not pinned to CPU {cpu}: {e}", w.pid),
                }
            }
        }
        let w = &mut self.workers[i];
        w.standby = false;
        w.since = now();
        true
    }

    /// Starts the next standby, when the pool keeps one, has none, no task waits to be handed
    /// out and a worker has nothing to do: the start then takes the CPU that worker left, not
    /// one that still has work (a map's tail, or an idle pool).
    fn refill_standby(&mut self) -> PoolResult<()> {
        let idle_worker = || self.workers.iter().any(|w| w.serving() && w.sent.is_empty());
        if self.cfg.standby
            && self.state == State::Running
            && self.broken.is_none()
            && self.queue.is_empty()
            && self.standby_pid().is_none()
            && idle_worker()
        {
            self.start_worker(true)?;
        }
        Ok(())
    }

    /// A new job running `func` over `args` (more may be added while `input_done` is false).
    pub fn add_job(
        &mut self,
        func: &super::func::Wire,
        args: Flat,
        chunksize: usize,
        input_done: bool,
        finish_order: bool,
        on_done: Option<OnDone>,
    ) -> PoolResult<u64> {
        if self.state != State::Running {
            return Err(PoolError::NotRunning);
        }
        let (func, closure) = match func {
            super::func::Wire::Code(offset) => {
                (FuncRef { kind: func::KIND_CODE, value: *offset, name: String::new() }, None)
            }
            super::func::Wire::Entry(name) => {
                if !crate::process::is_registered(name) {
                    return Err(PoolError::UnknownEntry(name.clone()));
                }
                (FuncRef { kind: func::KIND_ENTRY, value: 0, name: name.clone() }, None)
            }
            super::func::Wire::Closure(f) => {
                if self.cfg.method != StartMethod::Fork {
                    return Err(PoolError::ClosureNeedsFork { method: self.cfg.method });
                }
                let id = func::store_closure(f.clone());
                (
                    FuncRef { kind: func::KIND_CLOSURE, value: id as i64, name: String::new() },
                    Some(id),
                )
            }
        };
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(
            id,
            Job {
                func,
                closure,
                args: VecDeque::new(),
                outcomes: Outcomes::new(self.spare.take()),
                attempts: HashMap::new(),
                remaining: 0,
                input_done: false,
                finished: VecDeque::new(),
                finish_order,
                on_done,
                detached: false,
            },
        );
        self.extend_job(id, args, chunksize);
        if input_done {
            self.finish_input(id);
        }
        Ok(id)
    }

    /// Adds items to a job, in chunks of `chunksize`.
    pub fn extend_job(&mut self, id: u64, args: Flat, chunksize: usize) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if args.is_empty() {
            return;
        }
        let first = job.outcomes.len() as u32;
        let n = args.len() as u32;
        job.remaining += args.len();
        job.outcomes.add(args.len());
        job.args.push_back(Segment { first, args, unfinished: n as usize });
        if let Some(e) = self
            .broken
            .clone()
            .or_else(|| (self.state == State::Terminated).then_some(PoolError::Terminated))
        {
            for idx in first..first + n {
                self.record(id, idx, Err(e.clone()));
            }
            return;
        }
        let chunksize = chunksize.max(1) as u32;
        let mut start = first;
        while start < first + n {
            let end = (start + chunksize).min(first + n);
            self.queue.push_back(Chunk { job: id, items: Items::Run(start, end), strict: false });
            start = end;
        }
    }

    /// Marks a job's input as complete.
    pub fn finish_input(&mut self, id: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.input_done = true;
        }
        self.maybe_done(id);
    }

    /// The handle of a job is gone: forget it once complete.
    pub fn detach(&mut self, id: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.detached = true;
            if job.complete() {
                self.forget(id);
            }
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(job) = self.jobs.remove(&id) {
            if let Some(c) = job.closure {
                func::forget_closure(c);
            }
            for segment in job.args {
                self.spare.give(segment.args.into_bytes());
            }
            for buf in job.outcomes.into_buffers() {
                self.spare.give(buf);
            }
        }
    }

    /// An empty buffer to encode arguments into (one kept from a finished job, if any).
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.take()
    }

    /// Queued chunks, a measure of how much input a lazy job should add.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Removes a job's items that have not been handed out yet, as cancelled; true if the
    /// whole job was still waiting.
    pub fn cancel(&mut self, id: u64) -> bool {
        let handed = self.workers.iter().any(|w| w.sent.iter().any(|c| c.job == id));
        let Some(job) = self.jobs.get(&id) else { return false };
        if handed || job.remaining < job.outcomes.len() {
            return false;
        }
        let mut cancelled = Vec::new();
        self.queue.retain(|c| {
            if c.job == id {
                cancelled.extend(c.items.all());
                false
            } else {
                true
            }
        });
        for idx in cancelled {
            self.record(id, idx, Err(PoolError::Cancelled));
        }
        true
    }

    /// Callbacks ready to run (without the lock).
    pub fn take_callbacks(&mut self) -> Vec<Callback> {
        std::mem::take(&mut self.callbacks)
    }

    fn record(&mut self, id: u64, idx: u32, outcome: PoolResult<&[u8]>) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if job.set(idx, outcome, &mut self.spare) {
            self.maybe_done(id);
        }
    }

    /// Records the values of items `first..first + n` at once (see [`Job::set_run`]); false
    /// if they must be recorded one by one.
    fn record_run(&mut self, id: u64, first: u32, n: u32, size: usize, bytes: &[u8]) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else { return true };
        if !job.set_run(first, n, size, bytes, &mut self.spare) {
            return false;
        }
        self.maybe_done(id);
        true
    }

    fn maybe_done(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if !job.complete() {
            return;
        }
        if let Some(c) = job.closure.take() {
            func::forget_closure(c);
        }
        if let Some(on_done) = job.on_done.take() {
            self.callbacks.push(on_done(&job.outcomes));
        }
        if job.detached {
            self.forget(id);
        }
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty()
            || self.workers.iter().any(|w| !w.sent.is_empty())
            || self.jobs.values().any(|j| !j.input_done)
    }

    /// Stops taking work: workers leave once what was submitted is done.
    pub fn close(&mut self) {
        if self.state == State::Running {
            self.state = State::Closed;
        }
    }

    /// Kills every worker and reaps it; unfinished tasks end as `Terminated`.
    pub fn terminate(&mut self) {
        self.state = State::Terminated;
        for w in &mut self.workers {
            let _ = w.process.kill();
        }
        for mut w in std::mem::take(&mut self.workers) {
            let _ = w.process.join();
            for chunk in w.sent.drain(..) {
                self.queue.push_back(chunk);
            }
        }
        for chunk in std::mem::take(&mut self.queue) {
            for idx in chunk.items.all() {
                self.record(chunk.job, idx, Err(PoolError::Terminated));
            }
        }
    }

    /// True once every worker has left (after close and all work, or after terminate).
    pub fn joined(&self) -> bool {
        self.workers.is_empty() && self.state != State::Running && !self.has_work()
    }

    /// One turn of the loop: start what is missing, hand out work, wait (until `deadline` at
    /// the latest) for the workers, and take in what they did.
    pub fn step(&mut self, deadline: Option<Instant>) -> PoolResult<()> {
        self.step_with(deadline, &[]).map(|_| ())
    }

    /// [`step`](Self::step), also waiting on the caller's `extra` descriptors: which of them
    /// are readable.
    pub fn step_with(
        &mut self,
        deadline: Option<Instant>,
        extra: &[BorrowedFd<'_>],
    ) -> PoolResult<Vec<usize>> {
        if self.state == State::Terminated {
            return Ok(Vec::new());
        }
        self.maintain()?;
        self.dispatch();
        for i in 0..self.workers.len() {
            self.write_out(i);
        }
        self.refill_standby()?;
        let task_deadline = self.cfg.timeout.and_then(|t| {
            self.workers.iter().filter(|w| !w.sent.is_empty()).map(|w| w.since + t).min()
        });
        let start_timeout = self.cfg.start_timeout;
        let ready_deadline =
            self.workers.iter().filter(|w| !w.ready).map(|w| w.since + start_timeout).min();
        let wake = [deadline, task_deadline, ready_deadline].into_iter().flatten().min();
        if self.workers.is_empty() {
            if !extra.is_empty() {
                return Ok(self.poll_extra(extra, remaining_ms(wake).unwrap_or(-1)));
            }
            if let Some(d) = wake {
                std::thread::sleep(d.saturating_duration_since(now()));
            }
            return Ok(Vec::new());
        }
        let events = {
            let mut fds = Vec::with_capacity(self.workers.len() * 2 + extra.len());
            for w in &self.workers {
                let mut flags = PollFlags::POLLIN;
                if w.out_pos < w.outbuf.len() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(w.sock.as_fd(), flags));
                fds.push(PollFd::new(w.process.sentinel()?, PollFlags::POLLIN));
            }
            fds.extend(extra.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            let timeout = remaining_ms(wake).unwrap_or(-1);
            match sys::poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(crate::error::Error::sys("poll")(e).into()),
            }
            fds.iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect::<Vec<PollFlags>>()
        };
        let base = 2 * self.workers.len();
        let ready: Vec<usize> =
            (0..extra.len()).filter(|&j| !events[base + j].is_empty()).collect();
        let mut exited = Vec::new();
        for i in 0..self.workers.len() {
            let sock = events[2 * i];
            if sock.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.read_in(i);
            }
            if sock.contains(PollFlags::POLLOUT) {
                self.write_out(i);
            }
            if !events[2 * i + 1].is_empty() || self.workers[i].eof {
                exited.push(i);
            }
        }
        if let Some(t) = self.cfg.timeout {
            for (i, w) in self.workers.iter_mut().enumerate() {
                if !w.sent.is_empty() && w.since + t <= now() && !w.timed_out {
                    w.timed_out = true;
                    let _ = w.process.kill();
                    exited.push(i);
                }
            }
        }
        for (i, w) in self.workers.iter_mut().enumerate() {
            // Stopped or hung before it was ready (nothing was sent to it): replace it.
            if !w.ready && !w.timed_out && w.since + start_timeout <= now() {
                log::debug!("pool worker {} not ready after {start_timeout:?}: killed", w.pid);
                w.timed_out = true;
                let _ = w.process.kill();
                exited.push(i);
                self.unready += 1;
                if self.unready >= UNREADY_LIMIT && self.broken.is_none() {
                    self.broken = Some(PoolError::StartTimedOut { timeout: start_timeout });
                }
            }
        }
        exited.sort_unstable();
        exited.dedup();
        let replace = !exited.is_empty();
        for i in exited.into_iter().rev() {
            self.reap(i);
        }
        if let Some(e) = self.broken.clone() {
            for chunk in std::mem::take(&mut self.queue) {
                for idx in chunk.items.all() {
                    self.record(chunk.job, idx, Err(e.clone()));
                }
            }
        }
        if replace {
            // Replacements start at once, not at the next call.
            self.maintain()?;
        }
        Ok(ready)
    }

    /// Starts workers up to the pool's size (while there is, or may be, work).
    fn maintain(&mut self) -> PoolResult<()> {
        if self.broken.is_some() {
            return Ok(());
        }
        if self.state == State::Closed && !self.has_work() {
            for w in &mut self.workers {
                if !w.retiring {
                    w.retiring = true;
                    worker::push_stop(&mut w.outbuf);
                }
            }
            return Ok(());
        }
        while self.workers.iter().filter(|w| w.staying()).count() < self.cfg.processes {
            if !self.promote_standby() {
                self.start_worker(false)?;
            }
        }
        Ok(())
    }

    /// A running average of one item's time in a worker, the replies weighed by their items
    /// (zero before the first).
    fn item_time(&self) -> Duration {
        let (ns, items) = self.item_sums;
        if items > 0.0 { Duration::from_nanos((ns / items) as u64) } else { Duration::ZERO }
    }

    /// How many chunks a worker may hold: about [`QUEUED_WORK`] of them by the time items
    /// have taken so far (a few while none has reported), at most [`MAX_DEPTH`], and at least
    /// two (the next is there when one ends). Tiny tasks then cross in big batches, each
    /// worker woken once for many of them.
    fn depth_cap(&self) -> usize {
        let item_time = self.item_time();
        if item_time.is_zero() {
            return FIRST_DEPTH;
        }
        let items = self.queue.front().map_or(1, |c| c.items.len().max(1)) as u128;
        let chunk_ns = item_time.as_nanos().saturating_mul(items).max(1);
        (QUEUED_WORK.as_nanos() / chunk_ns).clamp(2, MAX_DEPTH as u128) as usize
    }

    fn dispatch(&mut self) {
        let live = self.workers.iter().filter(|w| w.serving()).count().max(1);
        // Short tasks go out several at a time (fewer system calls); long ones one at a time,
        // so that an idle worker never waits behind a busy one.
        let prefetch = self.cfg.prefetch.max(1);
        let depth = if self.item_time() > BUSY {
            1
        } else {
            (self.queue.len() / live + 1).min(self.depth_cap())
        };
        let depth = depth.max(prefetch);
        let mut needs_newer: Option<u64> = None;
        // A task to run alone waits at the front. A worker on its way (the replacement of the
        // one that died running it) takes it when ready, the others streaming on meanwhile;
        // with none on its way, the least busy worker runs dry for it.
        let strict_waiting = self.queue.front().is_some_and(|c| c.strict);
        let starting = self.workers.iter().any(|w| !w.ready && w.staying());
        let drain = (strict_waiting && !starting)
            .then(|| {
                (0..self.workers.len())
                    .filter(|&i| self.workers[i].serving())
                    .min_by_key(|&i| self.workers[i].sent.len())
            })
            .flatten();
        let depth = if strict_waiting && !starting { 1 } else { depth };
        for round in 0..depth {
            for (i, w) in self.workers.iter_mut().enumerate() {
                if !w.ready || w.retiring || w.standby || w.sent.len() > round {
                    continue;
                }
                if drain == Some(i) && !w.sent.is_empty() {
                    continue;
                }
                if round >= prefetch && now().saturating_duration_since(w.since) > BUSY {
                    // Its task has run a while: more would wait behind it.
                    continue;
                }
                if w.sent.front().is_none_or(|c| !c.strict) {
                    let pick = self.queue.iter().take(64).position(|c| {
                        let job = &self.jobs[&c.job];
                        let fits = job.closure.is_none_or(|id| id < w.generation);
                        if !fits {
                            needs_newer = job.closure;
                        }
                        fits && (!c.strict || w.sent.is_empty())
                    });
                    let Some(pos) = pick else { continue };
                    let chunk = self.queue.remove(pos).expect("position is in the queue");
                    // Written straight from the job's arguments (they stay there for a retry).
                    let tail = self.jobs[&chunk.job].write_chunk(&mut w.outbuf, &chunk.items);
                    w.send_or_keep(tail);
                    if w.sent.is_empty() {
                        w.since = now();
                    }
                    w.sent.push_back(chunk);
                    w.sent_count += 1;
                    if self.cfg.max_tasks > 0 && w.sent_count >= self.cfg.max_tasks {
                        // It leaves by itself after this one; a replacement starts now.
                        w.retiring = true;
                    }
                }
            }
        }
        if let Some(id) = needs_newer {
            // A closure newer than an idle worker: retire it, a fresh fork replaces it.
            if let Some(w) = self
                .workers
                .iter_mut()
                .find(|w| w.serving() && w.sent.is_empty() && w.generation <= id)
            {
                w.retiring = true;
                worker::push_stop(&mut w.outbuf);
            }
            // A standby forked before it could not run it either: the next is forked anew.
            if let Some(w) =
                self.workers.iter_mut().find(|w| w.standby && !w.retiring && w.generation <= id)
            {
                w.retiring = true;
                worker::push_stop(&mut w.outbuf);
            }
        }
    }

    fn write_out(&mut self, i: usize) {
        let w = &mut self.workers[i];
        while w.out_pos < w.outbuf.len() {
            match sys::send_nosignal(w.sock.as_fd(), &w.outbuf[w.out_pos..]) {
                Ok(n) if n > 0 => w.out_pos += n,
                Err(Errno::EAGAIN) => {
                    if w.out_pos >= 1 << 20 {
                        // Written a lot, never all: drop what went (and the copying it costs).
                        w.outbuf.drain(..w.out_pos);
                        w.out_pos = 0;
                    }
                    return;
                }
                _ => {
                    w.outbuf.clear();
                    w.out_pos = 0;
                    w.eof = true;
                    return;
                }
            }
        }
        w.outbuf.clear();
        w.out_pos = 0;
    }

    fn read_in(&mut self, i: usize) {
        loop {
            let w = &mut self.workers[i];
            match w.inbuf.read(w.sock.as_fd()) {
                Ok(0) => {
                    w.eof = true;
                    break;
                }
                Ok(_) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    w.eof = true;
                    break;
                }
            }
        }
        let buf = std::mem::take(&mut self.workers[i].inbuf);
        let mut pos = 0;
        let t = now();
        while let Some(body) = worker::next_frame(buf.rest(), &mut pos) {
            match worker::parse_reply(body) {
                Some(reply) => self.on_reply(i, reply, t),
                None => self.workers[i].eof = true,
            }
        }
        let mut buf = buf;
        buf.take(pos);
        self.workers[i].inbuf = buf;
    }

    /// One reply, read at `t`.
    fn on_reply(&mut self, i: usize, reply: Reply<'_>, t: Instant) {
        match reply {
            Reply::Ready => {
                self.workers[i].ready = true;
                self.unready = 0;
            }
            Reply::Failed(status, payload) => {
                self.broken = Some(if status == 0 {
                    PoolError::ExecutableMismatch
                } else {
                    PoolError::InitializerFailed(String::from_utf8_lossy(payload).into_owned())
                });
            }
            Reply::Results(outcomes) => self.on_results(i, outcomes, t),
        }
    }

    /// The outcomes of a worker's next tasks, read at `t`.
    fn on_results(&mut self, i: usize, mut outcomes: worker::Items<'_>, t: Instant) {
        let n = outcomes.len();
        if n == 0 {
            return;
        }
        let w = &mut self.workers[i];
        let took = t.saturating_duration_since(w.since);
        w.since = t;
        // Weighed by items: a lone task's round trip (a retry run alone, a new worker's first)
        // moves the estimate for tiny tasks little, and so does not shrink everyone's batches.
        let (ns, items) = self.item_sums;
        self.item_sums = (ns * 0.875 + took.as_nanos() as f64, items * 0.875 + n as f64);
        // A worker runs what it was sent in order: these are its front items. Consecutive
        // items of one job are recorded together.
        let mut pieces: Vec<(u64, Items)> = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some(c) = w.sent.front_mut() else {
                // More outcomes than tasks: not our worker any more.
                w.eof = true;
                break;
            };
            let k = left.min(c.items.len());
            let part = c.items.take_front(k);
            let job = c.job;
            if c.items.is_empty() {
                w.sent.pop_front();
            }
            left -= k;
            match (pieces.last_mut(), part) {
                (Some((j, Items::Run(_, end))), Items::Run(a, b)) if *j == job && *end == a => {
                    *end = b
                }
                (_, part) => pieces.push((job, part)),
            }
        }
        for (job, part) in pieces {
            if let Items::Run(a, b) = part
                && let Some((size, bytes)) = outcomes.take_same((b - a) as usize)
            {
                if !self.record_run(job, a, b - a, size, bytes) {
                    for (k, idx) in (a..b).enumerate() {
                        self.record(job, idx, Ok(&bytes[k * size..(k + 1) * size]));
                    }
                }
                continue;
            }
            for idx in part.all() {
                let Some((status, payload)) = outcomes.next() else { return };
                let outcome = match status {
                    worker::STATUS_VALUE => Ok(payload),
                    worker::STATUS_PANIC => {
                        Err(PoolError::TaskPanicked(String::from_utf8_lossy(payload).into_owned()))
                    }
                    _ => Err(PoolError::TaskFailed(String::from_utf8_lossy(payload).into_owned())),
                };
                self.record(job, idx, outcome);
            }
        }
    }

    /// A worker's sentinel or socket says it is gone (or going): take its last words, reap it,
    /// and settle the tasks it had.
    fn reap(&mut self, i: usize) {
        if !self.workers[i].eof {
            // Results written before the end are still in the socket.
            let _ = sys::set_nonblocking(self.workers[i].sock.as_fd(), true);
            self.read_in(i);
        }
        let mut w = self.workers.remove(i);
        let _ = w.process.join();
        let exitcode = w.process.exitcode().ok().flatten().unwrap_or(ExitCode::Exited(-1));
        if !w.ready && self.broken.is_none() && self.state != State::Terminated && w.sent.is_empty()
        {
            log::debug!("pool worker {} died before it was ready ({exitcode})", w.pid);
        }
        // What was sent runs in order: the oldest chunk's first unfinished item was running.
        let front = w.sent.front().map_or(0, |c| c.items.len());
        let mut items: Vec<(u64, u32, bool)> = Vec::new();
        for c in w.sent.drain(..) {
            items.extend(c.items.all().into_iter().map(|idx| (c.job, idx, c.strict)));
        }
        let Some(&(job, idx, strict)) = items.first() else { return };
        let rest = &items[1..];
        if w.timed_out {
            let timeout = self.cfg.timeout.unwrap_or_default();
            self.record(job, idx, Err(PoolError::TaskTimedOut { pid: w.pid, timeout }));
            self.requeue(rest, false);
        } else if strict || front == 1 {
            let attempts = self.jobs.get_mut(&job).map(|j| {
                let a = j.attempts.entry(idx).or_insert(0);
                *a += 1;
                *a
            });
            match attempts {
                Some(a) if a > self.cfg.retries => self.record(
                    job,
                    idx,
                    Err(PoolError::WorkerDied { pid: w.pid, exitcode, attempts: a }),
                ),
                Some(_) => self.requeue(&[(job, idx, true)], true),
                None => {}
            }
            self.requeue(rest, false);
        } else {
            // Which item of its oldest chunk ran when it died is unknown: each runs alone next
            // time; the chunks behind it had not started.
            self.requeue(&items[front..], false);
            self.requeue(&items[..front], true);
        }
    }

    fn requeue(&mut self, items: &[(u64, u32, bool)], strict: bool) {
        if strict {
            for &(job, idx, _) in items.iter().rev() {
                self.queue.push_front(Chunk { job, items: Items::Run(idx, idx + 1), strict: true });
            }
        } else {
            let mut by_job: Vec<(u64, VecDeque<u32>)> = Vec::new();
            for &(j, idx, _) in items {
                match by_job.last_mut() {
                    Some((job, list)) if *job == j => list.push_back(idx),
                    _ => by_job.push((j, VecDeque::from([idx]))),
                }
            }
            for (job, list) in by_job.into_iter().rev() {
                self.queue.push_front(Chunk { job, items: Items::of(list), strict: false });
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.terminate();
        }
    }
}
