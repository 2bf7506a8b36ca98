//! The pool's front: [`Pool`], its builder, and the handles of submitted work.

use std::cell::{RefCell, RefMut};
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::core::{Callback, Config, Inner, OnDone, State, Watch};
use super::error::{PoolError, PoolResult};
use super::func::{self, Func};
use super::store::{Flat, Outcomes};
use crate::message::{self, Message};
use crate::status::{Pid, StartMethod};
use crate::wait::deadline_after;

pub(crate) type Shared = Rc<RefCell<Inner>>;

pub(crate) fn lock(shared: &Shared) -> RefMut<'_, Inner> {
    shared.borrow_mut()
}

/// Runs the pool's loop until `check` gives a value or `deadline` passes (`None` then).
pub(crate) fn drive<T>(
    shared: &Shared,
    deadline: Option<Instant>,
    mut check: impl FnMut(&mut Inner) -> Option<T>,
) -> PoolResult<Option<T>> {
    loop {
        let (found, callbacks, err): (Option<T>, Vec<Callback>, Option<PoolError>) = {
            let mut inner = lock(shared);
            let found = check(&mut inner);
            let mut err = None;
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if found.is_none() && !expired {
                if inner.state == State::Terminated {
                    err = Some(PoolError::Terminated);
                } else if let Err(e) = inner.step(deadline) {
                    err = Some(e);
                }
            }
            (found, inner.take_callbacks(), err)
        };
        for cb in callbacks {
            cb();
        }
        if found.is_some() {
            return Ok(found);
        }
        if let Some(e) = err {
            // A terminated pool has no more to give: let the check see the final state.
            let mut inner = lock(shared);
            return match check(&mut inner) {
                Some(v) => Ok(Some(v)),
                None => Err(e),
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Builds a [`Pool`] (see [`Pool::builder`]).
pub struct PoolBuilder {
    processes: Option<usize>,
    method: Option<StartMethod>,
    init: Option<(func::Wire, Vec<u8>)>,
    max_tasks: u64,
    cpus: Option<Vec<usize>>,
    pin: bool,
    retries: u32,
    timeout: Option<Duration>,
    prefetch: usize,
    start_timeout: Duration,
    inherit: Vec<RawFd>,
    standby: bool,
}

impl PoolBuilder {
    /// The number of worker processes (default: [`crate::cpu_count`]); 0 is an error.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// The workers' start method (default: [`crate::get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// A function each worker runs with `args` when it starts (a panic fails the pool with
    /// [`PoolError::InitializerFailed`]).
    pub fn initializer<A: Message + 'static, F: Fn(A) + Send + Sync + 'static>(
        mut self,
        f: F,
        args: A,
    ) -> Self {
        let f = Func::<A, ()>::new(f);
        self.init = Some((f.wire, message::to_bytes(&args)));
        self
    }

    /// Workers leave after this many tasks (chunks) and are replaced (0: never).
    pub fn maxtasksperchild(mut self, k: u64) -> Self {
        self.max_tasks = k;
        self
    }

    /// The CPUs the workers run on (default: all this process may use).
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Pins each worker to one CPU of the set, in turn.
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// How many times a task whose worker died is tried again (default 1).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// The longest a task may run; past it its worker is killed and replaced.
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Tasks each worker holds at once even when tasks are long (default 1), so that a worker
    /// never waits for the parent between them: the next is already in its pipe. Short tasks
    /// are sent several at a time anyway.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// Keeps one worker more than `processes` started and ready, idle (default: off; CPython
    /// has none). When a worker dies, times out or retires, the standby takes its place at
    /// once, so a running map loses only the reap and the retry, not a start; the pool starts
    /// the next standby once no task waits to be handed out and a worker has nothing left to
    /// do (a map's tail, or an idle pool), on a CPU that work no longer needs. Costs one idle
    /// process. On a pinned pool the standby is pinned when it takes a place, to the CPU the
    /// place's worker had.
    pub fn standby(mut self, on: bool) -> Self {
        self.standby = on;
        self
    }

    /// The longest a new worker may take to become ready (started, checked, its initializer
    /// run: default 60 s); past it the worker is killed and replaced. When
    /// three in a row fail so, the pool fails with [`PoolError::StartTimedOut`] rather than
    /// wait forever on workers that are stopped or hang in their initializer.
    pub fn start_timeout(mut self, d: Duration) -> Self {
        self.start_timeout = d;
        self
    }

    /// Descriptors every worker inherits under the same numbers, replacements too: those of
    /// the sharing objects ([`Lock`](crate::Lock), [`Value`](crate::Value),
    /// [`Queue`](crate::Queue), ...) that the initializer claims with their `from_inherited`
    /// (CPython's `Pool(initializer=init, initargs=(lock,))`). Give the numbers in the
    /// initializer's arguments; the objects must outlive the pool.
    pub fn inherit_fds(mut self, fds: impl IntoIterator<Item = RawFd>) -> Self {
        self.inherit.extend(fds);
        self
    }

    /// Starts the workers.
    pub fn build(self) -> PoolResult<Pool> {
        self.start(None)
    }

    /// Starts the workers, asking `check` whenever `fd` is readable meanwhile (a signal's
    /// self-pipe): `true` gives up with [`PoolError::Interrupted`], the workers started so far
    /// killed and reaped. Starting thousands of workers takes seconds; this keeps it stoppable.
    pub fn build_watching(
        self,
        fd: BorrowedFd<'_>,
        check: &mut dyn FnMut() -> bool,
    ) -> PoolResult<Pool> {
        self.start(Some((fd, check)))
    }

    fn start(self, watch: Option<Watch<'_, '_>>) -> PoolResult<Pool> {
        let processes = self.processes.unwrap_or_else(crate::process::cpu_count);
        if processes == 0 {
            return Err(PoolError::NoProcesses);
        }
        let method = self.method.unwrap_or_else(crate::process::get_start_method);
        let init = match self.init {
            None => None,
            Some((func::Wire::Code(offset), args)) => Some((
                func::FuncRef { kind: func::KIND_CODE, value: offset, name: String::new() },
                args,
            )),
            Some((func::Wire::Entry(name), args)) => {
                Some((func::FuncRef { kind: func::KIND_ENTRY, value: 0, name }, args))
            }
            Some((func::Wire::Closure(f), args)) => {
                if method != StartMethod::Fork {
                    return Err(PoolError::ClosureNeedsFork { method });
                }
                let id = func::store_closure(f);
                Some((
                    func::FuncRef {
                        kind: func::KIND_CLOSURE,
                        value: id as i64,
                        name: String::new(),
                    },
                    args,
                ))
            }
        };
        let cfg = Config {
            processes,
            method,
            init,
            max_tasks: self.max_tasks,
            cpus: self.cpus,
            pin: self.pin,
            retries: self.retries,
            timeout: self.timeout,
            prefetch: self.prefetch,
            start_timeout: self.start_timeout,
            inherit: self.inherit,
            standby: self.standby,
        };
        Ok(Pool { shared: Rc::new(RefCell::new(Inner::start(cfg, watch)?)) })
    }
}

/// A pool of worker processes, like CPython's `multiprocessing.Pool`. Dropping it terminates
/// the workers (as leaving CPython's `with Pool() as p:` block does).
pub struct Pool {
    pub(crate) shared: Shared,
}

/// CPython's default chunk size for `map`: `ceil(len / (4 * processes))`.
fn auto_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(4 * processes).max(1)
}

impl Pool {
    /// A pool of `processes` workers with the defaults.
    pub fn new(processes: usize) -> PoolResult<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A builder with the defaults: `cpu_count()` workers, the default start method, one retry.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            init: None,
            max_tasks: 0,
            cpus: None,
            pin: false,
            retries: 1,
            timeout: None,
            prefetch: 1,
            start_timeout: Duration::from_secs(60),
            inherit: Vec::new(),
            standby: false,
        }
    }

    /// The number of workers.
    pub fn processes(&self) -> usize {
        lock(&self.shared).processes()
    }

    /// The workers' start method.
    pub fn start_method(&self) -> StartMethod {
        lock(&self.shared).method()
    }

    /// The pids of the current workers (not the standby's).
    pub fn pids(&self) -> Vec<Pid> {
        lock(&self.shared).pids()
    }

    /// The pid of the standby worker, when [`PoolBuilder::standby`] is on and one is started.
    pub fn standby_pid(&self) -> Option<Pid> {
        lock(&self.shared).standby_pid()
    }

    /// Kills worker `pid` (SIGKILL): the pool reaps and replaces it and settles its tasks as
    /// for any death (retried, or [`PoolError::WorkerDied`]). False if no worker has that pid.
    /// For a caller's own policy on a worker it judges stuck.
    pub fn kill_worker(&self, pid: Pid) -> bool {
        lock(&self.shared).kill_worker(pid)
    }

    pub(crate) fn submit<T: Message, R: Message>(
        &self,
        f: &Func<T, R>,
        items: Flat,
        chunksize: usize,
        input_done: bool,
        finish_order: bool,
        on_done: Option<OnDone>,
    ) -> PoolResult<u64> {
        let (job, callbacks) = {
            let mut inner = lock(&self.shared);
            let job =
                inner.add_job(&f.wire, items, chunksize, input_done, finish_order, on_done)?;
            // Hand the work out now, without waiting; a failure here (a worker that cannot be
            // started) shows again, and is returned, at the next call that waits.
            let _ = inner.step(Some(Instant::now()));
            (job, inner.take_callbacks())
        };
        for cb in callbacks {
            cb();
        }
        Ok(job)
    }

    /// `f` applied to every item, in order (CPython's `map`); the first failure is the error.
    pub fn map<T, R, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> PoolResult<Vec<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.map_async(Func::new(f), items, None)?.get(None)
    }

    /// `map` with a chunk size (`None`: CPython's default).
    pub fn map_chunked<T, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> PoolResult<Vec<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.map_async(Func::new(f), items, chunksize)?.get(None)
    }

    /// `f` on every tuple of `items` (CPython's `starmap`: the tuple is `f`'s arguments).
    pub fn starmap<T, R, F>(&self, f: F, items: impl IntoIterator<Item = T>) -> PoolResult<Vec<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.map(f, items)
    }

    /// Starts `f` over `items` and returns at once (CPython's `map_async`).
    pub fn map_async<T, R>(
        &self,
        f: Func<T, R>,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> PoolResult<MapResult<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
    {
        self.map_async_with(f, items, chunksize, None::<fn(Vec<R>)>, None::<fn(PoolError)>)
    }

    /// `map_async` with a callback (given the results) or an error callback (given the first
    /// error), run in this process by whoever drives the pool.
    pub fn map_async_with<T, R>(
        &self,
        f: Func<T, R>,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
        callback: Option<impl FnOnce(Vec<R>) + 'static>,
        error_callback: Option<impl FnOnce(PoolError) + 'static>,
    ) -> PoolResult<MapResult<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
    {
        // Encoded end to end, not one buffer each.
        let items = items.into_iter();
        let mut args = Flat::with_buffer(lock(&self.shared).buffer(), items.size_hint().0);
        args.extend(items);
        let chunksize = chunksize.unwrap_or_else(|| auto_chunksize(args.len(), self.processes()));
        let on_done = if callback.is_some() || error_callback.is_some() {
            Some(Box::new(move |outcomes: &Outcomes| {
                callbacks(outcomes.values::<R>(), callback, error_callback)
            }) as OnDone)
        } else {
            None
        };
        let job = self.submit(&f, args, chunksize, true, false, on_done)?;
        Ok(MapResult {
            inner: Handle { shared: self.shared.clone(), job },
            _r: std::marker::PhantomData,
        })
    }

    /// `f(arg)` in a worker, waiting for it (CPython's `apply`).
    pub fn apply<T, R, F>(&self, f: F, arg: T) -> PoolResult<R>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.apply_async(f, arg)?.get(None)
    }

    /// Starts `f(arg)` in a worker and returns at once (CPython's `apply_async`).
    pub fn apply_async<T, R, F>(&self, f: F, arg: T) -> PoolResult<AsyncResult<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.apply_func(Func::new(f), arg, None::<fn(R)>, None::<fn(PoolError)>)
    }

    /// Starts a [`Func`] on `arg`, with optional callbacks run in this process by whoever
    /// drives the pool (CPython's `apply_async(..., callback, error_callback)`).
    pub fn apply_func<T, R>(
        &self,
        f: Func<T, R>,
        arg: T,
        callback: Option<impl FnOnce(R) + 'static>,
        error_callback: Option<impl FnOnce(PoolError) + 'static>,
    ) -> PoolResult<AsyncResult<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
    {
        let on_done = if callback.is_some() || error_callback.is_some() {
            Some(Box::new(move |outcomes: &Outcomes| {
                let one = outcomes.decode::<R>(0).unwrap_or(Err(PoolError::Terminated));
                callbacks(one, callback, error_callback)
            }) as OnDone)
        } else {
            None
        };
        let mut args = Flat::new();
        args.push(&arg);
        let job = self.submit(&f, args, 1, true, false, on_done)?;
        Ok(AsyncResult {
            inner: Handle { shared: self.shared.clone(), job },
            _r: std::marker::PhantomData,
        })
    }

    /// Results as they come, in order, taking the input lazily (CPython's `imap`, chunk
    /// size 1).
    pub fn imap<T, R, F, I>(&self, f: F, items: I) -> PoolResult<IMap<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.imap_func(Func::new(f), items, 1, true)
    }

    /// Results in the order they finish (CPython's `imap_unordered`, chunk size 1).
    pub fn imap_unordered<T, R, F, I>(&self, f: F, items: I) -> PoolResult<IMap<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.imap_func(Func::new(f), items, 1, false)
    }

    /// `imap` (`ordered`) or `imap_unordered` of a [`Func`] with a chunk size.
    pub fn imap_func<T, R, I>(
        &self,
        f: Func<T, R>,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> PoolResult<IMap<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        let job = self.submit(&f, Flat::new(), chunksize, false, !ordered, None)?;
        let mut input = items.into_iter();
        let input: Input = Box::new(move |out: &mut Flat| match input.next() {
            Some(t) => {
                out.push(&t);
                true
            }
            None => false,
        });
        Ok(IMap {
            inner: Handle { shared: self.shared.clone(), job },
            input: Some(input),
            chunksize: chunksize.max(1),
            ordered,
            next: 0,
            _r: std::marker::PhantomData,
        })
    }

    /// No more work may be submitted; the workers leave once it is done (CPython's `close`).
    pub fn close(&self) -> PoolResult<()> {
        lock(&self.shared).close();
        Ok(())
    }

    /// Kills the workers now and reaps them; unfinished tasks end as
    /// [`PoolError::Terminated`] (CPython's `terminate`).
    pub fn terminate(&self) -> PoolResult<()> {
        let callbacks = {
            let mut inner = lock(&self.shared);
            inner.terminate();
            inner.take_callbacks()
        };
        for cb in callbacks {
            cb();
        }
        Ok(())
    }

    /// Waits for the workers to leave; only after `close` or `terminate` (CPython's `join`).
    pub fn join(&self) -> PoolResult<()> {
        if lock(&self.shared).state == State::Running {
            return Err(PoolError::StillRunning);
        }
        drive(&self.shared, None, |inner| inner.joined().then_some(()))?;
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// A job's share of the pool.
pub(crate) struct Handle {
    pub(crate) shared: Shared,
    pub(crate) job: u64,
}

impl Handle {
    fn wait(&self, timeout: Option<Duration>) -> PoolResult<bool> {
        let deadline = deadline_after(timeout);
        let job = self.job;
        Ok(drive(&self.shared, deadline, |inner| {
            inner.jobs.get(&job).is_none_or(|j| j.complete()).then_some(())
        })?
        .is_some())
    }

    fn ready(&self) -> bool {
        let _ = drive(&self.shared, Some(Instant::now()), |_| None::<()>);
        lock(&self.shared).jobs.get(&self.job).is_none_or(|j| j.complete())
    }

    fn results<R: Message>(&self, timeout: Option<Duration>) -> PoolResult<Vec<PoolResult<R>>> {
        if !self.wait(timeout)? {
            return Err(PoolError::Timeout);
        }
        let inner = lock(&self.shared);
        let job = inner.jobs.get(&self.job).ok_or(PoolError::Terminated)?;
        Ok(job.outcomes.each())
    }

    /// Every value, decoded straight into the vector; the first failure instead.
    fn values<R: Message>(&self, timeout: Option<Duration>) -> PoolResult<Vec<R>> {
        if !self.wait(timeout)? {
            return Err(PoolError::Timeout);
        }
        let inner = lock(&self.shared);
        inner.jobs.get(&self.job).ok_or(PoolError::Terminated)?.outcomes.values()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared).detach(self.job);
    }
}

