//! `concurrent.futures` on the same pool: [`Executor`] (CPython's `ProcessPoolExecutor`),
//! [`Future`], [`as_completed`] and [`wait`].

use std::time::{Duration, Instant};

use super::api::{AsyncResult, IMap, Pool, PoolBuilder, drive, lock};
use super::error::{PoolError, PoolResult};
use super::func::Func;
use crate::message::Message;
use crate::wait::deadline_after;

/// Builds an [`Executor`]: a [`PoolBuilder`] underneath.
pub struct ExecutorBuilder(PoolBuilder);

impl ExecutorBuilder {
    /// The pool's settings.
    pub fn pool(self, f: impl FnOnce(PoolBuilder) -> PoolBuilder) -> Self {
        ExecutorBuilder(f(self.0))
    }

    /// The number of workers (CPython's `max_workers`).
    pub fn max_workers(self, n: usize) -> Self {
        ExecutorBuilder(self.0.processes(n))
    }

    /// Starts the workers.
    pub fn build(self) -> PoolResult<Executor> {
        Ok(Executor { pool: Some(self.0.build()?) })
    }
}

/// A process pool executor, CPython's `concurrent.futures.ProcessPoolExecutor`. Dropping it
/// shuts it down, waiting for the submitted work (as its `with` block does).
pub struct Executor {
    pool: Option<Pool>,
}

impl Executor {
    /// An executor with `n` workers.
    pub fn new(n: usize) -> PoolResult<Executor> {
        Executor::builder().max_workers(n).build()
    }

    /// A builder with the pool's defaults.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder(Pool::builder())
    }

    fn pool(&self) -> PoolResult<&Pool> {
        self.pool.as_ref().ok_or(PoolError::NotRunning)
    }

    /// The pool underneath (for its pids, say).
    pub fn as_pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// Schedules `f(arg)`; its future.
    pub fn submit<T, R, F>(&self, f: F, arg: T) -> PoolResult<Future<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.submit_func(Func::new(f), arg)
    }

    /// Schedules a [`Func`] on `arg`.
    pub fn submit_func<T, R>(&self, f: Func<T, R>, arg: T) -> PoolResult<Future<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
    {
        let result = self.pool()?.apply_func(f, arg, None::<fn(R)>, None::<fn(PoolError)>)?;
        Ok(Future { result })
    }

    /// `f` over `items`, results in order as they come (CPython's `Executor.map`).
    pub fn map<T, R, F, I>(&self, f: F, items: I) -> PoolResult<IMap<R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: 'static,
    {
        self.pool()?.imap(f, items)
    }

    /// Takes no more work; with `cancel_futures`, futures not yet running are cancelled; with
    /// `wait`, returns once the rest is done and the workers have left.
    pub fn shutdown(&mut self, wait: bool, cancel_futures: bool) -> PoolResult<()> {
        let Some(pool) = self.pool.as_ref() else { return Ok(()) };
        if cancel_futures {
            let mut inner = lock(&pool.shared);
            let jobs: Vec<u64> = inner.jobs.keys().copied().collect();
            for job in jobs {
                inner.cancel(job);
            }
        }
        pool.close()?;
        if wait {
            pool.join()?;
            self.pool = None;
        }
        Ok(())
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let _ = self.shutdown(true, false);
    }
}

/// The future of one submitted call.
pub struct Future<R> {
    result: AsyncResult<R>,
}

impl<R: Message> Future<R> {
    /// The value, waiting up to `timeout` ([`PoolError::Timeout`] past it).
    pub fn result(&self, timeout: Option<Duration>) -> PoolResult<R> {
        self.result.get(timeout)
    }

    /// The error, if the call failed (`None` if it succeeded), waiting up to `timeout`.
    pub fn exception(&self, timeout: Option<Duration>) -> PoolResult<Option<PoolError>> {
        match self.result.get(timeout) {
            Ok(_) => Ok(None),
            Err(PoolError::Timeout) => Err(PoolError::Timeout),
            Err(e) => Ok(Some(e)),
        }
    }

    /// Whether the call finished (or was cancelled).
    pub fn done(&self) -> bool {
        self.result.ready()
    }