/// The result of `apply_async`, CPython's `AsyncResult`.
pub struct AsyncResult<R> {
    pub(crate) inner: Handle,
    _r: std::marker::PhantomData<fn() -> R>,
}

impl<R: Message> AsyncResult<R> {
    /// The value, waiting up to `timeout` (`None`: as long as it takes); past it
    /// [`PoolError::Timeout`].
    pub fn get(&self, timeout: Option<Duration>) -> PoolResult<R> {
        self.inner.results(timeout)?.pop().unwrap_or(Err(PoolError::Terminated))
    }

    /// Waits up to `timeout`; true if the result is ready.
    pub fn wait(&self, timeout: Option<Duration>) -> PoolResult<bool> {
        self.inner.wait(timeout)
    }

    /// Whether the result is ready.
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// Whether the task succeeded; [`PoolError::NotReady`] before it is ready.
    pub fn successful(&self) -> PoolResult<bool> {
        if !self.ready() {
            return Err(PoolError::NotReady);
        }
        Ok(self.get(Some(Duration::ZERO)).is_ok())
    }
}

/// The result of `map_async`, CPython's `MapResult`.
pub struct MapResult<R> {
    inner: Handle,
    _r: std::marker::PhantomData<fn() -> R>,
}

impl<R: Message> MapResult<R> {
    /// The values in order, waiting up to `timeout`; the first failed item's error otherwise.
    pub fn get(&self, timeout: Option<Duration>) -> PoolResult<Vec<R>> {
        self.inner.values(timeout)
    }