    /// Cancels the call if it has not started; true if it is (now) cancelled.
    pub fn cancel(&self) -> bool {
        let h = &self.result.inner;
        lock(&h.shared).cancel(h.job) || self.cancelled()
    }

    /// Whether the call was cancelled.
    pub fn cancelled(&self) -> bool {
        let h = &self.result.inner;
        let inner = lock(&h.shared);
        inner
            .jobs
            .get(&h.job)
            .is_some_and(|j| matches!(j.outcomes.get(0), Some(Err(PoolError::Cancelled))))
    }

    fn failed(&self) -> bool {
        let h = &self.result.inner;
        let inner = lock(&h.shared);
        inner.jobs.get(&h.job).is_some_and(|j| matches!(j.outcomes.get(0), Some(Err(_))))
    }
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as one future is done.
    FirstCompleted,
    /// As soon as one fails (or all are done).
    FirstException,
    /// Once all are done.
    AllCompleted,
}

/// Drives the pools of `futures` until `enough` holds or `deadline` passes.
fn drive_futures<R: Message>(
    futures: &[Future<R>],
    deadline: Option<Instant>,
    mut enough: impl FnMut() -> bool,
) -> PoolResult<bool> {
    loop {
        if enough() {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        let Some(first) = futures.first() else { return Ok(true) };
        // One step of the (first future's) pool, then look again.
        let slice = Instant::now() + Duration::from_millis(20);
        let until = deadline.map_or(slice, |d| d.min(slice));
        let shared = first.result.inner.shared.clone();
        let mut turns = 0;
        drive(&shared, Some(until), |_| {
            turns += 1;
            (turns > 1).then_some(())
        })?;
    }
}

/// Waits for `futures` (CPython's `concurrent.futures.wait`): the indices of those done and of
/// those not done, once `return_when` holds or `timeout` passes.
pub fn wait<R: Message>(
    futures: &[Future<R>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> PoolResult<(Vec<usize>, Vec<usize>)> {
    let deadline = deadline_after(timeout);
    let done_now = |fs: &[Future<R>]| {
        let done: Vec<usize> = (0..fs.len()).filter(|&i| is_done(&fs[i])).collect();
        done
    };
    drive_futures(futures, deadline, || {
        let done = done_now(futures);
        match return_when {
            ReturnWhen::FirstCompleted => !done.is_empty() || futures.is_empty(),
            ReturnWhen::FirstException => {
                done.len() == futures.len() || done.iter().any(|&i| futures[i].failed())
            }
            ReturnWhen::AllCompleted => done.len() == futures.len(),
        }
    })?;
    let done = done_now(futures);
    let not_done = (0..futures.len()).filter(|i| !done.contains(i)).collect();
    Ok((done, not_done))
}

fn is_done<R: Message>(f: &Future<R>) -> bool {
    let h = &f.result.inner;
    lock(&h.shared).jobs.get(&h.job).is_none_or(|j| j.complete())
}

/// The futures in the order they finish (CPython's `as_completed`): each index once; past
/// `timeout` the iterator yields [`PoolError::Timeout`] and ends.
pub fn as_completed<R: Message>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<'_, R> {
    AsCompleted {
        futures,
        yielded: vec![false; futures.len()],
        deadline: deadline_after(timeout),
        over: false,
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<'a, R> {
    futures: &'a [Future<R>],
    yielded: Vec<bool>,
    deadline: Option<Instant>,
    over: bool,
}

impl<R: Message> Iterator for AsCompleted<'_, R> {
    type Item = PoolResult<usize>;

    fn next(&mut self) -> Option<PoolResult<usize>> {
        if self.over || self.yielded.iter().all(|&y| y) {
            return None;
        }
        let mut found = None;
        let futures = self.futures;
        let yielded = &self.yielded;
        let res = drive_futures(futures, self.deadline, || {
            found = (0..futures.len()).find(|&i| !yielded[i] && is_done(&futures[i]));
            found.is_some()
        });
        match (res, found) {
            (Err(e), _) => {
                self.over = true;
                Some(Err(e))
            }
            (Ok(_), Some(i)) => {
                self.yielded[i] = true;
                Some(Ok(i))
            }
            (Ok(_), None) => {
                self.over = true;
                Some(Err(PoolError::Timeout))
            }
        }
    }
}