    /// Every item's own outcome, in order, waiting up to `timeout`.
    pub fn get_each(&self, timeout: Option<Duration>) -> PoolResult<Vec<PoolResult<R>>> {
        self.inner.results(timeout)
    }

    /// Waits up to `timeout`; true if every item is done.
    pub fn wait(&self, timeout: Option<Duration>) -> PoolResult<bool> {
        self.inner.wait(timeout)
    }

    /// Whether every item is done.
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// Whether every item succeeded; [`PoolError::NotReady`] before all are done.
    pub fn successful(&self) -> PoolResult<bool> {
        if !self.ready() {
            return Err(PoolError::NotReady);
        }
        Ok(self.get_each(Some(Duration::ZERO))?.iter().all(Result::is_ok))
    }
}

/// Encodes the next input item into the buffer; false at the end.
type Input = Box<dyn FnMut(&mut Flat) -> bool>;

/// The iterator of `imap` / `imap_unordered`: each item's outcome, as results arrive.
pub struct IMap<R> {
    inner: Handle,
    input: Option<Input>,
    chunksize: usize,
    ordered: bool,
    next: usize,
    _r: std::marker::PhantomData<fn() -> R>,
}

impl<R: Message> IMap<R> {
    /// Adds input while the pool's queue is short.
    fn feed(&mut self) {
        let Some(input) = self.input.as_mut() else { return };
        let mut inner = lock(&self.inner.shared);
        let want = 64 * inner.processes();
        while inner.queued() < want {
            let mut chunk = Flat::new();
            while chunk.len() < self.chunksize && input(&mut chunk) {}
            if chunk.is_empty() {
                inner.finish_input(self.inner.job);
                self.input = None;
                return;
            }
            inner.extend_job(self.inner.job, chunk, self.chunksize);
        }
    }

    fn take(&mut self, inner: &mut Inner) -> Option<Option<PoolResult<R>>> {
        let Some(job) = inner.jobs.get_mut(&self.inner.job) else {
            return Some(None);
        };
        if self.ordered {
            if let Some(out) = job.outcomes.take(self.next) {
                self.next += 1;
                return Some(Some(out));
            }
        } else if let Some(idx) = job.finished.pop_front() {
            let out = job.outcomes.take(idx as usize).expect("a finished item has its outcome");
            self.next += 1;
            return Some(Some(out));
        }
        if self.next >= job.outcomes.len() && job.input_done {
            return Some(None);
        }
        None
    }

    /// The next outcome, waiting up to `timeout` ([`PoolError::Timeout`] past it: CPython's
    /// `next(timeout)`); `Ok(None)` at the end.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> PoolResult<Option<PoolResult<R>>> {
        let deadline = deadline_after(timeout);
        loop {
            self.feed();
            let shared = self.inner.shared.clone();
            let lazy = self.input.is_some();
            let got = drive(&shared, deadline, |inner| {
                if let Some(v) = self.take(inner) {
                    return Some(Some(v));
                }
                (lazy && inner.queued() < 32 * inner.processes()).then_some(None)
            })?;
            match got {
                Some(Some(v)) => return Ok(v),
                Some(None) => {}
                None => return Err(PoolError::Timeout),
            }
        }
    }
}

impl<R: Message> Iterator for IMap<R> {
    type Item = PoolResult<R>;

    fn next(&mut self) -> Option<PoolResult<R>> {
        match self.next_timeout(None) {
            Ok(v) => v,
            Err(e) => Some(Err(e)),
        }
    }
}

/// The callback a finished job runs in this process: `callback` with its value, or
/// `error_callback` with its error (either may be absent).
fn callbacks<V: 'static>(
    outcome: PoolResult<V>,
    callback: Option<impl FnOnce(V) + 'static>,
    error_callback: Option<impl FnOnce(PoolError) + 'static>,
) -> Callback {
    Box::new(move || match outcome {
        Ok(v) => {
            if let Some(cb) = callback {
                cb(v)
            }
        }
        Err(e) => {
            if let Some(cb) = error_callback {
                cb(e)
            }
        }
    })
}
